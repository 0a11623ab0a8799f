/* Internal: block structs of the quantized types dizuo computes with, and
 * their row routines (used by the CPU backend's kernels and by `dizuo
 * quantize`).
 *
 * The layouts are GGUF's. Every row routine takes n elements, a multiple of
 * the type's block size (checked by the by-type entry points in
 * dizuo/tensor.h, not here), and converts n / block_size blocks.
 *
 * Files:  convert.c       fp16/bf16 and the by-type dispatch
 *         quant_legacy.c  Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q8_1 (blocks of 32)
 *         quant_iq.c      IQ4_NL (blocks of 32, non-linear levels)
 *         quant_k.c       Q2_K .. Q6_K (super-blocks of 256)
 *         quant_search.c  the scale searches of the K-quant quantizers, Q8_K
 * All routines are pure functions of their arguments: thread-safe. */
#ifndef DZ_TENSOR_CONVERT_H
#define DZ_TENSOR_CONVERT_H

#include "dizuo/tensor.h"

enum {
    DZ_QK8_0 = 32, DZ_QK4_0 = 32, DZ_QK4_1 = 32, DZ_QK5_0 = 32, DZ_QK5_1 = 32, DZ_QK8_1 = 32,
    DZ_QK4_NL = 32,
    DZ_QK_K = 256, /* super-block of the K-quants */
    DZ_K_SCALE_SIZE = 12,
};

/* ---- blocks of 32: x = d * q (+ m) ---- */

typedef struct dz_block_q8_0 {
    uint16_t d;            /* fp16 scale */
    int8_t qs[DZ_QK8_0];
} dz_block_q8_0;

/* Q4_0 .. Q5_1 and IQ4_NL: element j of a block in the low nibble of qs[j],
 * element j + 16 in the high nibble. The Q5 types keep the 5th bit of
 * element j in bit j of qh (read as a little-endian uint32). */
typedef struct dz_block_q4_0 {
    uint16_t d;                 /* fp16 scale; x = (q - 8) * d */
    uint8_t qs[DZ_QK4_0 / 2];
} dz_block_q4_0;

typedef struct dz_block_q4_1 {
    uint16_t d, m;              /* fp16 scale and minimum; x = q * d + m */
    uint8_t qs[DZ_QK4_1 / 2];
} dz_block_q4_1;

typedef struct dz_block_q5_0 {
    uint16_t d;                 /* fp16 scale; x = (q - 16) * d */
    uint8_t qh[4];
    uint8_t qs[DZ_QK5_0 / 2];
} dz_block_q5_0;

typedef struct dz_block_q5_1 {
    uint16_t d, m;              /* x = q * d + m */
    uint8_t qh[4];
    uint8_t qs[DZ_QK5_1 / 2];
} dz_block_q5_1;

/* Activations for Q4_1/Q5_1 weights: s = d * sum(qs), so that the weights'
 * minimum m contributes m * s to a block's dot product. */
typedef struct dz_block_q8_1 {
    uint16_t d, s;              /* fp16 */
    int8_t qs[DZ_QK8_1];
} dz_block_q8_1;

/* x = d * dz_iq4nl_values[q] */
typedef struct dz_block_iq4_nl {
    uint16_t d;
    uint8_t qs[DZ_QK4_NL / 2];
} dz_block_iq4_nl;

extern const int8_t dz_iq4nl_values[16];

/* ---- super-blocks of 256 (K-quants) ---- */

/* 16 groups of 16; group g has 4-bit scale sc = scales[g] & 15 and 4-bit min
 * mn = scales[g] >> 4: x = d * sc * q - dmin * mn, q in 0..3. Element
 * 128 * h + 32 * s + l (h < 2, s < 4, l < 32) is bits 2s..2s+1 of qs[32h + l]. */
typedef struct dz_block_q2_K {
    uint8_t scales[DZ_QK_K / 16];
    uint8_t qs[DZ_QK_K / 4];
    uint16_t d, dmin;           /* fp16 */
} dz_block_q2_K;

/* 16 groups of 16, 6-bit signed scales (dz_q3_K_scales): x = d * sc * q with
 * q in -4..3 = low 2 bits (placed as in Q2_K) + 4 * high bit - 4; the high
 * bit of element 32 * s + l (s < 8) is bit s of hmask[l]. */
typedef struct dz_block_q3_K {
    uint8_t hmask[DZ_QK_K / 8];
    uint8_t qs[DZ_QK_K / 4];
    uint8_t scales[DZ_K_SCALE_SIZE];
    uint16_t d;
} dz_block_q3_K;

