/* SPDX-License-Identifier: MIT */
/* outfile.h - output that appears whole or not at all: the one writer of
 * the nvpflow commands and of the example programs (they compile this
 * file too).  No messages of its own: a failure comes back as -1 with a
 * message ("cannot create 'x.csv': Permission denied") in err, which each
 * program prints in its own style.
 *
 * A named output is written to a temporary file in the same directory
 * ("<path>.XXXXXX"), flushed to disk (fsync) and renamed over the path
 * only when everything went well; on any failure the temporary file is
 * removed and an existing file at the path is left as it was, and a
 * replaced file keeps its mode (a new one gets the umask's, as fopen
 * gives).  A symbolic link is followed: the file it names is replaced and
 * the link stays.  Written directly, in place: standard output (a NULL
 * path), an existing file that is not a regular file (a device such as
 * /dev/null, a FIFO, a pipe behind /dev/stdout), the file a standard
 * stream is open on (/dev/stdout redirected to a file), and a link to a
 * file that does not exist yet.  A temporary file is removed also when
 * SIGINT, SIGTERM or SIGHUP ends the program (tmpfiles.h). */
#ifndef NVPFLOW_CLI_OUTFILE_H
#define NVPFLOW_CLI_OUTFILE_H

#include <stddef.h>
#include <stdio.h>

/* Room enough for any message below (paths are cut short to fit). */
#define OUT_ERR_MAX 512

typedef struct out_file {
    FILE *fp;         /* write through this */
    char *tmp;        /* the temporary file, or NULL when writing in place */
    char *dest;       /* the name the temporary replaces (owned): path, or
                         the file a symbolic link at path names */
    const char *path; /* the destination as given (borrowed), or NULL */
    int direct;       /* 1: fp is the destination itself, opened by us */
    int tmp_slot;     /* the temporary's tmp_create slot, or -1 */
} out_file;

/* Opens path for writing (NULL means standard output).  Returns 0, or -1
 * with o finished and a message in err[errlen]. */
int out_open(out_file *o, const char *path, char *err, size_t errlen);
/* Flushes, syncs and closes (renaming into place); catches any earlier
 * write error too.  Returns 0, or -1 with the temporary file removed and
 * a message in err.  o is finished either way. */
int out_commit(out_file *o, char *err, size_t errlen);
/* The destination for messages: the path, or "standard output". */
const char *out_name(const out_file *o);
/* Discards the output: the temporary file is removed.  Accepts an o that
 * is already finished or was never opened (zeroed). */
void out_abort(out_file *o);

/* Checks early, before a long computation, that a file can be created at
 * path: path is not empty and not a directory, and the directory of the
 * file to be replaced (a link's target's) exists and is writable; for a
 * path written in place (see above), that the file itself is writable.
 * Returns 0, or -1 with a message in err. */
int out_check_writable(const char *path, char *err, size_t errlen);

#endif
