/* SPDX-License-Identifier: MIT */
/*
 * flow_figure.h - the main job's pictures of a trained two-dimensional
 * flow, from the chain itself:
 *   - a figure (SVG): the data coloured by class, a fresh draw from the
 *     base, the same points after each layer, and the learned density on
 *     a grid;
 *   - an animation (GIF): those points bent layer by layer.
 */
#ifndef FIGURE_FLOW_FIGURE_H
#define FIGURE_FLOW_FIGURE_H

#include <stddef.h>
#include <stdint.h>

#include "nvpflow.h"

#include "animation.h"

typedef struct flow_figure {
    const nvp_chain *chain;  /* dimension 2 */
    size_t n_data;           /* the points of the first panel */
    const float *data;       /* n_data rows of 2 floats */
    const int *labels;       /* their class, 0 or 1 (the colour) */
    size_t n_samples;        /* base points drawn and pushed through */
    uint64_t seed;           /* of that draw */
    size_t grid;             /* density cells per axis */
    const char *caption;     /* over the figure */
    const char *svg_path;    /* the figure */
    const char *gif_path;    /* the animation */
    anim_options animation;  /* its look; also the axes of both */
} flow_figure;

/* Writes both files, each whole or not at all.  Returns EX_OK, or
 * EX_FAILED after saying what failed (common/messages.h). */
int flow_figure_write(const flow_figure *f);

#endif
