/* SPDX-License-Identifier: MIT */
/* Adam (Kingma and Ba 2015) with bias correction, as PyTorch computes it. */
#include "train/adam.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/check.h"
#include "kernels/optim.h"
#include "kernels/vec.h"
#include "runtime/vec_parallel.h"

int nvp_adam_create(nvp_adam **out, size_t n_params,
                    const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    NVP_REQUIRE(n_params >= 1 && n_params <= NVP_MAX_PARAMS, NVP_EINVAL,
                "nvp_adam_create: n_params %zu is outside [1, %zu]", n_params,
                (size_t)NVP_MAX_PARAMS);
    nvp_allocator a;
    NVP_REQUIRE(nvp__allocator_init(&a, alloc) == NVP_OK, NVP_EINVAL,
                "nvp_adam_create: invalid allocator");
    size_t bytes;
    NVP_REQUIRE(nvp__mul(n_params, sizeof(float), &bytes) == 0, NVP_EOVERFLOW,
                "nvp_adam_create: n_params %zu too large", n_params);
    nvp_adam *o = nvp__malloc(&a, sizeof *o);
    if (!o)
        return nvp__fail(NULL, NVP_ENOMEM, "nvp_adam_create: out of memory");
    memset(o, 0, sizeof *o);
    o->alloc = a;
    o->isa = nvp__cpu_isa();
    o->m = nvp__alloc_aligned(&a, bytes);
    o->v = nvp__alloc_aligned(&a, bytes);
    if (!o->m || !o->v) {
        nvp__free_aligned(&a, o->m);
        nvp__free_aligned(&a, o->v);
        nvp__free(&a, o);
        return nvp__fail(NULL, NVP_ENOMEM, "nvp_adam_create: out of memory");
    }
    o->n = n_params;
    o->lr = 1e-3f;
    o->b1 = 0.9f;
    o->b2 = 0.999f;
    o->eps = 1e-8f;
    memset(o->m, 0, bytes);
    memset(o->v, 0, bytes);
    nvp__errbox_init(&o->err);
    *out = o;
    return NVP_OK;
}

void nvp_adam_free(nvp_adam *o)
{
    if (!o)
        return;
    nvp_allocator a = o->alloc;
    nvp__free_aligned(&a, o->m);
    nvp__free_aligned(&a, o->v);
    nvp__free_aligned(&a, o->avg);
    nvp__free_aligned(&a, o->norm_runs);
    nvp__errbox_destroy(&o->err);
    nvp__free(&a, o);
}

/* The first step moves by lr / (1 - b1) times a bounded ratio: a size
 * that overflows a float makes every first step fail. */
static int first_step_finite(float lr, float b1)
{
    return (double)lr / (1.0 - (double)b1) <= (double)FLT_MAX;
}

int nvp_adam_set_lr(nvp_adam *o, float lr)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    NVP_REQUIRE_PTR(o);
    NVP_REQUIRE(isfinite(lr) && lr > 0.0f, NVP_EINVAL,
                "nvp_adam_set_lr: lr must be finite and > 0 (got %g)",
                (double)lr);
    NVP_REQUIRE(first_step_finite(lr, o->b1), NVP_EINVAL,
                "nvp_adam_set_lr: lr %g / (1 - beta1 %g), the first step's "
                "size, overflows",
                (double)lr, (double)o->b1);
    o->lr = lr;
    return NVP_OK;
}

int nvp_adam_set_betas(nvp_adam *o, float b1, float b2)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    NVP_REQUIRE_PTR(o);
    NVP_REQUIRE(b1 >= 0.0f && b1 < 1.0f && b2 >= 0.0f && b2 < 1.0f,
                NVP_EINVAL,
                "nvp_adam_set_betas: betas must lie in [0, 1) (got %g, %g)",
                (double)b1, (double)b2);
    NVP_REQUIRE(first_step_finite(o->lr, b1), NVP_EINVAL,
                "nvp_adam_set_betas: lr %g / (1 - beta1 %g), the first "
                "step's size, overflows",
                (double)o->lr, (double)b1);
    o->b1 = b1;
    o->b2 = b2;
    return NVP_OK;
}

int nvp_adam_set_eps(nvp_adam *o, float eps)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    NVP_REQUIRE_PTR(o);
    NVP_REQUIRE(isfinite(eps) && eps > 0.0f, NVP_EINVAL,
                "nvp_adam_set_eps: eps must be finite and > 0 (got %g)",
                (double)eps);
    o->eps = eps;
    return NVP_OK;
}

