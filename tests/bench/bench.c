/* SPDX-License-Identifier: MIT */
/* `make bench`: the library's speed on this machine, side by side with
 * PyTorch and OpenBLAS when Python can import them.
 *
 * Every figure is the median of several repeats.  For one thread and for
 * all online CPUs it measures the reference configuration's training step
 * (4 couplings, 512-512 MLPs, batch 100), sample and log_prob per point at
 * batch 1000 and 100000, and the matrix products the layers run; and the
 * machine's FMA peak, of which each GEMM figure is given as a share.
 * Then, on 1 and 2 threads, three models over more dimensions (D = 8, 64
 * and 784), each call timed in turns with PyTorch's, as ratios and as
 * shares of the peak.  NVP_BENCH_MODELS picks the models (tutorial, d8,
 * d64, d784, and the sections cond and bf16; default all), NVP_BENCH_TURNS the turns (default 7),
 * NVP_BENCH_PYTHON the Python that runs PyTorch. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "runtime/exec.h"
#include "nvpflow.h"

#include "bench_conditional.h"
#include "bench_precision.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#define REPEATS 5

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* ------------------------------------------------------------ FMA peak */
/* Twelve independent FMA chains per thread: enough to cover the latency of
 * two FMA pipes.  Returns GFLOP/s of one thread running `seconds`. */
#if defined(__x86_64__) || defined(__i386__)
#define FMA12(T, f)                                                          \
    a0 = f(a0, b, c); a1 = f(a1, b, c); a2 = f(a2, b, c); a3 = f(a3, b, c);  \
    a4 = f(a4, b, c); a5 = f(a5, b, c); a6 = f(a6, b, c); a7 = f(a7, b, c);  \
    a8 = f(a8, b, c); a9 = f(a9, b, c); a10 = f(a10, b, c); a11 = f(a11, b, c);
#define PEAK_BODY(T, set1, fma, add, lanes)                                  \
    T b = set1(0.999f), c = set1(1e-3f);                                     \
    T a0 = set1(0), a1 = set1(1), a2 = set1(2), a3 = set1(3), a4 = set1(4);  \
    T a5 = set1(5), a6 = set1(6), a7 = set1(7), a8 = set1(8), a9 = set1(9);  \
    T a10 = set1(10), a11 = set1(11);                                        \
    long iters = 0;                                                          \
    double t0 = now(), t = t0;                                               \
    while (t - t0 < seconds) {                                               \
        for (int i = 0; i < 100000; i++) {                                   \
            FMA12(T, fma)                                                    \
            __asm__ volatile("" : "+x"(a0), "+x"(a6));                       \
        }                                                                    \
        iters += 100000;                                                     \
        t = now();                                                           \
    }                                                                        \
    T s = add(add(add(a0, a1), add(a2, a3)), add(add(a4, a5), add(a6, a7))); \
    s = add(s, add(add(a8, a9), add(a10, a11)));                             \
    float out[16];                                                           \
    memcpy(out, &s, sizeof(float));                                          \
    sink = out[0];                                                           \
    return (double)iters * 12.0 * lanes * 2.0 / (t - t0) / 1e9;

static volatile float sink;

__attribute__((target("avx512f"))) static double peak_avx512(double seconds)
{
    PEAK_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, 16)
}

__attribute__((target("avx2,fma"))) static double peak_avx2(double seconds)
{
    PEAK_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, 8)
}
#endif

static double peak_one_thread(double seconds)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return peak_avx512(seconds);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return peak_avx2(seconds);
#endif
    (void)seconds;
    return 0.0; /* no FMA unit the bench knows: shares are not printed */
}

typedef struct {
    double seconds, result;
} peak_arg;

static void *peak_thread(void *p)
{
    peak_arg *a = p;
    a->result = peak_one_thread(a->seconds);
    return NULL;
}

/* Total GFLOP/s with `threads` threads running the FMA loop at once: the
 * best of PEAK_RUNS runs of 0.2 s.  The best, not the median: a peak is
 * what the cores can do, and a slow stretch of a shared host only ever
 * lowers a run (main measures it before and after everything else too). */
#define PEAK_RUNS 5
static double peak(int threads)
{
    double best = 0.0;
    for (int r = 0; r < PEAK_RUNS; r++) {
        pthread_t tid[256];
        peak_arg args[256];
        for (int i = 0; i < threads; i++) {
            args[i].seconds = 0.2;
            pthread_create(&tid[i], NULL, peak_thread, &args[i]);
        }
        double run = 0.0;
        for (int i = 0; i < threads; i++) {
            pthread_join(tid[i], NULL);
            run += args[i].result;
        }
        if (run > best)
            best = run;
    }
    return best;
}

/* ---------------------------------------------------------------- GEMM */
typedef struct {
    const char *name, *label;
    size_t m, n, k;
    int ta, tb;
} shape;

