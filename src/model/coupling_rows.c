/* SPDX-License-Identifier: MIT */
/* The affine coupling on a chunk of rows: x_a goes through the conditioner
 * (model/conditioner.c), and its output shifts and scales x_b; the
 * log-determinant is summed in the same pass. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "kernels/exp_array.h"
#include "model/coupling.h"

/* The layer's cache: the conditioner's. */
size_t nvp__coupling_cache_floats(const nvp_coupling *c, size_t rows)
{
    return nvp__cond_cache_floats(&c->cond, rows);
}

size_t nvp__coupling_scratch_floats(const nvp_coupling *c, size_t rows)
{
    /* dL/d(conditioner output), the conditioner's scratch, and dL/d(its
     * input): x_a, then the context. */
    return nvp__carved(rows * 2 * c->nb) +
           nvp__cond_scratch_floats(&c->cond, rows) +
           nvp__carved(rows * c->cond.n_in);
}

/* Whether n ascending indices are one run of consecutive columns (the
 * half-split masks): then a row's entries among them are a plain array,
 * and loops over them copy or vectorise instead of gathering. */
static int is_run(const size_t *idx, size_t n)
{
    return idx[n - 1] - idx[0] == n - 1;
}

/* Runs (and spans of a run) shorter than this are still walked entry by
 * entry: the array loops' set-up (a memcpy call, the vector loops'
 * checks) costs more than it saves (the two-moons model's are single
 * entries). */
#define RUN_ARRAY_MIN 8

/* Gathers z_a, then the row's context, into the cache and runs the
 * conditioner.  Returns the output block (rows x 2 nb: shift, then raw
 * log-scale). */
static const float *conditioner_of(const nvp_coupling *c, const nvp_exec *ex,
                                   size_t rows, const float *z,
                                   const float *cond, float *cache,
                                   nvp_cond_cache *cc)
{
    const size_t na = c->na, cdim = c->layer.cdim, n_in = c->cond.n_in;
    const int run = na >= RUN_ARRAY_MIN && is_run(c->idx_a, na);
    nvp__cond_cache_bind(&c->cond, rows, cache, cc);
    for (size_t i = 0; i < rows; i++) {
        float *in = cc->input + i * n_in;
        const float *zi = z + i * c->layer.dim;
        if (run)
            memcpy(in, zi + c->idx_a[0], na * sizeof *in);
        else
            for (size_t j = 0; j < na; j++)
                in[j] = zi[c->idx_a[j]];
        if (cdim)
            memcpy(in + na, cond + i * cdim, cdim * sizeof *in);
    }
    return nvp__cond_forward(&c->cond, ex, c->layer.params, rows, cc);
}

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
        const int own_ls = clamped(mode, c->clamp);
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

/* A direction's affine step on rows [lo, hi) of a chunk, from the
 * conditioner's output rows (shift, then raw log-scale), for
 * nvp__exec_rows. */
typedef struct step_job {
    const nvp_coupling *c;
    nvp_isa isa;
    const float *out;
    float *z;
    float *ld; /* ildj (inverse) or logdet (forward); may be NULL */
} step_job;

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

/* A step's state: the job, the row's running sum of log-scales, which
 * goes into ld at the row's last entry, and whether the transformed
 * entries are a run. */
typedef struct step_state {
    const step_job *j;
    float sum;
    int run;
} step_state;

/* At row i's last entry k, the row's sum goes into ld: subtracted by
 * the inverse steps (sub), added by the forward ones. */
static inline void end_of_row(step_state *s, size_t i, size_t k, int sub)
{
    const step_job *j = s->j;
    if (k + 1 != j->c->nb)
        return;
    if (j->ld)
        j->ld[i] = sub ? j->ld[i] - s->sum : j->ld[i] + s->sum;
    s->sum = 0.0f;
}

/* The exp form's log-determinant: the span's log-scales added to the
 * row's sum one by one, in the entries' order. */
static inline void sum_span(step_state *s, size_t i, size_t k0, size_t n,
                            const float *ls, int sub)
{
    float sum = s->sum;
    for (size_t t = 0; t < n; t++)
        sum += ls[t];
    s->sum = sum;
    end_of_row(s, i, k0 + n - 1, sub);
}

