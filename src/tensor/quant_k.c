/* The K-quants Q2_K .. Q6_K: super-blocks of 256 elements in groups of 16 or
 * 32, each group with its own small integer scale (and, for Q2_K, Q4_K and
 * Q5_K, minimum) that multiplies one fp16 super-block scale (and min).
 * Layouts: convert.h.
 *
 * The quantizers follow ggml's reference ones (quantize_row_q*_K_ref, what
 * llama-quantize applies without an importance matrix): fit every group with
 * a scale search (quant_search.c), quantize the group scales against the
 * largest one, then re-quantize every element with the scale it will really
 * be decoded with. */
#include <string.h>

#include "tensor/convert.h"
#include "tensor/quant_impl.h"

/* ---- scale decoding ---- */

void dz_q4_K_scale_min(int j, const uint8_t scales[DZ_K_SCALE_SIZE], uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = scales[j] & 63;
        *mn = scales[j + 4] & 63;
    } else {
        *sc = (uint8_t)((scales[j + 4] & 0x0f) | (scales[j - 4] >> 6) << 4);
        *mn = (uint8_t)((scales[j + 4] >> 4) | (scales[j] >> 6) << 4);
    }
}

void dz_q3_K_scales(const uint8_t scales[DZ_K_SCALE_SIZE], int8_t out[DZ_QK_K / 16]) {
    for (int g = 0; g < DZ_QK_K / 16; g++) {
        int lo = g < 8 ? scales[g] & 0x0f : scales[g - 8] >> 4;
        int hi = (scales[8 + g % 4] >> (2 * (g / 4))) & 3;
        out[g] = (int8_t)((lo | hi << 4) - 32);
    }
}

/* Q4_K/Q5_K: packs 6-bit scale ls and min lm of group j. Groups 0..3 must be
 * packed before 4..7 (these add their top bits to bytes 0..7). */
static void q4_K_pack_scale_min(uint8_t scales[DZ_K_SCALE_SIZE], int j, int ls, int lm) {
    if (j < 4) {
        scales[j] = (uint8_t)ls;
        scales[j + 4] = (uint8_t)lm;
    } else {
        scales[j + 4] = (uint8_t)((ls & 0x0f) | (lm & 0x0f) << 4);
        scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
        scales[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

/* Q2_K/Q3_K element placement: level of element 128h + 32s + l (2 bits) in
 * bits 2s of qs[32h + l]. */
static void pack_2bit(const uint8_t L[DZ_QK_K], uint8_t qs[DZ_QK_K / 4]) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *p = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(p[0] | p[32] << 2 | p[64] << 4 | p[96] << 6);
        }
}

static int level_2bit(const uint8_t qs[DZ_QK_K / 4], int i) {
    return (qs[32 * (i / 128) + i % 32] >> (2 * (i % 128 / 32))) & 3;
}

void dz_levels_q2_K(const dz_block_q2_K *b, int8_t out[DZ_QK_K]) {
    for (int i = 0; i < DZ_QK_K; i++) out[i] = (int8_t)level_2bit(b->qs, i);
}

void dz_levels_q3_K(const dz_block_q3_K *b, int8_t out[DZ_QK_K]) {
    for (int i = 0; i < DZ_QK_K; i++)
        out[i] = (int8_t)(level_2bit(b->qs, i) - ((b->hmask[i % 32] >> (i / 32)) & 1 ? 0 : 4));
}

/* Q4_K/Q5_K: low 4 bits of element i of the super-block. */
static int nibble_k(const uint8_t qs[DZ_QK_K / 2], int i) {
    const uint8_t byte = qs[32 * (i / 64) + i % 32];
    return i % 64 < 32 ? byte & 0x0f : byte >> 4;
}

void dz_levels_q4_K(const dz_block_q4_K *b, int8_t out[DZ_QK_K]) {
    for (int i = 0; i < DZ_QK_K; i++) out[i] = (int8_t)nibble_k(b->qs, i);
}

void dz_levels_q5_K(const dz_block_q5_K *b, int8_t out[DZ_QK_K]) {
    for (int i = 0; i < DZ_QK_K; i++)
        out[i] = (int8_t)(nibble_k(b->qs, i) | ((b->qh[i % 32] >> (i / 32)) & 1) << 4);
}

void dz_levels_q6_K(const dz_block_q6_K *b, int8_t out[DZ_QK_K]) {
    for (int i = 0; i < DZ_QK_K; i++) {
        const int h = i / 128, s = i % 128 / 32, l = i % 32;
        const uint8_t lo = b->ql[64 * h + 32 * (s & 1) + l];
        out[i] = (int8_t)(((s >= 2 ? lo >> 4 : lo & 0x0f) | ((b->qh[32 * h + l] >> (2 * s)) & 3) << 4) - 32);
    }
}

/* ---- Q2_K: x = d * sc * q - dmin * mn, q in 0..3, groups of 16 ---- */

void dz_quantize_row_q2_K(const float *x, dz_block_q2_K *y, int64_t n) {
    uint8_t L[DZ_QK_K], Laux[16];
    float weights[16], mins[DZ_QK_K / 16], scales[DZ_QK_K / 16];
    for (int64_t b = 0; b < n / DZ_QK_K; b++, x += DZ_QK_K) {
        float max_scale = 0, max_min = 0;
        for (int g = 0; g < DZ_QK_K / 16; g++) {
            for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * g + l]);
            scales[g] = dz_make_qkx2_quants(16, 3, x + 16 * g, weights, L + 16 * g, &mins[g], Laux, -0.5f, 0.1f,
                                            15, 1);
            if (scales[g] > max_scale) max_scale = scales[g];
            if (mins[g] > max_min) max_min = mins[g];
        }
        memset(y[b].scales, 0, sizeof y[b].scales);
        y[b].d = y[b].dmin = 0;
        if (max_scale > 0) {
            const float iscale = 15.0f / max_scale;
            for (int g = 0; g < DZ_QK_K / 16; g++)
                y[b].scales[g] = (uint8_t)dz_clamp_int(dz_nearest_int(iscale * scales[g]), 0, 15);
            y[b].d = dz_fp32_to_fp16(max_scale / 15.0f);
        }
        if (max_min > 0) {
            const float iscale = 15.0f / max_min;
            for (int g = 0; g < DZ_QK_K / 16; g++)
                y[b].scales[g] |= (uint8_t)(dz_clamp_int(dz_nearest_int(iscale * mins[g]), 0, 15) << 4);
            y[b].dmin = dz_fp32_to_fp16(max_min / 15.0f);
        }
        for (int g = 0; g < DZ_QK_K / 16; g++) {
            const float d = dz_fp16_to_fp32(y[b].d) * (y[b].scales[g] & 0x0f);
            if (!d) continue; /* keeps the levels of the search */
            const float dm = dz_fp16_to_fp32(y[b].dmin) * (y[b].scales[g] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * g + l] = (uint8_t)dz_clamp_int(dz_nearest_int((x[16 * g + l] + dm) / d), 0, 3);
        }
        pack_2bit(L, y[b].qs);
    }
}

