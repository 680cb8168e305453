/* SPDX-License-Identifier: MIT */
/* The vector-Jacobian product of the chain's forward direction (base to
 * data, log-determinant included), and the reverse-KL training it serves:
 * draws z from the base, y = f(z), a caller's unnormalised log density
 * log p~(y) and its gradient, the loss mean(log q(y) - log p~(y)) and its
 * parameter gradient through the reparameterisation y = f(z).
 *
 * Kept apart from chain_train.c (the inverse direction's NLL): the two
 * share the layer table and Adam's internal path, not their arenas. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "kernels/vec.h"
#include "model/chain.h"
#include "runtime/vec_parallel.h"
#include "train/adam.h"
#include "train/chain_checks.h"

/* The arena of a forward kept for its backward: `slots` chunks of at most
 * cap rows, each holding K + 1 stages (the base rows, then what each
 * layer's forward leaves) and every layer's cache, then what the chunks
 * share: the largest backward scratch of any layer, two stage gradients
 * and a row of dL/dlogdet.  One slot serves a chunk at a time (the public
 * VJP); the reverse-KL step keeps one per chunk of its batch, since the
 * callback sees the whole batch between the forward and the backward. */
typedef struct vjp_arena {
    float *slots;
    size_t slot_floats;  /* stages, then caches */
    size_t stage_floats;
    float *scratch;
    float *dstage[2];
    float *dlogdet;
    size_t cap;
} vjp_arena;

static size_t vjp_arena_layout(const nvp_chain *c, size_t rows, size_t slots,
                               float *base, vjp_arena *a)
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
    const size_t stage_floats = nvp__carved(rows * dim);
    const size_t slot_floats =
        nvp__carved((K + 1) * stage_floats) + nvp__carved(caches);
    size_t off = 0, at[5];
    const size_t counts[5] = {slots * slot_floats, scratch, rows * dim,
                              rows * dim, rows};
    for (size_t i = 0; i < 5; i++) {
        at[i] = off;
        off += nvp__carved(counts[i]);
    }
    if (a && base) {
        a->cap = rows;
        a->stage_floats = stage_floats;
        a->slot_floats = slot_floats;
        a->slots = base + at[0];
        a->scratch = base + at[1];
        a->dstage[0] = base + at[2];
        a->dstage[1] = base + at[3];
        a->dlogdet = base + at[4];
    }
    return off;
}

#define STAGE(a, s, k) ((a)->slots + (s) * (a)->slot_floats + \
                        (k) * (a)->stage_floats)

static float *slot_caches(const nvp_chain *c, const vjp_arena *a, size_t s)
{
    return STAGE(a, s, c->n_layers + 1);
}

/* The forward of rows rows of x (with their context cond, NULL when the
 * chain reads none) into slot s, keeping every stage and cache; adds each
 * row's log-determinant into logdet (may be NULL).  The output is the
 * slot's last stage. */
static void forward_slot(const nvp_chain *c, const nvp_exec *ex,
                         const vjp_arena *a, size_t s, size_t rows,
                         const float *x, const float *cond, float *logdet)
{
    const size_t dim = c->dim, K = c->n_layers;
    float *cache = slot_caches(c, a, s);
    memcpy(STAGE(a, s, 0), x, rows * dim * sizeof(float));
    for (size_t k = 0; k < K; k++) {
        const nvp_layer *l = c->layers[k];
        float *z = STAGE(a, s, k + 1);
        memcpy(z, STAGE(a, s, k), rows * dim * sizeof(float));
        l->kind->forward_rows(l, ex, rows, z, cond, logdet, cache);
        cache += l->kind->cache_floats(l, a->cap);
    }
}

/* The backward of slot s's forward: dy (rows x dim) is dL/dy, dlogdet
 * dL/dlogdet per row (NULL: zero).  Writes dx (may be NULL), adds
 * dL/d(context) into dcond (may be NULL) and the parameter gradient into
 * grad (may be NULL; fresh as for the layer table's backward); on the
 * last slot of a pass that checks the gradient, max-combines its largest
 * magnitude into grad_max (NULL: not measured; nvp_exec.grad_max). */
