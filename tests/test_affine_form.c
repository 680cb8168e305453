/* SPDX-License-Identifier: MIT */
/* The coupling's sigmoid affine form (nvp_coupling_set_affine_form,
 * nflows' AffineCouplingTransform): log densities against a double
 * reference written from the header's formulas, the NLL gradient by
 * central differences, the round trips, a save and load, and the
 * refusals. */
#include <stdlib.h>
#include <string.h>

#include "reference.h"
#include "tests.h"

#define DIM 4
#define NL 2

static const size_t hidden[2] = {8, 8};
static const unsigned char masks[NL][DIM] = {{1, 1, 0, 0}, {0, 1, 0, 1}};

/* log p(y) of the reference: data -> base through layer NL-1 first, each
 * x_b = y_b s + shift with s = sigmoid(h + 2) + 1e-3 and ildj += log s. */
static double ref_log_prob(const ref_coupling *r, const size_t *off,
                           const double *p, const double *y)
{
    double z[DIM], ld = 0.0;
    memcpy(z, y, sizeof z);
    for (size_t k = NL; k-- > 0;) {
        double xa[DIM], sh[DIM], raw[DIM];
        for (size_t j = 0; j < r[k].na; j++)
            xa[j] = z[r[k].idx_a[j]];
        /* ref_conditioner applies the clamp to the second half; with
         * clamp 0 it is the raw output */
        ref_conditioner(&r[k], p + off[k], xa, sh, raw);
        for (size_t j = 0; j < r[k].nb; j++) {
            const double s = 1.0 / (1.0 + exp(-(raw[j] + 2.0))) + 1e-3;
            const size_t b = r[k].idx_b[j];
            z[b] = z[b] * s + sh[j];
            ld += log(s);
        }
    }
    return ref_base_log_prob(DIM, z) + ld;
}

static nvp_chain *make(uint64_t seed, ref_coupling *r, size_t *off,
                       double **pd)
{
    nvp_rng *rng = t_rng(seed);
    nvp_coupling *layers[NL];
    size_t o = 0;
    for (size_t k = 0; k < NL; k++) {
        T_OK(nvp_coupling_create(&layers[k], DIM, masks[k], 2, hidden, 0, rng,
                                 NULL));
        T_OK(nvp_coupling_set_affine_form(layers[k], NVP_AFFINE_SIGMOID));
        ck_assert_int_eq(nvp_coupling_affine_form(layers[k]),
                         NVP_AFFINE_SIGMOID);
        ck_assert_int_eq(ref_coupling_init(&r[k], DIM, masks[k], 2, hidden),
                         0);
        off[k] = o;
        o += r[k].n_params;
    }
    nvp_base *base;
    T_OK(nvp_base_create_normal(&base, DIM, NULL));
    nvp_chain *c;
    T_OK(nvp_chain_create(&c, base, NL, layers, NULL));
    /* the clamp does not apply to this form */
    T_OK(nvp_chain_set_log_scale_clamp(c, 0.5f));
    *pd = t_xmalloc(o * sizeof **pd);
    ref_params_from_float(o, nvp_chain_params(c), *pd);
    nvp_rng_free(rng);
    return c;
}

