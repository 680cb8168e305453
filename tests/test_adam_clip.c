/* SPDX-License-Identifier: MIT */
/* Gradient-norm clipping (nvp_adam_set_clip_norm): a step with a gradient
 * over the limit equals an unclipped step with the gradient scaled by
 * limit / norm, a step within it is untouched, refused steps stay refused,
 * the result does not depend on the thread count, and bad arguments change
 * nothing.  Saving and loading the limit is tested in test_io.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/adam.h"
#include "tests.h"

/* A gradient of multiples of 1/8 between -5 and 5: every square and every
 * partial sum is exact in double, so its norm does not depend on the order
 * of summation and the test can compute the library's scale exactly. */
static double fill_eighths(t_prng *pr, float *g, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        g[i] = (float)((int)(t_prng_u64(pr) % 81) - 40) * 0.125f;
        s += (double)g[i] * (double)g[i];
    }
    return sqrt(s);
}

/* Against a control optimizer without clipping that gets the gradient
 * pre-scaled by (float)(limit / norm), the way the header describes it:
 * the parameters agree bit for bit after every step, over the limit or
 * not, and last_grad_norm reports the unclipped norm. */
START_TEST(test_adam_clip_scales_gradient)
{
    enum { N = 1013, STEPS = 6 };
    t_prng pr;
    t_prng_seed(&pr, 7400);
    float *p = t_xmalloc(N * sizeof *p), *q = t_xmalloc(N * sizeof *q);
    float *g = t_xmalloc(N * sizeof *g), *gs = t_xmalloc(N * sizeof *gs);
    t_fill_normal(&pr, N, p, 1.0);
    memcpy(q, p, N * sizeof *p);
    nvp_adam *o = NULL, *ctl = NULL;
    T_OK(nvp_adam_create(&o, N, NULL));
    T_OK(nvp_adam_create(&ctl, N, NULL));
    ck_assert_float_eq(nvp_adam_clip_norm(o), 0.0f);
    ck_assert_float_eq(nvp_adam_last_grad_norm(o), 0.0f);
    const float limit = 40.0f;
    T_OK(nvp_adam_set_clip_norm(o, limit));
    ck_assert_float_eq(nvp_adam_clip_norm(o), limit);
    int clipped = 0, kept = 0;
    for (int s = 0; s < STEPS; s++) {
        double norm = fill_eighths(&pr, g, N);
        if (s % 2) { /* every other step well within the limit */
            for (size_t i = 0; i < N; i++)
                g[i] *= 0.125f;
            norm *= 0.125;
        }
        const float scale = norm > limit ? (float)(limit / norm) : 1.0f;
        for (size_t i = 0; i < N; i++)
            gs[i] = g[i] * scale;
        clipped += norm > limit;
        kept += norm <= limit;
        T_OK(nvp_adam_step(o, N, p, g));
        T_OK(nvp_adam_step(ctl, N, q, gs));
        const size_t d = t_first_diff(p, q, N);
        T_CHECK(d == (size_t)-1, "step %d (norm %.6g): parameter %zu: %.9g clipped, %.9g control",
                s, norm, d, (double)p[d == (size_t)-1 ? 0 : d], (double)q[d == (size_t)-1 ? 0 : d]);
        T_CHECK(nvp_adam_last_grad_norm(o) == (float)norm, "step %d: last norm %.9g, expected %.9g",
                s, (double)nvp_adam_last_grad_norm(o), norm);
    }
    ck_assert_int_eq(clipped, STEPS / 2);
    ck_assert_int_eq(kept, STEPS / 2);

    /* A refused step moves nothing and leaves the last norm alone. */
    const float before = nvp_adam_last_grad_norm(o);
    memcpy(q, p, N * sizeof *p);
    g[17] = NAN;
    ck_assert_int_eq(nvp_adam_step(o, N, p, g), NVP_ENONFINITE);
    g[17] = 1e18f; /* clipping does not rescue an overflowing entry */
    ck_assert_int_eq(nvp_adam_step(o, N, p, g), NVP_ENONFINITE);
    T_CHECK(t_first_diff(p, q, N) == (size_t)-1, "a refused step moved a parameter");
    ck_assert_float_eq(nvp_adam_last_grad_norm(o), before);
    ck_assert_uint_eq(nvp_adam_num_steps(o), STEPS);

    /* Reset forgets the last norm, not the limit. */
    T_OK(nvp_adam_reset(o));
    ck_assert_float_eq(nvp_adam_last_grad_norm(o), 0.0f);
    ck_assert_float_eq(nvp_adam_clip_norm(o), limit);
    /* Off: the last norm goes to 0 and steps are unclipped (the same as
     * the control's with the raw gradient); on again, it clips again. */
    double norm = fill_eighths(&pr, g, N);
    T_OK(nvp_adam_step(o, N, p, g));
    T_CHECK(nvp_adam_last_grad_norm(o) == (float)norm, "norm after reset");
    T_OK(nvp_adam_set_clip_norm(o, 0.0f));
    ck_assert_float_eq(nvp_adam_clip_norm(o), 0.0f);
    ck_assert_float_eq(nvp_adam_last_grad_norm(o), 0.0f);
    T_OK(nvp_adam_reset(ctl));
    T_OK(nvp_adam_reset(o));
    memcpy(q, p, N * sizeof *p);
    T_OK(nvp_adam_step(o, N, p, g));
    T_OK(nvp_adam_step(ctl, N, q, g));
    T_CHECK(t_first_diff(p, q, N) == (size_t)-1, "a step with clipping off was clipped");
    ck_assert_float_eq(nvp_adam_last_grad_norm(o), 0.0f);
    T_OK(nvp_adam_set_clip_norm(o, limit));
    T_OK(nvp_adam_step(o, N, p, g));
    T_CHECK(nvp_adam_last_grad_norm(o) == (float)norm && norm > limit,
            "clipping on again: last norm %g, expected %g", (double)nvp_adam_last_grad_norm(o),
            norm);
    free(p);
    free(q);
    free(g);
    free(gs);
    nvp_adam_free(o);
    nvp_adam_free(ctl);
}
END_TEST

