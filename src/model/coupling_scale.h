/* SPDX-License-Identifier: MIT */
/* The affine coupling's log-scales and their exponentials, walked a span
 * of a row's entries at a time: what its steps (coupling_rows.c) and its
 * row gradients (coupling_backward.c) share.  All static inline, so that
 * the walker, and the span functions it is handed, inline into each
 * caller. */
#ifndef NVP_COUPLING_SCALE_H
#define NVP_COUPLING_SCALE_H

#include <math.h>
#include <stddef.h>

#include "kernels/exp_array.h"
#include "model/coupling.h"

/* Whether n ascending indices are one run of consecutive columns (the
 * half-split masks): then a row's entries among them are a plain array,
 * and loops over them copy or vectorise instead of gathering. */
static inline int is_run(const size_t *idx, size_t n)
{
    return idx[n - 1] - idx[0] == n - 1;
}

/* Runs (and spans of a run) shorter than this are still walked entry by
 * entry: the array loops' set-up (a memcpy call, the vector loops'
 * checks) costs more than it saves (the two-moons model's are single
 * entries). */
#define RUN_ARRAY_MIN 8

/* The log-scale the layer applies: the conditioner's raw output, or with a
 * clamp bound c > 0 the soft clamp c * tanh(raw / c), which keeps every
 * scale inside [e^-c, e^c] while staying smooth. */
static inline float log_scale_of(float raw, float clamp)
{
    return clamp > 0.0f ? clamp * tanhf(raw / clamp) : raw;
}

/* The sigmoid form's scale (nflows' default): s = sigmoid(raw + 2) +
 * 1e-3, in (1e-3, 1.001), from e = expf(-(raw + 2)); *sig receives
 * sigmoid(raw + 2) for the derivative ds/draw = sig (1 - sig). */
static inline float sigmoid_scale_from(float e, float *sig)
{
    const float g = 1.0f / (1.0f + e);
    *sig = g;
    return g + 1e-3f;
}

/* What for_each_scale exponentiates for an entry: the exp form's
 * log-scale ls (its forward) or -ls (its inverse), or the sigmoid form's
 * -(raw + 2).  *ls receives the log-scale (the sigmoid form: raw). */
typedef enum scale_arg { SCALE_LS, SCALE_NEG_LS, SCALE_SIGMOID } scale_arg;

static inline float scale_arg_of(scale_arg mode, float raw, float clamp,
                                 float *ls)
{
    if (mode == SCALE_SIGMOID) {
        *ls = raw;
        return -(raw + 2.0f);
    }
    const float l = log_scale_of(raw, clamp);
    *ls = l;
    return mode == SCALE_NEG_LS ? -l : l;
}

/* The log-scales and their exponentials, a batch at a time:
 * one vectorised call (kernels/exp_array.h, expf's bits) in place of a
 * call per entry.  A batch runs across rows, so that a few entries per
 * row (the two-moons model has one) still fill it. */
#define SCALE_BATCH 128

/* What for_each_scale hands out: a span of n consecutive transformed
 * entries of row i, from its k0-th (x_b indices c->idx_b[k0 ..]), with
 * their log-scales ls (the sigmoid form: the raw outputs) and e, the
 * exponentials scale_arg_of asked for.  A span never crosses a row. */
typedef void (*scale_span_fn)(void *arg, size_t i, size_t k0, size_t n,
                              const float *ls, const float *e);

/* Rows ahead of the one being filled whose lines for_each_scale requests
 * (with ahead set): rows of a few thousand floats, such as D=784's, come
 * from beyond L2 after the conditioner's products, and the hardware's
 * own fetching trails the step (D=784 log_prob 1-4% faster side by side;
 * no gain measured for short rows, nor in the backward's row gradients). */
#define SCALE_AHEAD_ROWS 3

/* Whether the log-scales differ from the raw outputs: the exp form's
 * soft clamp.  Otherwise spans read them from the output rows. */
static inline int clamped(scale_arg mode, float clamp)
{
    return mode != SCALE_SIGMOID && clamp > 0.0f;
}

/* The arguments of n entries' exponentials from their raw outputs, and
 * where clamped() their log-scales, with the mode and clamp tested once
 * per batch rather than per entry, so that the loops vectorise (the
 * values of scale_arg_of). */
