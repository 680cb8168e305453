/* SPDX-License-Identifier: MIT */
/* A layer of a chain, whatever its kind: what every kind shares (its
 * dimension, its parameters inside the chain's flat vector, its own
 * execution context for standalone calls) and the table of functions the
 * chain calls it through.  The chain iterates layers and never switches
 * on kinds: a new kind is one file that fills an nvp_layer_ops and embeds
 * an nvp_layer as its first member. */
#ifndef NVP_LAYER_H
#define NVP_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "runtime/context.h"
#include "runtime/exec.h"

typedef struct nvp_layer nvp_layer;

typedef struct nvp_layer_ops {
    const char *name;
    /* The kind's code in model files (docs/file-format.md); never reused. */
    uint32_t id;
    /* What the kind's constructor needs besides dim, as u32 values (a
     * model file stores them): their number, and value i. */
    size_t (*hyper_count)(const nvp_layer *l);
    uint32_t (*hyper_value)(const nvp_layer *l, size_t i);
    /* Checks n values read from a file for a layer over dim dimensions and
     * gives its parameter count; NVP_EFORMAT (recorded for fn) when they
     * are not what hyper_get could have written. */
    int (*hyper_check)(const char *fn, size_t dim, const uint32_t *h,
                       size_t n, uint64_t *n_params);
    /* A new layer with zero parameters from checked values. */
    int (*from_hyper)(nvp_layer **out, const char *fn, size_t dim,
                      const uint32_t *h, size_t n,
                      const nvp_allocator *alloc);
    /* Floats one chunk of `rows` rows caches for the backward, and the
     * floats of scratch the backward needs. */
    size_t (*cache_floats)(const nvp_layer *l, size_t rows);
    size_t (*scratch_floats)(const nvp_layer *l, size_t rows);
    /* In place on `rows` rows of z (row stride dim): the inverse (data to
     * base), adding each row's log|det dx/dy| into ildj (may be NULL), and
     * the forward (base to data), adding log|det dy/dx| into logdet (may
     * be NULL).  cond holds the rows' context (rows x cdim, row stride
     * cdim; NULL when the layer's cdim is 0; kinds without context ignore
     * it).  cache receives cache_floats(rows) floats. */
    void (*inverse_rows)(const nvp_layer *l, const nvp_exec *ex, size_t rows,
                         float *z, const float *cond, float *ildj,
                         float *cache);
    void (*forward_rows)(const nvp_layer *l, const nvp_exec *ex, size_t rows,
                         float *z, const float *cond, float *logdet,
                         float *cache);
    /* Backward of the inverse, after inverse_rows filled cache and left x:
     * dx (rows x dim) is dL/dx, dildj dL/dildj per row (NULL: zero).
     * Writes dy = dL/dy (may be NULL), adds dL/d(context) into dcond (rows
     * x cdim; may be NULL, ignored by kinds without context) and adds the
     * parameter gradient into grad (n_params, may be NULL); with fresh != 0
     * the range fresh_range names is written instead, as if added to
     * zeros. */
    void (*inverse_backward_rows)(const nvp_layer *l, const nvp_exec *ex,
                                  size_t rows, const float *cache,
                                  const float *x, const float *cond,
                                  const float *dx, const float *dildj,
                                  float *dy, float *dcond, float *grad,
                                  int fresh, float *scratch);
    /* Backward of the forward (the vector-Jacobian product of base to
     * data, log-determinant included), after forward_rows filled cache:
     * x holds the rows the forward was given (its input, which the
     * in-place forward overwrote: the caller keeps a copy), dy (rows x
     * dim) is dL/dy, dlogdet dL/dlogdet per row (NULL: zero).  Writes dx =
     * dL/dx (may be NULL; never the same memory as dy), adds dL/d(context)
     * into dcond and the parameter gradient into grad, with fresh and
     * scratch as for inverse_backward_rows. */
    void (*forward_backward_rows)(const nvp_layer *l, const nvp_exec *ex,
                                  size_t rows, const float *cache,
                                  const float *x, const float *cond,
                                  const float *dy, const float *dlogdet,
                                  float *dx, float *dcond, float *grad,
                                  int fresh, float *scratch);
    /* The part of the gradient a fresh backward writes: [*off, *off +
     * *len); *len 0 when none. */
    void (*fresh_range)(const nvp_layer *l, size_t *off, size_t *len);
    /* Bounds the log-scales the layer applies (0: none); NULL for kinds
     * without one. */
    void (*set_log_scale_clamp)(nvp_layer *l, float bound);
    /* Sets the parameters from n rows of data z as this layer sees them on
     * its data side, so that its inverse maps them to a standard form
     * (zero mean and unit variance, or white); NULL for kinds without
     * such an initialisation.  Returns NVP_OK or an NVP_E* code (recorded
     * in eb for fn); changes nothing on failure. */
    int (*data_init)(nvp_layer *l, const nvp_errbox *eb, const char *fn,
                     size_t n, const float *z);
    /* Frees what the kind allocated besides the shared part (may be
     * NULL). */
    void (*release)(nvp_layer *l);
    /* Nonzero when the kind measures what it reads and writes: the
     * backward functions, given grad and an exec whose grad_max is set
     * (the pass's last chunk), max-combine the largest |g| of the layer's
     * whole final gradient (n_params floats) into ex->grad_max, and
     * inverse_rows, given an exec whose params_max is set, the largest |p|
     * of its parameters into ex->params_max (parameters that are not
     * finite may make the rows' results NaN, never anything worse); 0 (the
     * default): the chain measures both itself. */
    int measures;
} nvp_layer_ops;

