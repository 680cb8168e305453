/* SPDX-License-Identifier: MIT */
/* The optimizer's parameter average (nvp_adam_set_average): it follows
 * every applied step exactly as the formula in the header says, leaves the
 * update itself alone, ignores refused steps, does not depend on the
 * thread count, and validates its arguments without changing anything on
 * failure.  Saving and loading it is tested in test_io.c. */
#include <stdlib.h>
#include <string.h>

#include "train/adam.h"
#include "tests.h"

/* avg = d * avg + (1 - d) * p in float, as the header documents (the tests
 * are built without contraction, like the library). */
static void hand_average(float *avg, const float *p, size_t n, float d)
{
    const float c = 1.0f - d;
    for (size_t i = 0; i < n; i++)
        avg[i] = d * avg[i] + c * p[i];
}

/* Two optimizers on the same parameters and gradients, one averaging: the
 * parameters stay bitwise equal, and the average equals the formula after
 * every step, including one the optimizer refuses. */
START_TEST(test_adam_average_follows_steps)
{
    enum { N = 37, STEPS = 6 };
    const float decay = 0.75f;
    t_prng pr;
    t_prng_seed(&pr, 7100);
    float p[N], q[N], g[N], hand[N], got[N];
    t_fill_normal(&pr, N, p, 1.0);
    memcpy(q, p, sizeof p);
    memcpy(hand, p, sizeof p);
    nvp_adam *o = NULL, *ctl = NULL;
    T_OK(nvp_adam_create(&o, N, NULL));
    T_OK(nvp_adam_create(&ctl, N, NULL));
    T_OK(nvp_adam_set_lr(o, 0.05f));
    T_OK(nvp_adam_set_lr(ctl, 0.05f));
    ck_assert_float_eq(nvp_adam_average_decay(o), 0.0f);
    T_OK(nvp_adam_set_average(o, decay, N, p));
    ck_assert_float_eq(nvp_adam_average_decay(o), decay);
    T_OK(nvp_adam_get_average(o, N, got));
    T_CHECK(t_first_diff(got, p, N) == (size_t)-1, "the average does not start at the parameters");
    for (int s = 0; s < STEPS; s++) {
        t_fill_normal(&pr, N, g, 2.0);
        if (s == 3) {
            /* Refused: nothing moves, the average included. */
            g[5] = NAN;
            ck_assert_int_eq(nvp_adam_step(o, N, p, g), NVP_ENONFINITE);
            T_OK(nvp_adam_get_average(o, N, got));
            T_CHECK(t_first_diff(got, hand, N) == (size_t)-1,
                    "a refused step changed the average at %zu", t_first_diff(got, hand, N));
            continue;
        }
        T_OK(nvp_adam_step(o, N, p, g));
        T_OK(nvp_adam_step(ctl, N, q, g));
        T_CHECK(t_first_diff(p, q, N) == (size_t)-1,
                "step %d: averaging changed the update at parameter %zu", s, t_first_diff(p, q, N));
        hand_average(hand, p, N, decay);
        T_OK(nvp_adam_get_average(o, N, got));
        const size_t d = t_first_diff(got, hand, N);
        T_CHECK(d == (size_t)-1, "step %d: average[%zu] %.9g, formula %.9g", s, d,
                (double)got[d == (size_t)-1 ? 0 : d], (double)hand[d == (size_t)-1 ? 0 : d]);
    }
    /* The average differs from the last iterate (so the checks above could
     * tell them apart). */
    T_CHECK(t_first_diff(got, p, N) != (size_t)-1, "the average equals the last iterate");

    /* Restarting from other values; reset keeps the average. */
    T_OK(nvp_adam_set_average(o, 0.5f, N, q));
    T_OK(nvp_adam_reset(o));
    T_OK(nvp_adam_get_average(o, N, got));
    T_CHECK(t_first_diff(got, q, N) == (size_t)-1 && nvp_adam_average_decay(o) == 0.5f,
            "restart or reset lost the average");

    /* Off: the getter says so, and steps go on without it. */
    T_OK(nvp_adam_set_average(o, 0.0f, 0, NULL));
    ck_assert_float_eq(nvp_adam_average_decay(o), 0.0f);
    ck_assert_int_eq(nvp_adam_get_average(o, N, got), NVP_EINVAL);
    T_CHECK(strstr(nvp_adam_errmsg(o), "off") != NULL, "message '%s'", nvp_adam_errmsg(o));
    T_OK(nvp_adam_step(o, N, p, g));
    nvp_adam_free(o);
    nvp_adam_free(ctl);
}
END_TEST