static inline __attribute__((always_inline)) void
fill_args(scale_arg mode, float clamp, const float *restrict raw, size_t n,
          float *restrict ls, float *restrict arg)
{
    if (clamped(mode, clamp))
        for (size_t t = 0; t < n; t++)
            arg[t] = scale_arg_of(mode, raw[t], clamp, &ls[t]);
    else if (mode == SCALE_SIGMOID)
        for (size_t t = 0; t < n; t++)
            arg[t] = -(raw[t] + 2.0f);
    else if (mode == SCALE_NEG_LS)
        for (size_t t = 0; t < n; t++)
            arg[t] = -raw[t];
    else
        for (size_t t = 0; t < n; t++)
            arg[t] = raw[t];
}

/* Calls span for every entry k < nb of rows [lo, hi), in order, from the
 * conditioner's output rows out (shift, then raw log-scale).  With ahead
 * (rows of the layer's dim floats, as z; may be NULL) it fetches out's and
 * ahead's rows SCALE_AHEAD_ROWS ahead.  Always inlined, with span a
 * constant, so that span is inlined too. */
static inline __attribute__((always_inline)) void
for_each_scale(const nvp_coupling *c, nvp_isa isa, const float *out,
               const float *ahead, size_t lo, size_t hi, scale_arg mode,
               scale_span_fn span, void *arg)
{
    const size_t line = 64 / sizeof(float), dim = c->layer.dim;
    const size_t nb = c->nb;
    if (isa == NVP_ISA_PORTABLE) {
        /* expf itself, one entry at a time: through the batches it
         * measured 8% slower */
        for (size_t i = lo; i < hi; i++)
            for (size_t k = 0; k < nb; k++) {
                float l;
                const float a = scale_arg_of(
                    mode, out[i * 2 * nb + nb + k], c->clamp, &l);
                const float e = expf(a);
                span(arg, i, k, 1, &l, &e);
            }
        return;
    }
    float ls[SCALE_BATCH], e[SCALE_BATCH];
    const int own_ls = clamped(mode, c->clamp); /* else read from out */
    size_t fill_i = lo, fill_k = 0; /* the next entry to fill */
    size_t i = lo, k = 0;           /* the next entry to hand out */
    while (fill_i < hi) {
        size_t n = 0;
        while (fill_i < hi && n < SCALE_BATCH) {
            if (ahead && fill_k == 0 && fill_i + SCALE_AHEAD_ROWS < hi) {
                const size_t r = fill_i + SCALE_AHEAD_ROWS;
                for (size_t q = 0; q < 2 * nb; q += line)
                    __builtin_prefetch(out + r * 2 * nb + q);
                for (size_t q = 0; q < dim; q += line)
                    __builtin_prefetch(ahead + r * dim + q);
            }
            const size_t take =
                nb - fill_k < SCALE_BATCH - n ? nb - fill_k : SCALE_BATCH - n;
            fill_args(mode, c->clamp, out + fill_i * 2 * nb + nb + fill_k,
                      take, ls + n, e + n);
            n += take;
            fill_k += take;
            if (fill_k == nb) {
                fill_k = 0;
                fill_i++;
            }
        }
        nvp__exp_array(isa, e, e, n);
        for (size_t t = 0; t < n;) {
            const size_t take = nb - k < n - t ? nb - k : n - t;
            span(arg, i, k, take, own_ls ? ls + t : out + i * 2 * nb + nb + k,
                 e + t);
            t += take;
            k += take;
            if (k == nb) {
                k = 0;
                i++;
            }
        }
    }
}

/* What an entry-by-entry term gets: row i's k-th transformed entry,
 * its log-scale ls (the sigmoid form: the raw output) and e. */
typedef void (*scale_term_fn)(void *arg, size_t i, size_t k, float ls,
                              float e);

/* A span as term calls, entry by entry (for the terms that do not
 * vectorise: the sigmoid form's logf, the gradients' gathers). */
static inline __attribute__((always_inline)) void
each_entry(scale_term_fn term, void *arg, size_t i, size_t k0, size_t n,
           const float *ls, const float *e)
{
    for (size_t t = 0; t < n; t++)
        term(arg, i, k0 + t, ls[t], e[t]);
}

#endif
