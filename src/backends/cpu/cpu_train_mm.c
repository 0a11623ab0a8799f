/* Reference kernels of the matmul and attention gradients: plain scalar C,
 * sums in double, every operand read through its strides.
 *
 *   MUL_MAT_BACK_X: dX row m = sum_n dY[m][n] W row n (W dequantized a row
 *                   at a time: any type with a dequantizer), X rows split.
 *   MUL_MAT_BACK_W: dW row n = sum_m dY[m][n] X row m, dW rows split.
 *   ATTENTION_BACK: causal attention's gradients, kv heads split (a kv head's
 *                   dk and dv gather the rows of every query head of its group). */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu_train.h"

enum { BX_ROWS = 16 }; /* MUL_MAT_BACK_X: dX rows accumulated together (W rows read once per chunk) */

static float ld(const char *p) {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void coords(const dz_tensor *t, int64_t r, int64_t *i1, int64_t *i2, int64_t *i3) {
    *i1 = r % t->ne[1];
    *i2 = r / t->ne[1] % t->ne[2];
    *i3 = r / (t->ne[1] * t->ne[2]);
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t dz_cpu_train_mm_thread_bytes(const dz_tensor *node) {
    switch (node->op) {
    case DZ_OP_MUL_MAT_BACK_X: {
        const size_t K = (size_t)node->src[0]->ne[0];
        return align64(BX_ROWS * K * sizeof(double)) + align64(K * sizeof(float));
    }
    case DZ_OP_MUL_MAT_BACK_W:
        return align64((size_t)node->src[0]->ne[0] * sizeof(double));
    case DZ_OP_ATTENTION_BACK: {
        const size_t hd = (size_t)node->src[0]->ne[0], T = (size_t)node->src[0]->ne[2];
        return (2 * T * hd + 2 * T + hd) * sizeof(double);
    }
    default:
        return 0;
    }
}

/* W (K, N) any type, dY (N, M, B2, B3) F32 -> dX (K, M, B2, B3). */
void dz_cpu_mul_mat_back_x(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *w = out->src[0], *dy = out->src[1];
    const int64_t K = w->ne[0], N = w->ne[1];
    char *mine = job->per_thread + (size_t)ith * job->thread_bytes;
    double *acc = (double *)mine;
    float *wrow = (float *)(mine + align64(BX_ROWS * (size_t)K * sizeof(double)));
    int64_t lo, hi, i1, i2, i3;
    dz_cpu_split(dz_nrows(dy), ith, nth, &lo, &hi);
    for (int64_t r0 = lo; r0 < hi; r0 += BX_ROWS) {
        const int64_t rows = hi - r0 < BX_ROWS ? hi - r0 : BX_ROWS;
        memset(acc, 0, (size_t)(rows * K) * sizeof(double));
        for (int64_t n = 0; n < N; n++) {
            dz_cpu_train_load_row(w, n, 0, 0, wrow);
            for (int64_t j = 0; j < rows; j++) {
                coords(dy, r0 + j, &i1, &i2, &i3);
                const double g = ld(dz_cpu_at(dy, n, i1, i2, i3));
                double *a = acc + j * K;
                for (int64_t k = 0; k < K; k++) a[k] += g * (double)wrow[k];
            }
        }
        for (int64_t j = 0; j < rows; j++) {
            coords(dy, r0 + j, &i1, &i2, &i3);
            float *dst = (float *)dz_cpu_at(out, 0, i1, i2, i3);
            for (int64_t k = 0; k < K; k++) dst[k] = (float)acc[j * K + k];
        }
    }
}

/* X (K, M, B2, B3), dY (N, M, B2, B3) F32 -> dW (K, N). */
void dz_cpu_mul_mat_back_w(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *x = out->src[0], *dy = out->src[1];
    const int64_t K = x->ne[0], rows = dz_nrows(x);
    double *acc = (double *)(job->per_thread + (size_t)ith * job->thread_bytes);
    int64_t lo, hi, i1, i2, i3;
    dz_cpu_split(dy->ne[0], ith, nth, &lo, &hi);
    for (int64_t n = lo; n < hi; n++) {
        memset(acc, 0, (size_t)K * sizeof(double));
        for (int64_t r = 0; r < rows; r++) {
            coords(x, r, &i1, &i2, &i3);
            const double g = ld(dz_cpu_at(dy, n, i1, i2, i3));
            if (g == 0.0) continue;
            for (int64_t k = 0; k < K; k++) acc[k] += g * ld(dz_cpu_at(x, k, i1, i2, i3));
        }
        float *dst = (float *)dz_cpu_at(out, 0, n, 0, 0);
        for (int64_t k = 0; k < K; k++) dst[k] = (float)acc[k];
    }
}

/* Element d of row (h, t) of an F32 (hd, heads, T) tensor. */
static double el(const dz_tensor *t, int64_t d, int64_t h, int64_t s) { return ld(dz_cpu_at(t, d, h, s, 0)); }

/* For query head h at position t, with p_j = softmax_j (scale q_t . k_j) over
 * j <= t and o_t = sum_j p_j v_j:
 *   dv_j += p_j do_t;  dp_j = do_t . v_j;  ds_j = p_j (dp_j - sum_i p_i dp_i);
 *   dq_t = scale sum_j ds_j k_j;  dk_j += scale ds_j q_t. */
void dz_cpu_attention_back(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *q = out->src[0], *k = out->src[1], *v = out->src[2], *dout = out->src[3];
    const int64_t hd = q->ne[0], H = q->ne[1], G = k->ne[1], T = q->ne[2], group = H / G;
    const double scale = out->params.f[0];
    double *dk = (double *)(job->per_thread + (size_t)ith * job->thread_bytes);
    double *dv = dk + T * hd, *p = dv + T * hd, *dp = p + T, *dq = dp + T;
    int64_t lo, hi;
    dz_cpu_split(G, ith, nth, &lo, &hi);
    for (int64_t g = lo; g < hi; g++) {
        memset(dk, 0, (size_t)(2 * T * hd) * sizeof(double));
        for (int64_t h = g * group; h < (g + 1) * group; h++) {
            for (int64_t t = 0; t < T; t++) {
                double max = -INFINITY, sum = 0.0, dsum = 0.0;
                for (int64_t j = 0; j <= t; j++) {
                    double s = 0.0, e = 0.0;
                    for (int64_t d = 0; d < hd; d++) {
                        s += el(q, d, h, t) * el(k, d, g, j);
                        e += el(dout, d, h, t) * el(v, d, g, j);
                    }
                    p[j] = s * scale;
                    dp[j] = e;
                    max = p[j] > max ? p[j] : max;
                }
                for (int64_t j = 0; j <= t; j++) sum += p[j] = exp(p[j] - max);
                for (int64_t j = 0; j <= t; j++) {
                    p[j] /= sum;
                    dsum += p[j] * dp[j];
                }
                memset(dq, 0, (size_t)hd * sizeof(double));
                for (int64_t j = 0; j <= t; j++) {
                    const double ds = p[j] * (dp[j] - dsum) * scale;
                    for (int64_t d = 0; d < hd; d++) {
                        dq[d] += ds * el(k, d, g, j);
                        dk[j * hd + d] += ds * el(q, d, h, t);
                        dv[j * hd + d] += p[j] * el(dout, d, h, t);
                    }
                }
                float *dst = (float *)dz_cpu_at(out, h * hd, t, 0, 0);
                for (int64_t d = 0; d < hd; d++) dst[d] = (float)dq[d];
            }
        }
        for (int64_t t = 0; t < T; t++) {
            float *dkt = (float *)dz_cpu_at(out, (H + g) * hd, t, 0, 0);
            float *dvt = (float *)dz_cpu_at(out, (H + G + g) * hd, t, 0, 0);
            for (int64_t d = 0; d < hd; d++) {
                dkt[d] = (float)dk[t * hd + d];
                dvt[d] = (float)dv[t * hd + d];
            }
        }
    }
}
