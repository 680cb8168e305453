/* SPDX-License-Identifier: MIT */
/* Saving and loading a training state: the Adam optimizer and, optionally,
 * the generator that draws minibatches: the ADAM, RNG, AVG, CLIP and WDEC
 * sections of a training-state file, described in docs/file-format.md. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train/adam.h"
#include "core/alloc.h"
#include "io/format.h"
#include "core/rng.h"

#define TAG_ADAM NVP_TAG('A', 'D', 'A', 'M')
#define TAG_RNG NVP_TAG('R', 'N', 'G', ' ')
#define TAG_AVG NVP_TAG('A', 'V', 'G', ' ')
#define TAG_CLIP NVP_TAG('C', 'L', 'I', 'P')
#define TAG_WDEC NVP_TAG('W', 'D', 'E', 'C')

static void write_state(nvp_writer *w, const void *opt, const void *rng)
{
    const nvp_adam *o = opt;
    const nvp_rng *r = rng;
    nvp__fmt_header(w, 1, NVP_KIND_TRAINING,
                    1 + (r != NULL) + (o->avg != NULL) + (o->clip_norm > 0.0f) +
                        (o->weight_decay > 0.0f));
    size_t st = nvp__fmt_section_begin(w, TAG_ADAM);
    nvp__put_u64(w, o->n);
    nvp__put_f32(w, o->lr);
    nvp__put_f32(w, o->b1);
    nvp__put_f32(w, o->b2);
    nvp__put_f32(w, o->eps);
    nvp__put_u64(w, o->t);
    nvp__put_f32s(w, o->m, o->n);
    nvp__put_f32s(w, o->v, o->n);
    nvp__fmt_section_end(w, st);
    if (r) {
        st = nvp__fmt_section_begin(w, TAG_RNG);
        for (int i = 0; i < 4; i++)
            nvp__put_u64(w, r->s[i]);
        nvp__put_u32(w, (uint32_t)r->has_spare);
        uint64_t bits;
        memcpy(&bits, &r->spare, sizeof bits);
        nvp__put_u64(w, bits);
        nvp__fmt_section_end(w, st);
    }
    if (o->avg) {
        st = nvp__fmt_section_begin(w, TAG_AVG);
        nvp__put_f32(w, o->avg_decay);
        nvp__put_f32s(w, o->avg, o->n);
        nvp__fmt_section_end(w, st);
    }
    if (o->clip_norm > 0.0f) {
        st = nvp__fmt_section_begin(w, TAG_CLIP);
        nvp__put_f32(w, o->clip_norm);
        nvp__fmt_section_end(w, st);
    }
    if (o->weight_decay > 0.0f) {
        st = nvp__fmt_section_begin(w, TAG_WDEC);
        nvp__put_f32(w, o->weight_decay);
        nvp__fmt_section_end(w, st);
    }
}

/* Everything in a training state but its float vectors: read from a
 * file's small fields before anything is allocated, or from the handles
 * before a save, and checked by the one rule both share (fields_fault),
 * so that a save never writes what the loader refuses. */
typedef struct state_fields {
    uint64_t n, t;
    float lr, b1, b2, eps;
    int has_rng;
    uint64_t s[4];
    uint32_t has_spare;
    double spare;
    int has_avg;
    float avg_decay;
    int has_clip;
    float clip_norm;
    int has_wdec;
    float weight_decay;
} state_fields;

/* Whether the fields make a valid state; if not, says why in why[cap].
 * The settings follow the setters' rules.  Every step count is valid: a
 * step saturates it at 2^64 - 1 (where the bias corrections are 1) rather
 * than wrapping, so the count a step can leave must load again. */
