/* SPDX-License-Identifier: MIT */
/* gif_writer.c - GIF89a encoder with LZW; see gif_writer.h. */
#include "gif_writer.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outfile.h"

#define LZW_MAX_BITS 12
#define LZW_LIMIT 4095 /* clear once this code would be assigned (as giflib) */
#define HASH_BITS 13
#define HASH_SIZE (1u << HASH_BITS) /* > 4096: the table never fills */

struct gif_writer {
    out_file file;
    unsigned width, height;
    unsigned min_code_size; /* LZW root code size: log2 of palette size */
    unsigned n_colors;      /* valid pixel indices are below this */
    int transparent;
    unsigned char *prev;    /* the previous frame, for cropping */
    unsigned char *work;    /* the cropped frame being encoded */
    unsigned long frames;
    int failed;
    char err[256];

    /* LZW state */
    uint32_t hash_key[HASH_SIZE]; /* (prefix << 8 | byte) + 1, 0 = empty */
    uint16_t hash_code[HASH_SIZE];
    /* bit packing into 255-byte data sub-blocks */
    uint32_t bitbuf;
    unsigned nbits;
    unsigned char block[255];
    unsigned block_len;
};

static void put_bytes(gif_writer *g, const void *p, size_t n)
{
    if (g->failed)
        return;
    if (fwrite(p, 1, n, g->file.fp) != n) {
        snprintf(g->err, sizeof g->err, "error writing %s: %s",
                 out_name(&g->file), strerror(errno));
        g->failed = 1;
    }
}

static void put_u8(gif_writer *g, unsigned v)
{
    unsigned char b = (unsigned char)v;
    put_bytes(g, &b, 1);
}

static void put_u16(gif_writer *g, unsigned v)
{
    unsigned char b[2] = {(unsigned char)(v & 0xff),
                          (unsigned char)((v >> 8) & 0xff)};
    put_bytes(g, b, 2);
}

/* ------------------------------------------------------------------ LZW */

static void flush_block(gif_writer *g)
{
    if (g->block_len) {
        put_u8(g, g->block_len);
        put_bytes(g, g->block, g->block_len);
        g->block_len = 0;
    }
}

static void put_code(gif_writer *g, unsigned code, unsigned bits)
{
    g->bitbuf |= (uint32_t)code << g->nbits; /* GIF packs LSB first */
    g->nbits += bits;
    while (g->nbits >= 8) {
        g->block[g->block_len++] = (unsigned char)(g->bitbuf & 0xff);
        g->bitbuf >>= 8;
        g->nbits -= 8;
        if (g->block_len == sizeof g->block)
            flush_block(g);
    }
}

static void hash_clear(gif_writer *g)
{
    memset(g->hash_key, 0, sizeof g->hash_key);
}

static size_t hash_slot(uint32_t key)
{
    return (size_t)((key * 2654435761u) >> (32 - HASH_BITS));
}

/* Code for (prefix, byte), or -1 when the string is not in the table. */
static int hash_find(const gif_writer *g, uint32_t key)
{
    for (size_t s = hash_slot(key);; s = (s + 1) & (HASH_SIZE - 1)) {
        if (g->hash_key[s] == 0)
            return -1;
        if (g->hash_key[s] == key + 1)
            return g->hash_code[s];
    }
}

static void hash_insert(gif_writer *g, uint32_t key, unsigned code)
{
    size_t s = hash_slot(key);
    while (g->hash_key[s] != 0)
        s = (s + 1) & (HASH_SIZE - 1);
    g->hash_key[s] = key + 1;
    g->hash_code[s] = (uint16_t)code;
}

/* Compresses n indices as one image's data: the LZW minimum code size,
 * the sub-blocks, and the block terminator.
 *
 * Code width: the decoder adds a table entry after every code except the
 * first after a clear, and widens its codes once its next free code
 * reaches 1 << width.  The encoder is one entry ahead, so it widens once
 * the entry it has just added has the code 1 << width. */
