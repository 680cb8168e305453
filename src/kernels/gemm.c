/* SPDX-License-Identifier: MIT */
/* Blocked GEMM driver and packing routines (see gemm.h). */
#include "kernels/gemm.h"
#include "kernels/gemm_ahead.h"
#include "kernels/vec.h"

#include <string.h>

#define MAX_TILE 2048 /* floats in the largest MR x NR tile of any kernel */

/* A B that is not transposed is read in place, a micro-panel's rows ldb
 * floats apart, unless they are this many bytes apart or more: then each
 * step of the micro-kernel touches a new 2 KiB or more of memory (at 4 KiB
 * multiples a page and an L1 set of its own), which the hardware fetches
 * poorly once the matrix has left the cache (a layer's weights between
 * two uses), and copying the panel is cheaper.  Measured on Zen 4,
 * log_prob at batch 10000 interleaved with the in-place reads: 512-wide
 * layers 9% faster packed, 1024-wide 7%; 256-wide 4% slower. */
#define PACK_B_MIN_STRIDE 2048
/* ... and only for a product of more than this many rows: a minibatch's
 * product reuses each packed panel too few times to pay for the copy.
 * Measured on Zen 5, 1024-wide layers, batch 128, one process alternating
 * both ways: the D = 784 gradient 2.3% faster on one thread and 1.3% on
 * two; D = 64 training at batch 128 1.4% faster.  At 256 rows (log_prob's
 * chunks) packing still paid on Zen 4 (above) and was even on Zen 5. */
#define PACK_B_MIN_ROWS 128

size_t nvp__gemm_pack_floats(const nvp_gemm_kernel *k)
{
    /* a transposed B panel, a partial B micro-panel, a partial A one */
    return k->kc * k->nc + k->kc * k->nr + k->mr * k->kc;
}

/* Packs the kc x cols block of op(B) into micro-panels of nr columns,
 * each stored row by row; columns past cols are zero. */
static void pack_b(size_t kc, size_t cols, const float *b, size_t ldb,
                   int trans, size_t nr, float *dst)
{
    if (!trans) {
        /* The whole micro-panels as the kernels' own packers copy them
         * (gemm.h), then a last, partial one zero-padded. */
        const size_t whole = cols / nr * nr;
        nvp__pack_b_rows_body(kc, whole, b, ldb, nr, dst);
        if (whole < cols) {
            const size_t w = cols - whole;
            for (size_t p = 0; p < kc; p++) {
                float *d = dst + whole * kc + p * nr;
                memcpy(d, b + p * ldb + whole, w * sizeof *dst);
                for (size_t j = w; j < nr; j++)
                    d[j] = 0.0f;
            }
        }
        return;
    }
    for (size_t jr = 0; jr < cols; jr += nr) {
        const size_t w = cols - jr < nr ? cols - jr : nr;
        /* op(B)(p, j) = b[j * ldb + p]: read each source row once,
         * scattering it down a column of the micro-panel. */
        for (size_t j = 0; j < w; j++) {
            const float *src = b + (jr + j) * ldb;
            for (size_t p = 0; p < kc; p++)
                dst[p * nr + j] = src[p];
        }
        for (size_t p = 0; p < kc; p++)
            for (size_t j = w; j < nr; j++)
                dst[p * nr + j] = 0.0f;
        dst += nr * kc;
    }
}

/* Packs the last rows < mr rows of op(A) (element (i, p) at
 * a[i * rs + p * cs]) into one zero-padded micro-panel. */
static void pack_a_edge(size_t rows, size_t kc, const float *a, size_t rs,
                        size_t cs, size_t mr, float *dst)
{
    for (size_t p = 0; p < kc; p++) {
        for (size_t i = 0; i < rows; i++)
            dst[p * mr + i] = a[i * rs + p * cs];
        for (size_t i = rows; i < mr; i++)
            dst[p * mr + i] = 0.0f;
    }
}

void nvp__gemm_finish_edge(const float *tmp, size_t nr, float *c, size_t ldc,
                           size_t rows, size_t cols, int acc,
                           const nvp_epilogue *ep)
{
    for (size_t i = 0; i < rows; i++) {
        float *ci = c + i * ldc;
        for (size_t j = 0; j < cols; j++) {
            const float v = acc ? ci[j] + tmp[i * nr + j] : tmp[i * nr + j];
            ci[j] = nvp__epilogue_at(v, ep, i, j);
        }
    }
}

