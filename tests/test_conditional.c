/* SPDX-License-Identifier: MIT */
/* Conditional flows: chains whose couplings read a context vector c per
 * row (p(y | c)).  Checked against a double-precision reference built on
 * tests/reference.c (the conditioner's first layer reads (x_a, c)), by
 * central finite differences for the NLL gradient and the score, for
 * bitwise identity with the unconditional calls at C = 0 and across
 * threads, through a save and load, and for the refusals. */
#include <stdlib.h>
#include <string.h>

#include "reference.h"
#include "tests.h"

#define CDIM 2
#define DIM 3
#define NL 3

/* ------------------------------------------------- the reference */

/* A conditional coupling in the reference: ref_coupling's conditioner with
 * cdim more inputs on its first layer, fed (x_a, c). */
static void ref_cond_init(ref_coupling *r, size_t dim, size_t cdim,
                          const unsigned char *mask, size_t n_hidden,
                          const size_t *hidden)
{
    ck_assert_int_eq(ref_coupling_init(r, dim, mask, n_hidden, hidden), 0);
    r->n_params += cdim * r->fan_out[0];
    r->fan_in[0] += cdim;
}

/* One coupling, one point: forward (inverse == 0) or inverse; returns the
 * log-determinant of the direction taken. */
static double ref_cond_apply(const ref_coupling *r, size_t cdim,
                             const double *p, const double *in,
                             const double *c, int inverse, double *out)
{
    double xa[REF_MAX_DIM + 8], sh[REF_MAX_DIM], ls[REF_MAX_DIM];
    for (size_t j = 0; j < r->na; j++)
        xa[j] = in[r->idx_a[j]];
    for (size_t j = 0; j < cdim; j++)
        xa[r->na + j] = c[j];
    ref_conditioner(r, p, xa, sh, ls);
    memcpy(out, in, r->dim * sizeof *out);
    double ld = 0.0;
    for (size_t j = 0; j < r->nb; j++) {
        const size_t b = r->idx_b[j];
        out[b] = inverse ? (in[b] - sh[j]) * exp(-ls[j])
                         : in[b] * exp(ls[j]) + sh[j];
        ld += inverse ? -ls[j] : ls[j];
    }
    return ld;
}

typedef struct ref_cchain {
    ref_coupling layer[NL];
    size_t offset[NL];
    size_t n_params;
} ref_cchain;

static double ref_cchain_log_prob(const ref_cchain *rc, const double *p,
                                  const double *y, const double *c)
{
    double z[DIM], t[DIM], ld = 0.0;
    memcpy(z, y, sizeof z);
    for (size_t k = NL; k-- > 0;) {
        ld += ref_cond_apply(&rc->layer[k], CDIM, p + rc->offset[k], z, c, 1,
                             t);
        memcpy(z, t, sizeof z);
    }
    return ref_base_log_prob(DIM, z) + ld;
}

/* ----------------------------------------------- the model under test */

/* The masks of layer k: a fixed mix of splits (1 or 2 conditioned). */
static void mask_of(size_t k, unsigned char *mask)
{
    static const unsigned char masks[NL][DIM] = {
        {1, 0, 0}, {0, 1, 1}, {1, 0, 1}};
    memcpy(mask, masks[k], DIM);
}

static const size_t hidden[2] = {8, 6};

/* A chain of NL conditional couplings (CDIM context values) with small
 * random parameters everywhere (the output layers too, so that shift and
 * scale depend on x_a and c), its clamp set, and the reference. */
static nvp_chain *make_chain(uint64_t seed, ref_cchain *rc, double **pd)
{
    nvp_rng *rng = t_rng(seed);
    nvp_coupling *layers[NL];
    size_t off = 0;
    for (size_t k = 0; k < NL; k++) {
        unsigned char mask[DIM];
        mask_of(k, mask);
        T_OK(nvp_coupling_create_conditional(&layers[k], DIM, CDIM, mask, 2,
                                             hidden, 0, rng, NULL));
        if (rc) {
            ref_cond_init(&rc->layer[k], DIM, CDIM, mask, 2, hidden);
            rc->layer[k].clamp = 2.0;
            rc->offset[k] = off;
            off += rc->layer[k].n_params;
            ck_assert_uint_eq(rc->layer[k].n_params,
                              nvp_coupling_num_params(layers[k]));
        }
    }
    nvp_base *base;
    T_OK(nvp_base_create_normal(&base, DIM, NULL));
    nvp_chain *c;
    T_OK(nvp_chain_create(&c, base, NL, layers, NULL));
    ck_assert_uint_eq(nvp_chain_context_dim(c), CDIM);
    T_OK(nvp_chain_set_log_scale_clamp(c, 2.0f));
    nvp_rng_free(rng);
    if (rc) {
        rc->n_params = off;
        ck_assert_uint_eq(off, nvp_chain_num_params(c));
        *pd = t_xmalloc(off * sizeof **pd);
        ref_params_from_float(off, nvp_chain_params(c), *pd);
    }
    return c;
}

