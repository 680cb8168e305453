/* SPDX-License-Identifier: MIT */
/*
 * sbi_linear_gaussian.c - simulation-based inference with a conditional
 * flow ("make sbi"), checked against a posterior known in closed form.
 *
 * The problem: a parameter theta in R^D (D = 3 by default) with prior
 * N(0, I) and a simulator x = A theta + sigma * eps, eps ~ N(0, I_m), with
 * a fixed random m x D matrix A.  Its posterior is Gaussian:
 *     Sigma = (I + A^T A / sigma^2)^-1,  mu(x) = Sigma A^T x / sigma^2,
 * so what the flow learns can be measured exactly.  The steps:
 *   1. simulate N (theta, x) pairs from the joint; hold out a tenth for
 *      validation; standardise x per axis (a scaler fitted on the training
 *      part: the conditioners' inputs then have unit scale);
 *   2. a conditional flow q(theta | x): a linear layer on the base side
 *      (set from the data: the full-covariance Gaussian fit of theta),
 *      then K conditional affine couplings whose masks alternate between
 *      the even and the odd coordinates, each created as the identity;
 *   3. training: Adam on minibatches of the training pairs with a
 *      parameter average; the validation NLL of the average is checked
 *      every few hundred steps, the best parameters are kept, the step
 *      size drops tenfold at the first plateau and training stops at the
 *      second (early stopping);
 *   4. evaluation on fresh draws from the joint:
 *      - KL(p(.|x) || q(.|x)) for each of 100 observations x, estimated by
 *        Monte Carlo as the mean of log p - log q over 2000 draws from the
 *        true posterior;
 *      - calibration: for each of 1000 pairs (theta, x), the central 90%
 *        interval of every coordinate from 1000 draws of q(. | x), and
 *        how often it holds the true theta (per coordinate and overall).
 *        The same count for the exact posterior's intervals shows how far
 *        the count itself scatters around 90% with that many pairs.
 * The last lines on stdout are key=value pairs, for scripts.
 *
 * Exit status: 0 on success, 1 when the library fails, 2 for a bad
 * command line.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvpflow.h"

#include "common/messages.h"
#include "common/options.h"
#include "common/progress.h"
#include "numparse.h"

#define MAX_D 5
#define MAX_M 32
#define MAX_COUPLINGS 64
#define MAX_SIMS 10000000UL
#define MAX_STEPS 100000000UL
#define LOSS_WINDOW 100
/* A minibatch the library refuses (a non-finite loss) changes nothing and
 * is skipped; this many in a row end the training. */
#define MAX_REFUSED_IN_A_ROW 100
/* Independent streams, offset from --seed: the matrix A, the training
 * simulations and the flow's own draws, the held-out draws. */
#define SIM_SEED_OFFSET 1000003u
#define EVAL_SEED_OFFSET 2000006u
/* Two-sided 90%: the 0.95 quantile of N(0, 1). */
#define Z95 1.6448536269514722
#define LOG_2PI 1.8378770664093453

typedef struct config {
    size_t d, m;
    double sigma;
    size_t n_sims;
    unsigned long max_steps, eval_every, patience;
    size_t batch;
    double lr, ema;
    size_t hidden[NVP_MAX_HIDDEN_LAYERS];
    size_t n_hidden;
    size_t couplings;
    size_t n_obs, kl_draws, n_cal, cal_draws;
    uint64_t seed;
    int quiet;
} config;

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: %s [options]\n"
            "Simulation-based inference on a linear Gaussian simulator:\n"
            "trains a conditional flow q(theta | x) on simulated pairs and\n"
            "measures it against the exact posterior (KL and calibration).\n"
            "\n"
            "Problem:\n"
            "  --dim D          parameters, 2..%d (default 3)\n"
            "  --obs-dim M      observations per simulation, 1..%d (default 5)\n"
            "  --sigma S        simulator noise sd (default 1)\n"
            "Training:\n"
            "  --sims N         simulated pairs, a tenth kept for validation\n"
            "                   (default 50000)\n"
            "  --steps N        most training steps (default 20000)\n"
            "  --eval-every N   validation NLL every N steps (default 500)\n"
            "  --patience P     checks without improvement that make a\n"
            "                   plateau (default 4)\n"
            "  --batch N        minibatch size (default 256)\n"
            "  --lr X           Adam step size (default 1e-3)\n"
            "  --ema D          parameter-average decay (default 0.999; 0 = "
            "off)\n"
            "  --hidden W1,W2   conditioner hidden widths (default 64,64)\n"
            "  --couplings K    conditional couplings, 1..%d (default 6)\n"
            "Evaluation:\n"
            "  --observations N held-out x for the KL (default 100)\n"
            "  --kl-draws N     true-posterior draws per x (default 2000)\n"
            "  --calibration N  held-out (theta, x) pairs (default 1000)\n"
            "  --cal-draws N    flow draws per pair (default 1000)\n"
            "Other:\n"
            "  --seed S         random seed, 0..2^64-1 (default 0)\n"
            "  --quiet          no progress on stderr\n"
            "  --help           this text\n"
            "Options take their value as the next argument or after '='.\n",
            ex_program(), MAX_D, MAX_M, MAX_COUPLINGS);
}

