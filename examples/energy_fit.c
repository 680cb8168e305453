/* SPDX-License-Identifier: MIT */
/*
 * energy_fit.c - variational inference with a flow ("make energy").
 *
 * Fits a Real-NVP flow q to each of the four 2-D densities p(z) =
 * exp(-U(z)) / Z of Rezende and Mohamed (2015), "Variational Inference
 * with Normalizing Flows", Figure 2, by reverse KL: the flow only ever
 * sees its own draws and the energy's value and gradient there
 * (nvp_chain_reverse_kl_step), never a sample of p.
 *
 *   U1  0.5 ((|z| - 2) / 0.4)^2
 *         - log(exp(-0.5 ((z1 - 2) / 0.6)^2) + exp(-0.5 ((z1 + 2) / 0.6)^2))
 *   U2  0.5 ((z2 - w1) / 0.4)^2
 *   U3  -log(exp(-0.5 ((z2 - w1) / 0.35)^2)
 *            + exp(-0.5 ((z2 - w1 + w2) / 0.35)^2))
 *   U4  -log(exp(-0.5 ((z2 - w1) / 0.4)^2)
 *            + exp(-0.5 ((z2 - w1 + w3) / 0.35)^2))
 *   w1 = sin(2 pi z1 / 4), w2 = 3 exp(-0.5 ((z1 - 1) / 0.6)^2),
 *   w3 = 3 sigma((z1 - 1) / 0.3).
 *
 * U2 to U4 do not depend on z1 far from the origin, so exp(-U) has no
 * finite integral; the paper draws them on [-4, 4]^2.  Here they get a
 * weak Gaussian factor in z1, U += z1^2 / 8 (z1 ~ N(0, 2^2) otherwise),
 * which keeps their shape on that square and makes Z finite.
 *
 * The flow: N(0, I) base, an actnorm layer, then --layers affine
 * couplings with alternating masks (the only masks in 2-D), conditioners
 * 1 -> --hidden -> 2, created with zero output layers (q starts as the
 * base), log-scale clamp 3.  Training: Adam, the step size decayed on a
 * cosine from --lr to 1% of it, a parameter average (decay 0.998) used
 * for the evaluation, and the target tempered as p~^beta with beta
 * rising from 0.2 to 1 over the first 30% of the steps (as in the paper,
 * against collapsing onto one mode early).
 *
 * Reported per energy: the KL(q || p) = E_q[log q - log p~] + log Z, the
 * ELBO E_q[log p~ - log q] (a lower bound of log Z), the importance-
 * sampled estimate log Z ~ log mean exp(log p~ - log q) over --draws
 * draws of q, and log Z by a 2000 x 2000 midpoint grid in double over a
 * box that holds the mass.  The last line on stdout is
 * "max_abs_logz_error=<value>", for scripts.
 *
 * Exit status: 0 on success, 1 when the library fails, 2 for a bad
 * command line.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nvpflow.h"

#include "common/messages.h"
#include "common/options.h"

#define PI 3.14159265358979323846
#define GRID 2000
#define MAX_STEPS 100000000UL
#define MAX_BATCH 1000000UL
#define MAX_DRAWS 100000000UL
#define MAX_LAYERS 64
#define LOG_SCALE_CLAMP 3.0f
#define AVERAGE_DECAY 0.998f
#define BETA_START 0.2
#define BETA_RAMP 0.3 /* of the steps */
#define LR_FLOOR 0.01 /* the cosine's end, as a fraction of --lr */
#define REPORT_EVERY 1000

/* ------------------------------------------------------------ energies */

/* log(exp(a) + exp(b)) and the weight of a in it. */
static double log_add(double a, double b, double *wa)
{
    const double m = a > b ? a : b;
    const double ea = exp(a - m), eb = exp(b - m);
    *wa = ea / (ea + eb);
    return m + log(ea + eb);
}

