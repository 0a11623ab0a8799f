/* The fast kernels for NEON, the aarch64 baseline (no extra compiler
 * flags). */
#if defined(__aarch64__)
#include "backends/cpu/fast/simd_neon.h"

#define SIMD_NAME neon
#define SIMD_ISA DZ_CPU_ISA_NEON
#include "backends/cpu/fast/kernels.inc"
#else
typedef int dz_fast_kernels_neon_absent; /* not aarch64: nothing to build */
#endif
