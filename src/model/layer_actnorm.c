/* SPDX-License-Identifier: MIT */
/* ActNorm (Kingma and Dhariwal 2018): a learnable element-wise affine map.
 * Forward (base to data) y = x * exp(s) + b, log|det| = sum(s); inverse
 * x = (y - b) * exp(-s).  Parameters: s (dim), then b (dim).  A fresh
 * layer is the identity; nvp_chain_init_from_data sets b to the data's
 * mean and s to the log of its standard deviation, so that the inverse
 * standardises the data the layer sees. */
#include <math.h>

#include "core/alloc.h"
#include "model/layer_kinds.h"

/* The cache holds the dim scale factors the direction last run applied
 * (e^{-s} after the inverse, e^{s} after the forward), computed once per
 * call instead of once per row; its backward reads them. */
static size_t actnorm_cache_floats(const nvp_layer *l, size_t rows)
{
    (void)rows;
    return nvp__carved(l->dim);
}

static void actnorm_inverse_rows(const nvp_layer *l, const nvp_exec *ex,
                                 size_t rows, float *z, const float *cond,
                                 float *ildj, float *cache)
{
    (void)cond;
    (void)ex;
    const size_t dim = l->dim;
    const float *s = l->params, *b = l->params + dim;
    float sum = 0.0f;
    for (size_t j = 0; j < dim; j++) {
        sum += s[j];
        cache[j] = expf(-s[j]);
    }
    for (size_t i = 0; i < rows; i++) {
        float *zi = z + i * dim;
        for (size_t j = 0; j < dim; j++)
            zi[j] = (zi[j] - b[j]) * cache[j];
        if (ildj)
            ildj[i] -= sum;
    }
}

static void actnorm_forward_rows(const nvp_layer *l, const nvp_exec *ex,
                                 size_t rows, float *z, const float *cond,
                                 float *logdet, float *cache)
{
    (void)cond;
    (void)ex;
    const size_t dim = l->dim;
    const float *s = l->params, *b = l->params + dim;
    float sum = 0.0f;
    for (size_t j = 0; j < dim; j++) {
        sum += s[j];
        cache[j] = expf(s[j]);
    }
    for (size_t i = 0; i < rows; i++) {
        float *zi = z + i * dim;
        for (size_t j = 0; j < dim; j++)
            zi[j] = zi[j] * cache[j] + b[j];
        if (logdet)
            logdet[i] += sum;
    }
}

static void actnorm_inverse_backward_rows(const nvp_layer *l,
                                          const nvp_exec *ex, size_t rows,
                                          const float *cache, const float *x,
                                          const float *cond, const float *dx,
                                          const float *dildj, float *dy,
                                          float *dcond, float *grad,
                                          int fresh, float *scratch)
{
    (void)cond, (void)dcond;
    (void)ex, (void)fresh, (void)scratch;
    const size_t dim = l->dim;
    /* x_j = (y_j - b_j) e^{-s_j}: dx_j/dy_j = e^{-s_j}, dx_j/db_j =
     * -e^{-s_j}, dx_j/ds_j = -x_j; ildj = -sum s, so dildj/ds_j = -1. */
    float *gs = grad, *gb = grad ? grad + dim : NULL;
    for (size_t i = 0; i < rows; i++) {
        const float *xi = x + i * dim, *dxi = dx + i * dim;
        const float di = dildj ? dildj[i] : 0.0f;
        for (size_t j = 0; j < dim; j++) {
            const float e = cache[j]; /* e^{-s_j}, from the inverse */
            if (dy)
                dy[i * dim + j] = dxi[j] * e;
            if (grad) {
                gs[j] += -dxi[j] * xi[j] - di;
                gb[j] += -dxi[j] * e;
            }
        }
    }
}

/* y_j = x_j e^{s_j} + b_j, logdet = sum s: dy_j/dx_j = e^{s_j}, dy_j/ds_j
 * = x_j e^{s_j}, dy_j/db_j = 1, dlogdet/ds_j = 1. */
