/* SPDX-License-Identifier: MIT */
/* CPU feature checks, and small vector helpers compiled once per
 * instruction set and picked at run time. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#define NVP_X86 1
#endif

int nvp__cpu_avx512(void)
{
#ifdef NVP_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

int nvp__cpu_avx2(void)
{
#ifdef NVP_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* |x| as bits: for non-negative IEEE floats the bit patterns order like
 * the values, infinity above every finite value and NaN above infinity.
 * The largest pattern over the array, an integer max reduction, vectorises
 * (a floating-point reduction would not, without reassociation). */
static inline __attribute__((always_inline)) uint32_t
max_abs_bits_body(const float *x, size_t n)
{
    uint32_t top = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        u &= 0x7fffffffu;
        top = u > top ? u : top;
    }
    return top;
}

#ifdef NVP_X86
__attribute__((target("avx512f"))) static uint32_t
max_abs_bits_avx512(const float *x, size_t n)
{
    return max_abs_bits_body(x, n);
}
#endif

static uint32_t max_abs_bits_portable(const float *x, size_t n)
{
    return max_abs_bits_body(x, n);
}

uint32_t nvp__max_abs_bits(const float *x, size_t n)
{
#ifdef NVP_X86
    if (nvp__cpu_avx512())
        return max_abs_bits_avx512(x, n);
#endif
    return max_abs_bits_portable(x, n);
}

int nvp__all_finite(const float *x, size_t n)
{
    return nvp__max_abs_bits(x, n) < NVP_INF_BITS;
}
