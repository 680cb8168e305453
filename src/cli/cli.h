/* SPDX-License-Identifier: MIT */
/* cli.h - shared pieces of the nvpflow command-line tool: exit codes, the
 * commands, and error reporting.  Messages go to stderr as
 * "nvpflow CMD: message". */
#ifndef NVPFLOW_CLI_H
#define NVPFLOW_CLI_H

#include <stdio.h>

/* Exit statuses of every command. */
#define CLI_OK 0    /* success (also --help) */
#define CLI_ERR 1   /* runtime error: bad data, I/O, library failure */
#define CLI_USAGE 2 /* bad command line */

#if defined(__GNUC__) || defined(__clang__)
#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CLI_PRINTF(f, a)
#endif

/* The commands: argv[0] is the command's name, argv[1..] its arguments.
 * Each returns one of the exit statuses above. */
int cmd_fit(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_info(int argc, char **argv);

/* Their help texts, printed to fp (for "nvpflow help CMD" and --help). */
void cmd_fit_help(FILE *fp);
void cmd_sample_help(FILE *fp);
void cmd_score_help(FILE *fp);
void cmd_info_help(FILE *fp);

/* "nvpflow CMD: message" on stderr; returns CLI_ERR. */
int cli_error(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);
/* "nvpflow CMD: warning: message" on stderr. */
void cli_warn(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);
/* A usage error: the message and a pointer to --help; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);
/* A failed library call: "nvpflow CMD: WHAT: <nvp_strerror(rc)> (detail)"
 * where detail is the library's message (pass nvp_errmsg() or a handle's
 * errmsg right after the failing call); returns CLI_ERR. */
int cli_lib_error(const char *cmd, const char *what, int rc,
                  const char *detail);

#endif
