/* SPDX-License-Identifier: MIT */
/* The public choice of kernels (nvp_*_set_kernels): errors leave the
 * setting as it was, every level the CPU runs computes the same model to
 * float rounding and the same bits on one and two threads, and the choice
 * takes effect (the portable matrix multiply rounds differently from the
 * fused multiply-adds of the SIMD ones). */
#include <stdlib.h>
#include <string.h>

#include "tests.h"

static const int levels[] = {NVP_KERNELS_PORTABLE, NVP_KERNELS_AVX2, NVP_KERNELS_AVX512};

/* Whether this CPU runs a level, asked of a throwaway optimizer. */
static int cpu_runs(int kernels)
{
    nvp_adam *o = NULL;
    T_OK(nvp_adam_create(&o, 1, NULL));
    const int rc = nvp_adam_set_kernels(o, kernels);
    T_CHECK(rc == NVP_OK || rc == NVP_EUNSUPPORTED, "kernels %d: %d", kernels, rc);
    nvp_adam_free(o);
    return rc == NVP_OK;
}

START_TEST(test_kernels_errors)
{
    nvp_chain *c = t_chain(4, 2, 1, (const size_t[]){16}, 9100);
    const int best = nvp_chain_kernels(c);
    T_CHECK(best >= NVP_KERNELS_PORTABLE && best <= NVP_KERNELS_AVX512, "default kernels %d", best);
    ck_assert_int_eq(nvp_chain_set_kernels(c, 42), NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_set_kernels(c, -1), NVP_EINVAL);
    T_CHECK(strstr(nvp_chain_errmsg(c), "unknown kernels 42") == NULL &&
                strstr(nvp_chain_errmsg(c), "unknown kernels -1") != NULL,
            "message '%s'", nvp_chain_errmsg(c));
    ck_assert_int_eq(nvp_chain_kernels(c), best);
    ck_assert_int_eq(nvp_chain_set_kernels(NULL, NVP_KERNELS_AUTO), NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_kernels(NULL), -1);
    ck_assert_int_eq(nvp_coupling_kernels(NULL), -1);
    ck_assert_int_eq(nvp_adam_kernels(NULL), -1);
    /* Every level: set where the CPU runs it, refused (and unchanged)
     * where it does not; the best one is what AUTO gives. */
    int highest = NVP_KERNELS_PORTABLE;
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        T_OK(nvp_chain_set_kernels(c, NVP_KERNELS_PORTABLE));
        const int rc = nvp_chain_set_kernels(c, levels[i]);
        if (cpu_runs(levels[i])) {
            ck_assert_int_eq(rc, NVP_OK);
            ck_assert_int_eq(nvp_chain_kernels(c), levels[i]);
            highest = levels[i];
        } else {
            ck_assert_int_eq(rc, NVP_EUNSUPPORTED);
            ck_assert_int_eq(nvp_chain_kernels(c), NVP_KERNELS_PORTABLE);
            T_CHECK(strstr(nvp_strerror(rc), "CPU") != NULL, "'%s'", nvp_strerror(rc));
        }
    }
    ck_assert_int_eq(highest, best);
    T_OK(nvp_chain_set_kernels(c, NVP_KERNELS_AUTO));
    ck_assert_int_eq(nvp_chain_kernels(c), best);
    nvp_chain_free(c);
}
END_TEST

/* A chain with matrix products on every layer (four inputs: no sweep),
 * its log-density and gradient at every level and thread count. */
