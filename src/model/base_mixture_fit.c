/* SPDX-License-Identifier: MIT */
/* Fitting a Gaussian-mixture base to rows by expectation-maximisation:
 * k-means++ seeds, Lloyd iterations, then EM with full covariances
 * until the mean log-likelihood gains less than 1e-3 a pass (at most
 * 200 passes), each covariance regularised by 1e-6 times the rows' mean
 * variance on its diagonal, as scikit-learn's GaussianMixture does with
 * its default reg_covar on standardised data.  The E-step scores rows
 * with the float factors the base stores, so the fitted base is exactly
 * the one evaluated. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/check.h"
#include "core/rng.h"
#include "kernels/vec.h"
#include "model/base.h"

#define EM_MAX_PASSES 200
#define EM_TOL 1e-3
#define LLOYD_PASSES 20
#define REG_SCALE 1e-6

typedef struct em_work {
    size_t n, d, k;
    const float *x;
    double *resp;  /* n x k responsibilities */
    double *cov;   /* d x d */
    double *chol;  /* d x d */
    double *mu;    /* k x d */
    double reg;
} em_work;

static double sq_dist(const float *a, const double *b, size_t d)
{
    double s = 0.0;
    for (size_t j = 0; j < d; j++) {
        const double t = (double)a[j] - b[j];
        s += t * t;
    }
    return s;
}

/* A uniform double in [0, 1). */
static double uniform01(nvp_rng *rng)
{
    return (double)(nvp__rng_next(rng) >> 11) * 0x1.0p-53;
}

/* k-means++ seeds and Lloyd passes; then resp holds the hard assignment.
 * dist and label are n values of scratch. */
static void kmeans_init(em_work *w, nvp_rng *rng, double *dist, size_t *label)
{
    const size_t n = w->n, d = w->d, k = w->k;
    const float *x = w->x;
    size_t first = (size_t)nvp__rng_below(rng, n);
    for (size_t j = 0; j < d; j++)
        w->mu[j] = x[first * d + j];
    for (size_t i = 0; i < n; i++)
        dist[i] = sq_dist(x + i * d, w->mu, d);
    for (size_t c = 1; c < k; c++) {
        double total = 0.0;
        for (size_t i = 0; i < n; i++)
            total += dist[i];
        size_t pick = (size_t)nvp__rng_below(rng, n);
        if (total > 0.0) {
            /* a row with probability proportional to its squared distance
             * to the nearest seed */
            double u = uniform01(rng) * total, cum = 0.0;
            for (pick = 0; pick + 1 < n; pick++) {
                cum += dist[pick];
                if (u < cum)
                    break;
            }
        }
        for (size_t j = 0; j < d; j++)
            w->mu[c * d + j] = x[pick * d + j];
        for (size_t i = 0; i < n; i++) {
            const double t = sq_dist(x + i * d, w->mu + c * d, d);
            if (t < dist[i])
                dist[i] = t;
        }
    }
    for (size_t pass = 0; pass < LLOYD_PASSES; pass++) {
        int moved = pass == 0;
        for (size_t i = 0; i < n; i++) {
            size_t best = 0;
            double bd = INFINITY;
            for (size_t c = 0; c < k; c++) {
                const double t = sq_dist(x + i * d, w->mu + c * d, d);
                if (t < bd) {
                    bd = t;
                    best = c;
                }
            }
            if (pass == 0 || label[i] != best)
                moved = 1;
            label[i] = best;
        }
        if (!moved)
            break;
        /* new centres; an empty cluster keeps its centre */
        for (size_t c = 0; c < k; c++) {
            size_t m = 0;
            double *mu = w->mu + c * d;
            for (size_t i = 0; i < n; i++)
                if (label[i] == c) {
                    if (m++ == 0)
                        memset(mu, 0, d * sizeof *mu);
                    for (size_t j = 0; j < d; j++)
                        mu[j] += x[i * d + j];
                }
            for (size_t j = 0; j < d && m > 0; j++)
                mu[j] /= (double)m;
        }
    }
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < k; c++)
            w->resp[i * k + c] = label[i] == c ? 1.0 : 0.0;
}

/* The M-step: weights, means and factors of b from the responsibilities.
 * Returns 0, or -1 when a covariance stays singular even with 10^6 times
 * the regularisation. */
