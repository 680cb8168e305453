/* SPDX-License-Identifier: MIT */
/* The internal blocked matrix multiply (src/gemm.h) against a naive triple
 * loop in double, for every kernel this CPU supports: awkward shapes (1,
 * primes, just past every block size), all four transpose combinations,
 * accumulate on and off, leading dimensions larger than the rows, and the
 * fused epilogue (bias, ReLU, gate). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "runtime/exec.h"
#include "kernels/gemm.h"
#include "kernels/gemm_bf16.h"
#include "kernels/gemm_small.h"
#include "kernels/vec.h"
#include "tests.h"

/* A product under test: one of the float kernels, or the bfloat16
 * product of gemm_bf16.h (kern NULL), whose reference rounds the operands
 * to bfloat16 first. */
typedef struct variant {
    const char *name;
    const nvp_gemm_kernel *kern;
    size_t mr, nr, mc, nc; /* register tile and cache blocks */
} variant;

/* Every product this CPU runs, into v (room for 8); returns how many. */
static size_t variants(variant *v)
{
    size_t nk = 0, n = 0;
    const nvp_gemm_kernel *const *ks = nvp__gemm_kernels(&nk);
    for (size_t i = 0; i < nk; i++)
        if (ks[i]->supported())
            v[n++] = (variant){ks[i]->name, ks[i], ks[i]->mr, ks[i]->nr, ks[i]->mc, ks[i]->nc};
    if (nvp__gemm_bf16_supported())
        v[n++] = (variant){"bf16", NULL, 8, 32, 128, 512};
    return n;
}

static void run_variant(const variant *v, float *pack, int ta, int tb, size_t m,
                        size_t n, size_t k, const float *a, size_t lda, const float *b,
                        size_t ldb, int acc, float *c, size_t ldc, const nvp_epilogue *ep)
{
    if (v->kern)
        nvp__gemm(v->kern, pack, ta, tb, m, n, k, a, lda, b, ldb, acc, c, ldc, ep);
    else
        nvp__gemm_bf16(pack, ta, tb, m, n, k, a, lda, b, ldb, acc, c, ldc, ep);
}

typedef struct {
    size_t m, n, k;
    unsigned trans; /* transpose combinations to run (bit t: trans_a = t >> 1,
                       trans_b = t & 1); 0: all four */
} shape;

/* Small shapes run every variant (4 transpose combinations x accumulate
 * x 5 epilogues); larger ones every transpose combination.  Four go past
 * the cache blocks of every kernel (MC/KC/NC: portable 64/256/1024, avx2
 * 120/256/1024, avx512 120/512/512, bf16 128/256/512): two dimensions at
 * a time with all transpose combinations, then all three at once (131 x
 * 1031 x 521, 70M multiply-adds: one combination, the one with the most
 * going on, to keep the suite fast under Valgrind).  The group after them
 * ends in a column panel of 17 to 31 columns (the bf16 packing of a
 * transposed B fills it in two groups of 16). */
