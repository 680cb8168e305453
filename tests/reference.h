/* SPDX-License-Identifier: MIT */
/* A naive double-precision reference of the model, written from the
 * documentation (the coupling and chain conventions and the parameter
 * layout in nvpflow.h, also in docs/file-format.md), independently of the
 * library's code: a coupling layer (MLP
 * conditioner with ReLU, affine forward and inverse), a chain of them and
 * its log density, plus a determinant for Jacobian checks.  Slow and
 * simple on purpose: it is the oracle for finite differences and for the
 * library's float results. */
#ifndef NVP_TEST_REFERENCE_H
#define NVP_TEST_REFERENCE_H

#include <stddef.h>

#include "nvpflow.h"

#define REF_MAX_DIM 16
#define REF_MAX_DENSE 8   /* hidden layers + 1 */
#define REF_MAX_WIDTH 1024 /* widest hidden layer the reference handles */
#define REF_MAX_LAYERS 8

typedef struct ref_coupling {
    size_t dim;
    unsigned char mask[REF_MAX_DIM]; /* 1: conditioned (a), 0: transformed (b) */
    size_t na, nb;
    size_t idx_a[REF_MAX_DIM], idx_b[REF_MAX_DIM];
    size_t n_dense;                  /* hidden layers + 1 */
    size_t fan_in[REF_MAX_DENSE], fan_out[REF_MAX_DENSE];
    size_t n_params;
    /* Soft log-scale clamp: log_scale = clamp * tanh(raw / clamp) when
     * clamp > 0 (nvp_coupling_set_log_scale_clamp); 0 after init. */
    double clamp;
} ref_coupling;

typedef struct ref_chain {
    size_t dim, n_layers;
    ref_coupling layer[REF_MAX_LAYERS];
    size_t offset[REF_MAX_LAYERS]; /* of each layer in the flat vector */
    size_t n_params;
} ref_chain;

/* Describes a layer (mask of dim bytes, n_hidden hidden widths); returns 0,
 * or -1 when the description exceeds the reference's fixed limits. */
int ref_coupling_init(ref_coupling *r, size_t dim, const unsigned char *mask,
                      size_t n_hidden, const size_t *hidden);
/* The tutorial's half mask: flip 0 conditions on [0, dim/2). */
void ref_half_mask(size_t dim, int flip, unsigned char *mask);

/* Conditioner: shift and log_scale (nb each) from the conditioned inputs
 * xa (na) and the layer's parameters. */
void ref_conditioner(const ref_coupling *r, const double *params,
                     const double *xa, double *shift, double *log_scale);
/* One point: y = forward(x), *logdet = log|det dy/dx| (may be NULL). */
void ref_coupling_forward(const ref_coupling *r, const double *params,
                          const double *x, double *y, double *logdet);
/* One point: x = inverse(y), *ildj = log|det dx/dy| (may be NULL). */
void ref_coupling_inverse(const ref_coupling *r, const double *params,
                          const double *y, double *x, double *ildj);

/* Chain of alternating half couplings (layer k has flip k % 2). */
int ref_chain_init_alternating(ref_chain *c, size_t dim, size_t n_layers,
                               size_t n_hidden, const size_t *hidden);
/* Chain of the given layers, in order. */
void ref_chain_init_layers(ref_chain *c, const ref_coupling *layers,
                           size_t n_layers);
void ref_chain_forward(const ref_chain *c, const double *params,
                       const double *x, double *y, double *logdet);
void ref_chain_inverse(const ref_chain *c, const double *params,
                       const double *y, double *x, double *ildj);
/* log p(y) of one point. */
double ref_chain_log_prob(const ref_chain *c, const double *params,
                          const double *y);
/* log p(y) of one point given as floats. */
double ref_chain_log_prob_f(const ref_chain *c, const double *params,
                            const float *y);
/* Mean negative log-likelihood of n points y (n * dim floats). */
double ref_chain_nll(const ref_chain *c, const double *params, size_t n,
                     const float *y);

/* log N(x; 0, I) in dim dimensions. */
double ref_base_log_prob(size_t dim, const double *x);

/* log|det A| of the n x n row-major matrix a (destroyed), by Gaussian
 * elimination with partial pivoting; -inf when singular. */
double ref_log_abs_det(size_t n, double *a);
/* The same elimination solving A x = b in place (b, n values, receives x;
 * may be NULL); returns log|det A|, -inf (b unsolved) when singular. */
double ref_solve_logdet(size_t n, double *a, double *b);

/* Float parameters to double. */
void ref_params_from_float(size_t n, const float *src, double *dst);

#endif
