/* SPDX-License-Identifier: MIT */
/* The chain: invertibility, log_prob = base log_prob of the inverse plus
 * the summed ildj, sampling, the double reference, the density's integral,
 * the flat parameter vector, the forward trace, custom chains, non-finite
 * rows, batch independence and concurrent evaluation. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reference.h"
#include "tests.h"

static const size_t chain_dims[] = {2, 3, 5, 8};
static const size_t H86[2] = {8, 6};

/* Builds a chain and its reference; checks the layer structure. */
static nvp_chain *make_chain(size_t dim, size_t n_layers, size_t n_hidden,
                             const size_t *hidden, uint64_t seed,
                             ref_chain *ref, double **params)
{
    nvp_chain *c = t_chain(dim, n_layers, n_hidden, hidden, seed);
    ck_assert_int_eq(ref_chain_init_alternating(ref, dim, n_layers, n_hidden, hidden), 0);
    ck_assert_uint_eq(nvp_chain_dim(c), dim);
    ck_assert_uint_eq(nvp_chain_num_layers(c), n_layers);
    T_CHECK(nvp_chain_num_params(c) == ref->n_params, "dim %zu: %zu parameters, documented layout %zu",
            dim, nvp_chain_num_params(c), ref->n_params);
    if (params) {
        *params = t_xmalloc(ref->n_params * sizeof **params);
        ref_params_from_float(ref->n_params, nvp_chain_params(c), *params);
    }
    return c;
}

START_TEST(test_chain_round_trip)
{
    const size_t dim = chain_dims[_i], n = 50;
    const uint64_t seed = 2000 + dim;
    ref_chain ref;
    nvp_chain *c = make_chain(dim, 4, 2, H86, seed, &ref, NULL);
    float *x = t_xmalloc(n * dim * sizeof *x), *y = t_xmalloc(n * dim * sizeof *y);
    float *z = t_xmalloc(n * dim * sizeof *z), ld[50], ild[50], ld2[50];
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * dim, x, 1.0);
    T_OK(nvp_chain_forward(c, n, x, y, ld));
    T_OK(nvp_chain_inverse(c, n, y, z, ild));
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < dim; j++)
            T_CLOSE(z[i * dim + j], x[i * dim + j], 1e-4, 1e-4, seed,
                    "dim %zu: inverse(forward(x))[%zu][%zu]", dim, i, j);
        T_CLOSE(ild[i], -ld[i], 1e-5, 1e-5, seed, "dim %zu: ildj vs -logdet row %zu", dim, i);
    }
    /* In place, both directions, bitwise equal to out of place. */
    memcpy(z, x, n * dim * sizeof *z);
    T_OK(nvp_chain_forward(c, n, z, z, ld2));
    T_CHECK(t_first_diff(z, y, n * dim) == (size_t)-1 && t_first_diff(ld, ld2, n) == (size_t)-1,
            "dim %zu seed %llu: in-place forward differs", dim, (unsigned long long)seed);
    T_OK(nvp_chain_inverse(c, n, y, x, ild));
    T_OK(nvp_chain_inverse(c, n, z, z, ld2));
    T_CHECK(t_first_diff(z, x, n * dim) == (size_t)-1 && t_first_diff(ild, ld2, n) == (size_t)-1,
            "dim %zu seed %llu: in-place inverse differs", dim, (unsigned long long)seed);
    free(x);
    free(y);
    free(z);
    nvp_chain_free(c);
}
END_TEST

/* log_prob(y) == base log_prob(inverse(y)) + ildj, and agreement of
 * forward, inverse and log_prob with the double reference. */
