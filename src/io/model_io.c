/* SPDX-License-Identifier: MIT */
/* Saving and loading a chain (architecture and parameters), optionally
 * with the scaler its data was standardised with: the ARCH (or STCK),
 * PARM and SCAL sections of a model file, described in
 * docs/file-format.md.  A chain of affine couplings alone is written as
 * format version 1 with ARCH, which every release reads; a chain with
 * layers of other kinds as version 2 with STCK, where every layer is its
 * kind's code and the values its table entry stores. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "model/base.h"
#include "model/chain.h"
#include "model/layer.h"
#include "kernels/vec.h"
#include "io/format.h"
#include "data/scaler.h"

#define TAG_ARCH NVP_TAG('A', 'R', 'C', 'H')
#define TAG_PARM NVP_TAG('P', 'A', 'R', 'M')
#define TAG_SCAL NVP_TAG('S', 'C', 'A', 'L')
#define TAG_STCK NVP_TAG('S', 'T', 'C', 'K')
#define TAG_COLS NVP_TAG('C', 'O', 'L', 'S')
#define TAG_BASE NVP_TAG('B', 'A', 'S', 'E')
#define BASE_NORMAL 1u
#define BASE_MIXTURE 2u

/* Names the file's COLS section holds: the chain's dim, then, for a
 * scaler that also standardises a conditional chain's context (dim + C
 * axes) and names those axes, the context's C. */
static size_t saved_names(const nvp_chain *c, const nvp_scaler *s)
{
    if (!c->name_at)
        return 0;
    return s && s->dim > c->dim && s->name_at ? s->dim : c->dim;
}

