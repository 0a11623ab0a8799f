/* The vector vocabulary of kernels.inc for AVX-512 (F, BW, VL, VNNI) with
 * FMA and F16C: 16 lanes of float or int32. Compiled only into
 * kernels_avx512.c, with those instructions enabled for that file. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define SIMD_VL 16
#define SIMD_QRV 1         /* row vectors per quantized panel: R = 16 */
#define SIMD_QNC_SINGLE 8  /* columns per quantized tile, SINGLE sums */
#define SIMD_QNC_LANES 3   /* ... LANES sums (8 accumulators per column) */
#define SIMD_FNR 4         /* rows x columns of a float tile */
#define SIMD_FNC 4
#define SIMD_PRV 2  /* packed float panels: 32 rows x ... */
#define SIMD_PNC 12 /* ... 12 columns of register tile */
#define SIMD_WIDE_OFFSET 128 /* vpdpbusd multiplies unsigned by signed bytes */

typedef __m512 vf;
typedef __m512i vi;

static inline vf vf_zero(void) { return _mm512_setzero_ps(); }
static inline vf vf_set1(float a) { return _mm512_set1_ps(a); }
static inline vf vf_loadu(const float *p) { return _mm512_loadu_ps(p); }
static inline void vf_storeu(float *p, vf a) { _mm512_storeu_ps(p, a); }
static inline vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vf_div(vf a, vf b) { return _mm512_div_ps(a, b); }
static inline vf vf_fmadd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
/* max(a, b); b when either is NaN */
static inline vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
static inline vf vf_abs(vf a) { return _mm512_abs_ps(a); }
static inline float vf_hsum(vf a) { return _mm512_reduce_add_ps(a); }
static inline float vf_hmax(vf a) { return _mm512_reduce_max_ps(a); }
static inline vf vf_load_f16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
/* Round to nearest, ties to even (as the default rounding mode). */
/* The value of a as fp16 (round to nearest even), as a float. */
static inline vf vf_round_f16(vf a) { return _mm512_cvtph_ps(_mm512_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)); }
static inline vf vf_round(vf a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vf vf_from_vi(vi a) { return _mm512_cvtepi32_ps(a); }
static inline vi vf_to_vi(vf a) { return _mm512_cvtps_epi32(a); } /* rounds as the current mode */
static inline vf vf_select_lt(vf a, vf b, vf x, vf y) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x); }
static inline vf vi_as_vf(vi a) { return _mm512_castsi512_ps(a); }

/* rows[i] <- column i of the 16 x 16 matrix rows[0..16). */
static inline void vf_transpose(vf r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    /* r[4q + j] holds, in 128-bit lane L, elements 4L..4L+3 of column j... of rows 4q..4q+3 */
    for (int j = 0; j < 4; j++) {
        const __m512 a = r[j], b = r[4 + j], c = r[8 + j], d = r[12 + j];
        const __m512 ab_lo = _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        const __m512 ab_hi = _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1));
        const __m512 cd_lo = _mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(2, 0, 2, 0));
        const __m512 cd_hi = _mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(3, 1, 3, 1));
        t[j] = _mm512_shuffle_f32x4(ab_lo, cd_lo, _MM_SHUFFLE(2, 0, 2, 0));
        t[8 + j] = _mm512_shuffle_f32x4(ab_lo, cd_lo, _MM_SHUFFLE(3, 1, 3, 1));
        t[4 + j] = _mm512_shuffle_f32x4(ab_hi, cd_hi, _MM_SHUFFLE(2, 0, 2, 0));
        t[12 + j] = _mm512_shuffle_f32x4(ab_hi, cd_hi, _MM_SHUFFLE(3, 1, 3, 1));
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

static inline vi vi_zero(void) { return _mm512_setzero_si512(); }
static inline vi vi_set1(int32_t a) { return _mm512_set1_epi32(a); }
static inline vi vi_loadu(const void *p) { return _mm512_loadu_si512(p); }
static inline void vi_storeu(void *p, vi a) { _mm512_storeu_si512(p, a); }
static inline vi vi_add(vi a, vi b) { return _mm512_add_epi32(a, b); }
static inline vi vi_slli23(vi a) { return _mm512_slli_epi32(a, 23); }
static inline vi vi_bcast4(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}
/* acc + per lane the sum of 4 products of unsigned bytes of w and signed
 * bytes of x. narrow: w < 128; wide: any w. */
