/* SPDX-License-Identifier: MIT */
/* The chain's precision setting (nvp_chain_set_precision): refusals that
 * change nothing, and, where the CPU runs AVX512-BF16, that the bfloat16
 * products are really used (log densities and gradients move, by about
 * what 8 significant bits allow), that the two-dimensional models of the
 * tutorial do not move at all, that results stay bitwise identical across
 * thread counts, and that training still lowers the loss.  On a CPU
 * without AVX512-BF16 the refusal is what is checked: the setting must
 * report NVP_EUNSUPPORTED and leave the chain in float. */
#include <stdlib.h>
#include <string.h>

#include "tests.h"

static const size_t HIDDEN[2] = {64, 64};

/* n rows of a correlated D-dimensional Gaussian. */
static float *gaussian_rows(size_t n, size_t dim, uint64_t seed)
{
    t_prng p;
    t_prng_seed(&p, seed);
    float *y = t_xmalloc(n * dim * sizeof *y);
    for (size_t i = 0; i < n; i++) {
        double prev = 0;
        for (size_t d = 0; d < dim; d++) {
            prev = 0.6 * prev + t_prng_normal(&p);
            y[i * dim + d] = (float)prev;
        }
    }
    return y;
}

START_TEST(test_precision_refusals)
{
    nvp_chain *c = t_chain(8, 2, 2, HIDDEN, 1);
    ck_assert_int_eq(nvp_chain_precision(c), NVP_PRECISION_FP32);
    ck_assert_int_eq(nvp_chain_precision(NULL), -1);
    ck_assert_int_eq(nvp_chain_set_precision(NULL, NVP_PRECISION_FP32), NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_set_precision(c, 7), NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_set_precision(c, -1), NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_precision(c), NVP_PRECISION_FP32);
    ck_assert_int_eq(nvp_precision_supported(NVP_PRECISION_FP32), 1);
    ck_assert_int_eq(nvp_precision_supported(42), 0);
    const int rc = nvp_chain_set_precision(c, NVP_PRECISION_BF16);
    if (nvp_precision_supported(NVP_PRECISION_BF16)) {
        ck_assert_int_eq(rc, NVP_OK);
        ck_assert_int_eq(nvp_chain_precision(c), NVP_PRECISION_BF16);
        /* an unknown value afterwards keeps bfloat16 */
        ck_assert_int_eq(nvp_chain_set_precision(c, 2), NVP_EINVAL);
        ck_assert_int_eq(nvp_chain_precision(c), NVP_PRECISION_BF16);
        T_OK(nvp_chain_set_precision(c, NVP_PRECISION_FP32));
    } else {
        ck_assert_int_eq(rc, NVP_EUNSUPPORTED);
        T_CHECK(strstr(nvp_chain_errmsg(c), "BF16") != NULL, "message: %s",
                nvp_chain_errmsg(c));
    }
    ck_assert_int_eq(nvp_chain_precision(c), NVP_PRECISION_FP32);
    nvp_chain_free(c);
}
END_TEST

/* Log densities and the gradient of a D = 16 chain of 64-64 conditioners
 * (products of 64 terms: bfloat16 applies) against float: different (the
 * setting is used), close (relative error of a few 2^-8), and the same
 * bits again when set back to float. */
