/* SPDX-License-Identifier: MIT */
/* Saving and loading a chain (architecture and parameters), optionally
 * with the scaler its data was standardised with: the ARCH, PARM and SCAL
 * sections of a model file, described in docs/file-format.md. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "model/chain.h"
#include "core/cpu.h"
#include "io/format.h"
#include "data/scaler.h"

#define TAG_ARCH NVP_TAG('A', 'R', 'C', 'H')
#define TAG_PARM NVP_TAG('P', 'A', 'R', 'M')
#define TAG_SCAL NVP_TAG('S', 'C', 'A', 'L')
#define BASE_NORMAL 1u

static void write_model(nvp_writer *w, const void *chain, const void *scaler)
{
    const nvp_chain *c = chain;
    const nvp_scaler *s = scaler;
    nvp__fmt_header(w, NVP_KIND_MODEL, s ? 3 : 2);
    size_t st = nvp__fmt_section_begin(w, TAG_ARCH);
    nvp__put_u32(w, (uint32_t)c->dim);
    nvp__put_u32(w, BASE_NORMAL);
    nvp__put_u32(w, (uint32_t)c->n_layers);
    for (size_t k = 0; k < c->n_layers; k++) {
        const nvp_coupling *l = c->layers[k];
        nvp__put_u32(w, (uint32_t)(l->n_dense - 1));
        for (size_t h = 0; h + 1 < l->n_dense; h++)
            nvp__put_u32(w, (uint32_t)l->dense[h].out);
        nvp__put_f32(w, l->clamp);
        nvp__put_bytes(w, l->mask, l->dim);
    }
    nvp__fmt_section_end(w, st);
    st = nvp__fmt_section_begin(w, TAG_PARM);
    nvp__put_u64(w, c->n_params);
    nvp__put_f32s(w, c->params, c->n_params);
    nvp__fmt_section_end(w, st);
    if (s) {
        st = nvp__fmt_section_begin(w, TAG_SCAL);
        nvp__put_u32(w, (uint32_t)s->dim);
        nvp__put_f32s(w, s->mean, s->dim);
        nvp__put_f32s(w, s->sd, s->dim);
        nvp__fmt_section_end(w, st);
    }
}

static int check_save_args(const nvp_chain *c, const nvp_scaler *s,
                           const char *fn)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE(c != NULL, NVP_EINVAL, "%s: chain is NULL", fn);
    NVP_REQUIRE(!s || s->dim == c->dim, NVP_EDIM,
                "%s: scaler has dim %zu, the chain %zu", fn, s ? s->dim : 0,
                c->dim);
    /* The loader refuses non-finite parameters, so such a model is not
     * written at all (training with a step size so large that the
     * parameters overflow can make one). */
    NVP_REQUIRE(nvp__all_finite(c->params, c->n_params), NVP_ENONFINITE,
                "%s: the chain holds a non-finite parameter; not saved", fn);
    return NVP_OK;
}

int nvp_chain_save_buffer(const nvp_chain *c, const nvp_scaler *s, void *buf,
                          size_t cap, size_t *size)
{
    const char *fn = "nvp_chain_save_buffer";
    int rc = check_save_args(c, s, fn);
    return rc ? rc
              : nvp__save_buffer(&c->err, fn, write_model, c, s, buf, cap,
                                 size);
}

int nvp_chain_save_file(const nvp_chain *c, const nvp_scaler *s,
                        const char *path)
{
    const char *fn = "nvp_chain_save_file";
    int rc = check_save_args(c, s, fn);
    return rc ? rc
              : nvp__save_file(&c->err, fn, write_model, c, s, &c->alloc,
                               path);
}

/* One layer's description as read from ARCH. */
typedef struct layer_desc {
    uint32_t n_hidden;
    size_t hidden[NVP_MAX_HIDDEN_LAYERS];
    float clamp;
    const unsigned char *mask;
} layer_desc;

/* Reads layer k's description, checking everything the constructor would,
 * and adds its parameter count to *total (bounded by NVP_MAX_PARAMS). */