static void backward_slot(const nvp_chain *c, const nvp_exec *run,
                          const vjp_arena *a, size_t s, size_t rows,
                          const float *cond, const float *dy,
                          const float *dlogdet, float *dx, float *dcond,
                          float *grad, int fresh, nvp_absmax *grad_max)
{
    nvp_exec bex = *run;
    bex.grad_max = grad ? grad_max : NULL;
    const nvp_exec *ex = &bex;
    const size_t dim = c->dim, K = c->n_layers;
    if (K == 0) {
        if (dx)
            memmove(dx, dy, rows * dim * sizeof *dx);
        return;
    }
    size_t cache_off = 0;
    for (size_t k = 0; k < K; k++)
        cache_off += c->layers[k]->kind->cache_floats(c->layers[k], a->cap);
    const float *cache = slot_caches(c, a, s);
    /* Layer K's forward made y, so it comes first; the stage gradients
     * alternate between the two buffers, layer 1's going to dstage[0]
     * (dx wants the copy: dx may be dy's memory). */
    const float *g = dy;
    for (size_t k = K; k-- > 0;) {
        const nvp_layer *l = c->layers[k];
        cache_off -= l->kind->cache_floats(l, a->cap);
        float *out = k > 0 || dx ? a->dstage[k & 1] : NULL;
        float *gk = grad ? grad + c->offsets[k] : NULL;
        l->kind->forward_backward_rows(l, ex, rows, cache + cache_off,
                                       STAGE(a, s, k), cond, g, dlogdet, out,
                                       dcond, gk, fresh, a->scratch);
        nvp__chain_measure_layer(c, ex, k, gk);
        g = out;
    }
    if (dx)
        memcpy(dx, a->dstage[0], rows * dim * sizeof *dx);
}

/* The context's presence matches the chain (takes_given: a _given call)
 * and, when it is read, n rows of it are finite. */
static int check_context(const nvp_chain *c, const char *fn, size_t n,
                         const float *context, int takes_given)
{
    const int rc = nvp__chain_context_given(c, fn, context, takes_given);
    return rc ? rc : nvp__chain_context_finite(c, fn, n, context);
}

/* ------------------------------------------------------ the public VJP */

static int forward_backward(const nvp_chain *c, const char *fn, size_t n,
                            const float *x, const float *context,
                            int takes_given, const float *dy,
                            const float *dlogdet, float *dx, float *dcontext,
                            float *grad)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR_FN(c);
    NVP_REQUIRE_PTR_FN(x);
    NVP_REQUIRE_PTR_FN(dy);
    int rc = nvp__check_batch_given(eb, fn, n, c->dim, c->cdim);
    if (rc == NVP_OK)
        rc = check_context(c, fn, n, context, takes_given);
    if (rc)
        return rc;
    const size_t dim = c->dim, cdim = c->cdim;
    NVP_REQUIRE(nvp__all_finite(c->ctx.isa, x, n * dim), NVP_ENONFINITE,
                "%s: x holds NaN or an infinity", fn);
    NVP_REQUIRE(nvp__all_finite(c->ctx.isa, dy, n * dim), NVP_ENONFINITE,
                "%s: dy holds NaN or an infinity", fn);
    NVP_REQUIRE(!dlogdet || nvp__all_finite(c->ctx.isa, dlogdet, n),
                NVP_ENONFINITE, "%s: dlogdet holds NaN or an infinity", fn);
    nvp_pool *pool = nvp__context_pool_take(&c->ctx);
    rc = nvp__chain_params_verdict(c, pool, fn, NULL);
    const size_t cap = nvp__chunk_rows(n);
    nvp_ws *ws = NULL;
    if (rc == NVP_OK &&
        !(ws = nvp__ws_acquire(&c->ctx, NVP_WS_TRAIN,
                               vjp_arena_layout(c, cap, 1, NULL, NULL))))
        rc = nvp__fail(eb, NVP_ENOMEM, "%s: out of memory for workspace", fn);
    if (rc == NVP_OK) {
        vjp_arena a;
        vjp_arena_layout(c, cap, 1, ws->arena, &a);
        const nvp_exec ex = nvp__context_exec(&c->ctx, ws, pool);
        for (size_t r0 = 0; r0 < n; r0 += NVP_CHUNK_ROWS) {
            const size_t rows =
                n - r0 < NVP_CHUNK_ROWS ? n - r0 : NVP_CHUNK_ROWS;
            const float *cond = cdim ? context + r0 * cdim : NULL;
            float *dcond = cdim && dcontext ? dcontext + r0 * cdim : NULL;
            if (dcond)
                memset(dcond, 0, rows * cdim * sizeof *dcond);
            forward_slot(c, &ex, &a, 0, rows, x + r0 * dim, cond, NULL);
            backward_slot(c, &ex, &a, 0, rows, cond, dy + r0 * dim,
                          dlogdet ? dlogdet + r0 : NULL,
                          dx ? dx + r0 * dim : NULL, dcond, grad, 0, NULL);
        }
        nvp__ws_release(&c->ctx, NVP_WS_TRAIN, ws);
    }
    nvp__context_pool_give(pool);
    return rc;
}

