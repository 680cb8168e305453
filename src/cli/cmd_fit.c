/* SPDX-License-Identifier: MIT */
/* cmd_fit.c - nvpflow fit: train a flow on a CSV file and save it.
 *
 * Steps: read the CSV; shuffle it and hold out a validation part; fit the
 * standardiser on the training part and standardise everything; build an
 * alternating half-split chain; train with Adam, evaluating the validation
 * NLL every E steps and keeping the best parameters; stop early after P
 * evaluations without improvement (or on Ctrl-C); save the best model with
 * its standardiser. */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "csv.h"
#include "json.h"
#include "model.h"
#include "numparse.h"
#include "nvpflow.h"
#include "outfile.h"
#include "progress.h"

static const char CMD[] = "fit";

#define DEFAULT_HIDDEN 64
#define DEFAULT_STEPS 5000
#define DEFAULT_BATCH 256
#define DEFAULT_LR 1e-3
#define DEFAULT_VAL_FRAC 0.2
#define DEFAULT_PATIENCE 10
#define DEFAULT_EVAL_EVERY 100
#define DEFAULT_CLAMP 5.0
/* Layers: 4 suffice for two columns; more columns need more mixing. */
#define DEFAULT_LAYERS_2D 4
#define DEFAULT_LAYERS 6
/* Consecutive refused (non-finite) steps before giving up. */
#define MAX_BAD_STEPS 50

void cmd_fit_help(FILE *fp)
{
    fprintf(fp,
        "Usage: nvpflow fit DATA.csv -o MODEL.nvp [options]\n"
        "\n"
        "Learns the probability density of the rows of DATA.csv (two or more\n"
        "numeric columns; '-' reads standard input) with a Real-NVP flow and\n"
        "saves the best model, with its standardisation, to MODEL.nvp.\n"
        "\n"
        "The rows are shuffled and split into a training part and a\n"
        "validation part.  Every E steps the validation NLL (mean negative\n"
        "log-likelihood, nats per row, of the standardised data) is measured;\n"
        "training stops when it has not improved for P evaluations, and the\n"
        "parameters of the best evaluation are saved.  Ctrl-C stops training\n"
        "early and still saves the best model so far.\n"
        "\n"
        "Options:\n"
        "  -o, --output FILE  where to save the model (required)\n"
        "  --layers K         coupling layers (default %d for 2 columns,\n"
        "                     %d for more)\n"
        "  --hidden W1,W2,..  hidden layer widths of each coupling network\n"
        "                     (default %d,%d)\n"
        "  --steps N          maximum training steps (default %d)\n"
        "  --batch B          rows per step, drawn with replacement "
        "(default %d)\n"
        "  --lr X             Adam learning rate (default %g)\n"
        "  --val-frac F       share of rows held out for validation, 0 to "
        "0.9\n"
        "                     (default %g; 0 evaluates on the training rows)\n"
        "  --eval-every E     steps between evaluations (default %d)\n"
        "  --patience P       evaluations without improvement before "
        "stopping,\n"
        "                     0 = never stop early (default %d)\n"
        "  --clamp C          bound on each layer's log-scale, which keeps\n"
        "                     training stable; 0 = off (default %g)\n"
        "  --average D        evaluate and save a running average of the\n"
        "                     parameters (an exponential moving average\n"
        "                     with decay D, 0 < D < 1, e.g. 0.99) instead\n"
        "                     of the last ones; 0 = off (default)\n"
        "  --clip-norm C      scale a step's gradient down to norm C when\n"
        "                     its norm is larger; 0 = off (default)\n"
        "  --seed S           random seed for the split, the initial "
        "weights and\n"
        "                     the batches (default 0); same seed, same model\n"
        "%s"
        CSV_HEADER_HELP
        "  --json             the summary as one JSON object, also with\n"
        "                     --quiet (which then silences only the\n"
        "                     progress); keys: model, data, rows, columns,\n"
        "                     header, training_rows, validation_rows,\n"
        "                     coupling_layers, hidden, parameters, clamp,\n"
        "                     lr, batch, clip_norm, average, seed, steps,\n"
        "                     max_steps, stop, refused_steps, best_step,\n"
        "                     evaluated_on, best_nll, best_nll_original\n"
        "  -q, --quiet        no progress bar and no summary\n"
        "  -h, --help         this text\n"
        "\n"
        "Progress goes to stderr, the summary to stdout.  The NLL in original\n"
        "units is the standardised NLL plus the sum of log(sd) of the "
        "columns.\n"
        "\n"
        "Example:\n"
        "  nvpflow fit measurements.csv -o model.nvp --steps 10000\n",
        DEFAULT_LAYERS_2D, DEFAULT_LAYERS, DEFAULT_HIDDEN, DEFAULT_HIDDEN,
        DEFAULT_STEPS, DEFAULT_BATCH, DEFAULT_LR, DEFAULT_VAL_FRAC,
        DEFAULT_EVAL_EVERY, DEFAULT_PATIENCE, DEFAULT_CLAMP,
        MODEL_THREADS_HELP);
}

