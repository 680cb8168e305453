/* SPDX-License-Identifier: MIT */
/* The invertible linear layer, LU-parameterised as in Glow (Kingma and
 * Dhariwal 2018): forward (base to data) y = L U x + b, with L unit lower
 * triangular and U upper triangular with a positive diagonal exp(d).
 * Parameters: one dim x dim matrix A (row-major) holding L below the
 * diagonal, U above it and d on it, then b (dim).  log|det| = sum(d).
 * A fresh layer is the identity; nvp_chain_init_from_data makes it the
 * Cholesky factor of the data's covariance and b its mean, so that its
 * inverse whitens the data: a chain that starts this way with identity
 * couplings is the full-covariance Gaussian fit.
 *
 * Solves and products run row by row with double accumulators; the
 * backward's sums over rows of outer products go through the matrix
 * multiply. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "model/layer_kinds.h"

/* w = U x, keeping w in w_out (may be NULL: the forward's backward reads
 * it), then y = L w + b, in place on one row. */
static void forward_row(size_t dim, const float *A, const float *b, float *z,
                        float *w_out)
{
    for (size_t i = 0; i < dim; i++) {
        const float *a = A + i * dim;
        double s = (double)expf(a[i]) * z[i];
        for (size_t j = i + 1; j < dim; j++)
            s += (double)a[j] * z[j];
        z[i] = (float)s;
    }
    if (w_out)
        memcpy(w_out, z, dim * sizeof *z);
    for (size_t i = dim; i-- > 0;) {
        const float *a = A + i * dim;
        double s = z[i];
        for (size_t j = 0; j < i; j++)
            s += (double)a[j] * z[j];
        z[i] = (float)(s + b[i]);
    }
}

/* Solves L w = y - b, keeps w in w_out (may be NULL), then U x = w; in
 * place on one row. */
static void inverse_row(size_t dim, const float *A, const float *b, float *z,
                        float *w_out)
{
    for (size_t i = 0; i < dim; i++) {
        const float *a = A + i * dim;
        double s = (double)z[i] - b[i];
        for (size_t j = 0; j < i; j++)
            s -= (double)a[j] * z[j];
        z[i] = (float)s;
    }
    if (w_out)
        memcpy(w_out, z, dim * sizeof *z);
    for (size_t i = dim; i-- > 0;) {
        const float *a = A + i * dim;
        double s = z[i];
        for (size_t j = i + 1; j < dim; j++)
            s -= (double)a[j] * z[j];
        z[i] = (float)(s / (double)expf(a[i]));
    }
}

static float trace_of(size_t dim, const float *A)
{
    float t = 0.0f;
    for (size_t i = 0; i < dim; i++)
        t += A[i * dim + i];
    return t;
}

static size_t linear_cache_floats(const nvp_layer *l, size_t rows)
{
    /* w = L^-1 (y - b) = U x, which both directions compute on the way */
    return nvp__carved(rows * l->dim);
}

static size_t linear_scratch_floats(const nvp_layer *l, size_t rows)
{
    /* dL/dw, dL/dr per row, one dim x dim sum of outer products, and two
     * rows of doubles for the solves (the forward direction's backward
     * uses both) */
    return 2 * nvp__carved(rows * l->dim) + nvp__carved(l->dim * l->dim) +
           nvp__carved(4 * l->dim);
}

static void linear_inverse_rows(const nvp_layer *l, const nvp_exec *ex,
                                size_t rows, float *z, const float *cond,
                                float *ildj, float *cache)
{
    (void)cond;
    (void)ex;
    const size_t dim = l->dim;
    const float *A = l->params, *b = l->params + dim * dim;
    const float logdet = trace_of(dim, A);
    for (size_t i = 0; i < rows; i++) {
        inverse_row(dim, A, b, z + i * dim, cache + i * dim);
        if (ildj)
            ildj[i] -= logdet;
    }
}

static void linear_forward_rows(const nvp_layer *l, const nvp_exec *ex,
                                size_t rows, float *z, const float *cond,
                                float *logdet, float *cache)
{
    (void)cond;
    (void)ex;
    const size_t dim = l->dim;
    const float *A = l->params, *b = l->params + dim * dim;
    const float ld = trace_of(dim, A);
    for (size_t i = 0; i < rows; i++) {
        forward_row(dim, A, b, z + i * dim, cache + i * dim);
        if (logdet)
            logdet[i] += ld;
    }
}

