/* SPDX-License-Identifier: MIT */
/* Little-endian encoding for the file format: a writer that can also just
 * count, and a bounds-checked reader that treats every byte as hostile. */
#ifndef NVP_BYTES_H
#define NVP_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

_Static_assert(sizeof(float) == 4, "float must be IEEE binary32");

typedef struct nvp_writer {
    unsigned char *p; /* NULL: only count */
    size_t pos;
} nvp_writer;

static inline void nvp__put_bytes(nvp_writer *w, const void *src, size_t n)
{
    if (w->p)
        memcpy(w->p + w->pos, src, n);
    w->pos += n;
}

static inline void nvp__put_u32(nvp_writer *w, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8),
                          (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    nvp__put_bytes(w, b, 4);
}

static inline void nvp__put_u64(nvp_writer *w, uint64_t v)
{
    nvp__put_u32(w, (uint32_t)v);
    nvp__put_u32(w, (uint32_t)(v >> 32));
}

static inline void nvp__put_f32(nvp_writer *w, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    nvp__put_u32(w, u);
}

static inline void nvp__put_f32s(nvp_writer *w, const float *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        nvp__put_f32(w, f[i]);
}

/* Reader: every get fails (returns -1 and latches `bad`) instead of
 * reading past the end. */
typedef struct nvp_reader {
    const unsigned char *p;
    size_t len, pos;
    int bad;
} nvp_reader;

static inline int nvp__need(nvp_reader *r, size_t n)
{
    if (r->bad || n > r->len - r->pos) {
        r->bad = 1;
        return -1;
    }
    return 0;
}

static inline int nvp__get_u32(nvp_reader *r, uint32_t *v)
{
    if (nvp__need(r, 4))
        return -1;
    const unsigned char *b = r->p + r->pos;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
         (uint32_t)b[3] << 24;
    r->pos += 4;
    return 0;
}

static inline int nvp__get_u64(nvp_reader *r, uint64_t *v)
{
    uint32_t lo, hi;
    if (nvp__get_u32(r, &lo) || nvp__get_u32(r, &hi))
        return -1;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

static inline int nvp__get_f32(nvp_reader *r, float *f)
{
    uint32_t u;
    if (nvp__get_u32(r, &u))
        return -1;
    memcpy(f, &u, 4);
    return 0;
}

static inline int nvp__get_f32s(nvp_reader *r, float *f, size_t n)
{
    if (n > (r->len - r->pos) / 4) {
        r->bad = 1;
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        nvp__get_f32(r, &f[i]);
    return 0;
}

#endif
