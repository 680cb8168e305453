/* SPDX-License-Identifier: MIT */
/* The exponential of exp_array.h: glibc's expf algorithm (from Arm's
 * optimized-routines, MIT licensed), 16 floats at a time with AVX-512 and
 * 8 with AVX2, as two or more runs of doubles.
 *
 *   z = x * 32/ln2 = k + r, k an integer, |r| <= 1/2
 *   exp(x) = 2^(k/32) * 2^(r/32) ~= s * (C0 r^3 + C1 r^2 + C2 r + 1)
 *
 * k comes from adding 1.5 * 2^52 (whose last bits then hold k), s =
 * 2^(k/32) from a table of 2^(i/32), i = k mod 32, with k's other bits
 * added to the exponent.  The multiply-adds are fused exactly where
 * glibc's FMA build fuses them. */
#include "kernels/exp_array.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* 2^(i/32) as double bits, less i << 47: adding k << 47 (k = i mod 32
 * plus 32 times the power of two) then puts k's high bits into the
 * exponent and cancels i's, which sit just below it. */
static const uint64_t exp2_table[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f,
    0x3fef9301d0125b51, 0x3fef72b83c7d517b, 0x3fef54873168b9aa,
    0x3fef387a6e756238, 0x3fef1e9df51fdee1, 0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429,
    0x3feea47eb03a5585, 0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74,
    0x3feea11473eb0187, 0x3feea589994cce13, 0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c,
    0x3fef3720dcef9069, 0x3fef5818dcfba487, 0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
};

#define INV_LN2_N 0x1.71547652b82fep+5 /* 32 / ln 2 */
#define SHIFT 0x1.8p+52
#define C0 0x1.c6af84b912394p-20 /* the cubic in r, scaled by 1/32 */
#define C1 0x1.ebfce50fac4f3p-13
#define C2 0x1.62e42ff0c52d6p-6

/* The top 12 bits of an argument, sign masked off (its exponent and top
 * three mantissa bits), from which it leaves the main path: |x| >= 88,
 * infinities and NaN. */
#define SPECIAL_TOP 0x42bu

static uint32_t top12(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (u >> 20) & 0x7ffu;
}

float nvp__exp_reference(float x)
{
    if (top12(x) >= SPECIAL_TOP)
        return expf(x);
    const double xd = x;
    const double kr = fma(INV_LN2_N, xd, SHIFT);
    uint64_t ki;
    memcpy(&ki, &kr, sizeof ki);
    const double kd = kr - SHIFT;
    const double r = fma(INV_LN2_N, xd, -kd);
    const uint64_t t = exp2_table[ki % 32] + (ki << 47);
    double s;
    memcpy(&s, &t, sizeof s);
    const double z = fma(C0, r, C1);
    const double r2 = r * r;
    double y = fma(C2, r, 1.0);
    y = fma(z, r2, y);
    return (float)(y * s);
}

static void exp_portable(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = expf(x[i]);
}

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))
#define AVX2 __attribute__((target("avx2,fma")))

/* The arguments of a vector that leave the main path, one at a time:
 * lanes in mask (bit l for lane l) of x get expf in y. */
static void special_lanes(const float *x, float *y, unsigned mask)
{
    for (unsigned l = 0; mask; l++, mask >>= 1)
        if (mask & 1u)
            y[l] = expf(x[l]);
}

/* 8 doubles' exponential, rounded to float. */
static inline AVX512 __m256 exp8_avx512(__m512d xd, const __m512i tab[4])
{
    const __m512d shift = _mm512_set1_pd(SHIFT);
    const __m512d inv = _mm512_set1_pd(INV_LN2_N);
    const __m512d kr = _mm512_fmadd_pd(inv, xd, shift);
    const __m512i ki = _mm512_castpd_si512(kr);
    const __m512d kd = _mm512_sub_pd(kr, shift);
    const __m512d r = _mm512_fmsub_pd(inv, xd, kd);
    /* the table's 32 entries from four registers: index bits 0-3 pick
     * within a pair of them, bit 4 picks the pair */
    const __m512i lo = _mm512_permutex2var_epi64(tab[0], ki, tab[1]);
    const __m512i hi = _mm512_permutex2var_epi64(tab[2], ki, tab[3]);
    const __mmask8 upper = _mm512_test_epi64_mask(ki, _mm512_set1_epi64(16));
    __m512i t = _mm512_mask_blend_epi64(upper, lo, hi);
    t = _mm512_add_epi64(t, _mm512_slli_epi64(ki, 47));
    const __m512d s = _mm512_castsi512_pd(t);
    const __m512d z = _mm512_fmadd_pd(_mm512_set1_pd(C0), r,
                                      _mm512_set1_pd(C1));
    const __m512d r2 = _mm512_mul_pd(r, r);
    __m512d y =
        _mm512_fmadd_pd(_mm512_set1_pd(C2), r, _mm512_set1_pd(1.0));
    y = _mm512_fmadd_pd(z, r2, y);
    return _mm512_cvtpd_ps(_mm512_mul_pd(y, s));
}

