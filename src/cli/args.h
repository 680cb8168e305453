/* SPDX-License-Identifier: MIT */
/* args.h - command-line option parsing for the nvpflow commands.
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

typedef struct cli_opt {
    const char *name; /* long name without the leading "--" */
    char short_name;  /* the one-letter form, or 0 */
    int has_value;    /* takes a value */
    int id;           /* returned by args_next (>= 0) */
} cli_opt;

/* args_next's results besides an option id. */
#define ARG_END (-1)        /* no more arguments */
#define ARG_POSITIONAL (-2) /* *value is a positional argument */
#define ARG_ERROR (-3)      /* usage error already printed */

typedef struct arg_parser {
    const char *cmd;     /* command name for messages */
    int argc;
    char **argv;
    int i;               /* next argument */
    int only_positional; /* after "--" */
    const char *opt;     /* the option just returned, as typed ("--lr") */
    char opt_buf[48];
} arg_parser;

/* argv[0] is the command's own name and is skipped. */
void args_init(arg_parser *p, const char *cmd, int argc, char **argv);
/* The next option id (with its value in *value when it takes one), a
 * positional argument, ARG_END or ARG_ERROR.  opts ends with a zeroed
 * entry. */
int args_next(arg_parser *p, const cli_opt *opts, const char **value);

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