typedef struct fit_config {
    const char *data_path;
    const char *out_path;
    size_t layers; /* 0: the default for the dimension */
    size_t hidden[NVP_MAX_HIDDEN_LAYERS];
    size_t n_hidden;
    size_t steps, batch, eval_every, patience, threads;
    double lr, val_frac, clamp, average, clip_norm;
    uint64_t seed;
    int quiet;
    int json;
    csv_header header;
} fit_config;

enum {
    O_OUTPUT = 'o', O_QUIET = 'q', O_HELP = 'h',
    O_LAYERS = ARG_LONG_ONLY, O_HIDDEN, O_STEPS, O_BATCH, O_LR, O_VAL_FRAC,
    O_EVAL_EVERY, O_PATIENCE, O_CLAMP, O_AVERAGE, O_CLIP_NORM, O_SEED,
    O_THREADS, O_JSON, O_HEADER, O_NO_HEADER
};

static const char SHORT_OPTS[] = "o:qh";
static const struct option LONG_OPTS[] = {
    {"output", required_argument, NULL, O_OUTPUT},
    {"layers", required_argument, NULL, O_LAYERS},
    {"hidden", required_argument, NULL, O_HIDDEN},
    {"steps", required_argument, NULL, O_STEPS},
    {"batch", required_argument, NULL, O_BATCH},
    {"lr", required_argument, NULL, O_LR},
    {"val-frac", required_argument, NULL, O_VAL_FRAC},
    {"eval-every", required_argument, NULL, O_EVAL_EVERY},
    {"patience", required_argument, NULL, O_PATIENCE},
    {"clamp", required_argument, NULL, O_CLAMP},
    {"average", required_argument, NULL, O_AVERAGE},
    {"clip-norm", required_argument, NULL, O_CLIP_NORM},
    {"seed", required_argument, NULL, O_SEED},
    {"threads", required_argument, NULL, O_THREADS},
    {"header", no_argument, NULL, O_HEADER},
    {"no-header", no_argument, NULL, O_NO_HEADER},
    {"json", no_argument, NULL, O_JSON},
    {"quiet", no_argument, NULL, O_QUIET},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

/* Returns -1 to go on, else the exit status (help or usage error). */
static int parse(int argc, char **argv, fit_config *c)
{
    memset(c, 0, sizeof *c);
    c->hidden[0] = c->hidden[1] = DEFAULT_HIDDEN;
    c->n_hidden = 2;
    c->steps = DEFAULT_STEPS;
    c->batch = DEFAULT_BATCH;
    c->eval_every = DEFAULT_EVAL_EVERY;
    c->patience = DEFAULT_PATIENCE;
    c->lr = DEFAULT_LR;
    c->val_frac = DEFAULT_VAL_FRAC;
    c->clamp = DEFAULT_CLAMP;
    arg_parser p;
    args_init(&p, CMD, argc, argv, SHORT_OPTS, LONG_OPTS);
    const char *v;
    int id, bad = 0;
    while (!bad && (id = args_next(&p, &v)) != ARG_END) {
        const char *o = p.opt;
        switch (id) {
        case ARG_ERROR: return CLI_USAGE;
        case ARG_POSITIONAL:
            if (c->data_path)
                return cli_usage_error(CMD, "unexpected argument '%s' (one "
                                       "data file only)", v);
            c->data_path = v;
            break;
        case O_HELP: cmd_fit_help(stdout); return CLI_OK;
        case O_OUTPUT: c->out_path = v; break;
        case O_QUIET: c->quiet = 1; break;
        case O_JSON: c->json = 1; break;
        case O_HEADER: c->header = CSV_HEADER_YES; break;
        case O_NO_HEADER: c->header = CSV_HEADER_NO; break;
        case O_LAYERS:
            bad = args_size(CMD, o, v, 1, NVP_MAX_LAYERS, &c->layers);
            break;
        case O_HIDDEN:
            bad = args_list(CMD, o, v, NVP_MAX_WIDTH, c->hidden,
                            NVP_MAX_HIDDEN_LAYERS, &c->n_hidden);
            break;
        case O_STEPS:
            bad = args_size(CMD, o, v, 0, (size_t)1 << 40, &c->steps);
            break;
        case O_BATCH:
            bad = args_size(CMD, o, v, 1, (size_t)1 << 24, &c->batch);
            break;
        case O_EVAL_EVERY:
            bad = args_size(CMD, o, v, 1, (size_t)1 << 40, &c->eval_every);
            break;
        case O_PATIENCE:
            bad = args_size(CMD, o, v, 0, (size_t)1 << 40, &c->patience);
            break;
        case O_THREADS:
            bad = args_size(CMD, o, v, 0, NVP_MAX_THREADS, &c->threads);
            break;
        case O_LR: bad = args_double(CMD, o, v, 0, 1, 1, &c->lr); break;
        case O_VAL_FRAC:
            bad = args_double(CMD, o, v, 0, 0, 0.9, &c->val_frac);
            break;
        case O_CLAMP:
            bad = args_double(CMD, o, v, 0, 0, 100, &c->clamp);
            break;
        case O_AVERAGE:
            bad = args_double(CMD, o, v, 0, 0, 1, &c->average);
            /* The library takes the decay as a float in (0, 1). */
            if (!bad && c->average != 0 &&
                !((float)c->average > 0.0f && (float)c->average < 1.0f))
                bad = cli_usage_error(CMD, "--average: '%s' is not 0 (off) "
                                      "or a decay strictly between 0 and 1 "
                                      "in single precision",
                                      v) != 0;
            break;
        case O_CLIP_NORM:
            bad = args_double(CMD, o, v, 0, 0, 1e30, &c->clip_norm);
            /* The library takes the limit as a float: 0 or positive. */
            if (!bad && c->clip_norm != 0 && !((float)c->clip_norm > 0.0f))
                bad = cli_usage_error(CMD, "--clip-norm: '%s' is not 0 (off) "
                                      "or a positive number in single "
                                      "precision",
                                      v) != 0;
            break;
        case O_SEED: bad = args_u64(CMD, o, v, &c->seed); break;
        default: break;
        }
    }
    if (bad)
        return CLI_USAGE;
    if (!c->data_path)
        return cli_usage_error(CMD, "missing the data file (a CSV)");
    if (!c->out_path)
        return cli_usage_error(CMD, "missing -o MODEL.nvp (where to save)");
    /* sample and score take "-" for standard output; a model is binary and
     * the summary goes to standard output, so fit wants a file name. */
    if (!*c->out_path)
        return cli_usage_error(CMD, "-o: the path is empty");
    if (strcmp(c->out_path, "-") == 0)
        return cli_usage_error(CMD, "-o -: a model goes to a file (name "
                               "one; /dev/stdout also works)");
    return -1;
}

/* Ctrl-C: the first stops training (the best model is still saved); the
 * handler then resets itself, so a second one ends the program. */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void format_widths(char *buf, size_t cap, const size_t *w, size_t n)
{
    num_format_list(buf, cap, w, n);
    if (n == 0)
        snprintf(buf, cap, "none (affine)");
}

/* Fisher-Yates shuffle of n rows of dim floats (tmp: dim floats). */
static int shuffle_rows(nvp_rng *rng, float *x, size_t n, size_t dim,
                        float *tmp)
{
    for (size_t i = n; i > 1; i--) {
        uint64_t j;
        int rc = nvp_rng_index(rng, 1, i, &j);
        if (rc != NVP_OK)
            return rc;
        if (j != i - 1) {
            memcpy(tmp, x + (i - 1) * dim, dim * sizeof *x);
            memcpy(x + (i - 1) * dim, x + j * dim, dim * sizeof *x);
            memcpy(x + j * dim, tmp, dim * sizeof *x);
        }
    }
    return NVP_OK;
}

/* A column that never changes in the training rows has no density to
 * learn.  Returns its index + 1, or 0 when every column varies. */
static size_t constant_column(const float *x, size_t n, size_t dim)
{
    for (size_t j = 0; j < dim; j++) {
        size_t i = 1;
        while (i < n && x[i * dim + j] == x[j])
            i++;
        if (i == n)
            return j + 1;
    }
    return 0;
}

/* Mean NLL of n standardised rows (INFINITY when any density is not
 * finite); lp holds n floats of scratch.  Returns an NVP status. */
static int mean_nll(const nvp_chain *chain, size_t n, const float *z,
                    float *lp, double *nll)
{
    int rc = nvp_chain_log_prob(chain, n, z, lp);
    if (rc != NVP_OK)
        return rc;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum -= lp[i];
    *nll = isfinite(sum) ? sum / (double)n : INFINITY;
    return NVP_OK;
}

typedef struct fit_state {
    fit_config cfg;
    csv_table data;
    nvp_rng *rng;
    nvp_scaler *scaler;
    nvp_chain *chain;
    nvp_adam *opt;
    float *best_params;
    float *cur_params; /* with --average: the iterate, while it is scored */
    float *avg_params; /* with --average: the average being scored */
    float *lp;
    float *tmp_row;
} fit_state;

static void fit_free(fit_state *s)
{
    free(s->tmp_row);
    free(s->lp);
    free(s->best_params);
    free(s->cur_params);
    free(s->avg_params);
    nvp_adam_free(s->opt);
    nvp_chain_free(s->chain);
    nvp_scaler_free(s->scaler);
    nvp_rng_free(s->rng);
    csv_free(&s->data);
}

/* The training outcome for the summary. */
typedef struct fit_result {
    size_t steps_done;
    size_t best_step;
    double best_nll;
    size_t refused;     /* non-finite steps skipped */
    int early;          /* early stopping ended the run */
    const char *reason; /* why training ended, for people */
    const char *stop;   /* the same for --json: "max_steps",
                           "no_improvement", "interrupted", "not_finite" */
} fit_result;

/* Prepares data, scaler, chain and optimizer.  Returns an exit status
 * (CLI_OK to go on). */
static int setup(fit_state *s, size_t *n_train, size_t *n_val)
{
    const fit_config *c = &s->cfg;
    if (csv_read(CMD, c->data_path, 0, c->header, &s->data) != 0)
        return CLI_ERR;
    const size_t n = s->data.rows, dim = s->data.cols;
    const char *name =
        strcmp(c->data_path, "-") == 0 ? "<stdin>" : c->data_path;
    if (dim < 2)
        return cli_error(CMD,
                         "%s has 1 column; a Real-NVP flow needs at least 2 "
                         "(each layer transforms some columns conditioned on "
                         "the others)",
                         name);
    if (dim > NVP_MAX_DIM)
        return cli_error(CMD, "%s has %zu columns; at most %d are supported",
                         name, dim, NVP_MAX_DIM);
    size_t nv = 0;
    if (c->val_frac > 0) {
        if (n < 2)
            return cli_error(CMD, "%s has 1 row: too few to hold out a "
                             "validation part (use --val-frac 0)",
                             name);
        double want = floor(c->val_frac * (double)n + 0.5);
        nv = want < 1 ? 1 : want > (double)(n - 1) ? n - 1 : (size_t)want;
    }
    *n_val = nv;
    *n_train = n - nv;
    if (*n_train < 2)
        return cli_error(CMD, "%s has %zu rows: too few to train on",
                         name, n);

    int rc = nvp_rng_create(&s->rng, c->seed, NULL);
    if (rc != NVP_OK)
        return cli_lib_error(CMD, "cannot create the random generator", rc,
                             nvp_errmsg());
    s->tmp_row = malloc(dim * sizeof *s->tmp_row);
    s->lp = malloc((nv ? nv : n) * sizeof *s->lp);
    if (!s->tmp_row || !s->lp)
        return cli_error(CMD, "out of memory");
    if (nv > 0 && (rc = shuffle_rows(s->rng, s->data.data, n, dim,
                                     s->tmp_row)) != NVP_OK)
        return cli_lib_error(CMD, "shuffling", rc, nvp_errmsg());

    const size_t cc = constant_column(s->data.data, *n_train, dim);
    if (cc)
        return cli_error(CMD,
                         "column %zu is constant in the training rows "
                         "(always %.9g): it has no density to learn; remove "
                         "it from the file",
                         cc, (double)s->data.data[cc - 1]);

    if ((rc = nvp_scaler_create(&s->scaler, dim, NULL)) != NVP_OK)
        return cli_lib_error(CMD, "cannot create the standardiser", rc,
                             nvp_errmsg());
    if ((rc = nvp_scaler_fit(s->scaler, *n_train, s->data.data)) != NVP_OK ||
        (rc = nvp_scaler_transform(s->scaler, n, s->data.data,
                                   s->data.data)) != NVP_OK)
        return cli_lib_error(CMD, "standardising the data", rc,
                             nvp_scaler_errmsg(s->scaler));

    const size_t layers =
        c->layers ? c->layers : dim == 2 ? DEFAULT_LAYERS_2D : DEFAULT_LAYERS;
    rc = nvp_chain_create_alternating(&s->chain, dim, layers, c->n_hidden,
                                      c->hidden, NVP_INIT_ZERO_OUTPUT, s->rng,
                                      NULL);
    if (rc != NVP_OK)
        return cli_lib_error(CMD, "cannot create the model", rc,
                             nvp_errmsg());
    if (c->clamp > 0 &&
        (rc = nvp_chain_set_log_scale_clamp(s->chain, (float)c->clamp)) !=
            NVP_OK)
        return cli_lib_error(CMD, "cannot set --clamp", rc,
                             nvp_chain_errmsg(s->chain));
    if (model_set_threads(CMD, s->chain, c->threads) != 0)
        return CLI_ERR;
    const size_t np = nvp_chain_num_params(s->chain);
    if ((rc = nvp_adam_create(&s->opt, np, NULL)) != NVP_OK)
        return cli_lib_error(CMD, "cannot create the optimizer", rc,
                             nvp_errmsg());
    if ((rc = nvp_adam_set_lr(s->opt, (float)c->lr)) != NVP_OK)
        return cli_lib_error(CMD, "cannot set --lr", rc,
                             nvp_adam_errmsg(s->opt));
    if ((rc = nvp_adam_set_clip_norm(s->opt, (float)c->clip_norm)) != NVP_OK)
        return cli_lib_error(CMD, "cannot set --clip-norm", rc,
                             nvp_adam_errmsg(s->opt));
    s->best_params = malloc(np * sizeof *s->best_params);
    if (!s->best_params)
        return cli_error(CMD, "out of memory for %zu parameters", np);
    if (c->average > 0) {
        s->cur_params = malloc(np * sizeof *s->cur_params);
        s->avg_params = malloc(np * sizeof *s->avg_params);
        if (!s->cur_params || !s->avg_params)
            return cli_error(CMD, "out of memory for %zu parameters", np);
        if ((rc = nvp_adam_set_average(s->opt, (float)c->average, np, nvp_chain_params(s->chain))) !=
            NVP_OK)
            return cli_lib_error(CMD, "cannot set --average", rc,
                                 nvp_adam_errmsg(s->opt));
    }
    return CLI_OK;
}

/* A copy of m that outlives the next library call. */
static const char *kept_msg(const char *m)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s", m);
    return buf;
}

