/* SPDX-License-Identifier: MIT */
/* The finiteness checks of the parameters and the gradient, measured as
 * the passes read the parameters and store the gradient (the weights as
 * the forward products read them, the weight gradients in their
 * products' epilogue, the rest as each layer gets to it) instead of in
 * passes of their own: each measure must be exactly what such a pass
 * gives, for every kind of layer, a swept first layer, a conditioner's
 * biases, context, several chunks, threads and bfloat16, NaN and
 * infinities included (the verdicts that refuse a step read them); and
 * parameters that are not finite, wherever they lie, stop the pass
 * before the gradient is touched. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/vec.h"
#include "model/chain.h"
#include "model/coupling.h"
#include "train/chain_checks.h"
#include "tests.h"

/* rows in two chunks */
enum { N_ROWS_MAX = 300 };

/* A chain of every kind for dim (>= 2) with context cdim: actnorm,
 * linear, a coupling of hidden widths h[0..nh), a permutation and a second
 * coupling. */
static nvp_chain *mixed_chain(size_t dim, size_t cdim, size_t nh, const size_t *h, uint64_t seed)
{
    nvp_rng *rng = t_rng(seed);
    nvp_base *base = NULL;
    T_OK(nvp_base_create_normal(&base, dim, NULL));
    nvp_layer *layers[5];
    T_OK(nvp_layer_create_actnorm(&layers[0], dim, NULL));
    T_OK(nvp_layer_create_linear(&layers[1], dim, NULL));
    unsigned char mask[64];
    for (int k = 0; k < 2; k++) {
        for (size_t j = 0; j < dim; j++)
            mask[j] = (unsigned char)((j < dim / 2) != (k == 1));
        nvp_coupling *cp = NULL;
        T_OK(nvp_coupling_create_conditional(&cp, dim, cdim, mask, nh, h, 0, rng, NULL));
        layers[2 + 2 * k] = nvp_coupling_as_layer(cp);
        if (k == 0)
            T_OK(nvp_layer_create_random_permutation(&layers[3], dim, rng, NULL));
    }
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create_from_layers(&c, base, 5, layers, NULL));
    nvp_rng_free(rng);
    return c;
}

/* Gives every parameter of the chain a draw of scale 0.1 (actnorm and
 * linear start at the identity, couplings near it: a gradient of random
 * parameters has its largest entries anywhere), then applies `how`:
 * 0 nothing; 1 every coupling's first dense layer (weights and biases)
 * near zero, so that the hidden activations are tiny and the later
 * layers' bias gradients outgrow their weight gradients; 2 one
 * parameter of layer `which` huge, so that the gradient overflows; 3 one
 * parameter of layer `which` NaN or infinite; 4 in every coupling, dense
 * layer j = which % (its layers - 1) a thousand times larger and the
 * weights of layer j + 1 as much smaller, so that layer j's activations
 * are large and the largest gradient entries are layer j + 1's weight
 * gradient (a hidden layer's, unless j + 1 is the output layer); 5 every
 * coupling's first layer's weights a thousand times smaller, for rows a
 * thousand times larger (the caller's), so that its weight gradient
 * holds the largest entries. */
static void shape_params(nvp_chain *c, int how, size_t which, t_prng *p)
{
    const size_t np = nvp_chain_num_params(c);
    float *params = nvp_chain_params(c);
    t_fill_normal(p, np, params, 0.1);
    for (size_t k = 0; k < c->n_layers; k++) {
        const nvp_layer *l = c->layers[k];
        float *lp = params + c->offsets[k];
        if (how == 1 && l->kind == &nvp__coupling_kind) {
            const nvp_dense *d = &((const nvp_coupling *)l)->cond.dense[0];
            for (size_t i = 0; i < d->in * d->out + d->out; i++)
                lp[d->w_off + i] *= 1e-6f;
        }
        if ((how == 2 || how == 3) && k == which % c->n_layers && l->n_params)
            lp[(which * 31) % l->n_params] = how == 2 ? 3e37f : which % 2 ? NAN : -INFINITY;
        if (how == 5 && l->kind == &nvp__coupling_kind) {
            const nvp_dense *d = &((const nvp_coupling *)l)->cond.dense[0];
            for (size_t i = 0; i < d->in * d->out; i++)
                lp[d->w_off + i] *= 1e-3f;
        }
        if (how == 4 && l->kind == &nvp__coupling_kind) {
            const nvp_conditioner *cond = &((const nvp_coupling *)l)->cond;
            const size_t j = which % (cond->n_dense - 1);
            const nvp_dense *d = &cond->dense[j], *e = &cond->dense[j + 1];
            for (size_t i = 0; i < d->in * d->out + d->out; i++)
                lp[d->w_off + i] *= 1e3f;
            for (size_t i = 0; i < e->in * e->out; i++)
                lp[e->w_off + i] *= 1e-3f;
        }
    }
}

