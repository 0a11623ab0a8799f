/* IQ4_NL: blocks of 32 with one fp16 scale and 4-bit indices into a fixed
 * table of 16 non-uniform levels (denser near zero, where weights are):
 * x = d * dz_iq4nl_values[q]. Nibbles are placed as in Q4_0.
 *
 * The quantizer is ggml's (quantize_iq4_nl, the one llama-quantize applies,
 * without an importance matrix): each element takes its nearest level for a
 * trial scale; 15 trial scales around max/127 are tried and the x^2-weighted
 * least-squares scale of the best assignment is kept. */
#include <string.h>

#include "tensor/convert.h"
#include "tensor/quant_impl.h"

const int8_t dz_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* Index of the level nearest to v (the lower one on ties). */
static int nearest_level(float v) {
    const int8_t *val = dz_iq4nl_values;
    if (v <= val[0]) return 0;
    if (v >= val[15]) return 15;
    int lo = 0, hi = 15; /* val[lo] <= v < val[hi] */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (v < val[mid]) hi = mid;
        else lo = mid;
    }
    return v - val[hi - 1] < val[hi] - v ? hi - 1 : hi;
}

/* Weighted fit of x to the levels chosen for inverse scale id:
 * sumqx = sum w q x, sumq2 = sum w q^2 with w = x^2. */
static void fit(const float *x, float id, float *sumqx, float *sumq2) {
    float sqx = 0, sq2 = 0;
    for (int j = 0; j < DZ_QK4_NL; j++) {
        const float w = x[j] * x[j];
        const float q = dz_iq4nl_values[nearest_level(id * x[j])];
        sqx += w * q * x[j];
        sq2 += w * q * q;
    }
    *sumqx = sqx;
    *sumq2 = sq2;
}

/* The scale of one block (0 for an all-zero block). */
static float block_scale(const float *x) {
    enum { NTRY = 7 };
    float amax = 0, max = 0;
    for (int j = 0; j < DZ_QK4_NL; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    if (!(amax >= DZ_GROUP_MAX_EPS)) return 0.0f;
    float sumqx, sumq2;
    fit(x, 1 / (-max / dz_iq4nl_values[0]), &sumqx, &sumq2);
    float d = sumq2 > 0 ? sumqx / sumq2 : 0.0f; /* 0 only if every x^2 underflows */
    float best = d * sumqx;
    for (int itry = -NTRY; itry <= NTRY; itry++) {
        fit(x, (itry + dz_iq4nl_values[0]) / max, &sumqx, &sumq2);
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

void dz_quantize_row_iq4_nl(const float *x, dz_block_iq4_nl *y, int64_t n) {
    for (int64_t b = 0; b < n / DZ_QK4_NL; b++, x += DZ_QK4_NL) {
        const float d = block_scale(x);
        const float id = d != 0.0f ? 1 / d : 0.0f;
        y[b].d = dz_fp32_to_fp16(d);
        for (int j = 0; j < DZ_QK4_NL / 2; j++)
            y[b].qs[j] = (uint8_t)(nearest_level(id * x[j]) | nearest_level(id * x[j + DZ_QK4_NL / 2]) << 4);
    }
}

void dz_levels_iq4_nl(const dz_block_iq4_nl *b, int8_t out[DZ_QK4_NL]) {
    for (int j = 0; j < DZ_QK4_NL / 2; j++) {
        out[j] = dz_iq4nl_values[b->qs[j] & 0x0f];
        out[j + DZ_QK4_NL / 2] = dz_iq4nl_values[b->qs[j] >> 4];
    }
}

void dz_dequantize_row_iq4_nl(const dz_block_iq4_nl *x, float *y, int64_t n) {
    int8_t q[DZ_QK4_NL];
    for (int64_t b = 0; b < n / DZ_QK4_NL; b++, y += DZ_QK4_NL) {
        const float d = dz_fp16_to_fp32(x[b].d);
        dz_levels_iq4_nl(&x[b], q);
        for (int j = 0; j < DZ_QK4_NL; j++) y[j] = d * (float)q[j];
    }
}
