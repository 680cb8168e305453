/* SPDX-License-Identifier: MIT */
/* Affine coupling layer: construction, parameters and the public batched
 * calls of a standalone layer. */
#include "model/coupling.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "model/eval.h"
#include "model/layer_kinds.h"

/* Frees what the coupling allocated besides the shared part (the layer
 * table's release). */
void nvp__coupling_release(nvp_layer *l)
{
    nvp_coupling *c = (nvp_coupling *)l;
    const nvp_allocator *a = &c->layer.alloc;
    nvp__free(a, c->idx_a);
    nvp__free(a, c->idx_b);
    nvp__free(a, c->mask);
}

int nvp__coupling_plan(nvp_coupling *c, const nvp_errbox *eb, const char *fn,
                       size_t dim, size_t cdim, const unsigned char *mask,
                       size_t n_hidden, const size_t *hidden)
{
    static const size_t default_hidden[NVP_DEFAULT_HIDDEN_LAYERS] = {
        NVP_DEFAULT_HIDDEN_WIDTH, NVP_DEFAULT_HIDDEN_WIDTH};
    NVP_REQUIRE(dim >= 2 && dim <= NVP_MAX_DIM, NVP_EINVAL,
                "%s: dim %zu is outside [2, %d]", fn, dim, NVP_MAX_DIM);
    NVP_REQUIRE(cdim <= NVP_MAX_DIM, NVP_EINVAL,
                "%s: context_dim %zu is above %d", fn, cdim, NVP_MAX_DIM);
    NVP_REQUIRE(mask != NULL, NVP_EINVAL, "%s: mask is NULL", fn);
    if (!hidden) {
        NVP_REQUIRE(n_hidden == 0, NVP_EINVAL,
                    "%s: hidden is NULL but n_hidden is %zu", fn, n_hidden);
        hidden = default_hidden;
        n_hidden = NVP_DEFAULT_HIDDEN_LAYERS;
    }
    NVP_REQUIRE(n_hidden <= NVP_MAX_HIDDEN_LAYERS, NVP_EINVAL,
                "%s: %zu hidden layers (at most %d)", fn, n_hidden,
                NVP_MAX_HIDDEN_LAYERS);
    size_t na = 0;
    for (size_t i = 0; i < dim; i++) {
        NVP_REQUIRE(mask[i] <= 1, NVP_EINVAL,
                    "%s: mask[%zu] is %u (must be 0 or 1)", fn, i,
                    (unsigned)mask[i]);
        na += mask[i];
    }
    NVP_REQUIRE(na > 0 && na < dim, NVP_EINVAL,
                "%s: the mask must hold at least one 0 and one 1", fn);
    for (size_t l = 0; l < n_hidden; l++)
        NVP_REQUIRE(hidden[l] >= 1 && hidden[l] <= NVP_MAX_WIDTH, NVP_EINVAL,
                    "%s: hidden[%zu] = %zu is outside [1, %d]", fn, l,
                    hidden[l], NVP_MAX_WIDTH);

    const nvp_allocator *a = &c->layer.alloc;
    c->layer.dim = dim;
    c->layer.cdim = cdim;
    c->na = na;
    c->nb = dim - na;
    c->idx_a = nvp__malloc(a, na * sizeof(size_t));
    c->idx_b = nvp__malloc(a, c->nb * sizeof(size_t));
    c->mask = nvp__malloc(a, dim);
    if (!c->idx_a || !c->idx_b || !c->mask)
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory", fn);
    memcpy(c->mask, mask, dim);
    size_t ia = 0, ib = 0;
    for (size_t i = 0; i < dim; i++) {
        if (mask[i])
            c->idx_a[ia++] = i;
        else
            c->idx_b[ib++] = i;
    }
    /* The conditioner maps x_a, then the context, to a shift and a
     * log-scale per x_b. */
    int rc = nvp__cond_plan(&c->cond, eb, fn, na + cdim, 2 * c->nb, n_hidden,
                            hidden);
    if (rc)
        return rc;
    c->layer.n_params = c->cond.n_params;
    return NVP_OK;
}

/* PyTorch nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
 * weights and biases alike. */
static void init_params(nvp_coupling *c, nvp_rng *rng, unsigned flags)
{
    const nvp_conditioner *cond = &c->cond;
    for (size_t l = 0; l < cond->n_dense; l++) {
        const nvp_dense *d = &cond->dense[l];
        float *w = c->layer.params + d->w_off;
        const size_t count = d->in * d->out + d->out;
        if (l + 1 == cond->n_dense && (flags & NVP_INIT_ZERO_OUTPUT)) {
            memset(w, 0, count * sizeof *w);
            continue;
        }
        const double bound = 1.0 / sqrt((double)d->in);
        for (size_t i = 0; i < count; i++) {
            const double u = (double)(nvp__rng_next(rng) >> 11) * 0x1.0p-53;
            w[i] = (float)((2.0 * u - 1.0) * bound);
        }
    }
}