int nvp_chain_forward_backward(const nvp_chain *c, size_t n, const float *x,
                               const float *dy, const float *dlogdet,
                               float *dx, float *grad)
{
    return forward_backward(c, "nvp_chain_forward_backward", n, x, NULL, 0,
                            dy, dlogdet, dx, NULL, grad);
}

int nvp_chain_forward_backward_given(const nvp_chain *c, size_t n,
                                     const float *x, const float *context,
                                     const float *dy, const float *dlogdet,
                                     float *dx, float *dcontext, float *grad)
{
    return forward_backward(c, "nvp_chain_forward_backward_given", n, x,
                            context, 1, dy, dlogdet, dx, dcontext, grad);
}

/* ------------------------------------------------------- reverse KL */

int nvp__chain_reverse_kl_run(const nvp_chain *c, const char *fn,
                              nvp_pool *pool, nvp_rng *rng, size_t batch,
                              const float *context,
                              nvp_log_density_fn log_density, void *user,
                              float *grad, double *loss, uint32_t *grad_bits)
{
    const nvp_errbox *eb = &c->err;
    const size_t dim = c->dim, cdim = c->cdim;
    const size_t cap = nvp__chunk_rows(batch);
    const size_t slots = (batch + NVP_CHUNK_ROWS - 1) / NVP_CHUNK_ROWS;
    /* The slots, then the batch's y, dlog p~/dy (first the base draws),
     * log q and log p~. */
    /* The arena grows with the batch (a slot per chunk): refuse a batch
     * whose size does not fit in a size_t before laying it out (a slot of
     * one chunk's layout bounds each slot's share from above). */
    size_t bound, floats;
    if (nvp__mul(slots, vjp_arena_layout(c, cap, 1, NULL, NULL), &bound) ||
        nvp__add(bound, 2 * nvp__carved(batch * dim) + 2 * nvp__carved(batch),
                 &floats) ||
        nvp__mul(floats, sizeof(float), &bound))
        return nvp__fail(eb, NVP_EOVERFLOW,
                         "%s: a batch of %zu rows needs more memory than can "
                         "be addressed",
                         fn, batch);
    const size_t arena = vjp_arena_layout(c, cap, slots, NULL, NULL);
    floats = arena + 2 * nvp__carved(batch * dim) + 2 * nvp__carved(batch);
    nvp_ws *ws = nvp__ws_acquire(&c->ctx, NVP_WS_TRAIN, floats);
    if (!ws)
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory for workspace",
                         fn);
    vjp_arena a;
    vjp_arena_layout(c, cap, slots, ws->arena, &a);
    float *cursor = ws->arena + arena;
    float *y = nvp__carve(&cursor, batch * dim);
    float *dlp = nvp__carve(&cursor, batch * dim);
    float *lq = nvp__carve(&cursor, batch);
    float *lp = nvp__carve(&cursor, batch);
    const nvp_exec ex = nvp__context_exec(&c->ctx, ws, pool);
    /* The base draws in row order (as nvp_chain_sample draws them), then
     * the forward of every chunk, kept for the backward. */
    int rc = nvp_base_sample(c->base, rng, batch, dlp);
    if (rc)
        rc = nvp__fail_in(eb, rc, fn);
    for (size_t s = 0; rc == NVP_OK && s < slots; s++) {
        const size_t r0 = s * NVP_CHUNK_ROWS;
        const size_t rows = batch - r0 < cap ? batch - r0 : cap;
        float *ld = lq + r0;
        memset(ld, 0, rows * sizeof *ld);
        forward_slot(c, &ex, &a, s, rows, dlp + r0 * dim,
                     cdim ? context + r0 * cdim : NULL, ld);
        for (size_t i = 0; i < rows; i++)
            ld[i] = (float)(nvp__base_log_prob_row(c->base,
                                                   dlp + (r0 + i) * dim) -
                            (double)ld[i]);
        memcpy(y + r0 * dim, STAGE(&a, s, c->n_layers),
               rows * dim * sizeof *y);
    }
    if (rc == NVP_OK && !nvp__all_finite(c->ctx.isa, y, batch * dim))
        rc = nvp__fail(eb, NVP_ENONFINITE,
                       "%s: a draw overflowed the float range", fn);
    if (rc == NVP_OK) {
        const int urc = log_density(user, batch, dim, y, lp, dlp);
        if (urc != 0)
            rc = nvp__fail(eb, urc,
                           "%s: the log density callback returned %d", fn,
                           urc);
    }
    if (rc == NVP_OK && !(nvp__all_finite(c->ctx.isa, lp, batch) &&
                          nvp__all_finite(c->ctx.isa, dlp, batch * dim)))
        rc = nvp__fail(eb, NVP_ENONFINITE,
                       "%s: the log density callback gave NaN or an "
                       "infinity",
                       fn);
    if (rc == NVP_OK) {
        double sum = 0.0;
        for (size_t i = 0; i < batch; i++)
            sum += (double)lq[i] - (double)lp[i];
        *loss = sum / (double)batch;
        /* L = mean(log N(z) - logdet - log p~(y)): dL/dy = -dlog p~/dy / n
         * and dL/dlogdet = -1/n per row. */
        const float w = (float)(-1.0 / (double)batch);
        for (size_t i = 0; i < batch * dim; i++)
            dlp[i] *= w;
        for (size_t i = 0; i < cap; i++)
            a.dlogdet[i] = w;
        nvp__chain_clear_grad(c, pool, grad);
        /* the gradient measured as the last slot's backward stores it */
        nvp_absmax measured = {c->ctx.isa, 0};
        for (size_t s = 0; s < slots; s++) {
            const size_t r0 = s * NVP_CHUNK_ROWS;
            const size_t rows = batch - r0 < cap ? batch - r0 : cap;
            backward_slot(c, &ex, &a, s, rows,
                          cdim ? context + r0 * cdim : NULL, dlp + r0 * dim,
                          a.dlogdet, NULL, NULL, grad, s == 0,
                          s + 1 == slots ? &measured : NULL);
        }
        *grad_bits = measured.bits;
    }
    nvp__ws_release(&c->ctx, NVP_WS_TRAIN, ws);
    return rc;
}

