/* SPDX-License-Identifier: MIT */
/* The single-input sweep of the conditioner's first two layers (sweep.h):
 * the set-up (sorting), the portable kernels and the choice of the
 * register-blocked AVX-512 ones (sweep_avx512.c) for the level asked.
 *
 * The second layer's columns are processed in fixed blocks of SWEEP_BLOCK:
 * every block runs the whole sweep over its own columns, so blocks can go
 * to different threads (the runtime shares them out, runtime/exec_sweep.c).
 * Sums across columns (the dot products behind the
 * first layer's gradient and the input gradient) are formed per block and
 * then added in block order, so the bits never depend on the threads. */
#include "kernels/sweep.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "kernels/sweep_job.h"

/* Floats holding the three counts the backward takes over from the
 * forward (three size_t). */
#define SWEEP_COUNT_FLOATS (3 * sizeof(size_t) / sizeof(float))

/* The key's bits, mapped so that unsigned order is float order: negative
 * floats flipped whole, non-negative ones with the sign bit set.  -0 was
 * made +0 when the key was built, so equal floats have equal bits. */
static inline uint32_t radix_bits(float key)
{
    uint32_t u;
    memcpy(&u, &key, sizeof u);
    return u ^ ((u >> 31) ? 0xffffffffu : 0x80000000u);
}

/* Sorts a[0..n) by key, in place, through tmp (n entries): a stable
 * least-significant-digit radix sort, a byte per pass.  Stability keeps
 * equal keys in the order they were appended, which is index order.  A
 * few hundred keys sort in microseconds, where a qsort with a comparison
 * callback took tens of them, on the training step's serial path. */
static void sort_keyed(keyed *a, size_t n, keyed *tmp)
{
    uint32_t count[4][256];
    memset(count, 0, sizeof count);
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = radix_bits(a[i].key);
        for (int pass = 0; pass < 4; pass++)
            count[pass][(u >> (8 * pass)) & 0xff]++;
    }
    keyed *src = a, *dst = tmp;
    for (int pass = 0; pass < 4; pass++) {
        const int shift = 8 * pass;
        /* A byte every key shares leaves the order as it is. */
        if (n == 0 || count[pass][(radix_bits(src[0].key) >> shift) & 0xff] == n)
            continue;
        uint32_t start[256], sum = 0;
        for (int b = 0; b < 256; b++) {
            start[b] = sum;
            sum += count[pass][b];
        }
        for (size_t i = 0; i < n; i++)
            dst[start[(radix_bits(src[i].key) >> shift) & 0xff]++] = src[i];
        keyed *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
}

/* x as a sort key: -0 becomes +0 (x + 0 rounds to +0), the two compare
 * equal anyway. */
static inline keyed make_key(float x, size_t index)
{
    return (keyed){x + 0.0f, (uint32_t)index};
}

size_t nvp__sweep_floats(size_t h1, size_t h2, size_t rows)
{
    /* four double vectors of H2; per block, double partial sums for the
     * first layer's gradient (2 H1) and the input gradient (rows); keyed
     * rows and units, the sorts' buffers (one per sort, so that the three
     * can run at once), and the counts */
    return nvp__carved(8 * h2) +
           nvp__carved(2 * nvp__sweep_blocks(h2) * (2 * h1 + rows)) +
           nvp__carved(2 * rows) + nvp__carved(2 * h1) +
           nvp__carved(2 * (rows + h1)) + nvp__carved(SWEEP_COUNT_FLOATS);
}

/* Lays out the scratch.  With sort, counts the first layer's rising
 * units (w > 0, active for x > t) and falling ones (w < 0, active for
 * x < t) and keeps the counts in the scratch; the sorts themselves are
 * nvp__sweep_sort's parts.  Without, takes over what the forward sweep
 * left there: the backward follows the forward on the same rows,
 * parameters and scratch. */
