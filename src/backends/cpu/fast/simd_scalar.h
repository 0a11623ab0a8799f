/* The vector vocabulary of kernels.inc in portable C: one lane. A vi lane
 * that takes part in a byte product holds 4 bytes (little-endian order, as
 * the vector levels read memory). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "dizuo/tensor.h" /* dz_fp16_to_fp32 */

#define SIMD_VL 1
#define SIMD_QRV 4         /* R = 4 */
#define SIMD_QNC_SINGLE 2
#define SIMD_QNC_LANES 1
#define SIMD_FNR 2
#define SIMD_FNC 2
#define SIMD_WIDE_OFFSET 0

typedef float vf;
typedef int32_t vi;

static inline vf vf_zero(void) { return 0.0f; }
static inline vf vf_set1(float a) { return a; }
static inline vf vf_loadu(const float *p) { return *p; }
static inline void vf_storeu(float *p, vf a) { *p = a; }
static inline vf vf_add(vf a, vf b) { return a + b; }
static inline vf vf_sub(vf a, vf b) { return a - b; }
static inline vf vf_mul(vf a, vf b) { return a * b; }
static inline vf vf_div(vf a, vf b) { return a / b; }
static inline vf vf_fmadd(vf a, vf b, vf c) { return fmaf(a, b, c); }
static inline vf vf_max(vf a, vf b) { return a > b ? a : b; } /* b when either is NaN, as maxps */
static inline vf vf_min(vf a, vf b) { return a < b ? a : b; }
static inline vf vf_abs(vf a) { return fabsf(a); }
static inline float vf_hsum(vf a) { return a; }
static inline float vf_hmax(vf a) { return a; }
static inline vf vf_load_f16(const uint16_t *p) { return dz_fp16_to_fp32(*p); }
/* The value of a as fp16 (round to nearest even), as a float. */
static inline vf vf_round_f16(vf a) { return dz_fp16_to_fp32(dz_fp32_to_fp16(a)); }
static inline vf vf_round(vf a) { return nearbyintf(a); }
static inline vf vf_from_vi(vi a) { return (float)a; }
/* As cvtps2dq: the current rounding mode; out of range (and NaN) gives INT32_MIN. */
static inline vi vf_to_vi(vf a) { return a >= -2147483648.0f && a < 2147483648.0f ? (int32_t)nearbyintf(a) : INT32_MIN; }
static inline vf vf_select_lt(vf a, vf b, vf x, vf y) { return a < b ? x : y; }
static inline vf vi_as_vf(vi a) {
    float f;
    memcpy(&f, &a, sizeof f);
    return f;
}

static inline vi vi_zero(void) { return 0; }
static inline vi vi_set1(int32_t a) { return a; }
static inline vi vi_loadu(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline void vi_storeu(void *p, vi a) { memcpy(p, &a, 4); }
static inline vi vi_add(vi a, vi b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline vi vi_slli23(vi a) { return (int32_t)((uint32_t)a << 23); }
static inline vi vi_bcast4(const void *p) { return vi_loadu(p); }
static inline int8_t byte_s(vi v, int i) { return (int8_t)(uint8_t)((uint32_t)v >> (8 * i)); }
static inline uint8_t byte_u(vi v, int i) { return (uint8_t)((uint32_t)v >> (8 * i)); }
static inline vi vi_dot4_narrow(vi acc, vi w, vi x) {
    return acc + byte_u(w, 0) * byte_s(x, 0) + byte_u(w, 1) * byte_s(x, 1) + byte_u(w, 2) * byte_s(x, 2) +
           byte_u(w, 3) * byte_s(x, 3);
}
static inline vi vi_dot4_wide(vi acc, vi w, vi x) {
    return acc + byte_s(w, 0) * byte_s(x, 0) + byte_s(w, 1) * byte_s(x, 1) + byte_s(w, 2) * byte_s(x, 2) +
           byte_s(w, 3) * byte_s(x, 3);
}
static inline void vi_store_i8(int8_t *p, vi a) { *p = (int8_t)(a < -128 ? -128 : a > 127 ? 127 : a); }
static inline float f16_to_f32(uint16_t h) { return dz_fp16_to_fp32(h); }
static inline uint16_t f32_to_f16(float f) { return dz_fp32_to_fp16(f); }
static inline void vf_transpose(vf r[1]) { (void)r; }
