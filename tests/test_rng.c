/* SPDX-License-Identifier: MIT */
/* The seeded generator: xoshiro256** seeded through splitmix64 (checked
 * against an implementation written here), reproducibility, and the
 * statistics of uniform, normal and index draws. */
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "tests.h"

static const uint64_t seeds[] = {0, 1, 42, 0x123456789abcdefULL,
                                 0xffffffffffffffffULL};
#define N_SEEDS (sizeof seeds / sizeof seeds[0])

/* ---------------------------------------- independent xoshiro256** */
/* From Blackman and Vigna's published reference code. */
typedef struct {
    uint64_t s[4];
} xo_state;

static uint64_t xo_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t xo_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static void xo_seed(xo_state *st, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        st->s[i] = xo_splitmix(&x);
}

static uint64_t xo_next(xo_state *st)
{
    uint64_t *s = st->s;
    const uint64_t result = xo_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = xo_rotl(s[3], 45);
    return result;
}

START_TEST(test_rng_matches_reference_xoshiro)
{
    const uint64_t seed = seeds[_i];
    nvp_rng *r = t_rng(seed);
    xo_state ref;
    xo_seed(&ref, seed);
    for (int i = 0; i < 10000; i++) {
        const uint64_t got = nvp__rng_next(r), want = xo_next(&ref);
        T_CHECK(got == want,
                "seed %llu: output %d is %016llx, reference xoshiro256** "
                "gives %016llx",
                (unsigned long long)seed, i, (unsigned long long)got,
                (unsigned long long)want);
    }
    nvp_rng_free(r);
}
END_TEST

/* Same seed, same stream, for every kind of draw; and the stream does not
 * depend on how the draws are split into calls. */
START_TEST(test_rng_same_seed_same_stream)
{
    const uint64_t seed = seeds[_i];
    enum { N = 1001 };
    float u1[N], u2[N], g1[N], g2[N];
    uint64_t i1[N], i2[N];
    nvp_rng *a = t_rng(seed), *b = t_rng(seed);
    T_OK(nvp_rng_uniform(a, N, u1));
    T_OK(nvp_rng_normal(a, N, g1));
    T_OK(nvp_rng_index(a, N, 1000003, i1));
    /* b draws the same amounts one value (or a few) at a time. */
    for (size_t k = 0; k < N; k += 7)
        T_OK(nvp_rng_uniform(b, k + 7 <= N ? 7 : N - k, u2 + k));
    for (size_t k = 0; k < N; k++)
        T_OK(nvp_rng_normal(b, 1, g2 + k));
    for (size_t k = 0; k < N; k += 2)
        T_OK(nvp_rng_index(b, k + 2 <= N ? 2 : N - k, 1000003, i2 + k));
    size_t d = t_first_diff(u1, u2, N);
    T_CHECK(d == (size_t)-1, "seed %llu: uniform %zu differs: %.9g vs %.9g",
            (unsigned long long)seed, d, (double)u1[d], (double)u2[d]);
    d = t_first_diff(g1, g2, N);
    T_CHECK(d == (size_t)-1, "seed %llu: normal %zu differs: %.9g vs %.9g",
            (unsigned long long)seed, d, (double)g1[d], (double)g2[d]);
    for (size_t k = 0; k < N; k++)
        T_CHECK(i1[k] == i2[k], "seed %llu: index %zu differs: %llu vs %llu",
                (unsigned long long)seed, k, (unsigned long long)i1[k],
                (unsigned long long)i2[k]);
    nvp_rng_free(a);
    nvp_rng_free(b);
}
END_TEST

START_TEST(test_rng_different_seeds_differ)
{
    enum { N = 64 };
    float u[N_SEEDS][N];
    for (size_t s = 0; s < N_SEEDS; s++) {
        nvp_rng *r = t_rng(seeds[s]);
        T_OK(nvp_rng_uniform(r, N, u[s]));
        nvp_rng_free(r);
    }
    for (size_t s = 0; s < N_SEEDS; s++)
        for (size_t t = s + 1; t < N_SEEDS; t++) {
            size_t same = 0;
            for (size_t k = 0; k < N; k++)
                same += u[s][k] == u[t][k];
            /* Two independent streams of 24-bit uniforms share a value at
             * the same position with probability 2^-24 each. */
            T_CHECK(same <= 1, "seeds %llu and %llu: %zu of %d equal draws",
                    (unsigned long long)seeds[s],
                    (unsigned long long)seeds[t], same, N);
        }
    /* Neighbouring seeds too. */
    nvp_rng *a = t_rng(1000), *b = t_rng(1001);
    T_CHECK(nvp__rng_next(a) != nvp__rng_next(b), "seeds 1000 and 1001 start alike");
    nvp_rng_free(a);
    nvp_rng_free(b);
}
END_TEST

