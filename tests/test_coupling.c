/* SPDX-License-Identifier: MIT */
/* The affine coupling layer: invertibility, agreement with the double
 * reference, log-determinant against a numerically differentiated
 * Jacobian, parameter layout and initialisation, batch independence and
 * non-finite rows. */
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "tests.h"

enum { NPTS = 40 };

/* inverse(forward(x)) == x and forward(inverse(y)) == y, logdet = -ildj,
 * and the in-place calls (same pointer) give the same bits. */
START_TEST(test_coupling_round_trip)
{
    const t_layer_cfg *cfg = &t_layer_cfgs[_i];
    const uint64_t seed = 500 + (uint64_t)_i;
    const size_t dim = cfg->dim, n = NPTS;
    char name[96];
    t_layer_cfg_name(cfg, name, sizeof name);
    ref_coupling ref;
    nvp_coupling *layer = t_layer_make(cfg, seed, 0, &ref);
    float *x = t_xmalloc(n * dim * sizeof *x), *y = t_xmalloc(n * dim * sizeof *y);
    float *x2 = t_xmalloc(n * dim * sizeof *x2), *z = t_xmalloc(n * dim * sizeof *z);
    float ld[NPTS], ild[NPTS], ld2[NPTS];
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * dim, x, 1.5);

    T_OK(nvp_coupling_forward(layer, n, x, y, ld));
    T_OK(nvp_coupling_inverse(layer, n, y, x2, ild));
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < dim; j++)
            T_CLOSE(x2[i * dim + j], x[i * dim + j], 1e-5, 1e-5, seed,
                    "%s: inverse(forward(x))[%zu][%zu]", name, i, j);
        T_CLOSE(ild[i], -ld[i], 1e-6, 1e-6, seed, "%s: ildj of forward's output vs -logdet, row %zu", name, i);
    }
    /* The other way round. */
    T_OK(nvp_coupling_inverse(layer, n, x, z, NULL));
    T_OK(nvp_coupling_forward(layer, n, z, x2, NULL));
    for (size_t i = 0; i < n * dim; i++)
        T_CLOSE(x2[i], x[i], 1e-5, 1e-5, seed, "%s: forward(inverse(y))[%zu]", name, i);

    /* In place. */
    memcpy(z, x, n * dim * sizeof *z);
    T_OK(nvp_coupling_forward(layer, n, z, z, ld2));
    size_t d = t_first_diff(z, y, n * dim);
    T_CHECK(d == (size_t)-1, "%s seed %llu: in-place forward differs at %zu: %.9g vs %.9g",
            name, (unsigned long long)seed, d, (double)z[d], (double)y[d]);
    d = t_first_diff(ld2, ld, n);
    T_CHECK(d == (size_t)-1, "%s: in-place logdet differs at %zu", name, d);
    /* z now holds y: inverting it in place equals the out-of-place
     * inverse of y computed above (x2 was overwritten, so recompute). */
    T_OK(nvp_coupling_inverse(layer, n, y, x2, ild));
    T_OK(nvp_coupling_inverse(layer, n, z, z, ld2));
    d = t_first_diff(z, x2, n * dim);
    T_CHECK(d == (size_t)-1, "%s: in-place inverse differs at %zu: %.9g vs %.9g",
            name, d, (double)z[d], (double)x2[d]);
    d = t_first_diff(ld2, ild, n);
    T_CHECK(d == (size_t)-1, "%s: in-place ildj differs at %zu", name, d);
    free(x);
    free(y);
    free(x2);
    free(z);
    nvp_coupling_free(layer);
}
END_TEST

/* Forward and inverse (points and log-determinants) agree with the double
 * reference evaluated at the layer's own parameters. */
START_TEST(test_coupling_matches_reference)
{
    const t_layer_cfg *cfg = &t_layer_cfgs[_i];
    const uint64_t seed = 600 + (uint64_t)_i;
    const size_t dim = cfg->dim, n = NPTS;
    char name[96];
    t_layer_cfg_name(cfg, name, sizeof name);
    ref_coupling ref;
    nvp_coupling *layer = t_layer_make(cfg, seed, 0, &ref);
    double *prm = t_layer_params(layer);
    float *x = t_xmalloc(n * dim * sizeof *x), *y = t_xmalloc(n * dim * sizeof *y);
    float *xi = t_xmalloc(n * dim * sizeof *xi);
    float ld[NPTS], ild[NPTS];
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * dim, x, 1.5);
    T_OK(nvp_coupling_forward(layer, n, x, y, ld));
    T_OK(nvp_coupling_inverse(layer, n, x, xi, ild));
    for (size_t i = 0; i < n; i++) {
        double xd[REF_MAX_DIM], yd[REF_MAX_DIM], id[REF_MAX_DIM], l, il;
        for (size_t j = 0; j < dim; j++)
            xd[j] = x[i * dim + j];
        ref_coupling_forward(&ref, prm, xd, yd, &l);
        ref_coupling_inverse(&ref, prm, xd, id, &il);
        for (size_t j = 0; j < dim; j++) {
            T_CLOSE(y[i * dim + j], yd[j], 2e-5, 2e-5, seed, "%s: forward row %zu dim %zu", name, i, j);
            T_CLOSE(xi[i * dim + j], id[j], 2e-5, 2e-5, seed, "%s: inverse row %zu dim %zu", name, i, j);
            if (ref.mask[j])
                T_CHECK(y[i * dim + j] == x[i * dim + j] && xi[i * dim + j] == x[i * dim + j],
                        "%s: conditioned dim %zu of row %zu changed", name, j, i);
        }
        T_CLOSE(ld[i], l, 1e-5, 1e-5, seed, "%s: logdet row %zu", name, i);
        T_CLOSE(ild[i], il, 1e-5, 1e-5, seed, "%s: ildj row %zu", name, i);
    }
    free(prm);
    free(x);
    free(y);
    free(xi);
    nvp_coupling_free(layer);
}
END_TEST