void dz_dequantize_row_q2_K(const dz_block_q2_K *x, float *y, int64_t n) {
    int8_t q[DZ_QK_K];
    for (int64_t b = 0; b < n / DZ_QK_K; b++, y += DZ_QK_K) {
        const float d = dz_fp16_to_fp32(x[b].d), dmin = dz_fp16_to_fp32(x[b].dmin);
        dz_levels_q2_K(&x[b], q);
        for (int i = 0; i < DZ_QK_K; i++) {
            const uint8_t sc = x[b].scales[i / 16];
            const float dl = d * (sc & 0x0f), ml = dmin * (sc >> 4);
            y[i] = dl * (float)q[i] - ml;
        }
    }
}

/* ---- Q3_K: x = d * sc * q, q in -4..3, signed 6-bit scales, groups of 16 ---- */

void dz_quantize_row_q3_K(const float *x, dz_block_q3_K *y, int64_t n) {
    int8_t L[DZ_QK_K], sc[DZ_QK_K / 16];
    float scales[DZ_QK_K / 16];
    for (int64_t b = 0; b < n / DZ_QK_K; b++, x += DZ_QK_K) {
        float max_scale = 0, amax = 0;
        for (int g = 0; g < DZ_QK_K / 16; g++) {
            scales[g] = dz_make_q3_quants(16, 4, x + 16 * g, L + 16 * g);
            if (fabsf(scales[g]) > amax) {
                amax = fabsf(scales[g]);
                max_scale = scales[g];
            }
        }
        memset(y[b].scales, 0, sizeof y[b].scales);
        y[b].d = 0;
        if (max_scale != 0) {
            const float iscale = -32.0f / max_scale;
            for (int g = 0; g < DZ_QK_K / 16; g++) {
                int l = dz_clamp_int(dz_nearest_int(iscale * scales[g]), -32, 31) + 32;
                if (g < 8) y[b].scales[g] = (uint8_t)(l & 0x0f);
                else y[b].scales[g - 8] |= (uint8_t)((l & 0x0f) << 4);
                y[b].scales[8 + g % 4] |= (uint8_t)((l >> 4) << (2 * (g / 4)));
            }
            y[b].d = dz_fp32_to_fp16(1 / iscale);
        }
        dz_q3_K_scales(y[b].scales, sc);
        for (int g = 0; g < DZ_QK_K / 16; g++) {
            const float d = dz_fp16_to_fp32(y[b].d) * sc[g];
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * g + l] = (int8_t)(dz_clamp_int(dz_nearest_int(x[16 * g + l] / d), -4, 3) + 4);
        }
        /* High bit of element i: bit i / 32 of hmask[i % 32]; low bits as Q2_K. */
        uint8_t low[DZ_QK_K];
        memset(y[b].hmask, 0, sizeof y[b].hmask);
        for (int i = 0; i < DZ_QK_K; i++) {
            if (L[i] > 3) y[b].hmask[i % 32] |= (uint8_t)(1u << (i / 32));
            low[i] = (uint8_t)(L[i] & 3);
        }
        pack_2bit(low, y[b].qs);
    }
}

