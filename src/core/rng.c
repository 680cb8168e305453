/* SPDX-License-Identifier: MIT */
/* xoshiro256** (Blackman and Vigna), seeded through splitmix64, and the
 * Marsaglia polar method for normal draws. */
#include "core/rng.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t nvp__rng_next(nvp_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* log(x) = e ln2 + 2 atanh((m - 1) / (m + 1)) with m in [sqrt(1/2), sqrt(2)):
 * frexp and ldexp are exact, and the series uses + - * / only, so the
 * result is bitwise reproducible under IEEE double arithmetic (the library
 * is compiled without floating-point contraction). */
double nvp__log_portable(double x)
{
    int e;
    double m = frexp(x, &e);
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        e -= 1;
    }
    const double f = (m - 1.0) / (m + 1.0);
    const double f2 = f * f;
    /* |f| <= 0.1716: terms up to f^25 reach double precision. */
    double p = 1.0 / 25.0;
    for (int k = 23; k >= 1; k -= 2)
        p = p * f2 + 1.0 / (double)k;
    const double ln2_hi = 6.93147180369123816490e-01;
    const double ln2_lo = 1.90821492927058770002e-10;
    return (double)e * ln2_hi + ((double)e * ln2_lo + 2.0 * f * p);
}

double nvp__rng_normal(nvp_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u, v, s;
    do {
        u = (double)(nvp__rng_next(r) >> 11) * 0x1.0p-52 - 1.0;
        v = (double)(nvp__rng_next(r) >> 11) * 0x1.0p-52 - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    const double f = sqrt(-2.0 * nvp__log_portable(s) / s);
    r->spare = v * f;
    r->has_spare = 1;
    return u * f;
}

uint64_t nvp__rng_below(nvp_rng *r, uint64_t bound)
{
    /* Reject the lowest (2^64 mod bound) values so that every residue is
     * equally likely. */
    const uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t x = nvp__rng_next(r);
        if (x >= threshold)
            return x % bound;
    }
}

int nvp_rng_create(nvp_rng **out, uint64_t seed, const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    nvp_allocator a;
    NVP_REQUIRE(nvp__allocator_init(&a, alloc) == NVP_OK, NVP_EINVAL,
                "nvp_rng_create: invalid allocator");
    nvp_rng *r = nvp__malloc(&a, sizeof *r);
    if (!r)
        return nvp__fail(NULL, NVP_ENOMEM, "nvp_rng_create: out of memory");
    memset(r, 0, sizeof *r);
    r->alloc = a;
    nvp__errbox_init(&r->err);
    nvp_rng_seed(r, seed);
    *out = r;
    return NVP_OK;
}

void nvp_rng_free(nvp_rng *rng)
{
    if (!rng)
        return;
    nvp_allocator a = rng->alloc;
    nvp__errbox_destroy(&rng->err);
    nvp__free(&a, rng);
}

int nvp_rng_seed(nvp_rng *rng, uint64_t seed)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE_PTR(rng);
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
    rng->has_spare = 0;
    rng->spare = 0.0;
    return NVP_OK;
}

int nvp_rng_uniform(nvp_rng *rng, size_t n, float *out)
{
    const nvp_errbox *eb = rng ? &rng->err : NULL;
    NVP_REQUIRE_PTR(rng);
    NVP_REQUIRE_PTR(out);
    NVP_REQUIRE(n > 0, NVP_EINVAL, "nvp_rng_uniform: n is 0");
    NVP_REQUIRE(n <= SIZE_MAX / sizeof(float), NVP_EOVERFLOW,
                "nvp_rng_uniform: n %zu is too large", n);
    for (size_t i = 0; i < n; i++)
        out[i] = (float)(nvp__rng_next(rng) >> 40) * 0x1.0p-24f;
    return NVP_OK;
}

int nvp_rng_normal(nvp_rng *rng, size_t n, float *out)
{
    const nvp_errbox *eb = rng ? &rng->err : NULL;
    NVP_REQUIRE_PTR(rng);
    NVP_REQUIRE_PTR(out);
    NVP_REQUIRE(n > 0, NVP_EINVAL, "nvp_rng_normal: n is 0");
    NVP_REQUIRE(n <= SIZE_MAX / sizeof(float), NVP_EOVERFLOW,
                "nvp_rng_normal: n %zu is too large", n);
    for (size_t i = 0; i < n; i++)
        out[i] = (float)nvp__rng_normal(rng);
    return NVP_OK;
}

int nvp_rng_index(nvp_rng *rng, size_t n, uint64_t bound, uint64_t *out)
{
    const nvp_errbox *eb = rng ? &rng->err : NULL;
    NVP_REQUIRE_PTR(rng);
    NVP_REQUIRE_PTR(out);
    NVP_REQUIRE(n > 0, NVP_EINVAL, "nvp_rng_index: n is 0");
    NVP_REQUIRE(n <= SIZE_MAX / sizeof(uint64_t), NVP_EOVERFLOW,
                "nvp_rng_index: n %zu is too large", n);
    NVP_REQUIRE(bound > 0, NVP_EINVAL, "nvp_rng_index: bound is 0");
    for (size_t i = 0; i < n; i++)
        out[i] = nvp__rng_below(rng, bound);
    return NVP_OK;
}

const char *nvp_rng_errmsg(const nvp_rng *rng)
{
    return nvp__errbox_read(rng ? &rng->err : NULL);
}
