/* The single-input sweep's kernels: the register-blocked AVX-512 ones
 * against the portable ones, bit for bit, on full and partial column
 * blocks, units that never switch, an input exactly at a switch point and
 * non-finite rows.  On a CPU without AVX-512 both runs take the portable
 * kernels, and the tests only show that they repeat exactly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "coupling.h"
#include "sweep.h"
#include "tests.h"

typedef struct sweep_cfg {
    size_t n_hidden;
    size_t hidden[2];
} sweep_cfg;

/* Full blocks only (512, 64), full blocks and a tail (100, 200), tails
 * only (7, 70 and 300 -> output: the sweep's second layer is the output
 * layer, two columns, without ReLU). */
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

static void check_same(const float *a, const float *b, size_t n, const char *what, size_t cfg)
{
    const size_t d = t_first_diff(a, b, n);
    T_CHECK(d == (size_t)-1, "config %zu: %s differs at %zu: %.9g (AVX-512) vs %.9g (portable)", cfg,
            what, d, (double)a[d], (double)b[d]);
}

START_TEST(test_sweep_kernels_same_bits)
{
    const sweep_cfg *cfg = &cfgs[_i];
    nvp_rng *r = t_rng(7100 + (uint64_t)_i);
    nvp_coupling *l = NULL;
    T_OK(nvp_coupling_create_half(&l, 2, _i & 1, cfg->n_hidden, cfg->hidden, 0, r, NULL));
    nvp_rng_free(r);
    const size_t np = nvp_coupling_num_params(l), h1 = cfg->hidden[0];
    float *p = t_xmalloc(np * sizeof *p);
    T_OK(nvp_coupling_get_params(l, p, np));
    /* Layout: W1 (1 x h1), then b1.  Two units with w = 0: one always on
     * (b > 0), one never (b < 0). */
    p[3] = 0.0f;
    p[h1 + 3] = 0.5f;
    p[5] = 0.0f;
    p[h1 + 5] = -0.25f;
    T_OK(nvp_coupling_set_params(l, p, np));

    /* The conditioning input is dimension 0 (flip 0) or 1 (flip 1). */
    const size_t a = _i & 1;
    float in[2 * ROWS], in_finite[2 * ROWS], dx[2 * ROWS], dildj[ROWS];
    t_prng g;
    t_prng_seed(&g, 7200 + (uint64_t)_i);
    t_fill_normal(&g, 2 * ROWS, in, 1.5);
    t_fill_normal(&g, 2 * ROWS, dx, 1.0);
    t_fill_normal(&g, ROWS, dildj, 1.0);
    in[2 * 7 + a] = -p[h1 + 9] / p[9]; /* exactly at unit 9's switch point */
    in[2 * 8 + a] = in[2 * 7 + a];     /* and a tie between rows */
    memcpy(in_finite, in, sizeof in);
    in[2 * 11 + a] = NAN;
    in[2 * 12 + a] = INFINITY;

    layer_out fast, portable;
    fast.grad = t_xmalloc(np * sizeof *fast.grad);
    portable.grad = t_xmalloc(np * sizeof *portable.grad);
    run_layer(l, in, in_finite, dx, dildj, &fast);
    nvp__sweep_force_portable(1);
    run_layer(l, in, in_finite, dx, dildj, &portable);
    nvp__sweep_force_portable(0);

    check_same(fast.x, portable.x, 2 * ROWS, "inverse x", _i);
    check_same(fast.ildj, portable.ildj, ROWS, "ildj", _i);
    check_same(fast.y, portable.y, 2 * ROWS, "forward y", _i);
    check_same(fast.logdet, portable.logdet, ROWS, "logdet", _i);
    check_same(fast.dy, portable.dy, 2 * ROWS, "dy", _i);
    check_same(fast.grad, portable.grad, np, "parameter gradient", _i);
    /* The rows with NaN or infinite input come out as NaN either way. */
    T_CHECK(isnan(fast.x[2 * 11 + 1 - a]) && isnan(fast.x[2 * 12 + 1 - a]),
            "non-finite rows: %g %g", (double)fast.x[2 * 11 + 1 - a], (double)fast.x[2 * 12 + 1 - a]);
    free(fast.grad);
    free(portable.grad);
    free(p);
    nvp_coupling_free(l);
}
END_TEST

/* The sweep itself, called directly: its float outputs and the double
 * partial sums behind the first layer's gradient and dL/dx, which show
 * a difference in the double arithmetic (a fused multiply-add, another
 * order) that rounding to float would hide. */