/* The validation NLL of what the run would save: the parameters, or with
 * --average their running average, swapped into the chain for the
 * evaluation (the iterate goes back afterwards).  When *nll beats best,
 * the scored parameters are copied to s->best_params.  On failure *msg is
 * the failing handle's message, copied (the library's message buffer
 * only lasts until the next call, and the iterate is restored after). */
static int score(fit_state *s, size_t n_eval, const float *eval_x,
                 double best, double *nll, const char **msg)
{
    nvp_chain *chain = s->chain;
    const size_t np = nvp_chain_num_params(chain);
    const float *scored = nvp_chain_params(chain);
    int rc;
    *msg = "";
    if (s->cur_params) {
        if ((rc = nvp_chain_get_params(chain, np, s->cur_params)) != NVP_OK) {
            *msg = kept_msg(nvp_chain_errmsg(chain));
            return rc;
        }
        if ((rc = nvp_adam_get_average(s->opt, np, s->avg_params)) !=
            NVP_OK) {
            *msg = kept_msg(nvp_adam_errmsg(s->opt));
            return rc;
        }
        scored = s->avg_params;
        rc = nvp_chain_set_params(chain, np, s->avg_params);
        if (rc == NVP_ENONFINITE) { /* parameters gone non-finite */
            *nll = INFINITY;
            return NVP_OK;
        }
        if (rc != NVP_OK) {
            *msg = kept_msg(nvp_chain_errmsg(chain));
            return rc;
        }
    }
    rc = mean_nll(chain, n_eval, eval_x, s->lp, nll);
    if (rc == NVP_OK && *nll < best)
        memcpy(s->best_params, scored, np * sizeof *s->best_params);
    if (rc != NVP_OK)
        *msg = kept_msg(nvp_chain_errmsg(chain));
    if (s->cur_params) {
        const int back = nvp_chain_set_params(chain, np, s->cur_params);
        if (rc == NVP_OK && back != NVP_OK) {
            rc = back;
            *msg = kept_msg(nvp_chain_errmsg(chain));
        }
    }
    return rc;
}