START_TEST(test_kernels_levels_agree)
{
    const size_t dim = 4, n = 300, hidden[2] = {64, 48};
    nvp_chain *c = t_chain(dim, 4, 2, hidden, 9200);
    const size_t np = nvp_chain_num_params(c);
    const int best = nvp_chain_kernels(c);
    float y[4 * 300], lp[3][300], lp2[300];
    float *g[3], *g2 = t_xmalloc(np * sizeof *g2);
    t_prng p;
    t_prng_seed(&p, 9201);
    t_fill_normal(&p, dim * n, y, 1.0);
    int got[3] = {0, 0, 0};
    for (size_t i = 0; i < 3; i++) {
        g[i] = t_xmalloc(np * sizeof *g[i]);
        if (!cpu_runs(levels[i]))
            continue;
        got[i] = 1;
        T_OK(nvp_chain_set_kernels(c, levels[i]));
        float loss, loss2;
        T_OK(nvp_chain_set_threads(c, 1));
        T_OK(nvp_chain_log_prob(c, n, y, lp[i]));
        T_OK(nvp_chain_nll_grad(c, n, y, g[i], &loss));
        T_OK(nvp_chain_set_threads(c, 2));
        T_OK(nvp_chain_log_prob(c, n, y, lp2));
        T_OK(nvp_chain_nll_grad(c, n, y, g2, &loss2));
        size_t d = t_first_diff(lp[i], lp2, n);
        T_CHECK(d == (size_t)-1, "kernels %d: log_prob[%zu] differs on 2 threads", levels[i], d);
        d = t_first_diff(g[i], g2, np);
        T_CHECK(d == (size_t)-1, "kernels %d: gradient[%zu] differs on 2 threads", levels[i], d);
        T_CHECK(memcmp(&loss, &loss2, sizeof loss) == 0, "kernels %d: loss differs", levels[i]);
    }
    /* Same model at every level, to float rounding. */
    for (size_t i = 1; i < 3; i++) {
        if (!got[i])
            continue;
        for (size_t r = 0; r < n; r++)
            T_CLOSE(lp[i][r], lp[0][r], 1e-5, 1e-5, 9200, "log_prob[%zu], kernels %d vs portable", r, levels[i]);
        for (size_t q = 0; q < np; q++)
            T_CLOSE(g[i][q], g[0][q], 1e-3, 1e-5, 9200, "gradient[%zu], kernels %d vs portable", q, levels[i]);
    }
    /* The choice takes effect: the SIMD products fuse multiply and add,
     * the portable ones do not, so over 300 rows of 64-wide products some
     * bit differs.  (Nothing to compare on a CPU that runs only the
     * portable kernels.) */
    if (best != NVP_KERNELS_PORTABLE) {
        const int b = best == NVP_KERNELS_AVX512 ? 2 : 1;
        T_CHECK(t_first_diff(lp[b], lp[0], n) != (size_t)-1,
                "portable and kernels %d gave the same bits: the setting made no difference", best);
    }
    for (size_t i = 0; i < 3; i++)
        free(g[i]);
    free(g2);
    nvp_chain_free(c);
}
END_TEST

/* A standalone layer follows its own setting. */
START_TEST(test_kernels_coupling)
{
    nvp_rng *r = t_rng(9300);
    nvp_coupling *l = NULL;
    T_OK(nvp_coupling_create_half(&l, 6, 0, 1, (const size_t[]){40}, 0, r, NULL));
    nvp_rng_free(r);
    const int best = nvp_coupling_kernels(l);
    float x[6 * 64], y0[6 * 64], y1[6 * 64];
    t_prng p;
    t_prng_seed(&p, 9301);
    t_fill_normal(&p, 6 * 64, x, 1.0);
    T_OK(nvp_coupling_forward(l, 64, x, y0, NULL));
    T_OK(nvp_coupling_set_kernels(l, NVP_KERNELS_PORTABLE));
    ck_assert_int_eq(nvp_coupling_kernels(l), NVP_KERNELS_PORTABLE);
    T_OK(nvp_coupling_forward(l, 64, x, y1, NULL));
    for (size_t i = 0; i < 6 * 64; i++)
        T_CLOSE(y1[i], y0[i], 1e-5, 1e-5, 9300, "y[%zu]", i);
    ck_assert_int_eq(nvp_coupling_set_kernels(l, 7), NVP_EINVAL);
    ck_assert_int_eq(nvp_coupling_kernels(l), NVP_KERNELS_PORTABLE);
    T_OK(nvp_coupling_set_kernels(l, NVP_KERNELS_AUTO));
    ck_assert_int_eq(nvp_coupling_kernels(l), best);
    nvp_coupling_free(l);
}
END_TEST

/* A layer of any kind follows its own setting in its standalone calls. */
START_TEST(test_kernels_layer)
{
    nvp_layer *l = NULL;
    T_OK(nvp_layer_create_linear(&l, 5, NULL));
    const int best = nvp_layer_kernels(l);
    T_OK(nvp_layer_set_kernels(l, NVP_KERNELS_PORTABLE));
    ck_assert_int_eq(nvp_layer_kernels(l), NVP_KERNELS_PORTABLE);
    ck_assert_int_eq(nvp_layer_set_kernels(l, 99), NVP_EINVAL);
    ck_assert_int_eq(nvp_layer_kernels(l), NVP_KERNELS_PORTABLE);
    ck_assert_int_eq(nvp_layer_set_kernels(NULL, NVP_KERNELS_AUTO), NVP_EINVAL);
    ck_assert_int_eq(nvp_layer_kernels(NULL), -1);
    T_OK(nvp_layer_set_kernels(l, NVP_KERNELS_AUTO));
    ck_assert_int_eq(nvp_layer_kernels(l), best);
    nvp_layer_free(l);
}
END_TEST

Suite *kernels_suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, test_kernels_errors);
    tcase_add_test(tc, test_kernels_levels_agree);
    tcase_add_test(tc, test_kernels_coupling);
    tcase_add_test(tc, test_kernels_layer);
    suite_add_tcase(s, tc);
    return s;
}
