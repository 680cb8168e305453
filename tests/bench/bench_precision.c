/* SPDX-License-Identifier: MIT */
/* bfloat16 products against float (`make bench`, model key "bf16"): on
 * the general-D models of the main table (D=8, D=64, D=784), the same
 * chain (same initial weights) in NVP_PRECISION_FP32 and in
 * NVP_PRECISION_BF16, one thread, timed in alternating turns: the step
 * (a training step with Adam, or the gradient alone for D=784) and
 * log_prob.  Reports each side's time, its GFLOP/s and share of the
 * measured FMA peak, and the median over the turns of the per-turn speed
 * ratio (float time / bfloat16 time), and, with the float chain's
 * parameters after its steps copied into the other, the largest
 * difference between their log densities (the quality side is measured on real
 * data by `make quality QUALITY_METHODS=nvpflow,bf16`). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nvpflow.h"

#include "bench_precision.h"
#include "bench_util.h"

typedef struct {
    const char *label;
    size_t dim, layers, width, batch, n_eval;
    int adam; /* 1: training step with Adam; 0: the gradient alone */
} model;

/* The general-D models of bench.c's main table. */
static const model models[] = {
    {"D=8, 8 x 256-256", 8, 8, 256, 256, 10000, 1},
    {"D=64, 8 x 512-512", 64, 8, 512, 256, 10000, 1},
    {"D=784, 4 x 1024-1024", 784, 4, 1024, 128, 1000, 0},
};
#define N_MODELS (sizeof models / sizeof models[0])
#define MAX_TURNS 64

typedef struct {
    nvp_chain *chain;
    nvp_adam *opt;
    nvp_rng *rng;
    float *grad;
} side;

static void side_init(side *s, const model *m, int precision)
{
    const size_t hidden[2] = {m->width, m->width};
    memset(s, 0, sizeof *s);
    bench_check(nvp_rng_create(&s->rng, 1, NULL), "nvp_rng_create");
    bench_check(nvp_chain_create_alternating(&s->chain, m->dim, m->layers, 2,
                                             hidden, 0, s->rng, NULL),
                "nvp_chain_create_alternating");
    bench_check(nvp_chain_set_threads(s->chain, 1), "nvp_chain_set_threads");
    bench_check(nvp_chain_set_precision(s->chain, precision),
          "nvp_chain_set_precision");
    const size_t np = nvp_chain_num_params(s->chain);
    if (m->adam) {
        bench_check(nvp_adam_create(&s->opt, np, NULL), "nvp_adam_create");
        nvp_adam_set_lr(s->opt, 1e-4f);
    } else if (!(s->grad = malloc(np * sizeof *s->grad))) {
        bench_check(NVP_ENOMEM, "malloc");
    }
}

static void side_free(side *s)
{
    nvp_chain_free(s->chain);
    nvp_adam_free(s->opt);
    nvp_rng_free(s->rng);
    free(s->grad);
}

static void side_call(side *s, const model *m, int step, const float *y,
                      float *lp)
{
    float loss;
    if (!step)
        bench_check(nvp_chain_log_prob(s->chain, m->n_eval, y, lp),
              "nvp_chain_log_prob");
    else if (m->adam)
        bench_check(nvp_chain_train_step(s->chain, s->opt, s->rng, m->n_eval, y,
                                   m->batch, &loss),
              "nvp_chain_train_step");
    else
        bench_check(nvp_chain_nll_grad(s->chain, m->batch, y, s->grad, &loss),
              "nvp_chain_nll_grad");
}

/* Seconds per call over about 0.2 s of calls, after one untimed call. */
static double side_time(side *s, const model *m, int step, const float *y,
                        float *lp, int reps)
{
    side_call(s, m, step, y, lp);
    const double t0 = bench_seconds();
    for (int r = 0; r < reps; r++)
        side_call(s, m, step, y, lp);
    return (bench_seconds() - t0) / reps;
}

/* FLOPs of the conditioners' matrix products per row, forward (as
 * bench.c counts them). */
static double flop_per_row(const model *m)
{
    const double h = (double)m->width;
    double f = 0.0;
    for (size_t k = 0; k < m->layers; k++) {
        const double a = (double)(k % 2 ? m->dim - m->dim / 2 : m->dim / 2);
        const double b = (double)m->dim - a;
        f += 2.0 * (a * h + h * h + h * 2.0 * b);
    }
    return f;
}

