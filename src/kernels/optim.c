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
static inline __attribute__((always_inline)) void
adam_loop(size_t n, float *restrict p, const float *restrict g,
          float *restrict m, float *restrict v, float *restrict avg,
          const nvp_adam_consts *k)
{
    const float b1 = k->b1, b2 = k->b2, step = k->step;
    const float inv_sqrt_bc2 = k->inv_sqrt_bc2, eps = k->eps;
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    const float d = k->avg_decay, c = 1.0f - d, gs = k->gscale;
    /* The test of avg is the same on every round: the compiler moves it
     * out of the loop (unswitching, at -O3) and vectorises both loops. */
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] * gs;
        const float mi = b1 * m[i] + c1 * gi;
        const float vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const float pi = p[i] - step * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
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
    const float b1 = k->b1, b2 = k->b2, step = k->step;
    const float inv_sqrt_bc2 = k->inv_sqrt_bc2, eps = k->eps;
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    const float d = k->avg_decay, c = 1.0f - d, gs = k->gscale;
    uint32_t top = 0;
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] * gs;
        const float mi = b1 * m[i] + c1 * gi;
        const float vi = b2 * v[i] + c2 * gi * gi;
        const float pi = p[i] - step * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
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
