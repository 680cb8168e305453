/* SPDX-License-Identifier: MIT */
/* The saved-file container: header and CRC-checked sections. */
#include "io/format.h"

#include "core/alloc.h"
#include "io/crc32.h"

static const unsigned char magic[8] = {'N', 'V', 'P', 'F', 'L', 'O', 'W', 0};

void nvp__fmt_header(nvp_writer *w, uint32_t version, uint32_t kind,
                     uint32_t n_sections)
{
    const size_t start = w->pos;
    nvp__put_bytes(w, magic, 8);
    nvp__put_u32(w, version);
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

static const char *kind_name(uint32_t kind)
{
    return kind == NVP_KIND_MODEL      ? "a model"
           : kind == NVP_KIND_TRAINING ? "a training state"
                                       : "unknown content";
}

int nvp__fmt_table(const char *fn, const nvp_src *src, uint32_t kind,
                   uint32_t *version_out, nvp_span *spans, size_t *count)
{
    const nvp_errbox *eb = NULL;
    const uint64_t size = src->size;
    *count = 0;
    NVP_REQUIRE(size >= NVP_HEADER_BYTES, NVP_EFORMAT,
                "%s: %llu bytes is too short for a libnvpflow file", fn,
                (unsigned long long)size);
    unsigned char h[NVP_HEADER_BYTES];
    int rc = nvp__src_read(fn, src, 0, h, sizeof h);
    if (rc)
        return rc;
    NVP_REQUIRE(memcmp(h, magic, 8) == 0, NVP_EFORMAT,
                "%s: not a libnvpflow file (no \"NVPFLOW\" magic)", fn);
    nvp_reader r = {h, sizeof h, 8, 0};
    uint32_t version, file_kind, n, crc;
    nvp__get_u32(&r, &version);
    nvp__get_u32(&r, &file_kind);
    nvp__get_u32(&r, &n);
    nvp__get_u32(&r, &crc);
    NVP_REQUIRE(crc == nvp__crc32(0, h, 20), NVP_EFORMAT,
                "%s: header checksum mismatch (corrupt file)", fn);
    NVP_REQUIRE(version >= 1 && version <= NVP_FORMAT_VERSION, NVP_EVERSION,
                "%s: format version %u, this library reads versions 1 to %d",
                fn, version, NVP_FORMAT_VERSION);
    NVP_REQUIRE(file_kind == kind, NVP_EFORMAT,
                "%s: the file holds %s, not %s", fn, kind_name(file_kind),
                kind_name(kind));
    NVP_REQUIRE(n >= 1 && n <= NVP_MAX_SECTIONS, NVP_EFORMAT,
                "%s: %u sections (expected 1 to %d)", fn, n,
                NVP_MAX_SECTIONS);
    /* Only the sections' heads are read: each must lie within the file,
     * and the last must end where the file does. */
    uint64_t pos = NVP_HEADER_BYTES;
    for (uint32_t i = 0; i < n; i++) {
        NVP_REQUIRE(size - pos >= 12, NVP_EFORMAT,
                    "%s: truncated in section %u's header", fn, i);
        unsigned char head[12];
        if ((rc = nvp__src_read(fn, src, pos, head, sizeof head)) != NVP_OK)
            return rc;
        nvp_reader hr = {head, sizeof head, 0, 0};
        uint32_t tag;
        uint64_t len;
        nvp__get_u32(&hr, &tag);
        nvp__get_u64(&hr, &len);
        const uint64_t body = pos + 12;
        NVP_REQUIRE(len <= size - body && size - body - len >= 4,
                    NVP_EFORMAT,
                    "%s: section %u claims %llu bytes and a 4-byte checksum, "
                    "%llu bytes remain (truncated or corrupt)",
                    fn, i, (unsigned long long)len,
                    (unsigned long long)(size - body));
        spans[i] = (nvp_span){tag, body, len};
        pos = body + len + 4;
    }
    NVP_REQUIRE(pos == size, NVP_EFORMAT,
                "%s: %llu unexpected bytes after the last section", fn,
                (unsigned long long)(size - pos));
    *count = n;
    *version_out = version;
    return NVP_OK;
}

int nvp__fmt_open(const char *fn, const void *data, size_t size,
                  const nvp_file_kind *k, const nvp_allocator *alloc,
                  nvp_section *sections, size_t *count, void *info)
{
    const nvp_errbox *eb = NULL;
    const nvp_src src = {data, -1, size, NULL};
    nvp_span spans[NVP_MAX_SECTIONS];
    size_t n;
    uint32_t version;
    int rc = nvp__fmt_table(fn, &src, k->kind, &version, spans, &n);
    if (rc)
        return rc;
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        /* The CRC covers the tag, the length and the payload. */
        const size_t start = (size_t)spans[i].off - 12;
        const size_t end = (size_t)(spans[i].off + spans[i].len);
        nvp_reader cr = {p + end, 4, 0, 0};
        uint32_t crc;
        nvp__get_u32(&cr, &crc);
        NVP_REQUIRE(crc == nvp__crc32(0, p + start, end - start), NVP_EFORMAT,
                    "%s: section %zu checksum mismatch (corrupt file)", fn,
                    i);
        sections[i].tag = spans[i].tag;
        sections[i].body =
            (nvp_reader){p + spans[i].off, (size_t)spans[i].len, 0, 0};
    }
    if ((rc = k->plan(fn, version, spans, n, &src, alloc, info)) != NVP_OK)
        return rc;
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

size_t nvp__span_find(const nvp_span *spans, size_t count, uint32_t tag)
{
    size_t i = 0;
    while (i < count && spans[i].tag != tag)
        i++;
    return i;
}

int nvp__spans_known(const char *fn, const nvp_span *spans, size_t count,
                     const uint32_t *tags, size_t n)
{
    const nvp_errbox *eb = NULL;
    for (size_t i = 0; i < count; i++) {
        size_t t = 0;
        while (t < n && tags[t] != spans[i].tag)
            t++;
        NVP_REQUIRE(t < n, NVP_EFORMAT, "%s: unknown section %zu", fn, i);
        NVP_REQUIRE(nvp__span_find(spans, i, spans[i].tag) == i, NVP_EFORMAT,
                    "%s: repeated section %zu", fn, i);
    }
    return NVP_OK;
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