/* log|det dy/dx| from nvp_coupling_forward equals log|det J| of a Jacobian
 * differentiated numerically: in double through the reference, and in
 * float through the library itself. */
START_TEST(test_coupling_logdet_matches_jacobian)
{
    const t_layer_cfg *cfg = &t_layer_cfgs[_i];
    const uint64_t seed = 700 + (uint64_t)_i;
    const size_t dim = cfg->dim;
    char name[96];
    t_layer_cfg_name(cfg, name, sizeof name);
    ref_coupling ref;
    nvp_coupling *layer = t_layer_make(cfg, seed, 0, &ref);
    double *prm = t_layer_params(layer);
    t_prng p;
    t_prng_seed(&p, seed);
    for (int trial = 0; trial < 8; trial++) {
        float x[REF_MAX_DIM], y[REF_MAX_DIM], ld;
        t_fill_normal(&p, dim, x, 1.5);
        T_OK(nvp_coupling_forward(layer, 1, x, y, &ld));

        /* Central differences in double through the reference. */
        double J[REF_MAX_DIM * REF_MAX_DIM];
        const double h = 1e-6;
        for (size_t j = 0; j < dim; j++) {
            double xp[REF_MAX_DIM], xm[REF_MAX_DIM], yp[REF_MAX_DIM], ym[REF_MAX_DIM];
            for (size_t k = 0; k < dim; k++)
                xp[k] = xm[k] = x[k];
            xp[j] += h;
            xm[j] -= h;
            ref_coupling_forward(&ref, prm, xp, yp, NULL);
            ref_coupling_forward(&ref, prm, xm, ym, NULL);
            for (size_t i = 0; i < dim; i++)
                J[i * dim + j] = (yp[i] - ym[i]) / (2 * h);
        }
        const double ld_ref = ref_log_abs_det(dim, J);
        T_CLOSE(ld, ld_ref, 1e-5, 2e-5, seed, "%s: trial %d: logdet vs log|det J| (double FD)", name, trial);

        /* Central differences in float through the library. */
        const float hf = 1e-2f;
        float xs[2 * REF_MAX_DIM * REF_MAX_DIM], ys[2 * REF_MAX_DIM * REF_MAX_DIM];
        for (size_t j = 0; j < dim; j++)
            for (int s = 0; s < 2; s++) {
                float *row = xs + (2 * j + (size_t)s) * dim;
                memcpy(row, x, dim * sizeof *row);
                row[j] += s ? -hf : hf;
            }
        T_OK(nvp_coupling_forward(layer, 2 * dim, xs, ys, NULL));
        for (size_t j = 0; j < dim; j++)
            for (size_t i = 0; i < dim; i++)
                J[i * dim + j] = ((double)ys[(2 * j) * dim + i] -
                                  (double)ys[(2 * j + 1) * dim + i]) /
                                 ((double)(x[j] + hf) - (double)(x[j] - hf));
        const double ld_lib = ref_log_abs_det(dim, J);
        T_CLOSE(ld, ld_lib, 0, 1e-3 * (double)dim, seed, "%s: trial %d: logdet vs log|det J| (float FD through the library)", name, trial);
    }
    free(prm);
    nvp_coupling_free(layer);
}
END_TEST

/* A hand-computed example of the documented layout: dim 3, mask {0,1,0}
 * (a = {1}, b = {0, 2}), affine conditioner out = x_a W + b with W 1 x 4;
 * outputs 0,1 are the shifts of b-dims 0 and 2, outputs 2,3 their
 * log-scales. */