/* The training loop.  Returns an exit status; *r describes the run. */
static int train(fit_state *s, size_t n_train, size_t n_val, fit_result *r)
{
    const fit_config *c = &s->cfg;
    const size_t dim = s->data.cols;
    const float *train_x = s->data.data;
    /* Without a validation part, the training rows stand in. */
    const float *eval_x = n_val ? s->data.data + n_train * dim : train_x;
    const size_t n_eval = n_val ? n_val : n_train;
    const size_t np = nvp_chain_num_params(s->chain);

    memset(r, 0, sizeof *r);
    r->reason = "reached --steps";
    r->stop = "max_steps";
    int rc = mean_nll(s->chain, n_eval, eval_x, s->lp, &r->best_nll);
    if (rc == NVP_OK)
        rc = nvp_chain_get_params(s->chain, np, s->best_params);
    if (rc != NVP_OK)
        return cli_lib_error(CMD, "evaluating the initial model", rc,
                             nvp_chain_errmsg(s->chain));

    progress bar;
    progress_start(&bar, c->steps, !c->quiet);
    progress_update(&bar, 0, NAN, r->best_nll, r->best_nll, 1);
    double ema = NAN;
    size_t since_best = 0, bad_run = 0;
    for (size_t step = 1; step <= c->steps; step++) {
        if (interrupted) {
            r->reason = "interrupted (Ctrl-C)";
            r->stop = "interrupted";
            break;
        }
        float loss = NAN;
        rc = nvp_chain_train_step(s->chain, s->opt, s->rng, n_train, train_x,
                                  c->batch, &loss);
        r->steps_done = step;
        if (rc == NVP_ENONFINITE) {
            r->refused++;
            if (++bad_run >= MAX_BAD_STEPS) {
                r->reason = "stopped: the loss is no longer finite (try a "
                            "smaller --lr or --clamp)";
                r->stop = "not_finite";
                break;
            }
        } else if (rc != NVP_OK) {
            progress_break(&bar);
            return cli_lib_error(CMD, "training step failed", rc,
                                 nvp_chain_errmsg(s->chain));
        } else {
            bad_run = 0;
            /* A running mean at first, then an exponential average. */
            const double a = 1.0 / (double)step > 0.02 ? 1.0 / (double)step
                                                       : 0.02;
            ema = isnan(ema) ? loss : (1 - a) * ema + a * loss;
        }
        const int eval = step % c->eval_every == 0 || step == c->steps;
        if (!eval) {
            progress_update(&bar, step, ema, NAN, r->best_nll, 0);
            continue;
        }
        double nll;
        const char *msg;
        if ((rc = score(s, n_eval, eval_x, r->best_nll, &nll, &msg)) !=
            NVP_OK) {
            progress_break(&bar);
            return cli_lib_error(CMD, "evaluating", rc, msg);
        }
        if (nll < r->best_nll) {
            r->best_nll = nll;
            r->best_step = step;
            since_best = 0;
        } else {
            since_best++;
        }
        progress_update(&bar, step, ema, nll, r->best_nll, 1);
        if (c->patience > 0 && since_best >= c->patience) {
            r->reason = "stopped early: no improvement";
            r->stop = "no_improvement";
            r->early = 1;
            break;
        }
    }
    progress_break(&bar);
    rc = nvp_chain_set_params(s->chain, np, s->best_params);
    if (rc != NVP_OK)
        return cli_lib_error(CMD, "restoring the best parameters", rc,
                             nvp_chain_errmsg(s->chain));
    return CLI_OK;
}

