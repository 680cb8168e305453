/* SPDX-License-Identifier: MIT */
/* The portable micro-kernel: plain C that the compiler vectorises for the
 * baseline instruction set.  Always built; every CPU runs it. */
#include "kernels/gemm.h"
#include "kernels/gemm_small.h"

#define MR 4
#define NR 8

static void kernel_portable(size_t kc, const float *a, size_t rs_a,
                            size_t cs_a, const float *b, size_t rs_b,
                            float *c, size_t ldc, int accumulate,
                            const nvp_epilogue *ep)
{
    float t[MR][NR] = {{0}};
    for (size_t p = 0; p < kc; p++) {
        const float *ap = a + p * cs_a;
        const float *bp = b + p * rs_b;
        for (int i = 0; i < MR; i++) {
            const float ai = ap[i * rs_a];
            for (int j = 0; j < NR; j++)
                t[i][j] += ai * bp[j];
        }
    }
    for (int i = 0; i < MR; i++) {
        float *ci = c + i * ldc;
        for (int j = 0; j < NR; j++) {
            const float v = accumulate ? ci[j] + t[i][j] : t[i][j];
            ci[j] = nvp__epilogue_at(v, ep, (size_t)i, (size_t)j);
        }
    }
}

static int always(void) { return 1; }

static void
small_n_portable(int trans_a, int trans_b, size_t m, size_t n, size_t k,
                 const float *a, size_t lda, const float *b, size_t ldb,
                 int accumulate, float *c, size_t ldc,
                 const nvp_epilogue *ep, float *work)
{
    nvp__gemm_small_body(trans_a, trans_b, m, n, k, a, lda, b, ldb,
                         accumulate, c, ldc, ep, work);
}

const nvp_gemm_kernel nvp__gemm_portable = {
    "portable",       MR, NR, 64, 256, 1024, kernel_portable, always, NULL,
    small_n_portable, NULL, 0, 0, NULL, 0, 0, NULL, 0, NULL,
};
