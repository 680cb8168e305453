/* SPDX-License-Identifier: MIT */
/* Products with very few output columns (n <= NVP_SMALL_N): a conditioner's
 * output layer (2 |b| columns), the input gradient of a one-input first
 * layer.  The register-tiled kernel would waste most of an NR-wide tile
 * on them; this path vectorises over rows or over k instead.
 *
 * The body is included by each kernel's source file so that it is
 * compiled once per instruction set with that file's target attribute. */
#ifndef NVP_GEMM_SMALL_H
#define NVP_GEMM_SMALL_H

#include "kernels/gemm.h"

#define NVP_SMALL_N 4
#define NVP_SMALL_ROWS 64

/* C (m x n) = epilogue((accumulate ? C : 0) + op(A) op(B)).  work holds
 * n * k floats. */
static inline __attribute__((always_inline)) void
nvp__gemm_small_body(int trans_a, int trans_b, size_t m, size_t n, size_t k,
                     const float *a, size_t lda, const float *b, size_t ldb,
                     int accumulate, float *c, size_t ldc,
                     const nvp_epilogue *ep, float *work)
{
    /* B transposed into work: column j of op(B) is work[j * k ...]. */
    float *bt = work;
    for (size_t j = 0; j < n; j++)
        for (size_t p = 0; p < k; p++)
            bt[j * k + p] = trans_b ? b[j * ldb + p] : b[p * ldb + j];
    float t[NVP_SMALL_N][NVP_SMALL_ROWS];
    for (size_t i0 = 0; i0 < m; i0 += NVP_SMALL_ROWS) {
        const size_t rows = m - i0 < NVP_SMALL_ROWS ? m - i0 : NVP_SMALL_ROWS;
        if (trans_a) {
            /* A's rows are contiguous along i: sweep them, n accumulators
             * per row, vectorised over i. */
            for (size_t j = 0; j < n; j++)
                for (size_t i = 0; i < rows; i++)
                    t[j][i] = 0.0f;
            for (size_t p = 0; p < k; p++) {
                const float *ap = a + p * lda + i0;
                for (size_t j = 0; j < n; j++) {
                    const float bj = bt[j * k + p];
                    for (size_t i = 0; i < rows; i++)
                        t[j][i] += ap[i] * bj;
                }
            }
        } else {
            /* A's rows are contiguous along k: dot products in 16 lanes,
             * summed pairwise in a fixed order at the end. */
            for (size_t i = 0; i < rows; i++) {
                const float *ai = a + (i0 + i) * lda;
                for (size_t j = 0; j < n; j++) {
                    const float *bj = bt + j * k;
                    float s[16] = {0};
                    size_t p = 0;
                    for (; p + 16 <= k; p += 16)
                        for (int l = 0; l < 16; l++)
                            s[l] += ai[p + l] * bj[p + l];
                    for (int l = 0; p < k; p++, l++)
                        s[l] += ai[p] * bj[p];
                    for (int w = 8; w >= 1; w /= 2)
                        for (int l = 0; l < w; l++)
                            s[l] += s[l + w];
                    t[j][i] = s[0];
                }
            }
        }
        for (size_t i = 0; i < rows; i++) {
            float *ci = c + (i0 + i) * ldc;
            for (size_t j = 0; j < n; j++) {
                const float v = accumulate ? ci[j] + t[j][i] : t[j][i];
                ci[j] = nvp__epilogue_at(v, ep, i0 + i, j);
            }
        }
    }
}

#endif
