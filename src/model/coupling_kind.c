/* SPDX-License-Identifier: MIT */
/* The affine coupling's entry in the layer table: its row functions
 * (coupling_rows.c, coupling_backward.c) and the description a saved
 * model stores for it. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "model/coupling.h"

/* The layer table's entry: the functions above, taking the shared part. */
#define AS_COUPLING(l) ((const nvp_coupling *)(l))

static size_t kind_cache_floats(const nvp_layer *l, size_t rows)
{
    return nvp__coupling_cache_floats(AS_COUPLING(l), rows);
}

static size_t kind_scratch_floats(const nvp_layer *l, size_t rows)
{
    return nvp__coupling_scratch_floats(AS_COUPLING(l), rows);
}

static void kind_inverse_rows(const nvp_layer *l, const nvp_exec *ex,
                              size_t rows, float *z, const float *cond,
                              float *ildj, float *cache)
{
    nvp__coupling_inverse_rows(AS_COUPLING(l), ex, rows, z, cond, ildj,
                               cache);
}

static void kind_forward_rows(const nvp_layer *l, const nvp_exec *ex,
                              size_t rows, float *z, const float *cond,
                              float *logdet, float *cache)
{
    nvp__coupling_forward_rows(AS_COUPLING(l), ex, rows, z, cond, logdet,
                               cache);
}

static void kind_inverse_backward_rows(const nvp_layer *l, const nvp_exec *ex,
                                       size_t rows, const float *cache,
                                       const float *x, const float *cond,
                                       const float *dx, const float *dildj,
                                       float *dy, float *dcond, float *grad,
                                       int fresh, float *scratch)
{
    (void)cond; /* the cache holds it */
    nvp__coupling_inverse_backward_rows(AS_COUPLING(l), ex, rows, cache, x,
                                        dx, dildj, dy, dcond, grad, fresh,
                                        scratch);
}

static void kind_forward_backward_rows(const nvp_layer *l, const nvp_exec *ex,
                                       size_t rows, const float *cache,
                                       const float *x, const float *cond,
                                       const float *dy, const float *dlogdet,
                                       float *dx, float *dcond, float *grad,
                                       int fresh, float *scratch)
{
    (void)cond; /* the cache holds it */
    nvp__coupling_forward_backward_rows(AS_COUPLING(l), ex, rows, cache, x,
                                        dy, dlogdet, dx, dcond, grad, fresh,
                                        scratch);
}

static void kind_fresh_range(const nvp_layer *l, size_t *off, size_t *len)
{
    /* The conditioner's parameters are the layer's, from offset 0. */
    nvp__cond_fresh_range(&AS_COUPLING(l)->cond, off, len);
}

static void kind_set_clamp(nvp_layer *l, float bound)
{
    ((nvp_coupling *)l)->clamp = bound;
}

/* Stored values: n_hidden, the widths, the clamp's bits, the mask, then
 * what later versions added, only when it is not the default (so a layer
 * without them stores what version 0.4.0 stored): the context dimension,
 * and after it the affine form. */
static size_t extra_values(const nvp_coupling *c)
{
    return c->form != NVP_AFFINE_EXP ? 2 : c->layer.cdim > 0 ? 1 : 0;
}

static size_t kind_hyper_count(const nvp_layer *l)
{
    return 2 + (AS_COUPLING(l)->cond.n_dense - 1) + l->dim +
           extra_values(AS_COUPLING(l));
}

static uint32_t kind_hyper_value(const nvp_layer *l, size_t i)
{
    const nvp_coupling *c = AS_COUPLING(l);
    const size_t n_hidden = c->cond.n_dense - 1;
    if (i == 0)
        return (uint32_t)n_hidden;
    if (i <= n_hidden)
        return (uint32_t)c->cond.dense[i - 1].out;
    if (i == n_hidden + 1) {
        uint32_t bits;
        memcpy(&bits, &c->clamp, sizeof bits);
        return bits;
    }
    if (i == n_hidden + 2 + l->dim)
        return (uint32_t)l->cdim;
    if (i == n_hidden + 3 + l->dim)
        return (uint32_t)c->form;
    return c->mask[i - n_hidden - 2];
}

