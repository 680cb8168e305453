/* SPDX-License-Identifier: MIT */
/* The execution context of a handle: the instruction-set level its
 * kernels run at (and the matrix-multiply kernel of that level), its
 * thread pool, and the work spaces of its calls.
 *
 * A call takes a work space from the context's free list (allocating only
 * when the list is empty) and puts it back when done, so calls in steady
 * state allocate nothing, and const calls running concurrently on one
 * handle each get their own.  What one call then runs with -- kernel,
 * level, its packing buffer and the pool if it holds it -- is an nvp_exec
 * (runtime/exec.h). */
#ifndef NVP_CONTEXT_H
#define NVP_CONTEXT_H

#include <pthread.h>
#include <stddef.h>

#include "core/alloc.h"
#include "core/cpu.h"
#include "kernels/gemm.h"
#include "nvpflow.h"
#include "runtime/exec.h"
#include "runtime/threadpool.h"

/* Rows processed together.  Batches are cut into chunks of this many rows,
 * so work space sizes do not depend on n, and each row's arithmetic does
 * not depend on n or on the thread that runs it. */
#define NVP_CHUNK_ROWS 256

/* The rows a chunk of a call on n rows holds at most: work spaces are
 * sized by it, so a call on a few rows takes memory for those rows only. */
static inline size_t nvp__chunk_rows(size_t n)
{
    return n < NVP_CHUNK_ROWS ? n : NVP_CHUNK_ROWS;
}

typedef enum { NVP_WS_EVAL = 0, NVP_WS_TRAIN = 1 } nvp_ws_kind;

typedef struct nvp_ws {
    struct nvp_ws *next;
    float *pack;          /* the largest packing buffer any kernel needs */
    float *arena;         /* arena_floats floats */
    size_t arena_floats;
} nvp_ws;

typedef struct nvp_context {
    const nvp_allocator *alloc; /* the owning handle's */
    nvp_isa isa;
    const nvp_gemm_kernel *kernel; /* the matrix multiply at isa */
    /* Guards the free lists and the start of the pool: the only parts of
     * a const handle that a const call changes. */
    pthread_mutex_t lock;
    nvp_ws *free_list[2];
    /* The pool starts on first use; threads == 1 means none. */
    size_t threads;
    nvp_pool *pool;
    int pool_failed; /* starting it failed: calls run on the caller only */
    /* The conditioners' large products in bfloat16 (NVP_PRECISION_BF16;
     * set only where nvp__gemm_bf16_supported). */
    int bf16;
} nvp_context;

/* Prepares a context at the CPU's best level with `threads` threads (1:
 * none); allocates nothing.  alloc must outlive it. */
void nvp__context_init(nvp_context *x, const nvp_allocator *alloc,
                       size_t threads);
/* Stops the pool and frees every work space (none may be in use). */
void nvp__context_destroy(nvp_context *x);

/* Runs the context's kernels at level isa (which the CPU must run). */
void nvp__context_set_isa(nvp_context *x, nvp_isa isa);

/* Replaces the pool by one of n threads (1: none).  A failure leaves the
 * context as it was and returns NVP_ENOMEM or NVP_ETHREAD, or NVP_EBUSY
 * when a call is using the pool. */
int nvp__context_set_threads(nvp_context *x, size_t n);

/* The context's pool for the duration of one call, or NULL when it is
 * single-threaded, the pool could not start, or another call holds it
 * (the call then runs on its own thread; results are the same). */
nvp_pool *nvp__context_pool_take(const nvp_context *x);
void nvp__context_pool_give(nvp_pool *pool);

/* A work space of the given kind whose arena holds at least arena_floats
 * floats, or NULL when out of memory.  Each kind's callers on one handle
 * ask for one size, so in steady state the free list has what they need;
 * a smaller one from the list is replaced. */
nvp_ws *nvp__ws_acquire(const nvp_context *x, nvp_ws_kind kind,
                        size_t arena_floats);
void nvp__ws_release(const nvp_context *x, nvp_ws_kind kind, nvp_ws *ws);

/* What a call running in ws (and holding pool, or NULL) runs with. */
static inline nvp_exec nvp__context_exec(const nvp_context *x,
                                         const nvp_ws *ws, nvp_pool *pool)
{
    nvp_exec ex = {x->kernel, x->isa, ws->pack, pool, x->bf16, NULL, NULL};
    return ex;
}

#endif
