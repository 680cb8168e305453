/* SPDX-License-Identifier: MIT */
/* Base distributions: the standard normal (base.c) and a Gaussian
 * mixture with full covariances (base_mixture.c, fitted by
 * base_mixture_fit.c). */
#ifndef NVP_BASE_H
#define NVP_BASE_H

#include "core/error.h"

/* kind: NVP_BASE_NORMAL or NVP_BASE_MIXTURE (nvpflow.h) */

/* Mixture limits: a row's arithmetic uses stack space of the dimension,
 * and every component holds a dim x dim factor. */
#define NVP_MIXTURE_MAX_DIM 1024
#define NVP_MIXTURE_MAX_K 64

struct nvp_base {
    nvp_errbox err;
    nvp_allocator alloc;
    int kind;
    size_t dim;
    int adopted; /* a chain owns it */
    /* Mixture only (k = 0 for the normal).  Component c has weight w[c],
     * mean mean[c*dim..] and the factor M_c = L_c^-1 of its covariance
     * Sigma_c = L_c L_c^T (L_c its Cholesky factor), so that Sigma_c^-1 =
     * M_c^T M_c: a lower-triangular dim x dim row-major block
     * m[c*dim*dim..] with zeros above the diagonal and a positive
     * diagonal.  These floats are what a model file stores, so a loaded
     * base is the saved one; the arithmetic is in double.  lconst[c] is
     * log(w[c] / sum w) + sum_i log M_c[i][i] - dim/2 log(2 pi). */
    size_t k;
    float *w;
    float *mean;
    float *m;
    double *lconst;
};

/* log p(x) of one row, accumulated in double; NaN when the row holds a
 * non-finite value. */
double nvp__base_log_prob_row(const nvp_base *b, const float *x);
/* d log p / dx of one row into g; returns log p(x), the value of
 * nvp__base_log_prob_row (training needs both: one pass over the row). */
double nvp__base_grad_row(const nvp_base *b, const float *x, float *g);

/* The mixture's row functions (base.c dispatches to them). */
double nvp__mixture_log_prob_row(const nvp_base *b, const float *x);
double nvp__mixture_grad_row(const nvp_base *b, const float *x, float *g);
/* Draws one row of the mixture into x. */
void nvp__mixture_sample_row(const nvp_base *b, nvp_rng *rng, float *x);
void nvp__mixture_release(nvp_base *b);
/* lconst from the stored weights and factors: the one computation of
 * them, so that a fitted, cloned, saved and loaded base are the same. */
void nvp__mixture_set_consts(nvp_base *b);
/* The components' log weight times density of row x into lk[k]; returns
 * their log-sum-exp (the row's log density). */
double nvp__mixture_component_logs(const nvp_base *b, const float *x,
                                   double *lk);
/* A mixture base with room for k components (1 to NVP_MIXTURE_MAX_K) of
 * dim dimensions (1 to NVP_MIXTURE_MAX_DIM), its arrays uninitialised;
 * fn names the caller in messages. */
int nvp__mixture_alloc(nvp_base **out, const char *fn, size_t dim, size_t k,
                       const nvp_allocator *alloc);

/* A mixture from its stored form (positive weights summing to 1 within
 * 1e-3; finite means; lower-triangular factors M_c with a positive finite
 * diagonal and finite entries), as the model loader reads it; fn names
 * the caller in messages.  On failure *out is NULL. */
int nvp__base_mixture_from_factors(nvp_base **out, const char *fn,
                                   size_t dim, size_t k, const float *w,
                                   const float *mean, const float *m,
                                   const nvp_allocator *alloc);

/* M = L^-1 (float, lower-triangular, into m) for the Cholesky factor L
 * of the symmetric positive definite d x d matrix s (double, row-major,
 * lower triangle read); l is d x d scratch.  Returns 0, -1 when s is not
 * positive definite in double, -2 when M does not fit a float (an entry
 * beyond its range, or a diagonal entry that underflows to 0). */
int nvp__cholesky_inverse(size_t d, const double *s, double *l, float *m);

#endif
