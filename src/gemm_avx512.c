/* AVX-512F micro-kernel: a 10 x 32 tile in 20 zmm accumulators.  Ten rows
 * make the library's usual row counts (100-row minibatches, 256-row
 * chunks, 512-wide layers) nearly free of edge tiles; two zmm columns keep
 * one B load per two FMAs, with A broadcast straight from memory. */
#include "gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define MR 10
#define NR 32

__attribute__((target("avx512f"))) static void
kernel_avx512(size_t kc, const float *a, const float *b, float *c, size_t ldc,
              int accumulate)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps();
    __m512 c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
    __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps();
    __m512 c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
    __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps();
    __m512 c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
    __m512 c60 = _mm512_setzero_ps(), c61 = _mm512_setzero_ps();
    __m512 c70 = _mm512_setzero_ps(), c71 = _mm512_setzero_ps();
    __m512 c80 = _mm512_setzero_ps(), c81 = _mm512_setzero_ps();
    __m512 c90 = _mm512_setzero_ps(), c91 = _mm512_setzero_ps();
    for (size_t p = 0; p < kc; p++) {
        const __m512 b0 = _mm512_load_ps(b);
        const __m512 b1 = _mm512_load_ps(b + 16);
        __m512 t;
#define ROW(i)                                   \
    t = _mm512_set1_ps(a[i]);                    \
    c##i##0 = _mm512_fmadd_ps(t, b0, c##i##0);   \
    c##i##1 = _mm512_fmadd_ps(t, b1, c##i##1);
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7) ROW(8) ROW(9)
#undef ROW
        a += MR;
        b += NR;
    }
#define STORE(i)                                                             \
    do {                                                                     \
        float *ci = c + (i) * ldc;                                           \
        if (accumulate) {                                                    \
            c##i##0 = _mm512_add_ps(_mm512_loadu_ps(ci), c##i##0);           \
            c##i##1 = _mm512_add_ps(_mm512_loadu_ps(ci + 16), c##i##1);      \
        }                                                                    \
        _mm512_storeu_ps(ci, c##i##0);                                       \
        _mm512_storeu_ps(ci + 16, c##i##1);                                  \
    } while (0)
    STORE(0); STORE(1); STORE(2); STORE(3); STORE(4);
    STORE(5); STORE(6); STORE(7); STORE(8); STORE(9);
#undef STORE
}

static int avx512_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

const nvp_gemm_kernel nvp__gemm_avx512 = {
    "avx512", MR, NR, 120, 512, 512, kernel_avx512, avx512_supported,
};
#endif