/* ------------------------------------------------------------ options */

enum {
    O_HELP = 'h', O_QUIET = 'q',
    O_DIM = 256, O_OBS_DIM, O_SIGMA, O_SIMS, O_STEPS, O_EVAL_EVERY,
    O_PATIENCE, O_BATCH, O_LR, O_EMA, O_HIDDEN, O_COUPLINGS, O_OBS,
    O_KL_DRAWS, O_CAL, O_CAL_DRAWS, O_SEED
};

static const struct option LONG_OPTS[] = {
    {"dim", required_argument, NULL, O_DIM},
    {"obs-dim", required_argument, NULL, O_OBS_DIM},
    {"sigma", required_argument, NULL, O_SIGMA},
    {"sims", required_argument, NULL, O_SIMS},
    {"steps", required_argument, NULL, O_STEPS},
    {"eval-every", required_argument, NULL, O_EVAL_EVERY},
    {"patience", required_argument, NULL, O_PATIENCE},
    {"batch", required_argument, NULL, O_BATCH},
    {"lr", required_argument, NULL, O_LR},
    {"ema", required_argument, NULL, O_EMA},
    {"hidden", required_argument, NULL, O_HIDDEN},
    {"couplings", required_argument, NULL, O_COUPLINGS},
    {"observations", required_argument, NULL, O_OBS},
    {"kl-draws", required_argument, NULL, O_KL_DRAWS},
    {"calibration", required_argument, NULL, O_CAL},
    {"cal-draws", required_argument, NULL, O_CAL_DRAWS},
    {"seed", required_argument, NULL, O_SEED},
    {"quiet", no_argument, NULL, O_QUIET},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

/* A whole-number option into a size_t. */
static int opt_size(const char *name, const char *v, uint64_t lo,
                    uint64_t hi, size_t *out)
{
    uint64_t u = 0;
    if (ex_opt_uint(name, v, lo, hi, &u))
        return 1;
    *out = (size_t)u;
    return 0;
}

static int opt_ulong(const char *name, const char *v, uint64_t lo,
                     uint64_t hi, unsigned long *out)
{
    uint64_t u = 0;
    if (ex_opt_uint(name, v, lo, hi, &u))
        return 1;
    *out = (unsigned long)u;
    return 0;
}

/* Returns 0 to run, 1 when --help was printed, 2 on a bad command line. */
static int parse_args(int argc, char **argv, config *cfg)
{
    *cfg = (config){.d = 3, .m = 5, .sigma = 1.0,
                    .n_sims = 50000, .max_steps = 20000, .eval_every = 500,
                    .patience = 4, .batch = 256, .lr = 1e-3, .ema = 0.999,
                    .hidden = {64, 64}, .n_hidden = 2, .couplings = 6,
                    .n_obs = 100, .kl_draws = 2000, .n_cal = 1000,
                    .cal_draws = 1000, .seed = 0, .quiet = 0};
    opts o;
    opts_init(&o, argc, argv, "hq", LONG_OPTS);
    const char *v;
    int id, bad = 0;
    while (!bad && (id = ex_next_option(&o, &v)) != OPTS_END) {
        switch (id) {
        case O_HELP: usage(stdout); return 1;
        case O_QUIET: cfg->quiet = 1; break;
        case O_DIM: bad = opt_size(o.name, v, 2, MAX_D, &cfg->d); break;
        case O_OBS_DIM: bad = opt_size(o.name, v, 1, MAX_M, &cfg->m); break;
        case O_SIGMA: bad = ex_opt_step_size(o.name, v, &cfg->sigma); break;
        case O_SIMS:
            bad = opt_size(o.name, v, 20, MAX_SIMS, &cfg->n_sims);
            break;
        case O_STEPS:
            bad = opt_ulong(o.name, v, 0, MAX_STEPS, &cfg->max_steps);
            break;
        case O_EVAL_EVERY:
            bad = opt_ulong(o.name, v, 1, MAX_STEPS, &cfg->eval_every);
            break;
        case O_PATIENCE:
            bad = opt_ulong(o.name, v, 1, 1000000, &cfg->patience);
            break;
        case O_BATCH: bad = opt_size(o.name, v, 1, 1000000, &cfg->batch);
            break;
        case O_LR: bad = ex_opt_step_size(o.name, v, &cfg->lr); break;
        case O_EMA: bad = ex_opt_decay(o.name, v, &cfg->ema); break;
        case O_HIDDEN:
            bad = ex_opt_widths(o.name, v, EX_WIDTH_LIMITS ", e.g. 64,64",
                                cfg->hidden, &cfg->n_hidden);
            break;
        case O_COUPLINGS:
            bad = opt_size(o.name, v, 1, MAX_COUPLINGS, &cfg->couplings);
            break;
        case O_OBS: bad = opt_size(o.name, v, 1, 100000, &cfg->n_obs); break;
        case O_KL_DRAWS:
            bad = opt_size(o.name, v, 2, 1000000, &cfg->kl_draws);
            break;
        case O_CAL: bad = opt_size(o.name, v, 1, 1000000, &cfg->n_cal);
            break;
        case O_CAL_DRAWS:
            bad = opt_size(o.name, v, 2, 1000000, &cfg->cal_draws);
            break;
        case O_SEED: bad = ex_opt_uint(o.name, v, 0, UINT64_MAX, &cfg->seed);
            break;
        default: bad = 1; break; /* EX_OPT_ERROR, said already */
        }
    }
    return bad ? 2 : 0;
}

/* ------------------------------------------------- the exact posterior */

/* The simulator and its posterior, all in double: the posterior's
 * covariance does not depend on x, so it is factored once. */
typedef struct problem {
    size_t d, m;
    double sigma;
    double a[MAX_M * MAX_D];    /* A, m x d row-major */
    double k[MAX_D * MAX_M];    /* mu(x) = K x, K = Sigma A^T / sigma^2 */
    double cov[MAX_D * MAX_D];  /* Sigma */
    double chol[MAX_D * MAX_D]; /* lower L with L L^T = Sigma */
    double log_norm;            /* -log det(L) - d/2 log(2 pi) */
} problem;

/* Lower Cholesky factor of the n x n symmetric positive definite s into l;
 * -1 when s is not positive definite. */
static int cholesky(size_t n, const double *s, double *l)
{
    memset(l, 0, n * n * sizeof *l);
    for (size_t j = 0; j < n; j++) {
        double diag = s[j * n + j];
        for (size_t k = 0; k < j; k++)
            diag -= l[j * n + k] * l[j * n + k];
        if (!(diag > 0.0))
            return -1;
        l[j * n + j] = sqrt(diag);
        for (size_t i = j + 1; i < n; i++) {
            double v = s[i * n + j];
            for (size_t k = 0; k < j; k++)
                v -= l[i * n + k] * l[j * n + k];
            l[i * n + j] = v / l[j * n + j];
        }
    }
    return 0;
}

/* Draws A (entries N(0, 1)) and derives the posterior's parts. */
static int problem_init(problem *p, const config *cfg, nvp_rng *rng)
{
    const size_t d = cfg->d, m = cfg->m;
    float draw[MAX_M * MAX_D];
    p->d = d;
    p->m = m;
    p->sigma = cfg->sigma;
    if (nvp_rng_normal(rng, m * d, draw) != NVP_OK)
        return -1;
    for (size_t i = 0; i < m * d; i++)
        p->a[i] = draw[i];
    /* Precision P = I + A^T A / sigma^2; Sigma = P^-1 column by column
     * from P's Cholesky factor (forward, then backward substitution). */
    const double s2 = cfg->sigma * cfg->sigma;
    double prec[MAX_D * MAX_D] = {0}, r[MAX_D * MAX_D];
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) {
            double v = i == j ? 1.0 : 0.0;
            for (size_t t = 0; t < m; t++)
                v += p->a[t * d + i] * p->a[t * d + j] / s2;
            prec[i * d + j] = v;
        }
    if (cholesky(d, prec, r))
        return -1;
    for (size_t c = 0; c < d; c++) {
        double y[MAX_D];
        for (size_t i = 0; i < d; i++) { /* R y = e_c */
            double v = i == c ? 1.0 : 0.0;
            for (size_t k = 0; k < i; k++)
                v -= r[i * d + k] * y[k];
            y[i] = v / r[i * d + i];
        }
        for (size_t i = d; i-- > 0;) { /* R^T z = y, z into column c */
            double v = y[i];
            for (size_t k = i + 1; k < d; k++)
                v -= r[k * d + i] * p->cov[k * d + c];
            p->cov[i * d + c] = v / r[i * d + i];
        }
    }
    if (cholesky(d, p->cov, p->chol))
        return -1;
    for (size_t i = 0; i < d; i++)
        for (size_t t = 0; t < m; t++) {
            double v = 0.0;
            for (size_t j = 0; j < d; j++)
                v += p->cov[i * d + j] * p->a[t * d + j];
            p->k[i * m + t] = v / s2;
        }
    p->log_norm = -0.5 * (double)d * LOG_2PI;
    for (size_t i = 0; i < d; i++)
        p->log_norm -= log(p->chol[i * d + i]);
    return 0;
}

