/* SPDX-License-Identifier: MIT */
/* Two dense layers on a single input, as a sweep (the conditioner's first
 * two layers in the two-dimensional flows of the tutorial).
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
#include <stdint.h>

#include "core/cpu.h"

#define SWEEP_BLOCK 64

/* The two layers: x (1) -> h = relu(x w1 + b1) (H1) -> z = h W2 + b2
 * (H2), with relu applied to z when the second layer is a hidden one. */
typedef struct nvp_sweep_net {
    size_t h1, h2;
    const float *w1, *b1; /* H1 each */
    const float *w2, *b2; /* H1 x H2 row-major, H2 */
    int relu;
} nvp_sweep_net;

/* Where the backward adds the layers' gradients (laid out as the
 * weights); all NULL: no parameter gradient. */
typedef struct nvp_sweep_grad {
    float *w1, *b1, *w2, *b2;
} nvp_sweep_grad;

/* A sort key and the index it belongs to.  Sorted ascending by key, ties
 * in index order, so the order is total and the result deterministic. */
typedef struct keyed {
    float key;
    uint32_t index;
} keyed;

/* One sweep over a chunk of rows: what every block reads and writes. */
typedef struct sweep_job {
    nvp_sweep_net net;
    nvp_sweep_grad grad;
    size_t rows, h1, h2;
    const float *x, *dz;
    float *z, *din;
    double *u, *v, *s0, *s1; /* H2 each; a block uses its own columns */
    double *part;            /* per block: H1 (w1), H1 (b1), rows (din) */
    keyed *sorted_rows;      /* finite rows sorted by x */
    keyed *units;            /* rising units, then falling ones, by t */
    keyed *sort_tmp;         /* rows + H1: the sorts' buffers */
    size_t *counts;          /* rows, rising and falling, kept for the
                              * backward in the scratch */
    size_t n_rows, n_rising, n_falling;
    int fresh; /* write the W2 and b2 gradients instead of adding */
} sweep_job;

/* Blocks of SWEEP_BLOCK columns (the last one may be narrower). */
static inline size_t nvp__sweep_blocks(size_t h2)
{
    return (h2 + SWEEP_BLOCK - 1) / SWEEP_BLOCK;
}

/* Floats of scratch the sweep needs for `rows` rows. */
size_t nvp__sweep_floats(size_t h1, size_t h2, size_t rows);

/* Forward: z (rows x H2) = the second layer's output at the rows x.
 * Lays out scratch and counts the first layer's rising and falling units;
 * the forward's blocks run once every part of nvp__sweep_sort has. */
void nvp__sweep_forward_setup(sweep_job *j, const nvp_sweep_net *net,
                              size_t rows, const float *x, float *z,
                              float *scratch);

/* The forward's sorts into scratch, in three parts that write disjoint
 * memory (they only read the job, x and the first layer's parameters in
 * common), so that they can run at once on different threads:
 * the finite rows by x, the rising units by their switch point t = -b/w,
 * the falling ones by theirs.  Each result is the same whoever sorts it. */
#define NVP_SWEEP_SORT_ROWS 0
#define NVP_SWEEP_SORT_RISING 1
#define NVP_SWEEP_SORT_FALLING 2
#define NVP_SWEEP_SORT_PARTS 3
void nvp__sweep_sort(sweep_job *j, size_t part);

/* Backward: given dz (rows x H2), the gradient at the second layer's
 * pre-activation, adds the layers' gradients into grad (may be NULL) and
 * writes dL/dx into din (rows; may be NULL).  With fresh != 0 the W2 and
 * b2 gradients are written, as if added to zeros, whatever they held.
 * scratch must be the one the forward last ran with, on the same x and
 * parameters: the backward reuses its sorted rows and switch points. */
void nvp__sweep_backward_setup(sweep_job *j, const nvp_sweep_net *net,
                               size_t rows, const float *x, const float *dz,
                               const nvp_sweep_grad *grad, float *din,
                               float *scratch, int fresh);

/* Run blocks [blo, bhi) of a job with the kernels of level isa.  Blocks
 * are independent: any split between threads gives the same bits. */
void nvp__sweep_forward_blocks(nvp_isa isa, const sweep_job *j, size_t blo,
                               size_t bhi);
void nvp__sweep_backward_blocks(nvp_isa isa, const sweep_job *j, size_t blo,
                                size_t bhi);

/* After every block of a backward ran: adds the blocks' partial sums, in
 * block order, into the first layer's gradient and din. */
void nvp__sweep_backward_finish(const sweep_job *j);

/* For tests: the double partial sums (per block of columns: H1 for the
 * first layer's weights, H1 for its biases, rows for dL/dx) that the last
 * backward on scratch left there; *count receives their number.  They
 * expose the sweep's double arithmetic, which the float outputs round
 * away. */
const double *nvp__sweep_partials(size_t h1, size_t h2, size_t rows,
                                  const float *scratch, size_t *count);

#endif
