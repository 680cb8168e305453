/* SPDX-License-Identifier: MIT */
/* The Gaussian-mixture base distribution: k components with full
 * covariances.  Under a flow whose layers start as the identity (zero
 * output layers) and a whitening layer, a mixture fitted to the whitened
 * training rows makes the untrained model that mixture fitted to the
 * data, so training starts from the classical estimator instead of a
 * single Gaussian.  Each component keeps M = L^-1, L the Cholesky factor
 * of its covariance: log N(x) = log det M - |M (x - mu)|^2 / 2 - const,
 * its gradient -M^T M (x - mu), and a draw mu + M^-1 e by forward
 * substitution, all without a per-call workspace beyond the stack. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/check.h"
#include "core/rng.h"
#include "kernels/vec.h"
#include "model/base.h"

#define HALF_LOG_2PI 0.91893853320467274178

/* v as a float, beyond float's range an infinity: converting such a
 * double directly is undefined, and a hostile model file's factors can
 * make one. */
static float saturate(double v)
{
    if (v > FLT_MAX)
        return INFINITY;
    if (v < -FLT_MAX)
        return -INFINITY;
    return (float)v;
}

/* |M (x - mu)|^2 / 2 of component c, in double; NaN for non-finite x. */
static double half_mahalanobis(const nvp_base *b, size_t c, const float *x,
                               double *v)
{
    const size_t d = b->dim;
    const float *mu = b->mean + c * d;
    const float *m = b->m + c * d * d;
    double s = 0.0;
    for (size_t i = 0; i < d; i++) {
        const float *row = m + i * d;
        double t = 0.0;
        for (size_t j = 0; j <= i; j++)
            t += (double)row[j] * ((double)x[j] - (double)mu[j]);
        if (v)
            v[i] = t;
        s += t * t;
    }
    return 0.5 * s;
}

double nvp__mixture_component_logs(const nvp_base *b, const float *x, double *lk)
{
    double top = -INFINITY;
    for (size_t c = 0; c < b->k; c++) {
        lk[c] = b->lconst[c] - half_mahalanobis(b, c, x, NULL);
        if (lk[c] > top)
            top = lk[c];
    }
    if (!isfinite(top))
        return top;
    double s = 0.0;
    for (size_t c = 0; c < b->k; c++)
        s += exp(lk[c] - top);
    return top + log(s);
}

/* The row's log density from the components' log-sum-exp lse: NaN for a
 * non-finite row, and -inf below float's range (the callers convert it
 * to float). */
static double row_log_prob(const nvp_base *b, const float *x, double lse)
{
    for (size_t j = 0; j < b->dim; j++)
        if (!isfinite(x[j]))
            return NAN;
    return lse < -FLT_MAX ? -INFINITY : lse;
}

double nvp__mixture_log_prob_row(const nvp_base *b, const float *x)
{
    double lk[NVP_MIXTURE_MAX_K];
    return row_log_prob(b, x, nvp__mixture_component_logs(b, x, lk));
}

double nvp__mixture_grad_row(const nvp_base *b, const float *x, float *g)
{
    const size_t d = b->dim;
    double lk[NVP_MIXTURE_MAX_K];
    double v[NVP_MIXTURE_MAX_DIM], acc[NVP_MIXTURE_MAX_DIM];
    const double lse = nvp__mixture_component_logs(b, x, lk);
    memset(acc, 0, d * sizeof *acc);
    for (size_t c = 0; c < b->k && isfinite(lse); c++) {
        /* the component's responsibility; the far ones add nothing */
        const double r = exp(lk[c] - lse);
        if (r < 1e-300)
            continue;
        half_mahalanobis(b, c, x, v);
        const float *m = b->m + c * d * d;
        /* acc -= r M^T v, row by row of M (its columns are strided) */
        for (size_t i = 0; i < d; i++) {
            const double ri = r * v[i];
            const float *row = m + i * d;
            for (size_t j = 0; j <= i; j++)
                acc[j] -= ri * (double)row[j];
        }
    }
    for (size_t j = 0; j < d; j++)
        g[j] = isfinite(lse) ? saturate(acc[j]) : NAN;
    return row_log_prob(b, x, lse);
}

void nvp__mixture_sample_row(const nvp_base *b, nvp_rng *rng, float *x)
{
    const size_t d = b->dim;
    /* the component: a uniform draw against the cumulative weights */
    double total = 0.0;
    for (size_t c = 0; c < b->k; c++)
        total += b->w[c];
    const double u =
        (double)(nvp__rng_next(rng) >> 11) * 0x1.0p-53 * total;
    size_t c = 0;
    double cum = b->w[0];
    while (c + 1 < b->k && u >= cum)
        cum += b->w[++c];
    /* x = mu + M^-1 e: forward substitution in place (x_i needs the
     * x_j, j < i, already solved, and e_i, still in place) */
    const float *m = b->m + c * d * d;
    const float *mu = b->mean + c * d;
    double y[NVP_MIXTURE_MAX_DIM];
    for (size_t i = 0; i < d; i++) {
        const float *row = m + i * d;
        double t = nvp__rng_normal(rng);
        for (size_t j = 0; j < i; j++)
            t -= (double)row[j] * y[j];
        y[i] = t / (double)row[i];
    }
    for (size_t i = 0; i < d; i++)
        x[i] = saturate((double)mu[i] + y[i]);
}

