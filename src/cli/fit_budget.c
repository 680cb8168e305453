/* SPDX-License-Identifier: MIT */
/* fit_budget.c - nvpflow fit --budget SECONDS: a search over the settings
 * that matter most, on the validation rows, within a time budget.
 *
 * The first trial trains the defaults.  Then, one setting at a time (the
 * training noise, the width of the networks, the log-scale clamp, the
 * number of layers, the weight decay, the learning rate), each
 * variation of the best settings so far is trained from the same start
 * and kept when its best validation NLL is lower; passes over the
 * settings repeat while one improves and time remains.  A trial is
 * started only when its expected time (the best trial's, scaled by its
 * parameter count) fits in what is left, and every trial stops at the
 * deadline.  Settings given on the command line are not searched.  With
 * the same budget, a faster or slower machine may try other settings:
 * the trials are reported. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fit.h"
#include "numparse.h"
#include "progress.h"

static const char CMD[] = "fit";

/* The settings a trial varies, in the order they are searched. */
enum { AX_NOISE, AX_HIDDEN, AX_CLAMP, AX_LAYERS, AX_WD, AX_LR, N_AXES };
static const unsigned AXIS_GIVEN[N_AXES] = {
    FIT_GIVEN_NOISE, FIT_GIVEN_HIDDEN, FIT_GIVEN_CLAMP,
    FIT_GIVEN_LAYERS, FIT_GIVEN_WEIGHT_DECAY, FIT_GIVEN_LR};
#define MAX_VALUES 4
#define MIN_GAIN 1e-3

/* The values axis ax takes around b, into v (as settings); returns how
 * many. */
static size_t axis_values(int ax, const fit_config *b, fit_config *v)
{
    size_t n = 0;
    for (size_t i = 0; i < MAX_VALUES; i++)
        v[i] = *b;
    switch (ax) {
    case AX_NOISE:
        if (b->noise == 0) {
            static const double levels[] = {0.05, 0.1, 0.2, 0.4};
            for (size_t i = 0; i < 4; i++)
                v[n++].noise = levels[i];
        } else {
            v[n++].noise = b->noise / 2;
            v[n++].noise = b->noise * 2;
        }
        break;
    case AX_HIDDEN:
        for (int up = 0; up < 2; up++) {
            int ok = 1;
            for (size_t i = 0; i < b->n_hidden; i++) {
                const size_t w = up ? b->hidden[i] * 2 : b->hidden[i] / 2;
                ok = ok && w >= 4 && w <= 1024;
                v[n].hidden[i] = w;
            }
            n += ok && b->n_hidden > 0;
        }
        break;
    case AX_CLAMP:
        if (b->clamp >= 1)
            v[n++].clamp = b->clamp / 2;
        if (b->clamp > 0 && b->clamp <= 5)
            v[n++].clamp = b->clamp * 1.5;
        break;
    case AX_LAYERS:
        if (b->layers >= 4)
            v[n++].layers = b->layers / 2;
        if (b->layers >= 2 && b->layers <= 16)
            v[n++].layers = b->layers * 3 / 2;
        break;
    case AX_WD:
        if (b->weight_decay >= 0.01)
            v[n++].weight_decay = b->weight_decay / 10;
        if (b->weight_decay <= 10)
            v[n++].weight_decay = b->weight_decay > 0 ? b->weight_decay * 10
                                                      : 0.1;
        break;
    case AX_LR:
        if (b->lr <= 0.005)
            v[n++].lr = b->lr * 3;
        if (b->lr >= 3e-4)
            v[n++].lr = b->lr / 3;
        break;
    default: break;
    }
    return n;
}

/* Whether a and b have the same searched settings. */
static int same_settings(const fit_config *a, const fit_config *b)
{
    if (a->noise != b->noise || a->clamp != b->clamp ||
        a->layers != b->layers || a->weight_decay != b->weight_decay ||
        a->lr != b->lr || a->n_hidden != b->n_hidden)
        return 0;
    for (size_t i = 0; i < a->n_hidden; i++)
        if (a->hidden[i] != b->hidden[i])
            return 0;
    return 1;
}

/* Roughly the couplings' multiply-adds per row: what a step costs. */
static double cost(const fit_config *c, size_t dim)
{
    double in = (double)(dim / 2), sum = 0;
    for (size_t i = 0; i < c->n_hidden; i++) {
        sum += in * (double)c->hidden[i];
        in = (double)c->hidden[i];
    }
    sum += in * (double)dim;
    return (double)c->layers * sum;
}