START_TEST(test_coupling_layout_by_hand)
{
    const unsigned char mask[3] = {0, 1, 0};
    const size_t hidden_none[1] = {0};
    nvp_rng *rng = t_rng(1);
    nvp_coupling *l = NULL;
    T_OK(nvp_coupling_create(&l, 3, mask, 0, hidden_none, 0, rng, NULL));
    ck_assert_uint_eq(nvp_coupling_num_params(l), 8);
    const float prm[8] = {0.5f, -0.25f, 0.1f, -0.3f, /* W */
                          1.0f, 2.0f, 0.2f, 0.4f};   /* b */
    T_OK(nvp_coupling_set_params(l, 8, prm));
    float back[8];
    T_OK(nvp_coupling_get_params(l, 8, back));
    ck_assert_int_eq(memcmp(back, prm, sizeof prm), 0);
    const float x[3] = {0.7f, -1.3f, 2.2f};
    float y[3], ld, xi[3], ild;
    T_OK(nvp_coupling_forward(l, 1, x, y, &ld));
    const double xa = x[1];
    const double sh0 = xa * 0.5 + 1.0, sh1 = xa * -0.25 + 2.0;
    const double ls0 = xa * 0.1 + 0.2, ls1 = xa * -0.3 + 0.4;
    T_CLOSE(y[0], x[0] * exp(ls0) + sh0, 1e-6, 1e-6, 1, "y0");
    T_CLOSE(y[1], x[1], 0, 0, 1, "y1 (conditioned)");
    T_CLOSE(y[2], x[2] * exp(ls1) + sh1, 1e-6, 1e-6, 1, "y2");
    T_CLOSE(ld, ls0 + ls1, 1e-6, 1e-6, 1, "logdet");
    T_OK(nvp_coupling_inverse(l, 1, x, xi, &ild));
    T_CLOSE(xi[0], (x[0] - sh0) * exp(-ls0), 1e-6, 1e-6, 1, "inverse x0");
    T_CLOSE(xi[2], (x[2] - sh1) * exp(-ls1), 1e-6, 1e-6, 1, "inverse x2");
    T_CLOSE(ild, -(ls0 + ls1), 1e-6, 1e-6, 1, "ildj");

    /* One hidden layer of width 2, to pin W's row-major fan_in x fan_out
     * order and the ReLU: dim 4 half mask, a = {0, 1}, b = {2, 3}. */
    const size_t h2[1] = {2};
    nvp_coupling *m = NULL;
    T_OK(nvp_coupling_create_half(&m, 4, 0, 1, h2, 0, rng, NULL));
    ck_assert_uint_eq(nvp_coupling_num_params(m), 2 * 2 + 2 + 2 * 4 + 4);
    float q[18] = {
        1.0f, -2.0f, /* W1 row 0 (from x0) */
        0.5f, 3.0f,  /* W1 row 1 (from x1) */
        0.1f, -0.2f, /* b1 */
        /* W2 (2 x 4): rows are hidden units, columns sh2 sh3 ls2 ls3 */
        1.0f, 0.0f, 0.3f, 0.0f,
        0.0f, -1.0f, 0.0f, 0.2f,
        0.0f, 0.5f, 0.0f, -0.1f, /* b2 */
    };
    T_OK(nvp_coupling_set_params(m, 18, q));
    const float u[4] = {0.4f, 0.6f, 1.5f, -0.5f};
    float v[4], lv;
    T_OK(nvp_coupling_forward(m, 1, u, v, &lv));
    double hid0 = 0.4 * 1.0 + 0.6 * 0.5 + 0.1;   /* 0.8  */
    double hid1 = 0.4 * -2.0 + 0.6 * 3.0 - 0.2;  /* 0.8  */
    hid0 = hid0 > 0 ? hid0 : 0;
    hid1 = hid1 > 0 ? hid1 : 0;
    const double s2 = hid0 * 1.0, s3 = -hid1 + 0.5;
    const double l2 = hid0 * 0.3, l3 = hid1 * 0.2 - 0.1;
    T_CLOSE(v[2], 1.5 * exp(l2) + s2, 1e-6, 1e-6, 2, "hidden example y2");
    T_CLOSE(v[3], -0.5 * exp(l3) + s3, 1e-6, 1e-6, 2, "hidden example y3");
    T_CLOSE(lv, l2 + l3, 1e-6, 1e-6, 2, "hidden example logdet");
    /* Now make hidden unit 1 negative: the ReLU must cut it. */
    const float u2[4] = {0.4f, -0.6f, 1.5f, -0.5f};
    T_OK(nvp_coupling_forward(m, 1, u2, v, &lv));
    hid0 = 0.4 - 0.3 + 0.1;        /* 0.2 */
    hid1 = -0.8 - 1.8 - 0.2;       /* < 0 -> 0 */
    hid1 = hid1 > 0 ? hid1 : 0;
    T_CLOSE(v[3], -0.5 * exp(hid1 * 0.2 - 0.1) + (-hid1 + 0.5), 1e-6, 1e-6, 3, "ReLU example y3");
    T_CLOSE(lv, hid0 * 0.3 + hid1 * 0.2 - 0.1, 1e-6, 1e-6, 3, "ReLU example logdet");
    nvp_coupling_free(m);
    nvp_coupling_free(l);
    nvp_rng_free(rng);
}
END_TEST

/* PyTorch's default initialisation U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
 * every weight and bias, checked on the default conditioner (1 -> 512 ->
 * 512 -> 2 for dim 2 ... here dim 4: 2 -> 512 -> 512 -> 4). */
