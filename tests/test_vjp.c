/* SPDX-License-Identifier: MIT */
/* The forward direction's vector-Jacobian products (nvp_layer_ and
 * nvp_chain_forward_backward, with and without a context) and the
 * reverse-KL gradient and step, against central finite differences of a
 * double-precision forward written here from the documented layouts
 * (nvpflow.h: the coupling's conditioner and mask, the permutation,
 * actnorm and linear layers), for every kind, on several seeds. */
#include <stdlib.h>
#include <string.h>

#include "tests.h"

/* As tests/test_grad.c: relative 1e-3 of the entry plus 1e-4 of the
 * largest entry of the compared gradient. */
#define V_RTOL 1e-3
#define V_ATOL_REL 1e-4
#define V_H 1e-6
#define V_PI 3.14159265358979323846

enum { V_MAXD = 8, V_MAXC = 4, V_MAXL = 8 };
enum { K_COUPLING, K_PERMUTE, K_ACTNORM, K_LINEAR };

/* One layer as the double forward sees it. */
typedef struct vlayer {
    int kind;
    size_t cdim;
    unsigned char mask[V_MAXD];
    size_t n_hidden, hidden[3];
    float clamp;
    size_t perm[V_MAXD];
    size_t np, off;
} vlayer;

typedef struct vmodel {
    size_t dim, cdim, n_layers, np;
    vlayer l[V_MAXL];
} vmodel;

/* The conditioner (W in x out row-major, then b; ReLU between), then the
 * affine map of the transformed dimensions. */
static void ref_coupling(const vlayer *L, size_t dim, const double *p,
                         const double *x, const double *c, double *y,
                         double *ld)
{
    double in[V_MAXD + V_MAXC], buf[2][64];
    size_t n_in = 0, nb = 0, idx_b[V_MAXD];
    for (size_t j = 0; j < dim; j++) {
        if (L->mask[j])
            in[n_in++] = x[j];
        else
            idx_b[nb++] = j;
    }
    for (size_t j = 0; j < L->cdim; j++)
        in[n_in++] = c[j];
    const double *a = in;
    size_t fan_in = n_in, off = 0;
    for (size_t d = 0; d <= L->n_hidden; d++) {
        const size_t fan_out = d < L->n_hidden ? L->hidden[d] : 2 * nb;
        double *o = buf[d & 1];
        for (size_t q = 0; q < fan_out; q++) {
            double s = p[off + fan_in * fan_out + q];
            for (size_t i = 0; i < fan_in; i++)
                s += a[i] * p[off + i * fan_out + q];
            o[q] = d < L->n_hidden && s < 0 ? 0 : s;
        }
        off += fan_in * fan_out + fan_out;
        fan_in = fan_out;
        a = o;
    }
    memcpy(y, x, dim * sizeof *y);
    double sum = 0;
    for (size_t j = 0; j < nb; j++) {
        double ls = a[nb + j];
        if (L->clamp > 0)
            ls = L->clamp * tanh(ls / L->clamp);
        y[idx_b[j]] = x[idx_b[j]] * exp(ls) + a[j];
        sum += ls;
    }
    *ld += sum;
}

static void ref_layer(const vlayer *L, size_t dim, const double *p,
                      const double *x, const double *c, double *y, double *ld)
{
    switch (L->kind) {
    case K_COUPLING:
        ref_coupling(L, dim, p, x, c, y, ld);
        break;
    case K_PERMUTE:
        for (size_t j = 0; j < dim; j++)
            y[j] = x[L->perm[j]];
        break;
    case K_ACTNORM:
        for (size_t j = 0; j < dim; j++) {
            y[j] = x[j] * exp(p[j]) + p[dim + j];
            *ld += p[j];
        }
        break;
    case K_LINEAR: {
        /* w = U x, y = L w + b */
        double w[V_MAXD];
        for (size_t i = 0; i < dim; i++) {
            double s = exp(p[i * dim + i]) * x[i];
            for (size_t j = i + 1; j < dim; j++)
                s += p[i * dim + j] * x[j];
            w[i] = s;
            *ld += p[i * dim + i];
        }
        for (size_t i = 0; i < dim; i++) {
            double s = w[i] + p[dim * dim + i];
            for (size_t j = 0; j < i; j++)
                s += p[i * dim + j] * w[j];
            y[i] = s;
        }
        break;
    }
    }
}

