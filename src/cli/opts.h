/* SPDX-License-Identifier: MIT */
/* opts.h - the option loop of the nvpflow commands and of the example
 * programs (they compile this file too): getopt_long, made
 * strict, with no messages of its own.
 *
 * getopt_long does the scanning.  On top of it, this refuses two things
 * the programs have never accepted, so that an option added later can
 * never change what an existing command line means:
 *   - an abbreviated long option ("--ste" for "--steps");
 *   - bundled short options ("-qh"); a short option's value may still be
 *     attached ("-n5").
 * Arguments come back in command-line order (getopt's "-" mode): options
 * and positionals may be mixed.  getopt's own messages are off (opterr);
 * each program words its errors from the result code and the argument as
 * typed, so every program keeps its own message style. */
#ifndef NVPFLOW_CLI_OPTS_H
#define NVPFLOW_CLI_OPTS_H

#include <getopt.h>

/* opts_next's results besides an option's val (a short option's letter,
 * or a long-only option's code, 256 and up). */
#define OPTS_END (-1)              /* no more arguments */
#define OPTS_POSITIONAL (-2)       /* *value is a positional argument */
#define OPTS_DASHDASH (-3)         /* "--": what follows is positional */
#define OPTS_UNKNOWN (-4)          /* not an option of this program */
#define OPTS_MISSING_VALUE (-5)    /* the last argument needed a value */
#define OPTS_UNEXPECTED_VALUE (-6) /* "--flag=x" for a flag */

typedef struct opts {
    int argc;
    char **argv;
    const struct option *longopts; /* ends with a zeroed entry */
    char shortopts[64];            /* "-:" and the caller's letters */
    int dashdash;                  /* "--" seen: the rest are positional */
    const char *arg;               /* the argument just read, as typed */
    char name[48];                 /* the option as typed, without its
                                      value ("--lr", "-n"); the long name
                                      cut at 45 characters */
} opts;

/* Starts a scan of argv[1 .. argc) (argv[0] is the program or command
 * name).  shortopts in getopt's syntax ("o:qh"); each short option also
 * has a long one in longopts whose val is the letter.  Resets getopt:
 * one scan at a time. */
void opts_init(opts *o, int argc, char **argv, const char *shortopts,
               const struct option *longopts);
/* The next option's val (with its value in *value when it takes one), or
 * one of the OPTS_ results above; o->arg and o->name tell the caller what
 * was typed.  After OPTS_DASHDASH, every argument comes back as
 * OPTS_POSITIONAL. */
int opts_next(opts *o, const char **value);

#endif
