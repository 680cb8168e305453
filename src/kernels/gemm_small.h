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

/* The dot products of a product whose A is not transposed run side by
 * side, NVP_SMALL_DOT_ROWS rows and every column at once, where the
 * including file defines NVP_SMALL_SIDE_BY_SIDE (gemm_avx512.c): their
 * 4 x 4 sums of 16 lanes fill 16 zmm registers.  On narrower targets GCC
 * builds such 64-byte vectors through memory (with AVX2 three times
 * slower than one output at a time, the portable build 1.6 times; with
 * AVX2's own 8-lane vectors and one row, 8% slower), so they keep
 * computing one output at a time. */
#ifdef NVP_SMALL_SIDE_BY_SIDE
#define NVP_SMALL_DOT_ROWS 4

/* 16 lanes of floats in one AVX-512 register (GCC's vector extension),
 * each lane computed as a scalar would be, and its halves. */
typedef float nvp_small_v16 __attribute__((vector_size(64)));
typedef float nvp_small_v8 __attribute__((vector_size(32)));
typedef float nvp_small_v4 __attribute__((vector_size(16)));
typedef float nvp_small_v2 __attribute__((vector_size(8)));

/* t[j][at + r] = row r of A (r < rows, rows lda floats apart from a) dot
 * column j of B (bt + j * k), for j < n: each in 16 lanes, lane l summing
 * the terms p = l (mod 16) in order, then the lanes pairwise (8, 4, 2,
 * 1).  Inlined with rows constant, the rows * n sums run side by side,
 * where one alone would wait on its own adds. */
static inline __attribute__((always_inline)) void
nvp__small_dots(const size_t rows, size_t n, size_t k, const float *a,
                size_t lda, const float *bt, float t[][NVP_SMALL_ROWS],
                size_t at)
{
    nvp_small_v16 s[NVP_SMALL_DOT_ROWS][NVP_SMALL_N];
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < NVP_SMALL_N; j++)
            s[r][j] = (nvp_small_v16){0};
    size_t p = 0;
    for (; p + 16 <= k; p += 16)
        for (size_t r = 0; r < rows; r++) {
            nvp_small_v16 ar, bj;
            memcpy(&ar, a + r * lda + p, sizeof ar);
            for (size_t j = 0; j < NVP_SMALL_N; j++)
                if (j < n) {
                    memcpy(&bj, bt + j * k + p, sizeof bj);
                    s[r][j] += ar * bj;
                }
        }
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < n; j++) {
            float sj[16];
            memcpy(sj, &s[r][j], sizeof sj);
            for (size_t q = p, l = 0; q < k; q++, l++)
                sj[l] += a[r * lda + q] * bt[j * k + q];
            /* lanes l < w += lanes l + w, for w = 8, 4, 2: halves of
             * vectors */
            nvp_small_v8 h8[2];
            memcpy(h8, sj, sizeof h8);
            h8[0] += h8[1];
            nvp_small_v4 h4[2];
            memcpy(h4, &h8[0], sizeof h4);
            h4[0] += h4[1];
            nvp_small_v2 h2[2];
            memcpy(h2, &h4[0], sizeof h2);
            h2[0] += h2[1];
            t[j][at + r] = h2[0][0] + h2[0][1];
        }
}
#endif

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
             * summed pairwise in a fixed order at the end (above). */
#ifdef NVP_SMALL_SIDE_BY_SIDE
            size_t i = 0;
            for (; i + NVP_SMALL_DOT_ROWS <= rows; i += NVP_SMALL_DOT_ROWS)
                nvp__small_dots(NVP_SMALL_DOT_ROWS, n, k,
                                a + (i0 + i) * lda, lda, bt, t, i);
            for (; i < rows; i++)
                nvp__small_dots(1, n, k, a + (i0 + i) * lda, lda, bt, t, i);
#else
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
#endif
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
