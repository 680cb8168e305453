/* SPDX-License-Identifier: MIT */
/* Helpers shared by the libFuzzer harnesses and the corpus generator:
 * an independent CRC-32, a fixer that recomputes the container's
 * checksums (so that mutations reach the loaders' parsers instead of
 * stopping at the first CRC mismatch), a counting allocator that can fail
 * on demand, and the checks every call's status code must pass.
 *
 * Header-only (static functions) so that every harness is one file plus
 * the library.  Uses only the public header. */
#ifndef NVP_FUZZ_UTIL_H
#define NVP_FUZZ_UTIL_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvpflow.h"

#if defined(__GNUC__)
#define FZ_UNUSED __attribute__((unused))
#else
#define FZ_UNUSED
#endif

/* A failed invariant: print where and why, then abort (libFuzzer and the
 * sanitizers report it as a crash and keep the input). */
#define FZ_CHECK(cond, ...)                                                  \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "\nFUZZ CHECK FAILED at %s:%d: %s\n  ", __FILE__, \
                    __LINE__, #cond);                                        \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n  nvp_errmsg(): \"%s\"\n", nvp_errmsg());     \
            abort();                                                         \
        }                                                                    \
    } while (0)

/* ------------------------------------------------------------- CRC-32 */
/* IEEE 802.3 (reflected 0xEDB88320, as zlib), bit by bit: independent of
 * the library's table. */
static FZ_UNUSED uint32_t fz_crc32(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static FZ_UNUSED uint32_t fz_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static FZ_UNUSED uint64_t fz_get_u64(const unsigned char *p)
{
    return (uint64_t)fz_get_u32(p) | (uint64_t)fz_get_u32(p + 4) << 32;
}

static FZ_UNUSED void fz_put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static FZ_UNUSED void fz_put_u64(unsigned char *p, uint64_t v)
{
    fz_put_u32(p, (uint32_t)v);
    fz_put_u32(p + 4, (uint32_t)(v >> 32));
}

/* Container layout (src/format.h): a 24-byte header (magic, version, kind,
 * section count, CRC of the 20 bytes before it), then sections of u32 tag,
 * u64 length, payload, u32 CRC of tag + length + payload.  Recomputes every
 * checksum that the structure lets us locate; returns the number of
 * sections walked.  Leaves everything else (including nonsense) alone. */
static FZ_UNUSED size_t fz_fix_crcs(unsigned char *d, size_t size)
{
    if (size < 24)
        return 0;
    fz_put_u32(d + 20, fz_crc32(d, 20));
    size_t pos = 24, n = 0;
    while (size - pos >= 12) {
        const uint64_t len = fz_get_u64(d + pos + 4);
        if (len > size - pos - 12 || size - pos - 12 - len < 4)
            break;
        const size_t end = pos + 12 + (size_t)len;
        fz_put_u32(d + end, fz_crc32(d + pos, end - pos));
        pos = end + 4;
        n++;
    }
    return n;
}

/* Section tags in file order; returns how many (at most max). */
static FZ_UNUSED size_t fz_section_tags(const unsigned char *d, size_t size,
                                        uint32_t *tags, size_t max)
{
    size_t pos = 24, n = 0;
    if (size < 24)
        return 0;
    while (size - pos >= 12 && n < max) {
        const uint64_t len = fz_get_u64(d + pos + 4);
        if (len > size - pos - 12 || size - pos - 12 - len < 4)
            break;
        tags[n++] = fz_get_u32(d + pos);
        pos += 16 + (size_t)len;
    }
    return n;
}

#define FZ_TAG(a, b, c, d)                                                 \
    ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 |            \
     (uint32_t)(d) << 24)

/* ------------------------------------------------ counting allocator */
/* Counts live blocks; the allocation with index fail_at (counting every
 * alloc_fn and realloc_fn call) fails, and with fail_all every later one
 * too.  Thread-safe: pool workers allocate their workspaces. */
#define FZ_NEVER ((size_t)-1)
typedef struct fz_alloc_state {
    atomic_size_t live;
    atomic_size_t calls;
    size_t fail_at;
    int fail_all;
} fz_alloc_state;

static FZ_UNUSED int fz_should_fail(fz_alloc_state *st)
{
    const size_t k = atomic_fetch_add(&st->calls, 1);
    return st->fail_at != FZ_NEVER &&
           (k == st->fail_at || (st->fail_all && k > st->fail_at));
}

/* Every block carries a 16-byte header with a magic word, so that a block
 * released through the wrong allocator is caught (here, or by ASan when a
 * block of ours reaches the C library's free). */
