/* SPDX-License-Identifier: MIT */
/* Passes over flat float vectors, compiled once per instruction set. */
#include "kernels/vec.h"

#include <string.h>

/* |x| as bits: for non-negative IEEE floats the bit patterns order like
 * the values, infinity above every finite value and NaN above infinity.
 * The largest pattern over the array, an integer max reduction, vectorises
 * (a floating-point reduction would not, without reassociation). */
static inline __attribute__((always_inline)) void
max_abs_bits_body(const float *x, size_t n, uint32_t *out)
{
    uint32_t top = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        u &= 0x7fffffffu;
        top = u > top ? u : top;
    }
    *out = top;
}

NVP_ISA_VARIANTS(max_abs_bits, max_abs_bits_body,
                 (const float *x, size_t n, uint32_t *out), (x, n, out))

uint32_t nvp__max_abs_bits(nvp_isa isa, const float *x, size_t n)
{
    uint32_t top;
    max_abs_bits(isa, x, n, &top);
    return top;
}

int nvp__all_finite(nvp_isa isa, const float *x, size_t n)
{
    return nvp__max_abs_bits(isa, x, n) < NVP_INF_BITS;
}
