/* Chain construction, parameters and the batched evaluation calls. */
#include "chain.h"

#include <math.h>
#include <string.h>

#include "alloc.h"

static size_t max_cache_floats(const nvp_chain *c, size_t rows)
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
           max_cache_floats(c, rows) + nvp__carved(rows);
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
        /* The message of the first failure is already recorded. */
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

/* Applies every layer in place to the n rows of z, forward (layer 1
 * first) or inverse (layer K first), chunk by chunk, adding each row's
 * log-determinant into ld (may be NULL; the caller initialises it).  Rows
 * that hold a non-finite value come out as NaN. */
static int chain_map(const nvp_chain *c, const char *fn, int inverse,
                     size_t n, float *z, float *ld)
{
    const nvp_errbox *eb = &c->err;
    nvp_ws *ws = nvp__ws_acquire(&c->engine, NVP_WS_EVAL);
    if (!ws)
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory for workspace",
                         fn);
    const size_t dim = c->dim, R = NVP_CHUNK_ROWS, K = c->n_layers;
    float *cursor = ws->arena;
    nvp__carve(&cursor, R * dim); /* the chunk copy log_prob uses */
    nvp__carve(&cursor, R);
    float *cache = nvp__carve(&cursor, max_cache_floats(c, R));
    unsigned char *bad = (unsigned char *)nvp__carve(&cursor, R);
    nvp_exec ex = {c->engine.kernel, ws->pack};
    for (size_t r0 = 0; r0 < n; r0 += R) {
        const size_t rows = n - r0 < R ? n - r0 : R;
        float *zc = z + r0 * dim;
        float *lc = ld ? ld + r0 : NULL;
        nvp__flag_nonfinite_rows(rows, dim, zc, bad);
        for (size_t s = 0; s < K; s++) {
            if (inverse)
                nvp__coupling_inverse_rows(c->layers[K - 1 - s], &ex, rows,
                                           zc, lc, cache);
            else
                nvp__coupling_forward_rows(c->layers[s], &ex, rows, zc, lc,
                                           cache);
        }
        for (size_t i = 0; i < rows; i++) {
            if (!bad[i])
                continue;
            for (size_t j = 0; j < dim; j++)
                zc[i * dim + j] = NAN;
            if (lc)
                lc[i] = NAN;
        }
    }
    nvp__ws_release(&c->engine, NVP_WS_EVAL, ws);
    return NVP_OK;
}

static int check_map_args(const nvp_chain *c, const char *fn, size_t n,
                          const void *in, const void *out)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE(c != NULL, NVP_EINVAL, "%s: chain is NULL", fn);
    NVP_REQUIRE(in != NULL && out != NULL, NVP_EINVAL,
                "%s: input or output is NULL", fn);
    return nvp__check_batch(eb, fn, n, c->dim);
}

int nvp_chain_forward(const nvp_chain *c, size_t n, const float *x, float *y,
                      float *logdet)
{
    int rc = check_map_args(c, "nvp_chain_forward", n, x, y);
    if (rc)
        return rc;
    if (y != x)
        memmove(y, x, n * c->dim * sizeof *y);
    if (logdet)
        memset(logdet, 0, n * sizeof *logdet);
    return chain_map(c, "nvp_chain_forward", 0, n, y, logdet);
}

int nvp_chain_inverse(const nvp_chain *c, size_t n, const float *y, float *x,
                      float *ildj)
{
    int rc = check_map_args(c, "nvp_chain_inverse", n, y, x);
    if (rc)
        return rc;
    if (x != y)
        memmove(x, y, n * c->dim * sizeof *x);
    if (ildj)
        memset(ildj, 0, n * sizeof *ildj);
    return chain_map(c, "nvp_chain_inverse", 1, n, x, ildj);
}

int nvp_chain_sample(const nvp_chain *c, nvp_rng *rng, size_t n, float *y,
                     float *log_prob)
{
    const char *fn = "nvp_chain_sample";
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE(rng != NULL, NVP_EINVAL, "%s: rng is NULL", fn);
    int rc = check_map_args(c, fn, n, y, y);
    if (rc)
        return rc;
    /* Base noise is drawn here, in row order, so the samples depend only
     * on the rng and not on how the rows are split into chunks. */
    rc = nvp_base_sample(c->base, rng, n, y);
    if (rc)
        return nvp__fail(eb, rc, "%s: %s", fn, nvp_errmsg());
    if (log_prob) {
        /* Accumulate -log p_base + sum logdet, then negate:
         * log p(y) = log p_base(x) - sum_k log|det_k|. */
        for (size_t i = 0; i < n; i++)
            log_prob[i] = (float)-nvp__base_log_prob_row(c->base, y + i * c->dim);
    }
    rc = chain_map(c, fn, 0, n, y, log_prob);
    if (rc == NVP_OK && log_prob)
        for (size_t i = 0; i < n; i++)
            log_prob[i] = -log_prob[i];
    return rc;
}

