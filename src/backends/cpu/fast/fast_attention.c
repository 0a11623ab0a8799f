/* ATTENTION on the fast path: for head h and query t,
 *   out[h][t] = softmax(scale * q . k_j + mask[t][j]) . v_j over visible j,
 * with an online softmax over tiles of keys, so memory per thread is one
 * tile of scores, never S x T. A work item is one head of one query
 * position (decode has one position: its heads are what the threads share);
 * items are handed out dynamically, as causal rows differ in length.
 * F32 K and V with adjacent elements; other layouts run the reference. */
#include <math.h>
#include <string.h>

#include "backends/cpu/fast/fast.h"

enum { TILE = 128 }; /* keys per tile of scores */

static bool adjacent(const dz_tensor *t) { return t->type == DZ_TYPE_F32 && t->nb[0] == sizeof(float); }

static void attend_row(const dz_fast_task *t, int64_t h, int64_t qt, float *q, float *acc, float *s) {
    const dz_tensor *out = t->node, *qs = out->src[0], *k = out->src[1], *v = out->src[2], *mask = out->src[3];
    const dz_fast_kernels *kt = t->k;
    const int64_t hd = qs->ne[0], n_head = qs->ne[1], S = k->ne[2], kvh = h / (n_head / k->ne[1]);
    const float scale = out->params.f[0];
    const bool causal = out->params.i[1] != 0;
    const int64_t n_past = out->params.i[2];
    const int64_t visible = causal && n_past + qt + 1 < S ? n_past + qt + 1 : S;

    const char *qrow = dz_cpu_at(qs, 0, h, qt, 0);
    for (int64_t d = 0; d < hd; d++) memcpy(&q[d], qrow + (size_t)d * qs->nb[0], sizeof(float));
    memset(acc, 0, (size_t)hd * sizeof *acc);
    float m = -INFINITY;
    double l = 0.0;
    for (int64_t j0 = 0; j0 < visible; j0 += TILE) {
        const int64_t nj = visible - j0 < TILE ? visible - j0 : TILE;
        for (int64_t j = 0; j < nj; j++) {
            s[j] = kt->dot(q, (const float *)dz_cpu_at(k, 0, kvh, j0 + j, 0), hd) * scale;
            if (mask) s[j] += *(const float *)dz_cpu_at(mask, j0 + j, qt, 0, 0);
        }
        const float tile_max = kt->max(s, nj), m_new = tile_max > m ? tile_max : m;
        if (m_new == -INFINITY) continue; /* nothing visible yet */
        if (m != m_new && m != -INFINITY) { /* rescale what was summed under the old max */
            const float c = expf(m - m_new);
            for (int64_t d = 0; d < hd; d++) acc[d] *= c;
            l *= (double)c;
        }
        m = m_new;
        l += kt->exp_sum(s, m, nj);
        for (int64_t j = 0; j < nj; j++)
            if (s[j] != 0.0f) kt->axpy(s[j], (const float *)dz_cpu_at(v, 0, kvh, j0 + j, 0), acc, hd);
    }
    float *dst = (float *)dz_cpu_at(out, 0, h, qt, 0);
    const float inv = l > 0.0 ? (float)(1.0 / l) : 0.0f; /* all hidden: zeros, as the reference */
    for (int64_t d = 0; d < hd; d++) dst[d] = acc[d] * inv;
}

static void run_attention(dz_fast_task *t, int ith, int nth) {
    (void)nth;
    const dz_tensor *q = t->node->src[0];
    const int64_t hd = q->ne[0], n_head = q->ne[1], T = q->ne[2];
    float *mine = (float *)(t->per_thread + (size_t)ith * t->thread_bytes);
    float *qv = mine, *acc = mine + hd, *s = mine + 2 * hd;
    for (int64_t it; (it = dz_fast_next_item(t, T * n_head)) >= 0;) attend_row(t, it % n_head, it / n_head, qv, acc, s);
}

bool dz_fast_plan_attention(dz_fast_task *t) {
    const dz_tensor *n = t->node;
    if (!adjacent(n->src[1]) || !adjacent(n->src[2]) || (n->src[3] && !adjacent(n->src[3]))) return false;
    t->fn = run_attention;
    t->thread_bytes = (size_t)(2 * n->src[0]->ne[0] + TILE) * sizeof(float);
    return true;
}
