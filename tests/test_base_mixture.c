/* SPDX-License-Identifier: MIT */
/* The Gaussian-mixture base: its log density against a double-precision
 * reference written here from the covariances (Gaussian elimination, not
 * the library's Cholesky route), its gradient against central
 * differences of that reference, the moments of its draws, refusals
 * that leave nothing behind, the EM fit (a single component is the
 * maximum-likelihood Gaussian; two separated clusters are found; the
 * same generator state gives the same bits), and a chain over it: its
 * log density, its parameter gradient against finite differences, and
 * a model file that loads to the same bits and saves back to the same
 * bytes, with corrupt mixtures refused. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reference.h"
#include "tests.h"

#define D 3
#define K 2

static const float W[K] = {0.3f, 0.7f};
static const float MU[K * D] = {1.0f, -0.5f, 0.25f, -1.5f, 0.75f, 0.0f};
static const float COV[K * D * D] = {
    1.0f, 0.3f, -0.2f, 0.3f, 0.8f, 0.1f, -0.2f, 0.1f, 0.5f,
    0.4f, -0.1f, 0.0f, -0.1f, 1.5f, 0.6f, 0.0f, 0.6f, 0.9f};

/* log N(x; mu, S) in double: S^-1 (x - mu) and log det S by Gaussian
 * elimination (tests/reference.c), not the library's Cholesky route. */
static double ref_log_normal(const double *x, const float *mu, const float *s)
{
    double a[D * D], d[D], v[D];
    for (int i = 0; i < D * D; i++)
        a[i] = s[i];
    for (int i = 0; i < D; i++)
        d[i] = v[i] = x[i] - mu[i];
    const double logdet = ref_solve_logdet(D, a, v);
    double q = 0.0;
    for (int i = 0; i < D; i++)
        q += d[i] * v[i];
    return -0.5 * q - 0.5 * logdet - 0.5 * D * log(2 * 3.14159265358979323846);
}

static double ref_log_mixture(const double *x)
{
    double s = 0.0;
    for (int k = 0; k < K; k++)
        s += W[k] * exp(ref_log_normal(x, MU + k * D, COV + k * D * D));
    return log(s);
}

static nvp_base *make_base(void)
{
    nvp_base *b = NULL;
    T_OK(nvp_base_create_mixture(&b, D, K, W, MU, COV, NULL));
    return b;
}

START_TEST(test_mixture_log_prob_and_grad)
{
    nvp_base *b = make_base();
    ck_assert_uint_eq(nvp_base_dim(b), D);
    ck_assert_uint_eq(nvp_base_components(b), K);
    ck_assert_int_eq(nvp_base_kind(b), NVP_BASE_MIXTURE);
    ck_assert_int_eq(nvp_base_kind(NULL), -1);
    ck_assert_uint_eq(nvp_base_components(NULL), 0);
    t_prng p;
    t_prng_seed(&p, 11);
    enum { N = 50 };
    float x[N * D], lp[N], g[N * D];
    t_fill_normal(&p, N * D, x, 1.5);
    T_OK(nvp_base_log_prob(b, N, x, lp));
    T_OK(nvp_base_log_prob_grad(b, N, x, g));
    for (int i = 0; i < N; i++) {
        double xd[D];
        for (int j = 0; j < D; j++)
            xd[j] = x[i * D + j];
        T_CLOSE(lp[i], ref_log_mixture(xd), 1e-5, 1e-5, 11, "log p row %d", i);
        for (int j = 0; j < D; j++) {
            const double h = 1e-4;
            double up[D], dn[D];
            memcpy(up, xd, sizeof up);
            memcpy(dn, xd, sizeof dn);
            up[j] += h;
            dn[j] -= h;
            const double fd = (ref_log_mixture(up) - ref_log_mixture(dn)) / (2 * h);
            T_CLOSE(g[i * D + j], fd, 1e-3, 1e-4, 11, "d log p / dx row %d col %d", i, j);
        }
    }
    /* a non-finite row: NaN, as for the normal base */
    x[0] = NAN;
    T_OK(nvp_base_log_prob(b, 1, x, lp));
    T_CHECK(isnan(lp[0]), "NaN row: %g", (double)lp[0]);
    nvp_base_free(b);
}
END_TEST

