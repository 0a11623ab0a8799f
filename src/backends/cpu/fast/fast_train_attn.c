/* ATTENTION_BACK on the fast path as small GEMMs per query head (the
 * table's fgemm: out[c][r] = sum_i w[r][i] x[c][i]). For head h with kv
 * head g, Q, dO (T, hd) its rows and K, V (T, hd) g's:
 *   S = Q K^T (scaled), P = causal softmax of its rows, dP = dO V^T,
 *   dS = P o (dP - D) scale, D_t = sum_j P[t][j] dP[t][j],
 *   dQ = dS K,  dK_h = dS^T Q,  dV_h = P^T dO.
 * Phase 1 (heads dealt dynamically) writes dQ into the output and dK_h,
 * dV_h into shared memory; after a barrier, phase 2 adds the group's dK_h,
 * dV_h in head order for each kv row (so results do not depend on the
 * thread count). The GEMMs go by causal blocks of CB queries (keys), which
 * skip most of the upper triangle; what they still compute of it is zeroed.
 * Used when the scratch stays moderate (see
 * dz_fast_attn_back_gemm_plan); fast_train.c's row-wise form otherwise. */
#include <string.h>

#include "backends/cpu/fast/fast_train.h"

enum { MAX_THREAD_FLOATS = 16 << 20, MAX_SHARED_FLOATS = 64 << 20 };

/* Floats per thread: Kt, Qt, dOt (hd x T each), S, dP, St (T x T each). */
static size_t thread_floats(int64_t hd, int64_t T) { return (size_t)(3 * hd * T + 3 * T * T + 64); }

/* TB: transposes go by TB x TB blocks (both sides touch few cache lines at
 * a time); CB: queries (keys) per causal block of the GEMMs. */
enum { TB = 16, CB = 32 };

/* dst[c * rows + r] = src row r (stride in floats), element c: the transpose
 * of rows x cols. */
static void transpose(const float *src, size_t stride, int64_t rows, int64_t cols, float *dst) {
    for (int64_t r0 = 0; r0 < rows; r0 += TB)
        for (int64_t c0 = 0; c0 < cols; c0 += TB) {
            const int64_t r1 = r0 + TB < rows ? r0 + TB : rows, c1 = c0 + TB < cols ? c0 + TB : cols;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++) dst[c * rows + r] = src[(size_t)r * stride + (size_t)c];
        }
}

/* out (rows n of w) x (rows m of x) over k: out[c * ldo + r]. */
static void gemm(const dz_fast_kernels *k, const float *w, size_t w_stride, int64_t n, const float *x,
                 size_t x_stride, int64_t m, int64_t kk, float *out, size_t ldo) {
    const dz_fast_fgemm_args a = {.w = (const char *)w, .w_stride = w_stride * sizeof(float), .wtype = DZ_TYPE_F32,
                                  .n = n, .x = x, .x_stride = x_stride, .m = m, .k = kk, .out = out, .ldo = ldo};
    k->fgemm(&a);
}

