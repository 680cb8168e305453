/* SPDX-License-Identifier: MIT */
/* The sweep's kernels for one full block of SWEEP_BLOCK (64) columns, with
 * the running sums in AVX-512 registers.  64 doubles are eight zmm, so U
 * and V (or s0 and s1) take sixteen of the thirty-two, and a switch costs
 * one W2 row segment's load and the arithmetic.  The portable kernels
 * (sweep.c) also load and store the sums on every switch, and those loads
 * and stores bound them: on the reference network these kernels took the
 * training step from about 2.0 to 1.7 ms on one thread and from 1.6 to
 * 1.0 ms on two (with the sums in memory, two threads had each taken
 * 20-30% longer over their half than one thread alone; why was not
 * pinned down, as this machine's counters are not readable).
 *
 * Each column sees the multiplies and adds of the portable kernels, in the
 * same order and without fused multiply-adds, so the bits are the same:
 * the tests compare the two. */
#include "kernels/sweep_job.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define CHUNKS (SWEEP_BLOCK / 8) /* zmm registers of doubles per block */
/* The loops over a block's chunks must unroll for the sums to stay in
 * registers. */
#define UNROLL _Pragma("GCC unroll 8")

/* Eight floats of row, from chunk k, as doubles. */
#define ROW_CHUNK(row, k) _mm512_cvtps_pd(_mm256_loadu_ps((row) + 8 * (k)))

/* acc += a * row over the block (a double, row float). */
#define ADD_ROW(acc, a, row)                                                   \
    do {                                                                       \
        const __m512d va_ = _mm512_set1_pd(a);                                 \
        const float *r_ = (row);                                               \
        UNROLL for (int k_ = 0; k_ < CHUNKS; k_++)                             \
            acc[k_] = _mm512_add_pd(acc[k_],                                   \
                                    _mm512_mul_pd(va_, ROW_CHUNK(r_, k_)));    \
    } while (0)

/* acc_a += a * row and acc_b += b * row, one load of the row. */
#define ADD_ROW2(acc_a, a, acc_b, b, row)                                      \
    do {                                                                       \
        const __m512d va_ = _mm512_set1_pd(a), vb_ = _mm512_set1_pd(b);       \
        const float *r_ = (row);                                               \
        UNROLL for (int k_ = 0; k_ < CHUNKS; k_++) {                           \
            const __m512d x_ = ROW_CHUNK(r_, k_);                              \
            acc_a[k_] = _mm512_add_pd(acc_a[k_], _mm512_mul_pd(va_, x_));      \
            acc_b[k_] = _mm512_add_pd(acc_b[k_], _mm512_mul_pd(vb_, x_));      \
        }                                                                      \
    } while (0)

#define ZERO(acc)                                                              \
    do {                                                                       \
        UNROLL for (int k_ = 0; k_ < CHUNKS; k_++)                             \
            acc[k_] = _mm512_setzero_pd();                                     \
    } while (0)

/* The sum of eight partial sums in the portable dot product's order. */
__attribute__((target("avx512f"))) static inline double hsum(__m512d p)
{
    double q[8];
    _mm512_storeu_pd(q, p);
    return ((q[0] + q[1]) + (q[2] + q[3])) + ((q[4] + q[5]) + (q[6] + q[7]));
}

/* The kernels' common locals: the first layer's weights and biases, and
 * the block's columns of W2. */
#define BLOCK_LOCALS                                                           \
    const size_t h1 = j->h1, h2 = j->h2, c0 = blk * SWEEP_BLOCK;               \
    const float *w1 = j->net.w1, *b1 = j->net.b1;                              \
    const float *w2 = j->net.w2 + c0;                                          \
    const keyed *rising = j->units, *falling = j->units + j->n_rising

/* Walks the sorted rows upwards as the portable SWEEP_UP does: falling
 * units go off once x >= t, rising ones on once x > t; then EMIT for the
 * row (xq its input, i its index). */