#define FZ_HDR 16
#define FZ_MAGIC 0x6e7670667a7a6c62ull

static FZ_UNUSED void *fz_alloc_fn(void *user, size_t size)
{
    fz_alloc_state *st = user;
    if (fz_should_fail(st) || size > SIZE_MAX - FZ_HDR)
        return NULL;
    unsigned char *p = malloc(size + FZ_HDR);
    if (!p)
        return NULL;
    const uint64_t magic = FZ_MAGIC;
    memcpy(p, &magic, sizeof magic);
    atomic_fetch_add(&st->live, 1);
    return p + FZ_HDR;
}

static FZ_UNUSED void fz_free_fn(void *user, void *ptr)
{
    fz_alloc_state *st = user;
    if (!ptr)
        return;
    unsigned char *p = (unsigned char *)ptr - FZ_HDR;
    uint64_t magic;
    memcpy(&magic, p, sizeof magic);
    FZ_CHECK(magic == FZ_MAGIC,
             "a block reached the counting allocator's free that it did not "
             "allocate (or was freed twice)");
    FZ_CHECK(atomic_load(&st->live) > 0, "more frees than allocations");
    memset(p, 0, sizeof magic);
    atomic_fetch_sub(&st->live, 1);
    free(p);
}

static FZ_UNUSED void *fz_realloc_fn(void *user, void *ptr, size_t size)
{
    fz_alloc_state *st = user;
    if (!ptr)
        return fz_alloc_fn(user, size);
    if (fz_should_fail(st) || size > SIZE_MAX - FZ_HDR)
        return NULL;
    unsigned char *p = (unsigned char *)ptr - FZ_HDR;
    uint64_t magic;
    memcpy(&magic, p, sizeof magic);
    FZ_CHECK(magic == FZ_MAGIC, "realloc of a block not from this allocator");
    unsigned char *q = realloc(p, size + FZ_HDR);
    return q ? q + FZ_HDR : NULL;
}

static FZ_UNUSED void fz_alloc_reset(fz_alloc_state *st, size_t fail_at,
                                     int fail_all)
{
    atomic_store(&st->live, 0);
    atomic_store(&st->calls, 0);
    st->fail_at = fail_at;
    st->fail_all = fail_all;
}

static FZ_UNUSED nvp_allocator fz_allocator(fz_alloc_state *st)
{
    nvp_allocator a = {NVP_ALLOCATOR_VERSION, st, fz_alloc_fn, fz_realloc_fn,
                       fz_free_fn};
    return a;
}

/* ------------------------------------------------------ status codes */
/* A message no call but nvp_rng_seed(NULL, ...) produces: set before a
 * call, it tells a failure that recorded no message of its own. */
static char fz_sentinel[256];

static FZ_UNUSED void fz_arm(void)
{
    (void)nvp_rng_seed(NULL, 0);
    snprintf(fz_sentinel, sizeof fz_sentinel, "%s", nvp_errmsg());
}

/* Every status is NVP_OK or a documented NVP_E* code with a real
 * description; a failure leaves a fresh, non-empty nvp_errmsg(). */
static FZ_UNUSED void fz_check_rc(int rc, const char *what)
{
    FZ_CHECK(rc == NVP_OK || (rc <= NVP_EINVAL && rc >= NVP_EBUFSIZE),
             "%s returned %d, not a documented status code", what, rc);
    const char *s = nvp_strerror(rc);
    FZ_CHECK(s != NULL && s[0] != '\0' && strcmp(s, "unknown error") != 0,
             "nvp_strerror(%d) after %s is empty or unknown", rc, what);
    if (rc != NVP_OK) {
        const char *m = nvp_errmsg();
        FZ_CHECK(m != NULL && m[0] != '\0',
                 "%s failed with %d (%s) but nvp_errmsg() is empty", what, rc,
                 s);
        FZ_CHECK(fz_sentinel[0] == '\0' || strcmp(m, fz_sentinel) != 0,
                 "%s failed with %d (%s) without recording a message", what,
                 rc, s);
        /* A wrapped message reads "outer: inner: ..."; "name: name: ..."
         * means the message was formatted over itself. */
        const char *colon = strstr(m, ": ");
        if (colon) {
            const size_t k = (size_t)(colon - m) + 2;
            FZ_CHECK(strncmp(m, m + k, k) != 0,
                     "%s failed with %d: garbled message (its own prefix "
                     "twice): \"%s\"",
                     what, rc, m);
        }
    }
}

#endif
