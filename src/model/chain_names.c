/* SPDX-License-Identifier: MIT */
/* The names of a chain's columns (nvp_chain_set_column_names): copied into
 * one block owned by the chain, saved with the model. */
#include <string.h>

#include "core/alloc.h"
#include "core/names.h"
#include "model/chain.h"

void nvp__chain_drop_names(nvp_chain *c)
{
    nvp__free(&c->alloc, c->names);
    nvp__free(&c->alloc, c->name_at);
    c->names = NULL;
    c->name_at = NULL;
}

int nvp__chain_set_names(nvp_chain *c, const nvp_errbox *eb, const char *fn,
                         const char *const *names, const size_t *lens)
{
    char *block;
    char **at;
    const int rc =
        nvp__names_copy(&c->alloc, eb, fn, c->dim, names, lens, &block, &at);
    if (rc)
        return rc;
    nvp__chain_drop_names(c);
    c->names = block;
    c->name_at = at;
    return NVP_OK;
}

int nvp_chain_set_column_names(nvp_chain *c, size_t dim,
                               const char *const *names)
{
    const char *fn = "nvp_chain_set_column_names";
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE_PTR(c);
    if (!names) {
        nvp__chain_drop_names(c);
        return NVP_OK;
    }
    NVP_REQUIRE(dim == c->dim, NVP_EDIM, "%s: %zu names for %zu columns", fn,
                dim, c->dim);
    size_t *lens = nvp__malloc(&c->alloc, dim * sizeof *lens);
    if (!lens)
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory", fn);
    for (size_t j = 0; j < dim; j++)
        lens[j] = names[j] ? strnlen(names[j], NVP_MAX_COLUMN_NAME + 1) : 0;
    const int rc = nvp__chain_set_names(c, eb, fn, names, lens);
    nvp__free(&c->alloc, lens);
    return rc;
}

const char *nvp_chain_column_name(const nvp_chain *c, size_t j)
{
    return c && c->name_at && j < c->dim ? c->name_at[j] : NULL;
}
