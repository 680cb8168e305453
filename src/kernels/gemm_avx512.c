/* SPDX-License-Identifier: MIT */
/* AVX-512F micro-kernel: a 10 x 32 tile in 20 zmm accumulators.  Ten rows
 * make the library's usual row counts (100-row minibatches, 256-row
 * chunks, 512-wide layers) nearly free of edge tiles; two zmm columns give
 * two FMAs per broadcast of A, which comes straight from memory.  An 8 x
 * 32 twin takes a product's last rows where they split into 8-row tiles
 * (256 = 24 x 10 + 2 x 8), which would otherwise leave a padded edge
 * tile. */
#include "kernels/gemm.h"
/* the few-column path with its sums side by side (gemm_small.h) */
#define NVP_SMALL_SIDE_BY_SIDE
#include "kernels/gemm_small.h"
#include "kernels/epilogue_avx512.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define MR 10
#define MR_SHORT 8
#define NR 32
#define PREFETCH_A_STEPS 16

/* The tile of `rows` rows (MR or MR_SHORT, a constant once inlined, so
 * the accumulator arrays live in registers).  Each output is an FMA chain
 * over k from zero, added to C once, then gemm.h's epilogue in its order:
 * every tile height gives the same bits. */
static inline __attribute__((target("avx512f,prfchw"), always_inline)) void
tile_avx512(const int rows, size_t kc, const float *a, size_t rs_a,
            size_t cs_a, const float *b, size_t rs_b, float *c, size_t ldc,
            int accumulate, const nvp_epilogue *ep)
{
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 10
    for (int i = 0; i < rows; i++) {
        c0[i] = _mm512_setzero_ps();
        c1[i] = _mm512_setzero_ps();
    }
    /* What the epilogue reads, requested now so that it arrives while the
     * loop runs: the tile of C when adding to it (a weight gradient, cold
     * from the last step) and the gate's rows. */
    for (int i = 0; i < rows; i++) {
        __builtin_prefetch(c + i * ldc, 1, 3);
        __builtin_prefetch(c + i * ldc + 16, 1, 3);
    }
    if (ep && ep->gate)
        for (int i = 0; i < rows; i++) {
            _mm_prefetch((const char *)(ep->gate + i * ep->ldgate),
                         _MM_HINT_T0);
            _mm_prefetch((const char *)(ep->gate + i * ep->ldgate + 16),
                         _MM_HINT_T0);
        }
    /* A read transposed (a weight gradient's X^T) takes each step's
     * elements from a row of its own, far from the last: fetch them a few
     * steps ahead (3% off a D = 64 training step). */
    const size_t ahead = cs_a > 1 ? PREFETCH_A_STEPS * cs_a : 0;
    const size_t last_row = (size_t)(rows - 1) * rs_a;
    /* Two row pointers, so that every row is a small multiple of rs_a off
     * one of them. */
    const int half = rows / 2;
    const float *a0 = a, *ah = a + (size_t)half * rs_a;
    for (size_t p = 0; p < kc; p++) {
        const __m512 b0 = _mm512_loadu_ps(b);
        const __m512 b1 = _mm512_loadu_ps(b + 16);
        if (ahead) {
            _mm_prefetch((const char *)(a0 + ahead), _MM_HINT_T0);
            _mm_prefetch((const char *)(a0 + ahead + last_row), _MM_HINT_T0);
        }
#pragma GCC unroll 10
        for (int i = 0; i < rows; i++) {
            const __m512 t = _mm512_set1_ps(
                i < half ? a0[(size_t)i * rs_a]
                         : ah[(size_t)(i - half) * rs_a]);
            c0[i] = _mm512_fmadd_ps(t, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(t, b1, c1[i]);
        }
        a0 += cs_a;
        ah += cs_a;
        b += rs_b;
    }
    const __m512 zero = _mm512_setzero_ps();
    __m512 bias0 = zero, bias1 = zero;
    const int has_bias = ep && ep->bias, relu = ep && ep->relu;
    const int gate = ep && ep->gate;
    if (has_bias) { /* once: the stores below could alias it */
        bias0 = _mm512_loadu_ps(ep->bias);
        bias1 = _mm512_loadu_ps(ep->bias + 16);
    }
#pragma GCC unroll 10
    for (int i = 0; i < rows; i++) {
        float *ci = c + (size_t)i * ldc;
        if (accumulate) {
            c0[i] = _mm512_add_ps(_mm512_loadu_ps(ci), c0[i]);
            c1[i] = _mm512_add_ps(_mm512_loadu_ps(ci + 16), c1[i]);
        }
        if (has_bias) {
            c0[i] = _mm512_add_ps(c0[i], bias0);
            c1[i] = _mm512_add_ps(c1[i], bias1);
        }
        if (relu) { /* max(v, 0) returns 0 for NaN, as v > 0 ? v : 0 */
            c0[i] = _mm512_max_ps(c0[i], zero);
            c1[i] = _mm512_max_ps(c1[i], zero);
        }
        if (gate) {
            const float *g = ep->gate + (size_t)i * ep->ldgate;
            c0[i] = _mm512_maskz_mov_ps(
                _mm512_cmp_ps_mask(_mm512_loadu_ps(g), zero, _CMP_GT_OQ),
                c0[i]);
            c1[i] = _mm512_maskz_mov_ps(
                _mm512_cmp_ps_mask(_mm512_loadu_ps(g + 16), zero,
                                   _CMP_GT_OQ),
                c1[i]);
        }
        _mm512_storeu_ps(ci, c0[i]);
        _mm512_storeu_ps(ci + 16, c1[i]);
    }
    if (ep && ep->colsum) { /* one row at a time, in order */
        __m512 s0 = _mm512_loadu_ps(ep->colsum);
        __m512 s1 = _mm512_loadu_ps(ep->colsum + 16);
#pragma GCC unroll 10
        for (int i = 0; i < rows; i++) {
            s0 = _mm512_add_ps(s0, c0[i]);
            s1 = _mm512_add_ps(s1, c1[i]);
        }
        _mm512_storeu_ps(ep->colsum, s0);
        _mm512_storeu_ps(ep->colsum + 16, s1);
    }
}

__attribute__((target("avx512f,prfchw"))) static void
kernel_avx512(size_t kc, const float *a, size_t rs_a, size_t cs_a,
              const float *b, size_t rs_b, float *c, size_t ldc,
              int accumulate, const nvp_epilogue *ep)
{
    tile_avx512(MR, kc, a, rs_a, cs_a, b, rs_b, c, ldc, accumulate, ep);
}

/* The tiles of fewer rows: MR_SHORT for the ends of blocks that split
 * into such tiles, every height for a product's last few rows (gemm.h's
 * exact_rows). */
#define TILE_OF_HEIGHT(r)                                                    \
    __attribute__((target("avx512f,prfchw"))) static void                    \
    kernel_avx512_rows##r(size_t kc, const float *a, size_t rs_a,            \
                          size_t cs_a, const float *b, size_t rs_b,          \
                          float *c, size_t ldc, int accumulate,              \
                          const nvp_epilogue *ep)                            \
    {                                                                        \
        tile_avx512(r, kc, a, rs_a, cs_a, b, rs_b, c, ldc, accumulate, ep);  \
    }
