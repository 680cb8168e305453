/* SPDX-License-Identifier: MIT */
/* Column names, as a chain (nvp_chain_set_column_names) and a scaler
 * (nvp_scaler_set_column_names) keep them: one rule for a name, and one
 * block holding copies of them all.  A model file holds both kinds in one
 * COLS section, so they must agree. */
#ifndef NVP_NAMES_H
#define NVP_NAMES_H

#include <stddef.h>

#include "core/alloc.h"
#include "core/error.h"

/* Whether len bytes make a column name: 1 to NVP_MAX_COLUMN_NAME bytes,
 * no control characters. */
int nvp__column_name_ok(const char *name, size_t len);

/* Checks dim names (names[j] of lens[j] bytes) and copies them,
 * NUL-terminated, into one new block *block (from a), with (*at)[j]
 * pointing at name j.  NVP_EINVAL (a NULL or bad name) or NVP_ENOMEM,
 * recorded in eb for fn; nothing is allocated on failure. */
int nvp__names_copy(const nvp_allocator *a, const nvp_errbox *eb,
                    const char *fn, size_t dim, const char *const *names,
                    const size_t *lens, char **block, char ***at);

#endif
