/* SPDX-License-Identifier: MIT */
/* Argument and data checks shared by the public calls of every layer. */
#include "core/check.h"

#include <math.h>

#include "core/alloc.h"

int nvp__check_batch(const nvp_errbox *eb, const char *fn, size_t n,
                     size_t dim)
{
    size_t total;
    NVP_REQUIRE(n > 0, NVP_EINVAL, "%s: n is 0", fn);
    NVP_REQUIRE(nvp__mul(n, dim, &total) == 0 &&
                    nvp__mul(total, sizeof(float), &total) == 0,
                NVP_EOVERFLOW, "%s: n (%zu) * dim (%zu) overflows", fn, n,
                dim);
    return NVP_OK;
}

int nvp__check_batch_given(const nvp_errbox *eb, const char *fn, size_t n,
                           size_t dim, size_t cdim)
{
    size_t total;
    int rc = nvp__check_batch(eb, fn, n, dim);
    if (rc == NVP_OK && cdim)
        NVP_REQUIRE(nvp__mul(n, cdim, &total) == 0 &&
                        nvp__mul(total, sizeof(float), &total) == 0,
                    NVP_EOVERFLOW,
                    "%s: n (%zu) * context_dim (%zu) overflows", fn, n, cdim);
    return rc;
}

void nvp__flag_nonfinite_rows(size_t rows, size_t dim, const float *z,
                              unsigned char *flags)
{
    for (size_t i = 0; i < rows; i++) {
        unsigned char bad = 0;
        for (size_t j = 0; j < dim; j++)
            bad |= !isfinite(z[i * dim + j]);
        flags[i] = bad;
    }
}

int nvp__check_kernels(const nvp_errbox *eb, const char *fn, int kernels,
                       nvp_isa *isa)
{
    const int rc = nvp__isa_from_kernels(kernels, isa);
    NVP_REQUIRE(rc != NVP_EINVAL, NVP_EINVAL, "%s: unknown kernels %d", fn,
                kernels);
    NVP_REQUIRE(rc == NVP_OK, rc, "%s: this CPU does not run kernels %d", fn,
                kernels);
    return NVP_OK;
}
