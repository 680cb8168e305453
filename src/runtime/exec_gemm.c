/* SPDX-License-Identifier: MIT */
/* Matrix multiply over a handle's thread pool, split by columns or rows. */
#include "runtime/exec.h"
#include "kernels/gemm_small.h"

/* Below this much work a product stays on one thread: handing out a job
 * and waiting for its slower half would cost more than it saves.  Work
 * counts multiply-adds, with k taken as at least PARALLEL_MIN_K: a
 * product over a short k (the input gradient of a conditioner's output
 * layer, k = 2 |b|) still writes all of its m x n outputs through the
 * epilogue.  At 2^18 rather than 2^20 the output
 * layer of a D = 8 coupling (256 x 8 x 256) and its weight gradient are
 * shared out too: its two-thread step 3.6% faster. */
#define PARALLEL_MIN_FMA ((size_t)1 << 18)
#define PARALLEL_MIN_K ((size_t)32)

typedef struct gemm_job {
    nvp_pool *pool;
    const nvp_gemm_kernel *kernel;
    int trans_a, trans_b;
    size_t m, n, k;
    const float *a, *b;
    size_t lda, ldb, ldc;
    int accumulate;
    float *c;
    const nvp_epilogue *ep;
    int bf16;
    int small;       /* through the kernel's few-column path */
    int by_rows;     /* split by rows, else by columns */
    size_t per_task; /* rows or columns per task */
} gemm_job;

/* The float driver, or the bfloat16 one. */
static void run_gemm(const nvp_gemm_kernel *kern, int bf16, float *pack,
                     int trans_a, int trans_b, size_t m, size_t n, size_t k,
                     const float *a, size_t lda, const float *b, size_t ldb,
                     int accumulate, float *c, size_t ldc,
                     const nvp_epilogue *ep)
{
    if (bf16)
        nvp__gemm_bf16(pack, trans_a, trans_b, m, n, k, a, lda, b, ldb,
                       accumulate, c, ldc, ep);
    else
        nvp__gemm(kern, pack, trans_a, trans_b, m, n, k, a, lda, b, ldb,
                  accumulate, c, ldc, ep);
}

/* The kernel's few-column path, which measures nothing itself: C (at
 * most NVP_SMALL_N columns) and B measured once done when ep asks. */
static void run_small(const nvp_gemm_kernel *kern, int trans_a, int trans_b,
                      size_t m, size_t n, size_t k, const float *a,
                      size_t lda, const float *b, size_t ldb, int accumulate,
                      float *c, size_t ldc, const nvp_epilogue *ep,
                      float *work)
{
    nvp_epilogue core;
    nvp_absmax *c_absmax, *b_absmax;
    ep = nvp__epilogue_core(ep, &core, &c_absmax, &b_absmax);
    kern->small_n(trans_a, trans_b, m, n, k, a, lda, b, ldb, accumulate, c,
                  ldc, ep, work);
    nvp__absmax_after(c_absmax, b_absmax, trans_b, m, n, k, b, ldb, c, ldc);
}

/* One task's part of C: rows [lo, hi) when the job is split by rows,
 * columns [lo, hi) otherwise, through the few-column path or a driver. */
static void part_task(void *arg, size_t task, size_t worker)
{
    const gemm_job *j = arg;
    const size_t len = j->by_rows ? j->m : j->n;
    const size_t lo = task * j->per_task;
    const size_t hi = lo + j->per_task < len ? lo + j->per_task : len;
    const size_t r0 = j->by_rows ? lo : 0, c0 = j->by_rows ? 0 : lo;
    const size_t m = j->by_rows ? hi - lo : j->m;
    const size_t n = j->by_rows ? j->n : hi - lo;
    nvp_epilogue ep;
    const nvp_epilogue *pep = NULL;
    if (j->ep) {
        ep = nvp__epilogue_offset(j->ep, r0, c0);
        pep = &ep;
    }
    /* Row r of op(A) starts at a + r * lda, or at column r when A is
     * stored transposed; likewise column c of op(B). */
    const float *a = j->trans_a ? j->a + r0 : j->a + r0 * j->lda;
    const float *b = j->trans_b ? j->b + c0 * j->ldb : j->b + c0;
    float *c = j->c + r0 * j->ldc + c0;
    float *pack = nvp__pool_pack(j->pool, worker);
    if (j->small)
        run_small(j->kernel, j->trans_a, j->trans_b, m, n, j->k, a, j->lda,
                  b, j->ldb, j->accumulate, c, j->ldc, pep, pack);
    else
        run_gemm(j->kernel, j->bf16, pack, j->trans_a, j->trans_b, m, n,
                 j->k, a, j->lda, b, j->ldb, j->accumulate, c, j->ldc, pep);
}

