/* SPDX-License-Identifier: MIT */
/* The library's cache-blocked single-precision matrix multiply.
 *
 *   C (m x n) = [C +] op(A) (m x k) * op(B) (k x n), then an epilogue
 *
 * op(A) is A (row-major, leading dimension lda) or its transpose, read in
 * place; likewise B.  This covers the three products of a dense layer
 * without materialising a transpose: X*W (forward), dY*W^T (input
 * gradient) and X^T*dY (weight gradient).
 *
 * Loop order as in BLIS: n in NC blocks, k in KC blocks (a KC x NC panel
 * of B), m in MC blocks (an MC x KC block of A), then NR- and MR-wide
 * micro-panels through a register-tiled micro-kernel (a block's last rows
 * through shorter ones where the kernel has them: exact_rows).
 * The micro-kernel takes strides, so operands already laid out usefully
 * are read in place: A is never packed except for a last, partial row
 * panel that no tile of its height covers (the broadcast of one element
 * per row does not care about layout), and B is packed only when
 * transposed, when its rows lie 2 KiB apart or more and the product has
 * more than 128 rows (every step of the kernel would touch new memory that
 * the hardware fetches poorly once the matrix has left the cache, and
 * enough row panels reuse the copy), or for a last, partial column panel.  A
 * product of at most 8 columns (fewer than the kernel's NR) with A stored
 * transposed, at least NR rows and at least 64 terms (a narrow layer's
 * weight gradient) runs as its transpose, C^T = B^T * A, so that A is
 * read along its rows (then A plays B's part: read in place, its last
 * partial column panel packed).  Each output element is reduced in the
 * same order whatever its position and whichever way it is computed, so
 * results do not depend on how rows or columns are split between
 * threads.  One exception: where both factors of a term are NaN, which
 * one's sign and payload the result carries depends on the instruction's
 * operand order, which the transposed product swaps; a NaN stays a NaN.
 */
#ifndef NVP_GEMM_H
#define NVP_GEMM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/cpu.h"
#include "kernels/vec.h"

/* Applied to each output tile once its last k block is done, while the
 * tile is still in registers: v = (C +) A*B, then v += bias[j], then
 * max(v, 0), then v = gate[i][j] > 0 ? v : 0, and colsum[j] += v.  The
 * comparisons are the ones a C ternary makes (NaN compares false), so every
 * kernel rounds and handles NaN identically.  colsum receives each column's
 * values one row at a time in ascending row order, the order a loop over
 * the stored C would add them in, whatever the kernel: this is how a dense
 * layer's bias gradient (the column sums of dZ) is summed while the
 * product that makes dZ stores it, instead of in a pass of its own.  A
 * product with colsum is never split over rows between threads. */
typedef struct nvp_absmax nvp_absmax;
typedef struct nvp_epilogue {
    const float *bias;  /* add bias[j] to column j (NULL: none) */
    int relu;           /* then max(v, 0) */
    const float *gate;  /* then zero v where gate[i*ldgate + j] <= 0 */
    size_t ldgate;      /*   (ReLU backward through a cached activation) */
    float *colsum;      /* then colsum[j] += v (NULL: none) */
    /* Measures (below; NULL: none): of the largest |v| stored in C, and
     * of the largest |op(B)(p, j)| the product read. */
    nvp_absmax *c_absmax, *b_absmax;
} nvp_epilogue;

/* The largest magnitude a product stored in C or read from B, as bits
 * (nvp__max_abs_bits: NaN above infinity above every finite value): the
 * drivers measure each block of C once its last k block is stored, and
 * each register panel of B once the first block of rows has used it,
 * while the block or panel is still in the cache, and max-combine the
 * result into bits (atomically: the parts of a product that threads share
 * out may report into one).  This is how a weight gradient, and the
 * weights a forward product reads, are checked for NaN and infinities
 * without a pass of their own over memory.  Measuring only reads: the
 * bits stored are the same with or without it.  The kernels never see it
 * (the drivers take it off the epilogue they pass on). */