static void lzw_encode(gif_writer *g, const unsigned char *px, size_t n)
{
    const unsigned min = g->min_code_size;
    const unsigned clear = 1u << min, eoi = clear + 1;
    unsigned bits = min + 1, next = eoi + 1;

    put_u8(g, min);
    g->bitbuf = 0;
    g->nbits = 0;
    g->block_len = 0;
    hash_clear(g);
    put_code(g, clear, bits);

    unsigned prefix = px[0];
    for (size_t i = 1; i < n; i++) {
        const unsigned c = px[i];
        const uint32_t key = (uint32_t)prefix << 8 | c;
        const int found = hash_find(g, key);
        if (found >= 0) {
            prefix = (unsigned)found;
            continue;
        }
        put_code(g, prefix, bits);
        if (next < LZW_LIMIT) {
            hash_insert(g, key, next++);
            if (next > (1u << bits) && bits < LZW_MAX_BITS)
                bits++;
        } else {
            put_code(g, clear, bits);
            hash_clear(g);
            bits = min + 1;
            next = eoi + 1;
        }
        prefix = c;
    }
    put_code(g, prefix, bits);
    put_code(g, eoi, bits);
    if (g->nbits > 0)
        put_code(g, 0, 8 - g->nbits); /* pad the last byte */
    flush_block(g);
    put_u8(g, 0); /* block terminator */
}

/* --------------------------------------------------------------- public */

int gif_open(gif_writer **out, const char *path, const gif_options *opt,
             char *err, size_t errlen)
{
    *out = NULL;
    if (!opt || opt->width < 1 || opt->width > 65535 || opt->height < 1 ||
        opt->height > 65535 || !opt->palette || opt->n_colors < 2 ||
        opt->n_colors > 256 ||
        opt->transparent_index >= (int)opt->n_colors) {
        snprintf(err, errlen, "gif_open: invalid options");
        return -1;
    }
    gif_writer *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "gif_open: out of memory");
        return -1;
    }
    size_t npx = (size_t)opt->width * opt->height;
    g->prev = malloc(npx);
    g->work = malloc(npx);
    if (!g->prev || !g->work) {
        snprintf(err, errlen, "gif_open: out of memory for %zu pixels", npx);
        free(g->prev);
        free(g->work);
        free(g);
        return -1;
    }
    if (out_open(&g->file, path, err, errlen) != 0) {
        free(g->prev);
        free(g->work);
        free(g);
        return -1;
    }
    g->width = opt->width;
    g->height = opt->height;
    g->transparent = opt->transparent_index;
    g->n_colors = opt->n_colors;
    unsigned depth = 1; /* colour table holds 2^depth entries */
    while ((1u << depth) < opt->n_colors)
        depth++;
    g->min_code_size = depth < 2 ? 2 : depth;

    put_bytes(g, "GIF89a", 6);
    /* Logical screen descriptor: global table, 8-bit colour resolution. */
    put_u16(g, g->width);
    put_u16(g, g->height);
    put_u8(g, 0x80 | 0x70 | (depth - 1));
    put_u8(g, 0); /* background colour index */
    put_u8(g, 0); /* no pixel aspect ratio */
    for (unsigned i = 0; i < (1u << depth); i++) {
        unsigned char rgb[3] = {0, 0, 0};
        if (i < opt->n_colors)
            memcpy(rgb, opt->palette + 3 * i, 3);
        put_bytes(g, rgb, 3);
    }
    /* NETSCAPE2.0 application extension: loop count. */
    put_bytes(g, "\x21\xff\x0bNETSCAPE2.0\x03\x01", 16);
    put_u16(g, opt->loop_count);
    put_u8(g, 0);
    if (g->failed) {
        snprintf(err, errlen, "%s", g->err);
        gif_abort(g);
        return -1;
    }
    *out = g;
    return 0;
}

