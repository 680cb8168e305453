/* SPDX-License-Identifier: MIT */
/* Parameter averaging (Polyak averaging, as an exponential moving average)
 * kept by the optimizer: the update loop in adam.c advances it in the same
 * pass as the parameters, so it costs one more stream of floats there
 * rather than a pass of its own over the parameters after every step. */
#include <math.h>
#include <string.h>

#include "train/adam.h"
#include "core/alloc.h"

int nvp_adam_set_average(nvp_adam *o, float decay, size_t n, const float *params)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    const char *fn = "nvp_adam_set_average";
    NVP_REQUIRE_PTR(o);
    NVP_REQUIRE(decay >= 0.0f && decay < 1.0f, NVP_EINVAL,
                "%s: decay must lie in [0, 1) (got %g)", fn, (double)decay);
    if (decay == 0.0f) {
        nvp__free_aligned(&o->alloc, o->avg);
        o->avg = NULL;
        o->avg_decay = 0.0f;
        return NVP_OK;
    }
    NVP_REQUIRE_PTR(params);
    NVP_REQUIRE(n == o->n, NVP_EDIM, "%s: n %zu, optimizer has %zu parameters",
                fn, n, o->n);
    for (size_t i = 0; i < n; i++)
        NVP_REQUIRE(isfinite(params[i]), NVP_ENONFINITE,
                    "%s: params[%zu] is not finite", fn, i);
    if (!o->avg) {
        /* n * sizeof(float) cannot overflow: nvp_adam_create checked it. */
        o->avg = nvp__alloc_aligned(&o->alloc, n * sizeof *o->avg);
        if (!o->avg)
            return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory", fn);
    }
    memcpy(o->avg, params, n * sizeof *o->avg);
    o->avg_decay = decay;
    return NVP_OK;
}

float nvp_adam_average_decay(const nvp_adam *o) { return o ? o->avg_decay : 0.0f; }

int nvp_adam_get_average(const nvp_adam *o, size_t n, float *dst)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    const char *fn = "nvp_adam_get_average";
    NVP_REQUIRE_PTR(o);
    NVP_REQUIRE_PTR(dst);
    NVP_REQUIRE(o->avg != NULL, NVP_EINVAL,
                "%s: averaging is off (see nvp_adam_set_average)", fn);
    NVP_REQUIRE(n == o->n, NVP_EDIM, "%s: n %zu, optimizer has %zu parameters",
                fn, n, o->n);
    memcpy(dst, o->avg, n * sizeof *dst);
    return NVP_OK;
}
