/* The fast kernels for AVX2 + FMA + F16C. This file alone is compiled with
 * those instructions enabled (CMakeLists.txt); its code runs only after
 * dz_cpu_isa_supported() found them. Panels are 8 rows; signed levels stay
 * signed (vpmaddubsw would saturate with an offset). */
#if defined(__x86_64__)
#include "backends/cpu/fast/simd_avx2.h"

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

static inline size_t block_bytes(int fmt) { return fmt == DZ_FAST_Q4_0 ? sizeof(dz_block_q4_0) : sizeof(dz_block_q8_0); }

/* Q4_0: the nibbles (level + 8); a[i] holds rows i and i + 4. Q8_0: signed
 * levels; lo[i] holds row i, hi[i] row i + 4, 32 bytes each. */
static inline __attribute__((always_inline)) void load_block(const int fmt, const char *const *rowp, int64_t b, vi w[8]) {
    const size_t at = (size_t)b * block_bytes(fmt) + 2;
    if (fmt == DZ_FAST_Q4_0) {
        const __m256i low = _mm256_set1_epi8(0x0f);
        __m256i a[4];
        for (int i = 0; i < 4; i++)
            a[i] = _mm256_inserti128_si256(_mm256_castsi128_si256(load16(rowp[i] + at)), load16(rowp[i + 4] + at), 1);
        transpose4(a); /* a[d]: bytes 4d..4d+3 of rows 0..7 */
        for (int d = 0; d < 4; d++) {
            w[d] = _mm256_and_si256(a[d], low);
            w[4 + d] = _mm256_and_si256(_mm256_srli_epi16(a[d], 4), low);
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

static inline __attribute__((always_inline)) vf block_scales(const int fmt, const char *const *rowp, int64_t b) {
    const size_t at = (size_t)b * block_bytes(fmt);
    uint16_t h[8];
    for (int r = 0; r < 8; r++) memcpy(&h[r], rowp[r] + at, 2);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

#define SIMD_NAME avx2
#define SIMD_ISA DZ_CPU_ISA_AVX2
#define SIMD_BLOCK_LOADERS
#include "backends/cpu/fast/kernels.inc"
#else
typedef int dz_fast_kernels_avx2_absent; /* not x86-64: nothing to build */
#endif
