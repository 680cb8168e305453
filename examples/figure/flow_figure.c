/* SPDX-License-Identifier: MIT */
/* flow_figure.c - the figure and animation of a trained 2-D flow; see
 * flow_figure.h. */
#include "flow_figure.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colormap.h"
#include "common/messages.h"
#include "svg_figure.h"

/* Buffers of one drawing. */
typedef struct canvas {
    float *x0;               /* the base draw */
    float *stages;           /* it after each layer: (K + 1) blocks */
    unsigned *color_idx;     /* each point's colour, by base position */
    unsigned char *rgb_pos;  /* the same as RGB */
    unsigned char *rgb_data; /* the data's colours, by class */
    float *grid_xy;          /* the heat map's cell centres */
    float *density;          /* the density there */
    svg_panel *panels;
    char (*titles)[48]; /* "after layer " and any size_t */
} canvas;

static void canvas_free(canvas *c)
{
    free(c->x0);
    free(c->stages);
    free(c->color_idx);
    free(c->rgb_pos);
    free(c->rgb_data);
    free(c->grid_xy);
    free(c->density);
    free(c->panels);
    free(c->titles);
}

/* The base samples and every stage of the flow, coloured by where each
 * point starts. */
static int trace_samples(const flow_figure *f, const canvas *c)
{
    const size_t n = f->n_samples;
    nvp_rng *rng = NULL;
    int rc = nvp_rng_create(&rng, f->seed, NULL);
    if (rc)
        return ex_lib_error("nvp_rng_create", rc, nvp_errmsg());
    const nvp_base *base = nvp_chain_base(f->chain);
    rc = nvp_base_sample(base, rng, n, c->x0);
    nvp_rng_free(rng);
    if (rc)
        return ex_lib_error("nvp_base_sample", rc, nvp_base_errmsg(base));
    rc = nvp_chain_forward_trace(f->chain, n, c->x0, c->stages);
    if (rc)
        return ex_lib_error("nvp_chain_forward_trace", rc,
                            nvp_chain_errmsg(f->chain));
    for (size_t i = 0; i < n; i++) {
        c->color_idx[i] =
            cmap_position_index(c->stages[2 * i], c->stages[2 * i + 1]);
        cmap_position_rgb(c->color_idx[i], c->rgb_pos + 3 * i);
    }
    return EX_OK;
}

/* The learned density on the cell centres of the heat map. */
static int map_density(const flow_figure *f, const canvas *c)
{
    const size_t G = f->grid;
    const float lo = f->animation.lo, hi = f->animation.hi;
    const double h = ((double)hi - lo) / (double)G;
    for (size_t j = 0; j < G; j++)
        for (size_t i = 0; i < G; i++) {
            float *cell = c->grid_xy + 2 * (j * G + i);
            cell[0] = (float)(lo + ((double)i + 0.5) * h);
            cell[1] = (float)(lo + ((double)j + 0.5) * h);
        }
    int rc = nvp_chain_log_prob(f->chain, G * G, c->grid_xy, c->density);
    if (rc)
        return ex_lib_error("nvp_chain_log_prob", rc,
                            nvp_chain_errmsg(f->chain));
    for (size_t i = 0; i < G * G; i++)
        c->density[i] = expf(c->density[i]);
    return EX_OK;
}

/* Panels: data, base, after each layer, density. */
static void lay_out(const flow_figure *f, size_t K, const canvas *c)
{
    /* The data, coloured by class. */
    static const unsigned char class_rgb[2][3] = {{0x1f, 0x77, 0xb4},
                                                  {0xff, 0x7f, 0x0e}};
    for (size_t i = 0; i < f->n_data; i++)
        memcpy(c->rgb_data + 3 * i, class_rgb[f->labels[i] ? 1 : 0], 3);
    c->panels[0] = (svg_panel){.title = "data (standardised)",
                               .kind = SVG_PANEL_POINTS,
                               .n = f->n_data,
                               .xy = f->data,
                               .rgb = c->rgb_data};
    for (size_t k = 0; k <= K; k++) {
        if (k == 0)
            snprintf(c->titles[k + 1], sizeof c->titles[k + 1], "base");
        else
            snprintf(c->titles[k + 1], sizeof c->titles[k + 1],
                     "after layer %zu", k);
        c->panels[k + 1] = (svg_panel){.title = c->titles[k + 1],
                                       .kind = SVG_PANEL_POINTS,
                                       .n = f->n_samples,
                                       .xy = c->stages + k * f->n_samples * 2,
                                       .rgb = c->rgb_pos};
    }
    c->panels[K + 2] = (svg_panel){.title = "density",
                                   .kind = SVG_PANEL_HEATMAP,
                                   .grid = f->grid,
                                   .values = c->density};
}

int flow_figure_write(const flow_figure *f)
{
    const size_t K = nvp_chain_num_layers(f->chain);
    const size_t n = f->n_samples, G = f->grid;
    const size_t n_panels = K + 3;
    canvas c;
    c.x0 = malloc(n * 2 * sizeof *c.x0);
    c.stages = malloc((K + 1) * n * 2 * sizeof *c.stages);
    c.color_idx = malloc(n * sizeof *c.color_idx);
    c.rgb_pos = malloc(n * 3);
    c.rgb_data = malloc(f->n_data * 3);
    c.grid_xy = malloc(G * G * 2 * sizeof *c.grid_xy);
    c.density = malloc(G * G * sizeof *c.density);
    c.panels = calloc(n_panels, sizeof *c.panels);
    c.titles = calloc(n_panels, sizeof *c.titles);
    int status = EX_FAILED;
    char err[512];
    if (!c.x0 || !c.stages || !c.color_idx || !c.rgb_pos || !c.rgb_data ||
        !c.grid_xy || !c.density || !c.panels || !c.titles) {
        ex_error("out of memory for the figures");
        goto done;
    }
    if (trace_samples(f, &c) != EX_OK || map_density(f, &c) != EX_OK)
        goto done;
    lay_out(f, K, &c);
    svg_figure_options so = {f->animation.lo, f->animation.hi, 200,
                             n_panels <= 8 ? (unsigned)n_panels : 6,
                             f->caption};
    if (svg_write_figure(f->svg_path, &so, c.panels, n_panels, err,
                         sizeof err) != 0) {
        ex_error("figure: %s", err);
        goto done;
    }
    if (anim_write_gif(f->gif_path, &f->animation, K, n, c.stages,
                       c.color_idx, err, sizeof err) != 0) {
        ex_error("animation: %s", err);
        goto done;
    }
    status = EX_OK;
done:
    canvas_free(&c);
    return status;
}