static const shape shapes[] = {
    {"fwd_100", "GEMM X*W      100x512x512", 100, 512, 512, 0, 0},
    {"fwd_1000", "GEMM X*W     1000x512x512", 1000, 512, 512, 0, 0},
    {"dx_100", "GEMM dY*W^T   100x512x512", 100, 512, 512, 0, 1},
    {"dw_100", "GEMM X^T*dY   512x512x100", 512, 512, 100, 1, 0},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

static double gemm_gflops(const shape *s, nvp_pool *pool, float *pack)
{
    float *a = malloc(s->m * s->k * sizeof *a), *b = malloc(s->k * s->n * sizeof *b);
    float *c = malloc(s->m * s->n * sizeof *c);
    for (size_t i = 0; i < s->m * s->k; i++)
        a[i] = (float)(i % 97) / 97.0f - 0.5f;
    for (size_t i = 0; i < s->k * s->n; i++)
        b[i] = (float)(i % 89) / 89.0f - 0.5f;
    nvp_exec ex = {nvp__gemm_best(), nvp__cpu_isa(), pack, pool, 0, NULL, NULL};
    const size_t lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    const double flop = 2.0 * (double)s->m * (double)s->n * (double)s->k;
    const int inner = (int)(2e9 / flop / 10) + 1;
    double t[7];
    nvp__exec_gemm(&ex, s->ta, s->tb, s->m, s->n, s->k, a, lda, b, ldb, 0, c,
                   s->n, NULL);
    for (int r = 0; r < 7; r++) {
        double t0 = now();
        for (int i = 0; i < inner; i++)
            nvp__exec_gemm(&ex, s->ta, s->tb, s->m, s->n, s->k, a, lda, b, ldb,
                           0, c, s->n, NULL);
        t[r] = (now() - t0) / inner;
    }
    free(a);
    free(b);
    free(c);
    return flop / median(t, 7) / 1e9;
}

/* ----------------------------------------------------------- the model */
typedef struct {
    double train_ms, grad_ms, sample_us[2], log_prob_us[2];
    double gemm[N_SHAPES];
} figures;

static void fail(const char *what, int rc)
{
    fprintf(stderr, "bench: %s failed: %s: %s\n", what, nvp_strerror(rc),
            nvp_errmsg());
    exit(1);
}

/* The reference data (two moons, 2000 points, standardised) and a chain
 * of the reference configuration on `threads` threads with its own Adam,
 * all from seed 1. */
typedef struct {
    nvp_rng *rng;
    float *data;
    nvp_chain *chain;
    nvp_adam *opt;
} trainer;

static void trainer_init(trainer *t, size_t threads)
{
    int rc;
    if ((rc = nvp_rng_create(&t->rng, 1, NULL)))
        fail("nvp_rng_create", rc);
    t->data = malloc(2000 * 2 * sizeof *t->data);
    nvp_scaler *sc;
    nvp_two_moons(t->rng, 2000, 0.05f, t->data, NULL);
    nvp_scaler_create(&sc, 2, NULL);
    nvp_scaler_fit(sc, 2000, t->data);
    nvp_scaler_transform(sc, 2000, t->data, t->data);
    nvp_scaler_free(sc);
    if ((rc = nvp_chain_create_alternating(&t->chain, 2, 4, 0, NULL, 0, t->rng,
                                           NULL)))
        fail("nvp_chain_create_alternating", rc);
    if ((rc = nvp_chain_set_threads(t->chain, threads)))
        fail("nvp_chain_set_threads", rc);
    nvp_adam_create(&t->opt, nvp_chain_num_params(t->chain), NULL);
    nvp_adam_set_lr(t->opt, 1e-4f);
}

static void trainer_free(trainer *t)
{
    nvp_chain_free(t->chain);
    nvp_adam_free(t->opt);
    nvp_rng_free(t->rng);
    free(t->data);
}

/* Seconds per training step over `steps` steps. */
static double train_steps(trainer *t, int steps)
{
    float loss;
    int rc;
    const double t0 = now();
    for (int s = 0; s < steps; s++)
        if ((rc = nvp_chain_train_step(t->chain, t->opt, t->rng, 2000, t->data,
                                       100, &loss)))
            fail("nvp_chain_train_step", rc);
    return (now() - t0) / steps;
}

/* Seconds per gradient (nvp_chain_nll_grad on one fixed minibatch of
 * 100 rows) over `reps` calls. */
static double grad_only(trainer *t, const float *rows, float *grad, int reps)
{
    float loss;
    int rc;
    const double t0 = now();
    for (int s = 0; s < reps; s++)
        if ((rc = nvp_chain_nll_grad(t->chain, 100, rows, grad, &loss)))
            fail("nvp_chain_nll_grad", rc);
    return (now() - t0) / reps;
}

/* Seconds per Adam update alone (nvp_adam_step: one thread) over reps,
 * applied to `params`, a copy of the chain's parameters: repeating one
 * gradient hundreds of times drives parameters far from anything
 * training would reach, and the chain's own must stay usable for the
 * gradient measurements. */
static double adam_only(trainer *t, float *params, const float *grad,
                        int reps)
{
    int rc;
    const size_t n = nvp_chain_num_params(t->chain);
    const double t0 = now();
    for (int s = 0; s < reps; s++)
        if ((rc = nvp_adam_step(t->opt, n, params, grad)))
            fail("nvp_adam_step", rc);
    return (now() - t0) / reps;
}

/* The training step for every thread count, measured in turns (a burst of
 * 40 steps on one thread, then 40 on all, and again, each after one
 * untimed step) so that a slow
 * stretch of a shared machine falls on both sides of the ratio.  Every
 * chain runs the same computation: same seed, and results that do not
 * depend on the thread count.  Fills f[i].train_ms and, with two counts,
 * *ratio: the median of the per-turn ratios.  Then the step's two parts
 * the same way, for the breakdown line: the gradient (f[i].grad_ms) and,
 * on one thread, the Adam update alone (*adam_ms). */
#define TRAIN_TURNS 15
static void measure_training(const size_t *counts, int n_counts, figures *f,
                             double *ratio, double *adam_ms,
                             double *adam_clip_ms, size_t *n_params)
{
    trainer t[2];
    double ms[2][TRAIN_TURNS], r[TRAIN_TURNS], am[TRAIN_TURNS];
    double amc[TRAIN_TURNS];
    for (int i = 0; i < n_counts; i++) {
        trainer_init(&t[i], counts[i]);
        train_steps(&t[i], 20); /* warm-up: pool, workspaces, caches */
    }
    for (int turn = 0; turn < TRAIN_TURNS; turn++) {
        for (int i = 0; i < n_counts; i++) {
            /* One untimed step first: switching chains leaves the caches
             * holding the other chain's 17 MB of parameters, gradient and
             * moments, and refilling them made the first step of a burst
             * about twice as slow, a cost no training loop pays. */
            train_steps(&t[i], 1);
            ms[i][turn] = train_steps(&t[i], 40) * 1e3;
        }
        r[turn] = n_counts > 1 ? ms[0][turn] / ms[1][turn] : 1.0;
    }
    for (int i = 0; i < n_counts; i++)
        f[i].train_ms = median(ms[i], TRAIN_TURNS);
    *ratio = median(r, TRAIN_TURNS);

    const size_t np = nvp_chain_num_params(t[0].chain);
    *n_params = np;
    /* 64-byte aligned like the library's own buffers (an unaligned gradient
     * slows the update by splitting its vector loads). */
    float *grad = aligned_alloc(64, (np * sizeof *grad + 63) / 64 * 64);
    float *scratch = aligned_alloc(64, (np * sizeof *scratch + 63) / 64 * 64);
    memcpy(scratch, nvp_chain_params(t[0].chain), np * sizeof *scratch);
    const float *rows = t[0].data; /* the first 100 training points */
    for (int turn = 0; turn < TRAIN_TURNS; turn++) {
        for (int i = 0; i < n_counts; i++) {
            grad_only(&t[i], rows, grad, 1); /* untimed, as above */
            ms[i][turn] = grad_only(&t[i], rows, grad, 40) * 1e3;
        }
        adam_only(&t[0], scratch, grad, 1);
        am[turn] = adam_only(&t[0], scratch, grad, 40) * 1e3;
        /* The same with gradient-norm clipping on and a limit this
         * gradient never reaches: the cost of the norm's extra read, which
         * every step pays.  (A step that is clipped can cost more; see
         * docs/performance.md, "The cost of gradient clipping".) */
        nvp_adam_set_clip_norm(t[0].opt, 1e30f);
        adam_only(&t[0], scratch, grad, 1);
        amc[turn] = adam_only(&t[0], scratch, grad, 40) * 1e3;
        nvp_adam_set_clip_norm(t[0].opt, 0.0f);
    }
    for (int i = 0; i < n_counts; i++) {
        f[i].grad_ms = median(ms[i], TRAIN_TURNS);
        trainer_free(&t[i]);
    }
    *adam_ms = median(am, TRAIN_TURNS);
    *adam_clip_ms = median(amc, TRAIN_TURNS);
    free(grad);
    free(scratch);
}

/* Sampling, density and the matrix products on `threads` threads. */
static void measure(size_t threads, figures *f)
{
    nvp_rng *rng;
    nvp_chain *chain;
    int rc;
    if ((rc = nvp_rng_create(&rng, 1, NULL)))
        fail("nvp_rng_create", rc);
    if ((rc = nvp_chain_create_alternating(&chain, 2, 4, 0, NULL, 0, rng, NULL)))
        fail("nvp_chain_create_alternating", rc);
    if ((rc = nvp_chain_set_threads(chain, threads)))
        fail("nvp_chain_set_threads", rc);
    double t[REPEATS];

    const size_t batch[2] = {1000, 100000};
    for (int b = 0; b < 2; b++) {
        const size_t n = batch[b];
        const int inner = n == 1000 ? 20 : 1;
        float *y = malloc(n * 2 * sizeof *y), *lp = malloc(n * sizeof *lp);
        nvp_chain_sample(chain, rng, n, y, NULL);
        for (int r = 0; r < REPEATS; r++) {
            double t0 = now();
            for (int i = 0; i < inner; i++)
                nvp_chain_sample(chain, rng, n, y, NULL);
            t[r] = (now() - t0) / inner;
        }
        f->sample_us[b] = median(t, REPEATS) / (double)n * 1e6;
        for (int r = 0; r < REPEATS; r++) {
            double t0 = now();
            for (int i = 0; i < inner; i++)
                nvp_chain_log_prob(chain, n, y, lp);
            t[r] = (now() - t0) / inner;
        }
        f->log_prob_us[b] = median(t, REPEATS) / (double)n * 1e6;
        free(y);
        free(lp);
    }
    nvp_chain_free(chain);
    nvp_rng_free(rng);

    nvp_allocator a;
    nvp__allocator_init(&a, NULL);
    size_t count, pack_floats = 0;
    const nvp_gemm_kernel *const *ks = nvp__gemm_kernels(&count);
    for (size_t i = 0; i < count; i++)
        if (nvp__gemm_pack_floats(ks[i]) > pack_floats)
            pack_floats = nvp__gemm_pack_floats(ks[i]);
    float *pack = nvp__alloc_aligned(&a, pack_floats * sizeof(float));
    nvp_pool *pool = NULL;
    if (threads > 1 && nvp__pool_create(&pool, threads, pack_floats, &a) == NVP_OK)
        nvp__pool_try_acquire(pool);
    for (size_t s = 0; s < N_SHAPES; s++)
        f->gemm[s] = gemm_gflops(&shapes[s], pool, pack);
    if (pool) {
        nvp__pool_release(pool);
        nvp__pool_free(pool);
    }
    nvp__free_aligned(&a, pack);
}

/* ------------------------------------------------------ the other side */
typedef struct {
    int have;
    double train_ms, sample_us[2], log_prob_us[2], gemm[N_SHAPES];
} theirs;

/* The peer's set-up, in its command only: OpenBLAS picks its own kernels
 * and cache sizes (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset), glibc
 * keeps torch's tensors mapped between steps instead of returning and
 * faulting them again every step (mmap and trim thresholds), and
 * OpenBLAS and OpenMP run as many threads as the figure is for. */
static const char *const peer_setup[] = {
    "-u", "OPENBLAS_CORETYPE", "-u", "OPENBLAS_L2_SIZE",
    "MALLOC_MMAP_THRESHOLD_=67108864", "MALLOC_TRIM_THRESHOLD_=268435456"};
#define N_PEER_SETUP (sizeof peer_setup / sizeof peer_setup[0])

/* Runs torch_bench.py with the first Python that imports torch and
 * numpy; returns 0 when none does. */
static int run_python(const char *dir, size_t threads, theirs *o,
                      const char **python)
{
    static const char *candidates[] = {NULL, "python3", "/usr/bin/python3"};
    candidates[0] = getenv("NVP_BENCH_PYTHON");
    memset(o, 0, sizeof *o);
    for (size_t i = 0; i < 3; i++) {
        if (!candidates[i])
            continue;
        char cmd[1024];
        size_t used = (size_t)snprintf(cmd, sizeof cmd, "env");
        for (size_t j = 0; j < N_PEER_SETUP && used < sizeof cmd; j++)
            used += (size_t)snprintf(cmd + used, sizeof cmd - used, " %s",
                                     peer_setup[j]);
        if (used < sizeof cmd)
            snprintf(cmd + used, sizeof cmd - used,
                     " OPENBLAS_NUM_THREADS=%zu OMP_NUM_THREADS=%zu %s "
                     "%s/torch_bench.py %zu 2>/dev/null",
                     threads, threads, candidates[i], dir, threads);
        FILE *p = popen(cmd, "r");
        if (!p)
            continue;
        char line[256];
        while (fgets(line, sizeof line, p)) {
            char name[64];
            double v;
            if (sscanf(line, "%63s %lf", name, &v) != 2)
                continue;
            o->have = 1;
            if (!strcmp(name, "train_ms"))
                o->train_ms = v;
            else if (!strcmp(name, "sample_us_1000"))
                o->sample_us[0] = v;
            else if (!strcmp(name, "sample_us_100000"))
                o->sample_us[1] = v;
            else if (!strcmp(name, "log_prob_us_1000"))
                o->log_prob_us[0] = v;
            else if (!strcmp(name, "log_prob_us_100000"))
                o->log_prob_us[1] = v;
            for (size_t s = 0; s < N_SHAPES; s++) {
                char key[64];
                snprintf(key, sizeof key, "gemm_%s", shapes[s].name);
                if (!strcmp(name, key))
                    o->gemm[s] = v;
            }
        }
        int status = pclose(p);
        if (o->have && status == 0) {
            *python = candidates[i];
            return 1;
        }
        memset(o, 0, sizeof *o);
    }
    return 0;
}

/* ------------------------------------------------ the general-D models */
/* Issue 18's models, where only the GEMM path runs: half-split couplings
 * with alternating masks (nvp_chain_create_alternating) and ReLU
 * conditioners of two hidden layers, on points drawn from N(0, I).  Each
 * is timed on 1 and 2 threads against PyTorch running the same
 * architecture (torch_model.make_layers) in two resident processes, one
 * per thread count, that time bursts on request: bursts of the library
 * and of the peer alternate within every turn, so that a slow stretch of
 * a shared machine falls on both sides of a ratio. */
typedef struct {
    const char *key, *label; /* key: the name NVP_BENCH_MODELS takes */
    size_t dim, layers, width, batch, n_eval;
    int adam; /* 1: training step with Adam; 0: the gradient alone */
} dmodel;

static const dmodel dmodels[] = {
    {"d8", "D=8, 8 x 256-256", 8, 8, 256, 256, 10000, 1},
    {"d64", "D=64, 8 x 512-512", 64, 8, 512, 256, 10000, 1},
    {"d784", "D=784, 4 x 1024-1024", 784, 4, 1024, 128, 1000, 0},
};
#define N_DMODELS (sizeof dmodels / sizeof dmodels[0])

/* The calls timed for each model: the step (training with Adam, or the
 * gradient alone) on a minibatch, and log_prob over n_eval points. */
enum { CALL_STEP, CALL_LOGPROB, N_CALLS };

/* FLOPs of one point's forward pass through the conditioners' matrix
 * products: 2*k*n per point and dense layer of k inputs and n outputs.
 * Layer k (from 0) conditions on the first dim/2 dimensions when k is
 * even and on the others when it is odd; its output holds 2 values per
 * transformed dimension.  A backward pass counts twice its forward. */
static double dmodel_flop(const dmodel *m)
{
    const double h = (double)m->width;
    double f = 0.0;
    for (size_t k = 0; k < m->layers; k++) {
        const size_t a = k % 2 ? m->dim - m->dim / 2 : m->dim / 2;
        const double b = (double)(m->dim - a);
        f += 2.0 * ((double)a * h + h * h + h * 2.0 * b);
    }
    return f;
}

static double call_flop(const dmodel *m, int call)
{
    return call == CALL_STEP ? 3.0 * dmodel_flop(m) * (double)m->batch
                             : dmodel_flop(m) * (double)m->n_eval;
}

/* The peer: torch_bench.py in serve mode behind two pipes. */
typedef struct {
    pid_t pid;
    FILE *to, *from;
    size_t threads;
    char python[256], command[1024], missing[128];
} peer;

/* Ends the peer; returns its wait status (-1 if none ran). */
static int peer_close(peer *p)
{
    int status = -1;
    if (p->to) {
        fputs("quit\n", p->to);
        fclose(p->to);
    }
    if (p->from)
        fclose(p->from);
    if (p->pid > 0 && waitpid(p->pid, &status, 0) != p->pid)
        status = -1;
    p->to = p->from = NULL;
    p->pid = 0;
    return status;
}

/* Sends one command line and reads the answer's first line into `line`;
 * returns 0 when it starts with "ok". */
static int peer_ask(peer *p, const char *command, char *line, size_t size)
{
    line[0] = 0;
    if (!p->to)
        return -1;
    if (fprintf(p->to, "%s\n", command) < 0 || fflush(p->to) == EOF ||
        !fgets(line, (int)size, p->from)) {
        const int status = peer_close(p);
        if (status != -1 && WIFSIGNALED(status))
            snprintf(line, size, "error the peer process ended by signal %d",
                     WTERMSIG(status));
        else if (status != -1 && WIFEXITED(status))
            snprintf(line, size, "error the peer process exited with %d",
                     WEXITSTATUS(status));
        else
            snprintf(line, size, "error the peer process ended");
        return -1;
    }
    line[strcspn(line, "\n")] = 0;
    return strncmp(line, "ok", 2) != 0;
}

/* Starts `python dir/torch_bench.py serve threads` with the set-up above
 * and reads its description (the `info` lines) into `info`.  Returns 0 on
 * success; otherwise p->missing says why when the script could. */
static int peer_start(peer *p, const char *python, const char *dir,
                      size_t threads, char *info, size_t info_size)
{
    memset(p, 0, sizeof *p);
    p->threads = threads;
    snprintf(p->python, sizeof p->python, "%s", python);
    char script[512], nthreads[32], blas_threads[64], omp_threads[64];
    snprintf(script, sizeof script, "%s/torch_bench.py", dir);
    snprintf(nthreads, sizeof nthreads, "%zu", threads);
    snprintf(blas_threads, sizeof blas_threads, "OPENBLAS_NUM_THREADS=%zu",
             threads);
    snprintf(omp_threads, sizeof omp_threads, "OMP_NUM_THREADS=%zu", threads);
    const char *argv[N_PEER_SETUP + 8];
    size_t n = 0;
    argv[n++] = "env";
    for (size_t i = 0; i < N_PEER_SETUP; i++)
        argv[n++] = peer_setup[i];
    argv[n++] = blas_threads;
    argv[n++] = omp_threads;
    argv[n++] = python;
    argv[n++] = script;
    argv[n++] = "serve";
    argv[n++] = nthreads;
    argv[n] = NULL;
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof p->command; i++)
        used += (size_t)snprintf(p->command + used, sizeof p->command - used,
                                 "%s%s", i ? " " : "", argv[i]);

    int to[2], from[2];
    if (pipe(to))
        return -1;
    if (pipe(from)) {
        close(to[0]);
        close(to[1]);
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[0]);
        close(to[1]);
        close(from[0]);
        close(from[1]);
        execvp("env", (char *const *)argv);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    if (pid < 0) {
        close(to[1]);
        close(from[0]);
        return -1;
    }
    p->pid = pid;
    p->to = fdopen(to[1], "w");
    p->from = fdopen(from[0], "r");
    if (!p->to || !p->from) {
        if (!p->to)
            close(to[1]);
        if (!p->from)
            close(from[0]);
        peer_close(p);
        return -1;
    }
    char line[1024];
    size_t len = 0;
    info[0] = 0;
    if (fputs("info\n", p->to) == EOF || fflush(p->to) == EOF) {
        peer_close(p);
        return -1;
    }
    while (fgets(line, sizeof line, p->from)) {
        line[strcspn(line, "\n")] = 0;
        if (!strcmp(line, "end"))
            return 0;
        if (!strncmp(line, "missing ", 8)) {
            snprintf(p->missing, sizeof p->missing, "%.100s", line + 8);
            break;
        }
        if (!strncmp(line, "info ", 5) && len < info_size)
            len += (size_t)snprintf(info + len, info_size - len,
                                    "    %s\n", line + 5);
    }
    info[0] = 0;
    peer_close(p);
    return -1;
}