/* Bad arguments are refused with the documented code and change nothing:
 * the decay and the average are those of the last successful call. */
START_TEST(test_adam_average_validates)
{
    enum { N = 5 };
    const float start[N] = {1, 2, 3, 4, 5};
    float bad_p[N] = {1, 2, NAN, 4, 5}, got[N];
    nvp_adam *o = NULL;
    T_OK(nvp_adam_create(&o, N, NULL));
    ck_assert_int_eq(nvp_adam_set_average(NULL, 0.9f, N, start), NVP_EINVAL);
    ck_assert_float_eq(nvp_adam_average_decay(NULL), 0.0f);
    ck_assert_int_eq(nvp_adam_get_average(NULL, N, got), NVP_EINVAL);
    T_OK(nvp_adam_set_average(o, 0.9f, N, start));
    const float decays[] = {-0.1f, 1.0f, 2.0f, NAN, INFINITY, -1e-30f};
    for (size_t k = 0; k < sizeof decays / sizeof *decays; k++) {
        ck_assert_int_eq(nvp_adam_set_average(o, decays[k], N, start), NVP_EINVAL);
        T_CHECK(strstr(nvp_adam_errmsg(o), "nvp_adam_set_average") != NULL, "message '%s'",
                nvp_adam_errmsg(o));
    }
    ck_assert_int_eq(nvp_adam_set_average(o, 0.5f, N, NULL), NVP_EINVAL);
    ck_assert_int_eq(nvp_adam_set_average(o, 0.5f, N - 1, start), NVP_EDIM);
    ck_assert_int_eq(nvp_adam_set_average(o, 0.5f, N, bad_p), NVP_ENONFINITE);
    bad_p[2] = INFINITY;
    ck_assert_int_eq(nvp_adam_set_average(o, 0.5f, N, bad_p), NVP_ENONFINITE);
    ck_assert_int_eq(nvp_adam_get_average(o, N, NULL), NVP_EINVAL);
    ck_assert_int_eq(nvp_adam_get_average(o, N + 1, got), NVP_EDIM);
    ck_assert_float_eq(nvp_adam_average_decay(o), 0.9f);
    T_OK(nvp_adam_get_average(o, N, got));
    T_CHECK(t_first_diff(got, start, N) == (size_t)-1, "a refused call changed the average");
    nvp_adam_free(o);
}
END_TEST

/* Out of memory when averaging is turned on: NVP_ENOMEM, averaging stays
 * off, nothing leaks; the next call succeeds and allocates once only. */
START_TEST(test_adam_average_out_of_memory)
{
    enum { N = 9 };
    const float start[N] = {0};
    t_alloc_state st;
    const nvp_allocator a = t_counting_allocator(&st);
    nvp_adam *o = NULL;
    T_OK(nvp_adam_create(&o, N, &a));
    st.fail_at = st.calls;
    ck_assert_int_eq(nvp_adam_set_average(o, 0.9f, N, start), NVP_ENOMEM);
    ck_assert_uint_eq(st.failed, 1);
    ck_assert_float_eq(nvp_adam_average_decay(o), 0.0f);
    float got[N];
    ck_assert_int_eq(nvp_adam_get_average(o, N, got), NVP_EINVAL);
    st.fail_at = T_NEVER;
    T_OK(nvp_adam_set_average(o, 0.9f, N, start));
    const size_t calls = st.calls;
    T_OK(nvp_adam_set_average(o, 0.8f, N, start)); /* a restart reuses it */
    float p[N] = {0}, g[N] = {1, -1, 2, -2, 3, -3, 4, -4, 5};
    T_OK(nvp_adam_step(o, N, p, g));
    ck_assert_uint_eq(st.calls, calls);
    nvp_adam_free(o);
    ck_assert_uint_eq(st.live, 0);
}
END_TEST

/* Through nvp_chain_train_step, on a chain large enough for the update to
 * be shared out over a pool: one and two threads give the same average,
 * bit for bit, and it equals the formula applied to the parameters. */