/* One row through every layer. */
static void ref_forward(const vmodel *m, const double *p, const double *x,
                        const double *c, double *y, double *ld)
{
    double z[V_MAXD], t[V_MAXD];
    memcpy(z, x, m->dim * sizeof *z);
    *ld = 0;
    for (size_t k = 0; k < m->n_layers; k++) {
        ref_layer(&m->l[k], m->dim, p + m->l[k].off, z, c, t, ld);
        memcpy(z, t, m->dim * sizeof *z);
    }
    memcpy(y, z, m->dim * sizeof *y);
}

/* L = sum dy . y + sum dld * logdet over n rows. */
static double ref_vjp_loss(const vmodel *m, const double *p, size_t n,
                           const double *x, const double *c, const float *dy,
                           const float *dld)
{
    double L = 0;
    for (size_t i = 0; i < n; i++) {
        double y[V_MAXD], ld;
        ref_forward(m, p, x + i * m->dim, c ? c + i * m->cdim : NULL, y, &ld);
        for (size_t j = 0; j < m->dim; j++)
            L += (double)dy[i * m->dim + j] * y[j];
        if (dld)
            L += (double)dld[i] * ld;
    }
    return L;
}

/* ------------------------------------------------------ building models */

/* What a model is made of: a string of kinds, 'c' coupling (mask
 * alternating by its position among the couplings, or a random one), 'p'
 * permutation, 'a' actnorm, 'l' linear. */
typedef struct vcase {
    const char *name;
    size_t dim, cdim;
    const char *layers;
    size_t n_hidden, hidden[3];
    float clamp;
    size_t n;
} vcase;

/* Creates the layers (random parameters of scale 0.4 added to each
 * kind's initialisation, so that no log-scale is 0 and no permutation the
 * identity) and describes them in m. */
static void make_layers(const vcase *vc, uint64_t seed, nvp_layer **out,
                        vmodel *m)
{
    t_prng g;
    t_prng_seed(&g, seed);
    nvp_rng *rng = t_rng(seed);
    memset(m, 0, sizeof *m);
    m->dim = vc->dim;
    m->cdim = vc->cdim;
    m->n_layers = strlen(vc->layers);
    ck_assert_uint_le(m->n_layers, V_MAXL);
    size_t n_coupling = 0;
    for (size_t k = 0; k < m->n_layers; k++) {
        vlayer *L = &m->l[k];
        nvp_layer *l = NULL;
        switch (vc->layers[k]) {
        case 'c': {
            L->kind = K_COUPLING;
            L->cdim = vc->cdim;
            size_t ones = 0;
            do { /* alternating halves for even couplings, random others */
                ones = 0;
                for (size_t j = 0; j < vc->dim; j++) {
                    L->mask[j] = n_coupling % 2 == 0
                                     ? (unsigned char)((j < vc->dim / 2) ^ (n_coupling % 4 == 2))
                                     : (unsigned char)(t_prng_u64(&g) & 1);
                    ones += L->mask[j];
                }
            } while (ones == 0 || ones == vc->dim);
            n_coupling++;
            L->n_hidden = vc->n_hidden;
            memcpy(L->hidden, vc->hidden, sizeof L->hidden);
            L->clamp = vc->clamp;
            nvp_coupling *cp = NULL;
            T_OK(nvp_coupling_create_conditional(&cp, vc->dim, vc->cdim, L->mask, vc->n_hidden, vc->hidden, 0, rng, NULL));
            T_OK(nvp_coupling_set_log_scale_clamp(cp, vc->clamp));
            l = nvp_coupling_as_layer(cp);
            break;
        }
        case 'p':
            L->kind = K_PERMUTE;
            for (size_t j = 0; j < vc->dim; j++)
                L->perm[j] = j;
            for (size_t j = vc->dim; j-- > 1;) {
                const size_t r = (size_t)(t_prng_u64(&g) % (j + 1)), t = L->perm[j];
                L->perm[j] = L->perm[r];
                L->perm[r] = t;
            }
            T_OK(nvp_layer_create_permutation(&l, vc->dim, L->perm, NULL));
            break;
        case 'a':
            L->kind = K_ACTNORM;
            T_OK(nvp_layer_create_actnorm(&l, vc->dim, NULL));
            break;
        default:
            L->kind = K_LINEAR;
            T_OK(nvp_layer_create_linear(&l, vc->dim, NULL));
            break;
        }
        L->np = nvp_layer_num_params(l);
        L->off = m->np;
        m->np += L->np;
        if (L->np) {
            float *p = t_xmalloc(L->np * sizeof *p);
            T_OK(nvp_layer_get_params(l, L->np, p));
            for (size_t q = 0; q < L->np; q++)
                p[q] += (float)(0.4 * t_prng_normal(&g));
            T_OK(nvp_layer_set_params(l, L->np, p));
            free(p);
        }
        out[k] = l;
    }
    nvp_rng_free(rng);
}

