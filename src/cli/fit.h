/* SPDX-License-Identifier: MIT */
/* fit.h - the pieces of nvpflow fit: its settings, the defaults it
 * chooses from the data's rows and columns, and the model it builds
 * (fit_arch.c). */
#ifndef NVPFLOW_CLI_FIT_H
#define NVPFLOW_CLI_FIT_H

#include <stddef.h>
#include <stdint.h>

#include "csv.h"
#include "nvpflow.h"

/* How the couplings split the columns (--mask). */
typedef enum fit_mask {
    FIT_MASK_RANDOM, /* a seeded random half per pair of layers, then its
                        complement */
    FIT_MASK_PARITY, /* even columns, then odd ones */
    FIT_MASK_HALF    /* first half, then second half (the tutorial's) */
} fit_mask;

/* The layer next to the data (--norm), set from the training rows. */
typedef enum fit_norm {
    FIT_NORM_LINEAR,  /* whitening: the untrained model is the
                         full-covariance Gaussian fit */
    FIT_NORM_ACTNORM, /* per-column scale and shift */
    FIT_NORM_NONE
} fit_norm;

/* The flow's base distribution (--base). */
typedef enum fit_base {
    FIT_BASE_NORMAL,  /* N(0, I) */
    FIT_BASE_MIXTURE  /* a Gaussian mixture fitted to the training rows as
                         the untrained model maps them (fit_base.c) */
} fit_base;
/* --base mixture without k chooses k = 1 to this on the validation
 * rows; nvp_base_create_mixture's limit on the columns. */
#define FIT_MIXTURE_MAX_K 10
#define FIT_MIXTURE_MAX_DIM 1024

/* Whether the model is trained again on the training and validation rows
 * together once the validation rows have chosen it (--refit). */
typedef enum fit_refit_mode {
    FIT_REFIT_AUTO, /* with fewer than FIT_SMALL_ROWS training rows */
    FIT_REFIT_ON,
    FIT_REFIT_OFF
} fit_refit_mode;
/* Tables with fewer training rows than this are "small": the defaults
 * regularise more (fit_choose_defaults) and --refit auto refits them. */
#define FIT_SMALL_ROWS 200
/* From this many training rows per column the default weight decay is 0. */
#define FIT_MANY_ROWS_PER_COLUMN 250
/* Small tables of at most this many columns keep 8 couplings. */
#define FIT_FEW_COLUMNS 4

/* What a plateau multiplies the learning rate by (--lr-drops). */
#define FIT_LR_DROP_FACTOR 0.3
/* The most learning-rate drops a run records for --refit to replay; a
 * run with more is not refitted. */
#define FIT_MAX_DROPS 16

/* The training that led to a run's best parameters, as --refit replays
 * it: n segments, each steps[i] steps at the learning rate lr[i] from
 * the (averaged) parameters the previous one ended with. */
typedef struct fit_schedule {
    size_t n;
    size_t steps[FIT_MAX_DROPS + 1];
    double lr[FIT_MAX_DROPS + 1];
} fit_schedule;

/* Settings of a run.  A size of 0 (a clamp, lr or decay below 0) means
 * "not given": fit_choose_defaults fills it in from the data. */
typedef struct fit_config {
    const char *data_path;
    const char *out_path;
    const char *val_path; /* --val FILE, or NULL */
    const char *columns;  /* --columns LIST, or NULL */
    const char *drop;     /* --drop LIST, or NULL */
    const char *given_cols; /* --given LIST, or NULL */
    size_t context_dim;   /* the given columns' count (0 without --given):
                             the couplings read them as their context */
    size_t layers;        /* coupling layers */
    size_t hidden[NVP_MAX_HIDDEN_LAYERS];
    size_t n_hidden;
    size_t steps, batch, eval_every, patience, lr_drops, threads;
    int precision; /* NVP_PRECISION_*, --precision */
    double lr, val_frac, clamp, average, clip_norm, weight_decay, noise;
    int val_frac_set;
    fit_mask mask;
    int mask_set;
    fit_norm norm;
    int norm_set;
    fit_base base;      /* --base */
    size_t mix_k;       /* --base mixture:K, or 0 to choose k */
    uint64_t seed, init_seed;
    int init_seed_set;
    int dequantize;
    int strict;
    double budget;  /* --budget seconds, 0 = off */
    fit_refit_mode refit; /* --refit */
    unsigned given; /* FIT_GIVEN_* */
    int quiet;
    int json;
    csv_header header;
} fit_config;

