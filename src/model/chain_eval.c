/* SPDX-License-Identifier: MIT */
/* The chain's public evaluation calls: forward, inverse, sample, log_prob
 * and the traced forward, each with its context-taking form (_given),
 * through the stack driver (model/eval.c). */
#include "core/alloc.h"
#include "model/chain.h"
#include "model/eval.h"

/* Checks what every evaluation call takes, and that the context matches
 * the chain: an unconditional call (takes_given 0) on a
 * chain that reads a context is refused, and so is a context-taking call
 * without one. */
static int check_eval_args(const nvp_chain *c, const char *fn, size_t n,
                           const void *in, const void *out,
                           const float *given, int takes_given)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE(c != NULL, NVP_EINVAL, "%s: chain is NULL", fn);
    NVP_REQUIRE(in != NULL && out != NULL, NVP_EINVAL,
                "%s: input or output is NULL", fn);
    NVP_REQUIRE(takes_given || c->cdim == 0, NVP_EINVAL,
                "%s: the chain reads %zu context values per row; use the "
                "_given form of this call",
                fn, c->cdim);
    NVP_REQUIRE(!takes_given || c->cdim == 0 || given != NULL, NVP_EINVAL,
                "%s: context is NULL (the chain reads %zu values per row)",
                fn, c->cdim);
    return nvp__check_batch_given(eb, fn, n, c->dim, c->cdim);
}

/* The context of n rows as the driver takes it: per row, or (one != 0)
 * one row for all. */
static nvp_given given_rows(const nvp_chain *c, const float *context,
                            int one)
{
    nvp_given g = {c->cdim ? context : NULL, one ? 0 : c->cdim};
    return g;
}

static int chain_map(const nvp_chain *c, const char *fn, nvp_eval_mode mode,
                     size_t n, const float *in, const float *context,
                     int takes_given, float *out, float *ld)
{
    int rc = check_eval_args(c, fn, n, in, out, context, takes_given);
    if (rc)
        return rc;
    const nvp_stack st = nvp__chain_stack(c);
    return nvp__stack_eval(&st, mode, n, in, given_rows(c, context, 0), out,
                           ld, fn);
}

int nvp_chain_forward(const nvp_chain *c, size_t n, const float *x, float *y,
                      float *logdet)
{
    return chain_map(c, "nvp_chain_forward", NVP_EV_FORWARD, n, x, NULL, 0, y,
                     logdet);
}

int nvp_chain_forward_given(const nvp_chain *c, size_t n, const float *x,
                            const float *context, float *y, float *logdet)
{
    return chain_map(c, "nvp_chain_forward_given", NVP_EV_FORWARD, n, x,
                     context, 1, y, logdet);
}

int nvp_chain_inverse(const nvp_chain *c, size_t n, const float *y, float *x,
                      float *ildj)
{
    return chain_map(c, "nvp_chain_inverse", NVP_EV_INVERSE, n, y, NULL, 0, x,
                     ildj);
}

int nvp_chain_inverse_given(const nvp_chain *c, size_t n, const float *y,
                            const float *context, float *x, float *ildj)
{
    return chain_map(c, "nvp_chain_inverse_given", NVP_EV_INVERSE, n, y,
                     context, 1, x, ildj);
}

int nvp_chain_log_prob(const nvp_chain *c, size_t n, const float *y,
                       float *lp)
{
    return chain_map(c, "nvp_chain_log_prob", NVP_EV_LOG_PROB, n, y, NULL, 0,
                     lp, NULL);
}

int nvp_chain_log_prob_given(const nvp_chain *c, size_t n, const float *y,
                             const float *context, float *lp)
{
    return chain_map(c, "nvp_chain_log_prob_given", NVP_EV_LOG_PROB, n, y,
                     context, 1, lp, NULL);
}

static int chain_sample(const nvp_chain *c, const char *fn, nvp_rng *rng,
                        size_t n, const float *context, int takes_given,
                        int one, float *y, float *log_prob)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE(rng != NULL, NVP_EINVAL, "%s: rng is NULL", fn);
    int rc = check_eval_args(c, fn, n, y, y, context, takes_given);
    if (rc)
        return rc;
    /* The base noise is drawn here, in row order, so the samples depend
     * only on the rng, not on chunks or threads. */
    rc = nvp_base_sample(c->base, rng, n, y);
    if (rc)
        return nvp__fail_in(eb, rc, fn);
    const nvp_stack st = nvp__chain_stack(c);
    return nvp__stack_eval(&st, NVP_EV_SAMPLE, n, y,
                           given_rows(c, context, one), y, log_prob, fn);
}

int nvp_chain_sample(const nvp_chain *c, nvp_rng *rng, size_t n, float *y,
                     float *log_prob)
{
    return chain_sample(c, "nvp_chain_sample", rng, n, NULL, 0, 0, y,
                        log_prob);
}

int nvp_chain_sample_given(const nvp_chain *c, nvp_rng *rng, size_t n,
                           const float *context, float *y, float *log_prob)
{
    return chain_sample(c, "nvp_chain_sample_given", rng, n, context, 1, 0, y,
                        log_prob);
}

int nvp_chain_sample_given_one(const nvp_chain *c, nvp_rng *rng, size_t n,
                               const float *context, float *y,
                               float *log_prob)
{
    return chain_sample(c, "nvp_chain_sample_given_one", rng, n, context, 1,
                        1, y, log_prob);
}

static int chain_trace(const nvp_chain *c, const char *fn, size_t n,
                       const float *x, const float *context, int takes_given,
                       float *stages)
{
    int rc = check_eval_args(c, fn, n, x, stages, context, takes_given);
    if (rc)
        return rc;
    size_t total;
    const nvp_errbox *eb = &c->err;
    NVP_REQUIRE(nvp__mul(n * c->dim, c->n_layers + 1, &total) == 0 &&
                    nvp__mul(total, sizeof(float), &total) == 0,
                NVP_EOVERFLOW, "%s: (layers + 1) * n * dim overflows", fn);
    const nvp_stack st = nvp__chain_stack(c);
    return nvp__stack_eval(&st, NVP_EV_TRACE, n, x, given_rows(c, context, 0),
                           stages, NULL, fn);
}

int nvp_chain_forward_trace(const nvp_chain *c, size_t n, const float *x,
                            float *stages)
{
    return chain_trace(c, "nvp_chain_forward_trace", n, x, NULL, 0, stages);
}

int nvp_chain_forward_trace_given(const nvp_chain *c, size_t n,
                                  const float *x, const float *context,
                                  float *stages)
{
    return chain_trace(c, "nvp_chain_forward_trace_given", n, x, context, 1,
                       stages);
}
