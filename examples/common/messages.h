/* SPDX-License-Identifier: MIT */
/* messages.h - what the example programs say on stderr, as
 * "PROGRAM: message", and the exit statuses they share. */
#ifndef EXAMPLES_COMMON_MESSAGES_H
#define EXAMPLES_COMMON_MESSAGES_H

#if defined(__GNUC__) || defined(__clang__)
#define EX_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define EX_PRINTF(f, a)
#endif

#define EX_OK 0
#define EX_FAILED 1 /* the library, memory or a file write failed */
#define EX_USAGE 2  /* bad command line */

/* The program's name in every message.  usage_errors 0 silences usage
 * errors in this process: every rank of an MPI job reads the same
 * command line, and one message is enough. */
void ex_init(const char *program, int usage_errors);
const char *ex_program(void);

/* "PROGRAM: message" and "Try 'PROGRAM --help'."; returns EX_USAGE. */
int ex_usage_error(const char *fmt, ...) EX_PRINTF(1, 2);
/* "PROGRAM: message"; returns EX_FAILED. */
int ex_error(const char *fmt, ...) EX_PRINTF(1, 2);
/* "PROGRAM: warning: message". */
void ex_warn(const char *fmt, ...) EX_PRINTF(1, 2);
/* A failed library call: "PROGRAM: WHAT failed: <nvp_strerror(rc)>:
 * detail" (detail: the library's message, may be NULL or empty); returns
 * EX_FAILED. */
int ex_lib_error(const char *what, int rc, const char *detail);
/* A warning when the library that runs is not the one built against. */
void ex_check_version(void);
/* The exit status once everything is printed: standard output must have
 * reached its file or pipe, or a run that looked fine becomes EX_FAILED. */
int ex_finish(int status);

#endif