static void one_head(const dz_fast_task *t, int64_t h, float *mine) {
    const dz_tensor *out = t->node, *q = out->src[0], *kt = out->src[1], *v = out->src[2], *dout = out->src[3];
    const dz_fast_kernels *k = t->k;
    const int64_t hd = q->ne[0], H = q->ne[1], G = kt->ne[1], T = q->ne[2], g = h / (H / G);
    const float scale = out->params.f[0];
    float *Kt = mine, *Qt = Kt + hd * T, *dOt = Qt + hd * T, *S = dOt + hd * T, *dP = S + T * T, *St = dP + T * T;
    float *dK = (float *)t->shared + (size_t)(h * T * hd), *dV = dK + (size_t)(H * T * hd);
    const float *q0 = (const float *)dz_cpu_at(q, 0, h, 0, 0), *k0 = (const float *)dz_cpu_at(kt, 0, g, 0, 0);
    const float *v0 = (const float *)dz_cpu_at(v, 0, g, 0, 0), *d0 = (const float *)dz_cpu_at(dout, 0, h, 0, 0);
    const size_t qs = q->nb[2] / sizeof(float), ks = kt->nb[2] / sizeof(float);
    const size_t vs = v->nb[2] / sizeof(float), ds = dout->nb[2] / sizeof(float);

    /* Blocks of CB queries see keys j < the block's end only. */
    for (int64_t t0 = 0; t0 < T; t0 += CB) {
        const int64_t n = T - t0 < CB ? T - t0 : CB, seen = t0 + n;
        gemm(k, k0, ks, seen, q0 + t0 * qs, qs, n, hd, S + t0 * T, (size_t)T);  /* S[t][j] = q_t . k_j */
        gemm(k, v0, vs, seen, d0 + t0 * ds, ds, n, hd, dP + t0 * T, (size_t)T); /* dP[t][j] = do_t . v_j */
    }
    for (int64_t r = 0; r < T; r++) {
        float *p = S + r * T, *dp = dP + r * T;
        k->scale(p, scale, p, r + 1);
        const double sum = k->exp_sum(p, k->max(p, r + 1), r + 1);
        k->scale(p, (float)(1.0 / sum), p, r + 1);
        const float dsum = k->dot(p, dp, r + 1);
        for (int64_t j = 0; j <= r; j++) dp[j] = p[j] * (dp[j] - dsum) * scale;
        for (int64_t j = r + 1; j < T; j++) p[j] = dp[j] = 0.0f;
    }
    transpose(k0, ks, T, hd, Kt); /* Kt[d][j] */
    /* dQ[t][d] = sum_{j < block end} dS[t][j] k_j[d]: straight into the output's columns */
    const size_t ldq = out->nb[1] / sizeof(float);
    float *dq = (float *)dz_cpu_at(out, h * hd, 0, 0, 0);
    for (int64_t t0 = 0; t0 < T; t0 += CB) {
        const int64_t n = T - t0 < CB ? T - t0 : CB;
        gemm(k, Kt, (size_t)T, hd, dP + t0 * T, (size_t)T, n, t0 + n, dq + (size_t)t0 * ldq, ldq);
    }
    /* dK_h[j][d] = sum_{t >= block start} dS[t][j] q_t[d]; dV_h[j][d] likewise with P and do */
    transpose(q0, qs, T, hd, Qt);
    transpose(dP, (size_t)T, T, T, St); /* dS^T */
    for (int64_t j0 = 0; j0 < T; j0 += CB) {
        const int64_t n = T - j0 < CB ? T - j0 : CB;
        gemm(k, Qt + j0, (size_t)T, hd, St + j0 * T + j0, (size_t)T, n, T - j0, dK + j0 * hd, (size_t)hd);
    }
    transpose(d0, ds, T, hd, dOt);
    transpose(S, (size_t)T, T, T, St); /* P^T */
    for (int64_t j0 = 0; j0 < T; j0 += CB) {
        const int64_t n = T - j0 < CB ? T - j0 : CB;
        gemm(k, dOt + j0, (size_t)T, hd, St + j0 * T + j0, (size_t)T, n, T - j0, dV + j0 * hd, (size_t)hd);
    }
}

static void run(dz_fast_task *t, int ith, int nth) {
    const dz_tensor *out = t->node, *q = out->src[0];
    const int64_t hd = q->ne[0], H = q->ne[1], G = out->src[1]->ne[1], T = q->ne[2], group = H / G;
    float *mine = (float *)(t->per_thread + (size_t)ith * t->thread_bytes);
    for (int64_t h; (h = dz_fast_next_item(t, H)) >= 0;) one_head(t, h, mine);
    dz_cpu_pool_barrier(t->pool);
    const float *dK = (const float *)t->shared, *dV = dK + (size_t)(H * T * hd);
    int64_t lo, hi;
    dz_cpu_split(G * T, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const int64_t g = r / T, j = r % T;
        float *dk = (float *)dz_cpu_at(out, (H + g) * hd, j, 0, 0), *dv = (float *)dz_cpu_at(out, (H + G + g) * hd, j, 0, 0);
        memset(dk, 0, (size_t)hd * sizeof(float));
        memset(dv, 0, (size_t)hd * sizeof(float));
        for (int64_t h = g * group; h < (g + 1) * group; h++) {
            t->k->add(dk, dK + (size_t)((h * T + j) * hd), dk, hd);
            t->k->add(dv, dV + (size_t)((h * T + j) * hd), dv, hd);
        }
    }
}

bool dz_fast_attn_back_gemm_plan(dz_fast_task *t) {
    const dz_tensor *q = t->node->src[0];
    const int64_t hd = q->ne[0], H = q->ne[1], T = q->ne[2];
    const size_t shared = (size_t)(2 * H * T * hd);
    if (thread_floats(hd, T) > MAX_THREAD_FLOATS || shared > MAX_SHARED_FLOATS) return false;
    t->shared_bytes = shared * sizeof(float);
    t->thread_bytes = thread_floats(hd, T) * sizeof(float);
    t->fn = run;
    return true;
}
