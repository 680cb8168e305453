/* SPDX-License-Identifier: MIT */
/* The layer kinds besides the affine coupling -- permutation, ActNorm and
 * the LU-parameterised linear layer -- on their own and in chains:
 * inverse(forward(x)) == x, the log-determinant against a numerically
 * differentiated Jacobian, the hand-written backward against central
 * differences, the data-dependent initialisation (a whitening linear
 * layer is the full-covariance Gaussian fit), and their errors. */
#include <stdlib.h>
#include <string.h>

#include "reference.h"
#include "tests.h"

enum { KD = 4, KN = 24 };

/* A layer of kind k (0 permutation, 1 actnorm, 2 linear) with random
 * parameters near the identity. */
static nvp_layer *make_layer(int k, uint64_t seed)
{
    nvp_layer *l = NULL;
    if (k == 0) {
        nvp_rng *r = t_rng(seed);
        T_OK(nvp_layer_create_random_permutation(&l, KD, r, NULL));
        nvp_rng_free(r);
        return l;
    }
    if (k == 1)
        T_OK(nvp_layer_create_actnorm(&l, KD, NULL));
    else
        T_OK(nvp_layer_create_linear(&l, KD, NULL));
    const size_t np = nvp_layer_num_params(l);
    float *p = t_xmalloc(np * sizeof *p);
    t_prng g;
    t_prng_seed(&g, seed);
    t_fill_normal(&g, np, p, 0.3);
    T_OK(nvp_layer_set_params(l, np, p));
    free(p);
    return l;
}

static const char *const kind_names[] = {"permutation", "actnorm", "linear"};

START_TEST(test_kinds_round_trip_and_logdet)
{
    nvp_layer *l = make_layer(_i, 8100 + (uint64_t)_i);
    ck_assert_str_eq(nvp_layer_kind(l), kind_names[_i]);
    float x[KN * KD], y[KN * KD], back[KN * KD], ld[KN], ildj[KN];
    t_prng g;
    t_prng_seed(&g, 8200 + (uint64_t)_i);
    t_fill_normal(&g, KN * KD, x, 1.0);
    T_OK(nvp_layer_forward(l, KN, x, y, ld));
    T_OK(nvp_layer_inverse(l, KN, y, back, ildj));
    for (size_t i = 0; i < KN * KD; i++)
        T_CLOSE(back[i], x[i], 1e-4, 1e-5, 8200, "%s: x[%zu] after forward and inverse", kind_names[_i], i);
    for (size_t r = 0; r < KN; r++)
        T_CLOSE(ildj[r], -ld[r], 1e-5, 1e-5, 8200, "%s: ildj[%zu] against -logdet", kind_names[_i], r);
    /* log|det dy/dx| against central differences of the forward, in
     * double, for the first rows. */
    for (size_t r = 0; r < 3; r++) {
        double J[KD][KD];
        const double h = 1e-2;
        for (size_t j = 0; j < KD; j++) {
            float xp[KD], xm[KD], yp[KD], ym[KD];
            memcpy(xp, x + r * KD, sizeof xp);
            memcpy(xm, x + r * KD, sizeof xm);
            xp[j] += (float)h;
            xm[j] -= (float)h;
            T_OK(nvp_layer_forward(l, 1, xp, yp, NULL));
            T_OK(nvp_layer_forward(l, 1, xm, ym, NULL));
            for (size_t i = 0; i < KD; i++)
                J[i][j] = ((double)yp[i] - ym[i]) / (2 * h);
        }
        /* log|det J| by Gaussian elimination (reference.c) */
        T_CLOSE(ld[r], ref_log_abs_det(KD, &J[0][0]), 1e-3, 1e-3, 8200, "%s: logdet of row %zu", kind_names[_i], r);
    }
    nvp_layer_free(l);
}
END_TEST

/* L = sum(c . x) + sum(e * ildj) with x = inverse(y): the backward's dL/dy
 * and dL/dparams against central differences. */
