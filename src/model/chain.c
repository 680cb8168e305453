/* SPDX-License-Identifier: MIT */
/* Chain construction, parameters, threads and kernels. */
#include "model/chain.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"

/* The body of both public constructors: layers of any kind. */
static int chain_create(const char *fn, nvp_chain **out, nvp_base *base,
                        nvp_layer *const *layers, size_t n_layers,
                        const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(out != NULL, NVP_EINVAL, "%s: out is NULL", fn);
    *out = NULL;
    NVP_REQUIRE(base != NULL, NVP_EINVAL, "%s: base is NULL", fn);
    NVP_REQUIRE(!base->adopted, NVP_EINVAL,
                "%s: the base already belongs to a chain", fn);
    NVP_REQUIRE(layers != NULL, NVP_EINVAL, "%s: layers is NULL", fn);
    NVP_REQUIRE(n_layers >= 1 && n_layers <= NVP_MAX_LAYERS, NVP_EINVAL,
                "%s: n_layers %zu is outside [1, %d]", fn, n_layers,
                NVP_MAX_LAYERS);
    size_t total = 0, cdim = 0;
    for (size_t k = 0; k < n_layers; k++) {
        NVP_REQUIRE(layers[k] != NULL, NVP_EINVAL, "%s: layers[%zu] is NULL",
                    fn, k);
        const nvp_layer *l = layers[k];
        NVP_REQUIRE(l->dim == base->dim, NVP_EDIM,
                    "%s: layers[%zu] has dim %zu, the base %zu", fn, k, l->dim,
                    base->dim);
        NVP_REQUIRE(!l->adopted, NVP_EINVAL,
                    "%s: layers[%zu] already belongs to a chain", fn, k);
        for (size_t j = 0; j < k; j++)
            NVP_REQUIRE(layers[j] != layers[k], NVP_EINVAL,
                        "%s: layers[%zu] and layers[%zu] are the same layer",
                        fn, j, k);
        /* Every layer that reads a context reads the same one. */
        NVP_REQUIRE(!l->cdim || !cdim || l->cdim == cdim, NVP_EDIM,
                    "%s: layers[%zu] reads %zu context values, an earlier "
                    "layer %zu",
                    fn, k, l->cdim, cdim);
        if (l->cdim)
            cdim = l->cdim;
        NVP_REQUIRE(total <= NVP_MAX_PARAMS - l->n_params, NVP_EOVERFLOW,
                    "%s: more than %zu parameters", fn,
                    (size_t)NVP_MAX_PARAMS);
        total += l->n_params;
    }
    nvp_allocator a;
    NVP_REQUIRE(nvp__allocator_init(&a, alloc) == NVP_OK, NVP_EINVAL,
                "%s: invalid allocator", fn);
    nvp_chain *c = nvp__malloc(&a, sizeof *c);
    if (!c)
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    memset(c, 0, sizeof *c);
    c->alloc = a;
    c->layers = nvp__malloc(&a, n_layers * sizeof *c->layers);
    c->offsets = nvp__malloc(&a, n_layers * sizeof *c->offsets);
    /* (a chain of permutations alone has no parameters) */
    c->params = nvp__alloc_floats(&a, total ? total : 1);
    if (!c->layers || !c->offsets || !c->params) {
        nvp__free(&a, c->layers);
        nvp__free(&a, c->offsets);
        nvp__free_aligned(&a, c->params);
        nvp__free(&a, c);
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    }
    /* Nothing can fail from here on: adopt the base and the layers, moving
     * each layer's parameters into the flat vector. */
    c->base = base;
    base->adopted = 1;
    c->n_layers = n_layers;
    c->dim = base->dim;
    c->cdim = cdim;
    c->n_params = total;
    size_t off = 0;
    for (size_t k = 0; k < n_layers; k++) {
        nvp_layer *l = layers[k];
        c->layers[k] = l;
        c->offsets[k] = off;
        if (l->n_params)
            memcpy(c->params + off, l->params, l->n_params * sizeof(float));
        nvp__free_aligned(&l->alloc, l->own_params);
        l->own_params = NULL;
        l->adopted = 1;
        l->params = c->params + off;
        off += l->n_params;
    }
    nvp__errbox_init(&c->err);
    nvp__context_init(&c->ctx, &c->alloc, nvp__online_cpus());
    *out = c;
    return NVP_OK;
}

int nvp_chain_create_from_layers(nvp_chain **out, nvp_base *base,
                                 size_t n_layers, nvp_layer *const *layers,
                                 const nvp_allocator *alloc)
{
    return chain_create("nvp_chain_create_from_layers", out, base, layers,
                        n_layers, alloc);
}

/* The prologue both wrappers below share: n_layers in range, and a zeroed
 * array of n_layers layer pointers from the allocator (freed with
 * nvp__free(a, ...)). */
