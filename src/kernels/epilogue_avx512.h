/* SPDX-License-Identifier: MIT */
/* The epilogue of gemm.h on 16 outputs of one row in a zmm register, for
 * the AVX-512 micro-kernels that keep a row in one register per 16
 * columns (the narrow float kernel, the bfloat16 kernel): the order and
 * NaN handling of nvp__epilogue_at, so every kernel gives the same bits.
 * Column sums are the caller's: it adds the returned rows in order. */
#ifndef NVP_EPILOGUE_AVX512_H
#define NVP_EPILOGUE_AVX512_H

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "kernels/gemm.h"

/* v = (accumulate ? C : 0) + the product, for row i and columns [j0, j0 +
 * 16) of the tile; stored to ci + j0 and returned.  ci is row i of C. */
static inline __attribute__((target("avx512f"), always_inline)) __m512
nvp__epilogue_store16(__m512 v, float *ci, size_t i, size_t j0,
                      int accumulate, const nvp_epilogue *ep)
{
    const __m512 zero = _mm512_setzero_ps();
    if (accumulate)
        v = _mm512_add_ps(_mm512_loadu_ps(ci + j0), v);
    if (ep && ep->bias)
        v = _mm512_add_ps(v, _mm512_loadu_ps(ep->bias + j0));
    if (ep && ep->relu) /* max(v, 0) returns 0 for NaN, as v > 0 ? v : 0 */
        v = _mm512_max_ps(v, zero);
    if (ep && ep->gate)
        v = _mm512_maskz_mov_ps(
            _mm512_cmp_ps_mask(_mm512_loadu_ps(ep->gate + i * ep->ldgate + j0),
                               zero, _CMP_GT_OQ),
            v);
    _mm512_storeu_ps(ci + j0, v);
    return v;
}
#endif

#endif
