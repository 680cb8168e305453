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
    int *form;
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
    s->form = xmalloc((s->k ? s->k : 1) * sizeof *s->form);
    for (size_t k = 0; k < s->k; k++) {
        const nvp_coupling *l = nvp_layer_as_coupling(nvp_chain_layer(c, k, NULL));
        s->clamp[k] = nvp_coupling_log_scale_clamp(l);
        s->form[k] = nvp_coupling_affine_form(l);
    }
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
    for (size_t k = 0; k < s->k; k++)
        FZ_CHECK(s->form[k] ==
                     nvp_coupling_affine_form(nvp_layer_as_coupling(nvp_chain_layer(c, k, NULL))),
                 "%s changed layer %zu's affine form", what, k);
    FZ_CHECK(s->threads == nvp_chain_threads(c), "%s changed the threads",
             what);
}

static void snap_free(snap *s)
{
    free(s->p);
    free(s->clamp);
    free(s->form);
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
    const uint8_t kb = in_u8(in);
    const int alternating = kb & 1;
    /* Conditional chains (context_dim C, sometimes 0 or too large) and,
     * in chains built from layers, sigmoid-form couplings and layers of
     * another context_dim (refused with NVP_EDIM). */
    const int cond = (kb & 6) == 6;
    size_t C = 0;
    if (cond) {
        const uint8_t k = in_u8(in);
        C = k % 32 == 0 ? NVP_MAX_DIM + 1 : k % 4;
    }
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
        const char *name = cond ? "nvp_chain_create_conditional"
                                : "nvp_chain_create_alternating";
        if (cond)
            rc = nvp_chain_create_conditional(&c, dim, C, K, h.n, h.w, flags,
                                              rng, a);
        else
            rc = nvp_chain_create_alternating(&c, dim, K, h.n, h.w, flags,
                                              rng, a);
        const int ok = dim >= 2 && dim <= NVP_MAX_DIM && K >= 1 && h.valid &&
                       flags <= 1 && rng && !alloc_invalid(a) &&
                       C <= NVP_MAX_DIM;
        const int e_ok[] = {NVP_OK, NVP_ENOMEM, END};
        /* An allocation may fail before the invalid argument is seen. */
        const int e_bad[] = {NVP_EINVAL, NVP_ENOMEM, END};
        check(rc, name, ok ? e_ok : e_bad);
        FZ_CHECK(ok || rc != NVP_OK, "invalid arguments accepted");
        if (rc == NVP_OK)
            FZ_CHECK(nvp_chain_context_dim(c) == C && nvp_chain_dim(c) == dim,
                     "%s: context_dim %zu (asked %zu)", name,
                     nvp_chain_context_dim(c), C);
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
            const uint8_t lb = cond ? in_u8(in) : 0;
            const size_t cd = lb % 8 == 1 ? C + 1 : C;
            fz_arm();
            if (cond)
                rc = nvp_coupling_create_conditional(&ls[made], d, cd, mask,
                                                     h.n, h.w, flags, rng, a);
            else
                rc = nvp_coupling_create(&ls[made], d, mask, h.n, h.w, flags,
                                         rng, a);
            check(rc, cond ? "nvp_coupling_create_conditional"
                           : "nvp_coupling_create", NULL);
            if (rc == NVP_OK) {
                if (cond) {
                    const nvp_layer *L = nvp_coupling_as_layer(ls[made]);
                    FZ_CHECK(nvp_layer_context_dim(L) == cd,
                             "layer context_dim %zu, asked %zu",
                             nvp_layer_context_dim(L), cd);
                    if (lb & 16) {
                        fz_arm();
                        const int form = lb & 32 ? NVP_AFFINE_SIGMOID
                                                 : (lb & 64 ? 2 : -1);
                        rc = nvp_coupling_set_affine_form(ls[made], form);
                        const int e_ok2[] = {NVP_OK, END},
                                  e_bad2[] = {NVP_EINVAL, END};
                        check(rc, "nvp_coupling_set_affine_form",
                              form == NVP_AFFINE_SIGMOID ? e_ok2 : e_bad2);
                        FZ_CHECK(nvp_coupling_affine_form(ls[made]) ==
                                     (rc == NVP_OK ? form : NVP_AFFINE_EXP),
                                 "affine form %d after rc %d",
                                 nvp_coupling_affine_form(ls[made]), rc);
                    }
                }
                made++;
            } else
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
        if (rc == NVP_OK) {
            /* The chain reads the context its layers read; an adopted
             * layer's affine form is fixed (NVP_EINVAL, unchanged). */
            size_t cmax = 0;
            for (size_t k = 0; k < n; k++) {
                const size_t cd = nvp_layer_context_dim(nvp_chain_layer(c, k, NULL));
                cmax = cd > cmax ? cd : cmax;
            }
            FZ_CHECK(nvp_chain_context_dim(c) == cmax,
                     "chain context_dim %zu, its layers read %zu",
                     nvp_chain_context_dim(c), cmax);
            if (n && cond) {
                nvp_coupling *l0 = (nvp_coupling *)nvp_layer_as_coupling(
                    nvp_chain_layer(c, 0, NULL));
                const int f0 = nvp_coupling_affine_form(l0);
                fz_arm();
                const int rc2 = nvp_coupling_set_affine_form(l0, 1 - f0);
                const int e_bad2[] = {NVP_EINVAL, END};
                check(rc2, "nvp_coupling_set_affine_form (adopted)", e_bad2);
                FZ_CHECK(nvp_coupling_affine_form(l0) == f0,
                         "a refused set_affine_form changed the form");
            }
        }
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

/* How a call meets the chain's context: the plain form, or the _given
 * form with ctx (NULL or n rows of C values; for sample_given_one, one
 * row). */
typedef struct given {
    int on, one;
    const float *ctx;
} given;
static const given PLAIN = {0, 0, NULL};

static int row_finite(const float *x, size_t dim);

/* Runs one evaluation; out/aux are exactly sized by the caller. */
static int run_eval_g(nvp_chain *c, int mode, nvp_rng *rng, uint64_t seed,
                      size_t n, const float *in, float *out, float *aux,
                      given g)
{
    if (g.on) {
        switch (mode) {
        case EV_LOG_PROB: return nvp_chain_log_prob_given(c, n, in, g.ctx, out);
        case EV_FORWARD: return nvp_chain_forward_given(c, n, in, g.ctx, out, aux);
        case EV_INVERSE: return nvp_chain_inverse_given(c, n, in, g.ctx, out, aux);
        case EV_SAMPLE:
            if (rng)
                nvp_rng_seed(rng, seed);
            return g.one ? nvp_chain_sample_given_one(c, rng, n, g.ctx, out, aux)
                         : nvp_chain_sample_given(c, rng, n, g.ctx, out, aux);
        case EV_TRACE: return nvp_chain_forward_trace_given(c, n, in, g.ctx, out);
        default: return nvp_chain_nll_grad_given(c, n, in, g.ctx, out, aux);
        }
    }
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


/* The _given name of an evaluation, for messages. */
static const char *const ev_given_name[EV_COUNT] = {
    "nvp_chain_log_prob_given", "nvp_chain_forward_given",
    "nvp_chain_inverse_given", "nvp_chain_sample_given",
    "nvp_chain_forward_trace_given", "nvp_chain_nll_grad_given"};

/* A context for a chain reading C values per row: byte k picks NULL
 * (k % 16 == 0), the plain form (1: refused), one row for
 * sample_given_one (2), or n rows filled from the input.  *bad says
 * whether the header makes the call NVP_EINVAL; ctx receives the buffer
 * (to free). */
static given pick_given(fz_in *in, size_t C, size_t rows, int sample,
                        float **ctx, int *bad)
{
    given g = {1, 0, NULL};
    *ctx = NULL;
    *bad = 0;
    if (C == 0)
        return PLAIN;
    const uint8_t k = in_u8(in) % 16;
    if (k == 0) {
        *bad = 1;
        return g;
    }
    if (k == 1) {
        *bad = 1;
        return PLAIN;
    }
    g.one = sample && k == 2;
    const size_t count = g.one ? C : cnt(rows, C);
    *ctx = fbuf(count);
    if (count != SIZE_MAX)
        fill(in, *ctx, count);
    g.ctx = *ctx;
    return g;
}

/* Whether row i of the context is finite (always, without a context). */
static int ctx_row_finite(given g, size_t C, size_t i)
{
    if (!g.on || !g.ctx || C == 0)
        return 1;
    return row_finite(g.ctx + (g.one ? 0 : i * C), C);
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
    /* A conditional chain: the _given form with a context (or a missing
     * context, or the plain form: NVP_EINVAL). */
    const size_t C = c ? nvp_chain_context_dim(c) : 0;
    float *ctxbuf;
    int ctx_bad;
    const given g = pick_given(in, C, n, mode == EV_SAMPLE, &ctxbuf, &ctx_bad);
    const char *name = g.on ? ev_given_name[mode] : ev_name[mode];
    if (g.one)
        name = "nvp_chain_sample_given_one";
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
    int rc = run_eval_g(c, mode, prng, seed, n, pin, pout, paux, g);
    int extra = 0;
    if (mode == EV_NLL) {
        extra = NVP_ENONFINITE;
        if (valid && !ctx_bad && !N_HUGE(n) && n > 0) {
            /* Non-finite data or context must be refused. */
            int finite = 1;
            for (size_t i = 0; i < n && finite; i++)
                finite = row_finite(x + i * dim, dim) && ctx_row_finite(g, C, i);
            if (!finite) {
                const int e[] = {NVP_ENONFINITE, END};
                check(rc, name, e);
            }
        }
    }
    if (mode == EV_SAMPLE && !prng) {
        const int e[] = {NVP_EINVAL, END};
        check(rc, name, e);
        valid = 0;
    }
    if (valid && ctx_bad) {
        /* NULL context, or the plain form, on a conditional chain. */
        const int e[] = {NVP_EINVAL, NVP_EOVERFLOW, END};
        check(rc, name, e);
        FZ_CHECK(rc != NVP_OK, "%s accepted a missing context", name);
        valid = 0;
    }
    check(rc, name, valid ? batch_expect(n, extra) : NULL);
    if (!valid)
        FZ_CHECK(rc != NVP_OK, "%s accepted a NULL argument", name);
    snap_check(&sn, c, name); /* const calls never change it */

    if (rc == NVP_OK) {
        if (mode == EV_LOG_PROB)
            for (size_t i = 0; i < n; i++)
                if (!row_finite(x + i * dim, dim) || !ctx_row_finite(g, C, i))
                    FZ_CHECK(isnan(out[i]), "row %zu holds a non-finite "
                             "value (or context) but log_prob is %g", i,
                             (double)out[i]);
        if (mode == EV_FORWARD || mode == EV_INVERSE ||
            (mode == EV_SAMPLE && !g.one))
            for (size_t i = 0; i < n; i++)
                if (!ctx_row_finite(g, C, i))
                    FZ_CHECK(!row_finite(out + i * dim, dim),
                             "%s: row %zu's context is not finite but its "
                             "output is", name, i);
        if (mode == EV_TRACE)
            FZ_CHECK(memcmp(out, x, in_count * sizeof *x) == 0,
                     "forward_trace: block 0 is not a copy of x");

        /* forward_trace may take x == stages (x in the first block). */
        if (mode == EV_TRACE && in_u8(in) % 2) {
            float *st2 = fbuf(out_count);
            memcpy(st2, x, in_count * sizeof *st2);
            int rc2 = g.on ? nvp_chain_forward_trace_given(c, n, st2, g.ctx, st2)
                           : nvp_chain_forward_trace(c, n, st2, st2);
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
            int rc2 = run_eval_g(c, mode, NULL, 0, n, y, y, paux ? l2 : NULL, g);
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
                int rc2 = run_eval_g(c, mode, prng, seed, n, pin, o2,
                                     paux ? a2 : NULL, g);
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
    free(ctxbuf);
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

/* The precision: later calls on this chain run in bfloat16 where the CPU
 * has it. */
static void chain_precision(nvp_chain *c, fz_in *in, snap *sn)
{
    static const int values[4] = {NVP_PRECISION_FP32, NVP_PRECISION_BF16,
                                  2, -1};
    const int p = values[in_u8(in) % 4];
    const int before = nvp_chain_precision(c);
    const int rc = nvp_chain_set_precision(c, p);
    const int supported = p == NVP_PRECISION_FP32 ||
                          (p == NVP_PRECISION_BF16 &&
                           nvp_precision_supported(NVP_PRECISION_BF16));
    const int e_ok[] = {NVP_OK, END}, e_uns[] = {NVP_EUNSUPPORTED, END},
              e_bad[] = {NVP_EINVAL, END};
    check(rc, "nvp_chain_set_precision",
          !c ? e_bad
          : supported ? e_ok
          : p == NVP_PRECISION_BF16 ? e_uns
                                    : e_bad);
    if (rc != NVP_OK) {
        snap_check(sn, c, "a failed set_precision");
        FZ_CHECK(nvp_chain_precision(c) == before,
                 "a failed set_precision changed it");
    } else {
        FZ_CHECK(nvp_chain_precision(c) == p, "precision %d, set %d",
                 nvp_chain_precision(c), p);
    }
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
        if (k == 7) { /* (0.6.0) the precision instead of 2 threads */
            chain_precision(c, in, &sn);
            snap_free(&sn);
            return;
        }
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
    const size_t C = c ? nvp_chain_context_dim(c) : 0;
    float *ctxbuf;
    int ctx_bad;
    const given g = pick_given(in, C, n_data, 0, &ctxbuf, &ctx_bad);
    const char *name = g.on ? "nvp_chain_train_step_given"
                            : "nvp_chain_train_step";
    snap sn;
    snap_take(&sn, c);
    size_t ob_n;
    unsigned char *ob = adam_bytes(o, &ob_n);
    float loss = -1.0f;
    const int valid = c && o && rng && !null_data && !ctx_bad &&
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
        float *rows = fbuf(batch * dim), *gr = fbuf(P),
              *crows = fbuf(batch * (C ? C : 1));
        for (size_t i = 0; i < batch; i++) {
            memcpy(rows + i * dim, data + idx[i] * dim, dim * sizeof *rows);
            if (C)
                memcpy(crows + i * C, g.ctx + idx[i] * C, C * sizeof *crows);
        }
        pred_rc = C ? nvp_chain_nll_grad_given(c, batch, rows, crows, gr,
                                               &pred_loss)
                    : nvp_chain_nll_grad(c, batch, rows, gr, &pred_loss);
        /* Adam refuses entries whose square would overflow its moments. */
        for (size_t i = 0; pred_rc == NVP_OK && i < P; i++)
            if (!(fabsf(gr[i]) < 1e18f))
                pred_rc = NVP_ENONFINITE;
        free(idx);
        free(rows);
        free(crows);
        free(gr);
        nvp_rng_free(twin);
        nvp_rng_seed(rng, seed);
    }
    fz_arm();
    float *ploss = predict || in_u8(in) & 1 ? &loss : NULL;
    int rc = g.on ? nvp_chain_train_step_given(c, o, rng, n_data,
                                               null_data ? NULL : data, g.ctx,
                                               batch, ploss)
                  : nvp_chain_train_step(c, o, rng, n_data,
                                         null_data ? NULL : data, batch, ploss);
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
        check(rc, name, e);
    } else {
        check(rc, name, NULL);
        FZ_CHECK(rc != NVP_OK, "train_step accepted invalid arguments");
        if (c && o && rng && !null_data && !ctx_bad) {
            const int e[] = {NVP_EDIM, END};
            check(rc, "nvp_chain_train_step (mismatched optimizer)", e);
        }
        if (c && o && rng && !null_data && ctx_bad) {
            const int e[] = {NVP_EINVAL, NVP_EDIM, NVP_EOVERFLOW, END};
            check(rc, "nvp_chain_train_step (missing context)", e);
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
    free(ctxbuf);
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
    const size_t C = c ? nvp_chain_context_dim(c) : 0;
    const int scaler_ok =
        !sc || (c && (nvp_scaler_dim(sc) == nvp_chain_dim(c) ||
                      (C > 0 && nvp_scaler_dim(sc) == nvp_chain_dim(c) + C)));
    /* A scaler that names the context's axes needs a chain with names. */
    const int names_ok = !sc || !c || nvp_scaler_dim(sc) == nvp_chain_dim(c) ||
                         !nvp_scaler_column_name(sc, 0) ||
                         nvp_chain_column_name(c, 0);
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
          c ? (scaler_ok ? (names_ok ? (params_ok ? e_ok : e_nf) : e_inval)
                         : e_dim)
            : e_inval);
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
        float y[3 * 8], lp1[3], lp2[3], cx[3 * 8];
        if (dim <= 8)
            fill(in, y, 3 * dim);
        if (C && C <= 8)
            fill(in, cx, 3 * C);
        FZ_CHECK(nvp_chain_context_dim(l) == C, "loaded context_dim %zu vs %zu",
                 nvp_chain_context_dim(l), C);
        for (size_t j = 0; j < dim; j++) {
            const char *na = nvp_chain_column_name(c, j),
                       *nb = nvp_chain_column_name(l, j);
            FZ_CHECK((!na && !nb) || (na && nb && strcmp(na, nb) == 0),
                     "column %zu's name did not survive the round trip", j);
        }
        if (want_scaler && ls && sc && nvp_scaler_column_name(ls, 0)) {
            const size_t sd = nvp_scaler_dim(sc);
            FZ_CHECK(nvp_scaler_dim(ls) == sd, "loaded scaler dim");
            /* Context axes keep the scaler's names. */
            for (size_t j = dim; j < sd; j++)
                FZ_CHECK(nvp_scaler_column_name(sc, j) &&
                             strcmp(nvp_scaler_column_name(sc, j),
                                    nvp_scaler_column_name(ls, j)) == 0,
                         "context axis %zu's name did not survive", j);
        }
        (void)nvp_chain_set_threads(l, 1);
        int r1 = dim <= 8 && C <= 8
                     ? (C ? nvp_chain_log_prob_given(c, 3, y, cx, lp1)
                          : nvp_chain_log_prob(c, 3, y, lp1))
                     : -1;
        int r2 = dim <= 8 && C <= 8
                     ? (C ? nvp_chain_log_prob_given(l, 3, y, cx, lp2)
                          : nvp_chain_log_prob(l, 3, y, lp2))
                     : -1;
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
    const uint8_t what = in_u8(in) % 7;
    const int e_inval[] = {NVP_EINVAL, END};
    fz_arm();
    if (what == 6) { /* (0.7.0) a mixture fitted to fuzzed rows */
        const size_t d = 1 + in_u8(in) % 6, n = 1 + in_u8(in) % 64;
        const size_t k = in_u8(in) % 6; /* 0 and n < k are refused */
        float *rows = fbuf(n * d);
        fill(in, rows, n * d);
        nvp_base *fresh = (nvp_base *)&g_st;
        nvp_rng *r = st->rng[slot(in)];
        const int rc = nvp_base_fit_mixture(&fresh, n, d, rows, k, r, NULL);
        const int e_fit[] = {NVP_OK, NVP_EINVAL, NVP_ENONFINITE, NVP_ENOMEM, END};
        check(rc, "nvp_base_fit_mixture", e_fit);
        if (rc == NVP_OK) {
            FZ_CHECK(nvp_base_dim(fresh) == d && nvp_base_components(fresh) == k &&
                         nvp_base_kind(fresh) == NVP_BASE_MIXTURE,
                     "mixture dim %zu, k %zu", d, k);
            nvp_base_free(st->base[s]);
            st->base[s] = fresh;
        } else {
            FZ_CHECK(fresh == NULL, "failed fit left *out set");
            FZ_CHECK(k == 0 || n < k || !r || !row_finite(rows, n * d) || rc != NVP_EINVAL,
                     "nvp_base_fit_mixture refused valid arguments: %s", nvp_errmsg());
        }
        free(rows);
        return;
    }
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
        /* The plain calls refuse a layer that reads a context (a
         * conditional chain's): NVP_EINVAL, so not "valid" here. */
        const size_t lc =
            l ? nvp_layer_context_dim(nvp_coupling_as_layer((nvp_coupling *)l)) : 0;
        int extra = 0, valid = l != NULL && lc == 0;
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
                    /* a conditional coupling's first layer also reads
                     * the context */
                    in_w = na + nvp_layer_context_dim(
                                    nvp_coupling_as_layer((nvp_coupling *)l));
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

/* ------------------------------------------- 0.5.0: gradients, reverse KL */
/* The reverse-KL target: a standard normal, or a callback that fails
 * (returns 77, writes NaN or an infinity). */
typedef struct kl_user {
    int mode;
    size_t dim, calls;
} kl_user;

static int kl_density(void *user, size_t n, size_t dim, const float *y,
                      float *log_p, float *dlogp_dy)
{
    kl_user *u = user;
    u->calls++;
    FZ_CHECK(dim == u->dim && n > 0, "callback: dim %zu (chain %zu), n %zu",
             dim, u->dim, n);
    for (size_t i = 0; i < n; i++) {
        /* Draws whose forward overflows are refused before the callback. */
        FZ_CHECK(row_finite(y + i * dim, dim), "callback got a non-finite "
                 "draw (row %zu)", i);
        double q = 0.0;
        for (size_t j = 0; j < dim; j++) {
            q += (double)y[i * dim + j] * y[i * dim + j];
            dlogp_dy[i * dim + j] = -y[i * dim + j];
        }
        log_p[i] = (float)(-0.5 * q);
    }
    switch (u->mode) {
    case 1: return 77;
    case 2: log_p[n - 1] = NAN; break;
    case 3: dlogp_dy[0] = INFINITY; break;
    default: break;
    }
    return 0;
}

static int any_nonfinite(const float *x, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!isfinite(x[i]))
            return 1;
    return 0;
}

/* Const gradient calls: score(_given), forward_backward(_given) of the
 * chain and of one of its layers, reverse_kl_grad(_given); the training
 * calls reverse_kl_step(_given) and init_from_data(_given). */
enum { GR_SCORE, GR_FB, GR_LAYER_FB, GR_KL, GR_KL_STEP, GR_INIT, GR_COUNT };

static void op_chain_grad(state *st, fz_in *in)
{
    nvp_chain *c = st->chain[slot(in)];
    const int mode = in_u8(in) % GR_COUNT;
    nvp_rng *rng = st->rng[slot(in)];
    nvp_adam *o = st->adam[slot(in)];
    size_t n = pick_n(in);
    const size_t dim = c ? nvp_chain_dim(c) : 2;
    const size_t P = c ? nvp_chain_num_params(c) : 1;
    if (!N_HUGE(n) && n > (P > 4096 ? 4 : 64))
        n = P > 4096 ? 4 : 64;
    const size_t C0 = c ? nvp_chain_context_dim(c) : 0;
    /* Context: given form with rows, NULL, or the plain form (on C == 0
     * the given form with NULL, which must be the plain call). */
    const uint8_t cm = in_u8(in) % 8;
    const int use_given = C0 ? cm != 1 : cm == 2;
    const int ctx_bad = C0 && (cm == 0 || cm == 1);
    const size_t rows = N_HUGE(n) ? 1 : n;
    const size_t ccount = cnt(rows, C0 ? C0 : 1);
    float *ctx = fbuf(ccount);
    fill(in, ctx, ccount);
    const float *pctx = C0 && cm != 0 ? ctx : NULL;
    const size_t count = cnt(rows, dim);
    float *x = fbuf(count), *d = fbuf(count), *ld = fbuf(rows);
    fill(in, x, count);
    fill(in, d, count);
    fill(in, ld, rows);
    const uint8_t nulls = in_u8(in) % 16;
    int nonfinite = any_nonfinite(x, count) ||
                    (pctx && any_nonfinite(ctx, cnt(rows, C0)));
    snap sn;
    snap_take(&sn, c);
    size_t ob_n;
    unsigned char *ob = adam_bytes(o, &ob_n);
    const char *name = "?";
    int rc = NVP_OK, valid = c != NULL, extra = NVP_ENONFINITE;
    const int e_nf[] = {NVP_ENONFINITE, END};
    const size_t t1 = 1 + in_u8(in) % 3;
    fz_arm();
    if (mode == GR_SCORE || mode == GR_FB) {
        float *o1 = fbuf(count), *o2 = fbuf(cnt(rows, C0 ? C0 : 1)),
              *o3 = fbuf(mode == GR_SCORE ? rows : P);
        fill(in, o3, mode == GR_SCORE ? rows : P);
        float *p1 = nulls == 1 ? NULL : o1, *p2 = nulls == 2 ? NULL : o2,
              *p3 = nulls == 3 ? NULL : o3;
        const float *pdl = nulls == 4 ? NULL : ld;
        /* Copies of the outputs: on error nothing is written. */
        const size_t n3 = mode == GR_SCORE ? rows : P;
        float *c1 = fbuf(count), *c3 = fbuf(n3);
        memcpy(c3, o3, n3 * sizeof *o3);
        memset(o1, 0x7f, count * sizeof *o1);
        memcpy(c1, o1, count * sizeof *o1);
        if (mode == GR_SCORE) {
            name = use_given ? "nvp_chain_score_given" : "nvp_chain_score";
            rc = use_given ? nvp_chain_score_given(c, n, x, pctx, p1, p2, p3)
                           : nvp_chain_score(c, n, x, p1, p3);
            if (!p1 && (!use_given || !p2 || C0 == 0))
                valid = 0;
        } else {
            name = use_given ? "nvp_chain_forward_backward_given"
                             : "nvp_chain_forward_backward";
            nonfinite |= any_nonfinite(d, count) ||
                         (pdl && any_nonfinite(ld, rows));
            rc = use_given ? nvp_chain_forward_backward_given(c, n, x, pctx, d,
                                                              pdl, p1, p2, p3)
                           : nvp_chain_forward_backward(c, n, x, d, pdl, p1, p3);
        }
        if (nulls == 5) /* x NULL: rerun so */ {
            fz_arm();
            rc = mode == GR_SCORE
                     ? nvp_chain_score_given(c, n, NULL, pctx, o1, NULL, NULL)
                     : nvp_chain_forward_backward_given(c, n, NULL, pctx, d,
                                                        NULL, NULL, NULL, NULL);
            valid = 0;
            FZ_CHECK(rc != NVP_OK, "%s accepted x == NULL", name);
        }
        if (valid && rc != NVP_OK) {
            FZ_CHECK(memcmp(o1, c1, count * sizeof *o1) == 0 &&
                         memcmp(o3, c3, n3 * sizeof *o3) == 0,
                     "%s failed (%d) but wrote an output", name, rc);
        }
        if (valid && rc == NVP_OK && nvp_chain_set_threads(c, t1) == NVP_OK) {
            /* Another thread count: the same bits. */
            float *q1 = fbuf(count), *q2 = fbuf(cnt(rows, C0 ? C0 : 1)),
                  *q3 = fbuf(n3);
            memcpy(q3, c3, n3 * sizeof *q3);
            int rc2 = mode == GR_SCORE
                ? (use_given ? nvp_chain_score_given(c, n, x, pctx, p1 ? q1 : NULL,
                                                    p2 ? q2 : NULL, p3 ? q3 : NULL)
                             : nvp_chain_score(c, n, x, p1 ? q1 : NULL, p3 ? q3 : NULL))
                : (use_given ? nvp_chain_forward_backward_given(
                                   c, n, x, pctx, d, pdl, p1 ? q1 : NULL,
                                   p2 ? q2 : NULL, p3 ? q3 : NULL)
                             : nvp_chain_forward_backward(c, n, x, d, pdl,
                                                          p1 ? q1 : NULL,
                                                          p3 ? q3 : NULL));
            FZ_CHECK(rc2 == NVP_OK || rc2 == NVP_ENOMEM, "%s rerun: %d", name,
                     rc2);
            if (rc2 == NVP_OK) {
                FZ_CHECK(!p1 || memcmp(q1, o1, count * sizeof *q1) == 0,
                         "%s: first output differs with %zu threads", name, t1);
                FZ_CHECK(!p3 || memcmp(q3, o3, n3 * sizeof *q3) == 0,
                         "%s: last output differs with %zu threads", name, t1);
                FZ_CHECK(!p2 || !use_given || !C0 ||
                             memcmp(q2, o2, cnt(rows, C0) * sizeof *q2) == 0,
                         "%s: the context's gradient differs with %zu threads",
                         name, t1);
            }
            free(q1);
            free(q2);
            free(q3);
        }
        /* Back to the thread count the snapshot holds; when the failing
         * allocator refuses that (the harness's doing, not the call's),
         * the snapshot takes the count the chain kept. */
        if (c && nvp_chain_set_threads(c, sn.threads) != NVP_OK)
            sn.threads = nvp_chain_threads(c);
        free(o1);
        free(o2);
        free(o3);
        free(c1);
        free(c3);
    } else if (mode == GR_LAYER_FB) {
        /* One layer of the chain (const), or the standalone one. */
        const nvp_layer *L = c ? nvp_chain_layer(c, in_u8(in) % 4, NULL) : NULL;
        if (!L && st->layer[0])
            L = nvp_coupling_as_layer(st->layer[0]);
        const size_t ldim = L ? nvp_layer_dim(L) : 2, LP = L ? nvp_layer_num_params(L) : 1;
        const size_t LC = nvp_layer_context_dim(L);
        const size_t lcount = cnt(rows, ldim);
        float *lx = fbuf(lcount), *ldy = fbuf(lcount), *ldx = fbuf(lcount),
              *lg = fbuf(LP), *lg0 = fbuf(LP), *lctx = fbuf(cnt(rows, LC ? LC : 1)),
              *ldc = fbuf(cnt(rows, LC ? LC : 1)), *lld = fbuf(rows);
        fill(in, lx, lcount);
        fill(in, ldy, lcount);
        fill(in, lctx, cnt(rows, LC ? LC : 1));
        memset(lg, 0, LP * sizeof *lg);
        memcpy(lg0, lg, LP * sizeof *lg);
        float *before = fbuf(LP);
        if (L)
            FZ_CHECK(nvp_layer_get_params(L, LP, before) == NVP_OK, "params");
        const int lgiven = LC ? cm != 1 : cm == 2;
        const int lbad = LC && (cm == 0 || cm == 1);
        const float *plc = LC && cm != 0 ? lctx : NULL;
        int lnf = any_nonfinite(lx, lcount) || (plc && any_nonfinite(lctx, cnt(rows, LC)));
        const uint8_t which = in_u8(in) % 3;
        fz_arm();
        if (which == 0) {
            name = lgiven ? "nvp_layer_forward_backward_given"
                          : "nvp_layer_forward_backward";
            lnf |= any_nonfinite(ldy, lcount);
            rc = lgiven ? nvp_layer_forward_backward_given(L, n, lx, plc, ldy, NULL,
                                                           ldx, ldc, lg)
                        : nvp_layer_forward_backward(L, n, lx, ldy, NULL, ldx, lg);
        } else if (which == 1) {
            name = lgiven ? "nvp_layer_forward_given" : "nvp_layer_forward";
            extra = 0;
            rc = lgiven ? nvp_layer_forward_given(L, n, lx, plc, ldx, lld)
                        : nvp_layer_forward(L, n, lx, ldx, lld);
            lnf = 0;
            if (rc == NVP_OK && plc)
                for (size_t i = 0; i < n; i++)
                    if (!row_finite(plc + i * LC, LC))
                        FZ_CHECK(!row_finite(ldx + i * ldim, ldim),
                                 "%s: a non-finite context row gave a finite "
                                 "output row", name);
        } else {
            name = lgiven ? "nvp_layer_inverse_backward_given"
                          : "nvp_layer_inverse_backward";
            lnf |= any_nonfinite(ldy, lcount);
            rc = lgiven ? nvp_layer_inverse_backward_given(L, n, lx, plc, ldy, NULL,
                                                           ldx, ldc, lg)
                        : nvp_layer_inverse_backward(L, n, lx, ldy, NULL, ldx, lg);
        }
        check(rc, name, NULL);
        if (L && !lbad)
            check(rc, name, batch_expect(n, extra));
        if (L && lbad) {
            const int e[] = {NVP_EINVAL, NVP_EOVERFLOW, END};
            check(rc, name, e);
        }
        if (L && !lbad && lnf && n && !N_HUGE(n))
            check(rc, name, e_nf);
        if (rc != NVP_OK && which != 1)
            FZ_CHECK(memcmp(lg, lg0, LP * sizeof *lg) == 0,
                     "%s failed (%d) but added into grad", name, rc);
        if (L) {
            float *now = fbuf(LP);
            FZ_CHECK(nvp_layer_get_params(L, LP, now) == NVP_OK &&
                         memcmp(now, before, LP * sizeof *now) == 0,
                     "%s changed the layer", name);
            free(now);
        }
        free(before);
        free(lx);
        free(ldy);
        free(ldx);
        free(lg);
        free(lg0);
        free(lctx);
        free(ldc);
        free(lld);
        valid = 0; /* checked above */
        nonfinite = 0;
    } else if (mode == GR_KL || mode == GR_KL_STEP) {
        kl_user u = {in_u8(in) % 6, dim, 0};
        if (u.mode > 3)
            u.mode = 0;
        const uint64_t seed = in_u8(in);
        float *grad = fbuf(P), loss = 0.0f;
        const int null_cb = nulls == 6;
        nvp_log_density_fn cb = null_cb ? NULL : kl_density;
        nonfinite = pctx && any_nonfinite(ctx, cnt(rows, C0));
        if (rng)
            nvp_rng_seed(rng, seed);
        if (mode == GR_KL) {
            name = use_given ? "nvp_chain_reverse_kl_grad_given"
                             : "nvp_chain_reverse_kl_grad";
            rc = use_given ? nvp_chain_reverse_kl_grad_given(c, rng, n, pctx, cb, &u,
                                                             grad, &loss)
                           : nvp_chain_reverse_kl_grad(c, rng, n, cb, &u, grad,
                                                       &loss);
            valid &= rng && !null_cb;
        } else {
            name = use_given ? "nvp_chain_reverse_kl_step_given"
                             : "nvp_chain_reverse_kl_step";
            /* Predicted by the gradient call on the same draws. */
            float pl = NAN;
            int prc = -1;
            if (c && rng && o && !null_cb && !ctx_bad &&
                nvp_adam_num_params(o) == P && !N_HUGE(n) && n) {
                kl_user u2 = u;
                float *g2 = fbuf(P);
                prc = nvp_chain_reverse_kl_grad_given(c, rng, n, pctx, cb, &u2,
                                                      g2, &pl);
                for (size_t i = 0; prc == NVP_OK && i < P; i++)
                    if (!(fabsf(g2[i]) < 1e18f))
                        prc = NVP_ENONFINITE;
                free(g2);
                nvp_rng_seed(rng, seed);
            }
            fz_arm();
            rc = use_given ? nvp_chain_reverse_kl_step_given(c, o, rng, n, pctx,
                                                             cb, &u, &loss)
                           : nvp_chain_reverse_kl_step(c, o, rng, n, cb, &u,
                                                       &loss);
            valid &= rng && o && !null_cb && nvp_adam_num_params(o) == P;
            if (prc != -1 && prc != NVP_ENOMEM && rc != NVP_ENOMEM &&
                prc != NVP_ENONFINITE) {
                FZ_CHECK(rc == prc || (prc == NVP_OK && rc == NVP_ENONFINITE),
                         "%s returned %d, the gradient call %d", name, rc, prc);
                if (rc == prc)
                    FZ_CHECK(memcmp(&loss, &pl, sizeof pl) == 0,
                             "%s: loss %.9g, the gradient call's %.9g", name,
                             (double)loss, (double)pl);
            }
            if (rc != NVP_OK) {
                snap_check(&sn, c, "a refused reverse_kl_step");
                adam_unchanged(o, ob, ob_n, "a refused reverse_kl_step");
            }
        }
        FZ_CHECK(u.calls <= 1, "%s called back %zu times", name, u.calls);
        if (rc == 77) {
            /* The callback's own code, passed through unchanged. */
            FZ_CHECK(u.mode == 1 && u.calls == 1, "%s returned 77", name);
            FZ_CHECK(isnan(loss), "%s: loss %g after the callback failed",
                     name, (double)loss);
            valid = 0;
        } else {
            check(rc, name, NULL);
            if (u.calls && (u.mode == 2 || u.mode == 3))
                check(rc, name, (const int[]){NVP_ENONFINITE, NVP_ENOMEM, END});
            /* A failed or non-finite callback leaves no loss; a failure
             * after it (a gradient that is not finite, a refused step)
             * reports the loss that was computed. */
            if (u.calls && rc != NVP_OK && u.mode != 0)
                FZ_CHECK(isnan(loss), "%s failed (%d) after the callback but "
                         "loss is %g", name, rc, (double)loss);
            if (rc == NVP_OK)
                FZ_CHECK(isfinite(loss) && u.calls == 1 && u.mode == 0,
                         "%s: OK with loss %g, %zu callbacks, mode %d", name,
                         (double)loss, u.calls, u.mode);
            FZ_CHECK(!(rc == NVP_OK && mode == GR_KL && any_nonfinite(grad, P)),
                     "%s: OK with a non-finite gradient", name);
        }
        if (mode == GR_KL && rc == NVP_OK && nvp_chain_set_threads(c, t1) == NVP_OK) {
            float *g2 = fbuf(P), l2;
            kl_user u2 = u;
            nvp_rng_seed(rng, seed);
            int rc2 = nvp_chain_reverse_kl_grad_given(c, rng, n, pctx, cb, &u2,
                                                      g2, &l2);
            FZ_CHECK(rc2 == NVP_OK || rc2 == NVP_ENOMEM, "rerun: %d", rc2);
            if (rc2 == NVP_OK)
                FZ_CHECK(memcmp(g2, grad, P * sizeof *g2) == 0 &&
                             memcmp(&l2, &loss, sizeof l2) == 0,
                         "%s differs with %zu threads", name, t1);
            free(g2);
        }
        if (c)
            if (nvp_chain_set_threads(c, sn.threads) != NVP_OK)
                sn.threads = nvp_chain_threads(c); /* as above */
        free(grad);
        if (valid && !ctx_bad)
            check(rc, name, batch_expect(n, NVP_ENONFINITE));
        valid = 0;
    } else {
        name = use_given ? "nvp_chain_init_from_data_given"
                         : "nvp_chain_init_from_data";
        rc = use_given ? nvp_chain_init_from_data_given(c, n, nulls == 7 ? NULL : x, pctx)
                       : nvp_chain_init_from_data(c, n, nulls == 7 ? NULL : x);
        valid &= nulls != 7;
        if (valid && !ctx_bad && n == 1) {
            check(rc, name, (const int[]){NVP_EINVAL, END});
            valid = 0; /* needs 2 rows */
        }
        /* Only actnorm and linear layers change: a chain of couplings
         * never does. */
        snap_check(&sn, c, name);
    }
    if (valid && ctx_bad) {
        const int e[] = {NVP_EINVAL, NVP_EOVERFLOW, END};
        check(rc, name, e);
        FZ_CHECK(rc != NVP_OK, "%s accepted a missing context", name);
        valid = 0;
    }
    if (rc != 77) /* the callback's own code, checked above */
        check(rc, name, valid ? batch_expect(n, extra) : NULL);
    if (valid && nonfinite && n && !N_HUGE(n))
        check(rc, name, e_nf);
    if (mode != GR_KL_STEP && mode != GR_INIT) {
        snap_check(&sn, c, name); /* const calls */
        adam_unchanged(o, ob, ob_n, name);
    }
    if (c && nvp_chain_threads(c) != sn.threads)
        if (nvp_chain_set_threads(c, sn.threads) != NVP_OK)
            sn.threads = nvp_chain_threads(c); /* as above */
    free(ob);
    snap_free(&sn);
    free(ctx);
    free(x);
    free(d);
    free(ld);
}

/* Column names of scalers and chains; affine forms of standalone layers. */
static int name_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void op_names(state *st, fz_in *in)
{
    const size_t s = slot(in);
    const uint8_t what = in_u8(in) % 4;
    fz_arm();
    if (what == 3) {
        nvp_coupling *l = st->layer[s];
        const int f0 = nvp_coupling_affine_form(l);
        const int form = (int)(in_u8(in) % 4) - 1; /* -1 .. 2 */
        const int rc = nvp_coupling_set_affine_form(l, form);
        const int e_ok[] = {NVP_OK, END}, e_bad[] = {NVP_EINVAL, END};
        check(rc, "nvp_coupling_set_affine_form",
              l && (form == 0 || form == 1) ? e_ok : e_bad);
        FZ_CHECK(nvp_coupling_affine_form(l) == (rc == NVP_OK ? form : f0),
                 "affine form %d (was %d, set %d, rc %d)",
                 nvp_coupling_affine_form(l), f0, form, rc);
        FZ_CHECK(nvp_coupling_affine_form(NULL) == -1, "form of NULL");
        return;
    }
    nvp_scaler *sc = what == 0 ? NULL : st->scaler[s];
    nvp_chain *c = what == 0 ? st->chain[s] : NULL;
    const int on_chain = what == 0;
    const size_t dim = on_chain ? nvp_chain_dim(c) : nvp_scaler_dim(sc);
    const char *fn = on_chain ? "nvp_chain_set_column_names"
                              : "nvp_scaler_set_column_names";
#define NM_MAX 16
    char store[NM_MAX][300];
    const char *names[NM_MAX];
    const char *old[NM_MAX];
    char oldbuf[NM_MAX][300];
    const size_t dd = in_u8(in) % 8 == 0 ? dim + 1 : dim;
    const uint8_t bad = in_u8(in) % 8;
    int names_ok = 1;
    for (size_t j = 0; j < dd && j < NM_MAX; j++) {
        const uint8_t k = in_u8(in);
        snprintf(store[j], sizeof store[j], "col%u_%zu", (unsigned)k, j);
        names[j] = store[j];
    }
    if (bad == 1 && dd && dd <= NM_MAX) { /* empty */
        store[0][0] = '\0';
        names_ok = 0;
    } else if (bad == 2 && dd && dd <= NM_MAX) { /* too long */
        memset(store[dd - 1], 'x', 256);
        store[dd - 1][256] = '\0';
        names_ok = 0;
    } else if (bad == 3 && dd && dd <= NM_MAX) { /* a control character */
        store[0][1] = '\n';
        names_ok = 0;
    } else if (bad == 4 && dd && dd <= NM_MAX) { /* a NULL entry */
        names[dd - 1] = NULL;
        names_ok = 0;
    } else if (bad == 5 && dd && dd <= NM_MAX) { /* exactly the limit */
        memset(store[0], 'y', NVP_MAX_COLUMN_NAME);
        store[0][NVP_MAX_COLUMN_NAME] = '\0';
    }
    const int remove = bad == 6;
    for (size_t j = 0; j < dim && j < NM_MAX; j++) {
        const char *o = on_chain ? nvp_chain_column_name(c, j)
                                 : nvp_scaler_column_name(sc, j);
        old[j] = o ? oldbuf[j] : NULL;
        if (o)
            snprintf(oldbuf[j], sizeof oldbuf[j], "%s", o);
    }
    if (dd > NM_MAX || dim > NM_MAX)
        return;
    fz_arm();
    const int rc = on_chain
                       ? nvp_chain_set_column_names(c, dd, remove ? NULL : names)
                       : nvp_scaler_set_column_names(sc, dd, remove ? NULL : names);
    const int e_ok[] = {NVP_OK, NVP_ENOMEM, END}, e_inval[] = {NVP_EINVAL, END},
              e_dim[] = {NVP_EDIM, END};
    const int has = on_chain ? c != NULL : sc != NULL;
    check(rc, fn, NULL);
    if (!has)
        check(rc, fn, e_inval);
    else if (dd != dim && !remove)
        check(rc, fn, (const int[]){NVP_EDIM, NVP_EINVAL, END});
    else if (remove || names_ok)
        check(rc, fn, e_ok);
    else {
        if (g_trace)
            fprintf(stderr, "  names case %u, dim %zu\n", (unsigned)bad, dd);
        /* An allocation (with the counting allocator failing) may come
         * before the check of the names. */
        check(rc, fn, (const int[]){NVP_EINVAL, NVP_ENOMEM, END});
        FZ_CHECK(rc != NVP_OK, "%s accepted an invalid name", fn);
    }
    (void)e_dim;
    for (size_t j = 0; j < dim; j++) {
        const char *now = on_chain ? nvp_chain_column_name(c, j)
                                   : nvp_scaler_column_name(sc, j);
        const char *want = rc != NVP_OK ? old[j] : remove ? NULL : names[j];
        FZ_CHECK(name_eq(now, want), "%s (rc %d): column %zu is \"%s\", "
                 "expected \"%s\"", fn, rc, j, now ? now : "(null)",
                 want ? want : "(null)");
    }
    FZ_CHECK((on_chain ? nvp_chain_column_name(c, dim)
                       : nvp_scaler_column_name(sc, dim)) == NULL,
             "a name past the last column");
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
/* The 0.5.0 calls: op bytes from 208 up (those below keep the seeds'
 * meaning: 208 is a multiple of the old table's 16 entries). */
static const op_fn new_ops[] = {op_chain_grad, op_chain_grad, op_names,
                                op_chain_create};
#define NEW_OPS_FROM 208
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
        const unsigned b = in_u8(&in);
        const unsigned op = b < NEW_OPS_FROM ? b % N_OPS : N_OPS + (b - NEW_OPS_FROM) % 4;
        if (g_trace)
            fprintf(stderr, "op %u at byte %zu\n", op, in.pos - 1);
        if (op < N_OPS)
            ops[op](&st, &in);
        else
            new_ops[op - N_OPS](&st, &in);
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