/* The library's side of one model on one thread count. */
typedef struct {
    nvp_chain *chain;
    nvp_adam *opt;
    nvp_rng *rng;
    float *grad;
} dside;

static void dside_init(dside *s, const dmodel *m, size_t threads)
{
    int rc;
    size_t hidden[2] = {m->width, m->width};
    memset(s, 0, sizeof *s);
    if ((rc = nvp_rng_create(&s->rng, 1, NULL)))
        fail("nvp_rng_create", rc);
    if ((rc = nvp_chain_create_alternating(&s->chain, m->dim, m->layers, 2,
                                           hidden, 0, s->rng, NULL)))
        fail("nvp_chain_create_alternating", rc);
    if ((rc = nvp_chain_set_threads(s->chain, threads)))
        fail("nvp_chain_set_threads", rc);
    const size_t np = nvp_chain_num_params(s->chain);
    if (m->adam) {
        if ((rc = nvp_adam_create(&s->opt, np, NULL)))
            fail("nvp_adam_create", rc);
        nvp_adam_set_lr(s->opt, 1e-4f);
    } else {
        s->grad = aligned_alloc(64, (np * sizeof *s->grad + 63) / 64 * 64);
        if (!s->grad)
            fail("aligned_alloc", NVP_ENOMEM);
    }
}

