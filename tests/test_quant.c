/* Element conversions, the reference quantizers and the reference dot
 * products: fp16/bf16 against known bit patterns and an independent
 * nearest-value search; every block format against blocks built by hand
 * from its layout description; quantize/dequantize round trips against the
 * nearest-level bound of the format (levels decoded here independently) and
 * against the error of a uniform quantizer; the activation quantizers
 * against hand-computed blocks; MUL_MAT against double-precision dots of the
 * decoded operands; garbage input and bad lengths. */
#include <stdint.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "dizuo/tensor.h"
#include "dztest.h"
#include "tensor/convert.h"

static float f_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t u_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Value of a finite, non-negative fp16 pattern, decoded from the definition. */
static double half_value(uint16_t h) {
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    return e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
}

/* Independent fp32 -> fp16: the nearest of the ordered finite values,
 * ties to the even pattern, overflow at 65520. */
static uint16_t half_reference(float f) {
    uint16_t sign = (u_of(f) >> 16) & 0x8000;
    double a = fabs((double)f);
    if (a >= 65520.0) return sign | 0x7c00;
    uint16_t lo = 0, hi = 0x7bff;
    while (lo < hi) { /* largest pattern with value <= a */
        uint16_t mid = (uint16_t)((lo + hi + 1) / 2);
        if (half_value(mid) <= a) lo = mid;
        else hi = (uint16_t)(mid - 1);
    }
    uint16_t best = lo;
    if (lo < 0x7bff || a > half_value(0x7bff)) {
        double below = a - half_value(lo), above = half_value((uint16_t)(lo + 1)) - a;
        if (above < below || (above == below && (lo & 1))) best = (uint16_t)(lo + 1);
    }
    return sign | best;
}

static void test_fp16_known(void) {
    DZT_EQ_INT(dz_fp32_to_fp16(1.0f), 0x3c00);
    DZT_EQ_INT(dz_fp32_to_fp16(-2.0f), 0xc000);
    DZT_EQ_INT(dz_fp32_to_fp16(0.1f), 0x2e66);
    DZT_EQ_INT(dz_fp32_to_fp16(-0.0f), 0x8000);
    DZT_EQ_INT(dz_fp32_to_fp16(65504.0f), 0x7bff);
    DZT_EQ_INT(dz_fp32_to_fp16(65519.996f), 0x7bff);
    DZT_EQ_INT(dz_fp32_to_fp16(65520.0f), 0x7c00); /* halfway to the next step: rounds to inf */
    DZT_EQ_INT(dz_fp32_to_fp16(1e10f), 0x7c00);
    DZT_EQ_INT(dz_fp32_to_fp16(INFINITY), 0x7c00);
    DZT_EQ_INT(dz_fp32_to_fp16(-INFINITY), 0xfc00);
    uint16_t nan = dz_fp32_to_fp16(NAN);
    DZT_CHECK((nan & 0x7c00) == 0x7c00 && (nan & 0x3ff) != 0, "NaN -> 0x%04x", nan);
    uint16_t snan = dz_fp32_to_fp16(f_of(0x7f800001u)); /* payload only in low bits: must stay NaN */
    DZT_CHECK((snan & 0x7c00) == 0x7c00 && (snan & 0x3ff) != 0, "sNaN -> 0x%04x", snan);
    /* Ties to even. */
    DZT_EQ_INT(dz_fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);
    DZT_EQ_INT(dz_fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);
    DZT_EQ_INT(dz_fp32_to_fp16(f_of(u_of(1.0f + 0x1p-11f) + 1)), 0x3c01);
    /* Subnormals. */
    DZT_EQ_INT(dz_fp32_to_fp16(0x1p-24f), 0x0001);
    DZT_EQ_INT(dz_fp32_to_fp16(0x1p-25f), 0x0000);             /* tie with 0: even */
    DZT_EQ_INT(dz_fp32_to_fp16(f_of(u_of(0x1p-25f) + 1)), 0x0001);
    DZT_EQ_INT(dz_fp32_to_fp16(3 * 0x1p-25f), 0x0002);         /* 1.5 units: even */
    DZT_EQ_INT(dz_fp32_to_fp16(1023 * 0x1p-24f), 0x03ff);
    DZT_EQ_INT(dz_fp32_to_fp16(0x1p-14f), 0x0400);
    DZT_EQ_INT(dz_fp32_to_fp16(-0x1p-24f), 0x8001);
    DZT_EQ_INT(dz_fp32_to_fp16(1e-30f), 0x0000);

    DZT_NEAR(dz_fp16_to_fp32(0x0001), 0x1p-24, 0);
    DZT_NEAR(dz_fp16_to_fp32(0x03ff), 1023 * 0x1p-24, 0);
    DZT_NEAR(dz_fp16_to_fp32(0x7bff), 65504.0, 0);
    DZT_NEAR(dz_fp16_to_fp32(0x3555), 0.333251953125, 0);
    DZT_NEAR(dz_fp16_to_fp32(0xc000), -2.0, 0);
    DZT_ASSERT(isinf(dz_fp16_to_fp32(0xfc00)) && dz_fp16_to_fp32(0xfc00) < 0);
    DZT_ASSERT(isnan(dz_fp16_to_fp32(0x7e00)));
    DZT_ASSERT(isnan(dz_fp16_to_fp32(0x7c01)));
    DZT_EQ_INT(u_of(dz_fp16_to_fp32(0x8000)), 0x80000000u);
}

static void test_fp16_exhaustive(void) {
    /* Every fp16 pattern survives a round trip; decoding matches the definition. */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaNs: checked above */
        float f = dz_fp16_to_fp32((uint16_t)h);
        double want = (h & 0x7c00) == 0x7c00 ? INFINITY : half_value(h & 0x7fff);
        if (h & 0x8000) want = -want;
        if ((double)f != want || dz_fp32_to_fp16(f) != h) bad++;
    }
    DZT_EQ_INT(bad, 0);
    /* Random floats over the whole fp16 range against the nearest-value search. */
    uint64_t state = 12345;
    bad = 0;
    for (int i = 0; i < 200000; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        /* exponents from 2^-30 to 2^17, random mantissa and sign */
        uint32_t u = (uint32_t)(state >> 32);
        uint32_t exp = 97 + (u >> 8) % 48;
        float f = f_of((u & 0x80000000u) | (exp << 23) | ((u ^ (uint32_t)state) & 0x7fffff));
        if (i % 7 == 0) f = f_of((u_of(f) & ~0xfffu) | 0x1000u); /* exact ties */
        if (dz_fp32_to_fp16(f) != half_reference(f)) {
            if (bad++ < 5)
                fprintf(stderr, "fp16(%a): 0x%04x, want 0x%04x\n", (double)f, dz_fp32_to_fp16(f), half_reference(f));
        }
    }
    DZT_EQ_INT(bad, 0);
}