/* n pairs from the joint: theta ~ N(0, I), x = A theta + sigma eps. */
static int simulate(const problem *p, nvp_rng *rng, size_t n, float *theta,
                    float *x, float *scratch /* n * m */)
{
    const size_t d = p->d, m = p->m;
    if (nvp_rng_normal(rng, n * d, theta) != NVP_OK ||
        nvp_rng_normal(rng, n * m, scratch) != NVP_OK)
        return -1;
    for (size_t r = 0; r < n; r++)
        for (size_t t = 0; t < m; t++) {
            double v = p->sigma * scratch[r * m + t];
            for (size_t j = 0; j < d; j++)
                v += p->a[t * d + j] * theta[r * d + j];
            x[r * m + t] = (float)v;
        }
    return 0;
}

static void posterior_mean(const problem *p, const float *x, double *mu)
{
    for (size_t i = 0; i < p->d; i++) {
        double v = 0.0;
        for (size_t t = 0; t < p->m; t++)
            v += p->k[i * p->m + t] * x[t];
        mu[i] = v;
    }
}

/* ------------------------------------------------------------ pipeline */

typedef struct job {
    problem prob;
    nvp_rng *rng;       /* training simulations, weights, minibatches */
    nvp_rng *eval_rng;  /* held-out draws */
    nvp_scaler *scaler; /* standardises x */
    nvp_chain *chain;
    nvp_adam *opt;
    size_t n_train, n_val;
    float *theta, *x;   /* n_sims rows: training rows, then validation */
    float *lp;          /* n_val */
    float *best, *cur;  /* parameter vectors */
    double exact_nll;   /* the exact posterior's validation NLL */
} job;