static void dside_free(dside *s)
{
    nvp_chain_free(s->chain);
    nvp_adam_free(s->opt);
    nvp_rng_free(s->rng);
    free(s->grad);
}

/* One call of `call`: a training step drawing a minibatch from the n_eval
 * points, or the gradient of the first `batch` points; or log_prob of
 * the n_eval points into lp. */
static void dside_call(dside *s, const dmodel *m, int call, const float *data,
                       float *lp)
{
    int rc;
    float loss;
    if (call == CALL_LOGPROB) {
        if ((rc = nvp_chain_log_prob(s->chain, m->n_eval, data, lp)))
            fail("nvp_chain_log_prob", rc);
    } else if (m->adam) {
        if ((rc = nvp_chain_train_step(s->chain, s->opt, s->rng, m->n_eval,
                                       data, m->batch, &loss)))
            fail("nvp_chain_train_step", rc);
    } else if ((rc = nvp_chain_nll_grad(s->chain, m->batch, data, s->grad,
                                        &loss))) {
        fail("nvp_chain_nll_grad", rc);
    }
}

/* Seconds per call over `reps` calls, after one untimed call (switching
 * between chains, and between processes, leaves the caches holding the
 * other side's parameters). */
static double dside_time(dside *s, const dmodel *m, int call,
                         const float *data, float *lp, int reps)
{
    dside_call(s, m, call, data, lp);
    const double t0 = now();
    for (int r = 0; r < reps; r++)
        dside_call(s, m, call, data, lp);
    return (now() - t0) / reps;
}