float nvp_adam_lr(const nvp_adam *o) { return o ? o->lr : 0.0f; }
float nvp_adam_beta1(const nvp_adam *o) { return o ? o->b1 : 0.0f; }
float nvp_adam_beta2(const nvp_adam *o) { return o ? o->b2 : 0.0f; }
float nvp_adam_eps(const nvp_adam *o) { return o ? o->eps : 0.0f; }
size_t nvp_adam_num_params(const nvp_adam *o) { return o ? o->n : 0; }
uint64_t nvp_adam_num_steps(const nvp_adam *o) { return o ? o->t : 0; }

int nvp_adam_reset(nvp_adam *o)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    NVP_REQUIRE_PTR(o);
    memset(o->m, 0, o->n * sizeof *o->m);
    memset(o->v, 0, o->n * sizeof *o->v);
    o->t = 0;
    o->last_norm = 0.0;
    o->m_bound = 0.0;
    return NVP_OK;
}

/* One step over parameters [lo, hi). */
typedef struct adam_job {
    nvp_adam *o;
    float *params;
    const float *grad;
    nvp_adam_consts k;
    size_t per_task;
} adam_job;

static void adam_range(const adam_job *j, size_t lo, size_t hi)
{
    nvp_adam *o = j->o;
    float *avg = o->avg ? o->avg + lo : NULL;
    nvp__adam_update(o->isa, hi - lo, j->params + lo, j->grad + lo, o->m + lo,
                     o->v + lo, avg, &j->k);
}

static void adam_task(void *arg, size_t task, size_t worker)
{
    (void)worker;
    const adam_job *j = arg;
    const size_t lo = task * j->per_task;
    const size_t hi = lo + j->per_task < j->o->n ? lo + j->per_task : j->o->n;
    adam_range(j, lo, hi);
}

/* Below this many parameters a step stays on one thread. */
#define ADAM_PARALLEL_MIN ((size_t)1 << 16)

static float float_of_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Whether the step's result is sure to be finite, from bounds alone: the
 * new moments are convex combinations of finite values (the gradient is
 * below NVP_ADAM_MAX_GRAD, so its square is finite), and so is the new
 * average; a parameter moves by at most step * |m| / eps, as the
 * denominator sqrt(v) / sqrt(bc2) + eps is at least eps. */
static int surely_finite(const nvp_adam *o, const nvp_adam_consts *k,
                         uint32_t params_bits, uint32_t grad_bits)
{
    const double g = (double)float_of_bits(grad_bits) * k->gscale;
    const double m = o->m_bound > g ? o->m_bound : g;
    /* The update forms step * m before dividing by the denominator (at
     * least eps): both that product and the move must stay in range. */
    const double prod = (double)k->step * m;
    if (!(prod < 0.5 * (double)FLT_MAX))
        return 0;
    const double move = prod / (double)k->eps;
    /* Weight decay takes dec * p off the moved value: at most |p| dec
     * more (dec >= 0). */
    const double p =
        (double)float_of_bits(params_bits) * (1.0 + (double)k->decay);
    /* half the range: room for the rounding of every operation */
    return p + move < 0.5 * (double)FLT_MAX;
}

int nvp__adam_apply(nvp_adam *o, float *params, const float *grad,
                    uint32_t params_bits, uint32_t grad_bits, nvp_pool *pool)
{
    /* Saturate rather than wrap: t == 0 would divide by 1 - b1^0 = 0.
     * Nothing is committed before the result is known to be finite. */
    const uint64_t t = o->t < UINT64_MAX ? o->t + 1 : o->t;
    /* Bias corrections in double: b^t underflows gracefully to 0. */
    const double bc1 = 1.0 - pow((double)o->b1, (double)t);
    const double bc2 = 1.0 - pow((double)o->b2, (double)t);
    double norm;
    const float gscale = nvp__adam_clip_scale(o, grad, pool, &norm);
    const double step = (double)o->lr / bc1;
    if (!(step <= (double)FLT_MAX))
        return NVP_ENONFINITE;
    adam_job j = {o,
                  params,
                  grad,
                  {o->b1, o->b2, (float)step, (float)(1.0 / sqrt(bc2)), o->eps,
                   gscale, o->avg_decay,
                   (float)((double)o->lr * (double)o->weight_decay)},
                  o->n};
    /* The exact check, a pass that writes nothing, only where the bounds
     * cannot vouch for the result (states loaded or driven to extremes). */
    if (!surely_finite(o, &j.k, params_bits, grad_bits) &&
        nvp__adam_probe(o->isa, o->n, params, grad, o->m, o->v, o->avg,
                        &j.k) >= NVP_INF_BITS)
        return NVP_ENONFINITE;
    o->t = t;
    o->last_norm = norm;
    const double g = (double)float_of_bits(grad_bits) * gscale;
    if (g > o->m_bound)
        o->m_bound = g;
    const size_t threads = nvp__pool_threads(pool);
    if (threads > 1 && o->n >= ADAM_PARALLEL_MIN) {
        /* Every parameter's update is independent of the others, so any
         * split gives the same bits. */
        j.per_task = NVP_PAR_RUN_FLOATS; /* runs of each array */
        nvp__pool_run(pool,
                      (o->n + NVP_PAR_RUN_FLOATS - 1) / NVP_PAR_RUN_FLOATS,
                      adam_task, &j);
        return NVP_OK;
    }
    adam_range(&j, 0, o->n);
    return NVP_OK;
}

