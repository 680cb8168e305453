/* The chain: a base distribution and K coupling layers over one flat
 * parameter vector. */
#ifndef NVP_CHAIN_H
#define NVP_CHAIN_H

#include "base.h"
#include "coupling.h"

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
};

#endif
