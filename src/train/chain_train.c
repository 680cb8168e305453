/* SPDX-License-Identifier: MIT */
/* The mean negative log-likelihood, its gradient by a hand-written
 * backward pass through the inverse direction, and the training step. */
#include <math.h>
#include <string.h>

#include "train/adam.h"
#include "core/alloc.h"
#include "model/chain.h"
#include "core/cpu.h"
#include "core/rng.h"
#include "kernels/sweep.h"
#include "runtime/vec_parallel.h"

/* Loss and gradient of rows rows of y (all finite), scaled by 1/n_total,
 * adding into grad (fresh: writing the layers' fresh ranges, see
 * nvp__sweep_fresh_range); returns the sum of the rows' log densities. */
static double nll_grad_chunk(const nvp_chain *c, const nvp_exec *ex,
                             float *arena, size_t rows, size_t n_total,
                             const float *y, float *grad, int fresh)
{
    const size_t dim = c->dim, K = c->n_layers, R = NVP_CHUNK_ROWS;
    /* Arena layout (see train_floats in chain.c): K + 1 stages, the K
     * layer caches, the backward scratch, then the rows below. */
    const size_t stage_floats = nvp__carved(R * dim);
    float *stages = arena;
#define STAGE(k) (stages + (k) * stage_floats)
#define CACHE(k) (stages + (K + 1) * stage_floats + c->cache_off[k])
    float *cursor = CACHE(K);
    float *scratch = nvp__carve(&cursor, c->scratch_floats);
    float *dstage[2] = {nvp__carve(&cursor, R * dim),
                        nvp__carve(&cursor, R * dim)};
    float *ildj = nvp__carve(&cursor, R);
    float *dildj = nvp__carve(&cursor, R);

    /* Inverse pass, data -> base, keeping every stage and cache. */
    memcpy(STAGE(K), y, rows * dim * sizeof(float));
    memset(ildj, 0, rows * sizeof *ildj);
    for (size_t k = K; k-- > 0;) {
        memcpy(STAGE(k), STAGE(k + 1), rows * dim * sizeof(float));
        nvp__coupling_inverse_rows(c->layers[k], ex, rows, STAGE(k), ildj,
                                   CACHE(k));
    }
    double sum_lp = 0.0;
    const float scale = (float)(1.0 / (double)n_total);
    float *dx = dstage[0];
    for (size_t i = 0; i < rows; i++) {
        const float *x0 = STAGE(0) + i * dim;
        sum_lp += nvp__base_log_prob_row(c->base, x0) + (double)ildj[i];
        /* L = -(1/n) sum log p: dL/dx0 = -(1/n) grad log p_base(x0),
         * dL/dildj_k = -(1/n) for every layer. */
        nvp__base_grad_row(c->base, x0, dx + i * dim);
        for (size_t j = 0; j < dim; j++)
            dx[i * dim + j] *= -scale;
        dildj[i] = -scale;
    }
    /* Backward, base -> data: layer 1's inverse produced x0, so it comes
     * first. */
    for (size_t k = 0; k < K; k++) {
        float *dy = k + 1 < K ? dstage[(k + 1) & 1] : NULL;
        nvp__coupling_inverse_backward_rows(c->layers[k], ex, rows, CACHE(k),
                                            STAGE(k), dx, dildj, dy,
                                            grad + c->offsets[k], fresh,
                                            scratch);
        dx = dy;
    }
#undef STAGE
#undef CACHE
    return sum_lp;
}

/* Clears grad except the ranges the first chunk's backward writes fresh
 * (each sweep layer's W2 and b2, nearly all of the reference network's
 * parameters): a pass over the whole gradient cost about as much as
 * Adam's update on two threads. */
static void clear_grad(const nvp_chain *c, nvp_pool *pool, float *grad)
{
    size_t done = 0; /* grad[0, done) is cleared or written fresh */
    for (size_t k = 0; k < c->n_layers; k++) {
        size_t off, len;
        nvp__sweep_fresh_range(c->layers[k], &off, &len);
        if (len == 0)
            continue;
        const size_t start = c->offsets[k] + off;
        nvp__par_zero(pool, grad + done, start - done);
        done = start + len;
    }
    nvp__par_zero(pool, grad + done, c->n_params - done);
}

/* The loss and gradient of n finite rows of y on pool (held, or NULL):
 * fills grad and *loss, and *grad_bits with the gradient's largest
 * magnitude as bits (nvp__max_abs_bits).  The check's pass over the whole
 * gradient runs on every thread.  Returns NVP_OK or NVP_ENOMEM (nothing
 * recorded). */