#define WALK_ROWS(SWITCH, EMIT)                                                \
    do {                                                                       \
        size_t ir = 0, jf = 0;                                                 \
        for (size_t q = 0; q < j->n_rows; q++) {                               \
            const float xq = j->sorted_rows[q].key;                            \
            for (; jf < j->n_falling && falling[jf].key <= xq; jf++) {         \
                const size_t t = falling[jf].index;                            \
                SWITCH(-(double)w1[t], -(double)b1[t], w2 + t * h2);           \
            }                                                                  \
            for (; ir < j->n_rising && rising[ir].key < xq; ir++) {            \
                const size_t t = rising[ir].index;                             \
                SWITCH((double)w1[t], (double)b1[t], w2 + t * h2);             \
            }                                                                  \
            const size_t i = j->sorted_rows[q].index;                          \
            EMIT;                                                              \
        }                                                                      \
    } while (0)

__attribute__((target("avx512f"))) void
nvp__sweep_forward_block_avx512(const sweep_job *j, size_t blk)
{
    BLOCK_LOCALS;
    const float *b2 = j->net.b2 + c0;
    const int relu = j->net.relu;
    for (size_t i = 0; i < j->rows; i++)
        if (!isfinite(j->x[i]))
            for (size_t k = 0; k < SWEEP_BLOCK; k++)
                j->z[i * h2 + c0 + k] = NAN;
    __m512d u[CHUNKS], v[CHUNKS];
    ZERO(u);
    ZERO(v);
    /* At x = -inf every falling unit is on, and so is every unit with
     * w == 0 and b > 0 (which adds to V only). */
    for (size_t f = 0; f < j->n_falling; f++) {
        const size_t t = falling[f].index;
        ADD_ROW2(u, (double)w1[t], v, (double)b1[t], w2 + t * h2);
    }
    for (size_t t = 0; t < h1; t++)
        if (w1[t] == 0.0f && b1[t] > 0.0f)
            ADD_ROW(v, (double)b1[t], w2 + t * h2);
#define SWITCH_UV(a, b, row) ADD_ROW2(u, a, v, b, row)
    WALK_ROWS(SWITCH_UV, {
        /* z = x U + V + b2, rounded to float, then the ReLU as the
         * portable kernel's ternary (vmaxps returns its second operand,
         * 0, for NaN and for -0). */
        float *zi = j->z + i * h2 + c0;
        const __m512d xi = _mm512_set1_pd((double)xq);
        UNROLL for (int k = 0; k < CHUNKS; k++) {
            const __m512d pre = _mm512_add_pd(
                _mm512_add_pd(_mm512_mul_pd(xi, u[k]), v[k]),
                ROW_CHUNK(b2, k));
            __m256 val = _mm512_cvtpd_ps(pre);
            if (relu)
                val = _mm256_max_ps(val, _mm256_setzero_ps());
            _mm256_storeu_ps(zi + 8 * k, val);
        }
    });
#undef SWITCH_UV
}

/* dL/dW2[t, block] += w s1 + b s0 for unit t (written over the old value
 * when fresh), and the block's shares of dL/dw_t = W2[t, block] . s1 and
 * dL/db_t = W2[t, block] . s0. */
#define UNIT_GRAD(t)                                                           \
    do {                                                                       \
        const size_t t_ = (t);                                                 \
        const __m512d w_ = _mm512_set1_pd((double)w1[t_]);                     \
        const __m512d b_ = _mm512_set1_pd((double)b1[t_]);                     \
        const float *row_ = w2 + t_ * h2;                                      \
        float *g_ = gw2 + t_ * h2;                                             \
        __m512d p1_ = _mm512_setzero_pd(), p0_ = _mm512_setzero_pd();          \
        UNROLL for (int k_ = 0; k_ < CHUNKS; k_++) {                           \
            const __m256 d_ = _mm512_cvtpd_ps(_mm512_add_pd(                   \
                _mm512_mul_pd(w_, s1[k_]), _mm512_mul_pd(b_, s0[k_])));        \
            const __m256 old_ = fresh ? _mm256_setzero_ps()                    \
                                      : _mm256_loadu_ps(g_ + 8 * k_);          \
            _mm256_storeu_ps(g_ + 8 * k_, _mm256_add_ps(old_, d_));            \
            const __m512d r_ = ROW_CHUNK(row_, k_);                            \
            p1_ = _mm512_add_pd(p1_, _mm512_mul_pd(s1[k_], r_));               \
            p0_ = _mm512_add_pd(p0_, _mm512_mul_pd(s0[k_], r_));               \
        }                                                                      \
        part[t_] = hsum(p1_);                                                  \
        part[h1 + t_] = hsum(p0_);                                             \
    } while (0)

