/* SPDX-License-Identifier: MIT */
/* progress.c - the examples' progress line; see progress.h. */
#include "progress.h"

#include <math.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

double ex_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "m:ss" or "h:mm:ss". */
static void format_duration(double s, char *buf, size_t len)
{
    if (!isfinite(s) || s < 0)
        s = 0;
    unsigned long t = (unsigned long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, len, "%lu:%02lu", t / 60, t % 60);
}

void ex_progress_init(ex_progress *p, int enabled, unsigned long total)
{
    p->enabled = enabled;
    p->start = ex_now();
    p->last_draw = -1e30;
    /* About 10 updates a second on a terminal; fewer into a log file. */
    p->interval = isatty(STDERR_FILENO) ? 0.1 : 2.0;
    p->width = 0;
    p->step_digits = snprintf(NULL, 0, "%lu", total);
}

int ex_progress_due(const ex_progress *p)
{
    return p->enabled && ex_now() - p->last_draw >= p->interval;
}

void ex_progress_draw(ex_progress *p, unsigned long step,
                      unsigned long total, double loss)
{
    if (!p->enabled)
        return;
    const double t = ex_now();
    p->last_draw = t;
    const double elapsed = t - p->start;
    const double rate = elapsed > 0 ? (double)step / elapsed : 0.0;
    /* While training: the estimated time left; at the end: the time taken. */
    char when[32];
    format_duration(step == total ? elapsed
                    : rate > 0    ? (double)(total - step) / rate
                                  : 0.0,
                    when, sizeof when);
    char line[160];
    int n = snprintf(line, sizeof line,
                     "step %*lu/%lu  loss %.4f  %.1f steps/s  %s %s",
                     p->step_digits, step, total, loss, rate,
                     step == total ? "took" : "ETA", when);
    if (n < 0)
        return;
    /* Pad with spaces to wipe the rest of a longer previous line. */
    fprintf(stderr, "\r%s%*s", line, p->width > n ? p->width - n : 0, "");
    p->width = n;
}

void ex_progress_end(ex_progress *p)
{
    if (p->enabled && p->width > 0) {
        fputc('\n', stderr);
        p->width = 0;
    }
}