START_TEST(test_coupling_default_init)
{
    const uint64_t seed = 800;
    nvp_rng *rng = t_rng(seed);
    nvp_coupling *l = NULL;
    T_OK(nvp_coupling_create_half(&l, 4, 0, 0, NULL, 0, rng, NULL));
    const size_t W = NVP_DEFAULT_HIDDEN_WIDTH;
    const size_t fan_in[3] = {2, W, W}, fan_out[3] = {W, W, 4};
    size_t total = 0;
    for (int k = 0; k < 3; k++)
        total += fan_in[k] * fan_out[k] + fan_out[k];
    ck_assert_int_eq(NVP_DEFAULT_HIDDEN_LAYERS, 2);
    ck_assert_uint_eq(nvp_coupling_num_params(l), total);
    float *prm = t_xmalloc(total * sizeof *prm);
    T_OK(nvp_coupling_get_params(l, total, prm));
    size_t off = 0;
    for (int k = 0; k < 3; k++) {
        const size_t cnt = fan_in[k] * fan_out[k] + fan_out[k];
        const double bound = 1.0 / sqrt((double)fan_in[k]);
        double sum = 0, sum_abs = 0, mx = 0;
        for (size_t i = 0; i < cnt; i++) {
            const double u = prm[off + i] / bound;
            T_CHECK(fabs(u) <= 1.0 + 1e-6, "seed %llu: dense %d param %zu = %g beyond bound %g",
                    (unsigned long long)seed, k, i, (double)prm[off + i], bound);
            sum += u;
            sum_abs += fabs(u);
            if (fabs(u) > mx)
                mx = fabs(u);
        }
        /* u ~ U(-1, 1): mean 0 (sd 0.58/sqrt(cnt)), mean |u| 0.5. */
        const double se = 0.58 / sqrt((double)cnt);
        T_CLOSE(sum / cnt, 0.0, 0, 6 * se + 1e-3, seed, "dense %d: mean of w/bound", k);
        T_CLOSE(sum_abs / cnt, 0.5, 0, 6 * se + 1e-3, seed, "dense %d: mean of |w|/bound", k);
        T_CHECK(mx > 0.9, "dense %d: largest |w|/bound only %g", k, mx);
        off += cnt;
    }
    /* The next layer from the same generator gets its own draw. */
    nvp_coupling *l2 = NULL;
    T_OK(nvp_coupling_create_half(&l2, 4, 0, 0, NULL, 0, rng, NULL));
    float *prm2 = t_xmalloc(total * sizeof *prm2);
    T_OK(nvp_coupling_get_params(l2, total, prm2));
    size_t same = 0;
    for (size_t i = 0; i < total; i++)
        same += prm[i] == prm2[i];
    T_CHECK(same < total / 100, "seed %llu: consecutive layers share %zu of %zu parameters",
            (unsigned long long)seed, same, total);
    /* And the same seed reproduces the first layer exactly. */
    nvp_coupling *l3 = NULL;
    T_OK(nvp_rng_seed(rng, seed));
    T_OK(nvp_coupling_create_half(&l3, 4, 0, 0, NULL, 0, rng, NULL));
    T_OK(nvp_coupling_get_params(l3, total, prm2));
    T_CHECK(t_first_diff(prm, prm2, total) == (size_t)-1, "same seed, different initial parameters");
    free(prm);
    free(prm2);
    nvp_coupling_free(l);
    nvp_coupling_free(l2);
    nvp_coupling_free(l3);
    nvp_rng_free(rng);
}
END_TEST

/* NVP_INIT_ZERO_OUTPUT: output layer zero, so the layer is the identity
 * with log-determinant 0, while the hidden layers are still random. */
START_TEST(test_coupling_zero_output_is_identity)
{
    const t_layer_cfg *cfg = &t_layer_cfgs[_i];
    const uint64_t seed = 900 + (uint64_t)_i;
    const size_t dim = cfg->dim, n = NPTS;
    char name[96];
    t_layer_cfg_name(cfg, name, sizeof name);
    ref_coupling ref;
    nvp_coupling *layer = t_layer_make(cfg, seed, NVP_INIT_ZERO_OUTPUT, &ref);
    const size_t np = ref.n_params;
    float *prm = t_xmalloc(np * sizeof *prm);
    T_OK(nvp_coupling_get_params(layer, np, prm));
    const size_t L = ref.n_dense - 1;
    const size_t out_off = np - (ref.fan_in[L] * ref.fan_out[L] + ref.fan_out[L]);
    size_t nonzero_hidden = 0;
    for (size_t i = 0; i < np; i++) {
        if (i >= out_off)
            T_CHECK(prm[i] == 0.0f, "%s: output parameter %zu is %g", name, i, (double)prm[i]);
        else
            nonzero_hidden += prm[i] != 0.0f;
    }
    T_CHECK(out_off == 0 || nonzero_hidden > out_off / 2, "%s: hidden layers not random (%zu of %zu nonzero)",
            name, nonzero_hidden, out_off);
    float *x = t_xmalloc(n * dim * sizeof *x), *y = t_xmalloc(n * dim * sizeof *y), ld[NPTS];
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * dim, x, 2.0);
    T_OK(nvp_coupling_forward(layer, n, x, y, ld));
    const size_t d = t_first_diff(x, y, n * dim);
    T_CHECK(d == (size_t)-1, "%s: zero-output layer moved element %zu: %g -> %g", name, d,
            (double)x[d], (double)y[d]);
    for (size_t i = 0; i < n; i++)
        T_CHECK(ld[i] == 0.0f, "%s: logdet of row %zu is %g", name, i, (double)ld[i]);
    free(prm);
    free(x);
    free(y);
    nvp_coupling_free(layer);
}
END_TEST

/* A row's result does not depend on the batch it is in: 600 rows (three
 * chunks) at once equal the rows one by one, bitwise. */
