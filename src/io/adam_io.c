/* SPDX-License-Identifier: MIT */
/* Saving and loading a training state: the Adam optimizer and, optionally,
 * the generator that draws minibatches: the ADAM, RNG, AVG and CLIP
 * sections of a training-state file, described in docs/file-format.md. */
#include <math.h>
#include <string.h>

#include "train/adam.h"
#include "core/alloc.h"
#include "core/cpu.h"
#include "io/format.h"
#include "core/rng.h"

#define TAG_ADAM NVP_TAG('A', 'D', 'A', 'M')
#define TAG_RNG NVP_TAG('R', 'N', 'G', ' ')
#define TAG_AVG NVP_TAG('A', 'V', 'G', ' ')
#define TAG_CLIP NVP_TAG('C', 'L', 'I', 'P')

static void write_state(nvp_writer *w, const void *opt, const void *rng)
{
    const nvp_adam *o = opt;
    const nvp_rng *r = rng;
    nvp__fmt_header(w, NVP_KIND_TRAINING,
                    1 + (r != NULL) + (o->avg != NULL) + (o->clip_norm > 0.0f));
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
}

/* The loader refuses a non-finite parameter average (the moments cannot
 * become non-finite: Adam refuses the gradients that would make them so),
 * so such a state is not written at all.  Non-finite parameters make one. */
static int check_average(const nvp_adam *o, const char *fn)
{
    const nvp_errbox *eb = &o->err;
    NVP_REQUIRE(!o->avg || nvp__all_finite(o->avg, o->n), NVP_ENONFINITE,
                "%s: the parameter average is not finite (non-finite "
                "parameters made it so); not saved",
                fn);
    return NVP_OK;
}

int nvp_adam_save_buffer(const nvp_adam *o, const nvp_rng *rng, void *buf,
                         size_t cap, size_t *size)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    NVP_REQUIRE_PTR(o);
    int rc = check_average(o, "nvp_adam_save_buffer");
    if (rc)
        return rc;
    return nvp__save_buffer(eb, "nvp_adam_save_buffer", write_state, o, rng,
                            buf, cap, size);
}

int nvp_adam_save_file(const nvp_adam *o, const nvp_rng *rng, const char *path)
{
    const nvp_errbox *eb = o ? &o->err : NULL;
    NVP_REQUIRE_PTR(o);
    int rc = check_average(o, "nvp_adam_save_file");
    if (rc)
        return rc;
    return nvp__save_file(eb, "nvp_adam_save_file", write_state, o, rng,
                          &o->alloc, path);
}