START_TEST(test_mixture_sample_moments)
{
    nvp_base *b = make_base();
    nvp_rng *r = t_rng(5);
    enum { N = 200000 };
    float *x = t_xmalloc((size_t)N * D * sizeof *x);
    T_OK(nvp_base_sample(b, r, N, x));
    double m[D] = {0}, c[D][D] = {{0}};
    for (size_t i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            m[j] += x[i * D + j] / N;
            for (int q = 0; q < D; q++)
                c[j][q] += (double)x[i * D + j] * x[i * D + q] / N;
        }
    for (int j = 0; j < D; j++) {
        double want_m = 0;
        for (int k = 0; k < K; k++)
            want_m += W[k] * MU[k * D + j];
        T_CLOSE(m[j], want_m, 0, 0.01, 5, "mean %d", j);
        for (int q = 0; q < D; q++) {
            double want = 0; /* E[x x^T] = sum w (S + mu mu^T) */
            for (int k = 0; k < K; k++)
                want += W[k] * (COV[k * D * D + j * D + q] +
                                MU[k * D + j] * MU[k * D + q]);
            T_CLOSE(c[j][q], want, 0, 0.02, 5, "second moment %d,%d", j, q);
        }
    }
    free(x);
    nvp_rng_free(r);
    nvp_base_free(b);
}
END_TEST

