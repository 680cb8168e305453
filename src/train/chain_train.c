/* SPDX-License-Identifier: MIT */
/* The mean negative log-likelihood, its gradient by a hand-written
 * backward pass through the inverse direction, and the training step. */
#include <math.h>
#include <string.h>

#include "train/adam.h"
#include "train/chain_checks.h"
#include "core/alloc.h"
#include "model/chain.h"
#include "core/rng.h"
#include "kernels/vec.h"
#include "runtime/vec_parallel.h"

/* The arena of one chunk of the gradient, defined and carved here only:
 * K + 1 stages (the data, then what each layer's inverse leaves), every
 * layer's cache (one after another, in layer order), the largest backward
 * scratch of any layer, two stage gradients, and the ildj and dildj
 * rows. */
typedef struct train_arena {
    float *stages;       /* stage k at stages + k * stage_floats */
    size_t stage_floats;
    float *caches;       /* layer k's after those of layers 0 .. k-1 */
    float *scratch;
    float *dstage[2];
    float *ildj, *dildj;
    size_t cap;          /* rows a chunk holds at most */
} train_arena;

/* Lays the arena out for chunks of `rows` rows from base (NULL: sizes it
 * only) and returns its floats. */
static size_t train_arena_layout(const nvp_chain *c, size_t rows, float *base,
                                 train_arena *a)
{
    const size_t dim = c->dim, K = c->n_layers;
    size_t caches = 0, scratch = 0;
    for (size_t k = 0; k < K; k++) {
        const nvp_layer *l = c->layers[k];
        caches += l->kind->cache_floats(l, rows);
        const size_t s = l->kind->scratch_floats(l, rows);
        if (s > scratch)
            scratch = s;
    }
    /* Offsets first, so that sizing alone touches no pointer. */
    size_t off = 0, at[8];
    const size_t stage_floats = nvp__carved(rows * dim);
    const size_t counts[8] = {(K + 1) * stage_floats, caches, scratch,
                              rows * dim, rows * dim, rows, rows, 0};
    for (size_t i = 0; i < 8; i++) {
        at[i] = off;
        off += nvp__carved(counts[i]);
    }
    if (a && base) {
        a->cap = rows;
        a->stage_floats = stage_floats;
        a->stages = base + at[0];
        a->caches = base + at[1];
        a->scratch = base + at[2];
        a->dstage[0] = base + at[3];
        a->dstage[1] = base + at[4];
        a->ildj = base + at[5];
        a->dildj = base + at[6];
    }
    return off;
}

/* What one backward pass computes, for rows of y whose log densities
 * weigh `weight` each in the loss L (-1/n: the mean NLL; 1: the sum of
 * the log densities, whose input gradient is the score). */
typedef struct grad_want {
    float weight;
    float *grad;   /* dL/dparams, added into; NULL: not wanted */
    int fresh;     /* the first chunk: the layers' fresh ranges are
                      written, the rest of grad cleared first */
    float *dy;     /* dL/dy of the data rows (rows x dim), or NULL */
    float *dcond;  /* dL/d(context) (rows x cdim), or NULL; overwritten */
    /* The last chunk of a pass that checks its gradient: the largest
     * |dL/dparams| is max-combined into it as the layers finish their
     * part (nvp_exec.grad_max); NULL: not measured. */
    nvp_absmax *grad_max;
    /* The first chunk of a pass that checks the parameters as it reads
     * them: their largest magnitude is max-combined into it by the
     * inverse pass (nvp_exec.params_max), and when they are not all
     * finite the chunk stops there; NULL: not measured. */
    nvp_absmax *params_max;
} grad_want;

/* The backward pass over rows rows of y (all finite) with their context
 * cond (rows x cdim; NULL when the chain reads none), as w asks: the
 * parameter gradient is added into w->grad (with w->fresh, the layers'
 * fresh ranges are written instead, see the layer table's fresh_range,
 * and the rest of w->grad cleared).
 * Returns the sum of the rows' log densities; their own go to lp (may be
 * NULL).  With w->params_max, stops after the inverse pass (returning 0)
 * when the parameters it measured are not all finite. */
