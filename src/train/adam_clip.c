/* SPDX-License-Identifier: MIT */
/* Gradient-norm clipping kept by the optimizer: before a step, a gradient
 * whose Euclidean norm exceeds the limit is scaled down to it (its
 * direction kept).  The scale is applied inside Adam's update loop, so
 * clipping costs one read of the gradient (the norm) and no write.
 *
 * The norm is a reduction, and results must not depend on the thread
 * count: the gradient is cut into fixed runs of NVP_PAR_RUN_FLOATS, each
 * run's sum of squares is computed the same way whichever thread takes it
 * and stored in its own slot, and the slots are added in order. */
#include <math.h>
#include <string.h>

#include "train/adam.h"
#include "core/alloc.h"
#include "kernels/optim.h"
#include "runtime/vec_parallel.h"

float nvp__adam_clip_scale(nvp_adam *o, const float *grad, nvp_pool *pool,
                           double *norm_out)
{
    *norm_out = 0.0;
    if (o->clip_norm <= 0.0f)
        return 1.0f;
    const double s =
        nvp__par_sum_runs(pool, o->isa, grad, o->n, nvp__sum_squares,
                          o->norm_runs);
    /* Entries below NVP_ADAM_MAX_GRAD keep s finite: at most 2^40 squares
     * of 1e18 sum to about 1e48. */
    const double norm = sqrt(s);
    *norm_out = norm;
    if (norm <= (double)o->clip_norm)
        return 1.0f;
    return (float)((double)o->clip_norm / norm);
}

int nvp_adam_set_clip_norm(nvp_adam *o, float max_norm)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    const char *fn = "nvp_adam_set_clip_norm";
    NVP_REQUIRE_PTR(o);
    NVP_REQUIRE(isfinite(max_norm) && max_norm >= 0.0f, NVP_EINVAL,
                "%s: max_norm must be finite and >= 0 (got %g)", fn,
                (double)max_norm);
    if (max_norm == 0.0f) {
        nvp__free_aligned(&o->alloc, o->norm_runs);
        o->norm_runs = NULL;
        o->clip_norm = 0.0f;
        o->last_norm = 0.0;
        return NVP_OK;
    }
    if (!o->norm_runs) {
        o->norm_runs = nvp__alloc_aligned(&o->alloc,
                                          nvp__par_runs(o->n) * sizeof(double));
        if (!o->norm_runs)
            return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory", fn);
    }
    o->clip_norm = max_norm;
    return NVP_OK;
}

float nvp_adam_clip_norm(const nvp_adam *o) { return o ? o->clip_norm : 0.0f; }

float nvp_adam_last_grad_norm(const nvp_adam *o)
{
    return o ? (float)o->last_norm : 0.0f;
}
