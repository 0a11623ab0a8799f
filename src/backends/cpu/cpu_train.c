/* Reference kernels of LAYER_NORM, GELU and the training ops other than the
 * matmul and attention gradients (cpu_train_mm.c): plain scalar C, rows (or
 * columns, where outputs are sums over rows) split across threads, sums in
 * double. Also which nodes the CPU takes of these ops, and their data checks. */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu_train.h"

static float ld(const char *p) {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

static int32_t ld_i32(const dz_tensor *t, int64_t i0, int64_t i1, int64_t i2) {
    int32_t v;
    memcpy(&v, dz_cpu_at(t, i0, i1, i2, 0), sizeof v);
    return v;
}

/* (i1, i2, i3) of row r of t. */
static void coords(const dz_tensor *t, int64_t r, int64_t *i1, int64_t *i2, int64_t *i3) {
    *i1 = r % t->ne[1];
    *i2 = r / t->ne[1] % t->ne[2];
    *i3 = r / (t->ne[1] * t->ne[2]);
}

/* Element i of row (i1, i2, i3) of an F32 tensor. */
static double at(const dz_tensor *t, int64_t i, int64_t i1, int64_t i2, int64_t i3) {
    return ld(dz_cpu_at(t, i, i1, i2, i3));
}

void dz_cpu_train_load_row(const dz_tensor *t, int64_t i1, int64_t i2, int64_t i3, float *dst) {
    const char *row = dz_cpu_at(t, 0, i1, i2, i3);
    const dz_type_traits *tt = dz_type_info((int)t->type);
    if (tt->block_size > 1 || t->nb[0] == tt->type_size) {
        dz_dequantize_row(t->type, row, dst, t->ne[0]);
        return;
    }
    for (int64_t i = 0; i < t->ne[0]; i++) dz_dequantize_row(t->type, row + (size_t)i * t->nb[0], dst + i, 1);
}

/* ---- which nodes ---- */

static bool f32(const dz_tensor *t) { return t && t->type == DZ_TYPE_F32; }
static bool same(const dz_tensor *a, const dz_tensor *b) { return memcmp(a->ne, b->ne, sizeof a->ne) == 0; }
static bool i32_vec(const dz_tensor *t, int64_t n) {
    return t && t->type == DZ_TYPE_I32 && t->ne[0] == n && t->ne[1] == 1 && t->ne[2] == 1 && t->ne[3] == 1;
}

bool dz_cpu_train_supports(const dz_tensor *n) {
    const dz_tensor *a = n->src[0], *b = n->src[1], *c = n->src[2], *d = n->src[3];
    switch (n->op) {
    case DZ_OP_RMS_NORM_BACK:
    case DZ_OP_LAYER_NORM_BACK:
    case DZ_OP_GELU_BACK:
        return f32(a) && f32(b) && same(a, b) && same(n, a);
    case DZ_OP_SUM_COLS:
        return f32(a) && n->ne[0] == a->ne[0] && dz_nelements(n) == n->ne[0];
    case DZ_OP_MUL_MAT_BACK_X:
        return a && dz_type_can_dequantize(a->type) && a->ne[2] == 1 && a->ne[3] == 1 && f32(b) &&
               b->ne[0] == a->ne[1] && n->ne[0] == a->ne[0] && n->ne[1] == b->ne[1] && n->ne[2] == b->ne[2] &&
               n->ne[3] == b->ne[3];
    case DZ_OP_MUL_MAT_BACK_W:
        return f32(a) && f32(b) && a->ne[1] == b->ne[1] && a->ne[2] == b->ne[2] && a->ne[3] == b->ne[3] &&
               n->ne[0] == a->ne[0] && n->ne[1] == b->ne[0] && n->ne[2] == 1 && n->ne[3] == 1;
    case DZ_OP_ROPE_BACK: {
        const int n_rot = n->params.i[0], mode = n->params.i[1];
        return f32(a) && b && same(n, a) && a->ne[3] == 1 && i32_vec(b, a->ne[2]) && n_rot >= 2 && n_rot % 2 == 0 &&
               n_rot <= a->ne[0] && (mode == DZ_ROPE_NORMAL || mode == DZ_ROPE_NEOX);
    }
    case DZ_OP_ATTENTION_BACK:
        return f32(a) && f32(b) && f32(c) && f32(d) && same(b, c) && same(a, d) && a->ne[3] == 1 && b->ne[3] == 1 &&
               b->ne[0] == a->ne[0] && b->ne[2] == a->ne[2] && b->ne[1] >= 1 && a->ne[1] % b->ne[1] == 0 &&
               n->ne[0] == a->ne[0] * (a->ne[1] + 2 * b->ne[1]) && n->ne[1] == a->ne[2] && n->ne[2] == 1 &&
               n->ne[3] == 1;
    case DZ_OP_SWIGLU_BACK:
        return f32(a) && f32(b) && f32(c) && same(a, b) && same(a, c) && a->ne[2] == 1 && a->ne[3] == 1 &&
               n->ne[0] == a->ne[0] && n->ne[1] == a->ne[1] && n->ne[2] == 2 && n->ne[3] == 1;
    case DZ_OP_GET_ROWS_BACK:
        return f32(a) && a->ne[2] == 1 && a->ne[3] == 1 && i32_vec(b, a->ne[1]) && n->ne[0] == a->ne[0] &&
               n->ne[1] == n->params.i[0] && n->ne[1] >= 1 && n->ne[2] == 1 && n->ne[3] == 1;
    case DZ_OP_CROSS_ENTROPY:
    case DZ_OP_CROSS_ENTROPY_BACK:
        if (!f32(a) || a->ne[0] < 1 || !b || b->type != DZ_TYPE_I32 || b->ne[0] != a->ne[1] || b->ne[1] != a->ne[2] ||
            b->ne[2] != a->ne[3] || b->ne[3] != 1)
            return false;
        return n->op == DZ_OP_CROSS_ENTROPY ? dz_nelements(n) == 1 : same(n, a);
    default:
        return false;
    }
}

dz_status dz_cpu_train_check_data(const dz_tensor *node) {
    if (node->op == DZ_OP_GET_ROWS_BACK) {
        const dz_tensor *ids = node->src[1];
        for (int64_t i = 0; i < ids->ne[0]; i++) {
            const int32_t id = ld_i32(ids, i, 0, 0);
            if (id < 0 || id >= node->ne[1])
                return dz_fail(DZ_ERR_ARG, "get_rows_back '%s': id %d at index %lld is outside the %lld rows",
                               node->name, id, (long long)i, (long long)node->ne[1]);
        }
    }
    if (node->op == DZ_OP_CROSS_ENTROPY || node->op == DZ_OP_CROSS_ENTROPY_BACK) {
        const dz_tensor *tg = node->src[1];
        const int64_t V = node->src[0]->ne[0];
        for (int64_t i2 = 0; i2 < tg->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < tg->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < tg->ne[0]; i0++) {
                    const int32_t id = ld_i32(tg, i0, i1, i2);
                    if (id < 0 || id >= V)
                        return dz_fail(DZ_ERR_ARG, "%s '%s': target %d at (%lld, %lld, %lld) is outside the "
                                       "vocabulary of %lld", dz_op_name(node->op), node->name, id, (long long)i0,
                                       (long long)i1, (long long)i2, (long long)V);
                }
    }
    return DZ_OK;
}

/* ---- LAYER_NORM: (x - mean) / sqrt(var + eps), biased variance, in double ---- */

void dz_cpu_layer_norm(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *a = out->src[0];
    const double eps = out->params.f[0];
    const int64_t n = a->ne[0];
    int64_t lo, hi, i1, i2, i3;
    dz_cpu_split(dz_nrows(out), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        coords(out, r, &i1, &i2, &i3);
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < n; i++) mean += at(a, i, i1, i2, i3);
        mean /= (double)n;
        for (int64_t i = 0; i < n; i++) {
            const double c = at(a, i, i1, i2, i3) - mean;
            var += c * c;
        }
        const double rstd = 1.0 / sqrt(var / (double)n + eps);
        float *dst = (float *)dz_cpu_at(out, 0, i1, i2, i3);
        for (int64_t i = 0; i < n; i++) dst[i] = (float)((at(a, i, i1, i2, i3) - mean) * rstd);
    }
}

