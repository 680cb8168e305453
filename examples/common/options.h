/* SPDX-License-Identifier: MIT */
/* options.h - the example programs' command lines: the strict
 * getopt_long loop and the number rules of the nvpflow tool (src/cli/
 * opts.h, numparse.h), with the examples' usage messages.
 *
 * An example takes options only, no positional arguments; each option's
 * value comes as the next argument or after '='.  Every check below
 * prints a usage error (messages.h) and returns -1 when the value is
 * not acceptable, and leaves *out untouched then. */
#ifndef EXAMPLES_COMMON_OPTIONS_H
#define EXAMPLES_COMMON_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "nvpflow.h"
#include "opts.h"

/* ex_next_option's result after a usage error it printed. */
#define EX_OPT_ERROR (-100)

/* The hint of ex_opt_widths for the library's limits. */
#define EX_STR_(x) #x
#define EX_STR(x) EX_STR_(x)
#define EX_WIDTH_LIMITS                                                      \
    "1 to " EX_STR(NVP_MAX_HIDDEN_LAYERS) " widths, each from 1 to "        \
        EX_STR(NVP_MAX_WIDTH)

/* The next option's val (its value in *value), OPTS_END, or EX_OPT_ERROR
 * after reporting an argument that is not an option of the program, an
 * option without its value, or a flag given a value. */
int ex_next_option(opts *o, const char **value);

/* A whole number in [lo, hi] (digits only). */
int ex_opt_uint(const char *opt, const char *s, uint64_t lo, uint64_t hi,
                uint64_t *out);
/* A step size: positive and finite, in double and in single precision. */
int ex_opt_step_size(const char *opt, const char *s, double *out);
/* A decay: 0 (off) or inside (0, 1) after rounding to single precision
 * (0.99999999 rounds to 1, 1e-50 to 0). */
int ex_opt_decay(const char *opt, const char *s, double *out);
/* A limit: 0 (off) or positive and finite in single precision. */
int ex_opt_limit(const char *opt, const char *s, double *out);
/* Hidden widths "W1,W2,..." (up to NVP_MAX_HIDDEN_LAYERS, each from 1 to
 * NVP_MAX_WIDTH) into w[0 .. *n); the message ends with "(hint)". */
int ex_opt_widths(const char *opt, const char *s, const char *hint,
                  size_t w[NVP_MAX_HIDDEN_LAYERS], size_t *n);
/* A path: not empty. */
int ex_opt_path(const char *opt, const char *s, const char **out);

#endif