static const shape shapes[] = {
    {1, 1, 1, 0},     {1, 13, 7, 0},   {7, 1, 13, 0},    {13, 7, 1, 0},
    {4, 8, 16, 0},    {5, 3, 0, 0},    {1, 1, 0, 0},     {97, 13, 257, 0},
    {257, 97, 7, 0},  {7, 521, 97, 0}, {521, 7, 13, 0},  {13, 257, 521, 0},
    {131, 1031, 9, 0}, {131, 9, 521, 0},
    {9, 1031, 521, 0}, {131, 1031, 521, 0x2},
    /* a last column panel of 17 to 31 columns, B transposed included;
     * 600 columns are far enough apart that B is packed past 128 rows
     * and read in place up to them (gemm.c's PACK_B_MIN_ROWS) */
    {9, 49, 33, 0},   {130, 600, 300, 0}, {60, 600, 300, 0},
    /* rows ending in short tiles where a kernel has them (avx512: 10 + 8,
     * 120 + 16, 4 x 8 with k past KC) */
    {18, 40, 33, 0},  {136, 70, 17, 0}, {32, 33, 521, 0},
    /* few columns, A transposed and k >= 64: computed as the transpose
     * (gemm.c's gemm_transposed), k past KC, more than one 256-column
     * pass of it */
    {40, 5, 100, 0},  {33, 2, 521, 0},  {300, 8, 256, 0},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

enum { EP_NONE, EP_BIAS, EP_BIAS_RELU, EP_GATE, EP_ALL, EP_COUNT };
static const char *const ep_names[EP_COUNT] = {"none", "bias", "bias+relu",
                                               "gate", "bias+relu+gate"};

static size_t pack_floats(const variant *v)
{
    return v->kern ? nvp__gemm_pack_floats(v->kern) : nvp__gemm_bf16_pack_floats();
}

/* NaN everywhere: reading pack space that this call did not pack shows
 * up. */
static void poison(float *pack, size_t floats)
{
    for (size_t i = 0; i < floats; i++)
        pack[i] = NAN;
}

static float *pack_alloc(const variant *v)
{
    size_t bytes = pack_floats(v) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    ck_assert_ptr_nonnull(p);
    poison(p, bytes / sizeof(float));
    return p;
}

/* Rows (or columns) of a large product that the naive loop recomputes:
 * both sides of every cache-block boundary, of the first register-tile
 * boundary, the whole last (partial) tile and the one before, plus a few
 * random ones.  The k reduction, with its KC blocks, is part of every
 * entry. */
static void select_lines(unsigned char *sel, size_t len, size_t tile, size_t block, t_prng *p)
{
    const size_t tail = len % tile + tile;
    for (size_t i = 0; i < len; i++) {
        const size_t r = i % block;
        sel[i] = r <= 1 || r + 1 == block || i == tile - 1 || i == tile || i + tail >= len;
    }
    for (int k = 0; k < 6; k++)
        sel[(size_t)(t_prng_unif(p) * (double)len)] = 1;
}

/* One product against the naive reference, on every entry, or (sampled)
 * on the rows and columns select_lines picks.  Fails at the first
 * mismatch with a message naming everything needed to reproduce it. */
static void check_one(const variant *kern, float *pack, shape s,
                      int ta, int tb, int acc, int ep_kind, uint64_t seed, int sampled)
{
    const size_t m = s.m, n = s.n, k = s.k;
    /* Stored shapes: A is m x k (or k x m when transposed), B likewise. */
    const size_t a_rows = ta ? k : m, a_cols = ta ? m : k;
    const size_t b_rows = tb ? n : k, b_cols = tb ? k : n;
    const size_t lda = a_cols + 3, ldb = b_cols + 5, ldc = n + 2, ldg = n + 7;
    t_prng p;
    t_prng_seed(&p, seed);
    poison(pack, pack_floats(kern));
    float *a = t_xmalloc((a_rows * lda + 1) * sizeof *a);
    float *b = t_xmalloc((b_rows * ldb + 1) * sizeof *b);
    float *c = t_xmalloc(m * ldc * sizeof *c);
    float *gate = t_xmalloc(m * ldg * sizeof *gate);
    float *bias = t_xmalloc((n + 1) * sizeof *bias);
    double *opa = t_xmalloc((m * k + 1) * sizeof *opa);
    double *opb = t_xmalloc((k * n + 1) * sizeof *opb);
    double *ref = t_xmalloc(m * n * sizeof *ref);
    double *mag = t_xmalloc(m * n * sizeof *mag);
    /* Padding past each row is NaN: the product must never read it. */
    for (size_t i = 0; i < a_rows; i++)
        for (size_t j = 0; j < lda; j++)
            a[i * lda + j] = j < a_cols ? (float)t_prng_range(&p, -1, 1) : NAN;
    for (size_t i = 0; i < b_rows; i++)
        for (size_t j = 0; j < ldb; j++)
            b[i * ldb + j] = j < b_cols ? (float)t_prng_range(&p, -1, 1) : NAN;
    /* C's padding holds a sentinel that must survive. */
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < ldc; j++)
            c[i * ldc + j] = j < n ? (float)t_prng_range(&p, -2, 2) : 12345.0f;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < ldg; j++)
            gate[i * ldg + j] = j < n ? (t_prng_unif(&p) < 0.5 ? 0.0f : (float)t_prng_unif(&p) + 0.5f)
                                      : (j % 2 ? 1.0f : -1.0f);
    for (size_t j = 0; j < n; j++)
        bias[j] = (float)t_prng_range(&p, -1, 1);

    for (size_t i = 0; i < m; i++)
        for (size_t q = 0; q < k; q++)
            opa[i * k + q] = ta ? a[q * lda + i] : a[i * lda + q];
    for (size_t q = 0; q < k; q++)
        for (size_t j = 0; j < n; j++)
            opb[q * n + j] = tb ? b[j * ldb + q] : b[q * ldb + j];
    if (!kern->kern) { /* the bfloat16 product multiplies rounded operands */
        for (size_t i = 0; i < m * k; i++)
            opa[i] = nvp__bf16_round((float)opa[i]);
        for (size_t i = 0; i < k * n; i++)
            opb[i] = nvp__bf16_round((float)opb[i]);
    }
    unsigned char *rsel = t_xmalloc(m), *csel = t_xmalloc(n);
    memset(rsel, 1, m);
    memset(csel, 1, n);
    if (sampled) {
        select_lines(rsel, m, kern->mr, kern->mc, &p);
        select_lines(csel, n, kern->nr, kern->nc, &p);
    }
    /* Scale of each entry for the error bound: sum_q |a_iq b_qj| <=
     * |a_i|_2 |b_j|_2 (Cauchy-Schwarz), plus |C| and |bias| below. */
    double *norm_a = t_xmalloc((m + 1) * sizeof *norm_a), *norm_b = t_xmalloc((n + 1) * sizeof *norm_b);
    for (size_t i = 0; i < m; i++) {
        double s2 = 0;
        for (size_t q = 0; q < k; q++)
            s2 += opa[i * k + q] * opa[i * k + q];
        norm_a[i] = sqrt(s2);
    }
    for (size_t j = 0; j < n; j++)
        norm_b[j] = 0;
    for (size_t q = 0; q < k; q++)
        for (size_t j = 0; j < n; j++)
            norm_b[j] += opb[q * n + j] * opb[q * n + j];
    for (size_t j = 0; j < n; j++)
        norm_b[j] = sqrt(norm_b[j]);
    for (size_t i = 0; i < m; i++) {
        double *ri = ref + i * n;
        for (size_t j = 0; j < n; j++) {
            ri[j] = acc ? c[i * ldc + j] : 0.0;
            mag[i * n + j] = fabs(ri[j]) + norm_a[i] * norm_b[j];
        }
        if (rsel[i]) {
            /* The whole row, in i-q-j order. */
            for (size_t q = 0; q < k; q++) {
                const double av = opa[i * k + q];
                const double *bq = opb + q * n;
                for (size_t j = 0; j < n; j++)
                    ri[j] += av * bq[j];
            }
        } else {
            for (size_t j = 0; j < n; j++)
                if (csel[j])
                    for (size_t q = 0; q < k; q++)
                        ri[j] += opa[i * k + q] * opb[q * n + j];
        }
    }
    free(norm_a);
    free(norm_b);
    const int use_bias = ep_kind == EP_BIAS || ep_kind == EP_BIAS_RELU || ep_kind == EP_ALL;
    const int use_relu = ep_kind == EP_BIAS_RELU || ep_kind == EP_ALL;
    const int use_gate = ep_kind == EP_GATE || ep_kind == EP_ALL;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double v = ref[i * n + j];
            if (use_bias) {
                v += bias[j];
                mag[i * n + j] += fabs(bias[j]);
            }
            if (use_relu && v < 0.0)
                v = 0.0;
            if (use_gate && !(gate[i * ldg + j] > 0.0f))
                v = 0.0;
            ref[i * n + j] = v;
        }

    nvp_epilogue ep = {use_bias ? bias : NULL, use_relu, use_gate ? gate : NULL, ldg, NULL, NULL, NULL};
    run_variant(kern, pack, ta, tb, m, n, k, a, lda, b, ldb, acc, c, ldc,
                ep_kind == EP_NONE ? NULL : &ep);

    /* Float error bound of a k-term sum: (k + 2) u sum|terms|. */
    const double u = 0x1.0p-24;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < ldc; j++) {
            const float got = c[i * ldc + j];
            if (j >= n) {
                T_CHECK(got == 12345.0f,
                        "%s m=%zu n=%zu k=%zu trans=%d%d acc=%d ep=%s seed %llu: "
                        "padding C[%zu][%zu] overwritten with %g",
                        kern->name, m, n, k, ta, tb, acc, ep_names[ep_kind],
                        (unsigned long long)seed, i, j, (double)got);
                continue;
            }
            if (!rsel[i] && !csel[j])
                continue;
            const double want = ref[i * n + j];
            const double tol = (double)(k + 3) * u * mag[i * n + j] + 1e-30;
            T_CHECK(fabs(got - want) <= tol,
                    "%s m=%zu n=%zu k=%zu trans_a=%d trans_b=%d acc=%d ep=%s "
                    "lda=%zu ldb=%zu ldc=%zu seed %llu: C[%zu][%zu] = %.9g, "
                    "naive %.9g, |diff| %.3g > tol %.3g",
                    kern->name, m, n, k, ta, tb, acc, ep_names[ep_kind], lda,
                    ldb, ldc, (unsigned long long)seed, i, j, (double)got,
                    want, fabs(got - want), tol);
        }
    free(a);
    free(b);
    free(c);
    free(gate);
    free(bias);
    free(opa);
    free(opb);
    free(ref);
    free(mag);
    free(rsel);
    free(csel);
}

