/* SPDX-License-Identifier: MIT */
/*
 * gif_writer.h - a small animated-GIF (GIF89a) encoder.
 *
 * Why our own: the demo must not depend on an image library.  This is the
 * smallest encoder that produces a well-formed looping animation:
 *   - one global colour table (frames carry no local tables);
 *   - the NETSCAPE2.0 application extension, so viewers loop it;
 *   - a graphic control extension per frame, giving its delay;
 *   - LZW compression with variable code width (up to 12 bits) and a
 *     clear code whenever the code table fills.
 * Frame optimisation: when a transparent index is configured, each frame
 * after the first is cropped to the rectangle that differs from the
 * previous frame, and unchanged pixels inside it are written as the
 * transparent index (disposal "do not dispose"), which gives the LZW coder
 * long runs.  The decoded animation is identical to writing full frames.
 *
 * The file is written through outfile.h: it appears only when
 * gif_close() succeeds.  Functions return 0, or -1 with a message in the
 * writer (gif_error()).
 */
#ifndef FIGURE_GIF_WRITER_H
#define FIGURE_GIF_WRITER_H

#include <stddef.h>

typedef struct gif_writer gif_writer;

typedef struct gif_options {
    unsigned width, height;         /* 1 .. 65535 pixels */
    const unsigned char *palette;   /* n_colors RGB triples */
    unsigned n_colors;              /* 2 .. 256 (padded to a power of 2) */
    int transparent_index;          /* an index never drawn, or -1 */
    unsigned loop_count;            /* 0 = loop forever */
} gif_options;

/* Starts a GIF at `path`.  On failure *out is NULL and err holds why. */
int gif_open(gif_writer **out, const char *path, const gif_options *opt,
             char *err, size_t errlen);

/* Appends a frame: width * height palette indices, row-major, each below
 * n_colors.  delay_cs is the display time in hundredths of a second. */
int gif_add_frame(gif_writer *g, const unsigned char *pixels,
                  unsigned delay_cs);

/* Writes the trailer, commits the file and frees the writer (always).
 * Returns -1 (message in err) if anything failed, now or before. */
int gif_close(gif_writer *g, char *err, size_t errlen);

/* Frees the writer and removes the unfinished file.  Accepts NULL. */
void gif_abort(gif_writer *g);

/* The message of the last failure ("" if none). */
const char *gif_error(const gif_writer *g);

#endif
