/* Column-parallel matrix multiply over a handle's thread pool. */
#include "exec.h"
#include "gemm_small.h"

/* Below this many multiply-adds a product stays on one thread: waking the
 * pool costs a few microseconds. */
#define PARALLEL_MIN_FMA ((size_t)1 << 20)

typedef struct gemm_job {
    const nvp_gemm_kernel *kernel;
    int trans_a, trans_b;
    size_t m, n, k;
    const float *a, *b;
    size_t lda, ldb, ldc;
    int accumulate;
    float *c;
    const nvp_epilogue *ep;
    size_t cols_per_task;
} gemm_job;

static void gemm_task(void *arg, size_t task, size_t worker, float *pack)
{
    (void)worker;
    const gemm_job *j = arg;
    const size_t n0 = task * j->cols_per_task;
    const size_t n1 = n0 + j->cols_per_task < j->n ? n0 + j->cols_per_task : j->n;
    nvp_epilogue ep;
    const nvp_epilogue *pep = NULL;
    if (j->ep) {
        ep = *j->ep;
        if (ep.bias)
            ep.bias += n0;
        if (ep.gate)
            ep.gate += n0;
        pep = &ep;
    }
    const float *b = j->trans_b ? j->b + n0 * j->ldb : j->b + n0;
    nvp__gemm(j->kernel, pack, j->trans_a, j->trans_b, j->m, n1 - n0, j->k,
              j->a, j->lda, b, j->ldb, j->accumulate, j->c + n0, j->ldc, pep);
}

/* Also routes products with at most NVP_SMALL_N columns to the kernel's
 * few-column path.  The choice depends on the shape alone, never on the
 * thread count, and is made before any split. */
void nvp__exec_gemm(const nvp_exec *ex, int trans_a, int trans_b, size_t m,
                    size_t n, size_t k, const float *a, size_t lda,
                    const float *b, size_t ldb, int accumulate, float *c,
                    size_t ldc, const nvp_epilogue *ep)
{
    if (n <= NVP_SMALL_N && ex->kernel->small_n &&
        n * k <= nvp__gemm_pack_floats(ex->kernel)) {
        ex->kernel->small_n(trans_a, trans_b, m, n, k, a, lda, b, ldb,
                            accumulate, c, ldc, ep, ex->pack);
        return;
    }
    const size_t threads = nvp__pool_threads(ex->pool);
    const size_t nr = ex->kernel->nr;
    if (threads > 1 && m * n * k >= PARALLEL_MIN_FMA && n >= 2 * nr) {
        /* Whole NR panels per thread, as evenly as they go. */
        const size_t panels = (n + nr - 1) / nr;
        const size_t per = (panels + threads - 1) / threads * nr;
        gemm_job j = {ex->kernel, trans_a, trans_b, m, n, k, a, b,
                      lda, ldb, ldc, accumulate, c, ep, per};
        nvp__pool_run(ex->pool, (n + per - 1) / per, gemm_task, &j);
        return;
    }
    nvp__gemm(ex->kernel, ex->pack, trans_a, trans_b, m, n, k, a, lda, b, ldb,
              accumulate, c, ldc, ep);
}