/* The peer's seconds per call over `reps` calls (after one untimed
 * call), or 0 when it failed (said on stderr; the peer is then dropped
 * for this call). */
static double peer_time(peer *p, const char *call, int reps, int *ok)
{
    char command[64], line[512];
    if (!*ok)
        return 0.0;
    snprintf(command, sizeof command, "time %s %d", call, reps);
    double v;
    if (peer_ask(p, command, line, sizeof line) ||
        sscanf(line, "ok %lf", &v) != 1 || !(v > 0)) {
        fprintf(stderr, "bench: PyTorch (%zu thread(s)), %s: %s\n",
                p->threads, call, line);
        *ok = 0;
        return 0.0;
    }
    return v;
}

#define DTURNS_DEFAULT 7
#define DTURNS_MAX 99
#define DBURST_SECONDS 0.2

typedef struct {
    double ours[2], theirs[2]; /* seconds per call, medians of turns */
    double ratio[2];           /* medians of per-turn ours/theirs */
    double speedup_ours, speedup_theirs; /* medians of per-turn t1/t2 */
    int have_theirs[2];
} dresult;

/* A pause after every burst on more than one thread: OpenBLAS's idle
 * workers spin for about 2^28 cycles (some 0.1 s) after its last call
 * before they sleep, and would otherwise run beside the next burst of
 * the other side.  The library's workers spin about half a millisecond. */
static void settle(void)
{
    const struct timespec pause = {0, 150000000};
    nanosleep(&pause, NULL);
}

static int burst_reps(double seconds_per_call)
{
    if (!(seconds_per_call > 0))
        return 1;
    const double r = DBURST_SECONDS / seconds_per_call;
    return r < 1 ? 1 : r > 200 ? 200 : (int)(r + 0.5);
}

/* Times model m's two calls on n_th thread counts (th[0] = 1, th[1] = 2),
 * with the peers where peers[i].to is set. */