START_TEST(test_mixture_refusals)
{
    nvp_base *b = (nvp_base *)&b; /* must come back NULL */
    float cov[K * D * D], w[K], mu[K * D];
    memcpy(cov, COV, sizeof cov);
    memcpy(w, W, sizeof w);
    memcpy(mu, MU, sizeof mu);
    ck_assert_int_eq(nvp_base_create_mixture(NULL, D, K, w, mu, cov, NULL), NVP_EINVAL);
    ck_assert_int_eq(nvp_base_create_mixture(&b, D, K, NULL, mu, cov, NULL), NVP_EINVAL);
    ck_assert_ptr_null(b);
    ck_assert_int_eq(nvp_base_create_mixture(&b, D, 0, w, mu, cov, NULL), NVP_EINVAL);
    ck_assert_int_eq(nvp_base_create_mixture(&b, D, 65, w, mu, cov, NULL), NVP_EINVAL);
    ck_assert_int_eq(nvp_base_create_mixture(&b, 0, K, w, mu, cov, NULL), NVP_EINVAL);
    ck_assert_int_eq(nvp_base_create_mixture(&b, 1025, K, w, mu, cov, NULL), NVP_EINVAL);
    w[1] = 0.0f;
    ck_assert_int_eq(nvp_base_create_mixture(&b, D, K, w, mu, cov, NULL), NVP_EINVAL);
    w[1] = NAN;
    ck_assert_int_eq(nvp_base_create_mixture(&b, D, K, w, mu, cov, NULL), NVP_EINVAL);
    w[1] = W[1];
    mu[4] = INFINITY;
    ck_assert_int_eq(nvp_base_create_mixture(&b, D, K, w, mu, cov, NULL), NVP_EINVAL);
    mu[4] = MU[4];
    cov[D * D + 1] = 0.2f; /* not symmetric */
    ck_assert_int_eq(nvp_base_create_mixture(&b, D, K, w, mu, cov, NULL), NVP_EINVAL);
    cov[D * D + 1] = cov[D * D + D] = 5.0f; /* symmetric, not positive definite */
    ck_assert_int_eq(nvp_base_create_mixture(&b, D, K, w, mu, cov, NULL), NVP_EINVAL);
    T_CHECK(strstr(nvp_errmsg(), "positive definite") != NULL, "message: %s", nvp_errmsg());
    ck_assert_ptr_null(b);
    /* positive definite, but its inverse factor overflows a float: L unit
     * lower-triangular with 10 below the diagonal, covariance L L^T
     * (integers, exact), L^-1's entries up to 10 * 9^46 */
    {
        enum { DB = 48 };
        float *big = t_xmalloc(DB * DB * sizeof *big), one = 1.0f, zero[DB] = {0};
        for (int i = 0; i < DB; i++)
            for (int j = 0; j < DB; j++) {
                const int lo = i < j ? i : j;
                big[i * DB + j] = i == j ? (float)(1 + 100 * i) : (float)(100 * lo + 10);
            }
        ck_assert_int_eq(nvp_base_create_mixture(&b, DB, 1, &one, zero, big, NULL), NVP_EINVAL);
        T_CHECK(strstr(nvp_errmsg(), "fit a float") != NULL, "message: %s", nvp_errmsg());
        ck_assert_ptr_null(b);
        free(big);
    }
    /* weights need not sum to 1: they are normalised */
    cov[D * D + 1] = cov[D * D + D] = -0.1f;
    w[0] = 3.0f;
    w[1] = 7.0f;
    T_OK(nvp_base_create_mixture(&b, D, K, w, mu, cov, NULL));
    nvp_base *ref = make_base();
    float x[D] = {0.1f, 0.2f, 0.3f}, l1, l2;
    T_OK(nvp_base_log_prob(b, 1, x, &l1));
    T_OK(nvp_base_log_prob(ref, 1, x, &l2));
    T_CLOSE(l1, l2, 1e-6, 1e-6, 0, "weights 3:7 against 0.3:0.7");
    nvp_base_free(b);
    nvp_base_free(ref);
    /* every allocation failing in turn: an error, nothing leaked */
    for (size_t at = 0;; at++) {
        t_alloc_state st = {0, 0, at, 0};
        nvp_allocator a = t_counting_allocator(&st);
        nvp_base *f = NULL;
        const int rc = nvp_base_create_mixture(&f, D, K, W, MU, COV, &a);
        if (rc == NVP_OK) {
            nvp_base_free(f);
            ck_assert_uint_eq(st.live, 0);
            break;
        }
        ck_assert_int_eq(rc, NVP_ENOMEM);
        ck_assert_ptr_null(f);
        ck_assert_uint_eq(st.live, 0);
    }
}
END_TEST

/* n rows of two clusters in D dimensions, a fraction `left` at -3, the
 * rest at +3 on the first axis, unit spread (0.3 on the third).  A
 * single Gaussian loses about 0.46 nats a row to the pair. */
static float *clusters(size_t n, uint64_t seed)
{
    t_prng p;
    t_prng_seed(&p, seed);
    float *x = t_xmalloc(n * D * sizeof *x);
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < D; j++)
            x[i * D + j] = (float)(t_prng_normal(&p) * (j == 2 ? 0.3 : 1.0) +
                                   (j == 0 ? (i % 4 == 0 ? -3.0 : 3.0) : 0.0));
    return x;
}

static double mean_lp(const nvp_base *b, size_t n, const float *x)
{
    float *lp = t_xmalloc(n * sizeof *lp);
    T_OK(nvp_base_log_prob(b, n, x, lp));
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += lp[i];
    free(lp);
    return s / (double)n;
}

