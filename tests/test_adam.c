/* SPDX-License-Identifier: MIT */
/* Adam against steps computed by hand in double, setter validation, reset,
 * and refusal of non-finite gradients. */
#include <stdlib.h>
#include <string.h>

#include "tests.h"

/* Adam with bias correction (Kingma and Ba 2015), in double. */
typedef struct {
    double lr, b1, b2, eps;
    double m[3], v[3];
    int t;
} hand_adam;

static void hand_step(hand_adam *a, double *p, const double *g)
{
    a->t++;
    for (int i = 0; i < 3; i++) {
        a->m[i] = a->b1 * a->m[i] + (1 - a->b1) * g[i];
        a->v[i] = a->b2 * a->v[i] + (1 - a->b2) * g[i] * g[i];
        const double mhat = a->m[i] / (1 - pow(a->b1, a->t));
        const double vhat = a->v[i] / (1 - pow(a->b2, a->t));
        p[i] -= a->lr * mhat / (sqrt(vhat) + a->eps);
    }
}

typedef struct {
    float lr, b1, b2, eps;
    int set_lr, set_betas, set_eps;
} adam_cfg;

static const adam_cfg adam_cfgs[] = {
    {1e-3f, 0.9f, 0.999f, 1e-8f, 0, 0, 0}, /* the defaults, untouched */
    {0.05f, 0.8f, 0.99f, 1e-3f, 1, 1, 1},
    {0.5f, 0.0f, 0.0f, 1e-2f, 1, 1, 1},    /* b = 0: plain sign-like steps */
};

/* Three steps on a 3-parameter vector, compared after every step. */
START_TEST(test_adam_matches_hand_computed_steps)
{
    const adam_cfg *cf = &adam_cfgs[_i];
    const double G[3][3] = {{0.5, -2.0, 0.0}, {-0.25, 1.0, 3.0}, {1.5, -0.125, -1e-3}};
    nvp_adam *opt = NULL;
    T_OK(nvp_adam_create(&opt, 3, NULL));
    ck_assert_uint_eq(nvp_adam_num_params(opt), 3);
    ck_assert_uint_eq(nvp_adam_num_steps(opt), 0);
    T_CHECK(nvp_adam_lr(opt) == 1e-3f, "default lr %.9g", (double)nvp_adam_lr(opt));
    if (cf->set_lr)
        T_OK(nvp_adam_set_lr(opt, cf->lr));
    if (cf->set_betas)
        T_OK(nvp_adam_set_betas(opt, cf->b1, cf->b2));
    if (cf->set_eps)
        T_OK(nvp_adam_set_eps(opt, cf->eps));
    T_CHECK(nvp_adam_lr(opt) == cf->lr, "lr after set %.9g", (double)nvp_adam_lr(opt));
    hand_adam ha = {cf->lr, cf->b1, cf->b2, cf->eps, {0}, {0}, 0};
    float p[3] = {1.0f, -0.5f, 2.0f};
    double pd[3] = {1.0, -0.5, 2.0};
    for (int s = 0; s < 3; s++) {
        const float g[3] = {(float)G[s][0], (float)G[s][1], (float)G[s][2]};
        T_OK(nvp_adam_step(opt, 3, p, g));
        hand_step(&ha, pd, G[s]);
        ck_assert_uint_eq(nvp_adam_num_steps(opt), (uint64_t)s + 1);
        for (int i = 0; i < 3; i++)
            T_CLOSE(p[i], pd[i], 1e-6, 1e-4 * cf->lr, _i,
                    "config %d (lr %g b1 %g b2 %g eps %g): param %d after step %d",
                    _i, (double)cf->lr, (double)cf->b1, (double)cf->b2, (double)cf->eps, i, s + 1);
    }
    nvp_adam_free(opt);
}
END_TEST