/* ---- GELU (tanh form) and its derivative, in double ---- */

#define GELU_C 0.7978845608028654 /* sqrt(2 / pi) */
#define GELU_A 0.044715

static double gelu(double x) { return 0.5 * x * (1.0 + tanh(GELU_C * (x + GELU_A * x * x * x))); }

static double gelu_grad(double x) {
    const double t = tanh(GELU_C * (x + GELU_A * x * x * x));
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_A * x * x);
}

/* GELU and the three row-wise gradients x, dy -> dx. */
void dz_cpu_gelu(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *a = out->src[0];
    int64_t lo, hi, i1, i2, i3;
    dz_cpu_split(dz_nrows(out), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        coords(out, r, &i1, &i2, &i3);
        float *dst = (float *)dz_cpu_at(out, 0, i1, i2, i3);
        for (int64_t i = 0; i < out->ne[0]; i++) dst[i] = (float)gelu(at(a, i, i1, i2, i3));
    }
}

void dz_cpu_gelu_back(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *x = out->src[0], *dy = out->src[1];
    int64_t lo, hi, i1, i2, i3;
    dz_cpu_split(dz_nrows(out), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        coords(out, r, &i1, &i2, &i3);
        float *dst = (float *)dz_cpu_at(out, 0, i1, i2, i3);
        for (int64_t i = 0; i < out->ne[0]; i++)
            dst[i] = (float)(at(dy, i, i1, i2, i3) * gelu_grad(at(x, i, i1, i2, i3)));
    }
}