START_TEST(test_gemm_shapes_against_naive)
{
    const shape s = shapes[_i];
    variant vs[8];
    const size_t nk = variants(vs);
    const size_t work = s.m * s.n * (s.k ? s.k : 1);
    size_t tested = 0;
    for (size_t ki = 0; ki < nk; ki++) {
        const variant *kern = &vs[ki];
        tested++;
        float *pack = pack_alloc(kern);
        const uint64_t seed = 1000 * (uint64_t)_i + ki;
        if (work <= 100000) {
            for (int t = 0; t < 4; t++)
                for (int acc = 0; acc < 2; acc++)
                    for (int e = 0; e < EP_COUNT; e++)
                        check_one(kern, pack, s, t >> 1, t & 1, acc, e,
                                  seed + 10 * (uint64_t)t + (uint64_t)acc, 0);
        } else {
            /* Every transpose combination once, with accumulate and the
             * epilogue varying along; past 2M multiply-adds the naive loop
             * checks the rows and columns around every block boundary. */
            for (int t = 0; t < 4; t++)
                if (!s.trans || (s.trans >> t & 1))
                    check_one(kern, pack, s, t >> 1, t & 1, t & 1,
                          t == 0 ? EP_NONE : t == 1 ? EP_ALL : t == 2 ? EP_BIAS_RELU : EP_GATE,
                          seed + (uint64_t)t, work > 2000000);
        }
        free(pack);
    }
    /* The portable kernel is always there and always supported. */
    T_CHECK(tested >= 1, "no supported kernel");
}
END_TEST

/* The kernel list: portable last and always supported, block sizes
 * consistent, nvp__gemm_best and nvp__gemm_by_name agree with it. */
START_TEST(test_gemm_kernel_table)
{
    size_t nk = 0;
    const nvp_gemm_kernel *const *ks = nvp__gemm_kernels(&nk);
    ck_assert_uint_ge(nk, 1);
    ck_assert_str_eq(ks[nk - 1]->name, "portable");
    ck_assert_int_eq(ks[nk - 1]->supported(), 1);
    const nvp_gemm_kernel *best = NULL;
    for (size_t i = 0; i < nk; i++) {
        const nvp_gemm_kernel *k = ks[i];
        T_CHECK(k->mr > 0 && k->nr > 0 && k->mc % k->mr == 0 && k->nc % k->nr == 0 && k->kc > 0,
                "kernel %s: mr %zu nr %zu mc %zu kc %zu nc %zu", k->name, k->mr,
                k->nr, k->mc, k->kc, k->nc);
        T_CHECK(nvp__gemm_pack_floats(k) > 0, "kernel %s: no pack space", k->name);
        T_CHECK(k->mr_short == 0 || (k->mr_short < k->mr && k->exact_rows &&
                                     k->exact_rows[k->mr_short]),
                "kernel %s: short tile of %zu rows, tile %zu", k->name, k->mr_short, k->mr);
        if (!best && k->supported())
            best = k;
        const nvp_gemm_kernel *byname = nvp__gemm_by_name(k->name);
        T_CHECK(byname == (k->supported() ? k : NULL), "by_name(%s) wrong", k->name);
    }
    ck_assert_ptr_eq(nvp__gemm_best(), best);
    ck_assert_ptr_null(nvp__gemm_by_name("no-such-kernel"));
}
END_TEST

/* Each output element is reduced in the same order wherever it sits: a
 * row computed alone, or a column block computed alone, is bitwise equal
 * to the same entries of the whole product (gemm.h promises this; the
 * library relies on it for results independent of batch size).  The 148
 * rows end, in the avx512 kernel, in an 8-row short tile (120 + 2 x 10 +
 * 8), which a row alone (a padded edge tile) must match too. */