START_TEST(test_chain_log_prob_and_reference)
{
    const size_t dim = chain_dims[_i], n = 50;
    const uint64_t seed = 2100 + dim;
    ref_chain ref;
    double *prm;
    nvp_chain *c = make_chain(dim, 3, 2, H86, seed, &ref, &prm);
    float *y = t_xmalloc(n * dim * sizeof *y), *x = t_xmalloc(n * dim * sizeof *x);
    float *fy = t_xmalloc(n * dim * sizeof *fy);
    float ild[50], lp[50], blp[50], fld[50];
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * dim, y, 1.2);
    T_OK(nvp_chain_log_prob(c, n, y, lp));
    T_OK(nvp_chain_inverse(c, n, y, x, ild));
    T_OK(nvp_base_log_prob(nvp_chain_base(c), n, x, blp));
    T_OK(nvp_chain_forward(c, n, y, fy, fld));
    ck_assert_uint_eq(nvp_base_dim(nvp_chain_base(c)), dim);
    for (size_t i = 0; i < n; i++) {
        T_CLOSE(lp[i], (double)blp[i] + ild[i], 1e-5, 1e-5, seed,
                "dim %zu: log_prob vs base(inverse) + ildj, row %zu", dim, i);
        double yd[REF_MAX_DIM], xd[REF_MAX_DIM], fd[REF_MAX_DIM], il, fl;
        for (size_t j = 0; j < dim; j++)
            yd[j] = y[i * dim + j];
        ref_chain_inverse(&ref, prm, yd, xd, &il);
        ref_chain_forward(&ref, prm, yd, fd, &fl);
        for (size_t j = 0; j < dim; j++) {
            T_CLOSE(x[i * dim + j], xd[j], 1e-4, 1e-4, seed, "dim %zu: inverse vs reference [%zu][%zu]", dim, i, j);
            T_CLOSE(fy[i * dim + j], fd[j], 1e-4, 1e-4, seed, "dim %zu: forward vs reference [%zu][%zu]", dim, i, j);
        }
        T_CLOSE(ild[i], il, 1e-4, 1e-4, seed, "dim %zu: ildj vs reference row %zu", dim, i);
        T_CLOSE(fld[i], fl, 1e-4, 1e-4, seed, "dim %zu: logdet vs reference row %zu", dim, i);
        T_CLOSE(lp[i], ref_chain_log_prob(&ref, prm, yd), 1e-5, 1e-4, seed,
                "dim %zu: log_prob vs reference row %zu", dim, i);
    }
    free(prm);
    free(y);
    free(x);
    free(fy);
    nvp_chain_free(c);
}
END_TEST

/* nvp_chain_sample: its log_prob equals nvp_chain_log_prob of the samples;
 * the samples are the forward map of base draws from the same seed. */
START_TEST(test_chain_sample_log_prob)
{
    const size_t dim = chain_dims[_i], n = 300;
    const uint64_t seed = 2200 + dim;
    nvp_chain *c = t_chain(dim, 4, 2, H86, seed);
    nvp_rng *r = t_rng(seed);
    float *y = t_xmalloc(n * dim * sizeof *y), *x = t_xmalloc(n * dim * sizeof *x);
    float *y2 = t_xmalloc(n * dim * sizeof *y2);
    float *slp = t_xmalloc(n * sizeof *slp), *lp = t_xmalloc(n * sizeof *lp);
    T_OK(nvp_chain_sample(c, r, n, y, slp));
    T_OK(nvp_chain_log_prob(c, n, y, lp));
    for (size_t i = 0; i < n; i++)
        T_CLOSE(slp[i], lp[i], 1e-4, 1e-4, seed, "dim %zu: sample's log_prob vs log_prob, row %zu", dim, i);
    /* Same seed: base draws pushed forward give the same points. */
    T_OK(nvp_rng_seed(r, seed));
    T_OK(nvp_base_sample(nvp_chain_base(c), r, n, x));
    T_OK(nvp_chain_forward(c, n, x, y2, NULL));
    T_CHECK(t_first_diff(y, y2, n * dim) == (size_t)-1, "dim %zu seed %llu: sample != forward(base sample)",
            dim, (unsigned long long)seed);
    /* Without log_prob the points are the same. */
    T_OK(nvp_rng_seed(r, seed));
    T_OK(nvp_chain_sample(c, r, n, y2, NULL));
    T_CHECK(t_first_diff(y, y2, n * dim) == (size_t)-1, "dim %zu: sample without log_prob differs", dim);
    free(y);
    free(x);
    free(y2);
    free(slp);
    free(lp);
    nvp_rng_free(r);
    nvp_chain_free(c);
}
END_TEST

/* log|det| of the chain's forward map against a Jacobian differentiated in
 * double through the reference. */
START_TEST(test_chain_logdet_matches_jacobian)
{
    const size_t dim = _i == 0 ? 2 : 5;
    const uint64_t seed = 2300 + dim;
    ref_chain ref;
    double *prm;
    nvp_chain *c = make_chain(dim, 3, 2, H86, seed, &ref, &prm);
    t_prng p;
    t_prng_seed(&p, seed);
    for (int trial = 0; trial < 10; trial++) {
        float x[REF_MAX_DIM], y[REF_MAX_DIM], ld;
        t_fill_normal(&p, dim, x, 1.0);
        T_OK(nvp_chain_forward(c, 1, x, y, &ld));
        double J[REF_MAX_DIM * REF_MAX_DIM];
        const double h = 1e-6;
        for (size_t j = 0; j < dim; j++) {
            double xp[REF_MAX_DIM], xm[REF_MAX_DIM], yp[REF_MAX_DIM], ym[REF_MAX_DIM];
            for (size_t k = 0; k < dim; k++)
                xp[k] = xm[k] = x[k];
            xp[j] += h;
            xm[j] -= h;
            ref_chain_forward(&ref, prm, xp, yp, NULL);
            ref_chain_forward(&ref, prm, xm, ym, NULL);
            for (size_t i = 0; i < dim; i++)
                J[i * dim + j] = (yp[i] - ym[i]) / (2 * h);
        }
        T_CLOSE(ld, ref_log_abs_det(dim, J), 1e-4, 1e-4, seed, "dim %zu trial %d: chain logdet vs log|det J|", dim, trial);
    }
    free(prm);
    nvp_chain_free(c);
}
END_TEST

