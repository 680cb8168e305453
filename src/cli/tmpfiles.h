/* SPDX-License-Identifier: MIT */
/* tmpfiles.h - temporary files that an interrupt does not leave behind.
 *
 * A program killed by Ctrl-C (SIGINT), SIGTERM or a closed terminal
 * (SIGHUP) while it writes an output through a temporary file would leave
 * that file, often tens of megabytes, next to the output.  A file made
 * here is removed by a handler of those signals, which then ends the
 * program the way the signal would have (the shell still sees "killed by
 * SIGINT").  A signal the program ignores (nohup, a background job) or
 * handles itself is left alone.  The handler uses only async-signal-safe
 * calls and fixed storage; it is installed with the first file. */
#ifndef NVPFLOW_CLI_TMPFILES_H
#define NVPFLOW_CLI_TMPFILES_H

/* mkstemp(templ), with the file removed should one of those signals end
 * the program before tmp_release(*slot).  Returns the descriptor, or -1
 * with errno set.  *slot is -1 when the file is not watched (more than a
 * few at once, or a name too long): it is still made. */
int tmp_create(char *templ, int *slot);
/* The file no longer needs removing on a signal: it was renamed into
 * place or removed.  Accepts -1. */
void tmp_release(int slot);

#endif