START_TEST(test_gemm_position_independent)
{
    variant ks[8];
    const size_t nk = variants(ks);
    const size_t m = 148, n = 37, k = 300;
    const uint64_t seed = 77;
    t_prng p;
    t_prng_seed(&p, seed);
    float *a = t_xmalloc(m * k * sizeof *a), *b = t_xmalloc(k * n * sizeof *b);
    float *c = t_xmalloc(m * n * sizeof *c), *row = t_xmalloc(n * sizeof *row);
    float *col = t_xmalloc(m * n * sizeof *col), bias[37];
    t_fill_unif(&p, m * k, a, -1, 1);
    t_fill_unif(&p, k * n, b, -1, 1);
    t_fill_unif(&p, n, bias, -1, 1);
    for (size_t ki = 0; ki < nk; ki++) {
        const variant *v = &ks[ki];
        float *pack = pack_alloc(v);
        nvp_epilogue ep = {bias, 1, NULL, 0, NULL, NULL, NULL};
        run_variant(v, pack, 0, 0, m, n, k, a, k, b, n, 0, c, n, &ep);
        for (size_t i = 0; i < m; i++) {
            run_variant(v, pack, 0, 0, 1, n, k, a + i * k, k, b, n, 0, row, n, &ep);
            const size_t d = t_first_diff(row, c + i * n, n);
            T_CHECK(d == (size_t)-1,
                    "%s seed %llu: row %zu alone differs at column %zu: %.9g vs %.9g",
                    v->name, (unsigned long long)seed, i, d, (double)row[d],
                    (double)c[i * n + d]);
        }
        /* Columns [5, 26) alone (B and bias offset, C with stride n). */
        nvp_epilogue ep2 = {bias + 5, 1, NULL, 0, NULL, NULL, NULL};
        run_variant(v, pack, 0, 0, m, 21, k, a, k, b + 5, n, 0, col, n, &ep2);
        for (size_t i = 0; i < m; i++) {
            const size_t d = t_first_diff(col + i * n, c + i * n + 5, 21);
            T_CHECK(d == (size_t)-1,
                    "%s seed %llu: column block, row %zu col %zu: %.9g vs %.9g",
                    v->name, (unsigned long long)seed, i, d + 5,
                    (double)col[i * n + d], (double)c[i * n + 5 + d]);
        }
        free(pack);
    }
    free(a);
    free(b);
    free(c);
    free(row);
    free(col);
}
END_TEST

/* The float kernel ks[ki], or with bf16 the best float kernel, whose
 * exec routes products of enough terms to the bfloat16 product; NULL when
 * this CPU cannot run it. */
static const nvp_gemm_kernel *kernel_or_bf16(const nvp_gemm_kernel *const *ks, size_t ki, int bf16)
{
    if (bf16 && !nvp__gemm_bf16_supported())
        return NULL;
    const nvp_gemm_kernel *kern = bf16 ? nvp__gemm_best() : ks[ki];
    return kern->supported() ? kern : NULL;
}

/* The most packing space any kernel, the bfloat16 product included,
 * needs: for a pool whose threads run any of them. */
static size_t most_pack_floats(void)
{
    size_t nk = 0;
    const nvp_gemm_kernel *const *ks = nvp__gemm_kernels(&nk);
    size_t most = nvp__gemm_bf16_pack_floats();
    for (size_t ki = 0; ki < nk; ki++)
        most = nvp__gemm_pack_floats(ks[ki]) > most ? nvp__gemm_pack_floats(ks[ki]) : most;
    return most;
}

/* The epilogue's column sums (a dense layer's bias gradient, summed while
 * the product stores dZ): for every kernel, with and without the gate, on
 * awkward shapes (edge tiles, several cache blocks, the few-column path),
 * on one thread and split between the threads of a pool, colsum equals a
 * loop adding the stored C into it one row at a time, bit for bit. */
START_TEST(test_gemm_colsum_epilogue)
{
    static const size_t ms[] = {1, 7, 18, 23, 130, 136}, ns[] = {1, 3, 5, 33, 70, 600}, kk[] = {1, 17, 300};
    size_t nk = 0;
    const nvp_gemm_kernel *const *ks = nvp__gemm_kernels(&nk);
    nvp_allocator al;
    ck_assert_int_eq(nvp__allocator_init(&al, NULL), NVP_OK);
    /* every kernel's packing space, for the pool's threads */
    const size_t most = most_pack_floats();
    nvp_pool *pool = NULL;
    ck_assert_int_eq(nvp__pool_create(&pool, 2, most, &al), NVP_OK);
    t_prng p;
    t_prng_seed(&p, 9100);
    /* Every float kernel, then the bfloat16 product (through the best
     * float kernel's exec, which routes k >= NVP_BF16_MIN_K to it). */
    for (size_t ki = 0; ki <= nk; ki++) {
        const int bf16 = ki == nk;
        const nvp_gemm_kernel *kern = kernel_or_bf16(ks, ki, bf16);
        if (!kern)
            continue;
        const char *name = bf16 ? "bf16" : kern->name;
        float *pack = aligned_alloc(64, most * sizeof(float));
        ck_assert_ptr_nonnull(pack);
        for (size_t a_ = 0; a_ < sizeof ms / sizeof ms[0]; a_++)
            for (size_t b_ = 0; b_ < sizeof ns / sizeof ns[0]; b_++)
                for (size_t c_ = 0; c_ < sizeof kk / sizeof kk[0]; c_++)
                    for (int gate = 0; gate < 2; gate++)
                        for (int threads = 1; threads <= 2; threads++) {
                            const size_t m = ms[a_], n = ns[b_], k = kk[c_];
                            float *A = t_xmalloc(m * k * sizeof *A), *B = t_xmalloc(k * n * sizeof *B);
                            float *C = t_xmalloc(m * n * sizeof *C), *G = t_xmalloc(m * n * sizeof *G);
                            float *cs = t_xmalloc(n * sizeof *cs), *want = t_xmalloc(n * sizeof *want);
                            t_fill_normal(&p, m * k, A, 1.0);
                            t_fill_normal(&p, k * n, B, 1.0);
                            t_fill_normal(&p, m * n, G, 1.0);
                            t_fill_normal(&p, n, cs, 1.0);
                            memcpy(want, cs, n * sizeof *cs);
                            nvp_epilogue ep = {NULL, 0, gate ? G : NULL, n, cs, NULL, NULL};
                            nvp_exec ex = {kern, nvp__cpu_isa(), pack, threads > 1 ? pool : NULL, bf16, NULL, NULL};
                            if (threads > 1)
                                ck_assert_int_eq(nvp__pool_try_acquire(pool), 1);
                            nvp__exec_gemm(&ex, 0, 0, m, n, k, A, k, B, n, 0, C, n, &ep);
                            if (threads > 1)
                                nvp__pool_release(pool);
                            for (size_t i = 0; i < m; i++)
                                for (size_t j = 0; j < n; j++)
                                    want[j] += C[i * n + j];
                            const size_t d = t_first_diff(cs, want, n);
                            T_CHECK(d == (size_t)-1,
                                    "kernel %s, %zu x %zu x %zu, gate %d, %d thread(s): colsum[%zu] %.9g, "
                                    "the rows added in order give %.9g",
                                    name, m, n, k, gate, threads, d, (double)cs[d], (double)want[d]);
                            free(A);
                            free(B);
                            free(C);
                            free(G);
                            free(cs);
                            free(want);
                        }
        free(pack);
    }
    nvp__pool_free(pool);
}
END_TEST

