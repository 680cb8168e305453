/* SPDX-License-Identifier: MIT */
/* The chain: a base distribution and K layers over one flat
 * parameter vector. */
#ifndef NVP_CHAIN_H
#define NVP_CHAIN_H

#include "core/names.h"
#include "model/base.h"
#include "model/coupling.h"
#include "model/eval.h"
#include "model/layer.h"
#include "runtime/context.h"

struct nvp_chain {
    nvp_errbox err;
    nvp_allocator alloc;
    nvp_base *base;
    nvp_layer **layers;  /* any kind, through its table */
    size_t n_layers;
    size_t *offsets;     /* layer k's parameters start at params + offsets[k] */
    size_t dim, n_params;
    size_t cdim;         /* context values per row (0: an unconditional
                            chain); the layers that read one read these */
    float *params;       /* 64-byte aligned, n_params floats */
    float *grad;         /* training scratch, allocated by the first step */
    float *batch;        /* minibatch rows of the training step */
    float *batch_cond;   /* the minibatch rows' context (cdim > 0) */
    size_t batch_cap;    /* rows batch (and batch_cond) can hold */
    nvp_context ctx;     /* level, threads and work spaces */
    /* Column names (nvp_chain_set_column_names), or NULL: name_at[j]
     * points into the one block names. */
    char *names;
    char **name_at;
};

/* Replaces the names by copies of names[j] (lens[j] bytes each, checked);
 * a failure (recorded for fn) leaves them as they were. */
int nvp__chain_set_names(nvp_chain *c, const nvp_errbox *eb, const char *fn,
                         const char *const *names, const size_t *lens);
void nvp__chain_drop_names(nvp_chain *c);

/* The chain's layers as a stack for the batching driver. */
static inline nvp_stack nvp__chain_stack(const nvp_chain *c)
{
    nvp_stack st = {c->dim,  c->cdim, c->layers, c->n_layers,
                    c->base, &c->ctx, &c->err};
    return st;
}

#endif