static void fill_rows(uint64_t seed, size_t n, float *y, float *ctx)
{
    t_prng p;
    t_prng_seed(&p, seed);
    t_fill_normal(&p, n * DIM, y, 1.0);
    t_fill_normal(&p, n * CDIM, ctx, 1.0);
}

/* ----------------------------------------------------------- tests */

START_TEST(t_log_prob_matches_reference)
{
    for (uint64_t seed = 1; seed <= 3; seed++) {
        ref_cchain rc;
        double *pd;
        nvp_chain *c = make_chain(seed, &rc, &pd);
        enum { N = 40 };
        float y[N * DIM], ctx[N * CDIM], lp[N], x[N * DIM], back[N * DIM];
        float ildj[N], ld[N];
        fill_rows(seed + 100, N, y, ctx);
        T_OK(nvp_chain_log_prob_given(c, N, y, ctx, lp));
        for (size_t i = 0; i < N; i++) {
            double yd[DIM], cd[CDIM];
            for (size_t j = 0; j < DIM; j++)
                yd[j] = y[i * DIM + j];
            for (size_t j = 0; j < CDIM; j++)
                cd[j] = ctx[i * CDIM + j];
            T_CLOSE(lp[i], ref_cchain_log_prob(&rc, pd, yd, cd), 1e-4, 1e-4,
                    seed, "log p(y | c), row %zu", i);
        }
        /* inverse then forward with the same context is the identity, and
         * the two log-determinants cancel */
        T_OK(nvp_chain_inverse_given(c, N, y, ctx, x, ildj));
        T_OK(nvp_chain_forward_given(c, N, x, ctx, back, ld));
        for (size_t i = 0; i < N; i++) {
            T_CLOSE(ld[i], -ildj[i], 1e-4, 1e-4, seed, "logdet, row %zu", i);
            for (size_t j = 0; j < DIM; j++)
                T_CLOSE(back[i * DIM + j], y[i * DIM + j], 1e-4, 1e-4, seed,
                        "round trip, row %zu", i);
        }
        /* another context gives another density */
        float other[N * CDIM], lp2[N];
        for (size_t i = 0; i < N * CDIM; i++)
            other[i] = ctx[i] + 1.0f;
        T_OK(nvp_chain_log_prob_given(c, N, y, other, lp2));
        size_t differ = 0;
        for (size_t i = 0; i < N; i++)
            differ += fabsf(lp2[i] - lp[i]) > 1e-3f;
        T_CHECK(differ > N / 2, "the context changes only %zu of %d rows",
                differ, N);
        free(pd);
        nvp_chain_free(c);
    }
}
END_TEST

/* Mean NLL of the reference over n rows. */
static double ref_nll(const ref_cchain *rc, const double *p, size_t n,
                      const float *y, const float *ctx)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double yd[DIM], cd[CDIM];
        for (size_t j = 0; j < DIM; j++)
            yd[j] = y[i * DIM + j];
        for (size_t j = 0; j < CDIM; j++)
            cd[j] = ctx[i * CDIM + j];
        s -= ref_cchain_log_prob(rc, p, yd, cd);
    }
    return s / (double)n;
}

