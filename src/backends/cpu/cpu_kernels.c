/* Reference kernels of the elementwise, normalization, rope, softmax,
 * get_rows and copy ops: plain scalar C, rows split across threads. Where it
 * matters for matching llama.cpp, the arithmetic mirrors ggml's CPU code
 * (float products, double sums where ggml uses ggml_float). */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu_impl.h"

/* (i1, i2, i3) of row r of a tensor with ne1, ne2 rows per level. */
static void row_coords(const dz_tensor *t, int64_t r, int64_t *i1, int64_t *i2, int64_t *i3) {
    *i1 = r % t->ne[1];
    *i2 = r / t->ne[1] % t->ne[2];
    *i3 = r / (t->ne[1] * t->ne[2]);
}

static float load_f32(const char *p) {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void store_f32(char *p, float v) { memcpy(p, &v, sizeof v); }

/* ---- GET_ROWS: out row n = table row ids[n], dequantized ---- */

void dz_cpu_get_rows(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *table = out->src[0], *ids = out->src[1];
    int64_t lo, hi;
    dz_cpu_split(ids->ne[0], ith, nth, &lo, &hi);
    for (int64_t n = lo; n < hi; n++) {
        int32_t id;
        memcpy(&id, (const char *)ids->data + (size_t)n * ids->nb[0], sizeof id);
        const char *row = (const char *)table->data + (size_t)id * table->nb[1];
        float *dst = (float *)((char *)out->data + (size_t)n * out->nb[1]);
        const dz_type_traits *tt = dz_type_info((int)table->type);
        if (tt->block_size > 1 || table->nb[0] == tt->type_size) {
            dz_dequantize_row(table->type, row, dst, table->ne[0]);
        } else { /* plain elements with gaps between them */
            for (int64_t i = 0; i < table->ne[0]; i++)
                dz_dequantize_row(table->type, row + (size_t)i * table->nb[0], dst + i, 1);
        }
    }
}

/* ---- ADD, MUL: out = a op b, b broadcast by repetition ---- */

void dz_cpu_binary(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *a = out->src[0], *b = out->src[1];
    const bool add = out->op == DZ_OP_ADD;
    int64_t lo, hi, i1, i2, i3;
    dz_cpu_split(dz_nrows(out), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        row_coords(out, r, &i1, &i2, &i3);
        const char *pa = dz_cpu_at(a, 0, i1, i2, i3);
        const char *pb = dz_cpu_at(b, 0, i1 % b->ne[1], i2 % b->ne[2], i3 % b->ne[3]);
        float *dst = (float *)dz_cpu_at(out, 0, i1, i2, i3);
        for (int64_t i = 0; i < out->ne[0]; i++) {
            float x = load_f32(pa + (size_t)i * a->nb[0]);
            float y = load_f32(pb + (size_t)(i % b->ne[0]) * b->nb[0]);
            dst[i] = add ? x + y : x * y;
        }
    }
}

/* ---- SCALE, SILU, SWIGLU ---- */

static float silu(float x) { return x / (1.0f + expf(-x)); }

/* ggml's vector expf (the algorithm of ARM's optimized-routines, as ggml's
 * x86 code evaluates it with FMA), one lane: n = round(x / ln 2) by the
 * 1.5 * 2^23 trick, b = x - n ln 2 in two steps, a degree-5 polynomial in
 * Estrin form, scaled by 2^n; |n| > 192 gives 0 or infinity. */
float dz_cpu_expf_ggml(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    if (isnan(n)) return n;
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                         fmaf(0x1.ffffecp-1f, b, 1.0f));
    return ldexpf(j, (int)n);
}

void dz_cpu_unary(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *a = out->src[0], *b = out->src[1];
    const float s = out->params.f[0];
    int64_t lo, hi, i1, i2, i3;
    dz_cpu_split(dz_nrows(out), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        row_coords(out, r, &i1, &i2, &i3);
        const char *pa = dz_cpu_at(a, 0, i1, i2, i3);
        float *dst = (float *)dz_cpu_at(out, 0, i1, i2, i3);
        for (int64_t i = 0; i < out->ne[0]; i++) {
            float x = load_f32(pa + (size_t)i * a->nb[0]);
            switch (out->op) {
            case DZ_OP_SCALE: dst[i] = x * s; break;
            case DZ_OP_SILU: dst[i] = silu(x); break;
            default: /* SWIGLU: silu(gate) * up */
                dst[i] = silu(x) * load_f32(dz_cpu_at(b, i, i1, i2, i3));
                break;
            }
        }
    }
}

