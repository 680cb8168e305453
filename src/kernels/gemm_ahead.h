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

typedef struct nvp_ahead {
    const char *base;    /* first row */
    size_t rows, lines;  /* rows, cache lines per row */
    size_t stride;       /* bytes from one row to the next */
    size_t r, l;         /* the next line to fetch */
    size_t per_tile;     /* lines fetched before each tile */
} nvp_ahead;

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
    p->rows = 0;
    p->r = p->l = 0;
    p->per_tile = 0;
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
    const size_t row_floats = trans_b ? kc : nc;
    p->rows = trans_b ? nc : kc;
    p->base = (const char *)(trans_b ? b + jc2 * ldb + pc2
                                     : b + pc2 * ldb + jc2);
    p->stride = ldb * sizeof(float);
    /* one line more where a row does not start on a line */
    p->lines = (row_floats * sizeof(float) + 63) / 64 + 1;
    p->per_tile = (p->rows * p->lines + tiles - 1) / tiles;
}

/* The next share of the lines, before a tile. */
static inline void nvp__ahead_step(nvp_ahead *p)
{
    for (size_t count = p->per_tile; count && p->r < p->rows; count--) {
        __builtin_prefetch(p->base + p->r * p->stride + p->l * 64, 0, 2);
        if (++p->l == p->lines) {
            p->l = 0;
            p->r++;
        }
    }
}

#endif
