/* SPDX-License-Identifier: MIT */
/* Helpers shared by the suites (see tests.h). */
#include <stdlib.h>
#include <string.h>

#include "tests.h"

void t_prng_seed(t_prng *p, uint64_t seed) { p->s = seed; }

uint64_t t_prng_u64(t_prng *p)
{
    uint64_t z = (p->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double t_prng_unif(t_prng *p) { return (double)(t_prng_u64(p) >> 11) * 0x1.0p-53; }

double t_prng_range(t_prng *p, double lo, double hi)
{
    return lo + (hi - lo) * t_prng_unif(p);
}

double t_prng_normal(t_prng *p)
{
    double u1;
    do
        u1 = t_prng_unif(p);
    while (u1 <= 0.0);
    const double u2 = t_prng_unif(p);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

void t_fill_normal(t_prng *p, size_t n, float *x, double scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * t_prng_normal(p));
}

void t_fill_unif(t_prng *p, size_t n, float *x, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)t_prng_range(p, lo, hi);
}

nvp_rng *t_rng(uint64_t seed)
{
    nvp_rng *r = NULL;
    T_OK(nvp_rng_create(&r, seed, NULL));
    ck_assert_ptr_nonnull(r);
    return r;
}

nvp_chain *t_chain(size_t dim, size_t n_layers, size_t n_hidden,
                   const size_t *hidden, uint64_t seed)
{
    nvp_rng *r = t_rng(seed);
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create_alternating(&c, dim, n_layers, n_hidden, hidden, 0,
                                      r, NULL));
    nvp_rng_free(r);
    return c;
}

void t_pool_training(size_t threads, uint64_t seed, nvp_chain **c,
                     nvp_adam **o, size_t *np)
{
    const size_t hidden[2] = {128, 128};
    *c = t_chain(2, 4, 2, hidden, seed);
    T_OK(nvp_chain_set_threads(*c, threads));
    *np = nvp_chain_num_params(*c);
    ck_assert_uint_ge(*np, (size_t)1 << 16);
    *o = NULL;
    T_OK(nvp_adam_create(o, *np, NULL));
    T_OK(nvp_adam_set_lr(*o, 1e-3f));
}

size_t t_first_diff(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
            return i;
    return (size_t)-1;
}

void *t_xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* ------------------------------------------------ counting allocator */
static void *count_alloc(void *user, size_t size)
{
    t_alloc_state *st = user;
    if (st->calls++ == st->fail_at) {
        st->failed++;
        return NULL;
    }
    void *p = malloc(size);
    if (p)
        st->live++;
    return p;
}

static void *count_realloc(void *user, void *ptr, size_t size)
{
    t_alloc_state *st = user;
    if (st->calls++ == st->fail_at) {
        st->failed++;
        return NULL;
    }
    void *p = realloc(ptr, size);
    if (p && !ptr)
        st->live++;
    return p;
}

static void count_free(void *user, void *ptr)
{
    t_alloc_state *st = user;
    if (ptr) {
        ck_assert_uint_gt(st->live, 0);
        st->live--;
    }
    free(ptr);
}

nvp_allocator t_counting_allocator(t_alloc_state *st)
{
    st->live = 0;
    st->calls = 0;
    st->fail_at = T_NEVER;
    st->failed = 0;
    nvp_allocator a = {NVP_ALLOCATOR_VERSION, st, count_alloc, count_realloc,
                       count_free};
    return a;
}
