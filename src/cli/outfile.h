/* outfile.h - output that appears whole or not at all.
 *
 * A named output is written to a temporary file in the same directory
 * ("<path>.XXXXXX"), flushed to disk and renamed over the path only when
 * everything went well; on any failure the temporary file is removed and
 * an existing file at the path is left as it was, and a replaced file
 * keeps its mode.  Standard output ("-" or no path), a symbolic link (such
 * as /dev/stdout; the file it names is written, the link stays) and an
 * existing file that is not a regular file (a device such as /dev/null, a
 * FIFO) are written directly, in place. */
#ifndef NVPFLOW_CLI_OUTFILE_H
#define NVPFLOW_CLI_OUTFILE_H

#include <stdio.h>

typedef struct out_file {
    FILE *fp;         /* write through this */
    char *tmp;        /* the temporary path, or NULL for stdout */
    const char *path; /* the destination (borrowed) */
    int direct;       /* 1: fp is the destination itself, opened by us */
} out_file;

/* Opens path for writing (NULL or "-" means stdout).  On failure prints
 * "nvpflow CMD: ..." and returns -1. */
int out_open(const char *cmd, out_file *o, const char *path);
/* Flushes and closes (renaming into place); checks for any earlier write
 * error.  On failure prints a message, removes the temporary file and
 * returns -1.  o is finished either way. */
int out_commit(const char *cmd, out_file *o);
/* Discards the output: the temporary file is removed.  Accepts an o that
 * is already finished or was never opened (zeroed). */
void out_abort(out_file *o);

/* Checks early, before a long computation, that a file can be created at
 * path: path is not empty and not a directory, and its directory exists
 * and is writable (for a path written in place, see out_open: that the
 * file itself is writable).  Prints a message and returns -1 when not. */
int out_check_writable(const char *cmd, const char *path);

#endif