struct nvp_absmax {
    nvp_isa isa;   /* the instruction set of the measuring pass */
    uint32_t bits; /* max-combined into; start it at 0 */
};

/* The epilogue of the block of C whose top-left element is (row0, col0):
 * its pointers moved there.  For tiles, and for the parts of a product
 * that threads share out. */
static inline nvp_epilogue nvp__epilogue_offset(const nvp_epilogue *ep,
                                                size_t row0, size_t col0)
{
    nvp_epilogue t = *ep;
    if (t.bias)
        t.bias += col0;
    if (t.gate)
        t.gate += row0 * t.ldgate + col0;
    if (t.colsum)
        t.colsum += col0;
    return t;
}

/* The epilogue of one element v at (i, j) of the product, scalar: what
 * every kernel does in registers, in the same order. */
static inline float nvp__epilogue_at(float v, const nvp_epilogue *ep,
                                     size_t i, size_t j)
{
    if (ep) {
        if (ep->bias)
            v += ep->bias[j];
        if (ep->relu)
            v = v > 0.0f ? v : 0.0f;
        if (ep->gate)
            v = ep->gate[i * ep->ldgate + j] > 0.0f ? v : 0.0f;
        if (ep->colsum)
            ep->colsum[j] += v;
    }
    return v;
}

/* Micro-kernel: the MR x NR tile c (row stride ldc) =
 *   epilogue((accumulate ? c : 0) + A * B)
 * over kc steps, where element (i, p) of A is a[i * rs_a + p * cs_a] (a
 * packed micro-panel, or the caller's matrix read in place) and row p of B
 * is the NR contiguous floats at b + p * rs_b.  The product is summed in
 * registers from zero and added to c once at the end, so edge tiles,
 * computed into a scratch tile and added by the driver, round exactly like
 * interior ones.  ep (NULL: none) has its pointers already offset to the
 * tile. */
typedef void (*nvp_ukernel_fn)(size_t kc, const float *a, size_t rs_a,
                               size_t cs_a, const float *b, size_t rs_b,
                               float *c, size_t ldc, int accumulate,
                               const nvp_epilogue *ep);

typedef struct nvp_gemm_kernel {
    const char *name; /* "portable", "avx2", "avx512" */
    size_t mr, nr;    /* register tile */
    size_t mc, kc, nc; /* cache blocks; mc % mr == 0, nc % nr == 0 */
    nvp_ukernel_fn kernel;
    int (*supported)(void); /* run-time CPU check */
    /* Optional faster packing of whole NR-column panels of a transposed B
     * (op(B)(p, j) = b[j * ldb + p]) into dst, as the generic packer lays
     * them out; NULL selects the generic one. */
    void (*pack_b_trans)(size_t kc, size_t cols, const float *b, size_t ldb,
                         float *dst);
    /* The few-column path of gemm_small.h compiled for this kernel's
     * instruction set (work: n * k floats). */
    void (*small_n)(int trans_a, int trans_b, size_t m, size_t n, size_t k,
                    const float *a, size_t lda, const float *b, size_t ldb,
                    int accumulate, float *c, size_t ldc,
                    const nvp_epilogue *ep, float *work);
    /* Optional micro-kernel for products of at most nr_narrow columns
     * (an mr_narrow x nr_narrow tile), for which the NR-wide tile would
     * compute mostly padding: the output layer of a conditioner with a
     * few outputs, its weight gradient.  Each output is reduced exactly
     * as `kernel` reduces it, so the results are the same bits; NULL:
     * none.  A product of fewer than mr_narrow rows takes exact_rows
     * tiles instead where there are some (no padded rows), and one with
     * A stored transposed may run as its transpose (above). */
    nvp_ukernel_fn narrow;
    size_t mr_narrow, nr_narrow;
    /* Optional narrower one still, for at most nr_narrow8 (< nr_narrow)
     * columns, with the same guarantee; NULL: none. */
    nvp_ukernel_fn narrow8;
    size_t mr_narrow8, nr_narrow8;
    /* Optional micro-kernels of smaller heights: exact_rows[r] computes an
     * r x nr tile (0 < r < mr), reading only those r rows of A.  Each
     * output is reduced exactly as `kernel` reduces it.  A block of rows
     * ends in mr_short-row tiles (0: none) when its rows split into whole
     * and such tiles exactly (fast, nearly full tiles), and its last rows
     * that nothing else covers run in a tile of their height (a batch of
     * a few points: one row costs one row, not mr).  NULL (or a NULL
     * entry): those rows are zero-padded to a whole tile instead. */
    const nvp_ukernel_fn *exact_rows;
    size_t mr_short;
    /* Optional faster packing of whole NR-column panels of a B that is not
     * transposed (op(B)(p, j) = b[p * ldb + j]), as the generic packer
     * lays them out; NULL (the default of an initializer that stops
     * before it) selects the generic one. */
    void (*pack_b_rows)(size_t kc, size_t cols, const float *b, size_t ldb,
                        float *dst);
} nvp_gemm_kernel;

