/* SPDX-License-Identifier: MIT */
/* The single-input sweep's kernels: the register-blocked AVX-512 ones,
 * the portable ones compiled for AVX2 and the portable ones as they are,
 * bit for bit, on full and partial column blocks, units that never
 * switch, an input exactly at a switch point and non-finite rows.  Each
 * level runs where the CPU has it; a CPU without AVX-512 compares fewer
 * kernels (the level it lacks repeats the one below). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/chain.h"
#include "model/coupling.h"
#include "runtime/exec.h"
#include "tests.h"

typedef struct sweep_cfg {
    size_t n_hidden;
    size_t hidden[2];
} sweep_cfg;

/* Second layers of full blocks only (512, 64), full blocks and a tail
 * (100 -> 200, 7 -> 70), and a tail only (300 -> output: the sweep's
 * second layer is the output layer, two columns, without ReLU). */
static const sweep_cfg cfgs[] = {
    {2, {512, 512}}, {2, {100, 200}}, {2, {64, 64}}, {2, {7, 70}}, {1, {300, 0}},
};

enum { ROWS = 150 };

/* Everything the layer's sweep feeds: inverse (x, ildj), forward (y,
 * logdet) and the inverse's backward (dy, grad). */
typedef struct layer_out {
    float x[2 * ROWS], ildj[ROWS], y[2 * ROWS], logdet[ROWS], dy[2 * ROWS];
    float *grad;
} layer_out;

static void run_layer(const nvp_coupling *l, const float *in, const float *in_finite,
                      const float *dx, const float *dildj, layer_out *o)
{
    T_OK(nvp_coupling_inverse(l, ROWS, in, o->x, o->ildj));
    T_OK(nvp_coupling_forward(l, ROWS, in, o->y, o->logdet));
    memset(o->grad, 0, nvp_coupling_num_params(l) * sizeof *o->grad);
    T_OK(nvp_coupling_inverse_backward(l, ROWS, in_finite, dx, dildj, o->dy, o->grad));
}

static const char *const level_names[] = {"portable", "AVX2", "AVX-512"};

/* The sweep's kernels of a level (or the best below it that this CPU
 * runs), set on the handle's context; the matrix-multiply kernel stays,
 * so that only the sweep changes. */
static nvp_isa capped(int level)
{
    const nvp_isa best = nvp__cpu_isa();
    return (nvp_isa)level < best ? (nvp_isa)level : best;
}

static void sweep_level(nvp_context *ctx, int level) { ctx->isa = capped(level); }

/* The sweep of layer l's conditioner called directly, at a level. */
static nvp_exec exec_at(int level)
{
    nvp_exec ex = {nvp__gemm_best(), capped(level), NULL, NULL, 0, NULL, NULL};
    return ex;
}

static nvp_sweep_net net_of(const nvp_coupling *l)
{
    const nvp_dense *d = l->cond.dense;
    nvp_sweep_net net = {d[0].out, d[1].out, l->layer.params + d[0].w_off, l->layer.params + d[0].b_off,
                         l->layer.params + d[1].w_off, l->layer.params + d[1].b_off, l->cond.n_dense > 2};
    return net;
}

static nvp_sweep_grad grad_of(const nvp_coupling *l, float *grad)
{
    const nvp_dense *d = l->cond.dense;
    nvp_sweep_grad g = {grad + d[0].w_off, grad + d[0].b_off, grad + d[1].w_off, grad + d[1].b_off};
    return g;
}

/* Configuration i's coupling (on dimension `half` of two), from seed. */
static nvp_coupling *cfg_coupling(size_t i, int half, uint64_t seed)
{
    nvp_rng *r = t_rng(seed);
    nvp_coupling *l = NULL;
    T_OK(nvp_coupling_create_half(&l, 2, half, cfgs[i].n_hidden, cfgs[i].hidden, 0, r, NULL));
    nvp_rng_free(r);
    return l;
}

/* want comes from the best kernels, got from those of level. */
static void check_same(const float *want, const float *got, size_t n, const char *what, size_t cfg,
                       int level)
{
    const size_t d = t_first_diff(want, got, n);
    T_CHECK(d == (size_t)-1, "config %zu: %s differs at %zu: %.9g (best) vs %.9g (%s)", cfg, what, d,
            (double)want[d], (double)got[d], level_names[level]);
}

