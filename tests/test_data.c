/* SPDX-License-Identifier: MIT */
/* The two-moons generator and the standardiser. */
#include <stdlib.h>
#include <string.h>

#include "tests.h"

#define PI 3.14159265358979323846

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* n points, n/2 (rounded down) outer; noise 0 puts every point exactly on
 * its arc, evenly spaced in angle. */
START_TEST(test_two_moons_noiseless_on_arcs)
{
    static const size_t ns[] = {1, 2, 3, 10, 1001};
    const size_t n = ns[_i];
    const uint64_t seed = 5000 + n;
    nvp_rng *r = t_rng(seed);
    float *xy = t_xmalloc(2 * n * sizeof *xy);
    int *lab = t_xmalloc(n * sizeof *lab);
    T_OK(nvp_two_moons(r, n, 0.0f, xy, lab));
    size_t n0 = 0;
    double *ang[2];
    size_t cnt[2] = {0, 0};
    ang[0] = t_xmalloc(n * sizeof(double));
    ang[1] = t_xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        const double x = xy[2 * i], y = xy[2 * i + 1];
        T_CHECK(lab[i] == 0 || lab[i] == 1, "label %d", lab[i]);
        if (lab[i] == 0) {
            n0++;
            T_CLOSE(x * x + y * y, 1.0, 0, 1e-6, seed, "n %zu: outer point %zu (%g, %g): x^2 + y^2", n, i, x, y);
            T_CHECK(y >= -1e-7, "seed %llu: outer point %zu has y = %g < 0", (unsigned long long)seed, i, y);
            ang[0][cnt[0]++] = atan2(y, x);
        } else {
            T_CLOSE((x - 1) * (x - 1) + (y - 0.5) * (y - 0.5), 1.0, 0, 1e-6, seed,
                    "n %zu: inner point %zu (%g, %g): (x-1)^2 + (y-0.5)^2", n, i, x, y);
            T_CHECK(y <= 0.5 + 1e-7, "seed %llu: inner point %zu has y = %g > 0.5", (unsigned long long)seed, i, y);
            ang[1][cnt[1]++] = atan2(0.5 - y, 1 - x); /* the inner arc's parameter t */
        }
    }
    ck_assert_uint_eq(n0, n / 2);
    ck_assert_uint_eq(cnt[1], n - n / 2);
    /* Evenly spaced: sorted angles are pi k / (m - 1). */
    for (int moon = 0; moon < 2; moon++) {
        const size_t m = cnt[moon];
        qsort(ang[moon], m, sizeof(double), cmp_double);
        for (size_t k = 0; k < m; k++) {
            const double want = m > 1 ? PI * (double)k / (double)(m - 1) : 0.0;
            T_CLOSE(ang[moon][k], want, 0, 2e-6, seed, "n %zu: %s moon, angle %zu of %zu", n,
                    moon ? "inner" : "outer", k, m);
        }
    }
    free(ang[0]);
    free(ang[1]);
    free(xy);
    free(lab);
    nvp_rng_free(r);
}
END_TEST

/* With noise 0.05: the sample mean is that of the noiseless set (within a
 * few standard errors), the variance grows by 0.05^2, the radial residual
 * of the outer moon has sd 0.05; labels are shuffled. */
