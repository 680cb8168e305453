/* SPDX-License-Identifier: MIT */
/* The thread pool under stress: every task of every job runs exactly
 * once, and a job is over only when all its tasks are (pool_stress.h). */
#include <check.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/vec.h"
#include "pool_stress.h"
#include "tests.h"
#include "model/chain.h"
#include "runtime/vec_parallel.h"

START_TEST(test_pool_every_task_once)
{
    /* 2 and 3 participants; 3 oversubscribes a two-CPU machine, where a
     * worker is often descheduled in the middle of a job. */
    const size_t threads = (size_t)_i;
    char msg[256];
    const int bad = pool_stress(threads, 100000, 4100 + (uint64_t)_i, msg,
                                sizeof msg);
    ck_assert_msg(!bad, "%s", msg);
}
END_TEST

/* Pools larger than the machine: jobs of up to 31 tasks are pinned (a
 * bit per task in the claim word) and claimed by participants without a
 * task of their own, here by workers past the 31st and the 64th too,
 * while jobs of more tasks are claimed in order. */
START_TEST(test_pool_every_task_once_many_threads)
{
    static const size_t threads[2] = {8, 70};
    static const long jobs[2] = {4000, 300};
    char msg[256];
    const int bad = pool_stress(threads[_i], jobs[_i], 4200 + (uint64_t)_i,
                                msg, sizeof msg);
    ck_assert_msg(!bad, "%s", msg);
}
END_TEST

/* The largest magnitude over a million floats, on pools of 2 and 3: the
 * extreme entry sits in a late run, once a large finite value and once a
 * NaN, so a reduction that missed any worker's share would miss it. */
START_TEST(test_pool_max_abs_bits)
{
    const size_t threads = (size_t)_i, n = (size_t)1 << 20;
    float *x = t_xmalloc(n * sizeof *x);
    t_prng p;
    t_prng_seed(&p, 4300);
    t_fill_unif(&p, n, x, -1.0, 1.0);
    nvp_allocator a;
    nvp__allocator_init(&a, NULL);
    nvp_pool *pool = NULL;
    ck_assert_int_eq(nvp__pool_create(&pool, threads, 16, &a), NVP_OK);
    ck_assert(nvp__pool_try_acquire(pool));
    const float extremes[2] = {-3e20f, NAN};
    const size_t at[2] = {n - 17, n - (n >> 3) + 5};
    for (int k = 0; k < 2; k++) {
        const float keep = x[at[k]];
        x[at[k]] = extremes[k];
        const uint32_t par = nvp__par_max_abs_bits(pool, nvp__cpu_isa(), x, n),
                       ser = nvp__max_abs_bits(nvp__cpu_isa(), x, n);
        float back;
        memcpy(&back, &par, sizeof back);
        T_CHECK(par == ser, "pool of %zu: largest magnitude %.9g (bits %08x), one thread %08x", threads, (double)back,
                (unsigned)par, (unsigned)ser);
        T_CHECK(k == 0 ? back == 3e20f : isnan(back), "pool of %zu: found %.9g where %.9g was planted", threads,
                (double)back, (double)extremes[k]);
        x[at[k]] = keep;
    }
    /* Zeroing on the pool clears everything, the last run included. */
    nvp__par_zero(pool, x, n);
    T_CHECK(nvp__max_abs_bits(NVP_ISA_PORTABLE, x, n) == 0, "pool of %zu: par_zero left a nonzero entry", threads);
    nvp__pool_release(pool);
    nvp__pool_free(pool);
    free(x);
}
END_TEST

/* Issue 16, item 12: nvp_chain_set_threads while another call holds the
 * chain's pool is refused with NVP_EBUSY and changes nothing; once the
 * pool is free again it goes through. */
START_TEST(test_pool_set_threads_busy)
{
    const size_t hidden[1] = {16};
    nvp_chain *c = t_chain(2, 2, 1, hidden, 9600);
    T_OK(nvp_chain_set_threads(c, 2));
    nvp_pool *held = nvp__context_pool_take(&c->ctx);
    ck_assert_ptr_nonnull(held);
    ck_assert_int_eq(nvp_chain_set_threads(c, 3), NVP_EBUSY);
    T_CHECK(strstr(nvp_chain_errmsg(c), "another thread") != NULL, "'%s'", nvp_chain_errmsg(c));
    ck_assert_uint_eq(nvp_chain_threads(c), 2);
    ck_assert_ptr_eq(c->ctx.pool, held);
    nvp__context_pool_give(held);
    T_OK(nvp_chain_set_threads(c, 3));
    ck_assert_uint_eq(nvp_chain_threads(c), 3);
    nvp_chain_free(c);
}
END_TEST

