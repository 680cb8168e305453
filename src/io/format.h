/* SPDX-License-Identifier: MIT */
/* The container of saved models and training states: a 24-byte header
 * and tagged, CRC-checked sections.  docs/file-format.md is the format's
 * one description; change it with the code. */
#ifndef NVP_FORMAT_H
#define NVP_FORMAT_H

#include "io/bytes.h"
#include "core/error.h"

#define NVP_FORMAT_VERSION NVP_FILE_FORMAT_VERSION
#define NVP_KIND_MODEL 1
#define NVP_KIND_TRAINING 2
#define NVP_HEADER_BYTES 24
#define NVP_MAX_SECTIONS 8
/* No valid file is larger: three float vectors of NVP_MAX_PARAMS (an
 * optimizer state: two moments and the parameter average) and change. */
#define NVP_MAX_FILE_BYTES                                                 \
    (sizeof(size_t) >= 8 ? (size_t)12 * NVP_MAX_PARAMS + ((size_t)1 << 24)  \
                         : SIZE_MAX)
/* Tags read as four ASCII characters in a hex dump. */
#define NVP_TAG(a, b, c, d)                                                \
    ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 |            \
     (uint32_t)(d) << 24)

void nvp__fmt_header(nvp_writer *w, uint32_t kind, uint32_t n_sections);
/* Starts a section; returns its start for nvp__fmt_section_end, which
 * fills in the length and appends the CRC. */
size_t nvp__fmt_section_begin(nvp_writer *w, uint32_t tag);
void nvp__fmt_section_end(nvp_writer *w, size_t start);

typedef struct nvp_section {
    uint32_t tag;
    nvp_reader body; /* the payload, ready to read */
} nvp_section;

/* Checks the header (magic, version, kind, CRC) and every section's bounds
 * and CRC, with nothing left over; fills sections[0 .. *count).
 * Errors (recorded for fn): NVP_EFORMAT, NVP_EVERSION. */
int nvp__fmt_open(const nvp_errbox *eb, const char *fn, const void *data,
                  size_t size, uint32_t kind, nvp_section *sections,
                  size_t *count);
/* The first section with this tag, or NULL. */
nvp_section *nvp__fmt_find(nvp_section *sections, size_t count,
                           uint32_t tag);

/* Writes one kind of file: the main handle and its optional companion
 * (chain and scaler, optimizer and generator). */
typedef void (*nvp_write_fn)(nvp_writer *w, const void *main,
                             const void *companion);
/* The two ways out of a writer: into a caller's buffer (buf NULL: only
 * the size), or atomically into a file, staged in memory from alloc. */
int nvp__save_buffer(const nvp_errbox *eb, const char *fn, nvp_write_fn write,
                     const void *main, const void *companion, void *buf,
                     size_t cap, size_t *size);
int nvp__save_file(const nvp_errbox *eb, const char *fn, nvp_write_fn write,
                   const void *main, const void *companion,
                   const nvp_allocator *alloc, const char *path);

/* Reads one kind of file from memory into new handles *out and
 * *companion_out (the latter may be NULL). */
typedef int (*nvp_load_fn)(const char *fn, const void *data, size_t size,
                           const nvp_allocator *alloc, void *out,
                           void *companion_out);
/* Reads path whole and hands it to load. */
int nvp__load_file(const char *fn, nvp_load_fn load, const char *path,
                   const nvp_allocator *alloc, void *out, void *companion_out);

/* Reads a whole file into memory from the allocator (at most limit
 * bytes; a file that does not start with the magic is refused before
 * anything is allocated).  Errors: NVP_EIO (cannot open, not a regular
 * file, short read), NVP_EFORMAT (larger than limit, no magic),
 * NVP_ENOMEM. */
int nvp__read_file(const nvp_errbox *eb, const char *fn, const char *path,
                   const nvp_allocator *a, size_t limit, unsigned char **data,
                   size_t *size);
/* Replaces path with data atomically: a temporary file in the same
 * directory, written, flushed to disk, then renamed over path (over the
 * file a symbolic link names, keeping the link; keeping a replaced file's
 * mode).  On any failure the temporary is removed and path is untouched.
 * An existing non-regular file (device, FIFO) and a link standing for an
 * open file (/dev/stdout, /dev/fd/N) are written straight through
 * instead, without that guarantee.  Errors: NVP_EINVAL (empty or too long
 * path), NVP_EIO. */
int nvp__write_file_atomic(const nvp_errbox *eb, const char *fn,
                           const char *path, const void *data, size_t size);

#endif
