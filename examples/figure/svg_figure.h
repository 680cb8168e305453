/* SPDX-License-Identifier: MIT */
/*
 * svg_figure.h - a row (or grid) of square scatter / heat-map panels as a
 * plain SVG file.
 *
 * Why plain SVG written by hand: the figure must open in any browser with
 * no library behind it.  Each panel has a title, the axes [lo, hi]^2 with
 * a light grid at the integers and tick labels at lo, 0 and hi, and either
 *   - points: small circles, each with its own colour, clipped to the
 *     axes; coordinates are rounded to 0.01 px to keep the file small;
 *   - a heat map: a grid x grid array of non-negative values (e.g. a
 *     density), scaled by its maximum and coloured with viridis, drawn as
 *     one path per colour level made of the horizontal runs of cells of
 *     that level (much smaller than one <rect> per cell).
 * The file is written through outfile.h (whole or not at all).
 */
#ifndef FIGURE_SVG_FIGURE_H
#define FIGURE_SVG_FIGURE_H

#include <stddef.h>

typedef enum svg_panel_kind {
    SVG_PANEL_POINTS,
    SVG_PANEL_HEATMAP
} svg_panel_kind;

typedef struct svg_panel {
    const char *title; /* plain text; escaped on output */
    svg_panel_kind kind;
    /* SVG_PANEL_POINTS: n points (x, y) and n RGB colours. */
    size_t n;
    const float *xy;
    const unsigned char *rgb;
    /* SVG_PANEL_HEATMAP: values[j * grid + i] is the cell whose centre is
     * x = lo + (i + 0.5) h, y = lo + (j + 0.5) h, h = (hi - lo) / grid.
     * Non-finite or negative values draw as 0. */
    size_t grid;
    const float *values;
} svg_panel;

typedef struct svg_figure_options {
    float lo, hi;         /* axis range, lo < hi */
    unsigned panel_px;    /* side of each plot square in px (>= 60) */
    unsigned max_columns; /* panels per row (>= 1) */
    const char *caption;  /* a line above the panels, or NULL */
} svg_figure_options;

/* Writes the figure to `path`.  Returns 0, or -1 with a message in err. */
int svg_write_figure(const char *path, const svg_figure_options *opt,
                     const svg_panel *panels, size_t n_panels, char *err,
                     size_t errlen);

#endif