int gif_add_frame(gif_writer *g, const unsigned char *pixels,
                  unsigned delay_cs)
{
    if (g->failed)
        return -1;
    const unsigned W = g->width, H = g->height;
    unsigned x0 = 0, y0 = 0, x1 = W, y1 = H; /* the rectangle [x0,x1)x[y0,y1) */
    int use_transparency = 0;
    if (g->frames > 0 && g->transparent >= 0) {
        /* Crop to the pixels that changed since the previous frame. */
        x0 = W;
        y0 = H;
        x1 = 0;
        y1 = 0;
        for (unsigned y = 0; y < H; y++) {
            const unsigned char *a = pixels + (size_t)y * W;
            const unsigned char *b = g->prev + (size_t)y * W;
            if (memcmp(a, b, W) == 0)
                continue;
            unsigned lo = 0, hi = W;
            while (a[lo] == b[lo])
                lo++;
            while (a[hi - 1] == b[hi - 1])
                hi--;
            if (lo < x0)
                x0 = lo;
            if (hi > x1)
                x1 = hi;
            if (y < y0)
                y0 = y;
            y1 = y + 1;
        }
        if (x1 <= x0) { /* identical frame: one unchanged pixel */
            x0 = 0;
            y0 = 0;
            x1 = 1;
            y1 = 1;
        }
        use_transparency = 1;
    }
    const unsigned w = x1 - x0, h = y1 - y0;
    for (unsigned y = 0; y < h; y++) {
        const unsigned char *src = pixels + (size_t)(y0 + y) * W + x0;
        const unsigned char *old = g->prev + (size_t)(y0 + y) * W + x0;
        unsigned char *dst = g->work + (size_t)y * w;
        for (unsigned x = 0; x < w; x++) {
            if (src[x] >= g->n_colors || (int)src[x] == g->transparent) {
                snprintf(g->err, sizeof g->err,
                         "frame %lu: pixel (%u, %u) has index %u, which is "
                         "outside the palette or the transparent index",
                         g->frames, x0 + x, y0 + y, (unsigned)src[x]);
                g->failed = 1;
                return -1;
            }
            dst[x] = (use_transparency && src[x] == old[x])
                         ? (unsigned char)g->transparent
                         : src[x];
        }
    }
    memcpy(g->prev, pixels, (size_t)W * H);

    /* Graphic control extension: disposal 1 (leave in place), delay, and
     * the transparent index when cropping relies on it. */
    put_bytes(g, "\x21\xf9\x04", 3);
    put_u8(g, (1u << 2) | (use_transparency ? 1u : 0u));
    put_u16(g, delay_cs > 65535 ? 65535 : delay_cs);
    put_u8(g, use_transparency ? (unsigned)g->transparent : 0u);
    put_u8(g, 0);
    /* Image descriptor: no local table, not interlaced. */
    put_u8(g, 0x2c);
    put_u16(g, x0);
    put_u16(g, y0);
    put_u16(g, w);
    put_u16(g, h);
    put_u8(g, 0);
    lzw_encode(g, g->work, (size_t)w * h);
    g->frames++;
    return g->failed ? -1 : 0;
}

int gif_close(gif_writer *g, char *err, size_t errlen)
{
    if (!g) {
        snprintf(err, errlen, "gif_close: no writer");
        return -1;
    }
    if (g->frames == 0 && !g->failed) {
        snprintf(g->err, sizeof g->err, "no frames were added");
        g->failed = 1;
    }
    put_u8(g, 0x3b); /* trailer */
    if (g->failed) {
        snprintf(err, errlen, "%s", g->err);
        gif_abort(g);
        return -1;
    }
    int rc = out_commit(&g->file, err, errlen);
    free(g->prev);
    free(g->work);
    free(g);
    return rc;
}

void gif_abort(gif_writer *g)
{
    if (!g)
        return;
    out_abort(&g->file);
    free(g->prev);
    free(g->work);
    free(g);
}

const char *gif_error(const gif_writer *g)
{
    return g ? g->err : "";
}