static int nll_grad_run(const nvp_chain *c, nvp_pool *pool, size_t n,
                        const float *y, float *grad, double *loss,
                        uint32_t *grad_bits)
{
    nvp_ws *ws = nvp__ws_acquire(&c->engine, NVP_WS_TRAIN);
    if (!ws)
        return NVP_ENOMEM;
    nvp_exec ex = {c->engine.kernel, ws->pack, pool};
    clear_grad(c, pool, grad);
    double sum_lp = 0.0;
    for (size_t r0 = 0; r0 < n; r0 += NVP_CHUNK_ROWS) {
        const size_t rows = n - r0 < NVP_CHUNK_ROWS ? n - r0 : NVP_CHUNK_ROWS;
        sum_lp += nll_grad_chunk(c, &ex, ws->arena, rows, n,
                                 y + r0 * c->dim, grad, r0 == 0);
    }
    nvp__ws_release(&c->engine, NVP_WS_TRAIN, ws);
    *loss = -sum_lp / (double)n;
    *grad_bits = nvp__par_max_abs_bits(pool, grad, c->n_params);
    return NVP_OK;
}

int nvp_chain_nll_grad(const nvp_chain *c, size_t n, const float *y,
                       float *grad, float *loss)
{
    const char *fn = "nvp_chain_nll_grad";
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR(c);
    NVP_REQUIRE_PTR(y);
    NVP_REQUIRE_PTR(grad);
    int rc = nvp__check_batch(eb, fn, n, c->dim);
    if (rc)
        return rc;
    NVP_REQUIRE(nvp__all_finite(y, n * c->dim), NVP_ENONFINITE,
                "%s: y holds NaN or an infinity", fn);
    nvp_pool *pool = nvp__chain_pool_take(c);
    double l;
    uint32_t bits;
    rc = nll_grad_run(c, pool, n, y, grad, &l, &bits);
    nvp__chain_pool_give(pool);
    if (rc)
        return nvp__fail(eb, rc, "%s: out of memory for workspace", fn);
    if (loss)
        *loss = (float)l;
    NVP_REQUIRE(isfinite(l), NVP_ENONFINITE, "%s: the loss is not finite", fn);
    NVP_REQUIRE(bits < NVP_INF_BITS, NVP_ENONFINITE,
                "%s: the gradient holds NaN or an infinity", fn);
    return NVP_OK;
}

int nvp_chain_train_step(nvp_chain *c, nvp_adam *opt, nvp_rng *rng,
                         size_t n_data, const float *data, size_t batch,
                         float *loss)
{
    const char *fn = "nvp_chain_train_step";
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR(c);
    NVP_REQUIRE_PTR(opt);
    NVP_REQUIRE_PTR(rng);
    NVP_REQUIRE_PTR(data);
    NVP_REQUIRE(opt->n == c->n_params, NVP_EDIM,
                "%s: optimizer has %zu parameters, chain %zu", fn, opt->n,
                c->n_params);
    int rc = nvp__check_batch(eb, fn, n_data, c->dim);
    if (rc == NVP_OK)
        rc = nvp__check_batch(eb, fn, batch, c->dim);
    if (rc)
        return rc;
    const nvp_allocator *a = &c->alloc;
    if (!c->grad) {
        c->grad = nvp__alloc_aligned(a, c->n_params * sizeof(float));
        if (!c->grad)
            return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory", fn);
    }
    if (batch > c->batch_cap) {
        float *b = nvp__alloc_aligned(a, batch * c->dim * sizeof(float));
        if (!b)
            return nvp__fail(eb, NVP_ENOMEM,
                             "%s: out of memory for a batch of %zu", fn,
                             batch);
        nvp__free_aligned(a, c->batch);
        c->batch = b;
        c->batch_cap = batch;
    }
    for (size_t i = 0; i < batch; i++) {
        const uint64_t r = nvp__rng_below(rng, n_data);
        memcpy(c->batch + i * c->dim, data + r * c->dim,
               c->dim * sizeof(float));
    }
    /* From here on *loss is written on every path, NaN when no loss was
     * computed, as nvp_chain_nll_grad leaves it for such rows. */
    if (loss)
        *loss = NAN;
    NVP_REQUIRE(nvp__all_finite(c->batch, batch * c->dim), NVP_ENONFINITE,
                "%s: the minibatch holds NaN or an infinity", fn);
    /* One hold on the pool for the gradient, its check and the update. */
    nvp_pool *pool = nvp__chain_pool_take(c);
    double l;
    uint32_t bits;
    rc = nll_grad_run(c, pool, batch, c->batch, c->grad, &l, &bits);
    if (rc) {
        nvp__chain_pool_give(pool);
        return nvp__fail(eb, rc, "%s: out of memory for workspace", fn);
    }
    if (loss)
        *loss = (float)l;
    if (!isfinite(l))
        rc = nvp__fail(eb, NVP_ENONFINITE,
                       "%s: the loss is not finite; step refused", fn);
    else
        rc = nvp__adam_grad_verdict(eb, fn, bits);
    if (rc == NVP_OK)
        nvp__adam_apply(opt, c->params, c->grad, pool);
    nvp__chain_pool_give(pool);
    return rc;
}
