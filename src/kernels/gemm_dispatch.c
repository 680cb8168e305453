/* SPDX-License-Identifier: MIT */
/* Run-time selection among the micro-kernels built into the library. */
#include <string.h>

#include "kernels/gemm.h"

extern const nvp_gemm_kernel nvp__gemm_portable;
#if defined(__x86_64__) || defined(__i386__)
extern const nvp_gemm_kernel nvp__gemm_avx512;
extern const nvp_gemm_kernel nvp__gemm_avx2;
#endif

/* Best first: nvp__gemm_best takes the first one the CPU supports. */
static const nvp_gemm_kernel *const all_kernels[] = {
#if defined(__x86_64__) || defined(__i386__)
    &nvp__gemm_avx512,
    &nvp__gemm_avx2,
#endif
    &nvp__gemm_portable,
};

const nvp_gemm_kernel *const *nvp__gemm_kernels(size_t *count)
{
    *count = sizeof all_kernels / sizeof all_kernels[0];
    return all_kernels;
}

const nvp_gemm_kernel *nvp__gemm_best(void)
{
    size_t n;
    const nvp_gemm_kernel *const *ks = nvp__gemm_kernels(&n);
    for (size_t i = 0; i < n; i++)
        if (ks[i]->supported())
            return ks[i];
    return &nvp__gemm_portable;
}

const nvp_gemm_kernel *nvp__gemm_for_isa(nvp_isa isa)
{
#if defined(__x86_64__) || defined(__i386__)
    if (isa == NVP_ISA_AVX512)
        return &nvp__gemm_avx512;
    if (isa == NVP_ISA_AVX2)
        return &nvp__gemm_avx2;
#endif
    (void)isa;
    return &nvp__gemm_portable;
}

const nvp_gemm_kernel *nvp__gemm_by_name(const char *name)
{
    size_t n;
    const nvp_gemm_kernel *const *ks = nvp__gemm_kernels(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(ks[i]->name, name) == 0 && ks[i]->supported())
            return ks[i];
    return NULL;
}