int nvp_chain_log_prob(const nvp_chain *c, size_t n, const float *y,
                       float *lp)
{
    const char *fn = "nvp_chain_log_prob";
    int rc = check_map_args(c, fn, n, y, lp);
    if (rc)
        return rc;
    const nvp_errbox *eb = &c->err;
    nvp_ws *ws = nvp__ws_acquire(&c->engine, NVP_WS_EVAL);
    if (!ws)
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory for workspace",
                         fn);
    const size_t dim = c->dim, R = NVP_CHUNK_ROWS, K = c->n_layers;
    float *cursor = ws->arena;
    float *z = nvp__carve(&cursor, R * dim);
    float *ildj = nvp__carve(&cursor, R);
    float *cache = nvp__carve(&cursor, max_cache_floats(c, R));
    unsigned char *bad = (unsigned char *)nvp__carve(&cursor, R);
    nvp_exec ex = {c->engine.kernel, ws->pack};
    for (size_t r0 = 0; r0 < n; r0 += R) {
        const size_t rows = n - r0 < R ? n - r0 : R;
        memcpy(z, y + r0 * dim, rows * dim * sizeof *z);
        memset(ildj, 0, rows * sizeof *ildj);
        nvp__flag_nonfinite_rows(rows, dim, z, bad);
        for (size_t s = 0; s < K; s++)
            nvp__coupling_inverse_rows(c->layers[K - 1 - s], &ex, rows, z,
                                       ildj, cache);
        for (size_t i = 0; i < rows; i++)
            lp[r0 + i] =
                bad[i] ? NAN
                       : (float)(nvp__base_log_prob_row(c->base, z + i * dim) +
                                 (double)ildj[i]);
    }
    nvp__ws_release(&c->engine, NVP_WS_EVAL, ws);
    return NVP_OK;
}

int nvp_chain_forward_trace(const nvp_chain *c, size_t n, const float *x,
                            float *stages)
{
    const char *fn = "nvp_chain_forward_trace";
    int rc = check_map_args(c, fn, n, x, stages);
    if (rc)
        return rc;
    const nvp_errbox *eb = &c->err;
    size_t block = n * c->dim, total;
    NVP_REQUIRE(nvp__mul(block, c->n_layers + 1, &total) == 0 &&
                    nvp__mul(total, sizeof(float), &total) == 0,
                NVP_EOVERFLOW, "%s: (layers + 1) * n * dim overflows", fn);
    nvp_ws *ws = nvp__ws_acquire(&c->engine, NVP_WS_EVAL);
    if (!ws)
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory for workspace",
                         fn);
    const size_t dim = c->dim, R = NVP_CHUNK_ROWS;
    float *cursor = ws->arena;
    nvp__carve(&cursor, R * dim);
    nvp__carve(&cursor, R);
    float *cache = nvp__carve(&cursor, max_cache_floats(c, R));
    unsigned char *bad = (unsigned char *)nvp__carve(&cursor, R);
    nvp_exec ex = {c->engine.kernel, ws->pack};
    memmove(stages, x, block * sizeof *stages);
    for (size_t k = 0; k < c->n_layers; k++) {
        float *next = stages + (k + 1) * block;
        memcpy(next, stages + k * block, block * sizeof *next);
        for (size_t r0 = 0; r0 < n; r0 += R) {
            const size_t rows = n - r0 < R ? n - r0 : R;
            float *zc = next + r0 * dim;
            nvp__flag_nonfinite_rows(rows, dim, zc, bad);
            nvp__coupling_forward_rows(c->layers[k], &ex, rows, zc, NULL,
                                       cache);
            for (size_t i = 0; i < rows; i++)
                if (bad[i])
                    for (size_t j = 0; j < dim; j++)
                        zc[i * dim + j] = NAN;
        }
    }
    nvp__ws_release(&c->engine, NVP_WS_EVAL, ws);
    return NVP_OK;
}

const char *nvp_chain_errmsg(const nvp_chain *c)
{
    return nvp__errbox_read(c ? &c->err : NULL);
}