/* Products too narrow to share out by columns go to the threads by rows:
 * on a pool of 2 and 3 threads they give the one-thread bits, for the
 * float kernels (the narrow tile included) and the bfloat16 product, with
 * the epilogue (bias, ReLU, gate) and C accumulated into.  With A
 * transposed, 60 rows of at most 8 columns run as the transposed product
 * on one thread, and in parts of 36 and 24 rows (24, 24 and 12 on three
 * threads) of which the smaller ones take the direct path. */
START_TEST(test_gemm_row_split_bitwise)
{
    static const size_t ms[] = {60, 130, 256, 257, 1000}, ns[] = {5, 8, 16, 40}, ks[] = {33, 300, 600};
    nvp_allocator al;
    ck_assert_int_eq(nvp__allocator_init(&al, NULL), NVP_OK);
    size_t nk = 0;
    const nvp_gemm_kernel *const *kl = nvp__gemm_kernels(&nk);
    const size_t most = most_pack_floats();
    nvp_pool *pool[2] = {NULL, NULL};
    ck_assert_int_eq(nvp__pool_create(&pool[0], 2, most, &al), NVP_OK);
    ck_assert_int_eq(nvp__pool_create(&pool[1], 3, most, &al), NVP_OK);
    float *pack = aligned_alloc(64, most * sizeof(float));
    ck_assert_ptr_nonnull(pack);
    t_prng p;
    t_prng_seed(&p, 9200);
    for (size_t ki = 0; ki <= nk; ki++) {
        const int bf16 = ki == nk;
        const nvp_gemm_kernel *kern = kernel_or_bf16(kl, ki, bf16);
        if (!kern)
            continue;
        for (size_t a_ = 0; a_ < sizeof ms / sizeof ms[0]; a_++)
            for (size_t b_ = 0; b_ < 4; b_++)
                for (size_t c_ = 0; c_ < sizeof ks / sizeof ks[0]; c_++)
                    for (int ta = 0; ta < 2; ta++) {
                        const size_t m = ms[a_], n = ns[b_], k = ks[c_];
                        float *A = t_xmalloc(m * k * sizeof *A), *B = t_xmalloc(k * n * sizeof *B);
                        float *G = t_xmalloc(m * n * sizeof *G), *bias = t_xmalloc(n * sizeof *bias);
                        float *C0 = t_xmalloc(m * n * sizeof *C0), *C1 = t_xmalloc(m * n * sizeof *C1);
                        t_fill_normal(&p, m * k, A, 1.0);
                        t_fill_normal(&p, k * n, B, 1.0);
                        t_fill_normal(&p, m * n, G, 1.0);
                        t_fill_normal(&p, n, bias, 1.0);
                        t_fill_normal(&p, m * n, C0, 1.0);
                        const nvp_epilogue ep = {bias, 1, G, n, NULL, NULL, NULL};
                        nvp_exec one = {kern, nvp__cpu_isa(), pack, NULL, bf16, NULL, NULL};
                        float *want = t_xmalloc(m * n * sizeof *want);
                        memcpy(want, C0, m * n * sizeof *want);
                        nvp__exec_gemm(&one, ta, 0, m, n, k, A, ta ? m : k, B, n, 1, want, n, &ep);
                        for (int q = 0; q < 2; q++) {
                            memcpy(C1, C0, m * n * sizeof *C1);
                            nvp_exec many = {kern, nvp__cpu_isa(), pack, pool[q], bf16, NULL, NULL};
                            ck_assert_int_eq(nvp__pool_try_acquire(pool[q]), 1);
                            nvp__exec_gemm(&many, ta, 0, m, n, k, A, ta ? m : k, B, n, 1, C1, n, &ep);
                            nvp__pool_release(pool[q]);
                            const size_t d = t_first_diff(C1, want, m * n);
                            T_CHECK(d == (size_t)-1,
                                    "kernel %s%s, %zu x %zu x %zu, trans_a %d, %d threads: C[%zu] %.9g, "
                                    "one thread %.9g",
                                    kern->name, bf16 ? " (bf16)" : "", m, n, k, ta, q + 2, d,
                                    (double)C1[d], (double)want[d]);
                        }
                        free(A);
                        free(B);
                        free(G);
                        free(bias);
                        free(C0);
                        free(C1);
                        free(want);
                    }
    }
    free(pack);
    nvp__pool_free(pool[0]);
    nvp__pool_free(pool[1]);
}
END_TEST

