/* SPDX-License-Identifier: MIT */
/* A fixed pool of worker threads owned by a handle.
 *
 * The caller of nvp__pool_run takes part in the work, so a pool of n
 * participants starts n - 1 threads.  Tasks are claimed dynamically (a
 * job of at most one task per participant, and at most 31 tasks, gives
 * participant i task i first, to keep each share's data in one core's
 * cache), but every task computes the same bits whichever thread runs it:
 * the library only ever splits work over independent rows or output
 * columns, never over a reduction, so results do not depend on the thread
 * count. */
#ifndef NVP_THREADPOOL_H
#define NVP_THREADPOOL_H

#include <stddef.h>

#include "nvpflow.h"

typedef struct nvp_pool nvp_pool;

/* fn(arg, task, worker): worker (0 .. threads - 1, 0 being the caller)
 * identifies the running thread, so that a job can give each one its own
 * scratch (nvp__pool_pack). */
typedef void (*nvp_task_fn)(void *arg, size_t task, size_t worker);

/* Starts n_threads - 1 workers (n_threads >= 2).  Returns NVP_OK,
 * NVP_ENOMEM or NVP_ETHREAD (then nothing is left running). */
int nvp__pool_create(nvp_pool **out, size_t n_threads, size_t pack_floats,
                     const nvp_allocator *alloc);
/* Stops and joins the workers; accepts NULL. */
void nvp__pool_free(nvp_pool *p);
/* Worker's matrix-multiply packing buffer (pack_floats floats, 64-byte
 * aligned), for the task running on it. */
float *nvp__pool_pack(const nvp_pool *p, size_t worker);

/* Participants, the caller included. */
size_t nvp__pool_threads(const nvp_pool *p);

/* One caller at a time may run work on a pool: const calls that share a
 * handle from several threads each try to take it, and the ones that
 * cannot simply run on their own thread. */
int nvp__pool_try_acquire(nvp_pool *p);
void nvp__pool_release(nvp_pool *p);

/* Runs fn for tasks 0 .. n_tasks - 1 across the pool (the caller included)
 * and returns when all are done.  Requires nvp__pool_try_acquire. */
void nvp__pool_run(nvp_pool *p, size_t n_tasks, nvp_task_fn fn, void *arg);

/* The number of online CPUs, from 1 to NVP_MAX_THREADS. */
size_t nvp__online_cpus(void);

#endif
