/* SPDX-License-Identifier: MIT */
/* The layer kinds besides the affine coupling (model/coupling.h), their
 * constructors, and the standalone calls every kind shares
 * (model/layer_api.c). */
#ifndef NVP_LAYER_KINDS_H
#define NVP_LAYER_KINDS_H

#include <stddef.h>

#include "model/layer.h"

extern const nvp_layer_ops nvp__permute_kind;
extern const nvp_layer_ops nvp__actnorm_kind;
extern const nvp_layer_ops nvp__linear_kind;

/* Constructors; errors recorded for fn.  perm: dim distinct indices below
 * dim, copied. */
int nvp__permute_new(nvp_layer **out, const char *fn, size_t dim,
                     const size_t *perm, const nvp_allocator *alloc);
int nvp__actnorm_new(nvp_layer **out, const char *fn, size_t dim,
                     const nvp_allocator *alloc);
int nvp__linear_new(nvp_layer **out, const char *fn, size_t dim,
                    const nvp_allocator *alloc);

/* A permutation layer's indices, or NULL for another kind. */
const size_t *nvp__permute_perm(const nvp_layer *l);

/* The standalone calls of a layer of any kind, with their checks;
 * messages name fn. */
int nvp__layer_get_params(const nvp_layer *l, const char *fn, size_t count,
                          float *dst);
int nvp__layer_set_params(nvp_layer *l, const char *fn, size_t count,
                          const float *src);
int nvp__layer_map(const nvp_layer *l, const char *fn, int inverse, size_t n,
                   const float *in, const float *context, float *out,
                   float *ld);
int nvp__layer_inverse_backward(const nvp_layer *l, const char *fn, size_t n,
                                const float *y, const float *context,
                                const float *dx, const float *dildj,
                                float *dy, float *dcontext, float *grad);
int nvp__layer_forward_backward(const nvp_layer *l, const char *fn, size_t n,
                                const float *x, const float *context,
                                const float *dy, const float *dlogdet,
                                float *dx, float *dcontext, float *grad);

#endif
