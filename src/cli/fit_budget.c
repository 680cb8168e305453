/* SPDX-License-Identifier: MIT */
/* fit_budget.c - nvpflow fit --budget SECONDS: a search over the settings
 * that matter most, on the validation rows, within a time budget.
 *
 * The first trial trains the defaults.  Then, one setting at a time (the
 * training noise, the base distribution (normal or a Gaussian mixture,
 * fit_base.c), the width of the networks, the log-scale clamp, the
 * number of layers, the weight decay, the learning rate), each
 * variation of the best settings so far is trained from the same start
 * and kept when its best validation NLL is clearly lower (see
 * try_setting); passes over the settings repeat while one improves.  When
 * a pass brings no gain, the time left goes to random moves of several
 * settings at once, then to passes again after one that helps.  A trial
 * is started only when its expected time (the best trial's, scaled by
 * its parameter count) fits in what is left, and every trial stops at
 * the deadline.  Settings given on the command line are not searched.
 * With the same budget, a faster or slower machine may try other
 * settings: the trials are reported. */
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
enum { AX_NOISE, AX_BASE, AX_HIDDEN, AX_CLAMP, AX_LAYERS, AX_WD, AX_LR,
       N_AXES };
static const unsigned AXIS_GIVEN[N_AXES] = {
    FIT_GIVEN_NOISE, FIT_GIVEN_BASE, FIT_GIVEN_HIDDEN, FIT_GIVEN_CLAMP,
    FIT_GIVEN_LAYERS, FIT_GIVEN_WEIGHT_DECAY, FIT_GIVEN_LR};
#define MAX_VALUES 4
#define MIN_GAIN 1e-3
/* ... and by GAIN_SE standard errors of the mean of its gains row by row
 * over the best (see try_setting). */
#define GAIN_SE 1.0

/* The values axis ax takes around b, into v (as settings); returns how
 * many. */