static int fields_fault(const state_fields *f, char *why, size_t cap)
{
    if (f->n < 1 || f->n > NVP_MAX_PARAMS)
        snprintf(why, cap, "%llu parameters (expected 1 to %zu)",
                 (unsigned long long)f->n, (size_t)NVP_MAX_PARAMS);
    else if (!(isfinite(f->lr) && f->lr > 0.0f))
        snprintf(why, cap, "invalid optimizer settings: lr %g (must be "
                           "finite and > 0)", (double)f->lr);
    else if (!(f->b1 >= 0.0f && f->b1 < 1.0f && f->b2 >= 0.0f && f->b2 < 1.0f))
        snprintf(why, cap, "invalid optimizer settings: betas %g, %g (must "
                           "lie in [0, 1))", (double)f->b1, (double)f->b2);
    else if (!(isfinite(f->eps) && f->eps > 0.0f))
        snprintf(why, cap, "invalid optimizer settings: eps %g (must be "
                           "finite and > 0)", (double)f->eps);
    /* The polar method never makes a normal above sqrt(-2 ln 2^-104),
     * about 12.01, in magnitude; xoshiro256** never reaches the all-zero
     * state from any other. */
    else if (f->has_rng && ((f->s[0] | f->s[1] | f->s[2] | f->s[3]) == 0 ||
                            f->has_spare > 1 || !isfinite(f->spare) ||
                            fabs(f->spare) > 16.0))
        snprintf(why, cap, "invalid generator state");
    else if (f->has_avg && !(f->avg_decay > 0.0f && f->avg_decay < 1.0f))
        snprintf(why, cap, "invalid parameter average decay %g (must lie in "
                           "(0, 1))", (double)f->avg_decay);
    else if (f->has_clip && !(isfinite(f->clip_norm) && f->clip_norm > 0.0f))
        snprintf(why, cap, "invalid gradient-norm clipping limit %g (must be "
                           "finite and > 0)", (double)f->clip_norm);
    else if (f->has_wdec &&
             !(isfinite(f->weight_decay) && f->weight_decay > 0.0f))
        snprintf(why, cap, "invalid weight decay %g (must be finite and > 0)",
                 (double)f->weight_decay);
    else
        return 0;
    return 1;
}

/* The first invalid moment (m not finite, v not finite or negative), or
 * n; the same rule for save and load. */
static size_t moments_fault(const float *m, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(m[i]) || !isfinite(v[i]) || !(v[i] >= 0.0f))
            return i;
    return n;
}

/* The first non-finite entry of the parameter average, or n. */
static size_t average_fault(const float *avg, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(avg[i]))
            return i;
    return n;
}

/* A save refuses what the loader would: the same rules on the handles'
 * state.  Through the public calls only a non-finite parameter average
 * (from non-finite parameters) can break them. */
static int check_save(const nvp_adam *o, const nvp_rng *r, const char *fn)
{
    const nvp_errbox *eb = &o->err;
    state_fields f = {o->n, o->t, o->lr, o->b1, o->b2, o->eps,
                      r != NULL, {0, 0, 0, 0}, 0, 0.0,
                      o->avg != NULL, o->avg_decay,
                      o->clip_norm > 0.0f, o->clip_norm,
                      o->weight_decay > 0.0f, o->weight_decay};
    if (r) {
        memcpy(f.s, r->s, sizeof f.s);
        f.has_spare = (uint32_t)r->has_spare;
        f.spare = r->spare;
    }
    char why[160];
    NVP_REQUIRE(!fields_fault(&f, why, sizeof why), NVP_EINVAL,
                "%s: %s; not saved", fn, why);
    const size_t bad_avg = o->avg ? average_fault(o->avg, o->n) : o->n;
    NVP_REQUIRE(bad_avg == o->n, NVP_ENONFINITE,
                "%s: the parameter average is not finite (non-finite "
                "parameters made it so); not saved",
                fn);
    const size_t bad = moments_fault(o->m, o->v, o->n);
    NVP_REQUIRE(bad == o->n, NVP_ENONFINITE,
                "%s: the optimizer's moment %zu is not valid; not saved", fn,
                bad);
    return NVP_OK;
}

int nvp_adam_save_buffer(const nvp_adam *o, const nvp_rng *rng, size_t cap,
                         void *buf, size_t *size)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    NVP_REQUIRE_PTR(o);
    int rc = check_save(o, rng, "nvp_adam_save_buffer");
    if (rc)
        return rc;
    return nvp__save_buffer(eb, "nvp_adam_save_buffer", write_state, o, rng,
                            buf, cap, size);
}

int nvp_adam_save_file(const nvp_adam *o, const nvp_rng *rng, const char *path)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    NVP_REQUIRE_PTR(o);
    int rc = check_save(o, rng, "nvp_adam_save_file");
    if (rc)
        return rc;
    return nvp__save_file(eb, "nvp_adam_save_file", write_state, o, rng,
                          &o->alloc, path);
}

/* The sections of a training state: ADAM, optionally RNG, AVG, CLIP and
 * WDEC,
 * each of exactly the size its parameter count gives it, and their fields
 * valid (fields_fault); reads only those fields (at most 44 bytes a
 * section). */