static double backward_chunk(const nvp_chain *c, const nvp_exec *ex,
                             const train_arena *a, size_t rows,
                             const float *y, const float *cond,
                             const grad_want *w, float *lp)
{
    const size_t dim = c->dim, K = c->n_layers, R = a->cap;
#define STAGE(k) (a->stages + (k) * a->stage_floats)
    /* Inverse pass, data -> base, keeping every stage and cache; the
     * caches are laid out for R rows, whatever this chunk holds. */
    memcpy(STAGE(K), y, rows * dim * sizeof(float));
    memset(a->ildj, 0, rows * sizeof *a->ildj);
    size_t cache_off = 0;
    for (size_t k = 0; k < K; k++)
        cache_off += c->layers[k]->kind->cache_floats(c->layers[k], R);
    nvp_exec fex = *ex;
    fex.params_max = w->params_max;
    for (size_t k = K; k-- > 0;) {
        const nvp_layer *l = c->layers[k];
        cache_off -= l->kind->cache_floats(l, R);
        memcpy(STAGE(k), STAGE(k + 1), rows * dim * sizeof(float));
        l->kind->inverse_rows(l, &fex, rows, STAGE(k), cond, a->ildj,
                              a->caches + cache_off);
        if (fex.params_max && !l->kind->measures)
            nvp__absmax_merge(fex.params_max,
                              nvp__par_max_abs_bits(
                                  ex->pool, ex->isa,
                                  c->params + c->offsets[k], l->n_params));
    }
    if (fex.params_max && fex.params_max->bits >= NVP_INF_BITS)
        return 0.0;
    /* Only now, with the parameters known finite, is the gradient
     * touched: what the first chunk does not write fresh is cleared. */
    if (w->grad && w->fresh)
        nvp__chain_clear_grad(c, ex->pool, w->grad);
    double sum_lp = 0.0;
    const float scale = w->weight;
    float *dx = a->dstage[0];
    for (size_t i = 0; i < rows; i++) {
        const float *x0 = STAGE(0) + i * dim;
        /* L = weight * sum log p: dL/dx0 = weight * grad log p_base(x0),
         * dL/dildj_k = weight for every layer. */
        const double lpi =
            nvp__base_grad_row(c->base, x0, dx + i * dim) +
            (double)a->ildj[i];
        sum_lp += lpi;
        if (lp)
            lp[i] = (float)lpi;
        for (size_t j = 0; j < dim; j++)
            dx[i * dim + j] *= scale;
        a->dildj[i] = scale;
    }
    if (w->dcond)
        memset(w->dcond, 0, rows * c->cdim * sizeof *w->dcond);
    /* Backward, base -> data: layer 1's inverse produced x0, so it comes
     * first. */
    nvp_exec bex = *ex;
    bex.grad_max = w->grad ? w->grad_max : NULL;
    for (size_t k = 0; k < K; k++) {
        const nvp_layer *l = c->layers[k];
        float *dy = k + 1 < K ? a->dstage[(k + 1) & 1] : w->dy;
        float *g = w->grad ? w->grad + c->offsets[k] : NULL;
        l->kind->inverse_backward_rows(l, &bex, rows, a->caches + cache_off,
                                       STAGE(k), cond, dx, a->dildj, dy,
                                       w->dcond, g, w->fresh, a->scratch);
        nvp__chain_measure_layer(c, &bex, k, g);
        cache_off += l->kind->cache_floats(l, R);
        dx = dy;
    }
#undef STAGE
    return sum_lp;
}