START_TEST(test_kinds_backward_matches_differences)
{
    nvp_layer *l = make_layer(_i, 8300 + (uint64_t)_i);
    const size_t np = nvp_layer_num_params(l);
    float y[KN * KD], c[KN * KD], e[KN], dy[KN * KD];
    t_prng g;
    t_prng_seed(&g, 8400 + (uint64_t)_i);
    t_fill_normal(&g, KN * KD, y, 1.0);
    t_fill_normal(&g, KN * KD, c, 1.0);
    t_fill_normal(&g, KN, e, 1.0);
    float *grad = t_xmalloc((np ? np : 1) * sizeof *grad);
    memset(grad, 0, (np ? np : 1) * sizeof *grad);
    T_OK(nvp_layer_inverse_backward(l, KN, y, c, e, dy, np ? grad : NULL));
    float x[KN * KD], ildj[KN];
#define LOSS(out)                                                              \
    do {                                                                       \
        T_OK(nvp_layer_inverse(l, KN, y, x, ildj));                            \
        double s_ = 0.0;                                                       \
        for (size_t i_ = 0; i_ < KN * KD; i_++)                                \
            s_ += (double)c[i_] * x[i_];                                       \
        for (size_t r_ = 0; r_ < KN; r_++)                                     \
            s_ += (double)e[r_] * ildj[r_];                                    \
        (out) = s_;                                                            \
    } while (0)
    const double h = 2e-3;
    for (size_t i = 0; i < KN * KD; i += 5) {
        const float keep = y[i];
        double lp, lm;
        y[i] = keep + (float)h;
        LOSS(lp);
        y[i] = keep - (float)h;
        LOSS(lm);
        y[i] = keep;
        T_CLOSE(dy[i], (lp - lm) / (2 * h), 2e-2, 2e-2, 8400, "%s: dL/dy[%zu]", kind_names[_i], i);
    }
    float *p = t_xmalloc((np ? np : 1) * sizeof *p);
    if (np)
        T_OK(nvp_layer_get_params(l, np, p));
    for (size_t q = 0; q < np; q++) {
        const float keep = p[q];
        double lp, lm;
        p[q] = keep + (float)h;
        T_OK(nvp_layer_set_params(l, np, p));
        LOSS(lp);
        p[q] = keep - (float)h;
        T_OK(nvp_layer_set_params(l, np, p));
        LOSS(lm);
        p[q] = keep;
        T_OK(nvp_layer_set_params(l, np, p));
        T_CLOSE(grad[q], (lp - lm) / (2 * h), 2e-2, 2e-2, 8400, "%s: dL/dparam[%zu]", kind_names[_i], q);
    }
#undef LOSS
    free(p);
    free(grad);
    nvp_layer_free(l);
}
END_TEST

/* Correlated 3-D Gaussian data: z = M u + mu. */
static void correlated_data(size_t n, float *data, uint64_t seed)
{
    static const double M[3][3] = {{1.5, 0, 0}, {0.9, 0.4, 0}, {-0.6, 0.3, 0.2}};
    static const double mu[3] = {2.0, -1.0, 0.5};
    t_prng g;
    t_prng_seed(&g, seed);
    for (size_t r = 0; r < n; r++) {
        double u[3];
        for (int j = 0; j < 3; j++)
            u[j] = t_prng_normal(&g);
        for (int i = 0; i < 3; i++) {
            double s = mu[i];
            for (int j = 0; j < 3; j++)
                s += M[i][j] * u[j];
            data[r * 3 + i] = (float)s;
        }
    }
}

/* A chain of a linear layer alone, initialised from data, is the Gaussian
 * with the data's mean and covariance: its log density matches the one
 * computed here in double. */
