/* SPDX-License-Identifier: MIT */
/* cmd_fit.c - nvpflow fit: train a flow on a CSV file and save it.
 *
 * Steps: read the CSV; shuffle it and hold out a validation part (or read
 * the validation rows from --val FILE); with --dequantize add uniform
 * noise to the whole-number columns; fit the standardiser on the training
 * part and standardise everything; choose the settings the command line
 * left open from the rows and columns (fit_arch.c); build the chain and
 * set its first layer from the training rows, so that the untrained model
 * is already the Gaussian fit; train with Adam, evaluating the validation
 * NLL every E steps and keeping the best parameters; stop early after P
 * evaluations without improvement (or on Ctrl-C); save the best model
 * with its standardiser. */
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "columns.h"
#include "csv.h"
#include "fit.h"
#include "json.h"
#include "model.h"
#include "numparse.h"
#include "nvpflow.h"
#include "outfile.h"
#include "progress.h"

static const char CMD[] = "fit";

#define DEFAULT_VAL_FRAC 0.2
/* What a plateau multiplies the learning rate by (--lr-drops). */
#define LR_DROP_FACTOR FIT_LR_DROP_FACTOR
/* Consecutive refused (non-finite) steps before giving up. */
#define MAX_BAD_STEPS 50
/* How many standard deviations from a column's mean the model's samples
 * must be able to reach without leaving float's range: a Gaussian puts
 * about 1e-15 of its mass beyond 8 sd. */
#define REPRESENTABLE_SDS 8.0
/* Mixed into --init-seed, so that the weights' stream differs from the
 * split's when both seeds are the same number; and into --seed for the
 * batches of each --budget trial. */
#define INIT_SEED_MIX 0x9e3779b97f4a7c15ull
#define BATCH_SEED_MIX 0xbf58476d1ce4e5b9ull

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
        "validation part (or --val names a file of validation rows).  The\n"
        "model is a stack of affine coupling layers under a linear layer set\n"
        "to whiten the training rows, so that before training it is the\n"
        "full-covariance Gaussian fit of the data, and the best model is\n"
        "never worse than that fit on the validation rows (a --refit on all\n"
        "rows, the default below 200 training rows, is not checked on\n"
        "held-out rows).  Every E steps the validation NLL (mean negative\n"
        "log-likelihood, nats per row, of the standardised data) is\n"
        "measured; after P evaluations without\n"
        "improvement training goes back to the best parameters with a\n"
        "smaller learning rate (--lr-drops times), then stops; the best\n"
        "parameters are saved.  Settings not given are chosen from the\n"
        "number of rows and columns (the summary shows them).  Ctrl-C stops\n"
        "training early and still saves the best model so far.\n"
        "\n"
        "Options:\n"
        "  -o, --output FILE  where to save the model (required)\n"
        "  --val FILE         validation rows from FILE (same columns); every\n"
        "                     row of DATA.csv is then a training row\n"
        "  --val-frac F       share of rows held out for validation, 0 to "
        "0.9\n"
        "                     (default %g; 0 evaluates on the training rows)\n"
        "Model (default: from the number of rows and columns):\n"
        "  --layers K         coupling layers\n"
        "  --hidden W1,W2,..  hidden layer widths of each coupling network\n"
        "  --mask M           the columns each coupling transforms: random\n"
        "                     (a seeded random half, then the other half;\n"
        "                     the default), parity (every other column,\n"
        "                     then the others) or half (the second half,\n"
        "                     then the first)\n"
        "  --norm N           the layer next to the data, set from the\n"
        "                     training rows: linear (whitening; the default),\n"
        "                     actnorm (per-column scale and shift) or none\n"
        "  --base B           the flow's base distribution: normal or\n"
        "                     mixture[:K], a mixture of K full-covariance\n"
        "                     Gaussians fitted to the training rows, so\n"
        "                     that the untrained model is that mixture (K\n"
        "                     from 1 to 10 chosen on the validation rows\n"
        "                     when not given, by BIC without them; at\n"
        "                     most 1024 columns).  Default: with at most\n"
        "                     16 columns and validation rows, both are\n"
        "                     trained and the mixture kept only when it\n"
        "                     is clearly better on the validation rows;\n"
        "                     else normal\n"
        "  --clamp C          bound on each layer's log-scale, which keeps\n"
        "                     training stable and the densities of rows far\n"
        "                     from the data finite; 0 = off\n",
        DEFAULT_VAL_FRAC);
    fprintf(fp,
        "Training (default: from the number of rows and columns):\n"
        "  --steps N          maximum training steps\n"
        "  --batch B          rows per step, drawn with replacement\n"
        "  --lr X             Adam learning rate\n"
        "  --weight-decay W   each step shrinks the coupling parameters by\n"
        "                     the factor 1 - lr * W (decoupled weight decay,\n"
        "                     as AdamW), pulling the model towards the\n"
        "                     untrained one; 0 = off\n"
        "  --eval-every E     steps between evaluations\n"
        "  --patience P       evaluations without improvement before the\n"
        "                     learning rate drops or training stops; 0 =\n"
        "                     never stop early\n"
        "  --lr-drops N       times a plateau lowers the learning rate (by\n"
        "                     the factor %g, from the best parameters) before\n"
        "                     training stops\n"
        "  --average D        evaluate and save a running average of the\n"
        "                     parameters (an exponential moving average with\n"
        "                     decay D, 0 < D < 1) instead of the last ones;\n"
        "                     0 = off\n"
        "  --noise S          add N(0, S^2) noise (S in standard deviations)\n"
        "                     to every column of the training rows, drawn\n"
        "                     again for every pass over them: a smoother\n"
        "                     model; 0 = off (the default)\n"
        "  --clip-norm C      scale a step's gradient down to norm C when\n"
        "                     its norm is larger; 0 = off (default)\n"
        "  --dequantize       columns of DATA.csv that hold only whole\n"
        "                     numbers get uniform noise in [0, 1) added: the\n"
        "                     training rows a fresh draw for every pass over\n"
        "                     them, the validation rows one draw.  The model\n"
        "                     is then the density of x + u: score such rows\n"
        "                     at x + 0.5\n"
        "  --seed S           random seed for the split, the noise and the\n"
        "                     batches (default 0); same seeds, same model\n"
        "  --init-seed S      random seed for the masks and initial weights\n"
        "                     (default: the --seed value); it does not\n"
        "                     change the split\n"
        "  --budget SECONDS   search the settings on the validation rows\n"
        "                     within this time: the defaults, then the\n"
        "                     noise, widths, clamp, layers, weight decay and\n"
        "                     learning rate varied one or more at a time\n"
        "                     from the best so far (settings given are\n"
        "                     kept); each trial is reported and the best\n"
        "                     one saved\n"
        "  --refit WHEN       once the validation rows have chosen the\n"
        "                     steps (and with --budget the settings), train\n"
        "                     the model again from its start on the\n"
        "                     training and validation rows together, with\n"
        "                     the same steps and learning rates, and save\n"
        "                     that: auto (the default: fewer than %d\n"
        "                     training rows, without --dequantize), yes or\n"
        "                     no\n"
        "  --strict           exit with status 1, saving nothing, when\n"
        "                     training never improved on the untrained model\n"
        "                     (without it that is a warning)\n"
        "%s"
        CSV_HEADER_HELP
        COLUMNS_HELP
        "  --given LIST       model the density of the other columns given\n"
        "                     these (header names or 1-based positions,\n"
        "                     comma-separated, after --columns/--drop): a\n"
        "                     conditional model p(y | c); at least 2 columns\n"
        "                     must be left to model; not with --budget\n",
        LR_DROP_FACTOR, FIT_SMALL_ROWS, MODEL_THREADS_HELP MODEL_PRECISION_HELP);
    fprintf(fp,
        "  --json             the summary as one JSON object, also with\n"
        "                     --quiet (which then silences only the\n"
        "                     progress); keys: see the man page\n"
        "  -q, --quiet        no progress bar and no summary\n"
        "  -h, --help         this text\n"
        "\n"
        "Progress goes to stderr, the summary to stdout.  The NLL in original\n"
        "units is the standardised NLL plus the sum of log(sd) of the "
        "columns.\n"
        "\n"
        "Example:\n"
        "  nvpflow fit measurements.csv -o model.nvp\n");
}