static void job_free(job *j)
{
    nvp_adam_free(j->opt);
    nvp_chain_free(j->chain);
    nvp_scaler_free(j->scaler);
    nvp_rng_free(j->rng);
    nvp_rng_free(j->eval_rng);
    free(j->theta);
    free(j->x);
    free(j->lp);
    free(j->best);
    free(j->cur);
}

/* 1. The problem and the training simulations. */
static int make_data(const config *cfg, job *j)
{
    nvp_rng *a_rng = NULL;
    int rc;
    if ((rc = nvp_rng_create(&a_rng, cfg->seed, NULL)) != NVP_OK ||
        (rc = nvp_rng_create(&j->rng, cfg->seed + SIM_SEED_OFFSET, NULL)) !=
            NVP_OK ||
        (rc = nvp_rng_create(&j->eval_rng, cfg->seed + EVAL_SEED_OFFSET,
                             NULL)) != NVP_OK) {
        nvp_rng_free(a_rng);
        return ex_lib_error("nvp_rng_create", rc, nvp_errmsg());
    }
    rc = problem_init(&j->prob, cfg, a_rng);
    nvp_rng_free(a_rng);
    if (rc)
        return ex_error("could not set up the simulator's posterior");
    const size_t n = cfg->n_sims, d = cfg->d, m = cfg->m;
    j->n_val = n / 10;
    j->n_train = n - j->n_val;
    j->theta = malloc(n * d * sizeof *j->theta);
    j->x = malloc(n * m * sizeof *j->x);
    j->lp = malloc(j->n_val * sizeof *j->lp);
    float *scratch = malloc(n * m * sizeof *scratch);
    if (!j->theta || !j->x || !j->lp || !scratch) {
        free(scratch);
        return ex_error("out of memory");
    }
    rc = simulate(&j->prob, j->rng, n, j->theta, j->x, scratch);
    free(scratch);
    if (rc)
        return ex_error("simulating failed");
    /* The floor for the flow's validation NLL: the exact posterior's, on
     * the same rows (their difference estimates the mean KL). */
    double sum = 0.0;
    for (size_t r = j->n_train; r < n; r++) {
        double mu[MAX_D], z[MAX_D];
        posterior_mean(&j->prob, j->x + r * m, mu);
        for (size_t i = 0; i < d; i++) { /* z = L^-1 (theta - mu) */
            double v = j->theta[r * d + i] - mu[i];
            for (size_t k = 0; k < i; k++)
                v -= j->prob.chol[i * d + k] * z[k];
            z[i] = v / j->prob.chol[i * d + i];
            sum += 0.5 * z[i] * z[i];
        }
        sum -= j->prob.log_norm;
    }
    j->exact_nll = sum / (double)j->n_val;
    /* The conditioners see x standardised with the training part's
     * statistics (the validation and held-out x go through the same
     * map); theta is left as it is: the linear layer fits its scale. */
    if ((rc = nvp_scaler_create(&j->scaler, m, NULL)) != NVP_OK ||
        (rc = nvp_scaler_fit(j->scaler, j->n_train, j->x)) != NVP_OK ||
        (rc = nvp_scaler_transform(j->scaler, n, j->x, j->x)) != NVP_OK)
        return ex_lib_error("standardising x", rc, nvp_errmsg());
    return EX_OK;
}

