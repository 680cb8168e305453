/* SPDX-License-Identifier: MIT */
/*
 * two_moons.c - the library's main example ("make demo").
 *
 * The tutorial end to end, with the reference configuration as defaults:
 *   1. data: 2000 two-moons points, noise sd 0.05, standardised per axis
 *      with a scaler fitted on them;
 *   2. flow: N(0, I) base and 4 affine couplings with alternating masks,
 *      each conditioner an MLP 1 -> 512 -> 512 -> 2;
 *   3. training: Adam, step size 1e-4, minibatches of 100 drawn with
 *      replacement, 10,000 steps, with a one-line progress display; to
 *      these the example adds gradient-norm clipping at 300 (--clip) and
 *      a running average of the parameters (--ema), both kept by the
 *      library's optimizer;
 *   4. evaluation: the mean negative log-likelihood (nats per point, in the
 *      standardised space) of a fresh 2000-point draw from another seed,
 *      standardised with the training scaler, for the parameter average
 *      (reported) and the last iterate;
 *   5. a figure (SVG): data, base samples, the samples after each layer,
 *      and the learned density;
 *   6. an animation (GIF): the base samples bent layer by layer.
 * The very last line on stdout is "heldout_nll=<value>", for scripts.
 *
 * Exit status: 0 on success, 1 when the library or a file write fails,
 * 2 for a bad command line, 3 when training stopped early because step
 * after step was refused (the model is still evaluated and drawn).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "nvpflow.h"

#include "common/messages.h"
#include "common/options.h"
#include "common/outputs.h"
#include "common/progress.h"
#include "figure/flow_figure.h"
#include "numparse.h"

/* Fixed parts of the reference configuration. */
#define N_DATA 2000        /* training points, and held-out points */
#define NOISE 0.05f        /* two-moons noise sd */
#define N_FIGURE 1000      /* base samples shown in the figure / animation */
#define DENSITY_GRID 100   /* heat map cells per axis */
#define AXIS_LO (-3.0f)
#define AXIS_HI 3.0f
#define LOSS_WINDOW 100    /* the progress line shows the mean of these */
/* A step the library refuses (NVP_ENONFINITE: a non-finite loss or a
 * gradient too large for Adam's moments) changes nothing and is skipped,
 * as a mixed-precision trainer skips an overflowing step; this many
 * refusals in a row end the training, and the model as it stands is
 * evaluated and drawn. */
#define MAX_REFUSED_IN_A_ROW 100
#define EXIT_STOPPED 3 /* besides EX_OK, EX_FAILED and EX_USAGE */
#define MAX_STEPS 1000000000UL
#define MAX_BATCH 1000000UL
#define MAX_FIGURE_LAYERS 64 /* beyond this the figure is unreadable */
/* Seeds of the held-out draw and of the figure's base samples, offset from
 * --seed so that neither overlaps the training stream. */
#define EVAL_SEED_OFFSET 1000003u
#define FIGURE_SEED_OFFSET 2000006u
/* Gradient-norm clipping (--clip).  In the reference configuration the
 * minibatch gradient's norm is typically 20-30, but a few steps in ten
 * thousand reach thousands; Adam's second moment then holds such a spike
 * for thousands of steps and all but stops the parameters it touched.  A
 * limit of 300, about ten times the typical norm, clips only those rare
 * steps (2 to 32 per run over seeds 20-39).  Chosen over 100 and 200 on
 * seeds 20-39; see docs/main-job.md, "Gradient spikes". */
#define DEFAULT_CLIP 300.0
#define DEFAULT_CLIP_TEXT "300"

