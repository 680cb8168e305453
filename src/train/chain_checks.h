/* SPDX-License-Identifier: MIT */
/* What the chain's gradient and training calls share
 * (train/chain_train.c, train/chain_vjp.c): their checks, the scratch
 * gradient and the end of a training step. */
#ifndef NVP_CHAIN_CHECKS_H
#define NVP_CHAIN_CHECKS_H

#include <stddef.h>
#include <stdint.h>

#include "model/chain.h"
#include "train/adam.h"
#include "runtime/threadpool.h"

/* The rule for parameters written through nvp_chain_params, checked on
 * entry to every gradient and training call (a pass that costs a small
 * part of a step), since a NaN behind a ReLU can leave the loss finite.
 * Fills *bits (may be NULL) with their largest magnitude as bits (pool
 * held, or NULL).  NVP_ENONFINITE recorded for fn. */
int nvp__chain_params_verdict(const nvp_chain *c, nvp_pool *pool,
                              const char *fn, uint32_t *bits);
/* Records that rule's refusal for fn; returns NVP_ENONFINITE. */
int nvp__chain_params_refused(const nvp_chain *c, const char *fn);

/* The context's presence matches the chain: a plain call (takes_given 0)
 * on a chain that reads a context, and a _given call without one on such
 * a chain, are NVP_EINVAL (recorded for fn). */
int nvp__chain_context_given(const nvp_chain *c, const char *fn,
                             const float *context, int takes_given);

/* n rows of context, when the chain reads one, are finite: else
 * NVP_ENONFINITE (recorded for fn). */
int nvp__chain_context_finite(const nvp_chain *c, const char *fn, size_t n,
                              const float *context);

/* The chain's scratch gradient (allocated by the first step, shared by
 * every kind of step, so a step allocates nothing after the first).
 * NVP_ENOMEM recorded for fn. */
int nvp__chain_grad_room(nvp_chain *c, const char *fn);

/* Clears grad except the ranges the first chunk's backward writes fresh
 * (layer table's fresh_range: every coupling's conditioner, nearly all of
 * a chain's parameters), on pool (held, or NULL): a pass of its own over
 * the whole gradient would cost about as much as Adam's update. */
void nvp__chain_clear_grad(const nvp_chain *c, nvp_pool *pool, float *grad);

/* The loss and gradient of n >= 1 finite rows of y (with their context
 * cond, NULL when the chain reads none) on pool (held, or NULL): fills
 * grad and *loss, and *grad_bits with the gradient's largest magnitude as
 * bits (nvp__max_abs_bits), measured by the last chunk's backward as each
 * part of the gradient is stored, not in a pass of its own over memory
 * (train/chain_train.c; the tests compare the measure with such a pass).
 * With params_bits (NULL: the caller checked the parameters), the
 * parameters' largest magnitude as bits, measured as the first chunk's
 * inverse pass reads them (in a pass of their own when the work space
 * cannot be had); when they are not all finite, returns NVP_ENONFINITE
 * there, before grad is touched.  Returns NVP_OK, NVP_ENONFINITE or
 * NVP_ENOMEM (nothing recorded). */
int nvp__chain_nll_grad_run(const nvp_chain *c, nvp_pool *pool, size_t n,
                            const float *y, const float *cond, float *grad,
                            double *loss, uint32_t *grad_bits,
                            uint32_t *params_bits);

/* One reverse-KL gradient over `batch` draws (context: batch rows, or
 * NULL when the chain reads none), on pool (held, or NULL): overwrites
 * grad, fills *loss and *grad_bits (the gradient's largest magnitude as
 * bits, measured as the last slot's backward stores the gradient).
 * Returns NVP_OK, the callback's nonzero value, or an NVP_E* code, each
 * recorded for fn (train/chain_vjp.c). */
int nvp__chain_reverse_kl_run(const nvp_chain *c, const char *fn,
                              nvp_pool *pool, nvp_rng *rng, size_t batch,
                              const float *context,
                              nvp_log_density_fn log_density, void *user,
                              float *grad, double *loss, uint32_t *grad_bits);

/* After layer k's backward (its part of the gradient at grad_k) on the
 * last chunk of a pass that checks its gradient (ex->grad_max set):
 * measures that part into ex->grad_max unless the layer's kind measured
 * it itself (measures).  Nothing when ex->grad_max is NULL. */
void nvp__chain_measure_layer(const nvp_chain *c, const nvp_exec *ex,
                              size_t k, const float *grad_k);

/* The end of a training step whose loss l and gradient (in c->grad, its
 * largest magnitude as bits) were computed: reports the loss into *loss
 * (may be NULL), refuses a loss that is not finite or a gradient Adam
 * cannot take, and applies opt (params_bits: the parameters' largest
 * magnitude as bits), refusing a step whose result would not be finite.
 * A refused step changes neither the chain nor opt.  pool is held. */
int nvp__chain_apply_step(nvp_chain *c, nvp_adam *opt, nvp_pool *pool,
                          const char *fn, double l, uint32_t bits,
                          uint32_t params_bits, float *loss);

#endif
