/* The fast kernels in portable C: the level every architecture has. */
#include "backends/cpu/fast/simd_scalar.h"

#define SIMD_NAME scalar
#define SIMD_ISA DZ_CPU_ISA_SCALAR
#include "backends/cpu/fast/kernels.inc"
