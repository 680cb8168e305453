/* The library's cache-blocked single-precision matrix multiply.
 *
 *   C (m x n) = [C +] op(A) (m x k) * op(B) (k x n), then an epilogue
 *
 * op(A) is A (row-major, leading dimension lda) or its transpose, read in
 * place; likewise B.  This covers the three products of a dense layer
 * without materialising a transpose: X*W (forward), dY*W^T (input
 * gradient) and X^T*dY (weight gradient).
 *
 * Loop order as in BLIS: n in NC blocks, k in KC blocks (pack a KC x NC
 * panel of B), m in MC blocks (pack an MC x KC block of A), then NR- and
 * MR-wide micro-panels through a register-tiled micro-kernel.  Each output
 * element is reduced in the same order whatever its position, so results
 * do not depend on how the columns are split between threads.
 */
#ifndef NVP_GEMM_H
#define NVP_GEMM_H

#include <stddef.h>

/* Micro-kernel: c (MR x NR, row stride ldc) = (accumulate ? c : 0) +
 * a * b, where a is a packed MR x kc micro-panel (column by column) and b a
 * packed kc x NR micro-panel (row by row).  The product is summed in
 * registers from zero and added to c once at the end: edge tiles, computed
 * into a scratch tile, then round exactly like interior ones. */
typedef void (*nvp_ukernel_fn)(size_t kc, const float *a, const float *b,
                               float *c, size_t ldc, int accumulate);

typedef struct nvp_gemm_kernel {
    const char *name; /* "portable", "avx2", "avx512" */
    size_t mr, nr;    /* register tile */
    size_t mc, kc, nc; /* cache blocks; mc % mr == 0, nc % nr == 0 */
    nvp_ukernel_fn kernel;
    int (*supported)(void); /* run-time CPU check */
} nvp_gemm_kernel;

/* Applied to each output tile once its last k block is done, while the
 * tile is still in cache. */
typedef struct nvp_epilogue {
    const float *bias;  /* add bias[j] to column j (NULL: none) */
    int relu;           /* then max(v, 0) */
    const float *gate;  /* then zero v where gate[i*ldgate + j] <= 0 */
    size_t ldgate;      /*   (ReLU backward through a cached activation) */
} nvp_epilogue;

/* All kernels built into the library, best first; the portable one, which
 * every CPU runs, is last.  *count receives the number. */
const nvp_gemm_kernel *const *nvp__gemm_kernels(size_t *count);
/* The best kernel this CPU supports. */
const nvp_gemm_kernel *nvp__gemm_best(void);
/* A kernel by name if built and supported here, else NULL. */
const nvp_gemm_kernel *nvp__gemm_by_name(const char *name);

/* Floats of packing space nvp__gemm needs for kernel k (the largest over
 * all kernels is NVP_GEMM_PACK_FLOATS). */
size_t nvp__gemm_pack_floats(const nvp_gemm_kernel *k);

/* The driver.  pack must hold nvp__gemm_pack_floats(kern) floats, 64-byte
 * aligned.  m, n, k may be any size >= 1 (k == 0 is allowed and yields the
 * epilogue of zero or of C).  ep may be NULL. */
void nvp__gemm(const nvp_gemm_kernel *kern, float *pack, int trans_a,
               int trans_b, size_t m, size_t n, size_t k, const float *a,
               size_t lda, const float *b, size_t ldb, int accumulate,
               float *c, size_t ldc, const nvp_epilogue *ep);

#endif
