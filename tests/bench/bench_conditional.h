/* SPDX-License-Identifier: MIT */
/* The conditional calls' part of `make bench` (bench_conditional.c). */
#ifndef NVP_BENCH_CONDITIONAL_H
#define NVP_BENCH_CONDITIONAL_H

/* Times the plain calls, the _given calls at C = 0 and at C = 8 on the
 * D=8 model in `turns` alternating turns and prints their table; the
 * share of the peak uses peak_gflops (one thread). */
void bench_conditional(int turns, double peak_gflops);

#endif