/* "noise 0.1, hidden 64,64, clamp 2, 8 layers, weight decay 1, lr 0.001" */
static void describe(char *buf, size_t cap, const fit_config *c)
{
    char w[128];
    num_format_list(w, sizeof w, c->hidden, c->n_hidden);
    snprintf(buf, cap,
             "noise %g, hidden %s, clamp %g, %zu layers, weight decay %g, "
             "lr %g",
             c->noise, w, c->clamp, c->layers, c->weight_decay, c->lr);
}

/* Trains one setting; on success the trained chain stays in s->chain. */
static int run_trial(fit_state *s, const fit_config *c, double deadline,
                     fit_trial *t)
{
    fit_config keep = s->cfg;
    s->cfg = *c;
    const double t0 = progress_now();
    int status = fit_model_setup(s, 1);
    if (status == CLI_OK)
        status = fit_train(s, &t->result, deadline);
    t->seconds = progress_now() - t0;
    t->cfg = *c;
    if (status != CLI_OK) {
        fit_model_free(s);
        s->cfg = keep;
    }
    return status;
}

int fit_search(fit_state *s, fit_result *r, fit_trial **trials,
               size_t *n_trials)
{
    const size_t dim = s->data.cols;
    const double start = progress_now();
    const double deadline = start + s->cfg.budget;
    size_t cap = 0, n = 0;
    fit_trial *t = NULL;
    nvp_chain *best_chain = NULL;
    fit_config best = s->cfg;
    size_t best_i = 0;
    int status = CLI_OK, improved = 1, first = 1;
    s->no_progress = 1;
    while (improved && status == CLI_OK) {
        improved = 0;
        for (int ax = first ? -1 : 0; ax < N_AXES && status == CLI_OK;
             ax++) {
            fit_config v[MAX_VALUES];
            size_t nv = 1;
            if (ax < 0)
                v[0] = best; /* the defaults */
            else if (s->cfg.given & AXIS_GIVEN[ax])
                continue;
            else
                nv = axis_values(ax, &best, v);
            const fit_config base = best;
            for (size_t i = 0; i < nv && status == CLI_OK; i++) {
                int tried = 0;
                for (size_t k = 0; k < n && !tried; k++)
                    tried = same_settings(&t[k].cfg, &v[i]);
                if (tried)
                    continue;
                const double now = progress_now();
                if (!first && (now - start) + t[best_i].seconds *
                                                  cost(&v[i], dim) /
                                                  cost(&base, dim) >
                                  s->cfg.budget)
                    continue; /* it would not finish in time */
                if (!first && now >= deadline)
                    break;
                if (n == cap) {
                    const size_t nc = cap ? 2 * cap : 16;
                    fit_trial *g = realloc(t, nc * sizeof *t);
                    if (!g) {
                        status = cli_error(CMD, "out of memory");
                        break;
                    }
                    t = g;
                    cap = nc;
                }
                memset(&t[n], 0, sizeof t[n]);
                status = run_trial(s, &v[i], deadline, &t[n]);
                if (status != CLI_OK)
                    break;
                /* A trial must beat the best by MIN_GAIN nats: noise in the
                 * validation NLL should not steer the search. */
                const int better =
                    first || t[n].result.best_nll <
                                 t[best_i].result.best_nll - MIN_GAIN;
                t[n].improved_best = better;
                if (!s->cfg.quiet) {
                    char d[256];
                    describe(d, sizeof d, &v[i]);
                    fprintf(stderr,
                            "nvpflow fit: trial %zu (%.1f s, %zu steps): %s: "
                            "validation NLL %.6g%s\n",
                            n + 1, t[n].seconds, t[n].result.steps_done, d,
                            t[n].result.best_nll, better ? " (best)" : "");
                }
                if (better) {
                    nvp_chain_free(best_chain);
                    best_chain = s->chain;
                    s->chain = NULL;
                    best = v[i];
                    best_i = n;
                    improved = !first;
                }
                fit_model_free(s);
                n++;
                first = 0;
                if (t[n - 1].result.interrupted)
                    status = -1;
            }
        }
        first = 0;
    }
    s->no_progress = 0;
    if (status == -1)
        status = CLI_OK; /* Ctrl-C: keep the best so far */
    *trials = t;
    *n_trials = n;
    if (status != CLI_OK || !best_chain) {
        nvp_chain_free(best_chain);
        return status != CLI_OK ? status : cli_error(CMD, "no trial ran");
    }
    s->chain = best_chain;
    /* s->cfg keeps what the command line said (given, budget, quiet...)
     * with the chosen settings. */
    const fit_config keep = s->cfg;
    s->cfg = best;
    s->cfg.given = keep.given;
    *r = t[best_i].result;
    return CLI_OK;
}

