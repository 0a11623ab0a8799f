/* ATTENTION: for head h and position t,
 *   out[h][t] = softmax(scale * q[h][t] . k[kvh][j] + mask[t][j]) . v[kvh][j]
 * over j < S, kvh = h / (n_head / n_kv_head), columns j > n_past + t hidden
 * when causal. It computes what llama.cpp's non-fused path computes
 * (mul_mat(k, q) -> soft_max_ext -> mul_mat(v, kq)): with F16 K, q is
 * rounded to fp16 before the dot; with F16 V, the probabilities are; the
 * softmax is dz_cpu_softmax_row's. The sums are those of its x86 (AVX-512)
 * build: q . k as 16 lanes of fused products when the head size is a
 * multiple of 16 (its tiled matmul), else float products summed in double
 * (its vec_dot); p . v always as 16 lanes (its KV cache is padded to whole
 * tiles). */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu_impl.h"

/* Per thread: a q row (hd floats), scores (S, or W for paged attention,
 * floats), q16 (hd halves). */
size_t dz_cpu_attention_thread_bytes(const dz_tensor *node) {
    const size_t hd = (size_t)node->src[0]->ne[0];
    const size_t s = (size_t)(node->op == DZ_OP_PAGED_ATTENTION ? node->src[3]->ne[0] : node->src[1]->ne[2]);
    return hd * sizeof(float) + s * sizeof(float) + hd * sizeof(uint16_t);
}

