/* SPDX-License-Identifier: MIT */
/* Analytic gradients against central finite differences computed in double
 * precision through the naive reference: the coupling layer's inverse
 * backward (input and parameter gradients) and the chain's NLL gradient
 * with respect to every parameter. */
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "tests.h"

/* Float results against double finite differences: relative 1e-3 of the
 * entry plus 1e-4 of the largest entry (float rounding in sums of a few
 * dozen terms is far below this; a wrong formula is not). */
#define G_RTOL 1e-3
#define G_ATOL_REL 1e-4

enum { GN = 6 };

/* L = sum_ij dx_ij x_ij + sum_i dildj_i ildj_i, x = inverse(y). */
static double coupling_loss(const ref_coupling *r, const double *prm, size_t n,
                            const double *y, const float *dx, const float *dildj)
{
    double L = 0.0;
    const size_t dim = r->dim;
    for (size_t i = 0; i < n; i++) {
        double x[REF_MAX_DIM], il;
        ref_coupling_inverse(r, prm, y + i * dim, x, &il);
        for (size_t j = 0; j < dim; j++)
            L += (double)dx[i * dim + j] * x[j];
        if (dildj)
            L += (double)dildj[i] * il;
    }
    return L;
}

/* Every layer configuration, without and then with the soft log-scale
 * clamp (bound 1). */
START_TEST(test_grad_coupling_inverse_backward)
{
    const size_t ci = (size_t)_i % t_n_layer_cfgs;
    const float clamp = (size_t)_i >= t_n_layer_cfgs ? 1.0f : 0.0f;
    const t_layer_cfg *cfg = &t_layer_cfgs[ci];
    const uint64_t seed = 4000 + (uint64_t)_i;
    const size_t dim = cfg->dim, n = GN;
    char name[128];
    t_layer_cfg_name(cfg, name, sizeof name - 32);
    if (clamp > 0)
        snprintf(name + strlen(name), 32, ", clamp %g", (double)clamp);
    ref_coupling ref;
    nvp_coupling *layer = t_layer_make(cfg, seed, 0, &ref);
    T_OK(nvp_coupling_set_log_scale_clamp(layer, clamp));
    ref.clamp = clamp;
    const size_t np = ref.n_params;
    double *prm = t_layer_params(layer);
    t_prng p;
    t_prng_seed(&p, seed);
    float y[GN * REF_MAX_DIM], dx[GN * REF_MAX_DIM], dildj[GN], dy[GN * REF_MAX_DIM];
    t_fill_normal(&p, n * dim, y, 1.2);
    t_fill_normal(&p, n * dim, dx, 1.0);
    t_fill_normal(&p, n, dildj, 1.0);
    float *g0 = t_xmalloc(np * sizeof *g0), *grad = t_xmalloc(np * sizeof *grad);
    t_fill_normal(&p, np, g0, 1.0);
    memcpy(grad, g0, np * sizeof *grad);
    T_OK(nvp_coupling_inverse_backward(layer, n, y, dx, dildj, dy, grad));

    double yd[GN * REF_MAX_DIM];
    for (size_t i = 0; i < n * dim; i++)
        yd[i] = y[i];
    const double h = 1e-6;
    /* dL/dy. */
    double *fd_y = t_xmalloc(n * dim * sizeof *fd_y), scale_y = 0.0;
    for (size_t i = 0; i < n * dim; i++) {
        const double keep = yd[i];
        yd[i] = keep + h;
        const double up = coupling_loss(&ref, prm, n, yd, dx, dildj);
        yd[i] = keep - h;
        const double dn = coupling_loss(&ref, prm, n, yd, dx, dildj);
        yd[i] = keep;
        fd_y[i] = (up - dn) / (2 * h);
        scale_y = fmax(scale_y, fabs(fd_y[i]));
    }
    for (size_t i = 0; i < n * dim; i++)
        T_CLOSE(dy[i], fd_y[i], G_RTOL, G_ATOL_REL * scale_y, seed,
                "%s: dy[%zu][%zu] vs finite difference", name, i / dim, i % dim);
    /* dL/dparams, added to what grad held. */
    double *fd_p = t_xmalloc(np * sizeof *fd_p), scale_p = 0.0;
    for (size_t q = 0; q < np; q++) {
        const double keep = prm[q];
        prm[q] = keep + h;
        const double up = coupling_loss(&ref, prm, n, yd, dx, dildj);
        prm[q] = keep - h;
        const double dn = coupling_loss(&ref, prm, n, yd, dx, dildj);
        prm[q] = keep;
        fd_p[q] = (up - dn) / (2 * h);
        scale_p = fmax(scale_p, fabs(fd_p[q]));
    }
    for (size_t q = 0; q < np; q++)
        T_CLOSE((double)grad[q] - (double)g0[q], fd_p[q], G_RTOL, G_ATOL_REL * scale_p + 1e-6 * fabs(g0[q]), seed,
                "%s: dL/dparam[%zu] (added to grad) vs finite difference", name, q);

    /* dildj == NULL means zero: compare with finite differences of the
     * loss without the ildj term; dy == NULL and grad == NULL are allowed
     * and change nothing else. */
    float dy2[GN * REF_MAX_DIM];
    memset(grad, 0, np * sizeof *grad);
    T_OK(nvp_coupling_inverse_backward(layer, n, y, dx, NULL, dy2, NULL));
    T_OK(nvp_coupling_inverse_backward(layer, n, y, dx, NULL, NULL, grad));
    for (size_t i = 0; i < n * dim; i++) {
        const double keep = yd[i];
        yd[i] = keep + h;
        const double up = coupling_loss(&ref, prm, n, yd, dx, NULL);
        yd[i] = keep - h;
        const double dn = coupling_loss(&ref, prm, n, yd, dx, NULL);
        yd[i] = keep;
        T_CLOSE(dy2[i], (up - dn) / (2 * h), G_RTOL, G_ATOL_REL * scale_y, seed,
                "%s: dy[%zu] with dildj NULL", name, i);
    }
    for (size_t q = 0; q < np; q++) {
        const double keep = prm[q];
        prm[q] = keep + h;
        const double up = coupling_loss(&ref, prm, n, yd, dx, NULL);
        prm[q] = keep - h;
        const double dn = coupling_loss(&ref, prm, n, yd, dx, NULL);
        prm[q] = keep;
        T_CLOSE(grad[q], (up - dn) / (2 * h), G_RTOL, G_ATOL_REL * scale_p, seed,
                "%s: dL/dparam[%zu] with dildj NULL", name, q);
    }
    free(prm);
    free(fd_y);
    free(fd_p);
    free(g0);
    free(grad);
    nvp_coupling_free(layer);
}
END_TEST

