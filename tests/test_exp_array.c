/* SPDX-License-Identifier: MIT */
/* The vectorised exponential (kernels/exp_array.h) and the couplings'
 * exp-form steps that use it: every level gives the reference's bits (and,
 * with glibc on a CPU with FMA, expf's, which the library used before), on
 * any length, offset and mix of ordinary and special arguments; and the
 * steps, whose exponentials run in batches across rows, give every entry
 * exactly the value of its own formula wherever the batches split. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "kernels/exp_array.h"
#include "tests.h"

static const nvp_isa isas[] = {NVP_ISA_PORTABLE, NVP_ISA_AVX2,
                               NVP_ISA_AVX512};

static float from_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static uint32_t bits_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* Arguments on the edges of the main path and beyond it: zeros,
 * subnormals, the |x| >= 88 boundary, overflow and underflow, infinities
 * and NaN. */
static const uint32_t edge_bits[] = {
    0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x3f800000,
    0xbf800000, 0x42afffff, 0x42b00000, 0xc2afffff, 0xc2b00000,
    0x42b17217, 0x42b17218, 0xc2cff1b4, 0xc2cff1b5, 0xc2ce8ed0,
    0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000, 0x7fc00000,
    0xffc00001, 0x7f800001, 0x33800000, 0xb3800000, 0x41200000,
    /* the two floats whose result depends on r = x 32/ln2 - k being one
     * fused multiply-add, as in glibc's FMA build */
    0x4202422f, 0xc27c65d9,
};
#define N_EDGE (sizeof edge_bits / sizeof edge_bits[0])

/* Bit patterns across the whole float range (a prime stride), then the
 * edges, each level against the reference; the reference against expf
 * where glibc runs the same algorithm. */
START_TEST(test_exp_array_levels_match_reference)
{
    enum { STRIDE = 40009 };
    const size_t n = (size_t)(UINT32_MAX / STRIDE) + 1 + N_EDGE;
    float *x = t_xmalloc(n * sizeof *x), *y = t_xmalloc(n * sizeof *y);
    float *want = t_xmalloc(n * sizeof *want);
    size_t m = 0;
    for (uint64_t u = 0; u <= UINT32_MAX; u += STRIDE)
        x[m++] = from_bits((uint32_t)u);
    for (size_t i = 0; i < N_EDGE; i++)
        x[m++] = from_bits(edge_bits[i]);
    ck_assert_uint_eq(m, n);
    for (size_t i = 0; i < n; i++)
        want[i] = nvp__exp_reference(x[i]);
    for (size_t l = 0; l < sizeof isas / sizeof isas[0]; l++) {
        if (!nvp__cpu_has_isa(isas[l]))
            continue;
        memset(y, 0xa5, n * sizeof *y);
        nvp__exp_array(isas[l], x, y, n);
        for (size_t i = 0; i < n; i++)
            T_CHECK(bits_of(y[i]) == bits_of(want[i]),
                    "level %d: exp(%a) = %a, reference %a", (int)isas[l],
                    (double)x[i], (double)y[i], (double)want[i]);
    }
#if defined(__GLIBC__) && (defined(__x86_64__) || defined(__i386__))
    /* glibc runs its FMA build of expf where the CPU has FMA (our AVX2
     * level): the same operations, so the same bits as before. */
    if (nvp__cpu_has_isa(NVP_ISA_AVX2))
        for (size_t i = 0; i < n; i++) {
            const float e = expf(x[i]);
            T_CHECK(bits_of(want[i]) == bits_of(e) ||
                        (isnan(e) && isnan(want[i])),
                    "reference exp(%a) = %a, expf %a", (double)x[i],
                    (double)want[i], (double)e);
        }
#endif
    free(x);
    free(y);
    free(want);
}
END_TEST

/* Every length up to 40 at a few offsets, in place and
 * out of place, with a special argument at each position in turn: the
 * masked tails and the special lanes write exactly their own outputs. */