/* The checks the gradient and the step share. */
static int reverse_kl_args(const nvp_chain *c, const char *fn, nvp_rng *rng,
                           size_t batch, const float *context,
                           int takes_given, nvp_log_density_fn log_density)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR_FN(c);
    NVP_REQUIRE_PTR_FN(rng);
    NVP_REQUIRE_PTR_FN(log_density);
    const int rc = nvp__check_batch_given(eb, fn, batch, c->dim, c->cdim);
    return rc ? rc : check_context(c, fn, batch, context, takes_given);
}

static int reverse_kl_grad(const nvp_chain *c, const char *fn, nvp_rng *rng,
                           size_t batch, const float *context,
                           int takes_given, nvp_log_density_fn log_density,
                           void *user, float *grad, float *loss)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    int rc = reverse_kl_args(c, fn, rng, batch, context, takes_given,
                             log_density);
    if (rc)
        return rc;
    NVP_REQUIRE_PTR_FN(grad);
    if (loss)
        *loss = NAN;
    nvp_pool *pool = nvp__context_pool_take(&c->ctx);
    double l = NAN;
    uint32_t bits = NVP_INF_BITS;
    rc = nvp__chain_params_verdict(c, pool, fn, NULL);
    if (rc == NVP_OK)
        rc = nvp__chain_reverse_kl_run(c, fn, pool, rng, batch,
                                       c->cdim ? context : NULL, log_density,
                                       user, grad, &l, &bits);
    nvp__context_pool_give(pool);
    if (rc)
        return rc;
    if (loss)
        *loss = (float)l;
    NVP_REQUIRE(isfinite(l), NVP_ENONFINITE, "%s: the loss is not finite",
                fn);
    NVP_REQUIRE(bits < NVP_INF_BITS, NVP_ENONFINITE,
                "%s: the gradient holds NaN or an infinity", fn);
    return NVP_OK;
}