/* RMS_NORM_BACK: r = 1 / sqrt(mean(x^2) + eps); dx = r dy - r^3 x mean(dy x). */
void dz_cpu_rms_norm_back(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *x = out->src[0], *dy = out->src[1];
    const double eps = out->params.f[0];
    const int64_t n = x->ne[0];
    int64_t lo, hi, i1, i2, i3;
    dz_cpu_split(dz_nrows(out), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        coords(out, r, &i1, &i2, &i3);
        double ss = 0.0, dot = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const double xi = at(x, i, i1, i2, i3);
            ss += xi * xi;
            dot += xi * at(dy, i, i1, i2, i3);
        }
        const double rs = 1.0 / sqrt(ss / (double)n + eps), k = rs * rs * rs * dot / (double)n;
        float *dst = (float *)dz_cpu_at(out, 0, i1, i2, i3);
        for (int64_t i = 0; i < n; i++) dst[i] = (float)(rs * at(dy, i, i1, i2, i3) - k * at(x, i, i1, i2, i3));
    }
}

/* LAYER_NORM_BACK: xh = (x - mean) r; dx = r (dy - mean(dy) - xh mean(dy xh)). */
void dz_cpu_layer_norm_back(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *x = out->src[0], *dy = out->src[1];
    const double eps = out->params.f[0];
    const int64_t n = x->ne[0];
    int64_t lo, hi, i1, i2, i3;
    dz_cpu_split(dz_nrows(out), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        coords(out, r, &i1, &i2, &i3);
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < n; i++) mean += at(x, i, i1, i2, i3);
        mean /= (double)n;
        for (int64_t i = 0; i < n; i++) {
            const double c = at(x, i, i1, i2, i3) - mean;
            var += c * c;
        }
        const double rs = 1.0 / sqrt(var / (double)n + eps);
        double mdy = 0.0, mdyxh = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const double g = at(dy, i, i1, i2, i3);
            mdy += g;
            mdyxh += g * (at(x, i, i1, i2, i3) - mean) * rs;
        }
        mdy /= (double)n;
        mdyxh /= (double)n;
        float *dst = (float *)dz_cpu_at(out, 0, i1, i2, i3);
        for (int64_t i = 0; i < n; i++) {
            const double xh = (at(x, i, i1, i2, i3) - mean) * rs;
            dst[i] = (float)(rs * (at(dy, i, i1, i2, i3) - mdy - xh * mdyxh));
        }
    }
}

