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
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nvpflow.h"

#include "animation.h"
#include "numparse.h"
#include "opts.h"
#include "colormap.h"
#include "svg_figure.h"

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
#define EXIT_STOPPED 3
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
 * seeds 20-39; see the README's "Gradient spikes". */
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

static const char *prog = "two_moons";

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
            prog, MAX_FIGURE_LAYERS, MAX_REFUSED_IN_A_ROW);
}

static void bad_usage(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\nTry '%s --help'.\n", prog);
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

/* Whether two paths name one file, also when spelt differently
 * ("out.svg", "./out.svg", a link): the same file when both exist, else
 * the same name in the same directory. */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (strcmp(a, b) == 0)
        return 1;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    const char *na = strrchr(a, '/'), *nb = strrchr(b, '/');
    const char *base_a = na ? na + 1 : a, *base_b = nb ? nb + 1 : b;
    if (strcmp(base_a, base_b) != 0)
        return 0;
    char da[4096], db[4096];
    snprintf(da, sizeof da, "%.*s", na ? (int)(na - a) + 1 : 1, na ? a : ".");
    snprintf(db, sizeof db, "%.*s", nb ? (int)(nb - b) + 1 : 1, nb ? b : ".");
    return stat(da, &sa) == 0 && stat(db, &sb) == 0 &&
           sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

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
    cfg->steps = 10000;
    cfg->lr = 1e-4;
    cfg->ema = 0.999;
    cfg->clip = DEFAULT_CLIP;
    cfg->batch = 100;
    cfg->hidden[0] = 512;
    cfg->hidden[1] = 512;
    cfg->n_hidden = 2;
    cfg->layers = 4;
    cfg->seed = 0;
    cfg->svg_path = "two_moons.svg";
    cfg->gif_path = "two_moons.gif";
    cfg->quiet = 0;

    opts o;
    opts_init(&o, argc, argv, "hq", LONG_OPTS);
    const char *val;
    int id;
    while ((id = opts_next(&o, &val)) != OPTS_END) {
        uint64_t u;
        double v = 0.0;
        switch (id) {
        case O_HELP:
            usage(stdout);
            return 1;
        case O_QUIET:
            cfg->quiet = 1;
            break;
        case OPTS_MISSING_VALUE:
            bad_usage("option '%s' needs a value%s", o.name, "");
            return 2;
        case OPTS_POSITIONAL:
        case OPTS_DASHDASH:
        case OPTS_UNKNOWN:
        case OPTS_UNEXPECTED_VALUE:
            /* Whatever it was, the argument is named as it was typed. */
            bad_usage(o.arg[0] == '-' && o.arg[1] == '-'
                          ? "unknown option '%s'%s"
                          : "unexpected argument '%s'%s",
                      o.arg, "");
            return 2;
        case O_STEPS:
            if (num_parse_uint(val, 0, MAX_STEPS, &u) != 0) {
                bad_usage("--steps: '%s' is not a whole number from 0 to "
                          "1000000000%s", val, "");
                return 2;
            }
            cfg->steps = (unsigned long)u;
            break;
        case O_LR:
            if (num_parse_double(val, &v) != 0 || !isfinite(v) ||
                !(v > 0.0) || !((float)v > 0.0f) || !isfinite((float)v)) {
                bad_usage("--lr: '%s' is not a positive finite number%s",
                          val, "");
                return 2;
            }
            cfg->lr = v;
            break;
        case O_EMA:
            /* The library takes the decay as a float: 0, or inside (0, 1)
             * after rounding (0.99999999 would round to 1, 1e-50 to 0). */
            if (num_parse_double(val, &v) != 0 ||
                !(v == 0.0 || ((float)v > 0.0f && (float)v < 1.0f))) {
                bad_usage("--ema: '%s' is not 0 or a decay between 0 and 1 "
                          "(exclusive, in single precision)%s",
                          val, "");
                return 2;
            }
            cfg->ema = v;
            break;
        case O_CLIP:
            /* The library takes the limit as a float: 0, or a positive
             * finite float after rounding. */
            if (num_parse_double(val, &v) != 0 ||
                !(v == 0.0 || ((float)v > 0.0f && isfinite((float)v)))) {
                bad_usage("--clip: '%s' is not 0 or a positive finite "
                          "number (in single precision)%s",
                          val, "");
                return 2;
            }
            cfg->clip = v;
            break;
        case O_BATCH:
            if (num_parse_uint(val, 1, MAX_BATCH, &u) != 0) {
                bad_usage("--batch: '%s' is not a whole number from 1 to "
                          "1000000%s", val, "");
                return 2;
            }
            cfg->batch = (size_t)u;
            break;
        case O_HIDDEN:
            if (num_parse_list(val, NVP_MAX_WIDTH, cfg->hidden,
                               NVP_MAX_HIDDEN_LAYERS, &cfg->n_hidden) != 0) {
                char limits[96];
                snprintf(limits, sizeof limits,
                         " (1 to %d widths, each from 1 to %d, e.g. "
                         "512,512)",
                         NVP_MAX_HIDDEN_LAYERS, NVP_MAX_WIDTH);
                bad_usage("--hidden: '%s' is not a comma-separated list of "
                          "widths%s", val, limits);
                return 2;
            }
            break;
        case O_LAYERS:
            if (num_parse_uint(val, 1, MAX_FIGURE_LAYERS, &u) != 0) {
                bad_usage("--layers: '%s' is not a whole number from 1 to "
                          "64%s", val, "");
                return 2;
            }
            cfg->layers = (size_t)u;
            break;
        case O_SEED:
            if (num_parse_uint(val, 0, UINT64_MAX, &u) != 0) {
                bad_usage("--seed: '%s' is not a whole number from 0 to "
                          "2^64-1%s", val, "");
                return 2;
            }
            cfg->seed = u;
            break;
        case O_SVG:
        case O_GIF:
            if (!*val) {
                bad_usage("%s: the path is empty%s", o.name, "");
                return 2;
            }
            if (id == O_SVG)
                cfg->svg_path = val;
            else
                cfg->gif_path = val;
            break;
        }
    }
    /* One file cannot hold both; a device such as /dev/null can take both. */
    struct stat st;
    if (same_file(cfg->svg_path, cfg->gif_path) &&
        !(stat(cfg->svg_path, &st) == 0 && S_ISCHR(st.st_mode))) {
        bad_usage("--svg '%s' and --gif '%s' name the same file",
                  cfg->svg_path, cfg->gif_path);
        return 2;
    }
    return 0;
}