START_TEST(test_linear_init_is_gaussian_fit)
{
    enum { N = 2000 };
    float *data = t_xmalloc(N * 3 * sizeof *data);
    correlated_data(N, data, 8500);
    nvp_base *base = NULL;
    nvp_layer *lin = NULL;
    nvp_chain *c = NULL;
    T_OK(nvp_base_create_normal(&base, 3, NULL));
    T_OK(nvp_layer_create_linear(&lin, 3, NULL));
    T_OK(nvp_chain_create_from_layers(&c, base, 1, &lin, NULL));
    T_OK(nvp_chain_init_from_data(c, N, data));
    /* mean and covariance in double */
    double mu[3] = {0, 0, 0}, S[3][3] = {{0}};
    for (size_t r = 0; r < N; r++)
        for (int i = 0; i < 3; i++)
            mu[i] += data[r * 3 + i] / (double)N;
    for (size_t r = 0; r < N; r++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                S[i][j] += (data[r * 3 + i] - mu[i]) * (data[r * 3 + j] - mu[j]) / (double)N;
    /* Cholesky and the Gaussian log density of the first rows */
    double L[3][3] = {{0}};
    for (int j = 0; j < 3; j++) {
        double s = S[j][j];
        for (int k = 0; k < j; k++)
            s -= L[j][k] * L[j][k];
        L[j][j] = sqrt(s);
        for (int i = j + 1; i < 3; i++) {
            double t = S[i][j];
            for (int k = 0; k < j; k++)
                t -= L[i][k] * L[j][k];
            L[i][j] = t / L[j][j];
        }
    }
    float lp[16];
    T_OK(nvp_chain_log_prob(c, 16, data, lp));
    for (size_t r = 0; r < 16; r++) {
        double z[3], q = 0.0;
        for (int i = 0; i < 3; i++) {
            double t = data[r * 3 + i] - mu[i];
            for (int k = 0; k < i; k++)
                t -= L[i][k] * z[k];
            z[i] = t / L[i][i];
            q += z[i] * z[i];
        }
        const double want = -0.5 * q - 1.5 * log(2 * 3.14159265358979323846) - log(L[0][0] * L[1][1] * L[2][2]);
        T_CLOSE(lp[r], want, 1e-4, 1e-3, 8500, "log density of row %zu", r);
    }
    nvp_chain_free(c);
    free(data);
}
END_TEST

/* Columns on very different scales (sd 1e4 and 1, independent) are all
 * whitened by the linear layer's data initialisation: its log density is
 * the Gaussian fit's, which a ridge scaled to the average variance broke
 * (the small column came out with sd 0.14). */
START_TEST(test_linear_init_scales)
{
    enum { N = 4000 };
    float *data = t_xmalloc(2 * N * sizeof *data);
    t_prng g;
    t_prng_seed(&g, 8550);
    double s0 = 0, s1 = 0;
    for (size_t r = 0; r < N; r++) {
        data[2 * r] = (float)(1e4 * t_prng_normal(&g));
        data[2 * r + 1] = (float)t_prng_normal(&g);
    }
    nvp_base *base = NULL;
    nvp_layer *lin = NULL;
    nvp_chain *c = NULL;
    T_OK(nvp_base_create_normal(&base, 2, NULL));
    T_OK(nvp_layer_create_linear(&lin, 2, NULL));
    T_OK(nvp_chain_create_from_layers(&c, base, 1, &lin, NULL));
    T_OK(nvp_chain_init_from_data(c, N, data));
    float *x = t_xmalloc(2 * N * sizeof *x);
    T_OK(nvp_chain_inverse(c, N, data, x, NULL));
    for (size_t r = 0; r < N; r++) {
        s0 += (double)x[2 * r] * x[2 * r] / N;
        s1 += (double)x[2 * r + 1] * x[2 * r + 1] / N;
    }
    T_CLOSE(sqrt(s0), 1.0, 1e-3, 0, 8550, "sd of whitened column 0");
    T_CLOSE(sqrt(s1), 1.0, 1e-3, 0, 8550, "sd of whitened column 1");
    free(x);
    free(data);
    nvp_chain_free(c);
}
END_TEST

/* A mixed chain (actnorm, linear, permutation, couplings that start as
 * the identity) trains: its gradient matches central differences, and
 * training lowers the loss below the initialised Gaussian fit's. */
START_TEST(test_mixed_chain_trains)
{
    enum { N = 1000 };
    float *data = t_xmalloc(N * 3 * sizeof *data);
    correlated_data(N, data, 8600);
    /* bend it: a Gaussian fit is no longer the best */
    for (size_t r = 0; r < N; r++)
        data[r * 3 + 2] += 0.8f * data[r * 3] * data[r * 3];
    nvp_rng *rng = t_rng(8601);
    nvp_base *base = NULL;
    T_OK(nvp_base_create_normal(&base, 3, NULL));
    nvp_layer *layers[6];
    T_OK(nvp_layer_create_actnorm(&layers[0], 3, NULL));
    T_OK(nvp_layer_create_linear(&layers[1], 3, NULL));
    const size_t hidden[2] = {32, 32};
    for (int k = 0; k < 2; k++) {
        nvp_coupling *cp = NULL;
        T_OK(nvp_coupling_create_half(&cp, 3, k, 2, hidden, NVP_INIT_ZERO_OUTPUT, rng, NULL));
        layers[2 + 2 * k] = nvp_coupling_as_layer(cp);
        T_OK(nvp_layer_create_random_permutation(&layers[3 + 2 * k], 3, rng, NULL));
    }
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create_from_layers(&c, base, 6, layers, NULL));
    ck_assert_str_eq(nvp_layer_kind(nvp_chain_layer(c, 2, NULL)), "affine coupling");
    T_CHECK(nvp_layer_as_coupling(nvp_chain_layer(c, 3, NULL)) == NULL, "a permutation is not a coupling");
    T_OK(nvp_chain_init_from_data(c, N, data));
    const size_t np = nvp_chain_num_params(c);
    float *g = t_xmalloc(np * sizeof *g);
    float loss0;
    T_OK(nvp_chain_nll_grad(c, 200, data, g, &loss0));
    /* gradient against central differences, on a sample of parameters */
    float *p = nvp_chain_params(c);
    const double h = 1e-2;
    for (size_t q = 0; q < np; q += np / 23 + 1) {
        const float keep = p[q];
        float lp, lm;
        float *scratch = t_xmalloc(np * sizeof *scratch);
        p[q] = keep + (float)h;
        T_OK(nvp_chain_nll_grad(c, 200, data, scratch, &lp));
        p[q] = keep - (float)h;
        T_OK(nvp_chain_nll_grad(c, 200, data, scratch, &lm));
        p[q] = keep;
        free(scratch);
        T_CLOSE(g[q], ((double)lp - lm) / (2 * h), 5e-2, 5e-3, 8600, "dNLL/dparam[%zu]", q);
    }
    nvp_adam *opt = NULL;
    T_OK(nvp_adam_create(&opt, np, NULL));
    T_OK(nvp_adam_set_lr(opt, 3e-3f));
    float lp0[N], lp1[N];
    T_OK(nvp_chain_log_prob(c, N, data, lp0));
    for (int s = 0; s < 600; s++)
        T_OK(nvp_chain_train_step(c, opt, rng, N, data, 128, NULL));
    T_OK(nvp_chain_log_prob(c, N, data, lp1));
    double m0 = 0, m1 = 0;
    for (size_t r = 0; r < N; r++) {
        m0 += lp0[r] / (double)N;
        m1 += lp1[r] / (double)N;
    }
    T_CHECK(m1 > m0 + 0.2, "training did not improve on the Gaussian fit: %.4f -> %.4f", m0, m1);
    nvp_adam_free(opt);
    nvp_rng_free(rng);
    free(g);
    free(data);
    nvp_chain_free(c);
}
END_TEST