static int load_state(const char *fn, const void *data, size_t size,
                      const nvp_allocator *alloc, void *opt_out,
                      void *companion_out)
{
    nvp_adam **out = opt_out;
    nvp_rng **rng_out = companion_out;
    const nvp_errbox *eb = NULL;
    nvp_section sec[NVP_MAX_SECTIONS];
    size_t count;
    int rc = nvp__fmt_open(NULL, fn, data, size, NVP_KIND_TRAINING, sec,
                           &count);
    if (rc)
        return rc;
    for (size_t i = 0; i < count; i++) {
        NVP_REQUIRE(sec[i].tag == TAG_ADAM || sec[i].tag == TAG_RNG ||
                        sec[i].tag == TAG_AVG || sec[i].tag == TAG_CLIP,
                    NVP_EFORMAT, "%s: unknown section %zu", fn, i);
        for (size_t j = 0; j < i; j++)
            NVP_REQUIRE(sec[j].tag != sec[i].tag, NVP_EFORMAT,
                        "%s: repeated section %zu", fn, i);
    }
    nvp_section *as = nvp__fmt_find(sec, count, TAG_ADAM);
    nvp_section *rs = nvp__fmt_find(sec, count, TAG_RNG);
    nvp_section *avs = nvp__fmt_find(sec, count, TAG_AVG);
    nvp_section *cs = nvp__fmt_find(sec, count, TAG_CLIP);
    NVP_REQUIRE(as != NULL, NVP_EFORMAT, "%s: no optimizer section", fn);

    nvp_reader r = as->body;
    uint64_t n, t;
    float lr, b1, b2, eps;
    NVP_REQUIRE(nvp__get_u64(&r, &n) == 0 && nvp__get_f32(&r, &lr) == 0 &&
                    nvp__get_f32(&r, &b1) == 0 && nvp__get_f32(&r, &b2) == 0 &&
                    nvp__get_f32(&r, &eps) == 0 && nvp__get_u64(&r, &t) == 0,
                NVP_EFORMAT, "%s: truncated optimizer section", fn);
    NVP_REQUIRE(n >= 1 && n <= NVP_MAX_PARAMS && r.len - r.pos == 8 * n,
                NVP_EFORMAT,
                "%s: the optimizer section's size does not match its %llu "
                "parameters",
                fn, (unsigned long long)n);
    NVP_REQUIRE(t < UINT64_MAX, NVP_EFORMAT,
                "%s: invalid optimizer step count", fn);
    NVP_REQUIRE(isfinite(lr) && lr > 0.0f && b1 >= 0.0f && b1 < 1.0f &&
                    b2 >= 0.0f && b2 < 1.0f && isfinite(eps) && eps > 0.0f,
                NVP_EFORMAT, "%s: invalid optimizer settings", fn);

    uint64_t s[4] = {0, 0, 0, 0}, spare_bits = 0;
    uint32_t has_spare = 0;
    double spare = 0.0;
    if (rs) {
        nvp_reader rr = rs->body;
        for (int i = 0; i < 4; i++)
            nvp__get_u64(&rr, &s[i]);
        nvp__get_u32(&rr, &has_spare);
        nvp__get_u64(&rr, &spare_bits);
        memcpy(&spare, &spare_bits, sizeof spare);
        NVP_REQUIRE(!rr.bad && rr.pos == rr.len, NVP_EFORMAT,
                    "%s: the generator section has the wrong size", fn);
        /* The polar method never makes a normal above sqrt(-2 ln 2^-104),
         * about 12.01, in magnitude. */
        NVP_REQUIRE((s[0] | s[1] | s[2] | s[3]) != 0 && has_spare <= 1 &&
                        isfinite(spare) && fabs(spare) <= 16.0,
                    NVP_EFORMAT, "%s: invalid generator state", fn);
    }

    float avg_decay = 0.0f;
    nvp_reader ar = {0};
    if (avs) {
        ar = avs->body;
        NVP_REQUIRE(nvp__get_f32(&ar, &avg_decay) == 0 &&
                        ar.len - ar.pos == 4 * n,
                    NVP_EFORMAT,
                    "%s: the average section's size does not match the "
                    "optimizer's %llu parameters",
                    fn, (unsigned long long)n);
        NVP_REQUIRE(avg_decay > 0.0f && avg_decay < 1.0f, NVP_EFORMAT,
                    "%s: invalid parameter average decay", fn);
    }

    float clip_norm = 0.0f;
    if (cs) {
        nvp_reader cr = cs->body;
        NVP_REQUIRE(nvp__get_f32(&cr, &clip_norm) == 0 && cr.pos == cr.len,
                    NVP_EFORMAT, "%s: the clipping section has the wrong size",
                    fn);
        NVP_REQUIRE(isfinite(clip_norm) && clip_norm > 0.0f, NVP_EFORMAT,
                    "%s: invalid gradient-norm clipping limit", fn);
    }

    nvp_adam *o;
    rc = nvp_adam_create(&o, (size_t)n, alloc);
    if (rc)
        return nvp__fail_in(NULL, rc, fn);
    o->lr = lr;
    o->b1 = b1;
    o->b2 = b2;
    o->eps = eps;
    o->t = t;
    nvp__get_f32s(&r, o->m, o->n);
    nvp__get_f32s(&r, o->v, o->n);
    for (size_t i = 0; i < o->n; i++)
        if (!isfinite(o->m[i]) || !isfinite(o->v[i]) || o->v[i] < 0.0f) {
            nvp_adam_free(o);
            return nvp__fail(NULL, NVP_EFORMAT,
                             "%s: moment %zu is invalid", fn, i);
        }
    if (avs) {
        o->avg = nvp__alloc_aligned(&o->alloc, o->n * sizeof *o->avg);
        if (!o->avg) {
            nvp_adam_free(o);
            return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
        }
        o->avg_decay = avg_decay;
        nvp__get_f32s(&ar, o->avg, o->n);
        for (size_t i = 0; i < o->n; i++)
            if (!isfinite(o->avg[i])) {
                nvp_adam_free(o);
                return nvp__fail(NULL, NVP_EFORMAT,
                                 "%s: parameter average %zu is not finite",
                                 fn, i);
            }
    }
    if (cs && (rc = nvp_adam_set_clip_norm(o, clip_norm)) != NVP_OK) {
        nvp_adam_free(o);
        return nvp__fail(NULL, rc, "%s: out of memory", fn);
    }
    nvp_rng *g = NULL;
    if (rs && rng_out) {
        rc = nvp_rng_create(&g, 0, alloc);
        if (rc) {
            nvp_adam_free(o);
            return nvp__fail_in(NULL, rc, fn);
        }
        memcpy(g->s, s, sizeof s);
        g->has_spare = (int)has_spare;
        g->spare = spare;
    }
    *out = o;
    if (rng_out)
        *rng_out = g;
    return NVP_OK;
}

int nvp_adam_load_buffer(nvp_adam **out, nvp_rng **rng_out, const void *data,
                         size_t size, const nvp_allocator *alloc)
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
    return nvp__load_file("nvp_adam_load_file", load_state, path, alloc, out,
                          rng_out);
}