START_TEST(test_two_moons_noise_statistics)
{
    const uint64_t seed = 5100;
    const size_t n = 4000;
    const double sigma = 0.05;
    nvp_rng *r = t_rng(seed);
    float *xy = t_xmalloc(2 * n * sizeof *xy);
    int *lab = t_xmalloc(n * sizeof *lab);
    T_OK(nvp_two_moons(r, n, (float)sigma, xy, lab));
    /* The noiseless set in closed form. */
    double mean0[2] = {0, 0}, sq0[2] = {0, 0};
    const size_t m = n / 2;
    for (size_t k = 0; k < m; k++) {
        const double t = PI * (double)k / (double)(m - 1);
        const double px[2] = {cos(t), 1 - cos(t)}, py[2] = {sin(t), 0.5 - sin(t)};
        for (int s = 0; s < 2; s++) {
            mean0[0] += px[s];
            mean0[1] += py[s];
            sq0[0] += px[s] * px[s];
            sq0[1] += py[s] * py[s];
        }
    }
    double mean[2] = {0, 0}, sq[2] = {0, 0}, rad = 0, rad2 = 0;
    size_t n_out = 0, first_half_outer = 0;
    for (size_t i = 0; i < n; i++) {
        for (int a = 0; a < 2; a++) {
            mean[a] += xy[2 * i + a];
            sq[a] += (double)xy[2 * i + a] * xy[2 * i + a];
        }
        if (lab[i] == 0) {
            const double e = hypot(xy[2 * i], xy[2 * i + 1]) - 1.0;
            rad += e;
            rad2 += e * e;
            n_out++;
            first_half_outer += i < n / 2;
        }
    }
    ck_assert_uint_eq(n_out, n / 2);
    for (int a = 0; a < 2; a++) {
        const double mu0 = mean0[a] / n, var0 = sq0[a] / n - mu0 * mu0;
        const double mu = mean[a] / n, var = sq[a] / n - mu * mu;
        /* se of the mean 0.05 / sqrt(4000) = 0.0008. */
        T_CLOSE(mu, mu0, 0, 0.004, seed, "mean of axis %d", a);
        T_CLOSE(var, var0 + sigma * sigma, 0, 0.01 * var0 + 0.001, seed, "variance of axis %d", a);
    }
    const double rmean = rad / n_out, rsd = sqrt(rad2 / n_out - rmean * rmean);
    T_CLOSE(rsd, sigma, 0.08, 0, seed, "sd of the outer moon's radial residual");
    T_CLOSE(rmean, 0.0, 0, 0.006, seed, "mean radial residual");
    /* Shuffled: the first half is not all one moon. */
    T_CHECK(first_half_outer > 9 * n / 40 && first_half_outer < 11 * n / 40,
            "seed %llu: %zu outer points among the first %zu: not shuffled", (unsigned long long)seed,
            first_half_outer, n / 2);
    free(xy);
    free(lab);
    nvp_rng_free(r);
}
END_TEST

START_TEST(test_two_moons_reproducible)
{
    const size_t n = 501;
    float *a = t_xmalloc(2 * n * sizeof *a), *b = t_xmalloc(2 * n * sizeof *b);
    int *la = t_xmalloc(n * sizeof *la), *lb = t_xmalloc(n * sizeof *lb);
    nvp_rng *r = t_rng(42), *s = t_rng(42), *o = t_rng(43);
    T_OK(nvp_two_moons(r, n, 0.1f, a, la));
    T_OK(nvp_two_moons(s, n, 0.1f, b, NULL)); /* labels optional, same points */
    T_CHECK(t_first_diff(a, b, 2 * n) == (size_t)-1, "same seed, different points");
    T_OK(nvp_rng_seed(s, 42));
    T_OK(nvp_two_moons(s, n, 0.1f, b, lb));
    T_CHECK(memcmp(la, lb, n * sizeof *la) == 0, "same seed, different labels");
    T_OK(nvp_two_moons(o, n, 0.1f, b, lb));
    size_t same = 0;
    for (size_t i = 0; i < 2 * n; i++)
        same += a[i] == b[i];
    T_CHECK(same < 10, "seeds 42 and 43 share %zu of %zu coordinates", same, 2 * n);
    free(a);
    free(b);
    free(la);
    free(lb);
    nvp_rng_free(r);
    nvp_rng_free(s);
    nvp_rng_free(o);
}
END_TEST

/* ------------------------------------------------------------- scaler */

/* Fit: transformed data has mean 0 and population sd 1 per axis; mean and
 * sd match a double computation; inverse_transform maps back (also in
 * place); log_det = sum log sd. */
