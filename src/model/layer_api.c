/* SPDX-License-Identifier: MIT */
/* The public calls on a layer of any kind (nvp_layer_*), and the bodies the
 * affine coupling's own calls share with them. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/check.h"
#include "core/rng.h"
#include "model/coupling.h"
#include "model/eval.h"
#include "model/layer_kinds.h"

int nvp__layer_get_params(const nvp_layer *l, const char *fn, size_t count,
                          float *dst)
{
    const nvp_errbox *eb = l ? &l->err : NULL;
    NVP_REQUIRE(l != NULL, NVP_EINVAL, "%s: layer is NULL", fn);
    NVP_REQUIRE(dst != NULL, NVP_EINVAL, "%s: dst is NULL", fn);
    NVP_REQUIRE(count == l->n_params, NVP_EDIM,
                "%s: count %zu, layer has %zu", fn, count, l->n_params);
    if (count)
        memcpy(dst, l->params, count * sizeof *dst);
    return NVP_OK;
}

int nvp__layer_set_params(nvp_layer *l, const char *fn, size_t count,
                          const float *src)
{
    const nvp_errbox *eb = l ? &l->err : NULL;
    NVP_REQUIRE(l != NULL, NVP_EINVAL, "%s: layer is NULL", fn);
    NVP_REQUIRE(src != NULL, NVP_EINVAL, "%s: src is NULL", fn);
    NVP_REQUIRE(count == l->n_params, NVP_EDIM,
                "%s: count %zu, layer has %zu", fn, count, l->n_params);
    for (size_t i = 0; i < count; i++)
        NVP_REQUIRE(isfinite(src[i]), NVP_ENONFINITE,
                    "%s: src[%zu] is not finite", fn, i);
    if (count)
        memcpy(l->params, src, count * sizeof *src);
    return NVP_OK;
}

/* A layer that reads a context needs one (the _given calls), and only
 * such a layer is given one. */
static int check_context(const nvp_layer *l, const char *fn,
                         const float *context)
{
    const nvp_errbox *eb = &l->err;
    NVP_REQUIRE(l->cdim == 0 || context != NULL, NVP_EINVAL,
                "%s: the layer reads %zu context values per row; pass them "
                "(the _given form of this call)",
                fn, l->cdim);
    return NVP_OK;
}

int nvp__layer_map(const nvp_layer *l, const char *fn, int inverse, size_t n,
                   const float *in, const float *context, float *out,
                   float *ld)
{
    const nvp_errbox *eb = l ? &l->err : NULL;
    NVP_REQUIRE(l != NULL, NVP_EINVAL, "%s: layer is NULL", fn);
    NVP_REQUIRE(in != NULL && out != NULL, NVP_EINVAL,
                "%s: input or output is NULL", fn);
    if (check_context(l, fn, context))
        return NVP_EINVAL;
    int rc = nvp__check_batch_given(eb, fn, n, l->dim, l->cdim);
    if (rc)
        return rc;
    /* The layer alone, through the batching driver every chain uses. */
    nvp_layer *self = (nvp_layer *)l;
    const nvp_stack st = {l->dim, l->cdim, &self, 1, NULL, &l->ctx, eb};
    const nvp_given g = {l->cdim ? context : NULL, l->cdim};
    return nvp__stack_eval(&st, inverse ? NVP_EV_INVERSE : NVP_EV_FORWARD, n,
                           in, g, out, ld, fn);
}

/* The checks both standalone backward calls make before anything is
 * added into grad: the layer and its two row arrays (in, the layer's
 * input rows; g, the gradient rows; named for messages as "in or g"),
 * the context, the batch, and finite values in all of them and in the
 * per-row log-determinant gradient gld (may be NULL). */
