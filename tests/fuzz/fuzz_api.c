/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the whole public API: the input is a program, a
 * sequence of calls with arguments drawn from the input bytes (NULL
 * pointers, n = 0, n so large that n * dim overflows, mismatched
 * dimensions and counts, NaN and infinities, invalid allocators and
 * allocators that fail on demand), on a few slots of live handles.
 *
 * Every call must return NVP_OK or a documented NVP_E* code, with a real
 * nvp_strerror() text and, on failure, a fresh nvp_errmsg().  Where the
 * header promises more, it is checked: n == 0 is NVP_EINVAL and an
 * overflowing n NVP_EOVERFLOW when everything else is valid; setters and
 * training steps that fail leave their handle unchanged; results are
 * bitwise the same for any thread count and with in-place outputs; a
 * model or training state saved, loaded and saved again gives the same
 * bytes.  ASan/UBSan/LSan catch the rest; at the end of each input every
 * handle is freed and the counting allocator must hold no block.
 *
 * Sizes stay small (dim <= 6, widths <= 9, at most 3 hidden layers,
 * batches of up to ~600 rows) so that an input runs in milliseconds.
 * Build: see the Makefile's `fuzz` target. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"

/* ------------------------------------------------------- input reader */
typedef struct fz_in {
    const uint8_t *p;
    size_t n, pos;
} fz_in;

static uint8_t in_u8(fz_in *in) { return in->pos < in->n ? in->p[in->pos++] : 0; }

static uint16_t in_u16(fz_in *in)
{
    uint16_t v = in_u8(in);
    return (uint16_t)(v | (uint16_t)in_u8(in) << 8);
}

static uint32_t in_u32(fz_in *in)
{
    uint32_t v = in_u16(in);
    return v | (uint32_t)in_u16(in) << 16;
}

static uint64_t in_u64(fz_in *in)
{
    uint64_t v = in_u32(in);
    return v | (uint64_t)in_u32(in) << 32;
}

/* A float with a bias towards the interesting ones. */
static float in_float(fz_in *in)
{
    const uint8_t k = in_u8(in);
    switch (k % 16) {
    case 0: return 0.0f;
    case 1: return -0.0f;
    case 2: return NAN;
    case 3: return INFINITY;
    case 4: return -INFINITY;
    case 5: return FLT_MAX;
    case 6: return FLT_MIN / 8.0f; /* subnormal */
    case 7: return 1e-3f;
    case 8: return 1.0f;
    case 9: return -1.0f;
    case 10: return 100.0f;
    case 11: {
        const uint32_t u = in_u32(in);
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    default: return (float)(int8_t)in_u8(in) / 16.0f;
    }
}

/* splitmix64, for filling large arrays cheaply. */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Fills count floats: smooth values, a few specials, raw input floats, or
 * large magnitudes. */
static void fill(fz_in *in, float *x, size_t count)
{
    const uint8_t mode = in_u8(in) % 6;
    uint64_t s = in_u8(in);
    const double scale = mode == 4 ? 1e4 : 2.0;
    for (size_t i = 0; i < count; i++)
        x[i] = (float)(((double)(mix(&s) >> 11) * 0x1.0p-53 - 0.5) * scale);
    if (mode == 1 || mode == 5) {
        const int k = 1 + in_u8(in) % 3;
        for (int t = 0; t < k && count; t++) {
            const size_t at = in_u16(in) % count; /* index first */
            x[at] = in_float(in);
        }
    } else if (mode == 2) {
        for (size_t i = 0; i < count && i < 16; i++)
            x[i] = in_float(in);
    }
}

/* Row counts: 0, small, a partial or several chunks, or so large that
 * n * dim * sizeof(float) overflows for any dim >= 1. */
#define N_HUGE(n) ((n) > ((size_t)1 << 40))
static size_t pick_n(fz_in *in)
{
    const uint8_t k = in_u8(in) % 24;
    if (k == 0)
        return 0;
    if (k <= 15)
        return k % 9 + 1;
    switch (k) {
    case 16: return 255 + in_u8(in) % 4;
    case 17: return 256 + in_u8(in) % 64;
    case 18: return 512 + in_u8(in) % 100;
    case 19: return SIZE_MAX;
    case 20: return SIZE_MAX / 4 + 1;
    case 21: return SIZE_MAX / 2 + 1;
    default: return 16 + in_u8(in) % 48;
    }
}

/* Small counts for calls without a batch-overflow check (the generator's
 * draws): 0 to 64. */
static size_t pick_small(fz_in *in) { return in_u8(in) % 65; }

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    FZ_CHECK(p != NULL, "out of memory for %zu bytes", bytes);
    return p;
}

/* An exactly sized float buffer (a small one when count is absurd). */
static float *fbuf(size_t count)
{
    if (count > ((size_t)1 << 26))
        count = 16;
    return xmalloc(count * sizeof(float));
}

/* rows * cols, or a marker for "huge" (no buffer of that size exists). */
static size_t cnt(size_t rows, size_t cols)
{
    if (rows != 0 && cols > ((size_t)1 << 26) / rows)
        return SIZE_MAX;
    return rows * cols;
}

/* ------------------------------------------------------------- state */
#define NS 2
typedef struct state {
    nvp_rng *rng[NS];
    nvp_base *base[NS];
    nvp_coupling *layer[NS];
    nvp_chain *chain[NS];
    nvp_adam *adam[NS];
    nvp_scaler *scaler[NS];
} state;

static fz_alloc_state g_st;
static nvp_allocator g_counting, g_bad_version, g_bad_fn;

static const nvp_allocator *pick_alloc(fz_in *in)
{
    const uint8_t k = in_u8(in) % 16;
    if (k < 9)
        return NULL;
    if (k < 13)
        return &g_counting;
    if (k < 15) {
        /* A failure a few allocations from now (in this handle or any
         * other using the counting allocator), once or from then on. */
        g_st.fail_at = atomic_load(&g_st.calls) + in_u8(in) % 12;
        g_st.fail_all = k == 14;
        return &g_counting;
    }
    return in_u8(in) & 1 ? &g_bad_version : &g_bad_fn;
}

static int alloc_invalid(const nvp_allocator *a)
{
    return a == &g_bad_version || a == &g_bad_fn;
}

static size_t slot(fz_in *in) { return in_u8(in) % NS; }

/* Status checks.  `expect` lists the codes the header allows in this
 * situation (terminated by 1); NULL: any documented code. */
#define END 1
static int g_trace; /* FZ_TRACE=1 in the environment: print every check */

static void check(int rc, const char *what, const int *expect)
{
    if (g_trace)
        fprintf(stderr, "  %s -> %d %s\n", what, rc, rc ? nvp_errmsg() : "");
    fz_check_rc(rc, what);
    if (!expect)
        return;
    for (const int *e = expect; *e != END; e++)
        if (*e == rc)
            return;
    FZ_CHECK(0, "%s returned %d (%s), which the header rules out here", what,
             rc, nvp_strerror(rc));
}

/* What the header allows for a batched call whose other arguments are all
 * valid; ENOMEM whenever the counting allocator is failing. */
static const int *batch_expect(size_t n, int extra)
{
    static int e[4];
    int k = 0;
    if (n == 0)
        e[k++] = NVP_EINVAL;
    else if (N_HUGE(n))
        e[k++] = NVP_EOVERFLOW;
    else {
        e[k++] = NVP_OK;
        e[k++] = NVP_ENOMEM;
        if (extra)
            e[k++] = extra;
    }
    e[k] = END;
    return e;
}

/* ---------------------------------------------------- chain snapshots */
/* A copy of what a failing call must not change: the parameters, the
 * clamps and the thread count. */
typedef struct snap {
    float *p;
    float *clamp;
    size_t n, k, threads;
} snap;

static void snap_take(snap *s, const nvp_chain *c)
{
    memset(s, 0, sizeof *s);
    if (!c)
        return;
    s->n = nvp_chain_num_params(c);
    s->k = nvp_chain_num_layers(c);
    s->threads = nvp_chain_threads(c);
    s->p = fbuf(s->n);
    FZ_CHECK(nvp_chain_get_params(c, s->n, s->p) == NVP_OK, "get_params");
    s->clamp = fbuf(s->k);
    for (size_t k = 0; k < s->k; k++)
        s->clamp[k] = nvp_coupling_log_scale_clamp(nvp_layer_as_coupling(nvp_chain_layer(c, k, NULL)));
}

static void snap_check(const snap *s, const nvp_chain *c, const char *what)
{
    if (!c)
        return;
    float *p = fbuf(s->n);
    FZ_CHECK(nvp_chain_get_params(c, s->n, p) == NVP_OK, "get_params");
    FZ_CHECK(memcmp(p, s->p, s->n * sizeof *p) == 0,
             "%s changed the chain's parameters", what);
    free(p);
    for (size_t k = 0; k < s->k; k++)
        FZ_CHECK(s->clamp[k] ==
                     nvp_coupling_log_scale_clamp(nvp_layer_as_coupling(nvp_chain_layer(c, k, NULL))),
                 "%s changed layer %zu's clamp", what, k);
    FZ_CHECK(s->threads == nvp_chain_threads(c), "%s changed the threads",
             what);
}

static void snap_free(snap *s)
{
    free(s->p);
    free(s->clamp);
}

/* The optimizer's whole state as bytes (NULL when o is NULL).  Saving
 * refuses only a non-finite parameter average (non-finite parameters
 * passed to a step make one); the bytes are then that average and the
 * step count. */
static unsigned char *adam_bytes(const nvp_adam *o, size_t *n)
{
    *n = 0;
    if (!o)
        return NULL;
    const int rc = nvp_adam_save_buffer(o, NULL, 0, NULL, n);
    if (rc == NVP_ENONFINITE) {
        const size_t np = nvp_adam_num_params(o);
        FZ_CHECK(nvp_adam_average_decay(o) != 0.0f,
                 "save refused a state without an average");
        float *avg = (float *)xmalloc(np * sizeof *avg + sizeof(uint64_t));
        FZ_CHECK(nvp_adam_get_average(o, np, avg) == NVP_OK, "get_average");
        int finite = 1;
        for (size_t i = 0; i < np; i++)
            finite &= isfinite(avg[i]) != 0;
        FZ_CHECK(!finite, "save refused a finite average");
        const uint64_t t = nvp_adam_num_steps(o);
        memcpy(avg + np, &t, sizeof t);
        *n = np * sizeof *avg + sizeof t;
        return (unsigned char *)avg;
    }
    FZ_CHECK(rc == NVP_OK, "size");
    unsigned char *b = xmalloc(*n);
    FZ_CHECK(nvp_adam_save_buffer(o, NULL, *n, b, n) == NVP_OK, "save");
    return b;
}

