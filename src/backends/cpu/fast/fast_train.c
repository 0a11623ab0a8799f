/* The fast path of the training ops that dominate a step.
 *
 * MUL_MAT_BACK_X (dX = dY W) and MUL_MAT_BACK_W (dW = dY^T X) are GEMMs run
 * through the table's packed float GEMM (fgemm_packed: a panel of RF rows x
 * FKC of K converted once, register tiles of pnc broadcast columns). Both
 * run in two phases around one barrier:
 *  1. the broadcast operand is laid out in tiles of pnc columns in the
 *     shared scratch (back_x: dY rows, back_w: dY columns), tiles split
 *     across the threads;
 *  2. work items (RF output rows x a block of whole tiles) are handed out
 *     dynamically; each gathers its RF "weight" rows into private memory
 *     (back_x: RF columns of W, dequantized, so any W type works; back_w:
 *     RF columns of X) and calls fgemm_packed.
 *
 * ATTENTION_BACK runs as per-head GEMMs (fast_train_attn.c) or, where their
 * scratch would be too large, as FlashAttention-2's backward: pass 1 over the
 * (head, query) rows computes each row's softmax (keeping its logsumexp L
 * and D = sum_j p_j dp_j in shared memory) and dq; after a barrier, pass 2
 * over the (kv head, key) rows recomputes p and ds from L and D and sums dk
 * and dv. Rows are dealt round-robin (causal rows differ in cost).
 *
 * CROSS_ENTROPY(_BACK): rows split; max, exp and sums through the table's
 * vector kernels; the loss is the sum of per-row losses kept in shared
 * memory, added in row order by thread 0 after a barrier. */
#include <math.h>
#include <string.h>

#include "backends/cpu/fast/fast_train.h"

enum {
    ITEMS_PER_THREAD = 4, /* GEMMs: split columns too until there are this many items per thread */
    QBLOCK_MAX = 256,     /* largest block of a quantized W (dequantized around a gathered column range) */
};

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static float *mine_of(const dz_fast_task *t, int ith) { return (float *)(t->per_thread + (size_t)ith * t->thread_bytes); }

/* Row r of t (rows over dims 1..3) as a float pointer (t->nb[0] == 4). */
static const float *row_of(const dz_tensor *t, int64_t r) {
    return (const float *)dz_cpu_at(t, 0, r % t->ne[1], r / t->ne[1] % t->ne[2], r / (t->ne[1] * t->ne[2]));
}

/* Columns per work item: whole tiles, halved until rows x columns give
 * ITEMS_PER_THREAD items per thread (or blocks get small). */
static int64_t col_block(int64_t row_blocks, int64_t cols, int64_t pnc, int nth) {
    const int64_t tiles = (cols + pnc - 1) / pnc;
    int64_t parts = 1;
    while (row_blocks * parts < ITEMS_PER_THREAD * nth && tiles / (parts * 2) >= 4) parts *= 2;
    return (tiles + parts - 1) / parts * pnc;
}

/* Phase 1 of back_x: dY (N, M..) -> tiles, tile i holding rows m in
 * [i pnc, (i+1) pnc): x[(i N + n) pnc + m % pnc] = dY[m][n] (0 past M). */
static void tile_dy_rows(const dz_fast_task *t, int ith, int nth, float *x) {
    const dz_tensor *dy = t->node->src[1];
    const int64_t N = dy->ne[0], M = dz_nrows(dy), pnc = t->k->pnc, tiles = (M + pnc - 1) / pnc;
    int64_t lo, hi;
    dz_cpu_split(tiles, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        float *tile = x + (size_t)(i * N * pnc);
        for (int64_t c = 0; c < pnc; c++) {
            const int64_t m = i * pnc + c;
            if (m >= M) {
                for (int64_t n = 0; n < N; n++) tile[n * pnc + c] = 0.0f;
                continue;
            }
            const float *row = row_of(dy, m);
            for (int64_t n = 0; n < N; n++) tile[n * pnc + c] = row[n];
        }
    }
}

/* Columns [c0, c0 + n) of W row r as floats at dst (tmp: scratch of
 * 2 QBLOCK_MAX + n floats for block types). */