int nvp_chain_reverse_kl_grad(const nvp_chain *c, nvp_rng *rng, size_t batch,
                              nvp_log_density_fn log_density, void *user,
                              float *grad, float *loss)
{
    return reverse_kl_grad(c, "nvp_chain_reverse_kl_grad", rng, batch, NULL,
                           0, log_density, user, grad, loss);
}

int nvp_chain_reverse_kl_grad_given(const nvp_chain *c, nvp_rng *rng,
                                    size_t batch, const float *context,
                                    nvp_log_density_fn log_density,
                                    void *user, float *grad, float *loss)
{
    return reverse_kl_grad(c, "nvp_chain_reverse_kl_grad_given", rng, batch,
                           context, 1, log_density, user, grad, loss);
}

static int reverse_kl_step(nvp_chain *c, const char *fn, nvp_adam *opt,
                           nvp_rng *rng, size_t batch, const float *context,
                           int takes_given, nvp_log_density_fn log_density,
                           void *user, float *loss)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    int rc = reverse_kl_args(c, fn, rng, batch, context, takes_given,
                             log_density);
    if (rc)
        return rc;
    NVP_REQUIRE_PTR_FN(opt);
    NVP_REQUIRE(opt->n == c->n_params, NVP_EDIM,
                "%s: optimizer has %zu parameters, chain %zu", fn, opt->n,
                c->n_params);
    if ((rc = nvp__chain_grad_room(c, fn)) != NVP_OK)
        return rc;
    nvp_pool *pool = nvp__context_pool_take(&c->ctx);
    uint32_t params_bits;
    rc = nvp__chain_params_verdict(c, pool, fn, &params_bits);
    if (rc) {
        nvp__context_pool_give(pool);
        return rc;
    }
    /* From here on *loss is written on every path, NaN when no loss was
     * computed. */
    if (loss)
        *loss = NAN;
    double l;
    uint32_t bits;
    rc = nvp__chain_reverse_kl_run(c, fn, pool, rng, batch,
                                   c->cdim ? context : NULL, log_density,
                                   user, c->grad, &l, &bits);
    if (rc == NVP_OK)
        rc = nvp__chain_apply_step(c, opt, pool, fn, l, bits, params_bits,
                                   loss);
    nvp__context_pool_give(pool);
    return rc;
}

int nvp_chain_reverse_kl_step(nvp_chain *c, nvp_adam *opt, nvp_rng *rng,
                              size_t batch, nvp_log_density_fn log_density,
                              void *user, float *loss)
{
    return reverse_kl_step(c, "nvp_chain_reverse_kl_step", opt, rng, batch,
                           NULL, 0, log_density, user, loss);
}

int nvp_chain_reverse_kl_step_given(nvp_chain *c, nvp_adam *opt,
                                    nvp_rng *rng, size_t batch,
                                    const float *context,
                                    nvp_log_density_fn log_density,
                                    void *user, float *loss)
{
    return reverse_kl_step(c, "nvp_chain_reverse_kl_step_given", opt, rng,
                           batch, context, 1, log_density, user, loss);
}