START_TEST(test_adam_setters_validate)
{
    nvp_adam *opt = NULL;
    T_OK(nvp_adam_create(&opt, 2, NULL));
    const float bad_lr[] = {0.0f, -1e-3f, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad_lr / sizeof bad_lr[0]; i++) {
        ck_assert_int_eq(nvp_adam_set_lr(opt, bad_lr[i]), NVP_EINVAL);
        T_CHECK(nvp_adam_lr(opt) == 1e-3f, "lr changed by a refused value %g", (double)bad_lr[i]);
        T_CHECK(strstr(nvp_adam_errmsg(opt), "nvp_adam_set_lr") != NULL, "errmsg: '%s'", nvp_adam_errmsg(opt));
    }
    const float bad_b[][2] = {{1.0f, 0.9f}, {0.9f, 1.0f}, {-0.1f, 0.9f}, {0.9f, -1e-6f},
                              {NAN, 0.9f}, {0.9f, NAN}, {INFINITY, 0.9f}, {1.5f, 1.5f}};
    for (size_t i = 0; i < sizeof bad_b / sizeof bad_b[0]; i++)
        T_CHECK(nvp_adam_set_betas(opt, bad_b[i][0], bad_b[i][1]) == NVP_EINVAL,
                "betas (%g, %g) accepted", (double)bad_b[i][0], (double)bad_b[i][1]);
    const float bad_eps[] = {0.0f, -1e-8f, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_eps / sizeof bad_eps[0]; i++)
        T_CHECK(nvp_adam_set_eps(opt, bad_eps[i]) == NVP_EINVAL, "eps %g accepted", (double)bad_eps[i]);
    /* None of the refused calls changed the optimizer: its first step is
     * that of a fresh one with the defaults. */
    nvp_adam *fresh = NULL;
    T_OK(nvp_adam_create(&fresh, 2, NULL));
    float p1[2] = {1.0f, 2.0f}, p2[2] = {1.0f, 2.0f};
    const float g[2] = {0.3f, -0.7f};
    T_OK(nvp_adam_step(opt, 2, p1, g));
    T_OK(nvp_adam_step(fresh, 2, p2, g));
    T_CHECK(t_first_diff(p1, p2, 2) == (size_t)-1, "refused setters changed the step");
    /* Edge values that are valid. */
    T_OK(nvp_adam_set_betas(opt, 0.0f, 0.0f));
    T_OK(nvp_adam_set_betas(opt, 0.99999f, 0.99999f));
    T_OK(nvp_adam_set_lr(opt, 1e-30f));
    T_OK(nvp_adam_set_eps(opt, 1e-30f));
    nvp_adam_free(opt);
    nvp_adam_free(fresh);
}
END_TEST

START_TEST(test_adam_reset)
{
    nvp_adam *opt = NULL, *fresh = NULL;
    T_OK(nvp_adam_create(&opt, 3, NULL));
    T_OK(nvp_adam_create(&fresh, 3, NULL));
    float p[3] = {1, 2, 3};
    const float g[3] = {0.1f, -0.2f, 0.3f}, g2[3] = {-1.0f, 0.5f, 0.25f};
    for (int s = 0; s < 5; s++)
        T_OK(nvp_adam_step(opt, 3, p, g));
    ck_assert_uint_eq(nvp_adam_num_steps(opt), 5);
    T_OK(nvp_adam_reset(opt));
    ck_assert_uint_eq(nvp_adam_num_steps(opt), 0);
    /* After reset, two steps equal a fresh optimizer's two steps. */
    float a[3] = {0.5f, -0.5f, 4.0f}, b[3] = {0.5f, -0.5f, 4.0f};
    T_OK(nvp_adam_step(opt, 3, a, g2));
    T_OK(nvp_adam_step(opt, 3, a, g));
    T_OK(nvp_adam_step(fresh, 3, b, g2));
    T_OK(nvp_adam_step(fresh, 3, b, g));
    T_CHECK(t_first_diff(a, b, 3) == (size_t)-1, "after reset: %g %g %g vs fresh %g %g %g",
            (double)a[0], (double)a[1], (double)a[2], (double)b[0], (double)b[1], (double)b[2]);
    nvp_adam_free(opt);
    nvp_adam_free(fresh);
}
END_TEST

/* A gradient holding NaN or an infinity is refused and changes nothing:
 * parameters bitwise, step count, and the moments (the next valid steps
 * equal those of a run that never saw the bad gradient). */
START_TEST(test_adam_refuses_nonfinite_gradient)
{
    const float bad[] = {NAN, INFINITY, -INFINITY};
    const float bad_val = bad[_i];
    nvp_adam *opt = NULL, *ctl = NULL;
    T_OK(nvp_adam_create(&opt, 3, NULL));
    T_OK(nvp_adam_create(&ctl, 3, NULL));
    float p[3] = {1, 2, 3}, q[3] = {1, 2, 3};
    const float g[3] = {0.1f, -0.2f, 0.3f};
    T_OK(nvp_adam_step(opt, 3, p, g));
    T_OK(nvp_adam_step(ctl, 3, q, g));
    float before[3];
    memcpy(before, p, sizeof p);
    const float gb[3] = {0.5f, bad_val, 0.5f};
    ck_assert_int_eq(nvp_adam_step(opt, 3, p, gb), NVP_ENONFINITE);
    T_CHECK(t_first_diff(before, p, 3) == (size_t)-1, "refused step (%g) changed the parameters", (double)bad_val);
    ck_assert_uint_eq(nvp_adam_num_steps(opt), 1);
    T_CHECK(strstr(nvp_adam_errmsg(opt), "nvp_adam_step") != NULL, "errmsg '%s'", nvp_adam_errmsg(opt));
    const float g2[3] = {-0.4f, 0.8f, 0.05f};
    T_OK(nvp_adam_step(opt, 3, p, g2));
    T_OK(nvp_adam_step(ctl, 3, q, g2));
    T_CHECK(t_first_diff(p, q, 3) == (size_t)-1, "after a refused step (%g) the moments differ: %g %g %g vs %g %g %g",
            (double)bad_val, (double)p[0], (double)p[1], (double)p[2], (double)q[0], (double)q[1], (double)q[2]);
    nvp_adam_free(opt);
    nvp_adam_free(ctl);
}
END_TEST

