/* SPDX-License-Identifier: MIT */
/* colormap.c - point colours and the viridis map; see colormap.h. */
#include "colormap.h"

#include <math.h>

static const double PI = 3.14159265358979323846;

unsigned cmap_position_index(float x, float y)
{
    if (!isfinite(x) || !isfinite(y))
        return 0;
    double angle = atan2((double)y, (double)x); /* (-pi, pi] */
    int hue = (int)floor((angle + PI) / (2.0 * PI) * CMAP_POS_HUES);
    if (hue < 0)
        hue = 0;
    if (hue >= CMAP_POS_HUES)
        hue = CMAP_POS_HUES - 1;
    double r = sqrt((double)x * x + (double)y * y);
    int ring = (int)(r / 0.5);
    if (ring >= CMAP_POS_RINGS)
        ring = CMAP_POS_RINGS - 1;
    return (unsigned)(ring * CMAP_POS_HUES + hue);
}

static unsigned char to_byte(double v)
{
    if (!(v > 0.0))
        return 0;
    if (v >= 1.0)
        return 255;
    return (unsigned char)(v * 255.0 + 0.5);
}

void cmap_position_rgb(unsigned index, unsigned char rgb[3])
{
    index %= CMAP_POS_COUNT;
    unsigned hue = index % CMAP_POS_HUES, ring = index / CMAP_POS_HUES;
    double h = (hue + 0.5) / CMAP_POS_HUES * 6.0; /* sector 0..6 */
    double f = (double)ring / (CMAP_POS_RINGS - 1);
    /* Centre: dark and muted; rim: bright and saturated. */
    double s = 0.15 + 0.80 * f, v = 0.40 + 0.50 * f;
    int sector = (int)h;
    double frac = h - sector;
    double p = v * (1 - s), q = v * (1 - s * frac);
    double t = v * (1 - s * (1 - frac));
    double r, g, b;
    switch (sector % 6) {
    case 0: r = v; g = t; b = p; break;
    case 1: r = q; g = v; b = p; break;
    case 2: r = p; g = v; b = t; break;
    case 3: r = p; g = q; b = v; break;
    case 4: r = t; g = p; b = v; break;
    default: r = v; g = p; b = q; break;
    }
    rgb[0] = to_byte(r);
    rgb[1] = to_byte(g);
    rgb[2] = to_byte(b);
}

/* matplotlib's viridis sampled at 10 evenly spaced points. */
static const unsigned char VIRIDIS[10][3] = {
    {0x44, 0x01, 0x54}, {0x48, 0x28, 0x78}, {0x3e, 0x49, 0x89},
    {0x31, 0x68, 0x8e}, {0x26, 0x82, 0x8e}, {0x1f, 0x9e, 0x89},
    {0x35, 0xb7, 0x79}, {0x6e, 0xce, 0x58}, {0xb5, 0xde, 0x2b},
    {0xfd, 0xe7, 0x25},
};

void cmap_viridis(double t, unsigned char rgb[3])
{
    if (!(t > 0.0))
        t = 0.0;
    if (t > 1.0)
        t = 1.0;
    double pos = t * 9.0;
    int i = (int)pos;
    if (i > 8)
        i = 8;
    double w = pos - i;
    for (int c = 0; c < 3; c++) {
        double v = (1.0 - w) * VIRIDIS[i][c] + w * VIRIDIS[i + 1][c];
        rgb[c] = (unsigned char)(v + 0.5);
    }
}