START_TEST(t_nll_grad_finite_differences)
{
    for (uint64_t seed = 4; seed <= 5; seed++) {
        ref_cchain rc;
        double *pd;
        nvp_chain *c = make_chain(seed, &rc, &pd);
        enum { N = 24 };
        float y[N * DIM], ctx[N * CDIM], loss;
        fill_rows(seed + 200, N, y, ctx);
        const size_t np = nvp_chain_num_params(c);
        float *g = t_xmalloc(np * sizeof *g);
        T_OK(nvp_chain_nll_grad_given(c, N, y, ctx, g, &loss));
        T_CLOSE(loss, ref_nll(&rc, pd, N, y, ctx), 1e-4, 1e-4, seed, "NLL");
        /* every first-layer weight that reads the context, and a spread of
         * the others */
        t_prng p;
        t_prng_seed(&p, seed);
        for (size_t t = 0; t < 40; t++) {
            const size_t i = (size_t)(t_prng_u64(&p) % np);
            const double h = 1e-5, keep = pd[i];
            pd[i] = keep + h;
            const double up = ref_nll(&rc, pd, N, y, ctx);
            pd[i] = keep - h;
            const double down = ref_nll(&rc, pd, N, y, ctx);
            pd[i] = keep;
            T_CLOSE(g[i], (up - down) / (2 * h), 2e-3, 2e-4, seed,
                    "dNLL/dparam[%zu]", i);
        }
        /* the context's rows of layer 0's first weight matrix: (na + j) *
         * out for j < CDIM, where na = 1 for mask_of(0) */
        for (size_t j = 0; j < CDIM; j++)
            for (size_t o = 0; o < hidden[0]; o++) {
                const size_t i = (1 + j) * hidden[0] + o;
                const double h = 1e-5, keep = pd[i];
                pd[i] = keep + h;
                const double up = ref_nll(&rc, pd, N, y, ctx);
                pd[i] = keep - h;
                const double down = ref_nll(&rc, pd, N, y, ctx);
                pd[i] = keep;
                T_CLOSE(g[i], (up - down) / (2 * h), 2e-3, 2e-4, seed,
                        "dNLL/d(context weight %zu)", i);
            }
        free(g);
        free(pd);
        nvp_chain_free(c);
    }
}
END_TEST

START_TEST(t_score_finite_differences)
{
    for (uint64_t seed = 6; seed <= 7; seed++) {
        ref_cchain rc;
        double *pd;
        nvp_chain *c = make_chain(seed, &rc, &pd);
        enum { N = 10 };
        float y[N * DIM], ctx[N * CDIM], dy[N * DIM], dc[N * CDIM], lp[N];
        fill_rows(seed + 300, N, y, ctx);
        T_OK(nvp_chain_score_given(c, N, y, ctx, dy, dc, lp));
        for (size_t i = 0; i < N; i++) {
            double yd[DIM], cd[CDIM];
            for (size_t j = 0; j < DIM; j++)
                yd[j] = y[i * DIM + j];
            for (size_t j = 0; j < CDIM; j++)
                cd[j] = ctx[i * CDIM + j];
            T_CLOSE(lp[i], ref_cchain_log_prob(&rc, pd, yd, cd), 1e-4, 1e-4,
                    seed, "score's log p, row %zu", i);
            const double h = 1e-5;
            for (size_t j = 0; j < DIM; j++) {
                const double keep = yd[j];
                yd[j] = keep + h;
                const double up = ref_cchain_log_prob(&rc, pd, yd, cd);
                yd[j] = keep - h;
                const double down = ref_cchain_log_prob(&rc, pd, yd, cd);
                yd[j] = keep;
                T_CLOSE(dy[i * DIM + j], (up - down) / (2 * h), 1e-3, 1e-4,
                        seed, "d log p / dy[%zu], row %zu", j, i);
            }
            for (size_t j = 0; j < CDIM; j++) {
                const double keep = cd[j];
                cd[j] = keep + h;
                const double up = ref_cchain_log_prob(&rc, pd, yd, cd);
                cd[j] = keep - h;
                const double down = ref_cchain_log_prob(&rc, pd, yd, cd);
                cd[j] = keep;
                T_CLOSE(dc[i * CDIM + j], (up - down) / (2 * h), 1e-3, 1e-4,
                        seed, "d log p / dc[%zu], row %zu", j, i);
            }
        }
        /* either output alone gives the same numbers */
        float dy2[N * DIM], dc2[N * CDIM];
        T_OK(nvp_chain_score_given(c, N, y, ctx, dy2, NULL, NULL));
        T_OK(nvp_chain_score_given(c, N, y, ctx, NULL, dc2, NULL));
        T_CHECK(t_first_diff(dy, dy2, N * DIM) == (size_t)-1,
                "dy differs without dc");
        T_CHECK(t_first_diff(dc, dc2, N * CDIM) == (size_t)-1,
                "dc differs without dy");
        free(pd);
        nvp_chain_free(c);
    }
}
END_TEST