static float load_f32(const char *p) {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint16_t load_u16(const char *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The float sums of llama.cpp's x86 (AVX-512) build where its matmuls of
 * attention run as 16-lane tiles: lane l takes every 16th product by fused
 * multiply-add, then the lanes are added in the order of gcc's
 * _mm512_reduce_add_ps (dz_cpu_reduce16). */
enum { LANES = 16 };


/* One query row against the keys at positions j < n (pool rows slot[j], or
 * j itself when slot is NULL): out = softmax(scale q . k_j + mask_j) . v_j,
 * positions j > last hidden. w: n floats of scratch, q16: hd halves. */
typedef struct attn_row {
    const dz_tensor *k, *v;
    const char *qrow;
    const char *mask;       /* row of the mask (n floats apart by nb0), or NULL */
    size_t mask_nb0;
    const int32_t *slot;    /* pool rows by position, or NULL */
    int64_t kvh, n, last;   /* kv head, positions, last visible position */
    float scale;
    float *out;
} attn_row;

static void attend_one(const attn_row *r, float *w, uint16_t *q16) {
    const dz_tensor *k = r->k, *v = r->v;
    const int64_t hd = k->ne[0];
    const bool k_f16 = k->type == DZ_TYPE_F16, v_f16 = v->type == DZ_TYPE_F16;
    if (k_f16)
        for (int64_t d = 0; d < hd; d++) q16[d] = dz_fp32_to_fp16(load_f32(r->qrow + (size_t)d * sizeof(float)));

    /* Scores q . k_j, then scaled, masked and normalized. */
    for (int64_t j = 0; j < r->n; j++) {
        const char *krow = dz_cpu_at(k, 0, r->kvh, r->slot ? r->slot[j] : j, 0);
        double sum = 0.0;
        if (hd % LANES == 0) { /* tiled: lanes of fused products */
            float l[LANES] = {0};
            for (int64_t d = 0; d < hd; d++) {
                const float kd = k_f16 ? dz_fp16_to_fp32(load_u16(krow + (size_t)d * k->nb[0]))
                                       : load_f32(krow + (size_t)d * k->nb[0]);
                const float qd = k_f16 ? dz_fp16_to_fp32(q16[d]) : load_f32(r->qrow + (size_t)d * sizeof(float));
                l[d % LANES] = fmaf(kd, qd, l[d % LANES]);
            }
            sum = dz_cpu_reduce16(l);
        } else if (k_f16) {
            for (int64_t d = 0; d < hd; d++)
                sum += (double)(dz_fp16_to_fp32(load_u16(krow + (size_t)d * k->nb[0])) * dz_fp16_to_fp32(q16[d]));
        } else {
            for (int64_t d = 0; d < hd; d++)
                sum += (double)(load_f32(krow + (size_t)d * k->nb[0]) * load_f32(r->qrow + (size_t)d * sizeof(float)));
        }
        w[j] = (float)sum * r->scale;
        if (r->mask) w[j] += load_f32(r->mask + (size_t)j * r->mask_nb0);
        if (j > r->last) w[j] = -INFINITY;
    }
    dz_cpu_softmax_row(w, r->n);

    /* out = sum_j p_j v_j: llama.cpp's cache is padded to whole tiles, so
     * each output element is a tiled sum over j (the padding adds 0). */
    for (int64_t d = 0; d < hd; d++) {
        float l[LANES] = {0};
        for (int64_t j = 0; j < r->n; j++) {
            float p = w[j];
            if (v_f16) p = dz_fp16_to_fp32(dz_fp32_to_fp16(p));
            const char *vd = dz_cpu_at(v, d, r->kvh, r->slot ? r->slot[j] : j, 0);
            const float vv = v_f16 ? dz_fp16_to_fp32(load_u16(vd)) : load_f32(vd);
            l[j % LANES] = fmaf(vv, p, l[j % LANES]);
        }
        r->out[d] = dz_cpu_reduce16(l);
    }
}

/* q rows are gathered into contiguous floats first (q may be strided). */
static const char *q_row(const dz_tensor *q, int64_t h, int64_t t, float *buf) {
    const char *p = dz_cpu_at(q, 0, h, t, 0);
    if (q->nb[0] == sizeof(float)) return p;
    for (int64_t d = 0; d < q->ne[0]; d++) memcpy(&buf[d], p + (size_t)d * q->nb[0], sizeof(float));
    return (const char *)buf;
}

void dz_cpu_attention(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *q = out->src[0], *k = out->src[1], *v = out->src[2], *mask = out->src[3];
    const int64_t hd = q->ne[0], n_head = q->ne[1], n_kv = k->ne[2];
    const int64_t group = n_head / k->ne[1];
    const bool causal = out->params.i[1] != 0;
    const int64_t n_past = out->params.i[2];

    char *mine = job->per_thread + (size_t)ith * job->thread_bytes;
    float *qbuf = (float *)mine;
    float *w = qbuf + hd;
    uint16_t *q16 = (uint16_t *)(w + n_kv);

    int64_t lo, hi;
    dz_cpu_split(n_head * q->ne[2], ith, nth, &lo, &hi);
    for (int64_t row = lo; row < hi; row++) {
        const int64_t h = row % n_head, t = row / n_head;
        const attn_row r = {.k = k, .v = v, .qrow = q_row(q, h, t, qbuf),
                            .mask = mask ? dz_cpu_at(mask, 0, t, 0, 0) : NULL, .mask_nb0 = mask ? mask->nb[0] : 0,
                            .slot = NULL, .kvh = h / group, .n = n_kv,
                            .last = causal ? n_past + t : n_kv - 1, .scale = out->params.f[0],
                            .out = (float *)dz_cpu_at(out, 0, h, t, 0)};
        attend_one(&r, w, q16);
    }
}

void dz_cpu_paged_attention(const dz_cpu_job *job, int ith, int nth) {
    const dz_tensor *out = job->node, *q = out->src[0], *k = out->src[1], *v = out->src[2], *index = out->src[3];
    const int64_t hd = q->ne[0], n_head = q->ne[1], W = index->ne[0];
    const int64_t group = n_head / k->ne[1];

    char *mine = job->per_thread + (size_t)ith * job->thread_bytes;
    float *qbuf = (float *)mine;
    float *w = qbuf + hd;
    uint16_t *q16 = (uint16_t *)(w + W);

    int64_t lo, hi;
    dz_cpu_split(n_head * q->ne[2], ith, nth, &lo, &hi);
    for (int64_t row = lo; row < hi; row++) {
        const int64_t h = row % n_head, t = row / n_head;
        const int32_t *ix = (const int32_t *)dz_cpu_at(index, 0, t, 0, 0); /* checked: contiguous rows */
        const attn_row r = {.k = k, .v = v, .qrow = q_row(q, h, t, qbuf), .slot = ix + 1, .kvh = h / group,
                            .n = ix[0], .last = ix[0] - 1, .scale = out->params.f[0],
                            .out = (float *)dz_cpu_at(out, 0, h, t, 0)};
        attend_one(&r, w, q16);
    }
}