/* The narrow micro-kernel kern runs a product of n columns through (its
 * narrowest that fits), with its tile in *mr x *nr; NULL when none fits
 * and the product takes the NR-wide tile. */
static inline nvp_ukernel_fn nvp__gemm_narrow_for(const nvp_gemm_kernel *kern,
                                                  size_t n, size_t *mr,
                                                  size_t *nr)
{
    if (kern->narrow8 && n <= kern->nr_narrow8) {
        *mr = kern->mr_narrow8;
        *nr = kern->nr_narrow8;
        return kern->narrow8;
    }
    if (kern->narrow && n <= kern->nr_narrow) {
        *mr = kern->mr_narrow;
        *nr = kern->nr_narrow;
        return kern->narrow;
    }
    return NULL;
}

/* All kernels built into the library, best first; the portable one, which
 * every CPU runs, is last.  *count receives the number. */
const nvp_gemm_kernel *const *nvp__gemm_kernels(size_t *count);
/* The best kernel this CPU supports. */
const nvp_gemm_kernel *nvp__gemm_best(void);
/* The kernel of instruction-set level isa. */
const nvp_gemm_kernel *nvp__gemm_for_isa(nvp_isa isa);
/* A kernel by name if built and supported here, else NULL. */
const nvp_gemm_kernel *nvp__gemm_by_name(const char *name);

/* Floats of packing space nvp__gemm needs for kernel k (the largest over
 * all kernels is NVP_GEMM_PACK_FLOATS). */
size_t nvp__gemm_pack_floats(const nvp_gemm_kernel *k);

/* Source rows a packer of a B that is not transposed copies per pass
 * across its micro-panels: each row is read whole, each micro-panel
 * written a few hundred contiguous bytes at a time. */
#define NVP_PACK_B_ROWS 8

/* Packs the whole nr-column micro-panels of the kc x cols block at b (a B
 * that is not transposed, rows ldb floats apart; cols a multiple of nr)
 * into dst, each panel stored row by row.  Inlined into a kernel's file
 * with nr a constant, every panel row is a few vector moves of that
 * file's instruction set. */
static inline __attribute__((always_inline)) void
nvp__pack_b_rows_body(size_t kc, size_t cols, const float *b, size_t ldb,
                      size_t nr, float *dst)
{
    for (size_t p0 = 0; p0 < kc; p0 += NVP_PACK_B_ROWS) {
        const size_t p1 =
            p0 + NVP_PACK_B_ROWS < kc ? p0 + NVP_PACK_B_ROWS : kc;
        for (size_t jr = 0; jr < cols; jr += nr)
            for (size_t p = p0; p < p1; p++)
                memcpy(dst + jr * kc + p * nr, b + p * ldb + jr,
                       nr * sizeof(float));
    }
}