static void prepare(sweep_job *j, const nvp_sweep_net *net, size_t rows,
                    const float *x, float *scratch, int sort)
{
    const size_t h1 = net->h1, h2 = net->h2;
    j->net = *net;
    j->rows = rows;
    j->h1 = h1;
    j->h2 = h2;
    j->x = x;
    double *d = (double *)scratch;
    j->u = d;
    j->v = d + h2;
    j->s0 = d + 2 * h2;
    j->s1 = d + 3 * h2;
    float *cursor = scratch + nvp__carved(8 * h2);
    j->part = (double *)nvp__carve(
        &cursor, 2 * nvp__sweep_blocks(h2) * (2 * h1 + rows));
    j->sorted_rows = (keyed *)nvp__carve(&cursor, 2 * rows);
    j->units = (keyed *)nvp__carve(&cursor, 2 * h1);
    j->sort_tmp = (keyed *)nvp__carve(&cursor, 2 * (rows + h1));
    j->counts = (size_t *)nvp__carve(&cursor, SWEEP_COUNT_FLOATS);
    if (!sort) {
        j->n_rows = j->counts[0];
        j->n_rising = j->counts[1];
        j->n_falling = j->counts[2];
        return;
    }
    size_t nr = 0, nf = 0;
    for (size_t u = 0; u < h1; u++) {
        nr += net->w1[u] > 0.0f;
        nf += net->w1[u] < 0.0f;
    }
    j->n_rising = j->counts[1] = nr;
    j->n_falling = j->counts[2] = nf;
}

void nvp__sweep_sort(sweep_job *j, size_t part)
{
    const float *w1 = j->net.w1, *b1 = j->net.b1;
    const size_t nr = j->n_rising;
    /* Each part sorts through its own stretch of the buffer. */
    keyed *tmp = j->sort_tmp;
    size_t n = 0;
    switch (part) {
    case NVP_SWEEP_SORT_ROWS:
        for (size_t i = 0; i < j->rows; i++)
            if (isfinite(j->x[i]))
                j->sorted_rows[n++] = make_key(j->x[i], i);
        j->n_rows = j->counts[0] = n;
        sort_keyed(j->sorted_rows, n, tmp);
        break;
    case NVP_SWEEP_SORT_RISING:
        for (size_t u = 0; u < j->h1 && n < nr; u++)
            if (w1[u] > 0.0f)
                j->units[n++] = make_key(-b1[u] / w1[u], u);
        sort_keyed(j->units, nr, tmp + j->rows);
        break;
    default: /* NVP_SWEEP_SORT_FALLING */
        for (size_t u = 0; u < j->h1 && n < j->n_falling; u++)
            if (w1[u] < 0.0f)
                j->units[nr + n++] = make_key(-b1[u] / w1[u], u);
        sort_keyed(j->units + nr, j->n_falling, tmp + j->rows + nr);
        break;
    }
}

/* acc += a * row over n columns (double accumulators, float row). */
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

/* Walks the sorted rows upwards, switching units on and off in columns
 * [k0, k0 + n) of U (and V when with_v), and runs EMIT for each row i with
 * x = xq.  At x = -inf every falling unit is on, and so is every unit with
 * w == 0 and b > 0; falling units go off once x >= t, rising ones on once
 * x > t. */
#define SWEEP_UP(with_v, EMIT)                                                 \
    do {                                                                       \
        double *u = j->u + k0, *v = j->v + k0;                                 \
        memset(u, 0, n * sizeof *u);                                           \
        if (with_v)                                                            \
            memset(v, 0, n * sizeof *v);                                       \
        for (size_t q = 0; q < j->n_falling; q++) {                            \
            const uint32_t t = j->units[j->n_rising + q].index;                \
            axpy(u, w1[t], w2 + (size_t)t * h2 + k0, n);                       \
            if (with_v)                                                        \
                axpy(v, b1[t], w2 + (size_t)t * h2 + k0, n);                   \
        }                                                                      \
        if (with_v)                                                            \
            for (size_t t = 0; t < j->h1; t++)                                 \
                if (w1[t] == 0.0f && b1[t] > 0.0f)                             \
                    axpy(v, b1[t], w2 + t * h2 + k0, n);                       \
        size_t ir = 0, jf = 0;                                                 \
        for (size_t q = 0; q < j->n_rows; q++) {                               \
            const float xq = j->sorted_rows[q].key;                            \
            for (; jf < j->n_falling &&                                        \
                   j->units[j->n_rising + jf].key <= xq;                       \
                 jf++) {                                                       \
                const uint32_t t = j->units[j->n_rising + jf].index;           \
                axpy(u, -(double)w1[t], w2 + (size_t)t * h2 + k0, n);          \
                if (with_v)                                                    \
                    axpy(v, -(double)b1[t], w2 + (size_t)t * h2 + k0, n);      \
            }                                                                  \
            for (; ir < j->n_rising && j->units[ir].key < xq; ir++) {          \
                const uint32_t t = j->units[ir].index;                         \
                axpy(u, w1[t], w2 + (size_t)t * h2 + k0, n);                   \
                if (with_v)                                                    \
                    axpy(v, b1[t], w2 + (size_t)t * h2 + k0, n);               \
            }                                                                  \
            const size_t i = j->sorted_rows[q].index;                          \
            EMIT;                                                              \
        }                                                                      \
    } while (0)