static void test_bf16(void) {
    DZT_EQ_INT(dz_fp32_to_bf16(1.0f), 0x3f80);
    DZT_EQ_INT(dz_fp32_to_bf16(-2.0f), 0xc000);
    DZT_EQ_INT(dz_fp32_to_bf16(f_of(0x3f808000u)), 0x3f80); /* tie: even */
    DZT_EQ_INT(dz_fp32_to_bf16(f_of(0x3f818000u)), 0x3f82); /* tie: even (up) */
    DZT_EQ_INT(dz_fp32_to_bf16(f_of(0x3f808001u)), 0x3f81);
    DZT_EQ_INT(dz_fp32_to_bf16(f_of(0x3f807fffu)), 0x3f80);
    DZT_EQ_INT(dz_fp32_to_bf16(INFINITY), 0x7f80);
    DZT_EQ_INT(dz_fp32_to_bf16(-INFINITY), 0xff80);
    DZT_EQ_INT(dz_fp32_to_bf16(f_of(0x7f7fffffu)), 0x7f80); /* largest float rounds up to inf */
    DZT_EQ_INT(dz_fp32_to_bf16(NAN), 0x7fc0);
    DZT_EQ_INT(dz_fp32_to_bf16(f_of(0x7f800001u)), 0x7fc0); /* signalling NaN made quiet */
    DZT_EQ_INT(dz_fp32_to_bf16(f_of(0x00000001u)), 0x0000); /* float subnormals round normally */
    DZT_EQ_INT(dz_fp32_to_bf16(f_of(0x00008000u)), 0x0000);
    DZT_EQ_INT(dz_fp32_to_bf16(f_of(0x00018000u)), 0x0002);
    DZT_EQ_INT(dz_fp32_to_bf16(f_of(0x00008001u)), 0x0001);
    DZT_EQ_INT(u_of(dz_bf16_to_fp32(0x3f80)), 0x3f800000u);
    DZT_EQ_INT(u_of(dz_bf16_to_fp32(0x0001)), 0x00010000u);
    DZT_ASSERT(isnan(dz_bf16_to_fp32(0x7fc0)));
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++)
        if (!((h & 0x7f80) == 0x7f80 && (h & 0x7f)) && dz_fp32_to_bf16(dz_bf16_to_fp32((uint16_t)h)) != h) bad++;
    DZT_EQ_INT(bad, 0);
}

static void test_q8_0_known(void) {
    /* amax 127 makes d = 1 exactly, so q = roundf(x) (halves away from zero). */
    float x[32] = {127, -127, 0, 1.4f, -1.6f, 2.5f, -2.5f, 0.49f, 100.2f, -99.5f};
    for (int j = 10; j < 32; j++) x[j] = (float)(j - 20);
    const int8_t want_q[10] = {127, -127, 0, 1, -2, 3, -3, 0, 100, -100};
    uint8_t block[34];
    DZT_OK(dz_quantize_row(DZ_TYPE_Q8_0, x, block, 32));
    uint16_t d;
    memcpy(&d, block, 2);
    DZT_EQ_INT(d, 0x3c00);
    for (int j = 0; j < 10; j++) DZT_EQ_INT((int8_t)block[2 + j], want_q[j]);
    for (int j = 10; j < 32; j++) DZT_EQ_INT((int8_t)block[2 + j], j - 20);
    float back[32];
    DZT_OK(dz_dequantize_row(DZ_TYPE_Q8_0, block, back, 32));
    DZT_NEAR(back[4], -2.0, 0);
    DZT_NEAR(back[9], -100.0, 0);

    /* All zeros: d = 0 and every q = 0. */
    float zeros[32] = {0};
    DZT_OK(dz_quantize_row(DZ_TYPE_Q8_0, zeros, block, 32));
    int nonzero = 0;
    for (int j = 0; j < 34; j++) nonzero += block[j] != 0;
    DZT_EQ_INT(nonzero, 0);

    /* A hand-made block decodes as q * d. */
    uint8_t hand[34] = {0x00, 0x38}; /* d = fp16 0x3800 = 0.5 */
    for (int j = 0; j < 32; j++) hand[2 + j] = (uint8_t)(int8_t)(j - 16);
    DZT_OK(dz_dequantize_row(DZ_TYPE_Q8_0, hand, back, 32));
    for (int j = 0; j < 32; j++) DZT_NEAR(back[j], (j - 16) * 0.5, 0);
}

/* The two Q8_0 rounding rules differ exactly at ties (tensor/convert.h). */
static void test_q8_0_activation_rounding(void) {
    float x[32] = {127, 2.5f, -2.5f, 3.5f, 0.5f, -0.5f, 1.5f};
    dz_block_q8_0 ref, act;
    dz_quantize_row_q8_0_with(x, &ref, 32, DZ_Q8_ROUND_REFERENCE);
    dz_quantize_row_q8_0_with(x, &act, 32, DZ_Q8_ROUND_ACTIVATIONS);
    const int8_t want_ref[7] = {127, 3, -3, 4, 1, -1, 2}, want_act[7] = {127, 2, -2, 4, 0, 0, 2};
    for (int j = 0; j < 7; j++) {
        DZT_EQ_INT(ref.qs[j], want_ref[j]);
        DZT_EQ_INT(act.qs[j], want_act[j]);
    }
    DZT_EQ_INT(ref.d, act.d);
    /* A Q4_0-like row (multiples of a scale u, amax 8u): x * 127/amax = k * 15.875,
     * 63.5 at k = 4, which both rules take to 64 (even, and away from zero). */
    float y[32];
    for (int j = 0; j < 32; j++) y[j] = (float)((j % 17) - 8) * 0.013f;
    dz_quantize_row_q8_0_with(y, &ref, 32, DZ_Q8_ROUND_REFERENCE);
    dz_quantize_row_q8_0_with(y, &act, 32, DZ_Q8_ROUND_ACTIVATIONS);
    DZT_EQ_INT(act.qs[0], -127);
    DZT_EQ_INT(act.qs[12], 64);
    DZT_EQ_INT(act.qs[4], -64);
    DZT_EQ_INT(act.qs[9], 16);
}

