/* A stress run of the thread pool (src/threadpool.h), shared by the Check
 * suite (test_pool.c) and the ThreadSanitizer run
 * (concurrency/test_pool.c).
 *
 * Many jobs of random sizes, many of them tiny, back to back: every task
 * must run exactly once, and nvp__pool_run must return only after all of
 * them have finished.  Before the pool closed its claim word while a job
 * was set up, a worker late from one job could claim a task with the next
 * job's size and run it twice; this run found that within a thousand
 * jobs. */
#ifndef NVP_TEST_POOL_STRESS_H
#define NVP_TEST_POOL_STRESS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "alloc.h"
#include "threadpool.h"

#define POOL_STRESS_MAX_TASKS 80

typedef struct pool_stress_job {
    atomic_int hits[POOL_STRESS_MAX_TASKS];
    atomic_int running;
} pool_stress_job;

static void pool_stress_task(void *arg, size_t task, size_t worker,
                             float *pack)
{
    (void)worker;
    (void)pack;
    pool_stress_job *j = arg;
    atomic_fetch_add(&j->running, 1);
    /* Tasks of different lengths, so that the threads interleave. */
    for (volatile unsigned spin = 0; spin < (unsigned)(task % 7) * 40; spin++)
        ;
    atomic_fetch_add(&j->hits[task], 1);
    atomic_fetch_sub(&j->running, 1);
}

/* Runs `jobs` jobs on a pool of `threads` participants.  Returns 0, or
 * nonzero with a description in msg. */
static int pool_stress(size_t threads, long jobs, uint64_t seed, char *msg,
                       size_t msg_size)
{
    nvp_allocator a;
    nvp__allocator_init(&a, NULL);
    nvp_pool *pool = NULL;
    if (nvp__pool_create(&pool, threads, 16, &a) != NVP_OK) {
        snprintf(msg, msg_size, "pool of %zu: creation failed", threads);
        return 1;
    }
    nvp__pool_try_acquire(pool);
    static pool_stress_job j;
    uint64_t x = seed | 1;
    int bad = 0;
    for (long it = 0; it < jobs && !bad; it++) {
        x ^= x << 13; /* xorshift: sizes 1..80, one job in four tiny */
        x ^= x >> 7;
        x ^= x << 17;
        const size_t n = x % 4 == 0 ? 1 + (size_t)(x >> 8) % 3
                                    : 1 + (size_t)(x >> 8) % POOL_STRESS_MAX_TASKS;
        for (size_t t = 0; t < POOL_STRESS_MAX_TASKS; t++)
            atomic_store(&j.hits[t], 0);
        atomic_store(&j.running, 0);
        nvp__pool_run(pool, n, pool_stress_task, &j);
        if (atomic_load(&j.running) != 0) {
            snprintf(msg, msg_size,
                     "pool of %zu, seed %llu, job %ld (%zu tasks): returned "
                     "with %d task(s) still running",
                     threads, (unsigned long long)seed, it, n,
                     atomic_load(&j.running));
            bad = 1;
        }
        for (size_t t = 0; t < POOL_STRESS_MAX_TASKS && !bad; t++) {
            const int want = t < n ? 1 : 0, got = atomic_load(&j.hits[t]);
            if (got != want) {
                snprintf(msg, msg_size,
                         "pool of %zu, seed %llu, job %ld (%zu tasks): task "
                         "%zu ran %d times, expected %d",
                         threads, (unsigned long long)seed, it, n, t, got,
                         want);
                bad = 1;
            }
        }
    }
    nvp__pool_release(pool);
    nvp__pool_free(pool);
    return bad;
}

#endif
