/* SPDX-License-Identifier: MIT */
/* Passes over flat float vectors: the finiteness check of gradients,
 * parameters and data. */
#ifndef NVP_VEC_H
#define NVP_VEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"

/* The largest |x[i]| as bits: for non-negative floats the bit patterns
 * order like the values, infinity (NVP_INF_BITS) above every finite value
 * and NaN above infinity.  0 for n == 0. */
uint32_t nvp__max_abs_bits(nvp_isa isa, const float *x, size_t n);
#define NVP_INF_BITS 0x7f800000u
/* The same over x[0 .. n), a run of a vector of `whole` floats that the
 * caller's threads take in runs: the run fetches ahead as a pass over
 * the whole vector would (kernels/stream_ahead.h). */
uint32_t nvp__max_abs_bits_part(nvp_isa isa, const float *x, size_t n,
                                size_t whole);

/* The same over the rows x cols block of a matrix at x, rows ld floats
 * apart (a block of a product's output, a panel of its operand). */
uint32_t nvp__max_abs_bits_2d(nvp_isa isa, const float *x, size_t ld,
                              size_t rows, size_t cols);

/* Nonzero when none of the n floats is NaN or infinite. */
int nvp__all_finite(nvp_isa isa, const float *x, size_t n);

#endif
