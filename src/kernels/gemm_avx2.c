/* SPDX-License-Identifier: MIT */
/* AVX2 + FMA micro-kernel: a 6 x 16 tile in 12 ymm accumulators, the
 * classic shape for 16 vector registers (12 accumulators, 2 B columns,
 * 1 broadcast), and a 4 x 16 twin for a block's last rows where they split
 * into 4-row tiles exactly (256 = 42 x 6 + 4, 128 = 20 x 6 + 2 x 4). */
#include "kernels/gemm.h"
#include "kernels/gemm_small.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define MR 6
#define MR_SHORT 4
#define NR 16

/* The tile of `rows` rows (MR or MR_SHORT, a constant once inlined, so
 * the accumulators live in registers): each output an FMA chain over k
 * from zero, added to C once, then gemm.h's epilogue in its order, so
 * every tile height gives the same bits. */
static inline __attribute__((target("avx2,fma"), always_inline)) void
tile_avx2(const int rows, size_t kc, const float *a, size_t rs_a,
          size_t cs_a, const float *b, size_t rs_b, float *c, size_t ldc,
          int accumulate, const nvp_epilogue *ep)
{
    __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
    for (int i = 0; i < rows; i++) {
        c0[i] = _mm256_setzero_ps();
        c1[i] = _mm256_setzero_ps();
    }
    /* Two row pointers, so that every row is a small multiple of rs_a off
     * one of them. */
    const int half = rows / 2;
    const float *a0 = a, *ah = a + (size_t)half * rs_a;
    for (size_t p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_loadu_ps(b);
        const __m256 b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < rows; i++) {
            const __m256 t = _mm256_broadcast_ss(
                i < half ? a0 + (size_t)i * rs_a
                         : ah + (size_t)(i - half) * rs_a);
            c0[i] = _mm256_fmadd_ps(t, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(t, b1, c1[i]);
        }
        a0 += cs_a;
        ah += cs_a;
        b += rs_b;
    }
    const __m256 zero = _mm256_setzero_ps();
    __m256 bias0 = zero, bias1 = zero;
    const int has_bias = ep && ep->bias, relu = ep && ep->relu;
    const int gate = ep && ep->gate;
    if (has_bias) { /* once: the stores below could alias it */
        bias0 = _mm256_loadu_ps(ep->bias);
        bias1 = _mm256_loadu_ps(ep->bias + 8);
    }
#pragma GCC unroll 6
    for (int i = 0; i < rows; i++) {
        float *ci = c + (size_t)i * ldc;
        if (accumulate) {
            c0[i] = _mm256_add_ps(_mm256_loadu_ps(ci), c0[i]);
            c1[i] = _mm256_add_ps(_mm256_loadu_ps(ci + 8), c1[i]);
        }
        if (has_bias) {
            c0[i] = _mm256_add_ps(c0[i], bias0);
            c1[i] = _mm256_add_ps(c1[i], bias1);
        }
        if (relu) { /* max(v, 0) returns 0 for NaN, as v > 0 ? v : 0 */
            c0[i] = _mm256_max_ps(c0[i], zero);
            c1[i] = _mm256_max_ps(c1[i], zero);
        }
        if (gate) {
            const float *g = ep->gate + (size_t)i * ep->ldgate;
            c0[i] = _mm256_and_ps(
                _mm256_cmp_ps(_mm256_loadu_ps(g), zero, _CMP_GT_OQ), c0[i]);
            c1[i] = _mm256_and_ps(
                _mm256_cmp_ps(_mm256_loadu_ps(g + 8), zero, _CMP_GT_OQ),
                c1[i]);
        }
        _mm256_storeu_ps(ci, c0[i]);
        _mm256_storeu_ps(ci + 8, c1[i]);
    }
    if (ep && ep->colsum) { /* one row at a time, in order */
        __m256 s0 = _mm256_loadu_ps(ep->colsum);
        __m256 s1 = _mm256_loadu_ps(ep->colsum + 8);
#pragma GCC unroll 6
        for (int i = 0; i < rows; i++) {
            s0 = _mm256_add_ps(s0, c0[i]);
            s1 = _mm256_add_ps(s1, c1[i]);
        }
        _mm256_storeu_ps(ep->colsum, s0);
        _mm256_storeu_ps(ep->colsum + 8, s1);
    }
}

__attribute__((target("avx2,fma"))) static void
kernel_avx2(size_t kc, const float *a, size_t rs_a, size_t cs_a,
            const float *b, size_t rs_b, float *c, size_t ldc, int accumulate,
            const nvp_epilogue *ep)
{
    tile_avx2(MR, kc, a, rs_a, cs_a, b, rs_b, c, ldc, accumulate, ep);
}

/* The tiles of fewer rows: MR_SHORT for the ends of blocks that split
 * into such tiles, every height for a product's last few rows (gemm.h's
 * exact_rows). */
#define TILE_OF_HEIGHT(r)                                                    \
    __attribute__((target("avx2,fma"))) static void                          \
    kernel_avx2_rows##r(size_t kc, const float *a, size_t rs_a, size_t cs_a, \
                        const float *b, size_t rs_b, float *c, size_t ldc,   \
                        int accumulate, const nvp_epilogue *ep)              \
    {                                                                        \
        tile_avx2(r, kc, a, rs_a, cs_a, b, rs_b, c, ldc, accumulate, ep);    \
    }
TILE_OF_HEIGHT(1)
TILE_OF_HEIGHT(2)
TILE_OF_HEIGHT(3)
TILE_OF_HEIGHT(4)
TILE_OF_HEIGHT(5)
#undef TILE_OF_HEIGHT

static const nvp_ukernel_fn exact_avx2[MR] = {
    NULL, kernel_avx2_rows1, kernel_avx2_rows2, kernel_avx2_rows3,
    kernel_avx2_rows4, kernel_avx2_rows5,
};

static int avx2_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

__attribute__((target("avx2,fma"))) static void
small_n_avx2(int trans_a, int trans_b, size_t m, size_t n, size_t k,
             const float *a, size_t lda, const float *b, size_t ldb,
             int accumulate, float *c, size_t ldc,
             const nvp_epilogue *ep, float *work)
{
    nvp__gemm_small_body(trans_a, trans_b, m, n, k, a, lda, b, ldb,
                         accumulate, c, ldc, ep, work);
}

/* Packs whole 16-column panels of a B that is not transposed: each panel
 * row two ymm moves, where the generic packer calls memcpy. */
__attribute__((target("avx2,fma"))) static void
pack_b_rows_avx2(size_t kc, size_t cols, const float *b, size_t ldb,
                 float *dst)
{
    nvp__pack_b_rows_body(kc, cols, b, ldb, NR, dst);
}

const nvp_gemm_kernel nvp__gemm_avx2 = {
    "avx2", MR, NR, 120, 256, 1024, kernel_avx2, avx2_supported, NULL, small_n_avx2,
    NULL, 0, 0, NULL, 0, 0, exact_avx2, MR_SHORT, pack_b_rows_avx2,
};
#endif
