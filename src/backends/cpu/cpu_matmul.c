/* MUL_MAT: out (N, M, B2, B3) = W (K, N, b2, b3) x X (K, M, B2, B3), with
 * out[m][n] = dot(W row n, X row m) and W repeated over dims 2 and 3.
 *
 * As in ggml, X is first converted to the weights' "dot type" and the dot
 * runs in that type:
 *   W F32  -> X F32,  sum of float products in double
 *   W F16  -> X F16,  sum of float products (of fp16 values) in double
 *   W BF16 -> X BF16, likewise
 *   W Q8_0, Q4_0, Q5_0, IQ4_NL -> X Q8_0;  W Q4_1, Q5_1 -> X Q8_1;
 *   W Q2_K .. Q6_K -> X Q8_K,
 * with X quantized per block exactly as llama.cpp's x86 build quantizes
 * activations (tensor/convert.h: Q8_0 with DZ_Q8_ROUND_ACTIVATIONS, Q8_1,
 * Q8_K). A random-weight model is chaotic: one activation rounded the other
 * way at a tie moves its logits visibly, so the rounding must be the same.
 * The quantized dots then reproduce the float arithmetic of the kernels that
 * build runs (see "quantized dots" below), so that they equal llama.cpp's
 * bit for bit. */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu_impl.h"
#include "tensor/convert.h"

static dz_type dot_type_of(dz_type w) {
    switch (w) {
    case DZ_TYPE_Q8_0: case DZ_TYPE_Q4_0: case DZ_TYPE_Q5_0: case DZ_TYPE_IQ4_NL:
        return DZ_TYPE_Q8_0;
    case DZ_TYPE_Q4_1: case DZ_TYPE_Q5_1:
        return DZ_TYPE_Q8_1;
    case DZ_TYPE_Q2_K: case DZ_TYPE_Q3_K: case DZ_TYPE_Q4_K: case DZ_TYPE_Q5_K: case DZ_TYPE_Q6_K:
        return DZ_TYPE_Q8_K;
    default:
        return w;
    }
}

/* Every type with a dequantizer has a dot product below. */
bool dz_cpu_mul_mat_supports_type(dz_type t) { return dz_type_can_dequantize(t); }

/* Bytes of one converted X row. */
static size_t x_row_bytes(const dz_tensor *node) {
    const dz_tensor *w = node->src[0];
    const dz_type_traits *tt = dz_type_info((int)dot_type_of(w->type));
    return (size_t)(w->ne[0] / tt->block_size) * tt->type_size;
}

size_t dz_cpu_mul_mat_shared_bytes(const dz_tensor *node) {
    return x_row_bytes(node) * (size_t)dz_nrows(node->src[1]);
}

/* One block of activations (len elements, a multiple of the type's block)
 * converted to dot type t at dst. */
static void quantize_activations(dz_type t, const float *x, void *dst, int64_t len) {
    switch (t) {
    case DZ_TYPE_Q8_0: dz_quantize_row_q8_0_with(x, dst, len, DZ_Q8_ROUND_ACTIVATIONS); break;
    case DZ_TYPE_Q8_1: dz_quantize_row_q8_1(x, dst, len); break;
    case DZ_TYPE_Q8_K: dz_quantize_row_q8_K(x, dst, len); break;
    default: dz_quantize_row(t, x, dst, len); break; /* F32, F16, BF16: cannot fail */
    }
}

/* Converts every row of X into shared, row r = (m, b2, b3) at r * row_bytes.
 * Gathers one block of the dot type at a time (256 elements for Q8_K, else
 * 32), so strided X needs no extra memory. */