static void adam_unchanged(const nvp_adam *o, const unsigned char *b, size_t n,
                           const char *what)
{
    size_t m;
    unsigned char *now = adam_bytes(o, &m);
    FZ_CHECK(m == n && (n == 0 || memcmp(now, b, n) == 0),
             "%s changed the optimizer", what);
    free(now);
}

/* ---------------------------------------------------------- builders */
/* Hidden widths: the default, an invalid combination, an affine
 * conditioner, or 1 to 3 layers of width 1 to 9 (sometimes 0). */
typedef struct hid {
    size_t n;
    const size_t *w;
    size_t buf[NVP_MAX_HIDDEN_LAYERS + 1];
    int valid;
} hid;

static void pick_hidden(fz_in *in, hid *h)
{
    const uint8_t k = in_u8(in) % 24;
    h->valid = 1;
    if (k == 0 && in_u8(in) % 8 == 0) { /* default: 2 x 512, slow: rare */
        h->n = 0;
        h->w = NULL;
        return;
    }
    if (k <= 1) {
        h->n = 3;
        h->w = NULL;
        h->valid = 0;
        return;
    }
    if (k == 2) {
        h->n = 0;
        h->w = h->buf;
        return;
    }
    if (k == 3) { /* too many hidden layers */
        h->n = NVP_MAX_HIDDEN_LAYERS + 1;
        for (size_t i = 0; i < h->n; i++)
            h->buf[i] = 1;
        h->w = h->buf;
        h->valid = 0;
        return;
    }
    h->n = 1 + k % 3;
    for (size_t i = 0; i < h->n; i++) {
        const uint8_t b = in_u8(in);
        h->buf[i] = b % 32 == 0 ? (b & 32 ? 0 : NVP_MAX_WIDTH + 1) : 1 + b % 9;
        if (h->buf[i] == 0 || h->buf[i] > NVP_MAX_WIDTH)
            h->valid = 0;
    }
    h->w = h->buf;
}

static size_t pick_dim(fz_in *in)
{
    const uint8_t k = in_u8(in) % 16;
    if (k == 0)
        return in_u8(in) & 1 ? 0 : 1;
    if (k == 1)
        return NVP_MAX_DIM + 1;
    return 2 + k % 5; /* 2 .. 6 */
}

/* A random mask (sometimes invalid: a 2, or all equal). */
static void pick_mask(fz_in *in, unsigned char *mask, size_t dim)
{
    const uint8_t mode = in_u8(in) % 8;
    for (size_t j = 0; j < dim; j++)
        mask[j] = (unsigned char)(in_u8(in) & 1);
    if (mode == 0 && dim)
        mask[in_u8(in) % dim] = (unsigned char)(2 + in_u8(in) % 254);
    else if (mode == 1)
        memset(mask, mode & 1, dim);
}

static int mask_valid(const unsigned char *mask, size_t dim)
{
    size_t ones = 0;
    for (size_t j = 0; j < dim; j++) {
        if (mask[j] > 1)
            return 0;
        ones += mask[j];
    }
    return ones > 0 && ones < dim;
}

/* A chain from fresh layers with random masks (or the alternating
 * convenience constructor). */
static void op_chain_create(state *st, fz_in *in)
{
    const size_t s = slot(in);
    const int alternating = in_u8(in) & 1;
    const size_t dim = pick_dim(in);
    size_t K = in_u8(in) % 5; /* 0 is invalid */
    hid h;
    pick_hidden(in, &h);
    if (!h.w && h.n == 0 && K > 1)
        K = 1; /* the default conditioner has 267k parameters a layer */
    const unsigned flags = (unsigned[]){0, 0, NVP_INIT_ZERO_OUTPUT, 2}[in_u8(in) % 4];
    nvp_rng *rng = st->rng[slot(in)];
    const nvp_allocator *a = pick_alloc(in);
    nvp_chain *c = (nvp_chain *)&g_st;
    int rc;
    if (alternating) {
        fz_arm();
        rc = nvp_chain_create_alternating(&c, dim, K, h.n, h.w, flags, rng, a);
        const int ok = dim >= 2 && dim <= NVP_MAX_DIM && K >= 1 && h.valid &&
                       flags <= 1 && rng && !alloc_invalid(a);
        const int e_ok[] = {NVP_OK, NVP_ENOMEM, END};
        /* An allocation may fail before the invalid argument is seen. */
        const int e_bad[] = {NVP_EINVAL, NVP_ENOMEM, END};
        check(rc, "nvp_chain_create_alternating", ok ? e_ok : e_bad);
        FZ_CHECK(ok || rc != NVP_OK, "invalid arguments accepted");
    } else {
        /* Layers built here, possibly with different dims, one repeated,
         * or a NULL entry; the base possibly of another dim. */
        nvp_coupling *ls[5] = {0};
        size_t made = 0;
        const size_t base_dim = in_u8(in) % 8 == 0 ? dim + 1 : dim;
        for (size_t k = 0; k < K; k++) {
            size_t d = in_u8(in) % 16 == 0 ? dim + 1 : dim;
            if (d < 2 || d > 8)
                continue;
            unsigned char mask[16];
            pick_mask(in, mask, d);
            fz_arm();
            rc = nvp_coupling_create(&ls[made], d, mask, h.n, h.w, flags, rng,
                                     a);
            check(rc, "nvp_coupling_create", NULL);
            if (rc == NVP_OK)
                made++;
            else
                FZ_CHECK(ls[made] == NULL, "failed create left *out set");
        }
        nvp_base *base = NULL;
        if (base_dim >= 1 && base_dim <= NVP_MAX_DIM) {
            rc = nvp_base_create_normal(&base, base_dim, a);
            check(rc, "nvp_base_create_normal", NULL);
        }
        size_t n = made;
        const uint8_t twist = in_u8(in) % 8;
        nvp_coupling *arr[6];
        memcpy(arr, ls, sizeof ls);
        if (twist == 0 && n >= 2)
            arr[n - 1] = arr[0]; /* the same layer twice */
        else if (twist == 1 && n >= 1)
            arr[in_u8(in) % n] = NULL;
        else if (twist == 2 && st->chain[0] && n >= 1)
            /* a layer that already belongs to a chain */
            arr[0] = (nvp_coupling *)nvp_layer_as_coupling(nvp_chain_layer(st->chain[0], 0, NULL));
        fz_arm();
        rc = nvp_chain_create(&c, base, n, in_u8(in) % 16 ? arr : NULL, a);
        check(rc, "nvp_chain_create", NULL);
        if (rc != NVP_OK) {
            /* The caller still owns them. */
            for (size_t k = 0; k < made; k++)
                nvp_coupling_free(ls[k]);
            nvp_base_free(base);
        }
    }
    if (rc == NVP_OK) {
        FZ_CHECK(c != NULL && c != (nvp_chain *)&g_st, "no chain");
        nvp_chain_free(st->chain[s]);
        st->chain[s] = c;
        /* The default thread count is the number of CPUs: keep it small. */
        rc = nvp_chain_set_threads(c, 1 + in_u8(in) % 3);
        check(rc, "nvp_chain_set_threads", NULL);
    } else {
        FZ_CHECK(c == NULL, "failed create left *out set");
    }
}

/* ------------------------------------------------------ chain calls */
enum { EV_LOG_PROB, EV_FORWARD, EV_INVERSE, EV_SAMPLE, EV_TRACE, EV_NLL, EV_COUNT };
static const char *const ev_name[EV_COUNT] = {
    "nvp_chain_log_prob", "nvp_chain_forward", "nvp_chain_inverse",
    "nvp_chain_sample", "nvp_chain_forward_trace", "nvp_chain_nll_grad"};

/* Runs one evaluation; out/aux are exactly sized by the caller. */
static int run_eval(nvp_chain *c, int mode, nvp_rng *rng, uint64_t seed,
                    size_t n, const float *in, float *out, float *aux)
{
    switch (mode) {
    case EV_LOG_PROB: return nvp_chain_log_prob(c, n, in, out);
    case EV_FORWARD: return nvp_chain_forward(c, n, in, out, aux);
    case EV_INVERSE: return nvp_chain_inverse(c, n, in, out, aux);
    case EV_SAMPLE:
        if (rng)
            nvp_rng_seed(rng, seed);
        return nvp_chain_sample(c, rng, n, out, aux);
    case EV_TRACE: return nvp_chain_forward_trace(c, n, in, out);
    default: return nvp_chain_nll_grad(c, n, in, out, aux);
    }
}

static int row_finite(const float *x, size_t dim)
{
    for (size_t j = 0; j < dim; j++)
        if (!isfinite(x[j]))
            return 0;
    return 1;
}