/* The getters report what the setters stored, and a saved and loaded
 * state keeps it. */
START_TEST(test_adam_getters_round_trip)
{
    nvp_adam *o = NULL, *back = NULL;
    T_OK(nvp_adam_create(&o, 3, NULL));
    ck_assert_float_eq(nvp_adam_lr(o), 1e-3f);
    ck_assert_float_eq(nvp_adam_beta1(o), 0.9f);
    ck_assert_float_eq(nvp_adam_beta2(o), 0.999f);
    ck_assert_float_eq(nvp_adam_eps(o), 1e-8f);
    T_OK(nvp_adam_set_lr(o, 0.25f));
    T_OK(nvp_adam_set_betas(o, 0.5f, 0.75f));
    T_OK(nvp_adam_set_eps(o, 1e-4f));
    size_t size = 0;
    T_OK(nvp_adam_save_buffer(o, NULL, 0, NULL, &size));
    unsigned char *buf = t_xmalloc(size);
    T_OK(nvp_adam_save_buffer(o, NULL, size, buf, &size));
    T_OK(nvp_adam_load_buffer(&back, NULL, size, buf, NULL));
    const nvp_adam *both[2] = {o, back};
    for (int k = 0; k < 2; k++) {
        ck_assert_float_eq(nvp_adam_lr(both[k]), 0.25f);
        ck_assert_float_eq(nvp_adam_beta1(both[k]), 0.5f);
        ck_assert_float_eq(nvp_adam_beta2(both[k]), 0.75f);
        ck_assert_float_eq(nvp_adam_eps(both[k]), 1e-4f);
    }
    ck_assert_float_eq(nvp_adam_beta1(NULL), 0.0f);
    free(buf);
    nvp_adam_free(back);
    nvp_adam_free(o);
}
END_TEST

/* A finite gradient whose square would overflow the second moment is
 * refused like a non-finite one, so every state Adam reaches saves and
 * loads again. */
START_TEST(test_adam_refuses_overflowing_gradient)
{
    nvp_adam *o = NULL, *back = NULL;
    T_OK(nvp_adam_create(&o, 3, NULL));
    float p[3] = {1.0f, 2.0f, 3.0f};
    const float ok[3] = {1e17f, -1e17f, 0.5f}, big[3] = {0.1f, 1e20f, 0.1f};
    T_OK(nvp_adam_step(o, 3, p, ok));
    const float before[3] = {p[0], p[1], p[2]};
    ck_assert_int_eq(nvp_adam_step(o, 3, p, big), NVP_ENONFINITE);
    T_CHECK(strstr(nvp_errmsg(), "second moment") != NULL, "message '%s'",
            nvp_errmsg());
    T_CHECK(memcmp(p, before, sizeof p) == 0 && nvp_adam_num_steps(o) == 1,
            "a refused step changed the parameters or the step count");
    size_t size = 0;
    T_OK(nvp_adam_save_buffer(o, NULL, 0, NULL, &size));
    unsigned char *buf = t_xmalloc(size);
    T_OK(nvp_adam_save_buffer(o, NULL, size, buf, &size));
    T_CHECK(nvp_adam_load_buffer(&back, NULL, size, buf, NULL) == NVP_OK,
            "a state reached by steps does not load: %s", nvp_errmsg());
    free(buf);
    nvp_adam_free(back);
    nvp_adam_free(o);
}
END_TEST

/* Weight decay (AdamW): with a zero gradient a parameter shrinks by
 * lr * wd * p a step (the moments stay zero, so the Adam term is 0);
 * with wd = 0 the bits are plain Adam's; the setting saves and loads;
 * bad values are refused and change nothing. */
