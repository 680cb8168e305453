/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the loaders: nvp_chain_load_buffer (with and
 * without a scaler out-pointer) and nvp_adam_load_buffer.
 *
 * Each input is tried twice: as given, and with every checksum the
 * container's structure lets us find recomputed (fz_fix_crcs), so that
 * mutations reach the section parsers instead of stopping at the CRC.
 *
 * Properties checked on every input:
 * - A model loads or fails alike with and without a scaler out-pointer
 *   (the scaler section is checked either way), and from a file as from a
 *   buffer (the file loader checks the header and section table before it
 *   reads the file whole, and must refuse exactly what the buffer loader
 *   refuses, with the same code).
 * - Whatever loads saves back to bytes that load again and save to the
 *   same bytes (equal to the input when its sections are in canonical
 *   order).
 * - One optimizer step from a loaded training state is either refused
 *   (NVP_ENONFINITE) with nothing changed (parameters, moments, average,
 *   step count: the state saves to the same bytes), or leaves every float
 *   finite (parameters, average, and moments: the state saves), and what
 *   it leaves saves to bytes that load again.
 * On success the loaded handles are also exercised (log_prob, forward,
 * inverse, sample, nll_grad; generator draws), and the load is repeated
 * with an allocator that fails at each allocation in turn (or a spread of
 * them): every such load must fail with NVP_ENOMEM, leave the
 * out-pointers NULL and free everything.
 *
 * Build: see the Makefile's `fuzz` target. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"

#define TAG_ARCH FZ_TAG('A', 'R', 'C', 'H')
#define TAG_PARM FZ_TAG('P', 'A', 'R', 'M')
#define TAG_SCAL FZ_TAG('S', 'C', 'A', 'L')
#define TAG_ADAM FZ_TAG('A', 'D', 'A', 'M')
#define TAG_RNG FZ_TAG('R', 'N', 'G', ' ')
#define TAG_AVG FZ_TAG('A', 'V', 'G', ' ')
#define TAG_CLIP FZ_TAG('C', 'L', 'I', 'P')

static fz_alloc_state g_st;

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    FZ_CHECK(p != NULL, "out of memory for %zu bytes", bytes);
    return p;
}

/* The current input as a file, for the file loaders: one temporary file
 * per process, rewritten for every input.  It is unlinked at once and
 * reached through /proc/self/fd (so that a crash leaves nothing behind),
 * or, without /proc, removed at exit. */
static char g_name[] = "/tmp/nvp_fuzz_load_XXXXXX";
static char g_path[64];
static int g_fd = -1;

static void remove_file(void)
{
    unlink(g_name);
}

static void write_input_file(const uint8_t *data, size_t size)
{
    if (g_fd < 0) {
        g_fd = mkstemp(g_name);
        FZ_CHECK(g_fd >= 0, "mkstemp");
        snprintf(g_path, sizeof g_path, "/proc/self/fd/%d", g_fd);
        if (access(g_path, R_OK) == 0) {
            unlink(g_name);
        } else {
            snprintf(g_path, sizeof g_path, "%s", g_name);
            atexit(remove_file);
        }
    }
    FZ_CHECK(ftruncate(g_fd, 0) == 0, "ftruncate");
    size_t done = 0;
    while (done < size) {
        const ssize_t w = pwrite(g_fd, data + done, size - done, (off_t)done);
        FZ_CHECK(w > 0, "pwrite");
        done += (size_t)w;
    }
}

/* The file loaders give the buffer loaders' verdict on the same bytes
 * (written by write_input_file). */
static void check_file_model(int want)
{
    nvp_chain *c = (nvp_chain *)&g_path;
    nvp_scaler *s = (nvp_scaler *)&g_path;
    fz_arm();
    const int rc = nvp_chain_load_file(&c, &s, g_path, NULL);
    fz_check_rc(rc, "nvp_chain_load_file");
    FZ_CHECK(rc == want, "the file loader returned %d, the buffer loader %d",
             rc, want);
    if (rc == NVP_OK) {
        nvp_chain_free(c);
        nvp_scaler_free(s);
    } else {
        FZ_CHECK(c == NULL && s == NULL,
                 "a failed file load left an out-pointer non-NULL");
    }
}