static void test_q4_0_known(void) {
    /* max (signed, largest magnitude) = -8 -> d = 1, q = x + 8. */
    float x[32];
    for (int j = 0; j < 16; j++) x[j] = (float)(j - 8);
    for (int j = 0; j < 16; j++) x[16 + j] = (float)(7 - j);
    uint8_t block[18];
    DZT_OK(dz_quantize_row(DZ_TYPE_Q4_0, x, block, 32));
    uint16_t d;
    memcpy(&d, block, 2);
    DZT_EQ_INT(d, 0x3c00);
    for (int j = 0; j < 16; j++) DZT_EQ_INT(block[2 + j], j | ((15 - j) << 4));
    float back[32];
    DZT_OK(dz_dequantize_row(DZ_TYPE_Q4_0, block, back, 32));
    for (int j = 0; j < 32; j++) DZT_NEAR(back[j], x[j], 0);

    /* Positive max: d = 8 / -8 = -1; q = 8.5 - x truncated, capped at 15. */
    float y[32] = {8, -7, -8, 0.3f, 1.0f};
    DZT_OK(dz_quantize_row(DZ_TYPE_Q4_0, y, block, 32));
    memcpy(&d, block, 2);
    DZT_EQ_INT(d, 0xbc00);
    DZT_EQ_INT(block[2] & 0x0f, 0);  /* 8 -> 0.5 -> 0 */
    DZT_EQ_INT(block[3] & 0x0f, 15); /* -7 -> 15.5 -> 15 */
    DZT_EQ_INT(block[4] & 0x0f, 15); /* -8 -> 16.5 -> 16 -> capped */
    DZT_EQ_INT(block[5] & 0x0f, 8);  /* 0.3 -> 8.2 -> 8 */
    DZT_EQ_INT(block[6] & 0x0f, 7);  /* 1 -> 7.5 -> 7 */
    DZT_EQ_INT(block[2] >> 4, 8);    /* element 16 = 0 -> 8 */

    /* Hand-made: d = 2, nibble q -> (q - 8) * 2; low nibbles first half. */
    uint8_t hand[18] = {0x00, 0x40};
    for (int j = 0; j < 16; j++) hand[2 + j] = (uint8_t)(j | (3 << 4));
    DZT_OK(dz_dequantize_row(DZ_TYPE_Q4_0, hand, back, 32));
    for (int j = 0; j < 16; j++) DZT_NEAR(back[j], (j - 8) * 2.0, 0);
    for (int j = 16; j < 32; j++) DZT_NEAR(back[j], -10.0, 0);
}

/* ---- hand-built blocks of the other formats ---- */

static const dz_type quant_types[] = {DZ_TYPE_Q8_0, DZ_TYPE_Q4_0, DZ_TYPE_Q4_1, DZ_TYPE_Q5_0,
                                      DZ_TYPE_Q5_1, DZ_TYPE_IQ4_NL, DZ_TYPE_Q2_K, DZ_TYPE_Q3_K,
                                      DZ_TYPE_Q4_K, DZ_TYPE_Q5_K, DZ_TYPE_Q6_K};
enum { N_QUANT_TYPES = sizeof quant_types / sizeof quant_types[0] };

/* fp16 patterns used below. */
enum { H_1 = 0x3c00, H_0_5 = 0x3800, H_0_25 = 0x3400, H_2 = 0x4000, H_M1 = 0xbc00 };

/* IQ4_NL's 16 levels (a fact of the format). */
static const int iq4nl_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

static void test_blocks_32(void) {
    float y[32];
    /* Q4_1: x = q * d + m; low nibbles are elements 0..15. */
    dz_block_q4_1 b41 = {.d = H_0_5, .m = H_M1};
    for (int j = 0; j < 16; j++) b41.qs[j] = (uint8_t)(j | (15 - j) << 4);
    DZT_OK(dz_dequantize_row(DZ_TYPE_Q4_1, &b41, y, 32));
    for (int j = 0; j < 16; j++) {
        DZT_NEAR(y[j], j * 0.5 - 1, 0);
        DZT_NEAR(y[16 + j], (15 - j) * 0.5 - 1, 0);
    }
    /* Q5_0/Q5_1: bit j of qh (little-endian) is element j's 5th bit:
     * 0x1111AAAA sets it for odd j < 16 and for j = 16, 20, 24, 28. */
    const uint8_t qh[4] = {0xAA, 0xAA, 0x11, 0x11};
    dz_block_q5_0 b50 = {.d = H_1};
    dz_block_q5_1 b51 = {.d = H_0_25, .m = H_2};
    memcpy(b50.qh, qh, 4);
    memcpy(b51.qh, qh, 4);
    for (int j = 0; j < 16; j++) b50.qs[j] = b51.qs[j] = (uint8_t)(j | (15 - j) << 4);
    float y51[32];
    DZT_OK(dz_dequantize_row(DZ_TYPE_Q5_0, &b50, y, 32));
    DZT_OK(dz_dequantize_row(DZ_TYPE_Q5_1, &b51, y51, 32));
    for (int j = 0; j < 32; j++) {
        int nib = j < 16 ? j : 15 - (j - 16);
        int high = j < 16 ? j % 2 : j % 4 == 0;
        int level = nib + 16 * high;
        DZT_NEAR(y[j], level - 16, 0);
        DZT_NEAR(y51[j], level * 0.25 + 2, 0);
    }
    DZT_NEAR(y[1], -15 + 16, 0); /* element 1: nibble 1 + 16 - 16 */
    DZT_NEAR(y[16], 15, 0);      /* element 16: nibble 15, 5th bit set: 31 - 16 */
    /* IQ4_NL: x = d * levels[nibble]. */
    dz_block_iq4_nl bnl = {.d = H_2};
    for (int j = 0; j < 16; j++) bnl.qs[j] = (uint8_t)(j | ((j + 5) % 16) << 4);
    DZT_OK(dz_dequantize_row(DZ_TYPE_IQ4_NL, &bnl, y, 32));
    for (int j = 0; j < 16; j++) {
        DZT_NEAR(y[j], 2.0 * iq4nl_levels[j], 0);
        DZT_NEAR(y[16 + j], 2.0 * iq4nl_levels[(j + 5) % 16], 0);
    }
}