/* s0 += dz and s1 += x dz for a sorted row (s0's multiply by 1 of the
 * portable kernel is exact and left out). */
#define ADD_DZ(entry)                                                          \
    do {                                                                       \
        const keyed *e_ = (entry);                                             \
        const float *d_ = j->dz + (size_t)e_->index * h2 + c0;                 \
        const __m512d x_ = _mm512_set1_pd((double)e_->key);                    \
        UNROLL for (int k_ = 0; k_ < CHUNKS; k_++) {                           \
            const __m512d dk_ = ROW_CHUNK(d_, k_);                             \
            s0[k_] = _mm512_add_pd(s0[k_], dk_);                               \
            s1[k_] = _mm512_add_pd(s1[k_], _mm512_mul_pd(x_, dk_));            \
        }                                                                      \
    } while (0)

__attribute__((target("avx512f"))) void
nvp__sweep_backward_block_avx512(const sweep_job *j, size_t blk)
{
    BLOCK_LOCALS;
    double *part = j->part + blk * nvp__sweep_part_stride(j);
    if (j->din) {
        /* dL/dx_i = dz_i . U(x_i), this block's share */
        for (size_t i = 0; i < j->rows; i++)
            part[2 * h1 + i] = isfinite(j->x[i]) ? 0.0 : NAN;
        __m512d u[CHUNKS];
        ZERO(u);
        for (size_t f = 0; f < j->n_falling; f++) {
            const size_t t = falling[f].index;
            ADD_ROW(u, (double)w1[t], w2 + t * h2);
        }
#define SWITCH_U(a, b, row) ADD_ROW(u, a, row)
        WALK_ROWS(SWITCH_U, {
            const float *dzi = j->dz + i * h2 + c0;
            __m512d p = _mm512_setzero_pd();
            UNROLL for (int k = 0; k < CHUNKS; k++)
                p = _mm512_add_pd(p, _mm512_mul_pd(u[k], ROW_CHUNK(dzi, k)));
            part[2 * h1 + i] = hsum(p);
        });
#undef SWITCH_U
    }
    if (!j->grad.w2)
        return;
    float *gw2 = j->grad.w2 + c0;
    float *gb2 = j->grad.b2 + c0;
    /* fresh: the gradient is written as if added to zeros (0 + d, which
     * turns -0 into +0 as the add to a cleared gradient would) */
    const int fresh = j->fresh;
    if (fresh) {
        memset(gb2, 0, SWEEP_BLOCK * sizeof *gb2);
        for (size_t t = 0; t < h1; t++)
            if (!nvp__sweep_unit_visited(w1[t], b1[t]))
                memset(gw2 + t * h2, 0, SWEEP_BLOCK * sizeof *gw2);
    }
    for (size_t i = 0; i < j->rows; i++)
        for (size_t k = 0; k < SWEEP_BLOCK; k++)
            gb2[k] += j->dz[i * h2 + c0 + k];
    memset(part, 0, 2 * h1 * sizeof *part); /* units that are never on */

    __m512d s0[CHUNKS], s1[CHUNKS];
    /* Rising units, from the highest switch point down: the rows above it
     * are the ones where it is on. */
    ZERO(s0);
    ZERO(s1);
    size_t q = j->n_rows;
    for (size_t r = j->n_rising; r-- > 0;) {
        for (; q > 0 && j->sorted_rows[q - 1].key > rising[r].key; q--)
            ADD_DZ(&j->sorted_rows[q - 1]);
        UNIT_GRAD(rising[r].index);
    }
    /* Falling units, from the lowest switch point up: the rows below. */
    ZERO(s0);
    ZERO(s1);
    q = 0;
    for (size_t f = 0; f < j->n_falling; f++) {
        for (; q < j->n_rows && j->sorted_rows[q].key < falling[f].key; q++)
            ADD_DZ(&j->sorted_rows[q]);
        UNIT_GRAD(falling[f].index);
    }
    /* Units with w == 0 and b > 0 are on for every row. */
    for (; q < j->n_rows; q++)
        ADD_DZ(&j->sorted_rows[q]);
    for (size_t t = 0; t < h1; t++)
        if (w1[t] == 0.0f && b1[t] > 0.0f)
            UNIT_GRAD(t);
}
#else
/* ISO C wants a translation unit to declare something. */
typedef int nvp__sweep_avx512_unused;
#endif
