/* SPDX-License-Identifier: MIT */
/* The single-input sweep's column blocks over a handle's thread pool. */
#include "runtime/exec.h"

typedef struct sweep_run {
    const sweep_job *job;
    nvp_isa isa;
    size_t blocks, per_task;
    int backward;
} sweep_run;

static void sweep_task(void *arg, size_t task, size_t worker)
{
    (void)worker;
    const sweep_run *r = arg;
    const size_t blo = task * r->per_task;
    const size_t bhi = blo + r->per_task < r->blocks ? blo + r->per_task
                                                     : r->blocks;
    if (r->backward)
        nvp__sweep_backward_blocks(r->isa, r->job, blo, bhi);
    else
        nvp__sweep_forward_blocks(r->isa, r->job, blo, bhi);
}

/* The blocks as evenly as they go between the pool's threads (one task
 * of all blocks without a pool). */
static void run_blocks(const nvp_exec *ex, const sweep_job *j, int backward)
{
    const size_t blocks = nvp__sweep_blocks(j->h2);
    const size_t threads = nvp__pool_threads(ex->pool);
    const size_t tasks = threads < blocks ? threads : blocks;
    sweep_run r = {j, ex->isa, blocks, (blocks + tasks - 1) / tasks,
                   backward};
    if (tasks > 1) {
        nvp__pool_run(ex->pool, (blocks + r.per_task - 1) / r.per_task,
                      sweep_task, &r);
        return;
    }
    sweep_task(&r, 0, 0);
}

static void sort_task(void *arg, size_t task, size_t worker)
{
    (void)worker;
    nvp__sweep_sort(arg, task);
}

/* Below this many keys in all, the sorts stay on the calling thread:
 * with 64 units and 64 rows the job was 10% slower than sorting there,
 * with 64 units and 256 rows 3.5% faster (two-thread training steps). */
#define SHARED_SORT_MIN_KEYS 256

void nvp__exec_sweep_forward(const nvp_exec *ex, const nvp_sweep_net *net,
                             size_t rows, const float *x, float *z,
                             float *scratch)
{
    sweep_job j;
    nvp__sweep_forward_setup(&j, net, rows, x, z, scratch);
    /* The three sorts at once where there are threads: the caller's
     * thread alone sorting the switch points of a 512-unit layer held its
     * worker idle for several percent of the tutorial's training step. */
    if (nvp__pool_threads(ex->pool) > 1 &&
        rows + net->h1 >= SHARED_SORT_MIN_KEYS)
        nvp__pool_run(ex->pool, NVP_SWEEP_SORT_PARTS, sort_task, &j);
    else
        for (size_t part = 0; part < NVP_SWEEP_SORT_PARTS; part++)
            nvp__sweep_sort(&j, part);
    run_blocks(ex, &j, 0);
}

void nvp__exec_sweep_backward(const nvp_exec *ex, const nvp_sweep_net *net,
                              size_t rows, const float *x, const float *dz,
                              const nvp_sweep_grad *grad, float *din,
                              float *scratch, int fresh)
{
    sweep_job j;
    nvp__sweep_backward_setup(&j, net, rows, x, dz, grad, din, scratch,
                              fresh);
    run_blocks(ex, &j, 1);
    nvp__sweep_backward_finish(&j);
}
