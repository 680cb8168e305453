/* SPDX-License-Identifier: MIT */
/* args.c - the nvpflow commands' usage messages over opts.c and
 * numparse.c. */
#include "args.h"

#include <math.h>

#include "cli.h"
#include "numparse.h"

void args_init(arg_parser *p, const char *cmd, int argc, char **argv,
               const char *shortopts, const struct option *longopts)
{
    p->cmd = cmd;
    p->opt = NULL;
    opts_init(&p->o, argc, argv, shortopts, longopts);
}

int args_next(arg_parser *p, const char **value)
{
    for (;;) {
        const int r = opts_next(&p->o, value);
        p->opt = p->o.name;
        switch (r) {
        case OPTS_END:
            return ARG_END;
        case OPTS_POSITIONAL:
            return ARG_POSITIONAL;
        case OPTS_DASHDASH:
            continue;
        case OPTS_UNKNOWN:
            /* A negative number where a positional was meant is an error
             * too: no command takes one. */
            cli_usage_error(p->cmd, "unknown option '%s'",
                            p->o.arg[1] == '-' ? p->o.name : p->o.arg);
            return ARG_ERROR;
        case OPTS_MISSING_VALUE:
            cli_usage_error(p->cmd, "option '%s' needs a value", p->o.name);
            return ARG_ERROR;
        case OPTS_UNEXPECTED_VALUE:
            cli_usage_error(p->cmd, "option '%s' takes no value", p->o.name);
            return ARG_ERROR;
        default:
            return r;
        }
    }
}

int args_size(const char *cmd, const char *opt, const char *s, size_t lo,
              size_t hi, size_t *out)
{
    uint64_t v;
    if (num_parse_uint(s, lo, hi, &v) != 0) {
        cli_usage_error(cmd, "%s: '%s' is not a whole number in [%zu, %zu]",
                        opt, s, lo, hi);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

int args_u64(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
    if (num_parse_uint(s, 0, UINT64_MAX, out) != 0) {
        cli_usage_error(cmd, "%s: '%s' is not a whole number in [0, 2^64-1]",
                        opt, s);
        return -1;
    }
    return 0;
}

int args_double(const char *cmd, const char *opt, const char *s, double lo,
                int lo_open, double hi, double *out)
{
    double v = NAN;
    if (num_parse_double(s, &v) != 0 || !isfinite(v) || v < lo ||
        (lo_open && v == lo) || v > hi) {
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
    if (num_parse_list(s, max_value, w, cap, n) != 0) {
        cli_usage_error(cmd,
                        "%s: '%s' is not a comma-separated list of at most "
                        "%zu whole numbers in [1, %zu]",
                        opt, s, cap, max_value);
        return -1;
    }
    return 0;
}
