/* SPDX-License-Identifier: MIT */
/* The affine coupling's backward on a chunk of rows: the row gradients of
 * its affine step (either direction, either form), then the
 * conditioner's backward and x_a's pass-through. */
#include <string.h>

#include "core/alloc.h"
#include "model/coupling.h"
#include "model/coupling_scale.h"

size_t nvp__coupling_scratch_floats(const nvp_coupling *c, size_t rows)
{
    /* dL/d(conditioner output), the conditioner's scratch, and dL/d(its
     * input): x_a, then the context. */
    return nvp__carved(rows * 2 * c->nb) +
           nvp__cond_scratch_floats(&c->cond, rows) +
           nvp__carved(rows * c->cond.n_in);
}

/* The rows [lo, hi) of a backward's row gradients (nvp__exec_rows), one
 * function per direction: from the rows' conditioner output out
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

/* d raw from d ls = g: through the soft clamp's derivative 1 - (ls /
 * bound)^2 when the layer has one (bound > 0). */
static inline float through_clamp(float bound, float ls, float g)
{
    if (bound > 0.0f) {
        const float t = ls / bound;
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
              through_clamp(j->c->clamp, ls, -en.g * en.x - en.di));
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
              through_clamp(j->c->clamp, ls, en.g * (en.x * e) + en.di));
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
 * gradient as arrays, and the row's d shift and d raw.  The spans store
 * gin last, so that they would stay right were gin ever g itself (no
 * caller passes that today). */
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

/* through_clamp over n entries, the bound read and tested once. */
static inline void clamp_span(const nvp_coupling *c, size_t n,
                              const float *ls, float *draw)
{
    const float bound = c->clamp;
    if (bound > 0.0f)
        for (size_t t = 0; t < n; t++)
            draw[t] = through_clamp(bound, ls[t], draw[t]);
}

/* The exp form's row gradients over a span, either direction (forward a
 * constant once inlined): arrays where the entries are a run, the
 * terms above entry by entry otherwise. */
static inline __attribute__((always_inline)) void
exp_grads_span(void *arg, size_t i, size_t k0, size_t n, const float *ls,
               const float *e, int forward)
{
    const grads_job *j = arg;
    if (!j->run || n < RUN_ARRAY_MIN) {
        each_entry(forward ? forward_grads_term : inverse_grads_term, arg, i,
                   k0, n, ls, e);
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

static inline void forward_grads_span(void *arg, size_t i, size_t k0, size_t n,
                                      const float *ls, const float *e)
{
    exp_grads_span(arg, i, k0, n, ls, e, 1);
}

static inline void inverse_sigmoid_grads_span(void *arg, size_t i,
                                              size_t k0, size_t n,
                                              const float *ls,
                                              const float *e)
{
    each_entry(inverse_sigmoid_grads_term, arg, i, k0, n, ls, e);
}

static inline void forward_sigmoid_grads_span(void *arg, size_t i,
                                              size_t k0, size_t n,
                                              const float *ls,
                                              const float *e)
{
    each_entry(forward_sigmoid_grads_term, arg, i, k0, n, ls, e);
}

/* The row gradients of either direction, through the layer's form (for
 * nvp__exec_rows). */
static void inverse_grads_rows(void *arg, size_t lo, size_t hi)
{
    grads_job j = *(const grads_job *)arg;
    if (j.c->form == NVP_AFFINE_SIGMOID)
        for_each_scale(j.c, j.isa, j.out, NULL, lo, hi, SCALE_SIGMOID,
                       inverse_sigmoid_grads_span, &j);
    else
        for_each_scale(j.c, j.isa, j.out, NULL, lo, hi, SCALE_NEG_LS,
                       inverse_grads_span, &j);
}

static void forward_grads_rows(void *arg, size_t lo, size_t hi)
{
    grads_job j = *(const grads_job *)arg;
    if (j.c->form == NVP_AFFINE_SIGMOID)
        for_each_scale(j.c, j.isa, j.out, NULL, lo, hi, SCALE_SIGMOID,
                       forward_sigmoid_grads_span, &j);
    else
        for_each_scale(j.c, j.isa, j.out, NULL, lo, hi, SCALE_LS,
                       forward_grads_span, &j);
}

/* The backward of either direction over rows rows, after that direction
 * filled cache: x holds the rows the row function reads (the inverse's
 * output, the forward's input), g (rows x dim) is dL/d(output), gld
 * dL/d(log-determinant) per row (NULL: zero).  Writes gin = dL/dx (may be
 * NULL), adds dL/d(context) into dcond (may be NULL) and the parameter
 * gradient into grad (fresh: see nvp__cond_backward), with grads_rows
 * the row gradients of the direction. */
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
    grads_job gj = {.c = c,
                    .isa = ex->isa,
                    .out = out,
                    .x = x,
                    .g = g,
                    .gld = gld,
                    .gin = gin,
                    .dout = dout,
                    .run = is_run(c->idx_b, c->nb)};
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
            if (run) /* each entry read, then stored (safe were gin g) */
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
                  inverse_grads_rows);
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
                  forward_grads_rows);
}