/* ---- SUM_COLS: out[i] = sum over every row of a[i]; columns split ---- */

void dz_cpu_sum_cols(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *a = out->src[0];
    int64_t lo, hi, i1, i2, i3;
    dz_cpu_split(a->ne[0], ith, nth, &lo, &hi);
    float *dst = out->data;
    for (int64_t i = lo; i < hi; i++) {
        double s = 0.0;
        for (int64_t r = 0; r < dz_nrows(a); r++) {
            coords(a, r, &i1, &i2, &i3);
            s += at(a, i, i1, i2, i3);
        }
        dst[i] = (float)s;
    }
}

/* ---- ROPE_BACK: ROPE's angles (computed as dz_cpu_rope computes them), each
 * pair turned back: dx0 = dy0 cos + dy1 sin, dx1 = dy1 cos - dy0 sin ---- */

void dz_cpu_rope_back(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *dy = out->src[0], *positions = out->src[1];
    const int n_rot = out->params.i[0];
    const bool neox = out->params.i[1] == DZ_ROPE_NEOX;
    const float freq_base = out->params.f[2], freq_scale = out->params.f[3];
    const float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    int64_t lo, hi, i1, i2, i3;
    dz_cpu_split(dz_nrows(out), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        coords(out, r, &i1, &i2, &i3);
        const int32_t pos = ld_i32(positions, i2, 0, 0);
        float *dst = (float *)dz_cpu_at(out, 0, i1, i2, i3);
        float theta = (float)pos;
        for (int p = 0; p < n_rot / 2; p++) {
            const float angle = freq_scale * theta;
            const double c = cosf(angle), s = sinf(angle);
            const int j0 = neox ? p : 2 * p, j1 = neox ? p + n_rot / 2 : 2 * p + 1;
            const double y0 = at(dy, j0, i1, i2, i3), y1 = at(dy, j1, i1, i2, i3);
            dst[j0] = (float)(y0 * c + y1 * s);
            dst[j1] = (float)(y1 * c - y0 * s);
            theta *= theta_scale;
        }
        for (int64_t i = n_rot; i < dy->ne[0]; i++) dst[i] = (float)at(dy, i, i1, i2, i3);
    }
}

/* ---- SWIGLU_BACK: s = sigmoid(g); d gate = dy up s (1 + g (1 - s)); d up = dy g s ---- */

void dz_cpu_swiglu_back(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *gate = out->src[0], *up = out->src[1], *dy = out->src[2];
    int64_t lo, hi;
    dz_cpu_split(gate->ne[1], ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        float *dg = (float *)dz_cpu_at(out, 0, t, 0, 0), *du = (float *)dz_cpu_at(out, 0, t, 1, 0);
        for (int64_t i = 0; i < gate->ne[0]; i++) {
            const double g = at(gate, i, t, 0, 0), u = at(up, i, t, 0, 0), d = at(dy, i, t, 0, 0);
            const double s = 1.0 / (1.0 + exp(-g));
            dg[i] = (float)(d * u * s * (1.0 + g * (1.0 - s)));
            du[i] = (float)(d * g * s);
        }
    }
}

/* ---- GET_ROWS_BACK: columns split; every thread walks all ids in order ---- */

void dz_cpu_get_rows_back(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *dy = out->src[0], *ids = out->src[1];
    int64_t lo, hi;
    dz_cpu_split(out->ne[0], ith, nth, &lo, &hi);
    if (lo >= hi) return;
    for (int64_t r = 0; r < out->ne[1]; r++) memset((float *)dz_cpu_at(out, lo, r, 0, 0), 0, (size_t)(hi - lo) * 4);
    for (int64_t i = 0; i < ids->ne[0]; i++) {
        float *dst = (float *)dz_cpu_at(out, 0, ld_i32(ids, i, 0, 0), 0, 0);
        for (int64_t c = lo; c < hi; c++) dst[c] += (float)at(dy, c, i, 0, 0);
    }
}

