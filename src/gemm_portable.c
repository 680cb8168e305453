/* The portable micro-kernel: plain C that the compiler vectorises for the
 * baseline instruction set.  Always built; every CPU runs it. */
#include "gemm.h"

#define MR 4
#define NR 8

static void kernel_portable(size_t kc, const float *a, const float *b,
                            float *c, size_t ldc, int accumulate)
{
    float t[MR][NR] = {{0}};
    for (size_t p = 0; p < kc; p++) {
        const float *ap = a + p * MR;
        const float *bp = b + p * NR;
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                t[i][j] += ap[i] * bp[j];
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + t[i][j] : t[i][j];
}

static int always(void) { return 1; }

const nvp_gemm_kernel nvp__gemm_portable = {
    "portable", MR, NR, 64, 256, 1024, kernel_portable, always,
};
