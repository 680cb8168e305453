/* SPDX-License-Identifier: MIT */
/*
 * colormap.h - the colours shared by the figure and the animation.
 *
 * Why a module: the SVG figure and the GIF animation must colour the same
 * points the same way, and the GIF needs the colours as a finite palette.
 * So the point colouring is defined once, already quantised: a point's
 * colour is an index into a table of CMAP_POS_COUNT colours, chosen from
 * its position in base space (hue = angle around the origin, saturation
 * and brightness grow with the distance from it).  Following a colour
 * through the panels shows where each region of the Gaussian ends up.
 *
 * cmap_viridis() is the continuous map for the density heat map: a short
 * table of matplotlib's viridis, linearly interpolated.
 */
#ifndef FIGURE_COLORMAP_H
#define FIGURE_COLORMAP_H

#define CMAP_POS_HUES 36 /* 10 degrees of angle per hue */
#define CMAP_POS_RINGS 6 /* radius bands of 0.5, the last one open */
#define CMAP_POS_COUNT (CMAP_POS_HUES * CMAP_POS_RINGS)

/* The colour index (0 .. CMAP_POS_COUNT-1) of a point at (x, y) in base
 * space.  Non-finite input gets index 0. */
unsigned cmap_position_index(float x, float y);

/* The colour of index `index` (taken modulo CMAP_POS_COUNT). */
void cmap_position_rgb(unsigned index, unsigned char rgb[3]);

/* Viridis at t in [0, 1] (clamped; NaN gives the t = 0 colour). */
void cmap_viridis(double t, unsigned char rgb[3]);

#endif
