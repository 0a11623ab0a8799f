/* Internal: block structs of the quantized types dizuo computes with, and
 * their row routines (used by the CPU backend's kernels). */
#ifndef DZ_TENSOR_CONVERT_H
#define DZ_TENSOR_CONVERT_H

#include "dizuo/tensor.h"

enum { DZ_QK8_0 = 32, DZ_QK4_0 = 32 };

typedef struct dz_block_q8_0 {
    uint16_t d;            /* fp16 scale */
    int8_t qs[DZ_QK8_0];
} dz_block_q8_0;

typedef struct dz_block_q4_0 {
    uint16_t d;                 /* fp16 scale */
    uint8_t qs[DZ_QK4_0 / 2];   /* element j in the low nibble of qs[j], j+16 in the high */
} dz_block_q4_0;

_Static_assert(sizeof(dz_block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(dz_block_q4_0) == 18, "Q4_0 block is 18 bytes");

/* n is a multiple of 32; x (n floats) -> y (n/32 blocks) and back. */
void dz_quantize_row_q8_0(const float *x, dz_block_q8_0 *y, int64_t n);

/* Two Q8_0 rounding rules of ggml, equal except at rounding boundaries:
 *  REFERENCE   (quantize_row_q8_0_ref; files, llama-quantize):
 *              d = amax/127, q = roundf(x * (1/d)), halves away from zero;
 *  ACTIVATIONS (the x86 AVX/AVX2 quantize_row_q8_0 that llama.cpp's CPU
 *              matmul applies to activations): d = amax/127 stored, but
 *              q = round-half-even(x * (127/amax)).
 * The difference matters more than it looks: a Q4_0 model's activations are
 * often exact multiples of a block scale, so x*127/amax lands exactly on .5
 * for many elements. Measured on synth-tiny-Q4_0 against llama.cpp's logits:
 * NMSE 1.6e-3 with REFERENCE for activations, 6.7e-5 with ACTIVATIONS. */
typedef enum dz_q8_rounding { DZ_Q8_ROUND_REFERENCE, DZ_Q8_ROUND_ACTIVATIONS } dz_q8_rounding;
void dz_quantize_row_q8_0_with(const float *x, dz_block_q8_0 *y, int64_t n, dz_q8_rounding rounding);
void dz_dequantize_row_q8_0(const dz_block_q8_0 *x, float *y, int64_t n);
void dz_quantize_row_q4_0(const float *x, dz_block_q4_0 *y, int64_t n);
void dz_dequantize_row_q4_0(const dz_block_q4_0 *x, float *y, int64_t n);

#endif