/* Settings the command line gave (fit_config.given): --budget leaves
 * them alone. */
#define FIT_GIVEN_NOISE 1u
#define FIT_GIVEN_HIDDEN 2u
#define FIT_GIVEN_CLAMP 4u
#define FIT_GIVEN_LAYERS 8u
#define FIT_GIVEN_WEIGHT_DECAY 16u
#define FIT_GIVEN_LR 32u
#define FIT_GIVEN_BASE 64u

/* The state of a run: the rows (training rows first, standardised), the
 * random generators, and the model being trained. */
typedef struct fit_state {
    fit_config cfg;
    csv_table data;
    csv_table val;  /* --val FILE */
    size_t n_train, n_val;
    float *train_x; /* n_train standardised rows */
    float *val_x;   /* n_val standardised rows (NULL without) */
    /* --given: the given columns of the same rows (standardised by their
     * own scaler), row i of train_c conditioning row i of train_x; NULL
     * without --given. */
    csv_table ctx, val_ctx;
    float *train_c, *val_c;
    nvp_scaler *ctx_scaler;
    nvp_rng *rng;   /* split, noise and batches (--seed) */
    nvp_rng *init_rng; /* masks and weights (--init-seed) */
    nvp_scaler *scaler;
    nvp_chain *chain;
    nvp_adam *opt;
    float *best_params;
    float *cur_params; /* with --average: the iterate, while it is scored */
    float *avg_params; /* with --average: the average being scored */
    float *lp;
    float *tmp_row;
    /* --dequantize: which columns, the training rows without noise
     * (standardised), and the noise's scale per column (1 / sd). */
    unsigned char *whole;
    size_t n_whole;
    float *train_clean;
    float *noise_scale;
    float *noise;
    float *gauss; /* --noise: dim floats of scratch */
    int no_progress; /* no progress line (the --budget trials) */
    const fit_schedule *replay; /* --refit: train this, no evaluations */
    float *refit_x;  /* --refit: the training and validation rows */
    size_t refit_rows; /* rows the saved model was refitted on, or 0 */
    size_t refit_steps; /* the steps of that refit */
    int keep_names;  /* the header's names go into the model */
    size_t mix_k_chosen; /* --base mixture: the k chosen, once per run */
    double deadline; /* --budget: when the search ends (progress_now()),
                        or 0; the choice of k stops there too */
} fit_state;

/* The training outcome for the summary. */
typedef struct fit_result {
    size_t steps_done;
    size_t best_step;
    double initial_nll;
    double best_nll;
    size_t refused;     /* non-finite steps skipped */
    size_t lr_drops;    /* times the learning rate was lowered */
    int still_improving; /* --steps ended a run that had not converged */
    int interrupted;     /* Ctrl-C ended it */
    int early;          /* early stopping ended the run */
    /* The learning-rate drops: the step of each and the best step when
     * it came (whose parameters training went back to). */
    size_t drop_step[FIT_MAX_DROPS], drop_best[FIT_MAX_DROPS];
    const char *reason; /* why training ended, for people */
    const char *stop;   /* the same for --json: "max_steps",
                           "no_improvement", "interrupted", "not_finite",
                           "budget" */
} fit_result;

/* One model tried by --budget. */
typedef struct fit_trial {
    fit_config cfg;
    fit_result result;
    double seconds;
    int improved_best; /* it was the best so far when it ended */
    double tail;       /* mean log density of the validation rows moved
                          twice as far from the training mean */
} fit_trial;