START_TEST(test_adam_average_threads)
{
    enum { N_DATA = 200, STEPS = 4 };
    float data[2 * N_DATA];
    nvp_rng *dr = t_rng(7200);
    T_OK(nvp_two_moons(dr, N_DATA, 0.05f, data, NULL));
    nvp_rng_free(dr);
    float *avg[2] = {NULL, NULL}, *hand = NULL;
    size_t np = 0;
    for (int run = 0; run < 2; run++) {
        nvp_chain *c;
        nvp_adam *o;
        t_pool_training((size_t)run + 1, 7201, &c, &o, &np);
        T_OK(nvp_adam_set_average(o, 0.9f, np, nvp_chain_params(c)));
        free(hand);
        hand = t_xmalloc(np * sizeof *hand);
        memcpy(hand, nvp_chain_params(c), np * sizeof *hand);
        nvp_rng *r = t_rng(7202);
        for (int s = 0; s < STEPS; s++) {
            T_OK(nvp_chain_train_step(c, o, r, N_DATA, data, 50, NULL));
            hand_average(hand, nvp_chain_params(c), np, 0.9f);
        }
        avg[run] = t_xmalloc(np * sizeof *avg[run]);
        T_OK(nvp_adam_get_average(o, np, avg[run]));
        const size_t d = t_first_diff(avg[run], hand, np);
        T_CHECK(d == (size_t)-1, "%d thread(s): average[%zu] %.9g, formula %.9g", run + 1, d,
                (double)avg[run][d == (size_t)-1 ? 0 : d], (double)hand[d == (size_t)-1 ? 0 : d]);
        nvp_rng_free(r);
        nvp_adam_free(o);
        nvp_chain_free(c);
    }
    const size_t d = t_first_diff(avg[0], avg[1], np);
    T_CHECK(d == (size_t)-1, "the average differs between 1 and 2 threads at %zu", d);
    free(avg[0]);
    free(avg[1]);
    free(hand);
}
END_TEST

/* The AVX-512 loop and the portable one give the same bits: parameters,
 * and the average when on (_i >= 1), with gradient-norm clipping too
 * (_i = 2; the limit is low enough to clip every step).  1013 parameters cover full vectors
 * and a tail.  (Where the CPU lacks AVX-512 both runs are portable.) */
START_TEST(test_adam_kernels_agree)
{
    enum { N = 1013, STEPS = 5 };
    t_prng pr;
    t_prng_seed(&pr, 7300 + (uint64_t)_i);
    float *p[2], *avg[2], *g = t_xmalloc(N * sizeof *g);
    float *start = t_xmalloc(N * sizeof *start);
    t_fill_normal(&pr, N, start, 1.0);
    nvp_adam *o[2];
    for (int k = 0; k < 2; k++) {
        p[k] = t_xmalloc(N * sizeof *p[k]);
        avg[k] = t_xmalloc(N * sizeof *avg[k]);
        memcpy(p[k], start, N * sizeof *start);
        T_OK(nvp_adam_create(&o[k], N, NULL));
        T_OK(nvp_adam_set_lr(o[k], 0.01f));
        /* [0]: the best kernels this CPU runs, [1]: the portable ones */
        if (k == 1)
            T_OK(nvp_adam_set_kernels(o[k], NVP_KERNELS_PORTABLE));
        if (_i)
            T_OK(nvp_adam_set_average(o[k], 0.9f, N, start));
        if (_i == 2)
            T_OK(nvp_adam_set_clip_norm(o[k], 1e-7f));
    }
    for (int s = 0; s < STEPS; s++) {
        t_fill_normal(&pr, N, g, s == 0 ? 1e-6 : 3.0); /* tiny, then large */
        for (int k = 0; k < 2; k++)
            T_OK(nvp_adam_step(o[k], N, p[k], g));
        const size_t d = t_first_diff(p[0], p[1], N);
        T_CHECK(d == (size_t)-1, "step %d: parameter %zu: %.9g (dispatched) vs %.9g (portable)", s,
                d, (double)p[0][d == (size_t)-1 ? 0 : d], (double)p[1][d == (size_t)-1 ? 0 : d]);
    }
    if (_i) {
        T_OK(nvp_adam_get_average(o[0], N, avg[0]));
        T_OK(nvp_adam_get_average(o[1], N, avg[1]));
        T_CHECK(t_first_diff(avg[0], avg[1], N) == (size_t)-1,
                "the average differs between the kernels at %zu", t_first_diff(avg[0], avg[1], N));
    }
    for (int k = 0; k < 2; k++) {
        free(p[k]);
        free(avg[k]);
        nvp_adam_free(o[k]);
    }
    free(g);
    free(start);
}
END_TEST

void adam_average_tests(Suite *s)
{
    TCase *tc = tcase_create("average");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, test_adam_average_follows_steps);
    tcase_add_test(tc, test_adam_average_validates);
    tcase_add_test(tc, test_adam_average_out_of_memory);
    tcase_add_test(tc, test_adam_average_threads);
    tcase_add_loop_test(tc, test_adam_kernels_agree, 0, 3);
    suite_add_tcase(s, tc);
}