/* 8 groups of 32 with 6-bit scales and mins (dz_q4_K_scale_min):
 * x = d * sc * q - dmin * mn. Element 64 * p + l (l < 32) is the low nibble
 * of qs[32p + l], element 64 * p + 32 + l its high nibble. */
typedef struct dz_block_q4_K {
    uint16_t d, dmin;
    uint8_t scales[DZ_K_SCALE_SIZE];
    uint8_t qs[DZ_QK_K / 2];
} dz_block_q4_K;

/* As Q4_K, with a 5th bit: for element 64 * p + l, bit 2p of qh[l]; for
 * 64 * p + 32 + l, bit 2p + 1 of qh[l]. */
typedef struct dz_block_q5_K {
    uint16_t d, dmin;
    uint8_t scales[DZ_K_SCALE_SIZE];
    uint8_t qh[DZ_QK_K / 8];
    uint8_t qs[DZ_QK_K / 2];
} dz_block_q5_K;

/* 16 groups of 16 with int8 scales: x = d * scales[g] * (q - 32), q 6 bits.
 * In half h (128 elements), element 32 * s + l has low nibble from ql[64h +
 * l + 32 * (s & 1)] (low nibble for s < 2, high for s >= 2) and top 2 bits
 * from bits 2s..2s+1 of qh[32h + l]. */
typedef struct dz_block_q6_K {
    uint8_t ql[DZ_QK_K / 2];
    uint8_t qh[DZ_QK_K / 4];
    int8_t scales[DZ_QK_K / 16];
    uint16_t d;
} dz_block_q6_K;

/* Activations for K-quant weights: x = d * qs, bsums[g] = sum of qs in group
 * g of 16 (a K-quant's minimums multiply those). */
typedef struct dz_block_q8_K {
    float d;
    int8_t qs[DZ_QK_K];
    int16_t bsums[DZ_QK_K / 16];
} dz_block_q8_K;

