/* SPDX-License-Identifier: MIT */
/* Run-time CPU feature checks for the SIMD paths. */
#ifndef NVP_CPU_H
#define NVP_CPU_H

#include <stddef.h>
#include <stdint.h>

/* Nonzero when the CPU (and OS) run AVX-512F / AVX2 with FMA code. */
int nvp__cpu_avx512(void);
int nvp__cpu_avx2(void);

/* The largest |x[i]| as bits: for non-negative floats the bit patterns
 * order like the values, infinity (NVP_INF_BITS) above every finite value
 * and NaN above infinity.  0 for n == 0. */
uint32_t nvp__max_abs_bits(const float *x, size_t n);
#define NVP_INF_BITS 0x7f800000u

/* Nonzero when none of the n floats is NaN or infinite. */
int nvp__all_finite(const float *x, size_t n);

#endif
