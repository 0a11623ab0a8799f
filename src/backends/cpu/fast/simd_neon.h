/* The vector vocabulary of kernels.inc for NEON (Advanced SIMD), which
 * every aarch64 processor has: 4 lanes of float or int32, with a fused
 * multiply-add and fp16 conversions. Byte products (the dot-product
 * instructions are optional before ARMv8.4) widen to 16 bits and add
 * pairs. NEON has 32 vector registers, so the tiles are larger than SSE2's.
 * Compiled only into kernels_neon.c, on aarch64. */
#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

#include "dizuo/tensor.h" /* dz_fp16_to_fp32 */

#define SIMD_VL 4
#define SIMD_QRV 2         /* R = 8 */
#define SIMD_QNC_SINGLE 4
#define SIMD_QNC_LANES 1
#define SIMD_FNR 3
#define SIMD_FNC 4
#define SIMD_PRV 2         /* packed float panels: 8 rows x ... */
#define SIMD_PNC 8         /* ... 8 columns of register tile */
#define SIMD_WIDE_OFFSET 0 /* the byte products below take signed levels directly */

typedef float32x4_t vf;
typedef int32x4_t vi;

static inline vf vf_zero(void) { return vdupq_n_f32(0.0f); }
static inline vf vf_set1(float a) { return vdupq_n_f32(a); }
static inline vf vf_loadu(const float *p) { return vld1q_f32(p); }
static inline void vf_storeu(float *p, vf a) { vst1q_f32(p, a); }
static inline vf vf_add(vf a, vf b) { return vaddq_f32(a, b); }
static inline vf vf_sub(vf a, vf b) { return vsubq_f32(a, b); }
static inline vf vf_mul(vf a, vf b) { return vmulq_f32(a, b); }
static inline vf vf_div(vf a, vf b) { return vdivq_f32(a, b); }
static inline vf vf_fmadd(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); } /* fused */
/* maxps and minps, not fmax/fmin (vmaxq/vmaxnmq): b when either is NaN. */
static inline vf vf_max(vf a, vf b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }
static inline vf vf_min(vf a, vf b) { return vbslq_f32(vcltq_f32(a, b), a, b); }
static inline vf vf_abs(vf a) { return vabsq_f32(a); }
static inline float vf_hsum(vf a) { return vaddvq_f32(a); }
/* In SSE2's order and NaN rule: max(max(a0, a2), max(a1, a3)). */
static inline float vf_hmax(vf a) {
    const vf s = vf_max(a, vextq_f32(a, a, 2));
    const float s0 = vgetq_lane_f32(s, 0), s1 = vgetq_lane_f32(s, 1);
    return s0 > s1 ? s0 : s1;
}
static inline vf vf_load_f16(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
/* The value of a as fp16 (round to nearest even), as a float. */
static inline vf vf_round_f16(vf a) { return vcvt_f32_f16(vcvt_f16_f32(a)); }
static inline vf vf_round(vf a) { return vrndnq_f32(a); } /* ties to even */
static inline vf vf_from_vi(vi a) { return vcvtq_f32_s32(a); }
/* As cvtps2dq: to nearest, ties to even; out of range (and NaN) gives
 * INT32_MIN, where NEON's conversion would saturate (NaN: 0). */
static inline vi vf_to_vi(vf a) {
    const uint32x4_t in_range = vandq_u32(vcgeq_f32(a, vdupq_n_f32(-2147483648.0f)), vcltq_f32(a, vdupq_n_f32(2147483648.0f)));
    return vbslq_s32(in_range, vcvtnq_s32_f32(a), vdupq_n_s32(INT32_MIN));
}
static inline vf vf_select_lt(vf a, vf b, vf x, vf y) { return vbslq_f32(vcltq_f32(a, b), x, y); }
static inline vf vi_as_vf(vi a) { return vreinterpretq_f32_s32(a); }

static inline vi vi_zero(void) { return vdupq_n_s32(0); }
static inline vi vi_set1(int32_t a) { return vdupq_n_s32(a); }
/* Through bytes: p need not be aligned to 4. */
static inline vi vi_loadu(const void *p) { return vreinterpretq_s32_u8(vld1q_u8((const uint8_t *)p)); }
static inline void vi_storeu(void *p, vi a) { vst1q_u8((uint8_t *)p, vreinterpretq_u8_s32(a)); }
static inline vi vi_add(vi a, vi b) { return vaddq_s32(a, b); }
static inline vi vi_slli23(vi a) { return vshlq_n_s32(a, 23); }
static inline vi vi_bcast4(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return vdupq_n_s32(v);
}
/* 16 products of 16 bits (exact: |w x| <= 255 * 128) -> sums of 4 adjacent
 * ones in the int32 lanes, added to acc. */
static inline vi dot4_from_products(vi acc, int16x8_t lo, int16x8_t hi) {
    return vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)));
}
/* narrow: unsigned w bytes times signed x bytes */
static inline vi vi_dot4_narrow(vi acc, vi w, vi x) {
    const uint8x16_t wb = vreinterpretq_u8_s32(w);
    const int8x16_t xb = vreinterpretq_s8_s32(x);
    const int16x8_t lo = vmulq_s16(vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(wb))), vmovl_s8(vget_low_s8(xb)));
    const int16x8_t hi = vmulq_s16(vreinterpretq_s16_u16(vmovl_high_u8(wb)), vmovl_high_s8(xb));
    return dot4_from_products(acc, lo, hi);
}
/* wide: signed w bytes times signed x bytes */
static inline vi vi_dot4_wide(vi acc, vi w, vi x) {
    const int8x16_t wb = vreinterpretq_s8_s32(w), xb = vreinterpretq_s8_s32(x);
    return dot4_from_products(acc, vmull_s8(vget_low_s8(wb), vget_low_s8(xb)), vmull_high_s8(wb, xb));
}
/* The 4 lanes saturated to int8 (as packssdw + packsswb). */
static inline void vi_store_i8(int8_t *p, vi a) {
    const int16x4_t h = vqmovn_s32(a);
    const int8x8_t b = vqmovn_s16(vcombine_s16(h, h));
    const int32_t v = vget_lane_s32(vreinterpret_s32_s8(b), 0);
    memcpy(p, &v, 4);
}
static inline float f16_to_f32(uint16_t h) { return dz_fp16_to_fp32(h); }
static inline uint16_t f32_to_f16(float f) { return dz_fp32_to_fp16(f); }
/* rows[i] <- column i of the 4 x 4 matrix rows[0..4). */
static inline void vf_transpose(vf r[4]) {
    const vf t0 = vtrn1q_f32(r[0], r[1]), t1 = vtrn2q_f32(r[0], r[1]); /* (00 10 02 12), (01 11 03 13) */
    const vf t2 = vtrn1q_f32(r[2], r[3]), t3 = vtrn2q_f32(r[2], r[3]); /* (20 30 22 32), (21 31 23 33) */
    r[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    r[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
    r[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    r[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
}
