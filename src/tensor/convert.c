/* Scalar conversions (fp16, bf16) and the reference row (de)quantizers.
 *
 * Block layouts are GGUF's:
 *   Q8_0: fp16 d, int8 q[32];            x = q * d
 *   Q4_0: fp16 d, uint8 nibbles[16];     x = (q - 8) * d, low nibbles hold
 *         elements 0..15 and high nibbles elements 16..31.
 * The quantizers round exactly as ggml's reference quantizer does, so files
 * and activations quantized here match llama.cpp's bit for bit. */
#include <math.h>
#include <string.h>

#include "tensor/convert.h"

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float dz_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13)); /* inf, NaN (payload kept) */
    if (exp == 0) {
        if (mant == 0) return bits_float(sign);
        /* Subnormal: mant * 2^-24, exact in float. */
        float v = (float)mant * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

uint16_t dz_fp32_to_fp16(float f) {
    uint32_t x = float_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN: quiet, top payload bits kept */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
    if (ax <= 0x33000000u) return sign;                       /* <= 2^-25 rounds to zero (tie to even) */
    uint32_t exp = ax >> 23;
    uint32_t mant = ax & 0x7fffffu;
    if (exp < 113) {
        /* Result is subnormal in fp16: units of 2^-24. */
        uint32_t m = mant | 0x800000u;
        uint32_t shift = 126 - exp; /* 14..24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t h = ((exp - 112) << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* a carry into the exponent is correct */
    return (uint16_t)(sign | h);
}

float dz_bf16_to_fp32(uint16_t h) { return bits_float((uint32_t)h << 16); }

uint16_t dz_fp32_to_bf16(float f) {
    uint32_t u = float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64); /* NaN: force quiet */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

/* ---- reference quantizers ---- */

/* (int8_t)v for v in range, saturating outside it and 0 for NaN, so that
 * garbage activations stay defined behaviour. */
static int8_t to_int8(float v) {
    if (!(v > -128.0f)) return v != v ? 0 : -128;
    if (v >= 127.0f) return 127;
    return (int8_t)v;
}

void dz_quantize_row_q8_0_with(const float *x, dz_block_q8_0 *y, int64_t n, dz_q8_rounding rounding) {
    for (int64_t b = 0; b < n / DZ_QK8_0; b++, x += DZ_QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < DZ_QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        y[b].d = dz_fp32_to_fp16(d);
        if (rounding == DZ_Q8_ROUND_REFERENCE) {
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            for (int j = 0; j < DZ_QK8_0; j++) y[b].qs[j] = to_int8(roundf(x[j] * id));
        } else {
            /* nearbyintf: ties to even in the default rounding mode. */
            const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
            for (int j = 0; j < DZ_QK8_0; j++) y[b].qs[j] = to_int8(nearbyintf(x[j] * id));
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

void dz_quantize_row_q4_0(const float *x, dz_block_q4_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / DZ_QK4_0; b++, x += DZ_QK4_0) {
        /* max: the signed value of largest magnitude (first one on ties), so
         * it maps to -8 exactly and the other side gets the extra level. */
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < DZ_QK4_0; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = dz_fp32_to_fp16(d);
        for (int j = 0; j < DZ_QK4_0 / 2; j++) {
            /* (int8_t) truncates toward zero; + 8.5 makes that rounding. */
            int lo = to_int8(x[j] * id + 8.5f), hi = to_int8(x[j + DZ_QK4_0 / 2] * id + 8.5f);
            lo = lo < 0 ? 0 : lo > 15 ? 15 : lo;
            hi = hi < 0 ? 0 : hi > 15 ? 15 : hi;
            y[b].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

void dz_dequantize_row_q4_0(const dz_block_q4_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / DZ_QK4_0; b++, y += DZ_QK4_0) {
        const float d = dz_fp16_to_fp32(x[b].d);
        for (int j = 0; j < DZ_QK4_0 / 2; j++) {
            y[j] = (float)((x[b].qs[j] & 0x0f) - 8) * d;
            y[j + DZ_QK4_0 / 2] = (float)((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

/* ---- by type ---- */

bool dz_type_can_dequantize(dz_type t) {
    switch (t) {
    case DZ_TYPE_F32: case DZ_TYPE_F16: case DZ_TYPE_BF16: case DZ_TYPE_Q8_0: case DZ_TYPE_Q4_0:
        return true;
    default:
        return false;
    }
}

bool dz_type_can_quantize(dz_type t) { return dz_type_can_dequantize(t); }

static dz_status check_row(dz_type t, int64_t n, const char *what) {
    const dz_type_traits *tt = dz_type_info((int)t);
    if (!tt) return dz_fail(DZ_ERR_ARG, "%s: unknown type id %d", what, (int)t);
    if (n < 0 || n % tt->block_size != 0)
        return dz_fail(DZ_ERR_ARG, "%s: %lld elements is not a multiple of %s's block size %d", what,
                       (long long)n, tt->name, tt->block_size);
    return DZ_OK;
}

dz_status dz_dequantize_row(dz_type t, const void *src, float *dst, int64_t n) {
    dz_status st = check_row(t, n, "dequantize");
    if (st) return st;
    switch (t) {
    case DZ_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return DZ_OK;
    case DZ_TYPE_F16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++) dst[i] = dz_fp16_to_fp32(h[i]);
        return DZ_OK;
    }
    case DZ_TYPE_BF16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++) dst[i] = dz_bf16_to_fp32(h[i]);
        return DZ_OK;
    }
    case DZ_TYPE_Q8_0: dz_dequantize_row_q8_0(src, dst, n); return DZ_OK;
    case DZ_TYPE_Q4_0: dz_dequantize_row_q4_0(src, dst, n); return DZ_OK;
    default:
        return dz_fail(DZ_ERR_UNSUPPORTED, "no dequantizer for type %s", dz_type_name(t));
    }
}

dz_status dz_quantize_row(dz_type t, const float *src, void *dst, int64_t n) {
    dz_status st = check_row(t, n, "quantize");
    if (st) return st;
    switch (t) {
    case DZ_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return DZ_OK;
    case DZ_TYPE_F16: {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++) h[i] = dz_fp32_to_fp16(src[i]);
        return DZ_OK;
    }
    case DZ_TYPE_BF16: {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++) h[i] = dz_fp32_to_bf16(src[i]);
        return DZ_OK;
    }
    case DZ_TYPE_Q8_0: dz_quantize_row_q8_0(src, dst, n); return DZ_OK;
    case DZ_TYPE_Q4_0: dz_quantize_row_q4_0(src, dst, n); return DZ_OK;
    default:
        return dz_fail(DZ_ERR_UNSUPPORTED, "no quantizer for type %s", dz_type_name(t));
    }
}
