/* SPDX-License-Identifier: MIT */
/* Chain construction, parameters and the batched evaluation calls. */
#include "model/chain.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"

size_t nvp__chain_max_cache_floats(const nvp_chain *c, size_t rows)
{
    size_t m = 0;
    for (size_t k = 0; k < c->n_layers; k++) {
        size_t f = nvp__coupling_cache_floats(c->layers[k], rows);
        if (f > m)
            m = f;
    }
    return m;
}

/* Evaluation: a chunk copy of the input, an accumulator row, one layer's
 * cache (layers run one after another) and a row of flags. */
static size_t eval_floats(const nvp_chain *c, size_t rows)
{
    return nvp__carved(rows * c->dim) + nvp__carved(rows) +
           nvp__chain_max_cache_floats(c, rows) + nvp__carved(rows);
}

/* Training: K + 1 stages, every layer's cache (their offsets go to
 * cache_off), the largest backward scratch, two stage gradients, and the
 * ildj and dildj rows.  Fills c->cache_off (K + 1 entries, the last one
 * the total) and c->scratch_floats. */
static size_t train_floats(nvp_chain *c, size_t rows)
{
    size_t caches = 0, scratch = 0;
    for (size_t k = 0; k < c->n_layers; k++) {
        c->cache_off[k] = caches;
        caches += nvp__coupling_cache_floats(c->layers[k], rows);
        size_t s = nvp__coupling_scratch_floats(c->layers[k], rows);
        if (s > scratch)
            scratch = s;
    }
    c->cache_off[c->n_layers] = caches;
    c->scratch_floats = scratch;
    return (c->n_layers + 3) * nvp__carved(rows * c->dim) + caches + scratch +
           2 * nvp__carved(rows);
}

