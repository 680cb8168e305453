/* SPDX-License-Identifier: MIT */
/* What the sweep's kernels share beyond sweep.h (sweep.c holds the portable kernels and
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

#include "kernels/sweep.h"

/* Whether unit t of the first layer is ever on, so that the backward
 * visits it: rising (w > 0), falling (w < 0), or always on (w == 0,
 * b > 0).  The others (w == 0 and b <= 0, or NaN) contribute nothing. */
static inline int nvp__sweep_unit_visited(float w, float b)
{
    return w > 0.0f || w < 0.0f || (w == 0.0f && b > 0.0f);
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