START_TEST(test_coupling_batch_independent)
{
    const uint64_t seed = 1000;
    const t_layer_cfg *cfg = &t_layer_cfgs[13]; /* dim 5, hidden 13,9,5 */
    const size_t dim = cfg->dim, n = 600;
    ref_coupling ref;
    nvp_coupling *layer = t_layer_make(cfg, seed, 0, &ref);
    float *x = t_xmalloc(n * dim * sizeof *x), *y = t_xmalloc(n * dim * sizeof *y);
    float *ld = t_xmalloc(n * sizeof *ld), *xi = t_xmalloc(n * dim * sizeof *xi);
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * dim, x, 1.0);
    T_OK(nvp_coupling_forward(layer, n, x, y, ld));
    T_OK(nvp_coupling_inverse(layer, n, x, xi, NULL));
    for (size_t i = 0; i < n; i++) {
        float yr[REF_MAX_DIM], xr[REF_MAX_DIM], lr;
        T_OK(nvp_coupling_forward(layer, 1, x + i * dim, yr, &lr));
        T_OK(nvp_coupling_inverse(layer, 1, x + i * dim, xr, NULL));
        T_CHECK(t_first_diff(yr, y + i * dim, dim) == (size_t)-1 && lr == ld[i],
                "seed %llu: forward of row %zu alone differs from the batch of %zu",
                (unsigned long long)seed, i, n);
        T_CHECK(t_first_diff(xr, xi + i * dim, dim) == (size_t)-1,
                "seed %llu: inverse of row %zu alone differs from the batch of %zu",
                (unsigned long long)seed, i, n);
    }
    free(x);
    free(y);
    free(ld);
    free(xi);
    nvp_coupling_free(layer);
}
END_TEST

/* Rows holding NaN or an infinity come out NaN (with NaN log-det); the
 * other rows are exactly what they would be without the bad ones. */
START_TEST(test_coupling_nonfinite_rows)
{
    const uint64_t seed = 1100;
    const t_layer_cfg *cfg = &t_layer_cfgs[7]; /* dim 5, flip */
    const size_t dim = cfg->dim, n = 300;
    ref_coupling ref;
    nvp_coupling *layer = t_layer_make(cfg, seed, 0, &ref);
    float *x = t_xmalloc(n * dim * sizeof *x), *y = t_xmalloc(n * dim * sizeof *y);
    float *ld = t_xmalloc(n * sizeof *ld);
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * dim, x, 1.0);
    const size_t bad_rows[] = {0, 3, 255, 256, 299};
    const float bad_vals[] = {NAN, INFINITY, -INFINITY, NAN, INFINITY};
    for (size_t b = 0; b < 5; b++)
        x[bad_rows[b] * dim + b % dim] = bad_vals[b];
    for (int inverse = 0; inverse < 2; inverse++) {
        if (inverse)
            T_OK(nvp_coupling_inverse(layer, n, x, y, ld));
        else
            T_OK(nvp_coupling_forward(layer, n, x, y, ld));
        for (size_t i = 0; i < n; i++) {
            int bad = 0;
            for (size_t b = 0; b < 5; b++)
                bad |= bad_rows[b] == i;
            if (bad) {
                for (size_t j = 0; j < dim; j++)
                    T_CHECK(isnan(y[i * dim + j]), "%s: bad row %zu dim %zu is %g, not NaN",
                            inverse ? "inverse" : "forward", i, j, (double)y[i * dim + j]);
                T_CHECK(isnan(ld[i]), "%s: log-det of bad row %zu is %g",
                        inverse ? "inverse" : "forward", i, (double)ld[i]);
            } else {
                float yr[REF_MAX_DIM], lr;
                if (inverse)
                    T_OK(nvp_coupling_inverse(layer, 1, x + i * dim, yr, &lr));
                else
                    T_OK(nvp_coupling_forward(layer, 1, x + i * dim, yr, &lr));
                T_CHECK(t_first_diff(yr, y + i * dim, dim) == (size_t)-1 && lr == ld[i],
                        "seed %llu: %s: good row %zu changed by the bad rows",
                        (unsigned long long)seed, inverse ? "inverse" : "forward", i);
            }
        }
    }
    free(x);
    free(y);
    free(ld);
    nvp_coupling_free(layer);
}
END_TEST

/* get/set round trip, set changes the map, and a refused set (NaN) leaves
 * the layer bitwise unchanged. */
START_TEST(test_coupling_params_set_get)
{
    const uint64_t seed = 1200;
    const t_layer_cfg *cfg = &t_layer_cfgs[4];
    ref_coupling ref;
    nvp_coupling *layer = t_layer_make(cfg, seed, 0, &ref);
    const size_t np = ref.n_params;
    float *a = t_xmalloc(np * sizeof *a), *b = t_xmalloc(np * sizeof *b);
    float *c = t_xmalloc(np * sizeof *c);
    T_OK(nvp_coupling_get_params(layer, np, a));
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_unif(&p, np, b, -0.5, 0.5);
    T_OK(nvp_coupling_set_params(layer, np, b));
    T_OK(nvp_coupling_get_params(layer, np, c));
    T_CHECK(t_first_diff(b, c, np) == (size_t)-1, "get after set differs");
    const float x[3] = {0.3f, -0.7f, 1.1f};
    float y1[3], y2[3];
    T_OK(nvp_coupling_forward(layer, 1, x, y1, NULL));
    /* A NaN (then an infinity) in the new vector: refused, nothing changes. */
    memcpy(c, a, np * sizeof *c);
    c[np / 2] = NAN;
    ck_assert_int_eq(nvp_coupling_set_params(layer, np, c), NVP_ENONFINITE);
    c[np / 2] = 0.0f;
    c[np - 1] = -INFINITY;
    ck_assert_int_eq(nvp_coupling_set_params(layer, np, c), NVP_ENONFINITE);
    T_OK(nvp_coupling_get_params(layer, np, c));
    T_CHECK(t_first_diff(b, c, np) == (size_t)-1, "refused set changed the parameters");
    T_OK(nvp_coupling_forward(layer, 1, x, y2, NULL));
    T_CHECK(t_first_diff(y1, y2, 3) == (size_t)-1, "refused set changed the map");
    T_OK(nvp_coupling_set_params(layer, np, a));
    T_OK(nvp_coupling_forward(layer, 1, x, y2, NULL));
    T_CHECK(t_first_diff(y1, y2, 3) != (size_t)-1, "other parameters, same output");
    free(a);
    free(b);
    free(c);
    nvp_coupling_free(layer);
}
END_TEST