static void op_chain_eval(state *st, fz_in *in)
{
    nvp_chain *c = st->chain[slot(in)];
    const int mode = in_u8(in) % EV_COUNT;
    nvp_rng *rng = st->rng[slot(in)];
    const uint64_t seed = in_u8(in);
    size_t n = pick_n(in);
    const size_t dim = c ? nvp_chain_dim(c) : 3;
    const size_t K = c ? nvp_chain_num_layers(c) : 1;
    const size_t P = c ? nvp_chain_num_params(c) : 1;
    if (P > 4096 && n > 4 && !N_HUGE(n))
        n = 4; /* the default conditioner is big: keep batches tiny */
    const size_t in_count = cnt(n, dim);
    size_t out_count, aux_count;
    switch (mode) {
    case EV_LOG_PROB: out_count = n; aux_count = 0; break;
    case EV_TRACE: out_count = cnt(n, dim * (K + 1)); aux_count = 0; break;
    case EV_NLL: out_count = P; aux_count = 1; break;
    default: out_count = in_count; aux_count = n;
    }
    float *x = fbuf(in_count);
    if (in_count != SIZE_MAX)
        fill(in, x, in_count);
    float *out = fbuf(out_count), *aux = fbuf(aux_count);
    const uint8_t nulls = in_u8(in) % 16;
    const float *pin = nulls == 0 ? NULL : x;
    float *pout = nulls == 1 ? NULL : out;
    float *paux = nulls == 2 || aux_count == 0 ? NULL : aux;
    nvp_rng *prng = mode == EV_SAMPLE && nulls == 3 ? NULL : rng;
    /* sample takes no input: y is its output. */
    int valid = c && pout && (mode == EV_SAMPLE ? prng != NULL : pin != NULL);

    snap sn;
    snap_take(&sn, c);
    fz_arm();
    int rc = run_eval(c, mode, prng, seed, n, pin, pout, paux);
    int extra = 0;
    if (mode == EV_NLL) {
        extra = NVP_ENONFINITE;
        if (valid && !N_HUGE(n) && n > 0) {
            /* Non-finite data must be refused. */
            int finite = 1;
            for (size_t i = 0; i < n && finite; i++)
                finite = row_finite(x + i * dim, dim);
            if (!finite) {
                const int e[] = {NVP_ENONFINITE, END};
                check(rc, ev_name[mode], e);
            }
        }
    }
    if (mode == EV_SAMPLE && !prng) {
        const int e[] = {NVP_EINVAL, END};
        check(rc, ev_name[mode], e);
        valid = 0;
    }
    check(rc, ev_name[mode], valid ? batch_expect(n, extra) : NULL);
    if (!valid)
        FZ_CHECK(rc != NVP_OK, "%s accepted a NULL argument", ev_name[mode]);
    snap_check(&sn, c, ev_name[mode]); /* const calls never change it */

    if (rc == NVP_OK) {
        if (mode == EV_LOG_PROB)
            for (size_t i = 0; i < n; i++)
                if (!row_finite(x + i * dim, dim))
                    FZ_CHECK(isnan(out[i]), "row %zu holds a non-finite "
                             "value but log_prob is %g", i, (double)out[i]);
        if (mode == EV_TRACE)
            FZ_CHECK(memcmp(out, x, in_count * sizeof *x) == 0,
                     "forward_trace: block 0 is not a copy of x");

        /* forward_trace may take x == stages (x in the first block). */
        if (mode == EV_TRACE && in_u8(in) % 2) {
            float *st2 = fbuf(out_count);
            memcpy(st2, x, in_count * sizeof *st2);
            int rc2 = nvp_chain_forward_trace(c, n, st2, st2);
            FZ_CHECK(rc2 == NVP_OK || rc2 == NVP_ENOMEM, "trace in place: %d",
                     rc2);
            if (rc2 == NVP_OK)
                FZ_CHECK(memcmp(st2, out, out_count * sizeof *st2) == 0,
                         "forward_trace with x == stages differs");
            free(st2);
        }

        /* In place: forward and inverse may take the same pointer. */
        if ((mode == EV_FORWARD || mode == EV_INVERSE) && in_u8(in) % 2) {
            float *y = fbuf(in_count), *l2 = fbuf(n);
            memcpy(y, x, in_count * sizeof *y);
            int rc2 = run_eval(c, mode, NULL, 0, n, y, y, paux ? l2 : NULL);
            FZ_CHECK(rc2 == NVP_OK || rc2 == NVP_ENOMEM, "in place: %d", rc2);
            if (rc2 == NVP_OK) {
                FZ_CHECK(memcmp(y, out, in_count * sizeof *y) == 0,
                         "%s in place differs from out of place",
                         ev_name[mode]);
                if (paux)
                    FZ_CHECK(memcmp(l2, aux, n * sizeof *l2) == 0,
                             "%s in place: log-det differs", ev_name[mode]);
            }
            free(y);
            free(l2);
        }

        /* The same call with another thread count gives the same bits. */
        if (in_u8(in) % 4 == 0) {
            const size_t t0 = nvp_chain_threads(c), t1 = 1 + in_u8(in) % 3;
            if (nvp_chain_set_threads(c, t1) == NVP_OK) {
                float *o2 = fbuf(out_count), *a2 = fbuf(aux_count);
                int rc2 = run_eval(c, mode, prng, seed, n, pin, o2,
                                   paux ? a2 : NULL);
                FZ_CHECK(rc2 == NVP_OK || rc2 == NVP_ENOMEM,
                         "rerun with %zu threads: %d", t1, rc2);
                if (rc2 == NVP_OK) {
                    FZ_CHECK(memcmp(o2, out, out_count * sizeof *o2) == 0,
                             "%s with %zu threads differs from %zu threads",
                             ev_name[mode], t1, t0);
                    if (paux)
                        FZ_CHECK(memcmp(a2, aux, aux_count * sizeof *a2) == 0,
                                 "%s: second output differs with %zu threads",
                                 ev_name[mode], t1);
                }
                free(o2);
                free(a2);
                rc2 = nvp_chain_set_threads(c, t0);
                check(rc2, "nvp_chain_set_threads (restore)", NULL);
            }
        }
    }
    snap_free(&sn);
    free(x);
    free(out);
    free(aux);
}

static void op_chain_params(state *st, fz_in *in)
{
    nvp_chain *c = st->chain[slot(in)];
    const size_t P = c ? nvp_chain_num_params(c) : 0;
    const uint8_t what = in_u8(in) % 8;
    size_t count = P;
    const uint8_t off = in_u8(in) % 8;
    if (off == 0)
        count = P + 1;
    else if (off == 1 && P)
        count = P - 1;
    float *buf = fbuf(count);
    const int null_ptr = in_u8(in) % 16 == 0;
    const int valid = c && !null_ptr;
    snap sn;
    snap_take(&sn, c);
    fz_arm();
    if (what == 0) {
        int rc = nvp_chain_get_params(c, count, null_ptr ? NULL : buf);
        const int e_ok[] = {NVP_OK, END}, e_dim[] = {NVP_EDIM, END};
        check(rc, "nvp_chain_get_params",
              valid ? (count == P ? e_ok : e_dim) : NULL);
        FZ_CHECK(valid || rc != NVP_OK, "get_params accepted NULL");
    } else if (what <= 3) {
        fill(in, buf, count);
        int finite = 1;
        for (size_t i = 0; i < count; i++)
            finite &= isfinite(buf[i]) != 0;
        int rc = nvp_chain_set_params(c, count, null_ptr ? NULL : buf);
        const int e_ok[] = {NVP_OK, END}, e_dim[] = {NVP_EDIM, END},
                  e_nf[] = {NVP_ENONFINITE, END};
        check(rc, "nvp_chain_set_params",
              valid ? (count != P ? e_dim : finite ? e_ok : e_nf) : NULL);
        if (rc != NVP_OK)
            snap_check(&sn, c, "a failed nvp_chain_set_params");
        else
            FZ_CHECK(memcmp(nvp_chain_params(c), buf, P * sizeof *buf) == 0,
                     "set_params did not set");
    } else if (what == 4 && c) {
        /* Writing through the parameter pointer (finite values). */
        float *p = nvp_chain_params(c);
        FZ_CHECK(p != NULL, "nvp_chain_params is NULL");
        if (P) {
            const size_t i = in_u16(in) % P;
            p[i] = (float)(int8_t)in_u8(in) / 32.0f;
        }
        /* set_params from the chain's own vector (overlapping). */
        int rc = nvp_chain_set_params(c, P, p);
        check(rc, "nvp_chain_set_params (own vector)", NULL);
        FZ_CHECK(rc == NVP_OK, "set_params from its own vector: %d", rc);
    } else {
        /* Structure queries. */
        FZ_CHECK(nvp_chain_params(NULL) == NULL && nvp_chain_dim(NULL) == 0 &&
                     nvp_chain_num_layers(NULL) == 0 &&
                     nvp_chain_num_params(NULL) == 0 &&
                     nvp_chain_threads(NULL) == 0 &&
                     nvp_chain_base(NULL) == NULL &&
                     nvp_layer_as_coupling(nvp_chain_layer(NULL, 0, NULL)) == NULL,
                 "queries on NULL");
        if (c) {
            size_t total = 0;
            const size_t K = nvp_chain_num_layers(c);
            for (size_t k = 0; k < K; k++) {
                size_t o = 0;
                const nvp_coupling *l = nvp_layer_as_coupling(nvp_chain_layer(c, k, &o));
                FZ_CHECK(l && o == total, "layer %zu offset %zu vs %zu", k, o,
                         total);
                FZ_CHECK(nvp_coupling_dim(l) == nvp_chain_dim(c), "layer dim");
                total += nvp_coupling_num_params(l);
            }
            FZ_CHECK(total == P, "sum of layer params %zu vs %zu", total, P);
            FZ_CHECK(nvp_layer_as_coupling(nvp_chain_layer(c, K + in_u8(in), NULL)) == NULL,
                     "out-of-range layer");
            FZ_CHECK(nvp_base_dim(nvp_chain_base(c)) == nvp_chain_dim(c),
                     "base dim");
        }
    }
    snap_free(&sn);
    free(buf);
}

static void op_chain_settings(state *st, fz_in *in)
{
    nvp_chain *c = st->chain[slot(in)];
    snap sn;
    snap_take(&sn, c);
    fz_arm();
    if (in_u8(in) & 1) {
        const float b = in_float(in);
        int rc = nvp_chain_set_log_scale_clamp(c, b);
        const int ok = isfinite(b) && b >= 0.0f;
        const int e_ok[] = {NVP_OK, END}, e_bad[] = {NVP_EINVAL, END};
        check(rc, "nvp_chain_set_log_scale_clamp", c ? (ok ? e_ok : e_bad) : e_bad);
        if (rc != NVP_OK)
            snap_check(&sn, c, "a failed set_log_scale_clamp");
        else
            for (size_t k = 0; k < nvp_chain_num_layers(c); k++)
                FZ_CHECK(nvp_coupling_log_scale_clamp(nvp_layer_as_coupling(nvp_chain_layer(c, k, NULL))) == b,
                         "clamp not set on layer %zu", k);
    } else {
        const uint8_t k = in_u8(in) % 8;
        const size_t t = k == 0 ? NVP_MAX_THREADS + 1 : 1 + k % 3;
        int rc = nvp_chain_set_threads(c, t);
        const int e_ok[] = {NVP_OK, NVP_ENOMEM, NVP_ETHREAD, END},
                  e_bad[] = {NVP_EINVAL, END};
        check(rc, "nvp_chain_set_threads",
              c && t <= NVP_MAX_THREADS ? e_ok : e_bad);
        if (rc != NVP_OK)
            snap_check(&sn, c, "a failed set_threads");
        else
            FZ_CHECK(nvp_chain_threads(c) == t, "threads %zu, set %zu",
                     nvp_chain_threads(c), t);
    }
    snap_free(&sn);
}

