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
#include "runtime/vec_parallel.h"

/* Lanes of the sum of squares: independent accumulators, so that the
 * compiler can vectorise the loop without reassociating any sum (each
 * lane adds its own entries in order, and the lanes are added in a fixed
 * order at the end).  A float's square is exact in double, so fused or
 * separate multiply-adds, and any vector width, give the same bits.  32
 * lanes keep four AVX-512 accumulators in flight. */
#define LANES 32

static inline __attribute__((always_inline)) double
sum_squares_loop(const float *restrict x, size_t n)
{
    double acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (size_t l = 0; l < LANES; l++)
            acc[l] += (double)x[i + l] * (double)x[i + l];
    double s = 0.0;
    for (; i < n; i++)
        s += (double)x[i] * (double)x[i];
    for (size_t l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx512f"))) static double
sum_squares_avx512(const float *x, size_t n)
{
    return sum_squares_loop(x, n);
}
#endif

static double sum_squares_portable(const float *x, size_t n)
{
    return sum_squares_loop(x, n);
}

static double run_sum_squares(const float *x, size_t n)
{
#if defined(__x86_64__) || defined(__i386__)
    if (nvp__adam_avx512())
        return sum_squares_avx512(x, n);
#endif
    return sum_squares_portable(x, n);
}

float nvp__adam_clip_scale(nvp_adam *o, const float *grad, nvp_pool *pool)
{
    if (o->clip_norm <= 0.0f)
        return 1.0f;
    const double s =
        nvp__par_sum_runs(pool, grad, o->n, run_sum_squares, o->norm_runs);
    /* Entries below NVP_ADAM_MAX_GRAD keep s finite: at most 2^40 squares
     * of 1e18 sum to about 1e48. */
    const double norm = sqrt(s);
    o->last_norm = norm;
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