/* Several chunks (n > 256) accumulate into one gradient. */
START_TEST(test_grad_coupling_backward_many_rows)
{
    const uint64_t seed = 4100;
    const t_layer_cfg *cfg = &t_layer_cfgs[0]; /* dim 2 */
    const size_t dim = cfg->dim, n = 600;
    ref_coupling ref;
    nvp_coupling *layer = t_layer_make(cfg, seed, 0, &ref);
    const size_t np = ref.n_params;
    double *prm = t_layer_params(layer);
    t_prng p;
    t_prng_seed(&p, seed);
    float *y = t_xmalloc(n * dim * sizeof *y), *dx = t_xmalloc(n * dim * sizeof *dx);
    float *dildj = t_xmalloc(n * sizeof *dildj), *dy = t_xmalloc(n * dim * sizeof *dy);
    float *grad = t_xmalloc(np * sizeof *grad);
    double *yd = t_xmalloc(n * dim * sizeof *yd);
    t_fill_normal(&p, n * dim, y, 1.0);
    t_fill_normal(&p, n * dim, dx, 1.0);
    t_fill_normal(&p, n, dildj, 1.0);
    for (size_t i = 0; i < n * dim; i++)
        yd[i] = y[i];
    memset(grad, 0, np * sizeof *grad);
    T_OK(nvp_coupling_inverse_backward(layer, n, y, dx, dildj, dy, grad));
    const double h = 1e-6;
    double *fd = t_xmalloc(np * sizeof *fd), scale = 0;
    for (size_t q = 0; q < np; q++) {
        const double keep = prm[q];
        prm[q] = keep + h;
        const double up = coupling_loss(&ref, prm, n, yd, dx, dildj);
        prm[q] = keep - h;
        const double dn = coupling_loss(&ref, prm, n, yd, dx, dildj);
        prm[q] = keep;
        fd[q] = (up - dn) / (2 * h);
        scale = fmax(scale, fabs(fd[q]));
    }
    for (size_t q = 0; q < np; q++)
        T_CLOSE(grad[q], fd[q], G_RTOL, G_ATOL_REL * scale, seed, "600 rows: dL/dparam[%zu]", q);
    /* Row 599's dy equals the single-row call's. */
    float dy1[2];
    T_OK(nvp_coupling_inverse_backward(layer, 1, y + 599 * dim, dx + 599 * dim, dildj + 599, dy1, NULL));
    T_CHECK(t_first_diff(dy1, dy + 599 * dim, dim) == (size_t)-1, "dy of the last row depends on the batch");
    free(prm);
    free(y);
    free(dx);
    free(dildj);
    free(dy);
    free(grad);
    free(yd);
    free(fd);
    nvp_coupling_free(layer);
}
END_TEST

