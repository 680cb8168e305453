/* SPDX-License-Identifier: MIT */
/* The exponential of a run of floats, vectorised, with the C library's
 * bits.
 *
 * The couplings' affine steps take one expf per transformed entry and
 * row; one call at a time, the calls and their latency cost more than the
 * arithmetic.  Here 8 or 16 run at once.
 *
 * Bits: the vector levels compute glibc's expf algorithm (x * 32/ln2
 * split into an integer k and a remainder r, 2^(k/32) from a 32-entry
 * table, a cubic in r, all in double, then rounded once to float) with
 * the same operations, fused multiply-adds where glibc's FMA build has
 * them.  glibc runs that build on CPUs with FMA, where every result then
 * equals expf's (checked on all 2^32 floats with glibc 2.36); the
 * portable level calls expf itself.  With an expf built without fused
 * multiply-adds (glibc told to ignore FMA, or another C library) the
 * vector levels can differ from expf in the last bit: 2 of the 2^32
 * floats with glibc's own such build.  Arguments with |x| at or above 88
 * (and NaN, infinities) go to expf one at a time. */
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
