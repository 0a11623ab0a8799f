/* Builders of the GPT-2 (tier I) and training (tier T) ops: each checks its
 * operands' types and shapes (see dz_op in backend.h) and returns a new
 * contiguous F32 node, or NULL with the first error recorded in the
 * context. A NULL operand makes a builder return NULL quietly: the error
 * that produced it is already recorded.
 *
 * Two generalizations of backend.h's shapes, both reducing to them:
 *  - MUL_MAT_BACK_X takes dY with rows in dims 1..3 ((N, M, B2, B3) ->
 *    (K, M, B2, B3)); MUL_MAT_BACK_W takes X and dY with the same rows in
 *    dims 1..3 and sums over all of them.
 *  - CROSS_ENTROPY(_BACK) takes logits (V, T, B, C) with targets (T, B, C):
 *    the mean is over every row. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tensor/tensor_impl.h"

/* ---- checks (dz_op_fail1 / dz_op_fail2 / dz_op_node: ops.c) ---- */

static bool same_shape(const dz_tensor *a, const dz_tensor *b) { return memcmp(a->ne, b->ne, sizeof a->ne) == 0; }

static bool is_i32_vector(const dz_tensor *t) {
    return t->type == DZ_TYPE_I32 && t->ne[1] == 1 && t->ne[2] == 1 && t->ne[3] == 1;
}

static bool eps_ok(float eps) { return eps >= 0.0f && isfinite(eps); }

static dz_tensor *bad_eps(dz_ctx *ctx, const char *op, const dz_tensor *a, float eps) {
    char why[64];
    snprintf(why, sizeof why, "epsilon %g must be finite and >= 0", (double)eps);
    return dz_op_fail1(ctx, op, a, why);
}

/* ---- forward (tier I) ---- */

dz_tensor *dz_layer_norm(dz_ctx *ctx, dz_tensor *a, float eps) {
    if (!ctx || !a) return NULL;
    if (a->type != DZ_TYPE_F32) return dz_op_fail1(ctx, "layer_norm", a, "must be F32");
    if (!eps_ok(eps)) return bad_eps(ctx, "layer_norm", a, eps);
    dz_tensor *t = dz_op_node(ctx, "layer_norm", DZ_OP_LAYER_NORM, DZ_TYPE_F32, a->n_dims, a->ne, a, NULL, NULL, NULL);
    if (t) t->params.f[0] = eps;
    return t;
}

dz_tensor *dz_gelu(dz_ctx *ctx, dz_tensor *a) {
    if (!ctx || !a) return NULL;
    if (a->type != DZ_TYPE_F32) return dz_op_fail1(ctx, "gelu", a, "must be F32");
    return dz_op_node(ctx, "gelu", DZ_OP_GELU, DZ_TYPE_F32, a->n_dims, a->ne, a, NULL, NULL, NULL);
}

/* ---- matmul gradients ---- */

dz_tensor *dz_mul_mat_back_x(dz_ctx *ctx, dz_tensor *w, dz_tensor *dy) {
    if (!ctx || !w || !dy) return NULL;
    if (!dz_type_can_dequantize(w->type)) return dz_op_fail1(ctx, "mul_mat_back_x", w, "W's type has no dequantizer");
    if (w->ne[2] != 1 || w->ne[3] != 1) return dz_op_fail1(ctx, "mul_mat_back_x", w, "W must be two-dimensional (K, N)");
    if (dy->type != DZ_TYPE_F32) return dz_op_fail1(ctx, "mul_mat_back_x", dy, "dY must be F32");
    if (dy->ne[0] != w->ne[1]) return dz_op_fail2(ctx, "mul_mat_back_x", w, dy, "dY's dimension 0 must be W's N (dimension 1)");
    const int64_t ne[4] = {w->ne[0], dy->ne[1], dy->ne[2], dy->ne[3]};
    return dz_op_node(ctx, "mul_mat_back_x", DZ_OP_MUL_MAT_BACK_X, DZ_TYPE_F32, dy->n_dims > 2 ? dy->n_dims : 2, ne, w, dy, NULL,
                    NULL);
}

dz_tensor *dz_mul_mat_back_w(dz_ctx *ctx, dz_tensor *x, dz_tensor *dy) {
    if (!ctx || !x || !dy) return NULL;
    if (x->type != DZ_TYPE_F32 || dy->type != DZ_TYPE_F32)
        return dz_op_fail2(ctx, "mul_mat_back_w", x, dy, "X and dY must be F32");
    if (x->ne[1] != dy->ne[1] || x->ne[2] != dy->ne[2] || x->ne[3] != dy->ne[3])
        return dz_op_fail2(ctx, "mul_mat_back_w", x, dy, "X and dY must have the same rows (dimensions 1..3)");
    return dz_op_node(ctx, "mul_mat_back_w", DZ_OP_MUL_MAT_BACK_W, DZ_TYPE_F32, 2, (int64_t[]){x->ne[0], dy->ne[0], 1, 1}, x, dy,
                    NULL, NULL);
}

