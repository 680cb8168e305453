/* SPDX-License-Identifier: MIT */
/* The names of a chain's columns (nvp_chain_set_column_names): copied into
 * one block owned by the chain, saved with the model. */
#include <string.h>

#include "core/alloc.h"
#include "model/chain.h"

int nvp__column_name_ok(const char *name, size_t len)
{
    if (len < 1 || len > NVP_MAX_COLUMN_NAME)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return 0;
    return 1;
}

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
    const size_t dim = c->dim;
    size_t total = 0;
    for (size_t j = 0; j < dim; j++) {
        NVP_REQUIRE(names[j] != NULL, NVP_EINVAL, "%s: names[%zu] is NULL",
                    fn, j);
        NVP_REQUIRE(nvp__column_name_ok(names[j], lens[j]), NVP_EINVAL,
                    "%s: names[%zu] must be 1 to %d bytes without control "
                    "characters",
                    fn, j, NVP_MAX_COLUMN_NAME);
        total += lens[j] + 1;
    }
    char *block = nvp__malloc(&c->alloc, total);
    char **at = nvp__malloc(&c->alloc, dim * sizeof *at);
    if (!block || !at) {
        nvp__free(&c->alloc, block);
        nvp__free(&c->alloc, at);
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory", fn);
    }
    char *p = block;
    for (size_t j = 0; j < dim; j++) {
        memcpy(p, names[j], lens[j]);
        p[lens[j]] = '\0';
        at[j] = p;
        p += lens[j] + 1;
    }
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
