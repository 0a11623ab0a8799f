/* Op builders: each checks its operands' types and shapes (see dz_op in
 * backend.h) and returns a new node, or NULL with the first error recorded
 * in the context. A NULL operand makes a builder return NULL quietly: the
 * error that produced it is already recorded. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tensor/tensor_impl.h"

static const char *const op_names[DZ_OP_COUNT] = {
    [DZ_OP_NONE] = "NONE",         [DZ_OP_VIEW] = "VIEW",       [DZ_OP_GET_ROWS] = "GET_ROWS",
    [DZ_OP_ADD] = "ADD",           [DZ_OP_MUL] = "MUL",         [DZ_OP_SCALE] = "SCALE",
    [DZ_OP_RMS_NORM] = "RMS_NORM", [DZ_OP_MUL_MAT] = "MUL_MAT", [DZ_OP_ROPE] = "ROPE",
    [DZ_OP_SOFTMAX] = "SOFTMAX",   [DZ_OP_ATTENTION] = "ATTENTION", [DZ_OP_SILU] = "SILU",
    [DZ_OP_SWIGLU] = "SWIGLU",     [DZ_OP_CPY] = "CPY",         [DZ_OP_SET_ROWS] = "SET_ROWS",
    [DZ_OP_PAGED_ATTENTION] = "PAGED_ATTENTION",
    [DZ_OP_LAYER_NORM] = "LAYER_NORM", [DZ_OP_GELU] = "GELU",
    [DZ_OP_MUL_MAT_BACK_X] = "MUL_MAT_BACK_X", [DZ_OP_MUL_MAT_BACK_W] = "MUL_MAT_BACK_W",
    [DZ_OP_SUM_COLS] = "SUM_COLS", [DZ_OP_RMS_NORM_BACK] = "RMS_NORM_BACK",
    [DZ_OP_LAYER_NORM_BACK] = "LAYER_NORM_BACK", [DZ_OP_ROPE_BACK] = "ROPE_BACK",
    [DZ_OP_ATTENTION_BACK] = "ATTENTION_BACK", [DZ_OP_SWIGLU_BACK] = "SWIGLU_BACK",
    [DZ_OP_GELU_BACK] = "GELU_BACK", [DZ_OP_GET_ROWS_BACK] = "GET_ROWS_BACK",
    [DZ_OP_CROSS_ENTROPY] = "CROSS_ENTROPY", [DZ_OP_CROSS_ENTROPY_BACK] = "CROSS_ENTROPY_BACK",
};

const char *dz_op_name(dz_op op) {
    return (unsigned)op < DZ_OP_COUNT && op_names[op] ? op_names[op] : "?";
}

uint32_t dz_op_tiers(dz_op op) {
    switch (op) {
    case DZ_OP_NONE: case DZ_OP_VIEW: case DZ_OP_COUNT: return 0; /* nothing to compute */
    case DZ_OP_MUL_MAT_BACK_X: case DZ_OP_MUL_MAT_BACK_W: case DZ_OP_SUM_COLS: case DZ_OP_RMS_NORM_BACK:
    case DZ_OP_LAYER_NORM_BACK: case DZ_OP_ROPE_BACK: case DZ_OP_ATTENTION_BACK: case DZ_OP_SWIGLU_BACK:
    case DZ_OP_GELU_BACK: case DZ_OP_GET_ROWS_BACK: case DZ_OP_CROSS_ENTROPY: case DZ_OP_CROSS_ENTROPY_BACK:
        return DZ_TIER_T;
    default: return DZ_TIER_I;
    }
}

/* ---- checks ---- */

/* "'name' (a, b, c, d) TYPE" of operand t. */
static const char *describe(const dz_tensor *t, char *buf, size_t cap) {
    char shape[96];
    snprintf(buf, cap, "'%.64s' %s", t->name, dz_shape_str(t, shape, sizeof shape));
    return buf;
}

dz_tensor *dz_op_fail1(dz_ctx *ctx, const char *op, const dz_tensor *a, const char *why) {
    char da[192];
    return dz_ctx_fail(ctx, DZ_ERR_ARG, "%s: %s: %s", op, describe(a, da, sizeof da), why);
}