dz_tensor *dz_sum_cols(dz_ctx *ctx, dz_tensor *a) {
    if (!ctx || !a) return NULL;
    if (a->type != DZ_TYPE_F32) return dz_op_fail1(ctx, "sum_cols", a, "must be F32");
    return dz_op_node(ctx, "sum_cols", DZ_OP_SUM_COLS, DZ_TYPE_F32, 1, (int64_t[]){a->ne[0], 1, 1, 1}, a, NULL, NULL, NULL);
}

/* ---- elementwise and normalization gradients: x and dy F32, same shape ---- */

static dz_tensor *back2(dz_ctx *ctx, const char *name, dz_op op, dz_tensor *x, dz_tensor *dy) {
    if (!ctx || !x || !dy) return NULL;
    if (x->type != DZ_TYPE_F32 || dy->type != DZ_TYPE_F32) return dz_op_fail2(ctx, name, x, dy, "both must be F32");
    if (!same_shape(x, dy)) return dz_op_fail2(ctx, name, x, dy, "shapes differ");
    return dz_op_node(ctx, name, op, DZ_TYPE_F32, x->n_dims > dy->n_dims ? x->n_dims : dy->n_dims, x->ne, x, dy, NULL, NULL);
}

dz_tensor *dz_rms_norm_back(dz_ctx *ctx, dz_tensor *x, dz_tensor *dy, float eps) {
    if (ctx && x && dy && !eps_ok(eps)) return bad_eps(ctx, "rms_norm_back", x, eps);
    dz_tensor *t = back2(ctx, "rms_norm_back", DZ_OP_RMS_NORM_BACK, x, dy);
    if (t) t->params.f[0] = eps;
    return t;
}

dz_tensor *dz_layer_norm_back(dz_ctx *ctx, dz_tensor *x, dz_tensor *dy, float eps) {
    if (ctx && x && dy && !eps_ok(eps)) return bad_eps(ctx, "layer_norm_back", x, eps);
    dz_tensor *t = back2(ctx, "layer_norm_back", DZ_OP_LAYER_NORM_BACK, x, dy);
    if (t) t->params.f[0] = eps;
    return t;
}

dz_tensor *dz_gelu_back(dz_ctx *ctx, dz_tensor *x, dz_tensor *dy) {
    return back2(ctx, "gelu_back", DZ_OP_GELU_BACK, x, dy);
}

dz_tensor *dz_swiglu_back(dz_ctx *ctx, dz_tensor *gate, dz_tensor *up, dz_tensor *dy) {
    if (!ctx || !gate || !up || !dy) return NULL;
    if (gate->type != DZ_TYPE_F32 || up->type != DZ_TYPE_F32 || dy->type != DZ_TYPE_F32)
        return dz_op_fail2(ctx, "swiglu_back", gate, up, "gate, up and dy must be F32");
    if (gate->ne[2] != 1 || gate->ne[3] != 1) return dz_op_fail1(ctx, "swiglu_back", gate, "gate must be (n, T)");
    if (!same_shape(gate, up)) return dz_op_fail2(ctx, "swiglu_back", gate, up, "shapes differ");
    if (!same_shape(gate, dy)) return dz_op_fail2(ctx, "swiglu_back", gate, dy, "shapes differ");
    return dz_op_node(ctx, "swiglu_back", DZ_OP_SWIGLU_BACK, DZ_TYPE_F32, 3, (int64_t[]){gate->ne[0], gate->ne[1], 2, 1}, gate, up,
                    dy, NULL);
}

/* ---- rope, attention ---- */

dz_tensor *dz_rope_back(dz_ctx *ctx, dz_tensor *dy, dz_tensor *pos, int n_rot, int mode, float freq_base,
                        float freq_scale) {
    if (!ctx || !dy || !pos) return NULL;
    /* Same checks and params as the forward; only the op differs. */
    dz_tensor *t = dz_rope(ctx, dy, pos, n_rot, mode, freq_base, freq_scale);
    if (!t) return NULL;
    t->op = DZ_OP_ROPE_BACK;
    snprintf(t->name, sizeof t->name, "rope_back");
    return t;
}