static void w_columns(const dz_tensor *w, int64_t r, int64_t c0, int64_t n, float *dst, float *tmp) {
    const char *row = (const char *)w->data + (size_t)r * w->nb[1];
    if (w->type == DZ_TYPE_F32) {
        memcpy(dst, row + (size_t)c0 * sizeof(float), (size_t)n * sizeof(float));
        return;
    }
    const dz_type_traits *tt = dz_type_info((int)w->type);
    const int64_t bs = tt->block_size, b0 = c0 / bs, b1 = (c0 + n - 1) / bs;
    dz_dequantize_row(w->type, row + (size_t)b0 * tt->type_size, tmp, (b1 - b0 + 1) * bs);
    memcpy(dst, tmp + (c0 - b0 * bs), (size_t)n * sizeof(float));
}

/* Floats between the gathered "weight" rows: padded so that the rows do not
 * all fall into the same cache sets (a multiple of 4 KiB apart). */
static int64_t gather_ld(int64_t n) { return (n + 15) / 16 * 16 + 16; }

enum { GATHER_ROWS = 16 }; /* W rows read together, so that each W^T row is written a line at a time */

static void run_back_x(dz_fast_task *t, int ith, int nth) {
    const dz_tensor *out = t->node, *w = out->src[0];
    const dz_fast_kernels *k = t->k;
    const int64_t K = w->ne[0], N = w->ne[1], M = dz_nrows(out), RF = k->frows, pnc = k->pnc, ld = gather_ld(N);
    const bool f16 = w->type == DZ_TYPE_F16;
    float *x = (float *)t->shared;
    tile_dy_rows(t, ith, nth, x);
    dz_cpu_pool_barrier(t->pool);

    float *wt = mine_of(t, ith);                                  /* RF rows of N (ld apart): W^T rows */
    float *panel = wt + align64((size_t)(RF * ld) * sizeof(float)) / sizeof(float);
    float *cols = panel + align64((size_t)(k->frows * k->fkc) * sizeof(float)) / sizeof(float);
    float *tmp = cols + GATHER_ROWS * RF;
    const int64_t row_blocks = (K + RF - 1) / RF, cb = col_block(row_blocks, M, pnc, nth);
    const int64_t col_blocks = (M + cb - 1) / cb, n_items = row_blocks * col_blocks;
    int64_t have = -1;
    for (int64_t it; (it = dz_fast_next_item(t, n_items)) >= 0;) {
        const int64_t rb = it / col_blocks, r0 = rb * RF, c0 = it % col_blocks * cb;
        const int64_t rows = K - r0 < RF ? K - r0 : RF;
        if (rb != have) { /* W^T rows r0.. = W's columns r0.., GATHER_ROWS rows of W at a time */
            for (int64_t n0 = 0; n0 < N; n0 += GATHER_ROWS) {
                const int64_t nn = N - n0 < GATHER_ROWS ? N - n0 : GATHER_ROWS;
                if (f16) { /* kept in half precision: fgemm_packed converts while packing */
                    uint16_t *wt16 = (uint16_t *)wt;
                    for (int64_t i = 0; i < nn; i++) {
                        const uint16_t *src = (const uint16_t *)((const char *)w->data + (size_t)(n0 + i) * w->nb[1]) + r0;
                        for (int64_t r = 0; r < rows; r++) wt16[r * ld + n0 + i] = src[r];
                    }
                    continue;
                }
                for (int64_t i = 0; i < nn; i++) w_columns(w, n0 + i, r0, rows, cols + i * RF, tmp);
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t i = 0; i < nn; i++) wt[r * ld + n0 + i] = cols[i * RF + r];
            }
            have = rb;
        }
        const dz_fast_fgemm_args a = {.w = (const char *)wt, .w_stride = (size_t)ld * (f16 ? 2 : sizeof(float)),
                                      .wtype = f16 ? DZ_TYPE_F16 : DZ_TYPE_F32, .n = rows,
                                      .x = x + (size_t)(c0 / pnc * N * pnc), .m = M - c0 < cb ? M - c0 : cb, .k = N,
                                      .out = (float *)out->data + (size_t)(c0 * K + r0), .ldo = (size_t)K};
        k->fgemm_packed(&a, panel);
    }
}

/* Phase 1 of back_w: dY (N, M..) columns -> tiles, tile i holding columns
 * n in [i pnc, (i+1) pnc): x[(i M + m) pnc + n % pnc] = dY[m][n] (0 past N). */