static void test_blocks_k(void) {
    float y[256];
    /* Q2_K, d = 1, dmin = 0.5, group g has scale g and min 15 - g:
     * x = g * q - 0.5 * (15 - g). qs[0] = 0b11100100 holds levels 0..3 of
     * elements 0, 32, 64, 96; qs[37] = 3 is element 128 + 5's level. */
    dz_block_q2_K q2 = {.d = H_1, .dmin = H_0_5};
    for (int g = 0; g < 16; g++) q2.scales[g] = (uint8_t)(g | (15 - g) << 4);
    q2.qs[0] = 0xE4;
    q2.qs[37] = 0x03;
    DZT_OK(dz_dequantize_row(DZ_TYPE_Q2_K, &q2, y, 256));
    DZT_NEAR(y[0], -7.5, 0);  /* g 0, q 0 */
    DZT_NEAR(y[32], -4.5, 0); /* g 2, q 1: 2 - 6.5 */
    DZT_NEAR(y[64], 2.5, 0);  /* g 4, q 2: 8 - 5.5 */
    DZT_NEAR(y[96], 13.5, 0); /* g 6, q 3: 18 - 4.5 */
    DZT_NEAR(y[133], 20.5, 0); /* g 8, q 3: 24 - 3.5 */
    int bad = 0;
    for (int i = 0; i < 256; i++)
        if (i != 32 && i != 64 && i != 96 && i != 133) bad += y[i] != -0.5f * (15 - i / 16);
    DZT_EQ_INT(bad, 0);

    /* Q3_K, d = 0.5. Scale of group 0 is 5 (stored 37 = 0b100101: low nibble
     * 5 in scales[0], top bits 2 in scales[8] bits 0-1); group 9 is -3 (29 =
     * 0b011101: low nibble 13 in the high half of scales[1], top bits 1 in
     * scales[9] bits 4-5); the others store 0, i.e. -32. q = low 2 bits +
     * 4 * high bit - 4, so a zero element is -4. */
    dz_block_q3_K q3 = {.d = H_0_5};
    q3.scales[0] = 0x05;
    q3.scales[1] = 0xD0;
    q3.scales[8] = 0x02;
    q3.scales[9] = 0x10;
    q3.qs[0] = 0x03;    /* element 0: low bits 3 */
    q3.hmask[0] = 0x01; /* element 0: high bit (bit 0 of hmask[0]) */
    q3.qs[48] = 0x02;   /* element 144 = 128 + 16: low bits 2 */
    q3.hmask[16] = 0x10; /* element 144: bit 144 / 32 = 4 of hmask[144 % 32] */
    DZT_OK(dz_dequantize_row(DZ_TYPE_Q3_K, &q3, y, 256));
    DZT_NEAR(y[0], 7.5, 0);   /* 0.5 * 5 * 3 */
    DZT_NEAR(y[1], -10, 0);   /* 0.5 * 5 * -4 */
    DZT_NEAR(y[144], -3, 0);  /* 0.5 * -3 * 2 */
    DZT_NEAR(y[150], 6, 0);   /* 0.5 * -3 * -4 */
    DZT_NEAR(y[200], 64, 0);  /* 0.5 * -32 * -4 */
    bad = 0;
    for (int i = 0; i < 256; i++) {
        if (i == 0 || i == 144) continue;
        float want = i / 16 == 0 ? -10.0f : i / 16 == 9 ? 6.0f : 64.0f;
        bad += y[i] != want;
    }
    DZT_EQ_INT(bad, 0);

    /* Q4_K, d = 1, dmin = 0.25. Group 0: scale 10, min 3 (scales[0], [4]).
     * Group 5: scale 40 = 0b101000, min 50 = 0b110010: low nibbles in
     * scales[9] = 0x28, top bits in bits 6-7 of scales[1] (2) and scales[5]
     * (3). Element 0 is qs[0]'s low nibble; element 161 = 64 * 2 + 32 + 1 is
     * qs[65]'s high nibble. */
    dz_block_q4_K q4 = {.d = H_1, .dmin = H_0_25};
    q4.scales[0] = 10;
    q4.scales[4] = 3;
    q4.scales[9] = 0x28;
    q4.scales[1] = 0x80;
    q4.scales[5] = 0xC0;
    q4.qs[0] = 0x07;
    q4.qs[65] = 0x90;
    DZT_OK(dz_dequantize_row(DZ_TYPE_Q4_K, &q4, y, 256));
    DZT_NEAR(y[0], 69.25, 0);  /* 10 * 7 - 0.25 * 3 */
    DZT_NEAR(y[1], -0.75, 0);
    DZT_NEAR(y[161], 347.5, 0); /* 40 * 9 - 0.25 * 50 */
    DZT_NEAR(y[160], -12.5, 0);
    DZT_NEAR(y[32], 0, 0);     /* group 1: scale and min 0 (the top bits above are not its) */
    DZT_NEAR(y[129], 0, 0);    /* qs[65]'s low nibble is 0 in group 4, scale 0 */
    /* Q5_K: the same, plus 5th bits: element 0 is bit 0 of qh[0], element
     * 161 bit 5 (its group) of qh[1]. */
    dz_block_q5_K q5 = {.d = H_1, .dmin = H_0_25};
    memcpy(q5.scales, q4.scales, sizeof q5.scales);
    q5.qs[0] = 0x07;
    q5.qs[65] = 0x90;
    q5.qh[0] = 0x01;
    q5.qh[1] = 0x20;
    DZT_OK(dz_dequantize_row(DZ_TYPE_Q5_K, &q5, y, 256));
    DZT_NEAR(y[0], 229.25, 0);  /* 10 * 23 - 0.75 */
    DZT_NEAR(y[161], 987.5, 0); /* 40 * 25 - 12.5 */
    DZT_NEAR(y[33], 0, 0);

    /* Q6_K, d = 0.5, int8 scales -3 (group 0), 2 (group 5), 7 (group 11);
     * q = low nibble + 16 * 2 top bits - 32. Element 0: ql[0] low 5, qh[0]
     * bits 0-1 = 2 -> 37 - 32 = 5. Element 80 (half 0, s = 2, l = 16): ql[16]
     * high nibble 15, qh[16] bits 4-5 = 1 -> 31 - 32 = -1. Element 176 (half
     * 1, s = 1, l = 16): ql[112] low nibble 10, qh[48] bits 2-3 = 3 -> 26. */
    dz_block_q6_K q6 = {.d = H_0_5};
    q6.scales[0] = -3;
    q6.scales[5] = 2;
    q6.scales[11] = 7;
    q6.ql[0] = 0x05;
    q6.qh[0] = 0x02;
    q6.ql[16] = 0xF0;
    q6.qh[16] = 0x10;
    q6.ql[112] = 0x0A;
    q6.qh[48] = 0x0C;
    DZT_OK(dz_dequantize_row(DZ_TYPE_Q6_K, &q6, y, 256));
    DZT_NEAR(y[0], -7.5, 0);
    DZT_NEAR(y[80], -1, 0);
    DZT_NEAR(y[176], 91, 0);
    bad = 0;
    for (int i = 0; i < 256; i++) {
        if (i == 0 || i == 80 || i == 176) continue;
        float want = i / 16 == 0 ? 48.0f : i / 16 == 5 ? -32.0f : i / 16 == 11 ? -112.0f : 0.0f;
        bad += y[i] != want;
    }
    DZT_EQ_INT(bad, 0);
}