START_TEST(test_grad_measure_equals_pass)
{
    static const size_t h1[] = {16}, h2[] = {24, 40, 17}, h3[] = {140, 130};
    const struct {
        size_t dim, cdim, nh;
        const size_t *h;
    } cfgs[] = {
        {2, 0, 1, h1}, /* a swept conditioner that owns its output bias */
        {2, 3, 2, h2}, /* context: two inputs, no sweep */
        {3, 0, 3, h2}, /* one input: swept first two layers, then products */
        {9, 2, 2, h3}, /* several cache blocks */
    };
    static const size_t ns[] = {1, 77, N_ROWS_MAX};
    t_prng p;
    t_prng_seed(&p, 9500);
    float *y = t_xmalloc(N_ROWS_MAX * 9 * sizeof *y), *ctx = t_xmalloc(N_ROWS_MAX * 3 * sizeof *ctx);
    float *y_far = t_xmalloc(N_ROWS_MAX * 9 * sizeof *y), *ctx_far = t_xmalloc(N_ROWS_MAX * 3 * sizeof *ctx);
    t_fill_normal(&p, N_ROWS_MAX * 9, y, 1.0);
    t_fill_normal(&p, N_ROWS_MAX * 3, ctx, 1.0);
    for (size_t i = 0; i < N_ROWS_MAX * 9; i++)
        y_far[i] = 1e3f * y[i];
    for (size_t i = 0; i < N_ROWS_MAX * 3; i++)
        ctx_far[i] = 1e3f * ctx[i];
    size_t trial = 0;
    for (size_t q = 0; q < sizeof cfgs / sizeof cfgs[0]; q++)
        for (int prec = 0; prec < 2; prec++) {
            if (prec && !nvp_precision_supported(NVP_PRECISION_BF16))
                continue;
            nvp_chain *c = mixed_chain(cfgs[q].dim, cfgs[q].cdim, cfgs[q].nh, cfgs[q].h, 9500 + q);
            if (prec)
                T_OK(nvp_chain_set_precision(c, NVP_PRECISION_BF16));
            const size_t np = nvp_chain_num_params(c);
            float *grad = t_xmalloc(np * sizeof *grad);
            for (size_t threads = 1; threads <= 2; threads++) {
                T_OK(nvp_chain_set_threads(c, threads));
                for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
                    for (int how = 0; how < 6; how++, trial++) {
                        shape_params(c, how, trial, &p);
                        double loss;
                        uint32_t bits = 0, pbits = 0;
                        for (size_t i = 0; i < np; i++)
                            grad[i] = 7.0f;
                        nvp_pool *pool = nvp__context_pool_take(&c->ctx);
                        const float *rows = how == 5 ? y_far : y, *rows_ctx = how == 5 ? ctx_far : ctx;
                        const int rc = nvp__chain_nll_grad_run(c, pool, ns[ni], rows,
                                                               cfgs[q].cdim ? rows_ctx : NULL, grad, &loss, &bits,
                                                               &pbits);
                        nvp__context_pool_give(pool);
                        const uint32_t want_p = nvp__max_abs_bits(NVP_ISA_PORTABLE, nvp_chain_params(c), np);
                        T_CHECK(pbits == want_p,
                                "dim %zu, context %zu, %s, %zu thread(s), %zu rows, params %d: the parameters' "
                                "measure %08x, a pass over them %08x",
                                cfgs[q].dim, cfgs[q].cdim, prec ? "bf16" : "float", threads, ns[ni], how,
                                (unsigned)pbits, (unsigned)want_p);
                        if (want_p >= NVP_INF_BITS) {
                            ck_assert_int_eq(rc, NVP_ENONFINITE);
                            size_t touched = 0;
                            for (size_t i = 0; i < np; i++)
                                touched += grad[i] != 7.0f;
                            T_CHECK(touched == 0, "parameters not finite (layer %zu): %zu gradient entries written",
                                    trial % c->n_layers, touched);
                            continue;
                        }
                        T_OK(rc);
                        const uint32_t want = nvp__max_abs_bits(NVP_ISA_PORTABLE, grad, np);
                        T_CHECK(bits == want,
                                "dim %zu, context %zu, %s, %zu thread(s), %zu rows, params %d: the measure "
                                "%08x, a pass over the gradient %08x",
                                cfgs[q].dim, cfgs[q].cdim, prec ? "bf16" : "float", threads, ns[ni], how,
                                (unsigned)bits, (unsigned)want);
                    }
            }
            free(grad);
            nvp_chain_free(c);
        }
    free(y);
    free(ctx);
    free(y_far);
    free(ctx_far);
}
END_TEST