/* ---- RMS_NORM: x / sqrt(mean(x^2) + eps), the sum of squares in double ---- */

void dz_cpu_rms_norm(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *a = out->src[0];
    const float eps = out->params.f[0];
    const int64_t n = a->ne[0];
    int64_t lo, hi, i1, i2, i3;
    dz_cpu_split(dz_nrows(out), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        row_coords(out, r, &i1, &i2, &i3);
        const char *x = dz_cpu_at(a, 0, i1, i2, i3);
        float *dst = (float *)dz_cpu_at(out, 0, i1, i2, i3);
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) {
            float v = load_f32(x + (size_t)i * a->nb[0]);
            sum += (double)(v * v);
        }
        const float mean = (float)(sum / (double)n);
        const float scale = 1.0f / sqrtf(mean + eps);
        for (int64_t i = 0; i < n; i++) dst[i] = load_f32(x + (size_t)i * a->nb[0]) * scale;
    }
}

/* ---- ROPE ----
 * Pair p (0 <= p < n_rot/2) at position pos turns by
 *   theta_p = freq_scale * pos * freq_base^(-2p/n_rot),
 * computed as ggml does: theta starts at pos and is multiplied by
 * theta_scale = powf(freq_base, -2/n_rot) once per pair, all in float.
 * NORMAL rotates (x[2p], x[2p+1]); NEOX rotates (x[p], x[p + n_rot/2]).
 * Elements from n_rot on pass through. */

void dz_cpu_rope(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *x = out->src[0], *positions = out->src[1];
    const int n_rot = out->params.i[0];
    const bool neox = out->params.i[1] == DZ_ROPE_NEOX;
    const float freq_base = out->params.f[2], freq_scale = out->params.f[3];
    const float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    int64_t lo, hi, i1, i2, i3;
    dz_cpu_split(dz_nrows(out), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        row_coords(out, r, &i1, &i2, &i3);
        int32_t pos;
        memcpy(&pos, (const char *)positions->data + (size_t)i2 * positions->nb[0], sizeof pos);
        const char *src = dz_cpu_at(x, 0, i1, i2, i3);
        float *dst = (float *)dz_cpu_at(out, 0, i1, i2, i3);
        float theta = (float)pos;
        for (int p = 0; p < n_rot / 2; p++) {
            const float angle = freq_scale * theta;
            const float cos_t = cosf(angle), sin_t = sinf(angle);
            const int j0 = neox ? p : 2 * p, j1 = neox ? p + n_rot / 2 : 2 * p + 1;
            const float x0 = load_f32(src + (size_t)j0 * x->nb[0]), x1 = load_f32(src + (size_t)j1 * x->nb[0]);
            dst[j0] = x0 * cos_t - x1 * sin_t;
            dst[j1] = x0 * sin_t + x1 * cos_t;
            theta *= theta_scale;
        }
        for (int64_t i = n_rot; i < x->ne[0]; i++) dst[i] = load_f32(src + (size_t)i * x->nb[0]);
    }
}

/* ---- SOFTMAX ---- */

enum { DZ_GGML_VL = 16 }; /* lanes of ggml's AVX-512 softmax loop */

void dz_cpu_softmax_row(float *w, int64_t n) {
    float max = -INFINITY;
    for (int64_t i = 0; i < n; i++) max = w[i] > max ? w[i] : max;
    if (max == -INFINITY) { /* nothing visible: zeros, not NaN */
        memset(w, 0, (size_t)n * sizeof *w);
        return;
    }
    /* As ggml over a row padded (masked) to whole vectors: chunks of
     * DZ_GGML_VL, each summed in float in the order of gcc's
     * _mm512_reduce_add_ps, the chunk sums added in double. */
    double sum = 0.0;
    for (int64_t c = 0; c < n; c += DZ_GGML_VL) {
        float e[DZ_GGML_VL] = {0};
        for (int64_t i = c; i < n && i < c + DZ_GGML_VL; i++) e[i - c] = w[i] = dz_cpu_expf_ggml(w[i] - max);
        sum += (double)dz_cpu_reduce16(e);
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) w[i] *= inv;
}

