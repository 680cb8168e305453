/* SPDX-License-Identifier: MIT */
/* Helpers the benchmark's sections share: a monotonic clock, the median
 * of a few turns, and a failed call as a fatal error. */
#ifndef NVP_BENCH_UTIL_H
#define NVP_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nvpflow.h"

static inline double bench_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n) (sorts v). */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Exits with a message when rc is not NVP_OK. */
static inline void bench_check(int rc, const char *what)
{
    if (rc != NVP_OK) {
        fprintf(stderr, "bench: %s: %s (%s)\n", what, nvp_strerror(rc),
                nvp_errmsg());
        exit(1);
    }
}

#endif
