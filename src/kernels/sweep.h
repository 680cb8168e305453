/* SPDX-License-Identifier: MIT */
/* The conditioner's first two dense layers for a single input, as a sweep.
 *
 * With one conditioner input x (the two-dimensional flows of the tutorial),
 * the first hidden layer h = relu(x w + b) is piecewise linear in x: unit j
 * switches at x = -b_j / w_j.  Between consecutive switch points the active
 * set is fixed, so the second layer's pre-activation is
 *
 *     z(x) = x U + V + b2,   U = sum_{j active} w_j W2[j,:],
 *                            V = sum_{j active} b_j W2[j,:],
 *
 * and sweeping x upwards through the sorted rows and switch points updates
 * U and V by one row of W2 per switch.  That is O((H1 + rows) H2) work
 * instead of the O(rows H1 H2) of the matrix product, with the same
 * result up to rounding (U and V are kept in double).  The backward pass
 * sweeps the same way with running sums of dz and x dz over the rows.
 *
 * Rows whose input is NaN or infinite get z = NaN (the caller flags them
 * anyway); ties between an input and a switch point are decided as the
 * comparison x > t decides them, where the unit contributes ~0 either way. */
#ifndef NVP_SWEEP_H
#define NVP_SWEEP_H

#include <stddef.h>

#include "model/coupling.h"

/* Whether layer c runs its first two dense layers as a sweep. */
static inline int nvp__sweep_applies(const nvp_coupling *c)
{
    return c->na == 1 && c->n_dense >= 2 && !c->dense_only;
}

/* Floats of scratch the sweep needs for `rows` rows. */
size_t nvp__sweep_floats(const nvp_coupling *c, size_t rows);

/* z (rows x H2) = second dense layer's pre-activation at the rows x
 * (relu applied when the second layer is a hidden one).  pool (held by the
 * caller, or NULL) shares out blocks of columns; the bits do not depend
 * on it. */
void nvp__sweep_forward(const nvp_coupling *c, nvp_pool *pool, size_t rows,
                        const float *x, float *z, float *scratch);

/* Given dz (rows x H2), the gradient at the second layer's
 * pre-activation, adds the gradients of W1, b1, W2, b2 into grad (may be
 * NULL) and writes dL/dx into din (rows; may be NULL).  With fresh != 0
 * the W2 and b2 gradients are written, as if added to zeros, whatever
 * grad held there (nvp__sweep_fresh_range): the caller need not clear
 * them.  scratch must be the one nvp__sweep_forward last ran with, on the
 * same x and parameters: the backward reuses its sorted rows and switch
 * points. */
void nvp__sweep_backward(const nvp_coupling *c, nvp_pool *pool, size_t rows,
                         const float *x, const float *dz, float *grad,
                         float *din, float *scratch, int fresh);

/* The part of layer c's parameter gradient that a fresh backward writes
 * (W2 and b2, contiguous): [*off, *off + *len) of its flat vector; *len
 * is 0 when the layer has no sweep. */
void nvp__sweep_fresh_range(const nvp_coupling *c, size_t *off, size_t *len);

/* For tests: the double partial sums (per block of columns: H1 for the
 * first layer's weights, H1 for its biases, rows for dL/dx) that the last
 * nvp__sweep_backward on scratch left there; *count receives their
 * number.  They expose the sweep's double arithmetic, which the float
 * outputs round away. */
const double *nvp__sweep_partials(const nvp_coupling *c, size_t rows,
                                  const float *scratch, size_t *count);

/* Kernel levels, and for tests a cap on the level sweeps use (the default
 * cap, NVP_SWEEP_AVX512, lets the CPU decide).  Every level gives the
 * same bits (up to the sign of a NaN where two NaNs meet; see
 * sweep_job.h).  Not thread-safe: set it only while no sweep runs. */
enum { NVP_SWEEP_PORTABLE = 0, NVP_SWEEP_AVX2 = 1, NVP_SWEEP_AVX512 = 2 };
void nvp__sweep_limit_level(int level);

#endif