/* The unconditional score against finite differences of log_prob in
 * double on a chain of every layer kind. */
START_TEST(t_score_unconditional)
{
    const size_t dim = 4;
    nvp_rng *rng = t_rng(11);
    nvp_layer *layers[4];
    T_OK(nvp_layer_create_linear(&layers[0], dim, NULL));
    nvp_coupling *cp;
    const unsigned char mask[4] = {1, 0, 1, 0};
    T_OK(nvp_coupling_create(&cp, dim, mask, 2, hidden, 0, rng, NULL));
    layers[1] = nvp_coupling_as_layer(cp);
    T_OK(nvp_layer_create_random_permutation(&layers[2], dim, rng, NULL));
    T_OK(nvp_layer_create_actnorm(&layers[3], dim, NULL));
    nvp_base *base;
    T_OK(nvp_base_create_normal(&base, dim, NULL));
    nvp_chain *c;
    T_OK(nvp_chain_create_from_layers(&c, base, 4, layers, NULL));
    enum { N = 300 };
    float *data = t_xmalloc(N * dim * sizeof *data);
    t_prng p;
    t_prng_seed(&p, 12);
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < dim; j++)
            data[i * dim + j] =
                (float)(t_prng_normal(&p) * (1.0 + (double)j) + (double)j);
    T_OK(nvp_chain_init_from_data(c, N, data));
    float dy[8 * 4], lp[8];
    T_OK(nvp_chain_score(c, 8, data, dy, lp));
    for (size_t i = 0; i < 8; i++)
        for (size_t j = 0; j < dim; j++) {
            float yp[4], ym[4], lpp, lpm;
            memcpy(yp, data + i * dim, sizeof yp);
            memcpy(ym, data + i * dim, sizeof ym);
            const float h = 1e-2f;
            yp[j] += h;
            ym[j] -= h;
            T_OK(nvp_chain_log_prob(c, 1, yp, &lpp));
            T_OK(nvp_chain_log_prob(c, 1, ym, &lpm));
            T_CLOSE(dy[i * dim + j],
                    ((double)lpp - (double)lpm) / (double)(yp[j] - ym[j]),
                    2e-2, 2e-3, 12, "score[%zu] of row %zu", j, i);
        }
    /* a conditional call on an unconditional chain takes context NULL */
    float dy2[8 * 4];
    T_OK(nvp_chain_score_given(c, 8, data, NULL, dy2, NULL, NULL));
    T_CHECK(t_first_diff(dy, dy2, 8 * dim) == (size_t)-1,
            "score_given differs from score at C = 0");
    free(data);
    nvp_chain_free(c);
    nvp_rng_free(rng);
}
END_TEST

/* C = 0: the conditional constructors and the _given calls are the plain
 * ones, bit for bit. */