/* The pieces every driver shares (gemm.c, gemm_bf16.c). */
/* ep without its measures, in *core, and the measures in *c_absmax and
 * *b_absmax: NULL when ep is NULL or leaves nothing else to do, so that
 * the kernels keep their paths without an epilogue. */
static inline const nvp_epilogue *nvp__epilogue_core(const nvp_epilogue *ep,
                                                     nvp_epilogue *core,
                                                     nvp_absmax **c_absmax,
                                                     nvp_absmax **b_absmax)
{
    *c_absmax = ep ? ep->c_absmax : NULL;
    *b_absmax = ep ? ep->b_absmax : NULL;
    if (!*c_absmax && !*b_absmax)
        return ep;
    *core = *ep;
    core->c_absmax = core->b_absmax = NULL;
    return core->bias || core->relu || core->gate || core->colsum ? core
                                                                  : NULL;
}
/* Max-combines bits into am->bits, atomically. */
void nvp__absmax_merge(nvp_absmax *am, uint32_t bits);
/* The end of a driver's product: its measures seen_c and seen_b merged
 * into the measures that are not NULL. */
static inline void nvp__absmax_report(nvp_absmax *c_absmax, uint32_t seen_c,
                                      nvp_absmax *b_absmax, uint32_t seen_b)
{
    if (c_absmax)
        nvp__absmax_merge(c_absmax, seen_c);
    if (b_absmax)
        nvp__absmax_merge(b_absmax, seen_b);
}
/* A driver's running measure `seen`, grown by the rows x cols block at x
 * (rows ld floats apart) that it just stored or read (am->isa's pass). */
static inline uint32_t nvp__absmax_grow(const nvp_absmax *am, uint32_t seen,
                                        const float *x, size_t ld,
                                        size_t rows, size_t cols)
{
    const uint32_t b = nvp__max_abs_bits_2d(am->isa, x, ld, rows, cols);
    return b > seen ? b : seen;
}
/* Measures, into the measures that are not NULL, C (m x n) and op(B)
 * (k x n) of a product whose path measured neither as it went. */
void nvp__absmax_after(nvp_absmax *c_absmax, nvp_absmax *b_absmax,
                       int trans_b, size_t m, size_t n, size_t k,
                       const float *b, size_t ldb, const float *c,
                       size_t ldc);

/* The epilogue of the tile at (row0, col0) into *t, or NULL when there is
 * none or the tile's k block is not the last. */
static inline const nvp_epilogue *nvp__tile_epilogue(const nvp_epilogue *ep,
                                                     int last, size_t row0,
                                                     size_t col0,
                                                     nvp_epilogue *t)
{
    if (!last || !ep)
        return NULL;
    *t = nvp__epilogue_offset(ep, row0, col0);
    return t;
}
/* Adds a rows x cols scratch tile (row stride nr) into C and applies the
 * epilogue, the scalar twin of what the kernels do in registers for whole
 * tiles. */
void nvp__gemm_finish_edge(const float *tmp, size_t nr, float *c, size_t ldc,
                           size_t rows, size_t cols, int acc,
                           const nvp_epilogue *ep);
/* A product with k == 0: C becomes zero (or is kept, plus zero) and gets
 * the epilogue, row by row, as the drivers' edge tiles would. */
void nvp__gemm_no_terms(size_t m, size_t n, int accumulate, float *c,
                        size_t ldc, const nvp_epilogue *ep);

/* The driver.  pack must hold nvp__gemm_pack_floats(kern) floats, 64-byte
 * aligned.  m, n, k may be any size >= 1 (k == 0 is allowed and yields the
 * epilogue of zero or of C).  ep may be NULL. */
void nvp__gemm(const nvp_gemm_kernel *kern, float *pack, int trans_a,
               int trans_b, size_t m, size_t n, size_t k, const float *a,
               size_t lda, const float *b, size_t ldb, int accumulate,
               float *c, size_t ldc, const nvp_epilogue *ep);

#endif