static void measure_dmodel(const dmodel *m, const size_t *th, int n_th,
                           peer *peers, int turns, dresult *res)
{
    static const char *const peer_call[2][N_CALLS] = {{"grad", "logprob"},
                                                      {"train", "logprob"}};
    int rc;
    nvp_rng *drng;
    float *data = malloc(m->n_eval * m->dim * sizeof *data);
    float *lp = malloc(m->n_eval * sizeof *lp);
    if (!data || !lp)
        fail("malloc", NVP_ENOMEM);
    if ((rc = nvp_rng_create(&drng, 2, NULL)))
        fail("nvp_rng_create", rc);
    nvp_rng_normal(drng, m->n_eval * m->dim, data);
    nvp_rng_free(drng);

    dside side[2];
    int up[2] = {0, 0}; /* peers holding this model */
    char command[128], line[512];
    snprintf(command, sizeof command, "model %zu %zu %zu %zu %zu %d", m->dim,
             m->layers, m->width, m->batch, m->n_eval, m->adam);
    for (int i = 0; i < n_th; i++) {
        dside_init(&side[i], m, th[i]);
        if (peers[i].to) {
            up[i] = !peer_ask(&peers[i], command, line, sizeof line);
            if (!up[i])
                fprintf(stderr, "bench: PyTorch (%zu thread(s)), %s: %s\n",
                        th[i], m->label, line);
        }
    }
    for (int call = 0; call < N_CALLS; call++) {
        const char *pc = peer_call[m->adam][call];
        double ours[2][DTURNS_MAX], peer_s[2][DTURNS_MAX];
        double ratio[2][DTURNS_MAX], su_ours[DTURNS_MAX], su_theirs[DTURNS_MAX];
        int ok[2] = {up[0], up[1]};
        /* Warm-up (pool, workspaces, the peer's allocator), then one
         * timed call on one thread sets each side's burst length. */
        for (int i = 0; i < n_th; i++) {
            dside_call(&side[i], m, call, data, lp);
            dside_call(&side[i], m, call, data, lp);
            peer_time(&peers[i], pc, 1, &ok[i]);
        }
        const int reps_ours =
            burst_reps(dside_time(&side[0], m, call, data, lp, 1));
        const int reps_theirs = burst_reps(peer_time(&peers[0], pc, 1, &ok[0]));
        for (int t = 0; t < turns; t++) {
            for (int i = 0; i < n_th; i++) {
                /* Every other turn the peer goes first. */
                for (int order = 0; order < 2; order++) {
                    if (order == t % 2)
                        ours[i][t] =
                            dside_time(&side[i], m, call, data, lp, reps_ours);
                    else
                        peer_s[i][t] =
                            peer_time(&peers[i], pc, reps_theirs, &ok[i]);
                    if (th[i] > 1 && ok[i])
                        settle();
                }
                ratio[i][t] = ok[i] ? ours[i][t] / peer_s[i][t] : 0.0;
            }
            if (n_th > 1) {
                su_ours[t] = ours[0][t] / ours[1][t];
                su_theirs[t] = ok[0] && ok[1] ? peer_s[0][t] / peer_s[1][t] : 0;
            }
        }
        dresult *r = &res[call];
        memset(r, 0, sizeof *r);
        for (int i = 0; i < n_th; i++) {
            r->ours[i] = median(ours[i], turns);
            r->have_theirs[i] = ok[i];
            if (ok[i]) {
                r->theirs[i] = median(peer_s[i], turns);
                r->ratio[i] = median(ratio[i], turns);
            }
        }
        if (n_th > 1) {
            r->speedup_ours = median(su_ours, turns);
            r->speedup_theirs = ok[0] && ok[1] ? median(su_theirs, turns) : 0;
        }
    }
    for (int i = 0; i < n_th; i++)
        dside_free(&side[i]);
    free(data);
    free(lp);
}

/* The general-D models' section: the peers, then the table; pk[i] is
 * the FMA peak on th[i] threads.  `why` says why no peer ran. */
static void print_dmodels(const int *selected, dresult (*res)[N_CALLS],
                          const size_t *th, int n_th, const double *pk,
                          int turns, int any_peer, const peer *peers,
                          char (*info)[2048], const char *why)
{
    printf("\ngeneral-D models: half-split couplings with alternating masks, "
           "ReLU conditioners, points from N(0, I); every figure the median "
           "of %d turns, each turn timing libnvpflow and PyTorch in "
           "alternation, 1 thread then 2; %%peak: the conditioners' matrix "
           "products (forward 2*m*k*n per dense layer, backward twice that) "
           "against the measured FMA peak\n",
           turns);
    if (!any_peer)
        printf("comparison: no Python with torch and numpy found (%s; set "
               "NVP_BENCH_PYTHON; Debian: python3-torch python3-numpy "
               "libopenblas0-pthread); libnvpflow figures only\n",
               why[0] ? why : "none tried");
    for (int i = 0; any_peer && i < n_th; i++) {
        if (!info[i][0])
            continue;
        printf("PyTorch, %zu thread(s): %s\n%s", th[i], peers[i].command,
               info[i]);
    }
    printf("\n| %-52s | th | %-16s | GFLOP/s | %%peak  | %-16s | "
           "ours/theirs |\n",
           "model: call", "libnvpflow", "PyTorch");
    printf("|------------------------------------------------------|----|"
           "------------------|---------|--------|------------------|"
           "-------------|\n");
    for (size_t k = 0; k < N_DMODELS; k++) {
        if (!selected[k])
            continue;
        const dmodel *m = &dmodels[k];
        for (int i = 0; i < n_th; i++)
            for (int call = 0; call < N_CALLS; call++) {
                const dresult *r = &res[k][call];
                char label[128];
                double scale, ours, peer_v;
                const char *unit;
                if (call == CALL_STEP) {
                    snprintf(label, sizeof label, "%s: %s, batch %zu", m->label,
                             m->adam ? "train step (Adam)" : "gradient, no Adam",
                             m->batch);
                    scale = 1e3;
                    unit = "ms";
                } else {
                    snprintf(label, sizeof label, "%s: log_prob, batch %zu",
                             m->label, m->n_eval);
                    scale = 1e6 / (double)m->n_eval;
                    unit = "us/pt";
                }
                ours = r->ours[i] * scale;
                peer_v = r->theirs[i] * scale;
                const double gflops = call_flop(m, call) / r->ours[i] / 1e9;
                printf("| %-52s | %2zu | %9.3f %-6s | %7.1f |", label, th[i],
                       ours, unit, gflops);
                if (pk[i] > 0)
                    printf(" %5.1f%% |", gflops / pk[i] * 100);
                else
                    printf("      - |");
                if (r->have_theirs[i])
                    printf(" %9.3f %-6s | %11.2f |\n", peer_v, unit,
                           r->ratio[i]);
                else
                    printf(" %16s | %11s |\n", "-", "-");
            }
    }
    if (n_th < 2)
        return;
    printf("\nscaling 2 threads vs 1 (medians of per-turn ratios):");
    for (size_t k = 0; k < N_DMODELS; k++) {
        if (!selected[k])
            continue;
        for (int call = 0; call < N_CALLS; call++) {
            const dresult *r = &res[k][call];
            printf("\n  %-22s %-11s libnvpflow %.2fx", dmodels[k].label,
                   call == CALL_LOGPROB ? "log_prob"
                   : dmodels[k].adam    ? "train step"
                                        : "gradient",
                   r->speedup_ours);
            if (r->speedup_theirs > 0)
                printf(", PyTorch %.2fx", r->speedup_theirs);
        }
    }
    printf("\n");
}

