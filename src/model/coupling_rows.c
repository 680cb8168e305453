/* SPDX-License-Identifier: MIT */
/* The affine coupling on a chunk of rows: x_a goes through the conditioner
 * (model/conditioner.c), and its output shifts and scales x_b; the
 * log-determinant is summed in the same pass.  The backward is in
 * coupling_backward.c, the layer table's entry in coupling_kind.c. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "model/coupling.h"
#include "model/coupling_scale.h"

/* The layer's cache: the conditioner's. */
size_t nvp__coupling_cache_floats(const nvp_coupling *c, size_t rows)
{
    return nvp__cond_cache_floats(&c->cond, rows);
}

/* Gathers z_a (copies it, where its columns are a run of at least
 * RUN_ARRAY_MIN), then the row's context, into the cache and runs the
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

/* The exp form's step over a span, either direction (forward a constant
 * once inlined): the inverse's x_b = (y_b - shift) e^-ls with log|det
 * dx/dy| = -sum ls, the forward's y_b = x_b e^ls + shift with log|det
 * dy/dx| = sum ls.  An array loop where the entries are a run, gathered
 * through idx_b otherwise. */
static inline __attribute__((always_inline)) void
exp_step_span(step_state *s, size_t i, size_t k0, size_t n, const float *ls,
              const float *e, int forward)
{
    const step_job *j = s->j;
    const nvp_coupling *c = j->c;
    float *zi = j->z + i * c->layer.dim;
    const float *restrict shift = j->out + i * 2 * c->nb + k0;
    if (s->run && n >= RUN_ARRAY_MIN) {
        float *restrict zb = zi + c->idx_b[k0];
        for (size_t t = 0; t < n; t++)
            zb[t] = forward ? zb[t] * e[t] + shift[t]
                            : (zb[t] - shift[t]) * e[t];
    } else {
        for (size_t t = 0; t < n; t++) {
            float *zb = zi + c->idx_b[k0 + t];
            *zb = forward ? *zb * e[t] + shift[t] : (*zb - shift[t]) * e[t];
        }
    }
    sum_span(s, i, k0, n, ls, !forward);
}

static inline void inverse_span(void *arg, size_t i, size_t k0, size_t n,
                                const float *ls, const float *e)
{
    exp_step_span(arg, i, k0, n, ls, e, 0);
}

static inline void forward_span(void *arg, size_t i, size_t k0, size_t n,
                                const float *ls, const float *e)
{
    exp_step_span(arg, i, k0, n, ls, e, 1);
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