/* The density of a random-init 2-D chain integrates to 1 within 1% over
 * [-8, 8]^2 at spacing 0.04 (midpoint rule; the trained, sharper density
 * is integrated at 0.02 in the train suite), after checking with samples
 * that the box holds essentially all the mass. */
START_TEST(test_chain_density_integrates_to_one)
{
    const uint64_t seed = 2400;
    const size_t hidden[2] = {8, 8};
    nvp_chain *c = t_chain(2, 4, 2, hidden, seed);
    nvp_rng *r = t_rng(seed + 1);
    enum { NS = 20000, G = 400 };
    const double lo = -8.0, h = 0.04;
    float *s = t_xmalloc(2 * NS * sizeof *s);
    T_OK(nvp_chain_sample(c, r, NS, s, NULL));
    size_t outside = 0;
    for (size_t i = 0; i < NS; i++)
        outside += fabs(s[2 * i]) > 7.5 || fabs(s[2 * i + 1]) > 7.5;
    T_CHECK(outside < NS / 1000, "seed %llu: %zu of %d samples outside [-7.5, 7.5]^2: the grid "
            "would miss mass", (unsigned long long)seed, outside, NS);
    float *pts = t_xmalloc(2 * G * sizeof *pts), lp[G];
    double total = 0.0;
    for (size_t a = 0; a < G; a++) {
        for (size_t b = 0; b < G; b++) {
            pts[2 * b] = (float)(lo + h * ((double)a + 0.5));
            pts[2 * b + 1] = (float)(lo + h * ((double)b + 0.5));
        }
        T_OK(nvp_chain_log_prob(c, G, pts, lp));
        for (size_t b = 0; b < G; b++)
            total += exp((double)lp[b]);
    }
    total *= h * h;
    T_CLOSE(total, 1.0, 0, 0.01, seed, "integral of the density over [-8, 8]^2");
    free(s);
    free(pts);
    nvp_rng_free(r);
    nvp_chain_free(c);
}
END_TEST

/* The flat vector: layer k's parameters at its offset, in order; writing
 * through nvp_chain_params changes the model; set/get round trip; layers
 * alternate the half mask. */