/* U_k(z) and its gradient (du, may be NULL), in double. */
static double energy(int k, double a, double b, double du[2])
{
    double ga = 0, gb = 0, u, wa;
    if (k == 1) {
        const double r = sqrt(a * a + b * b);
        const double s1 = -0.5 * (a - 2) * (a - 2) / 0.36;
        const double s2 = -0.5 * (a + 2) * (a + 2) / 0.36;
        u = 0.5 * (r - 2) * (r - 2) / 0.16 - log_add(s1, s2, &wa);
        if (r > 0) {
            ga = (r - 2) / 0.16 * a / r;
            gb = (r - 2) / 0.16 * b / r;
        }
        ga -= wa * (-(a - 2) / 0.36) + (1 - wa) * (-(a + 2) / 0.36);
    } else {
        const double w1 = sin(PI * a / 2), dw1 = PI / 2 * cos(PI * a / 2);
        const double t = b - w1;
        if (k == 2) {
            u = 0.5 * t * t / 0.16;
            gb = t / 0.16;
            ga = -gb * dw1;
        } else {
            double w, dw, sd2;
            if (k == 3) {
                w = 3 * exp(-0.5 * (a - 1) * (a - 1) / 0.36);
                dw = w * (-(a - 1) / 0.36);
                sd2 = 0.35 * 0.35;
            } else {
                const double sg = 1 / (1 + exp(-(a - 1) / 0.3));
                w = 3 * sg;
                dw = 3 * sg * (1 - sg) / 0.3;
                sd2 = 0.4 * 0.4;
            }
            const double t2 = t + w;
            const double s1 = -0.5 * t * t / sd2;
            const double s2 = -0.5 * t2 * t2 / (0.35 * 0.35);
            u = -log_add(s1, s2, &wa);
            /* ds1 = -t/sd2 (db - dw1 da); ds2 = -t2/0.35^2 (db - dw1 da
             * + dw da) */
            const double g1 = -t / sd2, g2 = -t2 / (0.35 * 0.35);
            gb = -(wa * g1 + (1 - wa) * g2);
            ga = -(wa * g1 * -dw1 + (1 - wa) * g2 * (-dw1 + dw));
        }
        /* The factor that makes Z finite. */
        u += a * a / 8;
        ga += a / 4;
    }
    if (du) {
        du[0] = ga;
        du[1] = gb;
    }
    return u;
}

/* The energy's gradient against central differences at a few points: a
 * wrong formula would train the flow to something else quietly. */
static int check_gradients(void)
{
    static const double pts[][2] = {{0.3, -0.7}, {1.7, 0.4}, {-2.2, 1.1},
                                    {0.9, -2.5}, {-0.4, 2.9}};
    for (int k = 1; k <= 4; k++)
        for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
            double g[2];
            const double h = 1e-5, a = pts[i][0], b = pts[i][1];
            energy(k, a, b, g);
            const double fa = (energy(k, a + h, b, NULL) -
                               energy(k, a - h, b, NULL)) / (2 * h);
            const double fb = (energy(k, a, b + h, NULL) -
                               energy(k, a, b - h, NULL)) / (2 * h);
            if (fabs(fa - g[0]) > 1e-5 * (1 + fabs(fa)) ||
                fabs(fb - g[1]) > 1e-5 * (1 + fabs(fb)))
                return ex_error("U%d: gradient (%g, %g) at (%g, %g), finite "
                                "differences (%g, %g)",
                                k, g[0], g[1], a, b, fa, fb);
        }
    return 0;
}

/* log Z by the midpoint rule on GRID x GRID cells, in double. */
static double grid_log_z(int k)
{
    /* U1's ring lies within radius 3.5; the others span |z1| <= 9 (the
     * factor exp(-z1^2 / 8) is below e^-10 beyond) and |z2| <= 6. */
    const double ha = k == 1 ? 4.0 : 9.0, hb = k == 1 ? 4.0 : 6.0;
    const double da = 2 * ha / GRID, db = 2 * hb / GRID;
    /* Every energy's minimum is near 0 (U1's is about -0.7), so a plain
     * sum of exp(-U) neither overflows nor loses the mass. */
    double sum = 0;
    for (int i = 0; i < GRID; i++) {
        const double a = -ha + (i + 0.5) * da;
        double row = 0;
        for (int j = 0; j < GRID; j++)
            row += exp(-energy(k, a, -hb + (j + 0.5) * db, NULL));
        sum += row;
    }
    return log(sum * da * db);
}

/* The callback of nvp_chain_reverse_kl_step: log p~ = -beta U and its
 * gradient. */
typedef struct target {
    int k;
    double beta;
} target;

static int log_density(void *user, size_t n, size_t dim, const float *y,
                       float *log_p, float *dlogp_dy)
{
    const target *t = user;
    (void)dim;
    for (size_t i = 0; i < n; i++) {
        double g[2];
        const double u = energy(t->k, y[2 * i], y[2 * i + 1], g);
        log_p[i] = (float)(-t->beta * u);
        dlogp_dy[2 * i] = (float)(-t->beta * g[0]);
        dlogp_dy[2 * i + 1] = (float)(-t->beta * g[1]);
    }
    return 0;
}

