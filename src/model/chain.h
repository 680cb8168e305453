/* SPDX-License-Identifier: MIT */
/* The chain: a base distribution and K coupling layers over one flat
 * parameter vector. */
#ifndef NVP_CHAIN_H
#define NVP_CHAIN_H

#include "model/base.h"
#include "model/coupling.h"
#include "runtime/threadpool.h"

struct nvp_chain {
    nvp_errbox err;
    nvp_allocator alloc;
    nvp_base *base;
    nvp_coupling **layers;
    size_t n_layers;
    size_t *offsets;     /* layer k's parameters start at params + offsets[k] */
    size_t *cache_off;   /* layer k's training cache, from the first one;
                            cache_off[K] is the caches' total */
    size_t scratch_floats; /* largest backward scratch of any layer */
    size_t dim, n_params;
    float *params;       /* 64-byte aligned, n_params floats */
    float *grad;         /* training scratch, allocated by the first step */
    float *batch;        /* minibatch rows of the training step */
    size_t batch_cap;    /* rows batch can hold */
    nvp_engine engine;
    /* Threads: the pool starts on first use (a const call may start it,
     * hence the lock); threads == 1 means none. */
    size_t threads;
    nvp_pool *pool;
    int pool_failed;     /* starting it failed: run on the caller only */
    pthread_mutex_t pool_lock;
};

/* The largest per-layer cache for `rows` rows. */
size_t nvp__chain_max_cache_floats(const nvp_chain *c, size_t rows);

/* The chain's pool for the duration of one call, or NULL when the chain is
 * single-threaded, the pool could not start, or another call holds it
 * (the call then runs on its own thread; results are the same). */
nvp_pool *nvp__chain_pool_take(const nvp_chain *c);
void nvp__chain_pool_give(nvp_pool *pool);

#endif