START_TEST(test_chain_params_layout)
{
    const uint64_t seed = 2500;
    const size_t dim = 5, K = 3;
    ref_chain ref;
    nvp_chain *c = make_chain(dim, K, 2, H86, seed, &ref, NULL);
    const size_t np = nvp_chain_num_params(c);
    float *flat = nvp_chain_params(c);
    ck_assert_ptr_nonnull(flat);
    float *copy = t_xmalloc(np * sizeof *copy);
    T_OK(nvp_chain_get_params(c, np, copy));
    T_CHECK(t_first_diff(copy, flat, np) == (size_t)-1, "get_params differs from nvp_chain_params");
    size_t expect_off = 0;
    for (size_t k = 0; k < K; k++) {
        size_t off = 12345;
        const nvp_coupling *l = nvp_layer_as_coupling(nvp_chain_layer(c, k, &off));
        ck_assert_ptr_nonnull(l);
        ck_assert_uint_eq(off, expect_off);
        ck_assert_uint_eq(off, ref.offset[k]);
        const size_t lp = nvp_coupling_num_params(l);
        ck_assert_uint_eq(lp, ref.layer[k].n_params);
        float *lprm = t_xmalloc(lp * sizeof *lprm);
        T_OK(nvp_coupling_get_params(l, lp, lprm));
        T_CHECK(t_first_diff(lprm, flat + off, lp) == (size_t)-1, "layer %zu parameters are not at offset %zu", k, off);
        free(lprm);
        unsigned char mask[REF_MAX_DIM];
        T_OK(nvp_coupling_get_mask(l, dim, mask));
        T_CHECK(memcmp(mask, ref.layer[k].mask, dim) == 0, "layer %zu: mask is not the half mask with flip %zu", k, k % 2);
        expect_off += lp;
    }
    ck_assert_uint_eq(expect_off, np);
    ck_assert_ptr_null(nvp_layer_as_coupling(nvp_chain_layer(c, K, NULL)));
    ck_assert_ptr_nonnull(nvp_layer_as_coupling(nvp_chain_layer(c, 0, NULL)));

    /* Writing through the pointer changes what the layers see. */
    const float y[5] = {0.1f, -0.2f, 0.3f, 0.9f, -1.4f};
    float lp0, lp1, lp2;
    T_OK(nvp_chain_log_prob(c, 1, y, &lp0));
    flat[np - 1] += 0.5f; /* the last layer's last output bias: a log-scale */
    flat[3] -= 0.25f;     /* a first-layer weight */
    T_OK(nvp_chain_log_prob(c, 1, y, &lp1));
    double *prm = t_xmalloc(np * sizeof *prm), yd[5];
    ref_params_from_float(np, flat, prm);
    for (int j = 0; j < 5; j++)
        yd[j] = y[j];
    T_CHECK(lp1 != lp0, "writing through nvp_chain_params did not change log_prob");
    T_CLOSE(lp1, ref_chain_log_prob(&ref, prm, yd), 1e-5, 1e-5, seed,
            "log_prob after writing through nvp_chain_params vs reference");
    free(prm);
    /* set_params restores it. */
    T_OK(nvp_chain_set_params(c, np, copy));
    T_OK(nvp_chain_log_prob(c, 1, y, &lp2));
    T_CHECK(lp2 == lp0, "set_params did not restore log_prob: %g vs %g", (double)lp2, (double)lp0);
    free(copy);
    nvp_chain_free(c);
}
END_TEST

/* forward_trace: block 0 is x, block k is layer k applied to block k-1,
 * and the last block equals nvp_chain_forward. */
START_TEST(test_chain_forward_trace)
{
    const uint64_t seed = 2600;
    const size_t dim = 2, K = 4, n = 300;
    nvp_chain *c = t_chain(dim, K, 2, H86, seed);
    float *x = t_xmalloc(n * dim * sizeof *x), *st = t_xmalloc((K + 1) * n * dim * sizeof *st);
    float *y = t_xmalloc(n * dim * sizeof *y);
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * dim, x, 1.0);
    T_OK(nvp_chain_forward_trace(c, n, x, st));
    T_CHECK(t_first_diff(st, x, n * dim) == (size_t)-1, "block 0 is not x");
    for (size_t k = 0; k < K; k++) {
        T_OK(nvp_coupling_forward(nvp_layer_as_coupling(nvp_chain_layer(c, k, NULL)), n, st + k * n * dim, y, NULL));
        const size_t d = t_first_diff(y, st + (k + 1) * n * dim, n * dim);
        T_CHECK(d == (size_t)-1, "seed %llu: block %zu is not layer %zu of block %zu (element %zu)",
                (unsigned long long)seed, k + 1, k + 1, k, d);
    }
    T_OK(nvp_chain_forward(c, n, x, y, NULL));
    T_CHECK(t_first_diff(y, st + K * n * dim, n * dim) == (size_t)-1, "last block differs from forward");
    free(x);
    free(st);
    free(y);
    nvp_chain_free(c);
}
END_TEST

/* A chain built by hand from layers with arbitrary masks and different
 * conditioners: the chain adopts them (same handles, in order) and its
 * log_prob matches the reference. */
