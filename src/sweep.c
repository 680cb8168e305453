/* The single-input sweep of the conditioner's first two layers (sweep.h). */
#include "sweep.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

/* A sort key and the index it belongs to; ties broken by the index so the
 * order is total and the result deterministic. */
typedef struct keyed {
    float key;
    uint32_t index;
} keyed;

static int by_key(const void *pa, const void *pb)
{
    const keyed *a = pa, *b = pb;
    if (a->key < b->key)
        return -1;
    if (a->key > b->key)
        return 1;
    return (a->index > b->index) - (a->index < b->index);
}

size_t nvp__sweep_floats(const nvp_coupling *c, size_t rows)
{
    const size_t h1 = c->dense[0].out, h2 = c->dense[1].out;
    /* four double vectors of H2, keyed rows and keyed units */
    return nvp__carved(8 * h2) + nvp__carved(2 * rows) + nvp__carved(2 * h1);
}

/* The layout of the scratch: */
typedef struct sweep_space {
    double *u, *v, *s0, *s1; /* H2 each */
    keyed *rows;             /* finite rows sorted by x */
    keyed *units;            /* rising units, then falling ones */
    size_t n_rows, n_rising, n_falling;
} sweep_space;

/* Sorts the finite rows by x and splits the units of the first layer into
 * rising (w > 0, active for x > t) and falling (w < 0, active for x < t)
 * ones, each sorted by its switch point t = -b / w. */
static void prepare(const nvp_coupling *c, size_t rows, const float *x,
                    float *scratch, sweep_space *s)
{
    const size_t h1 = c->dense[0].out, h2 = c->dense[1].out;
    double *d = (double *)scratch;
    s->u = d;
    s->v = d + h2;
    s->s0 = d + 2 * h2;
    s->s1 = d + 3 * h2;
    s->rows = (keyed *)(scratch + nvp__carved(8 * h2));
    s->units = (keyed *)(scratch + nvp__carved(8 * h2) + nvp__carved(2 * rows));
    size_t n = 0;
    for (size_t i = 0; i < rows; i++)
        if (isfinite(x[i]))
            s->rows[n++] = (keyed){x[i], (uint32_t)i};
    s->n_rows = n;
    qsort(s->rows, n, sizeof *s->rows, by_key);

    const float *w1 = c->params + c->dense[0].w_off;
    const float *b1 = c->params + c->dense[0].b_off;
    size_t nr = 0, nf = 0;
    for (size_t j = 0; j < h1; j++)
        if (w1[j] > 0.0f)
            s->units[nr++] = (keyed){-b1[j] / w1[j], (uint32_t)j};
    for (size_t j = 0; j < h1; j++)
        if (w1[j] < 0.0f)
            s->units[nr + nf++] = (keyed){-b1[j] / w1[j], (uint32_t)j};
    s->n_rising = nr;
    s->n_falling = nf;
    qsort(s->units, nr, sizeof *s->units, by_key);
    qsort(s->units + nr, nf, sizeof *s->units, by_key);
}

/* acc += a * row (double accumulators, float row). */
static inline __attribute__((always_inline)) void
axpy(double *restrict acc, double a, const float *restrict row, size_t n)
{
    for (size_t k = 0; k < n; k++)
        acc[k] += a * (double)row[k];
}

static inline __attribute__((always_inline)) double
dot(const double *restrict acc, const float *restrict row, size_t n)
{
    /* Eight partial sums (one AVX-512 register of doubles) in a fixed
     * order: deterministic, and the loop vectorises. */
    double p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; l++)
            p[l] += acc[k + l] * (double)row[k + l];
    for (int l = 0; k < n; k++, l++)
        p[l] += acc[k] * (double)row[k];
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

/* Walks the sorted rows upwards, switching units on and off, and calls
 * emit for each row with U (and V when with_v) for its x. */