/* A log density whose score is steep on one row, so that the largest
 * gradient entries move around with `steep`. */
static int steep_log_density(void *user, size_t n, size_t dim, const float *y, float *log_p, float *dlogp_dy)
{
    const float *steep = user;
    for (size_t i = 0; i < n; i++) {
        log_p[i] = 0.0f;
        for (size_t j = 0; j < dim; j++) {
            log_p[i] -= 0.5f * y[i * dim + j] * y[i * dim + j];
            dlogp_dy[i * dim + j] = -y[i * dim + j] * (i == 3 ? *steep : 1.0f);
        }
    }
    return 0;
}

/* The reverse-KL gradient (forward passes' backward, slot by slot) is
 * measured the same way: the measure equals a pass over the gradient. */
START_TEST(test_reverse_kl_measure_equals_pass)
{
    static const size_t h[] = {24, 40}, hs[] = {16, 16};
    static const size_t batches[] = {5, 300};
    t_prng p;
    t_prng_seed(&p, 9600);
    size_t trial = 0;
    for (int q = 0; q < 3; q++) {
        const size_t dim = q == 2 ? 3 : 4, cdim = q == 1 ? 2 : 0;
        nvp_chain *c = mixed_chain(dim, cdim, 2, q == 2 ? hs : h, 9600 + (uint64_t)q);
        const size_t np = nvp_chain_num_params(c);
        float *grad = t_xmalloc(np * sizeof *grad);
        float ctx[300 * 2];
        t_fill_normal(&p, 300 * 2, ctx, 1.0);
        for (size_t threads = 1; threads <= 2; threads++) {
            T_OK(nvp_chain_set_threads(c, threads));
            for (size_t b = 0; b < 2; b++)
                for (int how = 0; how < 3; how++, trial++) {
                    shape_params(c, how == 2 ? 1 : 0, trial, &p);
                    float steep = how == 1 ? 1e6f : 1.0f;
                    nvp_rng *rng = t_rng(9650 + trial);
                    double loss;
                    uint32_t bits = 0;
                    nvp_pool *pool = nvp__context_pool_take(&c->ctx);
                    const int rc = nvp__chain_reverse_kl_run(c, "test", pool, rng, batches[b], cdim ? ctx : NULL,
                                                             steep_log_density, &steep, grad, &loss, &bits);
                    nvp__context_pool_give(pool);
                    nvp_rng_free(rng);
                    T_CHECK(rc == NVP_OK, "chain %d, %zu thread(s), batch %zu, case %d: %d, %s", q, threads,
                            batches[b], how, rc, nvp_chain_errmsg(c));
                    const uint32_t want = nvp__max_abs_bits(NVP_ISA_PORTABLE, grad, np);
                    T_CHECK(bits == want,
                            "chain %d, %zu thread(s), batch %zu, case %d: the measure %08x, a pass over the "
                            "gradient %08x",
                            q, threads, batches[b], how, (unsigned)bits, (unsigned)want);
                }
        }
        free(grad);
        nvp_chain_free(c);
    }
}
END_TEST

/* Parameters that are not finite where only a forward product reads them
 * (a hidden layer's weight) are refused by the public calls as they
 * always were: the message names them, the gradient and the loss are left
 * unwritten, and a training step changes neither the chain nor rng. */