/* Products of at most 16 columns take paths of their own (gemm.c): with
 * A stored transposed, at most 8 columns, enough rows and terms, the
 * transposed product; else the narrow kernels, and below one narrow
 * tile's rows the wide kernel's tiles of the rows' height.  Whatever the
 * path, each row must have the bits of the same row computed alone (one
 * row: the wide kernel's 1-row tile), with C accumulated into, the whole
 * epilogue, and k past KC; the column sums must be the stored rows added
 * in order; and NaN factors must give NaN. */
START_TEST(test_gemm_few_columns_bitwise)
{
    static const size_t ns[] = {3, 8, 13, 16}, ks[] = {100, 600};
    const size_t m = 300;
    variant vs[8];
    const size_t nv = variants(vs);
    t_prng p;
    t_prng_seed(&p, 9300);
    for (size_t vi = 0; vi < nv; vi++)
        for (int ta = 0; ta < 2; ta++)
            for (size_t ni = 0; ni < 4; ni++)
                for (size_t ki = 0; ki < 2; ki++) {
                    const variant *v = &vs[vi];
                    const size_t n = ns[ni], k = ks[ki];
                    /* op(A)(i, p) at A[i * lda + p], or A[p * lda + i] */
                    const size_t lda = ta ? m : k;
                    float *pack = pack_alloc(v);
                    float *A = t_xmalloc(k * m * sizeof *A), *B = t_xmalloc(k * n * sizeof *B);
                    float *G = t_xmalloc(m * n * sizeof *G), *C0 = t_xmalloc(m * n * sizeof *C0);
                    float *C = t_xmalloc(m * n * sizeof *C), *row = t_xmalloc(n * sizeof *row);
                    float bias[16], cs[16], want[16];
                    t_fill_normal(&p, k * m, A, 1.0);
                    t_fill_normal(&p, k * n, B, 1.0);
                    t_fill_normal(&p, m * n, G, 1.0);
                    t_fill_normal(&p, m * n, C0, 1.0);
                    t_fill_normal(&p, n, bias, 1.0);
                    t_fill_normal(&p, n, cs, 1.0);
                    memcpy(want, cs, n * sizeof *cs);
                    memcpy(C, C0, m * n * sizeof *C);
                    nvp_epilogue ep = {bias, 1, G, n, cs, NULL, NULL};
                    run_variant(v, pack, ta, 0, m, n, k, A, lda, B, n, 1, C, n, &ep);
                    for (size_t i = 0; i < m; i++) {
                        memcpy(row, C0 + i * n, n * sizeof *row);
                        nvp_epilogue e1 = {bias, 1, G + i * n, n, NULL, NULL, NULL};
                        run_variant(v, pack, ta, 0, 1, n, k, ta ? A + i : A + i * k, lda, B, n, 1,
                                    row, n, &e1);
                        const size_t d = t_first_diff(row, C + i * n, n);
                        T_CHECK(d == (size_t)-1,
                                "%s, %zu x %zu x %zu, trans_a %d: row %zu alone differs at column %zu: "
                                "%.9g vs %.9g",
                                v->name, m, n, k, ta, i, d, (double)row[d], (double)C[i * n + d]);
                        for (size_t j = 0; j < n; j++)
                            want[j] += C[i * n + j];
                    }
                    const size_t d = t_first_diff(cs, want, n);
                    T_CHECK(d == (size_t)-1,
                            "%s, %zu x %zu x %zu, trans_a %d: colsum[%zu] %.9g, the rows added in "
                            "order give %.9g",
                            v->name, m, n, k, ta, d, (double)cs[d], (double)want[d]);
                    free(pack);
                    free(A);
                    free(B);
                    free(G);
                    free(C0);
                    free(C);
                    free(row);
                }
    /* NaN in both factors of a term: which NaN the result carries follows
     * the instruction's operand order, which the transposed product swaps
     * (gemm.h), but it stays a NaN, and the other rows keep their bits. */
    for (size_t vi = 0; vi < nv; vi++) {
        const variant *v = &vs[vi];
        const size_t n = 5, k = 100;
        float *pack = pack_alloc(v);
        float *A = t_xmalloc(k * m * sizeof *A), *B = t_xmalloc(k * n * sizeof *B);
        float *C = t_xmalloc(m * n * sizeof *C), row[5];
        t_fill_normal(&p, k * m, A, 1.0);
        t_fill_normal(&p, k * n, B, 1.0);
        A[0] = NAN;
        B[0] = -NAN;
        run_variant(v, pack, 1, 0, m, n, k, A, m, B, n, 0, C, n, NULL);
        for (size_t i = 0; i < m; i++) {
            run_variant(v, pack, 1, 0, 1, n, k, A + i, m, B, n, 0, row, n, NULL);
            for (size_t j = 0; j < n; j++)
                T_CHECK(i == 0 ? isnan(row[j]) && isnan(C[j])
                               : memcmp(&row[j], &C[i * n + j], sizeof row[j]) == 0,
                        "%s, NaN factors: row %zu column %zu: %.9g alone, %.9g in the whole",
                        v->name, i, j, (double)row[j], (double)C[i * n + j]);
        }
        free(pack);
        free(A);
        free(B);
        free(C);
    }
}
END_TEST

/* The epilogue's measures (how a weight gradient, and the weights a
 * forward product reads, are checked without a pass of their own): for
 * every float kernel and the bfloat16 product, through the exec (the
 * few-column path, rows or columns shared out on a pool), on every path
 * of the drivers (k == 0, the narrow tiles, the transposed product,
 * several cache blocks in m, n and k, edge tiles, B packed or read in
 * place), with and without the rest of the epilogue and C accumulated
 * into: C keeps the bits of the same product without them, c_absmax
 * equals a pass over the stored C and b_absmax a pass over B, NaN and
 * infinities included. */
