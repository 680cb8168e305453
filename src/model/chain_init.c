/* SPDX-License-Identifier: MIT */
/* Data-dependent initialisation of a chain (nvp_chain_init_from_data): the
 * data walk down the chain in the inverse direction, and each layer whose
 * kind has such an initialisation (ActNorm, the invertible linear layer)
 * sets its parameters from the data as it reaches it. */
#include <string.h>

#include "core/alloc.h"
#include "kernels/vec.h"
#include "model/chain.h"
#include "model/eval.h"

static int init_from_data(nvp_chain *c, const char *fn, size_t n,
                          const float *data, const float *context,
                          int takes_given)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR_FN(c);
    NVP_REQUIRE_PTR_FN(data);
    NVP_REQUIRE(takes_given || c->cdim == 0, NVP_EINVAL,
                "%s: the chain reads %zu context values per row; use "
                "nvp_chain_init_from_data_given",
                fn, c->cdim);
    NVP_REQUIRE(c->cdim == 0 || context != NULL, NVP_EINVAL,
                "%s: context is NULL", fn);
    int rc = nvp__check_batch_given(eb, fn, n, c->dim, c->cdim);
    if (rc)
        return rc;
    NVP_REQUIRE(n >= 2, NVP_EINVAL, "%s: %zu row: at least 2 are needed", fn,
                n);
    NVP_REQUIRE(nvp__all_finite(c->ctx.isa, data, n * c->dim), NVP_ENONFINITE,
                "%s: data holds NaN or an infinity", fn);
    NVP_REQUIRE(c->cdim == 0 ||
                    nvp__all_finite(c->ctx.isa, context, n * c->cdim),
                NVP_ENONFINITE, "%s: context holds NaN or an infinity", fn);
    const size_t dim = c->dim;
    float *z = nvp__alloc_aligned(&c->alloc, n * dim * sizeof *z);
    float *saved = nvp__alloc_aligned(
        &c->alloc, (c->n_params ? c->n_params : 1) * sizeof *saved);
    if (!z || !saved) {
        nvp__free_aligned(&c->alloc, z);
        nvp__free_aligned(&c->alloc, saved);
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory for %zu rows",
                         fn, n);
    }
    memcpy(z, data, n * dim * sizeof *z);
    /* A failure leaves the parameters as they were. */
    memcpy(saved, c->params, c->n_params * sizeof *saved);
    for (size_t k = c->n_layers; k-- > 0 && rc == NVP_OK;) {
        nvp_layer *l = c->layers[k];
        if (l->kind->data_init)
            rc = l->kind->data_init(l, eb, fn, n, z);
        if (rc == NVP_OK && k > 0) {
            nvp_layer *one[1] = {l};
            const nvp_stack st = {dim, c->cdim, one, 1, c->base, &c->ctx, eb};
            const nvp_given g = {c->cdim ? context : NULL, c->cdim};
            rc = nvp__stack_eval(&st, NVP_EV_INVERSE, n, z, g, z, NULL, fn);
        }
    }
    if (rc != NVP_OK)
        memcpy(c->params, saved, c->n_params * sizeof *saved);
    nvp__free_aligned(&c->alloc, z);
    nvp__free_aligned(&c->alloc, saved);
    return rc;
}

int nvp_chain_init_from_data(nvp_chain *c, size_t n, const float *data)
{
    return init_from_data(c, "nvp_chain_init_from_data", n, data, NULL, 0);
}

int nvp_chain_init_from_data_given(nvp_chain *c, size_t n, const float *data,
                                   const float *context)
{
    return init_from_data(c, "nvp_chain_init_from_data_given", n, data,
                          context, 1);
}
