/* SPDX-License-Identifier: MIT */
/* Argument and data checks shared by the public calls of every layer. */
#ifndef NVP_CHECK_H
#define NVP_CHECK_H

#include <stddef.h>

#include "core/cpu.h"
#include "core/error.h"

/* The usual checks of a batched call: n > 0 and n * dim floats fit in a
 * size_t.  Records the failure for fn in eb (may be NULL). */
int nvp__check_batch(const nvp_errbox *eb, const char *fn, size_t n,
                     size_t dim);
/* The same for n rows of dim data values and of cdim context values (0:
 * no context). */
int nvp__check_batch_given(const nvp_errbox *eb, const char *fn, size_t n,
                           size_t dim, size_t cdim);

/* Rows of z (rows x dim) that contain NaN or an infinity get flag 1,
 * others 0. */
void nvp__flag_nonfinite_rows(size_t rows, size_t dim, const float *z,
                              unsigned char *flags);

/* The level of a public NVP_KERNELS_* value for a setter fn: NVP_OK, or
 * NVP_EINVAL (unknown value) or NVP_EUNSUPPORTED (the CPU lacks it),
 * recorded in eb. */
int nvp__check_kernels(const nvp_errbox *eb, const char *fn, int kernels,
                       nvp_isa *isa);

#endif