/* The same race for real: one thread scores batches while another keeps
 * changing the thread count; every call either works or is refused with
 * NVP_EBUSY, and the sanitizers see no use after free. */
typedef struct busy_run {
    nvp_chain *c;
    const float *y;
    int stop;
    int failures;
} busy_run;

static void *score_loop(void *arg)
{
    busy_run *b = arg;
    float *lp = malloc(2000 * sizeof *lp);
    while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE))
        if (nvp_chain_log_prob(b->c, 2000, b->y, lp) != NVP_OK)
            b->failures++;
    free(lp);
    return NULL;
}

START_TEST(test_pool_set_threads_race)
{
    const size_t hidden[2] = {64, 64};
    nvp_chain *c = t_chain(2, 4, 2, hidden, 9601);
    T_OK(nvp_chain_set_threads(c, 2));
    float *y = t_xmalloc(2 * 2000 * sizeof *y);
    t_prng p;
    t_prng_seed(&p, 9602);
    t_fill_normal(&p, 4000, y, 1.0);
    busy_run b = {c, y, 0, 0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, score_loop, &b), 0);
    int busy = 0, ok = 0;
    for (int i = 0; i < 200; i++) {
        const int rc = nvp_chain_set_threads(c, 2 + (size_t)(i & 1));
        T_CHECK(rc == NVP_OK || rc == NVP_EBUSY, "set_threads returned %d", rc);
        busy += rc == NVP_EBUSY;
        ok += rc == NVP_OK;
    }
    __atomic_store_n(&b.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    ck_assert_int_eq(b.failures, 0);
    T_CHECK(busy + ok == 200, "%d busy, %d ok", busy, ok);
    free(y);
    nvp_chain_free(c);
}
END_TEST

/* The largest magnitude on every instruction set the CPU runs, at
 * lengths around the pass's blocks of 64 (kernels/stream_ahead.h) and one
 * long enough to fetch ahead (and each length also as a run of that long
 * vector, as the pool's threads take it), with the extreme planted at the
 * start, in the middle, in the last whole block and in the tail. */
START_TEST(test_max_abs_bits_every_isa)
{
    static const size_t lengths[] = {0, 1, 63, 64, 65, 130, 1000, ((size_t)1 << 22) + 37};
    const size_t longest = lengths[sizeof lengths / sizeof lengths[0] - 1];
    float *x = t_xmalloc(longest * sizeof *x);
    t_prng p;
    t_prng_seed(&p, 4310);
    t_fill_unif(&p, longest, x, -1.0, 1.0);
    const nvp_isa best = nvp__cpu_isa();
    for (int isa = NVP_ISA_PORTABLE; isa <= (int)best; isa++)
        for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
            const size_t n = lengths[l];
            uint32_t base = 0; /* the scalar reference */
            for (size_t i = 0; i < n; i++) {
                uint32_t u;
                memcpy(&u, x + i, sizeof u);
                u &= 0x7fffffffu;
                base = u > base ? u : base;
            }
            uint32_t got = nvp__max_abs_bits((nvp_isa)isa, x, n);
            T_CHECK(got == base, "isa %d, %zu floats: %08x, expected %08x", isa, n, (unsigned)got, (unsigned)base);
            /* as a run of a long vector, fetching ahead (vec_parallel.c) */
            got = nvp__max_abs_bits_part((nvp_isa)isa, x, n, longest);
            T_CHECK(got == base, "isa %d, %zu floats of %zu: %08x, expected %08x", isa, n, longest, (unsigned)got,
                    (unsigned)base);
            const size_t at[4] = {0, n / 2, n / 64 * 64 - 1, n - 1};
            for (int k = 0; k < 4 && n > 0; k++) {
                if (at[k] >= n)
                    continue;
                const float keep = x[at[k]];
                x[at[k]] = k % 2 ? NAN : -7.5f;
                const uint32_t want = k % 2 ? 0x7fc00000u : 0x40f00000u;
                got = nvp__max_abs_bits((nvp_isa)isa, x, n);
                T_CHECK(got >= want && (k % 2 || got == want), "isa %d, %zu floats, extreme at %zu: %08x", isa, n,
                        at[k], (unsigned)got);
                x[at[k]] = keep;
            }
        }
    free(x);
}
END_TEST

Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("jobs");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_loop_test(tc, test_pool_every_task_once, 2, 4);
    tcase_add_loop_test(tc, test_pool_every_task_once_many_threads, 0, 2);
    tcase_add_loop_test(tc, test_pool_max_abs_bits, 2, 4);
    tcase_add_test(tc, test_max_abs_bits_every_isa);
    tcase_add_test(tc, test_pool_set_threads_busy);
    tcase_add_test(tc, test_pool_set_threads_race);
    suite_add_tcase(s, tc);
    return s;
}