/* Builds the model s->cfg describes, sets it from the training rows and
 * creates its optimizer; with reseed, the generators first start again
 * from the seeds (every --budget trial starts from the same draws).
 * Returns an exit status, with a message printed. */
int fit_model_setup(fit_state *s, int reseed);
/* Frees the model, its optimizer and their buffers (the data stay). */
void fit_model_free(fit_state *s);
/* Trains s->chain until a stopping rule, Ctrl-C or, when deadline > 0,
 * that time (progress_now()) passes; leaves the best parameters in the
 * chain.  Returns an exit status; *r describes the run. */
int fit_train(fit_state *s, fit_result *r, double deadline);
/* --budget: trains the defaults, then variations of the best settings so
 * far (fit_budget.c), while the time allows; leaves the best model in
 * s->chain, its settings in s->cfg and its run in *r.  The trials go to
 * *trials (n_trials of them; the caller frees the array).  Returns an
 * exit status. */
int fit_search(fit_state *s, fit_result *r, fit_trial **trials,
               size_t *n_trials);

/* Without --base and --budget, on a table of at most FIT_AUTO_BASE_COLS
 * columns (unconditional, with validation rows): trains the defaults over
 * the normal base, then over a mixture base, and keeps the mixture only
 * when it lowers the validation NLL clearly (as --budget keeps a trial);
 * the same outputs as fit_search. */
int fit_pick_base(fit_state *s, fit_result *r, fit_trial **trials,
                  size_t *n_trials);
/* Whether the defaults try both bases (fit_pick_base) on this run. */
int fit_auto_base(const fit_state *s);
/* The most columns on which the defaults try both bases: on 30 and 64
 * (breast_cancer, digits) the mixture base lost after training, on 2 to
 * 13 it won or tied (docs/quality.md). */
#define FIT_AUTO_BASE_COLS 16

/* --refit: trains the model s->cfg describes again from its start on the
 * training and validation rows together, replaying the steps and learning
 * rates that led to r's best parameters without evaluations, and leaves
 * it in s->chain, with s->refit_rows and s->refit_steps set; does nothing
 * when r's run cannot be replayed.  The counts of training and validation
 * rows stay those of r's run.  Returns an exit status. */
int fit_refit(fit_state *s, const fit_result *r);
/* Whether --refit asks for a refit of a run with these rows. */
int fit_refit_wanted(const fit_state *s);
/* The schedule that led to r's best parameters from a start at learning
 * rate lr; returns 0 when r's run cannot be replayed. */
int fit_schedule_of(const fit_result *r, double lr, fit_schedule *out);

/* The names of the choices, as --mask and --norm take them. */
const char *fit_mask_name(fit_mask m);
const char *fit_norm_name(fit_norm n);

/* Fills in every setting the command line left open, from the number of
 * training rows and columns. */
void fit_choose_defaults(fit_config *c, size_t n_train, size_t dim);

/* Builds the chain c describes over dim columns: couplings created with
 * NVP_INIT_ZERO_OUTPUT (each the identity until trained), their masks
 * and weights drawn from rng, then the --norm layer on the data side.
 * On failure prints a message and returns CLI_ERR, else CLI_OK. */
int fit_build_chain(const char *cmd, const fit_config *c, size_t dim,
                    nvp_rng *rng, nvp_chain **out);

/* --base mixture: fits the mixture to the training rows as s->chain,
 * untrained, maps them (choosing k the first time, unless --base gave it:
 * on the validation rows, or by BIC on the training rows without them;
 * the scan over k stops at s->deadline) and makes it the chain's base.
 * Returns an exit status, with a message printed. */
int fit_set_mixture_base(fit_state *s);

/* The number of coupling layers of a chain. */
size_t fit_count_couplings(const nvp_chain *chain);

#endif
