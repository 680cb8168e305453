/* SPDX-License-Identifier: MIT */
/* svg_figure.c - the panel figure as plain SVG; see svg_figure.h. */
#include "svg_figure.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "outfile.h"
#include "colormap.h"

/* Space around each plot square, in px. */
enum { PAD_LEFT = 34, PAD_TOP = 28, PAD_RIGHT = 12, PAD_BOTTOM = 24 };
enum { CAPTION_HEIGHT = 30 };

static void put_escaped(FILE *fp, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '&': fputs("&amp;", fp); break;
        case '"': fputs("&quot;", fp); break;
        default: fputc(*s, fp); break;
        }
    }
}

/* v with at most two decimals and no trailing zeros ("12", "3.5"). */
static void fmt_num(char buf[32], double v)
{
    snprintf(buf, 32, "%.2f", v);
    char *dot = strchr(buf, '.');
    if (dot) {
        char *end = buf + strlen(buf) - 1;
        while (end > dot && *end == '0')
            *end-- = '\0';
        if (end == dot)
            *end = '\0';
    }
    if (strcmp(buf, "-0") == 0)
        strcpy(buf, "0");
}

typedef struct frame {
    double lo, hi, side;
} frame;

static double map_x(const frame *f, double x)
{
    return (x - f->lo) / (f->hi - f->lo) * f->side;
}

static double map_y(const frame *f, double y)
{
    return f->side - (y - f->lo) / (f->hi - f->lo) * f->side;
}

static void put_axes(FILE *fp, const frame *f)
{
    fputs("<g stroke=\"#e8e8e8\" stroke-width=\"1\">", fp);
    for (int v = (int)ceil(f->lo); v <= (int)floor(f->hi); v++) {
        double x = map_x(f, v), y = map_y(f, v);
        fprintf(fp, "<line x1=\"%.2f\" y1=\"0\" x2=\"%.2f\" y2=\"%.2f\"/>", x,
                x, f->side);
        fprintf(fp, "<line x1=\"0\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>", y,
                f->side, y);
    }
    fputs("</g>\n", fp);
}

static void put_frame_and_ticks(FILE *fp, const frame *f)
{
    fprintf(fp,
            "<rect width=\"%.2f\" height=\"%.2f\" fill=\"none\" "
            "stroke=\"#888\"/>\n",
            f->side, f->side);
    const double ticks[3] = {f->lo, 0.0, f->hi};
    fputs("<g font-size=\"11\" fill=\"#333\">", fp);
    for (int i = 0; i < 3; i++) {
        if (!(ticks[i] >= f->lo && ticks[i] <= f->hi))
            continue;
        double x = map_x(f, ticks[i]), y = map_y(f, ticks[i]);
        fprintf(fp,
                "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%g</text>",
                x, f->side + 15, ticks[i]);
        fprintf(fp,
                "<text x=\"-5\" y=\"%.2f\" text-anchor=\"end\">%g</text>",
                y + 4, ticks[i]);
    }
    fputs("</g>\n", fp);
}

static void put_points(FILE *fp, const frame *f, const svg_panel *p)
{
    fputs("<g clip-path=\"url(#plot)\">\n", fp);
    for (size_t i = 0; i < p->n; i++) {
        double x = p->xy[2 * i], y = p->xy[2 * i + 1];
        if (!(x >= f->lo && x <= f->hi && y >= f->lo && y <= f->hi))
            continue; /* outside the axes, or not finite */
        const unsigned char *c = p->rgb + 3 * i;
        char cx[32], cy[32];
        fmt_num(cx, map_x(f, x));
        fmt_num(cy, map_y(f, y));
        fprintf(fp,
                "<circle cx=\"%s\" cy=\"%s\" r=\"1.6\" "
                "fill=\"#%02x%02x%02x\"/>\n",
                cx, cy, c[0], c[1], c[2]);
    }
    fputs("</g>\n", fp);
}

/* A heat-map value as one of 256 colour levels (0 for anything not a
 * positive finite number). */
static int heat_level(double v, double vmax)
{
    if (!(vmax > 0.0) || !isfinite(v) || !(v > 0.0))
        return 0;
    double t = v / vmax;
    return t >= 1.0 ? 255 : (int)(t * 255.0 + 0.5);
}

