/* SPDX-License-Identifier: MIT */
/* The "two moons" toy data set of the tutorial (scikit-learn's recipe). */
#include <math.h>
#include <string.h>

#include "core/check.h"
#include "core/rng.h"

#define PI 3.14159265358979323846

int nvp_two_moons(nvp_rng *rng, size_t n, float noise, float *xy, int *labels)
{
    const nvp_errbox *eb = rng ? &rng->err : NULL;
    const char *fn = "nvp_two_moons";
    NVP_REQUIRE_PTR(rng);
    NVP_REQUIRE_PTR(xy);
    NVP_REQUIRE(isfinite(noise) && noise >= 0.0f, NVP_EINVAL,
                "%s: noise must be finite and >= 0 (got %g)", fn,
                (double)noise);
    int rc = nvp__check_batch(eb, fn, n, 2);
    if (rc)
        return rc;
    NVP_REQUIRE(n <= (size_t)1 << 40, NVP_EOVERFLOW, "%s: n %zu too large",
                fn, n);
    const size_t n_out = n / 2, n_in = n - n_out;
    for (size_t i = 0; i < n; i++) {
        const int inner = i >= n_out;
        const size_t m = inner ? n_in : n_out, k = inner ? i - n_out : i;
        const double t = m > 1 ? PI * (double)k / (double)(m - 1) : 0.0;
        xy[2 * i] = (float)(inner ? 1.0 - cos(t) : cos(t));
        xy[2 * i + 1] = (float)(inner ? 0.5 - sin(t) : sin(t));
        if (labels)
            labels[i] = inner;
    }
    /* Fisher-Yates shuffle, then noise, as scikit-learn does. */
    for (size_t i = n; i-- > 1;) {
        const size_t j = (size_t)nvp__rng_below(rng, (uint64_t)i + 1);
        float tx = xy[2 * i], ty = xy[2 * i + 1];
        xy[2 * i] = xy[2 * j];
        xy[2 * i + 1] = xy[2 * j + 1];
        xy[2 * j] = tx;
        xy[2 * j + 1] = ty;
        if (labels) {
            int tl = labels[i];
            labels[i] = labels[j];
            labels[j] = tl;
        }
    }
    for (size_t i = 0; i < 2 * n; i++)
        xy[i] += (float)((double)noise * nvp__rng_normal(rng));
    return NVP_OK;
}
