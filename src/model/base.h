/* SPDX-License-Identifier: MIT */
/* Base distributions. */
#ifndef NVP_BASE_H
#define NVP_BASE_H

#include "core/error.h"

typedef enum { NVP_BASE_NORMAL = 1 } nvp_base_kind;

struct nvp_base {
    nvp_errbox err;
    nvp_allocator alloc;
    nvp_base_kind kind;
    size_t dim;
};

/* log p(x) of one row, accumulated in double; NaN when the row holds a
 * non-finite value. */
double nvp__base_log_prob_row(const nvp_base *b, const float *x);
/* d log p / dx of one row into g. */
void nvp__base_grad_row(const nvp_base *b, const float *x, float *g);

#endif