/* x = U^-1 w, w = L^-1 (y - b), ildj = -sum d.  Given g = dL/dx:
 *   gw = U^-T g;     dL/dU = -gw x^T (upper part), and dU_ii/dd_i = U_ii
 *   gr = L^-T gw;    dL/dL = -gr w^T (strictly lower part)
 *   dL/dy = gr;      dL/db = -gr;     dL/dd_i gets -dildj per row. */
static void linear_inverse_backward_rows(const nvp_layer *l,
                                         const nvp_exec *ex, size_t rows,
                                         const float *cache, const float *x,
                                         const float *cond, const float *dx,
                                         const float *dildj, float *dy,
                                         float *dcond, float *grad, int fresh,
                                         float *scratch)
{
    (void)cond, (void)dcond;
    (void)fresh;
    const size_t dim = l->dim;
    const float *A = l->params;
    float *cursor = scratch;
    float *gw = nvp__carve(&cursor, rows * dim);
    float *gr = nvp__carve(&cursor, rows * dim);
    float *outer = nvp__carve(&cursor, dim * dim);
    double *t = (double *)nvp__carve(&cursor, 2 * dim);
    for (size_t r = 0; r < rows; r++) {
        /* U^T is lower triangular: forward substitution by rows of A, the
         * running values in double. */
        const float *g = dx + r * dim;
        for (size_t i = 0; i < dim; i++)
            t[i] = g[i];
        for (size_t j = 0; j < dim; j++) {
            const float *a = A + j * dim;
            t[j] /= (double)expf(a[j]);
            for (size_t i = j + 1; i < dim; i++)
                t[i] -= (double)a[i] * t[j];
        }
        for (size_t i = 0; i < dim; i++)
            gw[r * dim + i] = (float)t[i];
        /* L^T is unit upper triangular: back substitution, on from gw in
         * double. */
        for (size_t j = dim; j-- > 0;) {
            const float *a = A + j * dim;
            for (size_t i = 0; i < j; i++)
                t[i] -= (double)a[i] * t[j];
        }
        for (size_t i = 0; i < dim; i++)
            gr[r * dim + i] = (float)t[i];
        if (dy)
            memcpy(dy + r * dim, gr + r * dim, dim * sizeof *dy);
    }
    if (!grad)
        return;
    float *gA = grad, *gb = grad + dim * dim;
    /* U's part: sum over rows of gw x^T. */
    nvp__exec_gemm(ex, 1, 0, dim, dim, rows, gw, dim, x, dim, 0, outer, dim,
                   NULL);
    double dsum = 0.0;
    if (dildj)
        for (size_t r = 0; r < rows; r++)
            dsum += dildj[r];
    for (size_t i = 0; i < dim; i++) {
        const float *o = outer + i * dim;
        float *ga = gA + i * dim;
        ga[i] += -o[i] * expf(A[i * dim + i]) - (float)dsum;
        for (size_t j = i + 1; j < dim; j++)
            ga[j] += -o[j];
    }
    /* L's part: sum over rows of gr w^T. */
    nvp__exec_gemm(ex, 1, 0, dim, dim, rows, gr, dim, cache, dim, 0, outer,
                   dim, NULL);
    for (size_t i = 0; i < dim; i++) {
        const float *o = outer + i * dim;
        float *ga = gA + i * dim;
        for (size_t j = 0; j < i; j++)
            ga[j] += -o[j];
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < dim; j++)
            gb[j] += -gr[r * dim + j];
}

/* y = L w + b, w = U x, logdet = sum d.  Given g = dL/dy:
 *   dL/db = g;       dL/dL = g w^T (strictly lower part)
 *   gw = L^T g;      dL/dU = gw x^T (upper part), and dU_ii/dd_i = U_ii
 *   dL/dx = U^T gw;  dL/dd_i gets dlogdet per row. */