static void write_model(nvp_writer *w, const void *chain, const void *scaler)
{
    const nvp_chain *c = chain;
    const nvp_scaler *s = scaler;
    /* Version 1 (ARCH) while everything fits it, so that older releases
     * read the file; other layer kinds and column names need version 2. */
    const int mixture = c->base->kind == NVP_BASE_MIXTURE;
    int couplings_only = c->name_at == NULL && !mixture;
    for (size_t k = 0; k < c->n_layers; k++)
        couplings_only &= nvp__as_coupling(c->layers[k]) != NULL &&
                          c->layers[k]->cdim == 0 &&
                          nvp__as_coupling(c->layers[k])->form ==
                              NVP_AFFINE_EXP;
    const size_t n_names = saved_names(c, s);
    nvp__fmt_header(w, couplings_only ? 1 : 2, NVP_KIND_MODEL,
                    2 + (s != NULL) + (n_names > 0) + mixture);
    size_t st = nvp__fmt_section_begin(w, couplings_only ? TAG_ARCH : TAG_STCK);
    nvp__put_u32(w, (uint32_t)c->dim);
    nvp__put_u32(w, mixture ? BASE_MIXTURE : BASE_NORMAL);
    nvp__put_u32(w, (uint32_t)c->n_layers);
    for (size_t k = 0; k < c->n_layers; k++) {
        const nvp_layer *layer = c->layers[k];
        if (!couplings_only) {
            const size_t n = layer->kind->hyper_count(layer);
            nvp__put_u32(w, layer->kind->id);
            nvp__put_u32(w, (uint32_t)n);
            for (size_t i = 0; i < n; i++)
                nvp__put_u32(w, layer->kind->hyper_value(layer, i));
            continue;
        }
        const nvp_coupling *l = nvp__as_coupling(layer);
        nvp__put_u32(w, (uint32_t)(l->cond.n_dense - 1));
        for (size_t h = 0; h + 1 < l->cond.n_dense; h++)
            nvp__put_u32(w, (uint32_t)l->cond.dense[h].out);
        nvp__put_f32(w, l->clamp);
        nvp__put_bytes(w, l->mask, l->layer.dim);
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
    if (n_names) {
        st = nvp__fmt_section_begin(w, TAG_COLS);
        nvp__put_u32(w, (uint32_t)n_names);
        for (size_t j = 0; j < n_names; j++) {
            const char *name = j < c->dim ? c->name_at[j] : s->name_at[j];
            const size_t len = strlen(name);
            nvp__put_u32(w, (uint32_t)len);
            nvp__put_bytes(w, (const unsigned char *)name, len);
        }
        nvp__fmt_section_end(w, st);
    }
    if (mixture) {
        /* k, dim, the weights, the means, then each factor's lower
         * triangle row by row */
        const nvp_base *b = c->base;
        const size_t d = b->dim;
        st = nvp__fmt_section_begin(w, TAG_BASE);
        nvp__put_u32(w, (uint32_t)b->k);
        nvp__put_u32(w, (uint32_t)d);
        nvp__put_f32s(w, b->w, b->k);
        nvp__put_f32s(w, b->mean, b->k * d);
        for (size_t q = 0; q < b->k; q++)
            for (size_t i = 0; i < d; i++)
                nvp__put_f32s(w, b->m + (q * d + i) * d, i + 1);
        nvp__fmt_section_end(w, st);
    }
}

/* Checks a COLS section for dim columns: u32 dim, then per column u32
 * length and that many bytes of a valid name; nothing after. */
static int check_cols(const char *fn, nvp_reader r, size_t dim)
{
    const nvp_errbox *eb = NULL;
    uint32_t d;
    NVP_REQUIRE(nvp__get_u32(&r, &d) == 0 && d == dim, NVP_EFORMAT,
                "%s: the column names do not match the model and its "
                "scaler", fn);
    for (size_t j = 0; j < dim; j++) {
        uint32_t len;
        NVP_REQUIRE(nvp__get_u32(&r, &len) == 0 && nvp__need(&r, len) == 0,
                    NVP_EFORMAT, "%s: column names truncated", fn);
        NVP_REQUIRE(nvp__column_name_ok((const char *)r.p + r.pos, len),
                    NVP_EFORMAT, "%s: column %zu's name is invalid", fn, j);
        r.pos += len;
    }
    NVP_REQUIRE(r.pos == r.len, NVP_EFORMAT,
                "%s: extra bytes after the column names", fn);
    return NVP_OK;
}

static int check_save_args(const nvp_chain *c, const nvp_scaler *s,
                           const char *fn)
{
    const nvp_errbox *eb = c ? &c->err : NULL;
    NVP_REQUIRE(c != NULL, NVP_EINVAL, "%s: chain is NULL", fn);
    /* A conditional chain's scaler may cover its context too. */
    NVP_REQUIRE(!s || s->dim == c->dim ||
                    (c->cdim > 0 && s->dim == c->dim + c->cdim),
                NVP_EDIM, "%s: scaler has dim %zu, the chain %zu (context %zu)",
                fn, s ? s->dim : 0, c->dim, c->cdim);
    NVP_REQUIRE(!s || s->dim == c->dim || !s->name_at || c->name_at,
                NVP_EINVAL, "%s: the scaler names the context's columns but "
                "the chain holds no column names", fn);
    /* The loader refuses non-finite parameters, so such a model is not
     * written at all (training with a step size so large that the
     * parameters overflow can make one). */
    NVP_REQUIRE(nvp__all_finite(c->ctx.isa, c->params, c->n_params), NVP_ENONFINITE,
                "%s: the chain holds a non-finite parameter; not saved", fn);
    return NVP_OK;
}

int nvp_chain_save_buffer(const nvp_chain *c, const nvp_scaler *s, size_t cap,
                          void *buf, size_t *size)
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

/* What a model file's plan found: enough to build it. */
typedef struct model_info {
    uint32_t dim, n_layers;
    uint64_t total; /* parameters */
    int stack;      /* STCK (layers of any kind), not ARCH */
    int other_kind; /* a STCK layer ARCH cannot hold: not an affine
                       coupling, or one with a context */
    uint32_t cdim;  /* a conditional coupling's context dimension, or 0 */
    uint32_t base_kind; /* BASE_NORMAL or BASE_MIXTURE (with BASE) */
    uint32_t mix_k;     /* the mixture's components */
} model_info;

/* Reads layer k of a STCK section: its kind and its n values into h
 * (room for NVP_MAX_HYPER(dim)), checked by the kind; adds its parameter
 * count to *total (bounded by NVP_MAX_PARAMS). */
static int read_stack_layer(const char *fn, nvp_reader *r, size_t dim,
                            size_t k, uint32_t *h, const nvp_layer_ops **kind,
                            size_t *n_out, uint64_t *total, int *other_kind,
                            uint32_t *cdim)
{
    const nvp_errbox *eb = NULL;
    uint32_t id, n;
    NVP_REQUIRE(nvp__get_u32(r, &id) == 0 && nvp__get_u32(r, &n) == 0,
                NVP_EFORMAT, "%s: layer %zu: truncated", fn, k);
    *kind = nvp__layer_kind_by_id(id);
    NVP_REQUIRE(*kind != NULL, NVP_EFORMAT,
                "%s: layer %zu: unknown layer kind %u", fn, k, id);
    if (other_kind && *kind != &nvp__coupling_kind)
        *other_kind = 1;
    NVP_REQUIRE(n <= NVP_MAX_HYPER(dim), NVP_EFORMAT,
                "%s: layer %zu: %u values (at most %zu)", fn, k, n,
                NVP_MAX_HYPER(dim));
    for (uint32_t i = 0; i < n; i++)
        NVP_REQUIRE(nvp__get_u32(r, &h[i]) == 0, NVP_EFORMAT,
                    "%s: layer %zu: truncated", fn, k);
    uint64_t count = 0;
    int rc = (*kind)->hyper_check(fn, dim, h, n, &count);
    if (rc)
        return nvp__fail(NULL, rc, "%s: layer %zu (%s): %s", fn, k,
                         (*kind)->name, nvp_errmsg());
    /* A conditional coupling, or one of the sigmoid form, stores more
     * than ARCH holds (its context dimension first): version 1 cannot
     * hold it either. */
    if (other_kind && *kind == &nvp__coupling_kind && n > 2 + h[0] + dim) {
        *other_kind = 1;
        /* The scaler and names checks need C.  Layers that disagree on it
         * are refused when the chain is built. */
        if (cdim && *cdim == 0)
            *cdim = h[2 + h[0] + dim];
    }
    *total += count;
    NVP_REQUIRE(*total <= NVP_MAX_PARAMS, NVP_EFORMAT,
                "%s: more than %zu parameters", fn, (size_t)NVP_MAX_PARAMS);
    *n_out = n;
    return NVP_OK;
}

/* The architecture's first 12 bytes: dim, base kind, layer count. */
static int check_arch_head(const char *fn, nvp_reader *r, model_info *mi)
{
    const nvp_errbox *eb = NULL;
    uint32_t dim, base_kind, n_layers;
    NVP_REQUIRE(nvp__get_u32(r, &dim) == 0 && nvp__get_u32(r, &base_kind) == 0 &&
                    nvp__get_u32(r, &n_layers) == 0,
                NVP_EFORMAT, "%s: truncated architecture", fn);
    /* A chain of one dimension has no coupling (each needs two); its
     * layers' own checks say so. */
    NVP_REQUIRE(dim >= 1 && dim <= NVP_MAX_DIM, NVP_EFORMAT,
                "%s: dim %u outside [1, %d]", fn, dim, NVP_MAX_DIM);
    NVP_REQUIRE(base_kind == BASE_NORMAL || base_kind == BASE_MIXTURE,
                NVP_EFORMAT, "%s: unknown base distribution %u", fn,
                base_kind);
    NVP_REQUIRE(n_layers >= 1 && n_layers <= NVP_MAX_LAYERS, NVP_EFORMAT,
                "%s: %u layers (expected 1 to %d)", fn, n_layers,
                NVP_MAX_LAYERS);
    mi->dim = dim;
    mi->n_layers = n_layers;
    mi->total = 0;
    mi->other_kind = 0;
    mi->cdim = 0;
    mi->base_kind = base_kind;
    mi->mix_k = 0;
    return NVP_OK;
}

/* Checks the whole architecture and counts its parameters; h has room
 * for one STCK layer's values. */
static int check_arch(const char *fn, nvp_reader r, model_info *mi,
                      uint32_t *h)
{
    const nvp_errbox *eb = NULL;
    const int stack = mi->stack;
    int rc = check_arch_head(fn, &r, mi);
    if (rc)
        return rc;
    mi->stack = stack;
    layer_desc d;
    const nvp_layer_ops *kind;
    size_t n;
    for (size_t k = 0; k < mi->n_layers; k++)
        if ((rc = stack ? read_stack_layer(fn, &r, mi->dim, k, h, &kind, &n,
                                           &mi->total, &mi->other_kind,
                                           &mi->cdim)
                        : read_layer(fn, &r, mi->dim, k, &d, &mi->total)) !=
            NVP_OK)
            return rc;
    NVP_REQUIRE(r.pos == r.len, NVP_EFORMAT,
                "%s: extra bytes in the architecture", fn);
    return NVP_OK;
}

/* The float at byte off of p. */
static float f32_at(const unsigned char *p, size_t off)
{
    nvp_reader r = {p + off, 4, 0, 0};
    float f = 0.0f;
    nvp__get_f32(&r, &f);
    return f;
}

/* A scaler's axis as the loader and nvp_scaler_set accept it. */
static int scaler_axis_ok(float mean, float sd)
{
    return isfinite(mean) && isfinite(sd) && sd > 0.0f;
}

/* The sections of a model file: ARCH and PARM, optionally SCAL, each of
 * exactly the size the architecture gives it.  The architecture's first
 * 12 bytes bound its own size; it is then read and checked whole (the
 * parameter count comes from it); the scaler, small, is checked whole
 * whether or not the caller asked for it. */
static int plan_model(const char *fn, uint32_t version,
                      const nvp_span *spans, size_t count,
                      const nvp_src *src, const nvp_allocator *alloc,
                      void *info)
{
    const nvp_errbox *eb = NULL;
    static const uint32_t tags[] = {TAG_ARCH, TAG_PARM, TAG_SCAL, TAG_STCK,
                                    TAG_COLS, TAG_BASE};
    int rc = nvp__spans_known(fn, spans, count, tags, 6);
    if (rc)
        return rc;
    const size_t i_arch = nvp__span_find(spans, count, TAG_ARCH);
    const size_t i_stck = nvp__span_find(spans, count, TAG_STCK);
    const size_t ip = nvp__span_find(spans, count, TAG_PARM);
    const size_t is = nvp__span_find(spans, count, TAG_SCAL);
    const size_t ic = nvp__span_find(spans, count, TAG_COLS);
    const size_t ib = nvp__span_find(spans, count, TAG_BASE);
    NVP_REQUIRE(ic == count || version >= 2, NVP_EFORMAT,
                "%s: format version %u holds COLS", fn, version);
    NVP_REQUIRE((i_arch < count) != (i_stck < count), NVP_EFORMAT,
                "%s: a model holds one architecture section (ARCH or STCK)",
                fn);
    const int stack = i_stck < count;
    /* Version 1 has ARCH only; STCK came with version 2, which has only
     * it (so every file saves back to the same bytes). */
    NVP_REQUIRE(stack == (version >= 2), NVP_EFORMAT,
                "%s: format version %u holds %s", fn, version,
                stack ? "STCK" : "ARCH");
    const size_t ia = stack ? i_stck : i_arch;
    NVP_REQUIRE(ip < count, NVP_EFORMAT, "%s: the parameter section is "
                                         "missing", fn);

    const nvp_span *arch = &spans[ia];
    unsigned char head[12];
    NVP_REQUIRE(arch->len >= 12, NVP_EFORMAT, "%s: truncated architecture",
                fn);
    if ((rc = nvp__src_read(fn, src, arch->off, head, 12)) != NVP_OK)
        return rc;
    model_info mi;
    if ((rc = check_arch_head(fn, &(nvp_reader){head, 12, 0, 0}, &mi)) != NVP_OK)
        return rc;
    /* ARCH, per layer: u32 hidden count, its widths (at most
     * NVP_MAX_HIDDEN_LAYERS), f32 clamp and dim mask bytes.  STCK, per
     * layer: u32 kind, u32 count and at most NVP_MAX_HYPER(dim) values. */
    const uint64_t least =
        12 + (uint64_t)mi.n_layers * (stack ? 8 : 8 + mi.dim);
    const uint64_t most =
        12 + (uint64_t)mi.n_layers *
                 (stack ? 8 + 4 * (uint64_t)NVP_MAX_HYPER(mi.dim)
                        : 8 + 4 * NVP_MAX_HIDDEN_LAYERS + mi.dim);
    NVP_REQUIRE(arch->len >= least && arch->len <= most, NVP_EFORMAT,
                "%s: an architecture of %u layers over %u dimensions takes "
                "%llu to %llu bytes, not %llu",
                fn, mi.n_layers, mi.dim, (unsigned long long)least,
                (unsigned long long)most, (unsigned long long)arch->len);
    /* A mixture base (version 2 only) comes with its BASE section. */
    NVP_REQUIRE((mi.base_kind == BASE_MIXTURE) == (ib < count), NVP_EFORMAT,
                "%s: %s", fn, ib < count ? "a BASE section without a "
                "mixture base" : "a mixture base without its BASE section");
    NVP_REQUIRE(mi.base_kind == BASE_NORMAL || stack, NVP_EFORMAT,
                "%s: format version 1 holds a standard normal base only", fn);
    uint32_t mix_k = 0;
    if (ib < count) {
        /* u32 k, u32 dim, then k weights, k * dim means and k lower
         * triangles of dim (dim + 1) / 2 values */
        const nvp_span *bs = &spans[ib];
        unsigned char kd[8];
        uint32_t k = 0, d = 0;
        if (bs->len >= 8) {
            if ((rc = nvp__src_read(fn, src, bs->off, kd, 8)) != NVP_OK)
                return rc;
            nvp_reader br = {kd, 8, 0, 0};
            nvp__get_u32(&br, &k);
            nvp__get_u32(&br, &d);
        }
        NVP_REQUIRE(bs->len >= 8 && k >= 1 && k <= NVP_MIXTURE_MAX_K &&
                        d == mi.dim && d <= NVP_MIXTURE_MAX_DIM,
                    NVP_EFORMAT, "%s: the mixture base's section is invalid "
                    "(1 to %d components of the model's dimension, at most "
                    "%d)", fn, NVP_MIXTURE_MAX_K, NVP_MIXTURE_MAX_DIM);
        const uint64_t want =
            8 + 4 * ((uint64_t)k * (1 + d) + (uint64_t)k * d * (d + 1) / 2);
        NVP_REQUIRE(bs->len == want, NVP_EFORMAT,
                    "%s: the mixture base's section has %llu bytes, not %llu",
                    fn, (unsigned long long)bs->len,
                    (unsigned long long)want);
        mix_k = k;
    }
    const unsigned char *p;
    void *block;
    if ((rc = nvp__src_view(fn, src, alloc, arch->off, (size_t)arch->len, &p,
                            &block)) != NVP_OK)
        return rc;
    uint32_t *h = NULL;
    if (stack && !(h = nvp__malloc(alloc, NVP_MAX_HYPER(mi.dim) * 4))) {
        nvp__free(alloc, block);
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    }
    mi.stack = stack;
    rc = check_arch(fn, (nvp_reader){p, (size_t)arch->len, 0, 0}, &mi, h);
    mi.mix_k = mix_k;
    nvp__free(alloc, h);
    nvp__free(alloc, block);
    if (rc)
        return rc;

    const nvp_span *parm = &spans[ip];
    uint64_t n_params = 0;
    unsigned char cnt[8];
    if (parm->len - 8 == 4 * mi.total) {
        if ((rc = nvp__src_read(fn, src, parm->off, cnt, 8)) != NVP_OK)
            return rc;
        nvp__get_u64(&(nvp_reader){cnt, 8, 0, 0}, &n_params);
    }
    NVP_REQUIRE(parm->len >= 8 && parm->len - 8 == 4 * mi.total &&
                    n_params == mi.total,
                NVP_EFORMAT,
                "%s: the parameter section does not match the architecture "
                "(%llu parameters expected)",
                fn, (unsigned long long)mi.total);

    /* A conditional model's scaler may cover the context too: dim + C
     * axes, and then COLS may name them all. */
    uint64_t sdim = mi.dim;
    if (is < count && mi.cdim > 0 &&
        spans[is].len == 4 + (uint64_t)8 * (mi.dim + mi.cdim))
        sdim = (uint64_t)mi.dim + mi.cdim;
    /* (no scaler holds more axes: the writer cannot have made it) */
    NVP_REQUIRE(sdim <= NVP_MAX_DIM, NVP_EFORMAT,
                "%s: a scaler of %llu axes (at most %d)", fn,
                (unsigned long long)sdim, NVP_MAX_DIM);
    if (is < count) {
        const nvp_span *scal = &spans[is];
        NVP_REQUIRE(scal->len == 4 + (uint64_t)8 * sdim, NVP_EFORMAT,
                    "%s: the scaler section does not match the model", fn);
        if ((rc = nvp__src_view(fn, src, alloc, scal->off, (size_t)scal->len,
                                &p, &block)) != NVP_OK)
            return rc;
        nvp_reader r = {p, (size_t)scal->len, 0, 0};
        uint32_t sd = 0;
        nvp__get_u32(&r, &sd);
        const size_t ns = (size_t)sdim;
        size_t bad = ns;
        for (size_t j = 0; j < ns && sd == sdim && bad == ns; j++)
            if (!scaler_axis_ok(f32_at(p, 4 + 4 * j),
                                f32_at(p, 4 + 4 * (ns + j))))
                bad = j;
        nvp__free(alloc, block);
        NVP_REQUIRE(sd == sdim, NVP_EFORMAT,
                    "%s: the scaler section does not match the model", fn);
        NVP_REQUIRE(bad == ns, NVP_EFORMAT,
                    "%s: the scaler's axis %zu is invalid (a mean or sd that "
                    "is not finite, or sd <= 0)", fn, bad);
    }
    if (ic < count) {
        const nvp_span *cols = &spans[ic];
        /* The chain's dim names, or also the context's when the scaler
         * covers it: the count is the section's first field. */
        uint64_t nn = mi.dim;
        unsigned char c4[4];
        if (sdim > mi.dim && cols->len >= 4) {
            if ((rc = nvp__src_read(fn, src, cols->off, c4, 4)) != NVP_OK)
                return rc;
            uint32_t u = 0;
            nvp__get_u32(&(nvp_reader){c4, 4, 0, 0}, &u);
            if (u == sdim)
                nn = sdim;
        }
        NVP_REQUIRE(cols->len >= 4 + 5 * nn &&
                        cols->len <= 4 + nn * (4 + NVP_MAX_COLUMN_NAME),
                    NVP_EFORMAT, "%s: the column names do not match the "
                                 "model", fn);
        if ((rc = nvp__src_view(fn, src, alloc, cols->off, (size_t)cols->len,
                                &p, &block)) != NVP_OK)
            return rc;
        rc = check_cols(fn, (nvp_reader){p, (size_t)cols->len, 0, 0},
                        (size_t)nn);
        nvp__free(alloc, block);
        if (rc)
            return rc;
    }
    /* The writer uses version 2 only for what version 1 cannot hold, so
     * that a loaded file saves back as it was. */
    NVP_REQUIRE(!stack || mi.other_kind || ic < count || ib < count,
                NVP_EFORMAT,
                "%s: a version 2 model of affine couplings alone, a normal "
                "base and no column names (version 1 holds it)",
                fn);
    if (info)
        *(model_info *)info = mi;
    return NVP_OK;
}

/* The mixture base of a BASE section (its size checked): the values are
 * checked by the base's constructor, a refusal reported as EFORMAT. */
static int load_mixture(const char *fn, nvp_reader r, size_t d, size_t k,
                        const nvp_allocator *a, nvp_base **out)
{
    float *w = nvp__malloc(a, k * sizeof *w);
    float *mean = nvp__malloc(a, k * d * sizeof *mean);
    float *m = nvp__malloc(a, k * d * d * sizeof *m);
    int rc = NVP_OK;
    if (!w || !mean || !m) {
        rc = nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    } else {
        r.pos = 8;
        nvp__get_f32s(&r, w, k);
        nvp__get_f32s(&r, mean, k * d);
        memset(m, 0, k * d * d * sizeof *m);
        for (size_t q = 0; q < k; q++)
            for (size_t i = 0; i < d; i++)
                nvp__get_f32s(&r, m + (q * d + i) * d, i + 1);
        char where[160];
        snprintf(where, sizeof where, "%s: the mixture base", fn);
        if ((rc = nvp__base_mixture_from_factors(out, where, d, k, w, mean,
                                                 m, a)) == NVP_EINVAL)
            rc = nvp__fail(NULL, NVP_EFORMAT, "%s", nvp_errmsg());
    }
    nvp__free(a, w);
    nvp__free(a, mean);
    nvp__free(a, m);
    return rc;
}

static int load_model(const char *fn, const void *data, size_t size,
                      const nvp_allocator *alloc, void *chain_out,
                      void *companion_out);

static const nvp_file_kind model_kind = {NVP_KIND_MODEL, plan_model,
                                         load_model};

/* The checked COLS section into the chain's names and, when it names
 * every axis of the scaler s (may be NULL), into the scaler's. */
static int load_names(const char *fn, nvp_chain *c, nvp_scaler *s,
                      nvp_reader r)
{
    uint32_t n = 0;
    nvp__get_u32(&r, &n);
    const char **names = nvp__malloc(&c->alloc, n * sizeof *names);
    size_t *lens = nvp__malloc(&c->alloc, n * sizeof *lens);
    int rc = NVP_OK;
    if (!names || !lens) {
        rc = nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    } else {
        uint32_t u = 0;
        for (size_t j = 0; j < n; j++) {
            nvp__get_u32(&r, &u);
            names[j] = (const char *)r.p + r.pos;
            lens[j] = u;
            r.pos += u;
        }
        rc = nvp__chain_set_names(c, NULL, fn, names, lens);
        if (rc == NVP_OK && s && s->dim == n &&
            (rc = nvp__scaler_set_names(s, fn, names, lens)) != NVP_OK)
            rc = nvp__fail(NULL, rc, "%s", nvp_scaler_errmsg(s));
    }
    nvp__free(&c->alloc, names);
    nvp__free(&c->alloc, lens);
    return rc;
}

static int load_model(const char *fn, const void *data, size_t size,
                      const nvp_allocator *alloc, void *chain_out,
                      void *companion_out)
{
    nvp_chain **out = chain_out;
    nvp_scaler **scaler_out = companion_out;
    const nvp_errbox *eb = NULL;
    nvp_allocator a;
    NVP_REQUIRE(nvp__allocator_init(&a, alloc) == NVP_OK, NVP_EINVAL,
                "%s: invalid allocator", fn);
    /* Everything is checked here, before anything is allocated: the
     * container, the architecture, the parameter count and the scaler. */
    nvp_section sec[NVP_MAX_SECTIONS];
    size_t count;
    model_info mi;
    int rc = nvp__fmt_open(fn, data, size, &model_kind, &a, sec, &count, &mi);
    if (rc)
        return rc;
    nvp_section *arch = nvp__fmt_find(sec, count, mi.stack ? TAG_STCK : TAG_ARCH);
    nvp_section *parm = nvp__fmt_find(sec, count, TAG_PARM);
    nvp_section *scal = nvp__fmt_find(sec, count, TAG_SCAL);
    nvp_section *cols = nvp__fmt_find(sec, count, TAG_COLS);
    nvp_section *bsec = nvp__fmt_find(sec, count, TAG_BASE);
    const size_t dim = mi.dim, n_layers = mi.n_layers;

    /* Build it.  Every allocation is bounded by the file's size. */
    nvp_layer **layers = nvp__malloc(&a, n_layers * sizeof *layers);
    uint32_t *h = mi.stack ? nvp__malloc(&a, NVP_MAX_HYPER(dim) * 4) : NULL;
    if (!layers || (mi.stack && !h)) {
        nvp__free(&a, layers);
        nvp__free(&a, h);
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    }
    memset(layers, 0, n_layers * sizeof *layers);
    nvp_base *base = NULL;
    nvp_scaler *scaler = NULL;
    nvp_reader r = arch->body, pr = parm->body;
    r.pos = 12;
    pr.pos = 8;
    uint64_t dummy = 0;
    layer_desc d;
    for (size_t k = 0; k < n_layers && rc == NVP_OK; k++) {
        if (mi.stack) {
            const nvp_layer_ops *kind;
            size_t n;
            read_stack_layer(fn, &r, dim, k, h, &kind, &n, &dummy, NULL,
                             NULL);
            rc = kind->from_hyper(&layers[k], fn, dim, h, n, alloc);
        } else {
            read_layer(fn, &r, dim, k, &d, &dummy);
            nvp_coupling *cp = NULL;
            rc = nvp__coupling_new(&cp, fn, dim, 0, d.mask, d.n_hidden, d.hidden,
                                   alloc);
            if (rc == NVP_OK) {
                cp->clamp = d.clamp;
                layers[k] = &cp->layer;
            }
        }
        if (rc == NVP_OK && layers[k]->n_params) {
            nvp__get_f32s(&pr, layers[k]->params, layers[k]->n_params);
            if (!nvp__all_finite(nvp__cpu_isa(), layers[k]->params,
                                 layers[k]->n_params))
                rc = nvp__fail(NULL, NVP_EFORMAT,
                               "%s: layer %zu has a non-finite parameter", fn,
                               k);
        }
    }
    nvp__free(&a, h);
    if (rc == NVP_OK && bsec)
        rc = load_mixture(fn, bsec->body, dim, mi.mix_k, &a, &base);
    else if (rc == NVP_OK &&
             (rc = nvp_base_create_normal(&base, dim, alloc)) != NVP_OK)
        rc = nvp__fail_in(NULL, rc, fn);
    /* The scaler section was checked whole above, asked for or not. */
    if (rc == NVP_OK && scal && scaler_out) {
        /* dim axes, or dim + C for a conditional model's (checked) */
        nvp_reader sr = scal->body;
        uint32_t sdim = 0;
        nvp__get_u32(&sr, &sdim);
        if ((rc = nvp_scaler_create(&scaler, sdim, alloc)) != NVP_OK) {
            rc = nvp__fail_in(NULL, rc, fn);
        } else {
            nvp__get_f32s(&sr, scaler->mean, sdim);
            nvp__get_f32s(&sr, scaler->sd, sdim);
        }
    }
    nvp_chain *c = NULL;
    if (rc == NVP_OK && (rc = nvp_chain_create_from_layers(
                             &c, base, n_layers, layers, alloc)) != NVP_OK)
        rc = nvp__fail_in(NULL, rc, fn);
    if (rc == NVP_OK && cols)
        rc = load_names(fn, c, scaler, cols->body);
    if (rc != NVP_OK && c) {
        /* the chain owns the base and the layers now */
        nvp_chain_free(c);
        nvp_scaler_free(scaler);
    } else if (rc != NVP_OK) {
        for (size_t k = 0; k < n_layers; k++)
            nvp__layer_free(layers[k]);
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
                          size_t size, const void *data,
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
    return nvp__load_file("nvp_chain_load_file", &model_kind, path, alloc,
                          out, scaler_out);
}