int nvp__chain_nll_grad_run(const nvp_chain *c, nvp_pool *pool, size_t n,
                            const float *y, const float *cond, float *grad,
                            double *loss, uint32_t *grad_bits,
                            uint32_t *params_bits)
{
    const size_t cap = nvp__chunk_rows(n);
    const size_t floats = train_arena_layout(c, cap, NULL, NULL);
    nvp_ws *ws = nvp__ws_acquire(&c->ctx, NVP_WS_TRAIN, floats);
    if (!ws) {
        /* parameters that are not finite are refused first, as ever */
        if (params_bits &&
            (*params_bits = nvp__par_max_abs_bits(pool, c->ctx.isa, c->params,
                                                  c->n_params)) >=
                NVP_INF_BITS)
            return NVP_ENONFINITE;
        return NVP_ENOMEM;
    }
    train_arena arena;
    train_arena_layout(c, cap, ws->arena, &arena);
    const nvp_exec ex = nvp__context_exec(&c->ctx, ws, pool);
    double sum_lp = 0.0;
    nvp_absmax measured = {c->ctx.isa, 0}, read = {c->ctx.isa, 0};
    grad_want w = {(float)(-1.0 / (double)n), grad, 1, NULL, NULL, NULL,
                   NULL};
    for (size_t r0 = 0; r0 < n; r0 += NVP_CHUNK_ROWS) {
        const size_t rows = n - r0 < NVP_CHUNK_ROWS ? n - r0 : NVP_CHUNK_ROWS;
        w.fresh = r0 == 0;
        w.grad_max = r0 + rows == n ? &measured : NULL;
        w.params_max = r0 == 0 && params_bits ? &read : NULL;
        sum_lp += backward_chunk(c, &ex, &arena, rows, y + r0 * c->dim,
                                 cond ? cond + r0 * c->cdim : NULL, &w, NULL);
        if (w.params_max && read.bits >= NVP_INF_BITS)
            break;
    }
    nvp__ws_release(&c->ctx, NVP_WS_TRAIN, ws);
    if (params_bits) {
        *params_bits = read.bits;
        if (read.bits >= NVP_INF_BITS)
            return NVP_ENONFINITE;
    }
    *loss = -sum_lp / (double)n;
    *grad_bits = measured.bits;
    return NVP_OK;
}

/* The checks of a call that takes rows of data and their context: the
 * context's presence matches the chain and both hold finite values. */
static int check_rows(const nvp_chain *c, const char *fn, size_t n,
                      const float *y, const float *context, int takes_given)
{
    const nvp_errbox *eb = &c->err;
    int rc = nvp__chain_context_given(c, fn, context, takes_given);
    if (rc == NVP_OK)
        rc = nvp__check_batch_given(eb, fn, n, c->dim, c->cdim);
    if (rc)
        return rc;
    NVP_REQUIRE(nvp__all_finite(c->ctx.isa, y, n * c->dim), NVP_ENONFINITE,
                "%s: y holds NaN or an infinity", fn);
    return nvp__chain_context_finite(c, fn, n, context);
}

static int nll_grad(const nvp_chain *c, const char *fn, size_t n,
                    const float *y, const float *context, int takes_given,
                    float *grad, float *loss)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR_FN(c);
    NVP_REQUIRE_PTR_FN(y);
    NVP_REQUIRE_PTR_FN(grad);
    int rc = check_rows(c, fn, n, y, context, takes_given);
    if (rc)
        return rc;
    nvp_pool *pool = nvp__context_pool_take(&c->ctx);
    double l;
    uint32_t bits, params_bits;
    /* the parameters checked as the pass reads them */
    rc = nvp__chain_nll_grad_run(c, pool, n, y, c->cdim ? context : NULL,
                                 grad, &l, &bits, &params_bits);
    if (rc == NVP_ENONFINITE)
        rc = nvp__chain_params_refused(c, fn);
    else if (rc)
        rc = nvp__fail(eb, rc, "%s: out of memory for workspace", fn);
    nvp__context_pool_give(pool);
    if (rc)
        return rc;
    if (loss)
        *loss = (float)l;
    NVP_REQUIRE(isfinite(l), NVP_ENONFINITE, "%s: the loss is not finite", fn);
    NVP_REQUIRE(bits < NVP_INF_BITS, NVP_ENONFINITE,
                "%s: the gradient holds NaN or an infinity", fn);
    return NVP_OK;
}

int nvp_chain_nll_grad(const nvp_chain *c, size_t n, const float *y,
                       float *grad, float *loss)
{
    return nll_grad(c, "nvp_chain_nll_grad", n, y, NULL, 0, grad, loss);
}

int nvp_chain_nll_grad_given(const nvp_chain *c, size_t n, const float *y,
                             const float *context, float *grad, float *loss)
{
    return nll_grad(c, "nvp_chain_nll_grad_given", n, y, context, 1, grad,
                    loss);
}

