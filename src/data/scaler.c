/* SPDX-License-Identifier: MIT */
/* Per-axis standardisation (scikit-learn's StandardScaler). */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/check.h"
#include "core/names.h"
#include "data/scaler.h"

int nvp_scaler_create(nvp_scaler **out, size_t dim, const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    NVP_REQUIRE(dim >= 1 && dim <= NVP_MAX_DIM, NVP_EINVAL,
                "nvp_scaler_create: dim %zu is outside [1, %d]", dim,
                NVP_MAX_DIM);
    nvp_allocator a;
    NVP_REQUIRE(nvp__allocator_init(&a, alloc) == NVP_OK, NVP_EINVAL,
                "nvp_scaler_create: invalid allocator");
    nvp_scaler *s = nvp__malloc(&a, sizeof *s);
    if (!s)
        return nvp__fail(NULL, NVP_ENOMEM, "nvp_scaler_create: out of memory");
    memset(s, 0, sizeof *s);
    s->alloc = a;
    s->mean = nvp__malloc(&a, dim * sizeof(float));
    s->sd = nvp__malloc(&a, dim * sizeof(float));
    if (!s->mean || !s->sd) {
        nvp__free(&a, s->mean);
        nvp__free(&a, s->sd);
        nvp__free(&a, s);
        return nvp__fail(NULL, NVP_ENOMEM, "nvp_scaler_create: out of memory");
    }
    s->dim = dim;
    for (size_t j = 0; j < dim; j++) {
        s->mean[j] = 0.0f;
        s->sd[j] = 1.0f;
    }
    nvp__errbox_init(&s->err);
    *out = s;
    return NVP_OK;
}

void nvp_scaler_free(nvp_scaler *s)
{
    if (!s)
        return;
    nvp_allocator a = s->alloc;
    nvp__free(&a, s->mean);
    nvp__free(&a, s->sd);
    nvp__free(&a, s->names);
    nvp__free(&a, s->name_at);
    nvp__errbox_destroy(&s->err);
    nvp__free(&a, s);
}

size_t nvp_scaler_dim(const nvp_scaler *s) { return s ? s->dim : 0; }

int nvp_scaler_fit(nvp_scaler *s, size_t n, const float *x)
{
    const nvp_errbox *eb = s ? &s->err : NULL;
    const char *fn = "nvp_scaler_fit";
    NVP_REQUIRE_PTR(s);
    NVP_REQUIRE_PTR(x);
    int rc = nvp__check_batch(eb, fn, n, s->dim);
    if (rc)
        return rc;
    const size_t d = s->dim;
    for (size_t i = 0; i < n * d; i++)
        NVP_REQUIRE(isfinite(x[i]), NVP_ENONFINITE,
                    "%s: row %zu holds a non-finite value", fn, i / d);
    /* Two passes in double: the mean, then the mean squared deviation. */
    for (size_t j = 0; j < d; j++) {
        double m = 0.0, v = 0.0;
        for (size_t i = 0; i < n; i++)
            m += x[i * d + j];
        m /= (double)n;
        for (size_t i = 0; i < n; i++) {
            const double e = x[i * d + j] - m;
            v += e * e;
        }
        const double sd = sqrt(v / (double)n);
        s->mean[j] = (float)m;
        /* A constant axis keeps sd 1, as scikit-learn does. */
        s->sd[j] = sd > 0.0 && (float)sd > 0.0f ? (float)sd : 1.0f;
    }
    return NVP_OK;
}

static int scaler_map(const nvp_scaler *s, const char *fn, int inverse,
                      size_t n, const float *in, float *out)
{
    const nvp_errbox *eb = s ? &s->err : NULL;
    NVP_REQUIRE(s != NULL, NVP_EINVAL, "%s: scaler is NULL", fn);
    NVP_REQUIRE(in != NULL && out != NULL, NVP_EINVAL,
                "%s: input or output is NULL", fn);
    int rc = nvp__check_batch(eb, fn, n, s->dim);
    if (rc)
        return rc;
    const size_t d = s->dim;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            const float v = in[i * d + j];
            float r = inverse ? v * s->sd[j] + s->mean[j]
                              : (v - s->mean[j]) / s->sd[j];
            /* Near the float range's ends v - mean, or v * sd, can
             * overflow although the result fits: then in double (the usual
             * case keeps float's bits). */
            if (!isfinite(r) && isfinite(v))
                r = inverse ? (float)((double)v * s->sd[j] + s->mean[j])
                            : (float)(((double)v - s->mean[j]) / s->sd[j]);
            out[i * d + j] = r;
        }
    return NVP_OK;
}