/* x_b = (y_b - shift) e^-ls; log|det dx/dy| = -sum ls */
static inline void inverse_span(void *arg, size_t i, size_t k0, size_t n,
                                const float *ls, const float *e)
{
    step_state *s = arg;
    const step_job *j = s->j;
    const nvp_coupling *c = j->c;
    float *zi = j->z + i * c->layer.dim;
    const float *restrict shift = j->out + i * 2 * c->nb + k0;
    if (s->run && n >= RUN_ARRAY_MIN) {
        float *restrict zb = zi + c->idx_b[k0];
        for (size_t t = 0; t < n; t++)
            zb[t] = (zb[t] - shift[t]) * e[t];
    } else {
        for (size_t t = 0; t < n; t++) {
            float *zb = zi + c->idx_b[k0 + t];
            *zb = (*zb - shift[t]) * e[t];
        }
    }
    sum_span(s, i, k0, n, ls, 1);
}

/* y_b = x_b e^ls + shift; log|det dy/dx| = sum ls */
static inline void forward_span(void *arg, size_t i, size_t k0, size_t n,
                                const float *ls, const float *e)
{
    step_state *s = arg;
    const step_job *j = s->j;
    const nvp_coupling *c = j->c;
    float *zi = j->z + i * c->layer.dim;
    const float *restrict shift = j->out + i * 2 * c->nb + k0;
    if (s->run && n >= RUN_ARRAY_MIN) {
        float *restrict zb = zi + c->idx_b[k0];
        for (size_t t = 0; t < n; t++)
            zb[t] = zb[t] * e[t] + shift[t];
    } else {
        for (size_t t = 0; t < n; t++) {
            float *zb = zi + c->idx_b[k0 + t];
            *zb = *zb * e[t] + shift[t];
        }
    }
    sum_span(s, i, k0, n, ls, 0);
}

/* The sigmoid form: x_b = y_b s + shift; log|det dx/dy| = sum log s
 * (the row's sum of -log s subtracted). */
static inline void inverse_sigmoid_term(void *arg, size_t i, size_t k,
                                        float raw, float e)
{
    step_state *s = arg;
    const step_job *j = s->j;
    const size_t nb = j->c->nb, b = j->c->idx_b[k];
    float *zi = j->z + i * j->c->layer.dim;
    float g;
    const float sc = sigmoid_scale_from(e, &g);
    (void)raw;
    zi[b] = zi[b] * sc + j->out[i * 2 * nb + k];
    s->sum -= logf(sc);
    end_of_row(s, i, k, 1);
}

/* y_b = (x_b - shift) / s; log|det dy/dx| = -sum log s */
static inline void forward_sigmoid_term(void *arg, size_t i, size_t k,
                                        float raw, float e)
{
    step_state *s = arg;
    const step_job *j = s->j;
    const size_t nb = j->c->nb, b = j->c->idx_b[k];
    float *zi = j->z + i * j->c->layer.dim;
    float g;
    const float sc = sigmoid_scale_from(e, &g);
    (void)raw;
    zi[b] = (zi[b] - j->out[i * 2 * nb + k]) / sc;
    s->sum -= logf(sc);
    end_of_row(s, i, k, 0);
}

static inline void inverse_sigmoid_span(void *arg, size_t i, size_t k0,
                                        size_t n, const float *raw,
                                        const float *e)
{
    each_entry(inverse_sigmoid_term, arg, i, k0, n, raw, e);
}

static inline void forward_sigmoid_span(void *arg, size_t i, size_t k0,
                                        size_t n, const float *raw,
                                        const float *e)
{
    each_entry(forward_sigmoid_term, arg, i, k0, n, raw, e);
}

static void inverse_step(void *arg, size_t lo, size_t hi)
{
    const step_job *j = arg;
    step_state s = {j, 0.0f, is_run(j->c->idx_b, j->c->nb)};
    if (j->c->form == NVP_AFFINE_SIGMOID)
        for_each_scale(j->c, j->isa, j->out, j->z, lo, hi, SCALE_SIGMOID,
                       inverse_sigmoid_span, &s);
    else
        for_each_scale(j->c, j->isa, j->out, j->z, lo, hi, SCALE_NEG_LS,
                       inverse_span, &s);
}