#define SWEEP_UP(with_v, EMIT)                                                 \
    do {                                                                       \
        memset(s.u, 0, h2 * sizeof *s.u);                                      \
        if (with_v)                                                            \
            memset(s.v, 0, h2 * sizeof *s.v);                                  \
        /* At x = -inf every falling unit is on, and so is every unit with   \
         * w == 0 and b > 0. */                                                \
        for (size_t q = 0; q < s.n_falling; q++) {                             \
            const uint32_t j = s.units[s.n_rising + q].index;                  \
            axpy(s.u, w1[j], w2 + (size_t)j * h2, h2);                         \
            if (with_v)                                                        \
                axpy(s.v, b1[j], w2 + (size_t)j * h2, h2);                     \
        }                                                                      \
        if (with_v)                                                            \
            for (size_t j = 0; j < h1; j++)                                    \
                if (w1[j] == 0.0f && b1[j] > 0.0f)                             \
                    axpy(s.v, b1[j], w2 + j * h2, h2);                         \
        size_t ir = 0, jf = 0;                                                 \
        for (size_t q = 0; q < s.n_rows; q++) {                                \
            const float xq = s.rows[q].key;                                    \
            /* falling units are off once x >= t, rising ones on once x > t */ \
            for (; jf < s.n_falling && s.units[s.n_rising + jf].key <= xq;     \
                 jf++) {                                                       \
                const uint32_t j = s.units[s.n_rising + jf].index;             \
                axpy(s.u, -(double)w1[j], w2 + (size_t)j * h2, h2);            \
                if (with_v)                                                    \
                    axpy(s.v, -(double)b1[j], w2 + (size_t)j * h2, h2);        \
            }                                                                  \
            for (; ir < s.n_rising && s.units[ir].key < xq; ir++) {            \
                const uint32_t j = s.units[ir].index;                          \
                axpy(s.u, w1[j], w2 + (size_t)j * h2, h2);                     \
                if (with_v)                                                    \
                    axpy(s.v, b1[j], w2 + (size_t)j * h2, h2);                 \
            }                                                                  \
            const size_t i = s.rows[q].index;                                  \
            EMIT;                                                              \
        }                                                                      \
    } while (0)

static inline __attribute__((always_inline)) void
forward_body(const nvp_coupling *c, size_t rows, const float *x, float *z,
             float *scratch)
{
    const size_t h1 = c->dense[0].out, h2 = c->dense[1].out;
    const float *w1 = c->params + c->dense[0].w_off;
    const float *b1 = c->params + c->dense[0].b_off;
    const float *w2 = c->params + c->dense[1].w_off;
    const float *b2 = c->params + c->dense[1].b_off;
    const int relu = c->n_dense > 2;
    sweep_space s;
    prepare(c, rows, x, scratch, &s);
    for (size_t i = 0; i < rows; i++)
        if (!isfinite(x[i]))
            for (size_t k = 0; k < h2; k++)
                z[i * h2 + k] = NAN;
    SWEEP_UP(1, {
        float *zi = z + i * h2;
        const double xi = xq;
        for (size_t k = 0; k < h2; k++) {
            const float v = (float)(xi * s.u[k] + s.v[k] + (double)b2[k]);
            zi[k] = relu ? (v > 0.0f ? v : 0.0f) : v;
        }
    });
}

/* The gradient of one unit j active on a set of rows whose running sums
 * are s0 = sum dz, s1 = sum x dz: W2[j,:] gets w s1 + b s0, and w_j, b_j
 * get W2[j,:] . s1 and W2[j,:] . s0. */
static inline __attribute__((always_inline)) void
unit_grad(size_t j, size_t h2, const float *w1, const float *b1,
          const float *w2, const double *s0, const double *s1, float *gw1,
          float *gb1, float *gw2)
{
    const float *row = w2 + j * h2;
    float *g = gw2 + j * h2;
    const double w = w1[j], b = b1[j];
    for (size_t k = 0; k < h2; k++)
        g[k] += (float)(w * s1[k] + b * s0[k]);
    gw1[j] += (float)dot(s1, row, h2);
    gb1[j] += (float)dot(s0, row, h2);
}