START_TEST(test_kinds_errors)
{
    nvp_layer *l = (nvp_layer *)1;
    const size_t bad[3] = {0, 2, 2}, big[3] = {0, 1, 3};
    ck_assert_int_eq(nvp_layer_create_permutation(&l, 3, bad, NULL), NVP_EINVAL);
    ck_assert_ptr_null(l);
    T_CHECK(strstr(nvp_errmsg(), "repeated") != NULL, "'%s'", nvp_errmsg());
    ck_assert_int_eq(nvp_layer_create_permutation(&l, 3, big, NULL), NVP_EINVAL);
    ck_assert_int_eq(nvp_layer_create_actnorm(&l, 0, NULL), NVP_EINVAL);
    ck_assert_int_eq(nvp_layer_create_linear(NULL, 3, NULL), NVP_EINVAL);
    ck_assert_int_eq(nvp_layer_create_linear(&l, 60000, NULL), NVP_EOVERFLOW);
    /* a layer adopted once cannot be adopted again */
    nvp_base *b1 = NULL, *b2 = NULL;
    nvp_layer *a = NULL;
    T_OK(nvp_base_create_normal(&b1, 3, NULL));
    T_OK(nvp_base_create_normal(&b2, 3, NULL));
    T_OK(nvp_layer_create_actnorm(&a, 3, NULL));
    nvp_chain *c = NULL, *c2 = NULL;
    T_OK(nvp_chain_create_from_layers(&c, b1, 1, &a, NULL));
    ck_assert_int_eq(nvp_chain_create_from_layers(&c2, b2, 1, &a, NULL), NVP_EINVAL);
    /* freeing an adopted layer by mistake does nothing: the chain frees it
     * (a double free here would fail under the sanitizers and valgrind) */
    nvp_layer_free(a);
    nvp_base_free(b2);
    /* init_from_data: bad input changes nothing */
    float data[3 * 4] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 1, 2};
    const size_t np = nvp_chain_num_params(c);
    float before[6], after[6];
    T_OK(nvp_chain_get_params(c, np, before));
    ck_assert_int_eq(nvp_chain_init_from_data(c, 1, data), NVP_EINVAL);
    data[5] = NAN;
    ck_assert_int_eq(nvp_chain_init_from_data(c, 4, data), NVP_ENONFINITE);
    T_OK(nvp_chain_get_params(c, np, after));
    ck_assert(memcmp(before, after, sizeof before) == 0);
    data[5] = 6.0f;
    T_OK(nvp_chain_init_from_data(c, 4, data));
    nvp_chain_free(c);
}
END_TEST

