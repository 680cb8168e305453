/* SPDX-License-Identifier: MIT */
/* Workspaces: the scratch memory of one batched evaluation or training
 * pass (packing buffers for the matrix multiply, cached activations).
 *
 * A handle owns an engine that keeps a free list of workspaces of two
 * kinds.  A call takes one from the list (allocating only when the list is
 * empty) and puts it back when done, so calls in steady state allocate
 * nothing, and const calls running concurrently on one handle each get
 * their own. */
#ifndef NVP_WORKSPACE_H
#define NVP_WORKSPACE_H

#include <pthread.h>
#include <stddef.h>

#include "kernels/gemm.h"
#include "nvpflow.h"

/* Rows processed together.  Batches are cut into chunks of this many rows,
 * so workspace sizes do not depend on n, and each row's arithmetic does not
 * depend on n or on the thread that runs it. */
#define NVP_CHUNK_ROWS 256

typedef enum { NVP_WS_EVAL = 0, NVP_WS_TRAIN = 1 } nvp_ws_kind;

typedef struct nvp_ws {
    struct nvp_ws *next;
    float *pack;  /* nvp__gemm_pack_floats(kernel) floats */
    float *arena; /* the engine's arena size for this kind */
} nvp_ws;

typedef struct nvp_engine {
    const nvp_allocator *alloc; /* the owning handle's */
    pthread_mutex_t lock;
    nvp_ws *free_list[2];
    size_t arena_floats[2];
    const nvp_gemm_kernel *kernel;
} nvp_engine;

/* Prepares an engine; allocates nothing.  alloc must outlive it. */
void nvp__engine_init(nvp_engine *e, const nvp_allocator *alloc,
                      size_t eval_floats, size_t train_floats);
/* Frees every workspace (none may be in use). */
void nvp__engine_destroy(nvp_engine *e);
/* A workspace of the given kind, or NULL when out of memory. */
nvp_ws *nvp__ws_acquire(const nvp_engine *e, nvp_ws_kind kind);
void nvp__ws_release(const nvp_engine *e, nvp_ws_kind kind, nvp_ws *ws);

/* Bump allocation inside an arena: returns *cursor and advances it by
 * count floats rounded up to a cache line. */
static inline float *nvp__carve(float **cursor, size_t count)
{
    float *p = *cursor;
    *cursor += (count + 15) & ~(size_t)15;
    return p;
}

/* The floats nvp__carve needs for count floats. */
static inline size_t nvp__carved(size_t count) { return (count + 15) & ~(size_t)15; }

#endif