static int check_backward_args(const nvp_layer *l, const char *fn, size_t n,
                               const float *in, const float *g,
                               const char *names, const float *context,
                               const float *gld, const char *gld_name)
{
    const nvp_errbox *eb = l ? &l->err : NULL;
    NVP_REQUIRE(l != NULL, NVP_EINVAL, "%s: layer is NULL", fn);
    NVP_REQUIRE(in != NULL && g != NULL, NVP_EINVAL, "%s: %s is NULL", fn,
                names);
    if (check_context(l, fn, context))
        return NVP_EINVAL;
    int rc = nvp__check_batch_given(eb, fn, n, l->dim, l->cdim);
    if (rc)
        return rc;
    const size_t dim = l->dim, cdim = l->cdim;
    if (cdim)
        for (size_t i = 0; i < n * cdim; i++)
            NVP_REQUIRE(isfinite(context[i]), NVP_ENONFINITE,
                        "%s: context holds a non-finite value at row %zu", fn,
                        i / cdim);
    for (size_t i = 0; i < n * dim; i++)
        NVP_REQUIRE(isfinite(in[i]) && isfinite(g[i]), NVP_ENONFINITE,
                    "%s: %s holds a non-finite value at row %zu", fn, names,
                    i / dim);
    if (gld)
        for (size_t i = 0; i < n; i++)
            NVP_REQUIRE(isfinite(gld[i]), NVP_ENONFINITE,
                        "%s: %s[%zu] is not finite", fn, gld_name, i);
    return NVP_OK;
}

int nvp__layer_inverse_backward(const nvp_layer *l, const char *fn, size_t n,
                                const float *y, const float *context,
                                const float *dx, const float *dildj,
                                float *dy, float *dcontext, float *grad)
{
    const int rc = check_backward_args(l, fn, n, y, dx, "y or dx", context,
                                       dildj, "dildj");
    if (rc)
        return rc;
    const nvp_errbox *eb = &l->err;
    const size_t dim = l->dim, cdim = l->cdim, R = nvp__chunk_rows(n);
    /* The inverse's output, the cache and the backward's scratch. */
    const size_t cache_f = l->kind->cache_floats(l, R);
    const size_t scratch_f = l->kind->scratch_floats(l, R);
    nvp_ws *ws = nvp__ws_acquire(&l->ctx, NVP_WS_TRAIN,
                                 nvp__carved(R * dim) + nvp__carved(cache_f) +
                                     nvp__carved(scratch_f));
    if (!ws)
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory for workspace",
                         fn);
    float *cursor = ws->arena;
    float *x = nvp__carve(&cursor, R * dim);
    float *cache = nvp__carve(&cursor, cache_f);
    float *scratch = nvp__carve(&cursor, scratch_f);
    const nvp_exec ex = nvp__context_exec(&l->ctx, ws, NULL);
    for (size_t r0 = 0; r0 < n; r0 += NVP_CHUNK_ROWS) {
        const size_t rows = n - r0 < R ? n - r0 : R;
        memcpy(x, y + r0 * dim, rows * dim * sizeof *x);
        const float *cond = cdim ? context + r0 * cdim : NULL;
        float *dcond = cdim && dcontext ? dcontext + r0 * cdim : NULL;
        if (dcond)
            memset(dcond, 0, rows * cdim * sizeof *dcond);
        l->kind->inverse_rows(l, &ex, rows, x, cond, NULL, cache);
        l->kind->inverse_backward_rows(l, &ex, rows, cache, x, cond,
                                       dx + r0 * dim,
                                       dildj ? dildj + r0 : NULL,
                                       dy ? dy + r0 * dim : NULL, dcond, grad,
                                       0, scratch);
    }
    nvp__ws_release(&l->ctx, NVP_WS_TRAIN, ws);
    return NVP_OK;
}

