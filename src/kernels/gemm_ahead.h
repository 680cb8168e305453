/* SPDX-License-Identifier: MIT */
/* Fetching the next block of B while the kernels compute on this one.
 *
 * The blocked drivers (gemm.c, gemm_bf16.c) take B a block of KC x NC at
 * a time.  A layer's weights are read once per product, so at D = 784
 * (36 MB of weights, more than the last-level cache) every block came
 * from memory while the kernels waited, at the start of each block, for
 * what the hardware prefetchers had not guessed: its rows lie one weight
 * row apart.  The drivers spread a prefetch of the next block's lines
 * over the current block's tiles, so the next block is in the cache when
 * its turn comes.  Prefetches change no result. */
#ifndef NVP_GEMM_AHEAD_H
#define NVP_GEMM_AHEAD_H

#include <stddef.h>
#include <stdint.h>

/* Addresses are kept as integers: the last line of a row may start past
 * the end of B's storage, where C forbids forming a pointer, and a
 * prefetch of any address is harmless. */
typedef struct nvp_ahead {
    uintptr_t base;      /* first row's first byte */
    size_t rows, bytes;  /* rows, bytes per row */
    size_t stride;       /* bytes from one row to the next */
    size_t r;            /* the row being fetched */
    uintptr_t line, end; /* its next line and its last line's start */
    size_t per_tile;     /* lines fetched before each tile */
} nvp_ahead;

static inline void nvp__ahead_row(nvp_ahead *p)
{
    const uintptr_t row = p->base + p->r * p->stride;
    p->line = row & ~(uintptr_t)63;
    p->end = (row + p->bytes - 1) & ~(uintptr_t)63;
}

/* Sets p up to fetch the next block of B after the one at (pc, jc) of a
 * product over k terms and n columns (blocks of kc_max x nc_max, B as the
 * driver reads it: row-major k x n, or n x k with trans_b), spread over
 * `tiles` tile calls; nothing to fetch after the last block. */
static inline void nvp__ahead_next_b(nvp_ahead *p, const float *b,
                                     size_t ldb, int trans_b, size_t k,
                                     size_t n, size_t pc, size_t jc,
                                     size_t kc_max, size_t nc_max,
                                     size_t tiles)
{
    *p = (nvp_ahead){0, 0, 0, 0, 0, 0, 0, 0};
    size_t pc2 = pc + kc_max, jc2 = jc;
    if (pc2 >= k) {
        pc2 = 0;
        jc2 = jc + nc_max;
    }
    if (jc2 >= n || tiles == 0)
        return;
    const size_t kc = k - pc2 < kc_max ? k - pc2 : kc_max;
    const size_t nc = n - jc2 < nc_max ? n - jc2 : nc_max;
    /* A row of the block: nc floats of B's row pc2 + i, or kc floats of
     * B's stored row jc2 + i when B is transposed. */
    p->rows = trans_b ? nc : kc;
    p->bytes = (trans_b ? kc : nc) * sizeof(float);
    p->base = (uintptr_t)(trans_b ? b + jc2 * ldb + pc2 : b + pc2 * ldb + jc2);
    p->stride = ldb * sizeof(float);
    nvp__ahead_row(p);
    /* at most one line more per row than its bytes fill */
    const size_t lines = p->rows * ((p->bytes + 63) / 64 + 1);
    p->per_tile = (lines + tiles - 1) / tiles;
}

/* The next share of the lines, before a tile. */
static inline void nvp__ahead_step(nvp_ahead *p)
{
    for (size_t count = p->per_tile; count && p->r < p->rows; count--) {
        __builtin_prefetch((const void *)p->line, 0, 2);
        if (p->line < p->end) {
            p->line += 64;
        } else if (++p->r < p->rows) {
            nvp__ahead_row(p);
        }
    }
}

#endif