START_TEST(test_rng_reseed_restarts)
{
    const uint64_t seed = seeds[_i];
    enum { N = 257 };
    float a[N], b[N], g[N], h[N];
    nvp_rng *r = t_rng(seed);
    T_OK(nvp_rng_uniform(r, N, a));
    T_OK(nvp_rng_normal(r, N, g)); /* odd count: a spare normal is pending */
    T_OK(nvp_rng_seed(r, seed));
    T_OK(nvp_rng_uniform(r, N, b));
    T_OK(nvp_rng_normal(r, N, h));
    size_t d = t_first_diff(a, b, N);
    T_CHECK(d == (size_t)-1, "seed %llu: after reseed uniform %zu: %.9g vs %.9g",
            (unsigned long long)seed, d, (double)a[d], (double)b[d]);
    d = t_first_diff(g, h, N);
    T_CHECK(d == (size_t)-1, "seed %llu: after reseed normal %zu: %.9g vs %.9g",
            (unsigned long long)seed, d, (double)g[d], (double)h[d]);
    /* Reseeding with another seed equals a fresh generator of that seed. */
    nvp_rng *fresh = t_rng(seed ^ 0x5555);
    T_OK(nvp_rng_seed(r, seed ^ 0x5555));
    for (int k = 0; k < 100; k++)
        T_CHECK(nvp__rng_next(r) == nvp__rng_next(fresh),
                "seed %llu: reseeded stream differs at %d",
                (unsigned long long)seed, k);
    nvp_rng_free(fresh);
    nvp_rng_free(r);
}
END_TEST

START_TEST(test_rng_uniform_statistics)
{
    const uint64_t seed = 7;
    enum { N = 100000, BINS = 20 };
    float *u = t_xmalloc(N * sizeof *u);
    nvp_rng *r = t_rng(seed);
    T_OK(nvp_rng_uniform(r, N, u));
    double sum = 0.0, sum2 = 0.0;
    size_t hist[BINS] = {0};
    for (size_t i = 0; i < N; i++) {
        T_CHECK(u[i] >= 0.0f && u[i] < 1.0f, "seed %llu: u[%zu] = %.9g outside [0, 1)",
                (unsigned long long)seed, i, (double)u[i]);
        sum += u[i];
        sum2 += (double)u[i] * u[i];
        hist[(size_t)(u[i] * BINS)]++;
    }
    const double mean = sum / N, var = sum2 / N - mean * mean;
    /* sd of the mean: sqrt(1/12/N) = 0.0009; of the variance ~0.0003. */
    T_CLOSE(mean, 0.5, 0, 0.005, seed, "uniform mean");
    T_CLOSE(var, 1.0 / 12.0, 0, 0.002, seed, "uniform variance");
    double sxy = 0;
    for (size_t i = 0; i + 1 < N; i++)
        sxy += ((double)u[i] - mean) * ((double)u[i + 1] - mean);
    T_CLOSE(sxy / (N - 1) / var, 0.0, 0, 0.016, seed, "lag-1 autocorrelation of uniform draws");
    double chi2 = 0.0;
    const double expect = (double)N / BINS;
    for (int b = 0; b < BINS; b++)
        chi2 += (hist[b] - expect) * (hist[b] - expect) / expect;
    /* 19 degrees of freedom: P(chi2 > 50) is about 1e-4. */
    T_CHECK(chi2 < 50.0, "seed %llu: chi-square of %d bins is %.2f",
            (unsigned long long)seed, BINS, chi2);
    free(u);
    nvp_rng_free(r);
}
END_TEST

START_TEST(test_rng_normal_statistics)
{
    const uint64_t seed = 11;
    enum { N = 100000 };
    float *g = t_xmalloc(N * sizeof *g);
    nvp_rng *r = t_rng(seed);
    T_OK(nvp_rng_normal(r, N, g));
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    size_t within1 = 0;
    for (size_t i = 0; i < N; i++) {
        const double x = g[i];
        T_CHECK(isfinite(x), "seed %llu: normal %zu not finite", (unsigned long long)seed, i);
        s1 += x;
        s2 += x * x;
        s3 += x * x * x;
        s4 += x * x * x * x;
        within1 += fabs(x) < 1.0;
    }
    const double mean = s1 / N, var = s2 / N - mean * mean;
    /* sd of mean 0.0032, of variance 0.0045, of skewness 0.0077, of
     * kurtosis 0.015, of the 1-sigma fraction 0.0015: bounds at ~5 sd. */
    T_CLOSE(mean, 0.0, 0, 0.016, seed, "normal mean");
    T_CLOSE(var, 1.0, 0, 0.025, seed, "normal variance");
    T_CLOSE(s3 / N, 0.0, 0, 0.04, seed, "normal third moment");
    T_CLOSE(s4 / N, 3.0, 0, 0.08, seed, "normal fourth moment");
    T_CLOSE((double)within1 / N, 0.682689492, 0, 0.008, seed,
            "fraction within one sd");
    /* Consecutive draws (including the two of each polar pair) are
     * uncorrelated: lag-1 and lag-2 autocorrelation, sd 0.0032 each. */
    for (int lag = 1; lag <= 2; lag++) {
        double sxy = 0;
        for (size_t i = 0; i + (size_t)lag < N; i++)
            sxy += ((double)g[i] - mean) * ((double)g[i + (size_t)lag] - mean);
        T_CLOSE(sxy / (N - lag) / var, 0.0, 0, 0.016, seed, "lag-%d autocorrelation of normal draws", lag);
    }
    free(g);
    nvp_rng_free(r);
}
END_TEST

