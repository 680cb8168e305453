/* SPDX-License-Identifier: MIT */
/* Concurrency test, meant to run under ThreadSanitizer (`make test-tsan`).
 *
 * One small trained chain is shared by four threads that call its const
 * functions at the same time, in loops: log_prob, forward, inverse,
 * sample (each thread with its own nvp_rng), nll_grad, save_buffer and
 * get_params.  The chain runs on its own pool of 2 threads, so at any
 * moment one caller holds the pool (row-chunk or column-split work) while
 * the others run on their own thread.  Every result must equal, bit for
 * bit, the one computed single-threaded beforehand.
 *
 * The threads also make failing calls on the shared chain: each thread's
 * nvp_errmsg() must be its own message, and nvp_chain_errmsg() one of the
 * messages of those calls, whole.
 *
 * A second phase loads the saved model into a fresh chain, whose pool (one
 * thread per CPU, the default) has not started yet, and has the four
 * threads race to its first use: the pool starts lazily inside a const
 * call.
 *
 * A third phase trains a two-dimensional chain wide enough for the
 * single-input sweep to share out its sorts and column blocks, on pools
 * of 2 and 3 threads, against one thread.
 *
 * Plain C and POSIX threads (no Check: TSan and Check's fork mode do not
 * mix well).  Usage: test_threads [iterations [portable]]; with
 * "portable" the chain runs the portable kernels (ThreadSanitizer does not
 * see the memory accesses made inside SIMD intrinsics, so a run with the
 * plain C kernels is the one where it sees every access).  Exits 0 when
 * all is well. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvpflow.h"

#define DIM 4
#define LAYERS 4
#define N_THREADS 4
#define N_BIG 600  /* three row chunks: the pool splits rows */
#define N_SMALL 5  /* one chunk: products split by columns when large */
#define N_SAMPLE 300
#define N_GRAD 256 /* a 256 x 64 x 64 product reaches the column split */
#define N_FAIL 4

static const size_t hidden[2] = {64, 64};

static int failures;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

#define FAIL(...)                                                          \
    do {                                                                   \
        pthread_mutex_lock(&fail_lock);                                    \
        failures++;                                                        \
        fprintf(stderr, "test_threads: " __VA_ARGS__);                     \
        fputc('\n', stderr);                                               \
        pthread_mutex_unlock(&fail_lock);                                  \
    } while (0)