/* ---- CROSS_ENTROPY(_BACK) ---- */

/* max and sum of exp(x - max) of one logits row, in double. */
static void row_stats(const dz_tensor *lg, int64_t i1, int64_t i2, int64_t i3, double *max, double *sum) {
    double m = -INFINITY, s = 0.0;
    for (int64_t i = 0; i < lg->ne[0]; i++) {
        const double v = at(lg, i, i1, i2, i3);
        m = v > m ? v : m;
    }
    for (int64_t i = 0; i < lg->ne[0]; i++) s += exp(at(lg, i, i1, i2, i3) - m);
    *max = m;
    *sum = s;
}

/* The loss is one number: thread 0 computes it (the rows in order, in double). */
void dz_cpu_cross_entropy(const dz_cpu_job *job, int ith, int nth) {
    (void)nth;
    if (ith != 0) return;
    const dz_tensor *out = job->node, *lg = out->src[0], *tg = out->src[1];
    const int64_t rows = dz_nrows(lg);
    double total = 0.0, m, s;
    int64_t i1, i2, i3;
    for (int64_t r = 0; r < rows; r++) {
        coords(lg, r, &i1, &i2, &i3);
        row_stats(lg, i1, i2, i3, &m, &s);
        total += m + log(s) - at(lg, ld_i32(tg, i1, i2, i3), i1, i2, i3);
    }
    *(float *)out->data = (float)(total / (double)rows);
}

/* (softmax(row) - onehot(target)) * dloss / rows. */
void dz_cpu_cross_entropy_back(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *lg = out->src[0], *tg = out->src[1];
    const int64_t rows = dz_nrows(lg);
    const double g = (double)out->params.f[0] / (double)rows;
    double m, s;
    int64_t lo, hi, i1, i2, i3;
    dz_cpu_split(rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        coords(lg, r, &i1, &i2, &i3);
        row_stats(lg, i1, i2, i3, &m, &s);
        const int32_t target = ld_i32(tg, i1, i2, i3);
        float *dst = (float *)dz_cpu_at(out, 0, i1, i2, i3);
        for (int64_t i = 0; i < lg->ne[0]; i++)
            dst[i] = (float)((exp(at(lg, i, i1, i2, i3) - m) / s - (i == target ? 1.0 : 0.0)) * g);
    }
}

/* ---- dispatch ---- */

size_t dz_cpu_train_thread_bytes(const dz_tensor *node) { return dz_cpu_train_mm_thread_bytes(node); }

dz_cpu_kernel_fn dz_cpu_train_kernel_of(dz_op op) {
    switch (op) {
    case DZ_OP_LAYER_NORM: return dz_cpu_layer_norm;
    case DZ_OP_GELU: return dz_cpu_gelu;
    case DZ_OP_MUL_MAT_BACK_X: return dz_cpu_mul_mat_back_x;
    case DZ_OP_MUL_MAT_BACK_W: return dz_cpu_mul_mat_back_w;
    case DZ_OP_SUM_COLS: return dz_cpu_sum_cols;
    case DZ_OP_RMS_NORM_BACK: return dz_cpu_rms_norm_back;
    case DZ_OP_LAYER_NORM_BACK: return dz_cpu_layer_norm_back;
    case DZ_OP_ROPE_BACK: return dz_cpu_rope_back;
    case DZ_OP_ATTENTION_BACK: return dz_cpu_attention_back;
    case DZ_OP_SWIGLU_BACK: return dz_cpu_swiglu_back;
    case DZ_OP_GELU_BACK: return dz_cpu_gelu_back;
    case DZ_OP_GET_ROWS_BACK: return dz_cpu_get_rows_back;
    case DZ_OP_CROSS_ENTROPY: return dz_cpu_cross_entropy;
    case DZ_OP_CROSS_ENTROPY_BACK: return dz_cpu_cross_entropy_back;
    default: return NULL;
    }
}
