/* SPDX-License-Identifier: MIT */
/* progress.h - the training progress display of nvpflow fit.
 *
 * On a terminal: one line on stderr, redrawn in place at most a few times
 * a second.  When stderr is not a terminal (a log file), one plain line
 * per forced update (each evaluation) instead. */
#ifndef NVPFLOW_CLI_PROGRESS_H
#define NVPFLOW_CLI_PROGRESS_H

#include <stddef.h>

typedef struct progress {
    int enabled;    /* show anything at all */
    int tty;        /* stderr is a terminal */
    size_t width;   /* length of the line on screen (0: none) */
    size_t total;   /* steps planned */
    double t0;      /* start time (seconds) */
    double last;    /* time of the last redraw */
} progress;

/* Seconds on a monotonic clock. */
double progress_now(void);
void progress_start(progress *p, size_t total, int enabled);
/* Shows step/total, the running training loss, the latest and the best
 * validation NLL (NAN: none yet), speed and time left.  force: draw now
 * (an evaluation happened) rather than when the redraw interval has
 * passed. */
void progress_update(progress *p, size_t step, double loss, double val,
                     double best, int force);
/* Ends the line on screen so that other messages can follow. */
void progress_break(progress *p);

#endif