static void op_train(state *st, fz_in *in)
{
    nvp_chain *c = st->chain[slot(in)];
    nvp_adam *o = st->adam[slot(in)];
    nvp_rng *rng = st->rng[slot(in)];
    size_t n_data = pick_n(in), batch = pick_n(in);
    const size_t dim = c ? nvp_chain_dim(c) : 2;
    if (c && nvp_chain_num_params(c) > 4096 && !N_HUGE(batch) && batch > 4)
        batch = 4;
    if (!N_HUGE(n_data) && n_data > 64)
        n_data = 64;
    const size_t count = cnt(n_data, dim);
    float *data = fbuf(count);
    if (count != SIZE_MAX)
        fill(in, data, count);
    const int null_data = in_u8(in) % 16 == 0;
    snap sn;
    snap_take(&sn, c);
    size_t ob_n;
    unsigned char *ob = adam_bytes(o, &ob_n);
    float loss = -1.0f;
    const int valid = c && o && rng && !null_data &&
                      nvp_adam_num_params(o) == nvp_chain_num_params(c);
    /* Predict the step: the rows are those nvp_rng_index draws from the
     * same state, and the loss the nll of those rows before the step. */
    const int predict = valid && n_data > 0 && batch > 0 && !N_HUGE(n_data) &&
                        !N_HUGE(batch) && in_u8(in) % 2;
    const uint64_t seed = in_u64(in);
    float pred_loss = NAN, after = NAN;
    int pred_rc = NVP_OK;
    if (predict) {
        nvp_rng *twin;
        FZ_CHECK(nvp_rng_create(&twin, seed, NULL) == NVP_OK, "rng");
        uint64_t *idx = xmalloc(batch * sizeof *idx);
        FZ_CHECK(nvp_rng_index(twin, batch, n_data, idx) == NVP_OK, "index");
        FZ_CHECK(nvp_rng_uniform(twin, 1, &after) == NVP_OK, "uniform");
        const size_t P = nvp_chain_num_params(c);
        float *rows = fbuf(batch * dim), *g = fbuf(P);
        for (size_t i = 0; i < batch; i++)
            memcpy(rows + i * dim, data + idx[i] * dim, dim * sizeof *rows);
        pred_rc = nvp_chain_nll_grad(c, batch, rows, g, &pred_loss);
        /* Adam refuses entries whose square would overflow its moments. */
        for (size_t i = 0; pred_rc == NVP_OK && i < P; i++)
            if (!(fabsf(g[i]) < 1e18f))
                pred_rc = NVP_ENONFINITE;
        free(idx);
        free(rows);
        free(g);
        nvp_rng_free(twin);
        nvp_rng_seed(rng, seed);
    }
    fz_arm();
    int rc = nvp_chain_train_step(c, o, rng, n_data, null_data ? NULL : data,
                                  batch, predict || in_u8(in) & 1 ? &loss : NULL);
    if (predict && pred_rc != NVP_ENOMEM && rc != NVP_ENOMEM) {
        FZ_CHECK(rc == pred_rc, "train_step returned %d, nll_grad on the "
                 "rows nvp_rng_index draws %d", rc, pred_rc);
        if (rc == NVP_OK || rc == NVP_ENONFINITE)
            FZ_CHECK(memcmp(&loss, &pred_loss, sizeof loss) == 0,
                     "train_step's loss %.9g, nll of the predicted rows %.9g",
                     (double)loss, (double)pred_loss);
        float u;
        FZ_CHECK(nvp_rng_uniform(rng, 1, &u) == NVP_OK, "uniform");
        FZ_CHECK(u == after, "train_step left the generator elsewhere than "
                 "nvp_rng_index(batch, n_data) does");
    }
    if (valid) {
        /* The first size error wins: n_data, then batch. */
        const int *e = batch_expect(n_data, NVP_ENONFINITE);
        if (e[0] == NVP_OK)
            e = batch_expect(batch, NVP_ENONFINITE);
        check(rc, "nvp_chain_train_step", e);
    } else {
        check(rc, "nvp_chain_train_step", NULL);
        FZ_CHECK(rc != NVP_OK, "train_step accepted invalid arguments");
        if (c && o && rng && !null_data) {
            const int e[] = {NVP_EDIM, END};
            check(rc, "nvp_chain_train_step (mismatched optimizer)", e);
        }
    }
    if (rc != NVP_OK) {
        snap_check(&sn, c, "a failed nvp_chain_train_step");
        adam_unchanged(o, ob, ob_n, "a failed nvp_chain_train_step");
    } else {
        FZ_CHECK(nvp_adam_num_steps(o) >= 1, "no step counted");
    }
    free(ob);
    snap_free(&sn);
    free(data);
}

/* --------------------------------------------------------- optimizer */
static void op_adam(state *st, fz_in *in)
{
    const size_t s = slot(in);
    nvp_adam *o = st->adam[s];
    const uint8_t what = in_u8(in) % 12;
    size_t ob_n;
    unsigned char *ob = adam_bytes(o, &ob_n);
    const int e_ok[] = {NVP_OK, END}, e_inval[] = {NVP_EINVAL, END};
    fz_arm();
    switch (what) {
    case 0:
    case 1: { /* create */
        const uint8_t k = in_u8(in) % 8;
        nvp_chain *c = st->chain[slot(in)];
        size_t n;
        if (k < 4 && c)
            n = nvp_chain_num_params(c);
        else if (k == 4)
            n = 0;
        else if (k == 5)
            n = in_u8(in) & 1 ? SIZE_MAX : (size_t)NVP_MAX_PARAMS + 1;
        else
            n = 1 + in_u8(in) % 16;
        const nvp_allocator *a = pick_alloc(in);
        nvp_adam *fresh = (nvp_adam *)&g_st;
        int rc = nvp_adam_create(in_u8(in) % 32 ? &fresh : NULL, n, a);
        const int e_ok2[] = {NVP_OK, NVP_ENOMEM, END};
        check(rc, "nvp_adam_create", NULL);
        if (n >= 1 && n <= NVP_MAX_PARAMS && !alloc_invalid(a) &&
            fresh != (nvp_adam *)&g_st)
            check(rc, "nvp_adam_create", e_ok2);
        if (n == 0 || n > NVP_MAX_PARAMS || alloc_invalid(a))
            check(rc, "nvp_adam_create", e_inval);
        if (rc == NVP_OK) {
            FZ_CHECK(nvp_adam_num_params(fresh) == n && nvp_adam_num_steps(fresh) == 0,
                     "fresh optimizer");
            nvp_adam_free(st->adam[s]);
            st->adam[s] = fresh;
        } else if (fresh != (nvp_adam *)&g_st) {
            FZ_CHECK(fresh == NULL, "failed create left *out set");
        }
        free(ob);
        return;
    }
    case 2: {
        const float lr = in_float(in);
        /* The first step, lr / (1 - b1), must be a float. */
        const int ok = o && isfinite(lr) && lr > 0 &&
                       (double)lr / (1.0 - (double)nvp_adam_beta1(o)) <=
                           (double)FLT_MAX;
        int rc = nvp_adam_set_lr(o, lr);
        check(rc, "nvp_adam_set_lr", ok ? e_ok : e_inval);
        if (rc == NVP_OK)
            FZ_CHECK(nvp_adam_lr(o) == lr, "lr not set");
        break;
    }
    case 3: {
        const float b1 = in_float(in), b2 = in_float(in);
        const int ok = b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1 && o &&
                       (double)nvp_adam_lr(o) / (1.0 - (double)b1) <=
                           (double)FLT_MAX;
        int rc = nvp_adam_set_betas(o, b1, b2);
        check(rc, "nvp_adam_set_betas", o ? (ok ? e_ok : e_inval) : e_inval);
        break;
    }
    case 4: {
        const float eps = in_float(in);
        int rc = nvp_adam_set_eps(o, eps);
        check(rc, "nvp_adam_set_eps",
              o ? (isfinite(eps) && eps > 0 ? e_ok : e_inval) : e_inval);
        break;
    }
    case 5: {
        int rc = nvp_adam_reset(o);
        check(rc, "nvp_adam_reset", o ? e_ok : e_inval);
        if (rc == NVP_OK)
            FZ_CHECK(nvp_adam_num_steps(o) == 0, "reset kept the steps");
        break;
    }
    case 6:
    case 7: {
        const size_t N = o ? nvp_adam_num_params(o) : 4;
        size_t n = N;
        const uint8_t k = in_u8(in) % 8;
        if (k == 0)
            n = N + 1;
        else if (k == 1)
            n = N - 1;
        float *p = fbuf(n), *g = fbuf(n);
        fill(in, p, n);
        fill(in, g, n);
        /* "finite" here means acceptable to Adam: finite and below the
         * magnitude whose square would overflow the second moment. */
        int finite = 1, pfinite = 1;
        for (size_t i = 0; i < n; i++) {
            finite &= fabsf(g[i]) < 1e18f;
            pfinite &= isfinite(p[i]);
        }
        float *p0 = fbuf(n);
        memcpy(p0, p, n * sizeof *p);
        const uint64_t t = nvp_adam_num_steps(o);
        int rc = nvp_adam_step(o, n, p, in_u8(in) % 16 ? g : NULL);
        check(rc, "nvp_adam_step", NULL);
        if (rc == NVP_OK) {
            FZ_CHECK(nvp_adam_num_steps(o) == t + 1, "step not counted");
            for (size_t i = 0; i < n; i++)
                FZ_CHECK(isfinite(p[i]), "a step returned OK and left "
                                         "params[%zu] = %g",
                         i, (double)p[i]);
        } else if (o && n == N && finite && pfinite) {
            /* Valid arguments: refused only when the result would not be
             * finite, and then nothing changed. */
            FZ_CHECK(rc == NVP_EINVAL || rc == NVP_ENONFINITE,
                     "a valid step failed: %d", rc);
            if (rc == NVP_ENONFINITE)
                FZ_CHECK(memcmp(p, p0, n * sizeof *p) == 0 &&
                             nvp_adam_num_steps(o) == t,
                         "a refused step changed the parameters or count");
        } else if (o && n != N && finite)
            FZ_CHECK(rc == NVP_EDIM || rc == NVP_EINVAL, "n mismatch: %d", rc);
        if (o && n == N && (!finite || !pfinite))
            FZ_CHECK(rc == NVP_ENONFINITE || rc == NVP_EINVAL,
                     "a non-finite or overflowing input was accepted: %d",
                     rc);
        free(p0);
        free(p);
        free(g);
        break;
    }
    case 8: {
        nvp_adam_free(st->adam[s]);
        st->adam[s] = NULL;
        free(ob);
        return;
    }
    case 9: { /* the parameter average: on, restarted or off */
        const size_t N = o ? nvp_adam_num_params(o) : 4;
        const uint8_t k = in_u8(in) % 8;
        const size_t n = k == 0 ? N + 1 : k == 1 ? N - 1 : N;
        const float decay = k == 2 ? 0.0f : k == 3 ? 0.999f : in_float(in);
        float *p = fbuf(n);
        fill(in, p, n);
        int finite = 1;
        for (size_t i = 0; i < n; i++)
            finite &= isfinite(p[i]) != 0;
        const float *params = in_u8(in) % 16 ? p : NULL;
        int rc = nvp_adam_set_average(o, decay, n, params);
        const int e_nf[] = {NVP_ENONFINITE, END}, e_dim[] = {NVP_EDIM, END},
                  e_mem[] = {NVP_OK, NVP_ENOMEM, END};
        const int *e = !o || !(decay >= 0.0f && decay < 1.0f) ? e_inval
                       : decay == 0.0f                        ? e_ok
                       : !params                              ? e_inval
                       : n != N                               ? e_dim
                       : !finite                              ? e_nf
                                                              : e_mem;
        check(rc, "nvp_adam_set_average", e);
        if (rc == NVP_OK && decay != 0.0f) {
            float *got = fbuf(N);
            FZ_CHECK(nvp_adam_get_average(o, N, got) == NVP_OK &&
                         memcmp(got, p, N * sizeof *got) == 0 &&
                         nvp_adam_average_decay(o) == decay,
                     "the average does not start at the parameters");
            free(got);
        } else if (rc == NVP_OK) {
            FZ_CHECK(nvp_adam_average_decay(o) == 0.0f, "averaging still on");
        } else {
            adam_unchanged(o, ob, ob_n, "a failed nvp_adam_set_average");
        }
        free(p);
        break;
    }
    case 10: { /* copying the average out */
        const size_t N = o ? nvp_adam_num_params(o) : 4;
        const uint8_t k = in_u8(in) % 8;
        const size_t n = k == 0 ? N + 1 : k == 1 ? N - 1 : N;
        float *dst = fbuf(n);
        int rc = nvp_adam_get_average(o, n, k == 2 ? NULL : dst);
        const int on = o && nvp_adam_average_decay(o) != 0.0f;
        const int e_dim[] = {NVP_EDIM, END};
        check(rc, "nvp_adam_get_average",
              !o || k == 2 || !on ? e_inval : n != N ? e_dim : e_ok);
        adam_unchanged(o, ob, ob_n, "nvp_adam_get_average");
        free(dst);
        break;
    }
    default: { /* gradient-norm clipping, then the getters */
        const uint8_t k = in_u8(in) % 4;
        const float limit = k == 0 ? 0.0f : k == 1 ? 1.0f : in_float(in);
        int rc = nvp_adam_set_clip_norm(o, limit);
        const int e_mem[] = {NVP_OK, NVP_ENOMEM, END};
        check(rc, "nvp_adam_set_clip_norm",
              !o || !(isfinite(limit) && limit >= 0.0f) ? e_inval
              : limit == 0.0f                            ? e_ok
                                                         : e_mem);
        if (rc == NVP_OK)
            FZ_CHECK(nvp_adam_clip_norm(o) == limit, "clip limit %g, set %g",
                     (double)nvp_adam_clip_norm(o), (double)limit);
        else
            adam_unchanged(o, ob, ob_n, "a failed nvp_adam_set_clip_norm");
        const float last = nvp_adam_last_grad_norm(o);
        FZ_CHECK(isfinite(last) && last >= 0.0f, "last gradient norm %g",
                 (double)last);
        const char *m = nvp_adam_errmsg(o);
        FZ_CHECK(m != NULL, "adam errmsg NULL");
        (void)nvp_adam_lr(o);
        (void)nvp_adam_num_params(o);
        (void)nvp_adam_num_steps(o);
        break;
    }
    }
    /* Whatever failed left the optimizer as it was. */
    (void)ob_n;
    free(ob);
}