/* ---- activation quantizers ---- */

static void test_activations(void) {
    /* Q8_1: amax 127 makes d = 1: q = x rounded half to even, s = sum(q). */
    float x[256] = {127, 2.5f, -2.5f, 3.5f, 0.5f, -1.25f, 100};
    dz_block_q8_1 b1;
    dz_quantize_row_q8_1(x, &b1, 32);
    const int want1[7] = {127, 2, -2, 4, 0, -1, 100};
    for (int j = 0; j < 7; j++) DZT_EQ_INT(b1.qs[j], want1[j]);
    DZT_EQ_INT(b1.d, H_1);
    DZT_NEAR(dz_fp16_to_fp32(b1.s), 230, 0); /* 127 + 2 - 2 + 4 + 0 - 1 + 100 */
    /* s is d * sum(q) with the unrounded d: amax 1 -> d = 1/127, sum 127 + 127. */
    float ones[32];
    for (int j = 0; j < 32; j++) ones[j] = j < 2 ? 1.0f : 0.0f;
    dz_quantize_row_q8_1(ones, &b1, 32);
    DZT_EQ_INT(b1.s, dz_fp32_to_fp16(254.0f * (1.0f / 127.0f)));
    DZT_EQ_INT(b1.d, dz_fp32_to_fp16(1.0f / 127.0f));

    /* Q8_K: iscale = -127 / max with max the signed value of largest
     * magnitude. max = -127 gives iscale 1, d = 1, q = x rounded half even. */
    for (int i = 0; i < 256; i++) x[i] = (float)((i * 37) % 101 - 50) + (i % 5 == 0 ? 0.5f : 0.0f);
    x[7] = -127;
    dz_block_q8_K bk;
    dz_quantize_row_q8_K(x, &bk, 256);
    DZT_NEAR(bk.d, 1, 0);
    int bad = 0;
    for (int i = 0; i < 256; i++) bad += bk.qs[i] != (int)nearbyint(x[i]);
    DZT_EQ_INT(bad, 0);
    for (int g = 0; g < 16; g++) {
        int sum = 0;
        for (int j = 0; j < 16; j++) sum += (int)nearbyint(x[16 * g + j]);
        DZT_EQ_INT(bk.bsums[g], sum);
    }
    /* max = +127: iscale = -1, d = -1, q = -x. */
    x[7] = 127;
    dz_quantize_row_q8_K(x, &bk, 256);
    DZT_NEAR(bk.d, -1, 0);
    DZT_EQ_INT(bk.qs[7], -127);
    DZT_EQ_INT(bk.qs[5], -(int)nearbyint(x[5]));
    /* All zeros: d = 0, q = 0. */
    memset(x, 0, sizeof x);
    dz_quantize_row_q8_K(x, &bk, 256);
    DZT_NEAR(bk.d, 0, 0);
    bad = 0;
    for (int i = 0; i < 256; i++) bad += bk.qs[i] != 0;
    DZT_EQ_INT(bad, 0);
}

/* ---- round trips: every element at the nearest level of its group ---- */

typedef struct group_levels {
    double step, offset; /* level q decodes to offset + step * q */
    int qmin, qmax;
} group_levels;

/* The levels of group g (elements g * size ..) of block blk, decoded here
 * from the layout descriptions independently of the library. */
static group_levels levels_of(dz_type t, const uint8_t *blk, int g) {
    uint16_t h0, h1;
    memcpy(&h0, blk, 2);
    memcpy(&h1, blk + 2, 2);
    const double d0 = dz_fp16_to_fp32(h0), d1 = dz_fp16_to_fp32(h1);
    switch (t) {
    case DZ_TYPE_Q8_0: return (group_levels){d0, 0, -128, 127};
    case DZ_TYPE_Q4_0: return (group_levels){d0, -8 * d0, 0, 15};
    case DZ_TYPE_Q5_0: return (group_levels){d0, -16 * d0, 0, 31};
    case DZ_TYPE_Q4_1: return (group_levels){d0, d1, 0, 15};
    case DZ_TYPE_Q5_1: return (group_levels){d0, d1, 0, 31};
    case DZ_TYPE_Q2_K: { /* scales[16] qs[64] d dmin */
        uint16_t d, dmin;
        memcpy(&d, blk + 80, 2);
        memcpy(&dmin, blk + 82, 2);
        uint8_t sc = blk[g];
        return (group_levels){dz_fp16_to_fp32(d) * (sc & 15), -(double)dz_fp16_to_fp32(dmin) * (sc >> 4), 0, 3};
    }
    case DZ_TYPE_Q3_K: { /* hmask[32] qs[64] scales[12] d */
        uint16_t d;
        memcpy(&d, blk + 108, 2);
        const uint8_t *s = blk + 96;
        int lo = g < 8 ? s[g] & 15 : s[g - 8] >> 4, hi = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
        return (group_levels){dz_fp16_to_fp32(d) * ((lo | hi << 4) - 32), 0, -4, 3};
    }
    case DZ_TYPE_Q4_K:
    case DZ_TYPE_Q5_K: { /* d dmin scales[12] ... */
        const uint8_t *s = blk + 4;
        int sc = g < 4 ? s[g] & 63 : (s[g + 4] & 15) | (s[g - 4] >> 6) << 4;
        int mn = g < 4 ? s[g + 4] & 63 : (s[g + 4] >> 4) | (s[g] >> 6) << 4;
        return (group_levels){d0 * sc, -d1 * mn, 0, t == DZ_TYPE_Q4_K ? 15 : 31};
    }
    case DZ_TYPE_Q6_K: { /* ql[128] qh[64] scales[16] d */
        uint16_t d;
        memcpy(&d, blk + 208, 2);
        return (group_levels){dz_fp16_to_fp32(d) * (int8_t)blk[192 + g], 0, -32, 31};
    }
    default: return (group_levels){0, 0, 0, 0};
    }
}