static void tile_dy_cols(const dz_fast_task *t, int ith, int nth, float *x) {
    const dz_tensor *dy = t->node->src[1];
    const int64_t N = dy->ne[0], M = dz_nrows(dy), pnc = t->k->pnc, tiles = (N + pnc - 1) / pnc;
    int64_t lo, hi;
    dz_cpu_split(tiles, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        const int64_t n0 = i * pnc, w = N - n0 < pnc ? N - n0 : pnc;
        float *tile = x + (size_t)(i * M * pnc);
        for (int64_t m = 0; m < M; m++) {
            memcpy(tile + m * pnc, row_of(dy, m) + n0, (size_t)w * sizeof(float));
            for (int64_t c = w; c < pnc; c++) tile[m * pnc + c] = 0.0f;
        }
    }
}

static void run_back_w(dz_fast_task *t, int ith, int nth) {
    const dz_tensor *out = t->node, *xs = out->src[0];
    const dz_fast_kernels *k = t->k;
    const int64_t K = xs->ne[0], N = out->ne[1], M = dz_nrows(xs), RF = k->frows, pnc = k->pnc;
    float *x = (float *)t->shared;
    tile_dy_cols(t, ith, nth, x);
    dz_cpu_pool_barrier(t->pool);

    const int64_t ld = gather_ld(M);
    float *xt = mine_of(t, ith); /* RF rows of M (ld apart): X^T rows */
    float *panel = xt + align64((size_t)(RF * ld) * sizeof(float)) / sizeof(float);
    const int64_t row_blocks = (K + RF - 1) / RF, cb = col_block(row_blocks, N, pnc, nth);
    const int64_t col_blocks = (N + cb - 1) / cb, n_items = row_blocks * col_blocks;
    int64_t have = -1;
    for (int64_t it; (it = dz_fast_next_item(t, n_items)) >= 0;) {
        const int64_t rb = it / col_blocks, r0 = rb * RF, c0 = it % col_blocks * cb;
        const int64_t rows = K - r0 < RF ? K - r0 : RF;
        if (rb != have) {
            for (int64_t m = 0; m < M; m++) {
                const float *src = row_of(xs, m) + r0;
                for (int64_t r = 0; r < rows; r++) xt[r * ld + m] = src[r];
            }
            have = rb;
        }
        const dz_fast_fgemm_args a = {.w = (const char *)xt, .w_stride = (size_t)ld * sizeof(float),
                                      .wtype = DZ_TYPE_F32, .n = rows, .x = x + (size_t)(c0 / pnc * M * pnc),
                                      .m = N - c0 < cb ? N - c0 : cb, .k = M,
                                      .out = (float *)out->data + (size_t)(c0 * K + r0), .ldo = (size_t)K};
        k->fgemm_packed(&a, panel);
    }
}

static bool plan_gemm(dz_fast_task *t) {
    const dz_tensor *n = t->node, *a = n->src[0], *dy = n->src[1];
    const dz_fast_kernels *k = t->k;
    if (!k->fgemm_packed || dy->nb[0] != sizeof(float)) return false;
    const size_t RF = (size_t)k->frows, pnc = (size_t)k->pnc;
    const size_t panel = align64((size_t)(k->frows * k->fkc) * sizeof(float));
    const size_t M = (size_t)dz_nrows(dy), N = (size_t)dy->ne[0];
    if (n->op == DZ_OP_MUL_MAT_BACK_X) {
        if (a->nb[0] != dz_type_info((int)a->type)->type_size) return false;
        t->shared_bytes = (M + pnc - 1) / pnc * pnc * N * sizeof(float);
        t->thread_bytes = align64(RF * (size_t)gather_ld((int64_t)N) * sizeof(float)) + panel +
                          (GATHER_ROWS * RF + RF + 2 * QBLOCK_MAX) * sizeof(float);
        t->fn = run_back_x;
    } else {
        if (a->nb[0] != sizeof(float)) return false;
        t->shared_bytes = (N + pnc - 1) / pnc * pnc * M * sizeof(float);
        t->thread_bytes = align64(RF * (size_t)gather_ld((int64_t)M) * sizeof(float)) + panel;
        t->fn = run_back_w;
    }
    return true;
}

