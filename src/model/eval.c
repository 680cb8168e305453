/* SPDX-License-Identifier: MIT */
/* The batched evaluation of a stack of layers, a chain's or one layer's
 * standalone calls: forward, inverse, sample, log_prob and the traced
 * forward (model/eval.h).  Rows are processed in chunks of at most
 * EVAL_CHUNK_ROWS; large batches spread their chunks over the context's
 * threads, a single chunk spreads its matrix products instead. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/check.h"
#include "model/eval.h"

/* Rows a chunk of an evaluation holds at most: four times the training's
 * chunk, as nothing is kept for a backward, so each layer's weights,
 * packed once per product, serve more rows, and the sweep of a
 * one-input conditioner (the two-moons model's), whose cost per chunk
 * has a part that does not grow with the rows, spreads it over more.
 * Side by side with 512 rows (Zen 5, one process, 0.7.9, one thread):
 * log_prob -1.7% to -2% (D=784), -2.2% to -2.8% (D=64), -0.6% to -1.5%
 * (D=8), -1.3% to -4.2% in bfloat16; the two-moons model's log_prob -15%
 * to -25%, its sample -4% to -17%; two threads even (-2.9% to +1.9%;
 * docs/performance.md).
 * 2048 rows gained more only on the two-moons model.  Every row's
 * arithmetic is the same whatever chunk it falls in. */
#define EVAL_CHUNK_ROWS 1024

/* A chunk's work space per thread, above which chunks take half as many
 * rows (512, the chunk before 0.7.9): very wide layers keep the memory
 * they took before. */
#define EVAL_CHUNK_BYTES ((size_t)32 << 20)

/* The chunk size for n rows over `threads` threads: at most
 * EVAL_CHUNK_ROWS, in as few chunks as that allows, their number made a
 * multiple of the threads when that leaves each chunk at least half a
 * training chunk (so the threads get about the same number of rows), the
 * rows spread evenly over the chunks.  Rounding a chunk's rows up can
 * leave one chunk fewer than planned (2 threads, 1,046,529 rows: 1023
 * chunks of 1023), a slight imbalance, never a larger chunk. */
static size_t eval_chunk_rows(const nvp_stack *st, size_t n, size_t threads)
{
    size_t most = EVAL_CHUNK_ROWS;
    if (nvp__stack_eval_floats(st, most) > EVAL_CHUNK_BYTES / sizeof(float))
        most /= 2;
    if (n == 0)
        return 1;
    size_t chunks = (n + most - 1) / most;
    if (threads > 1) {
        const size_t even = (chunks + threads - 1) / threads * threads;
        if (n / even >= NVP_CHUNK_ROWS / 2)
            chunks = even;
    }
    return (n + chunks - 1) / chunks;
}

typedef struct eval_job {
    const nvp_stack *st;
    nvp_eval_mode mode;
    size_t n;
    const float *in; /* x (forward, trace) or y (inverse, log_prob) */
    nvp_given given; /* the rows' context */
    float *out;      /* y (forward, sample), x (inverse), lp, or stages */
    float *ld;       /* per-row log-determinant or sample log_prob; NULL */
    size_t cap;      /* rows a chunk holds at most (the arena's size) */
    nvp_ws *ws[NVP_MAX_THREADS]; /* one per thread taking part */
} eval_job;

/* Sets every value of the flagged rows to NaN. */
static void poison_rows(size_t rows, size_t dim, const unsigned char *bad,
                        float *z, float *ld)
{
    for (size_t i = 0; i < rows; i++) {
        if (!bad[i])
            continue;
        for (size_t j = 0; j < dim; j++)
            z[i * dim + j] = NAN;
        if (ld)
            ld[i] = NAN;
    }
}

/* A finite input whose computation overflowed (the inverse left the
 * float range, giving NaN as inf - inf or inf * 0 somewhere) has a density
 * too small to represent: log density -inf. */
static float overflow_as_zero_density(double v)
{
    return isnan(v) ? -INFINITY : (float)v;
}