/* ------------------------------------------------------------ progress */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void format_duration(double s, char *buf, size_t len)
{
    if (!isfinite(s) || s < 0)
        s = 0;
    unsigned long t = (unsigned long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, len, "%lu:%02lu", t / 60, t % 60);
}

typedef struct progress {
    int enabled;
    double start, last_draw, interval;
    int width;       /* characters in the last line drawn */
    int step_digits; /* width of the step counter */
} progress;

static void progress_init(progress *p, int enabled, unsigned long total)
{
    p->enabled = enabled;
    p->start = now_s();
    p->last_draw = -1e30;
    /* About 10 updates a second on a terminal; fewer into a log file. */
    p->interval = isatty(STDERR_FILENO) ? 0.1 : 2.0;
    p->width = 0;
    p->step_digits = snprintf(NULL, 0, "%lu", total);
}

/* Whether it is time to redraw (never when disabled). */
static int progress_due(const progress *p)
{
    return p->enabled && now_s() - p->last_draw >= p->interval;
}

/* Redraws the line now: step of total done, the smoothed loss, the rate
 * and the time left (or, at the last step, the time taken). */
static void progress_draw(progress *p, unsigned long step,
                          unsigned long total, double loss)
{
    if (!p->enabled)
        return;
    const double t = now_s();
    p->last_draw = t;
    const double elapsed = t - p->start;
    const double rate = elapsed > 0 ? (double)step / elapsed : 0.0;
    /* While training: the estimated time left; at the end: the time taken. */
    char when[32];
    format_duration(step == total ? elapsed
                    : rate > 0    ? (double)(total - step) / rate
                                  : 0.0,
                    when, sizeof when);
    char line[160];
    int n = snprintf(line, sizeof line,
                     "step %*lu/%lu  loss %.4f  %.1f steps/s  %s %s",
                     p->step_digits, step, total, loss, rate,
                     step == total ? "took" : "ETA", when);
    if (n < 0)
        return;
    /* Pad with spaces to wipe the rest of a longer previous line. */
    fprintf(stderr, "\r%s%*s", line, p->width > n ? p->width - n : 0, "");
    p->width = n;
}

