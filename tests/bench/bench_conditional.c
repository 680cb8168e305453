/* SPDX-License-Identifier: MIT */
/* The conditional calls against the plain ones (`make bench`, model key
 * "cond"): on the D=8 model of 8 couplings of 256-256, a training step on
 * a minibatch of 256 and log_prob over 10,000 rows, timed in alternating
 * turns for
 *   - the plain chain through the plain calls,
 *   - the same chain through the _given calls with context_dim 0 (the
 *     target: within 10% per row),
 *   - a conditional chain of context_dim 8 through the _given calls (the
 *     target: slower by no more than its extra FLOPs: the conditioners'
 *     first layers read 8 more inputs).
 * Reports medians over the turns of the per-turn ratios, beside the FLOP
 * ratio. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nvpflow.h"

#include "bench_conditional.h"
#include "bench_util.h"

enum { DIM = 8, LAYERS = 8, WIDTH = 256, BATCH = 256, N_EVAL = 10000 };
enum { CDIM = 8 };

/* One side: a chain, its optimizer and generator. */
typedef struct {
    nvp_chain *chain;
    nvp_adam *opt;
    nvp_rng *rng;
    int given; /* through the _given calls */
} side;

static void side_init(side *s, size_t cdim, int given)
{
    const size_t hidden[2] = {WIDTH, WIDTH};
    memset(s, 0, sizeof *s);
    bench_check(nvp_rng_create(&s->rng, 1, NULL), "nvp_rng_create");
    bench_check(nvp_chain_create_conditional(&s->chain, DIM, cdim, LAYERS, 2,
                                       hidden, 0, s->rng, NULL),
          "nvp_chain_create_conditional");
    bench_check(nvp_chain_set_threads(s->chain, 1), "nvp_chain_set_threads");
    bench_check(nvp_adam_create(&s->opt, nvp_chain_num_params(s->chain), NULL),
          "nvp_adam_create");
    nvp_adam_set_lr(s->opt, 1e-4f);
    s->given = given;
}

static void side_free(side *s)
{
    nvp_chain_free(s->chain);
    nvp_adam_free(s->opt);
    nvp_rng_free(s->rng);
}

/* Seconds per call of `reps` calls after one untimed call. */
static double side_time(side *s, int step, const float *y, const float *c,
                        float *lp, int reps)
{
    float loss;
    for (int r = -1; r < reps; r++) {
        static double t0;
        if (r == 0)
            t0 = bench_seconds();
        if (step && s->given)
            bench_check(nvp_chain_train_step_given(s->chain, s->opt, s->rng,
                                                   N_EVAL, y, c, BATCH,
                                                   &loss),
                        "nvp_chain_train_step_given");
        else if (step)
            bench_check(nvp_chain_train_step(s->chain, s->opt, s->rng, N_EVAL,
                                             y, BATCH, &loss),
                        "nvp_chain_train_step");
        else if (s->given)
            bench_check(nvp_chain_log_prob_given(s->chain, N_EVAL, y, c, lp),
                  "nvp_chain_log_prob_given");
        else
            bench_check(nvp_chain_log_prob(s->chain, N_EVAL, y, lp),
                  "nvp_chain_log_prob");
        if (r == reps - 1)
            return (bench_seconds() - t0) / reps;
    }
    return 0.0;
}

/* The conditioners' FLOPs per row, forward, with cdim context inputs. */
static double flop_per_row(size_t cdim)
{
    double f = 0.0;
    for (size_t k = 0; k < LAYERS; k++) {
        const double a = (double)(k % 2 ? DIM - DIM / 2 : DIM / 2);
        const double b = (double)DIM - a;
        f += 2.0 * ((a + (double)cdim) * WIDTH + (double)WIDTH * WIDTH +
                    WIDTH * 2.0 * b);
    }
    return f;
}

void bench_conditional(int turns, double peak_gflops)
{
    fprintf(stderr, "bench: measuring the conditional calls (D=8, C=0 and "
                    "C=8) against the plain ones, 1 thread, in turns...\n");
    float *y = malloc(N_EVAL * DIM * sizeof *y);
    float *c = malloc(N_EVAL * CDIM * sizeof *c);
    float *lp = malloc(N_EVAL * sizeof *lp);
    if (!y || !c || !lp)
        bench_check(NVP_ENOMEM, "malloc");
    nvp_rng *r;
    bench_check(nvp_rng_create(&r, 2, NULL), "nvp_rng_create");
    nvp_rng_normal(r, N_EVAL * DIM, y);
    nvp_rng_normal(r, N_EVAL * CDIM, c);
    nvp_rng_free(r);
    side s[3];
    side_init(&s[0], 0, 0);
    side_init(&s[1], 0, 1);
    side_init(&s[2], CDIM, 1);
    static const char *const names[3] = {"plain calls", "_given, C = 0",
                                         "_given, C = 8"};
    double t[2][3][64], ratio[2][3][64];
    if (turns > 64)
        turns = 64;
    for (int call = 0; call < 2; call++) {
        const int reps = call == 0 ? 20 : 5;
        for (int k = 0; k < turns; k++) {
            for (int i = 0; i < 3; i++)
                t[call][i][k] = side_time(&s[i], call == 0, y, c, lp, reps);
            for (int i = 0; i < 3; i++)
                ratio[call][i][k] = t[call][i][k] / t[call][0][k];
        }
    }
    printf("\nconditional calls against the plain ones (D=8, 8 couplings of "
           "256-256, 1 thread; medians of %d alternating turns)\n\n",
           turns);
    printf("| call | %-15s | per row | %%peak | time / plain calls' | FLOP "
           "ratio |\n",
           "chain, calls");
    printf("|---|---|---|---|---|---|\n");
    static const char *const calls[2] = {"train step, batch 256",
                                         "log_prob, 10,000 rows"};
    for (int call = 0; call < 2; call++)
        for (int i = 0; i < 3; i++) {
            const double sec = bench_median(t[call][i], turns);
            const double rows = call == 0 ? BATCH : N_EVAL;
            const double fl = flop_per_row(i == 2 ? CDIM : 0) *
                              (call == 0 ? 3.0 : 1.0) * rows;
            printf("| %s | %-15s | %7.3f us | %4.1f%% | %.3f | %.3f |\n",
                   calls[call], names[i], sec / rows * 1e6,
                   peak_gflops > 0 ? fl / sec / 1e9 / peak_gflops * 100 : 0.0,
                   bench_median(ratio[call][i], turns),
                   flop_per_row(i == 2 ? CDIM : 0) / flop_per_row(0));
        }
    for (int i = 0; i < 3; i++)
        side_free(&s[i]);
    free(y);
    free(c);
    free(lp);
}