START_TEST(test_chain_custom_layers)
{
    const uint64_t seed = 2700;
    const size_t dim = 4, n = 40;
    const unsigned char masks[3][4] = {{1, 0, 0, 1}, {0, 1, 1, 0}, {0, 0, 1, 0}};
    const size_t hid[3][2] = {{7, 3}, {5, 0}, {9, 4}};
    const size_t nh[3] = {2, 1, 2};
    nvp_rng *r = t_rng(seed);
    nvp_base *b = NULL;
    T_OK(nvp_base_create_normal(&b, dim, NULL));
    nvp_coupling *layers[3];
    ref_coupling rl[3];
    for (int k = 0; k < 3; k++) {
        T_OK(nvp_coupling_create(&layers[k], dim, masks[k], nh[k], hid[k], 0, r, NULL));
        ck_assert_int_eq(ref_coupling_init(&rl[k], dim, masks[k], nh[k], hid[k]), 0);
    }
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create(&c, b, 3, layers, NULL));
    ck_assert_ptr_eq(nvp_chain_base(c), b);
    for (size_t k = 0; k < 3; k++)
        ck_assert_ptr_eq(nvp_layer_as_coupling(nvp_chain_layer(c, k, NULL)), layers[k]);
    ref_chain ref;
    ref_chain_init_layers(&ref, rl, 3);
    ck_assert_uint_eq(nvp_chain_num_params(c), ref.n_params);
    double *prm = t_xmalloc(ref.n_params * sizeof *prm);
    ref_params_from_float(ref.n_params, nvp_chain_params(c), prm);
    float y[40 * 4], lp[40];
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * dim, y, 1.0);
    T_OK(nvp_chain_log_prob(c, n, y, lp));
    for (size_t i = 0; i < n; i++)
        T_CLOSE(lp[i], ref_chain_log_prob_f(&ref, prm, y + i * dim), 1e-5, 1e-4, seed, "custom chain log_prob row %zu", i);
    /* Round trip through the arbitrary masks, in place. */
    float z[40 * 4];
    memcpy(z, y, sizeof z);
    T_OK(nvp_chain_forward(c, n, z, z, NULL));
    T_OK(nvp_chain_inverse(c, n, z, z, NULL));
    for (size_t i = 0; i < n * dim; i++)
        T_CLOSE(z[i], y[i], 1e-4, 1e-4, seed, "custom chain: inverse(forward(y))[%zu]", i);
    free(prm);
    nvp_chain_free(c); /* frees the base and the layers too */
    nvp_rng_free(r);
}
END_TEST

/* log_prob: NaN exactly for rows holding NaN/inf, finite and unchanged for
 * the others (also at a chunk boundary: on one thread, 1100 rows are two
 * chunks). */
START_TEST(test_chain_log_prob_nonfinite_rows)
{
    const uint64_t seed = 2800;
    const size_t dim = 3, n = 1100;
    nvp_chain *c = t_chain(dim, 3, 2, H86, seed);
    T_OK(nvp_chain_set_threads(c, 1)); /* chunks of 550 rows */
    float *y = t_xmalloc(n * dim * sizeof *y), *lp = t_xmalloc(n * sizeof *lp);
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * dim, y, 1.0);
    const size_t bad[] = {0, 1, 549, 550, 551, 1099};
    const float vals[] = {NAN, INFINITY, -INFINITY, NAN, -NAN, INFINITY};
    for (size_t b = 0; b < 6; b++)
        y[bad[b] * dim + (b % dim)] = vals[b];
    T_OK(nvp_chain_log_prob(c, n, y, lp));
    for (size_t i = 0; i < n; i++) {
        int is_bad = 0;
        for (size_t b = 0; b < 6; b++)
            is_bad |= bad[b] == i;
        if (is_bad) {
            T_CHECK(isnan(lp[i]), "seed %llu: row %zu holds a non-finite value but log_prob is %g",
                    (unsigned long long)seed, i, (double)lp[i]);
        } else {
            float one;
            T_OK(nvp_chain_log_prob(c, 1, y + i * dim, &one));
            T_CHECK(isfinite(lp[i]) && one == lp[i], "seed %llu: good row %zu: %g in the batch, %g alone",
                    (unsigned long long)seed, i, (double)lp[i], (double)one);
        }
    }
    free(y);
    free(lp);
    nvp_chain_free(c);
}
END_TEST

/* A finite point whose inverse overflows float has density 0: log_prob
 * must be -inf (or a finite, very negative number), not NaN, which the
 * header reserves for rows holding NaN or an infinity.  One affine layer
 * (dim 2, mask {1, 0}) with log-scale bias -100: x_1 = (y_1 - shift) e^100
 * overflows for any y_1 != shift. */
START_TEST(test_chain_log_prob_overflowing_inverse)
{
    const unsigned char mask[2] = {1, 0};
    const size_t none[1] = {0};
    nvp_rng *r = t_rng(3200);
    nvp_base *b = NULL;
    nvp_coupling *l = NULL;
    T_OK(nvp_base_create_normal(&b, 2, NULL));
    T_OK(nvp_coupling_create(&l, 2, mask, 0, none, 0, r, NULL));
    /* out = x_0 W + b, W 1 x 2 (shift, log_scale). */
    const float prm[4] = {0.0f, 0.0f, 0.5f, -100.0f};
    T_OK(nvp_coupling_set_params(l, 4, prm));
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create(&c, b, 1, &l, NULL));
    const float y[6] = {0.1f, 1.0f, -2.0f, -3.0f, 7.0f, 0.0f};
    float lp[3];
    const int rc = nvp_chain_log_prob(c, 3, y, lp);
    nvp_chain_free(c);
    nvp_rng_free(r);
    ck_assert_int_eq(rc, NVP_OK);
    for (int i = 0; i < 3; i++)
        T_CHECK(!isnan(lp[i]) && lp[i] < -1e30f,
                "finite point (%g, %g) whose inverse overflows: log_prob %g, want -inf", (double)y[2 * i],
                (double)y[2 * i + 1], (double)lp[i]);
}
END_TEST