START_TEST(t_zero_context_is_unconditional)
{
    const size_t dim = 4, n = 700;
    nvp_rng *r1 = t_rng(21), *r2 = t_rng(21);
    nvp_chain *a, *b;
    T_OK(nvp_chain_create_alternating(&a, dim, 4, 2, hidden, 0, r1, NULL));
    T_OK(nvp_chain_create_conditional(&b, dim, 0, 4, 2, hidden, 0, r2,
                                      NULL));
    ck_assert_uint_eq(nvp_chain_context_dim(b), 0);
    const size_t np = nvp_chain_num_params(a);
    ck_assert_uint_eq(np, nvp_chain_num_params(b));
    T_CHECK(t_first_diff(nvp_chain_params(a), nvp_chain_params(b), np) ==
                (size_t)-1,
            "create_conditional(C = 0) draws other parameters");
    float *y = t_xmalloc(n * dim * sizeof *y);
    float *lp1 = t_xmalloc(n * sizeof *lp1), *lp2 = t_xmalloc(n * sizeof *lp2);
    t_prng p;
    t_prng_seed(&p, 22);
    t_fill_normal(&p, n * dim, y, 1.0);
    T_OK(nvp_chain_log_prob(a, n, y, lp1));
    T_OK(nvp_chain_log_prob_given(b, n, y, NULL, lp2));
    T_CHECK(t_first_diff(lp1, lp2, n) == (size_t)-1, "log_prob_given differs");
    float *g1 = t_xmalloc(np * sizeof *g1), *g2 = t_xmalloc(np * sizeof *g2);
    float l1, l2;
    T_OK(nvp_chain_nll_grad(a, n, y, g1, &l1));
    T_OK(nvp_chain_nll_grad_given(b, n, y, NULL, g2, &l2));
    T_CHECK(t_first_diff(g1, g2, np) == (size_t)-1 && l1 == l2,
            "nll_grad_given differs");
    /* a training step and sampling */
    nvp_adam *o1, *o2;
    T_OK(nvp_adam_create(&o1, np, NULL));
    T_OK(nvp_adam_set_lr(o1, 1e-3f));
    T_OK(nvp_adam_create(&o2, np, NULL));
    T_OK(nvp_adam_set_lr(o2, 1e-3f));
    nvp_rng *s1 = t_rng(23), *s2 = t_rng(23);
    T_OK(nvp_chain_train_step(a, o1, s1, n, y, 64, &l1));
    T_OK(nvp_chain_train_step_given(b, o2, s2, n, y, NULL, 64, &l2));
    T_CHECK(t_first_diff(nvp_chain_params(a), nvp_chain_params(b), np) ==
                    (size_t)-1 &&
                l1 == l2,
            "train_step_given differs");
    T_OK(nvp_chain_sample(a, s1, n, y, lp1));
    float *y2 = t_xmalloc(n * dim * sizeof *y2);
    T_OK(nvp_chain_sample_given(b, s2, n, NULL, y2, lp2));
    T_CHECK(t_first_diff(y, y2, n * dim) == (size_t)-1 &&
                t_first_diff(lp1, lp2, n) == (size_t)-1,
            "sample_given differs");
    free(y);
    free(y2);
    free(lp1);
    free(lp2);
    free(g1);
    free(g2);
    nvp_adam_free(o1);
    nvp_adam_free(o2);
    nvp_rng_free(r1);
    nvp_rng_free(r2);
    nvp_rng_free(s1);
    nvp_rng_free(s2);
    nvp_chain_free(a);
    nvp_chain_free(b);
}
END_TEST

/* Many draws for one context are the draws for that context repeated per
 * row; results do not depend on the threads. */
START_TEST(t_sample_one_context_and_threads)
{
    nvp_chain *c = make_chain(31, NULL, NULL);
    enum { N = 1500 }; /* several chunks */
    const float one[CDIM] = {0.5f, -1.25f};
    float *ctx = t_xmalloc(N * CDIM * sizeof *ctx);
    for (size_t i = 0; i < N; i++)
        memcpy(ctx + i * CDIM, one, sizeof one);
    float *y1 = t_xmalloc(N * DIM * sizeof *y1);
    float *y2 = t_xmalloc(N * DIM * sizeof *y2);
    float *l1 = t_xmalloc(N * sizeof *l1), *l2 = t_xmalloc(N * sizeof *l2);
    for (size_t threads = 1; threads <= 2; threads++) {
        T_OK(nvp_chain_set_threads(c, threads));
        nvp_rng *a = t_rng(32), *b = t_rng(32);
        T_OK(nvp_chain_sample_given_one(c, a, N, one, y1, l1));
        T_OK(nvp_chain_sample_given(c, b, N, ctx, y2, l2));
        T_CHECK(t_first_diff(y1, y2, N * DIM) == (size_t)-1,
                "given_one differs from the repeated context (%zu threads)",
                threads);
        T_CHECK(t_first_diff(l1, l2, N) == (size_t)-1,
                "their log densities differ (%zu threads)", threads);
        /* the log density a draw comes with is log_prob_given's */
        T_OK(nvp_chain_log_prob_given(c, N, y1, ctx, l2));
        for (size_t i = 0; i < N; i += 97)
            T_CLOSE(l1[i], l2[i], 1e-3, 1e-3, 32, "row %zu", i);
        nvp_rng_free(a);
        nvp_rng_free(b);
    }
    /* one and two threads agree bit for bit */
    T_OK(nvp_chain_set_threads(c, 1));
    T_OK(nvp_chain_log_prob_given(c, N, y1, ctx, l1));
    T_OK(nvp_chain_set_threads(c, 2));
    T_OK(nvp_chain_log_prob_given(c, N, y1, ctx, l2));
    T_CHECK(t_first_diff(l1, l2, N) == (size_t)-1,
            "log_prob_given depends on the threads");
    free(ctx);
    free(y1);
    free(y2);
    free(l1);
    free(l2);
    nvp_chain_free(c);
}
END_TEST

