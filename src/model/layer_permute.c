/* SPDX-License-Identifier: MIT */
/* The permutation layer: moves dimensions around so that the couplings
 * after it condition on other ones.  Forward (base to data) y[i] =
 * x[perm[i]]; inverse x[perm[i]] = y[i]; log-determinant 0; no
 * parameters. */
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "model/layer_kinds.h"

typedef struct permute_layer {
    nvp_layer layer;
    size_t *perm;
} permute_layer;

#define AS_PERMUTE(l) ((const permute_layer *)(l))

static size_t permute_cache_floats(const nvp_layer *l, size_t rows)
{
    (void)rows;
    return nvp__carved(l->dim); /* one row, to permute through */
}

static void permute_inverse_rows(const nvp_layer *l, const nvp_exec *ex,
                                 size_t rows, float *z, const float *cond,
                                 float *ildj, float *cache)
{
    (void)cond;
    (void)ex;
    (void)ildj;
    const size_t dim = l->dim, *perm = AS_PERMUTE(l)->perm;
    for (size_t i = 0; i < rows; i++) {
        float *zi = z + i * dim;
        memcpy(cache, zi, dim * sizeof *zi);
        for (size_t j = 0; j < dim; j++)
            zi[perm[j]] = cache[j];
    }
}

static void permute_forward_rows(const nvp_layer *l, const nvp_exec *ex,
                                 size_t rows, float *z, const float *cond,
                                 float *logdet, float *cache)
{
    (void)cond;
    (void)ex;
    (void)logdet;
    const size_t dim = l->dim, *perm = AS_PERMUTE(l)->perm;
    for (size_t i = 0; i < rows; i++) {
        float *zi = z + i * dim;
        memcpy(cache, zi, dim * sizeof *zi);
        for (size_t j = 0; j < dim; j++)
            zi[j] = cache[perm[j]];
    }
}

static void permute_inverse_backward_rows(const nvp_layer *l,
                                          const nvp_exec *ex, size_t rows,
                                          const float *cache, const float *x,
                                          const float *cond, const float *dx,
                                          const float *dildj, float *dy,
                                          float *dcond, float *grad,
                                          int fresh, float *scratch)
{
    (void)cond, (void)dcond;
    (void)ex, (void)cache, (void)x, (void)dildj, (void)grad, (void)fresh;
    (void)scratch;
    if (!dy)
        return;
    /* x[perm[j]] = y[j], so dL/dy[j] = dL/dx[perm[j]]. */
    const size_t dim = l->dim, *perm = AS_PERMUTE(l)->perm;
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < dim; j++)
            dy[i * dim + j] = dx[i * dim + perm[j]];
}

static void permute_forward_backward_rows(const nvp_layer *l,
                                          const nvp_exec *ex, size_t rows,
                                          const float *cache, const float *x,
                                          const float *cond, const float *dy,
                                          const float *dlogdet, float *dx,
                                          float *dcond, float *grad,
                                          int fresh, float *scratch)
{
    (void)ex, (void)cache, (void)x, (void)cond, (void)dlogdet, (void)dcond;
    (void)grad, (void)fresh, (void)scratch;
    if (!dx)
        return;
    /* y[j] = x[perm[j]], so dL/dx[perm[j]] = dL/dy[j]. */
    const size_t dim = l->dim, *perm = AS_PERMUTE(l)->perm;
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < dim; j++)
            dx[i * dim + perm[j]] = dy[i * dim + j];
}

static void permute_release(nvp_layer *l)
{
    nvp__free(&l->alloc, ((permute_layer *)l)->perm);
}

/* Stored values: the permutation. */
static size_t permute_hyper_count(const nvp_layer *l) { return l->dim; }

static uint32_t permute_hyper_value(const nvp_layer *l, size_t i)
{
    return (uint32_t)AS_PERMUTE(l)->perm[i];
}

static int permute_hyper_check(const char *fn, size_t dim, const uint32_t *h,
                               size_t n, uint64_t *n_params)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(n == dim, NVP_EFORMAT,
                "%s: a permutation of %zu dimensions stores %zu values", fn,
                dim, n);
    uint64_t seen[NVP_MAX_DIM / 64];
    memset(seen, 0, sizeof seen);
    for (size_t j = 0; j < dim; j++) {
        const uint32_t v = h[j];
        NVP_REQUIRE(v < dim && !(seen[v / 64] >> (v % 64) & 1), NVP_EFORMAT,
                    "%s: not a permutation (value %u at %zu)", fn, v, j);
        seen[v / 64] |= (uint64_t)1 << (v % 64);
    }
    *n_params = 0;
    return NVP_OK;
}

static int permute_from_hyper(nvp_layer **out, const char *fn, size_t dim,
                              const uint32_t *h, size_t n,
                              const nvp_allocator *alloc)
{
    (void)n;
    nvp_allocator a;
    if (nvp__allocator_init(&a, alloc) != NVP_OK)
        return nvp__fail(NULL, NVP_EINVAL, "%s: invalid allocator", fn);
    size_t *perm = nvp__malloc(&a, dim * sizeof *perm);
    if (!perm)
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    for (size_t j = 0; j < dim; j++)
        perm[j] = h[j];
    const int rc = nvp__permute_new(out, fn, dim, perm, alloc);
    nvp__free(&a, perm);
    return rc;
}

const nvp_layer_ops nvp__permute_kind = {
    "permutation",
    2,
    permute_hyper_count,
    permute_hyper_value,
    permute_hyper_check,
    permute_from_hyper,
    permute_cache_floats,
    nvp__layer_no_floats, /* no scratch */
    permute_inverse_rows,
    permute_forward_rows,
    permute_inverse_backward_rows,
    permute_forward_backward_rows,
    nvp__layer_no_fresh_range,
    NULL, /* no log-scale */
    NULL, /* no data-dependent initialisation */
    permute_release,
    0, /* the chain measures its parameters and gradient */
};

const size_t *nvp__permute_perm(const nvp_layer *l)
{
    return l->kind == &nvp__permute_kind ? AS_PERMUTE(l)->perm : NULL;
}

int nvp__permute_new(nvp_layer **out, const char *fn, size_t dim,
                     const size_t *perm, const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(dim >= 1 && dim <= NVP_MAX_DIM, NVP_EINVAL,
                "%s: dim %zu is outside [1, %d]", fn, dim, NVP_MAX_DIM);
    nvp_layer *l;
    int rc = nvp__layer_new(&l, sizeof(permute_layer), &nvp__permute_kind,
                            dim, 0, alloc, fn);
    if (rc)
        return rc;
    permute_layer *p = (permute_layer *)l;
    p->perm = nvp__malloc(&l->alloc, dim * sizeof *p->perm);
    unsigned char *seen = nvp__malloc(&l->alloc, dim);
    if (!p->perm || !seen) {
        nvp__free(&l->alloc, seen);
        nvp__layer_free(l);
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    }
    memset(seen, 0, dim);
    for (size_t j = 0; j < dim; j++) {
        if (perm[j] >= dim || seen[perm[j]]) {
            rc = nvp__fail(NULL, NVP_EINVAL,
                           "%s: perm[%zu] = %zu is out of range or repeated",
                           fn, j, perm[j]);
            break;
        }
        seen[perm[j]] = 1;
        p->perm[j] = perm[j];
    }
    nvp__free(&l->alloc, seen);
    if (rc) {
        nvp__layer_free(l);
        return rc;
    }
    *out = l;
    return NVP_OK;
}