void dz_cpu_mul_mat_prepare(const dz_tensor *node, void *shared) {
    const dz_tensor *x = node->src[1];
    const dz_type t = dot_type_of(node->src[0]->type);
    const dz_type_traits *tt = dz_type_info((int)t);
    const int64_t step = tt->block_size > 1 ? tt->block_size : 32;
    const size_t row_bytes = x_row_bytes(node);
    const int64_t k = x->ne[0];
    float chunk[DZ_QK_K];
    int64_t r = 0;
    for (int64_t i3 = 0; i3 < x->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < x->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < x->ne[1]; i1++, r++) {
                char *dst = (char *)shared + (size_t)r * row_bytes;
                for (int64_t c = 0; c < k; c += step) {
                    int64_t len = k - c < step ? k - c : step;
                    for (int64_t i = 0; i < len; i++)
                        memcpy(&chunk[i], dz_cpu_at(x, c + i, i1, i2, i3), sizeof(float));
                    /* len is a multiple of the block size: K is, and step is. */
                    quantize_activations(t, chunk, dst + (size_t)(c / tt->block_size) * tt->type_size, len);
                }
            }
}

/* ---- dots of K elements: W row w, converted X row x ---- */

typedef float (*dot_fn)(int64_t k, const void *w, const void *x);

static float dot_f32(int64_t k, const void *w, const void *x) {
    const float *a = w, *b = x;
    double sum = 0.0;
    for (int64_t i = 0; i < k; i++) sum += (double)(a[i] * b[i]);
    return (float)sum;
}

static float dot_f16(int64_t k, const void *w, const void *x) {
    const uint16_t *a = w, *b = x;
    double sum = 0.0;
    for (int64_t i = 0; i < k; i++) sum += (double)(dz_fp16_to_fp32(a[i]) * dz_fp16_to_fp32(b[i]));
    return (float)sum;
}

static float dot_bf16(int64_t k, const void *w, const void *x) {
    const uint16_t *a = w, *b = x;
    double sum = 0.0;
    for (int64_t i = 0; i < k; i++) sum += (double)(dz_bf16_to_fp32(a[i]) * dz_bf16_to_fp32(b[i]));
    return (float)sum;
}

/* ---- quantized dots: ggml's AVX2 float structure, reproduced ----
 *
 * ggml's x86 kernels for the quantized types (the AVX2 vec_dot functions and,
 * for batches of Q8_0/Q5_0/IQ4_NL, llamafile's tinyBLAS_Q0_AVX) keep 8 float
 * partial sums, "lanes". Lane l receives the exact integer dot product of the
 * elements whose index within their run of 32 is 4l..4l+3 (scaled by their
 * group scale, for the K-quants), converted to float and fused-multiply-added
 * with the float product of the block scales; the lanes are added at the end
 * in the order of ggml's hsum_float_8 (the integer parts are exact, so the
 * AVX2, AVX-VNNI and AVX512-VNNI variants agree). Doing the same here makes
 * dizuo's dots bit-identical to llama.cpp's (checked against libggml-cpu of
 * build 4748 on random rows of every type, one X row and batches): with a
 * random-weight model, where a 1-ulp difference can flip the rounding of a
 * later activation, that is what keeps the logits of ../shared/conformance
 * equal to the reference up to the first difference elsewhere. */

/* Sum of 8 lanes in the order of ggml's hsum_float_8. */
static float hsum8(const float v[8]) {
    const float r0 = v[4] + v[0], r1 = v[5] + v[1], r2 = v[6] + v[2], r3 = v[7] + v[3];
    return (r0 + r2) + (r1 + r3);
}

/* lane[l] = sum of q[j] * x[j] over j = 4l..4l+3 of one block of 32. */
static void lane_sums_32(const int8_t q[32], const int8_t x[32], int lane[8]) {
    for (int l = 0; l < 8; l++) {
        const int j = 4 * l;
        lane[l] = q[j] * x[j] + q[j + 1] * x[j + 1] + q[j + 2] * x[j + 2] + q[j + 3] * x[j + 3];
    }
}