/* ---- ATTENTION_BACK ---- */

/* Row (h, s) of an (hd, heads, T) tensor with adjacent elements. */
static const float *head_row(const dz_tensor *t, int64_t h, int64_t s) {
    return (const float *)dz_cpu_at(t, 0, h, s, 0);
}

/* Pass 1, row (h, t): p = softmax_j<=t(scale q.k_j); dp_j = do.v_j;
 * D = sum p dp; dq = scale sum_j p_j (dp_j - D) k_j. Keeps L, D. */
static void attn_pass1(const dz_fast_task *t, int64_t h, int64_t s, float *p, float *dq, float *L, float *D) {
    const dz_tensor *out = t->node, *q = out->src[0], *k = out->src[1], *v = out->src[2], *dout = out->src[3];
    const dz_fast_kernels *kk = t->k;
    const int64_t hd = q->ne[0], H = q->ne[1], g = h / (H / k->ne[1]);
    const float scale = out->params.f[0];
    const float *qr = head_row(q, h, s), *dor = head_row(dout, h, s);
    float max = -INFINITY;
    for (int64_t j = 0; j <= s; j++) {
        p[j] = scale * kk->dot(qr, head_row(k, g, j), hd);
        max = p[j] > max ? p[j] : max;
    }
    double sum = 0.0;
    for (int64_t j = 0; j <= s; j++) sum += p[j] = expf(p[j] - max);
    const float inv = (float)(1.0 / sum);
    double dsum = 0.0;
    float *dp = p + (s + 1);
    for (int64_t j = 0; j <= s; j++) {
        p[j] *= inv;
        dp[j] = kk->dot(dor, head_row(v, g, j), hd);
        dsum += (double)p[j] * dp[j];
    }
    memset(dq, 0, (size_t)hd * sizeof(float));
    for (int64_t j = 0; j <= s; j++) kk->axpy(scale * p[j] * (dp[j] - (float)dsum), head_row(k, g, j), dq, hd);
    memcpy(dz_cpu_at(out, h * hd, s, 0, 0), dq, (size_t)hd * sizeof(float));
    L[h * q->ne[2] + s] = max + (float)log(sum);
    D[h * q->ne[2] + s] = (float)dsum;
}

/* Pass 2, row (g, j): over the group's heads h and queries s >= j:
 * p = exp(scale q_s.k_j - L), dv += p do_s, ds = p (do_s.v_j - D), dk += scale ds q_s. */
static void attn_pass2(const dz_fast_task *t, int64_t g, int64_t j, float *dk, float *dv, const float *L,
                       const float *D) {
    const dz_tensor *out = t->node, *q = out->src[0], *k = out->src[1], *v = out->src[2], *dout = out->src[3];
    const dz_fast_kernels *kk = t->k;
    const int64_t hd = q->ne[0], H = q->ne[1], G = k->ne[1], T = q->ne[2], group = H / G;
    const float scale = out->params.f[0];
    const float *kr = head_row(k, g, j), *vr = head_row(v, g, j);
    memset(dk, 0, (size_t)hd * sizeof(float));
    memset(dv, 0, (size_t)hd * sizeof(float));
    for (int64_t h = g * group; h < (g + 1) * group; h++)
        for (int64_t s = j; s < T; s++) {
            const float *qr = head_row(q, h, s), *dor = head_row(dout, h, s);
            const float p = expf(scale * kk->dot(qr, kr, hd) - L[h * T + s]);
            kk->axpy(p, dor, dv, hd);
            kk->axpy(scale * p * (kk->dot(dor, vr, hd) - D[h * T + s]), qr, dk, hd);
        }
    memcpy(dz_cpu_at(out, (H + g) * hd, j, 0, 0), dk, (size_t)hd * sizeof(float));
    memcpy(dz_cpu_at(out, (H + G + g) * hd, j, 0, 0), dv, (size_t)hd * sizeof(float));
}

static void run_attention_back(dz_fast_task *t, int ith, int nth) {
    const dz_tensor *q = t->node->src[0], *k = t->node->src[1];
    const int64_t hd = q->ne[0], H = q->ne[1], G = k->ne[1], T = q->ne[2];
    float *L = (float *)t->shared, *D = L + H * T;
    float *mine = mine_of(t, ith), *a = mine + 2 * T, *b = a + hd;
    /* Rows dealt round-robin, query-major: costs grow with the position. */
    for (int64_t r = ith; r < H * T; r += nth) attn_pass1(t, r % H, r / H, mine, a, L, D);
    dz_cpu_pool_barrier(t->pool);
    for (int64_t r = ith; r < G * T; r += nth) attn_pass2(t, r % G, r / G, a, b, L, D);
}