static void put_heatmap(FILE *fp, const frame *f, const svg_panel *p)
{
    const size_t G = p->grid;
    double vmax = 0.0;
    for (size_t i = 0; i < G * G; i++)
        if (isfinite(p->values[i]) && p->values[i] > vmax)
            vmax = p->values[i];
    const double cell = f->side / (double)G;
    /* One path per colour level holding all the horizontal runs of cells
     * of that level: far smaller than a rect per cell.  crispEdges: no
     * anti-aliased seams between neighbouring cells. */
    fputs("<g shape-rendering=\"crispEdges\">\n", fp);
    for (int level = 0; level < 256; level++) {
        int open = 0;
        for (size_t j = 0; j < G; j++) {
            /* row j is y = lo + (j + 0.5) h: the bottom row is j = 0 */
            const float *row = p->values + j * G;
            const double top = f->side - (double)(j + 1) * cell;
            for (size_t i = 0; i < G;) {
                if (heat_level(row[i], vmax) != level) {
                    i++;
                    continue;
                }
                size_t run = 1;
                while (i + run < G &&
                       heat_level(row[i + run], vmax) == level)
                    run++;
                if (!open) {
                    unsigned char rgb[3];
                    cmap_viridis(level / 255.0, rgb);
                    fprintf(fp, "<path fill=\"#%02x%02x%02x\" d=\"", rgb[0],
                            rgb[1], rgb[2]);
                    open = 1;
                }
                char x[32], y[32], w[32], h[32];
                fmt_num(x, (double)i * cell);
                fmt_num(y, top);
                fmt_num(w, (double)run * cell);
                fmt_num(h, cell);
                fprintf(fp, "M%s %sh%sv%sH%sz", x, y, w, h, x);
                i += run;
            }
        }
        if (open)
            fputs("\"/>\n", fp);
    }
    fputs("</g>\n", fp);
}

int svg_write_figure(const char *path, const svg_figure_options *opt,
                     const svg_panel *panels, size_t n_panels, char *err,
                     size_t errlen)
{
    if (!opt || !(opt->lo < opt->hi) || !isfinite(opt->lo) ||
        !isfinite(opt->hi) || opt->panel_px < 60 || opt->max_columns < 1 ||
        !panels || n_panels < 1) {
        snprintf(err, errlen, "svg_write_figure: invalid arguments");
        return -1;
    }
    for (size_t k = 0; k < n_panels; k++) {
        const svg_panel *p = panels + k;
        int ok = p->kind == SVG_PANEL_POINTS
                     ? (p->n == 0 || (p->xy && p->rgb))
                     : (p->kind == SVG_PANEL_HEATMAP && p->grid >= 1 &&
                        p->grid <= 4096 && p->values);
        if (!ok) {
            snprintf(err, errlen, "svg_write_figure: panel %zu is invalid",
                     k + 1);
            return -1;
        }
    }
    const frame f = {opt->lo, opt->hi, (double)opt->panel_px};
    const size_t cols = n_panels < opt->max_columns ? n_panels
                                                    : opt->max_columns;
    const size_t rows = (n_panels + cols - 1) / cols;
    const unsigned cell_w = PAD_LEFT + opt->panel_px + PAD_RIGHT;
    const unsigned cell_h = PAD_TOP + opt->panel_px + PAD_BOTTOM;
    const unsigned top0 = opt->caption ? CAPTION_HEIGHT : 0;
    const size_t width = cols * cell_w + 10, height = rows * cell_h + top0 + 6;

    out_file out;
    if (out_open(&out, path, err, errlen) != 0)
        return -1;
    FILE *fp = out.fp;
    fprintf(fp,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%zu\" "
            "height=\"%zu\" viewBox=\"0 0 %zu %zu\" "
            "font-family=\"Helvetica, Arial, sans-serif\">\n",
            width, height, width, height);
    fprintf(fp,
            "<defs><clipPath id=\"plot\"><rect width=\"%u\" height=\"%u\"/>"
            "</clipPath></defs>\n",
            opt->panel_px, opt->panel_px);
    fprintf(fp, "<rect width=\"%zu\" height=\"%zu\" fill=\"white\"/>\n",
            width, height);
    if (opt->caption) {
        fputs("<text x=\"12\" y=\"20\" font-size=\"14\" fill=\"#222\">", fp);
        put_escaped(fp, opt->caption);
        fputs("</text>\n", fp);
    }
    for (size_t k = 0; k < n_panels; k++) {
        const svg_panel *p = panels + k;
        const size_t col = k % cols, row = k / cols;
        const size_t ox = col * cell_w + PAD_LEFT,
                     oy = top0 + row * cell_h + PAD_TOP;
        fprintf(fp, "<g transform=\"translate(%zu,%zu)\">\n", ox, oy);
        fprintf(fp,
                "<text x=\"%.1f\" y=\"-9\" text-anchor=\"middle\" "
                "font-size=\"13\" fill=\"#222\">",
                f.side / 2);
        put_escaped(fp, p->title);
        fputs("</text>\n", fp);
        if (p->kind == SVG_PANEL_HEATMAP) {
            put_heatmap(fp, &f, p);
        } else {
            put_axes(fp, &f);
            put_points(fp, &f, p);
        }
        put_frame_and_ticks(fp, &f);
        fputs("</g>\n", fp);
    }
    fputs("</svg>\n", fp);
    return out_commit(&out, err, errlen);
}