static int plan_state(const char *fn, uint32_t version,
                      const nvp_span *spans, size_t count,
                      const nvp_src *src, const nvp_allocator *alloc,
                      void *info)
{
    (void)alloc;
    const nvp_errbox *eb = NULL;
    /* Training states have not changed since version 1. */
    NVP_REQUIRE(version == 1, NVP_EFORMAT,
                "%s: a training state is format version 1, not %u", fn,
                version);
    static const uint32_t tags[] = {TAG_ADAM, TAG_RNG, TAG_AVG, TAG_CLIP,
                                    TAG_WDEC};
    int rc = nvp__spans_known(fn, spans, count, tags, 5);
    if (rc)
        return rc;
    const size_t ia = nvp__span_find(spans, count, TAG_ADAM);
    const size_t ir = nvp__span_find(spans, count, TAG_RNG);
    const size_t iv = nvp__span_find(spans, count, TAG_AVG);
    const size_t ic = nvp__span_find(spans, count, TAG_CLIP);
    const size_t iw = nvp__span_find(spans, count, TAG_WDEC);
    NVP_REQUIRE(ia < count, NVP_EFORMAT, "%s: no optimizer section", fn);

    state_fields f;
    memset(&f, 0, sizeof f);
    unsigned char b[44];
    nvp_reader r = {b, 0, 0, 0};
    NVP_REQUIRE(spans[ia].len >= 32, NVP_EFORMAT,
                "%s: truncated optimizer section", fn);
    if ((rc = nvp__src_read(fn, src, spans[ia].off, b, 32)) != NVP_OK)
        return rc;
    r = (nvp_reader){b, 32, 0, 0};
    nvp__get_u64(&r, &f.n);
    nvp__get_f32(&r, &f.lr);
    nvp__get_f32(&r, &f.b1);
    nvp__get_f32(&r, &f.b2);
    nvp__get_f32(&r, &f.eps);
    nvp__get_u64(&r, &f.t);
    NVP_REQUIRE(f.n >= 1 && f.n <= NVP_MAX_PARAMS &&
                    spans[ia].len - 32 == 8 * f.n,
                NVP_EFORMAT,
                "%s: the optimizer section's size does not match its %llu "
                "parameters",
                fn, (unsigned long long)f.n);
    if (ir < count) {
        NVP_REQUIRE(spans[ir].len == 44, NVP_EFORMAT,
                    "%s: the generator section has the wrong size", fn);
        if ((rc = nvp__src_read(fn, src, spans[ir].off, b, 44)) != NVP_OK)
            return rc;
        r = (nvp_reader){b, 44, 0, 0};
        for (int i = 0; i < 4; i++)
            nvp__get_u64(&r, &f.s[i]);
        nvp__get_u32(&r, &f.has_spare);
        uint64_t bits;
        nvp__get_u64(&r, &bits);
        memcpy(&f.spare, &bits, sizeof f.spare);
        f.has_rng = 1;
    }
    if (iv < count) {
        NVP_REQUIRE(spans[iv].len >= 4 && spans[iv].len - 4 == 4 * f.n,
                    NVP_EFORMAT,
                    "%s: the average section's size does not match the "
                    "optimizer's %llu parameters",
                    fn, (unsigned long long)f.n);
        if ((rc = nvp__src_read(fn, src, spans[iv].off, b, 4)) != NVP_OK)
            return rc;
        r = (nvp_reader){b, 4, 0, 0};
        nvp__get_f32(&r, &f.avg_decay);
        f.has_avg = 1;
    }
    if (ic < count) {
        NVP_REQUIRE(spans[ic].len == 4, NVP_EFORMAT,
                    "%s: the clipping section has the wrong size", fn);
        if ((rc = nvp__src_read(fn, src, spans[ic].off, b, 4)) != NVP_OK)
            return rc;
        r = (nvp_reader){b, 4, 0, 0};
        nvp__get_f32(&r, &f.clip_norm);
        f.has_clip = 1;
    }
    if (iw < count) {
        NVP_REQUIRE(spans[iw].len == 4, NVP_EFORMAT,
                    "%s: the weight decay section has the wrong size", fn);
        if ((rc = nvp__src_read(fn, src, spans[iw].off, b, 4)) != NVP_OK)
            return rc;
        r = (nvp_reader){b, 4, 0, 0};
        nvp__get_f32(&r, &f.weight_decay);
        f.has_wdec = 1;
    }
    char why[160];
    NVP_REQUIRE(!fields_fault(&f, why, sizeof why), NVP_EFORMAT, "%s: %s", fn,
                why);
    if (info)
        *(state_fields *)info = f;
    return NVP_OK;
}

static int load_state(const char *fn, const void *data, size_t size,
                      const nvp_allocator *alloc, void *opt_out,
                      void *companion_out);