static void check_file_state(int want)
{
    nvp_adam *o = (nvp_adam *)&g_path;
    nvp_rng *g = (nvp_rng *)&g_path;
    fz_arm();
    const int rc = nvp_adam_load_file(&o, &g, g_path, NULL);
    fz_check_rc(rc, "nvp_adam_load_file");
    FZ_CHECK(rc == want, "the file loader returned %d, the buffer loader %d",
             rc, want);
    if (rc == NVP_OK) {
        nvp_adam_free(o);
        nvp_rng_free(g);
    } else {
        FZ_CHECK(o == NULL && g == NULL,
                 "a failed file load left an out-pointer non-NULL");
    }
}

/* A few test points of dimension dim: zeros, a pattern, one with NaN. */
#define N_POINTS 3
static float *make_points(size_t dim)
{
    float *y = xmalloc(N_POINTS * dim * sizeof *y);
    for (size_t j = 0; j < dim; j++) {
        y[j] = 0.0f;
        y[dim + j] = 0.5f * (float)((int)(j % 3) - 1);
        y[2 * dim + j] = j == 0 ? NAN : 1.0f;
    }
    return y;
}

/* Structure queries must agree with each other. */
static void check_structure(const nvp_chain *c)
{
    const size_t dim = nvp_chain_dim(c), K = nvp_chain_num_layers(c);
    FZ_CHECK(dim >= 2 && dim <= NVP_MAX_DIM, "loaded dim %zu", dim);
    FZ_CHECK(K >= 1 && K <= NVP_MAX_LAYERS, "loaded %zu layers", K);
    FZ_CHECK(nvp_base_dim(nvp_chain_base(c)) == dim, "base dim differs");
    size_t total = 0;
    for (size_t k = 0; k < K; k++) {
        size_t off = (size_t)-1;
        const nvp_layer *any = nvp_chain_layer(c, k, &off);
        FZ_CHECK(any != NULL, "layer %zu is NULL", k);
        FZ_CHECK(off == total, "layer %zu offset %zu, expected %zu", k, off,
                 total);
        FZ_CHECK(nvp_layer_dim(any) == dim, "layer %zu dim", k);
        const nvp_coupling *l = nvp_layer_as_coupling(any);
        if (!l) {
            /* another kind: its name is one of the known ones */
            const char *kind = nvp_layer_kind(any);
            FZ_CHECK(!strcmp(kind, "permutation") || !strcmp(kind, "actnorm") ||
                         !strcmp(kind, "linear"),
                     "layer %zu of unknown kind '%s'", k, kind);
            total += nvp_layer_num_params(any);
            continue;
        }
        FZ_CHECK(nvp_coupling_dim(l) == dim, "layer %zu dim", k);
        const float cl = nvp_coupling_log_scale_clamp(l);
        FZ_CHECK(isfinite(cl) && cl >= 0.0f, "layer %zu clamp %g", k,
                 (double)cl);
        unsigned char *mask = xmalloc(dim);
        int rc = nvp_coupling_get_mask(l, dim, mask);
        FZ_CHECK(rc == NVP_OK, "get_mask: %d", rc);
        size_t ones = 0;
        for (size_t j = 0; j < dim; j++) {
            FZ_CHECK(mask[j] <= 1, "mask byte %u", (unsigned)mask[j]);
            ones += mask[j];
        }
        FZ_CHECK(ones > 0 && ones < dim, "degenerate mask");
        free(mask);
        total += nvp_coupling_num_params(l);
    }
    FZ_CHECK(total == nvp_chain_num_params(c), "params %zu vs %zu", total,
             nvp_chain_num_params(c));
    FZ_CHECK(nvp_chain_layer(c, K, NULL) == NULL, "layer K is not NULL");
}

/* Runs the evaluation calls on a loaded chain; lp_out (N_POINTS floats)
 * receives the log densities of the test points. */
