/* SPDX-License-Identifier: MIT */
/* The N(0, I) base distribution. */
#include <stdlib.h>
#include <string.h>

#include "reference.h"
#include "tests.h"

static const size_t base_dims[] = {1, 2, 5, 16};

START_TEST(test_base_log_prob_matches_formula)
{
    const size_t dim = base_dims[_i];
    const uint64_t seed = 100 + dim;
    enum { N = 300 };
    nvp_base *b = NULL;
    T_OK(nvp_base_create_normal(&b, dim, NULL));
    ck_assert_uint_eq(nvp_base_dim(b), dim);
    float *x = t_xmalloc(N * dim * sizeof *x), lp[N];
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, N * dim, x, 2.0);
    T_OK(nvp_base_log_prob(b, N, x, lp));
    for (size_t i = 0; i < N; i++) {
        double xd[REF_MAX_DIM];
        for (size_t j = 0; j < dim; j++)
            xd[j] = x[i * dim + j];
        const double want = ref_base_log_prob(dim, xd);
        T_CLOSE(lp[i], want, 1e-6, 1e-6, seed, "dim %zu: log p of row %zu", dim, i);
    }
    free(x);
    nvp_base_free(b);
}
END_TEST

START_TEST(test_base_grad_is_minus_x_and_matches_fd)
{
    const size_t dim = base_dims[_i];
    const uint64_t seed = 200 + dim;
    enum { N = 20 };
    nvp_base *b = NULL;
    T_OK(nvp_base_create_normal(&b, dim, NULL));
    float *x = t_xmalloc(N * dim * sizeof *x), *g = t_xmalloc(N * dim * sizeof *g);
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, N * dim, x, 1.5);
    T_OK(nvp_base_log_prob_grad(b, N, x, g));
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < dim; j++) {
            double xd[REF_MAX_DIM];
            for (size_t k = 0; k < dim; k++)
                xd[k] = x[i * dim + k];
            const double h = 1e-5;
            xd[j] += h;
            const double up = ref_base_log_prob(dim, xd);
            xd[j] -= 2 * h;
            const double dn = ref_base_log_prob(dim, xd);
            const double fd = (up - dn) / (2 * h);
            T_CLOSE(g[i * dim + j], -x[i * dim + j], 0, 0, seed, "grad[%zu][%zu] vs -x", i, j);
            T_CLOSE(g[i * dim + j], fd, 1e-6, 1e-7, seed, "grad[%zu][%zu] vs finite difference", i, j);
        }
    free(x);
    free(g);
    nvp_base_free(b);
}
END_TEST

START_TEST(test_base_sample_statistics)
{
    const uint64_t seed = 300;
    enum { N = 30000, D = 3 };
    nvp_base *b = NULL;
    T_OK(nvp_base_create_normal(&b, D, NULL));
    nvp_rng *r = t_rng(seed);
    float *x = t_xmalloc(N * D * sizeof *x);
    T_OK(nvp_base_sample(b, r, N, x));
    double mean[D] = {0}, cov[D][D] = {{0}};
    for (size_t i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            mean[j] += x[i * D + j];
            for (int k = 0; k < D; k++)
                cov[j][k] += (double)x[i * D + j] * x[i * D + k];
        }
    for (int j = 0; j < D; j++) {
        mean[j] /= N;
        /* sd of the mean 0.0058, of a covariance ~0.006-0.008. */
        T_CLOSE(mean[j], 0.0, 0, 0.03, seed, "mean of axis %d", j);
        for (int k = 0; k < D; k++)
            T_CLOSE(cov[j][k] / N, j == k ? 1.0 : 0.0, 0, 0.045, seed,
                    "second moment [%d][%d]", j, k);
    }
    /* Same seed, same draws. */
    float *y = t_xmalloc(N * D * sizeof *y);
    T_OK(nvp_rng_seed(r, seed));
    T_OK(nvp_base_sample(b, r, N, y));
    const size_t d = t_first_diff(x, y, N * D);
    T_CHECK(d == (size_t)-1, "seed %llu: resampling differs at %zu", (unsigned long long)seed, d);
    free(x);
    free(y);
    nvp_rng_free(r);
    nvp_base_free(b);
}
END_TEST

START_TEST(test_base_nonfinite_rows_give_nan)
{
    enum { N = 6, D = 3 };
    nvp_base *b = NULL;
    T_OK(nvp_base_create_normal(&b, D, NULL));
    float x[N * D], lp[N];
    for (int i = 0; i < N * D; i++)
        x[i] = 0.1f * (float)(i % 7) - 0.3f;
    x[1 * D + 0] = NAN;
    x[3 * D + 2] = INFINITY;
    x[4 * D + 1] = -INFINITY;
    T_OK(nvp_base_log_prob(b, N, x, lp));
    for (int i = 0; i < N; i++) {
        const int bad = i == 1 || i == 3 || i == 4;
        T_CHECK(bad ? isnan(lp[i]) : isfinite(lp[i]),
                "row %d (%s): log p = %g", i, bad ? "non-finite" : "finite", (double)lp[i]);
    }
    ck_assert_uint_eq(nvp_base_dim(NULL), 0);
    nvp_base_free(NULL);
    nvp_base_free(b);
}
END_TEST

Suite *base_suite(void)
{
    Suite *s = suite_create("base");
    TCase *tc = tcase_create("normal");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_loop_test(tc, test_base_log_prob_matches_formula, 0, 4);
    tcase_add_loop_test(tc, test_base_grad_is_minus_x_and_matches_fd, 0, 4);
    tcase_add_test(tc, test_base_sample_statistics);
    tcase_add_test(tc, test_base_nonfinite_rows_give_nan);
    suite_add_tcase(s, tc);
    return s;
}
