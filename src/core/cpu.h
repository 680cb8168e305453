/* SPDX-License-Identifier: MIT */
/* The instruction sets the kernels are built for, the CPU's support for
 * them, and the one macro that compiles a kernel body once per set.
 *
 * Every handle chooses its level once (the best the CPU runs, or what the
 * caller asked for with nvp_*_set_kernels) and passes it down with each
 * call: nothing below reads a global to decide which code runs. */
#ifndef NVP_CPU_H
#define NVP_CPU_H

#include <stddef.h>
#include <stdint.h>

/* Ordered: a CPU that runs a level runs every level below it. */
typedef enum nvp_isa {
    NVP_ISA_PORTABLE = 0, /* plain C: the same bits on every machine */
    NVP_ISA_AVX2 = 1,     /* AVX2 with FMA */
    NVP_ISA_AVX512 = 2    /* AVX-512F */
} nvp_isa;

/* Nonzero when the CPU (and OS) run AVX-512F / AVX2 with FMA code. */
int nvp__cpu_avx512(void);
int nvp__cpu_avx2(void);

/* The best level the CPU runs. */
nvp_isa nvp__cpu_isa(void);

/* Whether this CPU runs level isa. */
int nvp__cpu_has_isa(nvp_isa isa);

/* The level for a public NVP_KERNELS_* value: NVP_OK, or NVP_EINVAL for
 * an unknown value, NVP_EUNSUPPORTED for a level this CPU lacks (nothing
 * recorded). */
int nvp__isa_from_kernels(int kernels, nvp_isa *isa);
/* The public NVP_KERNELS_* value of a level. */
int nvp__kernels_from_isa(nvp_isa isa);
#define NVP__UNPAREN(...) __VA_ARGS__

/* NVP_ISA_VARIANTS(name, body, (params), (args)) defines
 *
 *     static void name(nvp_isa isa, params)
 *
 * which runs body(args), a static inline always_inline function, compiled
 * for the level isa: AVX-512F, AVX2 with FMA, or as it is.  The C is the
 * same in every variant and the build forbids contracting a multiply and
 * an add (-ffp-contract=off), so the variants give the same bits; the wider
 * ones are just faster.  Results go out through the body's pointers. */
#if defined(__x86_64__) || defined(__i386__)
#define NVP_ISA_VARIANTS(name, body, params, args)                            \
    __attribute__((target("avx512f"))) static void name##_avx512 params      \
    {                                                                         \
        body args;                                                            \
    }                                                                         \
    __attribute__((target("avx2,fma"))) static void name##_avx2 params       \
    {                                                                         \
        body args;                                                            \
    }                                                                         \
    static void name##_portable params { body args; }                         \
    static void name(nvp_isa isa, NVP__UNPAREN params)                        \
    {                                                                         \
        switch (isa) {                                                        \
        case NVP_ISA_AVX512:                                                  \
            name##_avx512 args;                                               \
            return;                                                           \
        case NVP_ISA_AVX2:                                                    \
            name##_avx2 args;                                                 \
            return;                                                           \
        default:                                                              \
            name##_portable args;                                             \
            return;                                                           \
        }                                                                     \
    }
#else
#define NVP_ISA_VARIANTS(name, body, params, args)                            \
    static void name(nvp_isa isa, NVP__UNPAREN params)                        \
    {                                                                         \
        (void)isa;                                                            \
        body args;                                                            \
    }
#endif

#endif
