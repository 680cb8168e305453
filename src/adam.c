/* Adam (Kingma and Ba 2015) with bias correction, as PyTorch computes it. */
#include "adam.h"

#include <math.h>
#include <string.h>

#include "alloc.h"

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
    nvp__errbox_destroy(&o->err);
    nvp__free(&a, o);
}

int nvp_adam_set_lr(nvp_adam *o, float lr)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    NVP_REQUIRE_PTR(o);
    NVP_REQUIRE(isfinite(lr) && lr > 0.0f, NVP_EINVAL,
                "nvp_adam_set_lr: lr must be finite and > 0 (got %g)",
                (double)lr);
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
size_t nvp_adam_num_params(const nvp_adam *o) { return o ? o->n : 0; }
uint64_t nvp_adam_steps(const nvp_adam *o) { return o ? o->t : 0; }

int nvp_adam_reset(nvp_adam *o)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    NVP_REQUIRE_PTR(o);
    memset(o->m, 0, o->n * sizeof *o->m);
    memset(o->v, 0, o->n * sizeof *o->v);
    o->t = 0;
    return NVP_OK;
}

void nvp__adam_apply(nvp_adam *o, float *params, const float *grad)
{
    o->t++;
    /* Bias corrections in double: b^t underflows gracefully to 0. */
    const double bc1 = 1.0 - pow((double)o->b1, (double)o->t);
    const double bc2 = 1.0 - pow((double)o->b2, (double)o->t);
    const float step = (float)((double)o->lr / bc1);
    const float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    const float b1 = o->b1, b2 = o->b2, eps = o->eps;
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    float *restrict m = o->m, *restrict v = o->v;
    for (size_t i = 0; i < o->n; i++) {
        const float g = grad[i];
        m[i] = b1 * m[i] + c1 * g;
        v[i] = b2 * v[i] + c2 * g * g;
        params[i] -= step * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + eps);
    }
}

int nvp_adam_step(nvp_adam *o, float *params, const float *grad, size_t n)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    NVP_REQUIRE_PTR(o);
    NVP_REQUIRE_PTR(params);
    NVP_REQUIRE_PTR(grad);
    NVP_REQUIRE(n == o->n, NVP_EDIM,
                "nvp_adam_step: n %zu, optimizer has %zu parameters", n, o->n);
    for (size_t i = 0; i < n; i++)
        NVP_REQUIRE(isfinite(grad[i]), NVP_ENONFINITE,
                    "nvp_adam_step: grad[%zu] is not finite; step refused", i);
    nvp__adam_apply(o, params, grad);
    return NVP_OK;
}

const char *nvp_adam_errmsg(const nvp_adam *o)
{
    return nvp__errbox_read(o ? &o->err : NULL);
}