static void progress_end(progress *p)
{
    if (p->enabled && p->width > 0) {
        fputc('\n', stderr);
        p->width = 0;
    }
}

/* -------------------------------------------------------------- helpers */

static int lib_fail(const char *what, int rc, const char *detail)
{
    fprintf(stderr, "%s: %s failed: %s%s%s\n", prog, what, nvp_strerror(rc),
            detail && *detail ? ": " : "", detail ? detail : "");
    return 1;
}

static void format_hidden(const config *cfg, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < cfg->n_hidden && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%zu", i ? "," : "",
                         cfg->hidden[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* Both figure files, from the trained chain.  Returns 0 or 1. */
static int write_figures(const config *cfg, const nvp_chain *chain,
                         const float *data, const int *labels, double nll,
                         const anim_options *ao)
{
    const size_t K = nvp_chain_num_layers(chain);
    const size_t n = N_FIGURE, G = DENSITY_GRID;
    const size_t n_panels = K + 3;
    int status = 1, rc;
    char err[512];
    nvp_rng *rng = NULL;
    float *x0 = malloc(n * 2 * sizeof *x0);
    float *stages = malloc((K + 1) * n * 2 * sizeof *stages);
    unsigned *color_idx = malloc(n * sizeof *color_idx);
    unsigned char *rgb_pos = malloc(n * 3);
    unsigned char *rgb_data = malloc((size_t)N_DATA * 3);
    float *grid_xy = malloc(G * G * 2 * sizeof *grid_xy);
    float *density = malloc(G * G * sizeof *density);
    svg_panel *panels = calloc(n_panels, sizeof *panels);
    char (*titles)[32] = calloc(n_panels, sizeof *titles);
    if (!x0 || !stages || !color_idx || !rgb_pos || !rgb_data || !grid_xy ||
        !density || !panels || !titles) {
        fprintf(stderr, "%s: out of memory for the figures\n", prog);
        goto done;
    }

    /* The base samples and every stage of the flow. */
    rc = nvp_rng_create(&rng, cfg->seed + FIGURE_SEED_OFFSET, NULL);
    if (rc) {
        lib_fail("nvp_rng_create", rc, nvp_errmsg());
        goto done;
    }
    rc = nvp_base_sample(nvp_chain_base(chain), rng, n, x0);
    if (rc) {
        lib_fail("nvp_base_sample", rc, nvp_base_errmsg(nvp_chain_base(chain)));
        goto done;
    }
    rc = nvp_chain_forward_trace(chain, n, x0, stages);
    if (rc) {
        lib_fail("nvp_chain_forward_trace", rc, nvp_chain_errmsg(chain));
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        color_idx[i] = cmap_position_index(stages[2 * i], stages[2 * i + 1]);
        cmap_position_rgb(color_idx[i], rgb_pos + 3 * i);
    }
    /* The data, coloured by moon. */
    static const unsigned char moon_rgb[2][3] = {{0x1f, 0x77, 0xb4},
                                                 {0xff, 0x7f, 0x0e}};
    for (size_t i = 0; i < N_DATA; i++)
        memcpy(rgb_data + 3 * i, moon_rgb[labels[i] ? 1 : 0], 3);

    /* The learned density on the cell centres of the heat map. */
    const double h = ((double)AXIS_HI - AXIS_LO) / (double)G;
    for (size_t j = 0; j < G; j++)
        for (size_t i = 0; i < G; i++) {
            float *cell = grid_xy + 2 * (j * G + i);
            cell[0] = (float)(AXIS_LO + ((double)i + 0.5) * h);
            cell[1] = (float)(AXIS_LO + ((double)j + 0.5) * h);
        }
    rc = nvp_chain_log_prob(chain, G * G, grid_xy, density);
    if (rc) {
        lib_fail("nvp_chain_log_prob", rc, nvp_chain_errmsg(chain));
        goto done;
    }
    for (size_t i = 0; i < G * G; i++)
        density[i] = expf(density[i]);

    /* Panels: data, base, after each layer, density. */
    panels[0] = (svg_panel){.title = "data (standardised)",
                            .kind = SVG_PANEL_POINTS,
                            .n = N_DATA,
                            .xy = data,
                            .rgb = rgb_data};
    for (size_t k = 0; k <= K; k++) {
        if (k == 0)
            snprintf(titles[k + 1], sizeof titles[k + 1], "base");
        else
            snprintf(titles[k + 1], sizeof titles[k + 1], "after layer %zu",
                     k);
        panels[k + 1] = (svg_panel){.title = titles[k + 1],
                                    .kind = SVG_PANEL_POINTS,
                                    .n = n,
                                    .xy = stages + k * n * 2,
                                    .rgb = rgb_pos};
    }
    panels[K + 2] = (svg_panel){.title = "density",
                                .kind = SVG_PANEL_HEATMAP,
                                .grid = G,
                                .values = density};
    char hidden[256], caption[512];
    format_hidden(cfg, hidden, sizeof hidden);
    snprintf(caption, sizeof caption,
             "Real NVP on two moons: %zu coupling layers, hidden %s, "
             "%lu steps of Adam (lr %g, batch %zu), seed %llu; "
             "held-out NLL %.4f nats/point",
             K, hidden, cfg->steps, cfg->lr, cfg->batch,
             (unsigned long long)cfg->seed, nll);
    svg_figure_options so = {AXIS_LO, AXIS_HI, 200,
                             n_panels <= 8 ? (unsigned)n_panels : 6,
                             caption};
    if (svg_write_figure(cfg->svg_path, &so, panels, n_panels, err,
                         sizeof err) != 0) {
        fprintf(stderr, "%s: figure: %s\n", prog, err);
        goto done;
    }

    if (anim_write_gif(cfg->gif_path, ao, K, n, stages, color_idx, err,
                       sizeof err) != 0) {
        fprintf(stderr, "%s: animation: %s\n", prog, err);
        goto done;
    }
    status = 0;
done:
    nvp_rng_free(rng);
    free(x0);
    free(stages);
    free(color_idx);
    free(rgb_pos);
    free(rgb_data);
    free(grid_xy);
    free(density);
    free(panels);
    free(titles);
    return status;
}

/* ----------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    config cfg;
    int status = parse_args(argc, argv, &cfg);
    if (status == 1)
        return 0;
    if (status != 0)
        return 2;
    if (nvp_version_number() != NVP_VERSION_NUMBER)
        fprintf(stderr, "%s: warning: built against nvpflow %s, running %s\n",
                prog, NVP_VERSION_STRING, nvp_version_string());

    status = 1;
    int rc;
    nvp_rng *rng = NULL, *eval_rng = NULL;
    nvp_scaler *scaler = NULL;
    nvp_chain *chain = NULL;
    nvp_adam *opt = NULL;
    float *data = malloc((size_t)N_DATA * 2 * sizeof *data);
    float *test = malloc((size_t)N_DATA * 2 * sizeof *test);
    float *lp = malloc((size_t)N_DATA * sizeof *lp);
    float *average = NULL;
    int *labels = malloc((size_t)N_DATA * sizeof *labels);
    if (!data || !test || !lp || !labels) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto cleanup;
    }

    /* 1. Data: two moons, standardised; the scaler is kept for the
     *    held-out set. */
    if ((rc = nvp_rng_create(&rng, cfg.seed, NULL)) != NVP_OK) {
        status = lib_fail("nvp_rng_create", rc, nvp_errmsg());
        goto cleanup;
    }
    if ((rc = nvp_two_moons(rng, N_DATA, NOISE, data, labels)) != NVP_OK) {
        status = lib_fail("nvp_two_moons", rc, nvp_rng_errmsg(rng));
        goto cleanup;
    }
    if ((rc = nvp_scaler_create(&scaler, 2, NULL)) != NVP_OK) {
        status = lib_fail("nvp_scaler_create", rc, nvp_errmsg());
        goto cleanup;
    }
    if ((rc = nvp_scaler_fit(scaler, N_DATA, data)) != NVP_OK ||
        (rc = nvp_scaler_transform(scaler, N_DATA, data, data)) != NVP_OK) {
        status = lib_fail("standardising the data", rc,
                          nvp_scaler_errmsg(scaler));
        goto cleanup;
    }

    /* 2. The flow: alternating half-split couplings, each with its own
     *    initial parameters from the seeded generator. */
    rc = nvp_chain_create_alternating(&chain, 2, cfg.layers, cfg.n_hidden,
                                      cfg.hidden, 0, rng, NULL);
    if (rc != NVP_OK) {
        status = lib_fail("nvp_chain_create_alternating", rc, nvp_errmsg());
        goto cleanup;
    }
    if ((rc = nvp_adam_create(&opt, nvp_chain_num_params(chain), NULL)) !=
            NVP_OK ||
        (rc = nvp_adam_set_lr(opt, (float)cfg.lr)) != NVP_OK) {
        status = lib_fail("setting up Adam", rc,
                          opt ? nvp_adam_errmsg(opt) : nvp_errmsg());
        goto cleanup;
    }
    if (cfg.clip > 0.0 &&
        (rc = nvp_adam_set_clip_norm(opt, (float)cfg.clip)) != NVP_OK) {
        status = lib_fail("nvp_adam_set_clip_norm", rc, nvp_adam_errmsg(opt));
        goto cleanup;
    }
    /* Polyak averaging: the last iterate of Adam at a fixed step size
     * jitters around the optimum; the average does not.  The optimizer
     * keeps the average, starting at the initial parameters, and updates
     * it in the same pass as the parameters. */
    const size_t n_params = nvp_chain_num_params(chain);
    if (cfg.ema > 0.0) {
        average = malloc(n_params * sizeof *average);
        if (!average) {
            fprintf(stderr, "%s: out of memory\n", prog);
            goto cleanup;
        }
        nvp_chain_get_params(chain, average, n_params);
        if ((rc = nvp_adam_set_average(opt, (float)cfg.ema, average,
                                       n_params)) != NVP_OK) {
            status = lib_fail("nvp_adam_set_average", rc,
                              nvp_adam_errmsg(opt));
            goto cleanup;
        }
    }
    char hidden[256];
    format_hidden(&cfg, hidden, sizeof hidden);
    printf("%s: nvpflow %s; %d points (noise %g), %zu layers, hidden %s "
           "(%zu parameters), Adam lr %g, clip %g, batch %zu, %lu steps, "
           "seed %llu\n",
           prog, nvp_version_string(), N_DATA, (double)NOISE, cfg.layers,
           hidden, nvp_chain_num_params(chain), cfg.lr, cfg.clip, cfg.batch,
           cfg.steps,
           (unsigned long long)cfg.seed);
    fflush(stdout);

    /* 3. Training. */
    float window[LOSS_WINDOW];
    double smoothed = NAN;
    unsigned long applied = 0, refused = 0, refused_in_a_row = 0, clipped = 0;
    unsigned long stopped_at = 0; /* the step where training gave up */
    progress prog_line;
    progress_init(&prog_line, !cfg.quiet && cfg.steps > 0, cfg.steps);
    const double t_start = now_s();
    for (unsigned long step = 1; step <= cfg.steps; step++) {
        float loss = NAN;
        rc = nvp_chain_train_step(chain, opt, rng, N_DATA, data, cfg.batch,
                                  &loss);
        if (rc == NVP_ENONFINITE) {
            if (refused++ == 0) {
                /* Say it once, on its own line; the total comes at the
                 * end. */
                progress_end(&prog_line);
                fprintf(stderr, "%s: step %lu refused and skipped: %s\n",
                        prog, step, nvp_chain_errmsg(chain));
            }
            /* The library changed nothing, so the parameters are those of
             * the last applied step.  When step after step is refused they
             * give a non-finite loss on nearly every minibatch and training
             * cannot go on; the model as it stands (its parameter average
             * above all) is still evaluated and drawn. */
            if (++refused_in_a_row >= MAX_REFUSED_IN_A_ROW) {
                stopped_at = step;
                progress_end(&prog_line);
                fprintf(stderr, "%s: warning: steps %lu to %lu were all "
                        "refused; training stops here\n",
                        prog, step - MAX_REFUSED_IN_A_ROW + 1, step);
                break;
            }
            continue;
        }
        if (rc != NVP_OK) {
            progress_end(&prog_line);
            char what[64];
            snprintf(what, sizeof what, "training step %lu", step);
            status = lib_fail(what, rc, nvp_chain_errmsg(chain));
            goto cleanup;
        }
        refused_in_a_row = 0;
        applied++;
        if (cfg.clip > 0.0 && nvp_adam_last_grad_norm(opt) > (float)cfg.clip)
            clipped++;
        window[(applied - 1) % LOSS_WINDOW] = loss;
        if (step == cfg.steps || progress_due(&prog_line)) {
            smoothed = window_mean(window, applied);
            progress_draw(&prog_line, step, cfg.steps, smoothed);
        }
    }
    const double train_s = now_s() - t_start;
    /* Again here: a refused last step skipped the update above. */
    smoothed = window_mean(window, applied);
    progress_end(&prog_line);

    /* 4. Held-out NLL: a fresh draw from another seed, standardised with
     *    the training scaler, in nats per point. */
    if ((rc = nvp_rng_create(&eval_rng, cfg.seed + EVAL_SEED_OFFSET,
                             NULL)) != NVP_OK) {
        status = lib_fail("nvp_rng_create", rc, nvp_errmsg());
        goto cleanup;
    }
    if ((rc = nvp_two_moons(eval_rng, N_DATA, NOISE, test, NULL)) != NVP_OK ||
        (rc = nvp_scaler_transform(scaler, N_DATA, test, test)) != NVP_OK) {
        status = lib_fail("drawing the held-out set", rc, nvp_errmsg());
        goto cleanup;
    }
    double last_nll = NAN;
    if (average) {
        /* Score the last iterate too, then make the average the model. */
        if ((rc = heldout_nll(chain, test, lp, &last_nll)) != NVP_OK) {
            status = lib_fail("evaluating the last iterate", rc,
                              nvp_chain_errmsg(chain));
            goto cleanup;
        }
        if ((rc = nvp_adam_get_average(opt, average, n_params)) != NVP_OK) {
            status = lib_fail("nvp_adam_get_average", rc,
                              nvp_adam_errmsg(opt));
            goto cleanup;
        }
        if ((rc = nvp_chain_set_params(chain, average, n_params)) != NVP_OK) {
            status = lib_fail("nvp_chain_set_params", rc,
                              nvp_chain_errmsg(chain));
            goto cleanup;
        }
    }
    double nll;
    if ((rc = heldout_nll(chain, test, lp, &nll)) != NVP_OK) {
        status = lib_fail("nvp_chain_log_prob", rc, nvp_chain_errmsg(chain));
        goto cleanup;
    }
    if (!isfinite(nll))
        fprintf(stderr, "%s: warning: the held-out NLL is not finite\n",
                prog);

    /* 5 and 6. Figure and animation. */
    const double t_fig = now_s();
    anim_options ao = anim_default_options();
    ao.lo = AXIS_LO;
    ao.hi = AXIS_HI;
    const unsigned long frames = cfg.layers * ao.frames_per_layer + 1;
    if (write_figures(&cfg, chain, data, labels, nll, &ao) != 0)
        goto cleanup;
    const double fig_s = now_s() - t_fig;

    if (cfg.steps > 0) {
        const unsigned long ran = stopped_at ? stopped_at : cfg.steps;
        printf("%s: ran %lu steps (%lu applied) in %.1f s (%.1f steps/s), "
               "final loss %.4f (mean of the last %zu applied minibatches)\n",
               prog, ran, applied, train_s,
               train_s > 0 ? (double)ran / train_s : 0.0, smoothed,
               (size_t)(applied < LOSS_WINDOW ? applied : LOSS_WINDOW));
        if (stopped_at) {
            printf("%s: training stopped at step %lu of %lu: the last %d "
                   "steps were all refused (non-finite loss or gradient); "
                   "the last iterate is that of step %lu, the last one "
                   "applied\n",
                   prog, stopped_at, cfg.steps, MAX_REFUSED_IN_A_ROW,
                   stopped_at - MAX_REFUSED_IN_A_ROW);
            if (average)
                /* After k steps the initial parameters still weigh
                 * decay^k in the average. */
                printf("%s: the parameter average covers those %lu applied "
                       "steps; the initial parameters still weigh %.1f%% in "
                       "it\n",
                       prog, applied, 100.0 * pow(cfg.ema, (double)applied));
        }        if (cfg.clip > 0.0)
            printf("%s: %lu of the %lu applied steps had their gradient "
                   "clipped to norm %g\n",
                   prog, clipped, applied, cfg.clip);
        if (refused > 0)
            printf("%s: %lu of the %lu steps were refused by the library "
                   "(non-finite or overflowing gradient) and skipped\n",
                   prog, refused, stopped_at ? stopped_at : cfg.steps);
    } else {
        printf("%s: no training steps (untrained model)\n", prog);
    }
    printf("%s: wrote %s (figure) and %s (animation, %lu frames) "
           "in %.1f s\n",
           prog, cfg.svg_path, cfg.gif_path, frames, fig_s);
    printf("%s: held-out NLL over %d fresh points (seed %llu), "
           "standardised space\n",
           prog, N_DATA,
           (unsigned long long)(cfg.seed + EVAL_SEED_OFFSET));
    if (average)
        printf("%s: held-out NLL of the last iterate %.4f; of the parameter "
               "average (decay %g), reported below, %.4f\n",
               prog, last_nll, cfg.ema, nll);
    printf("heldout_nll=%.4f\n", nll);
    /* A run whose training could not go on still reports its model, but
     * says so in its exit status too. */
    status = stopped_at ? EXIT_STOPPED : 0;

cleanup:
    nvp_adam_free(opt);
    nvp_chain_free(chain);
    nvp_scaler_free(scaler);
    nvp_rng_free(eval_rng);
    nvp_rng_free(rng);
    free(data);
    free(test);
    free(lp);
    free(labels);
    free(average);
    if (fflush(stdout) != 0 && status == 0) {
        fprintf(stderr, "%s: error writing to stdout\n", prog);
        status = 1;
    }
    return status;
}
