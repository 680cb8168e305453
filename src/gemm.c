/* Blocked GEMM driver and packing routines (see gemm.h). */
#include "gemm.h"

#include <string.h>

#define MAX_TILE 2048 /* floats in the largest MR x NR tile of any kernel */

size_t nvp__gemm_pack_floats(const nvp_gemm_kernel *k)
{
    return k->mc * k->kc + k->kc * k->nc;
}

/* Packs the mc x kc block of op(A) starting at A into micro-panels of mr
 * rows, each stored column by column; rows past mc are zero. */
static void pack_a(size_t mc, size_t kc, const float *a, size_t lda,
                   int trans, size_t mr, float *dst)
{
    for (size_t ir = 0; ir < mc; ir += mr) {
        const size_t rows = mc - ir < mr ? mc - ir : mr;
        if (trans) {
            /* op(A)(i, p) = a[p * lda + i]: each k is a contiguous row. */
            for (size_t p = 0; p < kc; p++) {
                const float *src = a + p * lda + ir;
                float *d = dst + p * mr;
                for (size_t i = 0; i < rows; i++)
                    d[i] = src[i];
                for (size_t i = rows; i < mr; i++)
                    d[i] = 0.0f;
            }
        } else {
            for (size_t i = 0; i < rows; i++) {
                const float *src = a + (ir + i) * lda;
                for (size_t p = 0; p < kc; p++)
                    dst[p * mr + i] = src[p];
            }
            for (size_t i = rows; i < mr; i++)
                for (size_t p = 0; p < kc; p++)
                    dst[p * mr + i] = 0.0f;
        }
        dst += mr * kc;
    }
}

/* Packs the kc x nc panel of op(B) into micro-panels of nr columns, each
 * stored row by row; columns past nc are zero. */
static void pack_b(size_t kc, size_t nc, const float *b, size_t ldb,
                   int trans, size_t nr, float *dst)
{
    for (size_t jr = 0; jr < nc; jr += nr) {
        const size_t cols = nc - jr < nr ? nc - jr : nr;
        if (trans) {
            /* op(B)(p, j) = b[j * ldb + p]. */
            for (size_t j = 0; j < cols; j++) {
                const float *src = b + (jr + j) * ldb;
                for (size_t p = 0; p < kc; p++)
                    dst[p * nr + j] = src[p];
            }
            for (size_t j = cols; j < nr; j++)
                for (size_t p = 0; p < kc; p++)
                    dst[p * nr + j] = 0.0f;
        } else {
            for (size_t p = 0; p < kc; p++) {
                const float *src = b + p * ldb + jr;
                float *d = dst + p * nr;
                memcpy(d, src, cols * sizeof *d);
                for (size_t j = cols; j < nr; j++)
                    d[j] = 0.0f;
            }
        }
        dst += nr * kc;
    }
}

/* The epilogue on the rows x cols tile at c (row i of the whole product is
 * row0 + i, column j is col0 + j). */
static void epilogue_tile(const nvp_epilogue *ep, float *c, size_t ldc,
                          size_t rows, size_t cols, size_t row0, size_t col0)
{
    for (size_t i = 0; i < rows; i++) {
        float *ci = c + i * ldc;
        if (ep->bias) {
            const float *bias = ep->bias + col0;
            for (size_t j = 0; j < cols; j++)
                ci[j] += bias[j];
        }
        if (ep->relu)
            for (size_t j = 0; j < cols; j++)
                ci[j] = ci[j] > 0.0f ? ci[j] : 0.0f;
        if (ep->gate) {
            const float *g = ep->gate + (row0 + i) * ep->ldgate + col0;
            for (size_t j = 0; j < cols; j++)
                ci[j] = g[j] > 0.0f ? ci[j] : 0.0f;
        }
    }
}

void nvp__gemm(const nvp_gemm_kernel *kern, float *pack, int trans_a,
               int trans_b, size_t m, size_t n, size_t k, const float *a,
               size_t lda, const float *b, size_t ldb, int accumulate,
               float *c, size_t ldc, const nvp_epilogue *ep)
{
    const size_t MR = kern->mr, NR = kern->nr;
    const size_t MC = kern->mc, KC = kern->kc, NC = kern->nc;
    float *apack = pack;
    float *bpack = pack + MC * KC;
    _Alignas(64) float tmp[MAX_TILE];

    if (k == 0) {
        for (size_t i = 0; i < m; i++)
            if (!accumulate)
                memset(c + i * ldc, 0, n * sizeof *c);
        if (ep)
            epilogue_tile(ep, c, ldc, m, n, 0, 0);
        return;
    }

    for (size_t jc = 0; jc < n; jc += NC) {
        const size_t nc = n - jc < NC ? n - jc : NC;
        for (size_t pc = 0; pc < k; pc += KC) {
            const size_t kc = k - pc < KC ? k - pc : KC;
            const int acc = accumulate || pc > 0;
            const int last = pc + kc == k;
            const float *bsrc = trans_b ? b + jc * ldb + pc : b + pc * ldb + jc;
            pack_b(kc, nc, bsrc, ldb, trans_b, NR, bpack);
            for (size_t ic = 0; ic < m; ic += MC) {
                const size_t mc = m - ic < MC ? m - ic : MC;
                const float *asrc =
                    trans_a ? a + pc * lda + ic : a + ic * lda + pc;
                pack_a(mc, kc, asrc, lda, trans_a, MR, apack);
                for (size_t jr = 0; jr < nc; jr += NR) {
                    const size_t cols = nc - jr < NR ? nc - jr : NR;
                    const float *bp = bpack + jr * kc;
                    for (size_t ir = 0; ir < mc; ir += MR) {
                        const size_t rows = mc - ir < MR ? mc - ir : MR;
                        const float *ap = apack + ir * kc;
                        float *cp = c + (ic + ir) * ldc + jc + jr;
                        if (rows == MR && cols == NR) {
                            kern->kernel(kc, ap, bp, cp, ldc, acc);
                        } else {
                            kern->kernel(kc, ap, bp, tmp, NR, 0);
                            for (size_t i = 0; i < rows; i++)
                                for (size_t j = 0; j < cols; j++)
                                    cp[i * ldc + j] =
                                        acc ? cp[i * ldc + j] + tmp[i * NR + j]
                                            : tmp[i * NR + j];
                        }
                        if (last && ep)
                            epilogue_tile(ep, cp, ldc, rows, cols, ic + ir,
                                          jc + jr);
                    }
                }
            }
        }
    }
}