static nvp_chain *make_chain(const vcase *vc, uint64_t seed, vmodel *m)
{
    nvp_layer *layers[V_MAXL];
    make_layers(vc, seed, layers, m);
    nvp_base *base = NULL;
    T_OK(nvp_base_create_normal(&base, vc->dim, NULL));
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create_from_layers(&c, base, m->n_layers, layers, NULL));
    ck_assert_uint_eq(nvp_chain_num_params(c), m->np);
    ck_assert_uint_eq(nvp_chain_context_dim(c), vc->cdim);
    for (size_t k = 0; k < m->n_layers; k++) {
        size_t off;
        ck_assert_ptr_nonnull(nvp_chain_layer(c, k, &off));
        ck_assert_uint_eq(off, m->l[k].off);
    }
    return c;
}

/* Central differences of ref_vjp_loss in every entry of v (n values),
 * against got (float, minus base when base is not NULL: the part the call
 * added). */
static void check_fd(const vmodel *m, double *p, size_t n, double *x,
                     double *c, const float *dy, const float *dld, double *v,
                     size_t nv, const float *got, const float *base,
                     uint64_t seed, const char *what, const char *name)
{
    double *fd = t_xmalloc((nv ? nv : 1) * sizeof *fd), scale = 0;
    for (size_t q = 0; q < nv; q++) {
        const double keep = v[q];
        v[q] = keep + V_H;
        const double up = ref_vjp_loss(m, p, n, x, c, dy, dld);
        v[q] = keep - V_H;
        const double dn = ref_vjp_loss(m, p, n, x, c, dy, dld);
        v[q] = keep;
        fd[q] = (up - dn) / (2 * V_H);
        scale = fmax(scale, fabs(fd[q]));
    }
    for (size_t q = 0; q < nv; q++) {
        const double g = (double)got[q] - (base ? (double)base[q] : 0.0);
        T_CLOSE(g, fd[q], V_RTOL, V_ATOL_REL * scale + (base ? 1e-6 * fabs(base[q]) : 0), seed,
                "%s: %s[%zu] vs finite difference", name, what, q);
    }
    free(fd);
}

static const vcase layer_cases[] = {
    {"coupling dim 3, hidden 8,6", 3, 0, "c", 2, {8, 6}, 0, 6},
    {"coupling dim 2 (single-input sweep)", 2, 0, "c", 2, {8, 6}, 0, 6},
    {"coupling dim 2, one hidden layer", 2, 0, "c", 1, {7}, 0, 5},
    {"coupling dim 5, affine conditioner", 5, 0, "c", 0, {0}, 0, 4},
    {"coupling dim 4, context 2", 4, 2, "c", 2, {7, 5}, 0, 6},
    {"coupling dim 2, context 1", 2, 1, "c", 2, {8, 6}, 0, 6},
    {"coupling dim 5, context 3, clamp 0.8", 5, 3, "c", 2, {6, 6}, 0.8f, 5},
    {"permutation dim 5", 5, 0, "p", 0, {0}, 0, 4},
    {"actnorm dim 4", 4, 0, "a", 0, {0}, 0, 6},
    {"linear dim 4", 4, 0, "l", 0, {0}, 0, 6},
    {"linear dim 1", 1, 0, "l", 0, {0}, 0, 3},
    /* dim 8: the solves' two rows of doubles outgrow the rounding of a
     * carved block (a scratch sized for one row overran) */
    {"linear dim 8", 8, 0, "l", 0, {0}, 0, 4},
};
enum { N_LAYER_CASES = sizeof layer_cases / sizeof layer_cases[0], V_SEEDS = 3 };