START_TEST(t_save_load)
{
    /* a conditional chain of mixed kinds */
    nvp_rng *rng = t_rng(41);
    nvp_layer *layers[3];
    T_OK(nvp_layer_create_linear(&layers[0], DIM, NULL));
    nvp_coupling *cp;
    const unsigned char mask[DIM] = {1, 0, 1};
    T_OK(nvp_coupling_create_conditional(&cp, DIM, CDIM, mask, 2, hidden, 0,
                                         rng, NULL));
    layers[1] = nvp_coupling_as_layer(cp);
    T_OK(nvp_layer_create_random_permutation(&layers[2], DIM, rng, NULL));
    ck_assert_uint_eq(nvp_layer_context_dim(layers[1]), CDIM);
    ck_assert_uint_eq(nvp_layer_context_dim(layers[0]), 0);
    nvp_base *base;
    T_OK(nvp_base_create_normal(&base, DIM, NULL));
    nvp_chain *c;
    T_OK(nvp_chain_create_from_layers(&c, base, 3, layers, NULL));
    enum { N = 50 };
    float y[N * DIM], ctx[N * CDIM], lp1[N], lp2[N];
    fill_rows(42, N, y, ctx);
    T_OK(nvp_chain_init_from_data_given(c, N, y, ctx));
    T_OK(nvp_chain_log_prob_given(c, N, y, ctx, lp1));
    size_t size;
    T_OK(nvp_chain_save_buffer(c, NULL, 0, NULL, &size));
    unsigned char *buf = t_xmalloc(size);
    T_OK(nvp_chain_save_buffer(c, NULL, size, buf, &size));
    nvp_chain *d;
    T_OK(nvp_chain_load_buffer(&d, NULL, size, buf, NULL));
    ck_assert_uint_eq(nvp_chain_context_dim(d), CDIM);
    T_OK(nvp_chain_log_prob_given(d, N, y, ctx, lp2));
    T_CHECK(t_first_diff(lp1, lp2, N) == (size_t)-1,
            "the loaded chain's densities differ");
    /* a conditional model of couplings alone is also format 2 (format 1
     * cannot hold the context) and loads back */
    nvp_chain *e;
    nvp_rng *r2 = t_rng(43);
    T_OK(nvp_chain_create_conditional(&e, DIM, CDIM, 2, 1, hidden, 0, r2,
                                      NULL));
    size_t size2;
    T_OK(nvp_chain_save_buffer(e, NULL, 0, NULL, &size2));
    unsigned char *buf2 = t_xmalloc(size2);
    T_OK(nvp_chain_save_buffer(e, NULL, size2, buf2, &size2));
    nvp_chain *f;
    T_OK(nvp_chain_load_buffer(&f, NULL, size2, buf2, NULL));
    ck_assert_uint_eq(nvp_chain_context_dim(f), CDIM);
    ck_assert_uint_eq(nvp_chain_num_params(f), nvp_chain_num_params(e));
    free(buf);
    free(buf2);
    nvp_chain_free(c);
    nvp_chain_free(d);
    nvp_chain_free(e);
    nvp_chain_free(f);
    nvp_rng_free(rng);
    nvp_rng_free(r2);
}
END_TEST