START_TEST(t_sigmoid_form_density_and_gradient)
{
    for (uint64_t seed = 1; seed <= 3; seed++) {
        ref_coupling r[NL];
        size_t off[NL];
        double *pd;
        nvp_chain *c = make(seed, r, off, &pd);
        enum { N = 30 };
        float y[N * DIM], lp[N], x[N * DIM], back[N * DIM], ildj[N], ld[N];
        t_prng p;
        t_prng_seed(&p, seed + 10);
        t_fill_normal(&p, N * DIM, y, 1.5);
        T_OK(nvp_chain_log_prob(c, N, y, lp));
        double mean = 0.0;
        for (size_t i = 0; i < N; i++) {
            double yd[DIM];
            for (size_t j = 0; j < DIM; j++)
                yd[j] = y[i * DIM + j];
            const double want = ref_log_prob(r, off, pd, yd);
            T_CLOSE(lp[i], want, 1e-4, 1e-4, seed, "log p, row %zu", i);
            mean -= want / N;
        }
        T_OK(nvp_chain_inverse(c, N, y, x, ildj));
        T_OK(nvp_chain_forward(c, N, x, back, ld));
        for (size_t i = 0; i < N; i++) {
            T_CLOSE(ld[i], -ildj[i], 1e-4, 1e-4, seed, "logdet %zu", i);
            for (size_t j = 0; j < DIM; j++)
                T_CLOSE(back[i * DIM + j], y[i * DIM + j], 1e-4, 1e-4, seed,
                        "round trip, row %zu", i);
        }
        const size_t np = nvp_chain_num_params(c);
        float *g = t_xmalloc(np * sizeof *g), loss;
        T_OK(nvp_chain_nll_grad(c, N, y, g, &loss));
        T_CLOSE(loss, mean, 1e-4, 1e-4, seed, "NLL");
        for (size_t i = 0; i < np; i += 3) {
            const double h = 1e-5, keep = pd[i];
            double up = 0.0, down = 0.0;
            for (int side = 0; side < 2; side++) {
                pd[i] = side ? keep - h : keep + h;
                double s = 0.0;
                for (size_t row = 0; row < N; row++) {
                    double yd[DIM];
                    for (size_t j = 0; j < DIM; j++)
                        yd[j] = y[row * DIM + j];
                    s -= ref_log_prob(r, off, pd, yd) / N;
                }
                *(side ? &down : &up) = s;
            }
            pd[i] = keep;
            T_CLOSE(g[i], (up - down) / (2 * h), 2e-3, 2e-4, seed,
                    "dNLL/dparam[%zu]", i);
        }
        /* the score d log p / dy, by differences of the reference */
        float dy[N * DIM];
        T_OK(nvp_chain_score(c, N, y, dy, NULL));
        for (size_t i = 0; i < 4; i++)
            for (size_t j = 0; j < DIM; j++) {
                double yd[DIM];
                for (size_t q = 0; q < DIM; q++)
                    yd[q] = y[i * DIM + q];
                const double h = 1e-5, keep = yd[j];
                yd[j] = keep + h;
                const double up = ref_log_prob(r, off, pd, yd);
                yd[j] = keep - h;
                const double down = ref_log_prob(r, off, pd, yd);
                T_CLOSE(dy[i * DIM + j], (up - down) / (2 * h), 1e-3, 1e-4,
                        seed, "score[%zu], row %zu", j, i);
            }
        free(g);
        free(pd);
        nvp_chain_free(c);
    }
}
END_TEST

/* L = sum w . f(x) + sum v logdet of the reference's forward (base to
 * data: layer 0 first, y_b = (x_b - shift) / s, logdet -= log s). */
static double ref_forward_loss(const ref_coupling *r, const size_t *off,
                               const double *p, size_t n, const double *x,
                               const double *w, const double *v)
{
    double loss = 0.0;
    for (size_t i = 0; i < n; i++) {
        double z[DIM], ld = 0.0;
        memcpy(z, x + i * DIM, sizeof z);
        for (size_t k = 0; k < NL; k++) {
            double xa[DIM], sh[DIM], raw[DIM];
            for (size_t j = 0; j < r[k].na; j++)
                xa[j] = z[r[k].idx_a[j]];
            ref_conditioner(&r[k], p + off[k], xa, sh, raw);
            for (size_t j = 0; j < r[k].nb; j++) {
                const double s = 1.0 / (1.0 + exp(-(raw[j] + 2.0))) + 1e-3;
                const size_t b = r[k].idx_b[j];
                z[b] = (z[b] - sh[j]) / s;
                ld -= log(s);
            }
        }
        for (size_t j = 0; j < DIM; j++)
            loss += w[i * DIM + j] * z[j];
        loss += v[i] * ld;
    }
    return loss;
}

/* The forward direction's gradient (nvp_chain_forward_backward) of the
 * sigmoid form, by central differences of the reference. */