static int read_layer(const char *fn, nvp_reader *r, size_t dim, size_t k,
                      layer_desc *d, uint64_t *total)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(nvp__get_u32(r, &d->n_hidden) == 0, NVP_EFORMAT,
                "%s: layer %zu: truncated", fn, k);
    NVP_REQUIRE(d->n_hidden <= NVP_MAX_HIDDEN_LAYERS, NVP_EFORMAT,
                "%s: layer %zu: %u hidden layers (at most %d)", fn, k,
                d->n_hidden, NVP_MAX_HIDDEN_LAYERS);
    for (uint32_t h = 0; h < d->n_hidden; h++) {
        uint32_t wdt;
        NVP_REQUIRE(nvp__get_u32(r, &wdt) == 0, NVP_EFORMAT,
                    "%s: layer %zu: truncated", fn, k);
        NVP_REQUIRE(wdt >= 1 && wdt <= NVP_MAX_WIDTH, NVP_EFORMAT,
                    "%s: layer %zu: hidden width %u outside [1, %d]", fn, k,
                    wdt, NVP_MAX_WIDTH);
        d->hidden[h] = wdt;
    }
    NVP_REQUIRE(nvp__get_f32(r, &d->clamp) == 0 && nvp__need(r, dim) == 0,
                NVP_EFORMAT, "%s: layer %zu: truncated", fn, k);
    NVP_REQUIRE(isfinite(d->clamp) && d->clamp >= 0.0f, NVP_EFORMAT,
                "%s: layer %zu: invalid log-scale clamp", fn, k);
    d->mask = r->p + r->pos;
    r->pos += dim;
    uint64_t na = 0;
    for (size_t i = 0; i < dim; i++) {
        NVP_REQUIRE(d->mask[i] <= 1, NVP_EFORMAT,
                    "%s: layer %zu: mask byte %zu is %u", fn, k, i,
                    (unsigned)d->mask[i]);
        na += d->mask[i];
    }
    NVP_REQUIRE(na > 0 && na < dim, NVP_EFORMAT,
                "%s: layer %zu: the mask needs both a 0 and a 1", fn, k);
    /* Every factor is at most 2^16 here, so no product overflows 64 bits. */
    uint64_t in = na;
    for (uint32_t h = 0; h <= d->n_hidden; h++) {
        const uint64_t out = h < d->n_hidden ? d->hidden[h] : 2 * (dim - na);
        *total += in * out + out;
        NVP_REQUIRE(*total <= NVP_MAX_PARAMS, NVP_EFORMAT,
                    "%s: more than %zu parameters", fn,
                    (size_t)NVP_MAX_PARAMS);
        in = out;
    }
    return NVP_OK;
}

static int read_scaler(const char *fn, nvp_reader *r, size_t dim,
                       const nvp_allocator *alloc, nvp_scaler **out)
{
    const nvp_errbox *eb = NULL;
    uint32_t sdim;
    NVP_REQUIRE(nvp__get_u32(r, &sdim) == 0 && sdim == dim &&
                    r->len - r->pos == (size_t)8 * dim,
                NVP_EFORMAT, "%s: the scaler section does not match the model",
                fn);
    nvp_scaler *s;
    int rc = nvp_scaler_create(&s, dim, alloc);
    if (rc)
        return nvp__fail_in(NULL, rc, fn);
    nvp__get_f32s(r, s->mean, dim);
    nvp__get_f32s(r, s->sd, dim);
    for (size_t j = 0; j < dim; j++)
        if (!isfinite(s->mean[j]) || !isfinite(s->sd[j]) || !(s->sd[j] > 0)) {
            nvp_scaler_free(s);
            return nvp__fail(NULL, NVP_EFORMAT,
                             "%s: the scaler's axis %zu is invalid", fn, j);
        }
    *out = s;
    return NVP_OK;
}