/* 2. The flow: base N(0, I), a linear layer, then conditional couplings
 *    alternating between the even and the odd coordinates (for D = 2,
 *    the two halves).  The linear layer sits on the base side: the exact
 *    posterior is a fixed Gaussian shape moved by mu(x), which the linear
 *    layer gives the shape of and the couplings' shifts the move. */
static int make_flow(const config *cfg, job *j)
{
    const size_t d = cfg->d, m = cfg->m, k = cfg->couplings;
    nvp_layer *layers[MAX_COUPLINGS + 1] = {NULL};
    nvp_base *base = NULL;
    int rc = nvp_base_create_normal(&base, d, NULL);
    if (rc == NVP_OK)
        rc = nvp_layer_create_linear(&layers[0], d, NULL);
    for (size_t c = 0; c < k && rc == NVP_OK; c++) {
        unsigned char mask[MAX_D];
        for (size_t i = 0; i < d; i++)
            mask[i] = (unsigned char)((i + c) % 2);
        nvp_coupling *cp = NULL;
        /* Zero output layer: every coupling starts as the identity, so
         * the fresh chain is the Gaussian fit the linear layer gets. */
        rc = nvp_coupling_create_conditional(&cp, d, m, mask, cfg->n_hidden,
                                             cfg->hidden,
                                             NVP_INIT_ZERO_OUTPUT, j->rng,
                                             NULL);
        layers[c + 1] = cp ? nvp_coupling_as_layer(cp) : NULL;
    }
    if (rc == NVP_OK)
        rc = nvp_chain_create_from_layers(&j->chain, base, k + 1, layers,
                                          NULL);
    if (rc != NVP_OK) {
        for (size_t c = 0; c <= k; c++)
            nvp_layer_free(layers[c]);
        nvp_base_free(base);
        return ex_lib_error("building the flow", rc, nvp_errmsg());
    }
    /* One thread: the figures in docs/sbi.md are for one core. */
    if ((rc = nvp_chain_set_threads(j->chain, 1)) != NVP_OK ||
        (rc = nvp_chain_init_from_data_given(j->chain, j->n_train, j->theta,
                                             j->x)) != NVP_OK)
        return ex_lib_error("initialising the flow", rc,
                            nvp_chain_errmsg(j->chain));
    const size_t n_params = nvp_chain_num_params(j->chain);
    j->best = malloc(n_params * sizeof *j->best);
    j->cur = malloc(n_params * sizeof *j->cur);
    if (!j->best || !j->cur)
        return ex_error("out of memory");
    nvp_chain_get_params(j->chain, n_params, j->best);
    if ((rc = nvp_adam_create(&j->opt, n_params, NULL)) != NVP_OK ||
        (rc = nvp_adam_set_lr(j->opt, (float)cfg->lr)) != NVP_OK ||
        (cfg->ema > 0.0 &&
         (rc = nvp_adam_set_average(j->opt, (float)cfg->ema, n_params,
                                    j->best)) != NVP_OK))
        return ex_lib_error("setting up Adam", rc,
                            j->opt ? nvp_adam_errmsg(j->opt) : nvp_errmsg());
    char hidden[256];
    num_format_list(hidden, sizeof hidden, cfg->hidden, cfg->n_hidden);
    printf("%s: nvpflow %s; D=%zu, m=%zu, sigma=%g; %zu simulations "
           "(%zu train, %zu validation); linear + %zu conditional couplings, "
           "hidden %s (%zu parameters); Adam lr %g, batch %zu, ema %g, "
           "seed %llu\n",
           ex_program(), nvp_version_string(), d, m, cfg->sigma, cfg->n_sims,
           j->n_train, j->n_val, k, hidden, n_params, cfg->lr, cfg->batch,
           cfg->ema, (unsigned long long)cfg->seed);
    fflush(stdout);
    return EX_OK;
}

/* Mean validation NLL of the chain's current parameters. */
static int validation_nll(job *j, double *nll)
{
    const size_t d = j->prob.d, m = j->prob.m;
    int rc = nvp_chain_log_prob_given(j->chain, j->n_val,
                                      j->theta + j->n_train * d,
                                      j->x + j->n_train * m, j->lp);
    if (rc != NVP_OK)
        return ex_lib_error("validation log_prob_given", rc,
                            nvp_chain_errmsg(j->chain));
    double sum = 0.0;
    for (size_t i = 0; i < j->n_val; i++)
        sum -= j->lp[i];
    *nll = sum / (double)j->n_val;
    return EX_OK;
}

/* The validation NLL of what would be reported: the parameter average
 * when there is one (swapped in for the evaluation, then the last
 * iterate is put back to train on), else the last iterate.  The
 * parameters scored are copied into `scored`, for keeping the best. */