static void exercise_chain(nvp_chain *c, float *lp_out)
{
    const size_t dim = nvp_chain_dim(c), P = nvp_chain_num_params(c);
    /* A conditional model (context_dim C > 0) is called through the _given
     * forms, with context rows like the points (row 2 holds NaN). */
    const size_t C = nvp_chain_context_dim(c);
    float *ctx = C ? make_points(C) : NULL;
    int rc = nvp_chain_set_threads(c, 1);
    FZ_CHECK(rc == NVP_OK, "set_threads(1): %d", rc);
    float *y = make_points(dim);
    rc = C ? nvp_chain_log_prob_given(c, N_POINTS, y, ctx, lp_out)
           : nvp_chain_log_prob(c, N_POINTS, y, lp_out);
    fz_check_rc(rc, "nvp_chain_log_prob");
    FZ_CHECK(rc == NVP_OK, "log_prob of a loaded chain failed: %d", rc);
    FZ_CHECK(isnan(lp_out[2]), "a row holding NaN got log_prob %g",
             (double)lp_out[2]);
    if (C) {
        /* The plain call refuses a conditional chain. */
        float lp2[N_POINTS];
        fz_arm();
        rc = nvp_chain_log_prob(c, N_POINTS, y, lp2);
        fz_check_rc(rc, "nvp_chain_log_prob (conditional)");
        FZ_CHECK(rc == NVP_EINVAL, "plain log_prob on a conditional chain: %d",
                 rc);
    }

    float *x = xmalloc(N_POINTS * dim * sizeof *x);
    float ld[N_POINTS];
    rc = C ? nvp_chain_inverse_given(c, N_POINTS, y, ctx, x, ld)
           : nvp_chain_inverse(c, N_POINTS, y, x, ld);
    FZ_CHECK(rc == NVP_OK, "inverse: %d", rc);
    rc = C ? nvp_chain_forward_given(c, N_POINTS, x, ctx, x, ld)
           : nvp_chain_forward(c, N_POINTS, x, x, ld);
    FZ_CHECK(rc == NVP_OK, "forward (in place): %d", rc);

    nvp_rng *rng = NULL;
    rc = nvp_rng_create(&rng, 7, NULL);
    FZ_CHECK(rc == NVP_OK, "rng_create: %d", rc);
    rc = C ? nvp_chain_sample_given(c, rng, 2, ctx, x, ld)
           : nvp_chain_sample(c, rng, 2, x, ld);
    FZ_CHECK(rc == NVP_OK, "sample: %d", rc);
    nvp_rng_free(rng);

    float *g = xmalloc(P * sizeof *g);
    float loss;
    fz_arm();
    rc = C ? nvp_chain_nll_grad_given(c, 2, y, ctx, g, &loss)
           : nvp_chain_nll_grad(c, 2, y, g, &loss);
    fz_check_rc(rc, "nvp_chain_nll_grad");
    FZ_CHECK(rc == NVP_OK || rc == NVP_ENONFINITE, "nll_grad: %d", rc);
    free(g);
    free(x);
    free(y);
    free(ctx);
}

/* Saves c (with s) into a new buffer, checking the size protocol. */
static unsigned char *save_model(const nvp_chain *c, const nvp_scaler *s,
                                 size_t *size)
{
    size_t need = 0;
    int rc = nvp_chain_save_buffer(c, s, 0, NULL, &need);
    FZ_CHECK(rc == NVP_OK && need >= 24, "size query: %d, %zu", rc, need);
    unsigned char *buf = xmalloc(need);
    size_t got = 0;
    fz_arm();
    rc = nvp_chain_save_buffer(c, s, need - 1, buf, &got);
    fz_check_rc(rc, "nvp_chain_save_buffer (short)");
    FZ_CHECK(rc == NVP_EBUFSIZE && got == need,
             "cap - 1: rc %d, size %zu (need %zu)", rc, got, need);
    rc = nvp_chain_save_buffer(c, s, need, buf, &got);
    FZ_CHECK(rc == NVP_OK && got == need, "save: rc %d, %zu vs %zu", rc, got,
             need);
    *size = need;
    return buf;
}

static int canonical_model(const uint8_t *data, size_t size, int has_scaler)
{
    uint32_t tags[8];
    const size_t n = fz_section_tags(data, size, tags, 8);
    if (n != (size_t)(has_scaler ? 3 : 2) || fz_get_u32(data + 16) != n)
        return 0;
    return tags[0] == TAG_ARCH && tags[1] == TAG_PARM &&
           (!has_scaler || tags[2] == TAG_SCAL);
}