static void actnorm_forward_backward_rows(const nvp_layer *l,
                                          const nvp_exec *ex, size_t rows,
                                          const float *cache, const float *x,
                                          const float *cond, const float *dy,
                                          const float *dlogdet, float *dx,
                                          float *dcond, float *grad,
                                          int fresh, float *scratch)
{
    (void)ex, (void)cond, (void)dcond, (void)fresh;
    (void)scratch;
    const size_t dim = l->dim;
    float *gs = grad, *gb = grad ? grad + dim : NULL;
    for (size_t i = 0; i < rows; i++) {
        const float *xi = x + i * dim, *dyi = dy + i * dim;
        const float di = dlogdet ? dlogdet[i] : 0.0f;
        for (size_t j = 0; j < dim; j++) {
            const float e = cache[j]; /* e^{s_j}, from the forward */
            if (dx)
                dx[i * dim + j] = dyi[j] * e;
            if (grad) {
                gs[j] += dyi[j] * (xi[j] * e) + di;
                gb[j] += dyi[j];
            }
        }
    }
}

/* b = the mean, s = log(sd) per dimension, in double.  A dimension that
 * does not vary keeps sd 1: nothing to scale. */
static int actnorm_data_init(nvp_layer *l, const nvp_errbox *eb,
                             const char *fn, size_t n, const float *z)
{
    const size_t dim = l->dim;
    double *acc = nvp__malloc(&l->alloc, 2 * dim * sizeof *acc);
    if (!acc)
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory", fn);
    double *mean = acc, *var = acc + dim;
    for (size_t j = 0; j < dim; j++)
        mean[j] = var[j] = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++)
            mean[j] += z[i * dim + j];
    for (size_t j = 0; j < dim; j++)
        mean[j] /= (double)n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++) {
            const double d = z[i * dim + j] - mean[j];
            var[j] += d * d;
        }
    int rc = NVP_OK;
    for (size_t j = 0; j < dim && rc == NVP_OK; j++)
        if (!isfinite(mean[j]) || !isfinite(var[j]))
            rc = nvp__fail(eb, NVP_ENONFINITE,
                           "%s: the data's spread overflows at dimension %zu",
                           fn, j);
    if (rc == NVP_OK)
        for (size_t j = 0; j < dim; j++) {
            const double sd = sqrt(var[j] / (double)n);
            l->params[j] = sd > 1e-30 ? (float)log(sd) : 0.0f;
            l->params[dim + j] = (float)mean[j];
        }
    nvp__free(&l->alloc, acc);
    return rc;
}

static int actnorm_hyper_check(const char *fn, size_t dim, const uint32_t *h,
                               size_t n, uint64_t *n_params)
{
    (void)h;
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(n == 0, NVP_EFORMAT, "%s: an actnorm layer stores no values",
                fn);
    *n_params = 2 * (uint64_t)dim;
    return NVP_OK;
}

static int actnorm_from_hyper(nvp_layer **out, const char *fn, size_t dim,
                              const uint32_t *h, size_t n,
                              const nvp_allocator *alloc)
{
    (void)h;
    (void)n;
    return nvp__actnorm_new(out, fn, dim, alloc);
}

const nvp_layer_ops nvp__actnorm_kind = {
    "actnorm",
    3,
    nvp__layer_no_hyper_count,
    nvp__layer_no_hyper_value,
    actnorm_hyper_check,
    actnorm_from_hyper,
    actnorm_cache_floats,
    nvp__layer_no_floats, /* no scratch */
    actnorm_inverse_rows,
    actnorm_forward_rows,
    actnorm_inverse_backward_rows,
    actnorm_forward_backward_rows,
    nvp__layer_no_fresh_range,
    NULL, /* its log-scales are parameters, not a conditioner's output */
    actnorm_data_init,
    NULL,
    0, /* the chain measures its parameters and gradient */
};

int nvp__actnorm_new(nvp_layer **out, const char *fn, size_t dim,
                     const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(dim >= 1 && dim <= NVP_MAX_DIM, NVP_EINVAL,
                "%s: dim %zu is outside [1, %d]", fn, dim, NVP_MAX_DIM);
    return nvp__layer_new(out, sizeof(nvp_layer), &nvp__actnorm_kind, dim,
                          2 * dim, alloc, fn);
}
