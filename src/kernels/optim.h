/* SPDX-License-Identifier: MIT */
/* The optimizer's passes over the flat parameter vector: Adam's update
 * (with the parameter average and the clipping scale fused in) and the
 * sum of squares behind the gradient's norm.  Every level of isa gives
 * the same bits. */
#ifndef NVP_OPTIM_H
#define NVP_OPTIM_H

#include <stddef.h>

#include "core/cpu.h"
#include "kernels/vec.h"

/* The update's constants, the same for every parameter. */
typedef struct nvp_adam_consts {
    float b1, b2, step, inv_sqrt_bc2, eps;
    float gscale;    /* the clipping factor; 1 leaves every bit as it was */
    float avg_decay; /* the average's decay, when avg is not NULL */
    float decay;     /* lr * weight decay (AdamW); 0: none */
} nvp_adam_consts;

/* One Adam update of n parameters p, with gradient g and moments m, v;
 * avg (may be NULL) follows the new parameters. */
void nvp__adam_update(nvp_isa isa, size_t n, float *p, const float *g,
                      float *m, float *v, float *avg,
                      const nvp_adam_consts *k);

/* The largest magnitude, as bits (kernels/vec.h), of every value the
 * update would write -- parameters, moments and average -- without writing
 * any: a step whose result holds NaN or an infinity can be refused before
 * anything changes. */
uint32_t nvp__adam_probe(nvp_isa isa, size_t n, const float *p,
                         const float *g, const float *m, const float *v,
                         const float *avg, const nvp_adam_consts *k);

/* sum x[i]^2 in double, in an order that does not depend on isa. */
double nvp__sum_squares(nvp_isa isa, const float *x, size_t n);

#endif