/* Loads with the counting allocator failing at allocation k, for every k
 * below the count a successful load makes (or a spread of 24 of them). */
typedef int (*load_fn)(const uint8_t *data, size_t size,
                       const nvp_allocator *a, int with_extra);

static void oom_sweep(load_fn load, const uint8_t *data, size_t size,
                      int with_extra)
{
    nvp_allocator a = fz_allocator(&g_st);
    fz_alloc_reset(&g_st, FZ_NEVER, 0);
    int rc = load(data, size, &a, with_extra);
    FZ_CHECK(rc == NVP_OK, "load with the counting allocator: %d", rc);
    FZ_CHECK(atomic_load(&g_st.live) == 0, "%zu blocks leaked",
             (size_t)atomic_load(&g_st.live));
    const size_t calls = atomic_load(&g_st.calls);
    const size_t steps = calls < 24 ? calls : 24;
    for (size_t i = 0; i < steps; i++) {
        const size_t k = calls <= 24 ? i : i * calls / steps;
        for (int all = 0; all <= 1; all++) {
            fz_alloc_reset(&g_st, k, all);
            fz_arm();
            rc = load(data, size, &a, with_extra);
            fz_check_rc(rc, "load under allocation failure");
            FZ_CHECK(rc == NVP_ENOMEM,
                     "allocation %zu of %zu failed (fail_all %d), the load "
                     "returned %d",
                     k, calls, all, rc);
            FZ_CHECK(atomic_load(&g_st.live) == 0,
                     "allocation %zu failed: %zu blocks leaked", k,
                     (size_t)atomic_load(&g_st.live));
        }
    }
    fz_alloc_reset(&g_st, FZ_NEVER, 0);
}

static int load_model_alloc(const uint8_t *data, size_t size,
                            const nvp_allocator *a, int with_scaler)
{
    nvp_chain *c = (nvp_chain *)&g_st; /* must be overwritten */
    nvp_scaler *s = (nvp_scaler *)&g_st;
    int rc = nvp_chain_load_buffer(&c, with_scaler ? &s : NULL, size, data, a);
    if (rc != NVP_OK) {
        FZ_CHECK(c == NULL, "failed load left *out non-NULL");
        FZ_CHECK(!with_scaler || s == NULL,
                 "failed load left *scaler_out non-NULL");
        return rc;
    }
    /* Every workspace allocation goes through the allocator too. */
    float lp[N_POINTS];
    float *y = make_points(nvp_chain_dim(c));
    const size_t C = nvp_chain_context_dim(c);
    float *ctx = C ? make_points(C) : NULL;
    (void)nvp_chain_set_threads(c, 1);
    int rc2 = C ? nvp_chain_log_prob_given(c, N_POINTS, y, ctx, lp)
                : nvp_chain_log_prob(c, N_POINTS, y, lp);
    FZ_CHECK(rc2 == NVP_OK || rc2 == NVP_ENOMEM, "log_prob: %d", rc2);
    free(y);
    free(ctx);
    nvp_chain_free(c);
    if (with_scaler)
        nvp_scaler_free(s);
    return rc2 == NVP_ENOMEM ? NVP_ENOMEM : NVP_OK;
}