void dz_dequantize_row_q3_K(const dz_block_q3_K *x, float *y, int64_t n) {
    int8_t sc[DZ_QK_K / 16], q[DZ_QK_K];
    for (int64_t b = 0; b < n / DZ_QK_K; b++, y += DZ_QK_K) {
        const float d = dz_fp16_to_fp32(x[b].d);
        dz_q3_K_scales(x[b].scales, sc);
        dz_levels_q3_K(&x[b], q);
        for (int i = 0; i < DZ_QK_K; i++) y[i] = d * sc[i / 16] * (float)q[i];
    }
}

/* ---- Q4_K, Q5_K: x = d * sc * q - dmin * mn, 6-bit scales/mins, groups of 32 ---- */

/* Fits the 8 groups of one super-block with nmax levels and sets d, dmin,
 * scales; L gets the final levels (0..nmax). */
static void fit_k_groups(const float *x, int nmax, float rmin, float rdelta, int nstep, uint16_t *d_out,
                         uint16_t *dmin_out, uint8_t scales_out[DZ_K_SCALE_SIZE], uint8_t L[DZ_QK_K]) {
    uint8_t Laux[32];
    float weights[32], mins[DZ_QK_K / 32], scales[DZ_QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int g = 0; g < DZ_QK_K / 32; g++) {
        const float *xg = x + 32 * g;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xg[l] * xg[l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(xg[l]);
        scales[g] = dz_make_qkx2_quants(32, nmax, xg, weights, L + 32 * g, &mins[g], Laux, rmin, rdelta, nstep, 0);
        if (scales[g] > max_scale) max_scale = scales[g];
        if (mins[g] > max_min) max_min = mins[g];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    memset(scales_out, 0, DZ_K_SCALE_SIZE);
    for (int g = 0; g < DZ_QK_K / 32; g++) {
        int ls = dz_clamp_int(dz_nearest_int(inv_scale * scales[g]), 0, 63);
        int lm = dz_clamp_int(dz_nearest_int(inv_min * mins[g]), 0, 63);
        q4_K_pack_scale_min(scales_out, g, ls, lm);
    }
    *d_out = dz_fp32_to_fp16(max_scale / 63.0f);
    *dmin_out = dz_fp32_to_fp16(max_min / 63.0f);
    for (int g = 0; g < DZ_QK_K / 32; g++) {
        uint8_t sc, mn;
        dz_q4_K_scale_min(g, scales_out, &sc, &mn);
        const float d = dz_fp16_to_fp32(*d_out) * sc;
        if (!d) continue;
        const float dm = dz_fp16_to_fp32(*dmin_out) * mn;
        for (int l = 0; l < 32; l++)
            L[32 * g + l] = (uint8_t)dz_clamp_int(dz_nearest_int((x[32 * g + l] + dm) / d), 0, nmax);
    }
}

void dz_quantize_row_q4_K(const float *x, dz_block_q4_K *y, int64_t n) {
    uint8_t L[DZ_QK_K];
    for (int64_t b = 0; b < n / DZ_QK_K; b++, x += DZ_QK_K) {
        fit_k_groups(x, 15, -1.0f, 0.1f, 20, &y[b].d, &y[b].dmin, y[b].scales, L);
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++)
                y[b].qs[32 * p + l] = (uint8_t)(L[64 * p + l] | L[64 * p + 32 + l] << 4);
    }
}

/* Q4_K and Q5_K decode alike once the levels are unpacked. */
static void dequantize_k_groups(uint16_t d16, uint16_t dmin16, const uint8_t scales[DZ_K_SCALE_SIZE],
                                const int8_t q[DZ_QK_K], float *y) {
    const float d = dz_fp16_to_fp32(d16), dmin = dz_fp16_to_fp32(dmin16);
    for (int g = 0; g < DZ_QK_K / 32; g++) {
        uint8_t sc, mn;
        dz_q4_K_scale_min(g, scales, &sc, &mn);
        const float dl = d * sc, ml = dmin * mn;
        for (int l = 0; l < 32; l++) y[32 * g + l] = dl * (float)q[32 * g + l] - ml;
    }
}

void dz_dequantize_row_q4_K(const dz_block_q4_K *x, float *y, int64_t n) {
    int8_t q[DZ_QK_K];
    for (int64_t b = 0; b < n / DZ_QK_K; b++, y += DZ_QK_K) {
        dz_levels_q4_K(&x[b], q);
        dequantize_k_groups(x[b].d, x[b].dmin, x[b].scales, q, y);
    }
}

void dz_quantize_row_q5_K(const float *x, dz_block_q5_K *y, int64_t n) {
    uint8_t L[DZ_QK_K];
    for (int64_t b = 0; b < n / DZ_QK_K; b++, x += DZ_QK_K) {
        fit_k_groups(x, 31, -0.5f, 0.1f, 15, &y[b].d, &y[b].dmin, y[b].scales, L);
        memset(y[b].qh, 0, sizeof y[b].qh);
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++) {
                const int lo = L[64 * p + l], hi = L[64 * p + 32 + l];
                y[b].qs[32 * p + l] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
                y[b].qh[l] |= (uint8_t)((lo >> 4) << (2 * p) | (hi >> 4) << (2 * p + 1));
            }
    }
}