static int load_model(const char *fn, const void *data, size_t size,
                      const nvp_allocator *alloc, void *chain_out,
                      void *companion_out)
{
    nvp_chain **out = chain_out;
    nvp_scaler **scaler_out = companion_out;
    const nvp_errbox *eb = NULL;
    nvp_section sec[NVP_MAX_SECTIONS];
    size_t count;
    int rc = nvp__fmt_open(NULL, fn, data, size, NVP_KIND_MODEL, sec, &count);
    if (rc)
        return rc;
    for (size_t i = 0; i < count; i++) {
        NVP_REQUIRE(sec[i].tag == TAG_ARCH || sec[i].tag == TAG_PARM ||
                        sec[i].tag == TAG_SCAL,
                    NVP_EFORMAT, "%s: unknown section %zu", fn, i);
        for (size_t j = 0; j < i; j++)
            NVP_REQUIRE(sec[j].tag != sec[i].tag, NVP_EFORMAT,
                        "%s: repeated section %zu", fn, i);
    }
    nvp_section *arch = nvp__fmt_find(sec, count, TAG_ARCH);
    nvp_section *parm = nvp__fmt_find(sec, count, TAG_PARM);
    nvp_section *scal = nvp__fmt_find(sec, count, TAG_SCAL);
    NVP_REQUIRE(arch && parm, NVP_EFORMAT,
                "%s: the architecture or parameter section is missing", fn);

    /* Pass 1: check the whole architecture and count its parameters
     * before anything is allocated. */
    nvp_reader r = arch->body;
    uint32_t dim, base_kind, n_layers;
    NVP_REQUIRE(nvp__get_u32(&r, &dim) == 0 && nvp__get_u32(&r, &base_kind) == 0 &&
                    nvp__get_u32(&r, &n_layers) == 0,
                NVP_EFORMAT, "%s: truncated architecture", fn);
    NVP_REQUIRE(dim >= 2 && dim <= NVP_MAX_DIM, NVP_EFORMAT,
                "%s: dim %u outside [2, %d]", fn, dim, NVP_MAX_DIM);
    NVP_REQUIRE(base_kind == BASE_NORMAL, NVP_EFORMAT,
                "%s: unknown base distribution %u", fn, base_kind);
    NVP_REQUIRE(n_layers >= 1 && n_layers <= NVP_MAX_LAYERS, NVP_EFORMAT,
                "%s: %u layers (expected 1 to %d)", fn, n_layers,
                NVP_MAX_LAYERS);
    uint64_t total = 0;
    layer_desc d;
    for (size_t k = 0; k < n_layers; k++)
        if ((rc = read_layer(fn, &r, dim, k, &d, &total)) != NVP_OK)
            return rc;
    NVP_REQUIRE(r.pos == r.len, NVP_EFORMAT,
                "%s: extra bytes in the architecture", fn);
    uint64_t n_params;
    nvp_reader pr = parm->body;
    NVP_REQUIRE(nvp__get_u64(&pr, &n_params) == 0 && n_params == total &&
                    pr.len - pr.pos == 4 * total,
                NVP_EFORMAT,
                "%s: the parameter section does not match the architecture "
                "(%llu parameters expected)",
                fn, (unsigned long long)total);

    /* Pass 2: build it.  Every allocation is bounded by the file's size. */
    nvp_allocator a;
    NVP_REQUIRE(nvp__allocator_init(&a, alloc) == NVP_OK, NVP_EINVAL,
                "%s: invalid allocator", fn);
    nvp_coupling **layers = nvp__malloc(&a, n_layers * sizeof *layers);
    if (!layers)
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    memset(layers, 0, n_layers * sizeof *layers);
    nvp_base *base = NULL;
    nvp_scaler *scaler = NULL;
    r = arch->body;
    r.pos = 12;
    uint64_t dummy = 0;
    for (size_t k = 0; k < n_layers && rc == NVP_OK; k++) {
        read_layer(fn, &r, dim, k, &d, &dummy);
        rc = nvp__coupling_new(&layers[k], fn, dim, d.mask, d.n_hidden,
                               d.hidden, alloc);
        if (rc == NVP_OK) {
            layers[k]->clamp = d.clamp;
            nvp__get_f32s(&pr, layers[k]->params, layers[k]->n_params);
            if (!nvp__all_finite(layers[k]->params, layers[k]->n_params))
                rc = nvp__fail(NULL, NVP_EFORMAT,
                               "%s: layer %zu has a non-finite parameter", fn,
                               k);
        }
    }
    if (rc == NVP_OK && (rc = nvp_base_create_normal(&base, dim, alloc)) != NVP_OK)
        rc = nvp__fail_in(NULL, rc, fn);
    if (rc == NVP_OK && scal && scaler_out) {
        nvp_reader sr = scal->body;
        rc = read_scaler(fn, &sr, dim, alloc, &scaler);
    }
    nvp_chain *c = NULL;
    if (rc == NVP_OK && (rc = nvp_chain_create(&c, base, layers, n_layers, alloc)) != NVP_OK)
        rc = nvp__fail_in(NULL, rc, fn);
    if (rc != NVP_OK) {
        for (size_t k = 0; k < n_layers; k++)
            nvp_coupling_free(layers[k]);
        nvp_base_free(base);
        nvp_scaler_free(scaler);
    } else {
        *out = c;
        if (scaler_out)
            *scaler_out = scaler;
    }
    nvp__free(&a, layers);
    return rc;
}

int nvp_chain_load_buffer(nvp_chain **out, nvp_scaler **scaler_out,
                          const void *data, size_t size,
                          const nvp_allocator *alloc)
{
    const char *fn = "nvp_chain_load_buffer";
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    if (scaler_out)
        *scaler_out = NULL;
    NVP_REQUIRE_PTR(data);
    return load_model(fn, data, size, alloc, out, scaler_out);
}

int nvp_chain_load_file(nvp_chain **out, nvp_scaler **scaler_out,
                        const char *path, const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    if (scaler_out)
        *scaler_out = NULL;
    return nvp__load_file("nvp_chain_load_file", load_model, path, alloc, out,
                          scaler_out);
}
