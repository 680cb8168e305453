/* SPDX-License-Identifier: MIT */
/* Passes over flat float vectors, compiled once per instruction set. */
#include "kernels/vec.h"

#include <string.h>

#include "kernels/stream_ahead.h"

/* |x| as bits: for non-negative IEEE floats the bit patterns order like
 * the values, infinity above every finite value and NaN above infinity.
 * The largest pattern over the array, an integer max reduction, vectorises
 * (a floating-point reduction would not, without reassociation). */
static inline __attribute__((always_inline)) uint32_t
abs_bits(const float *x)
{
    uint32_t u;
    memcpy(&u, x, sizeof u);
    return u & 0x7fffffffu;
}

/* A block at a time, into one lane per float of a block: independent
 * maxima that vectorise into a few accumulators, merged at the end (an
 * integer max in any order is the same).  With fetch (a long vector, or
 * a run of one) each block first requests what lies ahead
 * (stream_ahead.h). */
static inline __attribute__((always_inline)) void
max_abs_bits_body(const float *x, size_t n, int fetch, uint32_t *out)
{
    uint32_t lane[NVP_STREAM_BLOCK] = {0};
    size_t i = 0;
    for (; i + NVP_STREAM_BLOCK <= n; i += NVP_STREAM_BLOCK) {
        if (fetch)
            nvp__stream_fetch(x, i);
        for (size_t l = 0; l < NVP_STREAM_BLOCK; l++) {
            const uint32_t u = abs_bits(x + i + l);
            lane[l] = u > lane[l] ? u : lane[l];
        }
    }
    uint32_t top = 0;
    for (; i < n; i++) {
        const uint32_t u = abs_bits(x + i);
        top = u > top ? u : top;
    }
    for (size_t l = 0; l < NVP_STREAM_BLOCK; l++)
        top = lane[l] > top ? lane[l] : top;
    *out = top;
}

NVP_ISA_VARIANTS(max_abs_bits, max_abs_bits_body,
                 (const float *x, size_t n, int fetch, uint32_t *out),
                 (x, n, fetch, out))

uint32_t nvp__max_abs_bits_part(nvp_isa isa, const float *x, size_t n,
                                size_t whole)
{
    uint32_t top;
    max_abs_bits(isa, x, n, whole >= NVP_STREAM_MIN_FLOATS, &top);
    return top;
}

uint32_t nvp__max_abs_bits(nvp_isa isa, const float *x, size_t n)
{
    return nvp__max_abs_bits_part(isa, x, n, n);
}

int nvp__all_finite(nvp_isa isa, const float *x, size_t n)
{
    return nvp__max_abs_bits(isa, x, n) < NVP_INF_BITS;
}