static void linear_forward_backward_rows(const nvp_layer *l,
                                         const nvp_exec *ex, size_t rows,
                                         const float *cache, const float *x,
                                         const float *cond, const float *dy,
                                         const float *dlogdet, float *dx,
                                         float *dcond, float *grad, int fresh,
                                         float *scratch)
{
    (void)cond, (void)dcond, (void)fresh;
    const size_t dim = l->dim;
    const float *A = l->params;
    float *cursor = scratch;
    float *gw = nvp__carve(&cursor, rows * dim);
    (void)nvp__carve(&cursor, rows * dim); /* the inverse's gr: unused */
    float *outer = nvp__carve(&cursor, dim * dim);
    double *t = (double *)nvp__carve(&cursor, 4 * dim);
    for (size_t r = 0; r < rows; r++) {
        /* L^T is unit upper triangular: gw_j = g_j + sum_{i>j} L_ij g_i,
         * row i of A adding its strictly lower part, in double. */
        const float *g = dy + r * dim;
        for (size_t j = 0; j < dim; j++)
            t[j] = g[j];
        for (size_t i = 1; i < dim; i++) {
            const float *a = A + i * dim;
            for (size_t j = 0; j < i; j++)
                t[j] += (double)a[j] * g[i];
        }
        for (size_t j = 0; j < dim; j++)
            gw[r * dim + j] = (float)t[j];
        if (!dx)
            continue;
        /* U^T: dx_j = sum_{i<=j} U_ij gw_i, from the rows of A. */
        double *u = t + dim;
        for (size_t j = 0; j < dim; j++)
            u[j] = 0.0;
        for (size_t i = 0; i < dim; i++) {
            const float *a = A + i * dim;
            u[i] += (double)expf(a[i]) * t[i];
            for (size_t j = i + 1; j < dim; j++)
                u[j] += (double)a[j] * t[i];
        }
        for (size_t j = 0; j < dim; j++)
            dx[r * dim + j] = (float)u[j];
    }
    if (!grad)
        return;
    float *gA = grad, *gb = grad + dim * dim;
    /* U's part: sum over rows of gw x^T. */
    nvp__exec_gemm(ex, 1, 0, dim, dim, rows, gw, dim, x, dim, 0, outer, dim,
                   NULL);
    double dsum = 0.0;
    if (dlogdet)
        for (size_t r = 0; r < rows; r++)
            dsum += dlogdet[r];
    for (size_t i = 0; i < dim; i++) {
        const float *o = outer + i * dim;
        float *ga = gA + i * dim;
        ga[i] += o[i] * expf(A[i * dim + i]) + (float)dsum;
        for (size_t j = i + 1; j < dim; j++)
            ga[j] += o[j];
    }
    /* L's part: sum over rows of g w^T. */
    nvp__exec_gemm(ex, 1, 0, dim, dim, rows, dy, dim, cache, dim, 0, outer,
                   dim, NULL);
    for (size_t i = 0; i < dim; i++) {
        const float *o = outer + i * dim;
        float *ga = gA + i * dim;
        for (size_t j = 0; j < i; j++)
            ga[j] += o[j];
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < dim; j++)
            gb[j] += dy[r * dim + j];
}

/* The data's mean and the Cholesky factor C of its covariance (in
 * double, with a small ridge so that constant or collinear columns still
 * factor): L = C diag(C)^-1, d = log diag(C), b = mean. */