static bool plan_attention_back(dz_fast_task *t) {
    const dz_tensor *n = t->node;
    for (int i = 0; i < 4; i++)
        if (n->src[i]->nb[0] != sizeof(float) || n->src[i]->nb[2] % sizeof(float) != 0) return false;
    if (dz_fast_attn_back_gemm_plan(t)) return true;
    const size_t hd = (size_t)n->src[0]->ne[0], H = (size_t)n->src[0]->ne[1], T = (size_t)n->src[0]->ne[2];
    t->shared_bytes = 2 * H * T * sizeof(float);
    t->thread_bytes = (2 * T + 2 * hd) * sizeof(float);
    t->fn = run_attention_back;
    return true;
}

/* ---- CROSS_ENTROPY(_BACK) ---- */

static void run_cross_entropy(dz_fast_task *t, int ith, int nth) {
    const dz_tensor *out = t->node, *lg = out->src[0], *tg = out->src[1];
    const int64_t V = lg->ne[0], rows = dz_nrows(lg);
    double *loss = (double *)t->shared;
    float *buf = mine_of(t, ith);
    int64_t lo, hi;
    dz_cpu_split(rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *x = row_of(lg, r);
        int32_t target;
        memcpy(&target, dz_cpu_at(tg, r % lg->ne[1], r / lg->ne[1] % lg->ne[2], r / (lg->ne[1] * lg->ne[2]), 0), 4);
        const float m = t->k->max(x, V);
        memcpy(buf, x, (size_t)V * sizeof(float));
        const double s = t->k->exp_sum(buf, m, V);
        loss[r] = (double)m + log(s) - (double)x[target];
    }
    dz_cpu_pool_barrier(t->pool);
    if (ith != 0) return;
    double total = 0.0;
    for (int64_t r = 0; r < rows; r++) total += loss[r];
    *(float *)out->data = (float)(total / (double)rows);
}

static void run_cross_entropy_back(dz_fast_task *t, int ith, int nth) {
    const dz_tensor *out = t->node, *lg = out->src[0], *tg = out->src[1];
    const int64_t V = lg->ne[0], rows = dz_nrows(lg);
    const double g = (double)out->params.f[0] / (double)rows;
    int64_t lo, hi;
    dz_cpu_split(rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *x = row_of(lg, r);
        float *y = (float *)out->data + (size_t)(r * V);
        int32_t target;
        memcpy(&target, dz_cpu_at(tg, r % lg->ne[1], r / lg->ne[1] % lg->ne[2], r / (lg->ne[1] * lg->ne[2]), 0), 4);
        const float m = t->k->max(x, V);
        memcpy(y, x, (size_t)V * sizeof(float));
        const double s = t->k->exp_sum(y, m, V);
        t->k->scale(y, (float)(g / s), y, V);
        y[target] -= (float)g;
    }
}

static bool plan_cross_entropy(dz_fast_task *t) {
    const dz_tensor *lg = t->node->src[0];
    if (lg->nb[0] != sizeof(float)) return false;
    if (t->node->op == DZ_OP_CROSS_ENTROPY) {
        t->shared_bytes = (size_t)dz_nrows(lg) * sizeof(double);
        t->thread_bytes = (size_t)lg->ne[0] * sizeof(float);
        t->fn = run_cross_entropy;
    } else {
        t->fn = run_cross_entropy_back;
    }
    return true;
}

bool dz_fast_plan_train(dz_fast_task *t) {
    switch (t->node->op) {
    case DZ_OP_MUL_MAT_BACK_X:
    case DZ_OP_MUL_MAT_BACK_W: return plan_gemm(t);
    case DZ_OP_ATTENTION_BACK: return plan_attention_back(t);
    case DZ_OP_CROSS_ENTROPY:
    case DZ_OP_CROSS_ENTROPY_BACK: return plan_cross_entropy(t);
    default: return dz_fast_plan_train_ew(t);
    }
}