enum {
    O_OUTPUT = 'o', O_QUIET = 'q', O_HELP = 'h',
    O_LAYERS = ARG_LONG_ONLY, O_HIDDEN, O_STEPS, O_BATCH, O_LR, O_VAL_FRAC,
    O_EVAL_EVERY, O_PATIENCE, O_CLAMP, O_AVERAGE, O_CLIP_NORM, O_SEED,
    O_THREADS, O_JSON, O_HEADER, O_NO_HEADER, O_VAL, O_MASK, O_NORM,
    O_WEIGHT_DECAY, O_DEQUANTIZE, O_INIT_SEED, O_STRICT, O_LR_DROPS,
    O_NOISE, O_BUDGET, O_COLUMNS, O_DROP, O_GIVEN, O_REFIT, O_PRECISION, O_BASE
};

static const char SHORT_OPTS[] = "o:qh";
static const struct option LONG_OPTS[] = {
    {"output", required_argument, NULL, O_OUTPUT},
    {"val", required_argument, NULL, O_VAL},
    {"layers", required_argument, NULL, O_LAYERS},
    {"hidden", required_argument, NULL, O_HIDDEN},
    {"mask", required_argument, NULL, O_MASK},
    {"norm", required_argument, NULL, O_NORM},
    {"steps", required_argument, NULL, O_STEPS},
    {"batch", required_argument, NULL, O_BATCH},
    {"lr", required_argument, NULL, O_LR},
    {"weight-decay", required_argument, NULL, O_WEIGHT_DECAY},
    {"val-frac", required_argument, NULL, O_VAL_FRAC},
    {"eval-every", required_argument, NULL, O_EVAL_EVERY},
    {"patience", required_argument, NULL, O_PATIENCE},
    {"lr-drops", required_argument, NULL, O_LR_DROPS},
    {"clamp", required_argument, NULL, O_CLAMP},
    {"average", required_argument, NULL, O_AVERAGE},
    {"clip-norm", required_argument, NULL, O_CLIP_NORM},
    {"dequantize", no_argument, NULL, O_DEQUANTIZE},
    {"noise", required_argument, NULL, O_NOISE},
    {"seed", required_argument, NULL, O_SEED},
    {"init-seed", required_argument, NULL, O_INIT_SEED},
    {"strict", no_argument, NULL, O_STRICT},
    {"budget", required_argument, NULL, O_BUDGET},
    {"refit", required_argument, NULL, O_REFIT},
    {"base", required_argument, NULL, O_BASE},
    {"threads", required_argument, NULL, O_THREADS},
    {"precision", required_argument, NULL, O_PRECISION},
    {"header", no_argument, NULL, O_HEADER},
    {"no-header", no_argument, NULL, O_NO_HEADER},
    {"columns", required_argument, NULL, O_COLUMNS},
    {"drop", required_argument, NULL, O_DROP},
    {"given", required_argument, NULL, O_GIVEN},
    {"json", no_argument, NULL, O_JSON},
    {"quiet", no_argument, NULL, O_QUIET},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

/* One of names[0..n) into *out, else a usage error. */
static int parse_choice(const char *o, const char *v,
                        const char *const *names, int n, int *out)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0) {
            *out = i;
            return 0;
        }
    char list[128] = "";
    for (int i = 0; i < n; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, names[i], sizeof list - strlen(list) - 1);
    }
    cli_usage_error(CMD, "%s: '%s' is not one of %s", o, v, list);
    return -1;
}

/* --base normal, mixture or mixture:K (K from 1 to 64).  Returns 0 or
 * the usage error's status. */
static int parse_base(const char *o, const char *v, fit_config *c)
{
    c->given |= FIT_GIVEN_BASE;
    c->mix_k = 0;
    if (strcmp(v, "normal") == 0) {
        c->base = FIT_BASE_NORMAL;
        return 0;
    }
    c->base = FIT_BASE_MIXTURE;
    if (strcmp(v, "mixture") == 0)
        return 0;
    if (strncmp(v, "mixture:", 8) == 0)
        return args_size(CMD, o, v + 8, 1, 64, &c->mix_k);
    return cli_usage_error(CMD, "%s: '%s' is not one of normal, mixture, "
                           "mixture:K", o, v);
}