/* ------------------------------------------------------------ options */

typedef struct config {
    unsigned long steps;
    size_t batch, layers, hidden[NVP_MAX_HIDDEN_LAYERS], n_hidden;
    double lr;
    uint64_t draws, seed, energy, threads;
    int quiet;
} config;

enum {
    O_HELP = 'h', O_QUIET = 'q',
    O_STEPS = 256, O_BATCH, O_LAYERS, O_HIDDEN, O_LR, O_DRAWS, O_SEED,
    O_ENERGY, O_THREADS
};

static const struct option LONG_OPTS[] = {
    {"steps", required_argument, NULL, O_STEPS},
    {"batch", required_argument, NULL, O_BATCH},
    {"layers", required_argument, NULL, O_LAYERS},
    {"hidden", required_argument, NULL, O_HIDDEN},
    {"lr", required_argument, NULL, O_LR},
    {"draws", required_argument, NULL, O_DRAWS},
    {"seed", required_argument, NULL, O_SEED},
    {"energy", required_argument, NULL, O_ENERGY},
    {"threads", required_argument, NULL, O_THREADS},
    {"quiet", no_argument, NULL, O_QUIET},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: %s [OPTION]...\n"
            "Fits a Real-NVP flow to the 2-D energies U1-U4 of Rezende and\n"
            "Mohamed (2015) by reverse KL and estimates log Z.\n\n"
            "  --energy K    1 to 4, or 0 for all four (default 0)\n"
            "  --steps N     training steps per energy (default 5000)\n"
            "  --batch N     draws per step (default 256)\n"
            "  --layers N    affine couplings (default 12)\n"
            "  --hidden LIST conditioner widths (default 64,64)\n"
            "  --lr X        Adam's first step size (default 0.001)\n"
            "  --draws N     draws for the estimates (default 100000)\n"
            "  --seed N      random seed (default 1)\n"
            "  --threads N   the chain's threads (default 1)\n"
            "  -q, --quiet   no progress on stderr\n"
            "  -h, --help    this text\n",
            ex_program());
}

static int parse_args(int argc, char **argv, config *cfg)
{
    *cfg = (config){.steps = 5000, .batch = 256, .layers = 12,
                    .hidden = {64, 64}, .n_hidden = 2, .lr = 1e-3,
                    .draws = 100000, .seed = 1, .energy = 0, .threads = 1};
    opts o;
    opts_init(&o, argc, argv, "hq", LONG_OPTS);
    const char *v;
    int id, bad = 0;
    uint64_t u = 0;
    while (!bad && (id = ex_next_option(&o, &v)) != OPTS_END) {
        switch (id) {
        case O_HELP: usage(stdout); return 1;
        case O_QUIET: cfg->quiet = 1; break;
        case O_STEPS:
            bad = ex_opt_uint(o.name, v, 1, MAX_STEPS, &u);
            cfg->steps = (unsigned long)u;
            break;
        case O_BATCH:
            bad = ex_opt_uint(o.name, v, 1, MAX_BATCH, &u);
            cfg->batch = (size_t)u;
            break;
        case O_LAYERS:
            bad = ex_opt_uint(o.name, v, 1, MAX_LAYERS, &u);
            cfg->layers = (size_t)u;
            break;
        case O_HIDDEN:
            bad = ex_opt_widths(o.name, v, EX_WIDTH_LIMITS ", e.g. 64,64",
                                cfg->hidden, &cfg->n_hidden);
            break;
        case O_LR: bad = ex_opt_step_size(o.name, v, &cfg->lr); break;
        case O_DRAWS: bad = ex_opt_uint(o.name, v, 2, MAX_DRAWS, &cfg->draws);
            break;
        case O_SEED: bad = ex_opt_uint(o.name, v, 0, UINT64_MAX, &cfg->seed);
            break;
        case O_ENERGY: bad = ex_opt_uint(o.name, v, 0, 4, &cfg->energy);
            break;
        case O_THREADS:
            bad = ex_opt_uint(o.name, v, 0, NVP_MAX_THREADS, &cfg->threads);
            break;
        default: bad = 1; break; /* EX_OPT_ERROR, said already */
        }
    }
    return bad ? 2 : 0;
}

/* ------------------------------------------------------------ one fit */

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct result {
    double kl, elbo, log_z_is, log_z_grid, train_s, eval_s;
} result;

