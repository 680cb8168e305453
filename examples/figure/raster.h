/* SPDX-License-Identifier: MIT */
/*
 * raster.h - drawing into an 8-bit indexed pixel buffer.
 *
 * Why: the GIF animation is drawn pixel by pixel into palette indices.
 * Only what the frames need is here: clipped filled rectangles (dots,
 * grid lines, bars) and text in a built-in 5x7 bitmap font that covers
 * the digits, a few capital letters, '/', '-', '.' and space (other
 * characters draw as blanks).
 */
#ifndef FIGURE_RASTER_H
#define FIGURE_RASTER_H

typedef struct raster {
    unsigned width, height;
    unsigned char *px; /* width * height indices, row-major; caller-owned */
} raster;

/* Sets every pixel to idx. */
void raster_clear(raster *r, unsigned char idx);

/* Fills the rectangle [x, x + w) x [y, y + h), clipped to the raster. */
void raster_fill(raster *r, int x, int y, int w, int h, unsigned char idx);

/* Width in pixels of s drawn at `scale` (each glyph cell is 6 x 8). */
int raster_text_width(const char *s, int scale);

/* Draws s with its top-left corner at (x, y), each font pixel a
 * scale x scale block. */
void raster_text(raster *r, int x, int y, const char *s, int scale,
                 unsigned char idx);

#endif