static const nvp_file_kind state_kind = {NVP_KIND_TRAINING, plan_state,
                                         load_state};

static int load_state(const char *fn, const void *data, size_t size,
                      const nvp_allocator *alloc, void *opt_out,
                      void *companion_out)
{
    nvp_adam **out = opt_out;
    nvp_rng **rng_out = companion_out;
    const nvp_errbox *eb = NULL;
    nvp_allocator a;
    NVP_REQUIRE(nvp__allocator_init(&a, alloc) == NVP_OK, NVP_EINVAL,
                "%s: invalid allocator", fn);
    nvp_section sec[NVP_MAX_SECTIONS];
    size_t count;
    state_fields f;
    int rc = nvp__fmt_open(fn, data, size, &state_kind, &a, sec, &count, &f);
    if (rc)
        return rc;
    nvp_section *as = nvp__fmt_find(sec, count, TAG_ADAM);
    nvp_section *avs = nvp__fmt_find(sec, count, TAG_AVG);

    nvp_adam *o;
    rc = nvp_adam_create(&o, (size_t)f.n, alloc);
    if (rc)
        return nvp__fail_in(NULL, rc, fn);
    /* Through the setters, so that the loader never accepts a setting
     * they would refuse; the betas first, since the step size is checked
     * against b1 (and the default step size passes any valid b1). */
    if (nvp_adam_set_betas(o, f.b1, f.b2) != NVP_OK ||
        nvp_adam_set_lr(o, f.lr) != NVP_OK ||
        nvp_adam_set_eps(o, f.eps) != NVP_OK) {
        nvp_adam_free(o);
        return nvp__fail(NULL, NVP_EFORMAT, "%s: invalid optimizer settings: "
                                            "%s", fn, nvp_errmsg());
    }
    o->t = f.t;
    nvp_reader r = as->body;
    r.pos = 32;
    nvp__get_f32s(&r, o->m, o->n);
    nvp__get_f32s(&r, o->v, o->n);
    nvp__adam_bound_moments(o);
    const size_t bad = moments_fault(o->m, o->v, o->n);
    if (bad < o->n) {
        nvp_adam_free(o);
        return nvp__fail(NULL, NVP_EFORMAT, "%s: moment %zu is invalid", fn,
                         bad);
    }
    if (avs) {
        o->avg = nvp__alloc_aligned(&o->alloc, o->n * sizeof *o->avg);
        if (!o->avg) {
            nvp_adam_free(o);
            return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
        }
        o->avg_decay = f.avg_decay;
        nvp_reader ar = avs->body;
        ar.pos = 4;
        nvp__get_f32s(&ar, o->avg, o->n);
        const size_t bad_avg = average_fault(o->avg, o->n);
        if (bad_avg < o->n) {
            nvp_adam_free(o);
            return nvp__fail(NULL, NVP_EFORMAT,
                             "%s: parameter average %zu is not finite", fn,
                             bad_avg);
        }
    }
    if (f.has_clip && (rc = nvp_adam_set_clip_norm(o, f.clip_norm)) != NVP_OK) {
        nvp_adam_free(o);
        return nvp__fail_in(NULL, rc, fn);
    }
    if (f.has_wdec &&
        (rc = nvp_adam_set_weight_decay(o, f.weight_decay)) != NVP_OK) {
        nvp_adam_free(o);
        return nvp__fail_in(NULL, rc, fn);
    }
    nvp_rng *g = NULL;
    if (f.has_rng && rng_out) {
        rc = nvp_rng_create(&g, 0, alloc);
        if (rc) {
            nvp_adam_free(o);
            return nvp__fail_in(NULL, rc, fn);
        }
        memcpy(g->s, f.s, sizeof f.s);
        g->has_spare = (int)f.has_spare;
        g->spare = f.spare;
    }
    *out = o;
    if (rng_out)
        *rng_out = g;
    return NVP_OK;
}

int nvp_adam_load_buffer(nvp_adam **out, nvp_rng **rng_out, size_t size,
                         const void *data, const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    if (rng_out)
        *rng_out = NULL;
    NVP_REQUIRE_PTR(data);
    return load_state("nvp_adam_load_buffer", data, size, alloc, out,
                      rng_out);
}

int nvp_adam_load_file(nvp_adam **out, nvp_rng **rng_out, const char *path,
                       const nvp_allocator *alloc)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE_PTR(out);
    *out = NULL;
    if (rng_out)
        *rng_out = NULL;
    return nvp__load_file("nvp_adam_load_file", &state_kind, path, alloc, out,
                          rng_out);
}
