/* SPDX-License-Identifier: MIT */
/* outfile.h - output that appears whole or not at all.
 *
 * A named output is written to a temporary file in the same directory
 * ("<path>.XXXXXX"), flushed to disk and renamed over the path only when
 * everything went well; on any failure the temporary file is removed and
 * an existing file at the path is left as it was, and a replaced file
 * keeps its mode.  A symbolic link is followed: the file it names is
 * replaced and the link stays.  Written directly, in place: standard
 * output ("-" or no path), an existing file that is not a regular file (a
 * device such as /dev/null, a FIFO, a pipe behind /dev/stdout), the file
 * a standard stream is open on (/dev/stdout redirected to a file), and a
 * link to a file that does not exist yet. */
#ifndef NVPFLOW_CLI_OUTFILE_H
#define NVPFLOW_CLI_OUTFILE_H

#include <stdio.h>

typedef struct out_file {
    FILE *fp;         /* write through this */
    char *tmp;        /* the temporary file, or NULL when writing in place */
    char *dest;       /* the name the temporary replaces (owned): path, or
                         the file a symbolic link at path names */
    const char *path; /* the destination as given (borrowed) */
    int direct;       /* 1: fp is the destination itself, opened by us */
} out_file;

/* Opens path for writing (NULL or "-" means stdout).  On failure prints
 * "nvpflow CMD: ..." and returns -1. */
int out_open(const char *cmd, out_file *o, const char *path);
/* Flushes and closes (renaming into place); checks for any earlier write
 * error.  On failure prints a message, removes the temporary file and
 * returns -1.  o is finished either way. */
int out_commit(const char *cmd, out_file *o);
/* The destination for messages: the path, or "standard output". */
const char *out_name(const out_file *o);
/* Discards the output: the temporary file is removed.  Accepts an o that
 * is already finished or was never opened (zeroed). */
void out_abort(out_file *o);

/* Checks early, before a long computation, that a file can be created at
 * path: path is not empty and not a directory, and the directory of the
 * file to be replaced (a link's target's) exists and is writable; for a
 * path written in place (see out_open), that the file itself is writable.
 * Prints a message and returns -1 when not. */
int out_check_writable(const char *cmd, const char *path);

#endif