static int check_point(const config *cfg, job *j, float *scored,
                       double *nll)
{
    const size_t n_params = nvp_chain_num_params(j->chain);
    int rc, status;
    if (cfg->ema <= 0.0) {
        nvp_chain_get_params(j->chain, n_params, scored);
        return validation_nll(j, nll);
    }
    nvp_chain_get_params(j->chain, n_params, j->cur);
    if ((rc = nvp_adam_get_average(j->opt, n_params, scored)) != NVP_OK ||
        (rc = nvp_chain_set_params(j->chain, n_params, scored)) != NVP_OK)
        return ex_lib_error("reading the parameter average", rc,
                            nvp_errmsg());
    status = validation_nll(j, nll);
    if ((rc = nvp_chain_set_params(j->chain, n_params, j->cur)) != NVP_OK)
        return ex_lib_error("restoring the parameters", rc, nvp_errmsg());
    return status;
}

typedef struct training {
    unsigned long steps, refused, best_step;
    double best_nll, seconds;
} training;

/* 3. Training with early stopping: a check every eval_every steps; after
 *    `patience` checks without a better validation NLL the step size
 *    drops tenfold, after the next such plateau training stops.  The best
 *    parameters checked become the model. */
static int train(const config *cfg, job *j, training *t)
{
    const size_t n_params = nvp_chain_num_params(j->chain);
    float window[LOSS_WINDOW];
    float *scored = malloc(n_params * sizeof *scored);
    if (!scored)
        return ex_error("out of memory");
    *t = (training){0};
    int status = validation_nll(j, &t->best_nll);
    if (status != EX_OK) {
        free(scored);
        return status;
    }
    if (!cfg->quiet)
        fprintf(stderr, "%s: validation NLL of the Gaussian start %.4f\n",
                ex_program(), t->best_nll);
    unsigned long applied = 0, refused_in_a_row = 0, stale = 0;
    int lowered = 0;
    ex_progress bar;
    ex_progress_init(&bar, !cfg->quiet && cfg->max_steps > 0,
                     cfg->max_steps);
    const double t0 = ex_now();
    for (unsigned long step = 1; step <= cfg->max_steps; step++) {
        float loss = NAN;
        int rc = nvp_chain_train_step_given(j->chain, j->opt, j->rng,
                                            j->n_train, j->theta, j->x,
                                            cfg->batch, &loss);
        t->steps = step;
        if (rc == NVP_ENONFINITE) {
            t->refused++;
            if (++refused_in_a_row >= MAX_REFUSED_IN_A_ROW) {
                ex_progress_end(&bar);
                ex_warn("%d steps in a row refused; training stops at "
                        "step %lu", MAX_REFUSED_IN_A_ROW, step);
                break;
            }
            continue;
        }
        if (rc != NVP_OK) {
            ex_progress_end(&bar);
            free(scored);
            return ex_lib_error("training step", rc,
                                nvp_chain_errmsg(j->chain));
        }
        refused_in_a_row = 0;
        window[applied++ % LOSS_WINDOW] = loss;
        if (ex_progress_due(&bar)) {
            const size_t have = applied < LOSS_WINDOW ? applied : LOSS_WINDOW;
            double mean = 0.0;
            for (size_t i = 0; i < have; i++)
                mean += window[i] / (double)have;
            ex_progress_draw(&bar, step, cfg->max_steps, mean);
        }
        if (step % cfg->eval_every != 0)
            continue;
        double nll;
        if ((status = check_point(cfg, j, scored, &nll)) != EX_OK) {
            free(scored);
            return status;
        }
        /* An improvement smaller than this is noise in the validation
         * mean (its standard error is about 1e-2 / sqrt(n_val / 5000)). */
        if (nll < t->best_nll - 1e-3) {
            t->best_nll = nll;
            t->best_step = step;
            memcpy(j->best, scored, n_params * sizeof *scored);
            stale = 0;
        } else if (nll < t->best_nll) {
            /* Keep the better parameters, but it counts as a plateau. */
            t->best_nll = nll;
            t->best_step = step;
            memcpy(j->best, scored, n_params * sizeof *scored);
            stale++;
        } else {
            stale++;
        }
        if (stale >= cfg->patience) {
            if (lowered)
                break;
            lowered = 1;
            stale = 0;
            nvp_adam_set_lr(j->opt, (float)(cfg->lr * 0.1));
            if (!cfg->quiet) {
                ex_progress_end(&bar);
                fprintf(stderr, "%s: plateau at step %lu (best validation "
                        "NLL %.4f at step %lu): step size now %g\n",
                        ex_program(), step, t->best_nll, t->best_step,
                        cfg->lr * 0.1);
            }
        }
    }
    ex_progress_end(&bar);
    t->seconds = ex_now() - t0;
    free(scored);
    int rc = nvp_chain_set_params(j->chain, n_params, j->best);
    if (rc != NVP_OK)
        return ex_lib_error("setting the best parameters", rc,
                            nvp_chain_errmsg(j->chain));
    printf("training: %lu steps (%lu refused) in %.1f s; best validation "
           "NLL %.4f at step %lu (the exact posterior's: %.4f)\n",
           t->steps, t->refused, t->seconds, t->best_nll, t->best_step,
           j->exact_nll);
    fflush(stdout);
    return EX_OK;
}