/* Fills the inputs of a VJP check. */
static void vjp_inputs(t_prng *g, size_t n, size_t dim, size_t cdim,
                       float *x, float *ctx, float *dy, float *dld,
                       double *xd, double *cd)
{
    t_fill_normal(g, n * dim, x, 1.0);
    t_fill_normal(g, n * cdim, ctx, 1.0);
    t_fill_normal(g, n * dim, dy, 1.0);
    t_fill_normal(g, n, dld, 1.0);
    for (size_t i = 0; i < n * dim; i++)
        xd[i] = x[i];
    for (size_t i = 0; i < n * cdim; i++)
        cd[i] = ctx[i];
}

/* nvp_layer_forward_backward(_given): dx, dcontext (overwritten) and the
 * parameter gradient (added) of every kind, on V_SEEDS seeds. */
START_TEST(test_vjp_layer)
{
    const vcase *vc = &layer_cases[_i % N_LAYER_CASES];
    const uint64_t seed = 9100 + (uint64_t)_i;
    vmodel m;
    nvp_layer *l;
    make_layers(vc, seed, &l, &m);
    const size_t n = vc->n, dim = vc->dim, cdim = vc->cdim, np = m.np;
    t_prng g;
    t_prng_seed(&g, seed);
    float *x = t_xmalloc(n * dim * 4), *ctx = t_xmalloc(n * cdim * 4 + 4);
    float *dy = t_xmalloc(n * dim * 4), *dld = t_xmalloc(n * 4);
    float *dx = t_xmalloc(n * dim * 4), *dc = t_xmalloc(n * cdim * 4 + 4);
    double *xd = t_xmalloc(n * dim * 8), *cd = t_xmalloc(n * cdim * 8 + 8);
    vjp_inputs(&g, n, dim, cdim, x, ctx, dy, dld, xd, cd);
    float *g0 = t_xmalloc(np * 4 + 4), *grad = t_xmalloc(np * 4 + 4);
    t_fill_normal(&g, np, g0, 1.0);
    memcpy(grad, g0, np * 4);
    for (size_t i = 0; i < n * cdim; i++)
        dc[i] = 1e30f; /* overwritten */
    if (cdim)
        T_OK(nvp_layer_forward_backward_given(l, n, x, ctx, dy, dld, dx, dc, np ? grad : NULL));
    else
        T_OK(nvp_layer_forward_backward(l, n, x, dy, dld, dx, np ? grad : NULL));
    double *p = t_xmalloc(np * 8 + 8);
    float *pf = t_xmalloc(np * 4 + 4);
    if (np)
        T_OK(nvp_layer_get_params(l, np, pf));
    for (size_t q = 0; q < np; q++)
        p[q] = pf[q];
    check_fd(&m, p, n, xd, cdim ? cd : NULL, dy, dld, xd, n * dim, dx, NULL, seed, "dx", vc->name);
    check_fd(&m, p, n, xd, cdim ? cd : NULL, dy, dld, cd, n * cdim, dc, NULL, seed, "dcontext", vc->name);
    check_fd(&m, p, n, xd, cdim ? cd : NULL, dy, dld, p, np, grad, g0, seed, "dparam (added)", vc->name);
    /* dlogdet NULL means zero; dx may be dy's memory. */
    float *dx2 = t_xmalloc(n * dim * 4);
    memcpy(dx2, dy, n * dim * 4);
    T_OK(nvp_layer_forward_backward_given(l, n, x, cdim ? ctx : NULL, dx2, NULL, dx2, NULL, NULL));
    check_fd(&m, p, n, xd, cdim ? cd : NULL, dy, NULL, xd, n * dim, dx2, NULL, seed, "dx (dlogdet NULL, in place)", vc->name);
    /* The unconditional form refuses a layer that reads a context. */
    if (cdim)
        ck_assert_int_eq(nvp_layer_forward_backward(l, n, x, dy, dld, dx, NULL), NVP_EINVAL);
    /* Non-finite input: refused before grad changes. */
    memcpy(g0, grad, np * 4);
    x[0] = NAN;
    ck_assert_int_eq(nvp_layer_forward_backward_given(l, n, x, ctx, dy, dld, dx, NULL, np ? grad : NULL), NVP_ENONFINITE);
    T_CHECK(np == 0 || memcmp(g0, grad, np * 4) == 0, "%s: grad changed by a refused call", vc->name);
    free(dx2);
    free(x), free(ctx), free(dy), free(dld), free(dx), free(dc), free(xd), free(cd);
    free(g0), free(grad), free(p), free(pf);
    nvp_layer_free(l);
}
END_TEST