void bench_precision(int turns, double peak_gflops)
{
    if (!nvp_precision_supported(NVP_PRECISION_BF16)) {
        printf("\nbf16: this CPU has no AVX512-BF16 (or the library was built "
               "without it): no bfloat16 figures\n");
        return;
    }
    if (turns > MAX_TURNS)
        turns = MAX_TURNS;
    printf("\nbfloat16 products (NVP_PRECISION_BF16) against float, the same "
           "chains, 1 thread; medians of %d alternating turns; %%peak: the "
           "conditioners' products against the measured float FMA peak\n\n",
           turns);
    printf("| model: call | fp32 | bf16 | fp32 GFLOP/s (%%peak) | bf16 "
           "GFLOP/s (%%peak) | speed bf16/fp32 | max |lp diff| |\n");
    printf("|---|---|---|---|---|---|---|\n");
    for (size_t k = 0; k < N_MODELS; k++) {
        const model *m = &models[k];
        fprintf(stderr, "bench: bf16 against fp32, %s...\n", m->label);
        float *y = malloc(m->n_eval * m->dim * sizeof *y);
        float *lp[2] = {malloc(m->n_eval * sizeof(float)),
                        malloc(m->n_eval * sizeof(float))};
        if (!y || !lp[0] || !lp[1])
            bench_check(NVP_ENOMEM, "malloc");
        nvp_rng *r;
        bench_check(nvp_rng_create(&r, 2, NULL), "nvp_rng_create");
        nvp_rng_normal(r, m->n_eval * m->dim, y);
        nvp_rng_free(r);
        side s[2];
        side_init(&s[0], m, NVP_PRECISION_FP32);
        side_init(&s[1], m, NVP_PRECISION_BF16);
        double worst = 0;
        for (int step = 1; step >= 0; step--) {
            if (!step) {
                /* After the steps: the float chain's parameters in both,
                 * and the largest difference of their log densities. */
                memcpy(nvp_chain_params(s[1].chain),
                       nvp_chain_params(s[0].chain),
                       nvp_chain_num_params(s[0].chain) * sizeof(float));
                bench_check(nvp_chain_log_prob(s[0].chain, m->n_eval, y, lp[0]),
                      "log_prob");
                bench_check(nvp_chain_log_prob(s[1].chain, m->n_eval, y, lp[1]),
                      "log_prob");
                for (size_t i = 0; i < m->n_eval; i++) {
                    const double d = fabs((double)lp[0][i] - lp[1][i]);
                    worst = d > worst ? d : worst;
                }
            }
            double t[2][MAX_TURNS], ratio[MAX_TURNS];
            const double once = side_time(&s[0], m, step, y, lp[0], 1);
            int reps = once > 0 ? (int)(0.2 / once + 0.5) : 1;
            reps = reps < 1 ? 1 : reps > 200 ? 200 : reps;
            for (int turn = 0; turn < turns; turn++) {
                for (int o = 0; o < 2; o++) { /* alternate who goes first */
                    const int i = (o + turn) % 2;
                    t[i][turn] = side_time(&s[i], m, step, y, lp[i], reps);
                }
                ratio[turn] = t[0][turn] / t[1][turn];
            }
            const double rows = step ? (double)m->batch : (double)m->n_eval;
            const double fl = flop_per_row(m) * rows * (step ? 3.0 : 1.0);
            const double t32 = bench_median(t[0], turns);
            const double t16 = bench_median(t[1], turns);
            const double g32 = fl / t32 / 1e9, g16 = fl / t16 / 1e9;
            const double pk = peak_gflops > 0 ? 100.0 / peak_gflops : 0.0;
            char label[96];
            snprintf(label, sizeof label, "%s: %s", m->label,
                     !step      ? "log_prob"
                     : m->adam  ? "train step (Adam)"
                                : "gradient, no Adam");
            const double scale = step ? 1e3 : 1e6 / rows;
            const char *unit = step ? "ms" : "us/pt";
            printf("| %s | %.3f %s | %.3f %s | %.1f (%.1f%%) | %.1f (%.1f%%) "
                   "| %.2fx | ",
                   label, t32 * scale, unit, t16 * scale, unit, g32, g32 * pk,
                   g16, g16 * pk, bench_median(ratio, turns));
            if (step)
                printf("|\n");
            else
                printf("%.3g |\n", worst);
        }
        side_free(&s[0]);
        side_free(&s[1]);
        free(y);
        free(lp[0]);
        free(lp[1]);
    }
}
