/* SPDX-License-Identifier: MIT */
/* The one batching driver of the model layer: a stack of layers (a
 * chain's, or a single layer's for its standalone calls) evaluated over
 * n rows in chunks of at most 1024 rows (eval.c), on the stack's context. */
#ifndef NVP_EVAL_H
#define NVP_EVAL_H

#include <stddef.h>

#include "model/base.h"
#include "model/layer.h"

typedef struct nvp_stack {
    size_t dim;
    size_t cdim;              /* context values per row (0: none) */
    nvp_layer *const *layers; /* applied in this order going forward */
    size_t n_layers;
    const nvp_base *base;     /* for sample and log_prob; may be NULL else */
    const nvp_context *ctx;   /* kernels, threads and work spaces */
    const nvp_errbox *err;    /* where failures are recorded */
} nvp_stack;

typedef enum {
    NVP_EV_FORWARD,  /* in: x, out: y, ld: log|det dy/dx| (may be NULL) */
    NVP_EV_INVERSE,  /* in: y, out: x, ld: log|det dx/dy| (may be NULL) */
    NVP_EV_SAMPLE,   /* out holds base draws, becomes y; ld: log p(y) */
    NVP_EV_LOG_PROB, /* in: y, out: log p(y) per row */
    NVP_EV_TRACE     /* in: x, out: n_layers + 1 blocks of stages */
} nvp_eval_mode;

/* The context of n rows: row i's cdim values at rows + i * stride (stride
 * 0: one context for every row).  rows is NULL when cdim is 0. */
typedef struct nvp_given {
    const float *rows;
    size_t stride;
} nvp_given;

/* Rows with NaN or an infinity, in the input or in their context, come
 * out as NaN (log densities too); a finite row whose log density
 * overflows gets -inf.  Arguments are checked by the caller.  Returns
 * NVP_OK or NVP_ENOMEM (recorded for fn in st->err). */
int nvp__stack_eval(const nvp_stack *st, nvp_eval_mode mode, size_t n,
                    const float *in, nvp_given given, float *out, float *ld,
                    const char *fn);

/* The work space one evaluating thread needs for chunks of `rows` rows. */
size_t nvp__stack_eval_floats(const nvp_stack *st, size_t rows);

#endif