void dz_dequantize_row_q5_K(const dz_block_q5_K *x, float *y, int64_t n) {
    int8_t q[DZ_QK_K];
    for (int64_t b = 0; b < n / DZ_QK_K; b++, y += DZ_QK_K) {
        dz_levels_q5_K(&x[b], q);
        dequantize_k_groups(x[b].d, x[b].dmin, x[b].scales, q, y);
    }
}

/* ---- Q6_K: x = d * sc * (q - 32), int8 scales, groups of 16 ---- */

void dz_quantize_row_q6_K(const float *x, dz_block_q6_K *y, int64_t n) {
    int8_t L[DZ_QK_K];
    float scales[DZ_QK_K / 16];
    for (int64_t b = 0; b < n / DZ_QK_K; b++, x += DZ_QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int g = 0; g < DZ_QK_K / 16; g++) {
            scales[g] = dz_make_qx_quants(16, 32, x + 16 * g, L + 16 * g, 1);
            if (fabsf(scales[g]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[g]);
                max_scale = scales[g];
            }
        }
        memset(&y[b], 0, sizeof y[b]);
        if (!(max_abs_scale >= DZ_GROUP_MAX_EPS)) continue;
        const float iscale = -128.0f / max_scale;
        y[b].d = dz_fp32_to_fp16(1 / iscale);
        for (int g = 0; g < DZ_QK_K / 16; g++)
            y[b].scales[g] = (int8_t)dz_clamp_int(dz_nearest_int(iscale * scales[g]), -128, 127);
        for (int g = 0; g < DZ_QK_K / 16; g++) {
            const float d = dz_fp16_to_fp32(y[b].d) * y[b].scales[g];
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * g + l] = (int8_t)(dz_clamp_int(dz_nearest_int(x[16 * g + l] / d), -32, 31) + 32);
        }
        /* Element 128h + 32s + l: low nibble in ql[64h + 32(s & 1) + l]
         * (high half of the byte for s >= 2), top bits at 2s of qh[32h + l]. */
        for (int i = 0; i < DZ_QK_K; i++) {
            const int h = i / 128, s = i % 128 / 32, l = i % 32, q = L[i];
            y[b].ql[64 * h + 32 * (s & 1) + l] |= (uint8_t)((q & 0x0f) << (s >= 2 ? 4 : 0));
            y[b].qh[32 * h + l] |= (uint8_t)((q >> 4) << (2 * s));
        }
    }
}

void dz_dequantize_row_q6_K(const dz_block_q6_K *x, float *y, int64_t n) {
    int8_t q[DZ_QK_K];
    for (int64_t b = 0; b < n / DZ_QK_K; b++, y += DZ_QK_K) {
        const float d = dz_fp16_to_fp32(x[b].d);
        dz_levels_q6_K(&x[b], q);
        for (int i = 0; i < DZ_QK_K; i++) y[i] = d * x[b].scales[i / 16] * (float)q[i];
    }
}