static int score(const nvp_chain *c, const char *fn, size_t n, const float *y,
                 const float *context, int takes_given, float *dlp_dy,
                 float *dlp_dc, float *lp)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR_FN(c);
    NVP_REQUIRE_PTR_FN(y);
    NVP_REQUIRE(dlp_dy != NULL || (dlp_dc != NULL && c->cdim > 0),
                NVP_EINVAL,
                "%s: nothing to compute (dlp_dy is NULL, and dlp_dc is NULL "
                "or the chain reads no context)",
                fn);
    int rc = check_rows(c, fn, n, y, context, takes_given);
    if (rc)
        return rc;
    nvp_pool *pool = nvp__context_pool_take(&c->ctx);
    rc = nvp__chain_params_verdict(c, pool, fn, NULL);
    const size_t cap = nvp__chunk_rows(n);
    nvp_ws *ws = NULL;
    if (rc == NVP_OK &&
        !(ws = nvp__ws_acquire(&c->ctx, NVP_WS_TRAIN,
                               train_arena_layout(c, cap, NULL, NULL))))
        rc = nvp__fail(eb, NVP_ENOMEM, "%s: out of memory for workspace", fn);
    if (rc == NVP_OK) {
        train_arena arena;
        train_arena_layout(c, cap, ws->arena, &arena);
        const nvp_exec ex = nvp__context_exec(&c->ctx, ws, pool);
        const size_t dim = c->dim, cdim = c->cdim;
        for (size_t r0 = 0; r0 < n; r0 += NVP_CHUNK_ROWS) {
            const size_t rows =
                n - r0 < NVP_CHUNK_ROWS ? n - r0 : NVP_CHUNK_ROWS;
            grad_want w = {1.0f, NULL, 0, dlp_dy ? dlp_dy + r0 * dim : NULL,
                           cdim && dlp_dc ? dlp_dc + r0 * cdim : NULL, NULL,
                           NULL};
            backward_chunk(c, &ex, &arena, rows, y + r0 * dim,
                           cdim ? context + r0 * cdim : NULL, &w,
                           lp ? lp + r0 : NULL);
        }
        nvp__ws_release(&c->ctx, NVP_WS_TRAIN, ws);
    }
    nvp__context_pool_give(pool);
    return rc;
}

int nvp_chain_score(const nvp_chain *c, size_t n, const float *y,
                    float *dlp_dy, float *lp)
{
    return score(c, "nvp_chain_score", n, y, NULL, 0, dlp_dy, NULL, lp);
}

int nvp_chain_score_given(const nvp_chain *c, size_t n, const float *y,
                          const float *context, float *dlp_dy, float *dlp_dc,
                          float *lp)
{
    return score(c, "nvp_chain_score_given", n, y, context, 1, dlp_dy, dlp_dc,
                 lp);
}

/* Room for a minibatch of `batch` rows and their context. */
static int batch_room(nvp_chain *c, const char *fn, size_t batch)
{
    const nvp_errbox *eb = &c->err;
    const nvp_allocator *a = &c->alloc;
    if (batch <= c->batch_cap)
        return NVP_OK;
    float *b = nvp__alloc_aligned(a, batch * c->dim * sizeof(float));
    float *bc = c->cdim ? nvp__alloc_aligned(a, batch * c->cdim * sizeof(float))
                        : NULL;
    if (!b || (c->cdim && !bc)) {
        nvp__free_aligned(a, b);
        nvp__free_aligned(a, bc);
        return nvp__fail(eb, NVP_ENOMEM,
                         "%s: out of memory for a batch of %zu", fn, batch);
    }
    nvp__free_aligned(a, c->batch);
    nvp__free_aligned(a, c->batch_cond);
    c->batch = b;
    c->batch_cond = bc;
    c->batch_cap = batch;
    return NVP_OK;
}

/* What a minibatch's draw changes in an rng. */
typedef struct rng_state {
    uint64_t s[4];
    int has_spare;
    double spare;
} rng_state;

static void rng_save(const nvp_rng *r, rng_state *st)
{
    memcpy(st->s, r->s, sizeof st->s);
    st->has_spare = r->has_spare;
    st->spare = r->spare;
}

static void rng_restore(nvp_rng *r, const rng_state *st)
{
    memcpy(r->s, st->s, sizeof st->s);
    r->has_spare = st->has_spare;
    r->spare = st->spare;
}