START_TEST(test_exp_array_tails_and_special_lanes)
{
    enum { MAXN = 40, PAD = 16 };
    static const size_t offsets[] = {0, 1, 7};
    float src[MAXN + PAD], buf[MAXN + 2 * PAD], want[MAXN + PAD];
    t_prng p;
    t_prng_seed(&p, 7301);
    for (size_t i = 0; i < MAXN + PAD; i++)
        src[i] = (float)t_prng_range(&p, -30.0, 30.0);
    for (size_t l = 0; l < sizeof isas / sizeof isas[0]; l++) {
        if (!nvp__cpu_has_isa(isas[l]))
            continue;
        for (size_t n = 0; n <= MAXN; n++)
            for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++)
                for (size_t sp = 0; sp <= n; sp++) { /* sp == n: none */
                    const size_t off = offsets[o];
                    float in[MAXN];
                    memcpy(in, src + off, n * sizeof *in);
                    if (sp < n)
                        in[sp] = from_bits(edge_bits[(n + off + sp) % N_EDGE]);
                    for (size_t i = 0; i < n; i++)
                        want[i] = nvp__exp_reference(in[i]);
                    /* out of place, guard floats around the output */
                    for (size_t i = 0; i < MAXN + 2 * PAD; i++)
                        buf[i] = -1.0f;
                    nvp__exp_array(isas[l], in, buf + off, n);
                    for (size_t i = 0; i < MAXN + 2 * PAD; i++) {
                        const int inside = i >= off && i < off + n;
                        const float w = inside ? want[i - off] : -1.0f;
                        T_CHECK(bits_of(buf[i]) == bits_of(w) ||
                                    (inside && isnan(w) && isnan(buf[i])),
                                "level %d n %zu off %zu special %zu: "
                                "float %zu is %a, want %a",
                                (int)isas[l], n, off, sp, i, (double)buf[i],
                                (double)w);
                    }
                    /* in place */
                    memcpy(buf + off, in, n * sizeof *in);
                    nvp__exp_array(isas[l], buf + off, buf + off, n);
                    for (size_t i = 0; i < n; i++)
                        T_CHECK(bits_of(buf[off + i]) == bits_of(want[i]) ||
                                    (isnan(want[i]) && isnan(buf[off + i])),
                                "level %d n %zu in place: float %zu",
                                (int)isas[l], n, i);
                }
    }
}
END_TEST

/* A coupling whose conditioner is linear with zero weights puts its
 * output bias, shift then raw log-scale, on every row, so each entry's
 * result has a formula: the forward's y_b = x_b expf(ls_k) + shift_k and
 * logdet = 0 + sum_k ls_k, the inverse's x_b = (y_b - shift_k) expf(-ls_k)
 * and 0 - sum_k ls_k; the inverse's backward dy_b = dx_b expf(-ls_k), the
 * forward's dx_b = dy_b expf(ls_k), x_a's gradient passing through (plus
 * the zero weights' +0), and for one row the bias gradients (inverse:
 * -dx_b expf(-ls_k); -dx_b x_b - dildj, forward: dy_b; dy_b (x_b
 * expf(ls_k)) + dlogdet, the log-scale's times 1 - (ls_k / c)^2 under a
 * clamp c).
 * Held exactly at every level, with and without the clamp, for rows of 1
 * to 150 transformed entries (batches of 128 then end inside rows and
 * inside one row), with the transformed entries last, first (each a run
 * of columns, which the steps treat as arrays) and interleaved with the
 * conditioned ones (gathered one by one); some log-scales leave the
 * exponential's main path (|ls| >= 88). */
enum { EXACT_ROWS = 37 };

/* The checks above on one layer whose output bias is shift, raw (nb
 * each); x_b's columns are idx_b, x_a's idx_a. */