/* The summary for people. */
static void summary_text(FILE *fp, const fit_state *s, const fit_result *r,
                         size_t n_val)
{
    const fit_config *c = &s->cfg;
    char widths[256];
    format_widths(widths, sizeof widths, c->hidden, c->n_hidden);
    fprintf(fp, "steps:     %zu of %zu, %s", r->steps_done, c->steps,
            r->reason);
    if (r->early)
        fprintf(fp, " in %zu evaluations", c->patience);
    fprintf(fp,
            "\nmodel:     %zu layers, hidden %s, %zu parameters, clamp "
            "%g\n",
            nvp_chain_num_layers(s->chain), widths,
            nvp_chain_num_params(s->chain), c->clamp);
    if (c->clip_norm > 0)
        fprintf(fp, "clipping:  gradient norm limited to %g\n",
                (double)(float)c->clip_norm);
    fprintf(fp,
            "best NLL:  %.6g nats/row on the %s rows (standardised), "
            "%.6g in\n           original units, at step %zu",
            r->best_nll, n_val ? "validation" : "training",
            r->best_nll + nvp_scaler_log_det(s->scaler), r->best_step);
    if (c->average > 0)
        fprintf(fp, ", of the parameter average (decay %g)", c->average);
    fprintf(fp, "\nsaved:     %s\n", c->out_path);
}

