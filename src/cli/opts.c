/* SPDX-License-Identifier: MIT */
/* opts.c - getopt_long made strict; see opts.h for why. */
#include "opts.h"

#include <stdio.h>
#include <string.h>

void opts_init(opts *o, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
    memset(o, 0, sizeof *o);
    o->argc = argc;
    o->argv = argv;
    o->longopts = longopts;
    /* "-": arguments in order, positionals included; ":": a missing
     * value is told apart from an unknown option. */
    snprintf(o->shortopts, sizeof o->shortopts, "-:%s", shortopts);
    opterr = 0;
    optind = 1;
}

/* The long option spelt exactly as name[0 .. len), or NULL. */
static const struct option *find_long(const struct option *lo,
                                      const char *name, size_t len)
{
    for (; lo->name; lo++)
        if (strlen(lo->name) == len && strncmp(lo->name, name, len) == 0)
            return lo;
    return NULL;
}

/* Whether the short option c takes a value, per o->shortopts. */
static int short_takes_value(const opts *o, int c)
{
    const char *p = strchr(o->shortopts + 2, c);
    return p && p[1] == ':';
}

int opts_next(opts *o, const char **value)
{
    *value = NULL;
    o->arg = NULL;
    o->name[0] = '\0';
    if (o->dashdash) {
        if (optind >= o->argc)
            return OPTS_END;
        *value = o->arg = o->argv[optind++];
        return OPTS_POSITIONAL;
    }
    const int at = optind;
    const int c = getopt_long(o->argc, o->argv, o->shortopts, o->longopts,
                              NULL);
    if (c == -1) {
        /* getopt stops at "--" (and steps over it) or at the end. */
        if (at < o->argc && optind > at && strcmp(o->argv[at], "--") == 0) {
            o->dashdash = 1;
            o->arg = o->argv[at];
            snprintf(o->name, sizeof o->name, "--");
            return OPTS_DASHDASH;
        }
        return OPTS_END;
    }
    /* Bundles are refused at their first letter, so argv[at] is always
     * the argument that holds this option. */
    const char *a = o->arg = o->argv[at];
    if (c == 1) {
        *value = optarg;
        return OPTS_POSITIONAL;
    }
    if (a[0] == '-' && a[1] == '-') {
        const char *name = a + 2;
        const size_t len = strcspn(name, "=");
        snprintf(o->name, sizeof o->name, "--%.*s",
                 (int)(len < 45 ? len : 45), name);
        /* getopt takes an unambiguous prefix for the whole name; only
         * the whole name counts here. */
        const struct option *lo = find_long(o->longopts, name, len);
        if (!lo)
            return OPTS_UNKNOWN;
        if (c == ':')
            return OPTS_MISSING_VALUE;
        if (c == '?')
            return name[len] == '=' && lo->has_arg == no_argument
                       ? OPTS_UNEXPECTED_VALUE
                       : OPTS_UNKNOWN;
        *value = optarg;
        return c;
    }
    snprintf(o->name, sizeof o->name, "-%c", a[1]);
    if (c == '?')
        return OPTS_UNKNOWN;
    if (c == ':')
        return OPTS_MISSING_VALUE;
    if (!short_takes_value(o, c) && a[2] != '\0')
        return OPTS_UNKNOWN; /* "-qx": no bundles */
    *value = optarg;
    return c;
}