static void check_exact_steps(nvp_coupling *c, size_t dim, size_t na,
                              const size_t *idx_a, const size_t *idx_b,
                              const float *shift, const float *raw,
                              const char *what, t_prng *p)
{
    const size_t nb = dim - na, np = nvp_coupling_num_params(c);
    const size_t R = EXACT_ROWS;
    float *x = t_xmalloc(R * dim * sizeof *x);
    float *dx = t_xmalloc(R * dim * sizeof *dx);
    float *y = t_xmalloc(R * dim * sizeof *y);
    float *back = t_xmalloc(R * dim * sizeof *back);
    float *g = t_xmalloc(np * sizeof *g);
    t_fill_normal(p, R * dim, x, 0.01);
    t_fill_normal(p, R * dim, dx, 1.0);
    /* -0 + 0 is +0: a pass-through that skips the conditioner's part
     * shows */
    for (size_t i = 0; i < R; i++)
        dx[i * dim + idx_a[i % na]] = -0.0f;
    const float gld = 0.375f; /* the backwards' dlogdet and dildj */
    for (int clamped = 0; clamped < 2; clamped++) {
        const float bound = clamped ? 1.7f : 0.0f;
        T_OK(nvp_coupling_set_log_scale_clamp(c, bound));
        float ls[150];
        for (size_t k = 0; k < nb; k++)
            ls[k] = clamped ? bound * tanhf(raw[k] / bound) : raw[k];
        for (size_t l = 0; l < sizeof isas / sizeof isas[0]; l++) {
            if (!nvp__cpu_has_isa(isas[l]))
                continue;
            T_OK(nvp_coupling_set_kernels(c, nvp__kernels_from_isa(isas[l])));
            float ld[EXACT_ROWS], ild[EXACT_ROWS];
            T_OK(nvp_coupling_forward(c, R, x, y, ld));
            T_OK(nvp_coupling_inverse(c, R, x, back, ild));
            for (size_t i = 0; i < R; i++) {
                float sum = 0.0f;
                for (size_t k = 0; k < nb; k++) {
                    const size_t b = i * dim + idx_b[k];
                    const float fy = x[b] * expf(ls[k]) + shift[k];
                    const float fx = (x[b] - shift[k]) * expf(-ls[k]);
                    T_CHECK(bits_of(y[b]) == bits_of(fy) &&
                                bits_of(back[b]) == bits_of(fx),
                            "%s dim %zu clamp %d level %d row %zu entry %zu: "
                            "forward %a (want %a), inverse %a (want %a)",
                            what, dim, clamped, (int)isas[l], i, k,
                            (double)y[b], (double)fy, (double)back[b],
                            (double)fx);
                    sum += ls[k];
                }
                T_CHECK(bits_of(ld[i]) == bits_of(0.0f + sum) &&
                            bits_of(ild[i]) == bits_of(0.0f - sum),
                        "%s dim %zu level %d row %zu: logdet %a, ildj %a, "
                        "sum %a",
                        what, dim, (int)isas[l], i, (double)ld[i],
                        (double)ild[i], (double)sum);
            }
            /* the backwards of both directions, all rows */
            for (int fwd = 0; fwd < 2; fwd++) {
                if (fwd) {
                    float glds[EXACT_ROWS];
                    for (size_t i = 0; i < R; i++)
                        glds[i] = gld;
                    T_OK(nvp_layer_forward_backward(nvp_coupling_as_layer(c),
                                                    R, x, dx, glds, y, NULL));
                } else {
                    T_OK(nvp_coupling_inverse_backward(c, R, x, dx, NULL, y,
                                                       NULL));
                }
                for (size_t i = 0; i < R; i++) {
                    for (size_t k = 0; k < nb; k++) {
                        const size_t b = i * dim + idx_b[k];
                        const float want = dx[b] * expf(fwd ? ls[k] : -ls[k]);
                        T_CHECK(bits_of(y[b]) == bits_of(want),
                                "%s dim %zu level %d backward %d row %zu "
                                "entry %zu: %a, want %a",
                                what, dim, (int)isas[l], fwd, i, k,
                                (double)y[b], (double)want);
                    }
                    /* x_a's gradient, where no e^|ls| overflowed into
                     * the conditioner's (zero-weighted) backward */
                    for (size_t k = 0; (clamped || nb <= 2) && k < na;
                         k++) {
                        const size_t a = i * dim + idx_a[k];
                        T_CHECK(bits_of(y[a]) == bits_of(dx[a] + 0.0f),
                                "%s dim %zu level %d backward %d row %zu "
                                "x_a %zu: %a, want %a",
                                what, dim, (int)isas[l], fwd, i, k,
                                (double)y[a], (double)dx[a]);
                    }
                }
                /* one row (the last): the output bias's gradient */
                const size_t last = (R - 1) * dim;
                memset(g, 0, np * sizeof *g);
                if (fwd) {
                    T_OK(nvp_layer_forward_backward(nvp_coupling_as_layer(c),
                                                    1, x + last, dx + last,
                                                    &gld, NULL, g));
                } else {
                    T_OK(nvp_coupling_inverse_backward(c, 1, x + last,
                                                       dx + last, &gld, NULL,
                                                       g));
                }
                const float *gshift = g + na * 2 * nb, *graw = gshift + nb;
                for (size_t k = 0; k < nb; k++) {
                    const size_t b = last + idx_b[k];
                    float want_shift, want;
                    if (fwd) {
                        want_shift = dx[b];
                        want = dx[b] * (x[b] * expf(ls[k])) + gld;
                    } else {
                        const float e = expf(-ls[k]);
                        want_shift = -dx[b] * e;
                        want = -dx[b] * ((x[b] - shift[k]) * e) - gld;
                    }
                    if (clamped) {
                        const float t = ls[k] / bound;
                        want *= 1.0f - t * t;
                    }
                    T_CHECK(bits_of(gshift[k]) == bits_of(0.0f + want_shift) &&
                                bits_of(graw[k]) == bits_of(0.0f + want),
                            "%s dim %zu clamp %d level %d backward %d entry "
                            "%zu: bias gradient %a %a, want %a %a",
                            what, dim, clamped, (int)isas[l], fwd, k,
                            (double)gshift[k], (double)graw[k],
                            (double)want_shift, (double)want);
                }
            }
        }
    }
    free(x);
    free(dx);
    free(y);
    free(back);
    free(g);
}