int nvp__adam_refuse_result(const nvp_errbox *eb, const char *fn)
{
    return nvp__fail(eb, NVP_ENONFINITE,
                     "%s: the step's result would not be finite (the "
                     "parameters or the optimizer's state would overflow); "
                     "step refused, nothing changed",
                     fn);
}

void nvp__adam_bound_moments(nvp_adam *o)
{
    o->m_bound = (double)float_of_bits(nvp__max_abs_bits(o->isa, o->m, o->n));
}

int nvp__adam_grad_verdict(const nvp_errbox *eb, const char *fn,
                           uint32_t max_abs_bits)
{
    const float limit = NVP_ADAM_MAX_GRAD;
    uint32_t limit_bits;
    memcpy(&limit_bits, &limit, sizeof limit_bits);
    if (max_abs_bits < limit_bits)
        return NVP_OK;
    NVP_REQUIRE(max_abs_bits < NVP_INF_BITS, NVP_ENONFINITE,
                "%s: the gradient holds NaN or an infinity; step refused", fn);
    return nvp__fail(eb, NVP_ENONFINITE,
                     "%s: a gradient entry exceeds %g, which would overflow "
                     "the optimizer's second moment; step refused",
                     fn, (double)NVP_ADAM_MAX_GRAD);
}

int nvp__adam_check_grad(const nvp_errbox *eb, const char *fn, nvp_isa isa,
                         const float *grad, size_t n)
{
    return nvp__adam_grad_verdict(eb, fn, nvp__max_abs_bits(isa, grad, n));
}

int nvp_adam_step(nvp_adam *o, size_t n, float *params, const float *grad)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    NVP_REQUIRE_PTR(o);
    NVP_REQUIRE_PTR(params);
    NVP_REQUIRE_PTR(grad);
    NVP_REQUIRE(n == o->n, NVP_EDIM,
                "nvp_adam_step: n %zu, optimizer has %zu parameters", n, o->n);
    const char *fn = "nvp_adam_step";
    const uint32_t grad_bits = nvp__max_abs_bits(o->isa, grad, n);
    int rc = nvp__adam_grad_verdict(eb, fn, grad_bits);
    if (rc)
        return rc;
    const uint32_t params_bits = nvp__max_abs_bits(o->isa, params, n);
    NVP_REQUIRE(params_bits < NVP_INF_BITS, NVP_ENONFINITE,
                "%s: params holds NaN or an infinity; step refused", fn);
    if (nvp__adam_apply(o, params, grad, params_bits, grad_bits, NULL))
        return nvp__adam_refuse_result(eb, fn);
    return NVP_OK;
}

const char *nvp_adam_errmsg(const nvp_adam *o)
{
    return nvp__errbox_read(o ? &o->err : NULL);
}

int nvp_adam_set_weight_decay(nvp_adam *o, float weight_decay)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    NVP_REQUIRE_PTR(o);
    NVP_REQUIRE(isfinite(weight_decay) && weight_decay >= 0.0f, NVP_EINVAL,
                "nvp_adam_set_weight_decay: weight_decay must be finite and "
                ">= 0 (got %g)",
                (double)weight_decay);
    o->weight_decay = weight_decay;
    return NVP_OK;
}

float nvp_adam_weight_decay(const nvp_adam *o)
{
    return o ? o->weight_decay : 0.0f;
}

int nvp_adam_set_kernels(nvp_adam *o, int kernels)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    NVP_REQUIRE_PTR(o);
    nvp_isa isa;
    const int rc = nvp__check_kernels(eb, "nvp_adam_set_kernels", kernels, &isa);
    if (rc)
        return rc;
    o->isa = isa;
    return NVP_OK;
}

int nvp_adam_kernels(const nvp_adam *o)
{
    return o ? nvp__kernels_from_isa(o->isa) : -1;
}