static int kind_hyper_check(const char *fn, size_t dim, const uint32_t *h,
                            size_t n, uint64_t *n_params)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(dim >= 2 && n >= 2 + dim && h[0] <= NVP_MAX_HIDDEN_LAYERS &&
                    n >= 2 + h[0] + dim && n <= 4 + h[0] + dim,
                NVP_EFORMAT, "%s: a coupling's description is malformed", fn);
    /* The values after the mask (see extra_values): the context dimension,
     * then the affine form, each stored only when needed. */
    const size_t base_n = 2 + h[0] + dim;
    const uint32_t cdim = n > base_n ? h[base_n] : 0;
    const uint32_t form = n > base_n + 1 ? h[base_n + 1] : NVP_AFFINE_EXP;
    NVP_REQUIRE(cdim <= NVP_MAX_DIM && (n != base_n + 1 || cdim >= 1),
                NVP_EFORMAT, "%s: context dimension %u outside [1, %d]", fn,
                cdim, NVP_MAX_DIM);
    NVP_REQUIRE(n != base_n + 2 || form == NVP_AFFINE_SIGMOID, NVP_EFORMAT,
                "%s: unknown affine form %u", fn, form);
    const uint32_t n_hidden = h[0];
    for (uint32_t k = 0; k < n_hidden; k++)
        NVP_REQUIRE(h[1 + k] >= 1 && h[1 + k] <= NVP_MAX_WIDTH, NVP_EFORMAT,
                    "%s: hidden width %u outside [1, %d]", fn, h[1 + k],
                    NVP_MAX_WIDTH);
    float clamp;
    memcpy(&clamp, &h[1 + n_hidden], sizeof clamp);
    NVP_REQUIRE(isfinite(clamp) && clamp >= 0.0f, NVP_EFORMAT,
                "%s: invalid log-scale clamp", fn);
    const uint32_t *mask = h + 2 + n_hidden;
    uint64_t na = 0;
    for (size_t j = 0; j < dim; j++) {
        NVP_REQUIRE(mask[j] <= 1, NVP_EFORMAT, "%s: mask value %zu is %u", fn,
                    j, mask[j]);
        na += mask[j];
    }
    NVP_REQUIRE(na > 0 && na < dim, NVP_EFORMAT,
                "%s: the mask needs both a 0 and a 1", fn);
    /* Every factor is at most 2^16, so no product overflows 64 bits. */
    uint64_t in = na + cdim, total = 0;
    for (uint32_t k = 0; k <= n_hidden; k++) {
        const uint64_t out = k < n_hidden ? h[1 + k] : 2 * (dim - na);
        total += in * out + out;
        in = out;
    }
    *n_params = total;
    return NVP_OK;
}

static int kind_from_hyper(nvp_layer **out, const char *fn, size_t dim,
                           const uint32_t *h, size_t n,
                           const nvp_allocator *alloc)
{
    const uint32_t n_hidden = h[0];
    const size_t base_n = 2 + n_hidden + dim;
    const size_t cdim = n > base_n ? h[base_n] : 0;
    const int form = n > base_n + 1 ? (int)h[base_n + 1] : NVP_AFFINE_EXP;
    size_t hidden[NVP_MAX_HIDDEN_LAYERS];
    for (uint32_t k = 0; k < n_hidden; k++)
        hidden[k] = h[1 + k];
    nvp_allocator a;
    if (nvp__allocator_init(&a, alloc) != NVP_OK)
        return nvp__fail(NULL, NVP_EINVAL, "%s: invalid allocator", fn);
    unsigned char *mask = nvp__malloc(&a, dim);
    if (!mask)
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    for (size_t j = 0; j < dim; j++)
        mask[j] = (unsigned char)h[2 + n_hidden + j];
    nvp_coupling *c = NULL;
    const int rc =
        nvp__coupling_new(&c, fn, dim, cdim, mask, n_hidden, hidden, alloc);
    nvp__free(&a, mask);
    if (rc)
        return rc;
    memcpy(&c->clamp, &h[1 + n_hidden], sizeof c->clamp);
    c->form = form;
    *out = &c->layer;
    return NVP_OK;
}

const nvp_layer_ops nvp__coupling_kind = {
    "affine coupling",
    1,
    kind_hyper_count,
    kind_hyper_value,
    kind_hyper_check,
    kind_from_hyper,
    kind_cache_floats,
    kind_scratch_floats,
    kind_inverse_rows,
    kind_forward_rows,
    kind_inverse_backward_rows,
    kind_forward_backward_rows,
    kind_fresh_range,
    kind_set_clamp,
    NULL, /* no data-dependent initialisation */
    nvp__coupling_release,
    1, /* the conditioner measures its parameters and gradient */
};