/* ------------------------------------------------------------ scaler */
static void op_scaler(state *st, fz_in *in)
{
    const size_t s = slot(in);
    nvp_scaler *sc = st->scaler[s];
    const size_t dim = sc ? nvp_scaler_dim(sc) : 2;
    const uint8_t what = in_u8(in) % 9;
    float before[2 * 8];
    if (sc && dim <= 8)
        nvp_scaler_get(sc, dim, before, before + dim);
    const int e_ok[] = {NVP_OK, END}, e_inval[] = {NVP_EINVAL, END},
              e_dim[] = {NVP_EDIM, END};
    int rc = NVP_OK, may_change = 0;
    fz_arm();
    switch (what) {
    case 0: { /* create */
        size_t d = pick_dim(in);
        if (d == 0 && in_u8(in) & 1)
            d = 1;
        const nvp_allocator *a = pick_alloc(in);
        nvp_scaler *fresh = (nvp_scaler *)&g_st;
        rc = nvp_scaler_create(&fresh, d, a);
        check(rc, "nvp_scaler_create", NULL);
        if (d == 0 || d > NVP_MAX_DIM || alloc_invalid(a))
            check(rc, "nvp_scaler_create", e_inval);
        if (rc == NVP_OK) {
            nvp_scaler_free(st->scaler[s]);
            st->scaler[s] = fresh;
            FZ_CHECK(nvp_scaler_log_det(fresh) == 0.0, "fresh log_det");
        } else {
            FZ_CHECK(fresh == NULL, "failed create left *out set");
        }
        return;
    }
    case 1: {
        nvp_scaler_free(st->scaler[s]);
        st->scaler[s] = NULL;
        return;
    }
    case 2: { /* fit */
        const size_t n = pick_n(in);
        const size_t count = cnt(n, dim);
        float *x = fbuf(count);
        int finite = 1;
        if (count != SIZE_MAX) {
            fill(in, x, count);
            for (size_t i = 0; i < count; i++)
                finite &= isfinite(x[i]) != 0;
        }
        rc = nvp_scaler_fit(sc, n, x);
        if (sc)
            check(rc, "nvp_scaler_fit",
                  batch_expect(n, finite ? 0 : NVP_ENONFINITE));
        else
            check(rc, "nvp_scaler_fit", e_inval);
        if (sc && finite && n && !N_HUGE(n))
            FZ_CHECK(rc == NVP_OK, "fit on finite data: %d", rc);
        if (sc && !finite && n && !N_HUGE(n))
            FZ_CHECK(rc == NVP_ENONFINITE, "fit on non-finite data: %d", rc);
        may_change = 1;
        if (rc == NVP_OK && dim <= 8) {
            float m[8], sd[8];
            FZ_CHECK(nvp_scaler_get(sc, dim, m, sd) == NVP_OK, "get");
            for (size_t j = 0; j < dim; j++)
                FZ_CHECK(isfinite(m[j]) && isfinite(sd[j]) && sd[j] > 0.0f,
                         "fit gave axis %zu mean %g sd %g", j, (double)m[j],
                         (double)sd[j]);
        }
        free(x);
        break;
    }
    case 3:
    case 4: { /* transform / inverse, sometimes in place */
        const size_t n = pick_n(in);
        const size_t count = cnt(n, dim);
        float *x = fbuf(count), *z = fbuf(count);
        if (count != SIZE_MAX)
            fill(in, x, count);
        const int inplace = in_u8(in) & 1;
        if (what == 3)
            rc = nvp_scaler_transform(sc, n, x, inplace ? x : z);
        else
            rc = nvp_scaler_inverse_transform(sc, n, x, inplace ? x : z);
        check(rc, "nvp_scaler_(inverse_)transform",
              sc ? batch_expect(n, 0) : e_inval);
        free(x);
        free(z);
        break;
    }
    case 5: { /* get */
        const size_t d = in_u8(in) % 8 == 0 ? dim + 1 : dim;
        float *m = fbuf(d), *sd = fbuf(d);
        const uint8_t k = in_u8(in) % 4;
        rc = nvp_scaler_get(sc, d, k == 1 ? NULL : m, k == 2 ? NULL : sd);
        check(rc, "nvp_scaler_get", sc ? (d == dim ? e_ok : e_dim) : e_inval);
        free(m);
        free(sd);
        break;
    }
    case 6: { /* set */
        const size_t d = in_u8(in) % 8 == 0 ? dim + 1 : dim;
        float *m = fbuf(d), *sd = fbuf(d);
        for (size_t j = 0; j < d; j++) {
            m[j] = in_float(in);
            sd[j] = in_float(in);
        }
        int ok = 1;
        for (size_t j = 0; j < d; j++)
            ok &= isfinite(m[j]) && isfinite(sd[j]) && sd[j] > 0.0f;
        const uint8_t k = in_u8(in) % 8;
        rc = nvp_scaler_set(sc, d, k == 1 ? NULL : m, k == 2 ? NULL : sd);
        check(rc, "nvp_scaler_set", NULL);
        if (sc && k > 2)
            check(rc, "nvp_scaler_set",
                  d != dim ? e_dim : ok ? e_ok : e_inval);
        may_change = 1;
        free(m);
        free(sd);
        break;
    }
    default: {
        FZ_CHECK(nvp_scaler_errmsg(sc) != NULL, "errmsg");
        const double ld = nvp_scaler_log_det(sc);
        FZ_CHECK(!isnan(ld), "log_det NaN");
        (void)nvp_scaler_dim(sc);
        break;
    }
    }
    /* A failed call leaves the scaler unchanged; other calls than fit and
     * set never change it. */
    if (sc && dim <= 8 && (rc != NVP_OK || !may_change)) {
        float now[2 * 8];
        FZ_CHECK(nvp_scaler_get(sc, dim, now, now + dim) == NVP_OK, "get");
        FZ_CHECK(memcmp(now, before, 2 * dim * sizeof *now) == 0,
                 "the scaler changed (call %u, rc %d)", (unsigned)what, rc);
    }
}