int nvp__layer_forward_backward(const nvp_layer *l, const char *fn, size_t n,
                                const float *x, const float *context,
                                const float *dy, const float *dlogdet,
                                float *dx, float *dcontext, float *grad)
{
    const int rc = check_backward_args(l, fn, n, x, dy, "x or dy", context,
                                       dlogdet, "dlogdet");
    if (rc)
        return rc;
    const nvp_errbox *eb = &l->err;
    const size_t dim = l->dim, cdim = l->cdim, R = nvp__chunk_rows(n);
    /* A chunk's rows, which the forward turns into y and the backward
     * then takes as dx's buffer (so dx may be dy or x), the cache and the
     * scratch. */
    const size_t cache_f = l->kind->cache_floats(l, R);
    const size_t scratch_f = l->kind->scratch_floats(l, R);
    nvp_ws *ws = nvp__ws_acquire(&l->ctx, NVP_WS_TRAIN,
                                 nvp__carved(R * dim) + nvp__carved(cache_f) +
                                     nvp__carved(scratch_f));
    if (!ws)
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory for workspace",
                         fn);
    float *cursor = ws->arena;
    float *z = nvp__carve(&cursor, R * dim);
    float *cache = nvp__carve(&cursor, cache_f);
    float *scratch = nvp__carve(&cursor, scratch_f);
    const nvp_exec ex = nvp__context_exec(&l->ctx, ws, NULL);
    for (size_t r0 = 0; r0 < n; r0 += NVP_CHUNK_ROWS) {
        const size_t rows = n - r0 < R ? n - r0 : R;
        memcpy(z, x + r0 * dim, rows * dim * sizeof *z);
        const float *cond = cdim ? context + r0 * cdim : NULL;
        float *dcond = cdim && dcontext ? dcontext + r0 * cdim : NULL;
        if (dcond)
            memset(dcond, 0, rows * cdim * sizeof *dcond);
        l->kind->forward_rows(l, &ex, rows, z, cond, NULL, cache);
        l->kind->forward_backward_rows(
            l, &ex, rows, cache, x + r0 * dim, cond, dy + r0 * dim,
            dlogdet ? dlogdet + r0 : NULL, dx ? z : NULL, dcond, grad, 0,
            scratch);
        if (dx)
            memcpy(dx + r0 * dim, z, rows * dim * sizeof *dx);
    }
    nvp__ws_release(&l->ctx, NVP_WS_TRAIN, ws);
    return NVP_OK;
}

/* ------------------------------------------------------------- public */

int nvp_layer_create_permutation(nvp_layer **out, size_t dim,
                                 const size_t *perm,
                                 const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    const char *fn = "nvp_layer_create_permutation";
    NVP_REQUIRE(out != NULL, NVP_EINVAL, "%s: out is NULL", fn);
    *out = NULL;
    NVP_REQUIRE(perm != NULL, NVP_EINVAL, "%s: perm is NULL", fn);
    return nvp__permute_new(out, fn, dim, perm, alloc);
}

