/* SPDX-License-Identifier: MIT */
#include "core/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *libc_alloc(void *user, size_t size)
{
    (void)user;
    return malloc(size);
}

static void *libc_realloc(void *user, void *ptr, size_t size)
{
    (void)user;
    return realloc(ptr, size);
}

static void libc_free(void *user, void *ptr)
{
    (void)user;
    free(ptr);
}

int nvp__allocator_init(nvp_allocator *dst, const nvp_allocator *src)
{
    if (!src) {
        dst->version = NVP_ALLOCATOR_VERSION;
        dst->user = NULL;
        dst->alloc_fn = libc_alloc;
        dst->realloc_fn = libc_realloc;
        dst->free_fn = libc_free;
        return NVP_OK;
    }
    if (src->version != NVP_ALLOCATOR_VERSION || !src->alloc_fn ||
        !src->realloc_fn || !src->free_fn)
        return NVP_EINVAL;
    *dst = *src;
    return NVP_OK;
}

void *nvp__malloc(const nvp_allocator *a, size_t bytes)
{
    if (bytes == 0)
        bytes = 1;
    return a->alloc_fn(a->user, bytes);
}

void nvp__free(const nvp_allocator *a, void *p)
{
    if (p)
        a->free_fn(a->user, p);
}

/* Over-allocates by NVP_ALIGN bytes and keeps the raw pointer just below
 * the aligned block, so that any allocator (even one with 1-byte alignment)
 * can back the SIMD buffers. */
void *nvp__alloc_aligned(const nvp_allocator *a, size_t bytes)
{
    size_t total;
    if (nvp__add(bytes, 2 * NVP_ALIGN, &total))
        return NULL;
    unsigned char *raw = nvp__malloc(a, total);
    if (!raw)
        return NULL;
    uintptr_t start = (uintptr_t)raw + sizeof(void *);
    uintptr_t aligned = (start + NVP_ALIGN - 1) & ~(uintptr_t)(NVP_ALIGN - 1);
    unsigned char *p = (unsigned char *)aligned;
    memcpy(p - sizeof(void *), &raw, sizeof(void *));
    return p;
}

void nvp__free_aligned(const nvp_allocator *a, void *p)
{
    if (!p)
        return;
    void *raw;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof(void *));
    nvp__free(a, raw);
}