static void forward_step(void *arg, size_t lo, size_t hi)
{
    const step_job *j = arg;
    step_state s = {j, 0.0f, is_run(j->c->idx_b, j->c->nb)};
    if (j->c->form == NVP_AFFINE_SIGMOID)
        for_each_scale(j->c, j->isa, j->out, j->z, lo, hi, SCALE_SIGMOID,
                       forward_sigmoid_span, &s);
    else
        for_each_scale(j->c, j->isa, j->out, j->z, lo, hi, SCALE_LS,
                       forward_span, &s);
}

/* The conditioner over the chunk, then a direction's affine step over
 * its rows, shared out by rows. */
static void affine_rows(const nvp_coupling *c, const nvp_exec *ex,
                        size_t rows, float *z, const float *cond, float *ld,
                        float *cache, nvp_rows_fn step)
{
    nvp_cond_cache cc;
    step_job j = {c, ex->isa,
                  conditioner_of(c, ex, rows, z, cond, cache, &cc), z, ld};
    nvp__exec_rows(ex, rows, step, &j);
}

void nvp__coupling_inverse_rows(const nvp_coupling *c, const nvp_exec *ex,
                                size_t rows, float *z, const float *cond,
                                float *ildj, float *cache)
{
    affine_rows(c, ex, rows, z, cond, ildj, cache, inverse_step);
}

void nvp__coupling_forward_rows(const nvp_coupling *c, const nvp_exec *ex,
                                size_t rows, float *z, const float *cond,
                                float *logdet, float *cache)
{
    affine_rows(c, ex, rows, z, cond, logdet, cache, forward_step);
}

/* The rows [lo, hi) of a backward's row gradients (nvp__exec_rows), one
 * function per form and direction: from the rows' conditioner output out
 * (shift, then raw scale), the step's input x, the gradient g of its
 * output and gld of its log-determinant (NULL: zero), they write the
 * gradient of the input's transformed part into gin (may be NULL) and the
 * conditioner output's gradient into dout. */
typedef struct grads_job {
    const nvp_coupling *c;
    nvp_isa isa;
    const float *out, *x, *g, *gld;
    float *gin, *dout;
    int run; /* c->idx_b is a run */
} grads_job;

/* What every row-gradient term reads and writes for row i's entry k: the
 * output's gradient at x_b (g), the step's input x_b (x), the row's
 * log-determinant gradient (di), the row's shift, and where x_b's
 * gradient (gin, when asked for) and the row's dout go. */
typedef struct grads_entry {
    float g, x, di, shift;
    float *gin;  /* NULL: not asked for */
    float *dout; /* the row's: d shift, then d raw */
} grads_entry;

static inline grads_entry entry_of(const grads_job *j, size_t i, size_t k)
{
    const nvp_coupling *c = j->c;
    const size_t at = i * c->layer.dim + c->idx_b[k];
    const grads_entry en = {j->g[at], j->x[at], j->gld ? j->gld[i] : 0.0f,
                            j->out[i * 2 * c->nb + k],
                            j->gin ? j->gin + at : NULL,
                            j->dout + i * 2 * c->nb};
    return en;
}

/* Stores an entry's gradients: x_b's (when asked for), d shift and d raw
 * (d log-scale, through the soft clamp's derivative 1 - tanh^2(r / c)
 * for the exp form when the layer has one). */
static inline void put_grads(const grads_job *j, const grads_entry *en,
                             size_t k, float gin, float dshift, float draw)
{
    if (en->gin)
        *en->gin = gin;
    en->dout[k] = dshift;
    en->dout[j->c->nb + k] = draw;
}

static inline float through_clamp(const nvp_coupling *c, float ls, float g)
{
    if (c->clamp > 0.0f) {
        const float t = ls / c->clamp;
        g *= 1.0f - t * t;
    }
    return g;
}