/* A chain of zero-output layers is the identity: log_prob equals the base
 * density, samples are standard normal draws. */
START_TEST(test_chain_zero_output_identity)
{
    const uint64_t seed = 2900;
    const size_t dim = 3, n = 100;
    nvp_rng *r = t_rng(seed);
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create_alternating(&c, dim, 4, 2, H86, NVP_INIT_ZERO_OUTPUT, r, NULL));
    float y[300], lp[100], blp[100], x[300];
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * dim, y, 1.0);
    T_OK(nvp_chain_log_prob(c, n, y, lp));
    T_OK(nvp_base_log_prob(nvp_chain_base(c), n, y, blp));
    T_CHECK(t_first_diff(lp, blp, n) == (size_t)-1, "identity chain log_prob differs from the base");
    T_OK(nvp_rng_seed(r, 5));
    T_OK(nvp_chain_sample(c, r, n, y, lp));
    T_OK(nvp_rng_seed(r, 5));
    T_OK(nvp_base_sample(nvp_chain_base(c), r, n, x));
    T_CHECK(t_first_diff(x, y, n * dim) == (size_t)-1, "identity chain samples differ from base draws");
    T_OK(nvp_base_log_prob(nvp_chain_base(c), n, x, blp));
    for (size_t i = 0; i < n; i++)
        T_CLOSE(lp[i], blp[i], 1e-6, 1e-6, seed, "identity chain: sample log_prob row %zu vs base", i);
    nvp_rng_free(r);
    nvp_chain_free(c);
}
END_TEST

/* Concurrent const calls on one chain (allowed by the header) give the
 * serial results. */
typedef struct {
    const nvp_chain *c;
    const float *y;
    size_t n;
    float *lp;
    int rc;
} lp_job;

static void *lp_worker(void *arg)
{
    lp_job *j = arg;
    for (int rep = 0; rep < 5 && j->rc == 0; rep++)
        j->rc = nvp_chain_log_prob(j->c, j->n, j->y, j->lp);
    return NULL;
}

START_TEST(test_chain_concurrent_log_prob)
{
    const uint64_t seed = 3000;
    const size_t dim = 2, n = 700;
    enum { T = 4 };
    nvp_chain *c = t_chain(dim, 4, 2, H86, seed);
    float *y = t_xmalloc(n * dim * sizeof *y), *ser = t_xmalloc(n * sizeof *ser);
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * dim, y, 1.0);
    T_OK(nvp_chain_log_prob(c, n, y, ser));
    pthread_t th[T];
    lp_job jobs[T];
    for (int t = 0; t < T; t++) {
        jobs[t] = (lp_job){c, y, n, t_xmalloc(n * sizeof(float)), 0};
        ck_assert_int_eq(pthread_create(&th[t], NULL, lp_worker, &jobs[t]), 0);
    }
    for (int t = 0; t < T; t++) {
        ck_assert_int_eq(pthread_join(th[t], NULL), 0);
        T_CHECK(jobs[t].rc == 0, "thread %d: log_prob returned %d", t, jobs[t].rc);
        T_CHECK(t_first_diff(jobs[t].lp, ser, n) == (size_t)-1, "thread %d: results differ from serial", t);
        free(jobs[t].lp);
    }
    free(y);
    free(ser);
    nvp_chain_free(c);
}
END_TEST

/* The chain's own thread pool: every batched call gives bitwise the same
 * results for 1, 2 and 3 threads.  Evaluation runs on 2200 rows (in
 * chunks of 734, 550 and 734 rows for 1, 2 and 3 threads, split by
 * rows); the gradient and the training step on a chain wide enough
 * (hidden 64, 64: 256 x 64 x 64 multiply-adds per product) for its
 * products to be split by columns. */
typedef struct {
    float *lp, *smp, *trace, *grad, *grad_all, *trained;
    float loss, loss_all;
} mt_out;

