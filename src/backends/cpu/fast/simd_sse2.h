/* The vector vocabulary of kernels.inc for SSE2, the x86-64 baseline: 4
 * lanes of float or int32. SSE2 has no byte multiply, no rounding
 * instruction and no fp16 conversion, so those are built from what it has. */
#include <emmintrin.h>
#include <xmmintrin.h>
#include <stdint.h>
#include <string.h>

#include "dizuo/tensor.h" /* dz_fp16_to_fp32 */

#define SIMD_VL 4
#define SIMD_QRV 2         /* R = 8 */
#define SIMD_QNC_SINGLE 2
#define SIMD_QNC_LANES 1
#define SIMD_FNR 2
#define SIMD_FNC 2
#define SIMD_WIDE_OFFSET 0 /* the byte products below take signed levels directly */

typedef __m128 vf;
typedef __m128i vi;

static inline vf vf_zero(void) { return _mm_setzero_ps(); }
static inline vf vf_set1(float a) { return _mm_set1_ps(a); }
static inline vf vf_loadu(const float *p) { return _mm_loadu_ps(p); }
static inline void vf_storeu(float *p, vf a) { _mm_storeu_ps(p, a); }
static inline vf vf_add(vf a, vf b) { return _mm_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm_mul_ps(a, b); }
static inline vf vf_div(vf a, vf b) { return _mm_div_ps(a, b); }
static inline vf vf_fmadd(vf a, vf b, vf c) { return _mm_add_ps(_mm_mul_ps(a, b), c); } /* not fused */
static inline vf vf_max(vf a, vf b) { return _mm_max_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm_min_ps(a, b); }
static inline vf vf_abs(vf a) { return _mm_andnot_ps(_mm_set1_ps(-0.0f), a); }
static inline float vf_hsum(vf a) {
    __m128 s = _mm_add_ps(a, _mm_movehl_ps(a, a));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
static inline float vf_hmax(vf a) {
    __m128 s = _mm_max_ps(a, _mm_movehl_ps(a, a));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
static inline vf vf_load_f16(const uint16_t *p) {
    return _mm_setr_ps(dz_fp16_to_fp32(p[0]), dz_fp16_to_fp32(p[1]), dz_fp16_to_fp32(p[2]), dz_fp16_to_fp32(p[3]));
}
/* Through int32 (rounding as the current mode): callers keep |a| < 2^31. */
/* The value of a as fp16 (round to nearest even), as a float. */
static inline vf vf_round_f16(vf a) {
    float v[4];
    _mm_storeu_ps(v, a);
    for (int i = 0; i < 4; i++) v[i] = dz_fp16_to_fp32(dz_fp32_to_fp16(v[i]));
    return _mm_loadu_ps(v);
}
static inline vf vf_round(vf a) { return _mm_cvtepi32_ps(_mm_cvtps_epi32(a)); }
static inline vf vf_from_vi(vi a) { return _mm_cvtepi32_ps(a); }
static inline vi vf_to_vi(vf a) { return _mm_cvtps_epi32(a); }
static inline vf vf_select_lt(vf a, vf b, vf x, vf y) {
    const __m128 m = _mm_cmplt_ps(a, b);
    return _mm_or_ps(_mm_and_ps(m, x), _mm_andnot_ps(m, y));
}
static inline vf vi_as_vf(vi a) { return _mm_castsi128_ps(a); }

static inline vi vi_zero(void) { return _mm_setzero_si128(); }
static inline vi vi_set1(int32_t a) { return _mm_set1_epi32(a); }
static inline vi vi_loadu(const void *p) { return _mm_loadu_si128((const __m128i *)p); }
static inline void vi_storeu(void *p, vi a) { _mm_storeu_si128((__m128i *)p, a); }
static inline vi vi_add(vi a, vi b) { return _mm_add_epi32(a, b); }
static inline vi vi_slli23(vi a) { return _mm_slli_epi32(a, 23); }
static inline vi vi_bcast4(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm_set1_epi32(v);
}
/* Products of 16-bit halves: madd gives lanes 0,1 (from the low 8 bytes)
 * and 2,3 (high 8 bytes) as pairs of partial sums; each pair is then added.
 * w16lo/w16hi hold w's bytes widened. */
static inline vi dot4_from_words(vi acc, vi w16lo, vi w16hi, vi x) {
    const __m128i x16lo = _mm_srai_epi16(_mm_unpacklo_epi8(x, x), 8), x16hi = _mm_srai_epi16(_mm_unpackhi_epi8(x, x), 8);
    const __m128 lo = _mm_castsi128_ps(_mm_madd_epi16(w16lo, x16lo)), hi = _mm_castsi128_ps(_mm_madd_epi16(w16hi, x16hi));
    const __m128i even = _mm_castps_si128(_mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)));
    const __m128i odd = _mm_castps_si128(_mm_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm_add_epi32(acc, _mm_add_epi32(even, odd));
}
static inline vi vi_dot4_narrow(vi acc, vi w, vi x) {
    const __m128i zero = _mm_setzero_si128();
    return dot4_from_words(acc, _mm_unpacklo_epi8(w, zero), _mm_unpackhi_epi8(w, zero), x);
}
static inline vi vi_dot4_wide(vi acc, vi w, vi x) {
    return dot4_from_words(acc, _mm_srai_epi16(_mm_unpacklo_epi8(w, w), 8), _mm_srai_epi16(_mm_unpackhi_epi8(w, w), 8), x);
}
static inline void vi_store_i8(int8_t *p, vi a) {
    const __m128i w = _mm_packs_epi32(a, a), b = _mm_packs_epi16(w, w);
    const int32_t v = _mm_cvtsi128_si32(b);
    memcpy(p, &v, 4);
}
static inline float f16_to_f32(uint16_t h) { return dz_fp16_to_fp32(h); }
static inline uint16_t f32_to_f16(float f) { return dz_fp32_to_fp16(f); }
/* rows[i] <- column i of the 4 x 4 matrix rows[0..4). */
static inline void vf_transpose(vf r[4]) { _MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3]); }