#define OK(call)                                                           \
    do {                                                                   \
        const int rc_ = (call);                                            \
        if (rc_ != NVP_OK) {                                               \
            fprintf(stderr, "test_threads: %s failed: %d (%s): %s\n",       \
                    #call, rc_, nvp_strerror(rc_), nvp_errmsg());          \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes);
    if (!p) {
        fprintf(stderr, "test_threads: out of memory\n");
        exit(1);
    }
    return p;
}

/* What every thread must reproduce. */
typedef struct reference {
    float y[N_BIG * DIM];    /* evaluation points */
    float lp[N_BIG];         /* log_prob(y) */
    float fwd[N_BIG * DIM];  /* forward(y) */
    float fwd_ld[N_BIG];
    float inv[N_BIG * DIM];  /* inverse(y) */
    float inv_ld[N_BIG];
    float lp_small[N_SMALL]; /* log_prob of the first N_SMALL rows */
    float sample[N_THREADS][N_SAMPLE * DIM];
    float sample_lp[N_THREADS][N_SAMPLE];
    float *grad;             /* nll_grad of the first N_GRAD rows */
    float loss;
    float *params;
    unsigned char *model;    /* save_buffer */
    size_t model_size;
    int fail_rc[N_FAIL];
    char fail_msg[N_FAIL][256];
} reference;

static reference ref;
static nvp_chain *chain;
static size_t n_params;
static int iterations = 4;
static pthread_barrier_t start;

static uint64_t sample_seed(int t) { return 1000 + (uint64_t)t; }

/* The failing calls, one per kind; thread t makes kind (t + i) % N_FAIL. */
static int failing_call(int kind, float *buf, float *out)
{
    switch (kind) {
    case 0: return nvp_chain_log_prob(chain, 0, buf, out);
    case 1: return nvp_chain_forward(chain, 1, NULL, out, NULL);
    case 2: return nvp_chain_inverse(chain, SIZE_MAX, buf, out, NULL);
    default: return nvp_chain_sample(chain, NULL, 1, out, NULL);
    }
}

static void compare(const char *what, int t, int it, const float *got,
                    const float *want, size_t n)
{
    if (memcmp(got, want, n * sizeof *got) != 0) {
        size_t i = 0;
        while (i < n && memcmp(&got[i], &want[i], sizeof *got) == 0)
            i++;
        FAIL("thread %d, iteration %d: %s differs from the single-thread "
             "result at %zu: %.9g vs %.9g",
             t, it, what, i, (double)got[i], (double)want[i]);
    }
}

static void *worker(void *arg)
{
    const int t = (int)(intptr_t)arg;
    nvp_rng *rng;
    OK(nvp_rng_create(&rng, 0, NULL));
    float *out = xmalloc(N_BIG * DIM * sizeof *out);
    float *ld = xmalloc(N_BIG * sizeof *ld);
    float *grad = xmalloc(n_params * sizeof *grad);
    float *params = xmalloc(n_params * sizeof *params);
    unsigned char *model = xmalloc(ref.model_size);
    pthread_barrier_wait(&start);
    for (int it = 0; it < iterations; it++) {
        /* A different order in every thread and iteration, so that every
         * pair of calls overlaps at some point. */
        for (int k = 0; k < 8; k++) {
            const int op = (k + t + it) % 8;
            float loss;
            size_t size;
            switch (op) {
            case 0:
                OK(nvp_chain_log_prob(chain, N_BIG, ref.y, out));
                compare("log_prob", t, it, out, ref.lp, N_BIG);
                break;
            case 1:
                OK(nvp_chain_forward(chain, N_BIG, ref.y, out, ld));
                compare("forward", t, it, out, ref.fwd, N_BIG * DIM);
                compare("forward logdet", t, it, ld, ref.fwd_ld, N_BIG);
                break;
            case 2:
                /* In place this time. */
                memcpy(out, ref.y, sizeof ref.y);
                OK(nvp_chain_inverse(chain, N_BIG, out, out, ld));
                compare("inverse", t, it, out, ref.inv, N_BIG * DIM);
                compare("inverse ildj", t, it, ld, ref.inv_ld, N_BIG);
                break;
            case 3:
                OK(nvp_rng_seed(rng, sample_seed(t)));
                OK(nvp_chain_sample(chain, rng, N_SAMPLE, out, ld));
                compare("sample", t, it, out, ref.sample[t], N_SAMPLE * DIM);
                compare("sample log_prob", t, it, ld, ref.sample_lp[t],
                        N_SAMPLE);
                break;
            case 4:
                OK(nvp_chain_log_prob(chain, N_SMALL, ref.y, out));
                compare("log_prob (small batch)", t, it, out, ref.lp_small,
                        N_SMALL);
                break;
            case 5:
                OK(nvp_chain_nll_grad(chain, N_GRAD, ref.y, grad, &loss));
                compare("nll_grad", t, it, grad, ref.grad, n_params);
                compare("loss", t, it, &loss, &ref.loss, 1);
                break;
            case 6:
                OK(nvp_chain_save_buffer(chain, NULL, ref.model_size, model, &size));
                if (size != ref.model_size ||
                    memcmp(model, ref.model, size) != 0)
                    FAIL("thread %d: save_buffer differs", t);
                OK(nvp_chain_get_params(chain, n_params, params));
                compare("get_params", t, it, params, ref.params, n_params);
                break;
            default: {
                /* Concurrent failures on the shared handle. */
                const int kind = (t + it) % N_FAIL;
                const int rc = failing_call(kind, out, ld);
                if (rc != ref.fail_rc[kind])
                    FAIL("thread %d: failing call %d returned %d, not %d", t,
                         kind, rc, ref.fail_rc[kind]);
                char mine[256];
                snprintf(mine, sizeof mine, "%s", nvp_errmsg());
                if (strcmp(mine, ref.fail_msg[kind]) != 0)
                    FAIL("thread %d: nvp_errmsg() is \"%s\", expected its "
                         "own \"%s\"",
                         t, mine, ref.fail_msg[kind]);
                const char *box = nvp_chain_errmsg(chain);
                int known = 0;
                for (int j = 0; j < N_FAIL; j++)
                    known |= strcmp(box, ref.fail_msg[j]) == 0;
                if (!known)
                    FAIL("thread %d: nvp_chain_errmsg() is \"%s\", none of "
                         "the messages of the failing calls",
                         t, box);
                break;
            }
            }
        }
    }
    free(model);
    free(params);
    free(grad);
    free(ld);
    free(out);
    nvp_rng_free(rng);
    return NULL;
}

/* Phase 2: log_prob and sample on a chain whose pool is not started. */
static nvp_chain *lazy_chain;

static void *lazy_worker(void *arg)
{
    const int t = (int)(intptr_t)arg;
    float *out = xmalloc(N_BIG * DIM * sizeof *out);
    float *ld = xmalloc(N_BIG * sizeof *ld);
    nvp_rng *rng;
    OK(nvp_rng_create(&rng, sample_seed(t), NULL));
    pthread_barrier_wait(&start);
    for (int it = 0; it < 2; it++) {
        OK(nvp_chain_log_prob(lazy_chain, N_BIG, ref.y, out));
        compare("log_prob (lazily started pool)", t, it, out, ref.lp, N_BIG);
        OK(nvp_rng_seed(rng, sample_seed(t)));
        OK(nvp_chain_sample(lazy_chain, rng, N_SAMPLE, out, ld));
        compare("sample (lazily started pool)", t, it, out, ref.sample[t],
                N_SAMPLE * DIM);
    }
    nvp_rng_free(rng);
    free(ld);
    free(out);
    return NULL;
}

/* Phase 3: a two-dimensional chain (the sweep's path) whose first layer
 * has 256 units, so that with a batch of 100 its three sorts run as one
 * job on the pool, and its 4 column blocks too: three training steps and
 * a log_prob on 2 and 3 threads, each bitwise as on one. */
static void sweep_on_pool(int portable)
{
    enum { SW_DATA = 300, SW_BATCH = 100 };
    const size_t wide[2] = {256, 256};
    float data[SW_DATA * 2], lp[3][SW_DATA];
    float *params[3] = {NULL, NULL, NULL};
    size_t np = 0;
    for (size_t threads = 1; threads <= 3; threads++) {
        nvp_rng *rng;
        nvp_chain *c;
        nvp_adam *opt;
        OK(nvp_rng_create(&rng, 77, NULL));
        OK(nvp_chain_create_alternating(&c, 2, 4, 2, wide, 0, rng, NULL));
        if (portable)
            OK(nvp_chain_set_kernels(c, NVP_KERNELS_PORTABLE));
        OK(nvp_chain_set_threads(c, threads));
        OK(nvp_two_moons(rng, SW_DATA, 0.05f, data, NULL));
        np = nvp_chain_num_params(c);
        OK(nvp_adam_create(&opt, np, NULL));
        for (int s = 0; s < 3; s++)
            OK(nvp_chain_train_step(c, opt, rng, SW_DATA, data, SW_BATCH,
                                    NULL));
        OK(nvp_chain_log_prob(c, SW_DATA, data, lp[threads - 1]));
        params[threads - 1] = xmalloc(np * sizeof(float));
        OK(nvp_chain_get_params(c, np, params[threads - 1]));
        nvp_adam_free(opt);
        nvp_chain_free(c);
        nvp_rng_free(rng);
    }
    for (int t = 1; t < 3; t++) {
        char what[80];
        snprintf(what, sizeof what, "2-d sweep, pool of %d: parameters "
                 "after 3 steps", t + 1);
        compare(what, -1, -1, params[t], params[0], np);
        snprintf(what, sizeof what, "2-d sweep, pool of %d: log_prob", t + 1);
        compare(what, -1, -1, lp[t], lp[0], SW_DATA);
    }
    for (int t = 0; t < 3; t++)
        free(params[t]);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        iterations = atoi(argv[1]) > 0 ? atoi(argv[1]) : 1;
    const int portable = argc > 2 && strcmp(argv[2], "portable") == 0;

    /* A small chain, trained a little on a curved 4-d cloud, with the pool
     * in use for the training steps. */
    nvp_rng *rng;
    OK(nvp_rng_create(&rng, 42, NULL));
    OK(nvp_chain_create_alternating(&chain, DIM, LAYERS, 2, hidden, 0, rng,
                                    NULL));
    n_params = nvp_chain_num_params(chain);
    OK(nvp_chain_set_threads(chain, 2));
    if (portable)
        OK(nvp_chain_set_kernels(chain, NVP_KERNELS_PORTABLE));
    enum { N_DATA = 512 };
    float *data = xmalloc(N_DATA * DIM * sizeof *data);
    OK(nvp_rng_normal(rng, N_DATA * DIM, data));
    for (size_t i = 0; i < N_DATA; i++) {
        float *r = data + i * DIM;
        r[1] = 0.5f * r[0] * r[0] + 0.3f * r[1];
        r[3] = r[2] - 0.2f * r[3];
    }
    nvp_adam *opt;
    OK(nvp_adam_create(&opt, n_params, NULL));
    OK(nvp_adam_set_lr(opt, 3e-3f));
    for (int i = 0; i < 10; i++)
        OK(nvp_chain_train_step(chain, opt, rng, N_DATA, data, 256, NULL));

    /* The single-thread reference. */
    OK(nvp_chain_set_threads(chain, 1));
    OK(nvp_rng_normal(rng, N_BIG * DIM, ref.y));
    OK(nvp_chain_log_prob(chain, N_BIG, ref.y, ref.lp));
    OK(nvp_chain_forward(chain, N_BIG, ref.y, ref.fwd, ref.fwd_ld));
    OK(nvp_chain_inverse(chain, N_BIG, ref.y, ref.inv, ref.inv_ld));
    OK(nvp_chain_log_prob(chain, N_SMALL, ref.y, ref.lp_small));
    nvp_rng *srng;
    OK(nvp_rng_create(&srng, 0, NULL));
    for (int t = 0; t < N_THREADS; t++) {
        OK(nvp_rng_seed(srng, sample_seed(t)));
        OK(nvp_chain_sample(chain, srng, N_SAMPLE, ref.sample[t],
                            ref.sample_lp[t]));
    }
    nvp_rng_free(srng);
    ref.grad = xmalloc(n_params * sizeof *ref.grad);
    OK(nvp_chain_nll_grad(chain, N_GRAD, ref.y, ref.grad, &ref.loss));
    ref.params = xmalloc(n_params * sizeof *ref.params);
    OK(nvp_chain_get_params(chain, n_params, ref.params));
    OK(nvp_chain_save_buffer(chain, NULL, 0, NULL, &ref.model_size));
    ref.model = xmalloc(ref.model_size);
    OK(nvp_chain_save_buffer(chain, NULL, ref.model_size, ref.model, &ref.model_size));
    for (int k = 0; k < N_FAIL; k++) {
        float buf[DIM], out[DIM];
        memset(buf, 0, sizeof buf);
        ref.fail_rc[k] = failing_call(k, buf, out);
        if (ref.fail_rc[k] == NVP_OK) {
            fprintf(stderr, "test_threads: failing call %d succeeded\n", k);
            return 1;
        }
        snprintf(ref.fail_msg[k], sizeof ref.fail_msg[k], "%s", nvp_errmsg());
    }

    /* The same, from four threads at once, with the pool. */
    OK(nvp_chain_set_threads(chain, 2));
    pthread_barrier_init(&start, NULL, N_THREADS);
    pthread_t th[N_THREADS];
    for (int t = 0; t < N_THREADS; t++)
        if (pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t) != 0) {
            fprintf(stderr, "test_threads: pthread_create failed\n");
            return 1;
        }
    for (int t = 0; t < N_THREADS; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&start);

    /* Phase 2: a fresh copy whose pool starts on first use, from four
     * const calls at once. */
    nvp_chain *copy;
    OK(nvp_chain_load_buffer(&copy, NULL, ref.model_size, ref.model, NULL));
    /* The level is a run-time setting of the handle, not saved. */
    OK(nvp_chain_set_kernels(copy, nvp_chain_kernels(chain)));
    pthread_barrier_init(&start, NULL, N_THREADS);
    lazy_chain = copy;
    for (int t = 0; t < N_THREADS; t++)
        if (pthread_create(&th[t], NULL, lazy_worker, (void *)(intptr_t)t) !=
            0) {
            fprintf(stderr, "test_threads: pthread_create failed\n");
            return 1;
        }
    for (int t = 0; t < N_THREADS; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&start);
    nvp_chain_free(copy);

    sweep_on_pool(portable);

    /* And once more on the main thread, after all that. */
    float lp[N_BIG];
    OK(nvp_chain_log_prob(chain, N_BIG, ref.y, lp));
    compare("log_prob after the threads", -1, -1, lp, ref.lp, N_BIG);

    free(ref.model);
    free(ref.params);
    free(ref.grad);
    free(data);
    nvp_adam_free(opt);
    nvp_chain_free(chain);
    nvp_rng_free(rng);
    if (failures) {
        fprintf(stderr, "test_threads: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_threads: %d threads x %d iterations on one chain (pool of "
           "2, %s kernels): all results bitwise equal to the single-thread "
           "ones\n",
           N_THREADS, iterations, portable ? "portable" : "the CPU's best");
    return 0;
}
