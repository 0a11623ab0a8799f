/* Element conversions and the reference quantizers: fp16/bf16 against known
 * bit patterns and an independent nearest-value search, Q8_0/Q4_0 against
 * blocks built by hand and error bounds that follow from the formats. */
#include <stdint.h>
#include <string.h>

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

static void test_error_bounds(void) {
    enum { N = 32 * 64 };
    float *x = malloc(N * sizeof *x), *back = malloc(N * sizeof *back);
    uint8_t *q = malloc(N * 2);
    uint64_t state = 99;
    for (int i = 0; i < N; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(state >> 11) / 9007199254740992.0;
        x[i] = (float)((u * 2 - 1) * (1 + (i / 32) % 7)); /* blocks of different scales */
    }
    struct { dz_type t; double levels, step_div; } cases[] = {{DZ_TYPE_Q8_0, 127, 127}, {DZ_TYPE_Q4_0, 8, 8}};
    for (int c = 0; c < 2; c++) {
        DZT_OK(dz_quantize_row(cases[c].t, x, q, N));
        DZT_OK(dz_dequantize_row(cases[c].t, q, back, N));
        int bad = 0;
        for (int b = 0; b < N / 32; b++) {
            double amax = 0;
            for (int j = 0; j < 32; j++) amax = fmax(amax, fabs(x[b * 32 + j]));
            double d = amax / cases[c].step_div;
            /* half a step, plus the fp16 rounding of d over at most `levels` steps */
            double bound = d * 0.5 + d * cases[c].levels * 0x1p-11 + 1e-7;
            for (int j = 0; j < 32; j++) {
                double xa = fabs(x[b * 32 + j]), allowed = bound;
                /* Q4_0 has 8 steps on max's side but 7 on the other: values
                 * beyond 7.5 steps there are clamped to 7 steps. */
                if (cases[c].t == DZ_TYPE_Q4_0 && xa > 7.5 * d) allowed += xa - 7.5 * d;
                if (fabs(back[b * 32 + j] - x[b * 32 + j]) > allowed) bad++;
            }
        }
        DZT_CHECK(bad == 0, "%s: %d elements beyond the error bound", dz_type_name(cases[c].t), bad);
    }
    /* F16 and BF16 rows: relative error at most half an ulp of the format. */
    DZT_OK(dz_quantize_row(DZ_TYPE_F16, x, q, N));
    DZT_OK(dz_dequantize_row(DZ_TYPE_F16, q, back, N));
    int bad = 0;
    for (int i = 0; i < N; i++) bad += fabs(back[i] - x[i]) > fabs(x[i]) * 0x1p-11 + 0x1p-25;
    DZT_EQ_INT(bad, 0);
    DZT_OK(dz_quantize_row(DZ_TYPE_BF16, x, q, N));
    DZT_OK(dz_dequantize_row(DZ_TYPE_BF16, q, back, N));
    bad = 0;
    for (int i = 0; i < N; i++) bad += fabs(back[i] - x[i]) > fabs(x[i]) * 0x1p-8;
    DZT_EQ_INT(bad, 0);
    free(x);
    free(back);
    free(q);
}

static void test_support_and_errors(void) {
    const dz_type yes[] = {DZ_TYPE_F32, DZ_TYPE_F16, DZ_TYPE_BF16, DZ_TYPE_Q8_0, DZ_TYPE_Q4_0};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        DZT_ASSERT(dz_type_can_dequantize(yes[i]));
        DZT_ASSERT(dz_type_can_quantize(yes[i]));
    }
    DZT_ASSERT(!dz_type_can_dequantize(DZ_TYPE_IQ2_XXS));
    DZT_ASSERT(!dz_type_can_dequantize((dz_type)4)); /* a retired id */
    float x[64] = {0};
    uint8_t out[256];
    DZT_FAILS(dz_quantize_row(DZ_TYPE_Q8_0, x, out, 33), DZ_ERR_ARG);
    DZT_ASSERT(strstr(dz_last_error(), "Q8_0") != NULL);
    DZT_FAILS(dz_dequantize_row(DZ_TYPE_IQ2_XXS, out, x, 0), DZ_ERR_UNSUPPORTED);
    DZT_ASSERT(strstr(dz_last_error(), "IQ2_XXS") != NULL);
    DZT_FAILS(dz_quantize_row((dz_type)5, x, out, 32), DZ_ERR_ARG);
}

int main(void) {
    test_fp16_known();
    test_fp16_exhaustive();
    test_bf16();
    test_q8_0_known();
    test_q8_0_activation_rounding();
    test_q4_0_known();
    test_error_bounds();
    test_support_and_errors();
    return dzt_done();
}