static void mt_run(nvp_chain *cs, nvp_chain *cw, size_t threads, const float *y, size_t n, mt_out *o)
{
    const size_t dim = nvp_chain_dim(cs), K = nvp_chain_num_layers(cs), np = nvp_chain_num_params(cw);
    T_OK(nvp_chain_set_threads(cs, threads));
    T_OK(nvp_chain_set_threads(cw, threads));
    T_CHECK(nvp_chain_threads(cs) == threads, "set_threads(%zu): the chain reports %zu threads", threads,
            nvp_chain_threads(cs));
    o->lp = t_xmalloc(n * sizeof(float));
    o->smp = t_xmalloc(n * dim * sizeof(float));
    o->trace = t_xmalloc((K + 1) * n * dim * sizeof(float));
    o->grad = t_xmalloc(np * sizeof(float));
    o->trained = t_xmalloc(np * sizeof(float));
    T_OK(nvp_chain_log_prob(cs, n, y, o->lp));
    nvp_rng *r = t_rng(3100);
    T_OK(nvp_chain_sample(cs, r, n, o->smp, NULL));
    T_OK(nvp_chain_forward_trace(cs, n, y, o->trace));
    T_OK(nvp_chain_nll_grad(cw, 256, y, o->grad, &o->loss));
    /* n rows: a gradient over several 256-row chunks. */
    o->grad_all = t_xmalloc(np * sizeof(float));
    T_OK(nvp_chain_nll_grad(cw, n, y, o->grad_all, &o->loss_all));
    /* A training step from the same start, then put the start back. */
    float *start = t_xmalloc(np * sizeof *start);
    T_OK(nvp_chain_get_params(cw, np, start));
    nvp_adam *opt = NULL;
    T_OK(nvp_adam_create(&opt, np, NULL));
    T_OK(nvp_chain_train_step(cw, opt, r, n, y, 256, NULL));
    T_OK(nvp_chain_get_params(cw, np, o->trained));
    T_OK(nvp_chain_set_params(cw, np, start));
    free(start);
    nvp_adam_free(opt);
    nvp_rng_free(r);
}

static void mt_free(mt_out *o)
{
    free(o->lp);
    free(o->smp);
    free(o->trace);
    free(o->grad);
    free(o->grad_all);
    free(o->trained);
}

START_TEST(test_chain_threads_bitwise)
{
    const uint64_t seed = 3100;
    const size_t dim = 3, n = 2200, wide[2] = {64, 64};
    nvp_chain *cs = t_chain(dim, 4, 2, H86, seed), *cw = t_chain(dim, 2, 2, wide, seed + 1);
    const size_t np = nvp_chain_num_params(cw), K = 4;
    float *y = t_xmalloc(n * dim * sizeof *y);
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * dim, y, 1.0);
    mt_out ref;
    mt_run(cs, cw, 1, y, n, &ref);
    static const size_t counts[] = {2, 3};
    for (size_t t = 0; t < sizeof counts / sizeof counts[0]; t++) {
        mt_out o;
        mt_run(cs, cw, counts[t], y, n, &o);
        const struct {
            const char *what;
            const float *a, *b;
            size_t len;
        } cmp[] = {
            {"log_prob", o.lp, ref.lp, n},
            {"sample", o.smp, ref.smp, n * dim},
            {"forward_trace", o.trace, ref.trace, (K + 1) * n * dim},
            {"nll_grad", o.grad, ref.grad, np},
            {"nll_grad, 2200 rows", o.grad_all, ref.grad_all, np},
            {"train_step", o.trained, ref.trained, np},
        };
        for (size_t k = 0; k < sizeof cmp / sizeof cmp[0]; k++) {
            const size_t d = t_first_diff(cmp[k].a, cmp[k].b, cmp[k].len);
            T_CHECK(d == (size_t)-1, "seed %llu: %zu threads: %s differs from 1 thread at %zu: %.9g vs %.9g",
                    (unsigned long long)seed, counts[t], cmp[k].what, d, (double)cmp[k].a[d],
                    (double)cmp[k].b[d]);
        }
        T_CHECK(o.loss == ref.loss, "%zu threads: loss %.9g vs %.9g", counts[t], (double)o.loss, (double)ref.loss);
        T_CHECK(o.loss_all == ref.loss_all, "%zu threads: loss of 2200 rows %.9g vs %.9g", counts[t],
                (double)o.loss_all, (double)ref.loss_all);
        mt_free(&o);
    }
    /* 0 selects one thread per online CPU; too many are refused and the
     * setting is kept. */
    T_OK(nvp_chain_set_threads(cs, 0));
    ck_assert_uint_eq(nvp_chain_threads(cs), (size_t)sysconf(_SC_NPROCESSORS_ONLN));
    T_OK(nvp_chain_set_threads(cs, 2));
    ck_assert_int_eq(nvp_chain_set_threads(cs, NVP_MAX_THREADS + 1), NVP_EINVAL);
    ck_assert_uint_eq(nvp_chain_threads(cs), 2);
    ck_assert_uint_eq(nvp_chain_threads(NULL), 0);
    mt_free(&ref);
    free(y);
    nvp_chain_free(cs);
    nvp_chain_free(cw);
}
END_TEST

