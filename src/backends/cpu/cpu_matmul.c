/* MUL_MAT: out (N, M, B2, B3) = W (K, N, b2, b3) x X (K, M, B2, B3), with
 * out[m][n] = dot(W row n, X row m) and W repeated over dims 2 and 3.
 *
 * As in ggml, X is first converted to the weights' "dot type" and the dot
 * runs in that type:
 *   W F32  -> X F32,  sum of float products in double
 *   W F16  -> X F16,  sum of float products (of fp16 values) in double
 *   W BF16 -> X BF16, likewise
 *   W Q8_0, Q4_0 -> X quantized to Q8_0 per block of 32 with the rounding
 *          of ggml's x86 activation quantizer (DZ_Q8_ROUND_ACTIVATIONS in
 *          tensor/convert.h); integer dot per block, then
 *          sum += (float)sumi * d_w * d_x in float. */
#include <string.h>

#include "backends/cpu/cpu_impl.h"
#include "tensor/convert.h"

bool dz_cpu_mul_mat_supports_type(dz_type t) {
    return t == DZ_TYPE_F32 || t == DZ_TYPE_F16 || t == DZ_TYPE_BF16 || t == DZ_TYPE_Q8_0 || t == DZ_TYPE_Q4_0;
}

static dz_type dot_type_of(dz_type w) {
    return w == DZ_TYPE_Q8_0 || w == DZ_TYPE_Q4_0 ? DZ_TYPE_Q8_0 : w;
}

/* Bytes of one converted X row. */
static size_t x_row_bytes(const dz_tensor *node) {
    const dz_tensor *w = node->src[0];
    const dz_type_traits *tt = dz_type_info((int)dot_type_of(w->type));
    return (size_t)(w->ne[0] / tt->block_size) * tt->type_size;
}

size_t dz_cpu_mul_mat_shared_bytes(const dz_tensor *node) {
    return x_row_bytes(node) * (size_t)dz_nrows(node->src[1]);
}

/* Converts every row of X into shared, row r = (m, b2, b3) at r * row_bytes.
 * Gathers 32 elements at a time so strided X needs no extra memory. */
void dz_cpu_mul_mat_prepare(const dz_tensor *node, void *shared) {
    const dz_tensor *x = node->src[1];
    const dz_type t = dot_type_of(node->src[0]->type);
    const dz_type_traits *tt = dz_type_info((int)t);
    const size_t row_bytes = x_row_bytes(node);
    const int64_t k = x->ne[0];
    float chunk[32];
    int64_t r = 0;
    for (int64_t i3 = 0; i3 < x->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < x->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < x->ne[1]; i1++, r++) {
                char *dst = (char *)shared + (size_t)r * row_bytes;
                for (int64_t c = 0; c < k; c += 32) {
                    int64_t len = k - c < 32 ? k - c : 32;
                    for (int64_t i = 0; i < len; i++)
                        memcpy(&chunk[i], dz_cpu_at(x, c + i, i1, i2, i3), sizeof(float));
                    /* len is a multiple of the block size: K is, and 32 is. */
                    char *at = dst + (size_t)(c / tt->block_size) * tt->type_size;
                    if (t == DZ_TYPE_Q8_0)
                        dz_quantize_row_q8_0_with(chunk, (dz_block_q8_0 *)at, len, DZ_Q8_ROUND_ACTIVATIONS);
                    else
                        dz_quantize_row(t, chunk, at, len);
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

static float dot_q8_0_q8_0(int64_t k, const void *w, const void *x) {
    const dz_block_q8_0 *a = w, *b = x;
    float sum = 0.0f;
    for (int64_t blk = 0; blk < k / DZ_QK8_0; blk++) {
        int sumi = 0;
        for (int j = 0; j < DZ_QK8_0; j++) sumi += a[blk].qs[j] * b[blk].qs[j];
        sum += (float)sumi * (dz_fp16_to_fp32(a[blk].d) * dz_fp16_to_fp32(b[blk].d));
    }
    return sum;
}

static float dot_q4_0_q8_0(int64_t k, const void *w, const void *x) {
    const dz_block_q4_0 *a = w;
    const dz_block_q8_0 *b = x;
    float sum = 0.0f;
    for (int64_t blk = 0; blk < k / DZ_QK4_0; blk++) {
        int sumi_lo = 0, sumi_hi = 0;
        for (int j = 0; j < DZ_QK4_0 / 2; j++) {
            sumi_lo += ((a[blk].qs[j] & 0x0f) - 8) * b[blk].qs[j];
            sumi_hi += ((a[blk].qs[j] >> 4) - 8) * b[blk].qs[j + DZ_QK4_0 / 2];
        }
        sum += (float)(sumi_lo + sumi_hi) * dz_fp16_to_fp32(a[blk].d) * dz_fp16_to_fp32(b[blk].d);
    }
    return sum;
}

static dot_fn dot_of(dz_type w) {
    switch (w) {
    case DZ_TYPE_F16: return dot_f16;
    case DZ_TYPE_BF16: return dot_bf16;
    case DZ_TYPE_Q8_0: return dot_q8_0_q8_0;
    case DZ_TYPE_Q4_0: return dot_q4_0_q8_0;
    default: return dot_f32;
    }
}

void dz_cpu_mul_mat(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *w = out->src[0], *x = out->src[1];
    const dot_fn dot = dot_of(w->type);
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