/* A standard normal sample (Box-Muller on a 64-bit LCG). */
static double next_gauss(uint64_t *state) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    double u1 = ((double)(*state >> 11) + 0.5) / 9007199254740992.0;
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    double u2 = (double)(*state >> 11) / 9007199254740992.0;
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Rows of different character, by super-block: scales from 0.01 to 100,
 * one-signed, constant, sparse with outliers, all zero. */
static void fill_rows(float *x, int64_t n, uint64_t seed) {
    uint64_t state = seed;
    for (int64_t i = 0; i < n; i++) {
        double g = next_gauss(&state);
        int64_t blk = i / 256;
        double scale = pow(10.0, (double)(blk % 5) - 2);
        switch (blk % 8) {
        case 5: g = fabs(g); break;
        case 6: g = 0.75; break;
        case 7: g = i % 97 == 0 ? 40 * g : (i % 3 == 0 ? 0 : g); break;
        default: break;
        }
        x[i] = blk % 16 == 9 ? 0.0f : (float)(g * scale);
    }
}

/* Checks every element of a quantize/dequantize round trip of type t: within
 * half a step of its group's levels (plus the distance to the nearest level
 * when outside their range, plus the fp16 rounding of scales chosen before
 * rounding). Returns the NMSE of the row. */
static double check_round_trip(dz_type t, const float *x, int64_t n) {
    const dz_type_traits *tt = dz_type_info((int)t);
    const int group = t == DZ_TYPE_Q4_K || t == DZ_TYPE_Q5_K ? 32 : tt->block_size == 256 ? 16 : 32;
    uint8_t *q = malloc((size_t)(n / tt->block_size) * tt->type_size);
    float *y = malloc((size_t)n * sizeof *y);
    DZT_OK(dz_quantize_row(t, x, q, n));
    DZT_OK(dz_dequantize_row(t, q, y, n));
    double num = 0, den = 0;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *blk = q + (size_t)(i / tt->block_size) * tt->type_size;
        const int g = (int)(i % tt->block_size) / group;
        double lo, hi, half_gap, slack;
        if (t == DZ_TYPE_IQ4_NL) {
            uint16_t h;
            memcpy(&h, blk, 2);
            double d = dz_fp16_to_fp32(h);
            lo = fmin(d * iq4nl_levels[0], d * iq4nl_levels[15]);
            hi = fmax(d * iq4nl_levels[0], d * iq4nl_levels[15]);
            half_gap = 12 * fabs(d); /* the widest gap between levels is 24 */
            slack = 127 * fabs(d) * 0x1p-10;
        } else {
            group_levels L = levels_of(t, blk, g);
            double a = L.offset + L.step * L.qmin, b = L.offset + L.step * L.qmax;
            lo = fmin(a, b);
            hi = fmax(a, b);
            half_gap = fabs(L.step) / 2;
            slack = (fabs(L.step) * (abs(L.qmin) > L.qmax ? abs(L.qmin) : L.qmax) + fabs(L.offset)) * 0x1p-10;
        }
        const double xi = x[i], err = fabs((double)y[i] - xi);
        const double outside = xi < lo ? lo - xi : xi > hi ? xi - hi : 0;
        if (err > half_gap + outside + slack + 1e-6 * fabs(xi) + 1e-30) {
            if (bad++ < 3)
                fprintf(stderr, "%s element %lld: x %.9g -> %.9g, levels [%g, %g] step/2 %g\n", tt->name,
                        (long long)i, xi, y[i], lo, hi, half_gap);
        }
        num += (y[i] - xi) * (y[i] - xi);
        den += xi * xi;
    }
    DZT_CHECK(bad == 0, "%s: %d elements off their nearest level", tt->name, bad);
    free(q);
    free(y);
    return num / den;
}

static void test_round_trips(void) {
    enum { N = 256 * 64 };
    float *x = malloc(N * sizeof *x), *gauss = malloc(N * sizeof *gauss);
    fill_rows(x, N, 99);
    /* Unit gaussian rows, for the quality figures. */
    uint64_t state = 2024;
    for (int64_t i = 0; i < N; i++) gauss[i] = (float)next_gauss(&state);
    /* Quality on unit gaussian data, against the error of a uniform
     * quantizer: step D gives error variance D^2/12. Over a group, D is the
     * range over the number of steps: a symmetric format spans the largest
     * magnitude, about 2.2 for 32 samples and 1.77 for 16, with its steps per
     * side; an asymmetric one the max - min, about 4.1 for 32 and 3.5 for 16.
     * The limit is 1.6x that estimate (fp16 and quantized group scales cost
     * a little; the scale searches win some back). */
    struct { dz_type t; double range, steps; } cases[] = {
        {DZ_TYPE_Q8_0, 2.2, 127}, {DZ_TYPE_Q4_0, 2.2, 8},   {DZ_TYPE_Q4_1, 4.1, 15}, {DZ_TYPE_Q5_0, 2.2, 16},
        {DZ_TYPE_Q5_1, 4.1, 31},  {DZ_TYPE_IQ4_NL, 2.2, 8}, {DZ_TYPE_Q2_K, 3.5, 3},  {DZ_TYPE_Q3_K, 1.77, 4},
        {DZ_TYPE_Q4_K, 4.1, 15},  {DZ_TYPE_Q5_K, 4.1, 31},  {DZ_TYPE_Q6_K, 1.77, 32},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        check_round_trip(cases[c].t, x, N);
        const double step = cases[c].range / cases[c].steps, limit = 1.6 * step * step / 12;
        double nmse = check_round_trip(cases[c].t, gauss, N);
        printf("  %-7s gaussian NMSE %.2e (limit %.2e)\n", dz_type_name(cases[c].t), nmse, limit);
        DZT_CHECK(nmse <= limit, "%s: NMSE %.3e on gaussian data", dz_type_name(cases[c].t), nmse);
    }
    /* F16 and BF16 rows: relative error at most half an ulp of the format. */
    uint8_t *q = malloc(N * 2);
    float *back = malloc(N * sizeof *back);
    DZT_OK(dz_quantize_row(DZ_TYPE_F16, gauss, q, N));
    DZT_OK(dz_dequantize_row(DZ_TYPE_F16, q, back, N));
    int bad = 0;
    for (int i = 0; i < N; i++) bad += fabs(back[i] - gauss[i]) > fabs(gauss[i]) * 0x1p-11 + 0x1p-25;
    DZT_EQ_INT(bad, 0);
    DZT_OK(dz_quantize_row(DZ_TYPE_BF16, gauss, q, N));
    DZT_OK(dz_dequantize_row(DZ_TYPE_BF16, q, back, N));
    bad = 0;
    for (int i = 0; i < N; i++) bad += fabs(back[i] - gauss[i]) > fabs(gauss[i]) * 0x1p-8;
    DZT_EQ_INT(bad, 0);
    free(q);
    free(back);
    free(x);
    free(gauss);
}