static const vcase chain_cases[] = {
    {"every kind, dim 3", 3, 0, "lcpacc", 2, {6, 5}, 0, 7},
    {"every kind, dim 4, context 2", 4, 2, "acpcla", 2, {6, 5}, 0, 5},
    {"couplings and actnorm, dim 2, 300 rows", 2, 0, "accpc", 2, {8, 6}, 0, 300},
    {"dim 2, context 1, clamp 0.7", 2, 1, "cclc", 1, {9}, 0.7f, 9},
    /* a linear layer with the largest scratch at an even index >= 2 */
    {"linear, permutation, linear, dim 8", 8, 0, "lpl", 0, {0}, 0, 4},
    {"linear, permutation, linear, dim 8, 300 rows", 8, 0, "lpl", 0, {0},
     0, 300},
};
enum { N_CHAIN_CASES = sizeof chain_cases / sizeof chain_cases[0] };

/* nvp_chain_forward_backward(_given) through chains that mix every kind,
 * across the chunk boundary. */
START_TEST(test_vjp_chain)
{
    const vcase *vc = &chain_cases[_i % N_CHAIN_CASES];
    const uint64_t seed = 9300 + (uint64_t)_i;
    vmodel m;
    nvp_chain *c = make_chain(vc, seed, &m);
    const size_t n = vc->n, dim = vc->dim, cdim = vc->cdim, np = m.np;
    t_prng g;
    t_prng_seed(&g, seed);
    float *x = t_xmalloc(n * dim * 4), *ctx = t_xmalloc(n * cdim * 4 + 4);
    float *dy = t_xmalloc(n * dim * 4), *dld = t_xmalloc(n * 4);
    float *dx = t_xmalloc(n * dim * 4), *dc = t_xmalloc(n * cdim * 4 + 4);
    double *xd = t_xmalloc(n * dim * 8), *cd = t_xmalloc(n * cdim * 8 + 8);
    vjp_inputs(&g, n, dim, cdim, x, ctx, dy, dld, xd, cd);
    float *g0 = t_xmalloc(np * 4), *grad = t_xmalloc(np * 4);
    t_fill_normal(&g, np, g0, 1.0);
    memcpy(grad, g0, np * 4);
    for (size_t i = 0; i < n * cdim; i++)
        dc[i] = 1e30f;
    if (cdim) {
        T_OK(nvp_chain_forward_backward_given(c, n, x, ctx, dy, dld, dx, dc, grad));
        ck_assert_int_eq(nvp_chain_forward_backward(c, n, x, dy, dld, dx, grad), NVP_EINVAL);
    } else {
        T_OK(nvp_chain_forward_backward(c, n, x, dy, dld, dx, grad));
    }
    double *p = t_xmalloc(np * 8);
    for (size_t q = 0; q < np; q++)
        p[q] = nvp_chain_params(c)[q];
    /* Every parameter; the inputs of the first rows (the long case's
     * rows are checked through the parameters). */
    const size_t nx = n < 20 ? n : 20;
    check_fd(&m, p, n, xd, cdim ? cd : NULL, dy, dld, p, np, grad, g0, seed, "dparam (added)", vc->name);
    check_fd(&m, p, n, xd, cdim ? cd : NULL, dy, dld, xd, nx * dim, dx, NULL, seed, "dx", vc->name);
    check_fd(&m, p, n, xd, cdim ? cd : NULL, dy, dld, cd, nx * cdim, dc, NULL, seed, "dcontext", vc->name);
    /* The chain's VJP is the layers' composed: y and logdet agree with
     * nvp_chain_forward_given, and the last row alone gives its own
     * dx. */
    float *dx1 = t_xmalloc(dim * 4), *dc1 = t_xmalloc(cdim * 4 + 4);
    T_OK(nvp_chain_forward_backward_given(c, 1, x + (n - 1) * dim, cdim ? ctx + (n - 1) * cdim : NULL, dy + (n - 1) * dim, dld + n - 1, dx1, dc1, NULL));
    T_CHECK(t_first_diff(dx1, dx + (n - 1) * dim, dim) == (size_t)-1, "%s: the last row's dx depends on the batch", vc->name);
    /* Refusals change nothing. */
    memcpy(g0, grad, np * 4);
    dy[1] = INFINITY;
    ck_assert_int_eq(nvp_chain_forward_backward_given(c, n, x, ctx, dy, dld, dx, NULL, grad), NVP_ENONFINITE);
    dy[1] = 0;
    dld[0] = NAN;
    ck_assert_int_eq(nvp_chain_forward_backward_given(c, n, x, ctx, dy, dld, dx, NULL, grad), NVP_ENONFINITE);
    T_CHECK(memcmp(g0, grad, np * 4) == 0, "%s: grad changed by a refused call", vc->name);
    ck_assert_int_eq(nvp_chain_forward_backward_given(c, n, x, ctx, NULL, dld, dx, NULL, grad), NVP_EINVAL);
    if (cdim)
        ck_assert_int_eq(nvp_chain_forward_backward_given(c, n, x, NULL, dy, NULL, dx, NULL, grad), NVP_EINVAL);
    free(dx1), free(dc1);
    free(x), free(ctx), free(dy), free(dld), free(dx), free(dc), free(xd), free(cd);
    free(g0), free(grad), free(p);
    nvp_chain_free(c);
}
END_TEST

