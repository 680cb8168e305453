/* SPDX-License-Identifier: MIT */
/*
 * mpi_train.c - data-parallel training of a Real-NVP flow with MPI.
 *
 * Every rank holds a full copy of the model (a replica).  Each step:
 *   1. every rank draws the same GLOBAL minibatch indices from its own,
 *      identically seeded nvp_rng (nvp_rng_index, with replacement), so no
 *      indices travel over the network;
 *   2. rank r takes its contiguous share of the global batch (the first
 *      B % size ranks take one row more when B is not divisible by size;
 *      a rank whose share is empty contributes zeros);
 *   3. nvp_chain_nll_grad gives the MEAN over the share; scaled by
 *      share / B it becomes the share's part of the global mean;
 *   4. one in-place MPI_Allreduce(MPI_SUM) adds the parts (the gradient,
 *      the loss and an error flag travel in one buffer);
 *   5. every rank applies the same nvp_adam_step to nvp_chain_params.
 * The replicas therefore stay bitwise identical: the same start, the same
 * reduced gradient on every rank, the same deterministic Adam update.  (The
 * MPI standard only recommends that an all-reduce hand every rank the same
 * bits; Open MPI and MPICH do.  Where one did not, MPI_Reduce to rank 0 and
 * MPI_Bcast would restore the guarantee.)  The program checks it at the
 * start and at the end with an FNV-1a checksum of the parameter bytes,
 * gathered to rank 0 ("ranks_identical=yes|no").  The library's thread
 * count does not matter: its results are bitwise the same for any.
 *
 * With --check-single, rank 0 also trains a separate replica on its own,
 * without MPI, on the SAME global batches (full-batch nll_grad) and prints
 * how far the two parameter vectors are apart.  They are close but not
 * bitwise equal; see compare_single() for why.  It also recomputes, every
 * step, the full-batch gradient at the distributed parameters and prints
 * its largest deviation from the all-reduced one: the step-by-step check
 * that the distributed gradient is the global-batch gradient.
 *
 * Data: 2000 two-moons points (noise sd 0.05), standardised with an
 * nvp_scaler fitted on them.  --save PATH: rank 0 writes the final model
 * (with the scaler) via nvp_chain_save_file.
 *
 * Build and run (see docs/mpi.md):
 *   make mpi-example
 *   mpirun -np 2 build/examples/mpi_train --steps 200 --check-single
 *
 * Output (rank 0, stdout): a header line, progress lines, then key=value
 * lines for scripts: initial_ranks_identical, final_loss, param_checksum,
 * ranks_identical, and with --check-single single_process_final_loss,
 * single_process_max_abs_diff, single_process_max_rel_diff and
 * single_process_max_grad_rel_diff.
 *
 * Exit status: 0 on success, 1 when the library, MPI or the replica check
 * fails (ranks differ), 2 for a bad command line.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "nvpflow.h"

#include "common/messages.h"
#include "common/options.h"

#define N_DATA 2000
#define NOISE 0.05f
#define MAX_STEPS 1000000000UL
#define MAX_BATCH 1000000UL

typedef struct config {
    unsigned long steps;
    double lr;
    size_t batch;
    size_t hidden[NVP_MAX_HIDDEN_LAYERS];
    size_t n_hidden;
    size_t layers;
    uint64_t seed;
    size_t threads;
    const char *save_path;
    int check_single;
} config;

static const char *prog = "mpi_train";
static int g_rank = 0;

/* ---------------------------------------------------------- command line */

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: mpirun -np N %s [options]\n"
            "Data-parallel training of a Real-NVP flow on two moons.\n"
            "\n"
            "Options:\n"
            "  --steps N        training steps (default 1000)\n"
            "  --batch N        GLOBAL minibatch size, split over the ranks "
            "(default 100)\n"
            "  --hidden W1,W2   conditioner hidden widths (default 64,64)\n"
            "  --layers K       coupling layers (default 4)\n"
            "  --lr X           Adam step size (default 1e-4)\n"
            "  --seed S         random seed, 0..2^64-1 (default 0)\n"
            "  --threads T      library threads per rank, 0 = all CPUs "
            "(default 1)\n"
            "  --save PATH      rank 0 saves the final model (with scaler)\n"
            "  --check-single   rank 0 also trains without MPI on the same\n"
            "                   batches and prints the parameter difference\n"
            "  --help           this text\n"
            "Options take their value as the next argument or after '='.\n",
            prog);
}