/* The reference network (2-D, hidden 512, 512) at batch 100: big enough
 * for every parallel path of a training step (the sweep's column blocks,
 * the output layer split by rows, zeroing and checking the million-entry
 * gradient on every thread, Adam split by ranges) to engage.  The
 * gradient, the loss and three training steps agree bit for bit for 1, 2
 * and 3 threads. */
static void wide_run(size_t threads, const float *data, size_t n, float *grad, float *loss, float *trained)
{
    const size_t hidden[2] = {512, 512};
    nvp_chain *c = t_chain(2, 2, 2, hidden, 3200);
    const size_t np = nvp_chain_num_params(c);
    T_OK(nvp_chain_set_threads(c, threads));
    T_OK(nvp_chain_nll_grad(c, 100, data, grad, loss));
    nvp_adam *opt = NULL;
    T_OK(nvp_adam_create(&opt, np, NULL));
    nvp_rng *r = t_rng(3201);
    for (int s = 0; s < 3; s++)
        T_OK(nvp_chain_train_step(c, opt, r, n, data, 100, NULL));
    T_OK(nvp_chain_get_params(c, np, trained));
    nvp_rng_free(r);
    nvp_adam_free(opt);
    nvp_chain_free(c);
}

START_TEST(test_chain_threads_bitwise_reference_size)
{
    const size_t n = 500, hidden[2] = {512, 512};
    nvp_chain *probe = t_chain(2, 2, 2, hidden, 3200);
    const size_t np = nvp_chain_num_params(probe);
    nvp_chain_free(probe);
    float *data = t_xmalloc(n * 2 * sizeof *data);
    nvp_rng *r = t_rng(3202);
    T_OK(nvp_two_moons(r, n, 0.05f, data, NULL));
    nvp_rng_free(r);
    float *g1 = t_xmalloc(np * sizeof *g1), *p1 = t_xmalloc(np * sizeof *p1);
    float *g = t_xmalloc(np * sizeof *g), *p = t_xmalloc(np * sizeof *p);
    float l1, l;
    wide_run(1, data, n, g1, &l1, p1);
    for (size_t threads = 2; threads <= 3; threads++) {
        wide_run(threads, data, n, g, &l, p);
        size_t d = t_first_diff(g, g1, np);
        T_CHECK(d == (size_t)-1, "%zu threads: nll_grad differs from 1 thread at %zu: %.9g vs %.9g", threads, d,
                (double)g[d], (double)g1[d]);
        T_CHECK(l == l1, "%zu threads: loss %.9g vs %.9g", threads, (double)l, (double)l1);
        d = t_first_diff(p, p1, np);
        T_CHECK(d == (size_t)-1, "%zu threads: trained parameters differ from 1 thread at %zu: %.9g vs %.9g",
                threads, d, (double)p[d], (double)p1[d]);
    }
    free(g1);
    free(p1);
    free(g);
    free(p);
    free(data);
}
END_TEST

Suite *chain_suite(void)
{
    Suite *s = suite_create("chain");
    TCase *tc = tcase_create("properties");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_loop_test(tc, test_chain_round_trip, 0, 4);
    tcase_add_loop_test(tc, test_chain_log_prob_and_reference, 0, 4);
    tcase_add_loop_test(tc, test_chain_sample_log_prob, 0, 4);
    tcase_add_loop_test(tc, test_chain_logdet_matches_jacobian, 0, 2);
    tcase_add_test(tc, test_chain_density_integrates_to_one);
    suite_add_tcase(s, tc);
    tc = tcase_create("structure");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, test_chain_params_layout);
    tcase_add_test(tc, test_chain_forward_trace);
    tcase_add_test(tc, test_chain_custom_layers);
    tcase_add_test(tc, test_chain_zero_output_identity);
    suite_add_tcase(s, tc);
    tc = tcase_create("batches");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, test_chain_log_prob_nonfinite_rows);
    tcase_add_test(tc, test_chain_log_prob_overflowing_inverse);
    tcase_add_test(tc, test_chain_concurrent_log_prob);
    tcase_add_test(tc, test_chain_threads_bitwise);
    tcase_add_test(tc, test_chain_threads_bitwise_reference_size);
    suite_add_tcase(s, tc);
    return s;
}