START_TEST(test_gemm_absmax_epilogue)
{
    static const size_t ms[] = {1, 7, 60, 257}, ns[] = {1, 5, 8, 16, 33, 600, 1100}, kk[] = {0, 17, 600};
    size_t nk = 0;
    const nvp_gemm_kernel *const *ks = nvp__gemm_kernels(&nk);
    nvp_allocator al;
    ck_assert_int_eq(nvp__allocator_init(&al, NULL), NVP_OK);
    const size_t most = most_pack_floats();
    nvp_pool *pool = NULL;
    ck_assert_int_eq(nvp__pool_create(&pool, 2, most, &al), NVP_OK);
    float *pack = aligned_alloc(64, most * sizeof(float));
    ck_assert_ptr_nonnull(pack);
    t_prng p;
    t_prng_seed(&p, 9400);
    size_t trial = 0;
    for (size_t ki = 0; ki <= nk; ki++) {
        const int bf16 = ki == nk;
        const nvp_gemm_kernel *kern = kernel_or_bf16(ks, ki, bf16);
        if (!kern)
            continue;
        const char *name = bf16 ? "bf16" : kern->name;
        for (size_t a_ = 0; a_ < sizeof ms / sizeof ms[0]; a_++)
            for (size_t b_ = 0; b_ < sizeof ns / sizeof ns[0]; b_++)
                for (size_t c_ = 0; c_ < sizeof kk / sizeof kk[0]; c_++)
                    for (int form = 0; form < 3; form++) /* X W, dZ W^T, X^T dZ */
                        for (int threads = 1; threads <= 2; threads++, trial++) {
                            const size_t m = ms[a_], n = ns[b_], k = kk[c_];
                            /* the largest shapes add nothing but time (under
                             * valgrind): several blocks of m, n and k are
                             * reached by smaller ones */
                            if (m * n * k > (size_t)1 << 25)
                                continue;
                            const int ta = form == 2, tb = form == 1;
                            const int acc = trial % 2, full = trial / 2 % 2;
                            float *A = t_xmalloc((m * k + 1) * sizeof *A), *B = t_xmalloc((k * n + 1) * sizeof *B);
                            float *C0 = t_xmalloc(m * n * sizeof *C0), *C1 = t_xmalloc(m * n * sizeof *C1);
                            float *G = t_xmalloc(m * n * sizeof *G), *bias = t_xmalloc(n * sizeof *bias);
                            t_fill_normal(&p, m * k, A, 1.0);
                            t_fill_normal(&p, k * n, B, 1.0);
                            t_fill_normal(&p, m * n, C0, 1.0);
                            t_fill_normal(&p, m * n, G, 1.0);
                            t_fill_normal(&p, n, bias, 1.0);
                            /* some products carry an infinity or a NaN into C */
                            if (trial % 5 == 3 && k)
                                A[(trial * 7) % (m * k)] = trial % 10 == 3 ? INFINITY : NAN;
                            if (trial % 7 == 5)
                                C0[(trial * 13) % (m * n)] = -INFINITY;
                            if (trial % 11 == 4 && k)
                                B[(trial * 17) % (k * n)] = trial % 22 == 4 ? -INFINITY : NAN;
                            memcpy(C1, C0, m * n * sizeof *C1);
                            nvp_absmax am = {nvp__cpu_isa(), 0}, bm = {nvp__cpu_isa(), 0};
                            nvp_epilogue plain = {NULL, 0, NULL, 0, NULL, NULL, NULL};
                            nvp_epilogue rest = {bias, 1, G, n, NULL, NULL, NULL};
                            if (!full)
                                rest = plain;
                            nvp_epilogue with = rest;
                            with.c_absmax = &am;
                            with.b_absmax = &bm;
                            nvp_exec ex = {kern, nvp__cpu_isa(), pack, threads > 1 ? pool : NULL, bf16, NULL, NULL};
                            const size_t lda = ta ? m : k, ldb = tb ? k : n;
                            if (threads > 1)
                                ck_assert_int_eq(nvp__pool_try_acquire(pool), 1);
                            nvp__exec_gemm(&ex, ta, tb, m, n, k, A, lda, B, ldb, acc, C0, n, full ? &rest : NULL);
                            nvp__exec_gemm(&ex, ta, tb, m, n, k, A, lda, B, ldb, acc, C1, n, &with);
                            if (threads > 1)
                                nvp__pool_release(pool);
                            const size_t d = t_first_diff(C1, C0, m * n);
                            T_CHECK(d == (size_t)-1,
                                    "%s, %zu x %zu x %zu, form %d, %d thread(s): measuring changed C[%zu] "
                                    "from %.9g to %.9g",
                                    name, m, n, k, form, threads, d, (double)C0[d], (double)C1[d]);
                            const uint32_t want = nvp__max_abs_bits(NVP_ISA_PORTABLE, C1, m * n);
                            T_CHECK(am.bits == want,
                                    "%s, %zu x %zu x %zu, form %d, accumulate %d, epilogue %d, %d thread(s): "
                                    "c_absmax %08x, a pass over C %08x",
                                    name, m, n, k, form, acc, full, threads, (unsigned)am.bits, (unsigned)want);
                            const uint32_t want_b = nvp__max_abs_bits(NVP_ISA_PORTABLE, B, k * n);
                            T_CHECK(bm.bits == want_b,
                                    "%s, %zu x %zu x %zu, form %d, %d thread(s): b_absmax %08x, a pass over B %08x",
                                    name, m, n, k, form, threads, (unsigned)bm.bits, (unsigned)want_b);
                            free(A);
                            free(B);
                            free(C0);
                            free(C1);
                            free(G);
                            free(bias);
                        }
    }
    free(pack);
    nvp__pool_free(pool);
}
END_TEST

/* The few-column path (gemm_small.h: at most NVP_SMALL_N columns) of
 * every kernel this CPU runs against its documented order, computed here
 * one output at a time: with A stored transposed, a chain over k from
 * zero; otherwise 16 lanes, lane l summing the terms p = l (mod 16) in
 * order, then the lanes pairwise (8, 4, 2, 1); separate multiplies and
 * adds, so every instruction set gives these bits.  Then C added into
 * and the epilogue, with and without the ReLU and the gate.  Rows past
 * each block of several rows, k short of and past 16 lanes, both layouts
 * of B, C's rows padded or not. */