/* The largest per-layer cache for `rows` rows. */
static size_t max_cache_floats(const nvp_stack *st, size_t rows)
{
    size_t m = 0;
    for (size_t k = 0; k < st->n_layers; k++) {
        const nvp_layer *l = st->layers[k];
        const size_t f = l->kind->cache_floats(l, rows);
        if (f > m)
            m = f;
    }
    return m;
}

size_t nvp__stack_eval_floats(const nvp_stack *st, size_t rows)
{
    /* a chunk copy of the input, an accumulator row, one layer's cache
     * (layers run one after another), a row of flags and the chunk's
     * context when it is spread from one row */
    return nvp__carved(rows * st->dim) + nvp__carved(rows) +
           max_cache_floats(st, rows) + nvp__carved(rows) +
           nvp__carved(rows * st->cdim);
}

/* Layer k of the stack through its kind's table. */
#define INVERSE(k, ex, rows, z, ld, cache)                                  \
    st->layers[k]->kind->inverse_rows(st->layers[k], ex, rows, z, cond, ld, \
                                      cache)
#define FORWARD(k, ex, rows, z, ld, cache)                                  \
    st->layers[k]->kind->forward_rows(st->layers[k], ex, rows, z, cond, ld, \
                                      cache)

/* Flags the rows whose context holds NaN or an infinity too. */
static void flag_nonfinite_context(size_t rows, size_t cdim,
                                   const float *cond, unsigned char *bad)
{
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cdim; j++)
            if (!isfinite(cond[i * cdim + j]))
                bad[i] = 1;
}

static void eval_chunk(const eval_job *j, size_t chunk, float *arena,
                       const nvp_exec *ex)
{
    const nvp_stack *st = j->st;
    const size_t dim = st->dim, R = j->cap, K = st->n_layers;
    const size_t r0 = chunk * R;
    const size_t rows = j->n - r0 < R ? j->n - r0 : R;
    float *cursor = arena;
    float *copy = nvp__carve(&cursor, R * dim);
    float *acc = nvp__carve(&cursor, R);
    float *cache = nvp__carve(&cursor, max_cache_floats(st, R));
    unsigned char *bad = (unsigned char *)nvp__carve(&cursor, R);
    float *ld = j->ld ? j->ld + r0 : NULL;
    /* The chunk's context, rows x cdim: the caller's rows, or one row
     * spread over the chunk. */
    const size_t cdim = st->cdim;
    const float *cond = NULL;
    if (cdim && j->given.stride) {
        cond = j->given.rows + r0 * j->given.stride;
    } else if (cdim) {
        float *spread = nvp__carve(&cursor, R * cdim);
        for (size_t i = 0; i < rows; i++)
            memcpy(spread + i * cdim, j->given.rows, cdim * sizeof *spread);
        cond = spread;
    }

    switch (j->mode) {
    case NVP_EV_FORWARD:
    case NVP_EV_INVERSE: {
        float *z = j->out + r0 * dim;
        if (j->in != j->out)
            memcpy(z, j->in + r0 * dim, rows * dim * sizeof *z);
        if (ld)
            memset(ld, 0, rows * sizeof *ld);
        nvp__flag_nonfinite_rows(rows, dim, z, bad);
        flag_nonfinite_context(rows, cdim, cond, bad);
        for (size_t s = 0; s < K; s++) {
            if (j->mode == NVP_EV_INVERSE)
                INVERSE(K - 1 - s, ex, rows, z, ld, cache);
            else
                FORWARD(s, ex, rows, z, ld, cache);
        }
        poison_rows(rows, dim, bad, z, ld);
        break;
    }
    case NVP_EV_SAMPLE: {
        /* The base draws are already in out.  log p(y) = log p_base(x) -
         * sum_k log|det_k|: accumulate the negation, then flip the sign. */
        float *z = j->out + r0 * dim;
        if (ld)
            for (size_t i = 0; i < rows; i++)
                ld[i] = (float)-nvp__base_log_prob_row(st->base, z + i * dim);
        for (size_t s = 0; s < K; s++)
            FORWARD(s, ex, rows, z, ld, cache);
        if (ld)
            for (size_t i = 0; i < rows; i++)
                ld[i] = overflow_as_zero_density(-(double)ld[i]);
        if (cdim) {
            memset(bad, 0, rows);
            flag_nonfinite_context(rows, cdim, cond, bad);
            poison_rows(rows, dim, bad, z, ld);
        }
        break;
    }
    case NVP_EV_LOG_PROB: {
        memcpy(copy, j->in + r0 * dim, rows * dim * sizeof *copy);
        memset(acc, 0, rows * sizeof *acc);
        nvp__flag_nonfinite_rows(rows, dim, copy, bad);
        flag_nonfinite_context(rows, cdim, cond, bad);
        for (size_t s = 0; s < K; s++)
            INVERSE(K - 1 - s, ex, rows, copy, acc, cache);
        float *lp = j->out + r0;
        for (size_t i = 0; i < rows; i++) {
            const double v = nvp__base_log_prob_row(st->base, copy + i * dim) +
                             (double)acc[i];
            lp[i] = bad[i] ? NAN : overflow_as_zero_density(v);
        }
        break;
    }
    case NVP_EV_TRACE: {
        const size_t block = j->n * dim;
        float *z = j->out + r0 * dim;
        if (j->in != j->out)
            memcpy(z, j->in + r0 * dim, rows * dim * sizeof *z);
        for (size_t k = 0; k < K; k++) {
            float *next = z + block;
            memcpy(next, z, rows * dim * sizeof *next);
            nvp__flag_nonfinite_rows(rows, dim, next, bad);
            flag_nonfinite_context(rows, cdim, cond, bad);
            FORWARD(k, ex, rows, next, NULL, cache);
            poison_rows(rows, dim, bad, next, NULL);
            z = next;
        }
        break;
    }
    }
}