static void try_model(const uint8_t *data, size_t size)
{
    nvp_chain *c = (nvp_chain *)&g_st, *c2 = (nvp_chain *)&g_st;
    nvp_scaler *s = (nvp_scaler *)&g_st;
    fz_arm();
    int rc = nvp_chain_load_buffer(&c, NULL, size, data, NULL);
    fz_check_rc(rc, "nvp_chain_load_buffer");
    FZ_CHECK(rc == NVP_OK || rc == NVP_EFORMAT || rc == NVP_EVERSION,
             "load returned %d", rc);
    if (rc != NVP_OK)
        FZ_CHECK(c == NULL, "failed load left *out non-NULL");
    fz_arm();
    int rc2 = nvp_chain_load_buffer(&c2, &s, size, data, NULL);
    fz_check_rc(rc2, "nvp_chain_load_buffer (scaler)");
    if (rc2 != NVP_OK)
        FZ_CHECK(c2 == NULL && s == NULL,
                 "failed load left an out-pointer non-NULL");
    /* Whether a file is valid does not depend on the out-pointers. */
    FZ_CHECK(rc == rc2, "without scaler_out %d, with it %d", rc, rc2);
    write_input_file(data, size);
    check_file_model(rc);

    float lp[N_POINTS], lp2[N_POINTS], lp3[N_POINTS];
    if (c) {
        check_structure(c);
        exercise_chain(c, lp);
    }
    if (c2) {
        check_structure(c2);
        const size_t P = nvp_chain_num_params(c2);
        FZ_CHECK(nvp_chain_num_params(c) == P &&
                     nvp_chain_dim(c) == nvp_chain_dim(c2) &&
                     nvp_chain_num_layers(c) == nvp_chain_num_layers(c2),
                 "the two loads disagree");
        float *p1 = xmalloc(P * sizeof *p1), *p2 = xmalloc(P * sizeof *p2);
        FZ_CHECK(nvp_chain_get_params(c, P, p1) == NVP_OK &&
                     nvp_chain_get_params(c2, P, p2) == NVP_OK,
                 "get_params");
        FZ_CHECK(memcmp(p1, p2, P * sizeof *p1) == 0,
                 "the two loads' parameters differ");
        for (size_t i = 0; i < P; i++)
            FZ_CHECK(isfinite(p1[i]), "loaded parameter %zu is %g", i,
                     (double)p1[i]);
        exercise_chain(c2, lp2);
        FZ_CHECK(memcmp(lp, lp2, sizeof lp) == 0, "log_prob differs");

        size_t n1;
        unsigned char *b1 = save_model(c2, s, &n1);
        if (canonical_model(data, size, s != NULL))
            FZ_CHECK(n1 == size && memcmp(b1, data, size) == 0,
                     "a canonical file does not re-save to the same bytes");
        nvp_chain *c3 = NULL;
        nvp_scaler *s3 = NULL;
        rc = nvp_chain_load_buffer(&c3, &s3, n1, b1, NULL);
        FZ_CHECK(rc == NVP_OK, "re-saved model does not load: %d", rc);
        FZ_CHECK((s3 != NULL) == (s != NULL), "scaler lost in the round trip");
        size_t n2;
        unsigned char *b2 = save_model(c3, s3, &n2);
        FZ_CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0,
                 "save -> load -> save is not byte-identical");
        exercise_chain(c3, lp3);
        FZ_CHECK(memcmp(lp2, lp3, sizeof lp) == 0,
                 "log_prob differs after the round trip");
        if (s) {
            const size_t d = nvp_scaler_dim(s);
            /* A conditional model's scaler may cover the context too. */
            FZ_CHECK(d == nvp_chain_dim(c2) ||
                         (nvp_chain_context_dim(c2) > 0 &&
                          d == nvp_chain_dim(c2) + nvp_chain_context_dim(c2)),
                     "scaler dim %zu, chain %zu + context %zu", d,
                     nvp_chain_dim(c2), nvp_chain_context_dim(c2));
            float *m = xmalloc(4 * d * sizeof *m);
            FZ_CHECK(nvp_scaler_get(s, d, m, m + d) == NVP_OK &&
                         nvp_scaler_get(s3, d, m + 2 * d, m + 3 * d) == NVP_OK,
                     "scaler_get");
            FZ_CHECK(memcmp(m, m + 2 * d, 2 * d * sizeof *m) == 0,
                     "scaler changed in the round trip");
            for (size_t j = 0; j < d; j++)
                FZ_CHECK(isfinite(m[j]) && isfinite(m[d + j]) && m[d + j] > 0,
                         "loaded scaler axis %zu: mean %g sd %g", j,
                         (double)m[j], (double)m[d + j]);
            free(m);
        }
        free(b2);
        free(b1);
        nvp_chain_free(c3);
        nvp_scaler_free(s3);
        free(p1);
        free(p2);
        nvp_scaler_free(s);
        nvp_chain_free(c2);
        oom_sweep(load_model_alloc, data, size, 1);
    }
    if (c) {
        size_t n0;
        unsigned char *b0 = save_model(c, NULL, &n0);
        nvp_chain *c4 = NULL;
        fz_arm();
        rc = nvp_chain_load_buffer(&c4, NULL, n0, b0, NULL);
        fz_check_rc(rc, "nvp_chain_load_buffer (re-saved, no scaler)");
        FZ_CHECK(rc == NVP_OK, "a model re-saved without its scaler does not "
                 "load: %d", rc);
        nvp_chain_free(c4);
        free(b0);
        nvp_chain_free(c);
        if (rc2 != NVP_OK)
            oom_sweep(load_model_alloc, data, size, 0);
    }
}