static inline vi vi_dot4_narrow(vi acc, vi w, vi x) { return _mm512_dpbusd_epi32(acc, w, x); }
static inline vi vi_dot4_wide(vi acc, vi w, vi x) { return _mm512_dpbusd_epi32(acc, w, x); }
/* VL int32 in -128..127 to VL bytes. */
static inline void vi_store_i8(int8_t *p, vi a) { _mm_storeu_si128((__m128i *)p, _mm512_cvtsepi32_epi8(a)); }

/* ---- K-quants: vectors of KQP rows, each 256-bit half one row's 8 lanes ---- */
#define SIMD_KQUANTS
#define SIMD_KQP 2 /* rows per vector */
#define SIMD_KRP 2 /* row vectors per tile: 4 rows */
#define SIMD_KNC 3 /* columns per tile */
static inline vi vi_and(vi a, vi b) { return _mm512_and_si512(a, b); }
static inline vi vi_srl4(vi a) { return _mm512_srli_epi16(a, 4); }
static inline vi vi_sll4(vi a) { return _mm512_slli_epi16(a, 4); }
static inline vi vi_sll2(vi a) { return _mm512_slli_epi16(a, 2); }
static inline vi vi_srl2(vi a) { return _mm512_srli_epi16(a, 2); }
/* 16-bit lanes shifted by n (0..15) */
static inline vi vi_sll16(vi a, int n) { return _mm512_sll_epi16(a, _mm_cvtsi32_si128(n)); }
static inline vi vi_srl16(vi a, int n) { return _mm512_srl_epi16(a, _mm_cvtsi32_si128(n)); }
static inline vi vi_or(vi a, vi b) { return _mm512_or_si512(a, b); }
static inline vi vi_set1_8(int8_t a) { return _mm512_set1_epi8(a); }
static inline vi vi_madd16(vi a, vi b) { return _mm512_madd_epi16(a, b); }
/* 32 bytes at rowp[h] + off in half h */
static inline vi vk_load_rows(const char *const *rowp, size_t off) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(rowp[0] + off))),
                              _mm256_loadu_si256((const __m256i *)(rowp[1] + off)), 1);
}
/* 32 bytes at p in every half */
static inline vi vk_bcast32(const void *p) { return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p)); }
/* 16 bytes at p in every 128-bit lane */
static inline vi vk_bcast16(const void *p) { return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)p)); }
/* half h: lanes 0-3 = lo[h], lanes 4-7 = hi[h] */
static inline vi vk_rows_44(const int32_t lo[2], const int32_t hi[2]) {
    return _mm512_setr_epi32(lo[0], lo[0], lo[0], lo[0], hi[0], hi[0], hi[0], hi[0], lo[1], lo[1], lo[1], lo[1], hi[1],
                             hi[1], hi[1], hi[1]);
}
/* float vector: lanes of group g (16 / n lanes each) = v[g], n = 2 or 4 */
static inline vf vk_groups_f(const float *v, int n) {
    if (n == 2)
        return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm256_set1_ps(v[0]))),
                                                   _mm256_castps_pd(_mm256_set1_ps(v[1])), 1));
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_loadu_ps(v)));
}
/* 16 bytes of row h (rows p + h * stride_bytes... given as int16 rows of `stride` elements) in both 128-bit lanes of half h */
static inline vi vk_rows_bcast16(const int16_t *row0, int stride) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)row0))),
                              _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(row0 + stride))), 1);
}
static inline vi vi_shuffle8(vi a, vi ctrl) { return _mm512_shuffle_epi8(a, ctrl); }
static inline float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t f32_to_f16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
/* half h: the 8 bytes at p[h] widened to 16 bits (sign- or zero-extended), in both of its 128-bit lanes */
static inline vi vk_scales16(const uint8_t *const *p, int is_signed) {
    __m128i a = _mm_loadl_epi64((const __m128i *)p[0]), b = _mm_loadl_epi64((const __m128i *)p[1]);
    a = is_signed ? _mm_cvtepi8_epi16(a) : _mm_cvtepu8_epi16(a);
    b = is_signed ? _mm_cvtepi8_epi16(b) : _mm_cvtepu8_epi16(b);
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(a)), _mm256_broadcastsi128_si256(b), 1);
}
/* half h: the 16 bytes at p[h] zero-extended to 16 bits */
static inline vi vk_widen16(const uint8_t *const *p) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p[0]))),
                              _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p[1])), 1);
}
/* 128-bit lane L: the 8 bytes at p[L] zero-extended to 16 bits */
static inline vi vk_mins16(const uint8_t *const *p) {
    const __m256i lo = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)p[0]))),
                                               _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)p[1])), 1);
    const __m256i hi = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)p[2]))),
                                               _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)p[3])), 1);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