/* The evaluation loops' progress on stderr: "what done/total", redrawn
 * at most once a second and ended with a newline at the last one. */
static void eval_progress(const config *cfg, const char *what, size_t done,
                          size_t total, double *last)
{
    if (cfg->quiet)
        return;
    const double now = ex_now();
    if (done < total && now - *last < 1.0)
        return;
    *last = now;
    fprintf(stderr, "\r%s: %s %zu/%zu%s", ex_program(), what, done, total,
            done == total ? "\n" : "");
    fflush(stderr);
}

/* 4a. KL(p(.|x) || q(.|x)) for n_obs held-out x, each by Monte Carlo over
 *     kl_draws draws from the exact posterior. */
static int evaluate_kl(const config *cfg, job *j, double *kl_mean,
                       double *kl_se, double *kl_max)
{
    const problem *p = &j->prob;
    const size_t d = p->d, m = p->m, s = cfg->kl_draws;
    float theta0[MAX_D], x[MAX_M], scratch[MAX_M];
    float *eps = malloc(s * d * sizeof *eps);
    float *th = malloc(s * d * sizeof *th);
    float *ctx = malloc(s * m * sizeof *ctx);
    float *lq = malloc(s * sizeof *lq);
    double *kls = malloc(cfg->n_obs * sizeof *kls);
    double shown = 0.0;
    int status = EX_FAILED;
    if (!eps || !th || !ctx || !lq || !kls) {
        ex_error("out of memory");
        goto done;
    }
    for (size_t o = 0; o < cfg->n_obs; o++) {
        double mu[MAX_D];
        int rc;
        if (simulate(p, j->eval_rng, 1, theta0, x, scratch) ||
            nvp_rng_normal(j->eval_rng, s * d, eps) != NVP_OK) {
            ex_error("simulating failed");
            goto done;
        }
        posterior_mean(p, x, mu);
        if ((rc = nvp_scaler_transform(j->scaler, 1, x, x)) != NVP_OK) {
            ex_lib_error("standardising x", rc, nvp_errmsg());
            goto done;
        }
        double sum_lp = 0.0;
        for (size_t r = 0; r < s; r++) {
            double sq = 0.0;
            for (size_t i = 0; i < d; i++) {
                double v = mu[i];
                for (size_t k = 0; k <= i; k++)
                    v += p->chol[i * d + k] * eps[r * d + k];
                th[r * d + i] = (float)v;
                sq += (double)eps[r * d + i] * eps[r * d + i];
            }
            /* (theta - mu)^T Sigma^-1 (theta - mu) = |eps|^2 */
            sum_lp += p->log_norm - 0.5 * sq;
            memcpy(ctx + r * m, x, m * sizeof *x);
        }
        if ((rc = nvp_chain_log_prob_given(j->chain, s, th, ctx, lq)) !=
            NVP_OK) {
            ex_lib_error("log_prob_given", rc, nvp_chain_errmsg(j->chain));
            goto done;
        }
        double sum_lq = 0.0;
        for (size_t r = 0; r < s; r++)
            sum_lq += lq[r];
        kls[o] = (sum_lp - sum_lq) / (double)s;
        eval_progress(cfg, "KL, observation", o + 1, cfg->n_obs, &shown);
    }
    double sum = 0.0, sq = 0.0, mx = -INFINITY;
    for (size_t o = 0; o < cfg->n_obs; o++) {
        sum += kls[o];
        mx = kls[o] > mx ? kls[o] : mx;
    }
    *kl_mean = sum / (double)cfg->n_obs;
    for (size_t o = 0; o < cfg->n_obs; o++)
        sq += (kls[o] - *kl_mean) * (kls[o] - *kl_mean);
    /* The standard error over observations (each KL's own Monte Carlo
     * noise is part of the spread). */
    *kl_se = cfg->n_obs > 1
                 ? sqrt(sq / (double)(cfg->n_obs - 1) / (double)cfg->n_obs)
                 : NAN;
    *kl_max = mx;
    status = EX_OK;
done:
    free(eps);
    free(th);
    free(ctx);
    free(lq);
    free(kls);
    return status;
}

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of n sorted values, linear between order statistics. */
static double quantile(const float *sorted, size_t n, double q)
{
    const double pos = q * (double)(n - 1);
    const size_t lo = (size_t)pos;
    const size_t hi = lo + 1 < n ? lo + 1 : lo;
    const double w = pos - (double)lo;
    return (1.0 - w) * sorted[lo] + w * sorted[hi];
}

