/* SPDX-License-Identifier: MIT */
/* What the sweep's kernels share (sweep.c holds the portable kernels and
 * the set-up, sweep_avx512.c the register-blocked ones).  Every kernel
 * covers whole blocks of SWEEP_BLOCK columns and does, for each column, the
 * same operations in the same order, so any kernel on any block gives the
 * same bits.  (One exception: where two NaNs meet, which takes NaN in the
 * parameters or in dz, the sign of the NaN that comes out can depend on
 * the compiler's operand order.  The library's checked inputs never get
 * there.) */
#ifndef NVP_SWEEP_JOB_H
#define NVP_SWEEP_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "model/coupling.h"

#define SWEEP_BLOCK 64

/* A sort key and the index it belongs to.  Sorted ascending by key, ties
 * in index order, so the order is total and the result deterministic. */
typedef struct keyed {
    float key;
    uint32_t index;
} keyed;

/* Everything a block of the sweep reads and writes. */
typedef struct sweep_job {
    const nvp_coupling *c;
    size_t rows, h1, h2;
    const float *x, *dz;
    float *z, *grad, *din;
    double *u, *v, *s0, *s1; /* H2 each; a block uses its own columns */
    double *part;            /* per block: H1 (w1), H1 (b1), rows (din) */
    keyed *sorted_rows;      /* finite rows sorted by x */
    keyed *units;            /* rising units, then falling ones, by t */
    size_t n_rows, n_rising, n_falling;
    size_t blocks_per_task;
    int fresh; /* write the W2 and b2 gradients instead of adding */
} sweep_job;

/* Whether unit t of the first layer is ever on, so that the backward
 * visits it: rising (w > 0), falling (w < 0), or always on (w == 0,
 * b > 0).  The others (w == 0 and b <= 0, or NaN) contribute nothing. */
static inline int nvp__sweep_unit_visited(float w, float b)
{
    return w > 0.0f || w < 0.0f || (w == 0.0f && b > 0.0f);
}

static inline size_t nvp__sweep_blocks(const nvp_coupling *c)
{
    return (c->dense[1].out + SWEEP_BLOCK - 1) / SWEEP_BLOCK;
}

/* Doubles of j->part that one block owns. */
static inline size_t nvp__sweep_part_stride(const sweep_job *j)
{
    return 2 * j->h1 + j->rows;
}

#if defined(__x86_64__) || defined(__i386__)
/* The forward and backward sweep over block blk, which must be a full
 * one (SWEEP_BLOCK columns), with the running sums in AVX-512 registers.
 * Callers check nvp__cpu_avx512() first. */
void nvp__sweep_forward_block_avx512(const sweep_job *j, size_t blk);
void nvp__sweep_backward_block_avx512(const sweep_job *j, size_t blk);
#endif

#endif