/* The portable kernels cover blocks [blo, bhi) of columns: columns
 * [k0, k0 + n). */
#define SWEEP_LOCALS                                                           \
    const size_t h2 = j->h2;                                                   \
    const size_t k0 = blo * SWEEP_BLOCK;                                       \
    const size_t n = (bhi * SWEEP_BLOCK < h2 ? bhi * SWEEP_BLOCK : h2) - k0;   \
    const float *w1 = j->net.w1, *b1 = j->net.b1, *w2 = j->net.w2;             \
    (void)b1

static inline __attribute__((always_inline)) void
forward_blocks(const sweep_job *j, size_t blo, size_t bhi)
{
    SWEEP_LOCALS;
    const float *b2 = j->net.b2 + k0;
    const int relu = j->net.relu;
    for (size_t i = 0; i < j->rows; i++)
        if (!isfinite(j->x[i]))
            for (size_t k = 0; k < n; k++)
                j->z[i * h2 + k0 + k] = NAN;
    SWEEP_UP(1, {
        float *zi = j->z + i * h2 + k0;
        const double xi = xq;
        for (size_t k = 0; k < n; k++) {
            const float val = (float)(xi * u[k] + v[k] + (double)b2[k]);
            zi[k] = relu ? (val > 0.0f ? val : 0.0f) : val;
        }
    });
}

/* One unit's gradient over columns [k0, k0 + n), for the rows whose running
 * sums are s0 = sum dz and s1 = sum x dz: W2[t, cols] gets w s1 + b s0,
 * and each block's share of dL/dw_t and dL/db_t is W2[t, block] . s1 and
 * W2[t, block] . s0. */
static inline __attribute__((always_inline)) void
unit_grad(const sweep_job *j, size_t blo, size_t bhi, size_t t,
          const double *s0, const double *s1, float *gw2)
{
    SWEEP_LOCALS;
    const float *row = w2 + t * h2 + k0;
    float *g = gw2 + t * h2 + k0;
    const double w = w1[t], b = b1[t];
    if (j->fresh) {
        /* + 0.0f as the add to a cleared gradient does: -0 becomes +0 */
        for (size_t k = 0; k < n; k++)
            g[k] = (float)(w * s1[k] + b * s0[k]) + 0.0f;
    } else {
        for (size_t k = 0; k < n; k++)
            g[k] += (float)(w * s1[k] + b * s0[k]);
    }
    for (size_t blk = blo; blk < bhi; blk++) {
        const size_t off = (blk - blo) * SWEEP_BLOCK;
        const size_t len = n - off < SWEEP_BLOCK ? n - off : SWEEP_BLOCK;
        double *pw = j->part + blk * nvp__sweep_part_stride(j);
        pw[t] = dot(s1 + off, row + off, len);
        pw[j->h1 + t] = dot(s0 + off, row + off, len);
    }
}

