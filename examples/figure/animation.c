/* SPDX-License-Identifier: MIT */
/* animation.c - renders the flow's stages into GIF frames; see
 * animation.h. */
#include "animation.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colormap.h"
#include "gif_writer.h"
#include "raster.h"

/* Palette layout: four fixed colours, the position colours, and one
 * index that is never drawn, reserved as the GIF's transparent index for
 * the frame-difference compression. */
enum {
    PAL_BACKGROUND = 0,
    PAL_GRID = 1,
    PAL_AXES = 2,
    PAL_TEXT = 3,
    PAL_POINTS = 4, /* PAL_POINTS + cmap_position_index() */
    PAL_TRANSPARENT = 255,
    PAL_SIZE = 256
};

_Static_assert(PAL_POINTS + CMAP_POS_COUNT <= PAL_TRANSPARENT,
               "the position colours must fit below the transparent index");

anim_options anim_default_options(void)
{
    anim_options o;
    o.size = 400;
    o.frames_per_layer = 48;
    /* The reference shows the animation at 60 frames per second, but GIF
     * delays are whole hundredths of a second, so 1/60 s cannot be written.
     * Browsers also treat a delay of 0 or 1 cs as 10 cs, which rules out
     * alternating 1 and 2 cs.  2 cs (50 fps) is the fastest rate every
     * viewer honours, so the 192 transition frames take 3.84 s instead of
     * the reference's 3.2 s. */
    o.delay_cs = 2;
    o.hold_first_cs = 60;
    o.hold_last_cs = 150;
    o.dot = 3;
    o.lo = -3.0f;
    o.hi = 3.0f;
    return o;
}

static void build_palette(unsigned char pal[PAL_SIZE * 3])
{
    memset(pal, 0, PAL_SIZE * 3);
    static const unsigned char fixed[PAL_POINTS][3] = {
        {255, 255, 255}, /* background */
        {232, 232, 232}, /* grid */
        {140, 140, 140}, /* axes frame */
        {40, 40, 40},    /* text */
    };
    memcpy(pal, fixed, sizeof fixed);
    for (unsigned i = 0; i < CMAP_POS_COUNT; i++)
        cmap_position_rgb(i, pal + 3 * (PAL_POINTS + i));
    pal[3 * PAL_TRANSPARENT + 0] = 255; /* never shown */
    pal[3 * PAL_TRANSPARENT + 2] = 255;
}

typedef struct layout {
    int left, top, side; /* the plot square */
    float lo, hi;
} layout;

static int to_px(const layout *L, float v, int flip)
{
    double u = ((double)v - L->lo) / ((double)L->hi - L->lo) * L->side;
    if (flip)
        u = L->side - u;
    return (int)floor(u);
}

/* Background, grid, frame, tick labels: identical in every frame. */
static void draw_axes(raster *r, const layout *L)
{
    raster_clear(r, PAL_BACKGROUND);
    for (int v = (int)ceil(L->lo); v <= (int)floor(L->hi); v++) {
        int x = L->left + to_px(L, (float)v, 0);
        int y = L->top + to_px(L, (float)v, 1);
        raster_fill(r, x, L->top, 1, L->side, PAL_GRID);
        raster_fill(r, L->left, y, L->side, 1, PAL_GRID);
    }
    raster_fill(r, L->left - 1, L->top - 1, L->side + 2, 1, PAL_AXES);
    raster_fill(r, L->left - 1, L->top + L->side, L->side + 2, 1, PAL_AXES);
    raster_fill(r, L->left - 1, L->top - 1, 1, L->side + 2, PAL_AXES);
    raster_fill(r, L->left + L->side, L->top - 1, 1, L->side + 2, PAL_AXES);

    const float ticks[3] = {L->lo, 0.0f, L->hi};
    for (int i = 0; i < 3; i++) {
        if (!(ticks[i] >= L->lo && ticks[i] <= L->hi))
            continue;
        char label[32];
        snprintf(label, sizeof label, "%g", (double)ticks[i]);
        int w = raster_text_width(label, 1);
        int x = L->left + to_px(L, ticks[i], 0);
        int y = L->top + to_px(L, ticks[i], 1);
        /* below the x axis, and left of the y axis */
        raster_text(r, x - w / 2, L->top + L->side + 4, label, 1, PAL_TEXT);
        raster_text(r, L->left - 5 - w, y - 3, label, 1, PAL_TEXT);
    }
}

