/* The fast kernels for AVX2 + FMA + F16C. This file alone is compiled with
 * those instructions enabled (CMakeLists.txt); its code runs only after
 * dz_cpu_isa_supported() found them. Panels are 8 rows; signed levels stay
 * signed (vpmaddubsw would saturate with an offset). */
#if defined(__x86_64__)
#include "backends/cpu/fast/simd_avx2.h"

#include <stddef.h>

#include "backends/cpu/fast/fast.h"
#include "tensor/convert.h"

/* The 4 x 4 transpose of 32-bit elements inside each 128-bit half. */
static inline void transpose4(__m256i a[4]) {
    const __m256i t0 = _mm256_unpacklo_epi32(a[0], a[1]), t1 = _mm256_unpackhi_epi32(a[0], a[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(a[2], a[3]), t3 = _mm256_unpackhi_epi32(a[2], a[3]);
    a[0] = _mm256_unpacklo_epi64(t0, t2);
    a[1] = _mm256_unpackhi_epi64(t0, t2);
    a[2] = _mm256_unpacklo_epi64(t1, t3);
    a[3] = _mm256_unpackhi_epi64(t1, t3);
}

static inline __m128i load16(const char *p) { return _mm_loadu_si128((const __m128i *)p); }

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
/* Q4_0: the nibbles (level + 8); a[i] holds rows i and i + 4. Q5_0: the
 * nibbles plus 16 times the fifth bit (level + 16): bits 4g..4g+3 of the
 * row's 32-bit qh are the fifth bits of group g, spread by a multiply to
 * bit 4 of bytes 0..3. IQ4_NL: the nibbles through the table (a byte
 * shuffle), signed levels. Q8_0: signed levels; lo[i] holds row i, hi[i]
 * row i + 4, 32 bytes each. */
static inline __attribute__((always_inline)) void load_block(const int fmt, const char *const *rowp, int64_t b, vi w[8]) {
    const size_t at = (size_t)b * block_bytes(fmt) + qs_offset(fmt);
    if (fmt != DZ_FAST_Q8_0) {
        const __m256i low = _mm256_set1_epi8(0x0f);
        __m256i a[4];
        for (int i = 0; i < 4; i++)
            a[i] = _mm256_inserti128_si256(_mm256_castsi128_si256(load16(rowp[i] + at)), load16(rowp[i + 4] + at), 1);
        transpose4(a); /* a[d]: bytes 4d..4d+3 of rows 0..7 */
        for (int d = 0; d < 4; d++) {
            w[d] = _mm256_and_si256(a[d], low);
            w[4 + d] = _mm256_and_si256(_mm256_srli_epi16(a[d], 4), low);
        }
        if (fmt == DZ_FAST_Q5_0 || fmt == DZ_FAST_Q5_1) { /* qh just before qs */
            int32_t h[8];
            for (int r = 0; r < 8; r++) memcpy(&h[r], rowp[r] + at - 4, 4);
            const __m256i qh = _mm256_loadu_si256((const __m256i *)h), nib = _mm256_set1_epi32(0x0f);
            const __m256i spread = _mm256_set1_epi32((1 << 4) | (1 << 11) | (1 << 18) | (1 << 25));
            const __m256i bit4 = _mm256_set1_epi8(0x10);
            for (int g = 0; g < 8; g++) {
                const __m256i bits = _mm256_and_si256(_mm256_srl_epi32(qh, _mm_cvtsi32_si128(4 * g)), nib);
                w[g] = _mm256_or_si256(w[g], _mm256_and_si256(_mm256_mullo_epi32(bits, spread), bit4));
            }
        } else if (fmt == DZ_FAST_IQ4_NL) {
            const __m256i table = _mm256_broadcastsi128_si256(load16((const char *)dz_iq4nl_values));
            for (int g = 0; g < 8; g++) w[g] = _mm256_shuffle_epi8(table, w[g]);
        }
    } else {
        __m256i lo[4], hi[4];
        for (int i = 0; i < 4; i++) {
            lo[i] = _mm256_loadu_si256((const __m256i *)(rowp[i] + at));
            hi[i] = _mm256_loadu_si256((const __m256i *)(rowp[i + 4] + at));
        }
        transpose4(lo); /* lo[d]: rows 0..3, dwords d and 4 + d */
        transpose4(hi); /* hi[d]: rows 4..7 */
        for (int d = 0; d < 4; d++) {
            w[d] = _mm256_permute2x128_si256(lo[d], hi[d], 0x20);
            w[4 + d] = _mm256_permute2x128_si256(lo[d], hi[d], 0x31);
        }
    }
}

/* The fp16 at byte off of block b of the 8 rows, as floats: the scales
 * (off 0) or the minimums (Q4_1, Q5_1: off 2). */
static inline __attribute__((always_inline)) vf block_halves(const int fmt, const char *const *rowp, int64_t b, size_t off) {
    const size_t at = (size_t)b * block_bytes(fmt) + off;
    uint16_t h[8];
    for (int r = 0; r < 8; r++) memcpy(&h[r], rowp[r] + at, 2);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

static inline __attribute__((always_inline)) vf block_scales(const int fmt, const char *const *rowp, int64_t b) {
    return block_halves(fmt, rowp, b, 0);
}
static inline __attribute__((always_inline)) vf block_mins(const int fmt, const char *const *rowp, int64_t b) {
    return block_halves(fmt, rowp, b, 2);
}

#define SIMD_NAME avx2
#define SIMD_ISA DZ_CPU_ISA_AVX2
#define SIMD_BLOCK_LOADERS
#include "backends/cpu/fast/kernels.inc"
#else
typedef int dz_fast_kernels_avx2_absent; /* not x86-64: nothing to build */
#endif