void nvp__mixture_release(nvp_base *b)
{
    nvp__free(&b->alloc, b->w);
    nvp__free(&b->alloc, b->mean);
    nvp__free(&b->alloc, b->m);
    nvp__free(&b->alloc, b->lconst);
    b->w = b->mean = b->m = NULL;
    b->lconst = NULL;
}

int nvp__mixture_alloc(nvp_base **out, const char *fn, size_t dim, size_t k,
                         const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    *out = NULL;
    NVP_REQUIRE(dim >= 1 && dim <= NVP_MIXTURE_MAX_DIM, NVP_EINVAL,
                "%s: a mixture base has 1 to %d dimensions, not %zu", fn,
                NVP_MIXTURE_MAX_DIM, dim);
    NVP_REQUIRE(k >= 1 && k <= NVP_MIXTURE_MAX_K, NVP_EINVAL,
                "%s: a mixture has 1 to %d components, not %zu", fn,
                NVP_MIXTURE_MAX_K, k);
    nvp_allocator a;
    NVP_REQUIRE(nvp__allocator_init(&a, alloc) == NVP_OK, NVP_EINVAL,
                "%s: invalid allocator", fn);
    nvp_base *b = nvp__malloc(&a, sizeof *b);
    if (!b)
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    memset(b, 0, sizeof *b);
    b->alloc = a;
    b->kind = NVP_BASE_MIXTURE;
    b->dim = dim;
    b->k = k;
    nvp__errbox_init(&b->err);
    b->w = nvp__malloc(&a, k * sizeof *b->w);
    b->mean = nvp__malloc(&a, k * dim * sizeof *b->mean);
    b->m = nvp__malloc(&a, k * dim * dim * sizeof *b->m);
    b->lconst = nvp__malloc(&a, k * sizeof *b->lconst);
    if (!b->w || !b->mean || !b->m || !b->lconst) {
        nvp_base_free(b);
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory for %zu "
                         "components of %zu dimensions", fn, k, dim);
    }
    *out = b;
    return NVP_OK;
}

void nvp__mixture_set_consts(nvp_base *b)
{
    const size_t d = b->dim;
    double total = 0.0;
    for (size_t c = 0; c < b->k; c++)
        total += b->w[c];
    for (size_t c = 0; c < b->k; c++) {
        double logdet = 0.0;
        const float *m = b->m + c * d * d;
        for (size_t i = 0; i < d; i++)
            logdet += log((double)m[i * d + i]);
        b->lconst[c] = log((double)b->w[c] / total) + logdet -
                       (double)d * HALF_LOG_2PI;
    }
}

/* Checks the stored form in b and sets lconst; on failure frees b. */
static int mixture_finish(nvp_base *b, const char *fn)
{
    const nvp_errbox *eb = NULL;
    const size_t d = b->dim;
    double total = 0.0;
    int rc = NVP_OK;
    for (size_t c = 0; c < b->k && rc == NVP_OK; c++) {
        if (!(isfinite(b->w[c]) && b->w[c] > 0.0f))
            rc = nvp__fail(eb, NVP_EINVAL, "%s: component %zu's weight is "
                           "not a positive number", fn, c);
        total += b->w[c];
        if (rc == NVP_OK && !nvp__all_finite(NVP_ISA_PORTABLE,
                                             b->mean + c * d, d))
            rc = nvp__fail(eb, NVP_EINVAL, "%s: component %zu's mean is "
                           "not finite", fn, c);
        const float *m = b->m + c * d * d;
        for (size_t i = 0; i < d && rc == NVP_OK; i++) {
            const float *row = m + i * d;
            if (!(isfinite(row[i]) && row[i] > 0.0f))
                rc = nvp__fail(eb, NVP_EINVAL, "%s: component %zu's factor "
                               "has a diagonal entry that is not a positive "
                               "number", fn, c);
            for (size_t j = 0; j < d && rc == NVP_OK; j++)
                if (!isfinite(row[j]) || (j > i && row[j] != 0.0f))
                    rc = nvp__fail(eb, NVP_EINVAL, "%s: component %zu's "
                                   "factor is not a finite lower-triangular "
                                   "matrix", fn, c);
        }
    }
    if (rc == NVP_OK && !(total > 0.999 && total < 1.001))
        rc = nvp__fail(eb, NVP_EINVAL, "%s: the weights sum to %g, not 1",
                       fn, total);
    if (rc == NVP_OK)
        nvp__mixture_set_consts(b);
    if (rc != NVP_OK)
        nvp_base_free(b);
    return rc;
}