/* The exp form's affine step, x_b = (y_b - shift) e^{-ls}, at row i's
 * entry k: dx_b/dy_b = e^{-ls}, dx_b/dshift = -e^{-ls}, dx_b/dls = -x_b;
 * ildj = -sum ls, so dildj/dls = -1. */
static inline void inverse_grads_term(void *arg, size_t i, size_t k,
                                      float ls, float e)
{
    const grads_job *j = arg;
    const grads_entry en = entry_of(j, i, k);
    put_grads(j, &en, k, en.g * e, -en.g * e,
              through_clamp(j->c, ls, -en.g * en.x - en.di));
}

/* The same through the sigmoid form, x_b = y_b s + shift with s =
 * sigmoid(u + 2) + 1e-3 and ildj = sum log s: dx_b/dy_b = s, dx_b/dshift
 * = 1, dL/ds = dx_b y_b + dildj / s and ds/du = g (1 - g), g the
 * sigmoid; y_b is recovered from x_b as (x_b - shift) / s. */
static inline void inverse_sigmoid_grads_term(void *arg, size_t i,
                                              size_t k, float raw, float e)
{
    const grads_job *j = arg;
    const grads_entry en = entry_of(j, i, k);
    float g;
    const float sc = sigmoid_scale_from(e, &g);
    const float yb = (en.x - en.shift) / sc;
    (void)raw;
    put_grads(j, &en, k, en.g * sc, en.g,
              (en.g * yb + en.di / sc) * g * (1.0f - g));
}

/* The exp form's forward step, y_b = x_b e^{ls} + shift, logdet = sum
 * ls, at row i's entry k: dy_b/dx_b = e^{ls}, dy_b/dshift = 1, dy_b/dls =
 * x_b e^{ls}, dlogdet/dls = 1. */
static inline void forward_grads_term(void *arg, size_t i, size_t k,
                                      float ls, float e)
{
    const grads_job *j = arg;
    const grads_entry en = entry_of(j, i, k);
    put_grads(j, &en, k, en.g * e, en.g,
              through_clamp(j->c, ls, en.g * (en.x * e) + en.di));
}

/* The same through the sigmoid form's forward step, y_b = (x_b - shift) /
 * s, logdet = -sum log s: dy_b/dx_b = 1/s, dy_b/dshift = -1/s, and
 * dL/ds = -(dy_b y_b + dlogdet) / s, ds/du = g (1 - g). */
static inline void forward_sigmoid_grads_term(void *arg, size_t i,
                                              size_t k, float raw, float e)
{
    const grads_job *j = arg;
    const grads_entry en = entry_of(j, i, k);
    float g;
    const float sc = sigmoid_scale_from(e, &g);
    const float yb = (en.x - en.shift) / sc;
    (void)raw;
    put_grads(j, &en, k, en.g / sc, -en.g / sc,
              -(en.g * yb + en.di) / sc * g * (1.0f - g));
}

/* A span of row i from its k0-th entry when the transformed entries run
 * consecutively: x_b's gradient, input and (when asked for) input
 * gradient as arrays, and the row's d shift and d raw.  gin may be g
 * itself (an in-place backward), so the spans store gin last. */
typedef struct grads_run {
    const float *g, *x;
    float *gin; /* NULL: not asked for */
    float *dshift, *draw;
    float di;
} grads_run;

static inline grads_run run_of(const grads_job *j, size_t i, size_t k0)
{
    const nvp_coupling *c = j->c;
    const size_t at = i * c->layer.dim + c->idx_b[k0];
    float *dout = j->dout + i * 2 * c->nb + k0;
    const grads_run r = {j->g + at, j->x + at, j->gin ? j->gin + at : NULL,
                         dout, dout + c->nb, j->gld ? j->gld[i] : 0.0f};
    return r;
}

/* d raw from d ls for n entries, through the soft clamp when the layer
 * has one (through_clamp's values, the test hoisted out of the loop). */
static inline void clamp_span(const nvp_coupling *c, size_t n,
                              const float *ls, float *draw)
{
    if (c->clamp > 0.0f)
        for (size_t t = 0; t < n; t++)
            draw[t] = through_clamp(c, ls[t], draw[t]);
}