START_TEST(test_sweep_kernels_same_partials)
{
    const sweep_cfg *cfg = &cfgs[_i];
    nvp_rng *r = t_rng(7400 + (uint64_t)_i);
    nvp_coupling *l = NULL;
    T_OK(nvp_coupling_create_half(&l, 2, 0, cfg->n_hidden, cfg->hidden, 0, r, NULL));
    nvp_rng_free(r);
    const size_t h2 = l->dense[1].out, np = nvp_coupling_num_params(l);
    const size_t sf = nvp__sweep_floats(l, ROWS);
    float x[ROWS], din[2][ROWS];
    float *dz = t_xmalloc(ROWS * h2 * sizeof *dz);
    float *z[2], *grad[2], *scratch[2];
    t_prng g;
    t_prng_seed(&g, 7500 + (uint64_t)_i);
    t_fill_normal(&g, ROWS, x, 1.5);
    t_fill_normal(&g, ROWS * h2, dz, 1.0);
    x[3] = NAN;
    for (int k = 0; k < 2; k++) {
        z[k] = t_xmalloc(ROWS * h2 * sizeof *z[k]);
        grad[k] = t_xmalloc(np * sizeof *grad[k]);
        /* 64-byte aligned, as the layer's workspace is */
        scratch[k] = aligned_alloc(64, (sf * sizeof(float) + 63) / 64 * 64);
        T_CHECK(scratch[k] != NULL, "out of memory");
        memset(grad[k], 0, np * sizeof *grad[k]);
        nvp__sweep_force_portable(k);
        nvp__sweep_forward(l, NULL, ROWS, x, z[k], scratch[k]);
        nvp__sweep_backward(l, NULL, ROWS, x, dz, grad[k], din[k], scratch[k]);
        nvp__sweep_force_portable(0);
    }
    check_same(z[0], z[1], ROWS * h2, "z", _i);
    check_same(grad[0], grad[1], np, "gradient", _i);
    check_same(din[0], din[1], ROWS, "dL/dx", _i);
    size_t n0, n1;
    const double *p0 = nvp__sweep_partials(l, ROWS, scratch[0], &n0);
    const double *p1 = nvp__sweep_partials(l, ROWS, scratch[1], &n1);
    ck_assert_uint_eq(n0, n1);
    for (size_t k = 0; k < n0; k++)
        T_CHECK(memcmp(&p0[k], &p1[k], sizeof p0[k]) == 0,
                "config %zu: partial sum %zu: %.17g (AVX-512) vs %.17g (portable)", (size_t)_i, k, p0[k],
                p1[k]);
    for (int k = 0; k < 2; k++) {
        free(z[k]);
        free(grad[k]);
        free(scratch[k]);
    }
    free(dz);
    nvp_coupling_free(l);
}
END_TEST

/* The reference network's gradient on 1 and 2 threads with either kernel:
 * one set of bits. */
START_TEST(test_sweep_kernels_chain_threads)
{
    const size_t hidden[2] = {512, 512}, n = 100;
    nvp_chain *c = t_chain(2, 4, 2, hidden, 7300);
    const size_t np = nvp_chain_num_params(c);
    float *data = t_xmalloc(2 * n * sizeof *data);
    nvp_rng *r = t_rng(7301);
    T_OK(nvp_two_moons(r, n, 0.05f, data, NULL));
    nvp_rng_free(r);
    float *want = t_xmalloc(np * sizeof *want), *got = t_xmalloc(np * sizeof *got);
    float want_loss = 0.0f, loss = 0.0f;
    T_OK(nvp_chain_set_threads(c, 1));
    T_OK(nvp_chain_nll_grad(c, n, data, want, &want_loss));
    for (int portable = 0; portable <= 1; portable++)
        for (size_t threads = 1; threads <= 2; threads++) {
            nvp__sweep_force_portable(portable);
            T_OK(nvp_chain_set_threads(c, threads));
            T_OK(nvp_chain_nll_grad(c, n, data, got, &loss));
            nvp__sweep_force_portable(0);
            const size_t d = t_first_diff(got, want, np);
            T_CHECK(d == (size_t)-1, "%s kernels, %zu threads: gradient differs at %zu: %.9g vs %.9g",
                    portable ? "portable" : "default", threads, d, (double)got[d], (double)want[d]);
            T_CHECK(memcmp(&loss, &want_loss, sizeof loss) == 0, "%s kernels, %zu threads: loss %.9g vs %.9g",
                    portable ? "portable" : "default", threads, (double)loss, (double)want_loss);
        }
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
    suite_add_tcase(s, tc);
    return s;
}
