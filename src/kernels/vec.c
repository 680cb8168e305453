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

/* Lanes of a matrix block's rows: a register panel's width (32 floats),
 * so that a panel's row is a few vector maxima. */
#define BLOCK_LANES 32

/* The largest |x[i * ld + j]| as bits over a rows x cols block, its rows
 * BLOCK_LANES floats at a time into lanes (a row's last floats one by
 * one), without the per-row cost of a call. */
static inline __attribute__((always_inline)) void
max_abs_bits_2d_body(const float *x, size_t ld, size_t rows, size_t cols,
                     uint32_t *out)
{
    uint32_t lane[BLOCK_LANES] = {0};
    uint32_t top = 0;
    for (size_t i = 0; i < rows; i++) {
        const float *r = x + i * ld;
        size_t j = 0;
        for (; j + BLOCK_LANES <= cols; j += BLOCK_LANES)
            for (size_t l = 0; l < BLOCK_LANES; l++) {
                const uint32_t u = abs_bits(r + j + l);
                lane[l] = u > lane[l] ? u : lane[l];
            }
        for (; j < cols; j++) {
            const uint32_t u = abs_bits(r + j);
            top = u > top ? u : top;
        }
    }
    for (size_t l = 0; l < BLOCK_LANES; l++)
        top = lane[l] > top ? lane[l] : top;
    *out = top;
}
NVP_ISA_VARIANTS(max_abs_bits_2d, max_abs_bits_2d_body,
                 (const float *x, size_t ld, size_t rows, size_t cols,
                  uint32_t *out),
                 (x, ld, rows, cols, out))

uint32_t nvp__max_abs_bits_2d(nvp_isa isa, const float *x, size_t ld,
                              size_t rows, size_t cols)
{
    uint32_t top;
    max_abs_bits_2d(isa, x, ld, rows, cols, &top);
    return top;
}

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
