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

void nvp__fmt_header(nvp_writer *w, uint32_t version, uint32_t kind,
                     uint32_t n_sections);
/* Starts a section; returns its start for nvp__fmt_section_end, which
 * fills in the length and appends the CRC. */
size_t nvp__fmt_section_begin(nvp_writer *w, uint32_t tag);
void nvp__fmt_section_end(nvp_writer *w, size_t start);

typedef struct nvp_section {
    uint32_t tag;
    nvp_reader body; /* the payload, ready to read */
} nvp_section;

/* A section as the file's table gives it: its tag and where its payload
 * lies, in bytes from the start of the file. */
typedef struct nvp_span {
    uint32_t tag;
    uint64_t off, len;
} nvp_span;

/* Where a file's bytes are read from while its header and section table
 * are checked: memory (the whole file), or an open file read a few bytes
 * at a time, so that nothing large is read or allocated before the file's
 * own small fields justify it. */
typedef struct nvp_src {
    const unsigned char *mem; /* the whole file, or NULL: read fd */
    int fd;
    uint64_t size;
    const char *path; /* names fd in messages */
} nvp_src;

/* Copies n bytes at off (within size) into dst.  Errors: NVP_EIO (a read
 * failed or came up short: the file changed under us). */
int nvp__src_read(const char *fn, const nvp_src *src, uint64_t off,
                  void *dst, size_t n);
/* n bytes at off (within size) for reading: a pointer into memory, or,
 * from a file, into a new block from a (*block, for nvp__free; NULL when
 * nothing was allocated).  Errors: NVP_EIO, NVP_ENOMEM. */
int nvp__src_view(const char *fn, const nvp_src *src,
                  const nvp_allocator *a, uint64_t off, size_t n,
                  const unsigned char **p, void **block);

/* One kind of file's own checks on its section table, made before any
 * payload is read beyond the small fields they need: which tags, and every
 * section's size against what the file's counts and dimensions say it must
 * be.  They may read such fields and small sections through src (blocks
 * from alloc, freed before returning), and store what they found in info
 * (the kind's own struct) unless it is NULL.  Errors (recorded for fn):
 * NVP_EFORMAT, NVP_EIO, NVP_ENOMEM. */
typedef int (*nvp_plan_fn)(const char *fn, uint32_t version,
                           const nvp_span *spans, size_t count,
                           const nvp_src *src,
                           const nvp_allocator *alloc, void *info);

/* Reads one kind of file from memory into new handles *out and
 * *companion_out (the latter may be NULL). */
typedef int (*nvp_load_fn)(const char *fn, const void *data, size_t size,
                           const nvp_allocator *alloc, void *out,
                           void *companion_out);

typedef struct nvp_file_kind {
    uint32_t kind; /* NVP_KIND_* */
    nvp_plan_fn plan;
    nvp_load_fn load;
} nvp_file_kind;

/* Checks the header (magic, CRC, version, kind, section count) and the
 * section table (every section within the file, nothing after the last),
 * reading only the header and the sections' 12-byte heads through src;
 * fills spans[0 .. *count).  Errors (recorded for fn): NVP_EFORMAT,
 * NVP_EVERSION, NVP_EIO. */
int nvp__fmt_table(const char *fn, const nvp_src *src, uint32_t kind,
                   uint32_t *version, nvp_span *spans, size_t *count);

/* A whole file in memory: nvp__fmt_table, every section's CRC, then the
 * kind's plan (info as there); fills sections[0 .. *count).
 * Errors (recorded for fn): NVP_EFORMAT, NVP_EVERSION, NVP_ENOMEM. */
int nvp__fmt_open(const char *fn, const void *data, size_t size,
                  const nvp_file_kind *k, const nvp_allocator *alloc,
                  nvp_section *sections, size_t *count, void *info);
/* The first section with this tag, or NULL. */
nvp_section *nvp__fmt_find(nvp_section *sections, size_t count,
                           uint32_t tag);
/* The index of the first span with this tag, or count. */
size_t nvp__span_find(const nvp_span *spans, size_t count, uint32_t tag);
/* Every tag one of the n in tags, none twice.  Errors: NVP_EFORMAT. */
int nvp__spans_known(const char *fn, const nvp_span *spans, size_t count,
                     const uint32_t *tags, size_t n);

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

/* Loads a file: opens path (a regular file no larger than
 * NVP_MAX_FILE_BYTES), checks its header and section table and the kind's
 * plan through small reads, and only then reads it whole into memory from
 * alloc and hands it to the kind's load.  A file whose size its own fields
 * do not justify is refused before anything of that size is allocated or
 * read.  Errors: NVP_EINVAL, NVP_EIO (cannot open, not a regular file,
 * short read), NVP_EFORMAT, NVP_EVERSION, NVP_ENOMEM. */
int nvp__load_file(const char *fn, const nvp_file_kind *k, const char *path,
                   const nvp_allocator *alloc, void *out, void *companion_out);

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
