/* SPDX-License-Identifier: MIT */
/* What the chain's gradient and training calls share
 * (train/chain_checks.h). */
#include "train/chain_checks.h"

#include <math.h>

#include "core/alloc.h"
#include "core/check.h"
#include "kernels/vec.h"
#include "runtime/vec_parallel.h"

int nvp__chain_params_verdict(const nvp_chain *c, nvp_pool *pool,
                              const char *fn, uint32_t *bits)
{
    const uint32_t b = nvp__par_max_abs_bits(pool, c->ctx.isa, c->params,
                                             c->n_params);
    if (bits)
        *bits = b;
    return b < NVP_INF_BITS ? NVP_OK : nvp__chain_params_refused(c, fn);
}

int nvp__chain_params_refused(const nvp_chain *c, const char *fn)
{
    return nvp__fail(&c->err, NVP_ENONFINITE,
                     "%s: the chain's parameters hold NaN or an infinity "
                     "(written through nvp_chain_params?)",
                     fn);
}

int nvp__chain_context_given(const nvp_chain *c, const char *fn,
                             const float *context, int takes_given)
{
    const nvp_errbox *eb = &c->err;
    NVP_REQUIRE(takes_given || c->cdim == 0, NVP_EINVAL,
                "%s: the chain reads %zu context values per row; use the "
                "_given form of this call",
                fn, c->cdim);
    NVP_REQUIRE(c->cdim == 0 || context != NULL, NVP_EINVAL,
                "%s: context is NULL (the chain reads %zu values per row)",
                fn, c->cdim);
    return NVP_OK;
}

int nvp__chain_context_finite(const nvp_chain *c, const char *fn, size_t n,
                              const float *context)
{
    const nvp_errbox *eb = &c->err;
    NVP_REQUIRE(c->cdim == 0 ||
                    nvp__all_finite(c->ctx.isa, context, n * c->cdim),
                NVP_ENONFINITE, "%s: the context holds NaN or an infinity",
                fn);
    return NVP_OK;
}

void nvp__chain_measure_layer(const nvp_chain *c, const nvp_exec *ex,
                              size_t k, const float *grad_k)
{
    const nvp_layer *l = c->layers[k];
    /* final now, and still in the cache */
    if (ex->grad_max && !l->kind->measures)
        nvp__absmax_merge(ex->grad_max,
                          nvp__par_max_abs_bits(ex->pool, ex->isa, grad_k,
                                                l->n_params));
}

int nvp__chain_grad_room(nvp_chain *c, const char *fn)
{
    if (c->grad)
        return NVP_OK;
    c->grad = nvp__alloc_aligned(&c->alloc, c->n_params * sizeof(float));
    if (!c->grad)
        return nvp__fail(&c->err, NVP_ENOMEM, "%s: out of memory", fn);
    return NVP_OK;
}

int nvp__chain_apply_step(nvp_chain *c, nvp_adam *opt, nvp_pool *pool,
                          const char *fn, double l, uint32_t bits,
                          uint32_t params_bits, float *loss)
{
    const nvp_errbox *eb = &c->err;
    if (loss)
        *loss = (float)l;
    int rc;
    if (!isfinite(l))
        rc = nvp__fail(eb, NVP_ENONFINITE,
                       "%s: the loss is not finite; step refused", fn);
    else
        rc = nvp__adam_grad_verdict(eb, fn, bits);
    if (rc == NVP_OK && nvp__adam_apply(opt, c->params, c->grad, params_bits,
                                        bits, pool) != NVP_OK)
        rc = nvp__adam_refuse_result(eb, fn);
    return rc;
}

void nvp__chain_clear_grad(const nvp_chain *c, nvp_pool *pool, float *grad)
{
    size_t done = 0; /* grad[0, done) is cleared or written fresh */
    for (size_t k = 0; k < c->n_layers; k++) {
        size_t off, len;
        c->layers[k]->kind->fresh_range(c->layers[k], &off, &len);
        if (len == 0)
            continue;
        const size_t start = c->offsets[k] + off;
        nvp__par_zero(pool, grad + done, start - done);
        done = start + len;
    }
    nvp__par_zero(pool, grad + done, c->n_params - done);
}
