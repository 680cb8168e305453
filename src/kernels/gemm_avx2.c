/* SPDX-License-Identifier: MIT */
/* AVX2 + FMA micro-kernel: a 6 x 16 tile in 12 ymm accumulators, the
 * classic shape for 16 vector registers (12 accumulators, 2 B columns,
 * 1 broadcast). */
#include "kernels/gemm.h"
#include "kernels/gemm_small.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define MR 6
#define NR 16

__attribute__((target("avx2,fma"))) static void
kernel_avx2(size_t kc, const float *a, size_t rs_a, size_t cs_a,
            const float *b, size_t rs_b, float *c, size_t ldc, int accumulate,
            const nvp_epilogue *ep)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    const float *a0 = a, *a3 = a + 3 * rs_a;
    for (size_t p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_loadu_ps(b);
        const __m256 b1 = _mm256_loadu_ps(b + 8);
        __m256 t;
#define ROW(i, base, off)                        \
    t = _mm256_broadcast_ss(base + (off) * rs_a); \
    c##i##0 = _mm256_fmadd_ps(t, b0, c##i##0);   \
    c##i##1 = _mm256_fmadd_ps(t, b1, c##i##1);
        ROW(0, a0, 0) ROW(1, a0, 1) ROW(2, a0, 2)
        ROW(3, a3, 0) ROW(4, a3, 1) ROW(5, a3, 2)
#undef ROW
        a0 += cs_a;
        a3 += cs_a;
        b += rs_b;
    }
    const __m256 zero = _mm256_setzero_ps();
    __m256 bias0 = zero, bias1 = zero;
    const int has_bias = ep && ep->bias, relu = ep && ep->relu;
    const int gate = ep && ep->gate;
    if (has_bias) {
        bias0 = _mm256_loadu_ps(ep->bias);
        bias1 = _mm256_loadu_ps(ep->bias + 8);
    }
#define STORE(i)                                                             \
    do {                                                                     \
        float *ci = c + (i) * ldc;                                           \
        if (accumulate) {                                                    \
            c##i##0 = _mm256_add_ps(_mm256_loadu_ps(ci), c##i##0);           \
            c##i##1 = _mm256_add_ps(_mm256_loadu_ps(ci + 8), c##i##1);       \
        }                                                                    \
        if (has_bias) {                                                      \
            c##i##0 = _mm256_add_ps(c##i##0, bias0);                         \
            c##i##1 = _mm256_add_ps(c##i##1, bias1);                         \
        }                                                                    \
        if (relu) { /* max(v, 0) returns 0 for NaN, as v > 0 ? v : 0 */      \
            c##i##0 = _mm256_max_ps(c##i##0, zero);                          \
            c##i##1 = _mm256_max_ps(c##i##1, zero);                          \
        }                                                                    \
        if (gate) {                                                          \
            const float *g = ep->gate + (i) * ep->ldgate;                    \
            c##i##0 = _mm256_and_ps(                                         \
                _mm256_cmp_ps(_mm256_loadu_ps(g), zero, _CMP_GT_OQ),         \
                c##i##0);                                                    \
            c##i##1 = _mm256_and_ps(                                         \
                _mm256_cmp_ps(_mm256_loadu_ps(g + 8), zero, _CMP_GT_OQ),     \
                c##i##1);                                                    \
        }                                                                    \
        _mm256_storeu_ps(ci, c##i##0);                                       \
        _mm256_storeu_ps(ci + 8, c##i##1);                                   \
    } while (0)
    STORE(0); STORE(1); STORE(2); STORE(3); STORE(4); STORE(5);
#undef STORE
    if (ep && ep->colsum) { /* one row at a time, in order */
        __m256 s0 = _mm256_loadu_ps(ep->colsum);
        __m256 s1 = _mm256_loadu_ps(ep->colsum + 8);
#define SUM(i)                                                               \
    s0 = _mm256_add_ps(s0, c##i##0);                                         \
    s1 = _mm256_add_ps(s1, c##i##1);
        SUM(0) SUM(1) SUM(2) SUM(3) SUM(4) SUM(5)
#undef SUM
        _mm256_storeu_ps(ep->colsum, s0);
        _mm256_storeu_ps(ep->colsum + 8, s1);
    }
}

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

const nvp_gemm_kernel nvp__gemm_avx2 = {
    "avx2", MR, NR, 120, 256, 1024, kernel_avx2, avx2_supported, NULL, small_n_avx2,
    NULL, 0, 0, NULL, 0, 0, NULL, 0,
};
#endif
