/* The block-of-32 formats: reference row (de)quantizers of Q4_0, Q4_1, Q5_0,
 * Q5_1, Q8_0 and the activation quantizers Q8_0/Q8_1.
 *
 * Layouts (convert.h): x = (q - 8) * d (Q4_0), q * d + m (Q4_1),
 * (q - 16) * d (Q5_0), q * d + m (Q5_1), q * d (Q8_0). The weight quantizers
 * follow ggml's reference ones (quantize_row_*_ref), which llama-quantize
 * uses without an importance matrix, so that files match bit for bit. */
#include <float.h>
#include <string.h>

#include "tensor/convert.h"
#include "tensor/quant_impl.h"

/* (int8_t)v for v in range, saturating outside it and 0 for NaN, so that
 * garbage input stays defined behaviour. Truncates toward zero as a cast. */
static int to_int8(float v) {
    if (!(v > -128.0f)) return v != v ? 0 : -128;
    if (v >= 127.0f) return 127;
    return (int8_t)v;
}

/* Nibble of element j of a block of 32 (low nibbles: elements 0..15). */
static int nibble(const uint8_t qs[16], int j) { return j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4; }

static uint32_t load_u32(const uint8_t b[4]) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* 5-bit level of element j: nibble plus bit j of qh as the 5th bit. */
static int level5(const uint8_t qs[16], const uint8_t qh[4], int j) {
    return nibble(qs, j) | (int)((load_u32(qh) >> j) & 1u) << 4;
}

void dz_levels_q4_0(const dz_block_q4_0 *b, int8_t out[DZ_QK4_0]) {
    for (int j = 0; j < DZ_QK4_0; j++) out[j] = (int8_t)(nibble(b->qs, j) - 8);
}

void dz_levels_q4_1(const dz_block_q4_1 *b, int8_t out[DZ_QK4_1]) {
    for (int j = 0; j < DZ_QK4_1; j++) out[j] = (int8_t)nibble(b->qs, j);
}

void dz_levels_q5_0(const dz_block_q5_0 *b, int8_t out[DZ_QK5_0]) {
    for (int j = 0; j < DZ_QK5_0; j++) out[j] = (int8_t)(level5(b->qs, b->qh, j) - 16);
}

void dz_levels_q5_1(const dz_block_q5_1 *b, int8_t out[DZ_QK5_1]) {
    for (int j = 0; j < DZ_QK5_1; j++) out[j] = (int8_t)level5(b->qs, b->qh, j);
}

static void store_u32(uint8_t b[4], uint32_t v) {
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
}

/* Packs 32 levels (0..15 or 0..31) into nibbles and, for 5 bits, qh. */
static void pack_levels(const int q[32], uint8_t qs[16], uint8_t *qh) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4);
        h |= (uint32_t)((q[j] >> 4) & 1) << j | (uint32_t)((q[j + 16] >> 4) & 1) << (j + 16);
    }
    if (qh) store_u32(qh, h);
}

/* max: the signed value of largest magnitude (first one on ties), so it
 * maps to the lowest level exactly and the other side gets the extra one. */
static float signed_max32(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

/* ---- Q8_0 ---- */

void dz_quantize_row_q8_0_with(const float *x, dz_block_q8_0 *y, int64_t n, dz_q8_rounding rounding) {
    for (int64_t b = 0; b < n / DZ_QK8_0; b++, x += DZ_QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < DZ_QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        y[b].d = dz_fp32_to_fp16(d);
        if (rounding == DZ_Q8_ROUND_REFERENCE) {
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            for (int j = 0; j < DZ_QK8_0; j++) y[b].qs[j] = (int8_t)to_int8(roundf(x[j] * id));
        } else {
            /* nearbyintf: ties to even in the default rounding mode. */
            const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
            for (int j = 0; j < DZ_QK8_0; j++) y[b].qs[j] = (int8_t)to_int8(nearbyintf(x[j] * id));
        }
    }
}

void dz_quantize_row_q8_0(const float *x, dz_block_q8_0 *y, int64_t n) {
    dz_quantize_row_q8_0_with(x, y, n, DZ_Q8_ROUND_REFERENCE);
}

void dz_dequantize_row_q8_0(const dz_block_q8_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / DZ_QK8_0; b++, y += DZ_QK8_0) {
        const float d = dz_fp16_to_fp32(x[b].d);
        for (int j = 0; j < DZ_QK8_0; j++) y[j] = (float)x[b].qs[j] * d;
    }
}

/* ---- Q8_1 (activations) ---- */