/* -------------------------------------------------- saving and loading */
static void op_save_load_chain(state *st, fz_in *in)
{
    nvp_chain *c = st->chain[slot(in)];
    const uint8_t sk = in_u8(in) % 4;
    nvp_scaler *sc = sk < 2 ? NULL : st->scaler[sk - 2];
    const int scaler_ok = !sc || (c && nvp_scaler_dim(sc) == nvp_chain_dim(c));
    /* Saving refuses non-finite parameters (a huge step size makes them),
     * which the loader would refuse. */
    int params_ok = 1;
    if (c)
        for (size_t i = 0; i < nvp_chain_num_params(c); i++)
            params_ok &= isfinite(nvp_chain_params(c)[i]) != 0;
    const uint8_t mode = in_u8(in) % 8;
    size_t need = 0;
    fz_arm();
    if (mode == 0) { /* size NULL */
        int rc = nvp_chain_save_buffer(c, sc, 0, NULL, NULL);
        const int e[] = {NVP_EINVAL, NVP_EDIM, NVP_ENONFINITE, END};
        check(rc, "nvp_chain_save_buffer (size NULL)", e);
        return;
    }
    if (mode == 1) { /* file errors: no directory, NULL path */
        int rc = nvp_chain_save_file(c, sc, in_u8(in) & 1 ? NULL
                                     : "/nonexistent-nvpflow-dir/model.nvp");
        check(rc, "nvp_chain_save_file", NULL);
        FZ_CHECK(rc != NVP_OK, "saved into a missing directory");
        nvp_chain *l = (nvp_chain *)&g_st;
        rc = nvp_chain_load_file(&l, NULL, in_u8(in) & 1 ? NULL
                                 : "/nonexistent-nvpflow-dir/model.nvp", NULL);
        const int e[] = {NVP_EINVAL, NVP_EIO, END};
        check(rc, "nvp_chain_load_file", e);
        FZ_CHECK(l == NULL, "failed load left *out set");
        return;
    }
    int rc = nvp_chain_save_buffer(c, sc, 0, NULL, &need);
    const int e_ok[] = {NVP_OK, END}, e_dim[] = {NVP_EDIM, END},
              e_inval[] = {NVP_EINVAL, END}, e_nf[] = {NVP_ENONFINITE, END};
    check(rc, "nvp_chain_save_buffer (size)",
          c ? (scaler_ok ? (params_ok ? e_ok : e_nf) : e_dim) : e_inval);
    if (rc != NVP_OK)
        return;
    unsigned char *buf = xmalloc(need);
    size_t got = 0;
    rc = nvp_chain_save_buffer(c, sc, need - 1, buf, &got);
    const int e_small[] = {NVP_EBUFSIZE, END};
    check(rc, "nvp_chain_save_buffer (short)", e_small);
    FZ_CHECK(got == need, "short buffer: size %zu, need %zu", got, need);
    rc = nvp_chain_save_buffer(c, sc, need, buf, &got);
    check(rc, "nvp_chain_save_buffer", e_ok);

    const nvp_allocator *a = pick_alloc(in);
    nvp_chain *l = (nvp_chain *)&g_st;
    nvp_scaler *ls = (nvp_scaler *)&g_st;
    const int want_scaler = in_u8(in) & 1;
    fz_arm();
    rc = nvp_chain_load_buffer(&l, want_scaler ? &ls : NULL, need, buf, a);
    const int e_load[] = {NVP_OK, NVP_ENOMEM, END};
    check(rc, "nvp_chain_load_buffer", alloc_invalid(a) ? e_inval : e_load);
    if (rc == NVP_OK) {
        FZ_CHECK(!want_scaler || (ls != NULL) == (sc != NULL), "scaler");
        size_t n2 = 0;
        FZ_CHECK(nvp_chain_save_buffer(l, want_scaler ? ls : sc, 0, NULL, &n2) ==
                     NVP_OK && n2 == need,
                 "re-save size");
        unsigned char *b2 = xmalloc(n2);
        FZ_CHECK(nvp_chain_save_buffer(l, want_scaler ? ls : sc, n2, b2, &n2) ==
                     NVP_OK,
                 "re-save");
        FZ_CHECK(memcmp(buf, b2, need) == 0,
                 "save -> load -> save is not byte-identical");
        free(b2);
        /* Same parameters, so the same densities, bit for bit. */
        const size_t dim = nvp_chain_dim(c);
        float y[3 * 8], lp1[3], lp2[3];
        if (dim <= 8)
            fill(in, y, 3 * dim);
        (void)nvp_chain_set_threads(l, 1);
        int r1 = dim <= 8 ? nvp_chain_log_prob(c, 3, y, lp1) : -1;
        int r2 = dim <= 8 ? nvp_chain_log_prob(l, 3, y, lp2) : -1;
        if (r1 == NVP_OK && r2 == NVP_OK)
            FZ_CHECK(memcmp(lp1, lp2, sizeof lp1) == 0,
                     "the loaded chain's log_prob differs");
        if (want_scaler && in_u8(in) & 1) {
            /* Keep the loaded copies in the slots. */
            const size_t s = slot(in);
            nvp_chain_free(st->chain[s]);
            st->chain[s] = l;
            l = NULL;
            if (ls) {
                nvp_scaler_free(st->scaler[s]);
                st->scaler[s] = ls;
                ls = NULL;
            }
        }
        nvp_chain_free(l);
        if (want_scaler)
            nvp_scaler_free(ls);
    } else {
        FZ_CHECK(l == NULL && (!want_scaler || ls == NULL),
                 "failed load left an out-pointer set");
    }
    free(buf);
}

static void op_save_load_adam(state *st, fz_in *in)
{
    nvp_adam *o = st->adam[slot(in)];
    const uint8_t rk = in_u8(in) % 3;
    nvp_rng *g = rk == 2 ? NULL : st->rng[rk];
    size_t need = 0;
    fz_arm();
    int rc = nvp_adam_save_buffer(o, g, 0, NULL, in_u8(in) % 16 ? &need : NULL);
    const int e_inval[] = {NVP_EINVAL, END};
    check(rc, "nvp_adam_save_buffer (size)", NULL);
    if (rc != NVP_OK) {
        if (!o)
            check(rc, "nvp_adam_save_buffer (NULL)", e_inval);
        return;
    }
    unsigned char *buf = xmalloc(need);
    size_t got;
    rc = nvp_adam_save_buffer(o, g, need, buf, &got);
    FZ_CHECK(rc == NVP_OK && got == need, "save: %d", rc);
    const nvp_allocator *a = pick_alloc(in);
    nvp_adam *lo = (nvp_adam *)&g_st;
    nvp_rng *lg = (nvp_rng *)&g_st;
    const int want_rng = in_u8(in) & 1;
    fz_arm();
    rc = nvp_adam_load_buffer(&lo, want_rng ? &lg : NULL, need, buf, a);
    const int e_load[] = {NVP_OK, NVP_ENOMEM, END};
    check(rc, "nvp_adam_load_buffer", alloc_invalid(a) ? e_inval : e_load);
    if (rc == NVP_OK) {
        size_t n2;
        const nvp_rng *rg = want_rng ? lg : g;
        FZ_CHECK(nvp_adam_save_buffer(lo, rg, 0, NULL, &n2) == NVP_OK &&
                     n2 == need,
                 "re-save size");
        unsigned char *b2 = xmalloc(n2);
        FZ_CHECK(nvp_adam_save_buffer(lo, rg, n2, b2, &n2) == NVP_OK,
                 "re-save");
        FZ_CHECK(memcmp(b2, buf, need) == 0,
                 "save -> load -> save is not byte-identical");
        free(b2);
        if (want_rng && lg) {
            float u[4], v[4];
            FZ_CHECK(nvp_rng_normal(lg, 4, u) == NVP_OK &&
                         nvp_rng_normal(g, 4, v) == NVP_OK,
                     "draws");
            FZ_CHECK(memcmp(u, v, sizeof u) == 0,
                     "the reloaded generator draws another stream");
        }
        if (in_u8(in) & 1) {
            const size_t s = slot(in);
            nvp_adam_free(st->adam[s]);
            st->adam[s] = lo;
            lo = NULL;
        }
        nvp_adam_free(lo);
        if (want_rng)
            nvp_rng_free(lg);
    } else {
        FZ_CHECK(lo == NULL && (!want_rng || lg == NULL),
                 "failed load left an out-pointer set");
    }
    free(buf);
}