/* A chain with every kind saves as format version 2 (STCK) and loads back
 * to the same model, bit for bit; a layer of an unknown kind, or values a
 * kind refuses, make the file NVP_EFORMAT. */
START_TEST(test_kinds_save_load)
{
    nvp_rng *rng = t_rng(8700);
    nvp_base *base = NULL;
    T_OK(nvp_base_create_normal(&base, KD, NULL));
    nvp_layer *layers[5];
    layers[0] = make_layer(1, 8701);
    layers[1] = make_layer(2, 8702);
    T_OK(nvp_layer_create_random_permutation(&layers[2], KD, rng, NULL));
    nvp_coupling *cp = NULL;
    T_OK(nvp_coupling_create_half(&cp, KD, 1, 1, (const size_t[]){12}, 0, rng, NULL));
    T_OK(nvp_coupling_set_log_scale_clamp(cp, 2.5f));
    layers[3] = nvp_coupling_as_layer(cp);
    const size_t perm[KD] = {2, 0, 3, 1};
    T_OK(nvp_layer_create_permutation(&layers[4], KD, perm, NULL));
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create_from_layers(&c, base, 5, layers, NULL));
    size_t size = 0;
    T_OK(nvp_chain_save_buffer(c, NULL, 0, NULL, &size));
    unsigned char *buf = t_xmalloc(size);
    T_OK(nvp_chain_save_buffer(c, NULL, size, buf, &size));
    ck_assert_int_eq(memcmp(buf, "NVPFLOW\0", 8), 0);
    ck_assert_uint_eq(buf[8], 2);
    nvp_chain *back = NULL;
    T_OK(nvp_chain_load_buffer(&back, NULL, size, buf, NULL));
    ck_assert_uint_eq(nvp_chain_num_layers(back), 5);
    for (size_t k = 0; k < 5; k++)
        ck_assert_str_eq(nvp_layer_kind(nvp_chain_layer(back, k, NULL)),
                         nvp_layer_kind(nvp_chain_layer(c, k, NULL)));
    float y[KD * 40], lp0[40], lp1[40];
    t_prng g;
    t_prng_seed(&g, 8703);
    t_fill_normal(&g, KD * 40, y, 1.0);
    T_OK(nvp_chain_log_prob(c, 40, y, lp0));
    T_OK(nvp_chain_log_prob(back, 40, y, lp1));
    ck_assert(memcmp(lp0, lp1, sizeof lp0) == 0);
    /* saved again: the same bytes */
    size_t size2 = 0;
    unsigned char *buf2 = t_xmalloc(size);
    T_OK(nvp_chain_save_buffer(back, NULL, size, buf2, &size2));
    ck_assert(size2 == size && memcmp(buf, buf2, size) == 0);
    /* The STCK section starts after the 24-byte header and its 12-byte
     * head: dim, base, K, then layer 0's kind.  An unknown kind, and a
     * permutation value out of range, are refused (the CRC recomputed). */
    const size_t body = 24 + 12, len = (size_t)buf[28] | (size_t)buf[29] << 8 | (size_t)buf[30] << 16;
    for (int bad = 0; bad < 2; bad++) {
        memcpy(buf2, buf, size);
        if (bad == 0)
            buf2[body + 12] = 99; /* layer 0's kind */
        else {
            /* layer 2, the random permutation: after actnorm (8 bytes) and
             * linear (8), its kind and count, then its first value */
            buf2[body + 12 + 16 + 8] = 7;
        }
        uint32_t crc = 0xffffffffu;
        for (size_t i = 24; i < body + len; i++) {
            crc ^= buf2[i];
            for (int b = 0; b < 8; b++)
                crc = crc >> 1 ^ (0xedb88320u & -(crc & 1));
        }
        crc = ~crc;
        for (int b = 0; b < 4; b++)
            buf2[body + len + (size_t)b] = (unsigned char)(crc >> (8 * b));
        nvp_chain *x = NULL;
        ck_assert_int_eq(nvp_chain_load_buffer(&x, NULL, size, buf2, NULL), NVP_EFORMAT);
        T_CHECK(strstr(nvp_errmsg(), bad == 0 ? "unknown layer kind 99" : "not a permutation") != NULL,
                "case %d: '%s'", bad, nvp_errmsg());
    }
    /* STCK belongs to version 2: the same file labelled version 1 is
     * refused (the header's CRC recomputed). */
    memcpy(buf2, buf, size);
    buf2[8] = 1;
    uint32_t hc = 0xffffffffu;
    for (size_t i = 0; i < 20; i++) {
        hc ^= buf2[i];
        for (int b = 0; b < 8; b++)
            hc = hc >> 1 ^ (0xedb88320u & -(hc & 1));
    }
    hc = ~hc;
    for (int b = 0; b < 4; b++)
        buf2[20 + b] = (unsigned char)(hc >> (8 * b));
    nvp_chain *v1 = NULL;
    ck_assert_int_eq(nvp_chain_load_buffer(&v1, NULL, size, buf2, NULL), NVP_EFORMAT);
    T_CHECK(strstr(nvp_errmsg(), "format version 1 holds STCK") != NULL, "'%s'", nvp_errmsg());
    free(buf);
    free(buf2);
    nvp_chain_free(back);
    nvp_chain_free(c);
    nvp_rng_free(rng);
}
END_TEST

Suite *layer_kinds_suite(void)
{
    Suite *s = suite_create("layer_kinds");
    TCase *tc = tcase_create("kinds");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_loop_test(tc, test_kinds_round_trip_and_logdet, 0, 3);
    tcase_add_loop_test(tc, test_kinds_backward_matches_differences, 0, 3);
    tcase_add_test(tc, test_linear_init_is_gaussian_fit);
    tcase_add_test(tc, test_linear_init_scales);
    tcase_add_test(tc, test_mixed_chain_trains);
    tcase_add_test(tc, test_kinds_errors);
    tcase_add_test(tc, test_kinds_save_load);
    suite_add_tcase(s, tc);
    return s;
}