/* Garbage in (NaN, infinities, huge and tiny values): every quantizer and
 * activation quantizer must stay defined behaviour (the sanitizer build
 * checks float-to-int conversions) and produce some block. */
static void test_garbage(void) {
    const float odd[7] = {NAN, INFINITY, -INFINITY, 3e38f, 1e-42f, -0.0f, 5.0f};
    float x[512], back[512], big[256];
    for (int i = 0; i < 512; i++) x[i] = i % 7 == 6 ? (float)(i - 256) : odd[i % 7];
    for (int i = 0; i < 256; i++) big[i] = (i % 2 ? 1 : -1) * 6e4f * (float)(i % 7 + 1) / 7;
    static uint8_t out[2048];
    for (size_t t = 0; t < N_QUANT_TYPES; t++) {
        DZT_OK(dz_quantize_row(quant_types[t], x, out, 512));
        DZT_OK(dz_dequantize_row(quant_types[t], out, back, 512));
        /* Huge but finite values decode to finite values of their size. */
        DZT_OK(dz_quantize_row(quant_types[t], big, out, 256));
        DZT_OK(dz_dequantize_row(quant_types[t], out, back, 256));
        int finite = 1;
        for (int i = 0; i < 256; i++) finite &= isfinite(back[i]) && fabsf(back[i]) < 1.5e5f;
        DZT_CHECK(finite, "%s: values up to 6e4 decode to non-finite ones", dz_type_name(quant_types[t]));
    }
    dz_block_q8_0 b0[16];
    dz_block_q8_1 b1[16];
    dz_block_q8_K bk[2];
    dz_quantize_row_q8_0_with(x, b0, 512, DZ_Q8_ROUND_ACTIVATIONS);
    dz_quantize_row_q8_1(x, b1, 512);
    dz_quantize_row_q8_K(x, bk, 512);
}

static void test_support_and_errors(void) {
    const dz_type plain[3] = {DZ_TYPE_F32, DZ_TYPE_F16, DZ_TYPE_BF16};
    for (size_t i = 0; i < N_QUANT_TYPES + 3; i++) { /* the 14 weight formats */
        dz_type t = i < N_QUANT_TYPES ? quant_types[i] : plain[i - N_QUANT_TYPES];
        DZT_CHECK(dz_type_can_dequantize(t) && dz_type_can_quantize(t), "%s", dz_type_name(t));
    }
    const dz_type no[] = {DZ_TYPE_IQ2_XXS, DZ_TYPE_IQ4_XS, DZ_TYPE_Q8_1, DZ_TYPE_Q8_K, DZ_TYPE_TQ1_0, DZ_TYPE_I32};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        DZT_CHECK(!dz_type_can_dequantize(no[i]), "%s", dz_type_name(no[i]));
        DZT_CHECK(!dz_type_can_quantize(no[i]), "%s", dz_type_name(no[i]));
    }
    DZT_ASSERT(!dz_type_can_dequantize((dz_type)4)); /* a retired id */
    float x[512] = {0};
    uint8_t out[1024];
    DZT_FAILS(dz_quantize_row(DZ_TYPE_Q8_0, x, out, 33), DZ_ERR_ARG);
    DZT_ASSERT(strstr(dz_last_error(), "Q8_0") != NULL);
    /* Lengths that are not whole blocks, each type: refused, naming it. */
    const struct { dz_type t; int64_t n; } bad_len[] = {
        {DZ_TYPE_Q4_1, 48}, {DZ_TYPE_Q5_0, 31}, {DZ_TYPE_Q5_1, 1}, {DZ_TYPE_IQ4_NL, 40}, {DZ_TYPE_Q2_K, 255},
        {DZ_TYPE_Q3_K, 128}, {DZ_TYPE_Q4_K, 288}, {DZ_TYPE_Q5_K, 500}, {DZ_TYPE_Q6_K, 32}, {DZ_TYPE_Q4_K, -256},
    };
    for (size_t i = 0; i < sizeof bad_len / sizeof bad_len[0]; i++) {
        memset(out, 0xA5, sizeof out);
        DZT_FAILS(dz_quantize_row(bad_len[i].t, x, out, bad_len[i].n), DZ_ERR_ARG);
        DZT_CHECK(strstr(dz_last_error(), dz_type_name(bad_len[i].t)) != NULL, "message '%s'", dz_last_error());
        DZT_EQ_INT(out[0], 0xA5); /* nothing written */
        DZT_FAILS(dz_dequantize_row(bad_len[i].t, out, x, bad_len[i].n), DZ_ERR_ARG);
    }
    DZT_OK(dz_quantize_row(DZ_TYPE_Q6_K, x, out, 0)); /* no blocks: nothing to do */
    DZT_FAILS(dz_dequantize_row(DZ_TYPE_IQ2_XXS, out, x, 0), DZ_ERR_UNSUPPORTED);
    DZT_ASSERT(strstr(dz_last_error(), "IQ2_XXS") != NULL);
    DZT_FAILS(dz_quantize_row(DZ_TYPE_Q8_K, x, out, 256), DZ_ERR_UNSUPPORTED);
    DZT_FAILS(dz_quantize_row((dz_type)5, x, out, 32), DZ_ERR_ARG);
}