dz_tensor *dz_op_fail2(dz_ctx *ctx, const char *op, const dz_tensor *a, const dz_tensor *b, const char *why) {
    char da[192], db[192];
    return dz_ctx_fail(ctx, DZ_ERR_ARG, "%s: %s and %s: %s", op, describe(a, da, sizeof da),
                       describe(b, db, sizeof db), why);
}

static int max_dims(const dz_tensor *a, const dz_tensor *b) {
    return b && b->n_dims > a->n_dims ? b->n_dims : a->n_dims;
}

dz_tensor *dz_op_node(dz_ctx *ctx, const char *name, dz_op op, dz_type type, int n_dims,
                      const int64_t *ne, dz_tensor *s0, dz_tensor *s1, dz_tensor *s2, dz_tensor *s3) {
    dz_tensor *t = dz_ctx_new(ctx, name, type, n_dims, ne);
    if (!t) return NULL;
    t->op = op;
    t->src[0] = s0;
    t->src[1] = s1;
    t->src[2] = s2;
    t->src[3] = s3;
    return t;
}

/* ---- ops ---- */

dz_tensor *dz_get_rows(dz_ctx *ctx, dz_tensor *table, dz_tensor *ids) {
    if (!ctx || !table || !ids) return NULL;
    if (ids->type != DZ_TYPE_I32) return dz_op_fail1(ctx, "get_rows", ids, "ids must be I32");
    if (ids->ne[1] != 1 || ids->ne[2] != 1 || ids->ne[3] != 1)
        return dz_op_fail1(ctx, "get_rows", ids, "ids must be one-dimensional");
    if (table->ne[2] != 1 || table->ne[3] != 1)
        return dz_op_fail1(ctx, "get_rows", table, "the table must be two-dimensional");
    return dz_op_node(ctx, "get_rows", DZ_OP_GET_ROWS, DZ_TYPE_F32, 2, (int64_t[]){table->ne[0], ids->ne[0]},
                    table, ids, NULL, NULL);
}

static dz_tensor *binary(dz_ctx *ctx, const char *name, dz_op op, dz_tensor *a, dz_tensor *b) {
    if (!ctx || !a || !b) return NULL;
    if (a->type != DZ_TYPE_F32 || b->type != DZ_TYPE_F32) return dz_op_fail2(ctx, name, a, b, "both must be F32");
    for (int i = 0; i < DZ_MAX_DIMS; i++)
        if (b->ne[i] < 1 || a->ne[i] % b->ne[i] != 0)
            return dz_op_fail2(ctx, name, a, b, "the second does not broadcast to the first (each dimension must divide)");
    return dz_op_node(ctx, name, op, DZ_TYPE_F32, max_dims(a, b), a->ne, a, b, NULL, NULL);
}

dz_tensor *dz_add(dz_ctx *ctx, dz_tensor *a, dz_tensor *b) { return binary(ctx, "add", DZ_OP_ADD, a, b); }
dz_tensor *dz_mul(dz_ctx *ctx, dz_tensor *a, dz_tensor *b) { return binary(ctx, "mul", DZ_OP_MUL, a, b); }

static dz_tensor *unary(dz_ctx *ctx, const char *name, dz_op op, dz_tensor *a) {
    if (!ctx || !a) return NULL;
    if (a->type != DZ_TYPE_F32) return dz_op_fail1(ctx, name, a, "must be F32");
    return dz_op_node(ctx, name, op, DZ_TYPE_F32, a->n_dims, a->ne, a, NULL, NULL, NULL);
}

dz_tensor *dz_scale(dz_ctx *ctx, dz_tensor *a, float s) {
    dz_tensor *t = unary(ctx, "scale", DZ_OP_SCALE, a);
    if (t) t->params.f[0] = s;
    return t;
}

dz_tensor *dz_rms_norm(dz_ctx *ctx, dz_tensor *a, float eps) {
    if (ctx && a && !(eps >= 0.0f && isfinite(eps))) {
        char why[64];
        snprintf(why, sizeof why, "epsilon %g must be finite and >= 0", (double)eps);
        return dz_op_fail1(ctx, "rms_norm", a, why);
    }
    dz_tensor *t = unary(ctx, "rms_norm", DZ_OP_RMS_NORM, a);
    if (t) t->params.f[0] = eps;
    return t;
}

