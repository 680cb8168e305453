/* SPDX-License-Identifier: MIT */
/* Column names (core/names.h). */
#include "core/names.h"

#include <string.h>

#include "nvpflow.h"

int nvp__column_name_ok(const char *name, size_t len)
{
    if (len < 1 || len > NVP_MAX_COLUMN_NAME)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return 0;
    return 1;
}

int nvp__names_copy(const nvp_allocator *a, const nvp_errbox *eb,
                    const char *fn, size_t dim, const char *const *names,
                    const size_t *lens, char **block, char ***at)
{
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
    char *b = nvp__malloc(a, total);
    char **p_at = nvp__malloc(a, dim * sizeof *p_at);
    if (!b || !p_at) {
        nvp__free(a, b);
        nvp__free(a, p_at);
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory", fn);
    }
    char *p = b;
    for (size_t j = 0; j < dim; j++) {
        memcpy(p, names[j], lens[j]);
        p[lens[j]] = '\0';
        p_at[j] = p;
        p += lens[j] + 1;
    }
    *block = b;
    *at = p_at;
    return NVP_OK;
}
