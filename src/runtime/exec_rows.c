/* SPDX-License-Identifier: MIT */
/* Per-row work shared out over a pool in blocks of rows (runtime/exec.h). */
#include "runtime/exec.h"

/* Below this many rows per thread the work stays on the calling thread:
 * a row of a coupling's affine step costs a few exponentials per
 * transformed dimension, and waking the pool a few microseconds. */
#define ROWS_PER_TASK_MIN 32

typedef struct rows_job {
    nvp_rows_fn fn;
    void *arg;
    size_t rows, per_task;
} rows_job;

static void rows_task(void *arg, size_t task, size_t worker)
{
    (void)worker;
    const rows_job *j = arg;
    const size_t lo = task * j->per_task;
    const size_t hi = lo + j->per_task < j->rows ? lo + j->per_task : j->rows;
    j->fn(j->arg, lo, hi);
}

void nvp__exec_rows(const nvp_exec *ex, size_t rows, nvp_rows_fn fn,
                    void *arg)
{
    const size_t threads = nvp__pool_threads(ex->pool);
    if (threads < 2 || rows < 2 * ROWS_PER_TASK_MIN) {
        if (rows > 0)
            fn(arg, 0, rows);
        return;
    }
    size_t per = (rows + threads - 1) / threads;
    if (per < ROWS_PER_TASK_MIN)
        per = ROWS_PER_TASK_MIN;
    rows_job j = {fn, arg, rows, per};
    nvp__pool_run(ex->pool, (rows + per - 1) / per, rows_task, &j);
}