/* The flow of the header, its parameters drawn from rng. */
static int make_flow(const config *cfg, nvp_rng *rng, nvp_chain **out)
{
    nvp_layer *layers[MAX_LAYERS + 1] = {NULL};
    nvp_base *base = NULL;
    int rc = nvp_layer_create_actnorm(&layers[0], 2, NULL);
    for (size_t k = 0; rc == NVP_OK && k < cfg->layers; k++) {
        nvp_coupling *c = NULL;
        rc = nvp_coupling_create_half(&c, 2, (int)(k % 2), cfg->n_hidden,
                                      cfg->hidden, NVP_INIT_ZERO_OUTPUT, rng,
                                      NULL);
        layers[k + 1] = nvp_coupling_as_layer(c);
    }
    if (rc == NVP_OK)
        rc = nvp_base_create_normal(&base, 2, NULL);
    if (rc == NVP_OK)
        rc = nvp_chain_create_from_layers(out, base, cfg->layers + 1, layers,
                                          NULL);
    if (rc != NVP_OK) {
        const int e = ex_lib_error("creating the flow", rc, nvp_errmsg());
        for (size_t k = 0; k <= cfg->layers; k++)
            nvp_layer_free(layers[k]);
        nvp_base_free(base);
        return e;
    }
    rc = nvp_chain_set_log_scale_clamp(*out, LOG_SCALE_CLAMP);
    if (rc == NVP_OK)
        rc = nvp_chain_set_threads(*out, (size_t)cfg->threads);
    if (rc != NVP_OK)
        return ex_lib_error("setting up the flow", rc,
                            nvp_chain_errmsg(*out));
    return 0;
}

static int train(const config *cfg, int k, nvp_chain *c, nvp_rng *rng)
{
    const size_t np = nvp_chain_num_params(c);
    nvp_adam *opt = NULL;
    int rc = nvp_adam_create(&opt, np, NULL);
    if (rc == NVP_OK)
        rc = nvp_adam_set_average(opt, AVERAGE_DECAY, np,
                                  nvp_chain_params(c));
    if (rc != NVP_OK) {
        nvp_adam_free(opt);
        return ex_lib_error("creating the optimizer", rc, nvp_errmsg());
    }
    target t = {k, 1.0};
    double window = 0;
    for (unsigned long s = 0; s < cfg->steps; s++) {
        const double frac = (double)s / (double)cfg->steps;
        t.beta = frac >= BETA_RAMP
                     ? 1.0
                     : BETA_START + (1 - BETA_START) * frac / BETA_RAMP;
        const double lr =
            cfg->lr * (LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + cos(PI * frac)));
        nvp_adam_set_lr(opt, (float)lr);
        float loss;
        rc = nvp_chain_reverse_kl_step(c, opt, rng, cfg->batch, log_density,
                                       &t, &loss);
        /* A refused step changes nothing; a few are harmless. */
        if (rc == NVP_ENONFINITE)
            continue;
        if (rc != NVP_OK) {
            nvp_adam_free(opt);
            return ex_lib_error("a training step", rc, nvp_chain_errmsg(c));
        }
        window += loss;
        if (!cfg->quiet && (s + 1) % REPORT_EVERY == 0) {
            fprintf(stderr, "%s: U%d step %lu: beta %.2f, mean loss %.4f\n",
                    ex_program(), k, s + 1, t.beta, window / REPORT_EVERY);
            window = 0;
        } else if ((s + 1) % REPORT_EVERY == 0) {
            window = 0;
        }
    }
    /* The evaluation uses the parameter average. */
    float *avg = malloc(np * sizeof *avg);
    rc = avg ? nvp_adam_get_average(opt, np, avg) : NVP_ENOMEM;
    if (rc == NVP_OK)
        rc = nvp_chain_set_params(c, np, avg);
    free(avg);
    nvp_adam_free(opt);
    return rc == NVP_OK ? 0 : ex_lib_error("the parameter average", rc,
                                           nvp_errmsg());
}

