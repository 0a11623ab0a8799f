/* The fast kernels for AVX-512 (F, BW, VL, VNNI) with FMA and F16C. This
 * file alone is compiled with those instructions enabled (CMakeLists.txt);
 * its code runs only after dz_cpu_isa_supported() found them. Panels are 16
 * rows; byte products are vpdpbusd, so signed levels get an offset of 128. */
#if defined(__x86_64__)
#include "backends/cpu/fast/simd_avx512.h"

#include <stddef.h>

#include "backends/cpu/fast/fast.h"
#include "tensor/convert.h"

/* The 4 x 4 transpose of 32-bit elements inside each 128-bit lane. */
static inline void transpose4(__m512i a[4]) {
    const __m512i t0 = _mm512_unpacklo_epi32(a[0], a[1]), t1 = _mm512_unpackhi_epi32(a[0], a[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(a[2], a[3]), t3 = _mm512_unpackhi_epi32(a[2], a[3]);
    a[0] = _mm512_unpacklo_epi64(t0, t2);
    a[1] = _mm512_unpackhi_epi64(t0, t2);
    a[2] = _mm512_unpacklo_epi64(t1, t3);
    a[3] = _mm512_unpackhi_epi64(t1, t3);
}

static inline __m128i load16(const char *p) { return _mm_loadu_si128((const __m128i *)p); }
static inline __m256i load32(const char *p) { return _mm256_loadu_si256((const __m256i *)p); }

static inline size_t block_bytes(int fmt) {
    switch (fmt) {
    case DZ_FAST_Q4_0: return sizeof(dz_block_q4_0);
    case DZ_FAST_Q5_0: return sizeof(dz_block_q5_0);
    case DZ_FAST_IQ4_NL: return sizeof(dz_block_iq4_nl);
    case DZ_FAST_Q4_1: return sizeof(dz_block_q4_1);
    case DZ_FAST_Q5_1: return sizeof(dz_block_q5_1);
    default: return sizeof(dz_block_q8_0);
    }
}

/* Where a block's nibbles start. */
static inline size_t qs_offset(int fmt) {
    switch (fmt) {
    case DZ_FAST_Q5_0: return offsetof(dz_block_q5_0, qs);
    case DZ_FAST_Q4_1: return offsetof(dz_block_q4_1, qs);
    case DZ_FAST_Q5_1: return offsetof(dz_block_q5_1, qs);
    default: return 2;
    }
}

/* Q4_1, Q5_1: the nibbles (plus 16 times the fifth bit), levels themselves. */
/* Q4_0: the nibbles themselves (level + 8). Lane L of a[i] holds row 4L + i;
 * after the transpose a[d] holds bytes 4d..4d+3 of rows 0..15, whose low
 * nibbles are elements 4d.. and high nibbles elements 16 + 4d... Q8_0:
 * level + 128; lo[i] holds rows i and i + 8, hi[i] rows i + 4 and i + 12.
 * Q5_0: the nibbles plus 16 times the fifth bit (level + 16), bits
 * 4g..4g+3 of the row's qh spread by a multiply to bit 4 of bytes 0..3.
 * IQ4_NL: the nibbles through the table plus 128 (a byte shuffle). */
static inline __attribute__((always_inline)) void load_block(const int fmt, const char *const *rowp, int64_t b, vi w[8]) {
    const size_t at = (size_t)b * block_bytes(fmt) + qs_offset(fmt);
    if (fmt != DZ_FAST_Q8_0) {
        const __m512i low = _mm512_set1_epi8(0x0f);
        __m512i a[4];
        for (int i = 0; i < 4; i++) {
            __m512i v = _mm512_castsi128_si512(load16(rowp[i] + at));
            v = _mm512_inserti32x4(v, load16(rowp[4 + i] + at), 1);
            v = _mm512_inserti32x4(v, load16(rowp[8 + i] + at), 2);
            a[i] = _mm512_inserti32x4(v, load16(rowp[12 + i] + at), 3);
        }
        transpose4(a);
        for (int d = 0; d < 4; d++) {
            w[d] = _mm512_and_si512(a[d], low);
            w[4 + d] = _mm512_and_si512(_mm512_srli_epi16(a[d], 4), low);
        }
        if (fmt == DZ_FAST_Q5_0 || fmt == DZ_FAST_Q5_1) { /* qh just before qs */
            int32_t h[16];
            for (int r = 0; r < 16; r++) memcpy(&h[r], rowp[r] + at - 4, 4);
            const __m512i qh = _mm512_loadu_si512(h), nib = _mm512_set1_epi32(0x0f);
            const __m512i spread = _mm512_set1_epi32((1 << 4) | (1 << 11) | (1 << 18) | (1 << 25));
            const __m512i bit4 = _mm512_set1_epi8(0x10);
            for (int g = 0; g < 8; g++) {
                const __m512i bits = _mm512_and_si512(_mm512_srl_epi32(qh, _mm_cvtsi32_si128(4 * g)), nib);
                w[g] = _mm512_or_si512(w[g], _mm512_and_si512(_mm512_mullo_epi32(bits, spread), bit4));
            }
        } else if (fmt == DZ_FAST_IQ4_NL) {
            int8_t t[16];
            for (int i = 0; i < 16; i++) t[i] = (int8_t)(dz_iq4nl_values[i] ^ (int8_t)0x80); /* + 128 */
            const __m512i table = _mm512_broadcast_i32x4(load16((const char *)t));
            for (int g = 0; g < 8; g++) w[g] = _mm512_shuffle_epi8(table, w[g]);
        }
    } else {
        const __m512i flip = _mm512_set1_epi8((char)0x80);
        const __m512i lo_idx = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
        const __m512i hi_idx = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
        __m512i lo[4], hi[4];
        for (int i = 0; i < 4; i++) {
            lo[i] = _mm512_inserti64x4(_mm512_castsi256_si512(load32(rowp[i] + at)), load32(rowp[i + 8] + at), 1);
            hi[i] = _mm512_inserti64x4(_mm512_castsi256_si512(load32(rowp[i + 4] + at)), load32(rowp[i + 12] + at), 1);
        }
        transpose4(lo); /* lanes: rows 0-3 dword d, dword 4+d, rows 8-11 dword d, dword 4+d */
        transpose4(hi); /* the same for rows 4-7 and 12-15 */
        for (int d = 0; d < 4; d++) {
            w[d] = _mm512_xor_si512(_mm512_permutex2var_epi64(lo[d], lo_idx, hi[d]), flip);
            w[4 + d] = _mm512_xor_si512(_mm512_permutex2var_epi64(lo[d], hi_idx, hi[d]), flip);
        }
    }
}

/* The fp16 block scales of the 16 rows as floats. (Scalar loads: a gather
 * costs more on the processors measured.) */
static inline __attribute__((always_inline)) vf block_halves(const int fmt, const char *const *rowp, int64_t b, size_t off) {
    const size_t at = (size_t)b * block_bytes(fmt) + off;
    uint16_t h[16];
    for (int r = 0; r < 16; r++) memcpy(&h[r], rowp[r] + at, 2);
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h));
}

static inline __attribute__((always_inline)) vf block_scales(const int fmt, const char *const *rowp, int64_t b) {
    return block_halves(fmt, rowp, b, 0);
}
static inline __attribute__((always_inline)) vf block_mins(const int fmt, const char *const *rowp, int64_t b) {
    return block_halves(fmt, rowp, b, 2);
}

#define SIMD_NAME avx512
#define SIMD_ISA DZ_CPU_ISA_AVX512
#define SIMD_BLOCK_LOADERS
#include "backends/cpu/fast/kernels.inc"
#else
typedef int dz_fast_kernels_avx512_absent; /* not x86-64: nothing to build */
#endif