/* The summary for programs (--json).  The keys are documented in the man
 * page and stay; numbers that are not finite are null. */
static void summary_json(FILE *fp, const fit_state *s, const fit_result *r,
                         size_t n_train, size_t n_val)
{
    const fit_config *c = &s->cfg;
    json_out j;
    json_begin(&j, fp);
    json_string(&j, "model", c->out_path);
    json_string(&j, "data", c->data_path);
    json_uint(&j, "rows", s->data.rows);
    json_uint(&j, "columns", s->data.cols);
    json_bool(&j, "header", s->data.has_header);
    json_uint(&j, "training_rows", n_train);
    json_uint(&j, "validation_rows", n_val);
    json_uint(&j, "coupling_layers", nvp_chain_num_layers(s->chain));
    json_array_line(&j, "hidden");
    for (size_t i = 0; i < c->n_hidden; i++)
        json_uint(&j, NULL, c->hidden[i]);
    json_close(&j);
    json_uint(&j, "parameters", nvp_chain_num_params(s->chain));
    json_double(&j, "clamp", c->clamp);
    json_double(&j, "lr", c->lr);
    json_uint(&j, "batch", c->batch);
    json_double(&j, "clip_norm", (double)(float)c->clip_norm);
    json_double(&j, "average", c->average);
    json_uint(&j, "seed", c->seed);
    json_uint(&j, "steps", r->steps_done);
    json_uint(&j, "max_steps", c->steps);
    json_string(&j, "stop", r->stop);
    json_uint(&j, "refused_steps", r->refused);
    json_uint(&j, "best_step", r->best_step);
    json_string(&j, "evaluated_on", n_val ? "validation" : "training");
    json_double(&j, "best_nll", r->best_nll);
    json_double(&j, "best_nll_original",
                r->best_nll + nvp_scaler_log_det(s->scaler));
    json_end(&j);
}