/* Few-column products split over rows: every row of C is computed on its
 * own, in the same order whatever the split. */
#define SMALL_PARALLEL_MIN_FMA ((size_t)1 << 15)
#define SMALL_MIN_ROWS_PER_TASK 16

/* Also routes products with at most NVP_SMALL_N columns to the kernel's
 * few-column path, always in float, and the others with at least
 * NVP_BF16_MIN_K terms to the bfloat16 product when ex->bf16 asks for it.
 * The choice depends on the shape alone, never on the
 * thread count, and is made before any split. */
void nvp__exec_gemm(const nvp_exec *ex, int trans_a, int trans_b, size_t m,
                    size_t n, size_t k, const float *a, size_t lda,
                    const float *b, size_t ldb, int accumulate, float *c,
                    size_t ldc, const nvp_epilogue *ep)
{
    if (n <= NVP_SMALL_N && ex->kernel->small_n &&
        n * k <= nvp__gemm_pack_floats(ex->kernel)) {
        const size_t threads = nvp__pool_threads(ex->pool);
        /* Column sums need the rows in order: no split over rows. */
        if (threads > 1 && m * n * k >= SMALL_PARALLEL_MIN_FMA &&
            m >= 2 * SMALL_MIN_ROWS_PER_TASK && !(ep && ep->colsum)) {
            size_t per = (m + threads - 1) / threads;
            if (per < SMALL_MIN_ROWS_PER_TASK)
                per = SMALL_MIN_ROWS_PER_TASK;
            gemm_job g = {ex->pool, ex->kernel, trans_a, trans_b, m, n, k, a, b,
                          lda, ldb, ldc, accumulate, c, ep, 0, 1, 1, per};
            nvp__pool_run(ex->pool, (m + per - 1) / per, part_task, &g);
            return;
        }
        run_small(ex->kernel, trans_a, trans_b, m, n, k, a, lda, b, ldb,
                  accumulate, c, ldc, ep, ex->pack);
        return;
    }
    const int bf16 = ex->bf16 && k >= NVP_BF16_MIN_K && n > NVP_SMALL_N;
    const size_t threads = nvp__pool_threads(ex->pool);
    /* Whole register panels per thread: the bfloat16 kernel's are 32
     * wide whatever the float kernel's. */
    const size_t nr = bf16 ? NVP_BF16_NR : ex->kernel->nr;
    const size_t work_k = k > PARALLEL_MIN_K ? k : PARALLEL_MIN_K;
    if (threads > 1 && m * n * work_k >= PARALLEL_MIN_FMA && n >= 2 * nr) {
        /* Whole NR panels per thread, as evenly as they go. */
        const size_t panels = (n + nr - 1) / nr;
        const size_t per = (panels + threads - 1) / threads * nr;
        gemm_job j = {ex->pool, ex->kernel, trans_a, trans_b, m, n, k, a, b,
                      lda, ldb, ldc, accumulate, c, ep, bf16, 0, 0, per};
        nvp__pool_run(ex->pool, (n + per - 1) / per, part_task, &j);
        return;
    }
    /* Too few columns to share out (a narrow table's output layer, its
     * weight gradient): whole row panels per thread instead.  Each row of
     * C is reduced the same way wherever it lies; column sums need the
     * rows in order, so not with those. */
    const nvp_gemm_kernel *kern = ex->kernel;
    size_t narrow_mr = 0, narrow_nr = 0;
    const int narrow =
        !bf16 && nvp__gemm_narrow_for(kern, n, &narrow_mr, &narrow_nr);
    const size_t mr = bf16 ? NVP_BF16_MR : narrow ? narrow_mr : kern->mr;
    const size_t n_done = narrow ? narrow_nr : (n + nr - 1) / nr * nr;
    if (threads > 1 && m * n_done * work_k >= PARALLEL_MIN_FMA &&
        m >= 2 * mr && !(ep && ep->colsum)) {
        const size_t panels = (m + mr - 1) / mr;
        const size_t per = (panels + threads - 1) / threads * mr;
        gemm_job j = {ex->pool, kern, trans_a, trans_b, m, n, k, a, b,
                      lda, ldb, ldc, accumulate, c, ep, bf16, 0, 1, per};
        nvp__pool_run(ex->pool, (m + per - 1) / per, part_task, &j);
        return;
    }
    run_gemm(kern, bf16, ex->pack, trans_a, trans_b, m, n, k, a, lda, b, ldb,
             accumulate, c, ldc, ep);
}