/* nvp_coupling_get_hidden reports the conditioner's widths. */
START_TEST(test_coupling_hidden_getter)
{
    const t_layer_cfg *cfg = &t_layer_cfgs[_i];
    ref_coupling ref;
    nvp_coupling *layer = t_layer_make(cfg, 1300 + (uint64_t)_i, 0, &ref);
    size_t w[8] = {0}, n = 99;
    T_OK(nvp_coupling_get_hidden(layer, 0, NULL, &n));
    ck_assert_uint_eq(n, cfg->n_hidden);
    T_OK(nvp_coupling_get_hidden(layer, 8, w, &n));
    ck_assert_uint_eq(n, cfg->n_hidden);
    for (size_t h = 0; h < n; h++)
        T_CHECK(w[h] == cfg->hidden[h], "hidden[%zu] = %zu, want %zu", h, w[h], cfg->hidden[h]);
    if (n > 0) {
        size_t w2[8] = {0};
        n = 99;
        ck_assert_int_eq(nvp_coupling_get_hidden(layer, cfg->n_hidden - 1, w2, &n), NVP_EBUFSIZE);
        ck_assert_uint_eq(n, cfg->n_hidden);
        for (size_t h = 0; h + 1 < cfg->n_hidden; h++)
            T_CHECK(w2[h] == cfg->hidden[h], "truncated copy: hidden[%zu] = %zu", h, w2[h]);
        T_CHECK(w2[cfg->n_hidden - 1] == 0, "wrote past cap");
    }
    nvp_coupling_free(layer);
    /* The default conditioner. */
    nvp_rng *r = t_rng(1);
    nvp_coupling *d = NULL;
    T_OK(nvp_coupling_create_half(&d, 2, 0, 0, NULL, 0, r, NULL));
    T_OK(nvp_coupling_get_hidden(d, 8, w, &n));
    ck_assert_uint_eq(n, NVP_DEFAULT_HIDDEN_LAYERS);
    for (size_t h = 0; h < n; h++)
        ck_assert_uint_eq(w[h], NVP_DEFAULT_HIDDEN_WIDTH);
    nvp_coupling_free(d);
    nvp_rng_free(r);
}
END_TEST

/* The soft log-scale clamp c * tanh(raw / c): forward, inverse and
 * log-determinant against the reference with the clamp, the Jacobian, and
 * the bound itself (scales within [e^-c, e^c] even for huge raw outputs). */