/* The exp form's row gradients over a span, either direction (forward a
 * constant once inlined): arrays where the entries are a run, the
 * terms above entry by entry otherwise. */
static inline __attribute__((always_inline)) void
exp_grads_span(const grads_job *j, size_t i, size_t k0, size_t n,
               const float *ls, const float *e, int forward)
{
    if (!j->run || n < RUN_ARRAY_MIN) {
        each_entry(forward ? forward_grads_term : inverse_grads_term,
                   (void *)j, i, k0, n, ls, e);
        return;
    }
    const grads_run r = run_of(j, i, k0);
    for (size_t t = 0; t < n; t++) {
        r.dshift[t] = forward ? r.g[t] : -r.g[t] * e[t];
        r.draw[t] = forward ? r.g[t] * (r.x[t] * e[t]) + r.di
                            : -r.g[t] * r.x[t] - r.di;
    }
    clamp_span(j->c, n, ls, r.draw);
    if (r.gin)
        for (size_t t = 0; t < n; t++)
            r.gin[t] = r.g[t] * e[t];
}

static inline void inverse_grads_span(void *arg, size_t i, size_t k0, size_t n,
                                      const float *ls, const float *e)
{
    exp_grads_span(arg, i, k0, n, ls, e, 0);
}

static void inverse_exp_grads_rows(void *arg, size_t lo, size_t hi)
{
    grads_job j = *(const grads_job *)arg;
    for_each_scale(j.c, j.isa, j.out, NULL, lo, hi, SCALE_NEG_LS,
                   inverse_grads_span, &j);
}

static inline void forward_grads_span(void *arg, size_t i, size_t k0, size_t n,
                                      const float *ls, const float *e)
{
    exp_grads_span(arg, i, k0, n, ls, e, 1);
}

static void forward_exp_grads_rows(void *arg, size_t lo, size_t hi)
{
    grads_job j = *(const grads_job *)arg;
    for_each_scale(j.c, j.isa, j.out, NULL, lo, hi, SCALE_LS,
                   forward_grads_span, &j);
}

static inline void inverse_sigmoid_grads_span(void *arg, size_t i,
                                              size_t k0, size_t n,
                                              const float *ls,
                                              const float *e)
{
    each_entry(inverse_sigmoid_grads_term, arg, i, k0, n, ls, e);
}

static void inverse_sigmoid_grads_rows(void *arg, size_t lo, size_t hi)
{
    grads_job j = *(const grads_job *)arg;
    for_each_scale(j.c, j.isa, j.out, NULL, lo, hi, SCALE_SIGMOID,
                   inverse_sigmoid_grads_span, &j);
}

static inline void forward_sigmoid_grads_span(void *arg, size_t i,
                                              size_t k0, size_t n,
                                              const float *ls,
                                              const float *e)
{
    each_entry(forward_sigmoid_grads_term, arg, i, k0, n, ls, e);
}

static void forward_sigmoid_grads_rows(void *arg, size_t lo, size_t hi)
{
    grads_job j = *(const grads_job *)arg;
    for_each_scale(j.c, j.isa, j.out, NULL, lo, hi, SCALE_SIGMOID,
                   forward_sigmoid_grads_span, &j);
}

/* The backward of either direction over rows rows, after that direction
 * filled cache: x holds the rows the row function reads (the inverse's
 * output, the forward's input), g (rows x dim) is dL/d(output), gld
 * dL/d(log-determinant) per row (NULL: zero).  Writes gin = dL/dx (may be
 * NULL), adds dL/d(context) into dcond (may be NULL) and the parameter
 * gradient into grad (fresh: see nvp__cond_backward), with grads_rows
 * the row gradients of the layer's form and direction. */
