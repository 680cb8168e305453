/* SPDX-License-Identifier: MIT */
/* The conditioner: the MLP a coupling layer computes its shift and
 * log-scale with, n_in -> hidden (ReLU) ... -> n_out, over flat
 * parameters laid out layer by layer as W (in x out, row-major), then b.
 *
 * One forward/backward pair over a named cache (llm.c style): the forward
 * leaves in the cache what the backward needs, the backward adds into a
 * flat gradient laid out as the parameters.  How the first two layers run
 * is chosen once, when the conditioner is planned: as matrix products, or
 * -- with a single input -- as the exact sweep of kernels/sweep.h, which
 * costs O((H1 + rows) H2) instead of O(rows H1 H2). */
#ifndef NVP_CONDITIONER_H
#define NVP_CONDITIONER_H

#include <stddef.h>

#include "core/error.h"
#include "runtime/exec.h"

typedef struct nvp_dense {
    size_t in, out;  /* fan_in, fan_out */
    size_t w_off;    /* offset of W (in x out) in the parameters */
    size_t b_off;    /* offset of b (out) */
    size_t ld;       /* row stride of its output in the cache, and of its
                        output's gradient in the backward (>= out) */
} nvp_dense;

/* How the first two dense layers run. */
typedef enum {
    NVP_FIRST_PRODUCTS = 0, /* matrix products, like every other layer */
    NVP_FIRST_SWEEP = 1     /* the single-input sweep */
} nvp_first_layers;

typedef struct nvp_conditioner {
    size_t n_in, n_out;
    size_t n_dense;      /* hidden layers + 1 */
    nvp_dense dense[NVP_MAX_HIDDEN_LAYERS + 1];
    size_t max_width;    /* widest row stride of any layer's input or
                            output (the ld of hidden layers included) */
    size_t n_params;
    nvp_first_layers first;
} nvp_conditioner;

/* What one forward over `rows` rows keeps for the backward. */
typedef struct nvp_cond_cache {
    float *input;                            /* rows x n_in */
    float *act[NVP_MAX_HIDDEN_LAYERS + 1];   /* layer l's output, rows x out
                                                with row stride dense[l].ld
                                                (unused for layer 0 under a
                                                sweep) */
    float *sweep;                            /* the sweep's scratch, or NULL */
} nvp_cond_cache;

/* Checks the widths and lays out the parameters; chooses the first
 * layers' strategy.  hidden holds n_hidden widths (each in [1,
 * NVP_MAX_WIDTH], n_hidden <= NVP_MAX_HIDDEN_LAYERS, checked by the
 * caller).  Errors recorded for fn: NVP_EOVERFLOW. */
int nvp__cond_plan(nvp_conditioner *c, const nvp_errbox *eb, const char *fn,
                   size_t n_in, size_t n_out, size_t n_hidden,
                   const size_t *hidden);

/* Floats a cache for `rows` rows takes, and the cache carved from base. */
size_t nvp__cond_cache_floats(const nvp_conditioner *c, size_t rows);
void nvp__cond_cache_bind(const nvp_conditioner *c, size_t rows, float *base,
                          nvp_cond_cache *cache);

/* Floats of scratch the backward needs for `rows` rows. */
size_t nvp__cond_scratch_floats(const nvp_conditioner *c, size_t rows);

/* Forward of rows rows of cache->input (filled by the caller); returns
 * the output block (rows x n_out), which lies in the cache.  With
 * ex->params_max set, max-combines the largest |p| of all n_params
 * parameters into it (then parameters that are not finite make the
 * output NaN, never anything worse). */
const float *nvp__cond_forward(const nvp_conditioner *c, const nvp_exec *ex,
                               const float *params, size_t rows,
                               const nvp_cond_cache *cache);

/* Backward after nvp__cond_forward on the same cache.  dout (rows x n_out)
 * is dL/d(output); its column sums, the output layer's bias gradient, are
 * the caller's to add (it sums them as it makes dout), unless
 * nvp__cond_owns_out_bias.  Adds the rest of the parameter
 * gradient into grad (may be NULL) and writes dL/d(input) into din (rows x
 * n_in; NULL: not needed).  With fresh != 0 the range
 * nvp__cond_fresh_range names is written instead (as if added to zeros),
 * so the caller clears only the rest; the output layer's bias gradient
 * the caller clears before summing into it.  With grad and ex->grad_max
 * set (a checked pass's last chunk, the output layer's bias gradient
 * already summed), max-combines the largest |g| of the whole final
 * gradient (n_params floats) into ex->grad_max.
 * scratch holds nvp__cond_scratch_floats floats. */
void nvp__cond_backward(const nvp_conditioner *c, const nvp_exec *ex,
                        const float *params, size_t rows,
                        const nvp_cond_cache *cache, const float *dout,
                        float *din, float *grad, int fresh, float *scratch);

/* Whether the backward sums the output layer's bias gradient itself (a
 * sweep whose second layer is the output layer sums its own). */
int nvp__cond_owns_out_bias(const nvp_conditioner *c);

/* The part of the parameter gradient a fresh backward writes: [*off, *off
 * + *len), all of the conditioner's (the output layer's bias gradient
 * included, which the caller, summing it, clears first when fresh). */
void nvp__cond_fresh_range(const nvp_conditioner *c, size_t *off,
                           size_t *len);

#endif