int nvp_chain_create(nvp_chain **out, nvp_base *base,
                     nvp_coupling *const *layers, size_t n_layers,
                     const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    const char *fn = "nvp_chain_create";
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    NVP_REQUIRE_PTR(base);
    NVP_REQUIRE_PTR(layers);
    NVP_REQUIRE(n_layers >= 1 && n_layers <= NVP_MAX_LAYERS, NVP_EINVAL,
                "%s: n_layers %zu is outside [1, %d]", fn, n_layers,
                NVP_MAX_LAYERS);
    size_t total = 0;
    for (size_t k = 0; k < n_layers; k++) {
        const nvp_coupling *l = layers[k];
        NVP_REQUIRE(l != NULL, NVP_EINVAL, "%s: layers[%zu] is NULL", fn, k);
        NVP_REQUIRE(l->dim == base->dim, NVP_EDIM,
                    "%s: layers[%zu] has dim %zu, the base %zu", fn, k, l->dim,
                    base->dim);
        NVP_REQUIRE(l->own_params != NULL, NVP_EINVAL,
                    "%s: layers[%zu] already belongs to a chain", fn, k);
        for (size_t j = 0; j < k; j++)
            NVP_REQUIRE(layers[j] != l, NVP_EINVAL,
                        "%s: layers[%zu] and layers[%zu] are the same layer",
                        fn, j, k);
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
    c->cache_off = nvp__malloc(&a, (n_layers + 1) * sizeof *c->cache_off);
    c->params = nvp__alloc_aligned(&a, total * sizeof(float));
    if (!c->layers || !c->offsets || !c->cache_off || !c->params) {
        nvp__free(&a, c->layers);
        nvp__free(&a, c->offsets);
        nvp__free(&a, c->cache_off);
        nvp__free_aligned(&a, c->params);
        nvp__free(&a, c);
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    }
    /* Nothing can fail from here on: adopt the base and the layers, moving
     * each layer's parameters into the flat vector. */
    c->base = base;
    c->n_layers = n_layers;
    c->dim = base->dim;
    c->n_params = total;
    size_t off = 0;
    for (size_t k = 0; k < n_layers; k++) {
        nvp_coupling *l = layers[k];
        c->layers[k] = l;
        c->offsets[k] = off;
        memcpy(c->params + off, l->params, l->n_params * sizeof(float));
        nvp__free_aligned(&l->alloc, l->own_params);
        l->own_params = NULL;
        l->params = c->params + off;
        off += l->n_params;
    }
    nvp__errbox_init(&c->err);
    c->threads = nvp__online_cpus();
    pthread_mutex_init(&c->pool_lock, NULL);
    nvp__engine_init(&c->engine, &c->alloc, eval_floats(c, NVP_CHUNK_ROWS),
                     train_floats(c, NVP_CHUNK_ROWS));
    *out = c;
    return NVP_OK;
}

int nvp_chain_create_alternating(nvp_chain **out, size_t dim,
                                 size_t n_layers, size_t n_hidden,
                                 const size_t *hidden, unsigned flags,
                                 nvp_rng *rng, const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    const char *fn = "nvp_chain_create_alternating";
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    NVP_REQUIRE(n_layers >= 1 && n_layers <= NVP_MAX_LAYERS, NVP_EINVAL,
                "%s: n_layers %zu is outside [1, %d]", fn, n_layers,
                NVP_MAX_LAYERS);
    nvp_allocator a;
    NVP_REQUIRE(nvp__allocator_init(&a, alloc) == NVP_OK, NVP_EINVAL,
                "%s: invalid allocator", fn);
    nvp_coupling **layers = nvp__malloc(&a, n_layers * sizeof *layers);
    if (!layers)
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    memset(layers, 0, n_layers * sizeof *layers);
    nvp_base *base = NULL;
    int rc = nvp_base_create_normal(&base, dim, alloc);
    for (size_t k = 0; rc == NVP_OK && k < n_layers; k++)
        rc = nvp_coupling_create_half(&layers[k], dim, (int)(k & 1), n_hidden,
                                      hidden, flags, rng, alloc);
    if (rc == NVP_OK)
        rc = nvp_chain_create(out, base, layers, n_layers, alloc);
    if (rc != NVP_OK) {
        nvp__fail_in(NULL, rc, fn);
        for (size_t k = 0; k < n_layers; k++)
            nvp_coupling_free(layers[k]);
        nvp_base_free(base);
    }
    nvp__free(&a, layers);
    return rc;
}

void nvp_chain_free(nvp_chain *c)
{
    if (!c)
        return;
    nvp_allocator a = c->alloc;
    nvp__pool_free(c->pool);
    pthread_mutex_destroy(&c->pool_lock);
    nvp__engine_destroy(&c->engine);
    for (size_t k = 0; k < c->n_layers; k++)
        nvp_coupling_free(c->layers[k]);
    nvp_base_free(c->base);
    nvp__free(&a, c->layers);
    nvp__free(&a, c->offsets);
    nvp__free(&a, c->cache_off);
    nvp__free_aligned(&a, c->params);
    nvp__free_aligned(&a, c->grad);
    nvp__free_aligned(&a, c->batch);
    nvp__errbox_destroy(&c->err);
    nvp__free(&a, c);
}

size_t nvp_chain_dim(const nvp_chain *c) { return c ? c->dim : 0; }
size_t nvp_chain_num_layers(const nvp_chain *c) { return c ? c->n_layers : 0; }
size_t nvp_chain_num_params(const nvp_chain *c) { return c ? c->n_params : 0; }
float *nvp_chain_params(nvp_chain *c) { return c ? c->params : NULL; }

int nvp_chain_get_params(const nvp_chain *c, float *dst, size_t count)
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

int nvp_chain_set_params(nvp_chain *c, const float *src, size_t count)
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

const nvp_coupling *nvp_chain_layer(const nvp_chain *c, size_t k,
                                    size_t *offset)
{
    if (!c || k >= c->n_layers)
        return NULL;
    if (offset)
        *offset = c->offsets[k];
    return c->layers[k];
}

const nvp_base *nvp_chain_base(const nvp_chain *c) { return c ? c->base : NULL; }

static size_t max_pack_floats(void)
{
    size_t count, m = 0;
    const nvp_gemm_kernel *const *ks = nvp__gemm_kernels(&count);
    for (size_t i = 0; i < count; i++) {
        size_t f = nvp__gemm_pack_floats(ks[i]);
        if (f > m)
            m = f;
    }
    return m;
}

nvp_pool *nvp__chain_pool_take(const nvp_chain *cc)
{
    if (cc->threads <= 1)
        return NULL;
    /* Starting the pool is the one change a const call makes to the chain;
     * pool_lock serialises it. */
    nvp_chain *c = (nvp_chain *)cc;
    pthread_mutex_lock(&c->pool_lock);
    if (!c->pool && !c->pool_failed &&
        nvp__pool_create(&c->pool, c->threads, max_pack_floats(), &c->alloc) !=
            NVP_OK)
        c->pool_failed = 1;
    nvp_pool *p = c->pool;
    pthread_mutex_unlock(&c->pool_lock);
    return p && nvp__pool_try_acquire(p) ? p : NULL;
}

void nvp__chain_pool_give(nvp_pool *pool)
{
    if (pool)
        nvp__pool_release(pool);
}

int nvp_chain_set_threads(nvp_chain *c, size_t n_threads)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR(c);
    NVP_REQUIRE(n_threads <= NVP_MAX_THREADS, NVP_EINVAL,
                "nvp_chain_set_threads: %zu threads (at most %d)", n_threads,
                NVP_MAX_THREADS);
    const size_t n = n_threads ? n_threads : nvp__online_cpus();
    if (n == c->threads && !c->pool_failed)
        return NVP_OK;
    /* Start the new pool before retiring the old one, so that a failure
     * leaves the chain as it was. */
    nvp_pool *fresh = NULL;
    if (n > 1) {
        int rc = nvp__pool_create(&fresh, n, max_pack_floats(), &c->alloc);
        if (rc != NVP_OK)
            return nvp__fail(eb, rc,
                             "nvp_chain_set_threads: could not start %zu "
                             "threads (%s)",
                             n, nvp_strerror(rc));
    }
    nvp__pool_free(c->pool);
    c->pool = fresh;
    c->pool_failed = 0;
    c->threads = n;
    return NVP_OK;
}

size_t nvp_chain_threads(const nvp_chain *c) { return c ? c->threads : 0; }

int nvp_chain_set_log_scale_clamp(nvp_chain *c, float bound)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR(c);
    NVP_REQUIRE(isfinite(bound) && bound >= 0.0f, NVP_EINVAL,
                "nvp_chain_set_log_scale_clamp: bound must be finite and >= 0 "
                "(got %g)",
                (double)bound);
    for (size_t k = 0; k < c->n_layers; k++)
        c->layers[k]->clamp = bound;
    return NVP_OK;
}

const char *nvp_chain_errmsg(const nvp_chain *c)
{
    return nvp__errbox_read(c ? &c->err : NULL);
}
