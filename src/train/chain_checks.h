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