int nvp__coupling_new(nvp_coupling **out, const char *fn, size_t dim,
                      size_t cdim, const unsigned char *mask, size_t n_hidden,
                      const size_t *hidden, const nvp_allocator *alloc)
{
    *out = NULL;
    nvp_layer *l;
    /* The parameter count comes from the plan: allocated after it. */
    int rc = nvp__layer_new(&l, sizeof(nvp_coupling), &nvp__coupling_kind,
                            dim, 0, alloc, fn);
    if (rc)
        return rc;
    nvp_coupling *c = (nvp_coupling *)l;
    rc = nvp__coupling_plan(c, NULL, fn, dim, cdim, mask, n_hidden, hidden);
    if (rc == NVP_OK)
        rc = nvp__layer_alloc_params(l, c->cond.n_params, fn);
    if (rc != NVP_OK) {
        nvp__layer_free(l);
        return rc;
    }
    *out = c;
    return NVP_OK;
}

/* The body of the public constructors; messages name fn. */
static int coupling_create(const char *fn, nvp_coupling **out, size_t dim,
                           size_t cdim, const unsigned char *mask,
                           size_t n_hidden,
                           const size_t *hidden, unsigned flags, nvp_rng *rng,
                           const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(rng != NULL, NVP_EINVAL, "%s: rng is NULL", fn);
    NVP_REQUIRE((flags & ~NVP_INIT_ZERO_OUTPUT) == 0, NVP_EINVAL,
                "%s: unknown flags 0x%x", fn, flags);
    int rc =
        nvp__coupling_new(out, fn, dim, cdim, mask, n_hidden, hidden, alloc);
    if (rc == NVP_OK)
        init_params(*out, rng, flags);
    return rc;
}

int nvp_coupling_create(nvp_coupling **out, size_t dim,
                        const unsigned char *mask, size_t n_hidden,
                        const size_t *hidden, unsigned flags, nvp_rng *rng,
                        const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    return coupling_create("nvp_coupling_create", out, dim, 0, mask,
                           n_hidden, hidden, flags, rng, alloc);
}

int nvp_coupling_create_conditional(nvp_coupling **out, size_t dim,
                                    size_t context_dim,
                                    const unsigned char *mask,
                                    size_t n_hidden, const size_t *hidden,
                                    unsigned flags, nvp_rng *rng,
                                    const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    return coupling_create("nvp_coupling_create_conditional", out, dim,
                           context_dim, mask, n_hidden, hidden, flags, rng,
                           alloc);
}

int nvp_coupling_create_half(nvp_coupling **out, size_t dim, int flip,
                             size_t n_hidden, const size_t *hidden,
                             unsigned flags, nvp_rng *rng,
                             const nvp_allocator *alloc)
{
    const char *fn = "nvp_coupling_create_half";
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    NVP_REQUIRE(dim >= 2 && dim <= NVP_MAX_DIM, NVP_EINVAL,
                "%s: dim %zu is outside [2, %d]", fn, dim, NVP_MAX_DIM);
    nvp_allocator a;
    NVP_REQUIRE(nvp__allocator_init(&a, alloc) == NVP_OK, NVP_EINVAL,
                "%s: invalid allocator", fn);
    unsigned char *mask = nvp__malloc(&a, dim);
    if (!mask)
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    for (size_t i = 0; i < dim; i++)
        mask[i] = (unsigned char)((i < dim / 2) != (flip != 0));
    int rc = coupling_create(fn, out, dim, 0, mask, n_hidden, hidden, flags,
                             rng, alloc);
    nvp__free(&a, mask);
    return rc;
}

void nvp_coupling_free(nvp_coupling *c)
{
    /* A chain's layer goes with the chain. */
    if (c && !c->layer.adopted)
        nvp__layer_free(&c->layer);
}

size_t nvp_coupling_dim(const nvp_coupling *c) { return c ? c->layer.dim : 0; }

size_t nvp_coupling_num_params(const nvp_coupling *c)
{
    return c ? c->layer.n_params : 0;
}