/* acc[l] = fma(d, lane[l], acc[l]) for the 8 lanes. */
static void lanes_fma(float acc[8], float d, const int lane[8]) {
    for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)lane[l], acc[l]);
}

/* ---- blocks of 32 ---- */

static float dot_q8_0_q8_0(int64_t k, const void *w, const void *x) {
    const dz_block_q8_0 *a = w, *b = x;
    float acc[8] = {0};
    int lane[8];
    for (int64_t i = 0; i < k / DZ_QK8_0; i++) {
        lane_sums_32(a[i].qs, b[i].qs, lane);
        lanes_fma(acc, dz_fp16_to_fp32(a[i].d) * dz_fp16_to_fp32(b[i].d), lane);
    }
    return hsum8(acc);
}

/* The types whose levels need no minimum, against Q8_0. */
#define DOT_SYMMETRIC_32(name, block_t, levels_fn)                                         \
    static float name(int64_t k, const void *w, const void *x) {                           \
        const block_t *a = w;                                                              \
        const dz_block_q8_0 *b = x;                                                        \
        int8_t q[32];                                                                      \
        int lane[8];                                                                       \
        float acc[8] = {0};                                                                \
        for (int64_t i = 0; i < k / 32; i++) {                                             \
            levels_fn(&a[i], q);                                                           \
            lane_sums_32(q, b[i].qs, lane);                                                \
            lanes_fma(acc, dz_fp16_to_fp32(a[i].d) * dz_fp16_to_fp32(b[i].d), lane);       \
        }                                                                                  \
        return hsum8(acc);                                                                 \
    }

DOT_SYMMETRIC_32(dot_q4_0_q8_0, dz_block_q4_0, dz_levels_q4_0)
DOT_SYMMETRIC_32(dot_q5_0_q8_0, dz_block_q5_0, dz_levels_q5_0)
DOT_SYMMETRIC_32(dot_iq4_nl_q8_0, dz_block_iq4_nl, dz_levels_iq4_nl)

/* Q4_0 as llama.cpp's x86 build computes it for a repacked matrix (2-D, rows
 * a multiple of 8, interleaved at load): its gemm/gemv kernels take each
 * block's whole integer dot into a single float sum,
 * sum = fma(sumi, d_w * d_x, sum). */
static float dot_q4_0_repacked(int64_t k, const void *w, const void *x) {
    const dz_block_q4_0 *a = w;
    const dz_block_q8_0 *b = x;
    int8_t q[32];
    int lane[8];
    float sum = 0.0f;
    for (int64_t i = 0; i < k / DZ_QK4_0; i++) {
        dz_levels_q4_0(&a[i], q);
        lane_sums_32(q, b[i].qs, lane);
        int sumi = 0;
        for (int l = 0; l < 8; l++) sumi += lane[l];
        sum = fmaf((float)sumi, dz_fp16_to_fp32(a[i].d) * dz_fp16_to_fp32(b[i].d), sum);
    }
    return sum;
}

/* IQ4_NL with a single X row, where llama.cpp uses its AVX2 vec_dot rather
 * than tinyBLAS: even and odd blocks in two sets of lanes, added before the
 * horizontal sum; an odd last block is added alone. */
static float dot_iq4_nl_single(int64_t k, const void *w, const void *x) {
    const dz_block_iq4_nl *a = w;
    const dz_block_q8_0 *b = x;
    const int64_t nb = k / DZ_QK4_NL;
    int8_t q[32];
    int lane[8];
    float acc[2][8] = {{0}}, sum8[8];
    int64_t i = 0;
    for (; i + 1 < nb; i += 2)
        for (int h = 0; h < 2; h++) {
            dz_levels_iq4_nl(&a[i + h], q);
            lane_sums_32(q, b[i + h].qs, lane);
            lanes_fma(acc[h], dz_fp16_to_fp32(b[i + h].d) * dz_fp16_to_fp32(a[i + h].d), lane);
        }
    for (int l = 0; l < 8; l++) sum8[l] = acc[0][l] + acc[1][l];
    float sum = hsum8(sum8);
    if (i < nb) {
        dz_levels_iq4_nl(&a[i], q);
        lane_sums_32(q, b[i].qs, lane);
        int sumi = 0;
        for (int l = 0; l < 8; l++) sumi += lane[l];
        sum += dz_fp16_to_fp32(b[i].d) * dz_fp16_to_fp32(a[i].d) * (float)sumi; /* not fused */
    }
    return sum;
}