static int m_step(em_work *w, nvp_base *b)
{
    const size_t n = w->n, d = w->d, k = w->k;
    const float *x = w->x;
    for (size_t c = 0; c < k; c++) {
        double nk = 0.0;
        double *mu = w->mu + c * d;
        memset(mu, 0, d * sizeof *mu);
        for (size_t i = 0; i < n; i++) {
            const double r = w->resp[i * k + c];
            nk += r;
            for (size_t j = 0; j < d && r != 0.0; j++)
                mu[j] += r * x[i * d + j];
        }
        /* as scikit-learn: a component that lost every row keeps a tiny
         * weight rather than dividing by zero */
        nk += 10.0 * 2.220446049250313e-16;
        for (size_t j = 0; j < d; j++)
            mu[j] /= nk;
        double *cov = w->cov;
        memset(cov, 0, d * d * sizeof *cov);
        double diff[NVP_MIXTURE_MAX_DIM];
        for (size_t i = 0; i < n; i++) {
            const double r = w->resp[i * k + c];
            if (r < 1e-12)
                continue;
            for (size_t j = 0; j < d; j++)
                diff[j] = (double)x[i * d + j] - mu[j];
            for (size_t p = 0; p < d; p++) {
                const double rp = r * diff[p];
                double *row = cov + p * d;
                for (size_t q = 0; q <= p; q++)
                    row[q] += rp * diff[q];
            }
        }
        for (size_t p = 0; p < d; p++)
            for (size_t q = 0; q <= p; q++)
                cov[p * d + q] /= nk;
        b->w[c] = (float)(nk / (double)n);
        for (size_t j = 0; j < d; j++)
            b->mean[c * d + j] = (float)mu[j];
        double reg = w->reg;
        int ok = 0;
        for (int tries = 0; tries < 4 && !ok; tries++, reg *= 100.0) {
            for (size_t p = 0; p < d; p++)
                cov[p * d + p] += reg - (tries ? reg / 100.0 : 0.0);
            ok = nvp__cholesky_inverse(d, cov, w->chol, b->m + c * d * d) == 0;
        }
        if (!ok)
            return -1;
    }
    nvp__mixture_set_consts(b);
    return 0;
}

/* The E-step: responsibilities from b; returns the mean log-likelihood. */
static double e_step(em_work *w, const nvp_base *b)
{
    const size_t n = w->n, d = w->d, k = w->k;
    double sum = 0.0;
    double lk[NVP_MIXTURE_MAX_K];
    for (size_t i = 0; i < n; i++) {
        double *r = w->resp + i * k;
        const double lse = nvp__mixture_component_logs(b, w->x + i * d, lk);
        for (size_t c = 0; c < k; c++)
            r[c] = exp(lk[c] - lse);
        sum += lse;
    }
    return sum / (double)n;
}

int nvp_base_fit_mixture(nvp_base **out, size_t n, size_t dim, const float *x,
                         size_t k, nvp_rng *rng, const nvp_allocator *alloc)
{
    const char *fn = "nvp_base_fit_mixture";
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    NVP_REQUIRE_PTR(x);
    NVP_REQUIRE_PTR(rng);
    int rc = nvp__check_batch(eb, fn, n, dim);
    if (rc)
        return rc;
    NVP_REQUIRE(n >= k, NVP_EINVAL, "%s: %zu rows for %zu components", fn,
                n, k);
    NVP_REQUIRE(nvp__all_finite(NVP_ISA_PORTABLE, x, n * dim),
                NVP_ENONFINITE, "%s: the rows hold NaN or an infinity", fn);
    nvp_base *b;
    if ((rc = nvp__mixture_alloc(&b, fn, dim, k, alloc)) != NVP_OK)
        return rc;
    em_work w = {n, dim, k, x, NULL, NULL, NULL, NULL, 0.0};
    w.resp = nvp__malloc(&b->alloc, n * k * sizeof *w.resp);
    w.cov = nvp__malloc(&b->alloc, dim * dim * sizeof *w.cov);
    w.chol = nvp__malloc(&b->alloc, dim * dim * sizeof *w.chol);
    w.mu = nvp__malloc(&b->alloc, k * dim * sizeof *w.mu);
    double *dist = nvp__malloc(&b->alloc, n * sizeof *dist);
    size_t *label = nvp__malloc(&b->alloc, n * sizeof *label);
    if (!w.resp || !w.cov || !w.chol || !w.mu || !dist || !label) {
        rc = nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
        goto done;
    }
    /* the regularisation: relative to the rows' mean variance */
    double var = 0.0;
    for (size_t j = 0; j < dim; j++) {
        double m = 0.0, s = 0.0;
        for (size_t i = 0; i < n; i++)
            m += x[i * dim + j];
        m /= (double)n;
        for (size_t i = 0; i < n; i++)
            s += ((double)x[i * dim + j] - m) * ((double)x[i * dim + j] - m);
        var += s / (double)n;
    }
    var /= (double)dim;
    w.reg = REG_SCALE * (var > 0.0 ? var : 1.0);
    kmeans_init(&w, rng, dist, label);
    double prev = -INFINITY;
    for (int pass = 0; pass < EM_MAX_PASSES; pass++) {
        if (m_step(&w, b) != 0) {
            rc = nvp__fail(NULL, NVP_ENONFINITE, "%s: a component's "
                           "covariance is singular", fn);
            goto done;
        }
        const double ll = e_step(&w, b);
        if (!isfinite(ll)) {
            rc = nvp__fail(NULL, NVP_ENONFINITE, "%s: the log-likelihood "
                           "is not finite", fn);
            goto done;
        }
        if (fabs(ll - prev) < EM_TOL)
            break;
        prev = ll;
    }
done:
    nvp__free(&b->alloc, w.resp);
    nvp__free(&b->alloc, w.cov);
    nvp__free(&b->alloc, w.chol);
    nvp__free(&b->alloc, w.mu);
    nvp__free(&b->alloc, dist);
    nvp__free(&b->alloc, label);
    if (rc != NVP_OK)
        nvp_base_free(b);
    else
        *out = b;
    return rc;
}
