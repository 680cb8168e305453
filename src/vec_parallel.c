/* Zeroing and checking the flat gradient on every thread of the pool: on
 * one thread these two passes over a million floats sat on the training
 * step's serial path. */
#include "vec_parallel.h"

#include <string.h>

#include "cpu.h"

/* Below this many floats one thread does it: waking the pool costs more. */
#define PAR_MIN_FLOATS ((size_t)1 << 16)
/* Ranges start on 64-byte boundaries of the vector. */
#define PAR_ALIGN 16

typedef struct vec_job {
    float *x;
    size_t n, per_task;
    uint32_t max_bits[NVP_MAX_THREADS];
} vec_job;

static void range_of(const vec_job *j, size_t task, size_t *lo, size_t *hi)
{
    *lo = task * j->per_task;
    *hi = *lo + j->per_task < j->n ? *lo + j->per_task : j->n;
}

static void zero_task(void *arg, size_t task, size_t worker, float *pack)
{
    (void)worker;
    (void)pack;
    vec_job *j = arg;
    size_t lo, hi;
    range_of(j, task, &lo, &hi);
    memset(j->x + lo, 0, (hi - lo) * sizeof *j->x);
}

static void max_task(void *arg, size_t task, size_t worker, float *pack)
{
    (void)worker;
    (void)pack;
    vec_job *j = arg;
    size_t lo, hi;
    range_of(j, task, &lo, &hi);
    j->max_bits[task] = nvp__max_abs_bits(j->x + lo, hi - lo);
}

/* Tasks for n floats on the pool: one per thread, or 0 to stay serial. */
static size_t plan(vec_job *j, nvp_pool *pool, float *x, size_t n)
{
    size_t threads = nvp__pool_threads(pool);
    if (threads > NVP_MAX_THREADS)
        threads = NVP_MAX_THREADS;
    if (threads < 2 || n < PAR_MIN_FLOATS)
        return 0;
    j->x = x;
    j->n = n;
    j->per_task = ((n + threads - 1) / threads + PAR_ALIGN - 1) /
                  PAR_ALIGN * PAR_ALIGN;
    return (n + j->per_task - 1) / j->per_task;
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

uint32_t nvp__par_max_abs_bits(nvp_pool *pool, const float *x, size_t n)
{
    vec_job j;
    const size_t tasks = plan(&j, pool, (float *)x, n);
    if (tasks == 0)
        return nvp__max_abs_bits(x, n);
    nvp__pool_run(pool, tasks, max_task, &j);
    uint32_t top = 0;
    for (size_t t = 0; t < tasks; t++)
        top = j.max_bits[t] > top ? j.max_bits[t] : top;
    return top;
}
