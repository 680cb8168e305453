/* SPDX-License-Identifier: MIT */
/* Zeroing and checking the flat gradient on every thread of the pool: on
 * one thread these passes over a million floats sat on the training
 * step's serial path.  (The training step now zeroes only what its
 * backward pass does not write outright; see clear_grad in
 * chain_train.c.) */
#include "runtime/vec_parallel.h"

#include <string.h>

#include "kernels/vec.h"

/* Below this many floats one thread does it: waking the pool costs more. */
#define PAR_MIN_FLOATS ((size_t)1 << 16)

typedef struct vec_job {
    float *x;
    size_t n;
    uint32_t max_bits[NVP_MAX_THREADS]; /* per worker */
    nvp_isa isa;
    double (*run_sum)(nvp_isa isa, const float *x, size_t n); /* for sums */
    double *runs;                                /* one slot per run */
} vec_job;

static void range_of(const vec_job *j, size_t task, size_t *lo, size_t *hi)
{
    *lo = task * NVP_PAR_RUN_FLOATS;
    *hi = *lo + NVP_PAR_RUN_FLOATS < j->n ? *lo + NVP_PAR_RUN_FLOATS : j->n;
}

static void zero_task(void *arg, size_t task, size_t worker)
{
    (void)worker;
    vec_job *j = arg;
    size_t lo, hi;
    range_of(j, task, &lo, &hi);
    memset(j->x + lo, 0, (hi - lo) * sizeof *j->x);
}

/* An integer maximum gives the same answer whichever worker saw which
 * run. */
static void max_task(void *arg, size_t task, size_t worker)
{
    vec_job *j = arg;
    size_t lo, hi;
    range_of(j, task, &lo, &hi);
    const uint32_t top =
        nvp__max_abs_bits_part(j->isa, j->x + lo, hi - lo, j->n);
    if (top > j->max_bits[worker])
        j->max_bits[worker] = top;
}

/* Each run's sum goes to its own slot, so no sum depends on which
 * worker took which run. */
static void sum_task(void *arg, size_t task, size_t worker)
{
    (void)worker;
    vec_job *j = arg;
    size_t lo, hi;
    range_of(j, task, &lo, &hi);
    j->runs[task] = j->run_sum(j->isa, j->x + lo, hi - lo);
}

/* Tasks for n floats on the pool, or 0 to stay on this thread. */
static size_t plan(vec_job *j, nvp_pool *pool, float *x, size_t n)
{
    const size_t threads = nvp__pool_threads(pool);
    if (threads < 2 || threads > NVP_MAX_THREADS || n < PAR_MIN_FLOATS)
        return 0;
    j->x = x;
    j->n = n;
    memset(j->max_bits, 0, threads * sizeof j->max_bits[0]);
    return nvp__par_runs(n);
}

void nvp__par_zero(nvp_pool *pool, float *x, size_t n)
{
    vec_job j;
    const size_t tasks = plan(&j, pool, x, n);
    if (tasks == 0) {
        memset(x, 0, n * sizeof *x);
        return;
    }
    nvp__pool_run(pool, tasks, zero_task, &j);
}

uint32_t nvp__par_max_abs_bits(nvp_pool *pool, nvp_isa isa, const float *x,
                               size_t n)
{
    vec_job j;
    j.isa = isa;
    const size_t tasks = plan(&j, pool, (float *)x, n);
    if (tasks == 0)
        return nvp__max_abs_bits(isa, x, n);
    nvp__pool_run(pool, tasks, max_task, &j);
    uint32_t top = 0;
    for (size_t w = 0; w < nvp__pool_threads(pool); w++)
        top = j.max_bits[w] > top ? j.max_bits[w] : top;
    return top;
}

size_t nvp__par_runs(size_t n)
{
    return (n + NVP_PAR_RUN_FLOATS - 1) / NVP_PAR_RUN_FLOATS;
}

double nvp__par_sum_runs(nvp_pool *pool, nvp_isa isa, const float *x,
                         size_t n,
                         double (*run_sum)(nvp_isa isa, const float *x,
                                           size_t n),
                         double *runs)
{
    vec_job j;
    j.isa = isa;
    const size_t runs_n = nvp__par_runs(n);
    const int shared = plan(&j, pool, (float *)x, n) != 0;
    j.x = (float *)x;
    j.n = n;
    j.run_sum = run_sum;
    j.runs = runs;
    if (shared)
        nvp__pool_run(pool, runs_n, sum_task, &j);
    else
        for (size_t r = 0; r < runs_n; r++)
            sum_task(&j, r, 0);
    double s = 0.0;
    for (size_t r = 0; r < runs_n; r++)
        s += runs[r];
    return s;
}