START_TEST(t_sigmoid_form_forward_gradient)
{
    ref_coupling r[NL];
    size_t off[NL];
    double *pd;
    nvp_chain *c = make(11, r, off, &pd);
    enum { N = 12 };
    float x[N * DIM], dy[N * DIM], dld[N], dx[N * DIM];
    double xd[N * DIM], wd[N * DIM], vd[N];
    t_prng p;
    t_prng_seed(&p, 12);
    t_fill_normal(&p, N * DIM, x, 1.0);
    t_fill_normal(&p, N * DIM, dy, 1.0);
    t_fill_normal(&p, N, dld, 1.0);
    for (size_t i = 0; i < N * DIM; i++) {
        xd[i] = x[i];
        wd[i] = dy[i];
    }
    for (size_t i = 0; i < N; i++)
        vd[i] = dld[i];
    const size_t np = nvp_chain_num_params(c);
    float *g = t_xmalloc(np * sizeof *g);
    memset(g, 0, np * sizeof *g);
    T_OK(nvp_chain_forward_backward(c, N, x, dy, dld, dx, g));
    const double h = 1e-6;
    for (size_t i = 0; i < N * DIM; i += 5) {
        const double keep = xd[i];
        xd[i] = keep + h;
        const double up = ref_forward_loss(r, off, pd, N, xd, wd, vd);
        xd[i] = keep - h;
        const double down = ref_forward_loss(r, off, pd, N, xd, wd, vd);
        xd[i] = keep;
        T_CLOSE(dx[i], (up - down) / (2 * h), 2e-3, 2e-4, 11, "dL/dx[%zu]",
                i);
    }
    for (size_t i = 0; i < np; i += 4) {
        const double keep = pd[i];
        pd[i] = keep + h;
        const double up = ref_forward_loss(r, off, pd, N, xd, wd, vd);
        pd[i] = keep - h;
        const double down = ref_forward_loss(r, off, pd, N, xd, wd, vd);
        pd[i] = keep;
        T_CLOSE(g[i], (up - down) / (2 * h), 2e-3, 2e-4, 11,
                "dL/dparam[%zu]", i);
    }
    free(g);
    free(pd);
    nvp_chain_free(c);
}
END_TEST

START_TEST(t_sigmoid_form_save_load_and_refusals)
{
    ref_coupling r[NL];
    size_t off[NL];
    double *pd;
    nvp_chain *c = make(7, r, off, &pd);
    size_t size;
    T_OK(nvp_chain_save_buffer(c, NULL, 0, NULL, &size));
    unsigned char *buf = t_xmalloc(size);
    T_OK(nvp_chain_save_buffer(c, NULL, size, buf, &size));
    nvp_chain *d;
    T_OK(nvp_chain_load_buffer(&d, NULL, size, buf, NULL));
    const nvp_coupling *l0 = nvp_layer_as_coupling(nvp_chain_layer(d, 0, NULL));
    ck_assert_int_eq(nvp_coupling_affine_form(l0), NVP_AFFINE_SIGMOID);
    enum { N = 20 };
    float y[N * DIM], a[N], b[N];
    t_prng p;
    t_prng_seed(&p, 8);
    t_fill_normal(&p, N * DIM, y, 1.0);
    T_OK(nvp_chain_log_prob(c, N, y, a));
    T_OK(nvp_chain_log_prob(d, N, y, b));
    T_CHECK(t_first_diff(a, b, N) == (size_t)-1, "loaded densities differ");
    /* refusals: an unknown form, and a layer a chain holds */
    nvp_rng *rng = t_rng(9);
    nvp_coupling *free_layer;
    T_OK(nvp_coupling_create(&free_layer, DIM, masks[0], 1, hidden, 0, rng,
                             NULL));
    ck_assert_int_eq(nvp_coupling_set_affine_form(free_layer, 2), NVP_EINVAL);
    ck_assert_int_eq(nvp_coupling_affine_form(free_layer), NVP_AFFINE_EXP);
    ck_assert_int_eq(nvp_coupling_set_affine_form((nvp_coupling *)l0,
                                                  NVP_AFFINE_EXP),
                     NVP_EINVAL);
    ck_assert_int_eq(nvp_coupling_set_affine_form(NULL, NVP_AFFINE_EXP),
                     NVP_EINVAL);
    ck_assert_int_eq(nvp_coupling_affine_form(NULL), -1);
    nvp_coupling_free(free_layer);
    nvp_rng_free(rng);
    free(buf);
    free(pd);
    nvp_chain_free(c);
    nvp_chain_free(d);
}
END_TEST

Suite *affine_form_suite(void)
{
    Suite *s = suite_create("affine_form");
    TCase *tc = tcase_create("sigmoid");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, t_sigmoid_form_density_and_gradient);
    tcase_add_test(tc, t_sigmoid_form_forward_gradient);
    tcase_add_test(tc, t_sigmoid_form_save_load_and_refusals);
    suite_add_tcase(s, tc);
    return s;
}