START_TEST(test_precision_bf16_close_to_fp32)
{
    if (!nvp_precision_supported(NVP_PRECISION_BF16))
        return; /* the refusal is checked in test_precision_refusals */
    const size_t dim = 16, n = 300;
    nvp_chain *c = t_chain(dim, 4, 2, HIDDEN, 2);
    float *y = gaussian_rows(n, dim, 3);
    /* trained parameters, not the near-identity start */
    nvp_adam *opt = NULL;
    T_OK(nvp_adam_create(&opt, nvp_chain_num_params(c), NULL));
    nvp_rng *rng = t_rng(4);
    for (int s = 0; s < 50; s++)
        T_OK(nvp_chain_train_step(c, opt, rng, n, y, 64, NULL));
    const size_t np = nvp_chain_num_params(c);
    float *lp32 = t_xmalloc(n * sizeof *lp32), *lp16 = t_xmalloc(n * sizeof *lp16);
    float *lp32b = t_xmalloc(n * sizeof *lp32b);
    float *g32 = t_xmalloc(np * sizeof *g32), *g16 = t_xmalloc(np * sizeof *g16);
    float l32, l16;
    T_OK(nvp_chain_log_prob(c, n, y, lp32));
    T_OK(nvp_chain_nll_grad(c, n, y, g32, &l32));
    T_OK(nvp_chain_set_precision(c, NVP_PRECISION_BF16));
    T_OK(nvp_chain_log_prob(c, n, y, lp16));
    T_OK(nvp_chain_nll_grad(c, n, y, g16, &l16));
    T_OK(nvp_chain_set_precision(c, NVP_PRECISION_FP32));
    T_OK(nvp_chain_log_prob(c, n, y, lp32b));
    ck_assert_uint_eq(t_first_diff(lp32, lp32b, n), (size_t)-1);
    size_t differ = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        differ += lp16[i] != lp32[i];
        const double e = fabs((double)lp16[i] - lp32[i]);
        worst = e > worst ? e : worst;
    }
    /* Each row's log density is a sum over 16 dimensions of terms of
     * order one; 8 bits through four couplings move it by hundredths. */
    T_CHECK(differ > n / 2, "only %zu of %zu log densities changed in bf16", differ, n);
    T_CHECK(worst < 0.25, "bf16 log density off by %g", worst);
    T_CHECK(fabs((double)l16 - l32) < 0.02 * fabs((double)l32) + 0.02,
            "loss %g in bf16, %g in fp32", (double)l16, (double)l32);
    double dot = 0, n32 = 0, n16 = 0;
    for (size_t i = 0; i < np; i++) {
        dot += (double)g32[i] * g16[i];
        n32 += (double)g32[i] * g32[i];
        n16 += (double)g16[i] * g16[i];
    }
    const double cosine = dot / sqrt(n32 * n16);
    T_CHECK(cosine > 0.99, "gradient cosine bf16/fp32 %g", cosine);
    T_CHECK(t_first_diff(g16, g32, np) != (size_t)-1, "bf16 gradient identical to fp32");
    free(lp32);
    free(lp16);
    free(lp32b);
    free(g32);
    free(g16);
    free(y);
    nvp_rng_free(rng);
    nvp_adam_free(opt);
    nvp_chain_free(c);
}
END_TEST

/* The tutorial's model (two dimensions, 4 couplings of 1 -> 512 -> 512 ->
 * 2): no product qualifies (the sweep runs the first two layers, the
 * output layer has two columns, its input gradient two terms), so
 * bfloat16 gives float's bits: the main job does not change.  With a
 * third hidden layer a two-dimensional chain has a product that does. */