typedef struct config {
    unsigned long steps;
    double lr;
    double ema; /* decay of the parameter average; 0: last iterate */
    double clip; /* gradient-norm limit; 0: no clipping */
    size_t batch;
    size_t hidden[NVP_MAX_HIDDEN_LAYERS];
    size_t n_hidden;
    size_t layers;
    uint64_t seed;
    const char *svg_path;
    const char *gif_path;
    int quiet;
} config;

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: %s [options]\n"
            "Trains a Real-NVP flow on two moons, reports the held-out NLL,\n"
            "and writes a figure (SVG) and an animation (GIF).\n"
            "\n"
            "Options (defaults: the reference configuration):\n"
            "  --steps N        training steps (default 10000; 0 = untrained)\n"
            "  --lr X           Adam step size (default 1e-4)\n"
            "  --ema D          report and draw the exponential moving average\n"
            "                   of the parameters with decay D (Polyak\n"
            "                   averaging; default 0.999; 0 = last iterate)\n"
            "  --clip C         scale a minibatch gradient whose norm exceeds C\n"
            "                   down to norm C (default " DEFAULT_CLIP_TEXT
            "; 0 = off)\n"
            "  --batch N        minibatch size, drawn with replacement "
            "(default 100)\n"
            "  --hidden W1,W2   conditioner hidden widths (default 512,512)\n"
            "  --layers K       coupling layers, 1..%d (default 4)\n"
            "  --seed S         random seed, 0..2^64-1 (default 0)\n"
            "  --svg PATH       figure file (default two_moons.svg)\n"
            "  --gif PATH       animation file (default two_moons.gif)\n"
            "  --quiet          no progress line on stderr\n"
            "  --help           this text\n"
            "Options take their value as the next argument or after '='.\n"
            "The last line on stdout is heldout_nll=<nats per point>.\n"
            "Exit status 3: training stopped after %d refused steps in a "
            "row\n(the model is still evaluated and drawn).\n",
            ex_program(), MAX_FIGURE_LAYERS, MAX_REFUSED_IN_A_ROW);
}

/* ------------------------------------------------------------ options */

enum {
    O_HELP = 'h', O_QUIET = 'q',
    O_STEPS = 256, O_LR, O_EMA, O_CLIP, O_BATCH, O_HIDDEN, O_LAYERS, O_SEED,
    O_SVG, O_GIF
};

