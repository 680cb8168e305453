/* SPDX-License-Identifier: MIT */
/* The generator's state, shared with the modules that save and restore it. */
#ifndef NVP_RNG_H
#define NVP_RNG_H

#include <stdint.h>

#include "core/error.h"

struct nvp_rng {
    nvp_errbox err;
    nvp_allocator alloc;
    uint64_t s[4];      /* xoshiro256** state */
    int has_spare;      /* the polar method makes normals in pairs */
    double spare;
};

uint64_t nvp__rng_next(nvp_rng *r);
/* One standard normal in double precision. */
double nvp__rng_normal(nvp_rng *r);
/* Uniform integer in [0, bound), bound > 0, without modulo bias. */
uint64_t nvp__rng_below(nvp_rng *r, uint64_t bound);

/* Natural logarithm of x > 0 (finite) from IEEE-exact operations only, so
 * that random draws are the same whatever the C library. */
double nvp__log_portable(double x);

#endif