START_TEST(test_mixture_fit)
{
    enum { N = 2000 };
    float *x = clusters(N, 3), *held = clusters(N, 4);
    /* k = 1: the maximum-likelihood Gaussian, whose mean log density is
     * -(D/2)(1 + log 2 pi) - log det(S)/2 with S the rows' covariance */
    nvp_rng *r = t_rng(9);
    nvp_base *one = NULL, *two = NULL, *again = NULL;
    T_OK(nvp_base_fit_mixture(&one, N, D, x, 1, r, NULL));
    ck_assert_uint_eq(nvp_base_components(one), 1);
    double m[D] = {0}, s[D * D] = {0};
    for (size_t i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            m[j] += x[i * D + j] / (double)N;
    for (size_t i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            for (int q = 0; q < D; q++)
                s[j * D + q] += (x[i * D + j] - m[j]) * (x[i * D + q] - m[q]) / N;
    float sf[D * D], mf[D], wf = 1.0f;
    for (int j = 0; j < D * D; j++)
        sf[j] = (float)s[j];
    for (int j = 0; j < D; j++)
        mf[j] = (float)m[j];
    nvp_base *ml = NULL;
    T_OK(nvp_base_create_mixture(&ml, D, 1, &wf, mf, sf, NULL));
    T_CLOSE(mean_lp(one, N, x), mean_lp(ml, N, x), 0, 1e-4, 9, "k = 1 against the ML Gaussian");
    nvp_base_free(ml);
    /* k = 2 finds the clusters: far better on held-out rows */
    T_OK(nvp_base_fit_mixture(&two, N, D, x, 2, r, NULL));
    const double l1 = mean_lp(one, N, held), l2 = mean_lp(two, N, held);
    T_CHECK(l2 > l1 + 0.4, "held-out: k=2 %g, k=1 %g", l2, l1);
    /* the same generator state, the same base */
    nvp_rng *r2 = t_rng(9);
    nvp_base *tmp = NULL;
    T_OK(nvp_base_fit_mixture(&tmp, N, D, x, 1, r2, NULL));
    T_OK(nvp_base_fit_mixture(&again, N, D, x, 2, r2, NULL));
    float a[16], b2[16];
    T_OK(nvp_base_log_prob(two, 16 / D, held, a));
    T_OK(nvp_base_log_prob(again, 16 / D, held, b2));
    ck_assert_uint_eq(t_first_diff(a, b2, 16 / D), (size_t)-1);
    /* a clone is the same distribution */
    nvp_base *cl = NULL;
    T_OK(nvp_base_clone(two, &cl, NULL));
    T_OK(nvp_base_log_prob(cl, 16 / D, held, b2));
    ck_assert_uint_eq(t_first_diff(a, b2, 16 / D), (size_t)-1);
    /* refusals */
    nvp_base *bad = NULL;
    ck_assert_int_eq(nvp_base_fit_mixture(&bad, 1, D, x, 2, r, NULL), NVP_EINVAL);
    x[5] = NAN;
    ck_assert_int_eq(nvp_base_fit_mixture(&bad, N, D, x, 2, r, NULL), NVP_ENONFINITE);
    ck_assert_int_eq(nvp_base_fit_mixture(&bad, N, D, x, 2, NULL, NULL), NVP_EINVAL);
    ck_assert_ptr_null(bad);
    /* rows all alike: a singular covariance, regularised, still a base */
    for (size_t i = 0; i < N * D; i++)
        x[i] = 1.0f;
    T_OK(nvp_base_fit_mixture(&bad, N, D, x, 2, r, NULL));
    T_CHECK(isfinite(mean_lp(bad, N, x)), "duplicated rows");
    nvp_base_free(bad);
    nvp_base_free(cl);
    nvp_base_free(tmp);
    nvp_base_free(again);
    nvp_base_free(two);
    nvp_base_free(one);
    nvp_rng_free(r2);
    nvp_rng_free(r);
    free(held);
    free(x);
}
END_TEST

static const size_t HIDDEN[1] = {8};

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int b = 0; b < 8; b++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}

/* The model file buf with the float at byte off of its BASE section's
 * payload (or the u32, with as_u32) replaced and the section's CRC made
 * valid again: the loader must refuse it as malformed. */
static void refuse_patched(const unsigned char *buf, size_t size, size_t off,
                           float f, int as_u32, uint32_t u)
{
    unsigned char *bad = t_xmalloc(size);
    memcpy(bad, buf, size);
    size_t at = 0;
    while (at + 4 <= size && memcmp(bad + at, "BASE", 4) != 0)
        at++;
    T_CHECK(at + 4 <= size, "no BASE section");
    uint64_t len = 0;
    for (int i = 0; i < 8; i++)
        len |= (uint64_t)bad[at + 4 + i] << (8 * i);
    uint32_t v = u;
    if (!as_u32)
        memcpy(&v, &f, 4);
    for (int i = 0; i < 4; i++)
        bad[at + 12 + off + i] = (unsigned char)(v >> (8 * i));
    const uint32_t crc = crc32_of(bad + at, 12 + len);
    for (int i = 0; i < 4; i++)
        bad[at + 12 + len + i] = (unsigned char)(crc >> (8 * i));
    nvp_chain *l = NULL;
    const int rc = nvp_chain_load_buffer(&l, NULL, size, bad, NULL);
    T_CHECK(rc == NVP_EFORMAT && !l, "patched BASE at %zu loaded (rc %d)", off, rc);
    free(bad);
}

START_TEST(test_mixture_chain)
{
    nvp_chain *c = t_chain(D, 2, 1, HIDDEN, 21);
    nvp_base *b = make_base();
    nvp_base *wrong = NULL;
    T_OK(nvp_base_create_normal(&wrong, D + 1, NULL));
    ck_assert_int_eq(nvp_chain_set_base(c, wrong), NVP_EDIM);
    ck_assert_int_eq(nvp_chain_set_base(NULL, b), NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_set_base(c, NULL), NVP_EINVAL);
    nvp_base_free(wrong); /* still the caller's */
    T_OK(nvp_chain_set_base(c, b));
    ck_assert_int_eq(nvp_chain_set_base(c, b), NVP_EINVAL);
    /* a base another chain holds is refused too (no double free) */
    nvp_chain *other = t_chain(D, 2, 1, HIDDEN, 22);
    ck_assert_int_eq(nvp_chain_set_base(other, b), NVP_EINVAL);
    nvp_layer *lay = NULL;
    T_OK(nvp_layer_create_actnorm(&lay, D, NULL));
    nvp_chain *third = NULL;
    ck_assert_int_eq(nvp_chain_create_from_layers(&third, b, 1, &lay, NULL), NVP_EINVAL);
    ck_assert_ptr_null(third);
    nvp_layer_free(lay);
    nvp_chain_free(other);
    ck_assert_uint_eq(nvp_base_components(nvp_chain_base(c)), K);
    /* log p(y) = log p_base(f^-1(y)) + ildj */
    t_prng p;
    t_prng_seed(&p, 21);
    enum { N = 32 };
    float y[N * D], z[N * D], ildj[N], lp[N], lb[N];
    t_fill_normal(&p, N * D, y, 1.0);
    T_OK(nvp_chain_inverse(c, N, y, z, ildj));
    T_OK(nvp_base_log_prob(b, N, z, lb));
    T_OK(nvp_chain_log_prob(c, N, y, lp));
    for (int i = 0; i < N; i++)
        T_CLOSE(lp[i], (double)lb[i] + ildj[i], 1e-5, 1e-5, 21, "row %d", i);
    /* the parameter gradient of the NLL against central differences */
    const size_t np = nvp_chain_num_params(c);
    float *g = t_xmalloc(np * sizeof *g), *th = t_xmalloc(np * sizeof *th);
    float *scratch = t_xmalloc(np * sizeof *scratch);
    float loss;
    T_OK(nvp_chain_nll_grad(c, N, y, g, &loss));
    memcpy(th, nvp_chain_params(c), np * sizeof *th);
    for (size_t k = 0; k < np; k += 7) {
        const float h = 1e-2f, keep = th[k];
        float up, dn;
        th[k] = keep + h;
        T_OK(nvp_chain_set_params(c, np, th));
        T_OK(nvp_chain_nll_grad(c, N, y, scratch, &up));
        th[k] = keep - h;
        T_OK(nvp_chain_set_params(c, np, th));
        T_OK(nvp_chain_nll_grad(c, N, y, scratch, &dn));
        th[k] = keep;
        T_CLOSE(g[k], ((double)up - dn) / (2 * h), 0.05, 2e-3, 21, "d nll / d theta[%zu]", k);
    }
    T_OK(nvp_chain_set_params(c, np, th));
    /* sampling goes through the mixture too: its log densities are the
     * chain's of the draws */
    nvp_rng *r = t_rng(3);
    float ls[N];
    T_OK(nvp_chain_sample(c, r, N, z, ls));
    T_OK(nvp_chain_log_prob(c, N, z, lb));
    for (int i = 0; i < N; i++)
        T_CLOSE(ls[i], lb[i], 1e-4, 1e-4, 3, "draw %d", i);
    /* save, load: the same densities; saving again: the same bytes */
    size_t size = 0;
    T_OK(nvp_chain_save_buffer(c, NULL, 0, NULL, &size));
    unsigned char *buf = t_xmalloc(size), *buf2 = t_xmalloc(size);
    T_OK(nvp_chain_save_buffer(c, NULL, size, buf, &size));
    nvp_chain *l = NULL;
    T_OK(nvp_chain_load_buffer(&l, NULL, size, buf, NULL));
    float lp2[N];
    T_OK(nvp_chain_log_prob(l, N, y, lp2));
    ck_assert_uint_eq(t_first_diff(lp, lp2, N), (size_t)-1);
    size_t size2 = 0;
    T_OK(nvp_chain_save_buffer(l, NULL, size, buf2, &size2));
    ck_assert_uint_eq(size2, size);
    ck_assert_int_eq(memcmp(buf, buf2, size), 0);
    /* corrupt mixtures with valid CRCs: k 0 or 65, a zero weight, weights
     * not summing to 1, a mean or a factor entry that is not finite, a
     * negative diagonal; offsets into the payload: u32 k, u32 dim, then
     * the K weights, the K * D means and the packed triangles */
    const size_t tri = 8 + 4 * (K + K * D);
    refuse_patched(buf, size, 0, 0, 1, 0);
    refuse_patched(buf, size, 0, 0, 1, 65);
    refuse_patched(buf, size, 4, 0, 1, D + 1);
    refuse_patched(buf, size, 8, 0.0f, 0, 0);
    refuse_patched(buf, size, 8, 0.9f, 0, 0);
    refuse_patched(buf, size, 8 + 4 * K, NAN, 0, 0);
    refuse_patched(buf, size, tri, -1.0f, 0, 0);
    refuse_patched(buf, size, tri + 4, INFINITY, 0, 0);
    /* and any byte flipped without fixing the CRC */
    for (size_t pos = 0; pos < size; pos += 5) {
        buf2[pos] ^= 0x40;
        nvp_chain *f = NULL;
        T_CHECK(nvp_chain_load_buffer(&f, NULL, size, buf2, NULL) == NVP_EFORMAT && !f,
                "byte %zu flipped: loaded", pos);
        buf2[pos] ^= 0x40;
    }
    nvp_chain_free(l);
    free(buf2);
    free(buf);
    nvp_rng_free(r);
    free(scratch);
    free(th);
    free(g);
    nvp_chain_free(c);
}
END_TEST

Suite *base_mixture_suite(void)
{
    Suite *s = suite_create("base_mixture");
    TCase *tc = tcase_create("mixture");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, test_mixture_log_prob_and_grad);
    tcase_add_test(tc, test_mixture_sample_moments);
    tcase_add_test(tc, test_mixture_refusals);
    tcase_add_test(tc, test_mixture_fit);
    tcase_add_test(tc, test_mixture_chain);
    suite_add_tcase(s, tc);
    return s;
}