START_TEST(test_sweep_kernels_same_bits)
{
    nvp_coupling *l = cfg_coupling((size_t)_i, _i & 1, 7100 + (uint64_t)_i);
    const size_t np = nvp_coupling_num_params(l), h1 = cfgs[_i].hidden[0];
    float *p = t_xmalloc(np * sizeof *p);
    T_OK(nvp_coupling_get_params(l, np, p));
    /* Layout: W1 (1 x h1), then b1.  Two units with w = 0: one always on
     * (b > 0), one never (b < 0). */
    p[3] = 0.0f;
    p[h1 + 3] = 0.5f;
    p[5] = 0.0f;
    p[h1 + 5] = -0.25f;
    T_OK(nvp_coupling_set_params(l, np, p));

    /* The conditioning input is dimension 0 (flip 0) or 1 (flip 1). */
    const size_t a = _i & 1;
    float in[2 * ROWS], in_finite[2 * ROWS], dx[2 * ROWS], dildj[ROWS];
    t_prng g;
    t_prng_seed(&g, 7200 + (uint64_t)_i);
    t_fill_normal(&g, 2 * ROWS, in, 1.5);
    t_fill_normal(&g, 2 * ROWS, dx, 1.0);
    t_fill_normal(&g, ROWS, dildj, 1.0);
    in[2 * 7 + a] = -p[2 * h1 - 1] / p[h1 - 1]; /* at the last unit's switch point */
    in[2 * 8 + a] = in[2 * 7 + a];     /* and a tie between rows */
    memcpy(in_finite, in, sizeof in);
    in[2 * 11 + a] = NAN;
    in[2 * 12 + a] = INFINITY;

    layer_out want, got;
    want.grad = t_xmalloc(np * sizeof *want.grad);
    got.grad = t_xmalloc(np * sizeof *got.grad);
    run_layer(l, in, in_finite, dx, dildj, &want);
    const nvp_isa best = l->layer.ctx.isa;
    for (int level = NVP_ISA_AVX2; level >= NVP_ISA_PORTABLE; level--) {
        sweep_level(&l->layer.ctx, level);
        run_layer(l, in, in_finite, dx, dildj, &got);
        l->layer.ctx.isa = best;
        check_same(want.x, got.x, 2 * ROWS, "inverse x", _i, level);
        check_same(want.ildj, got.ildj, ROWS, "ildj", _i, level);
        check_same(want.y, got.y, 2 * ROWS, "forward y", _i, level);
        check_same(want.logdet, got.logdet, ROWS, "logdet", _i, level);
        check_same(want.dy, got.dy, 2 * ROWS, "dy", _i, level);
        check_same(want.grad, got.grad, np, "parameter gradient", _i, level);
    }
    /* The rows with NaN or infinite input come out as NaN either way. */
    T_CHECK(isnan(want.x[2 * 11 + 1 - a]) && isnan(want.x[2 * 12 + 1 - a]),
            "non-finite rows: %g %g", (double)want.x[2 * 11 + 1 - a], (double)want.x[2 * 12 + 1 - a]);
    free(want.grad);
    free(got.grad);
    free(p);
    nvp_coupling_free(l);
}
END_TEST

/* The sweep itself, called directly, at every level: its float outputs and the double
 * partial sums behind the first layer's gradient and dL/dx, which show
 * a difference in the double arithmetic (a fused multiply-add, another
 * order) that rounding to float would hide. */
