/* SPDX-License-Identifier: MIT */
/* The chain's batched evaluation: forward, inverse, sample, log_prob and
 * the traced forward.  Rows are processed in chunks of NVP_CHUNK_ROWS;
 * large batches spread their chunks over the chain's threads, a single
 * chunk spreads its matrix products instead. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "model/chain.h"

typedef enum { EV_FORWARD, EV_INVERSE, EV_SAMPLE, EV_LOG_PROB, EV_TRACE } ev_mode;

typedef struct eval_job {
    const nvp_chain *c;
    ev_mode mode;
    size_t n;
    const float *in; /* x (forward, trace) or y (inverse, log_prob) */
    float *out;      /* y (forward, sample), x (inverse), lp, or stages */
    float *ld;       /* per-row log-determinant or sample log_prob; NULL */
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

static void eval_chunk(const eval_job *j, size_t chunk, float *arena,
                       const nvp_exec *ex)
{
    const nvp_chain *c = j->c;
    const size_t dim = c->dim, R = NVP_CHUNK_ROWS, K = c->n_layers;
    const size_t r0 = chunk * R, rows = j->n - r0 < R ? j->n - r0 : R;
    float *cursor = arena;
    float *copy = nvp__carve(&cursor, R * dim);
    float *acc = nvp__carve(&cursor, R);
    float *cache = nvp__carve(&cursor, nvp__chain_max_cache_floats(c, R));
    unsigned char *bad = (unsigned char *)nvp__carve(&cursor, R);
    float *ld = j->ld ? j->ld + r0 : NULL;

    switch (j->mode) {
    case EV_FORWARD:
    case EV_INVERSE: {
        float *z = j->out + r0 * dim;
        if (j->in != j->out)
            memcpy(z, j->in + r0 * dim, rows * dim * sizeof *z);
        if (ld)
            memset(ld, 0, rows * sizeof *ld);
        nvp__flag_nonfinite_rows(rows, dim, z, bad);
        for (size_t s = 0; s < K; s++) {
            if (j->mode == EV_INVERSE)
                nvp__coupling_inverse_rows(c->layers[K - 1 - s], ex, rows, z,
                                           ld, cache);
            else
                nvp__coupling_forward_rows(c->layers[s], ex, rows, z, ld,
                                           cache);
        }
        poison_rows(rows, dim, bad, z, ld);
        break;
    }
    case EV_SAMPLE: {
        /* The base draws are already in out.  log p(y) = log p_base(x) -
         * sum_k log|det_k|: accumulate the negation, then flip the sign. */
        float *z = j->out + r0 * dim;
        if (ld)
            for (size_t i = 0; i < rows; i++)
                ld[i] = (float)-nvp__base_log_prob_row(c->base, z + i * dim);
        for (size_t s = 0; s < K; s++)
            nvp__coupling_forward_rows(c->layers[s], ex, rows, z, ld, cache);
        if (ld)
            for (size_t i = 0; i < rows; i++)
                ld[i] = overflow_as_zero_density(-(double)ld[i]);
        break;
    }
    case EV_LOG_PROB: {
        memcpy(copy, j->in + r0 * dim, rows * dim * sizeof *copy);
        memset(acc, 0, rows * sizeof *acc);
        nvp__flag_nonfinite_rows(rows, dim, copy, bad);
        for (size_t s = 0; s < K; s++)
            nvp__coupling_inverse_rows(c->layers[K - 1 - s], ex, rows, copy,
                                       acc, cache);
        float *lp = j->out + r0;
        for (size_t i = 0; i < rows; i++) {
            const double v = nvp__base_log_prob_row(c->base, copy + i * dim) +
                             (double)acc[i];
            lp[i] = bad[i] ? NAN : overflow_as_zero_density(v);
        }
        break;
    }
    case EV_TRACE: {
        const size_t block = j->n * dim;
        float *z = j->out + r0 * dim;
        if (j->in != j->out)
            memcpy(z, j->in + r0 * dim, rows * dim * sizeof *z);
        for (size_t k = 0; k < K; k++) {
            float *next = z + block;
            memcpy(next, z, rows * dim * sizeof *next);
            nvp__flag_nonfinite_rows(rows, dim, next, bad);
            nvp__coupling_forward_rows(c->layers[k], ex, rows, next, NULL,
                                       cache);
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
    nvp_exec ex = nvp__context_exec(&j->c->ctx, j->ws[worker], NULL);
    eval_chunk(j, chunk, j->ws[worker]->arena, &ex);
}

static int run_eval(eval_job *j, const char *fn)
{
    const nvp_chain *c = j->c;
    const size_t chunks = (j->n + NVP_CHUNK_ROWS - 1) / NVP_CHUNK_ROWS;
    nvp_pool *pool = nvp__context_pool_take(&c->ctx);
    const size_t threads = nvp__pool_threads(pool);
    /* One workspace per thread that takes part, taken before the work
     * starts: the first call allocates them, later calls find them in the
     * context's free list, however the chunks fall between the threads. */
    const size_t n_ws = pool && chunks >= threads ? threads : 1;
    const size_t arena = nvp__chain_eval_floats(c, NVP_CHUNK_ROWS);
    int rc = NVP_OK;
    size_t got = 0;
    for (; got < n_ws; got++)
        if (!(j->ws[got] = nvp__ws_acquire(&c->ctx, NVP_WS_EVAL, arena))) {
            rc = nvp__fail(&c->err, NVP_ENOMEM,
                           "%s: out of memory for a workspace", fn);
            break;
        }
    if (rc == NVP_OK && n_ws > 1) {
        nvp__pool_run(pool, chunks, eval_task, j);
    } else if (rc == NVP_OK) {
        /* Few chunks: one after another, each product split by columns
         * over the pool when there is one. */
        nvp_exec ex = nvp__context_exec(&c->ctx, j->ws[0], pool);
        for (size_t k = 0; k < chunks; k++)
            eval_chunk(j, k, j->ws[0]->arena, &ex);
    }
    while (got > 0)
        nvp__ws_release(&c->ctx, NVP_WS_EVAL, j->ws[--got]);
    nvp__context_pool_give(pool);
    return rc;
}

static int check_eval_args(const nvp_chain *c, const char *fn, size_t n,
                           const void *in, const void *out)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE(c != NULL, NVP_EINVAL, "%s: chain is NULL", fn);
    NVP_REQUIRE(in != NULL && out != NULL, NVP_EINVAL,
                "%s: input or output is NULL", fn);
    return nvp__check_batch(eb, fn, n, c->dim);
}

int nvp_chain_forward(const nvp_chain *c, size_t n, const float *x, float *y,
                      float *logdet)
{
    const char *fn = "nvp_chain_forward";
    int rc = check_eval_args(c, fn, n, x, y);
    if (rc)
        return rc;
    eval_job j = {c, EV_FORWARD, n, x, y, logdet, {NULL}};
    return run_eval(&j, fn);
}

int nvp_chain_inverse(const nvp_chain *c, size_t n, const float *y, float *x,
                      float *ildj)
{
    const char *fn = "nvp_chain_inverse";
    int rc = check_eval_args(c, fn, n, y, x);
    if (rc)
        return rc;
    eval_job j = {c, EV_INVERSE, n, y, x, ildj, {NULL}};
    return run_eval(&j, fn);
}

int nvp_chain_sample(const nvp_chain *c, nvp_rng *rng, size_t n, float *y,
                     float *log_prob)
{
    const char *fn = "nvp_chain_sample";
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE(rng != NULL, NVP_EINVAL, "%s: rng is NULL", fn);
    int rc = check_eval_args(c, fn, n, y, y);
    if (rc)
        return rc;
    /* The base noise is drawn here, in row order, so the samples depend
     * only on the rng, not on chunks or threads. */
    rc = nvp_base_sample(c->base, rng, n, y);
    if (rc)
        return nvp__fail_in(eb, rc, fn);
    eval_job j = {c, EV_SAMPLE, n, y, y, log_prob, {NULL}};
    return run_eval(&j, fn);
}

int nvp_chain_log_prob(const nvp_chain *c, size_t n, const float *y,
                       float *lp)
{
    const char *fn = "nvp_chain_log_prob";
    int rc = check_eval_args(c, fn, n, y, lp);
    if (rc)
        return rc;
    eval_job j = {c, EV_LOG_PROB, n, y, lp, NULL, {NULL}};
    return run_eval(&j, fn);
}

int nvp_chain_forward_trace(const nvp_chain *c, size_t n, const float *x,
                            float *stages)
{
    const char *fn = "nvp_chain_forward_trace";
    int rc = check_eval_args(c, fn, n, x, stages);
    if (rc)
        return rc;
    size_t total;
    const nvp_errbox *eb = &c->err;
    NVP_REQUIRE(nvp__mul(n * c->dim, c->n_layers + 1, &total) == 0 &&
                    nvp__mul(total, sizeof(float), &total) == 0,
                NVP_EOVERFLOW, "%s: (layers + 1) * n * dim overflows", fn);
    eval_job j = {c, EV_TRACE, n, x, stages, NULL, {NULL}};
    return run_eval(&j, fn);
}