static int layer_array(const char *fn, size_t n_layers,
                       const nvp_allocator *alloc, nvp_allocator *a,
                       nvp_layer ***out)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(n_layers >= 1 && n_layers <= NVP_MAX_LAYERS, NVP_EINVAL,
                "%s: n_layers %zu is outside [1, %d]", fn, n_layers,
                NVP_MAX_LAYERS);
    NVP_REQUIRE(nvp__allocator_init(a, alloc) == NVP_OK, NVP_EINVAL,
                "%s: invalid allocator", fn);
    *out = nvp__malloc(a, n_layers * sizeof **out);
    if (!*out)
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    memset(*out, 0, n_layers * sizeof **out);
    return NVP_OK;
}

int nvp_chain_create(nvp_chain **out, nvp_base *base, size_t n_layers,
                     nvp_coupling *const *layers, const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    const char *fn = "nvp_chain_create";
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    NVP_REQUIRE_PTR(layers);
    nvp_allocator a;
    nvp_layer **as_layers;
    int rc = layer_array(fn, n_layers, alloc, &a, &as_layers);
    if (rc)
        return rc;
    for (size_t k = 0; k < n_layers; k++)
        as_layers[k] = layers[k] ? &layers[k]->layer : NULL;
    rc = chain_create(fn, out, base, as_layers, n_layers, alloc);
    nvp__free(&a, as_layers);
    return rc;
}

/* The body of both alternating constructors; messages name fn. */
static int chain_alternating(const char *fn, nvp_chain **out, size_t dim,
                             size_t cdim, size_t n_layers, size_t n_hidden,
                             const size_t *hidden, unsigned flags,
                             nvp_rng *rng, const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE_PTR_FN(out);
    *out = NULL;
    nvp_allocator a;
    nvp_layer **layers;
    int rc = layer_array(fn, n_layers, alloc, &a, &layers);
    if (rc)
        return rc;
    nvp_base *base = NULL;
    rc = nvp_base_create_normal(&base, dim, alloc);
    unsigned char *mask = rc == NVP_OK ? nvp__malloc(&a, dim) : NULL;
    if (rc == NVP_OK && !mask) /* (fn is prefixed below) */
        rc = nvp__fail(NULL, NVP_ENOMEM, "out of memory for the masks");
    for (size_t k = 0; rc == NVP_OK && k < n_layers; k++) {
        /* the half split of nvp_coupling_create_half, flipped every layer */
        for (size_t i = 0; i < dim; i++)
            mask[i] = (unsigned char)((i < dim / 2) != ((k & 1) != 0));
        nvp_coupling *l = NULL;
        rc = nvp_coupling_create_conditional(&l, dim, cdim, mask, n_hidden,
                                             hidden, flags, rng, alloc);
        layers[k] = l ? &l->layer : NULL;
    }
    nvp__free(&a, mask);
    if (rc == NVP_OK)
        rc = chain_create("nvp_chain_create", out, base, layers, n_layers,
                          alloc);
    if (rc != NVP_OK) {
        nvp__fail_in(NULL, rc, fn);
        for (size_t k = 0; k < n_layers; k++)
            nvp__layer_free(layers[k]);
        nvp_base_free(base);
    }
    nvp__free(&a, layers);
    return rc;
}

int nvp_chain_create_alternating(nvp_chain **out, size_t dim,
                                 size_t n_layers, size_t n_hidden,
                                 const size_t *hidden, unsigned flags,
                                 nvp_rng *rng, const nvp_allocator *alloc)
{
    return chain_alternating("nvp_chain_create_alternating", out, dim, 0,
                             n_layers, n_hidden, hidden, flags, rng, alloc);
}

int nvp_chain_create_conditional(nvp_chain **out, size_t dim,
                                 size_t context_dim, size_t n_layers,
                                 size_t n_hidden, const size_t *hidden,
                                 unsigned flags, nvp_rng *rng,
                                 const nvp_allocator *alloc)
{
    return chain_alternating("nvp_chain_create_conditional", out, dim,
                             context_dim, n_layers, n_hidden, hidden, flags,
                             rng, alloc);
}

void nvp_chain_free(nvp_chain *c)
{
    if (!c)
        return;
    nvp_allocator a = c->alloc;
    nvp__context_destroy(&c->ctx);
    for (size_t k = 0; k < c->n_layers; k++)
        nvp__layer_free(c->layers[k]);
    nvp_base_free(c->base);
    nvp__chain_drop_names(c);
    nvp__free(&a, c->layers);
    nvp__free(&a, c->offsets);
    nvp__free_aligned(&a, c->params);
    nvp__free_aligned(&a, c->grad);
    nvp__free_aligned(&a, c->batch);
    nvp__free_aligned(&a, c->batch_cond);
    nvp__errbox_destroy(&c->err);
    nvp__free(&a, c);
}

size_t nvp_chain_dim(const nvp_chain *c) { return c ? c->dim : 0; }
size_t nvp_chain_context_dim(const nvp_chain *c) { return c ? c->cdim : 0; }
size_t nvp_chain_num_layers(const nvp_chain *c) { return c ? c->n_layers : 0; }
size_t nvp_chain_num_params(const nvp_chain *c) { return c ? c->n_params : 0; }
float *nvp_chain_params(nvp_chain *c) { return c ? c->params : NULL; }