START_TEST(test_sweep_kernels_same_partials)
{
    nvp_coupling *l = cfg_coupling((size_t)_i, 0, 7400 + (uint64_t)_i);
    const size_t h1 = l->cond.dense[0].out, h2 = l->cond.dense[1].out, np = nvp_coupling_num_params(l);
    const size_t sf = nvp__sweep_floats(h1, h2, ROWS);
    /* A unit that is never on (w = 0, b < 0) and one always on. */
    float *prm = t_xmalloc(np * sizeof *prm);
    T_OK(nvp_coupling_get_params(l, np, prm));
    prm[2] = 0.0f;
    prm[h1 + 2] = -0.5f;
    prm[4] = 0.0f;
    prm[h1 + 4] = 0.5f;
    T_OK(nvp_coupling_set_params(l, np, prm));
    free(prm);
    /* A NaN bias in the second layer, past the checks of set_params: the
     * ReLU must turn its NaN pre-activations into 0 at every level. */
    l->layer.params[l->cond.dense[1].b_off + h2 / 2] = NAN;
    float x[ROWS];
    float *dz = t_xmalloc(ROWS * h2 * sizeof *dz);
    float *z[3], *grad[3], *added[3], *scratch[3], din[3][ROWS];
    t_prng g;
    t_prng_seed(&g, 7500 + (uint64_t)_i);
    t_fill_normal(&g, ROWS, x, 1.5);
    t_fill_normal(&g, ROWS * h2, dz, 1.0);
    x[3] = NAN;
    /* [0]: the best kernels, [1]: AVX2 at most, [2]: portable */
    for (int k = 0; k < 3; k++) {
        z[k] = t_xmalloc(ROWS * h2 * sizeof *z[k]);
        grad[k] = t_xmalloc(np * sizeof *grad[k]);
        /* 64-byte aligned, as the layer's workspace is */
        scratch[k] = aligned_alloc(64, (sf * sizeof(float) + 63) / 64 * 64);
        T_CHECK(scratch[k] != NULL, "out of memory");
        memset(grad[k], 0, np * sizeof *grad[k]);
        const nvp_exec ex = exec_at(NVP_ISA_AVX512 - k);
        const nvp_sweep_net net = net_of(l);
        nvp_sweep_grad gk = grad_of(l, grad[k]);
        nvp__exec_sweep_forward(&ex, &net, ROWS, x, z[k], scratch[k]);
        nvp__exec_sweep_backward(&ex, &net, ROWS, x, dz, &gk, din[k], scratch[k], 0);
        /* fresh: the W2 and b2 gradients (what the sweep writes fresh)
         * written over garbage equal those added to zeros; the rest is
         * still added to */
        float *fresh = t_xmalloc(np * sizeof *fresh);
        const size_t off = l->cond.dense[1].w_off, len = h1 * h2 + h2;
        for (size_t q = 0; q < np; q++)
            fresh[q] = q >= off && q < off + len ? (q & 1 ? NAN : 1e30f) : 0.0f;
        nvp_sweep_grad gf = grad_of(l, fresh);
        nvp__exec_sweep_backward(&ex, &net, ROWS, x, dz, &gf, NULL, scratch[k], 1);
        check_same(grad[k], fresh, np, "fresh gradient", _i, NVP_ISA_AVX512 - k);
        free(fresh);
        /* and adding onto a gradient that holds values (later chunks, the
         * public backward) */
        added[k] = t_xmalloc(np * sizeof *added[k]);
        for (size_t q = 0; q < np; q++)
            added[k][q] = 0.25f * (float)(q % 7) - 0.5f;
        nvp_sweep_grad ga = grad_of(l, added[k]);
        nvp__exec_sweep_backward(&ex, &net, ROWS, x, dz, &ga, NULL, scratch[k], 0);
    }
    size_t n0, n;
    const double *p0 = nvp__sweep_partials(h1, h2, ROWS, scratch[0], &n0);
    for (int k = 1; k < 3; k++) {
        const int level = NVP_ISA_AVX512 - k;
        check_same(z[0], z[k], ROWS * h2, "z", _i, level);
        check_same(grad[0], grad[k], np, "gradient", _i, level);
        check_same(din[0], din[k], ROWS, "dL/dx", _i, level);
        check_same(added[0], added[k], np, "gradient added onto values", _i, level);
        const double *p = nvp__sweep_partials(h1, h2, ROWS, scratch[k], &n);
        ck_assert_uint_eq(n, n0);
        for (size_t q = 0; q < n0; q++)
            T_CHECK(memcmp(&p0[q], &p[q], sizeof p[q]) == 0,
                    "config %zu: partial sum %zu: %.17g (best) vs %.17g (%s)", (size_t)_i, q, p0[q], p[q],
                    level_names[level]);
    }
    if (l->cond.n_dense > 2)
        for (size_t i = 0; i < ROWS; i++)
            T_CHECK(isnan(x[i]) || z[0][i * h2 + h2 / 2] == 0.0f, "config %zu: ReLU of NaN gave %g", (size_t)_i,
                    (double)z[0][i * h2 + h2 / 2]);
    for (int k = 0; k < 3; k++) {
        free(z[k]);
        free(grad[k]);
        free(added[k]);
        free(scratch[k]);
    }
    free(dz);
    nvp_coupling_free(l);
}
END_TEST