/* ------------------------------------------------ generator and base */
static void op_rng(state *st, fz_in *in)
{
    const size_t s = slot(in);
    nvp_rng *r = st->rng[s];
    const uint8_t what = in_u8(in) % 8;
    const int e_inval[] = {NVP_EINVAL, END};
    fz_arm();
    if (what == 0) {
        const nvp_allocator *a = pick_alloc(in);
        nvp_rng *fresh = (nvp_rng *)&g_st;
        const int null_out = in_u8(in) % 32 == 0;
        const uint64_t seed = in_u64(in);
        int rc = nvp_rng_create(null_out ? NULL : &fresh, seed, a);
        check(rc, "nvp_rng_create", NULL);
        if (alloc_invalid(a))
            check(rc, "nvp_rng_create", e_inval);
        if (rc == NVP_OK) {
            nvp_rng_free(st->rng[s]);
            st->rng[s] = fresh;
        } else if (fresh != (nvp_rng *)&g_st) {
            FZ_CHECK(fresh == NULL, "failed create left *out set");
        }
        return;
    }
    if (what == 1) {
        nvp_rng_free(st->rng[s]);
        st->rng[s] = NULL;
        return;
    }
    if (what == 2) {
        fz_sentinel[0] = '\0'; /* the sentinel is nvp_rng_seed's message */
        int rc = nvp_rng_seed(r, in_u64(in));
        const int e_ok[] = {NVP_OK, END};
        check(rc, "nvp_rng_seed", r ? e_ok : e_inval);
        return;
    }
    const size_t n = pick_small(in);
    const int null_out = in_u8(in) % 16 == 0;
    float *f = fbuf(n);
    uint64_t *u = xmalloc((n ? n : 1) * sizeof *u);
    int rc;
    const char *what_s;
    uint64_t bound = 0;
    if (what <= 4) {
        what_s = "nvp_rng_uniform";
        rc = nvp_rng_uniform(r, n, null_out ? NULL : f);
    } else if (what == 5) {
        what_s = "nvp_rng_normal";
        rc = nvp_rng_normal(r, n, null_out ? NULL : f);
    } else {
        what_s = "nvp_rng_index";
        const uint8_t k = in_u8(in) % 4;
        bound = k == 0 ? 0 : k == 1 ? UINT64_MAX : k == 2 ? in_u64(in) : 1u + in_u8(in);
        rc = nvp_rng_index(r, n, bound, null_out ? NULL : u);
    }
    const int e_ok[] = {NVP_OK, END};
    const int valid = r && !null_out && n > 0 && (what < 6 || bound > 0);
    check(rc, what_s, valid ? e_ok : e_inval);
    if (rc == NVP_OK)
        for (size_t i = 0; i < n; i++) {
            if (what <= 4)
                FZ_CHECK(f[i] >= 0.0f && f[i] < 1.0f, "uniform %g",
                         (double)f[i]);
            else if (what == 5)
                FZ_CHECK(isfinite(f[i]), "normal %g", (double)f[i]);
            else
                FZ_CHECK(u[i] < bound, "index %llu >= %llu",
                         (unsigned long long)u[i], (unsigned long long)bound);
        }
    FZ_CHECK(nvp_rng_errmsg(r) != NULL, "errmsg");
    free(f);
    free(u);
}

static void op_base(state *st, fz_in *in)
{
    const size_t s = slot(in);
    nvp_base *b = st->base[s];
    const uint8_t what = in_u8(in) % 6;
    const int e_inval[] = {NVP_EINVAL, END};
    fz_arm();
    if (what == 0) {
        size_t d = pick_dim(in);
        if (d == 0 && in_u8(in) & 1)
            d = 1;
        const nvp_allocator *a = pick_alloc(in);
        nvp_base *fresh = (nvp_base *)&g_st;
        int rc = nvp_base_create_normal(&fresh, d, a);
        check(rc, "nvp_base_create_normal", NULL);
        if (d == 0 || d > NVP_MAX_DIM || alloc_invalid(a))
            check(rc, "nvp_base_create_normal", e_inval);
        if (rc == NVP_OK) {
            FZ_CHECK(nvp_base_dim(fresh) == d, "dim");
            nvp_base_free(st->base[s]);
            st->base[s] = fresh;
        } else {
            FZ_CHECK(fresh == NULL, "failed create left *out set");
        }
        return;
    }
    if (what == 1) {
        nvp_base_free(st->base[s]);
        st->base[s] = NULL;
        return;
    }
    const size_t dim = b ? nvp_base_dim(b) : 2;
    const size_t n = pick_n(in);
    const size_t count = cnt(n, dim);
    float *x = fbuf(count), *y = fbuf(what == 3 ? n : count);
    if (count != SIZE_MAX)
        fill(in, x, count);
    const int null_ptr = in_u8(in) % 16 == 0;
    int rc;
    const char *name;
    nvp_rng *r = st->rng[slot(in)];
    if (what == 2) {
        name = "nvp_base_sample";
        rc = nvp_base_sample(b, r, n, null_ptr ? NULL : x);
    } else if (what == 3) {
        name = "nvp_base_log_prob";
        rc = nvp_base_log_prob(b, n, x, null_ptr ? NULL : y);
        if (rc == NVP_OK)
            for (size_t i = 0; i < n; i++)
                if (!row_finite(x + i * dim, dim))
                    FZ_CHECK(isnan(y[i]), "base log_prob of a non-finite "
                             "row is %g", (double)y[i]);
    } else if (what == 4) {
        name = "nvp_base_log_prob_grad";
        rc = nvp_base_log_prob_grad(b, n, null_ptr ? NULL : x, y);
    } else {
        name = "nvp_base_errmsg";
        FZ_CHECK(nvp_base_errmsg(b) != NULL, "errmsg");
        rc = NVP_OK;
        b = NULL;
    }
    const int valid = b && !null_ptr && (what != 2 || r);
    check(rc, name, valid ? batch_expect(n, 0) : NULL);
    if (what <= 4 && !valid)
        FZ_CHECK(rc != NVP_OK, "%s accepted a NULL argument", name);
    free(x);
    free(y);
}

/* --------------------------------------------------- coupling layers */
static void op_layer(state *st, fz_in *in)
{
    const size_t s = slot(in);
    const uint8_t what = in_u8(in) % 13;
    const int e_ok[] = {NVP_OK, END}, e_inval[] = {NVP_EINVAL, END},
              e_dim[] = {NVP_EDIM, END};
    fz_arm();
    if (what <= 1) { /* create, with a random mask or the half split */
        const size_t dim = pick_dim(in);
        unsigned char mask[8];
        const int half = what == 1;
        if (!half && dim <= 8)
            pick_mask(in, mask, dim);
        hid h;
        pick_hidden(in, &h);
        const unsigned flags = in_u8(in) % 8 == 0 ? 4u : (in_u8(in) & 1u);
        nvp_rng *r = st->rng[slot(in)];
        const nvp_allocator *a = pick_alloc(in);
        nvp_coupling *fresh = (nvp_coupling *)&g_st;
        int rc;
        if (half)
            rc = nvp_coupling_create_half(&fresh, dim, in_u8(in) & 1, h.n, h.w,
                                          flags, r, a);
        else
            rc = nvp_coupling_create(&fresh, dim, dim <= 8 ? mask : NULL, h.n,
                                     h.w, flags, r, a);
        check(rc, half ? "nvp_coupling_create_half" : "nvp_coupling_create",
              NULL);
        const int ok = dim >= 2 && dim <= 8 && h.valid && flags <= 1 && r &&
                       !alloc_invalid(a) && (half || mask_valid(mask, dim));
        if (ok) {
            const int e[] = {NVP_OK, NVP_ENOMEM, END};
            check(rc, "nvp_coupling_create", e);
        } else {
            FZ_CHECK(rc != NVP_OK, "invalid layer accepted");
        }
        if (rc == NVP_OK) {
            FZ_CHECK(nvp_coupling_dim(fresh) == dim, "dim");
            nvp_coupling_free(st->layer[s]);
            st->layer[s] = fresh;
        } else {
            FZ_CHECK(fresh == NULL, "failed create left *out set");
        }
        return;
    }
    if (what == 2) {
        nvp_coupling_free(st->layer[s]);
        st->layer[s] = NULL;
        return;
    }
    /* A standalone layer, or (for const calls) one owned by a chain. */
    nvp_coupling *ml = st->layer[s];
    const nvp_coupling *l = ml;
    if (in_u8(in) % 4 == 0 && st->chain[s]) {
        l = nvp_layer_as_coupling(nvp_chain_layer(st->chain[s], in_u8(in) % 4, NULL));
        ml = NULL;
    }
    const size_t dim = l ? nvp_coupling_dim(l) : 2;
    const size_t P = l ? nvp_coupling_num_params(l) : 1;
    float *before = fbuf(P);
    const float clamp0 = nvp_coupling_log_scale_clamp(l);
    if (l)
        nvp_coupling_get_params(l, P, before);
    int rc = NVP_OK, may_change = 0;
    if (what <= 5) { /* forward, inverse, inverse_backward */
        size_t n = pick_n(in);
        if (P > 4096 && !N_HUGE(n) && n > 4)
            n = 4;
        const size_t count = cnt(n, dim);
        float *x = fbuf(count), *y = fbuf(count), *ld = fbuf(n),
              *d = fbuf(count), *g = fbuf(P);
        if (count != SIZE_MAX) {
            fill(in, x, count);
            fill(in, d, count);
        }
        for (size_t i = 0; i < n && !N_HUGE(n); i++)
            ld[i] = in_float(in);
        memset(g, 0, P * sizeof *g);
        const uint8_t nulls = in_u8(in) % 16;
        const int inplace = in_u8(in) & 1;
        const char *name;
        int extra = 0, valid = l != NULL;
        if (what == 3) {
            name = "nvp_coupling_forward";
            rc = nvp_coupling_forward(l, n, nulls == 0 ? NULL : x,
                                      inplace ? x : y, nulls == 1 ? NULL : ld);
            valid &= nulls != 0;
        } else if (what == 4) {
            name = "nvp_coupling_inverse";
            rc = nvp_coupling_inverse(l, n, nulls == 0 ? NULL : x,
                                      inplace ? x : y, nulls == 1 ? NULL : ld);
            valid &= nulls != 0;
        } else {
            name = "nvp_coupling_inverse_backward";
            rc = nvp_coupling_inverse_backward(
                l, n, nulls == 0 ? NULL : x, nulls == 1 ? NULL : d,
                nulls == 2 ? NULL : ld, nulls == 3 ? NULL : y,
                nulls == 4 ? NULL : g);
            valid &= nulls > 1;
            extra = NVP_ENONFINITE;
            if (valid && !N_HUGE(n) && n > 0) {
                int finite = 1;
                for (size_t i = 0; i < count; i++)
                    finite &= isfinite(x[i]) && isfinite(d[i]);
                for (size_t i = 0; i < n && nulls != 2; i++)
                    finite &= isfinite(ld[i]) != 0;
                if (!finite)
                    check(rc, name, (const int[]){NVP_ENONFINITE, END});
                if (rc == NVP_ENONFINITE && nulls != 4)
                    for (size_t i = 0; i < P; i++)
                        FZ_CHECK(g[i] == 0.0f, "a refused backward "
                                 "accumulated into grad");
            }
        }
        check(rc, name, valid ? batch_expect(n, extra) : NULL);
        if (!valid)
            FZ_CHECK(rc != NVP_OK, "%s accepted a NULL argument", name);
        free(x);
        free(y);
        free(ld);
        free(d);
        free(g);
    } else if (what == 6) {
        const size_t d = in_u8(in) % 8 == 0 ? dim + 1 : dim;
        unsigned char *m = xmalloc(d);
        const int null_ptr = in_u8(in) % 16 == 0;
        rc = nvp_coupling_get_mask(l, d, null_ptr ? NULL : m);
        check(rc, "nvp_coupling_get_mask",
              l && !null_ptr ? (d == dim ? e_ok : e_dim) : e_inval);
        if (rc == NVP_OK)
            FZ_CHECK(mask_valid(m, dim), "get_mask gave an invalid mask");
        free(m);
    } else if (what == 7) {
        const size_t c = in_u8(in) % 8 == 0 ? P + 1 : P;
        float *p = fbuf(c);
        rc = nvp_coupling_get_params(l, c, p);
        check(rc, "nvp_coupling_get_params",
              l ? (c == P ? e_ok : e_dim) : e_inval);
        free(p);
    } else if (what == 11) {
        /* Hidden widths, with a buffer of cap entries (maybe too small). */
        size_t w[NVP_MAX_HIDDEN_LAYERS + 1], nh = (size_t)-1;
        const size_t cap = in_u8(in) % 5;
        const uint8_t k = in_u8(in) % 8;
        rc = nvp_coupling_get_hidden(l, cap, k == 0 ? NULL : w, k == 1 ? NULL : &nh);
        check(rc, "nvp_coupling_get_hidden", NULL);
        if (!l || k == 1)
            check(rc, "nvp_coupling_get_hidden", e_inval);
        if (l && k != 1) {
            FZ_CHECK(nh <= NVP_MAX_HIDDEN_LAYERS, "n_hidden %zu", nh);
            const int e_small[] = {NVP_EBUFSIZE, END};
            check(rc, "nvp_coupling_get_hidden",
                  k == 0 || cap >= nh ? e_ok : e_small);
            /* The widths agree with the parameter count. */
            if (k != 0 && cap >= nh) {
                unsigned char m[8];
                if (dim <= 8 && nvp_coupling_get_mask(l, dim, m) == NVP_OK) {
                    size_t na = 0, in_w, total = 0;
                    for (size_t j = 0; j < dim; j++)
                        na += m[j];
                    in_w = na;
                    for (size_t h = 0; h <= nh; h++) {
                        const size_t out = h < nh ? w[h] : 2 * (dim - na);
                        FZ_CHECK(out >= 1, "hidden width %zu is 0", h);
                        total += in_w * out + out;
                        in_w = out;
                    }
                    FZ_CHECK(total == P, "widths give %zu parameters, the "
                             "layer has %zu", total, P);
                }
            }
        }
    } else if (what == 8 && ml) {
        const size_t c = in_u8(in) % 8 == 0 ? P + 1 : P;
        float *p = fbuf(c);
        fill(in, p, c);
        int finite = 1;
        for (size_t i = 0; i < c; i++)
            finite &= isfinite(p[i]) != 0;
        rc = nvp_coupling_set_params(ml, c, p);
        check(rc, "nvp_coupling_set_params",
              c != P ? e_dim : finite ? e_ok
                                      : (const int[]){NVP_ENONFINITE, END});
        may_change = 1;
        free(p);
    } else if (what == 9 && ml) {
        const float b = in_float(in);
        rc = nvp_coupling_set_log_scale_clamp(ml, b);
        check(rc, "nvp_coupling_set_log_scale_clamp",
              isfinite(b) && b >= 0 ? e_ok : e_inval);
        may_change = 1;
        if (rc == NVP_OK)
            FZ_CHECK(nvp_coupling_log_scale_clamp(ml) == b, "clamp not set");
    } else {
        FZ_CHECK(nvp_coupling_errmsg(l) != NULL, "errmsg");
        FZ_CHECK(nvp_coupling_dim(NULL) == 0 &&
                     nvp_coupling_num_params(NULL) == 0 &&
                     nvp_coupling_log_scale_clamp(NULL) == 0.0f,
                 "queries on NULL");
    }
    if (l && (rc != NVP_OK || !may_change)) {
        float *now = fbuf(P);
        nvp_coupling_get_params(l, P, now);
        FZ_CHECK(memcmp(now, before, P * sizeof *now) == 0,
                 "layer parameters changed (call %u, rc %d)", (unsigned)what,
                 rc);
        FZ_CHECK(nvp_coupling_log_scale_clamp(l) == clamp0, "clamp changed");
        free(now);
    }
    free(before);
}