int nvp_chain_get_params(const nvp_chain *c, size_t count, float *dst)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR(c);
    NVP_REQUIRE_PTR(dst);
    NVP_REQUIRE(count == c->n_params, NVP_EDIM,
                "nvp_chain_get_params: count %zu, chain has %zu", count,
                c->n_params);
    memcpy(dst, c->params, count * sizeof *dst);
    return NVP_OK;
}

int nvp_chain_set_params(nvp_chain *c, size_t count, const float *src)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR(c);
    NVP_REQUIRE_PTR(src);
    NVP_REQUIRE(count == c->n_params, NVP_EDIM,
                "nvp_chain_set_params: count %zu, chain has %zu", count,
                c->n_params);
    for (size_t i = 0; i < count; i++)
        NVP_REQUIRE(isfinite(src[i]), NVP_ENONFINITE,
                    "nvp_chain_set_params: src[%zu] is not finite", i);
    memmove(c->params, src, count * sizeof *src);
    return NVP_OK;
}

const nvp_layer *nvp_chain_layer(const nvp_chain *c, size_t k,
                                 size_t *offset)
{
    if (!c || k >= c->n_layers)
        return NULL;
    if (offset)
        *offset = c->offsets[k];
    return c->layers[k];
}

const nvp_base *nvp_chain_base(const nvp_chain *c) { return c ? c->base : NULL; }

int nvp_chain_set_threads(nvp_chain *c, size_t n_threads)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR(c);
    NVP_REQUIRE(n_threads <= NVP_MAX_THREADS, NVP_EINVAL,
                "nvp_chain_set_threads: %zu threads (at most %d)", n_threads,
                NVP_MAX_THREADS);
    const size_t n = n_threads ? n_threads : nvp__online_cpus();
    const int rc = nvp__context_set_threads(&c->ctx, n);
    NVP_REQUIRE(rc != NVP_EBUSY, rc,
                "nvp_chain_set_threads: another thread is in a call on this "
                "chain; threads unchanged");
    if (rc != NVP_OK)
        return nvp__fail(eb, rc,
                         "nvp_chain_set_threads: could not start %zu threads "
                         "(%s)",
                         n, nvp_strerror(rc));
    return NVP_OK;
}

size_t nvp_chain_threads(const nvp_chain *c) { return c ? c->ctx.threads : 0; }

int nvp_chain_set_kernels(nvp_chain *c, int kernels)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR(c);
    nvp_isa isa;
    const int rc = nvp__check_kernels(eb, "nvp_chain_set_kernels", kernels, &isa);
    if (rc)
        return rc;
    nvp__context_set_isa(&c->ctx, isa);
    return NVP_OK;
}

int nvp_chain_kernels(const nvp_chain *c)
{
    return c ? nvp__kernels_from_isa(c->ctx.isa) : -1;
}

int nvp_precision_supported(int precision)
{
    return precision == NVP_PRECISION_FP32 ||
           (precision == NVP_PRECISION_BF16 && nvp__gemm_bf16_supported());
}

int nvp_chain_set_precision(nvp_chain *c, int precision)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR(c);
    NVP_REQUIRE(precision == NVP_PRECISION_FP32 ||
                    precision == NVP_PRECISION_BF16,
                NVP_EINVAL,
                "nvp_chain_set_precision: unknown precision %d (expected "
                "NVP_PRECISION_FP32 or NVP_PRECISION_BF16)",
                precision);
    NVP_REQUIRE(nvp_precision_supported(precision), NVP_EUNSUPPORTED,
                "nvp_chain_set_precision: this CPU (or this build of the "
                "library) has no AVX512-BF16; the chain stays in FP32");
    c->ctx.bf16 = precision == NVP_PRECISION_BF16;
    return NVP_OK;
}

int nvp_chain_precision(const nvp_chain *c)
{
    return c ? (c->ctx.bf16 ? NVP_PRECISION_BF16 : NVP_PRECISION_FP32) : -1;
}

int nvp_chain_set_log_scale_clamp(nvp_chain *c, float bound)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR(c);
    NVP_REQUIRE(isfinite(bound) && bound >= 0.0f, NVP_EINVAL,
                "nvp_chain_set_log_scale_clamp: bound must be finite and >= 0 "
                "(got %g)",
                (double)bound);
    for (size_t k = 0; k < c->n_layers; k++)
        if (c->layers[k]->kind->set_log_scale_clamp)
            c->layers[k]->kind->set_log_scale_clamp(c->layers[k], bound);
    return NVP_OK;
}

const char *nvp_chain_errmsg(const nvp_chain *c)
{
    return nvp__errbox_read(c ? &c->err : NULL);
}

int nvp_chain_set_base(nvp_chain *c, nvp_base *base)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR(c);
    NVP_REQUIRE_PTR(base);
    NVP_REQUIRE(!base->adopted, NVP_EINVAL,
                "nvp_chain_set_base: the base already belongs to a chain");
    NVP_REQUIRE(base->dim == c->dim, NVP_EDIM,
                "nvp_chain_set_base: the base has dim %zu, the chain %zu",
                base->dim, c->dim);
    nvp_base_free(c->base);
    c->base = base;
    base->adopted = 1;
    return NVP_OK;
}