START_TEST(test_adam_weight_decay)
{
    nvp_adam *o = NULL, *plain = NULL;
    T_OK(nvp_adam_create(&o, 3, NULL));
    T_OK(nvp_adam_create(&plain, 3, NULL));
    T_OK(nvp_adam_set_lr(o, 0.1f));
    T_OK(nvp_adam_set_lr(plain, 0.1f));
    ck_assert(nvp_adam_weight_decay(o) == 0.0f);
    ck_assert_int_eq(nvp_adam_set_weight_decay(o, -1.0f), NVP_EINVAL);
    ck_assert_int_eq(nvp_adam_set_weight_decay(o, NAN), NVP_EINVAL);
    ck_assert(nvp_adam_weight_decay(o) == 0.0f);
    /* wd = 0: the same bits as an optimizer never told about it */
    float p[3] = {1.0f, -2.0f, 0.5f}, q[3] = {1.0f, -2.0f, 0.5f};
    const float g[3] = {0.3f, -0.1f, 0.0f};
    T_OK(nvp_adam_set_weight_decay(o, 0.0f));
    T_OK(nvp_adam_step(o, 3, p, g));
    T_OK(nvp_adam_step(plain, 3, q, g));
    ck_assert(memcmp(p, q, sizeof p) == 0);
    /* wd > 0: the zero-gradient parameter shrinks by lr * wd * p */
    T_OK(nvp_adam_set_weight_decay(o, 0.5f));
    ck_assert(nvp_adam_weight_decay(o) == 0.5f);
    const float before = p[2];
    T_OK(nvp_adam_step(o, 3, p, g));
    T_OK(nvp_adam_step(plain, 3, q, g));
    T_CLOSE(p[2], before - 0.05f * before, 1e-6, 0, 0, "decayed parameter");
    T_CHECK(fabsf(p[0]) < fabsf(q[0]), "decay did not pull p[0] towards 0: %g vs %g", (double)p[0],
            (double)q[0]);
    /* saved and loaded with the state */
    size_t size = 0;
    T_OK(nvp_adam_save_buffer(o, NULL, 0, NULL, &size));
    unsigned char *buf = t_xmalloc(size);
    T_OK(nvp_adam_save_buffer(o, NULL, size, buf, &size));
    nvp_adam *back = NULL;
    T_OK(nvp_adam_load_buffer(&back, NULL, size, buf, NULL));
    ck_assert(nvp_adam_weight_decay(back) == 0.5f);
    float p1[3], p2[3];
    memcpy(p1, p, sizeof p);
    memcpy(p2, p, sizeof p);
    T_OK(nvp_adam_step(o, 3, p1, g));
    T_OK(nvp_adam_step(back, 3, p2, g));
    ck_assert(memcmp(p1, p2, sizeof p1) == 0);
    free(buf);
    nvp_adam_free(back);
    nvp_adam_free(plain);
    nvp_adam_free(o);
}
END_TEST

/* The kernel forms step * m before dividing: with a large eps the move
 * (step * m / eps) stays in range while that product overflows.  Such a
 * step is refused with nothing changed (it returned OK and left -inf). */
START_TEST(test_adam_product_overflow_refused)
{
    nvp_adam *o = NULL;
    T_OK(nvp_adam_create(&o, 1, NULL));
    T_OK(nvp_adam_set_lr(o, 1e37f));
    T_OK(nvp_adam_set_eps(o, 1e10f));
    float p[1] = {0.0f};
    const float g[1] = {100.0f};
    const int rc = nvp_adam_step(o, 1, p, g);
    if (rc == NVP_OK)
        T_CHECK(isfinite(p[0]), "a step returned OK and left p = %g", (double)p[0]);
    else {
        ck_assert_int_eq(rc, NVP_ENONFINITE);
        ck_assert(p[0] == 0.0f);
        ck_assert_uint_eq(nvp_adam_num_steps(o), 0);
    }
    nvp_adam_free(o);
}
END_TEST

Suite *adam_suite(void)
{
    Suite *s = suite_create("adam");
    TCase *tc = tcase_create("adam");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_loop_test(tc, test_adam_matches_hand_computed_steps, 0, 3);
    tcase_add_test(tc, test_adam_setters_validate);
    tcase_add_test(tc, test_adam_reset);
    tcase_add_test(tc, test_adam_getters_round_trip);
    tcase_add_test(tc, test_adam_refuses_overflowing_gradient);
    tcase_add_test(tc, test_adam_weight_decay);
    tcase_add_test(tc, test_adam_product_overflow_refused);
    tcase_add_loop_test(tc, test_adam_refuses_nonfinite_gradient, 0, 3);
    suite_add_tcase(s, tc);
    adam_average_tests(s);
    adam_clip_tests(s);
    return s;
}
