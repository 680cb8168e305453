/* SPDX-License-Identifier: MIT */
/* Passes over long float vectors (the flat gradient) shared out over a
 * pool in runs of 64 KiB.  Zeroing has no reduction, the largest
 * magnitude is an integer maximum, and a sum is kept per fixed run and
 * the runs added in order, so the results never depend on the thread
 * count. */
#ifndef NVP_VEC_PARALLEL_H
#define NVP_VEC_PARALLEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"
#include "runtime/threadpool.h"

/* Floats per task when a long vector pass is shared out: the threads
 * claim 64 KiB runs in turn rather than one half each.  On the
 * memory-bound passes of a training step (Adam's update above all) this
 * measured faster on two threads: the reference step took 1.6 ms this
 * way and 1.9 ms with halves, on a two-core Zen 4. */
#define NVP_PAR_RUN_FLOATS ((size_t)1 << 14)

/* x[0..n) = 0.  pool: held by the caller, or NULL for this thread alone. */
void nvp__par_zero(nvp_pool *pool, float *x, size_t n);

/* The largest |x[i]| as bits (nvp__max_abs_bits in kernels/vec.h). */
uint32_t nvp__par_max_abs_bits(nvp_pool *pool, nvp_isa isa, const float *x,
                               size_t n);

/* The number of fixed runs of NVP_PAR_RUN_FLOATS that cover n floats. */
size_t nvp__par_runs(size_t n);

/* A sum over x[0..n) that does not depend on the thread count: run_sum
 * sums each fixed run (on any thread), its result goes in runs[r]
 * (nvp__par_runs(n) slots, from the caller), and the slots are added in
 * order.  Used for the gradient's squared norm. */
double nvp__par_sum_runs(nvp_pool *pool, nvp_isa isa, const float *x,
                         size_t n,
                         double (*run_sum)(nvp_isa isa, const float *x,
                                           size_t n),
                         double *runs);

#endif