/* ------------------------------------------------------------- misc */
static void op_misc(state *st, fz_in *in)
{
    const uint8_t what = in_u8(in) % 3;
    fz_arm();
    if (what == 0) {
        nvp_rng *r = st->rng[slot(in)];
        size_t n = pick_n(in);
        if (!N_HUGE(n) && n > 64)
            n = 64;
        const float noise = in_float(in);
        const size_t count = cnt(n, 2);
        float *xy = fbuf(count);
        int *labels = xmalloc((N_HUGE(n) || n == 0 ? 1 : n) * sizeof *labels);
        const uint8_t k = in_u8(in) % 8;
        int rc = nvp_two_moons(r, n, noise, k == 0 ? NULL : xy,
                               k == 1 ? NULL : labels);
        const int valid = r && k != 0 && isfinite(noise) && noise >= 0;
        check(rc, "nvp_two_moons", valid ? batch_expect(n, 0) : NULL);
        if (!valid)
            FZ_CHECK(rc != NVP_OK, "two_moons accepted invalid arguments");
        if (rc == NVP_OK && k != 1) {
            /* n/2 (rounded down) points on the outer moon, label 0. */
            size_t zeros = 0;
            for (size_t i = 0; i < n; i++) {
                FZ_CHECK(labels[i] == 0 || labels[i] == 1, "label %d",
                         labels[i]);
                zeros += labels[i] == 0;
            }
            FZ_CHECK(zeros == n / 2, "%zu of %zu labels are 0", zeros, n);
        }
        free(xy);
        free(labels);
    } else if (what == 1) {
        const int code = (int)in_u32(in);
        const char *s = nvp_strerror(code);
        FZ_CHECK(s != NULL && s[0] != '\0', "nvp_strerror(%d) empty", code);
        FZ_CHECK(nvp_version_number() == NVP_VERSION_NUMBER, "version");
        FZ_CHECK(strcmp(nvp_version_string(), NVP_VERSION_STRING) == 0,
                 "version string");
    } else {
        FZ_CHECK(nvp_errmsg() != NULL, "errmsg");
        for (size_t s = 0; s < NS; s++) {
            FZ_CHECK(nvp_chain_errmsg(st->chain[s]) != NULL &&
                         nvp_rng_errmsg(st->rng[s]) != NULL &&
                         nvp_base_errmsg(st->base[s]) != NULL &&
                         nvp_coupling_errmsg(st->layer[s]) != NULL &&
                         nvp_adam_errmsg(st->adam[s]) != NULL &&
                         nvp_scaler_errmsg(st->scaler[s]) != NULL,
                     "an errmsg is NULL");
        }
        FZ_CHECK(nvp_chain_errmsg(NULL)[0] == '\0' &&
                     nvp_rng_errmsg(NULL)[0] == '\0',
                 "errmsg(NULL) is not empty");
    }
}

/* Arms the counting allocator: the allocation k calls from now fails
 * (once, or from then on), in whichever handle made with it allocates. */
static void op_alloc_arm(state *st, fz_in *in)
{
    (void)st;
    const uint8_t k = in_u8(in);
    g_st.fail_at = atomic_load(&g_st.calls) + k % 64;
    g_st.fail_all = (k & 64) != 0;
}

/* ------------------------------------------------------------- driver */
typedef void (*op_fn)(state *, fz_in *);
static const op_fn ops[] = {
    op_rng,         op_base,       op_layer,         op_chain_create,
    op_chain_eval,  op_chain_eval, op_chain_params,  op_chain_settings,
    op_train,       op_train,      op_adam,          op_scaler,
    op_save_load_chain, op_save_load_adam, op_misc,  op_alloc_arm,
};
#define N_OPS (sizeof ops / sizeof ops[0])
#define MAX_OPS 48

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        g_counting = fz_allocator(&g_st);
        g_bad_version = g_counting;
        g_bad_version.version = NVP_ALLOCATOR_VERSION + 1;
        g_bad_fn = g_counting;
        g_bad_fn.free_fn = NULL;
        g_trace = getenv("FZ_TRACE") != NULL;
        init = 1;
    }
    fz_alloc_reset(&g_st, FZ_NEVER, 0);
    fz_in in = {data, size, 0};
    state st;
    memset(&st, 0, sizeof st);
    /* Start with a generator and a small chain so that short inputs reach
     * the interesting calls. */
    FZ_CHECK(nvp_rng_create(&st.rng[0], 1, NULL) == NVP_OK, "rng");
    const size_t hidden[1] = {4};
    FZ_CHECK(nvp_chain_create_alternating(&st.chain[0], 2, 2, 1, hidden, 0,
                                          st.rng[0], NULL) == NVP_OK,
             "chain");
    FZ_CHECK(nvp_chain_set_threads(st.chain[0], 1) == NVP_OK, "threads");
    for (int i = 0; i < MAX_OPS && in.pos < in.n; i++) {
        const unsigned op = in_u8(&in) % N_OPS;
        if (g_trace)
            fprintf(stderr, "op %u at byte %zu\n", op, in.pos - 1);
        ops[op](&st, &in);
    }
    for (size_t s = 0; s < NS; s++) {
        nvp_rng_free(st.rng[s]);
        nvp_base_free(st.base[s]);
        nvp_coupling_free(st.layer[s]);
        nvp_chain_free(st.chain[s]);
        nvp_adam_free(st.adam[s]);
        nvp_scaler_free(st.scaler[s]);
    }
    FZ_CHECK(atomic_load(&g_st.live) == 0,
             "%zu blocks of the counting allocator were never freed",
             (size_t)atomic_load(&g_st.live));
    return 0;
}