/* ---------------------------------------------------------- reverse KL */

/* A Gaussian target in every dimension, its mean shifted by the row's
 * context when there is one: log p~(y) = -0.5 sum ((y_j - mu_j) / s_j)^2,
 * mu_j = 0.5 + 0.3 j (+ c_0), s_j = 0.7 + 0.2 j. */
typedef struct gauss_target {
    const float *context; /* batch rows, or NULL */
    size_t cdim;
    int fail;             /* 1: return 7; 2: NaN log_p; 3: inf gradient */
    size_t calls;
} gauss_target;

static double gauss_mu(const gauss_target *t, size_t i, size_t j)
{
    return 0.5 + 0.3 * (double)j + (t->context ? t->context[i * t->cdim] : 0.0);
}

static int gauss_log_density(void *user, size_t n, size_t dim, const float *y,
                             float *log_p, float *dlogp_dy)
{
    gauss_target *t = user;
    t->calls++;
    if (t->fail == 1)
        return 7;
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t j = 0; j < dim; j++) {
            const double sd = 0.7 + 0.2 * (double)j;
            const double u = ((double)y[i * dim + j] - gauss_mu(t, i, j)) / sd;
            s += -0.5 * u * u;
            dlogp_dy[i * dim + j] = (float)(-u / sd);
        }
        log_p[i] = (float)s;
    }
    if (t->fail == 2)
        log_p[n / 2] = NAN;
    if (t->fail == 3)
        dlogp_dy[0] = INFINITY;
    return 0;
}

/* The reverse-KL loss in double for the draws z (n rows). */
static double ref_rkl_loss(const vmodel *m, const double *p, size_t n,
                           const double *z, const double *c,
                           const gauss_target *t)
{
    double L = 0;
    for (size_t i = 0; i < n; i++) {
        double y[V_MAXD], ld, lq = 0, lp = 0;
        ref_forward(m, p, z + i * m->dim, c ? c + i * m->cdim : NULL, y, &ld);
        for (size_t j = 0; j < m->dim; j++) {
            const double sd = 0.7 + 0.2 * (double)j;
            const double u = (y[j] - gauss_mu(t, i, j)) / sd;
            lq += -0.5 * z[i * m->dim + j] * z[i * m->dim + j] - 0.5 * log(2 * V_PI);
            lp += -0.5 * u * u;
        }
        L += lq - ld - lp;
    }
    return L / (double)n;
}

/* nvp_chain_reverse_kl_grad(_given): the loss and every parameter's
 * derivative against the double reference with the same draws; grad is
 * overwritten. */
