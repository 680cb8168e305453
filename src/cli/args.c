/* SPDX-License-Identifier: MIT */
/* args.c - option parsing and value checking for the nvpflow commands. */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void args_init(arg_parser *p, const char *cmd, int argc, char **argv)
{
    memset(p, 0, sizeof *p);
    p->cmd = cmd;
    p->argc = argc;
    p->argv = argv;
    p->i = 1;
}

/* Remembers the option as the user typed it, for messages. */
static void set_opt(arg_parser *p, const char *dashes, const char *name,
                    size_t len)
{
    if (len > sizeof p->opt_buf - 3)
        len = sizeof p->opt_buf - 3;
    snprintf(p->opt_buf, sizeof p->opt_buf, "%s%.*s", dashes, (int)len,
             name);
    p->opt = p->opt_buf;
}

static int take_value(arg_parser *p, const cli_opt *o, const char *inline_v,
                      const char **value)
{
    if (!o->has_value) {
        if (inline_v) {
            cli_usage_error(p->cmd, "option '%s' takes no value", p->opt);
            return ARG_ERROR;
        }
        *value = NULL;
        return o->id;
    }
    if (inline_v) {
        *value = inline_v;
        return o->id;
    }
    if (p->i >= p->argc) {
        cli_usage_error(p->cmd, "option '%s' needs a value", p->opt);
        return ARG_ERROR;
    }
    *value = p->argv[p->i++];
    return o->id;
}

int args_next(arg_parser *p, const cli_opt *opts, const char **value)
{
    *value = NULL;
    if (p->i >= p->argc)
        return ARG_END;
    const char *a = p->argv[p->i++];
    if (p->only_positional || a[0] != '-' || a[1] == '\0') {
        *value = a;
        return ARG_POSITIONAL;
    }
    if (strcmp(a, "--") == 0) {
        p->only_positional = 1;
        return args_next(p, opts, value);
    }
    if (a[1] == '-') {
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        const size_t len = eq ? (size_t)(eq - name) : strlen(name);
        set_opt(p, "--", name, len);
        for (const cli_opt *o = opts; o->name || o->short_name; o++)
            if (o->name && strlen(o->name) == len &&
                strncmp(o->name, name, len) == 0)
                return take_value(p, o, eq ? eq + 1 : NULL, value);
        cli_usage_error(p->cmd, "unknown option '%s'", p->opt);
        return ARG_ERROR;
    }
    set_opt(p, "-", a + 1, 1);
    for (const cli_opt *o = opts; o->name || o->short_name; o++)
        if (o->short_name && o->short_name == a[1]) {
            if (!o->has_value && a[2] != '\0')
                break; /* "-qx": we have no bundled flags */
            return take_value(p, o, a[2] ? a + 2 : NULL, value);
        }
    /* A negative number where a positional was meant is still an error:
     * no command takes one. */
    cli_usage_error(p->cmd, "unknown option '%s'", a);
    return ARG_ERROR;
}

static int parse_digits(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int args_size(const char *cmd, const char *opt, const char *s, size_t lo,
              size_t hi, size_t *out)
{
    uint64_t v;
    if (parse_digits(s, &v) != 0 || v < lo || v > hi) {
        cli_usage_error(cmd, "%s: '%s' is not a whole number in [%zu, %zu]",
                        opt, s, lo, hi);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

int args_u64(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
    if (parse_digits(s, out) != 0) {
        cli_usage_error(cmd, "%s: '%s' is not a whole number in [0, 2^64-1]",
                        opt, s);
        return -1;
    }
    return 0;
}

int args_double(const char *cmd, const char *opt, const char *s, double lo,
                int lo_open, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = s && *s ? strtod(s, &end) : NAN;
    if (!s || !*s || *end != '\0' || errno == ERANGE || !isfinite(v) ||
        v < lo || (lo_open && v == lo) || v > hi) {
        cli_usage_error(cmd, "%s: '%s' is not a number in %c%g, %g]", opt,
                        s ? s : "", lo_open ? '(' : '[', lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int args_list(const char *cmd, const char *opt, const char *s,
              size_t max_value, size_t *w, size_t cap, size_t *n)
{
    size_t count = 0;
    const char *p = s;
    for (;;) {
        char buf[32];
        const size_t len = strcspn(p, ",");
        uint64_t v = 0;
        int ok = len > 0 && len < sizeof buf && count < cap;
        if (ok) {
            memcpy(buf, p, len);
            buf[len] = '\0';
            ok = parse_digits(buf, &v) == 0 && v >= 1 && v <= max_value;
        }
        if (!ok) {
            cli_usage_error(cmd,
                            "%s: '%s' is not a comma-separated list of at "
                            "most %zu whole numbers in [1, %zu]",
                            opt, s, cap, max_value);
            return -1;
        }
        w[count++] = (size_t)v;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    *n = count;
    return 0;
}
