/* SPDX-License-Identifier: MIT */
/* numparse.c - number rules shared by the nvpflow commands and the
 * examples; see numparse.h. */
#include "numparse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int num_parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    /* strtoull alone would take "-1" (as 2^64-1), " 5" and "+5". */
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end = NULL;
    errno = 0;
    const unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int num_parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    const double v = strtod(s, &end);
    if (*end != '\0' || errno != 0)
        return -1;
    *out = v;
    return 0;
}

int num_parse_list(const char *s, uint64_t max, size_t *w, size_t cap,
                   size_t *n)
{
    size_t count = 0;
    const char *p = s;
    if (!s)
        return -1;
    for (;;) {
        /* Each item is copied out so that the digits rule sees it alone;
         * no width has 32 digits. */
        char buf[32];
        const size_t len = strcspn(p, ",");
        uint64_t v;
        if (len == 0 || len >= sizeof buf || count == cap)
            return -1;
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (num_parse_uint(buf, 1, max, &v) != 0)
            return -1;
        w[count++] = (size_t)v;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    *n = count;
    return 0;
}

void num_format_list(char *buf, size_t cap, const size_t *w, size_t n)
{
    size_t pos = 0;
    if (cap == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < n && pos < cap; i++) {
        const int k = snprintf(buf + pos, cap - pos, "%s%zu", i ? "," : "",
                               w[i]);
        if (k < 0)
            break;
        pos += (size_t)k;
    }
}
