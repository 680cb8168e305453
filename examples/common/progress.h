/* SPDX-License-Identifier: MIT */
/* progress.h - the examples' one-line training progress on stderr:
 * "step S/T  loss L  R steps/s  ETA m:ss", redrawn in place about ten
 * times a second on a terminal and every two seconds into a log file. */
#ifndef EXAMPLES_COMMON_PROGRESS_H
#define EXAMPLES_COMMON_PROGRESS_H

typedef struct ex_progress {
    int enabled;
    double start, last_draw, interval;
    int width;       /* characters in the last line drawn */
    int step_digits; /* width of the step counter */
} ex_progress;

/* Seconds on a monotonic clock. */
double ex_now(void);

/* Starts the clock; nothing is drawn when enabled is 0. */
void ex_progress_init(ex_progress *p, int enabled, unsigned long total);
/* Whether it is time to redraw (never when disabled). */
int ex_progress_due(const ex_progress *p);
/* Redraws the line now: step of total done, the smoothed loss, the rate
 * and the time left (or, at the last step, the time taken). */
void ex_progress_draw(ex_progress *p, unsigned long step,
                      unsigned long total, double loss);
/* Ends the line on screen so that other messages can follow. */
void ex_progress_end(ex_progress *p);

#endif
