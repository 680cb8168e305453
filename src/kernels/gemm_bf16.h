/* SPDX-License-Identifier: MIT */
/* The reduced-precision matrix multiply: the product of gemm.h with both
 * operands rounded to bfloat16 and the sums kept in float.
 *
 *   C (m x n) = [C +] bf16(op(A)) * bf16(op(B)), then the epilogue
 *
 * Same operands, transposes, accumulation and epilogue as nvp__gemm; only
 * the inputs of each multiply are rounded (to nearest, ties to even, as
 * the VCVTNE2PS2BF16 instruction rounds; subnormal inputs become zero).
 * The products of two bfloat16 numbers are exact in float and the sums run
 * in float, so the error of an output is about 2^-8 relative to the sum of
 * the magnitudes of its terms, against 2^-24 for nvp__gemm.  The
 * instruction flushes subnormal inputs, products and sums to zero.
 *
 * It runs on CPUs with AVX512-BF16 only (VDPBF16PS: two multiply-adds per
 * float lane, twice the float kernel's work per instruction); the caller
 * checks nvp__gemm_bf16_supported and keeps the float path otherwise.
 * Both operands are packed (converted) into the packing buffer: pairs of
 * consecutive k entries side by side in 32 bits, as the instruction reads
 * them.  Each output is reduced in the same order wherever it lies in C,
 * so results do not depend on how the columns are split between threads. */
#ifndef NVP_GEMM_BF16_H
#define NVP_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/gemm.h"

/* Columns of the micro-kernel's register tile: a split of C's columns
 * between threads in multiples of it keeps every tile whole. */
#define NVP_BF16_NR 32
/* Rows of that tile: a split of C's rows in multiples of it likewise. */
#define NVP_BF16_MR 8

/* Nonzero when the CPU and OS run AVX512-BF16 code (and the library was
 * built with it). */
int nvp__gemm_bf16_supported(void);

/* Floats of packing space nvp__gemm_bf16 needs (64-byte aligned). */
size_t nvp__gemm_bf16_pack_floats(void);

/* The product; the arguments are nvp__gemm's.  Only where
 * nvp__gemm_bf16_supported. */
void nvp__gemm_bf16(float *pack, int trans_a, int trans_b, size_t m,
                    size_t n, size_t k, const float *a, size_t lda,
                    const float *b, size_t ldb, int accumulate, float *c,
                    size_t ldc, const nvp_epilogue *ep);

/* x rounded to bfloat16 as the packing rounds it, returned as a float (for
 * references in tests). */
float nvp__bf16_round(float x);

#endif
