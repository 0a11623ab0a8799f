/* ATTENTION on the fast path: for head h and query t,
 *   out[h][t] = softmax(scale * q . k_j + mask[t][j]) . v_j over visible j,
 * with an online softmax over tiles of keys (dz_fast_kernels.attend), so
 * memory per thread is one tile, never S x T. A work item is a block of up
 * to Q_BLOCK query positions times the query heads of one K/V head (GQA):
 * they share every tile of K and V. Items are handed out dynamically, as
 * causal rows differ in length; decode has one position, so its K/V heads
 * are what the threads share. F32 K and V with adjacent elements; other
 * layouts run the reference. */
#include <math.h>
#include <string.h>

#include "backends/cpu/fast/fast.h"

enum { Q_BLOCK = 4 };

static bool adjacent(const dz_tensor *t) { return t->type == DZ_TYPE_F32 && t->nb[0] == sizeof(float); }

/* Per thread: the floats of attn_scratch (below). */
static size_t thread_floats(const dz_tensor *node) {
    const int64_t hd = node->src[0]->ne[0], group = node->src[0]->ne[1] / node->src[1]->ne[1];
    const int rows = (int)(group * Q_BLOCK);
    return dz_fast_attn_scratch(rows, hd) + (size_t)rows * (size_t)hd + 1 + (size_t)rows * 6 + 16;
}

/* A thread's scratch: attend's, then q rows, visible counts and row pointers. */
typedef struct attn_scratch {
    float *attend, *qrows;
    int64_t *visible;
    const float **masks;
    float **outs;
} attn_scratch;

static attn_scratch scratch_of(const dz_fast_task *t, int ith, int max_rows, int64_t hd) {
    attn_scratch a;
    a.attend = (float *)(t->per_thread + (size_t)ith * t->thread_bytes);
    a.qrows = a.attend + dz_fast_attn_scratch(max_rows, hd);
    a.visible = (int64_t *)(a.qrows + ((size_t)max_rows * (size_t)hd + 1) / 2 * 2); /* 8-byte aligned */
    a.masks = (const float **)(a.visible + max_rows);
    a.outs = (float **)(a.masks + max_rows);
    return a;
}

/* Query (head h, position qt) as hd adjacent floats at dst. */
static void copy_q_row(const dz_tensor *q, int64_t h, int64_t qt, float *dst) {
    const char *src = dz_cpu_at(q, 0, h, qt, 0);
    for (int64_t d = 0; d < q->ne[0]; d++) memcpy(&dst[d], src + (size_t)d * q->nb[0], sizeof(float));
}

static void run_attention(dz_fast_task *t, int ith, int nth) {
    (void)nth;
    const dz_tensor *out = t->node, *q = out->src[0], *k = out->src[1], *v = out->src[2], *mask = out->src[3];
    const int64_t hd = q->ne[0], n_head = q->ne[1], T = q->ne[2], n_kv = k->ne[1], group = n_head / n_kv;
    const bool causal = out->params.i[1] != 0;
    const int64_t n_past = out->params.i[2], S = k->ne[2];
    const attn_scratch sc = scratch_of(t, ith, (int)(group * Q_BLOCK), hd);
    const int64_t blocks = (T + Q_BLOCK - 1) / Q_BLOCK;
    for (int64_t it; (it = dz_fast_next_item(t, blocks * n_kv)) >= 0;) {
        const int64_t kvh = it % n_kv, t0 = it / n_kv * Q_BLOCK, t1 = t0 + Q_BLOCK < T ? t0 + Q_BLOCK : T;
        int rows = 0;
        for (int64_t qt = t0; qt < t1; qt++)
            for (int64_t h = kvh * group; h < (kvh + 1) * group; h++, rows++) {
                copy_q_row(q, h, qt, sc.qrows + rows * hd);
                sc.visible[rows] = causal && n_past + qt + 1 < S ? n_past + qt + 1 : S;
                sc.masks[rows] = mask ? (const float *)dz_cpu_at(mask, 0, qt, 0, 0) : NULL;
                sc.outs[rows] = (float *)dz_cpu_at(out, 0, h, qt, 0);
            }
        const dz_fast_attn_args a = {.q = sc.qrows, .rows = rows, .hd = hd, .visible = sc.visible,
                                     .mask = mask ? sc.masks : NULL, .k = dz_cpu_at(k, 0, kvh, 0, 0),
                                     .v = dz_cpu_at(v, 0, kvh, 0, 0), .kv_stride = k->nb[2], .kv_rows = NULL,
                                     .scale = out->params.f[0], .out = sc.outs, .scratch = sc.attend};
        t->k->attend(&a);
    }
}

bool dz_fast_plan_attention(dz_fast_task *t) {
    const dz_tensor *n = t->node, *k = n->src[1], *v = n->src[2], *mask = n->src[3];
    /* K and V rows of equal stride (attend steps both by one stride). */
    if (!adjacent(k) || !adjacent(v) || k->nb[2] != v->nb[2] || (mask && !adjacent(mask))) return false;
    t->fn = run_attention;
    t->thread_bytes = thread_floats(n) * sizeof(float);
    return true;
}

/* PAGED_ATTENTION: a work item is one query position times the query heads
 * of one K/V head; its keys are the pool rows its index row lists. */
static void run_paged_attention(dz_fast_task *t, int ith, int nth) {
    (void)nth;
    const dz_tensor *out = t->node, *q = out->src[0], *k = out->src[1], *v = out->src[2], *index = out->src[3];
    const int64_t hd = q->ne[0], n_head = q->ne[1], T = q->ne[2], n_kv = k->ne[1], group = n_head / n_kv;
    const attn_scratch sc = scratch_of(t, ith, (int)(group * Q_BLOCK), hd);
    for (int64_t it; (it = dz_fast_next_item(t, T * n_kv)) >= 0;) {
        const int64_t kvh = it % n_kv, qt = it / n_kv;
        const int32_t *ix = (const int32_t *)dz_cpu_at(index, 0, qt, 0, 0);
        int rows = 0;
        for (int64_t h = kvh * group; h < (kvh + 1) * group; h++, rows++) {
            copy_q_row(q, h, qt, sc.qrows + rows * hd);
            sc.visible[rows] = ix[0];
            sc.outs[rows] = (float *)dz_cpu_at(out, 0, h, qt, 0);
        }
        const dz_fast_attn_args a = {.q = sc.qrows, .rows = rows, .hd = hd, .visible = sc.visible, .mask = NULL,
                                     .k = dz_cpu_at(k, 0, kvh, 0, 0), .v = dz_cpu_at(v, 0, kvh, 0, 0),
                                     .kv_stride = k->nb[2], .kv_rows = ix + 1, .scale = out->params.f[0],
                                     .out = sc.outs, .scratch = sc.attend};
        t->k->attend(&a);
    }
}

bool dz_fast_plan_paged_attention(dz_fast_task *t) {
    const dz_tensor *n = t->node, *k = n->src[1], *v = n->src[2];
    if (!adjacent(k) || !adjacent(v) || k->nb[2] != v->nb[2]) return false;
    t->fn = run_paged_attention;
    t->thread_bytes = thread_floats(n) * sizeof(float);
    return true;
}
