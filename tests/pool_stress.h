/* SPDX-License-Identifier: MIT */
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

#include "core/alloc.h"
#include "runtime/threadpool.h"

#define POOL_STRESS_MAX_TASKS 80

typedef struct pool_stress_job {
    int tag; /* 0 or 1: which of the two task functions it belongs to */
    atomic_int hits[POOL_STRESS_MAX_TASKS];
    atomic_int running;
    atomic_int mismatched; /* runs of the other function with this job */
    /* Plain memory: the caller clears it before the job, each task writes
     * its slot, the caller reads it after.  Under ThreadSanitizer a
     * missing happens-before edge in the pool shows up as a race here. */
    int value[POOL_STRESS_MAX_TASKS];
} pool_stress_job;

static void pool_stress_run(pool_stress_job *j, size_t task, int tag)
{
    if (j->tag != tag)
        atomic_fetch_add(&j->mismatched, 1);
    atomic_fetch_add(&j->running, 1);
    /* Tasks of different lengths, so that the threads interleave. */
    for (volatile unsigned spin = 0; spin < (unsigned)(task % 7) * 40; spin++)
        ;
    j->value[task] = (int)task + 1;
    atomic_fetch_add(&j->hits[task], 1);
    atomic_fetch_sub(&j->running, 1);
}

/* Consecutive jobs alternate between two functions and two argument
 * blocks, so that a task run with one job's function and the other's
 * argument shows up, and so does a late run of the previous job's task. */
static void pool_stress_task0(void *arg, size_t task, size_t worker)
{
    (void)worker;
    pool_stress_run(arg, task, 0);
}

static void pool_stress_task1(void *arg, size_t task, size_t worker)
{
    (void)worker;
    pool_stress_run(arg, task, 1);
}

/* Every task below n ran exactly once, none above, none with the wrong
 * function, none still running.  0 or nonzero with msg. */
static int pool_stress_check(const pool_stress_job *j, size_t n,
                             const char *which, size_t threads, uint64_t seed,
                             long it, char *msg, size_t msg_size)
{
    if (atomic_load(&j->running) != 0 || atomic_load(&j->mismatched) != 0) {
        snprintf(msg, msg_size,
                 "pool of %zu, seed %llu, job %ld (%zu tasks), %s: %d "
                 "task(s) still running, %d run(s) with the other job's "
                 "function",
                 threads, (unsigned long long)seed, it, n, which, atomic_load(&j->running),
                 atomic_load(&j->mismatched));
        return 1;
    }
    for (size_t t = 0; t < POOL_STRESS_MAX_TASKS; t++) {
        const int want = t < n ? 1 : 0, got = atomic_load(&j->hits[t]);
        if (j->value[t] != (t < n ? (int)t + 1 : 0)) {
            snprintf(msg, msg_size,
                     "pool of %zu, seed %llu, job %ld (%zu tasks), %s: task "
                     "%zu's result %d is not visible to the caller",
                     threads, (unsigned long long)seed, it, n, which, t,
                     j->value[t]);
            return 1;
        }
        if (got != want) {
            snprintf(msg, msg_size,
                     "pool of %zu, seed %llu, job %ld (%zu tasks), %s: task "
                     "%zu ran %d times, expected %d",
                     threads, (unsigned long long)seed, it, n, which, t, got,
                     want);
            return 1;
        }
    }
    return 0;
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
    static pool_stress_job jobs_[2];
    const nvp_task_fn fns[2] = {pool_stress_task0, pool_stress_task1};
    size_t sizes[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        jobs_[k].tag = k;
        for (size_t t = 0; t < POOL_STRESS_MAX_TASKS; t++) {
            atomic_store(&jobs_[k].hits[t], 0);
            jobs_[k].value[t] = 0;
        }
        atomic_store(&jobs_[k].running, 0);
        atomic_store(&jobs_[k].mismatched, 0);
    }
    uint64_t x = seed | 1;
    int bad = 0;
    for (long it = 0; it < jobs && !bad; it++) {
        x ^= x << 13; /* xorshift: sizes 1..80, one job in four tiny */
        x ^= x >> 7;
        x ^= x << 17;
        const size_t n = x % 4 == 0 ? 1 + (size_t)(x >> 8) % 3
                                    : 1 + (size_t)(x >> 8) % POOL_STRESS_MAX_TASKS;
        const int k = (int)(it & 1);
        pool_stress_job *j = &jobs_[k];
        for (size_t t = 0; t < POOL_STRESS_MAX_TASKS; t++) {
            atomic_store(&j->hits[t], 0);
            j->value[t] = 0;
        }
        sizes[k] = n;
        nvp__pool_run(pool, n, fns[k], j);
        bad = pool_stress_check(j, n, "this job", threads, seed, it, msg,
                                msg_size);
        /* The previous job, checked when it returned, must not have run a
         * task since. */
        if (!bad && it > 0)
            bad = pool_stress_check(&jobs_[1 - k], sizes[1 - k],
                                    "the job before, checked again", threads,
                                    seed, it, msg, msg_size);
    }
    nvp__pool_release(pool);
    nvp__pool_free(pool);
    return bad;
}

#endif
