/* The fast kernels for AVX-512 (F, BW, VL, VNNI) with FMA and F16C. This
 * file alone is compiled with those instructions enabled (CMakeLists.txt);
 * its code runs only after dz_cpu_isa_supported() found them. Panels are 16
 * rows; byte products are vpdpbusd, so signed levels get an offset of 128. */
#if defined(__x86_64__)
#include "backends/cpu/fast/simd_avx512.h"

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

static inline size_t block_bytes(int fmt) { return fmt == DZ_FAST_Q4_0 ? sizeof(dz_block_q4_0) : sizeof(dz_block_q8_0); }

/* Q4_0: the nibbles themselves (level + 8). Lane L of a[i] holds row 4L + i;
 * after the transpose a[d] holds bytes 4d..4d+3 of rows 0..15, whose low
 * nibbles are elements 4d.. and high nibbles elements 16 + 4d... Q8_0:
 * level + 128; lo[i] holds rows i and i + 8, hi[i] rows i + 4 and i + 12. */
static inline __attribute__((always_inline)) void load_block(const int fmt, const char *const *rowp, int64_t b, vi w[8]) {
    const size_t at = (size_t)b * block_bytes(fmt) + 2;
    if (fmt == DZ_FAST_Q4_0) {
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
static inline __attribute__((always_inline)) vf block_scales(const int fmt, const char *const *rowp, int64_t b) {
    const size_t at = (size_t)b * block_bytes(fmt);
    uint16_t h[16];
    for (int r = 0; r < 16; r++) memcpy(&h[r], rowp[r] + at, 2);
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h));
}

#define SIMD_NAME avx512
#define SIMD_ISA DZ_CPU_ISA_AVX512
#define SIMD_BLOCK_LOADERS
#include "backends/cpu/fast/kernels.inc"
#else
typedef int dz_fast_kernels_avx512_absent; /* not x86-64: nothing to build */
#endif