int nvp_coupling_get_hidden(const nvp_coupling *c, size_t cap, size_t *widths,
                            size_t *n_hidden)
{
    const nvp_errbox *eb = c ? &c->layer.err : NULL;
    NVP_REQUIRE_PTR(c);
    NVP_REQUIRE_PTR(n_hidden);
    const size_t n = c->cond.n_dense - 1;
    *n_hidden = n;
    if (widths)
        for (size_t h = 0; h < n && h < cap; h++)
            widths[h] = c->cond.dense[h].out;
    NVP_REQUIRE(!widths || cap >= n, NVP_EBUFSIZE,
                "nvp_coupling_get_hidden: %zu hidden layers, room for %zu", n, cap);
    return NVP_OK;
}

int nvp_coupling_get_mask(const nvp_coupling *c, size_t dim, unsigned char *mask)
{
    const nvp_errbox *eb = c ? &c->layer.err : NULL;
    NVP_REQUIRE_PTR(c);
    NVP_REQUIRE_PTR(mask);
    NVP_REQUIRE(dim == c->layer.dim, NVP_EDIM,
                "nvp_coupling_get_mask: dim %zu, layer has %zu", dim, c->layer.dim);
    memcpy(mask, c->mask, dim);
    return NVP_OK;
}

int nvp_coupling_get_params(const nvp_coupling *c, size_t count, float *dst)
{
    return nvp__layer_get_params(c ? &c->layer : NULL,
                                 "nvp_coupling_get_params", count, dst);
}

int nvp_coupling_set_params(nvp_coupling *c, size_t count, const float *src)
{
    return nvp__layer_set_params(c ? &c->layer : NULL,
                                 "nvp_coupling_set_params", count, src);
}

int nvp_coupling_forward(const nvp_coupling *c, size_t n, const float *x,
                         float *y, float *logdet)
{
    return nvp__layer_map(c ? &c->layer : NULL, "nvp_coupling_forward", 0, n,
                          x, NULL, y, logdet);
}

int nvp_coupling_inverse(const nvp_coupling *c, size_t n, const float *y,
                         float *x, float *ildj)
{
    return nvp__layer_map(c ? &c->layer : NULL, "nvp_coupling_inverse", 1, n,
                          y, NULL, x, ildj);
}

int nvp_coupling_inverse_backward(const nvp_coupling *c, size_t n,
                                  const float *y, const float *dx,
                                  const float *dildj, float *dy, float *grad)
{
    return nvp__layer_inverse_backward(c ? &c->layer : NULL,
                                       "nvp_coupling_inverse_backward", n, y,
                                       NULL, dx, dildj, dy, NULL, grad);
}

int nvp_coupling_set_log_scale_clamp(nvp_coupling *c, float bound)
{
    const nvp_errbox *eb = c ? &c->layer.err : NULL;
    NVP_REQUIRE_PTR(c);
    NVP_REQUIRE(isfinite(bound) && bound >= 0.0f, NVP_EINVAL,
                "nvp_coupling_set_log_scale_clamp: bound must be finite and "
                ">= 0 (got %g)",
                (double)bound);
    c->clamp = bound;
    return NVP_OK;
}

float nvp_coupling_log_scale_clamp(const nvp_coupling *c)
{
    return c ? c->clamp : 0.0f;
}

int nvp_coupling_set_affine_form(nvp_coupling *c, int form)
{
    const nvp_errbox *eb = c ? &c->layer.err : NULL;
    NVP_REQUIRE_PTR(c);
    NVP_REQUIRE(form == NVP_AFFINE_EXP || form == NVP_AFFINE_SIGMOID,
                NVP_EINVAL, "nvp_coupling_set_affine_form: unknown form %d",
                form);
    NVP_REQUIRE(!c->layer.adopted, NVP_EINVAL,
                "nvp_coupling_set_affine_form: the layer belongs to a chain");
    c->form = form;
    return NVP_OK;
}

int nvp_coupling_affine_form(const nvp_coupling *c)
{
    return c ? c->form : -1;
}

const char *nvp_coupling_errmsg(const nvp_coupling *c)
{
    return nvp__errbox_read(c ? &c->layer.err : NULL);
}

int nvp_coupling_set_kernels(nvp_coupling *c, int kernels)
{
    const nvp_errbox *eb = c ? &c->layer.err : NULL;
    NVP_REQUIRE_PTR(c);
    nvp_isa isa;
    const int rc =
        nvp__check_kernels(eb, "nvp_coupling_set_kernels", kernels, &isa);
    if (rc)
        return rc;
    nvp__context_set_isa(&c->layer.ctx, isa);
    return NVP_OK;
}

int nvp_coupling_kernels(const nvp_coupling *c)
{
    return c ? nvp__kernels_from_isa(c->layer.ctx.isa) : -1;
}