/* 4b. Calibration: for n_cal pairs from the joint, every coordinate's
 *     central 90% interval from cal_draws draws of q(. | x); hits[i]
 *     counts the pairs whose theta_i falls inside.  exact[i] counts the
 *     same for the exact posterior's interval mu_i +- 1.645 sd_i. */
static int evaluate_coverage(const config *cfg, job *j, size_t *hits,
                             size_t *exact, double *mean_z)
{
    const problem *p = &j->prob;
    const size_t d = p->d, s = cfg->cal_draws;
    float theta0[MAX_D], x[MAX_M], scratch[MAX_M];
    float *y = malloc(s * d * sizeof *y);
    float *col = malloc(s * sizeof *col);
    int status = EX_FAILED;
    double z_sum = 0.0, shown = 0.0;
    if (!y || !col) {
        ex_error("out of memory");
        goto done;
    }
    for (size_t i = 0; i < d; i++)
        hits[i] = exact[i] = 0;
    for (size_t c = 0; c < cfg->n_cal; c++) {
        double mu[MAX_D];
        int rc;
        if (simulate(p, j->eval_rng, 1, theta0, x, scratch)) {
            ex_error("simulating failed");
            goto done;
        }
        posterior_mean(p, x, mu);
        if ((rc = nvp_scaler_transform(j->scaler, 1, x, x)) != NVP_OK ||
            (rc = nvp_chain_sample_given_one(j->chain, j->eval_rng, s, x, y,
                                             NULL)) != NVP_OK) {
            ex_lib_error("sample_given_one", rc, nvp_chain_errmsg(j->chain));
            goto done;
        }
        for (size_t i = 0; i < d; i++) {
            double mean_q = 0.0;
            for (size_t r = 0; r < s; r++) {
                col[r] = y[r * d + i];
                mean_q += col[r] / (double)s;
            }
            qsort(col, s, sizeof *col, cmp_float);
            const double lo = quantile(col, s, 0.05);
            const double hi = quantile(col, s, 0.95);
            hits[i] += theta0[i] >= lo && theta0[i] <= hi;
            const double sd = sqrt(p->cov[i * d + i]);
            exact[i] += fabs(theta0[i] - mu[i]) <= Z95 * sd;
            z_sum += fabs(mean_q - mu[i]) / sd;
        }
        eval_progress(cfg, "calibration, pair", c + 1, cfg->n_cal, &shown);
    }
    *mean_z = z_sum / (double)(cfg->n_cal * d);
    status = EX_OK;
done:
    free(y);
    free(col);
    return status;
}

int main(int argc, char **argv)
{
    ex_init("sbi_linear_gaussian", 1);
    config cfg;
    int rc = parse_args(argc, argv, &cfg);
    if (rc)
        return ex_finish(rc == 1 ? EX_OK : EX_USAGE);
    ex_check_version();
    const double t0 = ex_now();
    job j = {0};
    training t;
    double kl = NAN, kl_se = NAN, kl_max = NAN, mean_z = NAN;
    size_t hits[MAX_D], exact[MAX_D];
    int status = make_data(&cfg, &j);
    if (status == EX_OK)
        status = make_flow(&cfg, &j);
    if (status == EX_OK)
        status = train(&cfg, &j, &t);
    if (status == EX_OK)
        status = evaluate_kl(&cfg, &j, &kl, &kl_se, &kl_max);
    if (status == EX_OK)
        status = evaluate_coverage(&cfg, &j, hits, exact, &mean_z);
    if (status == EX_OK) {
        const double n = (double)cfg.n_cal;
        size_t all = 0, all_exact = 0;
        printf("KL(p || q): mean %.4f nats (standard error %.4f, largest "
               "%.4f) over %zu observations, %zu true-posterior draws each\n",
               kl, kl_se, kl_max, cfg.n_obs, cfg.kl_draws);
        printf("90%% central intervals from %zu flow draws, %zu pairs:\n",
               cfg.cal_draws, cfg.n_cal);
        for (size_t i = 0; i < cfg.d; i++) {
            printf("  theta%zu: coverage %.3f (exact posterior's interval: "
                   "%.3f)\n",
                   i + 1, (double)hits[i] / n, (double)exact[i] / n);
            all += hits[i];
            all_exact += exact[i];
        }
        printf("  overall: coverage %.3f (exact posterior's interval: "
               "%.3f); flow's mean off by %.3f posterior sd on average\n",
               (double)all / (n * (double)cfg.d),
               (double)all_exact / (n * (double)cfg.d), mean_z);
        printf("kl_mean=%.4f\n", kl);
        for (size_t i = 0; i < cfg.d; i++)
            printf("coverage_theta%zu=%.3f\n", i + 1, (double)hits[i] / n);
        printf("coverage=%.3f\n", (double)all / (n * (double)cfg.d));
        printf("seconds=%.1f\n", ex_now() - t0);
    }
    job_free(&j);
    return ex_finish(status);
}