static size_t axis_values(int ax, const fit_config *b, fit_config *v)
{
    size_t n = 0;
    for (size_t i = 0; i < MAX_VALUES; i++)
        v[i] = *b;
    switch (ax) {
    case AX_BASE:
        /* the other base: a mixture (k chosen on the validation rows) */
        if (b->base == FIT_BASE_NORMAL) {
            v[n].base = FIT_BASE_MIXTURE;
            v[n++].mix_k = 0;
        } else if (b->base == FIT_BASE_MIXTURE) {
            v[n++].base = FIT_BASE_NORMAL;
        }
        break;
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

/* Whether x and y are the same value: steps such as 0.003 * 3 / 3 come
 * back a rounding away. */
static int same_value(double x, double y)
{
    return fabs(x - y) <= 1e-9 * fmax(fabs(x), fabs(y));
}

/* Whether a and b have the same searched settings. */
static int same_settings(const fit_config *a, const fit_config *b)
{
    if (!same_value(a->noise, b->noise) || !same_value(a->clamp, b->clamp) ||
        a->layers != b->layers ||
        !same_value(a->weight_decay, b->weight_decay) ||
        !same_value(a->lr, b->lr) || a->n_hidden != b->n_hidden ||
        a->base != b->base || a->mix_k != b->mix_k)
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
             "%s base, noise %g, hidden %s, clamp %g, %zu layers, weight "
             "decay %g, lr %g",
             c->base == FIT_BASE_MIXTURE ? "mixture" : "normal", c->noise, w,
             c->clamp, c->layers, c->weight_decay, c->lr);
}

/* The search's state. */
typedef struct search {
    fit_state *s;
    size_t dim;
    double start, deadline;
    fit_trial *t;
    size_t n, cap;
    nvp_chain *best_chain;
    fit_config best;
    size_t best_i;
    const float *ev;  /* the evaluation rows (n_probe of them) */
    float *probe;     /* the same, twice as far out */
    size_t n_probe;
    float *best_lp;   /* the best model's log density of each row of ev */
    float *cand_lp;   /* the same for the trial just trained */
    int have_best_lp;
    uint64_t rng;     /* the random moves (seeded from --seed) */
    int unbounded;    /* no budget (fit_pick_base): every trial runs */
    int status;
} search;

/* splitmix64: the random moves' own generator, so that they draw nothing
 * from the training's. */
static uint64_t next_u64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static size_t draw(search *S, size_t n)
{
    return (size_t)(next_u64(&S->rng) % n);
}

/* The tail of the trained model in S->s->chain: the mean log density of
 * the evaluation rows moved twice as far from the training mean (the
 * rows are standardised: 2 x).  A mean, so a few rows rated absurdly low
 * dominate it: it shows how fast the density falls just outside the
 * data, where a test row may lie that no validation row resembles.  It
 * is reported, not used: turning away trials whose tail was 3 or 10
 * times the defaults' (tried on make quality) turned away the noise that
 * helps digits (tails 5 to 150 times the defaults' there, on trials 1.3
 * to 2 nats lower on the validation rows), while on breast_cancer the
 * trials it turned away were beaten on the validation rows later in the
 * same search, and the defaults' own trial, with an unremarkable tail,
 * rated the far-out test row of seed 2 (15 training sd out in a column)
 * -1.07e4. */
static double tail_of(search *S)
{
    fit_state *s = S->s;
    if (nvp_chain_log_prob(s->chain, S->n_probe, S->probe, s->lp) != NVP_OK)
        return -INFINITY;
    double sum = 0;
    for (size_t i = 0; i < S->n_probe; i++)
        sum += s->lp[i];
    return isfinite(sum) ? sum / (double)S->n_probe : -INFINITY;
}

/* Trains one setting; on success the trained chain stays in s->chain.
 * With reseed the generators start again from the seeds; without, they
 * go on from where reading the data left them, as a fit without a
 * search does. */
static int run_trial(fit_state *s, const fit_config *c, double deadline,
                     fit_trial *t, int reseed)
{
    fit_config keep = s->cfg;
    s->cfg = *c;
    const double t0 = progress_now();
    int status = fit_model_setup(s, reseed);
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

/* The outcome of try_setting. */
enum { T_SKIPPED, T_WORSE, T_BEST, T_STOP };

/* Trains c unless it was tried already or, after the first trial, its
 * expected time does not fit in what is left; keeps it when it beats the
 * best clearly. */
static int try_setting(search *S, const fit_config *c)
{
    fit_state *s = S->s;
    const int first = S->n == 0;
    for (size_t k = 0; k < S->n; k++)
        if (same_settings(&S->t[k].cfg, c))
            return T_SKIPPED;
    const double now = progress_now();
    if (!first && !S->unbounded) {
        if (now >= S->deadline)
            return T_STOP;
        /* The expected time: the best trial's, scaled by the cost. */
        if ((now - S->start) + S->t[S->best_i].seconds * cost(c, S->dim) /
                                   cost(&S->best, S->dim) >
            s->cfg.budget)
            return T_SKIPPED;
    }
    if (S->n == S->cap) {
        const size_t nc = S->cap ? 2 * S->cap : 16;
        fit_trial *g = realloc(S->t, nc * sizeof *g);
        if (!g) {
            S->status = cli_error(CMD, "out of memory");
            return T_STOP;
        }
        S->t = g;
        S->cap = nc;
    }
    fit_trial *t = &S->t[S->n];
    memset(t, 0, sizeof *t);
    /* fit_pick_base's first trial is the fit without a search, bit for
     * bit */
    S->status = run_trial(s, c, S->unbounded ? 0 : S->deadline, t,
                          !(S->unbounded && first));
    if (S->status != CLI_OK && c->base == FIT_BASE_MIXTURE &&
        !(s->cfg.given & FIT_GIVEN_BASE) && !first) {
        /* a mixture the search chose to try and the rows cannot support
         * (its message is printed) is a worse trial, not the end */
        S->status = CLI_OK;
        t->result.best_nll = INFINITY;
        S->n++;
        return T_WORSE;
    }
    if (S->status != CLI_OK)
        return T_STOP;
    t->tail = tail_of(S);
    /* A trial must beat the best by MIN_GAIN nats, and by GAIN_SE
     * standard errors of its mean gain over the best's, row by row: with
     * the few validation rows of a small table (30 on iris, 36 on wine)
     * the differences between trials are mostly noise, and a search of a
     * few hundred trials that follows them picks the validation rows'
     * favourite rather than a better model. */
    const int rows = nvp_chain_log_prob(s->chain, S->n_probe, S->ev,
                                        S->cand_lp) == NVP_OK;
    const int lower =
        first || t->result.best_nll < S->t[S->best_i].result.best_nll -
                                          MIN_GAIN;
    /* Without the rows' figures, on the NLL alone. */
    int clear = lower;
    if (!first && lower && rows && S->have_best_lp) {
        double sum = 0, sq = 0;
        for (size_t i = 0; i < S->n_probe; i++) {
            const double d = (double)S->cand_lp[i] - S->best_lp[i];
            sum += d;
            sq += d * d;
        }
        const double n = (double)S->n_probe, m = sum / n;
        const double var = n > 1 ? (sq - n * m * m) / (n - 1) : 0;
        clear = isfinite(m) && isfinite(var) &&
                m > GAIN_SE * sqrt(fmax(var, 0) / n);
    }
    const int better = clear;
    t->improved_best = better;
    if (!s->cfg.quiet) {
        char d[256];
        describe(d, sizeof d, c);
        fprintf(stderr,
                "nvpflow fit: trial %zu (%.1f s, %zu steps): %s: "
                "validation NLL %.6g, tail %.4g%s\n",
                S->n + 1, t->seconds, t->result.steps_done, d,
                t->result.best_nll, t->tail,
                better  ? " (best)"
                : lower ? " (lower, within the rows' noise: not kept)"
                        : "");
    }
    if (better) {
        float *const x = S->best_lp;
        S->best_lp = S->cand_lp;
        S->cand_lp = x;
        S->have_best_lp = rows;
        nvp_chain_free(S->best_chain);
        S->best_chain = s->chain;
        s->chain = NULL;
        S->best = *c;
        S->best_i = S->n;
    }
    fit_model_free(s);
    S->n++;
    if (t->result.interrupted) {
        S->status = -1;
        return T_STOP;
    }
    return better ? T_BEST : T_WORSE;
}

/* Whether the search varies axis ax: not when the command line gave it,
 * nor the base when a mixture cannot hold the columns. */
static int axis_searched(const search *S, int ax)
{
    if (S->s->cfg.given & AXIS_GIVEN[ax])
        return 0;
    return ax != AX_BASE || S->dim <= FIT_MIXTURE_MAX_DIM;
}

/* One pass over the axes, each variation of the best so far; returns
 * whether one became the best (T_BEST), or T_STOP. */
static int axis_pass(search *S)
{
    int improved = T_WORSE;
    for (int ax = 0; ax < N_AXES; ax++) {
        if (!axis_searched(S, ax))
            continue;
        fit_config v[MAX_VALUES];
        const size_t nv = axis_values(ax, &S->best, v);
        for (size_t i = 0; i < nv; i++) {
            const int r = try_setting(S, &v[i]);
            if (r == T_STOP)
                return T_STOP;
            if (r == T_BEST)
                improved = T_BEST;
        }
    }
    return improved;
}

/* A random move from the best: each axis searched moves to one of its
 * values around the best with probability one half (at least one axis
 * moves).  Returns 0 when there is no axis to move. */
static int random_move(search *S, fit_config *c)
{
    int axes[N_AXES], na = 0;
    for (int ax = 0; ax < N_AXES; ax++)
        if (axis_searched(S, ax))
            axes[na++] = ax;
    if (na == 0)
        return 0;
    *c = S->best;
    const int forced = axes[draw(S, (size_t)na)];
    for (int k = 0; k < na; k++) {
        const int ax = axes[k];
        if (ax != forced && draw(S, 2) == 0)
            continue;
        fit_config v[MAX_VALUES];
        const size_t nv = axis_values(ax, c, v);
        if (nv > 0)
            *c = v[draw(S, nv)];
    }
    return 1;
}

/* Random moves without a new setting to try before the search ends. */
#define MAX_MISSES 200

/* Sets up a search of s's settings; with budget 0, one without a
 * deadline (fit_pick_base).  Returns an exit status. */
static int search_open(search *S, fit_state *s, double budget)
{
    memset(S, 0, sizeof *S);
    S->s = s;
    S->dim = s->data.cols;
    S->start = progress_now();
    S->unbounded = budget == 0;
    S->deadline = S->unbounded ? INFINITY : S->start + budget;
    s->deadline = S->unbounded ? 0 : S->deadline;
    S->best = s->cfg;
    S->status = CLI_OK;
    S->rng = s->cfg.seed ^ 0x6275646765747321u;
    /* The tail's rows: the evaluation rows fit_train scores. */
    S->n_probe = s->n_val ? s->n_val : s->n_train;
    S->ev = s->n_val ? s->val_x : s->train_x;
    S->probe = malloc(S->n_probe * S->dim * sizeof *S->probe);
    S->best_lp = malloc(S->n_probe * sizeof *S->best_lp);
    S->cand_lp = malloc(S->n_probe * sizeof *S->cand_lp);
    if (!S->probe || !S->best_lp || !S->cand_lp) {
        free(S->probe);
        free(S->best_lp);
        free(S->cand_lp);
        return cli_error(CMD, "out of memory");
    }
    for (size_t i = 0; i < S->n_probe * S->dim; i++)
        S->probe[i] = 2 * S->ev[i];
    return CLI_OK;
}

/* Ends a search: the best trial's chain, settings and run go to s and
 * *r, the trials to *trials.  Returns an exit status. */
static int search_close(search *S, fit_state *s, fit_result *r,
                        fit_trial **trials, size_t *n_trials)
{
    s->deadline = 0;
    free(S->probe);
    free(S->best_lp);
    free(S->cand_lp);
    int status = S->status;
    if (status == -1)
        status = CLI_OK; /* Ctrl-C: keep the best so far */
    *trials = S->t;
    *n_trials = S->n;
    if (status != CLI_OK || !S->best_chain) {
        nvp_chain_free(S->best_chain);
        return status != CLI_OK ? status : cli_error(CMD, "no trial ran");
    }
    s->chain = S->best_chain;
    /* s->cfg keeps what the command line said (given, budget, quiet...)
     * with the chosen settings. */
    const fit_config keep = s->cfg;
    s->cfg = S->best;
    s->cfg.given = keep.given;
    *r = S->t[S->best_i].result;
    return CLI_OK;
}

int fit_search(fit_state *s, fit_result *r, fit_trial **trials,
               size_t *n_trials)
{
    search S;
    int status = search_open(&S, s, s->cfg.budget);
    if (status != CLI_OK)
        return status;
    s->no_progress = 1;
    /* The defaults, then passes over the axes while one improves.  When a
     * whole pass brings no gain, the time left goes to random moves of
     * several settings at once from the best, and after one that helps,
     * to passes again: one setting at a time stops in a local optimum
     * (on iris, 6 to 11 trials in 5 to 12 s of a 60 s budget, where
     * settings two moves away were better on the validation rows). */
    int r0 = try_setting(&S, &S.best);
    while (r0 != T_STOP) {
        r0 = axis_pass(&S);
        if (r0 != T_WORSE)
            continue;
        size_t misses = 0;
        while (r0 == T_WORSE || r0 == T_SKIPPED) {
            fit_config c;
            if (!random_move(&S, &c) || misses >= MAX_MISSES) {
                r0 = T_STOP;
                break;
            }
            r0 = try_setting(&S, &c);
            if (r0 == T_SKIPPED)
                misses++;
        }
    }
    s->no_progress = 0;
    return search_close(&S, s, r, trials, n_trials);
}

int fit_pick_base(fit_state *s, fit_result *r, fit_trial **trials,
                  size_t *n_trials)
{
    search S;
    int status = search_open(&S, s, 0);
    if (status != CLI_OK)
        return status;
    /* the normal base first: the mixture is kept only on a clear gain */
    fit_config c = S.best;
    c.base = FIT_BASE_NORMAL;
    c.mix_k = 0;
    S.best = c;
    if (try_setting(&S, &c) != T_STOP) {
        c.base = FIT_BASE_MIXTURE;
        try_setting(&S, &c);
    }
    return search_close(&S, s, r, trials, n_trials);
}

int fit_auto_base(const fit_state *s)
{
    const fit_config *c = &s->cfg;
    return c->budget == 0 && !(c->given & FIT_GIVEN_BASE) &&
           s->data.cols <= FIT_AUTO_BASE_COLS && s->n_val > 0 &&
           c->context_dim == 0;
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