/* The forward's three sorts write disjoint memory and read nothing the
 * others write, so any order (and any thread) gives the same scratch:
 * run 0, 1, 2 on one scratch and 2, 1, 0 on another, filled with other
 * garbage, with non-finite, tied and -0 inputs, units with w = 0 and one
 * with a NaN weight; the sorted rows and units, the counts and the
 * forward's output must agree bit for bit. */
START_TEST(test_sweep_sort_parts_any_order)
{
    nvp_coupling *l = cfg_coupling((size_t)_i, 0, 7600 + (uint64_t)_i);
    const size_t h1 = l->cond.dense[0].out, h2 = l->cond.dense[1].out;
    const size_t sf = nvp__sweep_floats(h1, h2, ROWS);
    float *w1 = l->layer.params + l->cond.dense[0].w_off, *b1 = l->layer.params + l->cond.dense[0].b_off;
    w1[1] = 0.0f;
    b1[1] = 0.5f;
    w1[2] = 0.0f;
    b1[2] = -0.5f;
    if (h1 > 5)
        w1[5] = NAN;
    float x[ROWS];
    t_prng g;
    t_prng_seed(&g, 7601 + (uint64_t)_i);
    t_fill_normal(&g, ROWS, x, 1.5);
    x[0] = NAN;
    x[1] = INFINITY;
    x[2] = -INFINITY;
    x[3] = -0.0f;
    x[4] = 0.0f;
    x[5] = x[6];
    x[7] = -b1[0] / w1[0]; /* exactly at a switch point */
    const nvp_sweep_net net = net_of(l);
    float *scratch[2], *z[2];
    sweep_job j[2];
    for (int k = 0; k < 2; k++) {
        scratch[k] = aligned_alloc(64, (sf * sizeof(float) + 63) / 64 * 64);
        z[k] = t_xmalloc(ROWS * h2 * sizeof *z[k]);
        T_CHECK(scratch[k] != NULL, "out of memory");
        memset(scratch[k], k ? 0xa5 : 0x3c, sf * sizeof(float));
        nvp__sweep_forward_setup(&j[k], &net, ROWS, x, z[k], scratch[k]);
        for (size_t part = 0; part < NVP_SWEEP_SORT_PARTS; part++)
            nvp__sweep_sort(&j[k], k ? NVP_SWEEP_SORT_PARTS - 1 - part : part);
        nvp__sweep_forward_blocks(capped(NVP_ISA_AVX512), &j[k], 0, nvp__sweep_blocks(h2));
    }
    T_CHECK(j[0].n_rows == ROWS - 3 && j[1].n_rows == j[0].n_rows, "config %zu: %zu and %zu finite rows, expected %d",
            (size_t)_i, j[0].n_rows, j[1].n_rows, ROWS - 3);
    T_CHECK(j[0].n_rising == j[1].n_rising && j[0].n_falling == j[1].n_falling &&
                j[0].n_rising + j[0].n_falling == h1 - 2 - (h1 > 5),
            "config %zu: %zu + %zu and %zu + %zu rising and falling units of %zu", (size_t)_i, j[0].n_rising,
            j[0].n_falling, j[1].n_rising, j[1].n_falling, h1);
    T_CHECK(memcmp(j[0].sorted_rows, j[1].sorted_rows, j[0].n_rows * sizeof(keyed)) == 0,
            "config %zu: the sorted rows depend on the order of the sorts", (size_t)_i);
    T_CHECK(memcmp(j[0].units, j[1].units, (j[0].n_rising + j[0].n_falling) * sizeof(keyed)) == 0,
            "config %zu: the sorted units depend on the order of the sorts", (size_t)_i);
    for (size_t q = 1; q < j[0].n_rows; q++)
        T_CHECK(j[0].sorted_rows[q - 1].key < j[0].sorted_rows[q].key ||
                    (j[0].sorted_rows[q - 1].key == j[0].sorted_rows[q].key &&
                     j[0].sorted_rows[q - 1].index < j[0].sorted_rows[q].index),
                "config %zu: sorted rows out of order at %zu", (size_t)_i, q);
    check_same(z[0], z[1], ROWS * h2, "z after the sorts in reverse order", (size_t)_i, NVP_ISA_AVX512);
    for (int k = 0; k < 2; k++) {
        free(scratch[k]);
        free(z[k]);
    }
    nvp_coupling_free(l);
}
END_TEST

