/* SPDX-License-Identifier: MIT */
/*
 * atomic_file.h - write a file so that it appears whole or not at all.
 *
 * Why: the demo writes a figure and an animation that take a while to
 * produce.  Writing straight to the destination would leave a truncated,
 * unreadable file behind whenever a write fails (full disk, killed
 * process).  Instead the bytes go to "<path>.tmp.<pid>" in the same
 * directory, and only a fully flushed and closed temporary file is
 * renamed over the destination (rename() within one directory is atomic on
 * POSIX systems), keeping a replaced file's mode.  Any failure removes
 * the temporary file.  A symbolic link (such as /dev/stdout) and an
 * existing path that is not a regular file (/dev/null, a FIFO) are
 * written straight through instead, since renaming over them would
 * replace the link, device or pipe with a regular file.
 *
 * Every function reports failure as -1 with a human-readable message
 * (including strerror(errno)) in err[0..errlen-1].
 */
#ifndef FIGURE_ATOMIC_FILE_H
#define FIGURE_ATOMIC_FILE_H

#include <stdio.h>

typedef struct atomic_file {
    FILE *fp;   /* write through this (binary mode) */
    char *tmp;  /* the temporary path (owned); NULL when writing straight
                   through to the destination */
    char *path; /* the destination path (owned copy) */
} atomic_file;

/* Creates the temporary file next to `path`.  On success af->fp is open;
 * finish with exactly one of afile_commit() or afile_abort(). */
int afile_open(atomic_file *af, const char *path, char *err, size_t errlen);

/* Flushes, closes and renames the temporary file onto the destination.
 * Checks the stream's error flag, so earlier unchecked fwrite/fprintf
 * failures are caught here.  On failure the temporary file is removed.
 * Either way af is released. */
int afile_commit(atomic_file *af, char *err, size_t errlen);

/* Closes and removes the temporary file; the destination is untouched.
 * Accepts an af whose open failed or that was already finished. */
void afile_abort(atomic_file *af);

#endif