/* The estimates over cfg->draws draws of q, in chunks. */
static int evaluate(const config *cfg, int k, const nvp_chain *c,
                    nvp_rng *rng, result *r)
{
    enum { CHUNK = 65536 };
    float *y = malloc(2 * CHUNK * sizeof *y), *lq = malloc(CHUNK * sizeof *lq);
    double *lw = malloc(cfg->draws * sizeof *lw);
    if (!y || !lq || !lw) {
        free(y), free(lq), free(lw);
        return ex_error("out of memory for %llu draws",
                        (unsigned long long)cfg->draws);
    }
    double sum = 0, max = -INFINITY;
    for (uint64_t d0 = 0; d0 < cfg->draws; d0 += CHUNK) {
        const size_t n = cfg->draws - d0 < CHUNK ? (size_t)(cfg->draws - d0)
                                                 : CHUNK;
        const int rc = nvp_chain_sample(c, rng, n, y, lq);
        if (rc != NVP_OK) {
            free(y), free(lq), free(lw);
            return ex_lib_error("drawing from the flow", rc,
                                nvp_chain_errmsg(c));
        }
        for (size_t i = 0; i < n; i++) {
            /* log p~ - log q; a draw that overflowed weighs nothing */
            const double w = -energy(k, y[2 * i], y[2 * i + 1], NULL) -
                             (double)lq[i];
            lw[d0 + i] = isfinite(w) ? w : -INFINITY;
            if (isfinite(w))
                sum += w;
            if (lw[d0 + i] > max)
                max = lw[d0 + i];
        }
    }
    double acc = 0;
    for (uint64_t i = 0; i < cfg->draws; i++)
        acc += exp(lw[i] - max);
    r->elbo = sum / (double)cfg->draws;
    r->log_z_is = max + log(acc / (double)cfg->draws);
    free(y), free(lq), free(lw);
    return 0;
}

static int fit(const config *cfg, int k, result *r)
{
    nvp_rng *rng = NULL;
    int rc = nvp_rng_create(&rng, cfg->seed * 4 + (uint64_t)k, NULL);
    if (rc != NVP_OK)
        return ex_lib_error("creating a generator", rc, nvp_errmsg());
    nvp_chain *c = NULL;
    int status = make_flow(cfg, rng, &c);
    double t0 = seconds();
    if (status == 0)
        status = train(cfg, k, c, rng);
    r->train_s = seconds() - t0;
    t0 = seconds();
    if (status == 0)
        status = evaluate(cfg, k, c, rng, r);
    r->log_z_grid = grid_log_z(k);
    r->kl = r->log_z_grid - r->elbo;
    r->eval_s = seconds() - t0;
    nvp_chain_free(c);
    nvp_rng_free(rng);
    return status;
}

int main(int argc, char **argv)
{
    ex_init("energy_fit", 1);
    ex_check_version();
    config cfg;
    const int p = parse_args(argc, argv, &cfg);
    if (p)
        return p == 1 ? EX_OK : EX_USAGE;
    if (check_gradients())
        return ex_finish(EX_FAILED);
    printf("energy_fit: nvpflow %s; actnorm + %zu couplings, hidden",
           nvp_version_string(), cfg.layers);
    for (size_t i = 0; i < cfg.n_hidden; i++)
        printf("%s%zu", i ? "," : " ", cfg.hidden[i]);
    printf("; %lu steps of %zu draws, lr %g (cosine), %llu draws for the "
           "estimates, seed %llu, %llu thread(s)\n",
           cfg.steps, cfg.batch, cfg.lr, (unsigned long long)cfg.draws,
           (unsigned long long)cfg.seed, (unsigned long long)cfg.threads);
    printf("%-6s %10s %10s %12s %12s %10s %8s %8s\n", "energy", "KL(q||p)",
           "ELBO", "logZ_IS", "logZ_grid", "|IS-grid|", "train_s",
           "eval_s");
    double worst = 0, total = 0;
    const int first = cfg.energy ? (int)cfg.energy : 1;
    const int last = cfg.energy ? (int)cfg.energy : 4;
    for (int k = first; k <= last; k++) {
        result r = {0, 0, 0, 0, 0, 0};
        const int status = fit(&cfg, k, &r);
        if (status)
            return ex_finish(status);
        const double err = fabs(r.log_z_is - r.log_z_grid);
        if (!(err <= worst))
            worst = err;
        total += r.train_s + r.eval_s;
        printf("U%-5d %10.4f %10.4f %12.4f %12.4f %10.4f %8.1f %8.1f\n", k,
               r.kl, r.elbo, r.log_z_is, r.log_z_grid, err, r.train_s,
               r.eval_s);
        fflush(stdout);
    }
    printf("total_s=%.1f\n", total);
    printf("max_abs_logz_error=%.4f\n", worst);
    return ex_finish(EX_OK);
}