/* With a minimum m per block, against Q8_1: m * s summed apart in one float
 * (each product of two fp16 values is exact in float) and added last. */
#define DOT_MIN_32(name, block_t, levels_fn)                                               \
    static float name(int64_t k, const void *w, const void *x) {                           \
        const block_t *a = w;                                                              \
        const dz_block_q8_1 *b = x;                                                        \
        int8_t q[32];                                                                      \
        int lane[8];                                                                       \
        float acc[8] = {0}, summs = 0.0f;                                                  \
        for (int64_t i = 0; i < k / 32; i++) {                                             \
            levels_fn(&a[i], q);                                                           \
            summs += dz_fp16_to_fp32(a[i].m) * dz_fp16_to_fp32(b[i].s);                    \
            lane_sums_32(q, b[i].qs, lane);                                                \
            lanes_fma(acc, dz_fp16_to_fp32(a[i].d) * dz_fp16_to_fp32(b[i].d), lane);       \
        }                                                                                  \
        return hsum8(acc) + summs;                                                         \
    }

DOT_MIN_32(dot_q4_1_q8_1, dz_block_q4_1, dz_levels_q4_1)
DOT_MIN_32(dot_q5_1_q8_1, dz_block_q5_1, dz_levels_q5_1)

/* ---- K-quants against Q8_K: per super-block, integer lanes with the group
 * scales applied, times d = d_x * d_w ---- */

/* lane[l] = sum over the elements i with i % 32 in 4l..4l+3 of
 * scale[i / group] * q[i] * x[i]. */
static void k_lane_sums(const int8_t q[DZ_QK_K], const int8_t x[DZ_QK_K], const int *scale, int group,
                        int lane[8]) {
    memset(lane, 0, 8 * sizeof *lane);
    for (int i = 0; i < DZ_QK_K; i += 4) {
        const int s = q[i] * x[i] + q[i + 1] * x[i + 1] + q[i + 2] * x[i + 2] + q[i + 3] * x[i + 3];
        lane[i % 32 / 4] += scale[i / group] * s;
    }
}

/* Q2_K: lane l first takes dmin times the minimums of groups 2l and 2l + 1
 * (against their Q8_K sums), then d times its scaled sum. */
static float dot_q2_K_q8_K(int64_t k, const void *w, const void *x) {
    const dz_block_q2_K *a = w;
    const dz_block_q8_K *b = x;
    int8_t q[DZ_QK_K];
    int sc[16], lane[8], mins[8];
    float acc[8] = {0};
    for (int64_t i = 0; i < k / DZ_QK_K; i++) {
        for (int g = 0; g < 16; g++) sc[g] = a[i].scales[g] & 0x0f;
        for (int l = 0; l < 8; l++)
            mins[l] = (a[i].scales[2 * l] >> 4) * b[i].bsums[2 * l] +
                      (a[i].scales[2 * l + 1] >> 4) * b[i].bsums[2 * l + 1];
        const float d = b[i].d * dz_fp16_to_fp32(a[i].d), dmin = -b[i].d * dz_fp16_to_fp32(a[i].dmin);
        lanes_fma(acc, dmin, mins);
        dz_levels_q2_K(&a[i], q);
        k_lane_sums(q, b[i].qs, sc, 16, lane);
        lanes_fma(acc, d, lane);
    }
    return hsum8(acc);
}