static const struct option LONG_OPTS[] = {
    {"steps", required_argument, NULL, O_STEPS},
    {"lr", required_argument, NULL, O_LR},
    {"ema", required_argument, NULL, O_EMA},
    {"clip", required_argument, NULL, O_CLIP},
    {"batch", required_argument, NULL, O_BATCH},
    {"hidden", required_argument, NULL, O_HIDDEN},
    {"layers", required_argument, NULL, O_LAYERS},
    {"seed", required_argument, NULL, O_SEED},
    {"svg", required_argument, NULL, O_SVG},
    {"gif", required_argument, NULL, O_GIF},
    {"quiet", no_argument, NULL, O_QUIET},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

/* Returns 0 to run, 1 when --help was printed, 2 on a bad command line. */
static int parse_args(int argc, char **argv, config *cfg)
{
    *cfg = (config){.steps = 10000,
                    .lr = 1e-4,
                    .ema = 0.999,
                    .clip = DEFAULT_CLIP,
                    .batch = 100,
                    .hidden = {512, 512},
                    .n_hidden = 2,
                    .layers = 4,
                    .seed = 0,
                    .svg_path = "two_moons.svg",
                    .gif_path = "two_moons.gif",
                    .quiet = 0};
    opts o;
    opts_init(&o, argc, argv, "hq", LONG_OPTS);
    const char *v;
    int id, bad = 0;
    uint64_t u = 0;
    while (!bad && (id = ex_next_option(&o, &v)) != OPTS_END) {
        switch (id) {
        case O_HELP:
            usage(stdout);
            return 1;
        case O_QUIET: cfg->quiet = 1; break;
        case O_STEPS:
            bad = ex_opt_uint(o.name, v, 0, MAX_STEPS, &u);
            cfg->steps = (unsigned long)u;
            break;
        case O_LR: bad = ex_opt_step_size(o.name, v, &cfg->lr); break;
        case O_EMA: bad = ex_opt_decay(o.name, v, &cfg->ema); break;
        case O_CLIP: bad = ex_opt_limit(o.name, v, &cfg->clip); break;
        case O_BATCH:
            bad = ex_opt_uint(o.name, v, 1, MAX_BATCH, &u);
            cfg->batch = (size_t)u;
            break;
        case O_HIDDEN:
            bad = ex_opt_widths(o.name, v, EX_WIDTH_LIMITS ", e.g. 512,512",
                                cfg->hidden, &cfg->n_hidden);
            break;
        case O_LAYERS:
            bad = ex_opt_uint(o.name, v, 1, MAX_FIGURE_LAYERS, &u);
            cfg->layers = (size_t)u;
            break;
        case O_SEED: bad = ex_opt_uint(o.name, v, 0, UINT64_MAX, &cfg->seed);
            break;
        case O_SVG: bad = ex_opt_path(o.name, v, &cfg->svg_path); break;
        case O_GIF: bad = ex_opt_path(o.name, v, &cfg->gif_path); break;
        default: bad = 1; break; /* EX_OPT_ERROR, said already */
        }
    }
    if (bad)
        return 2;
    const char *const names[] = {"--svg", "--gif"};
    const char *const paths[] = {cfg->svg_path, cfg->gif_path};
    return ex_distinct_outputs(names, paths, 2) != 0 ? 2 : 0;
}

/* ------------------------------------------------------------ pipeline */

/* What the steps below build and hand on. */
typedef struct job {
    nvp_rng *rng;       /* the training stream: data, weights, minibatches */
    nvp_scaler *scaler; /* fitted on the training data */
    nvp_chain *chain;
    nvp_adam *opt;
    float *data;        /* N_DATA standardised training points */
    int *labels;        /* the moon of each, for the figure */
    float *average;     /* with --ema: room for the parameter average */
} job;

static void job_free(job *j)
{
    nvp_adam_free(j->opt);
    nvp_chain_free(j->chain);
    nvp_scaler_free(j->scaler);
    nvp_rng_free(j->rng);
    free(j->data);
    free(j->labels);
    free(j->average);
}

/* How training went. */
typedef struct training {
    unsigned long applied, refused, clipped;
    unsigned long stopped_at; /* the step where training gave up, or 0 */
    double loss;              /* mean of the last applied minibatches */
    double seconds;
} training;

/* The held-out NLL of the model reported, and of the last iterate (NAN
 * without --ema). */
typedef struct evaluation {
    double nll, last_nll;
} evaluation;

/* 1. Data: two moons, standardised; the scaler is kept for the held-out
 *    set. */
static int make_data(const config *cfg, job *j)
{
    j->data = malloc((size_t)N_DATA * 2 * sizeof *j->data);
    j->labels = malloc((size_t)N_DATA * sizeof *j->labels);
    if (!j->data || !j->labels)
        return ex_error("out of memory");
    int rc = nvp_rng_create(&j->rng, cfg->seed, NULL);
    if (rc != NVP_OK)
        return ex_lib_error("nvp_rng_create", rc, nvp_errmsg());
    if ((rc = nvp_two_moons(j->rng, N_DATA, NOISE, j->data, j->labels)) !=
        NVP_OK)
        return ex_lib_error("nvp_two_moons", rc, nvp_rng_errmsg(j->rng));
    if ((rc = nvp_scaler_create(&j->scaler, 2, NULL)) != NVP_OK)
        return ex_lib_error("nvp_scaler_create", rc, nvp_errmsg());
    if ((rc = nvp_scaler_fit(j->scaler, N_DATA, j->data)) != NVP_OK ||
        (rc = nvp_scaler_transform(j->scaler, N_DATA, j->data, j->data)) !=
            NVP_OK)
        return ex_lib_error("standardising the data", rc,
                            nvp_scaler_errmsg(j->scaler));
    return EX_OK;
}

/* 2. The flow: alternating half-split couplings, each with its own
 *    initial parameters from the seeded generator; Adam with clipping
 *    and the parameter average. */
static int make_flow(const config *cfg, job *j)
{
    int rc = nvp_chain_create_alternating(&j->chain, 2, cfg->layers,
                                          cfg->n_hidden, cfg->hidden, 0,
                                          j->rng, NULL);
    if (rc != NVP_OK)
        return ex_lib_error("nvp_chain_create_alternating", rc,
                            nvp_errmsg());
    const size_t n_params = nvp_chain_num_params(j->chain);
    if ((rc = nvp_adam_create(&j->opt, n_params, NULL)) != NVP_OK ||
        (rc = nvp_adam_set_lr(j->opt, (float)cfg->lr)) != NVP_OK)
        return ex_lib_error("setting up Adam", rc,
                            j->opt ? nvp_adam_errmsg(j->opt) : nvp_errmsg());
    if (cfg->clip > 0.0 &&
        (rc = nvp_adam_set_clip_norm(j->opt, (float)cfg->clip)) != NVP_OK)
        return ex_lib_error("nvp_adam_set_clip_norm", rc,
                            nvp_adam_errmsg(j->opt));
    /* Polyak averaging: the last iterate of Adam at a fixed step size
     * jitters around the optimum; the average does not.  The optimizer
     * keeps the average, starting at the initial parameters, and updates
     * it in the same pass as the parameters. */
    if (cfg->ema > 0.0) {
        j->average = malloc(n_params * sizeof *j->average);
        if (!j->average)
            return ex_error("out of memory");
        nvp_chain_get_params(j->chain, n_params, j->average);
        if ((rc = nvp_adam_set_average(j->opt, (float)cfg->ema, n_params, j->average)) != NVP_OK)
            return ex_lib_error("nvp_adam_set_average", rc,
                                nvp_adam_errmsg(j->opt));
    }
    char hidden[256];
    num_format_list(hidden, sizeof hidden, cfg->hidden, cfg->n_hidden);
    printf("%s: nvpflow %s; %d points (noise %g), %zu layers, hidden %s "
           "(%zu parameters), Adam lr %g, clip %g, batch %zu, %lu steps, "
           "seed %llu\n",
           ex_program(), nvp_version_string(), N_DATA, (double)NOISE,
           cfg->layers, hidden, n_params, cfg->lr, cfg->clip, cfg->batch,
           cfg->steps, (unsigned long long)cfg->seed);
    fflush(stdout);
    return EX_OK;
}

/* The mean of the last LOSS_WINDOW losses of `applied` applied steps
 * (window is a ring of LOSS_WINDOW); NaN before the first. */
static double window_mean(const float *window, unsigned long applied)
{
    const size_t have = applied < LOSS_WINDOW ? applied : LOSS_WINDOW;
    double sum = 0.0;
    for (size_t i = 0; i < have; i++)
        sum += window[i];
    return have ? sum / (double)have : NAN;
}

/* 3. Training, with the progress line; a refused step is skipped. */
static int train(const config *cfg, job *j, training *t)
{
    float window[LOSS_WINDOW];
    *t = (training){0};
    unsigned long refused_in_a_row = 0;
    ex_progress bar;
    ex_progress_init(&bar, !cfg->quiet && cfg->steps > 0, cfg->steps);
    const double t_start = ex_now();
    for (unsigned long step = 1; step <= cfg->steps; step++) {
        float loss = NAN;
        int rc = nvp_chain_train_step(j->chain, j->opt, j->rng, N_DATA,
                                      j->data, cfg->batch, &loss);
        if (rc == NVP_ENONFINITE) {
            if (t->refused++ == 0) {
                /* Say it once, on its own line; the total comes at the
                 * end. */
                ex_progress_end(&bar);
                ex_error("step %lu refused and skipped: %s", step,
                         nvp_chain_errmsg(j->chain));
            }
            /* The library changed nothing, so the parameters are those of
             * the last applied step.  When step after step is refused they
             * give a non-finite loss on nearly every minibatch and training
             * cannot go on; the model as it stands (its parameter average
             * above all) is still evaluated and drawn. */
            if (++refused_in_a_row >= MAX_REFUSED_IN_A_ROW) {
                t->stopped_at = step;
                ex_progress_end(&bar);
                ex_warn("steps %lu to %lu were all refused; training stops "
                        "here",
                        step - MAX_REFUSED_IN_A_ROW + 1, step);
                break;
            }
            continue;
        }
        if (rc != NVP_OK) {
            ex_progress_end(&bar);
            char what[64];
            snprintf(what, sizeof what, "training step %lu", step);
            return ex_lib_error(what, rc, nvp_chain_errmsg(j->chain));
        }
        refused_in_a_row = 0;
        t->applied++;
        if (cfg->clip > 0.0 &&
            nvp_adam_last_grad_norm(j->opt) > (float)cfg->clip)
            t->clipped++;
        window[(t->applied - 1) % LOSS_WINDOW] = loss;
        if (step == cfg->steps || ex_progress_due(&bar))
            ex_progress_draw(&bar, step, cfg->steps,
                             window_mean(window, t->applied));
    }
    t->seconds = ex_now() - t_start;
    /* Again here: a refused last step skipped the update above. */
    t->loss = window_mean(window, t->applied);
    ex_progress_end(&bar);
    return EX_OK;
}

/* Mean negative log-likelihood of the N_DATA points of test, in nats per
 * point (lp is scratch). */
static int heldout_nll(const nvp_chain *chain, const float *test, float *lp,
                       double *nll)
{
    int rc = nvp_chain_log_prob(chain, N_DATA, test, lp);
    if (rc != NVP_OK)
        return rc;
    double sum = 0.0;
    for (size_t i = 0; i < N_DATA; i++)
        sum -= lp[i];
    *nll = sum / N_DATA;
    return NVP_OK;
}

/* 4. Held-out NLL: a fresh draw from another seed, standardised with the
 *    training scaler, in nats per point.  With --ema the last iterate is
 *    scored too, then the average becomes the model. */
static int evaluate(const config *cfg, job *j, evaluation *e)
{
    nvp_rng *eval_rng = NULL;
    float *test = malloc((size_t)N_DATA * 2 * sizeof *test);
    float *lp = malloc((size_t)N_DATA * sizeof *lp);
    const size_t n_params = nvp_chain_num_params(j->chain);
    int status = EX_FAILED, rc;
    e->last_nll = NAN;
    if (!test || !lp) {
        ex_error("out of memory");
        goto done;
    }
    if ((rc = nvp_rng_create(&eval_rng, cfg->seed + EVAL_SEED_OFFSET,
                             NULL)) != NVP_OK) {
        ex_lib_error("nvp_rng_create", rc, nvp_errmsg());
        goto done;
    }
    if ((rc = nvp_two_moons(eval_rng, N_DATA, NOISE, test, NULL)) != NVP_OK ||
        (rc = nvp_scaler_transform(j->scaler, N_DATA, test, test)) !=
            NVP_OK) {
        ex_lib_error("drawing the held-out set", rc, nvp_errmsg());
        goto done;
    }
    if (j->average) {
        if ((rc = heldout_nll(j->chain, test, lp, &e->last_nll)) != NVP_OK) {
            ex_lib_error("evaluating the last iterate", rc,
                         nvp_chain_errmsg(j->chain));
            goto done;
        }
        if ((rc = nvp_adam_get_average(j->opt, n_params, j->average)) !=
            NVP_OK) {
            ex_lib_error("nvp_adam_get_average", rc,
                         nvp_adam_errmsg(j->opt));
            goto done;
        }
        if ((rc = nvp_chain_set_params(j->chain, n_params, j->average)) !=
            NVP_OK) {
            ex_lib_error("nvp_chain_set_params", rc,
                         nvp_chain_errmsg(j->chain));
            goto done;
        }
    }
    if ((rc = heldout_nll(j->chain, test, lp, &e->nll)) != NVP_OK) {
        ex_lib_error("nvp_chain_log_prob", rc, nvp_chain_errmsg(j->chain));
        goto done;
    }
    if (!isfinite(e->nll))
        ex_warn("the held-out NLL is not finite");
    status = EX_OK;
done:
    nvp_rng_free(eval_rng);
    free(test);
    free(lp);
    return status;
}

/* 5 and 6. The figure and the animation of the model; *frames receives
 * the animation's length. */
static int draw(const config *cfg, const job *j, double nll,
                unsigned long *frames)
{
    char hidden[256], caption[512];
    num_format_list(hidden, sizeof hidden, cfg->hidden, cfg->n_hidden);
    snprintf(caption, sizeof caption,
             "Real NVP on two moons: %zu coupling layers, hidden %s, "
             "%lu steps of Adam (lr %g, batch %zu), seed %llu; "
             "held-out NLL %.4f nats/point",
             nvp_chain_num_layers(j->chain), hidden, cfg->steps, cfg->lr,
             cfg->batch, (unsigned long long)cfg->seed, nll);
    flow_figure f = {.chain = j->chain,
                     .n_data = N_DATA,
                     .data = j->data,
                     .labels = j->labels,
                     .n_samples = N_FIGURE,
                     .seed = cfg->seed + FIGURE_SEED_OFFSET,
                     .grid = DENSITY_GRID,
                     .caption = caption,
                     .svg_path = cfg->svg_path,
                     .gif_path = cfg->gif_path,
                     .animation = anim_default_options()};
    f.animation.lo = AXIS_LO;
    f.animation.hi = AXIS_HI;
    *frames = cfg->layers * f.animation.frames_per_layer + 1;
    return flow_figure_write(&f);
}

/* The summary on stdout; its last line is heldout_nll=<value>. */
static void report(const config *cfg, const training *t,
                   const evaluation *e, unsigned long frames, double fig_s)
{
    const char *prog = ex_program();
    if (cfg->steps > 0) {
        const unsigned long ran = t->stopped_at ? t->stopped_at : cfg->steps;
        printf("%s: ran %lu steps (%lu applied) in %.1f s (%.1f steps/s), "
               "final loss %.4f (mean of the last %zu applied minibatches)\n",
               prog, ran, t->applied, t->seconds,
               t->seconds > 0 ? (double)ran / t->seconds : 0.0, t->loss,
               (size_t)(t->applied < LOSS_WINDOW ? t->applied : LOSS_WINDOW));
        if (t->stopped_at) {
            printf("%s: training stopped at step %lu of %lu: the last %d "
                   "steps were all refused (non-finite loss or gradient); "
                   "the last iterate is that of step %lu, the last one "
                   "applied\n",
                   prog, t->stopped_at, cfg->steps, MAX_REFUSED_IN_A_ROW,
                   t->stopped_at - MAX_REFUSED_IN_A_ROW);
            if (cfg->ema > 0.0)
                /* After k steps the initial parameters still weigh
                 * decay^k in the average. */
                printf("%s: the parameter average covers those %lu applied "
                       "steps; the initial parameters still weigh %.1f%% in "
                       "it\n",
                       prog, t->applied,
                       100.0 * pow(cfg->ema, (double)t->applied));
        }
        if (cfg->clip > 0.0)
            printf("%s: %lu of the %lu applied steps had their gradient "
                   "clipped to norm %g\n",
                   prog, t->clipped, t->applied, cfg->clip);
        if (t->refused > 0)
            printf("%s: %lu of the %lu steps were refused by the library "
                   "(non-finite or overflowing gradient) and skipped\n",
                   prog, t->refused, ran);
    } else {
        printf("%s: no training steps (untrained model)\n", prog);
    }
    printf("%s: wrote %s (figure) and %s (animation, %lu frames) "
           "in %.1f s\n",
           prog, cfg->svg_path, cfg->gif_path, frames, fig_s);
    printf("%s: held-out NLL over %d fresh points (seed %llu), "
           "standardised space\n",
           prog, N_DATA, (unsigned long long)(cfg->seed + EVAL_SEED_OFFSET));
    if (cfg->ema > 0.0)
        printf("%s: held-out NLL of the last iterate %.4f; of the parameter "
               "average (decay %g), reported below, %.4f\n",
               prog, e->last_nll, cfg->ema, e->nll);
    printf("heldout_nll=%.4f\n", e->nll);
}

/* ----------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    ex_init("two_moons", 1);
    config cfg;
    const int parsed = parse_args(argc, argv, &cfg);
    if (parsed != 0)
        return parsed == 1 ? EX_OK : EX_USAGE;
    ex_check_version();

    /* A long run must not end on a directory that is not there. */
    const char *const outputs[] = {cfg.svg_path, cfg.gif_path};
    if (ex_writable_outputs(outputs, 2) != EX_OK)
        return EX_FAILED;

    job j = {0};
    training t;
    evaluation e;
    unsigned long frames = 0;
    double fig_s = 0.0;
    int status = make_data(&cfg, &j);           /* 1. data */
    if (status == EX_OK)
        status = make_flow(&cfg, &j);           /* 2. flow and optimizer */
    if (status == EX_OK)
        status = train(&cfg, &j, &t);           /* 3. training */
    if (status == EX_OK)
        status = evaluate(&cfg, &j, &e);        /* 4. held-out NLL */
    if (status == EX_OK) {
        const double t0 = ex_now();             /* 5-6. figure, animation */
        status = draw(&cfg, &j, e.nll, &frames);
        fig_s = ex_now() - t0;
    }
    if (status == EX_OK) {
        report(&cfg, &t, &e, frames, fig_s);
        /* A run whose training could not go on still reports its model,
         * but says so in its exit status too. */
        status = t.stopped_at ? EXIT_STOPPED : EX_OK;
    }
    job_free(&j);
    return ex_finish(status);
}