/* The clipped update's gradient has the limit as its norm: checked on a
 * normal gradient against a norm summed here in long double. */
START_TEST(test_adam_clip_reaches_limit)
{
    enum { N = 40000 };
    t_prng pr;
    t_prng_seed(&pr, 7410);
    float *g = t_xmalloc(N * sizeof *g), *p = t_xmalloc(N * sizeof *p);
    t_fill_normal(&pr, N, g, 3.0);
    memset(p, 0, N * sizeof *p);
    long double s = 0.0L;
    for (size_t i = 0; i < N; i++)
        s += (long double)g[i] * g[i];
    const double norm = (double)sqrtl(s);
    nvp_adam *o = NULL;
    T_OK(nvp_adam_create(&o, N, NULL));
    T_OK(nvp_adam_set_clip_norm(o, 2.5f));
    /* b1 = 0: after one step the first moment is (1 - 0) * scaled g, and
     * m is visible through the handle's internals. */
    T_OK(nvp_adam_set_betas(o, 0.0f, 0.999f));
    T_OK(nvp_adam_step(o, N, p, g));
    T_CLOSE(nvp_adam_last_grad_norm(o), norm, 1e-6, 0.0, 7410, "reported norm");
    long double m2 = 0.0L;
    for (size_t i = 0; i < N; i++)
        m2 += (long double)o->m[i] * o->m[i];
    T_CLOSE((double)sqrtl(m2), 2.5, 1e-6, 0.0, 7410, "norm of the applied gradient");
    free(g);
    free(p);
    nvp_adam_free(o);
}
END_TEST

/* Bad limits are refused with NVP_EINVAL and change nothing. */
START_TEST(test_adam_clip_validates)
{
    nvp_adam *o = NULL;
    T_OK(nvp_adam_create(&o, 5, NULL));
    ck_assert_int_eq(nvp_adam_set_clip_norm(NULL, 1.0f), NVP_EINVAL);
    ck_assert_float_eq(nvp_adam_clip_norm(NULL), 0.0f);
    ck_assert_float_eq(nvp_adam_last_grad_norm(NULL), 0.0f);
    T_OK(nvp_adam_set_clip_norm(o, 3.0f));
    const float bad[] = {-1.0f, -0.0f - 1e-30f, NAN, INFINITY, -INFINITY};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        ck_assert_int_eq(nvp_adam_set_clip_norm(o, bad[k]), NVP_EINVAL);
        T_CHECK(strstr(nvp_adam_errmsg(o), "nvp_adam_set_clip_norm") != NULL, "message '%s'",
                nvp_adam_errmsg(o));
        ck_assert_float_eq(nvp_adam_clip_norm(o), 3.0f);
    }
    nvp_adam_free(o);
}
END_TEST