START_TEST(test_exp_steps_exact)
{
    static const size_t dims[] = {3, 40, 300};
    static const char *const kinds[] = {"x_b last", "x_b first",
                                        "interleaved"};
    const size_t none[1] = {0};
    t_prng p;
    t_prng_seed(&p, 7302);
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int kind = 0; kind < 3; kind++) {
            const size_t dim = dims[d];
            unsigned char mask[300];
            size_t idx_a[300], idx_b[300], na = 0, nb = 0;
            for (size_t j = 0; j < dim; j++) {
                mask[j] = kind == 0   ? j < dim / 2
                          : kind == 1 ? j >= dim - dim / 2
                                      : j % 2 == 0;
                if (mask[j])
                    idx_a[na++] = j;
                else
                    idx_b[nb++] = j;
            }
            nvp_rng *rng = t_rng(7303);
            nvp_coupling *c = NULL;
            T_OK(nvp_coupling_create(&c, dim, mask, 0, none, 0, rng, NULL));
            const size_t np = nvp_coupling_num_params(c);
            ck_assert_uint_eq(np, (na + 1) * 2 * nb);
            float *prm = t_xmalloc(np * sizeof *prm);
            memset(prm, 0, np * sizeof *prm);
            float *shift = prm + na * 2 * nb, *raw = shift + nb;
            for (size_t k = 0; k < nb; k++) {
                shift[k] = (float)t_prng_range(&p, -1.0, 1.0);
                raw[k] = (float)t_prng_range(&p, -2.0, 2.0);
            }
            if (nb > 2) { /* scales of e^88.5 and e^-95 (a subnormal) */
                raw[1] = 88.5f;
                raw[nb - 1] = -95.0f;
            }
            T_OK(nvp_coupling_set_params(c, np, prm));
            check_exact_steps(c, dim, na, idx_a, idx_b, shift, raw,
                              kinds[kind], &p);
            free(prm);
            nvp_coupling_free(c);
            nvp_rng_free(rng);
        }
}
END_TEST

Suite *exp_array_suite(void)
{
    Suite *s = suite_create("exp_array");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_exp_array_levels_match_reference);
    tcase_add_test(tc, test_exp_array_tails_and_special_lanes);
    tcase_add_test(tc, test_exp_steps_exact);
    suite_add_tcase(s, tc);
    return s;
}