/* NVP_BENCH_MODELS: which models run ("tutorial", "d8", "d64", "d784",
 * separated by commas or spaces; "all", the default, is every one);
 * NVP_BENCH_TURNS: the general-D models' turns.  Returns the turns. */
static int select_models(int *tutorial, int *selected, int *any, int *cond,
                         int *bf16)
{
    const char *env = getenv("NVP_BENCH_MODELS");
    char list[256];
    snprintf(list, sizeof list, "%s", env && *env ? env : "all");
    *tutorial = 0;
    *any = 0;
    *cond = 0;
    *bf16 = 0;
    for (char *w = strtok(list, ", "); w; w = strtok(NULL, ", ")) {
        int known = 0;
        if (!strcmp(w, "all") || !strcmp(w, "tutorial"))
            *tutorial = known = 1;
        if (!strcmp(w, "all") || !strcmp(w, "cond"))
            *cond = known = 1;
        if (!strcmp(w, "all") || !strcmp(w, "bf16"))
            *bf16 = known = 1;
        for (size_t k = 0; k < N_DMODELS; k++)
            if (!strcmp(w, "all") || !strcmp(w, dmodels[k].key))
                selected[k] = *any = known = 1;
        if (!known) {
            fprintf(stderr, "bench: NVP_BENCH_MODELS: unknown model \"%s\" "
                            "(known: all, tutorial, cond, bf16", w);
            for (size_t k = 0; k < N_DMODELS; k++)
                fprintf(stderr, ", %s", dmodels[k].key);
            fprintf(stderr, ")\n");
            exit(2);
        }
    }
    const char *t = getenv("NVP_BENCH_TURNS");
    int turns = DTURNS_DEFAULT;
    if (t && *t) {
        char *end;
        const long v = strtol(t, &end, 10);
        if (*end || v < 1 || v > DTURNS_MAX) {
            fprintf(stderr, "bench: NVP_BENCH_TURNS must be 1 to %d\n",
                    DTURNS_MAX);
            exit(2);
        }
        turns = (int)v;
    }
    return turns;
}

/* ------------------------------------------------------------- output */
static void row(const char *label, size_t threads, double ours,
                const char *unit, double peak_share, const theirs *o,
                double their, int lower_is_better)
{
    printf("| %-28s | %2zu | %9.3f %-7s |", label, threads, ours, unit);
    if (peak_share > 0)
        printf(" %5.1f%% |", peak_share * 100);
    else
        printf("        |");
    if (o->have && their > 0) {
        /* ours / theirs: below 1 is better for times, above 1 for rates */
        printf(" %9.3f | %6.2f %s |\n", their, ours / their,
               lower_is_better ? "(time)" : "(rate)");
    } else {
        printf("         - |      -        |\n");
    }
}