START_TEST(t_refusals)
{
    nvp_chain *c = make_chain(51, NULL, NULL);
    enum { N = 8 };
    float y[N * DIM], ctx[N * CDIM], lp[N], out[N * DIM];
    fill_rows(52, N, y, ctx);
    /* a plain call on a chain that reads a context, and a _given call
     * without one */
    ck_assert_int_eq(nvp_chain_log_prob(c, N, y, lp), NVP_EINVAL);
    T_CHECK(strstr(nvp_chain_errmsg(c), "nvp_chain_log_prob") &&
                strstr(nvp_chain_errmsg(c), "_given"),
            "message: %s", nvp_chain_errmsg(c));
    ck_assert_int_eq(nvp_chain_log_prob_given(c, N, y, NULL, lp), NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_forward(c, N, y, out, NULL), NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_inverse(c, N, y, out, NULL), NVP_EINVAL);
    nvp_rng *rng = t_rng(53);
    ck_assert_int_eq(nvp_chain_sample(c, rng, N, out, NULL), NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_sample_given_one(c, rng, N, NULL, out, NULL),
                     NVP_EINVAL);
    const size_t np = nvp_chain_num_params(c);
    float *g = t_xmalloc(np * sizeof *g);
    ck_assert_int_eq(nvp_chain_nll_grad(c, N, y, g, NULL), NVP_EINVAL);
    float dy[N * DIM];
    ck_assert_int_eq(nvp_chain_score(c, N, y, dy, NULL), NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_score_given(c, N, y, ctx, NULL, NULL, NULL),
                     NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_init_from_data(c, N, y), NVP_EINVAL);
    /* a non-finite context: that row is NaN, the others as before */
    float lp_ok[N];
    T_OK(nvp_chain_log_prob_given(c, N, y, ctx, lp_ok));
    ctx[3 * CDIM + 1] = NAN;
    T_OK(nvp_chain_log_prob_given(c, N, y, ctx, lp));
    for (size_t i = 0; i < N; i++)
        T_CHECK(i == 3 ? isnan(lp[i]) : lp[i] == lp_ok[i],
                "row %zu: %g (was %g)", i, (double)lp[i], (double)lp_ok[i]);
    T_OK(nvp_chain_sample_given(c, rng, N, ctx, out, lp));
    T_CHECK(isnan(out[3 * DIM]) && isnan(lp[3]) && !isnan(out[0]),
            "a draw for a NaN context is not NaN");
    ck_assert_int_eq(nvp_chain_nll_grad_given(c, N, y, ctx, g, NULL),
                     NVP_ENONFINITE);
    /* a refused training step changes nothing */
    nvp_adam *opt;
    T_OK(nvp_adam_create(&opt, np, NULL));
    T_OK(nvp_adam_set_lr(opt, 1e-3f));
    float *before = t_xmalloc(np * sizeof *before);
    memcpy(before, nvp_chain_params(c), np * sizeof *before);
    for (size_t i = 0; i < N; i++)
        ctx[i * CDIM + 1] = INFINITY;
    ck_assert_int_eq(nvp_chain_train_step_given(c, opt, rng, N, y, ctx, 4,
                                                NULL),
                     NVP_ENONFINITE);
    T_CHECK(t_first_diff(before, nvp_chain_params(c), np) == (size_t)-1,
            "a refused step changed the chain");
    ck_assert_int_eq(nvp_chain_train_step(c, opt, rng, N, y, 4, NULL),
                     NVP_EINVAL);
    ck_assert_uint_eq(nvp_adam_num_steps(opt), 0);
    /* layers that read different contexts do not make a chain */
    nvp_coupling *a, *b;
    const unsigned char m[DIM] = {1, 0, 0};
    T_OK(nvp_coupling_create_conditional(&a, DIM, 2, m, 1, hidden, 0, rng,
                                         NULL));
    T_OK(nvp_coupling_create_conditional(&b, DIM, 3, m, 1, hidden, 0, rng,
                                         NULL));
    nvp_base *base;
    T_OK(nvp_base_create_normal(&base, DIM, NULL));
    nvp_coupling *two[2] = {a, b};
    nvp_chain *bad;
    ck_assert_int_eq(nvp_chain_create(&bad, base, 2, two, NULL), NVP_EDIM);
    /* a standalone conditional layer needs the _given calls */
    ck_assert_int_eq(nvp_coupling_forward(a, N, y, out, NULL), NVP_EINVAL);
    float c2[N * 2];
    for (size_t i = 0; i < N * 2; i++)
        c2[i] = 0.25f * (float)i;
    T_OK(nvp_layer_forward_given(nvp_coupling_as_layer(a), N, y, c2, out,
                                 NULL));
    float back[N * DIM];
    T_OK(nvp_layer_inverse_given(nvp_coupling_as_layer(a), N, out, c2, back,
                                 NULL));
    for (size_t i = 0; i < N * DIM; i++)
        T_CLOSE(back[i], y[i], 1e-5, 1e-5, 53, "layer round trip %zu", i);
    nvp_coupling *too_wide;
    ck_assert_int_eq(nvp_coupling_create_conditional(
                         &too_wide, DIM, (size_t)NVP_MAX_DIM + 1, m, 1,
                         hidden, 0, rng, NULL),
                     NVP_EINVAL);
    T_CHECK(too_wide == NULL, "a refused constructor left a layer");
    nvp_base_free(base);
    nvp_coupling_free(a);
    nvp_coupling_free(b);
    free(g);
    free(before);
    nvp_adam_free(opt);
    nvp_rng_free(rng);
    nvp_chain_free(c);
}
END_TEST

