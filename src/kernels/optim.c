/* SPDX-License-Identifier: MIT */
/* The optimizer's passes (optim.h), compiled once per instruction set. */
#include "kernels/optim.h"

#include <math.h>
#include <string.h>

/* The update loop, compiled once per instruction set.  Plain
 * multiplies, adds, square root and divide in a fixed order (no
 * contraction), so every version rounds identically.  The gradient is
 * scaled by the clipping factor as it is read (x * 1 is x exactly, so
 * without clipping the bits are the unclipped update's).  With avg, the
 * parameter average follows each new parameter in the same pass, while
 * it is in a register: avg = d * avg + (1 - d) * p. */
/* One parameter's new moments and value, the arithmetic the update and
 * the probe share.  Weight decay (AdamW: decoupled from the gradient)
 * takes dec * p off the old value; without it (dec == 0) nothing is
 * computed for it, so the bits are those of plain Adam. */
static inline __attribute__((always_inline)) float
adam_one(const nvp_adam_consts *k, float p, float g, float m, float v,
         float *m_out, float *v_out)
{
    const float gi = g * k->gscale;
    const float mi = k->b1 * m + (1.0f - k->b1) * gi;
    const float vi = k->b2 * v + (1.0f - k->b2) * gi * gi;
    *m_out = mi;
    *v_out = vi;
    float pi = p - k->step * mi / (sqrtf(vi) * k->inv_sqrt_bc2 + k->eps);
    if (k->decay != 0.0f)
        pi = pi - k->decay * p;
    return pi;
}

static inline __attribute__((always_inline)) void
adam_loop(size_t n, float *restrict p, const float *restrict g,
          float *restrict m, float *restrict v, float *restrict avg,
          const nvp_adam_consts *k)
{
    const float d = k->avg_decay, c = 1.0f - d;
    /* The tests of avg and of the decay are the same on every round: the
     * compiler moves them out of the loop (unswitching, at -O3) and
     * vectorises each version. */
    for (size_t i = 0; i < n; i++) {
        float mi, vi;
        const float pi = adam_one(k, p[i], g[i], m[i], v[i], &mi, &vi);
        m[i] = mi;
        v[i] = vi;
        p[i] = pi;
        if (avg)
            avg[i] = d * avg[i] + c * pi;
    }
}

NVP_ISA_VARIANTS(adam_update, adam_loop,
                 (size_t n, float *p, const float *g, float *m, float *v,
                  float *avg, const nvp_adam_consts *k),
                 (n, p, g, m, v, avg, k))

void nvp__adam_update(nvp_isa isa, size_t n, float *p, const float *g,
                      float *m, float *v, float *avg,
                      const nvp_adam_consts *k)
{
    adam_update(isa, n, p, g, m, v, avg, k);
}

/* The update's arithmetic, exactly as adam_loop does it, keeping only the
 * largest magnitude of the results. */
static inline __attribute__((always_inline)) void
adam_probe_loop(size_t n, const float *restrict p, const float *restrict g,
                const float *restrict m, const float *restrict v,
                const float *restrict avg, const nvp_adam_consts *k,
                uint32_t *out)
{
    const float d = k->avg_decay, c = 1.0f - d;
    uint32_t top = 0;
    for (size_t i = 0; i < n; i++) {
        float mi, vi;
        const float pi = adam_one(k, p[i], g[i], m[i], v[i], &mi, &vi);
        float vals[4] = {mi, vi, pi, avg ? d * avg[i] + c * pi : 0.0f};
        for (int q = 0; q < 4; q++) {
            uint32_t u;
            memcpy(&u, &vals[q], sizeof u);
            u &= 0x7fffffffu;
            top = u > top ? u : top;
        }
    }
    *out = top;
}

NVP_ISA_VARIANTS(adam_probe, adam_probe_loop,
                 (size_t n, const float *p, const float *g, const float *m,
                  const float *v, const float *avg, const nvp_adam_consts *k,
                  uint32_t *out),
                 (n, p, g, m, v, avg, k, out))

uint32_t nvp__adam_probe(nvp_isa isa, size_t n, const float *p,
                         const float *g, const float *m, const float *v,
                         const float *avg, const nvp_adam_consts *k)
{
    uint32_t top;
    adam_probe(isa, n, p, g, m, v, avg, k, &top);
    return top;
}

/* Lanes of the sum of squares: independent accumulators, so that the
 * compiler can vectorise the loop without reassociating any sum (each
 * lane adds its own entries in order, and the lanes are added in a fixed
 * order at the end).  A float's square is exact in double, so fused or
 * separate multiply-adds, and any vector width, give the same bits.  32
 * lanes keep four AVX-512 accumulators in flight. */
#define LANES 32

static inline __attribute__((always_inline)) void
sum_squares_loop(const float *restrict x, size_t n, double *out)
{
    double acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (size_t l = 0; l < LANES; l++)
            acc[l] += (double)x[i + l] * (double)x[i + l];
    double s = 0.0;
    for (; i < n; i++)
        s += (double)x[i] * (double)x[i];
    for (size_t l = 0; l < LANES; l++)
        s += acc[l];
    *out = s;
}

NVP_ISA_VARIANTS(sum_squares, sum_squares_loop,
                 (const float *x, size_t n, double *out), (x, n, out))

double nvp__sum_squares(nvp_isa isa, const float *x, size_t n)
{
    double s;
    sum_squares(isa, x, n, &s);
    return s;
}
