/* SPDX-License-Identifier: MIT */
/* Allocation through the handle's allocator, with overflow-checked sizes
 * and 64-byte alignment for the buffers the SIMD kernels stream through. */
#ifndef NVP_ALLOC_H
#define NVP_ALLOC_H

#include "nvpflow.h"

/* Alignment of every buffer from nvp__alloc_aligned (one cache line, and
 * the width of an AVX-512 register). */
#define NVP_ALIGN 64

/* Validates a caller's allocator (NULL selects the C library's) and copies
 * it into *dst.  Returns NVP_OK or NVP_EINVAL. */
int nvp__allocator_init(nvp_allocator *dst, const nvp_allocator *src);

void *nvp__malloc(const nvp_allocator *a, size_t bytes);
void nvp__free(const nvp_allocator *a, void *p);

/* bytes rounded up to NVP_ALIGN; NULL on failure or overflow.  Release
 * with nvp__free_aligned. */
void *nvp__alloc_aligned(const nvp_allocator *a, size_t bytes);
void nvp__free_aligned(const nvp_allocator *a, void *p);

/* *out = a * b; returns 0 on success, -1 if the product overflows. */
static inline int nvp__mul(size_t a, size_t b, size_t *out)
{
    if (b != 0 && a > (size_t)-1 / b)
        return -1;
    *out = a * b;
    return 0;
}

/* *out = a + b; returns 0 on success, -1 on overflow. */
static inline int nvp__add(size_t a, size_t b, size_t *out)
{
    if (a > (size_t)-1 - b)
        return -1;
    *out = a + b;
    return 0;
}

/* count floats, 64-byte aligned; NULL when out of memory or when the
 * byte count does not fit a size_t (32-bit targets). */
static inline float *nvp__alloc_floats(const nvp_allocator *a, size_t count)
{
    size_t bytes;
    if (nvp__mul(count, sizeof(float), &bytes))
        return NULL;
    return (float *)nvp__alloc_aligned(a, bytes);
}

/* Bump allocation inside an arena: returns *cursor and advances it by
 * count floats rounded up to a cache line. */
static inline float *nvp__carve(float **cursor, size_t count)
{
    float *p = *cursor;
    *cursor += (count + 15) & ~(size_t)15;
    return p;
}

/* The floats nvp__carve needs for count floats. */
static inline size_t nvp__carved(size_t count)
{
    return (count + 15) & ~(size_t)15;
}

#endif