static float dot_q3_K_q8_K(int64_t k, const void *w, const void *x) {
    const dz_block_q3_K *a = w;
    const dz_block_q8_K *b = x;
    int8_t q[DZ_QK_K], sc8[16];
    int sc[16], lane[8];
    float acc[8] = {0};
    for (int64_t i = 0; i < k / DZ_QK_K; i++) {
        dz_q3_K_scales(a[i].scales, sc8);
        for (int g = 0; g < 16; g++) sc[g] = sc8[g];
        dz_levels_q3_K(&a[i], q);
        k_lane_sums(q, b[i].qs, sc, 16, lane);
        lanes_fma(acc, b[i].d * dz_fp16_to_fp32(a[i].d), lane);
    }
    return hsum8(acc);
}

/* Q4_K/Q5_K: group scales (8 groups of 32) and the minimum term of each
 * super-block: mins[l] = mn[2l] * sum(x in group 2l) + mn[2l+1] * sum(x in
 * group 2l + 1), l < 4. Returns d and dmin. */
static void k4_scales(const uint8_t scales[DZ_K_SCALE_SIZE], const dz_block_q8_K *b, uint16_t d16, uint16_t dmin16,
                      int sc[8], int mins[4], float *d, float *dmin) {
    for (int g = 0; g < 8; g++) {
        uint8_t s, m;
        dz_q4_K_scale_min(g, scales, &s, &m);
        sc[g] = s;
        const int group_sum = b->bsums[2 * g] + b->bsums[2 * g + 1];
        if (g % 2 == 0) mins[g / 2] = m * group_sum;
        else mins[g / 2] += m * group_sum;
    }
    *d = b->d * dz_fp16_to_fp32(d16);
    *dmin = -b->d * dz_fp16_to_fp32(dmin16);
}

/* Q4_K: the minimums in 4 lanes of their own, summed like the scales. */
static float dot_q4_K_q8_K(int64_t k, const void *w, const void *x) {
    const dz_block_q4_K *a = w;
    const dz_block_q8_K *b = x;
    int8_t q[DZ_QK_K];
    int sc[8], mins[4], lane[8];
    float acc[8] = {0}, acc_m[4] = {0}, d, dmin;
    for (int64_t i = 0; i < k / DZ_QK_K; i++) {
        k4_scales(a[i].scales, &b[i], a[i].d, a[i].dmin, sc, mins, &d, &dmin);
        for (int l = 0; l < 4; l++) acc_m[l] = fmaf(dmin, (float)mins[l], acc_m[l]);
        dz_levels_q4_K(&a[i], q);
        k_lane_sums(q, b[i].qs, sc, 32, lane);
        lanes_fma(acc, d, lane);
    }
    return hsum8(acc) + ((acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]));
}

/* Q5_K: the minimums of a super-block summed in integers first, then fused
 * into one float (as the compiler fuses ggml's `summs += dmin * sum`). */
static float dot_q5_K_q8_K(int64_t k, const void *w, const void *x) {
    const dz_block_q5_K *a = w;
    const dz_block_q8_K *b = x;
    int8_t q[DZ_QK_K];
    int sc[8], mins[4], lane[8];
    float acc[8] = {0}, summs = 0.0f, d, dmin;
    for (int64_t i = 0; i < k / DZ_QK_K; i++) {
        k4_scales(a[i].scales, &b[i], a[i].d, a[i].dmin, sc, mins, &d, &dmin);
        summs = fmaf(dmin, (float)(mins[0] + mins[1] + mins[2] + mins[3]), summs);
        dz_levels_q5_K(&a[i], q);
        k_lane_sums(q, b[i].qs, sc, 32, lane);
        lanes_fma(acc, d, lane);
    }
    return hsum8(acc) + summs;
}

