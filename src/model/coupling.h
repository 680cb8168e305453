/* SPDX-License-Identifier: MIT */
/* The affine coupling layer: its structure and the row-chunk kernels the
 * chain and the public coupling functions share. */
#ifndef NVP_COUPLING_H
#define NVP_COUPLING_H

#include "core/check.h"
#include "core/error.h"
#include "runtime/exec.h"
#include "model/conditioner.h"
#include "model/layer.h"
#include "runtime/context.h"

struct nvp_coupling {
    nvp_layer layer;        /* the part every kind shares; first member */
    size_t na, nb;          /* conditioned (mask 1) and transformed dims */
    size_t *idx_a, *idx_b;  /* their indices, ascending */
    unsigned char *mask;
    nvp_conditioner cond;   /* (x_a, context) -> (shift, raw log-scale);
                               its parameters are all of the layer's */
    float clamp;            /* soft log-scale bound; 0: none */
    int form;               /* NVP_AFFINE_EXP or NVP_AFFINE_SIGMOID */
};

/* The affine coupling's entry in the layer table. */
extern const nvp_layer_ops nvp__coupling_kind;

/* The coupling a layer is, or NULL when it is of another kind. */
static inline const nvp_coupling *nvp__as_coupling(const nvp_layer *l)
{
    return l && l->kind == &nvp__coupling_kind ? (const nvp_coupling *)l
                                               : NULL;
}

/* Frees the index lists and the mask (the table's release). */
void nvp__coupling_release(nvp_layer *l);

/* Floats a chunk of `rows` rows caches for the backward pass: the
 * conditioner's input, every hidden activation and its output. */
size_t nvp__coupling_cache_floats(const nvp_coupling *c, size_t rows);
/* Floats of scratch the backward pass needs for `rows` rows. */
size_t nvp__coupling_scratch_floats(const nvp_coupling *c, size_t rows);

/* In-place inverse of `rows` rows of z (row stride dim): z_b becomes
 * (z_b - shift) * exp(-log_scale), shift and log-scale computed from x_a
 * and the rows' context cond (rows x cdim; NULL when cdim is 0).  Adds
 * each row's ildj into ildj (may be NULL).  cache receives
 * nvp__coupling_cache_floats floats. */
void nvp__coupling_inverse_rows(const nvp_coupling *c, const nvp_exec *ex,
                                size_t rows, float *z, const float *cond,
                                float *ildj, float *cache);
/* In-place forward of rows rows of z; adds log|det| into logdet (may be
 * NULL). */
void nvp__coupling_forward_rows(const nvp_coupling *c, const nvp_exec *ex,
                                size_t rows, float *z, const float *cond,
                                float *logdet, float *cache);
/* Backward of the inverse for rows rows, after nvp__coupling_inverse_rows
 * filled cache and produced x.  dx (rows x dim) is dL/dx; dildj is dL/dildj
 * per row (NULL: zero).  Writes dy (rows x dim, may be NULL), adds
 * dL/d(context) into dcond (rows x cdim, may be NULL) and adds the
 * parameter gradient into grad (n_params, may be NULL); with fresh != 0
 * the part nvp__cond_fresh_range names is written instead (as if added
 * to zeros), so the caller clears only the rest. */
void nvp__coupling_inverse_backward_rows(const nvp_coupling *c,
                                         const nvp_exec *ex, size_t rows,
                                         const float *cache, const float *x,
                                         const float *dx, const float *dildj,
                                         float *dy, float *dcond, float *grad,
                                         int fresh, float *scratch);

/* Backward of the forward for rows rows, after
 * nvp__coupling_forward_rows filled cache from the rows x (its input,
 * kept by the caller).  dy (rows x dim) is dL/dy; dlogdet is dL/dlogdet
 * per row (NULL: zero).  Writes dx (rows x dim, may be NULL; not dy's
 * memory), adds dL/d(context) into dcond and the parameter gradient into
 * grad, fresh as for the inverse's backward. */
void nvp__coupling_forward_backward_rows(const nvp_coupling *c,
                                         const nvp_exec *ex, size_t rows,
                                         const float *cache, const float *x,
                                         const float *dy,
                                         const float *dlogdet, float *dx,
                                         float *dcond, float *grad, int fresh,
                                         float *scratch);

/* Checks a layer description; on success fills the structural fields of c
 * (dim, na, nb, index lists, dense layers, n_params).  Used by the
 * constructor and by the loader. */
int nvp__coupling_plan(nvp_coupling *c, const nvp_errbox *eb, const char *fn,
                       size_t dim, size_t cdim, const unsigned char *mask,
                       size_t n_hidden, const size_t *hidden);

/* A layer with every parameter zero (the constructor and the loader fill
 * them).  Errors recorded for fn: NVP_EINVAL, NVP_EOVERFLOW, NVP_ENOMEM. */
int nvp__coupling_new(nvp_coupling **out, const char *fn, size_t dim,
                      size_t cdim, const unsigned char *mask, size_t n_hidden,
                      const size_t *hidden, const nvp_allocator *alloc);

#endif