/* Returns 0 to run, 1 when --help was printed, 2 on a bad command line. */
enum {
    O_HELP = 'h',
    O_STEPS = 256, O_BATCH, O_HIDDEN, O_LAYERS, O_LR, O_SEED, O_THREADS,
    O_SAVE, O_CHECK_SINGLE
};

static const struct option LONG_OPTS[] = {
    {"steps", required_argument, NULL, O_STEPS},
    {"batch", required_argument, NULL, O_BATCH},
    {"hidden", required_argument, NULL, O_HIDDEN},
    {"layers", required_argument, NULL, O_LAYERS},
    {"lr", required_argument, NULL, O_LR},
    {"seed", required_argument, NULL, O_SEED},
    {"threads", required_argument, NULL, O_THREADS},
    {"save", required_argument, NULL, O_SAVE},
    {"check-single", no_argument, NULL, O_CHECK_SINGLE},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static int parse_args(int argc, char **argv, config *cfg)
{
    *cfg = (config){.steps = 1000,
                    .lr = 1e-4, /* the tutorial's reference step size */
                    .batch = 100,
                    .hidden = {64, 64},
                    .n_hidden = 2,
                    .layers = 4,
                    .seed = 0,
                    .threads = 1, /* ranks share the cores: one each */
                    .save_path = NULL,
                    .check_single = 0};
    opts o;
    opts_init(&o, argc, argv, "h", LONG_OPTS);
    const char *v;
    int id, bad = 0;
    uint64_t u = 0;
    while (!bad && (id = ex_next_option(&o, &v)) != OPTS_END) {
        switch (id) {
        case O_HELP:
            if (g_rank == 0)
                usage(stdout);
            return 1;
        case O_CHECK_SINGLE: cfg->check_single = 1; break;
        case O_STEPS:
            bad = ex_opt_uint(o.name, v, 0, MAX_STEPS, &u);
            cfg->steps = (unsigned long)u;
            break;
        case O_BATCH:
            bad = ex_opt_uint(o.name, v, 1, MAX_BATCH, &u);
            cfg->batch = (size_t)u;
            break;
        case O_HIDDEN:
            bad = ex_opt_widths(o.name, v, "e.g. 64,64", cfg->hidden,
                                &cfg->n_hidden);
            break;
        case O_LAYERS:
            bad = ex_opt_uint(o.name, v, 1, NVP_MAX_LAYERS, &u);
            cfg->layers = (size_t)u;
            break;
        case O_LR: bad = ex_opt_step_size(o.name, v, &cfg->lr); break;
        case O_SEED: bad = ex_opt_uint(o.name, v, 0, UINT64_MAX, &cfg->seed);
            break;
        case O_THREADS:
            bad = ex_opt_uint(o.name, v, 0, NVP_MAX_THREADS, &u);
            cfg->threads = (size_t)u;
            break;
        case O_SAVE: bad = ex_opt_path(o.name, v, &cfg->save_path); break;
        default: bad = 1; break; /* EX_OPT_ERROR, said already */
        }
    }
    return bad ? 2 : 0;
}

/* -------------------------------------------------------------- helpers */

/* Reports a failed library call on this rank and gives up on the whole
 * job: the other ranks may be waiting in a collective call. */
static void lib_fatal(const char *what, int rc, const char *detail)
{
    fprintf(stderr, "%s: rank %d: %s failed: %s%s%s\n", prog, g_rank, what,
            nvp_strerror(rc), detail && *detail ? ": " : "",
            detail ? detail : "");
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static void oom_fatal(void)
{
    fprintf(stderr, "%s: rank %d: out of memory\n", prog, g_rank);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

/* FNV-1a (64 bit) over the bytes of the parameter vector: equal checksums
 * mean, for all practical purposes, bitwise equal parameters. */
static uint64_t fnv1a(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Gathers every rank's checksum of `chain` to rank 0.  Returns 1 on rank 0
 * when all are equal (0 otherwise); other ranks get 1.  *sum receives this
 * rank's checksum. */
static int replicas_identical(nvp_chain *chain, int size, uint64_t *sum)
{
    *sum = fnv1a(nvp_chain_params(chain),
                 nvp_chain_num_params(chain) * sizeof(float));
    uint64_t *all = NULL;
    if (g_rank == 0) {
        all = malloc((size_t)size * sizeof *all);
        if (!all)
            oom_fatal();
    }
    MPI_Gather(sum, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, 0,
               MPI_COMM_WORLD);
    int same = 1;
    if (g_rank == 0) {
        for (int r = 1; r < size; r++)
            if (all[r] != all[0]) {
                same = 0;
                fprintf(stderr,
                        "%s: rank %d checksum %016llx differs from rank 0's "
                        "%016llx\n",
                        prog, r, (unsigned long long)all[r],
                        (unsigned long long)all[0]);
            }
        free(all);
    }
    return same;
}

/* Builds the model exactly as every rank does: the same seed gives the
 * same data and the same initial parameters on every rank.  `rng` is left
 * positioned for the minibatch draws. */
static void build(const config *cfg, nvp_rng **rng, float *data,
                  nvp_scaler **scaler, nvp_chain **chain)
{
    int rc = nvp_rng_create(rng, cfg->seed, NULL);
    if (rc)
        lib_fatal("nvp_rng_create", rc, nvp_errmsg());
    rc = nvp_two_moons(*rng, N_DATA, NOISE, data, NULL);
    if (rc)
        lib_fatal("nvp_two_moons", rc, nvp_rng_errmsg(*rng));
    rc = nvp_scaler_create(scaler, 2, NULL);
    if (rc)
        lib_fatal("nvp_scaler_create", rc, nvp_errmsg());
    rc = nvp_scaler_fit(*scaler, N_DATA, data);
    if (rc == NVP_OK)
        rc = nvp_scaler_transform(*scaler, N_DATA, data, data);
    if (rc)
        lib_fatal("nvp_scaler_fit/transform", rc, nvp_scaler_errmsg(*scaler));
    rc = nvp_chain_create_alternating(chain, 2, cfg->layers, cfg->n_hidden,
                                      cfg->hidden, 0, *rng, NULL);
    if (rc)
        lib_fatal("nvp_chain_create_alternating", rc, nvp_errmsg());
    rc = nvp_chain_set_threads(*chain, cfg->threads);
    if (rc)
        lib_fatal("nvp_chain_set_threads", rc, nvp_chain_errmsg(*chain));
}

static nvp_adam *make_adam(const config *cfg, nvp_chain *chain)
{
    nvp_adam *opt = NULL;
    int rc = nvp_adam_create(&opt, nvp_chain_num_params(chain), NULL);
    if (rc)
        lib_fatal("nvp_adam_create", rc, nvp_errmsg());
    rc = nvp_adam_set_lr(opt, (float)cfg->lr);
    if (rc)
        lib_fatal("nvp_adam_set_lr", rc, nvp_adam_errmsg(opt));
    return opt;
}

/* Rows [*first, *first + *count) of a global batch of B rows: the first
 * B % size ranks take floor(B / size) + 1 rows, the others floor(B / size).
 * With B < size the last ranks get none. */
static void share_of(size_t B, int size, int rank, size_t *first,
                     size_t *count)
{
    const size_t q = B / (size_t)size, rem = B % (size_t)size;
    const size_t r = (size_t)rank;
    *count = q + (r < rem ? 1 : 0);
    *first = r * q + (r < rem ? r : rem);
}

/* With --check-single: the largest absolute and relative differences
 * between the distributed replica `dist` and the single-process one `ref`.
 *
 * Why they are not bitwise equal: the single process computes the global
 * mean gradient as one sum over all B rows times 1/B, in the library's own
 * summation order.  The distributed run sums each share separately (times
 * 1/share), rescales by share/B, and MPI adds the partial results in the
 * order of its reduction algorithm.  Float addition is not associative, so
 * the two gradients differ in the last bits, and Adam (which divides by
 * sqrt(v)) carries those differences on through the following steps.
 * They stay at rounding level, orders of magnitude below the parameters.
 *
 * Over long runs the two trajectories do drift apart for real: once the
 * parameters differ by ~1e-7, sooner or later some ReLU pre-activation
 * sits between the two replicas' values and changes sign in one of them
 * only, which changes that row's gradient by O(1), not by rounding; from
 * there training is chaotic, as any SGD run is under a perturbation.  With
 * the default step size (1e-4) 200 steps stay near 1e-7 relative; with
 * 1e-3, a few hundred steps can already reach 1e-2.  The per-step gradient
 * check (single_process_max_grad_rel_diff) does not drift: it compares
 * both gradients at the same parameters.
 *
 * The relative difference is max_i |d_i - r_i| / max_i |r_i|: relative to
 * the scale of the vector, so that entries that happen to sit near zero do
 * not turn rounding noise into a huge ratio. */
static void compare_single(const float *dist, const float *ref, size_t n,
                           double *max_abs, double *max_rel)
{
    double a = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)dist[i] - (double)ref[i]);
        if (!(d <= a)) /* also catches NaN */
            a = d;
        if (fabs((double)ref[i]) > scale)
            scale = fabs((double)ref[i]);
    }
    *max_abs = a;
    *max_rel = scale > 0.0 ? a / scale : a;
}

/* ----------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    /* Every rank reads the same command line: rank 0 alone says what is
     * wrong with it. */
    ex_init(prog, g_rank == 0);

    config cfg;
    int pr = parse_args(argc, argv, &cfg);
    if (pr != 0) {
        MPI_Finalize();
        return pr == 1 ? 0 : 2;
    }

    /* -------------------------------------------------- identical start */
    static float data[N_DATA * 2];
    nvp_rng *rng = NULL;
    nvp_scaler *scaler = NULL;
    nvp_chain *chain = NULL;
    build(&cfg, &rng, data, &scaler, &chain);
    nvp_adam *opt = make_adam(&cfg, chain);
    const size_t P = nvp_chain_num_params(chain);
    const size_t B = cfg.batch;
    /* Gradient, then the weighted loss, then the error flag: one buffer,
     * one all-reduce per step. */
    if (P > (size_t)INT_MAX - 2) {
        if (g_rank == 0)
            fprintf(stderr, "%s: %zu parameters is too many for one "
                            "MPI_Allreduce\n", prog, P);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    const int n_red = (int)P + 2;
    float *red = malloc((size_t)n_red * sizeof *red);
    uint64_t *idx = malloc(B * sizeof *idx);
    size_t first, count;
    share_of(B, size, g_rank, &first, &count);
    float *rows = malloc((count ? count : 1) * 2 * sizeof *rows);
    if (!red || !idx || !rows)
        oom_fatal();

    uint64_t sum;
    int ok = replicas_identical(chain, size, &sum);
    if (g_rank == 0) {
        printf("%s: ranks=%d global_batch=%zu params=%zu threads_per_rank="
               "%zu steps=%lu\n",
               prog, size, B, P, nvp_chain_threads(chain), cfg.steps);
        printf("shares=");
        for (int r = 0; r < size; r++) {
            size_t f, c;
            share_of(B, size, r, &f, &c);
            printf("%s%zu", r ? "," : "", c);
        }
        printf("\ninitial_ranks_identical=%s\n", ok ? "yes" : "no");
        fflush(stdout);
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (!ok) {
        MPI_Finalize();
        return 1;
    }

    /* The single-process reference (rank 0, --check-single): a clone of
     * the start through the library's own serialisation (bitwise equal by
     * contract), its own Adam, the same batches. */
    nvp_chain *ref = NULL;
    nvp_adam *ref_opt = NULL;
    float *ref_rows = NULL, *ref_grad = NULL, *full_grad = NULL;
    double grad_rel_max = 0.0;
    if (g_rank == 0 && cfg.check_single) {
        size_t len = 0;
        int rc = nvp_chain_save_buffer(chain, NULL, 0, NULL, &len);
        if (rc)
            lib_fatal("nvp_chain_save_buffer", rc, nvp_chain_errmsg(chain));
        void *buf = malloc(len);
        if (!buf)
            oom_fatal();
        rc = nvp_chain_save_buffer(chain, NULL, len, buf, &len);
        if (rc)
            lib_fatal("nvp_chain_save_buffer", rc, nvp_chain_errmsg(chain));
        rc = nvp_chain_load_buffer(&ref, NULL, len, buf, NULL);
        free(buf);
        if (rc)
            lib_fatal("nvp_chain_load_buffer", rc, nvp_errmsg());
        rc = nvp_chain_set_threads(ref, cfg.threads);
        if (rc)
            lib_fatal("nvp_chain_set_threads", rc, nvp_chain_errmsg(ref));
        ref_opt = make_adam(&cfg, ref);
        ref_rows = malloc(B * 2 * sizeof *ref_rows);
        ref_grad = malloc(P * sizeof *ref_grad);
        full_grad = malloc(P * sizeof *full_grad);
        if (!ref_rows || !ref_grad || !full_grad)
            oom_fatal();
    }

    /* ------------------------------------------------------ training */
    const unsigned long report = cfg.steps >= 10 ? cfg.steps / 10 : 1;
    float loss = NAN, ref_loss = NAN;
    int status = 0;
    for (unsigned long step = 1; step <= cfg.steps; step++) {
        /* 1. The same global indices on every rank. */
        int rc = nvp_rng_index(rng, B, N_DATA, idx);
        if (rc)
            lib_fatal("nvp_rng_index", rc, nvp_rng_errmsg(rng));
        /* 2-3. This rank's share: mean NLL gradient, scaled by share/B. */
        float flag = 0.0f;
        if (count > 0) {
            for (size_t i = 0; i < count; i++)
                memcpy(rows + 2 * i, data + 2 * idx[first + i],
                       2 * sizeof *rows);
            float l = NAN;
            rc = nvp_chain_nll_grad(chain, count, rows, red, &l);
            if (rc == NVP_OK) {
                const float w = (float)((double)count / (double)B);
                for (size_t j = 0; j < P; j++)
                    red[j] *= w;
                red[P] = l * w;
            } else {
                /* Keep the collective in step: report through the flag
                 * instead of leaving the others waiting in the reduce. */
                fprintf(stderr, "%s: rank %d: step %lu: nvp_chain_nll_grad: "
                                "%s: %s\n",
                        prog, g_rank, step, nvp_strerror(rc),
                        nvp_chain_errmsg(chain));
                memset(red, 0, (size_t)n_red * sizeof *red);
                flag = 1.0f;
            }
        } else {
            memset(red, 0, (size_t)n_red * sizeof *red);
        }
        red[P + 1] = flag;
        /* 4. Sum over the ranks, in place. */
        MPI_Allreduce(MPI_IN_PLACE, red, n_red, MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD);
        if (red[P + 1] != 0.0f) {
            if (g_rank == 0)
                fprintf(stderr, "%s: step %lu: a rank's gradient failed; "
                                "stopping (try a smaller --lr)\n",
                        prog, step);
            status = 1;
            break;
        }
        loss = red[P];

        /* --check-single: the full-batch gradient at the same parameters
         * (before the update) must match the all-reduced one. */
        if (ref) {
            for (size_t i = 0; i < B; i++)
                memcpy(ref_rows + 2 * i, data + 2 * idx[i],
                       2 * sizeof *ref_rows);
            rc = nvp_chain_nll_grad(chain, B, ref_rows, full_grad, NULL);
            if (rc)
                lib_fatal("full-batch nvp_chain_nll_grad", rc,
                          nvp_chain_errmsg(chain));
            double d, rel;
            compare_single(red, full_grad, P, &d, &rel);
            if (!(rel <= grad_rel_max))
                grad_rel_max = rel;
        }

        /* 5. The same update on every rank.  A non-finite sum is refused
         * by every rank alike, so the ranks stop together. */
        rc = nvp_adam_step(opt, P, nvp_chain_params(chain), red);
        if (rc) {
            if (g_rank == 0)
                fprintf(stderr, "%s: step %lu: nvp_adam_step: %s: %s\n",
                        prog, step, nvp_strerror(rc), nvp_adam_errmsg(opt));
            status = 1;
            break;
        }

        /* The reference: the same B rows (gathered above), one full-batch
         * call, its own Adam. */
        if (ref) {
            rc = nvp_chain_nll_grad(ref, B, ref_rows, ref_grad, &ref_loss);
            if (rc == NVP_OK)
                rc = nvp_adam_step(ref_opt, P, nvp_chain_params(ref), ref_grad);
            if (rc)
                lib_fatal("single-process step", rc, nvp_chain_errmsg(ref));
        }

        if (g_rank == 0 && (step % report == 0 || step == cfg.steps)) {
            if (ref)
                printf("step %lu/%lu  loss %.6f  (single process %.6f)\n",
                       step, cfg.steps, (double)loss, (double)ref_loss);
            else
                printf("step %lu/%lu  loss %.6f\n", step, cfg.steps,
                       (double)loss);
            fflush(stdout);
        }
    }

    /* ----------------------------------------------------- the checks */
    ok = replicas_identical(chain, size, &sum);
    if (g_rank == 0) {
        printf("final_loss=%.6f\n", (double)loss);
        printf("param_checksum=%016llx\n", (unsigned long long)sum);
        printf("ranks_identical=%s\n", ok ? "yes" : "no");
        if (!ok)
            status = 1;
        if (ref) {
            double max_abs, max_rel;
            compare_single(nvp_chain_params(chain), nvp_chain_params(ref), P,
                           &max_abs, &max_rel);
            printf("single_process_final_loss=%.6f\n", (double)ref_loss);
            printf("single_process_max_abs_diff=%.3e\n", max_abs);
            printf("single_process_max_rel_diff=%.3e\n", max_rel);
            printf("single_process_max_grad_rel_diff=%.3e\n", grad_rel_max);
        }
        if (cfg.save_path && status == 0) {
            int rc = nvp_chain_save_file(chain, scaler, cfg.save_path);
            if (rc) {
                fprintf(stderr, "%s: nvp_chain_save_file: %s: %s\n", prog,
                        nvp_strerror(rc), nvp_chain_errmsg(chain));
                status = 1;
            } else {
                /* Read it back: loading gives bitwise the same parameters. */
                nvp_chain *back = NULL;
                rc = nvp_chain_load_file(&back, NULL, cfg.save_path, NULL);
                if (rc) {
                    fprintf(stderr, "%s: nvp_chain_load_file: %s: %s\n",
                            prog, nvp_strerror(rc), nvp_errmsg());
                    status = 1;
                } else {
                    const uint64_t back_sum =
                        fnv1a(nvp_chain_params(back), P * sizeof(float));
                    printf("saved=%s reloaded_identical=%s\n", cfg.save_path,
                           back_sum == sum ? "yes" : "no");
                    if (back_sum != sum)
                        status = 1;
                }
                nvp_chain_free(back);
            }
        }
        fflush(stdout);
    }
    /* Every rank exits with rank 0's verdict. */
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);

    free(ref_rows);
    free(ref_grad);
    free(full_grad);
    nvp_adam_free(ref_opt);
    nvp_chain_free(ref);
    free(rows);
    free(idx);
    free(red);
    nvp_adam_free(opt);
    nvp_chain_free(chain);
    nvp_scaler_free(scaler);
    nvp_rng_free(rng);
    MPI_Finalize();
    return status;
}