int nvp_layer_create_random_permutation(nvp_layer **out, size_t dim,
                                        nvp_rng *rng,
                                        const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    const char *fn = "nvp_layer_create_random_permutation";
    NVP_REQUIRE(out != NULL, NVP_EINVAL, "%s: out is NULL", fn);
    *out = NULL;
    NVP_REQUIRE(rng != NULL, NVP_EINVAL, "%s: rng is NULL", fn);
    NVP_REQUIRE(dim >= 1 && dim <= NVP_MAX_DIM, NVP_EINVAL,
                "%s: dim %zu is outside [1, %d]", fn, dim, NVP_MAX_DIM);
    nvp_allocator a;
    NVP_REQUIRE(nvp__allocator_init(&a, alloc) == NVP_OK, NVP_EINVAL,
                "%s: invalid allocator", fn);
    size_t *perm = nvp__malloc(&a, dim * sizeof *perm);
    if (!perm)
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    /* Fisher-Yates from the end, one draw per position. */
    for (size_t i = 0; i < dim; i++)
        perm[i] = i;
    for (size_t i = dim; i-- > 1;) {
        const size_t j = (size_t)nvp__rng_below(rng, i + 1);
        const size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    const int rc = nvp__permute_new(out, fn, dim, perm, alloc);
    nvp__free(&a, perm);
    return rc;
}

int nvp_layer_create_actnorm(nvp_layer **out, size_t dim,
                             const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(out != NULL, NVP_EINVAL, "nvp_layer_create_actnorm: out is "
                                         "NULL");
    *out = NULL;
    return nvp__actnorm_new(out, "nvp_layer_create_actnorm", dim, alloc);
}

int nvp_layer_create_linear(nvp_layer **out, size_t dim,
                            const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(out != NULL, NVP_EINVAL, "nvp_layer_create_linear: out is "
                                         "NULL");
    *out = NULL;
    return nvp__linear_new(out, "nvp_layer_create_linear", dim, alloc);
}

nvp_layer *nvp_coupling_as_layer(nvp_coupling *layer)
{
    return layer ? &layer->layer : NULL;
}

const nvp_coupling *nvp_layer_as_coupling(const nvp_layer *layer)
{
    return nvp__as_coupling(layer);
}

void nvp_layer_free(nvp_layer *layer)
{
    /* A chain's layer goes with the chain. */
    if (layer && !layer->adopted)
        nvp__layer_free(layer);
}

const char *nvp_layer_kind(const nvp_layer *layer)
{
    return layer ? layer->kind->name : "";
}

size_t nvp_layer_dim(const nvp_layer *layer) { return layer ? layer->dim : 0; }

size_t nvp_layer_num_params(const nvp_layer *layer)
{
    return layer ? layer->n_params : 0;
}

int nvp_layer_get_params(const nvp_layer *layer, size_t count, float *dst)
{
    return nvp__layer_get_params(layer, "nvp_layer_get_params", count, dst);
}

int nvp_layer_set_params(nvp_layer *layer, size_t count, const float *src)
{
    return nvp__layer_set_params(layer, "nvp_layer_set_params", count, src);
}

int nvp_layer_forward(const nvp_layer *layer, size_t n, const float *x,
                      float *y, float *logdet)
{
    return nvp__layer_map(layer, "nvp_layer_forward", 0, n, x, NULL, y,
                          logdet);
}

int nvp_layer_forward_given(const nvp_layer *layer, size_t n, const float *x,
                            const float *context, float *y, float *logdet)
{
    return nvp__layer_map(layer, "nvp_layer_forward_given", 0, n, x, context,
                          y, logdet);
}

int nvp_layer_inverse(const nvp_layer *layer, size_t n, const float *y,
                      float *x, float *ildj)
{
    return nvp__layer_map(layer, "nvp_layer_inverse", 1, n, y, NULL, x, ildj);
}

int nvp_layer_inverse_given(const nvp_layer *layer, size_t n, const float *y,
                            const float *context, float *x, float *ildj)
{
    return nvp__layer_map(layer, "nvp_layer_inverse_given", 1, n, y, context,
                          x, ildj);
}

int nvp_layer_inverse_backward(const nvp_layer *layer, size_t n,
                               const float *y, const float *dx,
                               const float *dildj, float *dy, float *grad)
{
    return nvp__layer_inverse_backward(layer, "nvp_layer_inverse_backward", n,
                                       y, NULL, dx, dildj, dy, NULL, grad);
}

int nvp_layer_inverse_backward_given(const nvp_layer *layer, size_t n,
                                     const float *y, const float *context,
                                     const float *dx, const float *dildj,
                                     float *dy, float *dcontext, float *grad)
{
    return nvp__layer_inverse_backward(layer,
                                       "nvp_layer_inverse_backward_given", n,
                                       y, context, dx, dildj, dy, dcontext,
                                       grad);
}

int nvp_layer_forward_backward(const nvp_layer *layer, size_t n,
                               const float *x, const float *dy,
                               const float *dlogdet, float *dx, float *grad)
{
    return nvp__layer_forward_backward(layer, "nvp_layer_forward_backward", n,
                                       x, NULL, dy, dlogdet, dx, NULL, grad);
}

int nvp_layer_forward_backward_given(const nvp_layer *layer, size_t n,
                                     const float *x, const float *context,
                                     const float *dy, const float *dlogdet,
                                     float *dx, float *dcontext, float *grad)
{
    return nvp__layer_forward_backward(layer,
                                       "nvp_layer_forward_backward_given", n,
                                       x, context, dy, dlogdet, dx, dcontext,
                                       grad);
}

size_t nvp_layer_context_dim(const nvp_layer *layer)
{
    return layer ? layer->cdim : 0;
}

int nvp_layer_set_kernels(nvp_layer *layer, int kernels)
{
    const nvp_errbox *eb = layer ? &layer->err : NULL;
    NVP_REQUIRE_PTR(layer);
    nvp_isa isa;
    const int rc =
        nvp__check_kernels(eb, "nvp_layer_set_kernels", kernels, &isa);
    if (rc)
        return rc;
    nvp__context_set_isa(&layer->ctx, isa);
    return NVP_OK;
}

int nvp_layer_kernels(const nvp_layer *layer)
{
    return layer ? nvp__kernels_from_isa(layer->ctx.isa) : -1;
}

const char *nvp_layer_errmsg(const nvp_layer *layer)
{
    return nvp__errbox_read(layer ? &layer->err : NULL);
}