/* Whether path names the file standard output is on. */
static int saved_to_stdout(const char *path)
{
    struct stat a, b;
    return stat(path, &a) == 0 && fstat(1, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

int cmd_fit(int argc, char **argv)
{
    fit_state s;
    memset(&s, 0, sizeof s);
    int status = parse(argc, argv, &s.cfg);
    if (status >= 0)
        return status;
    const fit_config *c = &s.cfg;
    char err[OUT_ERR_MAX];
    if (out_check_writable(c->out_path, err, sizeof err) != 0)
        return cli_error(CMD, "%s", err);
    size_t n_train = 0, n_val = 0;
    status = setup(&s, &n_train, &n_val);
    if (status != CLI_OK)
        goto done;

    const size_t dim = s.data.cols;
    char widths[256];
    format_widths(widths, sizeof widths, c->hidden, c->n_hidden);
    if (!c->quiet)
        fprintf(stderr,
                "nvpflow fit: %zu rows x %zu columns%s: %zu for training, "
                "%zu for validation\n"
                "nvpflow fit: %zu layers, hidden %s, %zu parameters\n",
                s.data.rows, dim, s.data.has_header ? " after the header" : "",
                n_train, n_val, nvp_chain_num_layers(s.chain), widths,
                nvp_chain_num_params(s.chain));

    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    interrupted = 0;
    const int have_handler = sigaction(SIGINT, &sa, &old_sa) == 0;
    fit_result r;
    status = train(&s, n_train, n_val, &r);
    if (have_handler)
        sigaction(SIGINT, &old_sa, NULL);
    if (status != CLI_OK)
        goto done;

    int rc = nvp_chain_save_file(s.chain, s.scaler, c->out_path);
    if (rc != NVP_OK) {
        char what[320];
        snprintf(what, sizeof what, "cannot save '%s'", c->out_path);
        status = cli_lib_error(CMD, what, rc, nvp_chain_errmsg(s.chain));
        goto done;
    }
    if (r.refused > 0)
        cli_warn(CMD, "%zu step%s refused because the loss or gradient was "
                 "not finite", r.refused, r.refused == 1 ? " was" : "s were");
    if (!c->quiet || c->json) {
        /* With the model sent to standard output (-o /dev/stdout), the
         * summary must not follow it there. */
        FILE *sum = saved_to_stdout(c->out_path) ? stderr : stdout;
        if (c->json)
            summary_json(sum, &s, &r, n_train, n_val);
        else
            summary_text(sum, &s, &r, n_val);
        if (fflush(sum) != 0 || ferror(sum)) {
            cli_error(CMD, "error writing the summary (the model was "
                      "saved)");
            status = CLI_ERR;
        }
    }
done:
    fit_free(&s);
    return status;
}
