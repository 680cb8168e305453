/* SPDX-License-Identifier: MIT */
/* `make bench`: the library's speed on this machine, side by side with
 * PyTorch and OpenBLAS when Python can import them.
 *
 * Every figure is the median of several repeats.  For one thread and for
 * all online CPUs it measures the reference configuration's training step
 * (4 couplings, 512-512 MLPs, batch 100), sample and log_prob per point at
 * batch 1000 and 100000, and the matrix products the layers run; and the
 * machine's FMA peak, of which each GEMM figure is given as a share. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "runtime/exec.h"
#include "nvpflow.h"

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
    nvp_exec ex = {nvp__gemm_best(), nvp__cpu_isa(), pack, pool};
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
        snprintf(cmd, sizeof cmd,
                 "OPENBLAS_NUM_THREADS=%zu OMP_NUM_THREADS=%zu %s "
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

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/bench";
    size_t cpus = (size_t)nvp__online_cpus();
    size_t counts[2] = {1, cpus};
    int n_counts = cpus > 1 ? 2 : 1;

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
    double pk[2];
    for (int i = 0; i < n_counts; i++)
        pk[i] = peak((int)counts[i]);

    figures f[2];
    theirs o[2];
    const char *python = NULL;
    double train_ratio, adam_ms, adam_clip_ms;
    size_t n_params;
    fprintf(stderr, "bench: measuring libnvpflow's training step, 1 and %zu "
                    "thread(s) in turns...\n",
            counts[n_counts - 1]);
    measure_training(counts, n_counts, f, &train_ratio, &adam_ms,
                     &adam_clip_ms, &n_params);
    for (int i = 0; i < n_counts; i++) {
        fprintf(stderr, "bench: measuring libnvpflow, %zu thread(s)...\n",
                counts[i]);
        measure(counts[i], &f[i]);
        fprintf(stderr, "bench: measuring PyTorch/OpenBLAS, %zu thread(s)...\n",
                counts[i]);
        run_python(dir, counts[i], &o[i], &python);
    }
    for (int i = 0; i < n_counts; i++) { /* and once more, after the rest */
        const double again = peak((int)counts[i]);
        if (again > pk[i])
            pk[i] = again;
    }
    printf("measured FMA peak (best of %d runs, before and after the rest): "
           "%.1f GFLOP/s on 1 thread",
           2 * PEAK_RUNS, pk[0]);
    if (n_counts > 1)
        printf(", %.1f GFLOP/s on %zu threads", pk[1], cpus);
    printf("\n");
    if (python)
        printf("comparison: PyTorch and numpy (OpenBLAS) via %s, same run\n",
               python);
    else
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
    return 0;
}
