/* SPDX-License-Identifier: MIT */
/* The standard normal base distribution N(0, I), and the calls every
 * kind shares (the mixture's own arithmetic is in base_mixture.c). */
#include "model/base.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/check.h"
#include "core/rng.h"

#define HALF_LOG_2PI 0.91893853320467274178

int nvp_base_create_normal(nvp_base **out, size_t dim,
                           const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    NVP_REQUIRE(dim >= 1 && dim <= NVP_MAX_DIM, NVP_EINVAL,
                "nvp_base_create_normal: dim %zu is outside [1, %d]", dim,
                NVP_MAX_DIM);
    nvp_allocator a;
    NVP_REQUIRE(nvp__allocator_init(&a, alloc) == NVP_OK, NVP_EINVAL,
                "nvp_base_create_normal: invalid allocator");
    nvp_base *b = nvp__malloc(&a, sizeof *b);
    if (!b)
        return nvp__fail(NULL, NVP_ENOMEM,
                         "nvp_base_create_normal: out of memory");
    memset(b, 0, sizeof *b);
    b->alloc = a;
    b->kind = NVP_BASE_NORMAL;
    b->dim = dim;
    nvp__errbox_init(&b->err);
    *out = b;
    return NVP_OK;
}

void nvp_base_free(nvp_base *b)
{
    if (!b)
        return;
    nvp_allocator a = b->alloc;
    if (b->kind == NVP_BASE_MIXTURE)
        nvp__mixture_release(b);
    nvp__errbox_destroy(&b->err);
    nvp__free(&a, b);
}

size_t nvp_base_dim(const nvp_base *b) { return b ? b->dim : 0; }

double nvp__base_log_prob_row(const nvp_base *b, const float *x)
{
    if (b->kind == NVP_BASE_MIXTURE)
        return nvp__mixture_log_prob_row(b, x);
    double s = 0.0;
    for (size_t j = 0; j < b->dim; j++) {
        if (!isfinite(x[j]))
            return NAN;
        s += (double)x[j] * (double)x[j];
    }
    return -0.5 * s - (double)b->dim * HALF_LOG_2PI;
}

double nvp__base_grad_row(const nvp_base *b, const float *x, float *g)
{
    if (b->kind == NVP_BASE_MIXTURE)
        return nvp__mixture_grad_row(b, x, g);
    /* the sum in nvp__base_log_prob_row's order, so the same bits */
    double s = 0.0;
    int finite = 1;
    for (size_t j = 0; j < b->dim; j++) {
        g[j] = -x[j];
        finite &= isfinite(x[j]) != 0;
        s += (double)x[j] * (double)x[j];
    }
    return finite ? -0.5 * s - (double)b->dim * HALF_LOG_2PI : NAN;
}

int nvp_base_sample(const nvp_base *b, nvp_rng *rng, size_t n, float *x)
{
    const nvp_errbox *eb = b ? &b->err : NULL;
    NVP_REQUIRE_PTR(b);
    NVP_REQUIRE_PTR(rng);
    NVP_REQUIRE_PTR(x);
    int rc = nvp__check_batch(eb, "nvp_base_sample", n, b->dim);
    if (rc)
        return rc;
    if (b->kind == NVP_BASE_MIXTURE) {
        for (size_t i = 0; i < n; i++)
            nvp__mixture_sample_row(b, rng, x + i * b->dim);
        return NVP_OK;
    }
    for (size_t i = 0; i < n * b->dim; i++)
        x[i] = (float)nvp__rng_normal(rng);
    return NVP_OK;
}

int nvp_base_log_prob(const nvp_base *b, size_t n, const float *x, float *lp)
{
    const nvp_errbox *eb = b ? &b->err : NULL;
    NVP_REQUIRE_PTR(b);
    NVP_REQUIRE_PTR(x);
    NVP_REQUIRE_PTR(lp);
    int rc = nvp__check_batch(eb, "nvp_base_log_prob", n, b->dim);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        lp[i] = (float)nvp__base_log_prob_row(b, x + i * b->dim);
    return NVP_OK;
}

int nvp_base_log_prob_grad(const nvp_base *b, size_t n, const float *x,
                           float *g)
{
    const nvp_errbox *eb = b ? &b->err : NULL;
    NVP_REQUIRE_PTR(b);
    NVP_REQUIRE_PTR(x);
    NVP_REQUIRE_PTR(g);
    int rc = nvp__check_batch(eb, "nvp_base_log_prob_grad", n, b->dim);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        nvp__base_grad_row(b, x + i * b->dim, g + i * b->dim);
    return NVP_OK;
}

const char *nvp_base_errmsg(const nvp_base *b)
{
    return nvp__errbox_read(b ? &b->err : NULL);
}