static float dot_q6_K_q8_K(int64_t k, const void *w, const void *x) {
    const dz_block_q6_K *a = w;
    const dz_block_q8_K *b = x;
    int8_t q[DZ_QK_K];
    int sc[16], lane[8];
    float acc[8] = {0};
    for (int64_t i = 0; i < k / DZ_QK_K; i++) {
        for (int g = 0; g < 16; g++) sc[g] = a[i].scales[g];
        dz_levels_q6_K(&a[i], q);
        k_lane_sums(q, b[i].qs, sc, 16, lane);
        lanes_fma(acc, b[i].d * dz_fp16_to_fp32(a[i].d), lane);
    }
    return hsum8(acc);
}

static dot_fn dot_of(dz_type w) {
    switch (w) {
    case DZ_TYPE_F16: return dot_f16;
    case DZ_TYPE_BF16: return dot_bf16;
    case DZ_TYPE_Q8_0: return dot_q8_0_q8_0;
    case DZ_TYPE_Q4_0: return dot_q4_0_q8_0;
    case DZ_TYPE_Q4_1: return dot_q4_1_q8_1;
    case DZ_TYPE_Q5_0: return dot_q5_0_q8_0;
    case DZ_TYPE_Q5_1: return dot_q5_1_q8_1;
    case DZ_TYPE_IQ4_NL: return dot_iq4_nl_q8_0;
    case DZ_TYPE_Q2_K: return dot_q2_K_q8_K;
    case DZ_TYPE_Q3_K: return dot_q3_K_q8_K;
    case DZ_TYPE_Q4_K: return dot_q4_K_q8_K;
    case DZ_TYPE_Q5_K: return dot_q5_K_q8_K;
    case DZ_TYPE_Q6_K: return dot_q6_K_q8_K;
    default: return dot_f32;
    }
}

/* The dot for W x X, where llama.cpp's choice of kernel changes the float
 * arithmetic: it repacks 2-D Q4_0 matrices whose rows are a multiple of 8,
 * and uses tinyBLAS (lanes) for batches of 2 or more X rows per matrix but
 * vec_dot for a single row, which differ for IQ4_NL. */
static dot_fn dot_for(const dz_tensor *w, const dz_tensor *x) {
    if (w->type == DZ_TYPE_Q4_0 && w->ne[1] % 8 == 0 && w->ne[2] == 1 && w->ne[3] == 1) return dot_q4_0_repacked;
    if (w->type == DZ_TYPE_IQ4_NL && x->ne[1] < 2) return dot_iq4_nl_single;
    return dot_of(w->type);
}

void dz_cpu_mul_mat(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *w = out->src[0], *x = out->src[1];
    const dot_fn dot = dot_for(w, x);
    const int64_t k = w->ne[0], n_w = w->ne[1], n_x = dz_nrows(x);
    const int64_t r2 = x->ne[2] / w->ne[2], r3 = x->ne[3] / w->ne[3];
    const size_t row_bytes = x_row_bytes(out);
    /* Split the longer of the two output dimensions across threads. */
    int64_t n_lo = 0, n_hi = n_w, x_lo = 0, x_hi = n_x;
    if (n_w >= n_x) dz_cpu_split(n_w, ith, nth, &n_lo, &n_hi);
    else dz_cpu_split(n_x, ith, nth, &x_lo, &x_hi);
    for (int64_t r = x_lo; r < x_hi; r++) {
        const int64_t m = r % x->ne[1], i2 = r / x->ne[1] % x->ne[2], i3 = r / (x->ne[1] * x->ne[2]);
        const char *xrow = (const char *)job->shared + (size_t)r * row_bytes;
        const char *wbase = (const char *)w->data + (size_t)(i2 / r2) * w->nb[2] + (size_t)(i3 / r3) * w->nb[3];
        float *dst = (float *)dz_cpu_at(out, 0, m, i2, i3);
        for (int64_t n = n_lo; n < n_hi; n++) dst[n] = dot(k, wbase + (size_t)n * w->nb[1], xrow);
    }
}
