/* The fast kernels for SSE2, the x86-64 baseline (no extra compiler flags). */
#if defined(__x86_64__)
#include "backends/cpu/fast/simd_sse2.h"

#define SIMD_NAME sse2
#define SIMD_ISA DZ_CPU_ISA_SSE2
#include "backends/cpu/fast/kernels.inc"
#else
typedef int dz_fast_kernels_sse2_absent; /* not x86-64: nothing to build */
#endif