START_TEST(test_scaler_fit_transform_round_trip)
{
    const uint64_t seed = 5200;
    const size_t n = 2000, d = 3;
    nvp_rng *r = t_rng(seed);
    float *x = t_xmalloc(n * d * sizeof *x), *z = t_xmalloc(n * d * sizeof *z);
    float *back = t_xmalloc(n * d * sizeof *back);
    t_prng p;
    t_prng_seed(&p, seed);
    for (size_t i = 0; i < n; i++) {
        x[i * d + 0] = (float)(3.0 + 2.0 * t_prng_normal(&p));
        x[i * d + 1] = (float)(-1e4 + 0.5 * t_prng_normal(&p)); /* large offset */
        x[i * d + 2] = (float)t_prng_range(&p, 0, 1e-3);
    }
    nvp_scaler *s = NULL;
    T_OK(nvp_scaler_create(&s, d, NULL));
    ck_assert_uint_eq(nvp_scaler_dim(s), d);
    T_OK(nvp_scaler_fit(s, n, x));
    float mean[3], sd[3];
    T_OK(nvp_scaler_get(s, d, mean, sd));
    double logdet = 0;
    for (size_t j = 0; j < d; j++) {
        double m = 0, v = 0;
        for (size_t i = 0; i < n; i++)
            m += x[i * d + j];
        m /= n;
        for (size_t i = 0; i < n; i++)
            v += (x[i * d + j] - m) * (x[i * d + j] - m);
        const double sdd = sqrt(v / n); /* population sd */
        T_CLOSE(mean[j], m, 1e-7, 1e-7, seed, "mean of axis %zu", j);
        T_CLOSE(sd[j], sdd, 1e-6, 0, seed, "sd of axis %zu", j);
        logdet += log((double)sd[j]);
    }
    T_CLOSE(nvp_scaler_log_det(s), logdet, 1e-12, 1e-12, seed, "log_det");
    T_OK(nvp_scaler_transform(s, n, x, z));
    for (size_t j = 0; j < d; j++) {
        double m = 0, v = 0;
        for (size_t i = 0; i < n; i++)
            m += z[i * d + j];
        m /= n;
        for (size_t i = 0; i < n; i++)
            v += (z[i * d + j] - m) * (z[i * d + j] - m);
        /* The mean is kept as a float: half an ulp of it, over sd. */
        const double tol = fabs((double)mean[j]) * 0x1.0p-24 / sd[j] + 1e-5;
        T_CLOSE(m, 0.0, 0, tol, seed, "transformed mean of axis %zu", j);
        T_CLOSE(sqrt(v / n), 1.0, 0, 1e-4, seed, "transformed sd of axis %zu", j);
    }
    T_OK(nvp_scaler_inverse_transform(s, n, z, back));
    /* z * sd + mean rounds to the float grid of |mean| + |z| sd. */
    for (size_t i = 0; i < n * d; i++)
        T_CLOSE(back[i], x[i], 1e-6, 1e-6 * (fabs(mean[i % d]) + 4.0 * sd[i % d]), seed,
                "inverse_transform(transform(x))[%zu]", i);
    /* In place gives the same bits. */
    memcpy(back, x, n * d * sizeof *back);
    T_OK(nvp_scaler_transform(s, n, back, back));
    T_CHECK(t_first_diff(back, z, n * d) == (size_t)-1, "in-place transform differs");
    T_OK(nvp_scaler_inverse_transform(s, n, back, back));
    T_OK(nvp_scaler_inverse_transform(s, n, z, z));
    T_CHECK(t_first_diff(back, z, n * d) == (size_t)-1, "in-place inverse_transform differs");
    free(x);
    free(z);
    free(back);
    nvp_scaler_free(s);
    nvp_rng_free(r);
}
END_TEST

