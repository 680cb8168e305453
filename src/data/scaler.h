/* SPDX-License-Identifier: MIT */
/* The standardiser's state, shared with serialisation. */
#ifndef NVP_SCALER_H
#define NVP_SCALER_H

#include "core/error.h"

struct nvp_scaler {
    nvp_errbox err;
    nvp_allocator alloc;
    size_t dim;
    float *mean, *sd;
};

#endif
