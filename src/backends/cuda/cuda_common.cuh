/* Device helpers of the CUDA kernels, shared by the .cu files: tensors as
 * kernels see them, element access, fp16/bf16 conversions, dequantization
 * of one element, teams (blocks and warps, and their host stand-in), and
 * the launch helpers that run a kernel body on the GPU or on the host.
 *
 * Everything a kernel body calls is __host__ __device__, so that the same
 * body runs on the host (cuda.h explains why). */
#ifndef DZ_CUDA_COMMON_CUH
#define DZ_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backends/cuda/cuda.h"
#include "dizuo/tensor.h"

#define DZ_HD __host__ __device__ inline

/* Unrolls the next loop on the device (the host compiler does not know the pragma). */
#ifdef __CUDA_ARCH__
#define DZ_UNROLL _Pragma("unroll")
#else
#define DZ_UNROLL
#endif

/* ---- tensors ---- */

/* A tensor as a kernel sees it: its data address (device memory on the
 * GPU), elements per dimension and byte strides. Passed by value. */
struct dz_ct {
    char *data;
    int64_t ne[4];
    int64_t nb[4];
    int type; /* dz_type */
};

/* The kernel view of t; a zeroed view for NULL (an absent operand). */
static inline dz_ct dz_ct_of(const dz_tensor *t) {
    dz_ct c;
    memset(&c, 0, sizeof c);
    if (!t) return c;
    c.data = (char *)t->data;
    for (int i = 0; i < 4; i++) {
        c.ne[i] = t->ne[i];
        c.nb[i] = (int64_t)t->nb[i];
    }
    c.type = (int)t->type;
    return c;
}

DZ_HD char *dz_at(const dz_ct &t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return t.data + i0 * t.nb[0] + i1 * t.nb[1] + i2 * t.nb[2] + i3 * t.nb[3];
}

/* (i0, i1, i2, i3) of the element with logical (row-major from dim 0)
 * index e of a tensor of shape ne. */
DZ_HD void dz_unravel(const int64_t ne[4], int64_t e, int64_t c[4]) {
    c[0] = e % ne[0];
    e /= ne[0];
    c[1] = e % ne[1];
    e /= ne[1];
    c[2] = e % ne[2];
    c[3] = e / ne[2];
}

/* (i1, i2, i3) of row r of a tensor of shape ne. */
DZ_HD void dz_row_coords(const int64_t ne[4], int64_t r, int64_t *i1, int64_t *i2, int64_t *i3) {
    *i1 = r % ne[1];
    *i2 = r / ne[1] % ne[2];
    *i3 = r / (ne[1] * ne[2]);
}

/* ---- scalar loads and conversions ----
 * Plain elements are read at their natural alignment (the node dispatch
 * checks it); quantized blocks are read byte by byte (their fields are
 * not aligned: a Q8_0 block is 34 bytes). */

DZ_HD float dz_ld_f32(const char *p) { return *(const float *)p; }
DZ_HD void dz_st_f32(char *p, float v) { *(float *)p = v; }
DZ_HD uint16_t dz_ld_u16(const char *p) { return *(const uint16_t *)p; }
DZ_HD int32_t dz_ld_i32(const char *p) { return *(const int32_t *)p; }
DZ_HD uint16_t dz_ld_u16_le(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
DZ_HD uint32_t dz_ld_u32_le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

DZ_HD uint32_t dz_float_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}

DZ_HD float dz_bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

/* fp16 and bf16, bit for bit as the host's dz_fp16_to_fp32 & co.
 * (src/tensor/convert.c): exact widening, round-to-nearest-even narrowing,
 * NaN payloads kept. */
DZ_HD float dz_half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0x1f) return dz_bits_float(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        if (mant == 0) return dz_bits_float(sign);
        const float v = (float)mant * 5.9604644775390625e-08f; /* mant * 2^-24, exact */
        return sign ? -v : v;
    }
    return dz_bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