TILE_OF_HEIGHT(1)
TILE_OF_HEIGHT(2)
TILE_OF_HEIGHT(3)
TILE_OF_HEIGHT(4)
TILE_OF_HEIGHT(5)
TILE_OF_HEIGHT(6)
TILE_OF_HEIGHT(7)
TILE_OF_HEIGHT(8)
TILE_OF_HEIGHT(9)
#undef TILE_OF_HEIGHT

static const nvp_ukernel_fn exact_avx512[MR] = {
    NULL,                  kernel_avx512_rows1, kernel_avx512_rows2,
    kernel_avx512_rows3,   kernel_avx512_rows4, kernel_avx512_rows5,
    kernel_avx512_rows6,   kernel_avx512_rows7, kernel_avx512_rows8,
    kernel_avx512_rows9,
};

/* The narrow micro-kernel: a 16 x 16 tile in 16 zmm accumulators, one
 * per row, for products of at most 16 columns (half the work of a 32-wide
 * tile on 8 columns).  Each output's arithmetic is kernel_avx512's: an FMA
 * chain over k from zero, added to C once, then the epilogue in order. */
#define MR_NARROW 16
#define NR_NARROW 16

__attribute__((target("avx512f"))) static void
kernel_avx512_narrow(size_t kc, const float *a, size_t rs_a, size_t cs_a,
                     const float *b, size_t rs_b, float *c, size_t ldc,
                     int accumulate, const nvp_epilogue *ep)
{
    __m512 acc[MR_NARROW];
#pragma GCC unroll 16
    for (int i = 0; i < MR_NARROW; i++)
        acc[i] = _mm512_setzero_ps();
    for (size_t p = 0; p < kc; p++) {
        const __m512 bv = _mm512_loadu_ps(b);
#pragma GCC unroll 16
        for (int i = 0; i < MR_NARROW; i++)
            acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[(size_t)i * rs_a]), bv,
                                     acc[i]);
        a += cs_a;
        b += rs_b;
    }
    __m512 sum = _mm512_setzero_ps();
    if (ep && ep->colsum)
        sum = _mm512_loadu_ps(ep->colsum);
