/* The vector vocabulary of kernels.inc for AVX2 with FMA and F16C: 8 lanes
 * of float or int32. Compiled only into kernels_avx2.c, with those
 * instructions enabled for that file. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define SIMD_VL 8
#define SIMD_QRV 1
#define SIMD_QNC_SINGLE 4
#define SIMD_QNC_LANES 1
#define SIMD_FNR 3
#define SIMD_FNC 3
#define SIMD_PRV 2  /* packed float panels: 16 rows x ... */
#define SIMD_PNC 6  /* ... 6 columns of register tile */
/* vpmaddubsw saturates 16-bit pair sums: signed 8-bit levels stay signed
 * and go through the sign trick (vi_dot4_wide) instead of an offset. */
#define SIMD_WIDE_OFFSET 0

typedef __m256 vf;
typedef __m256i vi;

static inline vf vf_zero(void) { return _mm256_setzero_ps(); }
static inline vf vf_set1(float a) { return _mm256_set1_ps(a); }
static inline vf vf_loadu(const float *p) { return _mm256_loadu_ps(p); }
static inline void vf_storeu(float *p, vf a) { _mm256_storeu_ps(p, a); }
static inline vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vf_div(vf a, vf b) { return _mm256_div_ps(a, b); }
static inline vf vf_fmadd(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
static inline vf vf_abs(vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
static inline float vf_hsum(vf a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float vf_hmax(vf a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline vf vf_load_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
/* The value of a as fp16 (round to nearest even), as a float. */
static inline vf vf_round_f16(vf a) { return _mm256_cvtph_ps(_mm256_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)); }
static inline vf vf_round(vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vf vf_from_vi(vi a) { return _mm256_cvtepi32_ps(a); }
static inline vi vf_to_vi(vf a) { return _mm256_cvtps_epi32(a); }
static inline vf vf_select_lt(vf a, vf b, vf x, vf y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ)); }
static inline vf vi_as_vf(vi a) { return _mm256_castsi256_ps(a); }

/* rows[i] <- column i of the 8 x 8 matrix rows[0..8). */
static inline void vf_transpose(vf r[8]) {
    __m256 t[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int j = 0; j < 4; j++) {
        t[j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x20);
        t[4 + j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x31);
    }
    for (int i = 0; i < 8; i++) r[i] = t[i];
}

static inline vi vi_zero(void) { return _mm256_setzero_si256(); }
static inline vi vi_set1(int32_t a) { return _mm256_set1_epi32(a); }
static inline vi vi_loadu(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline void vi_storeu(void *p, vi a) { _mm256_storeu_si256((__m256i *)p, a); }
static inline vi vi_add(vi a, vi b) { return _mm256_add_epi32(a, b); }
static inline vi vi_slli23(vi a) { return _mm256_slli_epi32(a, 23); }
static inline vi vi_bcast4(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}
/* narrow: unsigned w < 128, so the 16-bit pair sums of vpmaddubsw cannot
 * saturate (|x| <= 127 here: activations never hold -128). */
static inline vi vi_dot4_narrow(vi acc, vi w, vi x) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)));
}
/* wide: signed w; |w| times x with x's sign flipped where w is negative. */
static inline vi vi_dot4_wide(vi acc, vi w, vi x) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}
static inline void vi_store_i8(int8_t *p, vi a) {
    __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    _mm_storel_epi64((__m128i *)p, _mm_packs_epi16(w, w));
}

/* ---- K-quants: vectors of KQP rows, each 256-bit half one row's 8 lanes ---- */
#define SIMD_KQUANTS
#define SIMD_KQP 1
#define SIMD_KRP 2
#define SIMD_KNC 1
static inline vi vi_and(vi a, vi b) { return _mm256_and_si256(a, b); }
static inline vi vi_srl4(vi a) { return _mm256_srli_epi16(a, 4); }
static inline vi vi_sll4(vi a) { return _mm256_slli_epi16(a, 4); }
static inline vi vi_sll2(vi a) { return _mm256_slli_epi16(a, 2); }
static inline vi vi_srl2(vi a) { return _mm256_srli_epi16(a, 2); }
/* 16-bit lanes shifted by n (0..15) */
static inline vi vi_sll16(vi a, int n) { return _mm256_sll_epi16(a, _mm_cvtsi32_si128(n)); }
static inline vi vi_srl16(vi a, int n) { return _mm256_srl_epi16(a, _mm_cvtsi32_si128(n)); }
static inline vi vi_or(vi a, vi b) { return _mm256_or_si256(a, b); }
static inline vi vi_set1_8(int8_t a) { return _mm256_set1_epi8(a); }
static inline vi vi_madd16(vi a, vi b) { return _mm256_madd_epi16(a, b); }
static inline vi vk_load_rows(const char *const *rowp, size_t off) { return _mm256_loadu_si256((const __m256i *)(rowp[0] + off)); }
static inline vi vk_bcast32(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline vi vk_bcast16(const void *p) { return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p)); }
static inline vi vk_rows_44(const int32_t lo[1], const int32_t hi[1]) {
    return _mm256_setr_epi32(lo[0], lo[0], lo[0], lo[0], hi[0], hi[0], hi[0], hi[0]);
}
/* float vector: lanes of group g (8 / n lanes each) = v[g], n = 1 or 2 */
static inline vf vk_groups_f(const float *v, int n) {
    if (n == 1) return _mm256_set1_ps(v[0]);
    return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_set1_ps(v[0])), _mm_set1_ps(v[1]), 1);
}
/* 16 bytes of the row in both 128-bit lanes */
static inline vi vk_rows_bcast16(const int16_t *row0, int stride) {
    (void)stride;
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)row0));
}
static inline vi vi_shuffle8(vi a, vi ctrl) { return _mm256_shuffle_epi8(a, ctrl); }
static inline float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t f32_to_f16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vi vk_scales16(const uint8_t *const *p, int is_signed) {
    __m128i a = _mm_loadl_epi64((const __m128i *)p[0]);
    return _mm256_broadcastsi128_si256(is_signed ? _mm_cvtepi8_epi16(a) : _mm_cvtepu8_epi16(a));
}
/* the 16 bytes at p[0] zero-extended to 16 bits */
static inline vi vk_widen16(const uint8_t *const *p) { return _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p[0])); }
static inline vi vk_mins16(const uint8_t *const *p) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)p[0]))),
                                   _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)p[1])), 1);
}