typedef struct {
    size_t dim, layers, n;
    float clamp;
    size_t n_hidden; /* of hidden widths 6, 5, 4; 0 means 2 */
} nll_cfg;
static const nll_cfg nll_cfgs[] = {
    {3, 3, 16, 0, 0}, /* the example: dim 3, 3 layers, hidden 6,5 */
    {3, 2, 16, 0, 0},
    {5, 3, 12, 0, 0},
    {2, 2, 260, 0, 0}, /* crosses the 256-row chunk boundary */
    {3, 3, 16, 0.7f, 0}, /* with the soft log-scale clamp */
    /* products only (no sweep) across chunks: the first chunk writes the
     * conditioners' gradients fresh, the next ones add to them */
    {5, 2, 300, 0, 1},
    {4, 2, 270, 0, 3},
    {2, 2, 270, 0, 3}, /* a sweep followed by a product */
};

/* nvp_chain_nll_grad: every parameter's derivative against central finite
 * differences of the reference's mean NLL; the loss itself; grad is
 * overwritten, not added to. */
START_TEST(test_grad_chain_nll)
{
    const nll_cfg *cf = &nll_cfgs[_i];
    const size_t hidden[3] = {6, 5, 4};
    const uint64_t seed = 4200 + (uint64_t)_i;
    const size_t dim = cf->dim, n = cf->n, nh = cf->n_hidden ? cf->n_hidden : 2;
    nvp_chain *c = t_chain(dim, cf->layers, nh, hidden, seed);
    ref_chain ref;
    ck_assert_int_eq(ref_chain_init_alternating(&ref, dim, cf->layers, nh, hidden), 0);
    T_OK(nvp_chain_set_log_scale_clamp(c, cf->clamp));
    for (size_t k = 0; k < cf->layers; k++) {
        ref.layer[k].clamp = cf->clamp;
        T_CHECK(nvp_coupling_log_scale_clamp(nvp_layer_as_coupling(nvp_chain_layer(c, k, NULL))) == cf->clamp,
                "layer %zu: clamp not set by the chain", k);
    }
    const size_t np = nvp_chain_num_params(c);
    ck_assert_uint_eq(np, ref.n_params);
    double *prm = t_xmalloc(np * sizeof *prm);
    ref_params_from_float(np, nvp_chain_params(c), prm);
    float *y = t_xmalloc(n * dim * sizeof *y), *grad = t_xmalloc(np * sizeof *grad);
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * dim, y, 1.0);
    for (size_t q = 0; q < np; q++)
        grad[q] = 1e30f; /* must be overwritten */
    float loss = NAN;
    T_OK(nvp_chain_nll_grad(c, n, y, grad, &loss));
    T_CLOSE(loss, ref_chain_nll(&ref, prm, n, y), 1e-5, 1e-5, seed, "dim %zu: loss vs reference NLL", dim);
    float *lp = t_xmalloc(n * sizeof *lp);
    T_OK(nvp_chain_log_prob(c, n, y, lp));
    double mean = 0;
    for (size_t i = 0; i < n; i++)
        mean -= lp[i];
    T_CLOSE(loss, mean / (double)n, 1e-5, 1e-5, seed, "dim %zu: loss vs -mean(log_prob)", dim);

    const double h = 1e-6;
    double *fd = t_xmalloc(np * sizeof *fd), scale = 0.0;
    for (size_t q = 0; q < np; q++) {
        const double keep = prm[q];
        prm[q] = keep + h;
        const double up = ref_chain_nll(&ref, prm, n, y);
        prm[q] = keep - h;
        const double dn = ref_chain_nll(&ref, prm, n, y);
        prm[q] = keep;
        fd[q] = (up - dn) / (2 * h);
        scale = fmax(scale, fabs(fd[q]));
    }
    size_t layer = 0, next = 0;
    for (size_t q = 0; q < np; q++) {
        while (layer < cf->layers && q >= next)
            next += ref.layer[layer++].n_params;
        T_CLOSE(grad[q], fd[q], G_RTOL, G_ATOL_REL * scale, seed,
                "dim %zu, %zu layers, n %zu: dNLL/dparam[%zu] (layer %zu)", dim, cf->layers, n, q, layer - 1);
    }
    /* Loss NULL is allowed and gives the same gradient. */
    float *g2 = t_xmalloc(np * sizeof *g2);
    T_OK(nvp_chain_nll_grad(c, n, y, g2, NULL));
    T_CHECK(t_first_diff(g2, grad, np) == (size_t)-1, "gradient differs without loss");
    free(g2);
    free(prm);
    free(y);
    free(grad);
    free(lp);
    free(fd);
    nvp_chain_free(c);
}
END_TEST