START_TEST(test_precision_bf16_two_dims_unchanged)
{
    if (!nvp_precision_supported(NVP_PRECISION_BF16))
        return;
    static const size_t h[2] = {512, 512};
    const size_t n = 500;
    nvp_chain *c = t_chain(2, 4, 2, h, 5);
    float *y = gaussian_rows(n, 2, 6);
    const size_t np = nvp_chain_num_params(c);
    float *lp32 = t_xmalloc(n * sizeof *lp32), *lp16 = t_xmalloc(n * sizeof *lp16);
    float *g32 = t_xmalloc(np * sizeof *g32), *g16 = t_xmalloc(np * sizeof *g16);
    T_OK(nvp_chain_log_prob(c, n, y, lp32));
    T_OK(nvp_chain_nll_grad(c, n, y, g32, NULL));
    T_OK(nvp_chain_set_precision(c, NVP_PRECISION_BF16));
    T_OK(nvp_chain_log_prob(c, n, y, lp16));
    T_OK(nvp_chain_nll_grad(c, n, y, g16, NULL));
    ck_assert_uint_eq(t_first_diff(lp32, lp16, n), (size_t)-1);
    ck_assert_uint_eq(t_first_diff(g32, g16, np), (size_t)-1);
    /* A third hidden layer is a product past the sweep: it moves. */
    static const size_t h3[3] = {64, 64, 64};
    nvp_chain *c3 = t_chain(2, 2, 3, h3, 7);
    float *p3 = nvp_chain_params(c3);
    for (size_t i = 0; i < nvp_chain_num_params(c3); i++)
        p3[i] = 0.02f * (float)((int)(i % 11) - 5);
    T_OK(nvp_chain_log_prob(c3, n, y, lp32));
    T_OK(nvp_chain_set_precision(c3, NVP_PRECISION_BF16));
    T_OK(nvp_chain_log_prob(c3, n, y, lp16));
    T_CHECK(t_first_diff(lp32, lp16, n) != (size_t)-1,
            "a 2-D chain with three hidden layers did not change in bf16");
    nvp_chain_free(c3);
    free(lp32);
    free(lp16);
    free(g32);
    free(g16);
    free(y);
    nvp_chain_free(c);
}
END_TEST

/* bfloat16 training on one thread and on two: the same bits after every
 * step, and the loss goes down. */
START_TEST(test_precision_bf16_threads_bitwise)
{
    if (!nvp_precision_supported(NVP_PRECISION_BF16))
        return;
    static const size_t h[2] = {256, 256};
    const size_t dim = 32, n = 2000, batch = 256, steps = 30;
    float *y = gaussian_rows(n, dim, 8);
    nvp_chain *c[2];
    nvp_adam *o[2];
    nvp_rng *r[2];
    float first[2], last[2];
    for (int t = 0; t < 2; t++) {
        c[t] = t_chain(dim, 4, 2, h, 9);
        T_OK(nvp_chain_set_threads(c[t], (size_t)t + 1));
        T_OK(nvp_chain_set_precision(c[t], NVP_PRECISION_BF16));
        T_OK(nvp_adam_create(&o[t], nvp_chain_num_params(c[t]), NULL));
        r[t] = t_rng(10);
    }
    const size_t np = nvp_chain_num_params(c[0]);
    for (size_t s = 0; s < steps; s++) {
        float loss[2];
        for (int t = 0; t < 2; t++)
            T_OK(nvp_chain_train_step(c[t], o[t], r[t], n, y, batch, &loss[t]));
        const size_t d = t_first_diff(nvp_chain_params(c[0]), nvp_chain_params(c[1]), np);
        T_CHECK(d == (size_t)-1, "step %zu: parameter %zu differs between 1 and 2 threads", s, d);
        T_CHECK(loss[0] == loss[1], "step %zu: loss %.9g vs %.9g", s, (double)loss[0], (double)loss[1]);
        if (s == 0)
            first[0] = first[1] = loss[0];
        last[0] = last[1] = loss[0];
    }
    T_CHECK(last[0] < first[0] - 0.5f, "bf16 training: loss %g -> %g", (double)first[0],
            (double)last[0]);
    for (int t = 0; t < 2; t++) {
        nvp_rng_free(r[t]);
        nvp_adam_free(o[t]);
        nvp_chain_free(c[t]);
    }
    free(y);
}
END_TEST

Suite *precision_suite(void)
{
    Suite *s = suite_create("precision");
    TCase *tc = tcase_create("bf16");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, test_precision_refusals);
    tcase_add_test(tc, test_precision_bf16_close_to_fp32);
    tcase_add_test(tc, test_precision_bf16_two_dims_unchanged);
    tcase_add_test(tc, test_precision_bf16_threads_bitwise);
    suite_add_tcase(s, tc);
    return s;
}