#pragma GCC unroll 16
    for (int i = 0; i < MR_NARROW; i++) /* column sums: a row at a time */
        sum = _mm512_add_ps(sum, nvp__epilogue_store16(
                                     acc[i], c + (size_t)i * ldc, (size_t)i,
                                     0, accumulate, ep));
    if (ep && ep->colsum)
        _mm512_storeu_ps(ep->colsum, sum);
}

/* The narrowest micro-kernel: a 12 x 8 tile in 12 ymm accumulators, for
 * products of at most 8 columns (an output layer of a few dimensions, its
 * weight gradient), which would leave half of each zmm register of the
 * 16-wide tile empty.  On cores that split 512-bit operations in two
 * (Zen 4) two 256-bit FMAs issue per cycle, so this runs at the full
 * rate.  The arithmetic per output is kernel_avx512's. */
#define MR_NARROW8 12
#define NR_NARROW8 8

/* The epilogue of 8 outputs of row i, as nvp__epilogue_store16. */
static inline __attribute__((target("avx512f,fma"), always_inline)) __m256
epilogue_store8(__m256 v, float *ci, size_t i, int accumulate,
                const nvp_epilogue *ep)
{
    const __m256 zero = _mm256_setzero_ps();
    if (accumulate)
        v = _mm256_add_ps(_mm256_loadu_ps(ci), v);
    if (ep && ep->bias)
        v = _mm256_add_ps(v, _mm256_loadu_ps(ep->bias));
    if (ep && ep->relu) /* max(v, 0) returns 0 for NaN, as v > 0 ? v : 0 */
        v = _mm256_max_ps(v, zero);
    if (ep && ep->gate) /* all-ones where gate > 0 (false for NaN) */
        v = _mm256_and_ps(
            _mm256_cmp_ps(_mm256_loadu_ps(ep->gate + i * ep->ldgate), zero,
                          _CMP_GT_OQ),
            v);
    _mm256_storeu_ps(ci, v);
    return v;
}

__attribute__((target("avx512f,fma"))) static void
kernel_avx512_narrow8(size_t kc, const float *a, size_t rs_a, size_t cs_a,
                      const float *b, size_t rs_b, float *c, size_t ldc,
                      int accumulate, const nvp_epilogue *ep)
{
    /* Without AVX512VL only ymm0-15 exist: 12 accumulators, B and the
     * broadcast.  Rows in three groups of four off one pointer each, so
     * every address is a pointer plus a scaled stride. */
    __m256 acc[MR_NARROW8];
#pragma GCC unroll 12
    for (int i = 0; i < MR_NARROW8; i++)
        acc[i] = _mm256_setzero_ps();
    const float *a0 = a, *a4 = a + 4 * rs_a, *a8 = a + 8 * rs_a;
    const size_t rs3 = 3 * rs_a;
    for (size_t p = 0; p < kc; p++) {
        const __m256 bv = _mm256_loadu_ps(b);
#define ROW4(base, i0)                                                       \
    acc[i0] = _mm256_fmadd_ps(_mm256_broadcast_ss(base), bv, acc[i0]);       \
    acc[i0 + 1] =                                                            \
        _mm256_fmadd_ps(_mm256_broadcast_ss(base + rs_a), bv, acc[i0 + 1]);  \
    acc[i0 + 2] = _mm256_fmadd_ps(_mm256_broadcast_ss(base + 2 * rs_a), bv,  \
                                  acc[i0 + 2]);                              \
    acc[i0 + 3] =                                                            \
        _mm256_fmadd_ps(_mm256_broadcast_ss(base + rs3), bv, acc[i0 + 3]);
        ROW4(a0, 0) ROW4(a4, 4) ROW4(a8, 8)
#undef ROW4
        a0 += cs_a;
        a4 += cs_a;
        a8 += cs_a;
        b += rs_b;
    }
    __m256 sum = _mm256_setzero_ps();
    if (ep && ep->colsum)
        sum = _mm256_loadu_ps(ep->colsum);
#pragma GCC unroll 12
    for (int i = 0; i < MR_NARROW8; i++) /* column sums: a row at a time */
        sum = _mm256_add_ps(sum, epilogue_store8(acc[i], c + (size_t)i * ldc,
                                                 (size_t)i, accumulate, ep));
    if (ep && ep->colsum)
        _mm256_storeu_ps(ep->colsum, sum);
}

