/* SPDX-License-Identifier: MIT */
/* options.c - the example programs' option checks; see options.h. */
#include "options.h"

#include <math.h>

#include "messages.h"
#include "numparse.h"

int ex_next_option(opts *o, const char **value)
{
    const int id = opts_next(o, value);
    switch (id) {
    case OPTS_MISSING_VALUE:
        ex_usage_error("option '%s' needs a value", o->name);
        return EX_OPT_ERROR;
    case OPTS_POSITIONAL:
    case OPTS_DASHDASH:
    case OPTS_UNKNOWN:
    case OPTS_UNEXPECTED_VALUE:
        /* Whatever it was, the argument is named as it was typed. */
        if (o->arg[0] == '-' && o->arg[1] == '-')
            ex_usage_error("unknown option '%s'", o->arg);
        else
            ex_usage_error("unexpected argument '%s'", o->arg);
        return EX_OPT_ERROR;
    default:
        return id;
    }
}

int ex_opt_uint(const char *opt, const char *s, uint64_t lo, uint64_t hi,
                uint64_t *out)
{
    if (num_parse_uint(s, lo, hi, out) == 0)
        return 0;
    if (hi == UINT64_MAX)
        ex_usage_error("%s: '%s' is not a whole number from %llu to 2^64-1",
                       opt, s, (unsigned long long)lo);
    else
        ex_usage_error("%s: '%s' is not a whole number from %llu to %llu",
                       opt, s, (unsigned long long)lo,
                       (unsigned long long)hi);
    return -1;
}

int ex_opt_step_size(const char *opt, const char *s, double *out)
{
    double v;
    if (num_parse_double(s, &v) != 0 || !isfinite(v) || !(v > 0.0) ||
        !((float)v > 0.0f) || !isfinite((float)v)) {
        ex_usage_error("%s: '%s' is not a positive finite number", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

int ex_opt_decay(const char *opt, const char *s, double *out)
{
    double v;
    /* The library takes the decay as a float. */
    if (num_parse_double(s, &v) != 0 ||
        !(v == 0.0 || ((float)v > 0.0f && (float)v < 1.0f))) {
        ex_usage_error("%s: '%s' is not 0 or a decay between 0 and 1 "
                       "(exclusive, in single precision)",
                       opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

int ex_opt_limit(const char *opt, const char *s, double *out)
{
    double v;
    /* The library takes the limit as a float. */
    if (num_parse_double(s, &v) != 0 ||
        !(v == 0.0 || ((float)v > 0.0f && isfinite((float)v)))) {
        ex_usage_error("%s: '%s' is not 0 or a positive finite number (in "
                       "single precision)",
                       opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

int ex_opt_widths(const char *opt, const char *s, const char *hint,
                  size_t w[NVP_MAX_HIDDEN_LAYERS], size_t *n)
{
    size_t got[NVP_MAX_HIDDEN_LAYERS], count;
    if (num_parse_list(s, NVP_MAX_WIDTH, got, NVP_MAX_HIDDEN_LAYERS,
                       &count) != 0) {
        ex_usage_error("%s: '%s' is not a comma-separated list of widths "
                       "(%s)",
                       opt, s, hint);
        return -1;
    }
    for (size_t i = 0; i < count; i++)
        w[i] = got[i];
    *n = count;
    return 0;
}

int ex_opt_path(const char *opt, const char *s, const char **out)
{
    if (!*s) {
        ex_usage_error("%s: the path is empty", opt);
        return -1;
    }
    *out = s;
    return 0;
}