/* The tutorial's figures, as before the general-D models came. */
static void print_tutorial(size_t cpus, const size_t *counts, int n_counts,
                           const double *pk, const figures *f,
                           const theirs *o, const char *python,
                           double train_ratio, double adam_ms,
                           double adam_clip_ms, size_t n_params)
{
    if (python) {
        printf("comparison: PyTorch and numpy (OpenBLAS) via %s, same run\n",
               python);
        printf("peer set-up, in its command only: env");
        for (size_t j = 0; j < N_PEER_SETUP; j++)
            printf(" %s", peer_setup[j]);
        printf(" OPENBLAS_NUM_THREADS=<threads> OMP_NUM_THREADS=<threads>\n");
    } else
        printf("comparison: no Python with torch and numpy found (set "
               "NVP_BENCH_PYTHON); libnvpflow figures only\n");
    printf("\n| %-28s | th | %-17s | %%peak  | %-9s | ours/theirs   |\n",
           "measure (median of repeats)", "libnvpflow", "theirs");
    printf("|------------------------------|----|-------------------|--------|"
           "-----------|---------------|\n");
    for (int i = 0; i < n_counts; i++) {
        const size_t th = counts[i];
        row("train step, batch 100", th, f[i].train_ms, "ms", 0, &o[i],
            o[i].train_ms, 1);
        row("sample, batch 1000", th, f[i].sample_us[0], "us/pt", 0, &o[i],
            o[i].sample_us[0], 1);
        row("log_prob, batch 1000", th, f[i].log_prob_us[0], "us/pt", 0, &o[i],
            o[i].log_prob_us[0], 1);
        row("sample, batch 100000", th, f[i].sample_us[1], "us/pt", 0, &o[i],
            o[i].sample_us[1], 1);
        row("log_prob, batch 100000", th, f[i].log_prob_us[1], "us/pt", 0,
            &o[i], o[i].log_prob_us[1], 1);
        for (size_t s = 0; s < N_SHAPES; s++)
            row(shapes[s].label, th, f[i].gemm[s], "GFLOP/s",
                pk[i] > 0 ? f[i].gemm[s] / pk[i] : 0, &o[i], o[i].gemm[s], 0);
    }
    if (n_counts > 1) {
        printf("\nscaling %zu threads vs 1: train step %.2fx (median of %d "
               "side-by-side turns), log_prob at batch 100000 %.2fx, sample "
               "at batch 100000 %.2fx\n",
               cpus, train_ratio, TRAIN_TURNS,
               f[0].log_prob_us[1] / f[1].log_prob_us[1],
               f[0].sample_us[1] / f[1].sample_us[1]);
    }
    /* The two parts of a training step, to show which one scales: the
     * gradient, and Adam's update, which streams parameters, gradient and
     * both moments (28 bytes per parameter). */
    printf("\ntraining step, its parts (medians of %d turns): gradient "
           "(nvp_chain_nll_grad, batch 100) %.3f ms on 1 thread",
           TRAIN_TURNS, f[0].grad_ms);
    if (n_counts > 1)
        printf(", %.3f ms on %zu (%.2fx)", f[1].grad_ms, cpus,
               f[0].grad_ms / f[1].grad_ms);
    printf("; Adam update alone (nvp_adam_step, 1 thread, its gradient check "
           "included) %.3f ms, %.1f GB/s of update traffic over %zu "
           "parameters\n",
           adam_ms, 28.0 * (double)n_params / (adam_ms * 1e-3) / 1e9,
           n_params);
    printf("Adam update with gradient-norm clipping on (the norm read "
           "first; 1 thread): %.3f ms\n",
           adam_clip_ms);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/bench";
    size_t cpus = (size_t)nvp__online_cpus();
    size_t counts[2] = {1, cpus};
    int n_counts = cpus > 1 ? 2 : 1;
    int tutorial = 0, selected[N_DMODELS] = {0}, any_dmodel = 0, cond = 0;
    int bf16 = 0;
    const int turns =
        select_models(&tutorial, selected, &any_dmodel, &cond, &bf16);
    /* The general-D models run on 1 and 2 threads whatever the machine. */
    const size_t dth[2] = {1, 2};
    const int n_dth = cpus > 1 ? 2 : 1;
    signal(SIGPIPE, SIG_IGN); /* a peer that dies is noticed on reading */

    char model[256] = "unknown CPU";
    FILE *ci = fopen("/proc/cpuinfo", "r");
    if (ci) {
        char line[512];
        while (fgets(line, sizeof line, ci))
            if (!strncmp(line, "model name", 10)) {
                char *p = strchr(line, ':');
                if (p) {
                    snprintf(model, sizeof model, "%s", p + 2);
                    model[strcspn(model, "\n")] = 0;
                }
                break;
            }
        fclose(ci);
    }
    printf("libnvpflow %s benchmark\n", nvp_version_string());
    printf("CPU: %s, %zu online CPUs, GEMM kernel: %s\n", model, cpus,
           nvp__gemm_best()->name);
    double pk[2], pk2 = 0.0; /* pk2: on 2 threads, where cpus > 2 */
    for (int i = 0; i < n_counts; i++)
        pk[i] = peak((int)counts[i]);
    if (cpus > 2 && any_dmodel)
        pk2 = peak(2);

    figures f[2];
    theirs o[2];
    const char *python = NULL;
    double train_ratio = 0, adam_ms = 0, adam_clip_ms = 0;
    size_t n_params = 0;
    if (tutorial) {
        fprintf(stderr, "bench: measuring libnvpflow's training step, 1 and "
                        "%zu thread(s) in turns...\n",
                counts[n_counts - 1]);
        measure_training(counts, n_counts, f, &train_ratio, &adam_ms,
                         &adam_clip_ms, &n_params);
        for (int i = 0; i < n_counts; i++) {
            fprintf(stderr, "bench: measuring libnvpflow, %zu thread(s)...\n",
                    counts[i]);
            measure(counts[i], &f[i]);
            fprintf(stderr,
                    "bench: measuring PyTorch/OpenBLAS, %zu thread(s)...\n",
                    counts[i]);
            run_python(dir, counts[i], &o[i], &python);
        }
    }

    /* The general-D models: the peers first (one process per thread
     * count, the first Python that has torch and numpy), then each model
     * in turn. */
    static dresult dres[N_DMODELS][N_CALLS];
    peer peers[2];
    char peer_info[2][2048] = {"", ""}, why[512] = "";
    int have_peer = 0;
    memset(peers, 0, sizeof peers);
    if (any_dmodel) {
        const char *cands[3] = {getenv("NVP_BENCH_PYTHON"), "python3",
                                "/usr/bin/python3"};
        size_t wl = 0;
        for (int c = 0; c < 3 && !have_peer; c++) {
            if (!cands[c] || !*cands[c])
                continue;
            if (!peer_start(&peers[0], cands[c], dir, 1, peer_info[0],
                            sizeof peer_info[0])) {
                have_peer = 1;
                break;
            }
            if (wl < sizeof why)
                wl += (size_t)snprintf(why + wl, sizeof why - wl, "%s%s: %s",
                                       wl ? "; " : "", cands[c],
                                       peers[0].missing[0]
                                           ? peers[0].missing
                                           : "no answer from torch_bench.py");
        }
        if (have_peer && n_dth > 1 &&
            peer_start(&peers[1], peers[0].python, dir, 2, peer_info[1],
                       sizeof peer_info[1]))
            fprintf(stderr, "bench: the 2-thread PyTorch peer did not start\n");
        for (size_t k = 0; k < N_DMODELS; k++) {
            if (!selected[k])
                continue;
            fprintf(stderr, "bench: measuring %s, libnvpflow%s, 1%s "
                            "thread(s) in turns...\n",
                    dmodels[k].label, have_peer ? " and PyTorch" : "",
                    n_dth > 1 ? " and 2" : "");
            measure_dmodel(&dmodels[k], dth, n_dth, peers, turns, dres[k]);
        }
        for (int i = 0; i < n_dth; i++)
            peer_close(&peers[i]);
    }

    for (int i = 0; i < n_counts; i++) { /* and once more, after the rest */
        const double again = peak((int)counts[i]);
        if (again > pk[i])
            pk[i] = again;
    }
    if (pk2 > 0) {
        const double again = peak(2);
        if (again > pk2)
            pk2 = again;
    }
    printf("measured FMA peak (best of %d runs, before and after the rest): "
           "%.1f GFLOP/s on 1 thread",
           2 * PEAK_RUNS, pk[0]);
    if (n_counts > 1)
        printf(", %.1f GFLOP/s on %zu threads", pk[1], cpus);
    if (pk2 > 0)
        printf(", %.1f GFLOP/s on 2 threads", pk2);
    printf("\n");
    if (tutorial)
        print_tutorial(cpus, counts, n_counts, pk, f, o, python, train_ratio,
                       adam_ms, adam_clip_ms, n_params);
    if (any_dmodel) {
        const double dpk[2] = {pk[0], pk2 > 0 ? pk2 : pk[n_counts - 1]};
        print_dmodels(selected, dres, dth, n_dth, dpk, turns, have_peer,
                      peers, peer_info, why);
    }
    if (cond)
        bench_conditional(turns, pk[0]);
    if (bf16)
        bench_precision(turns, pk[0]);
    return 0;
}
