/* CPU feature checks, and small vector helpers compiled once per
 * instruction set and picked at run time. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cpu.h"

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

/* A float is NaN or infinite exactly when its exponent bits are all ones.
 * The largest exponent field over the array, an integer max reduction,
 * vectorises (a floating-point reduction would not, without reassociation). */
static inline __attribute__((always_inline)) int all_finite_body(const float *x,
                                                                 size_t n)
{
    uint32_t top = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        u &= 0x7f800000u;
        top = u > top ? u : top;
    }
    return top != 0x7f800000u;
}

#ifdef NVP_X86
__attribute__((target("avx512f"))) static int all_finite_avx512(const float *x,
                                                                size_t n)
{
    return all_finite_body(x, n);
}
#endif

static int all_finite_portable(const float *x, size_t n)
{
    return all_finite_body(x, n);
}

int nvp__all_finite(const float *x, size_t n)
{
#ifdef NVP_X86
    if (nvp__cpu_avx512())
        return all_finite_avx512(x, n);
#endif
    return all_finite_portable(x, n);
}