START_TEST(test_coupling_log_scale_clamp)
{
    static const double clamps[] = {0.5, 2.0};
    const t_layer_cfg *cfg = &t_layer_cfgs[_i / 2 * 3 + 1]; /* several dims */
    const double cl = clamps[_i % 2];
    const uint64_t seed = 1400 + (uint64_t)_i;
    const size_t dim = cfg->dim, n = NPTS;
    char name[96];
    t_layer_cfg_name(cfg, name, sizeof name);
    ref_coupling ref;
    nvp_coupling *layer = t_layer_make(cfg, seed, 0, &ref);
    T_CHECK(nvp_coupling_log_scale_clamp(layer) == 0.0f, "clamp on by default");
    float *x = t_xmalloc(n * dim * sizeof *x), *y0 = t_xmalloc(n * dim * sizeof *y0);
    float *y = t_xmalloc(n * dim * sizeof *y), *xi = t_xmalloc(n * dim * sizeof *xi), ld[NPTS], il[NPTS];
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * dim, x, 1.5);
    T_OK(nvp_coupling_forward(layer, n, x, y0, NULL));
    T_OK(nvp_coupling_set_log_scale_clamp(layer, (float)cl));
    T_CHECK(nvp_coupling_log_scale_clamp(layer) == (float)cl, "clamp getter %g", (double)nvp_coupling_log_scale_clamp(layer));
    ref.clamp = (float)cl;
    /* Scale the output layer up so that raw log-scales are large. */
    const size_t np = ref.n_params;
    float *prm = t_xmalloc(np * sizeof *prm);
    T_OK(nvp_coupling_get_params(layer, np, prm));
    const size_t L = ref.n_dense - 1, out_off = np - (ref.fan_in[L] * ref.fan_out[L] + ref.fan_out[L]);
    for (size_t i = out_off; i < np; i++)
        prm[i] *= 8.0f;
    T_OK(nvp_coupling_set_params(layer, np, prm));
    double *prd = t_layer_params(layer);
    T_OK(nvp_coupling_forward(layer, n, x, y, ld));
    T_OK(nvp_coupling_inverse(layer, n, y, xi, il));
    for (size_t i = 0; i < n; i++) {
        double xd[REF_MAX_DIM], yd[REF_MAX_DIM], l;
        for (size_t j = 0; j < dim; j++)
            xd[j] = x[i * dim + j];
        ref_coupling_forward(&ref, prd, xd, yd, &l);
        for (size_t j = 0; j < dim; j++) {
            T_CLOSE(y[i * dim + j], yd[j], 2e-5, 2e-5, seed, "%s, clamp %g: forward [%zu][%zu]", name, cl, i, j);
            T_CLOSE(xi[i * dim + j], x[i * dim + j], 1e-4, 1e-4, seed, "%s, clamp %g: round trip [%zu][%zu]", name, cl, i, j);
        }
        T_CLOSE(ld[i], l, 1e-5, 1e-5, seed, "%s, clamp %g: logdet row %zu", name, cl, i);
        T_CLOSE(il[i], -ld[i], 1e-5, 1e-5, seed, "%s, clamp %g: ildj row %zu", name, cl, i);
        T_CHECK(fabs(ld[i]) <= (double)ref.nb * cl * (1 + 1e-6), "%s: |logdet| %g beyond nb * c = %g", name,
                (double)ld[i], ref.nb * cl);
        /* Jacobian in double through the reference. */
        double J[REF_MAX_DIM * REF_MAX_DIM];
        const double h = 1e-6;
        for (size_t j = 0; j < dim; j++) {
            double xp[REF_MAX_DIM], xm[REF_MAX_DIM], yp[REF_MAX_DIM], ym[REF_MAX_DIM];
            for (size_t k = 0; k < dim; k++)
                xp[k] = xm[k] = xd[k];
            xp[j] += h;
            xm[j] -= h;
            ref_coupling_forward(&ref, prd, xp, yp, NULL);
            ref_coupling_forward(&ref, prd, xm, ym, NULL);
            for (size_t k = 0; k < dim; k++)
                J[k * dim + j] = (yp[k] - ym[k]) / (2 * h);
        }
        T_CLOSE(ld[i], ref_log_abs_det(dim, J), 1e-5, 2e-5, seed, "%s, clamp %g: logdet vs log|det J| row %zu",
                name, cl, i);
    }
    /* Bound 0 turns the clamp off again. */
    T_OK(nvp_coupling_set_log_scale_clamp(layer, 0.0f));
    T_OK(nvp_coupling_set_params(layer, np, prm));
    ref.clamp = 0.0;
    T_OK(nvp_coupling_forward(layer, 1, x, y, ld));
    double xd[REF_MAX_DIM], yd[REF_MAX_DIM], l;
    for (size_t j = 0; j < dim; j++)
        xd[j] = x[j];
    ref_coupling_forward(&ref, prd, xd, yd, &l);
    T_CLOSE(ld[0], l, 1e-5, 1e-5, seed, "%s: logdet with the clamp off again", name);
    /* Refused bounds leave the setting alone. */
    T_OK(nvp_coupling_set_log_scale_clamp(layer, 1.0f));
    const float bad[] = {-1.0f, NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 4; k++)
        T_CHECK(nvp_coupling_set_log_scale_clamp(layer, bad[k]) == NVP_EINVAL, "bound %g accepted", (double)bad[k]);
    T_CHECK(nvp_coupling_log_scale_clamp(layer) == 1.0f, "refused bound changed the clamp");
    T_CHECK(nvp_coupling_log_scale_clamp(NULL) == 0.0f, "clamp of NULL");
    free(prd);
    free(prm);
    free(x);
    free(y0);
    free(y);
    free(xi);
    nvp_coupling_free(layer);
}
END_TEST

/* A coupling whose transformed columns are one run (its steps and
 * backward walk them as arrays, its conditioner's input is copied) and
 * the same coupling on permuted columns, interleaved (gathered one by
 * one), give the same bits: same parameters, and the conditioner sees
 * the same inputs in the same order.  Real weights, both directions and
 * their backwards with a log-determinant gradient, clamp off and on,
 * portable and best kernels; 21 transformed entries per row, so spans of
 * 8 and more and batches that end inside rows. */