START_TEST(test_rng_index_range_and_uniformity)
{
    const uint64_t seed = 13;
    enum { N = 70000, B = 7 };
    uint64_t *idx = t_xmalloc(N * sizeof *idx);
    nvp_rng *r = t_rng(seed);
    T_OK(nvp_rng_index(r, N, B, idx));
    size_t count[B] = {0};
    for (size_t i = 0; i < N; i++) {
        T_CHECK(idx[i] < B, "seed %llu: index %zu = %llu >= %d",
                (unsigned long long)seed, i, (unsigned long long)idx[i], B);
        count[idx[i]]++;
    }
    double chi2 = 0.0;
    for (int b = 0; b < B; b++)
        chi2 += (count[b] - N / (double)B) * (count[b] - N / (double)B) /
                (N / (double)B);
    /* 6 degrees of freedom: P(chi2 > 30) is about 4e-5. */
    T_CHECK(chi2 < 30.0, "seed %llu: chi-square over %d values is %.2f",
            (unsigned long long)seed, B, chi2);

    /* bound 1 gives 0; a bound just above 2^63 (half the raw values are
     * rejected) stays in range and hits both halves. */
    T_OK(nvp_rng_index(r, 100, 1, idx));
    for (int i = 0; i < 100; i++)
        T_CHECK(idx[i] == 0, "bound 1 gave %llu", (unsigned long long)idx[i]);
    const uint64_t big = ((uint64_t)1 << 63) + 12345;
    T_OK(nvp_rng_index(r, 1000, big, idx));
    size_t upper = 0;
    for (int i = 0; i < 1000; i++) {
        T_CHECK(idx[i] < big, "index %llu >= bound %llu",
                (unsigned long long)idx[i], (unsigned long long)big);
        upper += idx[i] >= big / 2;
    }
    T_CHECK(upper > 400 && upper < 600, "seed %llu: %zu of 1000 in the upper half",
            (unsigned long long)seed, upper);
    T_OK(nvp_rng_index(r, 1000, UINT64_MAX, idx));
    for (int i = 0; i < 1000; i++)
        T_CHECK(idx[i] < UINT64_MAX, "index equals UINT64_MAX");
    free(idx);
    nvp_rng_free(r);
}
END_TEST

/* The library's own logarithm (used so that normal draws do not depend on
 * the C library) agrees with libm to a few ulp. */
START_TEST(test_rng_log_portable_accuracy)
{
    t_prng p;
    t_prng_seed(&p, 17);
    double worst = 0.0, worst_x = 0.0;
    for (int i = 0; i < 20000; i++) {
        /* Log-uniform over [1e-300, 1e300], plus the open interval (0, 1)
         * that the polar method uses. */
        const double x = i % 2 ? exp(t_prng_range(&p, -690.0, 690.0))
                               : t_prng_range(&p, 1e-12, 1.0);
        const double got = nvp__log_portable(x), want = log(x);
        const double err = fabs(got - want) / (fabs(want) > 1e-300 ? fabs(want) : 1.0);
        if (err > worst) {
            worst = err;
            worst_x = x;
        }
    }
    T_CHECK(worst < 1e-15, "seed 17: relative error %.3g at x = %.17g", worst, worst_x);
    T_CHECK(nvp__log_portable(1.0) == 0.0, "log(1) = %.17g", nvp__log_portable(1.0));
    T_CLOSE(nvp__log_portable(2.0), 0.69314718055994530942, 2e-16, 0, 0, "log(2)");
    T_CLOSE(nvp__log_portable(0.5), -0.69314718055994530942, 2e-16, 0, 0, "log(0.5)");
}
END_TEST

Suite *rng_suite(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("stream");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_loop_test(tc, test_rng_matches_reference_xoshiro, 0, (int)N_SEEDS);
    tcase_add_loop_test(tc, test_rng_same_seed_same_stream, 0, (int)N_SEEDS);
    tcase_add_test(tc, test_rng_different_seeds_differ);
    tcase_add_loop_test(tc, test_rng_reseed_restarts, 0, 3);
    suite_add_tcase(s, tc);
    tc = tcase_create("statistics");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, test_rng_uniform_statistics);
    tcase_add_test(tc, test_rng_normal_statistics);
    tcase_add_test(tc, test_rng_index_range_and_uniformity);
    tcase_add_test(tc, test_rng_log_portable_accuracy);
    suite_add_tcase(s, tc);
    return s;
}