/* Returns -1 to go on, else the exit status (help or usage error). */
static int parse(int argc, char **argv, fit_config *c)
{
    static const char *const masks[] = {"random", "parity", "half"};
    static const char *const norms[] = {"linear", "actnorm", "none"};
    static const char *const refits[] = {"auto", "yes", "no"};
    memset(c, 0, sizeof *c);
    /* Not given: fit_choose_defaults decides. */
    c->steps = c->patience = c->lr_drops = (size_t)-1;
    c->lr = c->clamp = c->weight_decay = c->average = c->noise = -1;
    c->val_frac = DEFAULT_VAL_FRAC;
    arg_parser p;
    args_init(&p, CMD, argc, argv, SHORT_OPTS, LONG_OPTS);
    const char *v;
    int id, bad = 0, choice = 0;
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
        case O_VAL: c->val_path = v; break;
        case O_COLUMNS: c->columns = v; break;
        case O_DROP: c->drop = v; break;
        case O_GIVEN: c->given_cols = v; break;
        case O_QUIET: c->quiet = 1; break;
        case O_JSON: c->json = 1; break;
        case O_HEADER: c->header = CSV_HEADER_YES; break;
        case O_NO_HEADER: c->header = CSV_HEADER_NO; break;
        case O_DEQUANTIZE: c->dequantize = 1; break;
        case O_STRICT: c->strict = 1; break;
        case O_MASK:
            bad = parse_choice(o, v, masks, 3, &choice);
            c->mask = (fit_mask)choice;
            c->mask_set = 1;
            break;
        case O_NORM:
            bad = parse_choice(o, v, norms, 3, &choice);
            c->norm = (fit_norm)choice;
            c->norm_set = 1;
            break;
        case O_BASE:
            bad = parse_base(o, v, c);
            break;
        case O_REFIT:
            bad = parse_choice(o, v, refits, 3, &choice);
            c->refit = (fit_refit_mode)choice;
            break;
        case O_LAYERS:
            bad = args_size(CMD, o, v, 1, NVP_MAX_LAYERS - 1, &c->layers);
            c->given |= FIT_GIVEN_LAYERS;
            break;
        case O_HIDDEN:
            bad = args_list(CMD, o, v, NVP_MAX_WIDTH, c->hidden,
                            NVP_MAX_HIDDEN_LAYERS, &c->n_hidden);
            c->given |= FIT_GIVEN_HIDDEN;
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
        case O_LR_DROPS:
            bad = args_size(CMD, o, v, 0, 100, &c->lr_drops);
            break;
        case O_THREADS:
            bad = args_size(CMD, o, v, 0, NVP_MAX_THREADS, &c->threads);
            break;
        case O_PRECISION:
            bad = model_parse_precision(CMD, v, &c->precision) != 0;
            break;
        case O_LR:
            bad = args_double(CMD, o, v, 0, 1, 1, &c->lr);
            c->given |= FIT_GIVEN_LR;
            break;
        case O_WEIGHT_DECAY:
            bad = args_double(CMD, o, v, 0, 0, 1e6, &c->weight_decay);
            c->given |= FIT_GIVEN_WEIGHT_DECAY;
            break;
        case O_NOISE:
            bad = args_double(CMD, o, v, 0, 0, 10, &c->noise);
            c->given |= FIT_GIVEN_NOISE;
            break;
        case O_BUDGET:
            bad = args_double(CMD, o, v, 0, 1, 1e7, &c->budget);
            break;
        case O_VAL_FRAC:
            bad = args_double(CMD, o, v, 0, 0, 0.9, &c->val_frac);
            c->val_frac_set = 1;
            break;
        case O_CLAMP:
            bad = args_double(CMD, o, v, 0, 0, 100, &c->clamp);
            c->given |= FIT_GIVEN_CLAMP;
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
        case O_INIT_SEED:
            bad = args_u64(CMD, o, v, &c->init_seed);
            c->init_seed_set = 1;
            break;
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
    if (c->val_path && c->val_frac_set)
        return cli_usage_error(CMD, "--val and --val-frac exclude each "
                               "other (with --val every row of the data "
                               "file is a training row)");
    if (c->val_path && !*c->val_path)
        return cli_usage_error(CMD, "--val: the path is empty");
    if (c->val_path && strcmp(c->val_path, "-") == 0 &&
        strcmp(c->data_path, "-") == 0)
        return cli_usage_error(CMD, "the data and --val cannot both be "
                               "standard input");
    /* The search's trials know nothing of a context yet. */
    if (c->given_cols && c->budget > 0)
        return cli_usage_error(CMD, "--budget with --given is not supported "
                               "yet; give the settings (or keep the "
                               "defaults)");
    if (!c->init_seed_set)
        c->init_seed = c->seed;
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

static void swap_rows(float *x, size_t dim, size_t a, size_t b, float *tmp)
{
    memcpy(tmp, x + a * dim, dim * sizeof *x);
    memcpy(x + a * dim, x + b * dim, dim * sizeof *x);
    memcpy(x + b * dim, tmp, dim * sizeof *x);
}

/* Fisher-Yates shuffle of n rows of dim floats, and with the same
 * permutation of the n rows of cdim floats at c (--given; c may be NULL);
 * tmp: max(dim, cdim) floats. */
static int shuffle_rows(nvp_rng *rng, float *x, size_t n, size_t dim,
                        float *c, size_t cdim, float *tmp)
{
    for (size_t i = n; i > 1; i--) {
        uint64_t j;
        int rc = nvp_rng_index(rng, 1, i, &j);
        if (rc != NVP_OK)
            return rc;
        if (j != i - 1) {
            swap_rows(x, dim, i - 1, (size_t)j, tmp);
            if (c)
                swap_rows(c, cdim, i - 1, (size_t)j, tmp);
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
 * finite), given their context rows ctx (--given; NULL without); lp holds
 * n floats of scratch.  Returns an NVP status. */
static int mean_nll(const nvp_chain *chain, size_t n, const float *z,
                    const float *ctx, float *lp, double *nll)
{
    int rc = nvp_chain_log_prob_given(chain, n, z, ctx, lp);
    if (rc != NVP_OK)
        return rc;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum -= lp[i];
    *nll = isfinite(sum) ? sum / (double)n : INFINITY;
    return NVP_OK;
}


static void fit_free(fit_state *s)
{
    free(s->noise);
    free(s->gauss);
    free(s->noise_scale);
    free(s->train_clean);
    free(s->refit_x);
    free(s->whole);
    free(s->tmp_row);
    free(s->lp);
    fit_model_free(s);
    nvp_scaler_free(s->ctx_scaler);
    nvp_scaler_free(s->scaler);
    csv_free(&s->val_ctx);
    csv_free(&s->ctx);
    nvp_rng_free(s->init_rng);
    nvp_rng_free(s->rng);
    csv_free(&s->val);
    csv_free(&s->data);
}


static const char *display_name(const char *path)
{
    return strcmp(path, "-") == 0 ? "<stdin>" : path;
}

/* Adds uniform [0, 1) noise to the whole-number columns of n rows (raw
 * units).  Returns an NVP status. */
static int add_noise(fit_state *s, float *x, size_t n)
{
    const size_t dim = s->data.cols;
    for (size_t i = 0; i < n; i++) {
        int rc = nvp_rng_uniform(s->rng, dim, s->noise);
        if (rc != NVP_OK)
            return rc;
        for (size_t j = 0; j < dim; j++)
            if (s->whole[j])
                x[i * dim + j] += s->noise[j];
    }
    return NVP_OK;
}

/* A fresh draw of noise on the training rows (standardised): the clean
 * rows plus u / sd on the whole-number columns (--dequantize) plus
 * N(0, noise^2) on every column (--noise).  Returns an NVP status. */
static int redraw_noise(fit_state *s)
{
    const size_t dim = s->data.cols;
    const float sigma = (float)s->cfg.noise;
    for (size_t i = 0; i < s->n_train; i++) {
        int rc = NVP_OK;
        if (s->n_whole)
            rc = nvp_rng_uniform(s->rng, dim, s->noise);
        if (rc == NVP_OK && sigma > 0)
            rc = nvp_rng_normal(s->rng, dim, s->gauss);
        if (rc != NVP_OK)
            return rc;
        const float *c = s->train_clean + i * dim;
        float *x = s->train_x + i * dim;
        for (size_t j = 0; j < dim; j++) {
            float v = c[j];
            if (s->n_whole && s->whole[j])
                v += s->noise[j] * s->noise_scale[j];
            if (sigma > 0)
                v += sigma * s->gauss[j];
            x[j] = v;
        }
    }
    return NVP_OK;
}

/* --dequantize before standardising: finds the whole-number columns of
 * the training rows, keeps those rows without noise and adds noise to the
 * training and validation rows.  Returns an exit status. */
static int dequantize(fit_state *s)
{
    const size_t dim = s->data.cols;
    s->whole = calloc(dim, 1);
    s->noise = malloc(dim * sizeof *s->noise);
    s->noise_scale = malloc(dim * sizeof *s->noise_scale);
    s->train_clean = malloc(s->n_train * dim * sizeof *s->train_clean);
    if (!s->whole || !s->noise || !s->noise_scale || !s->train_clean)
        return cli_error(CMD, "out of memory");
    for (size_t j = 0; j < dim; j++) {
        size_t i = 0;
        while (i < s->n_train && floorf(s->train_x[i * dim + j]) ==
                                     s->train_x[i * dim + j])
            i++;
        s->whole[j] = i == s->n_train;
        s->n_whole += s->whole[j];
    }
    if (s->n_whole == 0) {
        /* Training must not take the rows from train_clean, which holds
         * nothing: the buffers go, and with them every use of them. */
        free(s->train_clean);
        s->train_clean = NULL;
        cli_warn(CMD, "--dequantize: no column of %s holds only whole "
                 "numbers; nothing to do", display_name(s->cfg.data_path));
        return CLI_OK;
    }
    memcpy(s->train_clean, s->train_x,
           s->n_train * dim * sizeof *s->train_clean);
    int rc = add_noise(s, s->train_x, s->n_train);
    if (rc == NVP_OK && s->val_x)
        rc = add_noise(s, s->val_x, s->n_val);
    if (rc != NVP_OK)
        return cli_lib_error(CMD, "drawing the noise", rc, nvp_errmsg());
    return CLI_OK;
}

/* Whether the header's names can be stored in the model (1 to
 * NVP_MAX_COLUMN_NAME bytes without control characters, all different,
 * so that score can find the columns by them); warns when they cannot. */
static int names_storable(const csv_table *t)
{
    if (!t->names)
        return 0;
    for (size_t j = 0; j < t->cols; j++) {
        const char *why = NULL;
        const size_t len = strlen(t->names[j]);
        if (len == 0)
            why = "is empty";
        else if (len > NVP_MAX_COLUMN_NAME)
            why = "is too long";
        for (size_t i = 0; !why && i < len; i++)
            if ((unsigned char)t->names[j][i] < 0x20 ||
                t->names[j][i] == 0x7f)
                why = "holds a control character";
        for (size_t k = 0; !why && k < j; k++)
            if (strcmp(t->names[k], t->names[j]) == 0)
                why = "repeats an earlier column's";
        /* A header holding a number is read back only with --header:
         * sample's output would not round-trip. */
        char *end;
        if (!why && (strtof(t->names[j], &end), end != t->names[j] &&
                                                     *end == '\0'))
            why = "reads as a number";
        if (why) {
            cli_warn(CMD, "column %zu's header name %s: the model stores no "
                     "column names (sample writes no header, score matches "
                     "columns by position)", j + 1, why);
            return 0;
        }
    }
    return 1;
}

/* With --given: whether no modelled column has a given column's name
 * (score finds both parts by name); warns when one does. */
static int names_apart(const csv_table *y, const csv_table *g)
{
    if (!y->names || !g->names)
        return 0;
    for (size_t k = 0; k < g->cols; k++)
        for (size_t j = 0; j < y->cols; j++)
            if (strcmp(g->names[k], y->names[j]) == 0) {
                cli_warn(CMD, "the header names a given and a modelled "
                         "column '%s': the model stores no column names",
                         g->names[k]);
                return 0;
            }
    return 1;
}

/* Reads the rows and splits them: training rows first, then the
 * validation rows, in s->data (or the validation rows in s->val).
 * Returns an exit status. */
static int read_data(fit_state *s)
{
    const fit_config *c = &s->cfg;
    if (csv_read(CMD, c->data_path, 0, c->header, &s->data) != 0)
        return CLI_ERR;
    if (c->columns || c->drop
            ? columns_choose(CMD, &s->data, c->columns, c->drop) != 0
            : columns_drop_index(CMD, &s->data) < 0)
        return CLI_ERR;
    /* --given: the given columns move to s->ctx, the modelled ones stay. */
    if (c->given_cols &&
        columns_split(CMD, &s->data, c->given_cols, &s->ctx) != 0)
        return CLI_ERR;
    const size_t cdim = s->ctx.cols;
    s->cfg.context_dim = cdim;
    s->keep_names = names_storable(&s->data) &&
                    (!cdim || (names_storable(&s->ctx) &&
                               names_apart(&s->data, &s->ctx)));
    const size_t n = s->data.rows, dim = s->data.cols;
    const char *name = display_name(c->data_path);
    if (dim < 2 && cdim)
        return cli_error(CMD,
                         "--given leaves 1 column of %s to model; a Real-NVP "
                         "flow needs at least 2 (each layer transforms some "
                         "columns conditioned on the others)",
                         name);
    if (dim < 2)
        return cli_error(CMD,
                         "%s has 1 column; a Real-NVP flow needs at least 2 "
                         "(each layer transforms some columns conditioned on "
                         "the others)",
                         name);
    if (dim > NVP_MAX_DIM)
        return cli_error(CMD, "%s has %zu columns; at most %d are supported",
                         name, dim, NVP_MAX_DIM);
    int rc = nvp_rng_create(&s->rng, c->seed, NULL);
    if (rc == NVP_OK)
        rc = nvp_rng_create(&s->init_rng, c->init_seed ^ INIT_SEED_MIX, NULL);
    if (rc != NVP_OK)
        return cli_lib_error(CMD, "cannot create the random generator", rc,
                             nvp_errmsg());
    s->tmp_row = malloc((dim > cdim ? dim : cdim) * sizeof *s->tmp_row);
    if (!s->tmp_row)
        return cli_error(CMD, "out of memory");
    size_t nv = 0;
    if (c->val_path) {
        if (csv_read(CMD, c->val_path, 0, c->header, &s->val) != 0)
            return CLI_ERR;
        /* The validation file's columns: by the training file's names
         * when both have a header (the given ones copied out first), else
         * chosen the same way. */
        const int by_name = s->keep_names && s->val.names;
        if (by_name && cdim &&
            columns_copy_by_names(CMD, &s->val, cdim,
                                  (const char *const *)s->ctx.names,
                                  &s->val_ctx) != 0)
            return CLI_ERR;
        if (by_name ? columns_by_names(CMD, &s->val, dim,
                                       (const char *const *)s->data.names)
                    : c->columns || c->drop
                          ? columns_choose(CMD, &s->val, c->columns, c->drop)
                          : columns_drop_index(CMD, &s->val) < 0)
            return CLI_ERR;
        if (!by_name && cdim &&
            columns_split(CMD, &s->val, c->given_cols, &s->val_ctx) != 0)
            return CLI_ERR;
        if (s->val.cols != dim || s->val_ctx.cols != cdim)
            return cli_error(CMD, "%s has %zu columns, %s %zu", c->val_path,
                             s->val.cols + s->val_ctx.cols, name, dim + cdim);
        s->n_train = n;
        s->n_val = s->val.rows;
        s->train_x = s->data.data;
        s->val_x = s->val.data;
        s->train_c = cdim ? s->ctx.data : NULL;
        s->val_c = cdim ? s->val_ctx.data : NULL;
    } else {
        if (c->val_frac > 0) {
            if (n < 2)
                return cli_error(CMD, "%s has 1 row: too few to hold out a "
                                 "validation part (use --val-frac 0)",
                                 name);
            double want = floor(c->val_frac * (double)n + 0.5);
            nv = want < 1 ? 1 : want > (double)(n - 1) ? n - 1 : (size_t)want;
        }
        s->n_val = nv;
        s->n_train = n - nv;
        s->train_x = s->data.data;
        s->val_x = nv ? s->data.data + s->n_train * dim : NULL;
        s->train_c = cdim ? s->ctx.data : NULL;
        s->val_c = nv && cdim ? s->ctx.data + s->n_train * cdim : NULL;
        if (nv > 0 && (rc = shuffle_rows(s->rng, s->data.data, n, dim,
                                         s->train_c, cdim, s->tmp_row)) !=
                          NVP_OK)
            return cli_lib_error(CMD, "shuffling", rc, nvp_errmsg());
    }
    if (s->n_train < 2)
        return cli_error(CMD, "%s has %zu rows: too few to train on", name,
                         n);
    s->lp = malloc((s->n_val ? s->n_val : s->n_train) * sizeof *s->lp);
    if (!s->lp)
        return cli_error(CMD, "out of memory");
    return CLI_OK;
}

/* Refuses columns so close to the ends of float's range that the model
 * could not give them back: samples are mean + sd * z in the original
 * units, and z a few standard deviations out would overflow to inf,
 * which no CSV reader (this tool's included) takes back.  Rescaling the
 * column (dividing it by a power of ten) is the cure. */
static int check_representable(const fit_state *s)
{
    const size_t dim = s->data.cols;
    float *mean = malloc(2 * dim * sizeof *mean);
    if (!mean)
        return cli_error(CMD, "out of memory");
    float *sd = mean + dim;
    int status = CLI_OK;
    int rc = nvp_scaler_get(s->scaler, dim, mean, sd);
    if (rc != NVP_OK) {
        status = cli_lib_error(CMD, "standardising the data", rc,
                               nvp_scaler_errmsg(s->scaler));
    } else {
        for (size_t j = 0; j < dim; j++) {
            const double reach =
                fabs((double)mean[j]) + REPRESENTABLE_SDS * (double)sd[j];
            if (reach > FLT_MAX) {
                status = cli_error(
                    CMD,
                    "column %zu (mean %.3g, standard deviation %.3g) is too "
                    "close to the float range (+-%.3g): samples %g standard "
                    "deviations out would overflow; divide the column by a "
                    "power of ten and fit again",
                    j + 1, (double)mean[j], (double)sd[j], (double)FLT_MAX,
                    REPRESENTABLE_SDS);
                break;
            }
        }
    }
    free(mean);
    return status;
}

/* Prepares the rows and the scaler.  Returns an exit status (CLI_OK to
 * go on). */
static int setup_data(fit_state *s)
{
    fit_config *c = &s->cfg;
    int status = read_data(s);
    if (status != CLI_OK)
        return status;
    const size_t dim = s->data.cols;
    fit_choose_defaults(c, s->n_train, dim);
    if (c->dequantize && (status = dequantize(s)) != CLI_OK)
        return status;

    const size_t cc = constant_column(s->train_x, s->n_train, dim);
    if (cc) {
        const float v = s->train_x[cc - 1];
        return cli_error(CMD,
                         "column %zu is constant in the training rows "
                         "(always %.9g): it has no density to learn; remove "
                         "it from the file%s",
                         cc, (double)v,
                         floorf(v) == v && !c->dequantize
                             ? " (or add noise to whole numbers with "
                               "--dequantize)"
                             : "");
    }

    int rc = nvp_scaler_create(&s->scaler, dim, NULL);
    if (rc != NVP_OK)
        return cli_lib_error(CMD, "cannot create the standardiser", rc,
                             nvp_errmsg());
    if ((rc = nvp_scaler_fit(s->scaler, s->n_train, s->train_x)) != NVP_OK)
        return cli_lib_error(CMD, "standardising the data", rc,
                             nvp_scaler_errmsg(s->scaler));
    if ((status = check_representable(s)) != CLI_OK)
        return status;
    if ((rc = nvp_scaler_transform(s->scaler, s->n_train, s->train_x,
                                   s->train_x)) != NVP_OK ||
        (s->n_val && (rc = nvp_scaler_transform(s->scaler, s->n_val,
                                                s->val_x, s->val_x)) !=
                         NVP_OK) ||
        (s->n_whole && (rc = nvp_scaler_transform(s->scaler, s->n_train,
                                                  s->train_clean,
                                                  s->train_clean)) != NVP_OK))
        return cli_lib_error(CMD, "standardising the data", rc,
                             nvp_scaler_errmsg(s->scaler));
    if (s->n_whole) {
        /* z = (x + u - mean) / sd = clean z + u / sd */
        if ((rc = nvp_scaler_get(s->scaler, dim, NULL, s->noise_scale)) !=
            NVP_OK)
            return cli_lib_error(CMD, "standardising the data", rc,
                                 nvp_scaler_errmsg(s->scaler));
        for (size_t j = 0; j < dim; j++)
            s->noise_scale[j] = 1.0f / s->noise_scale[j];
    }
    /* The given columns get their own standardisation (saved after the
     * modelled columns', docs/file-format.md): the conditioners then see
     * values of order 1 whatever the columns' units. */
    const size_t cdim = s->cfg.context_dim;
    if (cdim &&
        ((rc = nvp_scaler_create(&s->ctx_scaler, cdim, NULL)) != NVP_OK))
        return cli_lib_error(CMD, "cannot create the standardiser", rc,
                             nvp_errmsg());
    if (cdim &&
        ((rc = nvp_scaler_fit(s->ctx_scaler, s->n_train, s->train_c)) !=
             NVP_OK ||
         (rc = nvp_scaler_transform(s->ctx_scaler, s->n_train, s->train_c,
                                    s->train_c)) != NVP_OK ||
         (s->n_val && (rc = nvp_scaler_transform(s->ctx_scaler, s->n_val,
                                                 s->val_c, s->val_c)) !=
                          NVP_OK)))
        return cli_lib_error(CMD, "standardising the given columns", rc,
                             nvp_scaler_errmsg(s->ctx_scaler));
    /* A validation row that standardising sends to an infinity has no
     * finite density under any model. */
    for (size_t i = 0; i < s->n_val * dim; i++)
        if (!isfinite(s->val_x[i]))
            return cli_error(CMD, "validation row %zu is so far from the "
                             "training rows that standardising it "
                             "overflows", i / dim + 1);
    for (size_t i = 0; i < s->n_val * cdim; i++)
        if (!isfinite(s->val_c[i]))
            return cli_error(CMD, "validation row %zu's given columns are so "
                             "far from the training rows' that "
                             "standardising them overflows", i / cdim + 1);
    return CLI_OK;
}

void fit_model_free(fit_state *s)
{
    free(s->best_params);
    free(s->cur_params);
    free(s->avg_params);
    nvp_adam_free(s->opt);
    nvp_chain_free(s->chain);
    s->best_params = s->cur_params = s->avg_params = NULL;
    s->opt = NULL;
    s->chain = NULL;
}

int fit_model_setup(fit_state *s, int reseed)
{
    const fit_config *c = &s->cfg;
    const size_t dim = s->data.cols;
    int rc, status;
    if (reseed &&
        ((rc = nvp_rng_seed(s->rng, c->seed ^ BATCH_SEED_MIX)) != NVP_OK ||
         (rc = nvp_rng_seed(s->init_rng, c->init_seed ^ INIT_SEED_MIX)) !=
             NVP_OK))
        return cli_lib_error(CMD, "seeding the random generator", rc,
                             nvp_errmsg());
    if (c->noise > 0 && !s->train_clean) {
        s->train_clean = malloc(s->n_train * dim * sizeof *s->train_clean);
        if (!s->train_clean)
            return cli_error(CMD, "out of memory");
        memcpy(s->train_clean, s->train_x,
               s->n_train * dim * sizeof *s->train_clean);
    }
    if (c->noise > 0 && !s->gauss &&
        !(s->gauss = malloc(dim * sizeof *s->gauss)))
        return cli_error(CMD, "out of memory");
    if (s->train_clean && (rc = redraw_noise(s)) != NVP_OK)
        return cli_lib_error(CMD, "drawing the noise", rc, nvp_errmsg());
    if ((status = fit_build_chain(CMD, c, dim, s->init_rng, &s->chain)) !=
        CLI_OK)
        return status;
    if (c->norm != FIT_NORM_NONE &&
        (rc = nvp_chain_init_from_data_given(s->chain, s->n_train,
                                             s->train_x, s->train_c)) !=
            NVP_OK)
        return cli_lib_error(CMD, "setting the model from the training rows",
                             rc, nvp_chain_errmsg(s->chain));
    if (c->base == FIT_BASE_MIXTURE &&
        (status = fit_set_mixture_base(s)) != CLI_OK)
        return status;
    if (model_set_threads(CMD, s->chain, c->threads) != 0 ||
        model_set_precision(CMD, s->chain, c->precision) != 0)
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
        if ((rc = nvp_adam_set_average(s->opt, (float)c->average, np,
                                       nvp_chain_params(s->chain))) !=
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
                 const float *eval_c, double best, double *nll,
                 const char **msg)
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
    rc = mean_nll(chain, n_eval, eval_x, eval_c, s->lp, nll);
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

/* Decoupled weight decay (AdamW): after a step, the coupling layers'
 * parameters shrink by the factor 1 - lr * wd.  The whitening layer is
 * left alone, so the decay pulls the model towards the Gaussian fit. */
static void weight_decay(nvp_chain *chain, float factor)
{
    float *p = nvp_chain_params(chain);
    const size_t k = nvp_chain_num_layers(chain);
    for (size_t i = 0; i < k; i++) {
        size_t off = 0;
        const nvp_layer *l = nvp_chain_layer(chain, i, &off);
        if (!nvp_layer_as_coupling(l))
            continue;
        const size_t n = nvp_layer_num_params(l);
        for (size_t j = 0; j < n; j++)
            p[off + j] *= factor;
    }
}

int fit_train(fit_state *s, fit_result *r, double deadline)
{
    const fit_config *c = &s->cfg;
    const size_t n_train = s->n_train;
    const float *train_x = s->train_x;
    /* Without a validation part, the training rows stand in. */
    const float *eval_x = s->n_val ? s->val_x : train_x;
    const float *eval_c = s->n_val ? s->val_c : s->train_c;
    const size_t n_eval = s->n_val ? s->n_val : n_train;
    const size_t np = nvp_chain_num_params(s->chain);
    const float decay = (float)(1.0 - c->lr * c->weight_decay);
    /* Steps per pass over the training rows: the noise of --dequantize is
     * drawn again after each. */
    const size_t epoch = (n_train + c->batch - 1) / c->batch;
    /* --refit: the steps of the schedule, segment by segment. */
    const fit_schedule *replay = s->replay;
    size_t max_steps = c->steps, seg = 0, seg_end = 0;
    double lr = c->lr;
    if (replay) {
        max_steps = 0;
        for (size_t i = 0; i < replay->n; i++)
            max_steps += replay->steps[i];
        seg_end = replay->n ? replay->steps[0] : 0;
        lr = replay->n ? replay->lr[0] : lr;
        int rc = nvp_adam_set_lr(s->opt, (float)lr);
        if (rc != NVP_OK)
            return cli_lib_error(CMD, "setting the learning rate", rc,
                                 nvp_adam_errmsg(s->opt));
    }

    memset(r, 0, sizeof *r);
    r->reason = "reached --steps";
    r->stop = "max_steps";
    int rc = mean_nll(s->chain, n_eval, eval_x, eval_c, s->lp, &r->best_nll);
    if (rc == NVP_OK)
        rc = nvp_chain_get_params(s->chain, np, s->best_params);
    if (rc != NVP_OK)
        return cli_lib_error(CMD, "evaluating the initial model", rc,
                             nvp_chain_errmsg(s->chain));
    r->initial_nll = r->best_nll;

    progress bar;
    progress_start(&bar, max_steps, !c->quiet && !s->no_progress);
    progress_update(&bar, 0, NAN, r->best_nll, r->best_nll, 1);
    double ema = NAN;
    size_t since_best = 0, bad_run = 0;
    for (size_t step = 1; step <= max_steps; step++) {
        if (interrupted) {
            r->reason = "interrupted (Ctrl-C)";
            r->stop = "interrupted";
            break;
        }
        if (deadline > 0 && progress_now() >= deadline) {
            r->reason = "stopped: the --budget time ran out";
            r->stop = "budget";
            break;
        }
        float loss = NAN;
        rc = nvp_chain_train_step_given(s->chain, s->opt, s->rng, n_train,
                                        train_x, s->train_c, c->batch, &loss);
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
            if (c->weight_decay > 0)
                weight_decay(s->chain, decay);
            /* A running mean at first, then an exponential average. */
            const double a = 1.0 / (double)step > 0.02 ? 1.0 / (double)step
                                                       : 0.02;
            ema = isnan(ema) ? loss : (1 - a) * ema + a * loss;
        }
        if (s->train_clean && step % epoch == 0 &&
            (rc = redraw_noise(s)) != NVP_OK) {
            progress_break(&bar);
            return cli_lib_error(CMD, "drawing the noise", rc, nvp_errmsg());
        }
        if (replay && step == seg_end) {
            /* The end of a segment: what it would have saved (the
             * average) is where the next one starts, at its rate. */
            rc = s->cur_params
                     ? nvp_adam_get_average(s->opt, np, s->best_params)
                     : nvp_chain_get_params(s->chain, np, s->best_params);
            if (rc == NVP_OK && ++seg < replay->n) {
                seg_end += replay->steps[seg];
                lr = replay->lr[seg];
                rc = nvp_chain_set_params(s->chain, np, s->best_params);
                if (rc == NVP_OK)
                    rc = nvp_adam_set_lr(s->opt, (float)lr);
                if (rc == NVP_OK && s->cur_params)
                    rc = nvp_adam_set_average(s->opt, (float)c->average, np,
                                              s->best_params);
            }
            if (rc != NVP_OK) {
                progress_break(&bar);
                return cli_lib_error(CMD, "replaying the training", rc,
                                     nvp_errmsg());
            }
            r->best_step = step;
        }
        const int eval =
            !replay && (step % c->eval_every == 0 || step == c->steps);
        if (!eval) {
            progress_update(&bar, step, ema, NAN, r->best_nll, 0);
            continue;
        }
        double nll;
        const char *msg;
        if ((rc = score(s, n_eval, eval_x, eval_c, r->best_nll, &nll, &msg)) !=
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
        if (c->patience > 0 && since_best >= c->patience &&
            r->lr_drops < c->lr_drops) {
            /* Back to the best parameters with a smaller step (and the
             * average restarted there). */
            if (r->lr_drops < FIT_MAX_DROPS) {
                r->drop_step[r->lr_drops] = step;
                r->drop_best[r->lr_drops] = r->best_step;
            }
            r->lr_drops++;
            since_best = 0;
            lr *= LR_DROP_FACTOR;
            if ((rc = nvp_chain_set_params(s->chain, np, s->best_params)) !=
                NVP_OK) {
                progress_break(&bar);
                return cli_lib_error(CMD, "restoring the best parameters",
                                     rc, nvp_chain_errmsg(s->chain));
            }
            if ((rc = nvp_adam_set_lr(s->opt, (float)lr)) != NVP_OK ||
                (s->cur_params &&
                 (rc = nvp_adam_set_average(s->opt, (float)c->average, np,
                                            s->best_params)) != NVP_OK)) {
                progress_break(&bar);
                return cli_lib_error(CMD, "lowering the learning rate", rc,
                                     nvp_adam_errmsg(s->opt));
            }
            continue;
        }
        if (c->patience > 0 && since_best >= c->patience) {
            r->reason = "stopped early: no improvement";
            r->stop = "no_improvement";
            r->early = 1;
            break;
        }
    }
    progress_break(&bar);
    /* The step cap came before the run had converged by its own rule. */
    r->interrupted = interrupted != 0;
    r->still_improving = !replay && !r->early && !interrupted &&
                         c->steps > 0 &&
                         r->steps_done == c->steps &&
                         (c->patience == 0 || since_best < c->patience ||
                          r->lr_drops < c->lr_drops);
    rc = nvp_chain_set_params(s->chain, np, s->best_params);
    if (rc != NVP_OK)
        return cli_lib_error(CMD, "restoring the best parameters", rc,
                             nvp_chain_errmsg(s->chain));
    return CLI_OK;
}

/* What the untrained model is, for people. */
static const char *untrained_name(const fit_config *c)
{
    if (c->base == FIT_BASE_MIXTURE)
        return "the Gaussian-mixture fit of the training rows";
    return c->norm == FIT_NORM_LINEAR
               ? "the full-covariance Gaussian fit of the training rows"
               : "a Gaussian with the training rows' mean and sd per "
                 "column, independent columns";
}

/* The summary for people. */
static void summary_text(FILE *fp, const fit_state *s, const fit_result *r,
                         size_t n_trials)
{
    const fit_config *c = &s->cfg;
    char widths[256];
    format_widths(widths, sizeof widths, c->hidden, c->n_hidden);
    fprintf(fp, "steps:     %zu of %zu, %s", r->steps_done, c->steps,
            r->reason);
    if (r->early)
        fprintf(fp, " in %zu evaluations", c->patience);
    if (r->lr_drops)
        fprintf(fp, ", learning rate lowered %zu time%s", r->lr_drops,
                r->lr_drops == 1 ? "" : "s");
    if (r->still_improving)
        fprintf(fp, " (not converged: more --steps may help)");
    const size_t couplings = fit_count_couplings(s->chain);
    if (c->context_dim) {
        fprintf(fp, "\ngiven:     %zu column%s", c->context_dim,
                c->context_dim == 1 ? "" : "s");
        for (size_t j = 0; s->ctx.names && j < c->context_dim; j++)
            fprintf(fp, "%s%s", j ? ", " : " (", s->ctx.names[j]);
        fprintf(fp, "%s: the model is the density of the other %zu given "
                "them", s->ctx.names ? ")" : "", s->data.cols);
    }
    fprintf(fp, "\nmodel:     %zu couplings (%s masks), hidden %s",
            couplings, fit_mask_name(c->mask), widths);
    if (c->norm != FIT_NORM_NONE)
        fprintf(fp, ", %s layer", fit_norm_name(c->norm));
    const size_t n_comp = nvp_base_components(nvp_chain_base(s->chain));
    if (c->base == FIT_BASE_MIXTURE)
        fprintf(fp, ", mixture base of %zu component%s", n_comp,
                n_comp == 1 ? "" : "s");
    fprintf(fp, ", %zu parameters, clamp %g\n",
            nvp_chain_num_params(s->chain), c->clamp);
    fprintf(fp, "training:  lr %g, batch %zu, weight decay %g, evaluated "
            "every %zu steps, patience %zu, %zu lr drop%s",
            c->lr, c->batch, c->weight_decay, c->eval_every, c->patience,
            c->lr_drops, c->lr_drops == 1 ? "" : "s");
    if (c->noise > 0)
        fprintf(fp, ", noise %g", c->noise);
    fputc('\n', fp);
    if (s->n_whole)
        fprintf(fp, "noise:     uniform [0, 1) added to %zu whole-number "
                "column%s\n", s->n_whole, s->n_whole == 1 ? "" : "s");
    if (c->clip_norm > 0)
        fprintf(fp, "clipping:  gradient norm limited to %g\n",
                (double)(float)c->clip_norm);
    fprintf(fp,
            "best NLL:  %.6g nats/row on the %s rows (standardised), "
            "%.6g in\n           original units, at step %zu",
            r->best_nll, s->n_val ? "validation" : "training",
            r->best_nll + nvp_scaler_log_det(s->scaler), r->best_step);
    if (c->average > 0)
        fprintf(fp, ", of the parameter average (decay %g)", c->average);
    fprintf(fp, "\nuntrained: %.6g (%s)\n", r->initial_nll,
            untrained_name(c));
    if (c->budget > 0)
        fprintf(fp, "search:    the best of %zu settings tried within "
                "--budget %g s\n", n_trials, c->budget);
    else if (n_trials > 1)
        fprintf(fp, "base:      the normal and the mixture base both "
                "trained (at most %d columns), the %s kept\n",
                FIT_AUTO_BASE_COLS,
                c->base == FIT_BASE_MIXTURE ? "mixture" : "normal");
    if (s->refit_rows)
        fprintf(fp, "refit:     the saved model was trained again, %zu "
                "steps, on all %zu training\n           and validation "
                "rows (--refit); the NLL above is of the model\n"
                "           that chose those steps\n",
                s->refit_steps, s->refit_rows);
    fprintf(fp, "saved:     %s\n", c->out_path);
}

/* The summary for programs (--json).  The keys are documented in the man
 * page and stay; numbers that are not finite are null. */
/* The settings a trial changes, as members of the open object. */
static void json_settings(json_out *j, const fit_config *c)
{
    json_uint(j, "coupling_layers", c->layers);
    json_array_line(j, "hidden");
    for (size_t i = 0; i < c->n_hidden; i++)
        json_uint(j, NULL, c->hidden[i]);
    json_close(j);
    json_double(j, "clamp", c->clamp);
    json_double(j, "lr", c->lr);
    json_double(j, "weight_decay", c->weight_decay);
    json_double(j, "noise", c->noise);
    json_string(j, "base", c->base == FIT_BASE_MIXTURE ? "mixture" : "normal");
}

static void summary_json(FILE *fp, const fit_state *s, const fit_result *r,
                         const fit_trial *trials, size_t n_trials)
{
    const fit_config *c = &s->cfg;
    json_out j;
    json_begin(&j, fp);
    json_string(&j, "model", c->out_path);
    json_string(&j, "data", c->data_path);
    if (c->val_path)
        json_string(&j, "validation_file", c->val_path);
    else
        json_null(&j, "validation_file");
    json_uint(&j, "rows", s->data.rows);
    json_uint(&j, "columns", s->data.cols + c->context_dim);
    json_bool(&j, "header", s->data.has_header);
    json_uint(&j, "training_rows", s->n_train);
    json_uint(&j, "validation_rows", s->n_val);
    json_uint(&j, "dequantized_columns", s->n_whole);
    json_uint(&j, "given_columns", c->context_dim);
    if (c->context_dim && s->ctx.names) {
        json_array_line(&j, "given");
        for (size_t k = 0; k < c->context_dim; k++)
            json_string(&j, NULL, s->ctx.names[k]);
        json_close(&j);
    } else {
        json_null(&j, "given");
    }
    json_uint(&j, "layers", nvp_chain_num_layers(s->chain));
    json_uint(&j, "coupling_layers", fit_count_couplings(s->chain));
    json_string(&j, "norm", fit_norm_name(c->norm));
    json_string(&j, "mask", fit_mask_name(c->mask));
    json_string(&j, "base",
                c->base == FIT_BASE_MIXTURE ? "mixture" : "normal");
    json_uint(&j, "base_components",
              nvp_base_components(nvp_chain_base(s->chain)));
    json_array_line(&j, "hidden");
    for (size_t i = 0; i < c->n_hidden; i++)
        json_uint(&j, NULL, c->hidden[i]);
    json_close(&j);
    json_uint(&j, "parameters", nvp_chain_num_params(s->chain));
    json_double(&j, "clamp", c->clamp);
    json_double(&j, "lr", c->lr);
    json_uint(&j, "batch", c->batch);
    json_double(&j, "weight_decay", c->weight_decay);
    json_uint(&j, "eval_every", c->eval_every);
    json_uint(&j, "patience", c->patience);
    json_uint(&j, "lr_drops", c->lr_drops);
    json_double(&j, "noise", c->noise);
    json_double(&j, "clip_norm", (double)(float)c->clip_norm);
    json_double(&j, "average", c->average);
    json_string(&j, "precision",
                nvp_chain_precision(s->chain) == NVP_PRECISION_BF16 ? "bf16"
                                                                  : "fp32");
    json_uint(&j, "seed", c->seed);
    json_uint(&j, "init_seed", c->init_seed);
    json_uint(&j, "steps", r->steps_done);
    json_uint(&j, "max_steps", c->steps);
    json_string(&j, "stop", r->stop);
    json_bool(&j, "still_improving", r->still_improving);
    json_uint(&j, "lr_drops_done", r->lr_drops);
    json_uint(&j, "refused_steps", r->refused);
    json_uint(&j, "best_step", r->best_step);
    json_bool(&j, "improved", r->best_step > 0);
    json_string(&j, "evaluated_on", s->n_val ? "validation" : "training");
    json_double(&j, "initial_nll", r->initial_nll);
    json_double(&j, "best_nll", r->best_nll);
    json_double(&j, "best_nll_original",
                r->best_nll + nvp_scaler_log_det(s->scaler));
    json_bool(&j, "refit", s->refit_rows > 0);
    json_uint(&j, "refit_rows", s->refit_rows);
    json_uint(&j, "refit_steps", s->refit_steps);
    if (c->budget > 0)
        json_double(&j, "budget", c->budget);
    else
        json_null(&j, "budget");
    /* --budget's trials, or the two bases the defaults tried */
    if (n_trials > 0) {
        json_array(&j, "trials");
        for (size_t i = 0; i < n_trials; i++) {
            json_object(&j, NULL);
            json_settings(&j, &trials[i].cfg);
            json_double(&j, "seconds", trials[i].seconds);
            json_uint(&j, "steps", trials[i].result.steps_done);
            json_uint(&j, "best_step", trials[i].result.best_step);
            json_string(&j, "stop", trials[i].result.stop);
            json_double(&j, "best_nll", trials[i].result.best_nll);
            json_bool(&j, "best_so_far", trials[i].improved_best);
            json_double(&j, "tail", trials[i].tail);
            json_close(&j);
        }
        json_close(&j);
    }
    json_end(&j);
}

/* The scaler fit saves: without --given the modelled columns' own; with
 * it one over the modelled columns and then the given ones (dim + C axes,
 * as the model file keeps a conditional model's, docs/file-format.md),
 * named when the model keeps names.  *owned is set when a new scaler was
 * made (the caller frees it).  Returns an exit status. */
static int saved_scaler(const fit_state *s, nvp_scaler **out, int *owned)
{
    const size_t dim = s->data.cols, cdim = s->cfg.context_dim;
    *out = s->scaler;
    *owned = 0;
    if (!cdim)
        return CLI_OK;
    const size_t all = dim + cdim;
    float *mean = malloc(2 * all * sizeof *mean);
    const char **names = malloc(all * sizeof *names);
    nvp_scaler *sc = NULL;
    int status = CLI_ERR;
    if (!mean || !names) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    float *sd = mean + all;
    int rc = nvp_scaler_get(s->scaler, dim, mean, sd);
    if (rc == NVP_OK)
        rc = nvp_scaler_get(s->ctx_scaler, cdim, mean + dim, sd + dim);
    if (rc == NVP_OK && (rc = nvp_scaler_create(&sc, all, NULL)) != NVP_OK) {
        cli_lib_error(CMD, "cannot create the standardiser", rc,
                      nvp_errmsg());
        goto done;
    }
    if (rc == NVP_OK)
        rc = nvp_scaler_set(sc, all, mean, sd);
    for (size_t j = 0; j < all && s->keep_names; j++)
        names[j] = j < dim ? s->data.names[j] : s->ctx.names[j - dim];
    if (rc == NVP_OK && s->keep_names)
        rc = nvp_scaler_set_column_names(sc, all, names);
    if (rc != NVP_OK) {
        cli_lib_error(CMD, "storing the standardisation", rc,
                      sc ? nvp_scaler_errmsg(sc) : nvp_errmsg());
        goto done;
    }
    *out = sc;
    *owned = 1;
    sc = NULL;
    status = CLI_OK;
done:
    nvp_scaler_free(sc);
    free(names);
    free(mean);
    return status;
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
    fit_trial *trials = NULL;
    size_t n_trials = 0;
    int status = parse(argc, argv, &s.cfg);
    if (status >= 0)
        return status;
    const fit_config *c = &s.cfg;
    char err[OUT_ERR_MAX];
    if (out_check_writable(c->out_path, err, sizeof err) != 0)
        return cli_error(CMD, "%s", err);
    status = setup_data(&s);
    /* small tables: both bases tried (fit_pick_base builds the models) */
    const int auto_base = status == CLI_OK && fit_auto_base(&s);
    if (status == CLI_OK && c->budget == 0 && !auto_base)
        status = fit_model_setup(&s, 0);
    if (status != CLI_OK)
        goto done;

    const size_t dim = s.data.cols;
    char widths[256];
    format_widths(widths, sizeof widths, c->hidden, c->n_hidden);
    if (!c->quiet)
        fprintf(stderr,
                "nvpflow fit: %zu rows x %zu columns%s: %zu for training, "
                "%zu for validation%s\n",
                s.data.rows, dim, s.data.has_header ? " after the header" : "",
                s.n_train, s.n_val, c->val_path ? " (--val)" : "");
    if (!c->quiet && c->budget == 0 && !auto_base)
        fprintf(stderr,
                "nvpflow fit: %zu couplings (%s masks), hidden %s, %s "
                "layer, %zu parameters\n",
                fit_count_couplings(s.chain), fit_mask_name(c->mask), widths,
                fit_norm_name(c->norm), nvp_chain_num_params(s.chain));

    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    interrupted = 0;
    const int have_handler = sigaction(SIGINT, &sa, &old_sa) == 0;
    fit_result r;
    if (c->budget > 0)
        status = fit_search(&s, &r, &trials, &n_trials);
    else if (auto_base)
        status = fit_pick_base(&s, &r, &trials, &n_trials);
    else
        status = fit_train(&s, &r, 0);
    if (status == CLI_OK && !interrupted && fit_refit_wanted(&s))
        status = fit_refit(&s, &r);
    else if (status == CLI_OK && !interrupted && c->refit == FIT_REFIT_ON)
        cli_warn(CMD, "--refit yes: no refit (%s)",
                 s.n_val == 0 ? "there are no validation rows"
                              : "not with --dequantize");
    if (have_handler)
        sigaction(SIGINT, &old_sa, NULL);
    if (status != CLI_OK)
        goto done;

    /* A fit that most steps of which were refused has not learnt the
     * data, whatever it would save: fail, keeping any older file. */
    if (r.refused > 0 && 2 * r.refused > r.steps_done) {
        status = cli_error(CMD,
                           "%zu of %zu training steps were refused because "
                           "the loss or gradient was not finite: nothing "
                           "saved; a smaller --lr or --clamp, or rescaled "
                           "data, may help",
                           r.refused, r.steps_done);
        goto done;
    }
    if (r.best_step == 0 && r.steps_done > 0) {
        if (c->strict) {
            status = cli_error(CMD,
                               "training never improved on the untrained "
                               "model (%s; NLL %.6g on the %s rows): nothing "
                               "saved (--strict)",
                               untrained_name(c), r.initial_nll,
                               s.n_val ? "validation" : "training");
            goto done;
        }
        cli_warn(CMD, "training never improved on the untrained model (%s; "
                 "NLL %.6g on the %s rows), which is what is saved; a "
                 "smaller --lr, --hidden or --clamp, or more rows, may "
                 "help",
                 untrained_name(c), r.initial_nll,
                 s.n_val ? "validation" : "training");
    }

    int rc = s.keep_names
                 ? nvp_chain_set_column_names(
                       s.chain, dim, (const char *const *)s.data.names)
                 : NVP_OK;
    if (rc != NVP_OK) {
        status = cli_lib_error(CMD, "storing the column names", rc,
                               nvp_chain_errmsg(s.chain));
        goto done;
    }
    nvp_scaler *to_save = NULL;
    int owned = 0;
    if ((status = saved_scaler(&s, &to_save, &owned)) != CLI_OK)
        goto done;
    rc = nvp_chain_save_file(s.chain, to_save, c->out_path);
    if (owned)
        nvp_scaler_free(to_save);
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
            summary_json(sum, &s, &r, trials, n_trials);
        else
            summary_text(sum, &s, &r, n_trials);
        if (fflush(sum) != 0 || ferror(sum)) {
            cli_error(CMD, "error writing the summary (the model was "
                      "saved)");
            status = CLI_ERR;
        }
    }
done:
    free(trials);
    fit_free(&s);
    return status;
}
