/* SPDX-License-Identifier: MIT */
/* The bfloat16 part of `make bench` (bench_precision.c). */
#ifndef NVP_BENCH_PRECISION_H
#define NVP_BENCH_PRECISION_H

/* Times the general-D models in NVP_PRECISION_FP32 and _BF16 in `turns`
 * alternating turns on one thread and prints their table; the shares of
 * the peak use peak_gflops (one thread, float FMA). */
void bench_precision(int turns, double peak_gflops);

#endif