int fit_refit_wanted(const fit_state *s)
{
    const fit_config *c = &s->cfg;
    if (s->n_val == 0 || c->refit == FIT_REFIT_OFF)
        return 0;
    /* --dequantize keeps the training rows' clean values only: the
     * validation rows hold one draw of the noise. */
    if (c->refit == FIT_REFIT_ON)
        return !c->dequantize;
    return !c->dequantize && s->n_train < FIT_SMALL_ROWS;
}

int fit_schedule_of(const fit_result *r, double lr, fit_schedule *out)
{
    const size_t nd = r->lr_drops;
    if (nd > FIT_MAX_DROPS)
        return 0;
    /* Walk back from the best step: the segment it lies in (segment k
     * starts after drop k, from the parameters of the best step before
     * it), then the segment those came from, down to step 0. */
    size_t steps[FIT_MAX_DROPS + 1], seg[FIT_MAX_DROPS + 1], n = 0;
    size_t b = r->best_step;
    while (b > 0 && n <= FIT_MAX_DROPS) {
        size_t k = nd;
        while (k > 0 && r->drop_step[k - 1] >= b)
            k--;
        const size_t start = k ? r->drop_step[k - 1] : 0;
        steps[n] = b - start;
        seg[n++] = k;
        b = k ? r->drop_best[k - 1] : 0;
    }
    if (b > 0)
        return 0;
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        out->steps[i] = steps[n - 1 - i];
        out->lr[i] = lr * pow(FIT_LR_DROP_FACTOR, (double)seg[n - 1 - i]);
    }
    return 1;
}

int fit_refit(fit_state *s, const fit_result *r)
{
    fit_schedule sc;
    if (!fit_schedule_of(r, s->cfg.lr, &sc)) {
        if (s->cfg.refit == FIT_REFIT_ON)
            cli_warn(CMD, "--refit yes: no refit (the run's schedule has "
                          "more learning-rate drops than a refit replays)");
        return CLI_OK;
    }
    const size_t dim = s->data.cols, n = s->n_train + s->n_val;
    /* With --given the rows' context goes along, in the same order. */
    const size_t cdim = s->train_c ? s->ctx.cols : 0;
    float *all = malloc(n * dim * sizeof *all);
    float *all_c = cdim ? malloc(n * cdim * sizeof *all_c) : NULL;
    float *lp = realloc(s->lp, n * sizeof *lp);
    if (lp)
        s->lp = lp;
    if (!all || (cdim && !all_c) || !lp) {
        free(all);
        free(all_c);
        return cli_error(CMD, "out of memory for the refit");
    }
    if (cdim) {
        memcpy(all_c, s->train_c, s->n_train * cdim * sizeof *all_c);
        memcpy(all_c + s->n_train * cdim, s->val_c,
               s->n_val * cdim * sizeof *all_c);
    }
    /* With --noise the training rows hold the last draw: the clean ones
     * are kept apart. */
    memcpy(all, s->train_clean ? s->train_clean : s->train_x,
           s->n_train * dim * sizeof *all);
    memcpy(all + s->n_train * dim, s->val_x, s->n_val * dim * sizeof *all);
    free(s->refit_x);
    s->refit_x = all;
    free(s->train_clean);
    s->train_clean = NULL;
    const size_t n_train = s->n_train, n_val = s->n_val;
    float *const train_x = s->train_x, *const val_x = s->val_x;
    float *const train_c = s->train_c, *const val_c = s->val_c;
    s->train_x = all;
    s->train_c = all_c;
    s->n_train = n;
    s->val_x = NULL;
    s->val_c = NULL;
    s->n_val = 0;
    s->replay = &sc;
    /* The chosen model is freed only once the new one can be built. */
    nvp_chain *chosen = s->chain;
    s->chain = NULL;
    fit_model_free(s);
    fit_result rr;
    const int quiet = s->no_progress;
    s->no_progress = 1;
    int status = fit_model_setup(s, 1);
    if (status == CLI_OK)
        status = fit_train(s, &rr, 0);
    s->no_progress = quiet;
    s->replay = NULL;
    s->train_x = train_x;
    s->train_c = train_c;
    s->n_train = n_train;
    s->val_x = val_x;
    s->val_c = val_c;
    s->n_val = n_val;
    free(all_c);
    if (status != CLI_OK) {
        nvp_chain_free(chosen);
        return status;
    }
    if (rr.interrupted) {
        /* Ctrl-C during the refit: the model the validation rows chose is
         * the one saved, and no refit is reported. */
        nvp_chain_free(s->chain);
        s->chain = chosen;
        cli_warn(CMD, "interrupted during the refit: saving the model the "
                      "validation rows chose");
        return CLI_OK;
    }
    nvp_chain_free(chosen);
    s->refit_rows = n;
    s->refit_steps = rr.steps_done;
    return CLI_OK;
}