/* Hidden layers 512 wide, whose activations the conditioner stores with
 * rows a cache line further apart than their width, and a 16-wide one
 * between them, over two chunks of rows: the loss against the reference
 * NLL, log_prob against the reference row by row, and the gradient along
 * three random directions against central differences of the reference
 * (every parameter at once, which a per-parameter check would make too
 * slow at this width). */
START_TEST(test_grad_chain_nll_wide_layers)
{
    const size_t dim = 4, n = 260, hidden[3] = {512, 16, 512};
    const uint64_t seed = 4700;
    nvp_chain *c = t_chain(dim, 2, 3, hidden, seed);
    ref_chain ref;
    ck_assert_int_eq(ref_chain_init_alternating(&ref, dim, 2, 3, hidden), 0);
    const size_t np = nvp_chain_num_params(c);
    ck_assert_uint_eq(np, ref.n_params);
    double *prm = t_xmalloc(np * sizeof *prm), *dir = t_xmalloc(np * sizeof *dir);
    ref_params_from_float(np, nvp_chain_params(c), prm);
    float *y = t_xmalloc(n * dim * sizeof *y), *grad = t_xmalloc(np * sizeof *grad);
    float *lp = t_xmalloc(n * sizeof *lp);
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * dim, y, 1.0);
    for (size_t q = 0; q < np; q++)
        grad[q] = NAN; /* must be overwritten */
    float loss = NAN;
    T_OK(nvp_chain_nll_grad(c, n, y, grad, &loss));
    T_CLOSE(loss, ref_chain_nll(&ref, prm, n, y), 1e-5, 1e-5, seed, "loss vs reference NLL");
    T_OK(nvp_chain_log_prob(c, n, y, lp));
    for (size_t i = 0; i < n; i++)
        T_CLOSE(lp[i], ref_chain_log_prob_f(&ref, prm, y + i * dim), 1e-4, 1e-4, seed, "log_prob of row %zu", i);
    const double h = 1e-7; /* small: 17,000 parameters move at once */
    for (int k = 0; k < 3; k++) {
        double along = 0.0;
        for (size_t q = 0; q < np; q++) {
            dir[q] = t_prng_normal(&p);
            along += dir[q] * grad[q];
        }
        double *moved = t_xmalloc(np * sizeof *moved);
        for (size_t q = 0; q < np; q++)
            moved[q] = prm[q] + h * dir[q];
        const double up = ref_chain_nll(&ref, moved, n, y);
        for (size_t q = 0; q < np; q++)
            moved[q] = prm[q] - h * dir[q];
        const double dn = ref_chain_nll(&ref, moved, n, y);
        free(moved);
        T_CLOSE(along, (up - dn) / (2 * h), 2e-3, 1e-3, seed, "gradient along direction %d", k);
    }
    free(prm);
    free(dir);
    free(y);
    free(grad);
    free(lp);
    nvp_chain_free(c);
}
END_TEST

Suite *grad_suite(void)
{
    Suite *s = suite_create("grad");
    TCase *tc = tcase_create("finite_differences");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_loop_test(tc, test_grad_coupling_inverse_backward, 0, 2 * (int)t_n_layer_cfgs);
    tcase_add_test(tc, test_grad_coupling_backward_many_rows);
    tcase_add_loop_test(tc, test_grad_chain_nll, 0, (int)(sizeof nll_cfgs / sizeof nll_cfgs[0]));
    tcase_add_test(tc, test_grad_chain_nll_wide_layers);
    suite_add_tcase(s, tc);
    return s;
}
