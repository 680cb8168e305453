/* SPDX-License-Identifier: MIT */
/* The chain: a base distribution and K coupling layers over one flat
 * parameter vector. */
#ifndef NVP_CHAIN_H
#define NVP_CHAIN_H

#include "model/base.h"
#include "model/coupling.h"
#include "runtime/context.h"

struct nvp_chain {
    nvp_errbox err;
    nvp_allocator alloc;
    nvp_base *base;
    nvp_coupling **layers;
    size_t n_layers;
    size_t *offsets;     /* layer k's parameters start at params + offsets[k] */
    size_t dim, n_params;
    float *params;       /* 64-byte aligned, n_params floats */
    float *grad;         /* training scratch, allocated by the first step */
    float *batch;        /* minibatch rows of the training step */
    size_t batch_cap;    /* rows batch can hold */
    nvp_context ctx;     /* level, threads and work spaces */
};

/* The largest per-layer cache for `rows` rows. */
size_t nvp__chain_max_cache_floats(const nvp_chain *c, size_t rows);

/* The arena of a batched evaluation of `rows` rows: a chunk copy of the
 * input, an accumulator row, one layer's cache (layers run one after
 * another) and a row of flags. */
size_t nvp__chain_eval_floats(const nvp_chain *c, size_t rows);


#endif
