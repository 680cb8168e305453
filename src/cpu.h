/* Run-time CPU feature checks for the SIMD paths. */
#ifndef NVP_CPU_H
#define NVP_CPU_H

/* Nonzero when the CPU (and OS) run AVX-512F / AVX2 with FMA code. */
int nvp__cpu_avx512(void);
int nvp__cpu_avx2(void);

/* Nonzero when none of the n floats is NaN or infinite. */
int nvp__all_finite(const float *x, size_t n);
/* Nonzero when every |x[i]| < limit (limit > 0 and finite; NaN fails). */
int nvp__all_abs_below(const float *x, size_t n, float limit);

#endif