/* A pool task: one chunk, in the running thread's workspace. */
static void eval_task(void *arg, size_t chunk, size_t worker)
{
    eval_job *j = arg;
    nvp_exec ex = nvp__context_exec(j->st->ctx, j->ws[worker], NULL);
    eval_chunk(j, chunk, j->ws[worker]->arena, &ex);
}

int nvp__stack_eval(const nvp_stack *st, nvp_eval_mode mode, size_t n,
                    const float *in, nvp_given given, float *out, float *ld,
                    const char *fn)
{
    const nvp_context *ctx = st->ctx;
    nvp_pool *pool = nvp__context_pool_take(ctx);
    const size_t threads = nvp__pool_threads(pool);
    eval_job job = {st,  mode, n, in, given, out,
                    ld,  eval_chunk_rows(st, n, threads), {NULL}},
             *j = &job;
    const size_t chunks = (n + j->cap - 1) / j->cap;
    /* One workspace per thread that takes part, taken before the work
     * starts: the first call allocates them, later calls find them in the
     * context's free list, however the chunks fall between the threads. */
    const size_t n_ws = pool && chunks >= threads ? threads : 1;
    const size_t arena = nvp__stack_eval_floats(st, j->cap);
    int rc = NVP_OK;
    size_t got = 0;
    for (; got < n_ws; got++)
        if (!(j->ws[got] = nvp__ws_acquire(ctx, NVP_WS_EVAL, arena))) {
            rc = nvp__fail(st->err, NVP_ENOMEM,
                           "%s: out of memory for a workspace", fn);
            break;
        }
    if (rc == NVP_OK && n_ws > 1) {
        nvp__pool_run(pool, chunks, eval_task, j);
    } else if (rc == NVP_OK) {
        /* Few chunks: one after another, each product split by columns
         * over the pool when there is one. */
        nvp_exec ex = nvp__context_exec(ctx, j->ws[0], pool);
        for (size_t k = 0; k < chunks; k++)
            eval_chunk(j, k, j->ws[0]->arena, &ex);
    }
    while (got > 0)
        nvp__ws_release(ctx, NVP_WS_EVAL, j->ws[--got]);
    nvp__context_pool_give(pool);
    return rc;
}
