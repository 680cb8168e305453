/* SPDX-License-Identifier: MIT */
/*
 * animation.h - the layer-by-layer animation of a 2-D flow, as a GIF.
 *
 * Why: a static figure shows the stages; the animation shows the motion
 * between them.  Given the points after every stage of the flow (stage 0 =
 * base samples, stage k = after layer k), each layer gets
 * frames_per_layer frames that interpolate linearly from stage k to stage
 * k + 1 (frame f shows (1 - t) stage_k + t stage_{k+1}, t = f /
 * frames_per_layer), followed by one final frame showing the last stage.
 * So the file holds n_layers * frames_per_layer + 1 frames.
 *
 * Each frame: a title ("BASE", "LAYER k/K", "FLOW SAMPLES"), the square
 * axes [lo, hi]^2 with a grid at the integers and tick labels at lo, 0 and
 * hi, the points as small square dots coloured by colormap.h's position
 * colours, and a progress bar with a notch per layer along the bottom.
 */
#ifndef FIGURE_ANIMATION_H
#define FIGURE_ANIMATION_H

#include <stddef.h>

typedef struct anim_options {
    unsigned size;             /* square canvas side, pixels (>= 120) */
    unsigned frames_per_layer; /* >= 1 */
    unsigned delay_cs;         /* per frame, hundredths of a second */
    unsigned hold_first_cs;    /* display time of the very first frame */
    unsigned hold_last_cs;     /* display time of the final frame */
    unsigned dot;              /* dot side, pixels (1 .. 9) */
    float lo, hi;              /* axis range on both axes, lo < hi */
} anim_options;

/* The demo's defaults: 400 x 400, 48 frames per layer, 2 cs per frame,
 * 3 x 3 dots, axes [-3, 3]. */
anim_options anim_default_options(void);

/* Writes the animation to `path` (atomically).  stages holds
 * (n_layers + 1) blocks of n_points rows of 2 floats; colors holds
 * n_points indices from cmap_position_index().  Returns 0, or -1 with a
 * message in err. */
int anim_write_gif(const char *path, const anim_options *opt,
                   size_t n_layers, size_t n_points, const float *stages,
                   const unsigned *colors, char *err, size_t errlen);

#endif