static inline __attribute__((always_inline)) void
backward_blocks(const sweep_job *j, size_t blo, size_t bhi)
{
    SWEEP_LOCALS;
    const size_t h1 = j->h1, stride = nvp__sweep_part_stride(j);
    if (j->din) {
        /* dL/dx_i = sum_{t on} w_t (dz_i . W2[t,:]) = dz_i . U(x_i), per
         * block of columns */
        for (size_t blk = blo; blk < bhi; blk++)
            for (size_t i = 0; i < j->rows; i++)
                j->part[blk * stride + 2 * h1 + i] =
                    isfinite(j->x[i]) ? 0.0 : NAN;
        SWEEP_UP(0, {
            for (size_t blk = blo; blk < bhi; blk++) {
                const size_t off = (blk - blo) * SWEEP_BLOCK;
                const size_t len =
                    n - off < SWEEP_BLOCK ? n - off : SWEEP_BLOCK;
                j->part[blk * stride + 2 * h1 + i] =
                    dot(u + off, j->dz + i * h2 + k0 + off, len);
            }
        });
    }
    if (!j->grad.w2)
        return;
    float *gw2 = j->grad.w2;
    float *gb2 = j->grad.b2 + k0;
    if (j->fresh) {
        memset(gb2, 0, n * sizeof *gb2);
        for (size_t t = 0; t < j->h1; t++) /* units never visited */
            if (!nvp__sweep_unit_visited(w1[t], b1[t]))
                memset(gw2 + t * h2 + k0, 0, n * sizeof *gw2);
    }
    for (size_t i = 0; i < j->rows; i++)
        for (size_t k = 0; k < n; k++)
            gb2[k] += j->dz[i * h2 + k0 + k];
    for (size_t blk = blo; blk < bhi; blk++) /* units that are never on */
        memset(j->part + blk * stride, 0, 2 * h1 * sizeof *j->part);

    double *s0 = j->s0 + k0, *s1 = j->s1 + k0;
    /* Rising units, from the highest switch point down: the rows above it
     * are the ones where it is on. */
    memset(s0, 0, n * sizeof *s0);
    memset(s1, 0, n * sizeof *s1);
    size_t q = j->n_rows;
    for (size_t r = j->n_rising; r-- > 0;) {
        const float t = j->units[r].key;
        for (; q > 0 && j->sorted_rows[q - 1].key > t; q--) {
            const keyed *row = &j->sorted_rows[q - 1];
            axpy(s0, 1.0, j->dz + row->index * h2 + k0, n);
            axpy(s1, (double)row->key, j->dz + row->index * h2 + k0, n);
        }
        unit_grad(j, blo, bhi, j->units[r].index, s0, s1, gw2);
    }
    /* Falling units, from the lowest switch point up: the rows below. */
    memset(s0, 0, n * sizeof *s0);
    memset(s1, 0, n * sizeof *s1);
    q = 0;
    for (size_t f = 0; f < j->n_falling; f++) {
        const keyed *unit = &j->units[j->n_rising + f];
        for (; q < j->n_rows && j->sorted_rows[q].key < unit->key; q++) {
            const keyed *row = &j->sorted_rows[q];
            axpy(s0, 1.0, j->dz + row->index * h2 + k0, n);
            axpy(s1, (double)row->key, j->dz + row->index * h2 + k0, n);
        }
        unit_grad(j, blo, bhi, unit->index, s0, s1, gw2);
    }
    /* Units with w == 0 and b > 0 are on for every row: finish the sums
     * over all rows. */
    for (; q < j->n_rows; q++) {
        const keyed *row = &j->sorted_rows[q];
        axpy(s0, 1.0, j->dz + row->index * h2 + k0, n);
        axpy(s1, (double)row->key, j->dz + row->index * h2 + k0, n);
    }
    for (size_t t = 0; t < h1; t++)
        if (w1[t] == 0.0f && b1[t] > 0.0f)
            unit_grad(j, blo, bhi, t, s0, s1, gw2);
}

/* The portable kernels, compiled for each instruction set: for AVX2 they
 * are the best a CPU without AVX-512 gets, for AVX-512 they serve the
 * blocks narrower than SWEEP_BLOCK (the register-blocked kernels take
 * only full ones).  The C is the same, so are the bits (see sweep_job.h
 * for the one exception, the sign of NaN). */
NVP_ISA_VARIANTS(forward_c, forward_blocks,
                 (const sweep_job *j, size_t blo, size_t bhi), (j, blo, bhi))