static int train_step(nvp_chain *c, const char *fn, nvp_adam *opt,
                      nvp_rng *rng, size_t n_data, const float *data,
                      const float *context, int takes_given, size_t batch,
                      float *loss)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR_FN(c);
    NVP_REQUIRE_PTR_FN(opt);
    NVP_REQUIRE_PTR_FN(rng);
    NVP_REQUIRE_PTR_FN(data);
    NVP_REQUIRE(opt->n == c->n_params, NVP_EDIM,
                "%s: optimizer has %zu parameters, chain %zu", fn, opt->n,
                c->n_params);
    int rc = nvp__chain_context_given(c, fn, context, takes_given);
    if (rc)
        return rc;
    rc = nvp__check_batch_given(eb, fn, n_data, c->dim, c->cdim);
    if (rc == NVP_OK)
        rc = nvp__check_batch_given(eb, fn, batch, c->dim, c->cdim);
    if (rc)
        return rc;
    if ((rc = nvp__chain_grad_room(c, fn)) != NVP_OK ||
        (rc = batch_room(c, fn, batch)) != NVP_OK)
        return rc;
    /* One hold on the pool for the checks, the gradient and the update. */
    nvp_pool *pool = nvp__context_pool_take(&c->ctx);
    /* The parameters are checked as the gradient's pass reads them; a
     * step they refuse leaves rng as it found it, as a check before the
     * draw would. */
    rng_state drawn_from;
    rng_save(rng, &drawn_from);
    const size_t dim = c->dim, cdim = c->cdim;
    for (size_t i = 0; i < batch; i++) {
        const uint64_t r = nvp__rng_below(rng, n_data);
        memcpy(c->batch + i * dim, data + r * dim, dim * sizeof(float));
        if (cdim)
            memcpy(c->batch_cond + i * cdim, context + r * cdim,
                   cdim * sizeof(float));
    }
    /* From here on *loss is written on every path but the parameters'
     * refusal (which leaves it, as their check before anything did), NaN
     * when no loss was computed, as nvp_chain_nll_grad leaves it for such
     * rows. */
    double l;
    uint32_t bits, params_bits;
    if (!nvp__all_finite(c->ctx.isa, c->batch, batch * dim) ||
        (cdim && !nvp__all_finite(c->ctx.isa, c->batch_cond, batch * cdim))) {
        /* the parameters' refusal comes first, as it always has */
        rc = nvp__chain_params_verdict(c, pool, fn, NULL);
        if (rc != NVP_OK) {
            rng_restore(rng, &drawn_from);
        } else {
            if (loss)
                *loss = NAN;
            rc = nvp__fail(eb, NVP_ENONFINITE,
                           "%s: the minibatch holds NaN or an infinity", fn);
        }
    } else {
        rc = nvp__chain_nll_grad_run(c, pool, batch, c->batch,
                                     cdim ? c->batch_cond : NULL, c->grad, &l,
                                     &bits, &params_bits);
        if (rc == NVP_OK) {
            rc = nvp__chain_apply_step(c, opt, pool, fn, l, bits,
                                       params_bits, loss);
        } else if (rc == NVP_ENONFINITE) {
            rng_restore(rng, &drawn_from);
            rc = nvp__chain_params_refused(c, fn);
        } else {
            if (loss)
                *loss = NAN;
            rc = nvp__fail(eb, rc, "%s: out of memory for workspace", fn);
        }
    }
    nvp__context_pool_give(pool);
    return rc;
}

int nvp_chain_train_step(nvp_chain *c, nvp_adam *opt, nvp_rng *rng,
                         size_t n_data, const float *data, size_t batch,
                         float *loss)
{
    return train_step(c, "nvp_chain_train_step", opt, rng, n_data, data, NULL,
                      0, batch, loss);
}

int nvp_chain_train_step_given(nvp_chain *c, nvp_adam *opt, nvp_rng *rng,
                               size_t n_data, const float *data,
                               const float *context, size_t batch,
                               float *loss)
{
    return train_step(c, "nvp_chain_train_step_given", opt, rng, n_data,
                      data, context, 1, batch, loss);
}