dz_tensor *dz_attention_back(dz_ctx *ctx, dz_tensor *q, dz_tensor *k, dz_tensor *v, dz_tensor *dout, float scale) {
    if (!ctx || !q || !k || !v || !dout) return NULL;
    const char *op = "attention_back";
    if (q->type != DZ_TYPE_F32 || q->ne[3] != 1) return dz_op_fail1(ctx, op, q, "q must be F32 (hd, n_head, T)");
    if (k->type != DZ_TYPE_F32 || k->ne[3] != 1) return dz_op_fail1(ctx, op, k, "k must be F32 (hd, n_kv_head, T)");
    if (v->type != DZ_TYPE_F32 || !same_shape(k, v)) return dz_op_fail2(ctx, op, k, v, "v must be F32 and shaped like k");
    if (k->ne[0] != q->ne[0] || k->ne[2] != q->ne[2])
        return dz_op_fail2(ctx, op, q, k, "head sizes or sequence lengths differ");
    if (k->ne[1] < 1 || q->ne[1] % k->ne[1] != 0) return dz_op_fail2(ctx, op, q, k, "n_head must be a multiple of n_kv_head");
    if (dout->type != DZ_TYPE_F32 || !same_shape(q, dout))
        return dz_op_fail2(ctx, op, q, dout, "dout must be F32 and shaped like q");
    if (!isfinite(scale)) return dz_op_fail1(ctx, op, q, "the scale must be finite");
    const int64_t ne[4] = {q->ne[0] * (q->ne[1] + 2 * k->ne[1]), q->ne[2], 1, 1};
    dz_tensor *t = dz_op_node(ctx, op, DZ_OP_ATTENTION_BACK, DZ_TYPE_F32, 2, ne, q, k, v, dout);
    if (t) {
        t->params.f[0] = scale;
        t->params.i[1] = 1; /* causal, n_past 0: recorded as ATTENTION would */
        t->params.i[2] = 0;
    }
    return t;
}

/* ---- embeddings, loss ---- */

dz_tensor *dz_get_rows_back(dz_ctx *ctx, dz_tensor *dy, dz_tensor *ids, int64_t n_rows) {
    if (!ctx || !dy || !ids) return NULL;
    if (dy->type != DZ_TYPE_F32 || dy->ne[2] != 1 || dy->ne[3] != 1)
        return dz_op_fail1(ctx, "get_rows_back", dy, "dY must be F32 (ne0, n)");
    if (!is_i32_vector(ids) || ids->ne[0] != dy->ne[1])
        return dz_op_fail2(ctx, "get_rows_back", dy, ids, "ids must be I32 (n), one per row of dY");
    if (n_rows < 1 || n_rows > INT32_MAX) {
        char why[64];
        snprintf(why, sizeof why, "n_rows %lld must be in 1..2^31-1", (long long)n_rows);
        return dz_op_fail1(ctx, "get_rows_back", dy, why);
    }
    dz_tensor *t = dz_op_node(ctx, "get_rows_back", DZ_OP_GET_ROWS_BACK, DZ_TYPE_F32, 2, (int64_t[]){dy->ne[0], n_rows, 1, 1}, dy,
                            ids, NULL, NULL);
    if (t) t->params.i[0] = (int32_t)n_rows;
    return t;
}

/* logits F32 (V, T, B, C) with V >= 1; targets I32 (T, B, C). */
static const char *check_ce(const dz_tensor *logits, const dz_tensor *targets, bool *second) {
    *second = false;
    if (logits->type != DZ_TYPE_F32 || logits->ne[0] < 1) return "logits must be F32 (V, T)";
    *second = true;
    if (targets->type != DZ_TYPE_I32 || targets->ne[3] != 1 || targets->ne[0] != logits->ne[1] ||
        targets->ne[1] != logits->ne[2] || targets->ne[2] != logits->ne[3])
        return "targets must be I32 (T), one per row of the logits";
    return NULL;
}

dz_tensor *dz_cross_entropy(dz_ctx *ctx, dz_tensor *logits, dz_tensor *targets) {
    if (!ctx || !logits || !targets) return NULL;
    bool second;
    const char *why = check_ce(logits, targets, &second);
    if (why) return second ? dz_op_fail2(ctx, "cross_entropy", logits, targets, why) : dz_op_fail1(ctx, "cross_entropy", logits, why);
    return dz_op_node(ctx, "cross_entropy", DZ_OP_CROSS_ENTROPY, DZ_TYPE_F32, 1, (int64_t[]){1, 1, 1, 1}, logits, targets, NULL,
                    NULL);
}

dz_tensor *dz_cross_entropy_back(dz_ctx *ctx, dz_tensor *logits, dz_tensor *targets, float dloss) {
    if (!ctx || !logits || !targets) return NULL;
    bool second;
    const char *why = check_ce(logits, targets, &second);
    if (why)
        return second ? dz_op_fail2(ctx, "cross_entropy_back", logits, targets, why)
                      : dz_op_fail1(ctx, "cross_entropy_back", logits, why);
    if (!isfinite(dloss)) return dz_op_fail1(ctx, "cross_entropy_back", logits, "dloss must be finite");
    dz_tensor *t = dz_op_node(ctx, "cross_entropy_back", DZ_OP_CROSS_ENTROPY_BACK, DZ_TYPE_F32, logits->n_dims, logits->ne, logits,
                            targets, NULL, NULL);
    if (t) t->params.f[0] = dloss;
    return t;
}
