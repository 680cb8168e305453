/* SPDX-License-Identifier: MIT */
/* outputs.c - checks on the examples' output files; see outputs.h. */
#include "outputs.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "messages.h"
#include "outfile.h"

/* Whether two paths name one file: the same file when both exist, else
 * the same name in the same directory. */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (strcmp(a, b) == 0)
        return 1;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    const char *na = strrchr(a, '/'), *nb = strrchr(b, '/');
    const char *base_a = na ? na + 1 : a, *base_b = nb ? nb + 1 : b;
    if (strcmp(base_a, base_b) != 0)
        return 0;
    char da[4096], db[4096];
    snprintf(da, sizeof da, "%.*s", na ? (int)(na - a) + 1 : 1, na ? a : ".");
    snprintf(db, sizeof db, "%.*s", nb ? (int)(nb - b) + 1 : 1, nb ? b : ".");
    return stat(da, &sa) == 0 && stat(db, &sb) == 0 &&
           sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int ex_distinct_outputs(const char *const opt[], const char *const path[],
                        size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            struct stat st;
            if (same_file(path[i], path[j]) &&
                !(stat(path[i], &st) == 0 && S_ISCHR(st.st_mode))) {
                ex_usage_error("%s '%s' and %s '%s' name the same file",
                               opt[i], path[i], opt[j], path[j]);
                return -1;
            }
        }
    return 0;
}

int ex_writable_outputs(const char *const path[], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char err[OUT_ERR_MAX];
        if (out_check_writable(path[i], err, sizeof err) != 0)
            return ex_error("%s", err);
    }
    return EX_OK;
}