dz_tensor *dz_silu(dz_ctx *ctx, dz_tensor *a) { return unary(ctx, "silu", DZ_OP_SILU, a); }

dz_tensor *dz_swiglu(dz_ctx *ctx, dz_tensor *gate, dz_tensor *up) {
    if (!ctx || !gate || !up) return NULL;
    if (gate->type != DZ_TYPE_F32 || up->type != DZ_TYPE_F32)
        return dz_op_fail2(ctx, "swiglu", gate, up, "both must be F32");
    if (memcmp(gate->ne, up->ne, sizeof gate->ne) != 0)
        return dz_op_fail2(ctx, "swiglu", gate, up, "shapes differ");
    return dz_op_node(ctx, "swiglu", DZ_OP_SWIGLU, DZ_TYPE_F32, max_dims(gate, up), gate->ne, gate, up, NULL, NULL);
}

dz_tensor *dz_mul_mat(dz_ctx *ctx, dz_tensor *w, dz_tensor *x) {
    if (!ctx || !w || !x) return NULL;
    if (x->type != DZ_TYPE_F32) return dz_op_fail2(ctx, "mul_mat", w, x, "X must be F32");
    if (w->ne[0] != x->ne[0]) return dz_op_fail2(ctx, "mul_mat", w, x, "rows differ in length (dimension 0)");
    if (x->ne[2] % w->ne[2] != 0 || x->ne[3] % w->ne[3] != 0)
        return dz_op_fail2(ctx, "mul_mat", w, x, "W does not broadcast over X's dimensions 2 and 3");
    return dz_op_node(ctx, "mul_mat", DZ_OP_MUL_MAT, DZ_TYPE_F32, max_dims(w, x),
                    (int64_t[]){w->ne[1], x->ne[1], x->ne[2], x->ne[3]}, w, x, NULL, NULL);
}

dz_tensor *dz_rope(dz_ctx *ctx, dz_tensor *x, dz_tensor *pos, int n_rot, int mode, float freq_base,
                   float freq_scale) {
    if (!ctx || !x || !pos) return NULL;
    char why[128];
    if (x->type != DZ_TYPE_F32 || x->ne[3] != 1) return dz_op_fail1(ctx, "rope", x, "x must be F32 (head_dim, n_head, T)");
    if (pos->type != DZ_TYPE_I32 || pos->ne[1] != 1 || pos->ne[2] != 1 || pos->ne[3] != 1 || pos->ne[0] != x->ne[2])
        return dz_op_fail2(ctx, "rope", x, pos, "positions must be I32 (T) with T = x's dimension 2");
    if (n_rot < 2 || n_rot % 2 != 0 || n_rot > x->ne[0]) {
        snprintf(why, sizeof why, "n_rot %d must be even and in 2..head_dim", n_rot);
        return dz_op_fail1(ctx, "rope", x, why);
    }
    if (mode != DZ_ROPE_NORMAL && mode != DZ_ROPE_NEOX) {
        snprintf(why, sizeof why, "unknown rope mode %d", mode);
        return dz_op_fail1(ctx, "rope", x, why);
    }
    if (!(freq_base > 0.0f) || !isfinite(freq_base) || !(freq_scale > 0.0f) || !isfinite(freq_scale)) {
        snprintf(why, sizeof why, "freq_base %g and freq_scale %g must be finite and > 0", (double)freq_base,
                 (double)freq_scale);
        return dz_op_fail1(ctx, "rope", x, why);
    }
    dz_tensor *t = dz_op_node(ctx, "rope", DZ_OP_ROPE, DZ_TYPE_F32, x->n_dims, x->ne, x, pos, NULL, NULL);
    if (!t) return NULL;
    t->params.i[0] = n_rot;
    t->params.i[1] = mode;
    t->params.f[2] = freq_base;
    t->params.f[3] = freq_scale;
    return t;
}