static void backward_rows(const nvp_coupling *c, const nvp_exec *ex,
                          size_t rows, const float *cache, const float *x,
                          const float *g, const float *gld, float *gin,
                          float *dcond, float *grad, int fresh,
                          float *scratch, nvp_rows_fn grads_rows)
{
    const size_t nb = c->nb, na = c->na, dim = c->layer.dim;
    const size_t cdim = c->layer.cdim, n_in = c->cond.n_in;
    nvp_cond_cache cc;
    nvp__cond_cache_bind(&c->cond, rows, (float *)cache, &cc);
    const float *out = cc.act[c->cond.n_dense - 1];
    float *cursor = scratch;
    float *dout = nvp__carve(&cursor, rows * 2 * nb);
    float *cond_scratch =
        nvp__carve(&cursor, nvp__cond_scratch_floats(&c->cond, rows));
    float *din = nvp__carve(&cursor, rows * n_in);
    /* The conditioner's input gradient: for gin's x_a part, and for the
     * context's gradient. */
    const int want_din = gin || (dcond && cdim);
    /* The output layer's bias gradient is the column sums of dout: summed
     * here, row by row once dout is made (the order a loop over it adds
     * them in), unless the conditioner sums it itself. */
    float *gb_out = grad && !nvp__cond_owns_out_bias(&c->cond)
                        ? grad + c->cond.dense[c->cond.n_dense - 1].b_off
                        : NULL;
    if (gb_out && fresh) /* the conditioner's range is written fresh */
        memset(gb_out, 0, 2 * nb * sizeof *gb_out);
    grads_job gj = {c,   ex->isa, out,  x,
                    g,   gld,     gin,  dout,
                    is_run(c->idx_b, c->nb)};
    nvp__exec_rows(ex, rows, grads_rows, &gj);
    if (gb_out)
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < 2 * nb; j++)
                gb_out[j] += dout[i * 2 * nb + j];
    nvp__cond_backward(&c->cond, ex, c->layer.params, rows, &cc, dout,
                       want_din ? din : NULL, grad, fresh, cond_scratch);
    /* x_a passes through: its gradient, plus what reaches it through the
     * conditioner */
    if (gin) {
        const int run = na >= RUN_ARRAY_MIN && is_run(c->idx_a, na);
        for (size_t i = 0; i < rows; i++) {
            float *gi = gin + i * dim;
            const float *gg = g + i * dim, *di = din + i * n_in;
            if (run) /* gin may be g: the same entry is read, then stored */
                for (size_t j = 0, a = c->idx_a[0]; j < na; j++, a++)
                    gi[a] = gg[a] + di[j];
            else
                for (size_t j = 0; j < na; j++)
                    gi[c->idx_a[j]] = gg[c->idx_a[j]] + di[j];
        }
    }
    if (dcond && cdim)
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < cdim; j++)
                dcond[i * cdim + j] += din[i * n_in + na + j];
}

void nvp__coupling_inverse_backward_rows(const nvp_coupling *c,
                                         const nvp_exec *ex, size_t rows,
                                         const float *cache, const float *x,
                                         const float *dx, const float *dildj,
                                         float *dy, float *dcond, float *grad,
                                         int fresh, float *scratch)
{
    /* the inverse maps y to x: its output's gradient is dx, its input's
     * dy, and cache holds x's conditioner (x_a = y_a) */
    backward_rows(c, ex, rows, cache, x, dx, dildj, dy, dcond, grad, fresh,
                  scratch,
                  c->form == NVP_AFFINE_SIGMOID ? inverse_sigmoid_grads_rows
                                                : inverse_exp_grads_rows);
}

void nvp__coupling_forward_backward_rows(const nvp_coupling *c,
                                         const nvp_exec *ex, size_t rows,
                                         const float *cache, const float *x,
                                         const float *dy,
                                         const float *dlogdet, float *dx,
                                         float *dcond, float *grad, int fresh,
                                         float *scratch)
{
    backward_rows(c, ex, rows, cache, x, dy, dlogdet, dx, dcond, grad, fresh,
                  scratch,
                  c->form == NVP_AFFINE_SIGMOID ? forward_sigmoid_grads_rows
                                                : forward_exp_grads_rows);
}

/* The layer table's entry: the functions above, taking the shared part. */
#define AS_COUPLING(l) ((const nvp_coupling *)(l))

static size_t kind_cache_floats(const nvp_layer *l, size_t rows)
{
    return nvp__coupling_cache_floats(AS_COUPLING(l), rows);
}