START_TEST(test_vjp_reverse_kl_grad)
{
    const vcase *vc = &chain_cases[_i % N_CHAIN_CASES];
    const uint64_t seed = 9500 + (uint64_t)_i;
    vmodel m;
    nvp_chain *c = make_chain(vc, seed, &m);
    const size_t n = vc->n, dim = vc->dim, cdim = vc->cdim, np = m.np;
    t_prng g;
    t_prng_seed(&g, seed);
    float *ctx = t_xmalloc(n * cdim * 4 + 4), *z = t_xmalloc(n * dim * 4);
    double *cd = t_xmalloc(n * cdim * 8 + 8), *zd = t_xmalloc(n * dim * 8);
    t_fill_normal(&g, n * cdim, ctx, 1.0);
    for (size_t i = 0; i < n * cdim; i++)
        cd[i] = ctx[i];
    /* The draws the call makes: the base's, from the same seed. */
    nvp_rng *r = t_rng(seed);
    T_OK(nvp_base_sample(nvp_chain_base(c), r, n, z));
    nvp_rng_free(r);
    for (size_t i = 0; i < n * dim; i++)
        zd[i] = z[i];
    gauss_target t = {cdim ? ctx : NULL, cdim, 0, 0};
    float *grad = t_xmalloc(np * 4), loss = NAN;
    for (size_t q = 0; q < np; q++)
        grad[q] = 1e30f;
    r = t_rng(seed);
    if (cdim)
        T_OK(nvp_chain_reverse_kl_grad_given(c, r, n, ctx, gauss_log_density, &t, grad, &loss));
    else
        T_OK(nvp_chain_reverse_kl_grad(c, r, n, gauss_log_density, &t, grad, &loss));
    nvp_rng_free(r);
    ck_assert_uint_eq(t.calls, 1);
    double *p = t_xmalloc(np * 8);
    for (size_t q = 0; q < np; q++)
        p[q] = nvp_chain_params(c)[q];
    T_CLOSE(loss, ref_rkl_loss(&m, p, n, zd, cdim ? cd : NULL, &t), 1e-4, 1e-4, seed, "%s: reverse-KL loss", vc->name);
    double *fd = t_xmalloc(np * 8), scale = 0;
    for (size_t q = 0; q < np; q++) {
        const double keep = p[q];
        p[q] = keep + V_H;
        const double up = ref_rkl_loss(&m, p, n, zd, cdim ? cd : NULL, &t);
        p[q] = keep - V_H;
        const double dn = ref_rkl_loss(&m, p, n, zd, cdim ? cd : NULL, &t);
        p[q] = keep;
        fd[q] = (up - dn) / (2 * V_H);
        scale = fmax(scale, fabs(fd[q]));
    }
    for (size_t q = 0; q < np; q++)
        T_CLOSE(grad[q], fd[q], V_RTOL, V_ATOL_REL * scale, seed, "%s: reverse-KL dparam[%zu]", vc->name, q);
    free(ctx), free(z), free(cd), free(zd), free(grad), free(p), free(fd);
    nvp_chain_free(c);
}
END_TEST

/* Refused steps change neither the chain nor the optimizer; the
 * callback's own code comes back; the loss is NaN. */