/* Transposes the 16 x 16 block whose row r starts at src + r * lds into
 * dst (row p of the result at dst + p * ldd): unpack pairs, then 64-bit
 * shuffles, then two rounds of 128-bit lane shuffles. */
__attribute__((target("avx512f"))) static void
transpose16(const float *src, size_t lds, float *dst, size_t ldd)
{
    __m512 r[16], t[16], u[16], v[16];
    for (int i = 0; i < 16; i++)
        r[i] = _mm512_loadu_ps(src + i * lds);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int g = 0; g < 16; g += 4) { /* rows g .. g+3 */
        u[g + 0] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44);
        u[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xEE);
        u[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        u[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    /* u[4q + k], lane L: rows 4q .. 4q+3 at column 4L + k. */
    for (int k = 0; k < 4; k++) {
        v[k] = _mm512_shuffle_f32x4(u[k], u[k + 4], 0x88);
        v[k + 4] = _mm512_shuffle_f32x4(u[k], u[k + 4], 0xDD);
        v[k + 8] = _mm512_shuffle_f32x4(u[k + 8], u[k + 12], 0x88);
        v[k + 12] = _mm512_shuffle_f32x4(u[k + 8], u[k + 12], 0xDD);
    }
    for (int k = 0; k < 4; k++) {
        _mm512_store_ps(dst + (k + 0) * ldd,
                        _mm512_shuffle_f32x4(v[k], v[k + 8], 0x88));
        _mm512_store_ps(dst + (k + 8) * ldd,
                        _mm512_shuffle_f32x4(v[k], v[k + 8], 0xDD));
        _mm512_store_ps(dst + (k + 4) * ldd,
                        _mm512_shuffle_f32x4(v[k + 4], v[k + 12], 0x88));
        _mm512_store_ps(dst + (k + 12) * ldd,
                        _mm512_shuffle_f32x4(v[k + 4], v[k + 12], 0xDD));
    }
}

/* Packs whole 32-column panels of a transposed B, 16 x 16 blocks at a
 * time through registers; a k tail shorter than 16 is copied directly. */
__attribute__((target("avx512f"))) static void
pack_b_trans_avx512(size_t kc, size_t cols, const float *b, size_t ldb,
                    float *dst)
{
    const size_t k16 = kc / 16 * 16;
    for (size_t jr = 0; jr < cols; jr += NR) {
        for (size_t half = 0; half < NR; half += 16) {
            const float *src = b + (jr + half) * ldb;
            for (size_t p = 0; p < k16; p += 16)
                transpose16(src + p, ldb, dst + p * NR + half, NR);
            for (size_t p = k16; p < kc; p++)
                for (size_t j = 0; j < 16; j++)
                    dst[p * NR + half + j] = src[j * ldb + p];
        }
        dst += NR * kc;
    }
}

/* Packs whole 32-column panels of a B that is not transposed: each panel
 * row two zmm moves, where the generic packer calls memcpy. */
__attribute__((target("avx512f"))) static void
pack_b_rows_avx512(size_t kc, size_t cols, const float *b, size_t ldb,
                   float *dst)
{
    nvp__pack_b_rows_body(kc, cols, b, ldb, NR, dst);
}

static int avx512_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

__attribute__((target("avx512f"))) static void
small_n_avx512(int trans_a, int trans_b, size_t m, size_t n, size_t k,
               const float *a, size_t lda, const float *b, size_t ldb,
               int accumulate, float *c, size_t ldc,
               const nvp_epilogue *ep, float *work)
{
    nvp__gemm_small_body(trans_a, trans_b, m, n, k, a, lda, b, ldb,
                         accumulate, c, ldc, ep, work);
}

const nvp_gemm_kernel nvp__gemm_avx512 = {
    "avx512",           MR,           NR,       120, 512, 512, kernel_avx512,
    avx512_supported,   pack_b_trans_avx512,    small_n_avx512,
    kernel_avx512_narrow, MR_NARROW, NR_NARROW,
    kernel_avx512_narrow8, MR_NARROW8, NR_NARROW8,
    exact_avx512, MR_SHORT, pack_b_rows_avx512,
};
#endif