static AVX512 void exp_avx512(const float *x, float *y, size_t n)
{
    __m512i tab[4];
    for (int q = 0; q < 4; q++)
        tab[q] = _mm512_loadu_si512(exp2_table + 8 * q);
    const __m512i top_mask = _mm512_set1_epi32(0x7ff);
    const __m512i special = _mm512_set1_epi32((int)SPECIAL_TOP - 1);
    for (size_t i = 0; i < n; i += 16) {
        const size_t w = n - i < 16 ? n - i : 16;
        const __mmask16 m = (__mmask16)(w == 16 ? 0xffffu : (1u << w) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        const __m512i top = _mm512_and_si512(
            _mm512_srli_epi32(_mm512_castps_si512(v), 20), top_mask);
        const __mmask16 odd =
            _mm512_mask_cmpgt_epi32_mask(m, top, special);
        const __m256 e0 = exp8_avx512(
            _mm512_cvtps_pd(_mm512_castps512_ps256(v)), tab);
        const __m256 e1 = exp8_avx512(
            _mm512_cvtps_pd(_mm256_castpd_ps(
                _mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))),
            tab);
        __m512 e = _mm512_castpd_ps(_mm512_insertf64x4(
            _mm512_castpd256_pd512(_mm256_castps_pd(e0)),
            _mm256_castps_pd(e1), 1));
        if (odd) { /* rare: patched in a copy of the results */
            float out[16];
            _mm512_storeu_ps(out, e);
            special_lanes(x + i, out, odd);
            e = _mm512_loadu_ps(out);
        }
        _mm512_mask_storeu_ps(y + i, m, e);
    }
}

/* 4 doubles' exponential, rounded to float. */
static inline AVX2 __m128 exp4_avx2(__m256d xd)
{
    const __m256d shift = _mm256_set1_pd(SHIFT);
    const __m256d inv = _mm256_set1_pd(INV_LN2_N);
    const __m256d kr = _mm256_fmadd_pd(inv, xd, shift);
    const __m256i ki = _mm256_castpd_si256(kr);
    const __m256d kd = _mm256_sub_pd(kr, shift);
    const __m256d r = _mm256_fmsub_pd(inv, xd, kd);
    const __m256i idx = _mm256_and_si256(ki, _mm256_set1_epi64x(31));
    __m256i t = _mm256_i64gather_epi64((const long long *)exp2_table, idx, 8);
    t = _mm256_add_epi64(t, _mm256_slli_epi64(ki, 47));
    const __m256d s = _mm256_castsi256_pd(t);
    const __m256d z = _mm256_fmadd_pd(_mm256_set1_pd(C0), r,
                                      _mm256_set1_pd(C1));
    const __m256d r2 = _mm256_mul_pd(r, r);
    __m256d y =
        _mm256_fmadd_pd(_mm256_set1_pd(C2), r, _mm256_set1_pd(1.0));
    y = _mm256_fmadd_pd(z, r2, y);
    return _mm256_cvtpd_ps(_mm256_mul_pd(y, s));
}

static AVX2 void exp_avx2(const float *x, float *y, size_t n)
{
    const __m256i top_mask = _mm256_set1_epi32(0x7ff);
    const __m256i special = _mm256_set1_epi32((int)SPECIAL_TOP - 1);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (size_t i = 0; i < n; i += 8) {
        const size_t w = n - i < 8 ? n - i : 8;
        /* the lanes below w: masked loads and stores for the last few */
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)w), lane);
        const __m256 v =
            w == 8 ? _mm256_loadu_ps(x + i) : _mm256_maskload_ps(x + i, m);
        const __m256i top = _mm256_and_si256(
            _mm256_srli_epi32(_mm256_castps_si256(v), 20), top_mask);
        const unsigned odd = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(
            _mm256_and_si256(m, _mm256_cmpgt_epi32(top, special))));
        const __m128 e0 =
            exp4_avx2(_mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        const __m128 e1 =
            exp4_avx2(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
        __m256 e = _mm256_insertf128_ps(_mm256_castps128_ps256(e0), e1, 1);
        if (odd) { /* rare: patched in a copy of the results */
            float out[8];
            _mm256_storeu_ps(out, e);
            special_lanes(x + i, out, odd);
            e = _mm256_loadu_ps(out);
        }
        if (w == 8)
            _mm256_storeu_ps(y + i, e);
        else
            _mm256_maskstore_ps(y + i, m, e);
    }
}

void nvp__exp_array(nvp_isa isa, const float *x, float *y, size_t n)
{
    switch (isa) {
    case NVP_ISA_AVX512:
        exp_avx512(x, y, n);
        return;
    case NVP_ISA_AVX2:
        exp_avx2(x, y, n);
        return;
    default:
        exp_portable(x, y, n);
        return;
    }
}

#else /* no vector levels in this build */

void nvp__exp_array(nvp_isa isa, const float *x, float *y, size_t n)
{
    (void)isa;
    exp_portable(x, y, n);
}

#endif