START_TEST(test_vjp_reverse_kl_refusals)
{
    const vcase *vc = &chain_cases[1]; /* reads a context */
    vmodel m;
    nvp_chain *c = make_chain(vc, 9700, &m);
    const size_t np = m.np, batch = 20;
    nvp_adam *opt = NULL;
    T_OK(nvp_adam_create(&opt, np, NULL));
    nvp_rng *r = t_rng(9701);
    float *ctx = t_xmalloc(batch * vc->cdim * 4);
    t_prng g;
    t_prng_seed(&g, 9702);
    t_fill_normal(&g, batch * vc->cdim, ctx, 1.0);
    gauss_target t = {ctx, vc->cdim, 0, 0};
    float loss = 0;
    T_OK(nvp_chain_reverse_kl_step_given(c, opt, r, batch, ctx, gauss_log_density, &t, &loss));
    ck_assert(isfinite(loss));
    ck_assert_uint_eq(nvp_adam_num_steps(opt), 1);
    float *before = t_xmalloc(np * 4);
    memcpy(before, nvp_chain_params(c), np * 4);
    static const int want[] = {0, 7, NVP_ENONFINITE, NVP_ENONFINITE};
    for (int f = 1; f <= 3; f++) {
        t.fail = f;
        loss = 0;
        ck_assert_int_eq(nvp_chain_reverse_kl_step_given(c, opt, r, batch, ctx, gauss_log_density, &t, &loss), want[f]);
        ck_assert(isnan(loss));
        T_CHECK(memcmp(before, nvp_chain_params(c), np * 4) == 0, "failure %d: parameters changed", f);
        ck_assert_uint_eq(nvp_adam_num_steps(opt), 1);
    }
    ck_assert_ptr_nonnull(strstr(nvp_chain_errmsg(c), "gave NaN"));
    t.fail = 0;
    ck_assert_int_eq(nvp_chain_reverse_kl_step(c, opt, r, batch, gauss_log_density, &t, &loss), NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_reverse_kl_step_given(c, opt, r, batch, NULL, gauss_log_density, &t, &loss), NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_reverse_kl_step_given(c, opt, r, batch, ctx, NULL, &t, &loss), NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_reverse_kl_step_given(c, opt, r, 0, ctx, gauss_log_density, &t, &loss), NVP_EINVAL);
    nvp_adam *small = NULL;
    T_OK(nvp_adam_create(&small, np - 1, NULL));
    ck_assert_int_eq(nvp_chain_reverse_kl_step_given(c, small, r, batch, ctx, gauss_log_density, &t, &loss), NVP_EDIM);
    /* Parameters holding NaN are refused before anything is drawn. */
    const float keep = nvp_chain_params(c)[0];
    nvp_chain_params(c)[0] = NAN;
    ck_assert_int_eq(nvp_chain_reverse_kl_step_given(c, opt, r, batch, ctx, gauss_log_density, &t, &loss), NVP_ENONFINITE);
    nvp_chain_params(c)[0] = keep;
    T_CHECK(memcmp(before, nvp_chain_params(c), np * 4) == 0, "parameters changed");
    ck_assert_uint_eq(nvp_adam_num_steps(opt), 1);
    nvp_adam_free(small);
    nvp_adam_free(opt);
    nvp_rng_free(r);
    free(ctx), free(before);
    nvp_chain_free(c);
}
END_TEST

/* Training by reverse KL reaches a Gaussian target: the loss (the negative
 * ELBO) comes down to -log Z = -log(2 pi s_0 s_1), where KL(q || p) is
 * 0. */
START_TEST(test_vjp_reverse_kl_trains)
{
    const vcase vc = {"actnorm and couplings, dim 2", 2, 0, "acpc", 1, {16}, 0, 0};
    vmodel m;
    nvp_chain *c = make_chain(&vc, 9800, &m);
    nvp_adam *opt = NULL;
    T_OK(nvp_adam_create(&opt, m.np, NULL));
    T_OK(nvp_adam_set_lr(opt, 5e-3f));
    nvp_rng *r = t_rng(9801);
    gauss_target t = {NULL, 0, 0, 0};
    double tail = 0;
    float first = 0;
    const int steps = 800, last = 100;
    for (int s = 0; s < steps; s++) {
        float loss;
        T_OK(nvp_chain_reverse_kl_step(c, opt, r, 128, gauss_log_density, &t, &loss));
        if (s == 0)
            first = loss;
        if (s >= steps - last)
            tail += loss / last;
    }
    const double log_z = log(2 * V_PI * 0.7 * 0.9);
    T_CHECK(tail + log_z < 0.02 && tail + log_z > -0.02,
            "mean loss of the last steps %.4f, want -log Z = %.4f (first %.4f)", tail, -log_z, (double)first);
    nvp_rng_free(r);
    nvp_adam_free(opt);
    nvp_chain_free(c);
}
END_TEST

Suite *vjp_suite(void)
{
    Suite *s = suite_create("vjp");
    TCase *tc = tcase_create("forward_backward");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_loop_test(tc, test_vjp_layer, 0, V_SEEDS * N_LAYER_CASES);
    tcase_add_loop_test(tc, test_vjp_chain, 0, V_SEEDS * N_CHAIN_CASES);
    suite_add_tcase(s, tc);
    TCase *rk = tcase_create("reverse_kl");
    tcase_set_timeout(rk, T_TIMEOUT);
    tcase_add_loop_test(rk, test_vjp_reverse_kl_grad, 0, V_SEEDS * N_CHAIN_CASES);
    tcase_add_test(rk, test_vjp_reverse_kl_refusals);
    tcase_add_test(rk, test_vjp_reverse_kl_trains);
    suite_add_tcase(s, rk);
    return s;
}