/* ------------------------------------------------------- training state */
static unsigned char *save_state(const nvp_adam *o, const nvp_rng *g,
                                 size_t *size)
{
    size_t need = 0;
    int rc = nvp_adam_save_buffer(o, g, 0, NULL, &need);
    FZ_CHECK(rc == NVP_OK && need >= 24, "size query: %d, %zu", rc, need);
    unsigned char *buf = xmalloc(need);
    size_t got = 0;
    fz_arm();
    rc = nvp_adam_save_buffer(o, g, need - 1, buf, &got);
    fz_check_rc(rc, "nvp_adam_save_buffer (short)");
    FZ_CHECK(rc == NVP_EBUFSIZE && got == need, "cap - 1: rc %d, size %zu",
             rc, got);
    rc = nvp_adam_save_buffer(o, g, need, buf, &got);
    FZ_CHECK(rc == NVP_OK && got == need, "save: %d", rc);
    *size = need;
    return buf;
}

static int load_state_alloc(const uint8_t *data, size_t size,
                            const nvp_allocator *a, int with_rng)
{
    nvp_adam *o = (nvp_adam *)&g_st;
    nvp_rng *g = (nvp_rng *)&g_st;
    int rc = nvp_adam_load_buffer(&o, with_rng ? &g : NULL, size, data, a);
    if (rc != NVP_OK) {
        FZ_CHECK(o == NULL && (!with_rng || g == NULL),
                 "failed load left an out-pointer non-NULL");
        return rc;
    }
    nvp_adam_free(o);
    if (with_rng)
        nvp_rng_free(g);
    return NVP_OK;
}