/* The reference network's gradient on 1 and 2 threads with every kernel
 * level, over 300 rows (two chunks: the first writes the sweep's part of
 * the gradient fresh, the second adds to it), into buffers filled with
 * NaN: one set of bits.  And that set is the two chunks' gradients
 * weighted by their rows, to float rounding. */
START_TEST(test_sweep_kernels_chain_threads)
{
    const size_t hidden[2] = {512, 512}, n = 300, n1 = 256;
    nvp_chain *c = t_chain(2, 4, 2, hidden, 7300);
    const size_t np = nvp_chain_num_params(c);
    float *data = t_xmalloc(2 * n * sizeof *data);
    nvp_rng *r = t_rng(7301);
    T_OK(nvp_two_moons(r, n, 0.05f, data, NULL));
    nvp_rng_free(r);
    float *want = t_xmalloc(np * sizeof *want), *got = t_xmalloc(np * sizeof *got);
    float want_loss = 0.0f, loss = 0.0f;
    for (size_t q = 0; q < np; q++)
        want[q] = NAN;
    T_OK(nvp_chain_set_threads(c, 1));
    T_OK(nvp_chain_nll_grad(c, n, data, want, &want_loss));
    const nvp_isa best = c->ctx.isa;
    for (int level = NVP_ISA_AVX512; level >= NVP_ISA_PORTABLE; level--)
        for (size_t threads = 1; threads <= 2; threads++) {
            for (size_t q = 0; q < np; q++)
                got[q] = NAN;
            sweep_level(&c->ctx, level);
            T_OK(nvp_chain_set_threads(c, threads));
            T_OK(nvp_chain_nll_grad(c, n, data, got, &loss));
            c->ctx.isa = best;
            const size_t d = t_first_diff(got, want, np);
            T_CHECK(d == (size_t)-1, "%s kernels, %zu threads: gradient differs at %zu: %.9g vs %.9g",
                    level_names[level], threads, d, (double)got[d], (double)want[d]);
            T_CHECK(memcmp(&loss, &want_loss, sizeof loss) == 0, "%s kernels, %zu threads: loss %.9g vs %.9g",
                    level_names[level], threads, (double)loss, (double)want_loss);
        }
    /* the chunks one at a time */
    float *g1 = t_xmalloc(np * sizeof *g1), *g2 = t_xmalloc(np * sizeof *g2);
    T_OK(nvp_chain_nll_grad(c, n1, data, g1, NULL));
    T_OK(nvp_chain_nll_grad(c, n - n1, data + 2 * n1, g2, NULL));
    double scale = 0.0;
    for (size_t q = 0; q < np; q++)
        scale = fmax(scale, fabs((double)want[q]));
    for (size_t q = 0; q < np; q++) {
        const double both = ((double)n1 * g1[q] + (double)(n - n1) * g2[q]) / (double)n;
        T_CLOSE(want[q], both, 1e-4, 1e-6 * scale, 7300, "gradient[%zu] vs its chunks", q);
    }
    free(g1);
    free(g2);
    free(want);
    free(got);
    free(data);
    nvp_chain_free(c);
}
END_TEST

Suite *sweep_suite(void)
{
    Suite *s = suite_create("sweep");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_loop_test(tc, test_sweep_kernels_same_bits, 0, (int)(sizeof cfgs / sizeof cfgs[0]));
    tcase_add_loop_test(tc, test_sweep_kernels_same_partials, 0, (int)(sizeof cfgs / sizeof cfgs[0]));
    tcase_add_test(tc, test_sweep_kernels_chain_threads);
    tcase_add_loop_test(tc, test_sweep_sort_parts_any_order, 0, (int)(sizeof cfgs / sizeof cfgs[0]));
    suite_add_tcase(s, tc);
    return s;
}
