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

int nvp_chain_init_from_data(nvp_chain *c, size_t n, const float *data)
{
    const char *fn = "nvp_chain_init_from_data";
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR(c);
    NVP_REQUIRE_PTR(data);
    int rc = nvp__check_batch(eb, fn, n, c->dim);
    if (rc)
        return rc;
    NVP_REQUIRE(n >= 2, NVP_EINVAL, "%s: %zu row: at least 2 are needed", fn,
                n);
    NVP_REQUIRE(nvp__all_finite(c->ctx.isa, data, n * c->dim), NVP_ENONFINITE,
                "%s: data holds NaN or an infinity", fn);
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
            const nvp_stack st = {dim, one, 1, c->base, &c->ctx, eb};
            rc = nvp__stack_eval(&st, NVP_EV_INVERSE, n, z, z, NULL, fn);
        }
    }
    if (rc != NVP_OK)
        memcpy(c->params, saved, c->n_params * sizeof *saved);
    nvp__free_aligned(&c->alloc, z);
    nvp__free_aligned(&c->alloc, saved);
    return rc;
}