START_TEST(test_coupling_run_matches_gather)
{
    enum { DIM = 41, NA = 20, ROWS = 300 };
    const size_t hidden[2] = {24, 24};
    unsigned char mask_run[DIM], mask_mix[DIM];
    size_t to_mix[DIM]; /* run layout's column -> interleaved column */
    size_t ia = 0, ib = 0;
    for (size_t j = 0; j < DIM; j++) {
        mask_run[j] = j < NA;
        mask_mix[j] = j % 2 == 0 && j < 2 * NA;
        if (mask_mix[j])
            to_mix[ia++] = j;
        else
            to_mix[NA + ib++] = j;
    }
    nvp_rng *rng = t_rng(9700);
    nvp_coupling *run = NULL, *mix = NULL;
    T_OK(nvp_coupling_create(&run, DIM, mask_run, 2, hidden, 0, rng, NULL));
    T_OK(nvp_coupling_create(&mix, DIM, mask_mix, 2, hidden, 0, rng, NULL));
    const size_t np = nvp_coupling_num_params(run);
    ck_assert_uint_eq(np, nvp_coupling_num_params(mix));
    float *prm = t_xmalloc(np * sizeof *prm);
    T_OK(nvp_coupling_get_params(run, np, prm));
    T_OK(nvp_coupling_set_params(mix, np, prm));
    const size_t n = ROWS * DIM;
    float *x = t_xmalloc(n * sizeof *x), *xm = t_xmalloc(n * sizeof *xm);
    float *d = t_xmalloc(n * sizeof *d), *dm = t_xmalloc(n * sizeof *dm);
    float *out = t_xmalloc(n * sizeof *out), *outm = t_xmalloc(n * sizeof *outm);
    float *back = t_xmalloc(n * sizeof *back);
    float *g = t_xmalloc(np * sizeof *g), *gm = t_xmalloc(np * sizeof *gm);
    float gld[ROWS], ld[ROWS], ldm[ROWS];
    t_prng p;
    t_prng_seed(&p, 9701);
    t_fill_normal(&p, n, x, 1.0);
    t_fill_normal(&p, n, d, 1.0);
    t_fill_normal(&p, ROWS, gld, 1.0);
    for (size_t i = 0; i < ROWS; i++)
        for (size_t j = 0; j < DIM; j++) {
            xm[i * DIM + to_mix[j]] = x[i * DIM + j];
            dm[i * DIM + to_mix[j]] = d[i * DIM + j];
        }
    static const int kernels[] = {NVP_KERNELS_PORTABLE, NVP_KERNELS_AUTO};
    for (int clamped = 0; clamped < 2; clamped++)
        for (size_t kk = 0; kk < 2; kk++) {
            T_OK(nvp_coupling_set_log_scale_clamp(run, clamped ? 2.0f : 0.0f));
            T_OK(nvp_coupling_set_log_scale_clamp(mix, clamped ? 2.0f : 0.0f));
            T_OK(nvp_coupling_set_kernels(run, kernels[kk]));
            T_OK(nvp_coupling_set_kernels(mix, kernels[kk]));
            for (int step = 0; step < 4; step++) {
                /* 0 forward, 1 inverse, 2 the inverse's backward, 3 the
                 * forward's backward */
                memset(g, 0, np * sizeof *g);
                memset(gm, 0, np * sizeof *gm);
                if (step == 0) {
                    T_OK(nvp_coupling_forward(run, ROWS, x, out, ld));
                    T_OK(nvp_coupling_forward(mix, ROWS, xm, outm, ldm));
                } else if (step == 1) {
                    T_OK(nvp_coupling_inverse(run, ROWS, x, out, ld));
                    T_OK(nvp_coupling_inverse(mix, ROWS, xm, outm, ldm));
                } else if (step == 2) {
                    T_OK(nvp_coupling_inverse_backward(run, ROWS, x, d, gld,
                                                       out, g));
                    T_OK(nvp_coupling_inverse_backward(mix, ROWS, xm, dm,
                                                       gld, outm, gm));
                } else {
                    T_OK(nvp_layer_forward_backward(nvp_coupling_as_layer(run),
                                                    ROWS, x, d, gld, out, g));
                    T_OK(nvp_layer_forward_backward(nvp_coupling_as_layer(mix),
                                                    ROWS, xm, dm, gld, outm,
                                                    gm));
                }
                for (size_t i = 0; i < ROWS; i++)
                    for (size_t j = 0; j < DIM; j++)
                        back[i * DIM + j] = outm[i * DIM + to_mix[j]];
                size_t at = t_first_diff(out, back, n);
                T_CHECK(at == (size_t)-1,
                        "clamp %d kernels %d step %d: output %zu differs: "
                        "%a (run) against %a (interleaved)",
                        clamped, kernels[kk], step, at,
                        at == (size_t)-1 ? 0.0 : (double)out[at],
                        at == (size_t)-1 ? 0.0 : (double)back[at]);
                if (step < 2) {
                    at = t_first_diff(ld, ldm, ROWS);
                    T_CHECK(at == (size_t)-1,
                            "clamp %d kernels %d step %d: log-determinant of "
                            "row %zu differs",
                            clamped, kernels[kk], step, at);
                } else {
                    at = t_first_diff(g, gm, np);
                    T_CHECK(at == (size_t)-1,
                            "clamp %d kernels %d step %d: parameter gradient "
                            "%zu differs",
                            clamped, kernels[kk], step, at);
                }
            }
        }
    free(prm);
    free(x);
    free(xm);
    free(d);
    free(dm);
    free(out);
    free(outm);
    free(back);
    free(g);
    free(gm);
    nvp_coupling_free(run);
    nvp_coupling_free(mix);
    nvp_rng_free(rng);
}
END_TEST

Suite *coupling_suite(void)
{
    Suite *s = suite_create("coupling");
    const int n = (int)t_n_layer_cfgs;
    TCase *tc = tcase_create("properties");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_loop_test(tc, test_coupling_round_trip, 0, n);
    tcase_add_loop_test(tc, test_coupling_matches_reference, 0, n);
    tcase_add_loop_test(tc, test_coupling_logdet_matches_jacobian, 0, n);
    tcase_add_loop_test(tc, test_coupling_zero_output_is_identity, 0, n);
    suite_add_tcase(s, tc);
    tc = tcase_create("layout");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, test_coupling_layout_by_hand);
    tcase_add_test(tc, test_coupling_default_init);
    tcase_add_test(tc, test_coupling_params_set_get);
    tcase_add_loop_test(tc, test_coupling_hidden_getter, 0, n);
    tcase_add_loop_test(tc, test_coupling_log_scale_clamp, 0, 8);
    suite_add_tcase(s, tc);
    tc = tcase_create("batches");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, test_coupling_batch_independent);
    tcase_add_test(tc, test_coupling_nonfinite_rows);
    tcase_add_test(tc, test_coupling_run_matches_gather);
    suite_add_tcase(s, tc);
    return s;
}