DZ_HD uint16_t dz_float_to_half(float f) {
    const uint32_t x = dz_float_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (ax <= 0x33000000u) return sign;
    const uint32_t exp = ax >> 23, mant = ax & 0x7fffffu;
    if (exp < 113) {
        const uint32_t m = mant | 0x800000u, shift = 126 - exp;
        uint32_t q = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t h = ((exp - 112) << 10) | (mant >> 13);
    const uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

DZ_HD float dz_bf16_to_float(uint16_t h) { return dz_bits_float((uint32_t)h << 16); }

DZ_HD uint16_t dz_float_to_bf16(float f) {
    const uint32_t u = dz_float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

/* A plain element (F32, F16, BF16) as float, and stored from float. */
DZ_HD float dz_ld_plain(int type, const char *p) {
    switch (type) {
    case DZ_TYPE_F16: return dz_half_to_float(dz_ld_u16(p));
    case DZ_TYPE_BF16: return dz_bf16_to_float(dz_ld_u16(p));
    default: return dz_ld_f32(p);
    }
}

DZ_HD void dz_st_plain(int type, char *p, float v) {
    switch (type) {
    case DZ_TYPE_F16: *(uint16_t *)p = dz_float_to_half(v); break;
    case DZ_TYPE_BF16: *(uint16_t *)p = dz_float_to_bf16(v); break;
    default: dz_st_f32(p, v); break;
    }
}

/* ---- dequantization of one element ----
 * Block layouts as src/tensor/convert.h documents them (GGUF's), with the
 * byte offsets of each field; the arithmetic is the host dequantizers'
 * (src/tensor/quant_legacy.c, quant_iq.c, quant_k.c), in the same order. */

/* Bytes per block of the quantized types the kernels read; 0 for others. */
DZ_HD int dz_block_bytes(int type) {
    switch (type) {
    case DZ_TYPE_Q8_0: return 34;
    case DZ_TYPE_Q4_0: return 18;
    case DZ_TYPE_Q4_1: return 20;
    case DZ_TYPE_Q5_0: return 22;
    case DZ_TYPE_Q5_1: return 24;
    case DZ_TYPE_IQ4_NL: return 18;
    case DZ_TYPE_Q2_K: return 84;
    case DZ_TYPE_Q3_K: return 110;
    case DZ_TYPE_Q4_K: return 144;
    case DZ_TYPE_Q5_K: return 176;
    case DZ_TYPE_Q6_K: return 210;
    default: return 0;
    }
}

DZ_HD int dz_block_elems(int type) {
    switch (type) {
    case DZ_TYPE_Q2_K: case DZ_TYPE_Q3_K: case DZ_TYPE_Q4_K: case DZ_TYPE_Q5_K: case DZ_TYPE_Q6_K:
        return 256;
    default:
        return 32;
    }
}

/* Nibble of element j of a block of 32 (low nibbles hold elements 0..15). */
DZ_HD int dz_nibble32(const uint8_t *qs, int j) { return j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4; }

/* 2-bit level of element i of a K-quant super-block (Q2_K, Q3_K's low bits). */
DZ_HD int dz_level_2bit(const uint8_t *qs, int i) { return (qs[32 * (i / 128) + i % 32] >> (2 * (i % 128 / 32))) & 3; }

/* The integer level of element j of a block, what its scale multiplies
 * (convert.h's dz_levels_*): Q8_0 q, Q4_0 q - 8, Q4_1 q, Q5_0 q - 16,
 * Q5_1 q, IQ4_NL levels[q], Q2_K q (0..3), Q3_K q (-4..3), Q4_K q, Q5_K q,
 * Q6_K q - 32. Field offsets in bytes: Q8_0 d qs[32]; Q4_0 d qs[16]; Q4_1 d
 * m qs[16]; Q5_0 d qh[4] qs[16]; Q5_1 d m qh[4] qs[16]; IQ4_NL d qs[16];
 * Q2_K scales[16] qs[64] d dmin; Q3_K hmask[32] qs[64] scales[12] d; Q4_K d
 * dmin scales[12] qs[128]; Q5_K d dmin scales[12] qh[32] qs[128]; Q6_K
 * ql[128] qh[64] scales[16] d. */
DZ_HD int dz_block_level(int type, const uint8_t *b, int j) {
    switch (type) {
    case DZ_TYPE_Q8_0: return (int8_t)b[2 + j];
    case DZ_TYPE_Q4_0: return dz_nibble32(b + 2, j) - 8;
    case DZ_TYPE_Q4_1: return dz_nibble32(b + 4, j);
    case DZ_TYPE_Q5_0: return (dz_nibble32(b + 6, j) | (int)((dz_ld_u32_le(b + 2) >> j) & 1u) << 4) - 16;
    case DZ_TYPE_Q5_1: return dz_nibble32(b + 8, j) | (int)((dz_ld_u32_le(b + 4) >> j) & 1u) << 4;
    case DZ_TYPE_IQ4_NL: {
        const int8_t levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
        return levels[dz_nibble32(b + 2, j)];
    }
    case DZ_TYPE_Q2_K: return dz_level_2bit(b + 16, j);
    case DZ_TYPE_Q3_K: return dz_level_2bit(b + 32, j) - (((b[j % 32] >> (j / 32)) & 1) ? 0 : 4);
    case DZ_TYPE_Q4_K:
    case DZ_TYPE_Q5_K: {
        const bool five = type == DZ_TYPE_Q5_K;
        const uint8_t byte = b[(five ? 48 : 16) + 32 * (j / 64) + j % 32];
        const int q = j % 64 < 32 ? byte & 0x0f : byte >> 4;
        return five ? q | ((b[16 + j % 32] >> (j / 32)) & 1) << 4 : q;
    }
    case DZ_TYPE_Q6_K: {
        const int h = j / 128, s = j % 128 / 32, l = j % 32;
        const uint8_t lo = b[64 * h + 32 * (s & 1) + l];
        return ((s >= 2 ? lo >> 4 : lo & 0x0f) | ((b[128 + 32 * h + l] >> (2 * s)) & 3) << 4) - 32;
    }
    default: return 0;
    }
}

/* Elements per scale group of a K-quant: 16 (Q2_K, Q3_K, Q6_K) or 32 (Q4_K, Q5_K). */
DZ_HD int dz_k_group_size(int type) { return type == DZ_TYPE_Q4_K || type == DZ_TYPE_Q5_K ? 32 : 16; }

/* Scale and minimum (0 where the type has none) of group g of a K-quant
 * super-block: Q2_K 4-bit scale and min; Q3_K signed 6-bit scale; Q4_K/Q5_K
 * 6-bit scale and min; Q6_K int8 scale. */
DZ_HD void dz_k_group(int type, const uint8_t *b, int g, int *sc, int *mn) {
    *mn = 0;
    switch (type) {
    case DZ_TYPE_Q2_K:
        *sc = b[g] & 0x0f;
        *mn = b[g] >> 4;
        break;
    case DZ_TYPE_Q3_K: {
        const uint8_t *scales = b + 96;
        const int lo = g < 8 ? scales[g] & 0x0f : scales[g - 8] >> 4;
        const int hi = (scales[8 + g % 4] >> (2 * (g / 4))) & 3;
        *sc = (lo | hi << 4) - 32;
        break;
    }
    case DZ_TYPE_Q4_K:
    case DZ_TYPE_Q5_K: {
        const uint8_t *scales = b + 4;
        if (g < 4) {
            *sc = scales[g] & 63;
            *mn = scales[g + 4] & 63;
        } else {
            *sc = (scales[g + 4] & 0x0f) | (scales[g - 4] >> 6) << 4;
            *mn = (scales[g + 4] >> 4) | (scales[g] >> 6) << 4;
        }
        break;
    }
    case DZ_TYPE_Q6_K: *sc = (int8_t)b[192 + g]; break;
    default: *sc = 0; break;
    }
}

/* The fp16 scale d of a block, and its second fp16 field (Q4_1/Q5_1 m, Q2_K/Q4_K/Q5_K dmin; 0 if none). */
DZ_HD float dz_block_d(int type, const uint8_t *b) {
    switch (type) {
    case DZ_TYPE_Q2_K: return dz_half_to_float(dz_ld_u16_le(b + 80));
    case DZ_TYPE_Q3_K: return dz_half_to_float(dz_ld_u16_le(b + 108));
    case DZ_TYPE_Q6_K: return dz_half_to_float(dz_ld_u16_le(b + 208));
    default: return dz_half_to_float(dz_ld_u16_le(b));
    }
}

DZ_HD float dz_block_m(int type, const uint8_t *b) {
    switch (type) {
    case DZ_TYPE_Q4_1: case DZ_TYPE_Q5_1: case DZ_TYPE_Q4_K: case DZ_TYPE_Q5_K:
        return dz_half_to_float(dz_ld_u16_le(b + 2));
    case DZ_TYPE_Q2_K: return dz_half_to_float(dz_ld_u16_le(b + 82));
    default: return 0.0f;
    }
}

/* Element j of one block as a float, with the host dequantizers' arithmetic
 * in their order (src/tensor/quant_legacy.c, quant_iq.c, quant_k.c). */
DZ_HD float dz_dequant_in_block(int type, const uint8_t *b, int j) {
    const float q = (float)dz_block_level(type, b, j), d = dz_block_d(type, b);
    switch (type) {
    case DZ_TYPE_Q4_1: case DZ_TYPE_Q5_1: return q * d + dz_block_m(type, b);
    case DZ_TYPE_Q2_K: case DZ_TYPE_Q4_K: case DZ_TYPE_Q5_K: { /* (d * sc) * q - dmin * mn */
        int sc, mn;
        dz_k_group(type, b, j / dz_k_group_size(type), &sc, &mn);
        return d * (float)sc * q - dz_block_m(type, b) * (float)mn;
    }
    case DZ_TYPE_Q3_K: case DZ_TYPE_Q6_K: { /* d * sc * q */
        int sc, mn;
        dz_k_group(type, b, j / 16, &sc, &mn);
        return d * (float)sc * q;
    }
    case DZ_TYPE_IQ4_NL: return d * q;
    default: return q * d; /* Q8_0, Q4_0, Q5_0 */
    }
}

/* Element i of a row of t starting at `row`: plain types through nb[0],
 * quantized ones through their blocks (rows of whole, packed blocks). */
DZ_HD float dz_ld_elem(const dz_ct &t, const char *row, int64_t i) {
    const int bytes = dz_block_bytes(t.type);
    if (bytes == 0) return dz_ld_plain(t.type, row + i * t.nb[0]);
    const int n = dz_block_elems(t.type);
    return dz_dequant_in_block(t.type, (const uint8_t *)row + (i / n) * bytes, (int)(i % n));
}

/* ---- the reference's float reductions and exp ---- */

/* The sum of 16 floats in the order of the reference's dz_cpu_reduce16
 * (gcc's _mm512_reduce_add_ps). */
DZ_HD float dz_reduce16(const float l[16]) {
    float t3[8], t6[4];
    for (int i = 0; i < 8; i++) t3[i] = l[8 + i] + l[i];
    for (int i = 0; i < 4; i++) t6[i] = t3[4 + i] + t3[i];
    return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

/* The sum of 8 floats in the order of the reference's hsum8 (ggml's hsum_float_8). */
DZ_HD float dz_hsum8(const float v[8]) {
    const float r0 = v[4] + v[0], r1 = v[5] + v[1], r2 = v[6] + v[2], r3 = v[7] + v[3];
    return (r0 + r2) + (r1 + r3);
}

/* exp(x) as the reference's dz_cpu_expf_ggml computes it (ggml's vector
 * expf, one lane), operation for operation: the same bits. */
DZ_HD float dz_expf_ggml(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    if (n != n) return n;
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                         fmaf(0x1.ffffecp-1f, b, 1.0f));
    return ldexpf(j, (int)n);
}

/* ---- error bits ---- */

DZ_HD void dz_flag(unsigned *word, unsigned bit) {
#ifdef __CUDA_ARCH__
    atomicOr(word, bit);
#else
    *word |= bit;
#endif
}

/* ---- teams: the threads that share one row or tile ----
 * rank() in 0..size()-1; sync() is a barrier of the team; sum() and max()
 * reduce a value over the team and return the result to every member
 * (every member must call them, in the same order). */

struct dz_op_sum {
    template <typename T> DZ_HD T operator()(T a, T b) const { return a + b; }
};
struct dz_op_max {
    DZ_HD float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct dz_op_min_int {
    DZ_HD int operator()(int a, int b) const { return a < b ? a : b; }
};

#ifdef __CUDACC__
template <typename T, typename Op> __device__ inline T dz_warp_reduce(T v, Op op) {
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Over a block whose size is a multiple of 32: each warp reduces its own
 * values, then every warp reduces the per-warp results (so that every
 * thread ends with the total, without a broadcast). */
template <typename T, typename Op> __device__ inline T dz_block_reduce(T v, T identity, Op op) {
    __shared__ T partial[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = (blockDim.x + 31) >> 5;
    v = dz_warp_reduce(v, op);
    __syncthreads(); /* the previous reduction may still be reading partial */
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < n_warps ? partial[lane] : identity;
    return dz_warp_reduce(v, op);
}
#endif

/* A CUDA block (size a multiple of 32). */
struct dz_block_team {
    DZ_HD int rank() const {
#ifdef __CUDA_ARCH__
        return (int)threadIdx.x;
#else
        return 0;
#endif
    }
    DZ_HD int size() const {
#ifdef __CUDA_ARCH__
        return (int)blockDim.x;
#else
        return 1;
#endif
    }
    DZ_HD void sync() const {
#ifdef __CUDA_ARCH__
        __syncthreads();
#endif
    }
    template <typename T> DZ_HD T sum(T v) const {
#ifdef __CUDA_ARCH__
        return dz_block_reduce(v, (T)0, dz_op_sum());
#else
        return v;
#endif
    }
    DZ_HD float max(float v) const {
#ifdef __CUDA_ARCH__
        return dz_block_reduce(v, -INFINITY, dz_op_max());
#else
        return v;
#endif
    }
};

/* One warp of 32 lanes. */
struct dz_warp_team {
    DZ_HD int rank() const {
#ifdef __CUDA_ARCH__
        return (int)(threadIdx.x & 31);
#else
        return 0;
#endif
    }
    DZ_HD int size() const {
#ifdef __CUDA_ARCH__
        return 32;
#else
        return 1;
#endif
    }
    DZ_HD void sync() const {
#ifdef __CUDA_ARCH__
        __syncwarp();
#endif
    }
    template <typename T> DZ_HD T sum(T v) const {
#ifdef __CUDA_ARCH__
        return dz_warp_reduce(v, dz_op_sum());
#else
        return v;
#endif
    }
    DZ_HD float max(float v) const {
#ifdef __CUDA_ARCH__
        return dz_warp_reduce(v, dz_op_max());
#else
        return v;
#endif
    }
    DZ_HD int min(int v) const {
#ifdef __CUDA_ARCH__
        return dz_warp_reduce(v, dz_op_min_int());
#else
        return v;
#endif
    }
};

/* The host stand-in of either: one thread. */
struct dz_host_team {
    DZ_HD int rank() const { return 0; }
    DZ_HD int size() const { return 1; }
    DZ_HD void sync() const {}
    template <typename T> DZ_HD T sum(T v) const { return v; }
    DZ_HD float max(float v) const { return v; }
    DZ_HD int min(int v) const { return v; }
};

/* Softmax of a row of n scores w (memory the team shares) whose maximum is
 * `max`, as the reference's dz_cpu_softmax_row: w_i = expf_ggml(w_i - max),
 * the sums of chunks of 16 (in dz_reduce16's order) added in double, then
 * w_i * (float)(1 / sum); a row with nothing visible (max -inf) becomes
 * zeros. Each member owns the elements rank, rank + size, ...; the chunk
 * sums read the others' (after a barrier). */
template <class Team> DZ_HD void dz_softmax_row(const Team &team, float *w, int64_t n, float max) {
    if (max == -INFINITY) { /* the same for the whole team */
        for (int64_t i = team.rank(); i < n; i += team.size()) w[i] = 0.0f;
        return;
    }
    for (int64_t i = team.rank(); i < n; i += team.size()) w[i] = dz_expf_ggml(w[i] - max);
    team.sync();
    double sum = 0.0;
    for (int64_t c = team.rank(); 16 * c < n; c += team.size()) {
        float e[16];
        for (int i = 0; i < 16; i++) e[i] = 16 * c + i < n ? w[16 * c + i] : 0.0f;
        sum += (double)dz_reduce16(e);
    }
    sum = team.sum(sum);
    const float inv = (float)(1.0 / sum);
    for (int64_t i = team.rank(); i < n; i += team.size()) w[i] *= inv;
}

/* ---- launching ---- */

static inline cudaStream_t dz_stream(const dz_cuda_exec *ex) { return (cudaStream_t)ex->stream; }

/* Grid size for n items of `per_block` each, capped (kernels loop over the rest). */
static inline unsigned dz_grid(int64_t n, int64_t per_block, int64_t cap) {
    int64_t blocks = (n + per_block - 1) / per_block;
    return (unsigned)(blocks < cap ? blocks : cap);
}

#ifdef __CUDACC__
/* One thread per element e in [0, n): f(e). */
template <class F> __global__ void dz_elements_kernel(F f, int64_t n) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x)
        f(e);
}

/* One block per row r in [0, rows): f(team, r). */
template <class F> __global__ void dz_rows_kernel(F f, int64_t rows) {
    const dz_block_team team{};
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) f(team, r);
}

/* One warp per item i in [0, n): f(team, i). */
enum { DZ_WARPS_PER_BLOCK = 4 };
template <class F> __global__ void dz_warps_kernel(F f, int64_t n) {
    const dz_warp_team team{};
    const int64_t per_grid = (int64_t)gridDim.x * DZ_WARPS_PER_BLOCK;
    for (int64_t i = (int64_t)blockIdx.x * DZ_WARPS_PER_BLOCK + threadIdx.x / 32; i < n; i += per_grid) f(team, i);
}

/* f(e) for every element of [0, n), on the GPU or the host. */
template <class F> static int dz_run_elements(const F &f, int64_t n, const dz_cuda_exec *ex) {
    if (n <= 0) return 0;
    if (ex->host) {
        for (int64_t e = 0; e < n; e++) f(e);
        return 0;
    }
    enum { THREADS = 256 };
    dz_elements_kernel<<<dz_grid(n, THREADS, 1 << 16), THREADS, 0, dz_stream(ex)>>>(f, n);
    return (int)cudaGetLastError();
}

/* f(team, i) for every item of [0, n), a warp per item. */
template <class F> static int dz_run_warps(const F &f, int64_t n, const dz_cuda_exec *ex) {
    if (n <= 0) return 0;
    if (ex->host) {
        const dz_host_team team{};
        for (int64_t i = 0; i < n; i++) f(team, i);
        return 0;
    }
    dz_warps_kernel<<<dz_grid(n, DZ_WARPS_PER_BLOCK, 1 << 16), DZ_WARPS_PER_BLOCK * 32, 0, dz_stream(ex)>>>(f, n);
    return (int)cudaGetLastError();
}

/* f(team, r) for every row of [0, rows), a block of `threads` per row. */
template <class F> static int dz_run_rows(const F &f, int64_t rows, int threads, const dz_cuda_exec *ex) {
    if (rows <= 0) return 0;
    if (ex->host) {
        const dz_host_team team{};
        for (int64_t r = 0; r < rows; r++) f(team, r);
        return 0;
    }
    dz_rows_kernel<<<dz_grid(rows, 1, 1 << 16), threads, 0, dz_stream(ex)>>>(f, rows);
    return (int)cudaGetLastError();
}
#endif

#endif /* DZ_CUDA_COMMON_CUH */