static size_t kind_scratch_floats(const nvp_layer *l, size_t rows)
{
    return nvp__coupling_scratch_floats(AS_COUPLING(l), rows);
}

static void kind_inverse_rows(const nvp_layer *l, const nvp_exec *ex,
                              size_t rows, float *z, const float *cond,
                              float *ildj, float *cache)
{
    nvp__coupling_inverse_rows(AS_COUPLING(l), ex, rows, z, cond, ildj,
                               cache);
}

static void kind_forward_rows(const nvp_layer *l, const nvp_exec *ex,
                              size_t rows, float *z, const float *cond,
                              float *logdet, float *cache)
{
    nvp__coupling_forward_rows(AS_COUPLING(l), ex, rows, z, cond, logdet,
                               cache);
}

static void kind_inverse_backward_rows(const nvp_layer *l, const nvp_exec *ex,
                                       size_t rows, const float *cache,
                                       const float *x, const float *cond,
                                       const float *dx, const float *dildj,
                                       float *dy, float *dcond, float *grad,
                                       int fresh, float *scratch)
{
    (void)cond; /* the cache holds it */
    nvp__coupling_inverse_backward_rows(AS_COUPLING(l), ex, rows, cache, x,
                                        dx, dildj, dy, dcond, grad, fresh,
                                        scratch);
}

static void kind_forward_backward_rows(const nvp_layer *l, const nvp_exec *ex,
                                       size_t rows, const float *cache,
                                       const float *x, const float *cond,
                                       const float *dy, const float *dlogdet,
                                       float *dx, float *dcond, float *grad,
                                       int fresh, float *scratch)
{
    (void)cond; /* the cache holds it */
    nvp__coupling_forward_backward_rows(AS_COUPLING(l), ex, rows, cache, x,
                                        dy, dlogdet, dx, dcond, grad, fresh,
                                        scratch);
}

static void kind_fresh_range(const nvp_layer *l, size_t *off, size_t *len)
{
    /* The conditioner's parameters are the layer's, from offset 0. */
    nvp__cond_fresh_range(&AS_COUPLING(l)->cond, off, len);
}

static void kind_set_clamp(nvp_layer *l, float bound)
{
    ((nvp_coupling *)l)->clamp = bound;
}

/* Stored values: n_hidden, the widths, the clamp's bits, the mask, then
 * what later versions added, only when it is not the default (so a layer
 * without them stores what version 0.4.0 stored): the context dimension,
 * and after it the affine form. */
static size_t extra_values(const nvp_coupling *c)
{
    return c->form != NVP_AFFINE_EXP ? 2 : c->layer.cdim > 0 ? 1 : 0;
}

static size_t kind_hyper_count(const nvp_layer *l)
{
    return 2 + (AS_COUPLING(l)->cond.n_dense - 1) + l->dim +
           extra_values(AS_COUPLING(l));
}

static uint32_t kind_hyper_value(const nvp_layer *l, size_t i)
{
    const nvp_coupling *c = AS_COUPLING(l);
    const size_t n_hidden = c->cond.n_dense - 1;
    if (i == 0)
        return (uint32_t)n_hidden;
    if (i <= n_hidden)
        return (uint32_t)c->cond.dense[i - 1].out;
    if (i == n_hidden + 1) {
        uint32_t bits;
        memcpy(&bits, &c->clamp, sizeof bits);
        return bits;
    }
    if (i == n_hidden + 2 + l->dim)
        return (uint32_t)l->cdim;
    if (i == n_hidden + 3 + l->dim)
        return (uint32_t)c->form;
    return c->mask[i - n_hidden - 2];
}

