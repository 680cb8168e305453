/* SPDX-License-Identifier: MIT */
/* Adam optimizer state, shared with the training step and serialisation. */
#ifndef NVP_ADAM_H
#define NVP_ADAM_H

#include <stdint.h>

#include "core/cpu.h"
#include "core/error.h"
#include "runtime/threadpool.h"

struct nvp_adam {
    nvp_errbox err;
    nvp_allocator alloc;
    size_t n;
    float lr, b1, b2, eps;
    uint64_t t;
    float *m, *v; /* first and second moments, n floats each */
    /* Parameter average (nvp_adam_set_average): n floats, updated in the
     * same pass as the parameters; NULL, with avg_decay 0, when off. */
    float *avg;
    float avg_decay;
    /* Gradient-norm clipping (nvp_adam_set_clip_norm): the limit, 0 when
     * off; norm_runs holds one partial sum of squares per run of
     * NVP_PAR_RUN_FLOATS entries while it is on. */
    float clip_norm;
    double *norm_runs;
    double last_norm; /* of the last applied gradient, when clipping is on */
    /* An upper bound on max |m[i]|: m is a convex combination of the
     * gradients (and of what was loaded), so the bound is the largest of
     * those magnitudes.  It lets a step prove its result finite without a
     * pass over the moments (nvp__adam_apply). */
    double m_bound;
    nvp_isa isa;      /* the kernels' level (nvp_adam_set_kernels) */
    float weight_decay; /* AdamW's decoupled decay; 0: none */
};

/* Gradient entries at or above this magnitude would overflow the second
 * moment (g * g beyond the float range); steps with them are refused. */
#define NVP_ADAM_MAX_GRAD 1e18f

/* Checks a gradient before a step: NVP_OK, or NVP_ENONFINITE (recorded for
 * fn) when an entry is NaN, infinite, or too large for the moments. */
int nvp__adam_check_grad(const nvp_errbox *eb, const char *fn, nvp_isa isa,
                         const float *grad, size_t n);
/* The same verdict from the gradient's largest magnitude as bits
 * (nvp__max_abs_bits), for callers that computed it already. */
int nvp__adam_grad_verdict(const nvp_errbox *eb, const char *fn,
                           uint32_t max_abs_bits);

/* The factor that brings grad's Euclidean norm down to the clipping limit
 * (1 when clipping is off or the norm is within it); the norm goes to
 * *norm (0 when clipping is off).  grad must be finite and below
 * NVP_ADAM_MAX_GRAD.  The norm's partial sums run on pool's threads when
 * pool is not NULL. */
float nvp__adam_clip_scale(nvp_adam *opt, const float *grad, nvp_pool *pool,
                           double *norm);

/* Recomputes m_bound from the moments (after they were loaded). */
void nvp__adam_bound_moments(nvp_adam *opt);

/* The update, after the gradient's checks; grad must be finite and below
 * NVP_ADAM_MAX_GRAD, params finite with largest magnitude params_bits and
 * grad's grad_bits (as bits, kernels/vec.h).  Split over pool's threads
 * when pool is not NULL (held by the caller).  Clips the gradient first
 * when clipping is on.  Returns NVP_ENONFINITE, changing nothing (not the
 * parameters, moments, average, step count or recorded norm), when the
 * result would not be finite; nothing is recorded. */
int nvp__adam_apply(nvp_adam *opt, float *params, const float *grad,
                    uint32_t params_bits, uint32_t grad_bits, nvp_pool *pool);

/* The message of such a refusal, recorded in eb for fn. */
int nvp__adam_refuse_result(const nvp_errbox *eb, const char *fn);

#endif