/* Out of memory when clipping is turned on: NVP_ENOMEM, clipping stays
 * off, nothing leaks; once on, changing the limit and stepping allocate
 * nothing. */
START_TEST(test_adam_clip_out_of_memory)
{
    enum { N = 9 };
    t_alloc_state st;
    const nvp_allocator a = t_counting_allocator(&st);
    nvp_adam *o = NULL;
    T_OK(nvp_adam_create(&o, N, &a));
    st.fail_at = st.calls;
    ck_assert_int_eq(nvp_adam_set_clip_norm(o, 1.0f), NVP_ENOMEM);
    ck_assert_uint_eq(st.failed, 1);
    ck_assert_float_eq(nvp_adam_clip_norm(o), 0.0f);
    st.fail_at = T_NEVER;
    T_OK(nvp_adam_set_clip_norm(o, 1.0f));
    const size_t calls = st.calls;
    T_OK(nvp_adam_set_clip_norm(o, 2.0f));
    float p[N] = {0}, g[N] = {1, -1, 2, -2, 3, -3, 4, -4, 5};
    T_OK(nvp_adam_step(o, N, p, g));
    ck_assert_uint_eq(st.calls, calls);
    T_CHECK(nvp_adam_last_grad_norm(o) > 2.0f, "the norm %g was not over the limit",
            (double)nvp_adam_last_grad_norm(o));
    nvp_adam_free(o);
    ck_assert_uint_eq(st.live, 0);
}
END_TEST

/* Through nvp_chain_train_step on a chain large enough for the norm and
 * the update to be shared out over a pool, with a limit low enough to
 * clip every step: one and two threads give the same parameters and the
 * same norms, bit for bit. */
START_TEST(test_adam_clip_threads)
{
    enum { N_DATA = 200, STEPS = 4 };
    float data[2 * N_DATA];
    nvp_rng *dr = t_rng(7420);
    T_OK(nvp_two_moons(dr, N_DATA, 0.05f, data, NULL));
    nvp_rng_free(dr);
    float *params[2] = {NULL, NULL}, norms[2][STEPS];
    size_t np = 0;
    for (int run = 0; run < 2; run++) {
        nvp_chain *c;
        nvp_adam *o;
        t_pool_training((size_t)run + 1, 7421, &c, &o, &np);
        T_OK(nvp_adam_set_clip_norm(o, 1e-3f));
        nvp_rng *r = t_rng(7422);
        for (int s = 0; s < STEPS; s++) {
            T_OK(nvp_chain_train_step(c, o, r, N_DATA, data, 50, NULL));
            norms[run][s] = nvp_adam_last_grad_norm(o);
            T_CHECK(norms[run][s] > 1e-3f, "step %d: norm %g did not exceed the limit", s,
                    (double)norms[run][s]);
        }
        params[run] = t_xmalloc(np * sizeof *params[run]);
        memcpy(params[run], nvp_chain_params(c), np * sizeof *params[run]);
        nvp_rng_free(r);
        nvp_adam_free(o);
        nvp_chain_free(c);
    }
    for (int s = 0; s < STEPS; s++)
        T_CHECK(norms[0][s] == norms[1][s], "step %d: norm %.9g on 1 thread, %.9g on 2", s,
                (double)norms[0][s], (double)norms[1][s]);
    const size_t d = t_first_diff(params[0], params[1], np);
    T_CHECK(d == (size_t)-1, "the parameters differ between 1 and 2 threads at %zu", d);
    free(params[0]);
    free(params[1]);
}
END_TEST

void adam_clip_tests(Suite *s)
{
    TCase *tc = tcase_create("clip");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, test_adam_clip_scales_gradient);
    tcase_add_test(tc, test_adam_clip_reaches_limit);
    tcase_add_test(tc, test_adam_clip_validates);
    tcase_add_test(tc, test_adam_clip_out_of_memory);
    tcase_add_test(tc, test_adam_clip_threads);
    suite_add_tcase(s, tc);
}