int nvp_scaler_transform(const nvp_scaler *s, size_t n, const float *x,
                         float *z)
{
    return scaler_map(s, "nvp_scaler_transform", 0, n, x, z);
}

int nvp_scaler_inverse_transform(const nvp_scaler *s, size_t n,
                                 const float *z, float *x)
{
    return scaler_map(s, "nvp_scaler_inverse_transform", 1, n, z, x);
}

int nvp_scaler_get(const nvp_scaler *s, size_t dim, float *mean, float *sd)
{
    const nvp_errbox *eb = s ? &s->err : NULL;
    NVP_REQUIRE_PTR(s);
    NVP_REQUIRE(dim == s->dim, NVP_EDIM,
                "nvp_scaler_get: dim %zu, scaler has %zu", dim, s->dim);
    if (mean)
        memcpy(mean, s->mean, dim * sizeof *mean);
    if (sd)
        memcpy(sd, s->sd, dim * sizeof *sd);
    return NVP_OK;
}

int nvp_scaler_set(nvp_scaler *s, size_t dim, const float *mean, const float *sd)
{
    const nvp_errbox *eb = s ? &s->err : NULL;
    NVP_REQUIRE_PTR(s);
    NVP_REQUIRE_PTR(mean);
    NVP_REQUIRE_PTR(sd);
    NVP_REQUIRE(dim == s->dim, NVP_EDIM,
                "nvp_scaler_set: dim %zu, scaler has %zu", dim, s->dim);
    for (size_t j = 0; j < dim; j++)
        NVP_REQUIRE(isfinite(mean[j]) && isfinite(sd[j]) && sd[j] > 0.0f,
                    NVP_EINVAL,
                    "nvp_scaler_set: axis %zu: mean must be finite and sd "
                    "finite and > 0",
                    j);
    memcpy(s->mean, mean, dim * sizeof *mean);
    memcpy(s->sd, sd, dim * sizeof *sd);
    return NVP_OK;
}

double nvp_scaler_log_det(const nvp_scaler *s)
{
    if (!s)
        return 0.0;
    double sum = 0.0;
    for (size_t j = 0; j < s->dim; j++)
        sum += log((double)s->sd[j]);
    return sum;
}

const char *nvp_scaler_errmsg(const nvp_scaler *s)
{
    return nvp__errbox_read(s ? &s->err : NULL);
}

int nvp__scaler_set_names(nvp_scaler *s, const char *fn,
                          const char *const *names, const size_t *lens)
{
    char *block;
    char **at;
    const int rc = nvp__names_copy(&s->alloc, &s->err, fn, s->dim, names,
                                   lens, &block, &at);
    if (rc)
        return rc;
    nvp__free(&s->alloc, s->names);
    nvp__free(&s->alloc, s->name_at);
    s->names = block;
    s->name_at = at;
    return NVP_OK;
}

int nvp_scaler_set_column_names(nvp_scaler *s, size_t dim,
                                const char *const *names)
{
    const char *fn = "nvp_scaler_set_column_names";
    const nvp_errbox *eb = s ? &s->err : NULL;
    NVP_REQUIRE_PTR(s);
    if (!names) {
        nvp__free(&s->alloc, s->names);
        nvp__free(&s->alloc, s->name_at);
        s->names = NULL;
        s->name_at = NULL;
        return NVP_OK;
    }
    NVP_REQUIRE(dim == s->dim, NVP_EDIM, "%s: %zu names for %zu axes", fn,
                dim, s->dim);
    size_t *lens = nvp__malloc(&s->alloc, dim * sizeof *lens);
    if (!lens)
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory", fn);
    for (size_t j = 0; j < dim; j++)
        lens[j] = names[j] ? strnlen(names[j], NVP_MAX_COLUMN_NAME + 1) : 0;
    const int rc = nvp__scaler_set_names(s, fn, names, lens);
    nvp__free(&s->alloc, lens);
    return rc;
}

const char *nvp_scaler_column_name(const nvp_scaler *s, size_t j)
{
    return s && s->name_at && j < s->dim ? s->name_at[j] : NULL;
}