/* The mask of softmax/attention: F32 (n_cols, >= n_rows). */
static bool mask_ok(const dz_tensor *mask, int64_t n_cols, int64_t n_rows) {
    return mask->type == DZ_TYPE_F32 && mask->ne[0] == n_cols && mask->ne[1] >= n_rows && mask->ne[2] == 1 &&
           mask->ne[3] == 1;
}

static void set_softmax_params(dz_tensor *t, float scale, bool causal, int32_t n_past) {
    t->params.f[0] = scale;
    t->params.i[1] = causal ? 1 : 0;
    t->params.i[2] = n_past;
}

dz_tensor *dz_softmax(dz_ctx *ctx, dz_tensor *a, dz_tensor *mask, float scale, bool causal, int32_t n_past) {
    if (!ctx || !a) return NULL;
    if (a->type != DZ_TYPE_F32) return dz_op_fail1(ctx, "softmax", a, "must be F32");
    if (mask && !mask_ok(mask, a->ne[0], a->ne[1]))
        return dz_op_fail2(ctx, "softmax", a, mask, "the mask must be F32 (n, >= rows) with n = the input's dimension 0");
    if (n_past < 0) return dz_op_fail1(ctx, "softmax", a, "n_past must be >= 0");
    dz_tensor *t = dz_op_node(ctx, "softmax", DZ_OP_SOFTMAX, DZ_TYPE_F32, a->n_dims, a->ne, a, mask, NULL, NULL);
    if (t) set_softmax_params(t, scale, causal, n_past);
    return t;
}

dz_tensor *dz_attention(dz_ctx *ctx, dz_tensor *q, dz_tensor *k, dz_tensor *v, dz_tensor *mask, float scale,
                        bool causal, int32_t n_past) {
    if (!ctx || !q || !k || !v) return NULL;
    if (q->type != DZ_TYPE_F32 || q->ne[3] != 1) return dz_op_fail1(ctx, "attention", q, "q must be F32 (hd, n_head, T)");
    if ((k->type != DZ_TYPE_F32 && k->type != DZ_TYPE_F16) || k->ne[3] != 1)
        return dz_op_fail1(ctx, "attention", k, "k must be F32 or F16 (hd, n_kv_head, S)");
    if ((v->type != DZ_TYPE_F32 && v->type != DZ_TYPE_F16) || memcmp(k->ne, v->ne, sizeof k->ne) != 0)
        return dz_op_fail2(ctx, "attention", k, v, "v must be F32 or F16 and shaped like k");
    if (k->ne[0] != q->ne[0]) return dz_op_fail2(ctx, "attention", q, k, "head sizes differ");
    if (k->ne[1] < 1 || q->ne[1] % k->ne[1] != 0)
        return dz_op_fail2(ctx, "attention", q, k, "n_head must be a multiple of n_kv_head");
    if (mask && !mask_ok(mask, k->ne[2], q->ne[2]))
        return dz_op_fail2(ctx, "attention", k, mask, "the mask must be F32 (S, >= T)");
    if (n_past < 0) return dz_op_fail1(ctx, "attention", q, "n_past must be >= 0");
    dz_tensor *t = dz_op_node(ctx, "attention", DZ_OP_ATTENTION, DZ_TYPE_F32, 3, q->ne, q, k, v, mask);
    if (t) set_softmax_params(t, scale, causal, n_past);
    return t;
}

/* The node that stands for dst after a write into it: dst's memory seen as
 * a tensor (shape, strides, view of its root). */
static void alias_dst(dz_tensor *t, dz_tensor *dst) {
    memcpy(t->nb, dst->nb, sizeof t->nb);
    t->view_src = dz_tensor_root(dst);
    t->view_offset = dst->view_src ? dst->view_offset : 0;
    if (t->view_src->buffer && t->view_src->data) {
        t->buffer = t->view_src->buffer;
        t->data = (char *)t->view_src->data + t->view_offset;
    }
}

