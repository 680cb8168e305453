/* SPDX-License-Identifier: MIT */
/* The exponential of a run of floats, vectorised, with the C library's
 * bits.
 *
 * The couplings' affine steps take one expf per transformed entry and
 * row; one call at a time, the calls and their latency cost more than the
 * arithmetic (6% of a D=784 log_prob in bfloat16, with expf itself
 * another 4%).  Here 8 or 16 run at once.
 *
 * Bits: the vector levels compute glibc's expf algorithm (x * 32/ln2
 * split into an integer k and a remainder r, 2^(k/32) from a 32-entry
 * table, a cubic in r, all in double, then rounded once to float) with
 * the same operations, fused multiply-adds where glibc's FMA build has
 * them, so on a CPU with FMA -- where glibc runs that build -- every
 * result equals expf's.  The portable level calls expf itself.  So the
 * three levels agree with each other and with the library before this
 * existed, on every glibc machine that runs them.  Arguments with |x| at
 * or above 88 (and NaN, infinities) go to expf one at a time. */
#ifndef NVP_EXP_ARRAY_H
#define NVP_EXP_ARRAY_H

#include <stddef.h>

#include "core/cpu.h"

/* y[i] = expf(x[i]) for i < n, at level isa; y may be x. */
void nvp__exp_array(nvp_isa isa, const float *x, float *y, size_t n);

/* The vector levels' algorithm one float at a time, in plain C with
 * fma(): the reference the tests hold every level to. */
float nvp__exp_reference(float x);

#endif