/* Training by the conditional NLL learns a density that depends on the
 * context: y = (2 c, -c) + 0.3 noise, scored against the same chain with
 * the context shuffled. */
START_TEST(t_train_learns_the_context)
{
    enum { N = 2000, D = 2 };
    float *y = t_xmalloc(N * D * sizeof *y), *cx = t_xmalloc(N * sizeof *cx);
    float *shuffled = t_xmalloc(N * sizeof *shuffled);
    t_prng p;
    t_prng_seed(&p, 61);
    for (size_t i = 0; i < N; i++) {
        cx[i] = (float)t_prng_normal(&p);
        y[i * D] = 2.0f * cx[i] + 0.3f * (float)t_prng_normal(&p);
        y[i * D + 1] = -cx[i] + 0.3f * (float)t_prng_normal(&p);
    }
    for (size_t i = 0; i < N; i++)
        shuffled[i] = cx[(i * 7919) % N];
    nvp_rng *rng = t_rng(62);
    nvp_chain *c;
    const size_t h[2] = {32, 32};
    T_OK(nvp_chain_create_conditional(&c, D, 1, 4, 2, h, NVP_INIT_ZERO_OUTPUT,
                                      rng, NULL));
    nvp_adam *opt;
    T_OK(nvp_adam_create(&opt, nvp_chain_num_params(c), NULL));
    T_OK(nvp_adam_set_lr(opt, 3e-3f));
    float loss = 0.0f;
    for (size_t s = 0; s < 800; s++)
        T_OK(nvp_chain_train_step_given(c, opt, rng, N, y, cx, 128, &loss));
    float *lp = t_xmalloc(N * sizeof *lp);
    T_OK(nvp_chain_log_prob_given(c, N, y, cx, lp));
    double right = 0.0, wrong = 0.0;
    for (size_t i = 0; i < N; i++)
        right += lp[i];
    T_OK(nvp_chain_log_prob_given(c, N, y, shuffled, lp));
    for (size_t i = 0; i < N; i++)
        wrong += lp[i];
    right /= N;
    wrong /= N;
    /* the true conditional density has mean log p of about -0.18 (two
     * N(0, 0.3^2) terms); the marginal of y is far wider */
    T_CHECK(right > -0.8, "mean log p(y | c) %.3f after training", right);
    T_CHECK(right > wrong + 1.0, "log p(y | c) %.3f, with shuffled c %.3f",
            right, wrong);
    /* draws given c = 1 centre on (2, -1) */
    const float one = 1.0f;
    T_OK(nvp_chain_sample_given_one(c, rng, N, &one, y, NULL));
    double m0 = 0.0, m1 = 0.0;
    for (size_t i = 0; i < N; i++) {
        m0 += y[i * D];
        m1 += y[i * D + 1];
    }
    T_CLOSE(m0 / N, 2.0, 0.0, 0.15, 62, "mean of y0 given c = 1");
    T_CLOSE(m1 / N, -1.0, 0.0, 0.15, 62, "mean of y1 given c = 1");
    free(y);
    free(cx);
    free(shuffled);
    free(lp);
    nvp_adam_free(opt);
    nvp_rng_free(rng);
    nvp_chain_free(c);
}
END_TEST

Suite *conditional_suite(void)
{
    Suite *s = suite_create("conditional");
    TCase *tc = tcase_create("conditional");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, t_log_prob_matches_reference);
    tcase_add_test(tc, t_nll_grad_finite_differences);
    tcase_add_test(tc, t_score_finite_differences);
    tcase_add_test(tc, t_score_unconditional);
    tcase_add_test(tc, t_zero_context_is_unconditional);
    tcase_add_test(tc, t_sample_one_context_and_threads);
    tcase_add_test(tc, t_save_load);
    tcase_add_test(tc, t_refusals);
    tcase_add_test(tc, t_train_learns_the_context);
    suite_add_tcase(s, tc);
    return s;
}