/* ---- the reference dot products, through MUL_MAT ----
 * out[m][n] must be the dot of W row n as stored (decoded) with X row m
 * quantized to the weights' dot type (Q8_0, Q8_1 or Q8_K, as decoded), up to
 * float accumulation: |error| <= 2^-20 * sum |w_k x_k|. Q8_1 carries each
 * block's sum as s = fp16(d * sum q), and Q4_1/Q5_1's minimum m multiplies
 * that: the block's part of the dot is sum (w_k - m) x_k + m s. */

static dz_type dot_type_for(dz_type w) {
    if (w == DZ_TYPE_Q4_1 || w == DZ_TYPE_Q5_1) return DZ_TYPE_Q8_1;
    if (dz_type_info((int)w)->block_size == 256) return DZ_TYPE_Q8_K;
    return DZ_TYPE_Q8_0;
}

/* X row (k floats) as the dot sees it: quantized and decoded; for Q8_1 also
 * each block's s. */
static void activation_as_seen(dz_type dot_t, const float *x, float *out, float *block_s, int64_t k) {
    if (dot_t == DZ_TYPE_Q8_K) {
        dz_block_q8_K b[8]; /* up to K = 2048 */
        dz_quantize_row_q8_K(x, b, k);
        for (int64_t i = 0; i < k; i++) out[i] = b[i / 256].d * b[i / 256].qs[i % 256];
        for (int64_t blk = 0; blk < k / 256; blk++)
            for (int g = 0; g < 16; g++) {
                int sum = 0;
                for (int j = 0; j < 16; j++) sum += b[blk].qs[16 * g + j];
                DZT_EQ_INT(b[blk].bsums[g], sum);
            }
    } else if (dot_t == DZ_TYPE_Q8_1) {
        dz_block_q8_1 b[64];
        dz_quantize_row_q8_1(x, b, k);
        for (int64_t i = 0; i < k; i++) out[i] = dz_fp16_to_fp32(b[i / 32].d) * b[i / 32].qs[i % 32];
        for (int64_t blk = 0; blk < k / 32; blk++) block_s[blk] = dz_fp16_to_fp32(b[blk].s);
    } else {
        dz_block_q8_0 b[64];
        dz_quantize_row_q8_0_with(x, b, k, DZ_Q8_ROUND_ACTIVATIONS);
        for (int64_t i = 0; i < k; i++) out[i] = dz_fp16_to_fp32(b[i / 32].d) * b[i / 32].qs[i % 32];
    }
}

static void check_dots(dz_type wt, int64_t K, int64_t N, int64_t M) {
    const dz_type_traits *tt = dz_type_info((int)wt);
    const size_t row_bytes = (size_t)(K / tt->block_size) * tt->type_size;
    float *wf = malloc((size_t)(K * N) * sizeof *wf), *xf = malloc((size_t)(K * M) * sizeof *xf);
    float *wrow = malloc((size_t)K * sizeof *wrow), *xrow = malloc((size_t)K * sizeof *xrow);
    float *out = malloc((size_t)(N * M) * sizeof *out), block_s[64];
    uint8_t *wq = malloc(row_bytes * (size_t)N);
    fill_rows(wf, K * N, 5 + (uint64_t)wt);
    uint64_t state = 77;
    for (int64_t i = 0; i < K * M; i++) xf[i] = (float)next_gauss(&state) * (i % 5 ? 1.0f : 3.0f);
    for (int64_t n = 0; n < N; n++) DZT_OK(dz_quantize_row(wt, wf + n * K, wq + (size_t)n * row_bytes, K));
    dz_ctx *ctx = dz_ctx_create(8);
    dz_tensor *w = dz_new_tensor_2d(ctx, wt, K, N), *x = dz_new_tensor_2d(ctx, DZ_TYPE_F32, K, M);
    dz_tensor *mm = dz_mul_mat(ctx, w, x);
    w->data = wq;
    x->data = xf;
    mm->data = out;
    DZT_ASSERT(dz_cpu_supports_node(mm));
    DZT_OK(dz_cpu_compute_node(mm, 2));
    int bad = 0;
    for (int64_t m = 0; m < M; m++) {
        activation_as_seen(dot_type_for(wt), xf + m * K, xrow, block_s, K);
        for (int64_t n = 0; n < N; n++) {
            const uint8_t *wr = wq + (size_t)n * row_bytes;
            DZT_OK(dz_dequantize_row(wt, wr, wrow, K));
            double want = 0, mag = 0;
            for (int64_t k = 0; k < K; k++) {
                double mk = 0; /* the block's minimum, Q4_1/Q5_1 */
                if (dot_type_for(wt) == DZ_TYPE_Q8_1) {
                    uint16_t h;
                    memcpy(&h, wr + (size_t)(k / 32) * tt->type_size + 2, 2);
                    mk = dz_fp16_to_fp32(h);
                    if (k % 32 == 0) want += mk * block_s[k / 32];
                }
                want += ((double)wrow[k] - mk) * xrow[k];
                mag += fabs((double)wrow[k] * xrow[k]);
            }
            if (fabs(out[m * N + n] - want) > mag * 0x1p-20 + 1e-30) {
                if (bad++ < 3)
                    fprintf(stderr, "%s K%lld N%lld M%lld: out[%lld][%lld] %.9g, want %.9g (sum |wx| %g)\n",
                            tt->name, (long long)K, (long long)N, (long long)M, (long long)m, (long long)n,
                            out[m * N + n], want, mag);
            }
        }
    }
    DZT_CHECK(bad == 0, "%s: %d dots off", tt->name, bad);
    dz_ctx_destroy(ctx);
    free(wf);
    free(xf);
    free(wrow);
    free(xrow);
    free(out);
    free(wq);
}

static void test_dots(void) {
    const dz_type *types = quant_types;
    for (size_t t = 0; t < N_QUANT_TYPES; t++) {
        /* One X row and several; N a multiple of 8 and not (Q4_0's kernels
         * differ, as IQ4_NL's do for one row); an odd number of blocks. */
        const int64_t K = dz_type_info((int)types[t])->block_size == 256 ? 768 : 96;
        check_dots(types[t], K, 8, 1);
        check_dots(types[t], K, 5, 3);
        check_dots(types[t], 2 * K, 16, 2);
    }
}

int main(void) {
    test_fp16_known();
    test_fp16_exhaustive();
    test_bf16();
    test_q8_0_known();
    test_q8_0_activation_rounding();
    test_q4_0_known();
    test_blocks_32();
    test_blocks_k();
    test_activations();
    test_round_trips();
    test_garbage();
    test_support_and_errors();
    test_dots();
    return dzt_done();
}
