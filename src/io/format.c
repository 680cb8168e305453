/* SPDX-License-Identifier: MIT */
/* The saved-file container: header and CRC-checked sections. */
#include "io/format.h"

#include "core/alloc.h"
#include "io/crc32.h"

static const unsigned char magic[8] = {'N', 'V', 'P', 'F', 'L', 'O', 'W', 0};

void nvp__fmt_header(nvp_writer *w, uint32_t kind, uint32_t n_sections)
{
    const size_t start = w->pos;
    nvp__put_bytes(w, magic, 8);
    nvp__put_u32(w, NVP_FORMAT_VERSION);
    nvp__put_u32(w, kind);
    nvp__put_u32(w, n_sections);
    nvp__put_u32(w, w->p ? nvp__crc32(0, w->p + start, 20) : 0);
}

size_t nvp__fmt_section_begin(nvp_writer *w, uint32_t tag)
{
    const size_t start = w->pos;
    nvp__put_u32(w, tag);
    nvp__put_u64(w, 0); /* patched by nvp__fmt_section_end */
    return start;
}

void nvp__fmt_section_end(nvp_writer *w, size_t start)
{
    if (w->p) {
        nvp_writer len = {w->p, start + 4};
        nvp__put_u64(&len, (uint64_t)(w->pos - start - 12));
        nvp__put_u32(w, nvp__crc32(0, w->p + start, w->pos - start));
    } else {
        w->pos += 4;
    }
}

int nvp__fmt_open(const nvp_errbox *eb, const char *fn, const void *data,
                  size_t size, uint32_t kind, nvp_section *sections,
                  size_t *count)
{
    nvp_reader r = {data, size, 0, 0};
    NVP_REQUIRE(size >= NVP_HEADER_BYTES, NVP_EFORMAT,
                "%s: %zu bytes is too short for an nvpflow file", fn, size);
    NVP_REQUIRE(memcmp(data, magic, 8) == 0, NVP_EFORMAT,
                "%s: not an nvpflow file (bad magic)", fn);
    r.pos = 8;
    uint32_t version, file_kind, n, crc;
    nvp__get_u32(&r, &version);
    nvp__get_u32(&r, &file_kind);
    nvp__get_u32(&r, &n);
    nvp__get_u32(&r, &crc);
    NVP_REQUIRE(crc == nvp__crc32(0, data, 20), NVP_EFORMAT,
                "%s: header checksum mismatch (corrupt file)", fn);
    NVP_REQUIRE(version == NVP_FORMAT_VERSION, NVP_EVERSION,
                "%s: format version %u, this library reads version %d", fn,
                version, NVP_FORMAT_VERSION);
    NVP_REQUIRE(file_kind == kind, NVP_EFORMAT,
                "%s: the file holds %s, not %s", fn,
                file_kind == NVP_KIND_MODEL ? "a model"
                : file_kind == NVP_KIND_TRAINING ? "a training state"
                                                  : "unknown content",
                kind == NVP_KIND_MODEL ? "a model" : "a training state");
    NVP_REQUIRE(n >= 1 && n <= NVP_MAX_SECTIONS, NVP_EFORMAT,
                "%s: %u sections (expected 1 to %d)", fn, n,
                NVP_MAX_SECTIONS);
    for (uint32_t i = 0; i < n; i++) {
        const size_t start = r.pos;
        uint32_t tag;
        uint64_t len;
        NVP_REQUIRE(nvp__get_u32(&r, &tag) == 0 && nvp__get_u64(&r, &len) == 0,
                    NVP_EFORMAT, "%s: truncated in section %u's header", fn, i);
        NVP_REQUIRE(len <= r.len - r.pos && r.len - r.pos - len >= 4,
                    NVP_EFORMAT,
                    "%s: section %u claims %llu bytes and a 4-byte checksum, "
                    "%zu bytes remain (truncated or corrupt)",
                    fn, i, (unsigned long long)len, r.len - r.pos);
        const size_t body = r.pos;
        r.pos += (size_t)len;
        nvp__get_u32(&r, &crc);
        NVP_REQUIRE(crc == nvp__crc32(0, r.p + start, body + (size_t)len - start),
                    NVP_EFORMAT, "%s: section %u checksum mismatch (corrupt "
                                 "file)", fn, i);
        sections[i].tag = tag;
        sections[i].body = (nvp_reader){r.p + body, (size_t)len, 0, 0};
    }
    NVP_REQUIRE(r.pos == r.len, NVP_EFORMAT,
                "%s: %zu unexpected bytes after the last section", fn,
                r.len - r.pos);
    *count = n;
    return NVP_OK;
}

nvp_section *nvp__fmt_find(nvp_section *sections, size_t count, uint32_t tag)
{
    for (size_t i = 0; i < count; i++)
        if (sections[i].tag == tag)
            return &sections[i];
    return NULL;
}

int nvp__save_buffer(const nvp_errbox *eb, const char *fn, nvp_write_fn write,
                     const void *main, const void *companion, void *buf,
                     size_t cap, size_t *size)
{
    NVP_REQUIRE(size != NULL, NVP_EINVAL, "%s: size is NULL", fn);
    nvp_writer count = {NULL, 0};
    write(&count, main, companion);
    *size = count.pos;
    if (!buf)
        return NVP_OK;
    NVP_REQUIRE(cap >= count.pos, NVP_EBUFSIZE,
                "%s: %zu bytes are needed, the buffer holds %zu", fn,
                count.pos, cap);
    nvp_writer w = {buf, 0};
    write(&w, main, companion);
    return NVP_OK;
}

int nvp__save_file(const nvp_errbox *eb, const char *fn, nvp_write_fn write,
                   const void *main, const void *companion,
                   const nvp_allocator *alloc, const char *path)
{
    NVP_REQUIRE(path != NULL, NVP_EINVAL, "%s: path is NULL", fn);
    nvp_writer w = {NULL, 0};
    write(&w, main, companion);
    const size_t n = w.pos;
    w.p = nvp__malloc(alloc, n);
    if (!w.p)
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory for %zu bytes",
                         fn, n);
    w.pos = 0;
    write(&w, main, companion);
    int rc = nvp__write_file_atomic(eb, fn, path, w.p, n);
    nvp__free(alloc, w.p);
    return rc;
}

int nvp__load_file(const char *fn, nvp_load_fn load, const char *path,
                   const nvp_allocator *alloc, void *out, void *companion_out)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(path != NULL, NVP_EINVAL, "%s: path is NULL", fn);
    nvp_allocator a;
    NVP_REQUIRE(nvp__allocator_init(&a, alloc) == NVP_OK, NVP_EINVAL,
                "%s: invalid allocator", fn);
    unsigned char *data;
    size_t size;
    int rc = nvp__read_file(NULL, fn, path, &a, NVP_MAX_FILE_BYTES, &data,
                            &size);
    if (rc)
        return rc;
    rc = load(fn, data, size, alloc, out, companion_out);
    nvp__free(&a, data);
    return rc;
}