NVP_ISA_VARIANTS(backward_c, backward_blocks,
                 (const sweep_job *j, size_t blo, size_t bhi), (j, blo, bhi))

const double *nvp__sweep_partials(size_t h1, size_t h2, size_t rows,
                                  const float *scratch, size_t *count)
{
    *count = nvp__sweep_blocks(h2) * (2 * h1 + rows);
    /* prepare() carves them right after the four H2 double vectors */
    return (const double *)(scratch + nvp__carved(8 * h2));
}

/* Blocks [blo, bhi) at level isa: at AVX-512 the register-blocked kernel
 * takes the full blocks and the compiled C the narrower last one. */
typedef void (*block_kernel)(const sweep_job *j, size_t blk);
typedef void (*range_kernel)(nvp_isa isa, const sweep_job *j, size_t blo,
                             size_t bhi);

static void run_blocks(nvp_isa isa, const sweep_job *j, size_t blo,
                       size_t bhi, block_kernel full, range_kernel c_kernel)
{
#if defined(__x86_64__) || defined(__i386__)
    if (isa == NVP_ISA_AVX512) {
        for (size_t blk = blo; blk < bhi; blk++) {
            if ((blk + 1) * SWEEP_BLOCK <= j->h2)
                full(j, blk);
            else
                c_kernel(isa, j, blk, blk + 1);
        }
        return;
    }
#else
    (void)full;
#endif
    c_kernel(isa, j, blo, bhi);
}

#if defined(__x86_64__) || defined(__i386__)
#define FULL_FORWARD nvp__sweep_forward_block_avx512
#define FULL_BACKWARD nvp__sweep_backward_block_avx512
#else
#define FULL_FORWARD NULL
#define FULL_BACKWARD NULL
#endif

void nvp__sweep_forward_blocks(nvp_isa isa, const sweep_job *j, size_t blo,
                               size_t bhi)
{
    run_blocks(isa, j, blo, bhi, FULL_FORWARD, forward_c);
}

void nvp__sweep_backward_blocks(nvp_isa isa, const sweep_job *j, size_t blo,
                                size_t bhi)
{
    run_blocks(isa, j, blo, bhi, FULL_BACKWARD, backward_c);
}

void nvp__sweep_forward_setup(sweep_job *j, const nvp_sweep_net *net,
                              size_t rows, const float *x, float *z,
                              float *scratch)
{
    prepare(j, net, rows, x, scratch, 1);
    j->z = z;
    j->dz = NULL;
    j->din = NULL;
    memset(&j->grad, 0, sizeof j->grad);
    j->fresh = 0;
}

void nvp__sweep_backward_setup(sweep_job *j, const nvp_sweep_net *net,
                               size_t rows, const float *x, const float *dz,
                               const nvp_sweep_grad *grad, float *din,
                               float *scratch, int fresh)
{
    prepare(j, net, rows, x, scratch, 0);
    j->z = NULL;
    j->dz = dz;
    if (grad)
        j->grad = *grad;
    else
        memset(&j->grad, 0, sizeof j->grad);
    j->din = din;
    j->fresh = fresh;
}

void nvp__sweep_backward_finish(const sweep_job *j)
{
    /* Add the blocks' partial sums in block order. */
    const size_t blocks = nvp__sweep_blocks(j->h2), h1 = j->h1;
    const size_t stride = nvp__sweep_part_stride(j);
    if (j->grad.w1) {
        for (size_t t = 0; t < h1; t++) {
            double sw = 0.0, sb = 0.0;
            for (size_t b = 0; b < blocks; b++) {
                const double *pw = j->part + b * stride;
                sw += pw[t];
                sb += pw[h1 + t];
            }
            j->grad.w1[t] += (float)sw;
            j->grad.b1[t] += (float)sb;
        }
    }
    if (j->din)
        for (size_t i = 0; i < j->rows; i++) {
            double s = 0.0;
            for (size_t b = 0; b < blocks; b++)
                s += j->part[b * stride + 2 * h1 + i];
            j->din[i] = (float)s;
        }
}
