/* SPDX-License-Identifier: MIT */
/* args.h - command-line options of the nvpflow commands: the strict
 * getopt_long loop of opts.h and the number rules of numparse.h, with the
 * tool's usage messages ("nvpflow CMD: ...", then "Try 'nvpflow CMD
 * --help'.").
 *
 * Options may come before, between or after the positional arguments:
 *   --name VALUE, --name=VALUE, -x VALUE, -xVALUE, flags without a value;
 *   "--" ends the options; a lone "-" is a positional argument (stdin or
 *   stdout, depending on the command).
 * The value parsers print a usage error themselves and return -1. */
#ifndef NVPFLOW_CLI_ARGS_H
#define NVPFLOW_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "opts.h"

/* args_next's results besides an option's val. */
#define ARG_END (-1)        /* no more arguments */
#define ARG_POSITIONAL (-2) /* *value is a positional argument */
#define ARG_ERROR (-3)      /* usage error already printed */

/* Long-only options take vals from here up, clear of the letters. */
#define ARG_LONG_ONLY 256

typedef struct arg_parser {
    const char *cmd; /* command name for messages */
    opts o;
    const char *opt; /* the option just returned, as typed ("--lr") */
} arg_parser;

/* argv[0] is the command's own name and is skipped.  shortopts and
 * longopts as for getopt_long (see opts.h). */
void args_init(arg_parser *p, const char *cmd, int argc, char **argv,
               const char *shortopts, const struct option *longopts);
/* The next option's val (with its value in *value when it takes one), a
 * positional argument, ARG_END or ARG_ERROR. */
int args_next(arg_parser *p, const char **value);

/* Value parsers: opt names the option in messages. */
/* A decimal integer in [lo, hi] (digits only). */
int args_size(const char *cmd, const char *opt, const char *s, size_t lo,
              size_t hi, size_t *out);
/* A decimal integer 0 .. 2^64-1 (digits only). */
int args_u64(const char *cmd, const char *opt, const char *s, uint64_t *out);
/* A finite number with lo <= x <= hi, or lo < x when lo_open. */
int args_double(const char *cmd, const char *opt, const char *s, double lo,
                int lo_open, double hi, double *out);
/* A comma-separated list of integers in [1, max_value], at most cap of
 * them, into w[0 .. *n). */
int args_list(const char *cmd, const char *opt, const char *s,
              size_t max_value, size_t *w, size_t cap, size_t *n);

#endif