static void draw_points(raster *r, const layout *L, unsigned dot,
                        size_t n, const float *a, const float *b, float t,
                        const unsigned *colors)
{
    const int half = (int)dot / 2;
    for (size_t i = 0; i < n; i++) {
        float x = a[2 * i], y = a[2 * i + 1];
        if (b) {
            x = (1.0f - t) * x + t * b[2 * i];
            y = (1.0f - t) * y + t * b[2 * i + 1];
        }
        if (!(x >= L->lo && x <= L->hi && y >= L->lo && y <= L->hi))
            continue; /* off the axes, or not finite */
        int px = to_px(L, x, 0), py = to_px(L, y, 1);
        /* clip the dot to the plot square */
        int x0 = px - half, y0 = py - half, x1 = x0 + (int)dot,
            y1 = y0 + (int)dot;
        if (x0 < 0)
            x0 = 0;
        if (y0 < 0)
            y0 = 0;
        if (x1 > L->side)
            x1 = L->side;
        if (y1 > L->side)
            y1 = L->side;
        raster_fill(r, L->left + x0, L->top + y0, x1 - x0, y1 - y0,
                    (unsigned char)(PAL_POINTS + colors[i] % CMAP_POS_COUNT));
    }
}

static void draw_progress(raster *r, const layout *L, size_t n_layers,
                          double fraction)
{
    int y = (int)r->height - 8, x = L->left, w = L->side;
    raster_fill(r, x, y, w, 3, PAL_GRID);
    raster_fill(r, x, y, (int)floor(fraction * w + 0.5), 3, PAL_AXES);
    for (size_t k = 0; k <= n_layers; k++) {
        int xk = x + (int)((double)k / (double)n_layers * (w - 1) + 0.5);
        raster_fill(r, xk, y - 2, 1, 7, PAL_TEXT);
    }
}

int anim_write_gif(const char *path, const anim_options *opt,
                   size_t n_layers, size_t n_points, const float *stages,
                   const unsigned *colors, char *err, size_t errlen)
{
    if (!opt || opt->size < 120 || opt->size > 4096 ||
        opt->frames_per_layer < 1 || opt->dot < 1 || opt->dot > 9 ||
        !(opt->lo < opt->hi) || !isfinite(opt->lo) || !isfinite(opt->hi) ||
        n_layers < 1 || n_points < 1 || !stages || !colors) {
        snprintf(err, errlen, "anim_write_gif: invalid arguments");
        return -1;
    }
    unsigned char pal[PAL_SIZE * 3];
    build_palette(pal);
    gif_options go;
    go.width = opt->size;
    go.height = opt->size;
    go.palette = pal;
    go.n_colors = PAL_SIZE;
    go.transparent_index = PAL_TRANSPARENT;
    go.loop_count = 0;

    raster canvas = {opt->size, opt->size, NULL};
    unsigned char *axes = malloc((size_t)opt->size * opt->size);
    canvas.px = malloc((size_t)opt->size * opt->size);
    if (!axes || !canvas.px) {
        snprintf(err, errlen, "anim_write_gif: out of memory");
        free(axes);
        free(canvas.px);
        return -1;
    }
    /* Plot square: room above for the title, left for tick labels, below
     * for tick labels and the progress bar. */
    layout L;
    L.left = 34;
    L.top = 34;
    L.side = (int)opt->size - L.left - 30;
    L.lo = opt->lo;
    L.hi = opt->hi;
    {
        raster base = {opt->size, opt->size, axes};
        draw_axes(&base, &L);
    }

    gif_writer *g = NULL;
    if (gif_open(&g, path, &go, err, errlen) != 0) {
        free(axes);
        free(canvas.px);
        return -1;
    }
    const size_t block = n_points * 2;
    const unsigned F = opt->frames_per_layer;
    const size_t total = n_layers * F;
    int rc = 0;
    for (size_t frame = 0; frame <= total && rc == 0; frame++) {
        const size_t k = frame / F < n_layers ? frame / F : n_layers - 1;
        const unsigned f = (unsigned)(frame - k * F); /* F on the last one */
        const float t = (float)f / (float)F;
        memcpy(canvas.px, axes, (size_t)opt->size * opt->size);
        char title[64];
        if (frame == total)
            snprintf(title, sizeof title, "FLOW SAMPLES");
        else if (frame == 0)
            snprintf(title, sizeof title, "BASE");
        else
            snprintf(title, sizeof title, "LAYER %zu/%zu", k + 1, n_layers);
        raster_text(&canvas,
                    ((int)opt->size - raster_text_width(title, 2)) / 2, 9,
                    title, 2, PAL_TEXT);
        if (frame == total)
            draw_points(&canvas, &L, opt->dot, n_points,
                        stages + n_layers * block, NULL, 0.0f, colors);
        else
            draw_points(&canvas, &L, opt->dot, n_points,
                        stages + k * block, stages + (k + 1) * block, t,
                        colors);
        draw_progress(&canvas, &L, n_layers, (double)frame / (double)total);
        unsigned delay = frame == 0       ? opt->hold_first_cs
                         : frame == total ? opt->hold_last_cs
                                          : opt->delay_cs;
        if (gif_add_frame(g, canvas.px, delay) != 0) {
            snprintf(err, errlen, "%s", gif_error(g));
            rc = -1;
        }
    }
    free(axes);
    free(canvas.px);
    if (rc != 0) {
        gif_abort(g);
        return -1;
    }
    return gif_close(g, err, errlen);
}
