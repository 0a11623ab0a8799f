/* Scalar conversions (fp16, bf16) and the by-type entry points of the row
 * (de)quantizers (the block formats are in quant_legacy.c, quant_iq.c and
 * quant_k.c; layouts in convert.h). */
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

/* ---- by type ---- */

bool dz_type_can_dequantize(dz_type t) {
    switch (t) {
    case DZ_TYPE_F32: case DZ_TYPE_F16: case DZ_TYPE_BF16:
    case DZ_TYPE_Q8_0: case DZ_TYPE_Q4_0: case DZ_TYPE_Q4_1: case DZ_TYPE_Q5_0: case DZ_TYPE_Q5_1:
    case DZ_TYPE_IQ4_NL:
    case DZ_TYPE_Q2_K: case DZ_TYPE_Q3_K: case DZ_TYPE_Q4_K: case DZ_TYPE_Q5_K: case DZ_TYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

/* Every weight format that can be read can be written; the activation-only
 * formats Q8_1 and Q8_K have their own quantizers in convert.h. */
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
    case DZ_TYPE_Q4_1: dz_dequantize_row_q4_1(src, dst, n); return DZ_OK;
    case DZ_TYPE_Q5_0: dz_dequantize_row_q5_0(src, dst, n); return DZ_OK;
    case DZ_TYPE_Q5_1: dz_dequantize_row_q5_1(src, dst, n); return DZ_OK;
    case DZ_TYPE_IQ4_NL: dz_dequantize_row_iq4_nl(src, dst, n); return DZ_OK;
    case DZ_TYPE_Q2_K: dz_dequantize_row_q2_K(src, dst, n); return DZ_OK;
    case DZ_TYPE_Q3_K: dz_dequantize_row_q3_K(src, dst, n); return DZ_OK;
    case DZ_TYPE_Q4_K: dz_dequantize_row_q4_K(src, dst, n); return DZ_OK;
    case DZ_TYPE_Q5_K: dz_dequantize_row_q5_K(src, dst, n); return DZ_OK;
    case DZ_TYPE_Q6_K: dz_dequantize_row_q6_K(src, dst, n); return DZ_OK;
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
    case DZ_TYPE_Q4_1: dz_quantize_row_q4_1(src, dst, n); return DZ_OK;
    case DZ_TYPE_Q5_0: dz_quantize_row_q5_0(src, dst, n); return DZ_OK;
    case DZ_TYPE_Q5_1: dz_quantize_row_q5_1(src, dst, n); return DZ_OK;
    case DZ_TYPE_IQ4_NL: dz_quantize_row_iq4_nl(src, dst, n); return DZ_OK;
    case DZ_TYPE_Q2_K: dz_quantize_row_q2_K(src, dst, n); return DZ_OK;
    case DZ_TYPE_Q3_K: dz_quantize_row_q3_K(src, dst, n); return DZ_OK;
    case DZ_TYPE_Q4_K: dz_quantize_row_q4_K(src, dst, n); return DZ_OK;
    case DZ_TYPE_Q5_K: dz_quantize_row_q5_K(src, dst, n); return DZ_OK;
    case DZ_TYPE_Q6_K: dz_quantize_row_q6_K(src, dst, n); return DZ_OK;
    default:
        return dz_fail(DZ_ERR_UNSUPPORTED, "no quantizer for type %s", dz_type_name(t));
    }
}
