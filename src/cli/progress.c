/* SPDX-License-Identifier: MIT */
/* progress.c - a one-line progress bar with speed and time left. */
#include "progress.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BAR_WIDTH 16
#define REDRAW_S 0.125

double progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start(progress *p, size_t total, int enabled)
{
    memset(p, 0, sizeof *p);
    p->enabled = enabled;
    p->tty = isatty(fileno(stderr));
    p->total = total;
    p->t0 = progress_now();
    p->last = -1.0;
}

/* "m:ss" or "h:mm:ss" into buf. */
static void format_eta(char *buf, size_t cap, double s)
{
    if (!isfinite(s) || s < 0 || s > 99 * 3600.0) {
        snprintf(buf, cap, "?");
        return;
    }
    const unsigned long t = (unsigned long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, cap, "%lu:%02lu", t / 60, t % 60);
}

static void format_nll(char *buf, size_t cap, double v)
{
    if (isnan(v))
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.3f", v);
}

void progress_update(progress *p, size_t step, double loss, double val,
                     double best, int force)
{
    if (!p->enabled)
        return;
    const double now = progress_now();
    if (!force && (!p->tty || now - p->last < REDRAW_S))
        return;
    p->last = now;
    const double elapsed = now - p->t0;
    const double rate = elapsed > 0 ? (double)step / elapsed : 0.0;
    char eta[32], l[32], v[32], b[32], line[256];
    format_eta(eta, sizeof eta,
               rate > 0 ? (double)(p->total - step) / rate : NAN);
    format_nll(l, sizeof l, loss);
    format_nll(v, sizeof v, val);
    format_nll(b, sizeof b, best);
    if (!p->tty) {
        fprintf(stderr, "step %zu/%zu  loss %s  val %s  best val %s  "
                "%.0f steps/s  ETA %s\n", step, p->total, l, v, b, rate, eta);
        return;
    }
    char bar[BAR_WIDTH + 1];
    const size_t full =
        p->total ? (size_t)((double)BAR_WIDTH * (double)step /
                            (double)p->total)
                 : BAR_WIDTH;
    for (size_t i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < full ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    int n = snprintf(line, sizeof line,
                     "[%s] %zu/%zu loss %s best val %s %.0f/s ETA %s", bar,
                     step, p->total, l, b, rate, eta);
    size_t len = n < 0 ? 0 : (size_t)n;
    if (len >= sizeof line)
        len = sizeof line - 1;
    /* Pad with spaces over what a longer previous line left. */
    fprintf(stderr, "\r%s%*s", line,
            p->width > len ? (int)(p->width - len) : 0, "");
    fflush(stderr);
    p->width = len;
}

void progress_break(progress *p)
{
    if (p->enabled && p->tty && p->width > 0) {
        fputc('\n', stderr);
        fflush(stderr);
    }
    p->width = 0;
}