static int kind_hyper_check(const char *fn, size_t dim, const uint32_t *h,
                            size_t n, uint64_t *n_params)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(dim >= 2 && n >= 2 + dim && h[0] <= NVP_MAX_HIDDEN_LAYERS &&
                    n >= 2 + h[0] + dim && n <= 4 + h[0] + dim,
                NVP_EFORMAT, "%s: a coupling's description is malformed", fn);
    /* The values after the mask (see extra_values): the context dimension,
     * then the affine form, each stored only when needed. */
    const size_t base_n = 2 + h[0] + dim;
    const uint32_t cdim = n > base_n ? h[base_n] : 0;
    const uint32_t form = n > base_n + 1 ? h[base_n + 1] : NVP_AFFINE_EXP;
    NVP_REQUIRE(cdim <= NVP_MAX_DIM && (n != base_n + 1 || cdim >= 1),
                NVP_EFORMAT, "%s: context dimension %u outside [1, %d]", fn,
                cdim, NVP_MAX_DIM);
    NVP_REQUIRE(n != base_n + 2 || form == NVP_AFFINE_SIGMOID, NVP_EFORMAT,
                "%s: unknown affine form %u", fn, form);
    const uint32_t n_hidden = h[0];
    for (uint32_t k = 0; k < n_hidden; k++)
        NVP_REQUIRE(h[1 + k] >= 1 && h[1 + k] <= NVP_MAX_WIDTH, NVP_EFORMAT,
                    "%s: hidden width %u outside [1, %d]", fn, h[1 + k],
                    NVP_MAX_WIDTH);
    float clamp;
    memcpy(&clamp, &h[1 + n_hidden], sizeof clamp);
    NVP_REQUIRE(isfinite(clamp) && clamp >= 0.0f, NVP_EFORMAT,
                "%s: invalid log-scale clamp", fn);
    const uint32_t *mask = h + 2 + n_hidden;
    uint64_t na = 0;
    for (size_t j = 0; j < dim; j++) {
        NVP_REQUIRE(mask[j] <= 1, NVP_EFORMAT, "%s: mask value %zu is %u", fn,
                    j, mask[j]);
        na += mask[j];
    }
    NVP_REQUIRE(na > 0 && na < dim, NVP_EFORMAT,
                "%s: the mask needs both a 0 and a 1", fn);
    /* Every factor is at most 2^16, so no product overflows 64 bits. */
    uint64_t in = na + cdim, total = 0;
    for (uint32_t k = 0; k <= n_hidden; k++) {
        const uint64_t out = k < n_hidden ? h[1 + k] : 2 * (dim - na);
        total += in * out + out;
        in = out;
    }
    *n_params = total;
    return NVP_OK;
}

static int kind_from_hyper(nvp_layer **out, const char *fn, size_t dim,
                           const uint32_t *h, size_t n,
                           const nvp_allocator *alloc)
{
    const uint32_t n_hidden = h[0];
    const size_t base_n = 2 + n_hidden + dim;
    const size_t cdim = n > base_n ? h[base_n] : 0;
    const int form = n > base_n + 1 ? (int)h[base_n + 1] : NVP_AFFINE_EXP;
    size_t hidden[NVP_MAX_HIDDEN_LAYERS];
    for (uint32_t k = 0; k < n_hidden; k++)
        hidden[k] = h[1 + k];
    nvp_allocator a;
    if (nvp__allocator_init(&a, alloc) != NVP_OK)
        return nvp__fail(NULL, NVP_EINVAL, "%s: invalid allocator", fn);
    unsigned char *mask = nvp__malloc(&a, dim);
    if (!mask)
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    for (size_t j = 0; j < dim; j++)
        mask[j] = (unsigned char)h[2 + n_hidden + j];
    nvp_coupling *c = NULL;
    const int rc =
        nvp__coupling_new(&c, fn, dim, cdim, mask, n_hidden, hidden, alloc);
    nvp__free(&a, mask);
    if (rc)
        return rc;
    memcpy(&c->clamp, &h[1 + n_hidden], sizeof c->clamp);
    c->form = form;
    *out = &c->layer;
    return NVP_OK;
}

const nvp_layer_ops nvp__coupling_kind = {
    "affine coupling",
    1,
    kind_hyper_count,
    kind_hyper_value,
    kind_hyper_check,
    kind_from_hyper,
    kind_cache_floats,
    kind_scratch_floats,
    kind_inverse_rows,
    kind_forward_rows,
    kind_inverse_backward_rows,
    kind_forward_backward_rows,
    kind_fresh_range,
    kind_set_clamp,
    NULL, /* no data-dependent initialisation */
    nvp__coupling_release,
    1, /* the conditioner measures its parameters and gradient */
};