_Static_assert(sizeof(dz_block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(dz_block_q4_0) == 18, "Q4_0 block is 18 bytes");
_Static_assert(sizeof(dz_block_q4_1) == 20, "Q4_1 block is 20 bytes");
_Static_assert(sizeof(dz_block_q5_0) == 22, "Q5_0 block is 22 bytes");
_Static_assert(sizeof(dz_block_q5_1) == 24, "Q5_1 block is 24 bytes");
_Static_assert(sizeof(dz_block_q8_1) == 36, "Q8_1 block is 36 bytes");
_Static_assert(sizeof(dz_block_iq4_nl) == 18, "IQ4_NL block is 18 bytes");
_Static_assert(sizeof(dz_block_q2_K) == 84, "Q2_K block is 84 bytes");
_Static_assert(sizeof(dz_block_q3_K) == 110, "Q3_K block is 110 bytes");
_Static_assert(sizeof(dz_block_q4_K) == 144, "Q4_K block is 144 bytes");
_Static_assert(sizeof(dz_block_q5_K) == 176, "Q5_K block is 176 bytes");
_Static_assert(sizeof(dz_block_q6_K) == 210, "Q6_K block is 210 bytes");
_Static_assert(sizeof(dz_block_q8_K) == 292, "Q8_K block is 292 bytes");

/* ---- scale decoding shared by dequantizers and dot products ---- */

/* Q4_K/Q5_K group j (0..7): 6-bit scale *sc and min *mn. Groups 0..3 are the
 * low 6 bits of scales[j] and scales[j + 4]; groups 4..7 take their low 4
 * bits from scales[j + 4] (scale low nibble, min high nibble) and their top
 * 2 bits from bits 6..7 of scales[j - 4] (scale) and scales[j] (min). */
void dz_q4_K_scale_min(int j, const uint8_t scales[DZ_K_SCALE_SIZE], uint8_t *sc, uint8_t *mn);

/* Q3_K: the 16 signed scales (-32..31). Scale g's low 4 bits are the low
 * (g < 8) or high (g >= 8) nibble of scales[g % 8], its top 2 bits are bits
 * 2 * (g / 4) .. +1 of scales[8 + g % 4]; the stored value is scale + 32. */
void dz_q3_K_scales(const uint8_t scales[DZ_K_SCALE_SIZE], int8_t out[DZ_QK_K / 16]);

/* ---- levels: the integer each element's scale multiplies ----
 * Unpacked from one block into out (32 or 256 values): Q4_0 q - 8, Q4_1 q,
 * Q5_0 q - 16, Q5_1 q, IQ4_NL dz_iq4nl_values[q], Q2_K q (0..3), Q3_K q
 * (-4..3), Q4_K q, Q5_K q, Q6_K q - 32. Dequantizers and dot products share
 * them, so the bit layouts live in one place. */
void dz_levels_q4_0(const dz_block_q4_0 *b, int8_t out[DZ_QK4_0]);
void dz_levels_q4_1(const dz_block_q4_1 *b, int8_t out[DZ_QK4_1]);
void dz_levels_q5_0(const dz_block_q5_0 *b, int8_t out[DZ_QK5_0]);
void dz_levels_q5_1(const dz_block_q5_1 *b, int8_t out[DZ_QK5_1]);
void dz_levels_iq4_nl(const dz_block_iq4_nl *b, int8_t out[DZ_QK4_NL]);
void dz_levels_q2_K(const dz_block_q2_K *b, int8_t out[DZ_QK_K]);
void dz_levels_q3_K(const dz_block_q3_K *b, int8_t out[DZ_QK_K]);
void dz_levels_q4_K(const dz_block_q4_K *b, int8_t out[DZ_QK_K]);
void dz_levels_q5_K(const dz_block_q5_K *b, int8_t out[DZ_QK_K]);
void dz_levels_q6_K(const dz_block_q6_K *b, int8_t out[DZ_QK_K]);

/* ---- row routines: x (n floats) -> y (n / block_size blocks) and back ---- */

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
void dz_quantize_row_q8_0(const float *x, dz_block_q8_0 *y, int64_t n); /* REFERENCE */
void dz_dequantize_row_q8_0(const dz_block_q8_0 *x, float *y, int64_t n);

/* Activations only, as llama.cpp's x86 quantize_row_q8_1: d = amax/127
 * (stored as fp16), q = round-half-even(x * (127/amax)), s = fp16(d * sum(q))
 * with d the unrounded float. */
void dz_quantize_row_q8_1(const float *x, dz_block_q8_1 *y, int64_t n);

/* Activations only, as ggml's quantize_row_q8_K_ref (which llama.cpp's x86
 * build uses): max = the value of largest magnitude (first one on ties),
 * iscale = -127/max, q = min(127, round-half-even(iscale * x)),
 * d = 1/iscale, bsums the sums of 16. An all-zero block gets d = 0. */
void dz_quantize_row_q8_K(const float *x, dz_block_q8_K *y, int64_t n);

/* Weight quantizers: the algorithms of ggml's reference quantizers (what
 * llama-quantize applies without an importance matrix), so a file quantized
 * by dizuo matches one quantized by llama.cpp. */
void dz_quantize_row_q4_0(const float *x, dz_block_q4_0 *y, int64_t n);
void dz_quantize_row_q4_1(const float *x, dz_block_q4_1 *y, int64_t n);
void dz_quantize_row_q5_0(const float *x, dz_block_q5_0 *y, int64_t n);
void dz_quantize_row_q5_1(const float *x, dz_block_q5_1 *y, int64_t n);
void dz_quantize_row_iq4_nl(const float *x, dz_block_iq4_nl *y, int64_t n);
void dz_quantize_row_q2_K(const float *x, dz_block_q2_K *y, int64_t n);
void dz_quantize_row_q3_K(const float *x, dz_block_q3_K *y, int64_t n);
void dz_quantize_row_q4_K(const float *x, dz_block_q4_K *y, int64_t n);
void dz_quantize_row_q5_K(const float *x, dz_block_q5_K *y, int64_t n);
void dz_quantize_row_q6_K(const float *x, dz_block_q6_K *y, int64_t n);

void dz_dequantize_row_q4_0(const dz_block_q4_0 *x, float *y, int64_t n);
void dz_dequantize_row_q4_1(const dz_block_q4_1 *x, float *y, int64_t n);
void dz_dequantize_row_q5_0(const dz_block_q5_0 *x, float *y, int64_t n);
void dz_dequantize_row_q5_1(const dz_block_q5_1 *x, float *y, int64_t n);
void dz_dequantize_row_iq4_nl(const dz_block_iq4_nl *x, float *y, int64_t n);
void dz_dequantize_row_q2_K(const dz_block_q2_K *x, float *y, int64_t n);
void dz_dequantize_row_q3_K(const dz_block_q3_K *x, float *y, int64_t n);
void dz_dequantize_row_q4_K(const dz_block_q4_K *x, float *y, int64_t n);
void dz_dequantize_row_q5_K(const dz_block_q5_K *x, float *y, int64_t n);
void dz_dequantize_row_q6_K(const dz_block_q6_K *x, float *y, int64_t n);

#endif