static int linear_data_init(nvp_layer *l, const nvp_errbox *eb,
                            const char *fn, size_t n, const float *z)
{
    const size_t dim = l->dim;
    size_t cov_bytes;
    if (nvp__mul(dim, dim, &cov_bytes) ||
        nvp__mul(cov_bytes, sizeof(double), &cov_bytes))
        return nvp__fail(eb, NVP_EOVERFLOW, "%s: a %zu x %zu covariance "
                                            "does not fit in memory", fn,
                         dim, dim);
    double *mean = nvp__malloc(&l->alloc, dim * sizeof *mean);
    double *cov = nvp__malloc(&l->alloc, cov_bytes);
    if (!mean || !cov) {
        nvp__free(&l->alloc, mean);
        nvp__free(&l->alloc, cov);
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory for a %zu x %zu "
                                         "covariance", fn, dim, dim);
    }
    memset(mean, 0, dim * sizeof *mean);
    memset(cov, 0, cov_bytes);
    for (size_t r = 0; r < n; r++)
        for (size_t j = 0; j < dim; j++)
            mean[j] += z[r * dim + j];
    for (size_t j = 0; j < dim; j++)
        mean[j] /= (double)n;
    for (size_t r = 0; r < n; r++) {
        const float *zr = z + r * dim;
        for (size_t i = 0; i < dim; i++) {
            const double di = zr[i] - mean[i];
            for (size_t j = 0; j <= i; j++)
                cov[i * dim + j] += di * (zr[j] - mean[j]);
        }
    }
    /* A ridge per column, relative to its own variance, so that columns on
     * very different scales are all whitened (constant or collinear ones
     * still factor). */
    double trace = 0.0;
    for (size_t i = 0; i < dim; i++)
        trace += cov[i * dim + i] / (double)n;
    int rc = isfinite(trace) ? NVP_OK
                             : nvp__fail(eb, NVP_ENONFINITE,
                                         "%s: the data's covariance "
                                         "overflows", fn);
    /* Cholesky, lower triangle in place. */
    for (size_t j = 0; j < dim && rc == NVP_OK; j++) {
        const double var = cov[j * dim + j] / (double)n;
        double s = var * (1.0 + 1e-6) + 1e-12 * (trace / (double)dim) + 1e-30;
        for (size_t k = 0; k < j; k++)
            s -= cov[j * dim + k] * cov[j * dim + k];
        if (!(s > 0.0)) {
            rc = nvp__fail(eb, NVP_ENONFINITE,
                           "%s: the data's covariance is not positive "
                           "definite", fn);
            break;
        }
        const double cjj = sqrt(s);
        cov[j * dim + j] = cjj;
        for (size_t i = j + 1; i < dim; i++) {
            double t = cov[i * dim + j] / (double)n;
            for (size_t k = 0; k < j; k++)
                t -= cov[i * dim + k] * cov[j * dim + k];
            cov[i * dim + j] = t / cjj;
        }
    }
    if (rc == NVP_OK) {
        float *A = l->params, *b = l->params + dim * dim;
        for (size_t i = 0; i < dim; i++) {
            for (size_t j = 0; j < dim; j++)
                A[i * dim + j] =
                    j < i ? (float)(cov[i * dim + j] / cov[j * dim + j])
                    : j == i ? (float)log(cov[i * dim + i])
                             : 0.0f;
            b[i] = (float)mean[i];
        }
    }
    nvp__free(&l->alloc, mean);
    nvp__free(&l->alloc, cov);
    return rc;
}

static int linear_hyper_check(const char *fn, size_t dim, const uint32_t *h,
                              size_t n, uint64_t *n_params)
{
    (void)h;
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(n == 0, NVP_EFORMAT, "%s: a linear layer stores no values",
                fn);
    *n_params = (uint64_t)dim * dim + dim;
    return NVP_OK;
}

static int linear_from_hyper(nvp_layer **out, const char *fn, size_t dim,
                             const uint32_t *h, size_t n,
                             const nvp_allocator *alloc)
{
    (void)h;
    (void)n;
    return nvp__linear_new(out, fn, dim, alloc);
}

const nvp_layer_ops nvp__linear_kind = {
    "linear",
    4,
    nvp__layer_no_hyper_count,
    nvp__layer_no_hyper_value,
    linear_hyper_check,
    linear_from_hyper,
    linear_cache_floats,
    linear_scratch_floats,
    linear_inverse_rows,
    linear_forward_rows,
    linear_inverse_backward_rows,
    linear_forward_backward_rows,
    nvp__layer_no_fresh_range,
    NULL, /* no conditioner */
    linear_data_init,
    NULL,
    0, /* the chain measures its parameters and gradient */
};

int nvp__linear_new(nvp_layer **out, const char *fn, size_t dim,
                    const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(dim >= 1 && dim <= NVP_MAX_DIM, NVP_EINVAL,
                "%s: dim %zu is outside [1, %d]", fn, dim, NVP_MAX_DIM);
    NVP_REQUIRE(dim <= (NVP_MAX_PARAMS - dim) / dim, NVP_EOVERFLOW,
                "%s: a %zu x %zu matrix is more than %zu parameters", fn, dim,
                dim, (size_t)NVP_MAX_PARAMS);
    return nvp__layer_new(out, sizeof(nvp_layer), &nvp__linear_kind, dim,
                          dim * dim + dim, alloc, fn);
}