START_TEST(test_scaler_identity_constant_set)
{
    nvp_scaler *s = NULL;
    T_OK(nvp_scaler_create(&s, 2, NULL));
    float mean[2], sd[2];
    T_OK(nvp_scaler_get(s, 2, mean, sd));
    ck_assert(mean[0] == 0.0f && mean[1] == 0.0f && sd[0] == 1.0f && sd[1] == 1.0f);
    T_CHECK(nvp_scaler_log_det(s) == 0.0, "fresh log_det %g", nvp_scaler_log_det(s));
    const float x[6] = {0.25f, 7.0f, -1.5f, 7.0f, 3.0f, 7.0f};
    float z[6];
    T_OK(nvp_scaler_transform(s, 3, x, z));
    T_CHECK(t_first_diff(x, z, 6) == (size_t)-1, "fresh scaler is not the identity");
    /* Column 1 is constant: it keeps sd 1 (and its mean), so it maps to 0. */
    T_OK(nvp_scaler_fit(s, 3, x));
    T_OK(nvp_scaler_get(s, 2, mean, sd));
    T_CHECK(sd[1] == 1.0f && mean[1] == 7.0f, "constant column: mean %g sd %g", (double)mean[1], (double)sd[1]);
    T_OK(nvp_scaler_transform(s, 3, x, z));
    for (int i = 0; i < 3; i++)
        T_CHECK(z[2 * i + 1] == 0.0f, "constant column maps to %g", (double)z[2 * i + 1]);
    /* One row: every column constant. */
    T_OK(nvp_scaler_fit(s, 1, x));
    T_OK(nvp_scaler_get(s, 2, NULL, sd));
    T_CHECK(sd[0] == 1.0f && sd[1] == 1.0f, "single row: sd %g %g", (double)sd[0], (double)sd[1]);
    /* set, and a refused set leaves everything as it was. */
    const float m2[2] = {1.0f, -2.0f}, s2[2] = {0.5f, 4.0f};
    T_OK(nvp_scaler_set(s, 2, m2, s2));
    T_CLOSE(nvp_scaler_log_det(s), log(0.5) + log(4.0), 1e-12, 0, 0, "log_det after set");
    T_OK(nvp_scaler_transform(s, 1, x, z));
    T_CLOSE(z[0], (0.25 - 1.0) / 0.5, 1e-6, 0, 0, "transform after set, axis 0");
    T_CLOSE(z[1], (7.0 + 2.0) / 4.0, 1e-6, 0, 0, "transform after set, axis 1");
    const float bad_sd[][2] = {{0.0f, 1.0f}, {1.0f, -1.0f}, {NAN, 1.0f}, {1.0f, INFINITY}};
    for (int k = 0; k < 4; k++)
        T_CHECK(nvp_scaler_set(s, 2, m2, bad_sd[k]) == NVP_EINVAL, "sd (%g, %g) accepted",
                (double)bad_sd[k][0], (double)bad_sd[k][1]);
    const float bad_mean[2] = {NAN, 0.0f};
    ck_assert_int_eq(nvp_scaler_set(s, 2, bad_mean, s2), NVP_EINVAL);
    T_OK(nvp_scaler_get(s, 2, mean, sd));
    T_CHECK(mean[0] == 1.0f && mean[1] == -2.0f && sd[0] == 0.5f && sd[1] == 4.0f,
            "refused set changed the scaler: mean %g %g sd %g %g", (double)mean[0], (double)mean[1],
            (double)sd[0], (double)sd[1]);
    /* Non-finite data: refused, scaler unchanged. */
    float xn[6];
    memcpy(xn, x, sizeof xn);
    xn[3] = INFINITY;
    ck_assert_int_eq(nvp_scaler_fit(s, 3, xn), NVP_ENONFINITE);
    xn[3] = NAN;
    ck_assert_int_eq(nvp_scaler_fit(s, 3, xn), NVP_ENONFINITE);
    T_OK(nvp_scaler_get(s, 2, mean, sd));
    T_CHECK(mean[0] == 1.0f && mean[1] == -2.0f && sd[0] == 0.5f && sd[1] == 4.0f,
            "refused fit changed the scaler");
    T_CHECK(strstr(nvp_scaler_errmsg(s), "nvp_scaler_fit") != NULL, "scaler errmsg '%s'", nvp_scaler_errmsg(s));
    ck_assert_uint_eq(nvp_scaler_dim(NULL), 0);
    T_CHECK(nvp_scaler_log_det(NULL) == 0.0, "log_det(NULL)");
    nvp_scaler_free(NULL);
    nvp_scaler_free(s);
}
END_TEST

/* Issue 16, item 11 (library side): data near +-FLT_MAX standardises to
 * finite values (x - mean overflowed float before) and maps back. */
START_TEST(test_scaler_near_float_max)
{
    /* column 0: mean -1.5e38, so 3e38 - mean overflows float */
    const float x[2 * 4] = {3.0e38f, 1.0f, -3.0e38f, 2.0f, -3.0e38f, 3.0f, -3.0e38f, 4.0f};
    nvp_scaler *s = NULL;
    T_OK(nvp_scaler_create(&s, 2, NULL));
    T_OK(nvp_scaler_fit(s, 4, x));
    float z[8], back[8];
    T_OK(nvp_scaler_transform(s, 4, x, z));
    for (int i = 0; i < 8; i++)
        T_CHECK(isfinite(z[i]) && fabsf(z[i]) < 3.0f, "z[%d] = %g", i, (double)z[i]);
    T_OK(nvp_scaler_inverse_transform(s, 4, z, back));
    for (int i = 0; i < 8; i++)
        T_CLOSE(back[i], x[i], 1e-5, 1e-5, 0, "x[%d] back", i);
    nvp_scaler_free(s);
}
END_TEST

Suite *data_suite(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("two_moons");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_loop_test(tc, test_two_moons_noiseless_on_arcs, 0, 5);
    tcase_add_test(tc, test_two_moons_noise_statistics);
    tcase_add_test(tc, test_two_moons_reproducible);
    suite_add_tcase(s, tc);
    tc = tcase_create("scaler");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, test_scaler_fit_transform_round_trip);
    tcase_add_test(tc, test_scaler_identity_constant_set);
    tcase_add_test(tc, test_scaler_near_float_max);
    suite_add_tcase(s, tc);
    return s;
}