void dz_quantize_row_q8_1(const float *x, dz_block_q8_1 *y, int64_t n) {
    for (int64_t b = 0; b < n / DZ_QK8_1; b++, x += DZ_QK8_1) {
        float amax = 0.0f;
        for (int j = 0; j < DZ_QK8_1; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < DZ_QK8_1; j++) {
            y[b].qs[j] = (int8_t)to_int8(nearbyintf(x[j] * id));
            sum += y[b].qs[j];
        }
        y[b].d = dz_fp32_to_fp16(d);
        y[b].s = dz_fp32_to_fp16(d * (float)sum);
    }
}

/* ---- Q4_0 ---- */

void dz_quantize_row_q4_0(const float *x, dz_block_q4_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / DZ_QK4_0; b++, x += DZ_QK4_0) {
        const float d = signed_max32(x) / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = dz_fp32_to_fp16(d);
        int q[32];
        /* (int8_t) truncates toward zero; + 8.5 makes that rounding. */
        for (int j = 0; j < 32; j++) q[j] = dz_clamp_int(to_int8(x[j] * id + 8.5f), 0, 15);
        pack_levels(q, y[b].qs, NULL);
    }
}

void dz_dequantize_row_q4_0(const dz_block_q4_0 *x, float *y, int64_t n) {
    int8_t q[32];
    for (int64_t b = 0; b < n / DZ_QK4_0; b++, y += DZ_QK4_0) {
        const float d = dz_fp16_to_fp32(x[b].d);
        dz_levels_q4_0(&x[b], q);
        for (int j = 0; j < DZ_QK4_0; j++) y[j] = (float)q[j] * d;
    }
}

/* ---- Q4_1, Q5_1: x = q * d + m with m the block's minimum ---- */

/* Levels 0..nmax of a block spanning [min, max], rounded half up from the
 * unrounded d and min (as ggml's reference quantizer does). */
static void min_max_levels(const float *x, int nmax, int q[32], uint16_t *d_out, uint16_t *m_out) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / (float)nmax;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    *d_out = dz_fp32_to_fp16(d);
    *m_out = dz_fp32_to_fp16(min);
    for (int j = 0; j < 32; j++) q[j] = dz_clamp_int(to_int8((x[j] - min) * id + 0.5f), 0, nmax);
}

void dz_quantize_row_q4_1(const float *x, dz_block_q4_1 *y, int64_t n) {
    for (int64_t b = 0; b < n / DZ_QK4_1; b++, x += DZ_QK4_1) {
        int q[32];
        min_max_levels(x, 15, q, &y[b].d, &y[b].m);
        pack_levels(q, y[b].qs, NULL);
    }
}

void dz_dequantize_row_q4_1(const dz_block_q4_1 *x, float *y, int64_t n) {
    int8_t q[32];
    for (int64_t b = 0; b < n / DZ_QK4_1; b++, y += DZ_QK4_1) {
        const float d = dz_fp16_to_fp32(x[b].d), m = dz_fp16_to_fp32(x[b].m);
        dz_levels_q4_1(&x[b], q);
        for (int j = 0; j < DZ_QK4_1; j++) y[j] = (float)q[j] * d + m;
    }
}

void dz_quantize_row_q5_1(const float *x, dz_block_q5_1 *y, int64_t n) {
    for (int64_t b = 0; b < n / DZ_QK5_1; b++, x += DZ_QK5_1) {
        int q[32];
        min_max_levels(x, 31, q, &y[b].d, &y[b].m);
        pack_levels(q, y[b].qs, y[b].qh);
    }
}

void dz_dequantize_row_q5_1(const dz_block_q5_1 *x, float *y, int64_t n) {
    int8_t q[32];
    for (int64_t b = 0; b < n / DZ_QK5_1; b++, y += DZ_QK5_1) {
        const float d = dz_fp16_to_fp32(x[b].d), m = dz_fp16_to_fp32(x[b].m);
        dz_levels_q5_1(&x[b], q);
        for (int j = 0; j < DZ_QK5_1; j++) y[j] = (float)q[j] * d + m;
    }
}

/* ---- Q5_0: x = (q - 16) * d ---- */

void dz_quantize_row_q5_0(const float *x, dz_block_q5_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / DZ_QK5_0; b++, x += DZ_QK5_0) {
        const float d = signed_max32(x) / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = dz_fp32_to_fp16(d);
        int q[32];
        for (int j = 0; j < 32; j++) q[j] = dz_clamp_int(to_int8(x[j] * id + 16.5f), 0, 31);
        pack_levels(q, y[b].qs, y[b].qh);
    }
}

void dz_dequantize_row_q5_0(const dz_block_q5_0 *x, float *y, int64_t n) {
    int8_t q[32];
    for (int64_t b = 0; b < n / DZ_QK5_0; b++, y += DZ_QK5_0) {
        const float d = dz_fp16_to_fp32(x[b].d);
        dz_levels_q5_0(&x[b], q);
        for (int j = 0; j < DZ_QK5_0; j++) y[j] = (float)q[j] * d;
    }
}