dz_tensor *dz_cpy(dz_ctx *ctx, dz_tensor *src, dz_tensor *dst) {
    if (!ctx || !src || !dst) return NULL;
    bool types_ok = (src->type == DZ_TYPE_F32 &&
                     (dst->type == DZ_TYPE_F32 || dst->type == DZ_TYPE_F16 || dst->type == DZ_TYPE_BF16)) ||
                    ((src->type == DZ_TYPE_F16 || src->type == DZ_TYPE_BF16) && dst->type == DZ_TYPE_F32);
    if (!types_ok)
        return dz_op_fail2(ctx, "cpy", src, dst, "conversions are F32 -> F32|F16|BF16 and F16|BF16 -> F32");
    if (dz_nelements(src) != dz_nelements(dst))
        return dz_op_fail2(ctx, "cpy", src, dst, "element counts differ");
    /* The node is dst's memory seen as a tensor: same shape and strides. */
    dz_tensor *t = dz_op_node(ctx, "cpy", DZ_OP_CPY, dst->type, dst->n_dims, dst->ne, src, dst, NULL, NULL);
    if (!t) return NULL;
    alias_dst(t, dst);
    snprintf(t->name, sizeof t->name, "%.50s (copy)", dst->name);
    return t;
}

dz_tensor *dz_set_rows(dz_ctx *ctx, dz_tensor *dst, dz_tensor *src, dz_tensor *ids) {
    if (!ctx || !dst || !src || !ids) return NULL;
    if (src->type != DZ_TYPE_F32 || src->ne[2] != 1 || src->ne[3] != 1)
        return dz_op_fail1(ctx, "set_rows", src, "rows must be F32 (ne0, n)");
    if (dst->type != DZ_TYPE_F32 && dst->type != DZ_TYPE_F16)
        return dz_op_fail1(ctx, "set_rows", dst, "the destination must be F32 or F16");
    if (dst->ne[2] != 1 || dst->ne[3] != 1 || dst->ne[0] != src->ne[0])
        return dz_op_fail2(ctx, "set_rows", src, dst, "the destination must be (ne0, R) with src's ne0");
    if (ids->type != DZ_TYPE_I32 || ids->ne[0] != src->ne[1] || ids->ne[1] != 1 || ids->ne[2] != 1 || ids->ne[3] != 1)
        return dz_op_fail2(ctx, "set_rows", src, ids, "ids must be I32 (n), one per row of src");
    dz_tensor *t = dz_op_node(ctx, "set_rows", DZ_OP_SET_ROWS, dst->type, 2, dst->ne, src, ids, dst, NULL);
    if (!t) return NULL;
    alias_dst(t, dst);
    snprintf(t->name, sizeof t->name, "%.50s (rows)", dst->name);
    return t;
}

dz_tensor *dz_paged_attention(dz_ctx *ctx, dz_tensor *q, dz_tensor *k, dz_tensor *v, dz_tensor *index,
                              float scale) {
    if (!ctx || !q || !k || !v || !index) return NULL;
    if (q->type != DZ_TYPE_F32 || q->ne[3] != 1)
        return dz_op_fail1(ctx, "paged_attention", q, "q must be F32 (hd, n_head, T)");
    if ((k->type != DZ_TYPE_F32 && k->type != DZ_TYPE_F16) || k->ne[3] != 1)
        return dz_op_fail1(ctx, "paged_attention", k, "the k pool must be F32 or F16 (hd, n_kv_head, R)");
    if (v->type != k->type || memcmp(k->ne, v->ne, sizeof k->ne) != 0)
        return dz_op_fail2(ctx, "paged_attention", k, v, "the v pool must be of k's type and shape");
    if (k->ne[0] != q->ne[0]) return dz_op_fail2(ctx, "paged_attention", q, k, "head sizes differ");
    if (k->ne[1] < 1 || q->ne[1] % k->ne[1] != 0)
        return dz_op_fail2(ctx, "paged_attention", q, k, "n_head must be a multiple of n_kv_head");
    if (index->type != DZ_TYPE_I32 || index->ne[0] < 2 || index->ne[1] != q->ne[2] || index->ne[2] != 1 ||
        index->ne[3] != 1)
        return dz_op_fail2(ctx, "paged_attention", q, index, "the index must be I32 (W >= 2, T)");
    dz_tensor *t = dz_op_node(ctx, "paged_attention", DZ_OP_PAGED_ATTENTION, DZ_TYPE_F32, 3, q->ne, q, k, v, index);
    if (t) t->params.f[0] = scale;
    return t;
}