struct nvp_layer {
    const nvp_layer_ops *kind;
    nvp_errbox err;
    nvp_allocator alloc;
    size_t dim;
    size_t cdim;         /* context values per row the layer reads; 0:
                            none (every kind but a conditional coupling) */
    size_t n_params;
    float *params;       /* own_params, or a view into a chain's vector */
    float *own_params;   /* NULL once a chain has adopted the layer */
    int adopted;         /* a chain owns the layer */
    nvp_context ctx;     /* for the layer's standalone calls */
};

/* A new layer of `size` bytes (the kind's struct, which starts with an
 * nvp_layer) with n_params zero parameters of its own, its context and
 * message box ready.  Errors recorded for fn: NVP_EINVAL (allocator),
 * NVP_ENOMEM. */
int nvp__layer_new(nvp_layer **out, size_t size, const nvp_layer_ops *kind,
                   size_t dim, size_t n_params, const nvp_allocator *alloc,
                   const char *fn);

/* The kind with this file code, or NULL: the registry of every kind. */
const nvp_layer_ops *nvp__layer_kind_by_id(uint32_t id);

/* The most values any kind stores for a layer over dim dimensions. */
#define NVP_MAX_HYPER(dim) ((size_t)(dim) + NVP_MAX_HIDDEN_LAYERS + 4)

/* Table entries for kinds that have nothing of the sort: no floats of
 * cache or scratch, no fresh range, no stored values. */
size_t nvp__layer_no_floats(const nvp_layer *l, size_t rows);
void nvp__layer_no_fresh_range(const nvp_layer *l, size_t *off, size_t *len);
size_t nvp__layer_no_hyper_count(const nvp_layer *l);
uint32_t nvp__layer_no_hyper_value(const nvp_layer *l, size_t i);

/* Gives a new layer (none yet) n_params zero parameters of its own.
 * Errors recorded for fn: NVP_ENOMEM. */
int nvp__layer_alloc_params(nvp_layer *l, size_t n_params, const char *fn);

/* Frees a layer of any kind (NULL is accepted). */
void nvp__layer_free(nvp_layer *l);

#endif
