/* SPDX-License-Identifier: MIT */
/* The chain's public evaluation calls: forward, inverse, sample, log_prob
 * and the traced forward, through the stack driver (model/eval.c). */
#include "core/alloc.h"
#include "model/chain.h"
#include "model/eval.h"

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
    const nvp_stack st = nvp__chain_stack(c);
    return nvp__stack_eval(&st, NVP_EV_FORWARD, n, x, y, logdet, fn);
}

int nvp_chain_inverse(const nvp_chain *c, size_t n, const float *y, float *x,
                      float *ildj)
{
    const char *fn = "nvp_chain_inverse";
    int rc = check_eval_args(c, fn, n, y, x);
    if (rc)
        return rc;
    const nvp_stack st = nvp__chain_stack(c);
    return nvp__stack_eval(&st, NVP_EV_INVERSE, n, y, x, ildj, fn);
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
    const nvp_stack st = nvp__chain_stack(c);
    return nvp__stack_eval(&st, NVP_EV_SAMPLE, n, y, y, log_prob, fn);
}

int nvp_chain_log_prob(const nvp_chain *c, size_t n, const float *y,
                       float *lp)
{
    const char *fn = "nvp_chain_log_prob";
    int rc = check_eval_args(c, fn, n, y, lp);
    if (rc)
        return rc;
    const nvp_stack st = nvp__chain_stack(c);
    return nvp__stack_eval(&st, NVP_EV_LOG_PROB, n, y, lp, NULL, fn);
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
    const nvp_stack st = nvp__chain_stack(c);
    return nvp__stack_eval(&st, NVP_EV_TRACE, n, x, stages, NULL, fn);
}
