/* SPDX-License-Identifier: MIT */
/* What one call runs with: its handle's kernel level (and matrix-multiply
 * kernel), the calling thread's packing buffer and, when the call holds
 * its handle's thread pool, the pool; and the kernels run over it, their
 * work shared out between the pool's threads. */
#ifndef NVP_EXEC_H
#define NVP_EXEC_H

#include "core/cpu.h"
#include "kernels/gemm.h"
#include "kernels/gemm_bf16.h"
#include "kernels/sweep.h"
#include "runtime/threadpool.h"

typedef struct nvp_exec {
    const nvp_gemm_kernel *kernel;
    nvp_isa isa;
    float *pack;
    nvp_pool *pool; /* NULL: this thread only */
    int bf16;       /* large products in bfloat16 (kernels/gemm_bf16.h) */
    /* Set on a backward pass's last chunk, when its caller checks the
     * gradient: layers whose kind `measures` (model/layer.h) max-combine
     * the largest |g| of their whole gradient into it, the weight
     * gradients as their products store them (gemm.h's nvp_absmax).
     * NULL otherwise. */
    nvp_absmax *grad_max;
    /* Set on the first chunk's inverse pass of a call that checks the
     * parameters as it reads them: layers whose kind `measures`
     * max-combine the largest |p| of their parameters into it, the
     * weights as their products read them.  NULL otherwise. */
    nvp_absmax *params_max;
} nvp_exec;

/* Products with at least this many terms per output run in bfloat16 when
 * the call asks for it (nvp_exec.bf16); shorter ones gain nothing from it
 * and stay in float. */
#define NVP_BF16_MIN_K 32

/* nvp__gemm, with the output columns split between the pool's threads
 * when the product is large enough to gain from it.  Each thread computes
 * whole NR-wide column panels with the same reduction order, so the
 * result is bitwise the same for any thread count. */
void nvp__exec_gemm(const nvp_exec *ex, int trans_a, int trans_b, size_t m,
                    size_t n, size_t k, const float *a, size_t lda,
                    const float *b, size_t ldb, int accumulate, float *c,
                    size_t ldc, const nvp_epilogue *ep);

/* fn(arg, lo, hi) over rows [lo, hi) covering [0, rows): blocks of rows
 * shared out over ex->pool when there are enough of them, else run on
 * this thread at once.  For work whose every row is computed on its own
 * (a coupling's affine step and its gradients), so that the split does
 * not change any bit. */
typedef void (*nvp_rows_fn)(void *arg, size_t lo, size_t hi);
void nvp__exec_rows(const nvp_exec *ex, size_t rows, nvp_rows_fn fn,
                    void *arg);

/* The single-input sweep (kernels/sweep.h) with its column blocks shared
 * out between the pool's threads, and the forward's three sorts too where
 * rows and units number at least 256.  Only whole blocks are shared out
 * and every sum across columns is formed per block, so the bits do not
 * depend on the thread count. */
void nvp__exec_sweep_forward(const nvp_exec *ex, const nvp_sweep_net *net,
                             size_t rows, const float *x, float *z,
                             float *scratch);
void nvp__exec_sweep_backward(const nvp_exec *ex, const nvp_sweep_net *net,
                              size_t rows, const float *x, const float *dz,
                              const nvp_sweep_grad *grad, float *din,
                              float *scratch, int fresh);

#endif
