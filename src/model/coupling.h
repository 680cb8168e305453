/* SPDX-License-Identifier: MIT */
/* The affine coupling layer: its structure and the row-chunk kernels the
 * chain and the public coupling functions share. */
#ifndef NVP_COUPLING_H
#define NVP_COUPLING_H

#include "core/check.h"
#include "core/error.h"
#include "runtime/exec.h"
#include "model/conditioner.h"
#include "runtime/context.h"

struct nvp_coupling {
    nvp_errbox err;
    nvp_allocator alloc;
    size_t dim;
    size_t na, nb;          /* conditioned (mask 1) and transformed dims */
    size_t *idx_a, *idx_b;  /* their indices, ascending */
    unsigned char *mask;
    nvp_conditioner cond;   /* x_a -> (shift, raw log-scale) */
    size_t n_params;        /* cond.n_params: the conditioner's are all */
    float *params;          /* own_params, or a view into a chain's vector */
    float *own_params;      /* NULL once a chain has adopted the layer */
    float clamp;            /* soft log-scale bound; 0: none */
    nvp_context ctx;        /* for the standalone nvp_coupling_* calls */
    size_t ws_floats[2];    /* their arenas, by nvp_ws_kind */
};

/* Floats a chunk of `rows` rows caches for the backward pass: the
 * conditioner's input, every hidden activation and its output. */
size_t nvp__coupling_cache_floats(const nvp_coupling *c, size_t rows);
/* Floats of scratch the backward pass needs for `rows` rows. */
size_t nvp__coupling_scratch_floats(const nvp_coupling *c, size_t rows);

/* In-place inverse of `rows` rows of z (row stride dim): z_b becomes
 * (z_b - shift) * exp(-log_scale).  Adds each row's ildj into ildj (may be
 * NULL).  cache receives nvp__coupling_cache_floats floats. */
void nvp__coupling_inverse_rows(const nvp_coupling *c, const nvp_exec *ex,
                                size_t rows, float *z, float *ildj,
                                float *cache);
/* In-place forward of rows rows of z; adds log|det| into logdet (may be
 * NULL). */
void nvp__coupling_forward_rows(const nvp_coupling *c, const nvp_exec *ex,
                                size_t rows, float *z, float *logdet,
                                float *cache);
/* Backward of the inverse for rows rows, after nvp__coupling_inverse_rows
 * filled cache and produced x.  dx (rows x dim) is dL/dx; dildj is dL/dildj
 * per row (NULL: zero).  Writes dy (rows x dim, may be NULL) and adds the
 * parameter gradient into grad (n_params, may be NULL); with fresh != 0
 * the part nvp__cond_fresh_range names is written instead (as if added
 * to zeros), so the caller clears only the rest. */
void nvp__coupling_inverse_backward_rows(const nvp_coupling *c,
                                         const nvp_exec *ex, size_t rows,
                                         const float *cache, const float *x,
                                         const float *dx, const float *dildj,
                                         float *dy, float *grad, int fresh,
                                         float *scratch);

/* Checks a layer description; on success fills the structural fields of c
 * (dim, na, nb, index lists, dense layers, n_params).  Used by the
 * constructor and by the loader. */
int nvp__coupling_plan(nvp_coupling *c, const nvp_errbox *eb, const char *fn,
                       size_t dim, const unsigned char *mask,
                       size_t n_hidden, const size_t *hidden);

/* A layer with every parameter zero (the constructor and the loader fill
 * them).  Errors recorded for fn: NVP_EINVAL, NVP_EOVERFLOW, NVP_ENOMEM. */
int nvp__coupling_new(nvp_coupling **out, const char *fn, size_t dim,
                      const unsigned char *mask, size_t n_hidden,
                      const size_t *hidden, const nvp_allocator *alloc);

#endif