static float small_reference(int ta, int tb, size_t i, size_t j, size_t k, const float *a,
                             size_t lda, const float *b, size_t ldb)
{
    float s[16] = {0};
    for (size_t p = 0; p < k; p++) {
        const float x = ta ? a[p * lda + i] : a[i * lda + p];
        const float y = tb ? b[j * ldb + p] : b[p * ldb + j];
        if (ta)
            s[0] += x * y;
        else
            s[p % 16] += x * y;
    }
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++)
            s[l] += s[l + w];
    return s[0];
}

START_TEST(test_gemm_small_path_order)
{
    static const size_t ms[] = {1, 3, 4, 5, 9, 63, 64, 67, 130};
    static const size_t ks[] = {1, 7, 15, 16, 17, 40, 256};
    size_t nk = 0;
    const nvp_gemm_kernel *const *kerns = nvp__gemm_kernels(&nk);
    t_prng p;
    t_prng_seed(&p, 9400);
    size_t ran = 0;
    for (size_t ki = 0; ki < nk; ki++) {
        const nvp_gemm_kernel *kern = kerns[ki];
        if (!kern->supported() || !kern->small_n)
            continue;
        for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++)
            for (size_t kk = 0; kk < sizeof ks / sizeof *ks; kk++)
                for (size_t n = 1; n <= NVP_SMALL_N; n++)
                    for (int form = 0; form < 4; form++) {
                        const int ta = form >> 1, tb = form & 1;
                        const size_t m = ms[mi], k = ks[kk];
                        const size_t lda = ta ? m + 3 : k + 5, ldb = tb ? k + 2 : n + 1;
                        const size_t ldc = n + m % 3; /* C's rows padded or not */
                        /* the ReLU on odd k, the gate on odd m: every output's
                         * own bits show where neither is on */
                        const int relu = (int)(k % 2), gate = (int)(m % 2);
                        float *A = t_xmalloc((ta ? k * lda : m * lda) * sizeof *A);
                        float *B = t_xmalloc((tb ? n * ldb : k * ldb) * sizeof *B);
                        float *C = t_xmalloc(m * ldc * sizeof *C), *C0 = t_xmalloc(m * ldc * sizeof *C0);
                        float *G = t_xmalloc(m * n * sizeof *G);
                        float *work = t_xmalloc(n * k * sizeof *work);
                        float bias[NVP_SMALL_N], cs[NVP_SMALL_N], want_cs[NVP_SMALL_N];
                        t_fill_normal(&p, ta ? k * lda : m * lda, A, 1.0);
                        t_fill_normal(&p, tb ? n * ldb : k * ldb, B, 1.0);
                        t_fill_normal(&p, m * ldc, C0, 1.0);
                        t_fill_normal(&p, m * n, G, 1.0);
                        t_fill_normal(&p, n, bias, 1.0);
                        t_fill_normal(&p, n, cs, 1.0);
                        memcpy(want_cs, cs, sizeof cs);
                        memcpy(C, C0, m * ldc * sizeof *C);
                        const int acc = (int)((m + k + n) % 2);
                        nvp_epilogue ep = {bias, relu, gate ? G : NULL, n, cs, NULL, NULL};
                        kern->small_n(ta, tb, m, n, k, A, lda, B, ldb, acc, C, ldc, &ep, work);
                        for (size_t i = 0; i < m; i++) {
                            for (size_t j = 0; j < n; j++) {
                                const float t = small_reference(ta, tb, i, j, k, A, lda, B, ldb);
                                float v = acc ? C0[i * ldc + j] + t : t;
                                v += bias[j];
                                if (relu)
                                    v = v > 0.0f ? v : 0.0f;
                                if (gate)
                                    v = G[i * n + j] > 0.0f ? v : 0.0f;
                                want_cs[j] += v;
                                T_CHECK(memcmp(&v, &C[i * ldc + j], sizeof v) == 0,
                                        "%s few-column path, %zu x %zu x %zu, trans_a %d, trans_b %d: "
                                        "C[%zu][%zu] %.9g, its order gives %.9g",
                                        kern->name, m, n, k, ta, tb, i, j, (double)C[i * ldc + j],
                                        (double)v);
                            }
                            for (size_t j = n; j < ldc; j++) /* padding untouched */
                                T_CHECK(memcmp(&C[i * ldc + j], &C0[i * ldc + j], sizeof *C) == 0,
                                        "%s few-column path: C's padding at [%zu][%zu] written",
                                        kern->name, i, j);
                        }
                        const size_t d = t_first_diff(cs, want_cs, n);
                        T_CHECK(d == (size_t)-1,
                                "%s few-column path, %zu x %zu x %zu: colsum[%zu] %.9g, want %.9g",
                                kern->name, m, n, k, d, (double)cs[d], (double)want_cs[d]);
                        free(A);
                        free(B);
                        free(C);
                        free(C0);
                        free(G);
                        free(work);
                        ran++;
                    }
    }
    T_CHECK(ran > 0, "no kernel has a few-column path");
}
END_TEST

Suite *gemm_suite(void)
{
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("naive");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_loop_test(tc, test_gemm_shapes_against_naive, 0, (int)N_SHAPES);
    tcase_add_test(tc, test_gemm_kernel_table);
    tcase_add_test(tc, test_gemm_position_independent);
    tcase_add_test(tc, test_gemm_colsum_epilogue);
    tcase_add_test(tc, test_gemm_row_split_bitwise);
    tcase_add_test(tc, test_gemm_few_columns_bitwise);
    tcase_add_test(tc, test_gemm_absmax_epilogue);
    tcase_add_test(tc, test_gemm_small_path_order);
    suite_add_tcase(s, tc);
    return s;
}