void nvp__absmax_merge(nvp_absmax *am, uint32_t bits)
{
    uint32_t seen = __atomic_load_n(&am->bits, __ATOMIC_RELAXED);
    while (bits > seen &&
           !__atomic_compare_exchange_n(&am->bits, &seen, bits, 1,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

void nvp__absmax_after(nvp_absmax *c_absmax, nvp_absmax *b_absmax,
                       int trans_b, size_t m, size_t n, size_t k,
                       const float *b, size_t ldb, const float *c,
                       size_t ldc)
{
    if (c_absmax)
        nvp__absmax_merge(c_absmax, nvp__absmax_grow(c_absmax, 0, c, ldc, m,
                                                     n));
    /* op(B)(p, j) is b[j * ldb + p] when transposed */
    if (b_absmax && k)
        nvp__absmax_merge(b_absmax,
                          nvp__absmax_grow(b_absmax, 0, b, ldb,
                                           trans_b ? n : k, trans_b ? k : n));
}

void nvp__gemm_no_terms(size_t m, size_t n, int accumulate, float *c,
                        size_t ldc, const nvp_epilogue *ep)
{
    const float zero[1] = {0.0f};
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            nvp_epilogue t;
            nvp__gemm_finish_edge(zero, 0, c + i * ldc + j, ldc, 1, 1,
                                  accumulate,
                                  nvp__tile_epilogue(ep, 1, i, j, &t));
        }
}

/* A product of at most NR columns through the narrow micro-kernel
 * `narrow` (an MR x NR tile: kern's narrow or narrow8): B packed once per
 * k block into one zero-padded panel, A read in place (its last partial
 * row panel packed), every tile that is not whole computed into a scratch
 * tile and added as nvp__gemm_finish_edge adds. */
static void gemm_narrow(const nvp_gemm_kernel *kern, nvp_ukernel_fn narrow,
                        size_t MR, size_t NR, float *pack, int trans_a,
                        int trans_b, size_t m, size_t n, size_t k,
                        const float *a, size_t lda, const float *b,
                        size_t ldb, int accumulate, float *c, size_t ldc,
                        const nvp_epilogue *ep)
{
    const size_t KC = kern->kc;
    float *bpanel = pack;
    float *aedge = bpanel + KC * NR;
    _Alignas(64) float tmp[MAX_TILE];
    const size_t rs_a = trans_a ? 1 : lda, cs_a = trans_a ? lda : 1;
    for (size_t pc = 0; pc < k; pc += KC) {
        const size_t kc = k - pc < KC ? k - pc : KC;
        const int acc = accumulate || pc > 0;
        const int last = pc + kc == k;
        pack_b(kc, n, trans_b ? b + pc : b + pc * ldb, ldb, trans_b, NR,
               bpanel);
        for (size_t ir = 0; ir < m; ir += MR) {
            const size_t rows = m - ir < MR ? m - ir : MR;
            const float *ap = a + ir * rs_a + pc * cs_a;
            size_t rs = rs_a, cs = cs_a;
            if (rows < MR) {
                pack_a_edge(rows, kc, ap, rs_a, cs_a, MR, aedge);
                ap = aedge;
                rs = 1;
                cs = MR;
            }
            nvp_epilogue t;
            const nvp_epilogue *tep = nvp__tile_epilogue(ep, last, ir, 0, &t);
            float *cp = c + ir * ldc;
            if (rows == MR && n == NR) {
                narrow(kc, ap, rs, cs, bpanel, NR, cp, ldc, acc, tep);
            } else {
                narrow(kc, ap, rs, cs, bpanel, NR, tmp, NR, 0, NULL);
                nvp__gemm_finish_edge(tmp, NR, cp, ldc, rows, n, acc, tep);
            }
        }
    }
}

/* A product of at most TRANSPOSED_MAX_N columns whose A is stored
 * transposed and that has at least TRANSPOSED_MIN_K terms and a whole
 * register panel of rows (a narrow layer's weight gradient X^T * dY)
 * runs as its transpose (gemm_transposed).  Measured on Zen 4, one
 * product alone: 256 x 8 x 256 in 43 us instead of 68-71 with its
 * operands out of the cache, 10-11 instead of 12.5-19 in it (avx512; avx2
 * 54 instead of 71); with 16 columns it lost in the cache (the 16-wide
 * narrow tile is fast there), and with k = 16 the pass that transposes
 * the result back costs more than the strided reads it saves. */
#define TRANSPOSED_MAX_N 8
#define TRANSPOSED_MIN_K 64
/* Columns of C per pass of gemm_transposed: the scratch holds
 * TRANSPOSED_MAX_N x this many floats. */
#define TRANSPOSED_COLS 256

static void gemm_blocked(const nvp_gemm_kernel *kern, float *pack,
                         int trans_a, int trans_b, size_t m, size_t n,
                         size_t k, const float *a, size_t lda, const float *b,
                         size_t ldb, int accumulate, float *c, size_t ldc,
                         const nvp_epilogue *ep, int may_pack_b,
                         nvp_absmax *c_absmax, nvp_absmax *b_absmax);

/* C = op(A) * B with A stored transposed and few columns, computed as
 * C^T = B^T * A through the NR-wide kernel: a kernel over C's rows would
 * walk A down its columns, a new row of memory at every step of k, where
 * the transposed product reads A's rows along their length and B's few
 * columns are broadcast.  Each k block is summed from zero and added to C
 * once, element by element, exactly as the kernels and
 * nvp__gemm_finish_edge add it, and fma(x, y, z) does not care which of x
 * and y comes from which matrix: the bits of the direct product (but for
 * the sign and payload of a NaN made from two NaN factors: gemm.h). */
static void gemm_transposed(const nvp_gemm_kernel *kern, float *pack,
                            size_t m, size_t n, size_t k, const float *a,
                            size_t lda, const float *b, size_t ldb,
                            int accumulate, float *c, size_t ldc,
                            const nvp_epilogue *ep)
{
    _Alignas(64) float t[TRANSPOSED_MAX_N * TRANSPOSED_COLS];
    const size_t KC = kern->kc;
    for (size_t pc = 0; pc < k; pc += KC) {
        const size_t kc = k - pc < KC ? k - pc : KC;
        const int acc = accumulate || pc > 0;
        const int last = pc + kc == k;
        for (size_t i0 = 0; i0 < m; i0 += TRANSPOSED_COLS) {
            const size_t w =
                m - i0 < TRANSPOSED_COLS ? m - i0 : TRANSPOSED_COLS;
            /* t (n x w) = B^T * A: B's columns as the rows of a transposed
             * A, A's rows read in place as B (whole panels never packed:
             * only n <= 8 rows of t read each one). */
            gemm_blocked(kern, pack, 1, 0, n, w, kc, b + pc * ldb, ldb,
                         a + pc * lda + i0, lda, 0, t, w, NULL, 0, NULL,
                         NULL);
            nvp_epilogue et;
            const nvp_epilogue *tep = nvp__tile_epilogue(ep, last, i0, 0, &et);
            for (size_t i = 0; i < w; i++) {
                float *ci = c + (i0 + i) * ldc;
                if (!tep && !acc)
                    for (size_t j = 0; j < n; j++)
                        ci[j] = t[j * w + i];
                else if (!tep)
                    for (size_t j = 0; j < n; j++)
                        ci[j] += t[j * w + i];
                else
                    for (size_t j = 0; j < n; j++) {
                        const float v =
                            acc ? ci[j] + t[j * w + i] : t[j * w + i];
                        ci[j] = nvp__epilogue_at(v, tep, i, j);
                    }
            }
        }
    }
}

/* How many mr_short-row tiles end a block of mc rows so that the rest
 * splits into whole MR-row tiles: 0 when mc needs none or no count does
 * (the block then ends in a tile of its last rows' height, or a padded
 * one). */
static size_t short_tiles(const nvp_gemm_kernel *kern, size_t mc)
{
    const size_t MR = kern->mr, S = kern->mr_short;
    if (!S || !kern->exact_rows || !kern->exact_rows[S] || mc % MR == 0)
        return 0;
    for (size_t t = 1; t < MR && t * S <= mc; t++)
        if ((mc - t * S) % MR == 0)
            return t;
    return 0;
}

void nvp__gemm(const nvp_gemm_kernel *kern, float *pack, int trans_a,
               int trans_b, size_t m, size_t n, size_t k, const float *a,
               size_t lda, const float *b, size_t ldb, int accumulate,
               float *c, size_t ldc, const nvp_epilogue *ep)
{
    nvp_epilogue core;
    nvp_absmax *c_absmax, *b_absmax;
    ep = nvp__epilogue_core(ep, &core, &c_absmax, &b_absmax);
    size_t narrow_mr, narrow_nr;
    const nvp_ukernel_fn narrow =
        k ? nvp__gemm_narrow_for(kern, n, &narrow_mr, &narrow_nr) : NULL;
    if (k == 0) {
        nvp__gemm_no_terms(m, n, accumulate, c, ldc, ep);
    } else if (trans_a && !trans_b && n <= TRANSPOSED_MAX_N &&
               n < kern->nr && m >= kern->nr && k >= TRANSPOSED_MIN_K) {
        gemm_transposed(kern, pack, m, n, k, a, lda, b, ldb, accumulate, c,
                        ldc, ep);
    } else if (narrow && !(m < narrow_mr && kern->exact_rows)) {
        /* Fewer rows than one narrow tile (a batch of a few points) take
         * the wide kernel's tiles of their height below, which compute
         * only those rows, where the narrow tile would be padded to all
         * of its own (the same bits, as every kernel reduces alike).
         * D=16, one thread: log_prob of 1 point 56 to 44 us, of 4 points
         * 71 to 59 us; D=8 7-8% faster. */
        gemm_narrow(kern, narrow, narrow_mr, narrow_nr, pack, trans_a,
                    trans_b, m, n, k, a, lda, b, ldb, accumulate, c, ldc,
                    ep);
    } else {
        /* measures its blocks and panels as it goes */
        gemm_blocked(kern, pack, trans_a, trans_b, m, n, k, a, lda, b, ldb,
                     accumulate, c, ldc, ep, 1, c_absmax, b_absmax);
        return;
    }
    /* The other paths' products have at most a few columns: measured once
     * done. */
    nvp__absmax_after(c_absmax, b_absmax, trans_b, m, n, k, b, ldb, c, ldc);
}

static void gemm_blocked(const nvp_gemm_kernel *kern, float *pack,
                         int trans_a, int trans_b, size_t m, size_t n,
                         size_t k, const float *a, size_t lda, const float *b,
                         size_t ldb, int accumulate, float *c, size_t ldc,
                         const nvp_epilogue *ep, int may_pack_b,
                         nvp_absmax *c_absmax, nvp_absmax *b_absmax)
{
    /* The BLIS loops over the wide kernel (k > 0): nvp__gemm's products
     * that no narrow path takes, and gemm_transposed's. */
    const size_t MR = kern->mr, NR = kern->nr;
    const size_t MC = kern->mc, KC = kern->kc, NC = kern->nc;
    float *bpanel = pack;
    float *bedge = bpanel + KC * NC;
    float *aedge = bedge + KC * NR;
    _Alignas(64) float tmp[MAX_TILE];
    /* op(A)(i, p) = a[i * rs_a + p * cs_a] */
    const size_t rs_a = trans_a ? 1 : lda, cs_a = trans_a ? lda : 1;
    /* Whole B panels are packed when transposed, or when their rows lie
     * far apart and enough row panels of A will reuse them. */
    const int pack_whole_b =
        trans_b || (may_pack_b && ldb * sizeof(float) >= PACK_B_MIN_STRIDE &&
                    m > PACK_B_MIN_ROWS);
    uint32_t seen_c = 0, seen_b = 0; /* the measures of this product */

    for (size_t jc = 0; jc < n; jc += NC) {
        const size_t nc = n - jc < NC ? n - jc : NC;
        const size_t nfull = nc / NR * NR; /* columns in whole panels */
        for (size_t pc = 0; pc < k; pc += KC) {
            const size_t kc = k - pc < KC ? k - pc : KC;
            const int acc = accumulate || pc > 0;
            const int last = pc + kc == k;
            /* B: whole panels packed or read in place (pack_whole_b); a
             * partial last panel always packed and zero-padded. */
            const float *bsrc = trans_b ? b + jc * ldb + pc : b + pc * ldb + jc;
            if (pack_whole_b && nfull) {
                if (trans_b && kern->pack_b_trans)
                    kern->pack_b_trans(kc, nfull, bsrc, ldb, bpanel);
                else if (!trans_b && kern->pack_b_rows) /* whole panels */
                    kern->pack_b_rows(kc, nfull, bsrc, ldb, bpanel);
                else
                    pack_b(kc, nfull, bsrc, ldb, trans_b, NR, bpanel);
            }
            if (nfull < nc)
                pack_b(kc, nc - nfull,
                       trans_b ? bsrc + nfull * ldb : bsrc + nfull, ldb,
                       trans_b, NR, bedge);
            nvp_ahead next;
            nvp__ahead_next_b(&next, b, ldb, trans_b, k, n, pc, jc, KC, NC,
                              (nc + NR - 1) / NR * ((m + MR - 1) / MR));
            for (size_t ic = 0; ic < m; ic += MC) {
                const size_t mc = m - ic < MC ? m - ic : MC;
                const float *ablk = a + ic * rs_a + pc * cs_a;
                /* MR-row tiles, then any short ones */
                const size_t tall =
                    mc - short_tiles(kern, mc) * kern->mr_short;
                for (size_t jr = 0; jr < nc; jr += NR) {
                    const size_t cols = nc - jr < NR ? nc - jr : NR;
                    const float *bp;
                    size_t rs_b;
                    if (cols < NR) {
                        bp = bedge;
                        rs_b = NR;
                    } else if (pack_whole_b) {
                        bp = bpanel + jr * kc;
                        rs_b = NR;
                    } else {
                        bp = bsrc + jr;
                        rs_b = ldb;
                    }
                    for (size_t ir = 0, h; ir < mc; ir += h) {
                        h = ir < tall ? MR : kern->mr_short;
                        const size_t rows = mc - ir < h ? mc - ir : h;
                        const size_t row0 = ic + ir, col0 = jc + jr;
                        float *cp = c + row0 * ldc + col0;
                        nvp_epilogue t;
                        const nvp_epilogue *tep =
                            nvp__tile_epilogue(ep, last, row0, col0, &t);
                        const float *ap = ablk + ir * rs_a;
                        size_t rs = rs_a, cs = cs_a;
                        nvp__ahead_step(&next);
                        nvp_ukernel_fn fn =
                            h == MR ? kern->kernel : kern->exact_rows[h];
                        if (rows < h && kern->exact_rows &&
                            kern->exact_rows[rows]) {
                            /* the last rows, in a tile of their height */
                            fn = kern->exact_rows[rows];
                            h = rows;
                        } else if (rows < h) {
                            /* Only on the last row panel: pack it so the
                             * kernel never reads past the matrix. */
                            if (jr == 0)
                                pack_a_edge(rows, kc, ap, rs_a, cs_a, MR,
                                            aedge);
                            ap = aedge;
                            rs = 1;
                            cs = MR;
                        }
                        if (rows == h && cols == NR) {
                            fn(kc, ap, rs, cs, bp, rs_b, cp, ldc, acc, tep);
                        } else {
                            fn(kc, ap, rs, cs, bp, rs_b, tmp, NR, 0, NULL);
                            nvp__gemm_finish_edge(tmp, NR, cp, ldc, rows,
                                                  cols, acc, tep);
                        }
                    }
                    /* The panel of B (kc x cols, packed or in place) the
                     * first block of rows just read: measured in the
                     * cache, once. */
                    if (b_absmax && ic == 0)
                        seen_b = nvp__absmax_grow(b_absmax, seen_b, bp, rs_b,
                                                  kc, cols);
                }
                /* The block (at most MC x NC) was just stored: measured
                 * in the cache, not in a pass over memory later. */
                if (c_absmax && last)
                    seen_c = nvp__absmax_grow(c_absmax, seen_c,
                                              c + ic * ldc + jc, ldc, mc, nc);
            }
        }
    }
    nvp__absmax_report(c_absmax, seen_c, b_absmax, seen_b);
}