/* Row r of (n, rows, c, d): w = x * scale + mask[r], then columns
 * j > n_past + r hidden when causal, then softmax. */
void dz_cpu_softmax(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *a = out->src[0], *mask = out->src[1];
    const float scale = out->params.f[0];
    const bool causal = out->params.i[1] != 0;
    const int64_t n_past = out->params.i[2], n = a->ne[0];
    int64_t lo, hi, i1, i2, i3;
    dz_cpu_split(dz_nrows(out), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        row_coords(out, r, &i1, &i2, &i3);
        const char *x = dz_cpu_at(a, 0, i1, i2, i3);
        float *w = (float *)dz_cpu_at(out, 0, i1, i2, i3);
        for (int64_t i = 0; i < n; i++) w[i] = load_f32(x + (size_t)i * a->nb[0]) * scale;
        if (mask)
            for (int64_t i = 0; i < n; i++) w[i] += load_f32(dz_cpu_at(mask, i, i1, 0, 0));
        if (causal)
            for (int64_t i = n_past + i1 + 1; i < n; i++) w[i] = -INFINITY;
        dz_cpu_softmax_row(w, n);
    }
}

/* ---- CPY: elements in logical (row-major) order, converting types ---- */

static float load_as_f32(dz_type t, const char *p) {
    uint16_t h;
    switch (t) {
    case DZ_TYPE_F16: memcpy(&h, p, 2); return dz_fp16_to_fp32(h);
    case DZ_TYPE_BF16: memcpy(&h, p, 2); return dz_bf16_to_fp32(h);
    default: return load_f32(p);
    }
}

static void store_from_f32(dz_type t, char *p, float v) {
    uint16_t h;
    switch (t) {
    case DZ_TYPE_F16: h = dz_fp32_to_fp16(v); memcpy(p, &h, 2); break;
    case DZ_TYPE_BF16: h = dz_fp32_to_bf16(v); memcpy(p, &h, 2); break;
    default: store_f32(p, v); break;
    }
}

/* Address of the element with logical index `linear` in t. */
static char *element_at(const dz_tensor *t, int64_t linear) {
    int64_t i0 = linear % t->ne[0], rest = linear / t->ne[0];
    int64_t i1 = rest % t->ne[1];
    rest /= t->ne[1];
    return dz_cpu_at(t, i0, i1, rest % t->ne[2], rest / t->ne[2]);
}

void dz_cpu_cpy(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *dst = job->node, *src = dst->src[0];
    int64_t lo, hi, i1, i2, i3, j1, j2, j3;
    if (src->ne[0] == dst->ne[0]) { /* rows line up: walk row by row */
        dz_cpu_split(dz_nrows(src), ith, nth, &lo, &hi);
        for (int64_t r = lo; r < hi; r++) {
            row_coords(src, r, &i1, &i2, &i3);
            row_coords(dst, r, &j1, &j2, &j3);
            const char *s = dz_cpu_at(src, 0, i1, i2, i3);
            char *d = dz_cpu_at(dst, 0, j1, j2, j3);
            for (int64_t i = 0; i < src->ne[0]; i++)
                store_from_f32(dst->type, d + (size_t)i * dst->nb[0], load_as_f32(src->type, s + (size_t)i * src->nb[0]));
        }
        return;
    }
    dz_cpu_split(dz_nelements(src), ith, nth, &lo, &hi);
    for (int64_t e = lo; e < hi; e++)
        store_from_f32(dst->type, element_at(dst, e), load_as_f32(src->type, element_at(src, e)));
}

/* ---- SET_ROWS: destination row ids[i] = source row i ---- */

void dz_cpu_set_rows(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *dst = job->node, *src = dst->src[0], *ids = dst->src[1];
    int64_t lo, hi;
    dz_cpu_split(src->ne[1], ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int32_t id;
        memcpy(&id, (const char *)ids->data + (size_t)r * ids->nb[0], sizeof id);
        const char *s = dz_cpu_at(src, 0, r, 0, 0);
        char *d = dz_cpu_at(dst, 0, id, 0, 0);
        for (int64_t i = 0; i < src->ne[0]; i++)
            store_from_f32(dst->type, d + (size_t)i * dst->nb[0], load_as_f32(src->type, s + (size_t)i * src->nb[0]));
    }
}
