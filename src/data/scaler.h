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
    /* Column names (nvp_scaler_set_column_names), or NULL: name_at[j]
     * points into the one block names.  A model file stores those of a
     * conditional chain's context axes (see model_io.c). */
    char *names;
    char **name_at;
};

/* Replaces the names by copies of names[j] (lens[j] bytes each, checked);
 * a failure (recorded for fn on the scaler) leaves them as they were. */
int nvp__scaler_set_names(nvp_scaler *s, const char *fn,
                          const char *const *names, const size_t *lens);

#endif
