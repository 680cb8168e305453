/* SPDX-License-Identifier: MIT */
/* What the matrix multiplies of one call run with: the kernel, the
 * calling thread's packing buffer and, when the call holds its handle's
 * thread pool, the pool. */
#ifndef NVP_EXEC_H
#define NVP_EXEC_H

#include "kernels/gemm.h"
#include "runtime/threadpool.h"

typedef struct nvp_exec {
    const nvp_gemm_kernel *kernel;
    float *pack;
    nvp_pool *pool; /* NULL: this thread only */
} nvp_exec;

/* nvp__gemm, with the output columns split between the pool's threads
 * when the product is large enough to gain from it.  Each thread computes
 * whole NR-wide column panels with the same reduction order, so the
 * result is bitwise the same for any thread count. */
void nvp__exec_gemm(const nvp_exec *ex, int trans_a, int trans_b, size_t m,
                    size_t n, size_t k, const float *a, size_t lda,
                    const float *b, size_t ldb, int accumulate, float *c,
                    size_t ldc, const nvp_epilogue *ep);

#endif