static inline __attribute__((always_inline)) void
backward_body(const nvp_coupling *c, size_t rows, const float *x,
              const float *dz, float *grad, float *din, float *scratch)
{
    const size_t h1 = c->dense[0].out, h2 = c->dense[1].out;
    const float *w1 = c->params + c->dense[0].w_off;
    const float *b1 = c->params + c->dense[0].b_off;
    const float *w2 = c->params + c->dense[1].w_off;
    sweep_space s;
    prepare(c, rows, x, scratch, &s);

    if (din) {
        /* dL/dx_i = sum_{j active} w_j (dz_i . W2[j,:]) = dz_i . U(x_i) */
        for (size_t i = 0; i < rows; i++)
            din[i] = isfinite(x[i]) ? 0.0f : NAN;
        SWEEP_UP(0, { din[i] = (float)dot(s.u, dz + i * h2, h2); });
    }
    if (!grad)
        return;
    float *gw1 = grad + c->dense[0].w_off, *gb1 = grad + c->dense[0].b_off;
    float *gw2 = grad + c->dense[1].w_off, *gb2 = grad + c->dense[1].b_off;
    for (size_t i = 0; i < rows; i++)
        for (size_t k = 0; k < h2; k++)
            gb2[k] += dz[i * h2 + k];

    /* Rising units, from the highest switch point down: the rows above it
     * are the active ones. */
    memset(s.s0, 0, h2 * sizeof *s.s0);
    memset(s.s1, 0, h2 * sizeof *s.s1);
    size_t q = s.n_rows;
    for (size_t u = s.n_rising; u-- > 0;) {
        const float t = s.units[u].key;
        for (; q > 0 && s.rows[q - 1].key > t; q--) {
            const size_t i = s.rows[q - 1].index;
            axpy(s.s0, 1.0, dz + i * h2, h2);
            axpy(s.s1, (double)s.rows[q - 1].key, dz + i * h2, h2);
        }
        unit_grad(s.units[u].index, h2, w1, b1, w2, s.s0, s.s1, gw1, gb1, gw2);
    }
    /* Falling units, from the lowest switch point up: the rows below. */
    memset(s.s0, 0, h2 * sizeof *s.s0);
    memset(s.s1, 0, h2 * sizeof *s.s1);
    q = 0;
    for (size_t u = 0; u < s.n_falling; u++) {
        const keyed *unit = &s.units[s.n_rising + u];
        for (; q < s.n_rows && s.rows[q].key < unit->key; q++) {
            const size_t i = s.rows[q].index;
            axpy(s.s0, 1.0, dz + i * h2, h2);
            axpy(s.s1, (double)s.rows[q].key, dz + i * h2, h2);
        }
        unit_grad(unit->index, h2, w1, b1, w2, s.s0, s.s1, gw1, gb1, gw2);
    }
    /* Units with w == 0 and b > 0 are on for every row (the sums now hold
     * every row once the falling sweep has passed them all). */
    for (; q < s.n_rows; q++) {
        const size_t i = s.rows[q].index;
        axpy(s.s0, 1.0, dz + i * h2, h2);
        axpy(s.s1, (double)s.rows[q].key, dz + i * h2, h2);
    }
    for (size_t j = 0; j < h1; j++)
        if (w1[j] == 0.0f && b1[j] > 0.0f)
            unit_grad(j, h2, w1, b1, w2, s.s0, s.s1, gw1, gb1, gw2);
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx512f"))) static void
forward_avx512(const nvp_coupling *c, size_t rows, const float *x, float *z,
               float *scratch)
{
    forward_body(c, rows, x, z, scratch);
}

__attribute__((target("avx512f"))) static void
backward_avx512(const nvp_coupling *c, size_t rows, const float *x,
                const float *dz, float *grad, float *din, float *scratch)
{
    backward_body(c, rows, x, dz, grad, din, scratch);
}
#endif

void nvp__sweep_forward(const nvp_coupling *c, size_t rows, const float *x,
                        float *z, float *scratch)
{
#if defined(__x86_64__) || defined(__i386__)
    if (nvp__cpu_avx512()) {
        forward_avx512(c, rows, x, z, scratch);
        return;
    }
#endif
    forward_body(c, rows, x, z, scratch);
}

void nvp__sweep_backward(const nvp_coupling *c, size_t rows, const float *x,
                         const float *dz, float *grad, float *din,
                         float *scratch)
{
#if defined(__x86_64__) || defined(__i386__)
    if (nvp__cpu_avx512()) {
        backward_avx512(c, rows, x, dz, grad, din, scratch);
        return;
    }
#endif
    backward_body(c, rows, x, dz, grad, din, scratch);
}
