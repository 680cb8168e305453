/* SPDX-License-Identifier: MIT */
/* Run-time CPU feature checks. */
#include "core/cpu.h"

#include "nvpflow.h"

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

nvp_isa nvp__cpu_isa(void)
{
    if (nvp__cpu_avx512())
        return NVP_ISA_AVX512;
    if (nvp__cpu_avx2())
        return NVP_ISA_AVX2;
    return NVP_ISA_PORTABLE;
}

int nvp__cpu_has_isa(nvp_isa isa)
{
    return isa <= nvp__cpu_isa();
}

int nvp__isa_from_kernels(int kernels, nvp_isa *isa)
{
    switch (kernels) {
    case NVP_KERNELS_AUTO:
        *isa = nvp__cpu_isa();
        return NVP_OK;
    case NVP_KERNELS_PORTABLE:
        *isa = NVP_ISA_PORTABLE;
        return NVP_OK;
    case NVP_KERNELS_AVX2:
        *isa = NVP_ISA_AVX2;
        break;
    case NVP_KERNELS_AVX512:
        *isa = NVP_ISA_AVX512;
        break;
    default:
        return NVP_EINVAL;
    }
    return nvp__cpu_has_isa(*isa) ? NVP_OK : NVP_EUNSUPPORTED;
}

int nvp__kernels_from_isa(nvp_isa isa)
{
    switch (isa) {
    case NVP_ISA_AVX512:
        return NVP_KERNELS_AVX512;
    case NVP_ISA_AVX2:
        return NVP_KERNELS_AVX2;
    default:
        return NVP_KERNELS_PORTABLE;
    }
}