int nvp__base_mixture_from_factors(nvp_base **out, const char *fn,
                                   size_t dim, size_t k, const float *w,
                                   const float *mean, const float *m,
                                   const nvp_allocator *alloc)
{
    nvp_base *b;
    int rc = nvp__mixture_alloc(&b, fn, dim, k, alloc);
    if (rc)
        return rc;
    memcpy(b->w, w, k * sizeof *w);
    memcpy(b->mean, mean, k * dim * sizeof *mean);
    memcpy(b->m, m, k * dim * dim * sizeof *m);
    if ((rc = mixture_finish(b, fn)) == NVP_OK)
        *out = b;
    return rc;
}

int nvp__cholesky_inverse(size_t d, const double *s, double *l, float *m)
{
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j <= i; j++) {
            double t = s[i * d + j];
            for (size_t p = 0; p < j; p++)
                t -= l[i * d + p] * l[j * d + p];
            if (i == j) {
                if (!(t > 0.0) || !isfinite(t))
                    return -1;
                l[i * d + i] = sqrt(t);
            } else {
                l[i * d + j] = t / l[j * d + j];
            }
        }
    /* M L = I, M lower-triangular: column by column of the identity */
    memset(m, 0, d * d * sizeof *m);
    for (size_t j = 0; j < d; j++)
        for (size_t i = j; i < d; i++) {
            double t = i == j ? 1.0 : 0.0;
            for (size_t p = j; p < i; p++)
                t -= l[i * d + p] * (double)m[p * d + j];
            const double v = t / l[i * d + i];
            if (!(fabs(v) <= FLT_MAX))
                return -2;
            if (i == j && !((float)v > 0.0f))
                return -2; /* underflows to 0 */
            m[i * d + j] = (float)v;
        }
    return 0;
}

int nvp_base_create_mixture(nvp_base **out, size_t dim, size_t k,
                            const float *weights, const float *means,
                            const float *covs, const nvp_allocator *alloc)
{
    const char *fn = "nvp_base_create_mixture";
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    NVP_REQUIRE_PTR(weights);
    NVP_REQUIRE_PTR(means);
    NVP_REQUIRE_PTR(covs);
    nvp_base *b;
    int rc = nvp__mixture_alloc(&b, fn, dim, k, alloc);
    if (rc)
        return rc;
    double total = 0.0;
    for (size_t c = 0; c < k; c++)
        total += isfinite(weights[c]) && weights[c] > 0.0f ? weights[c] : NAN;
    double *s = nvp__malloc(&b->alloc, 2 * dim * dim * sizeof *s);
    if (!s) {
        nvp_base_free(b);
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    }
    for (size_t c = 0; c < k && rc == NVP_OK; c++) {
        b->w[c] = (float)((double)weights[c] / total);
        memcpy(b->mean + c * dim, means + c * dim, dim * sizeof *means);
        const float *cv = covs + c * dim * dim;
        for (size_t i = 0; i < dim * dim && rc == NVP_OK; i++) {
            const size_t r = i / dim, q = i % dim;
            if (!isfinite(cv[i]) || cv[i] != cv[q * dim + r])
                rc = nvp__fail(NULL, NVP_EINVAL, "%s: component %zu's "
                               "covariance is not a finite symmetric "
                               "matrix", fn, c);
            s[i] = cv[i];
        }
        const int chol = rc == NVP_OK ? nvp__cholesky_inverse(
                                            dim, s, s + dim * dim,
                                            b->m + c * dim * dim)
                                      : 0;
        if (chol == -1)
            rc = nvp__fail(NULL, NVP_EINVAL, "%s: component %zu's "
                           "covariance is not positive definite", fn, c);
        else if (chol)
            rc = nvp__fail(NULL, NVP_EINVAL, "%s: component %zu's "
                           "covariance is too close to singular (or too "
                           "large) for its inverse factor to fit a float",
                           fn, c);
    }
    nvp__free(&b->alloc, s);
    if (rc == NVP_OK && !(total > 0.0 && isfinite(total)))
        rc = nvp__fail(NULL, NVP_EINVAL, "%s: the weights must be positive "
                       "finite numbers", fn);
    if (rc != NVP_OK) {
        nvp_base_free(b);
        return rc;
    }
    if ((rc = mixture_finish(b, fn)) == NVP_OK)
        *out = b;
    return rc;
}

int nvp_base_clone(const nvp_base *src, nvp_base **out,
                   const nvp_allocator *alloc)
{
    const char *fn = "nvp_base_clone";
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    NVP_REQUIRE_PTR(src);
    if (src->kind == NVP_BASE_NORMAL)
        return nvp_base_create_normal(out, src->dim, alloc);
    return nvp__base_mixture_from_factors(out, fn, src->dim, src->k, src->w,
                                          src->mean, src->m, alloc);
}

size_t nvp_base_components(const nvp_base *b)
{
    return b ? (b->kind == NVP_BASE_MIXTURE ? b->k : 1) : 0;
}

int nvp_base_kind(const nvp_base *b) { return b ? b->kind : -1; }