START_TEST(test_params_refused_untouched)
{
    static const size_t h[] = {40, 40};
    float y[200 * 6];
    t_prng p;
    t_prng_seed(&p, 9700);
    t_fill_normal(&p, 200 * 6, y, 1.0);
    for (int threads = 1; threads <= 2; threads++) {
        nvp_rng *init = t_rng(9701);
        nvp_chain *c = NULL;
        T_OK(nvp_chain_create_alternating(&c, 6, 3, 2, h, 0, init, NULL));
        nvp_rng_free(init);
        T_OK(nvp_chain_set_threads(c, (size_t)threads));
        const size_t np = nvp_chain_num_params(c);
        float *params = nvp_chain_params(c);
        /* the second coupling's second hidden layer: its weights follow
         * its first layer's 3 x 40 + 40 and its own bias is after them */
        size_t off = 0;
        T_CHECK(nvp_chain_layer(c, 1, &off) != NULL, "layer 1");
        params[off + 3 * 40 + 40 + 7 * 40 + 5] = NAN;
        float *keep = t_xmalloc(np * sizeof *keep), *grad = t_xmalloc(np * sizeof *grad);
        memcpy(keep, params, np * sizeof *keep);
        for (size_t i = 0; i < np; i++)
            grad[i] = 7.0f;
        float loss = 123.0f;
        ck_assert_int_eq(nvp_chain_nll_grad(c, 200, y, grad, &loss), NVP_ENONFINITE);
        T_CHECK(strstr(nvp_chain_errmsg(c), "parameters hold NaN") != NULL, "message: %s", nvp_chain_errmsg(c));
        T_CHECK(loss == 123.0f, "nll_grad wrote the loss %g", (double)loss);
        for (size_t i = 0; i < np; i++)
            T_CHECK(grad[i] == 7.0f, "nll_grad wrote grad[%zu] = %g", i, (double)grad[i]);
        nvp_adam *opt = NULL;
        T_OK(nvp_adam_create(&opt, np, NULL));
        nvp_rng *r = t_rng(9702), *twin = t_rng(9702);
        ck_assert_int_eq(nvp_chain_train_step(c, opt, r, 200, y, 64, &loss), NVP_ENONFINITE);
        T_CHECK(strstr(nvp_chain_errmsg(c), "parameters hold NaN") != NULL, "message: %s", nvp_chain_errmsg(c));
        T_CHECK(loss == 123.0f, "train_step wrote the loss %g", (double)loss);
        T_CHECK(memcmp(keep, params, np * sizeof *keep) == 0, "train_step changed the parameters");
        float a[4], b[4];
        T_OK(nvp_rng_uniform(r, 4, a));
        T_OK(nvp_rng_uniform(twin, 4, b));
        T_CHECK(memcmp(a, b, sizeof a) == 0, "a refused step advanced rng");
        /* made finite again, the same step runs */
        params[off + 3 * 40 + 40 + 7 * 40 + 5] = 0.0f;
        T_OK(nvp_chain_train_step(c, opt, r, 200, y, 64, &loss));
        T_CHECK(isfinite(loss) && loss != 123.0f, "loss %g", (double)loss);
        nvp_adam_free(opt);
        nvp_rng_free(r);
        nvp_rng_free(twin);
        free(keep);
        free(grad);
        nvp_chain_free(c);
    }
}
END_TEST

/* Parameters that are not finite are refused before the work space's
 * allocation can fail the call: with each allocation of the gradient call
 * failing in turn, the refusal is still NVP_ENONFINITE and the gradient
 * untouched. */
START_TEST(test_params_refused_before_out_of_memory)
{
    static const size_t h[] = {16, 16};
    float y[50 * 4], grad_keep = 7.0f;
    t_prng p;
    t_prng_seed(&p, 9800);
    t_fill_normal(&p, 50 * 4, y, 1.0);
    size_t i;
    for (i = 0; i < 100; i++) {
        t_alloc_state st;
        const nvp_allocator a = t_counting_allocator(&st);
        nvp_rng *init = t_rng(9801);
        nvp_chain *c = NULL;
        T_OK(nvp_chain_create_alternating(&c, 4, 2, 2, h, 0, init, &a));
        nvp_rng_free(init);
        const size_t np = nvp_chain_num_params(c);
        nvp_chain_params(c)[np / 2] = INFINITY;
        float *grad = t_xmalloc(np * sizeof *grad);
        for (size_t q = 0; q < np; q++)
            grad[q] = grad_keep;
        st.fail_at = st.calls + i;
        const int rc = nvp_chain_nll_grad(c, 50, y, grad, NULL);
        const size_t failed = st.failed;
        T_CHECK(rc == NVP_ENONFINITE, "allocation %zu of the call failing: %d (%s)", i, rc, nvp_chain_errmsg(c));
        for (size_t q = 0; q < np; q++)
            T_CHECK(grad[q] == grad_keep, "allocation %zu failing: grad[%zu] written", i, q);
        free(grad);
        nvp_chain_free(c);
        ck_assert_uint_eq(st.live, 0);
        if (failed == 0)
            break;
    }
    T_CHECK(i >= 1, "the gradient call allocated nothing");
}
END_TEST

Suite *grad_check_suite(void)
{
    Suite *s = suite_create("grad_check");
    TCase *tc = tcase_create("measure");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, test_grad_measure_equals_pass);
    tcase_add_test(tc, test_reverse_kl_measure_equals_pass);
    tcase_add_test(tc, test_params_refused_untouched);
    tcase_add_test(tc, test_params_refused_before_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}