static void try_state(const uint8_t *data, size_t size)
{
    nvp_adam *o = (nvp_adam *)&g_st, *o2 = (nvp_adam *)&g_st;
    nvp_rng *g = (nvp_rng *)&g_st;
    fz_arm();
    int rc = nvp_adam_load_buffer(&o, NULL, size, data, NULL);
    fz_check_rc(rc, "nvp_adam_load_buffer");
    FZ_CHECK(rc == NVP_OK || rc == NVP_EFORMAT || rc == NVP_EVERSION,
             "load returned %d", rc);
    fz_arm();
    int rc2 = nvp_adam_load_buffer(&o2, &g, size, data, NULL);
    fz_check_rc(rc2, "nvp_adam_load_buffer (rng)");
    FZ_CHECK(rc == rc2, "with and without rng_out: %d vs %d", rc, rc2);
    write_input_file(data, size);
    check_file_state(rc);
    if (rc != NVP_OK) {
        FZ_CHECK(o == NULL && o2 == NULL && g == NULL,
                 "failed load left an out-pointer non-NULL");
        return;
    }
    const size_t n = nvp_adam_num_params(o);
    FZ_CHECK(n >= 1 && n == nvp_adam_num_params(o2), "n %zu", n);
    FZ_CHECK(nvp_adam_num_steps(o) == nvp_adam_num_steps(o2), "steps differ");
    const float lr = nvp_adam_lr(o);
    FZ_CHECK(isfinite(lr) && lr > 0.0f, "loaded lr %g", (double)lr);
    /* A parameter average, when the state holds one: a decay in (0, 1)
     * and finite values, the same in both loads. */
    const float decay = nvp_adam_average_decay(o);
    const int has_avg = decay != 0.0f;
    FZ_CHECK(decay == nvp_adam_average_decay(o2) && decay >= 0.0f &&
                 decay < 1.0f,
             "average decay %g", (double)decay);
    if (has_avg && n <= (size_t)1 << 20) {
        float *a1 = xmalloc(n * sizeof *a1), *a2 = xmalloc(n * sizeof *a2);
        FZ_CHECK(nvp_adam_get_average(o, n, a1) == NVP_OK &&
                     nvp_adam_get_average(o2, n, a2) == NVP_OK,
                 "get_average failed on a loaded average");
        FZ_CHECK(memcmp(a1, a2, n * sizeof *a1) == 0, "the averages differ");
        for (size_t i = 0; i < n; i++)
            FZ_CHECK(isfinite(a1[i]), "loaded average[%zu] = %g", i,
                     (double)a1[i]);
        free(a1);
        free(a2);
    }

    /* A clipping limit, when the state holds one: positive and finite,
     * the same in both loads. */
    const float clip = nvp_adam_clip_norm(o);
    const int has_clip = clip != 0.0f;
    FZ_CHECK(clip == nvp_adam_clip_norm(o2) && isfinite(clip) && clip >= 0.0f,
             "clip limit %g", (double)clip);

    size_t n1, n2, n0;
    unsigned char *b1 = save_state(o2, g, &n1);
    unsigned char *b0 = save_state(o, NULL, &n0);
    uint32_t tags[8];
    const size_t nt = fz_section_tags(data, size, tags, 8);
    /* Canonical order: ADAM, then RNG, then AVG, then CLIP. */
    const size_t want = 1 + (g != NULL) + (size_t)has_avg + (size_t)has_clip;
    if (nt == want && fz_get_u32(data + 16) == nt && tags[0] == TAG_ADAM &&
        (!g || tags[1] == TAG_RNG) &&
        (!has_avg || tags[1 + (g != NULL)] == TAG_AVG) &&
        (!has_clip || tags[nt - 1] == TAG_CLIP))
        FZ_CHECK(n1 == size && memcmp(b1, data, size) == 0,
                 "a canonical state does not re-save to the same bytes");
    nvp_adam *o3 = NULL;
    nvp_rng *g3 = NULL;
    rc = nvp_adam_load_buffer(&o3, &g3, n1, b1, NULL);
    FZ_CHECK(rc == NVP_OK && (g3 != NULL) == (g != NULL),
             "re-saved state does not load: %d", rc);
    unsigned char *b2 = save_state(o3, g3, &n2);
    FZ_CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0,
             "save -> load -> save is not byte-identical");
    free(b2);

    /* Use them: a step and a reset; the generator draws the same stream
     * as its reloaded copy. */
    if (n <= (size_t)1 << 20) {
        float *p = xmalloc(n * sizeof *p), *gr = xmalloc(n * sizeof *gr);
        for (size_t i = 0; i < n; i++) {
            p[i] = 0.0f;
            gr[i] = (float)(i % 5) - 2.0f;
        }
        const uint64_t t = nvp_adam_num_steps(o);
        size_t nbefore;
        unsigned char *before = save_state(o, NULL, &nbefore);
        fz_arm();
        rc = nvp_adam_step(o, n, p, gr);
        fz_check_rc(rc, "nvp_adam_step");
        if (rc != NVP_OK) {
            /* Refused: nothing changed. */
            FZ_CHECK(rc == NVP_ENONFINITE, "adam_step: %d", rc);
            FZ_CHECK(nvp_adam_num_steps(o) == t, "a refused step moved the "
                     "count from %llu to %llu", (unsigned long long)t,
                     (unsigned long long)nvp_adam_num_steps(o));
            for (size_t i = 0; i < n; i++)
                FZ_CHECK(p[i] == 0.0f && !signbit(p[i]),
                         "a refused step changed parameter %zu to %g", i,
                         (double)p[i]);
            size_t nafter;
            unsigned char *after = save_state(o, NULL, &nafter);
            FZ_CHECK(nafter == nbefore && memcmp(after, before, nafter) == 0,
                     "a refused step changed the training state");
            free(after);
        } else {
            /* The step count never goes back (it may saturate): a count
             * that wraps to 0 zeroes the bias correction, and the step
             * writes NaN into every parameter. */
            FZ_CHECK(nvp_adam_num_steps(o) >= t && nvp_adam_num_steps(o) != 0,
                     "the step count went from %llu to %llu",
                     (unsigned long long)t,
                     (unsigned long long)nvp_adam_num_steps(o));
            /* Every float finite: the parameters, the average, and the
             * moments (a save refuses non-finite ones). */
            for (size_t i = 0; i < n; i++)
                FZ_CHECK(isfinite(p[i]), "a step from a loaded state "
                         "returned NVP_OK and left parameter %zu = %g (lr %g, "
                         "steps %llu)", i, (double)p[i], (double)lr,
                         (unsigned long long)t);
            if (has_avg) {
                float *a1 = xmalloc(n * sizeof *a1);
                FZ_CHECK(nvp_adam_get_average(o, n, a1) == NVP_OK,
                         "get_average");
                for (size_t i = 0; i < n; i++)
                    FZ_CHECK(isfinite(a1[i]), "a step left average[%zu] = %g",
                             i, (double)a1[i]);
                free(a1);
            }
            size_t nafter = 0;
            fz_arm();
            rc = nvp_adam_save_buffer(o, g, 0, NULL, &nafter);
            fz_check_rc(rc, "nvp_adam_save_buffer (after a step)");
            FZ_CHECK(rc == NVP_OK, "the state a step left does not save: %d",
                     rc);
            /* ... to bytes that load again and save to the same bytes. */
            unsigned char *after = save_state(o, g, &nafter);
            nvp_adam *o4 = NULL;
            nvp_rng *g4 = NULL;
            fz_arm();
            rc = nvp_adam_load_buffer(&o4, &g4, nafter, after, NULL);
            fz_check_rc(rc, "nvp_adam_load_buffer (after a step)");
            FZ_CHECK(rc == NVP_OK, "the state saved after a step does not "
                     "load: %d", rc);
            size_t nagain;
            unsigned char *again = save_state(o4, g4, &nagain);
            FZ_CHECK(nagain == nafter && memcmp(again, after, nafter) == 0,
                     "save -> load -> save after a step is not identical");
            free(again);
            free(after);
            nvp_adam_free(o4);
            nvp_rng_free(g4);
        }
        free(before);
        const uint64_t t1 = nvp_adam_num_steps(o);
        gr[0] = NAN;
        fz_arm();
        rc = nvp_adam_step(o, n, p, gr);
        fz_check_rc(rc, "nvp_adam_step (NaN)");
        FZ_CHECK(rc == NVP_ENONFINITE && nvp_adam_num_steps(o) == t1,
                 "a NaN gradient was not refused: %d", rc);
        FZ_CHECK(nvp_adam_reset(o) == NVP_OK && nvp_adam_num_steps(o) == 0,
                 "reset");
        free(p);
        free(gr);
    }
    if (g) {
        float u[6], v[6];
        FZ_CHECK(nvp_rng_normal(g, 3, u) == NVP_OK &&
                     nvp_rng_uniform(g, 3, u + 3) == NVP_OK,
                 "rng draws");
        FZ_CHECK(nvp_rng_normal(g3, 3, v) == NVP_OK &&
                     nvp_rng_uniform(g3, 3, v + 3) == NVP_OK,
                 "rng draws");
        FZ_CHECK(memcmp(u, v, sizeof u) == 0,
                 "the reloaded generator draws a different stream");
        for (int i = 0; i < 6; i++)
            FZ_CHECK(isfinite(u[i]), "draw %d is %g", i, (double)u[i]);
    }
    free(b0);
    free(b1);
    nvp_adam_free(o3);
    nvp_rng_free(g3);
    nvp_adam_free(o);
    nvp_adam_free(o2);
    nvp_rng_free(g);
    oom_sweep(load_state_alloc, data, size, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A heap copy of exactly size bytes: reads past the end are caught. */
    unsigned char *copy = xmalloc(size);
    if (size)
        memcpy(copy, data, size);
    try_model(copy, size);
    try_state(copy, size);
    if (size >= 24) {
        fz_fix_crcs(copy, size);
        if (memcmp(copy, data, size) != 0) {
            try_model(copy, size);
            try_state(copy, size);
        }
    }
    free(copy);
    return 0;
}
