/* What a node of a tier-I op must be, whatever computes it: the operand
 * types, shapes and parameters of the op's definition (dizuo/backend.h).
 * Backends start their supports() from this and narrow it to what their
 * kernels handle (weight types, strides, alignment, sizes). */
#include <string.h>

#include "tensor/tensor_impl.h"

static bool is_f32(const dz_tensor *t) { return t && t->type == DZ_TYPE_F32; }
static bool kv_type(const dz_tensor *t) { return t && (t->type == DZ_TYPE_F32 || t->type == DZ_TYPE_F16); }
static bool same_shape(const dz_tensor *a, const dz_tensor *b) { return memcmp(a->ne, b->ne, sizeof a->ne) == 0; }

/* An I32 vector of n ids. */
static bool ids_ok(const dz_tensor *t, int64_t n) {
    return t && t->type == DZ_TYPE_I32 && t->ne[0] == n && t->ne[1] == 1 && t->ne[2] == 1 && t->ne[3] == 1;
}

/* The mask of softmax/attention: none, or F32 (n_cols, >= n_rows). */
static bool mask_ok(const dz_tensor *mask, int64_t n_cols, int64_t n_rows) {
    return !mask || (is_f32(mask) && mask->ne[0] == n_cols && mask->ne[1] >= n_rows && mask->ne[2] == 1 &&
                     mask->ne[3] == 1);
}

/* q (hd, n_head, T) over k and v (hd, n_kv_head, ...): GQA groups whole. */
static bool heads_ok(const dz_tensor *n, const dz_tensor *q, const dz_tensor *k, const dz_tensor *v) {
    return is_f32(q) && kv_type(k) && kv_type(v) && same_shape(k, v) && q->ne[3] == 1 && k->ne[3] == 1 &&
           k->ne[0] == q->ne[0] && k->ne[1] >= 1 && q->ne[1] % k->ne[1] == 0 && same_shape(n, q);
}

static bool plain_type(dz_type t) { return t == DZ_TYPE_F32 || t == DZ_TYPE_F16 || t == DZ_TYPE_BF16; }

bool dz_op_node_valid(const dz_tensor *n) {
    if (!n) return false;
    const dz_tensor *a = n->src[0], *b = n->src[1], *c = n->src[2], *d = n->src[3];
    /* results are F32 and contiguous, except CPY and SET_ROWS, which write views */
    if (n->op != DZ_OP_CPY && n->op != DZ_OP_SET_ROWS && (n->type != DZ_TYPE_F32 || !dz_is_contiguous(n)))
        return false;
    switch (n->op) {
    case DZ_OP_GET_ROWS:
        return a && ids_ok(b, n->ne[1]) && a->ne[2] == 1 && a->ne[3] == 1 && n->ne[0] == a->ne[0] && n->ne[2] == 1 &&
               n->ne[3] == 1;
    case DZ_OP_ADD:
    case DZ_OP_MUL:
        if (!is_f32(a) || !is_f32(b) || !same_shape(n, a)) return false;
        for (int i = 0; i < DZ_MAX_DIMS; i++)
            if (b->ne[i] < 1 || a->ne[i] % b->ne[i] != 0) return false;
        return true;
    case DZ_OP_SCALE:
    case DZ_OP_SILU:
    case DZ_OP_GELU:
    case DZ_OP_RMS_NORM:
    case DZ_OP_LAYER_NORM:
        return is_f32(a) && same_shape(n, a);
    case DZ_OP_SWIGLU:
        return is_f32(a) && is_f32(b) && same_shape(n, a) && same_shape(a, b);
    case DZ_OP_MUL_MAT:
        return a && is_f32(b) && a->ne[0] == b->ne[0] && a->ne[2] >= 1 && a->ne[3] >= 1 && b->ne[2] % a->ne[2] == 0 &&
               b->ne[3] % a->ne[3] == 0 && n->ne[0] == a->ne[1] && n->ne[1] == b->ne[1] && n->ne[2] == b->ne[2] &&
               n->ne[3] == b->ne[3];
    case DZ_OP_ROPE: {
        const int n_rot = n->params.i[0], mode = n->params.i[1];
        return is_f32(a) && ids_ok(b, a->ne[2]) && same_shape(n, a) && a->ne[3] == 1 && n_rot >= 2 && n_rot % 2 == 0 &&
               n_rot <= a->ne[0] && (mode == DZ_ROPE_NORMAL || mode == DZ_ROPE_NEOX);
    }
    case DZ_OP_SOFTMAX:
        return is_f32(a) && same_shape(n, a) && mask_ok(b, a->ne[0], a->ne[1]) && n->params.i[2] >= 0;
    case DZ_OP_ATTENTION:
        return heads_ok(n, a, b, c) && mask_ok(d, b->ne[2], a->ne[2]) && n->params.i[2] >= 0;
    case DZ_OP_PAGED_ATTENTION:
        return heads_ok(n, a, b, c) && c->type == b->type && d && d->type == DZ_TYPE_I32 && d->ne[0] >= 2 &&
               d->ne[1] == a->ne[2] && d->ne[2] == 1 && d->ne[3] == 1;
    case DZ_OP_CPY:
        return a && plain_type(a->type) && plain_type(n->type) &&
               (a->type == DZ_TYPE_F32 || n->type == DZ_TYPE_F32) && dz_nelements(a) == dz_nelements(n);
    case DZ_OP_SET_ROWS: /* c: the destination, which n is a view of */
        return is_f32(a) && ids_ok(b, a->ne[1]) && c && same_shape(n, c) && n->type == c->type &&
               (n->type == DZ_TYPE_F32 || n->type == DZ_TYPE_F16) && n->ne[0] == a->ne[0] && n->ne[2] == 1 &&
               n->ne[3] == 1 && a->ne[2] == 1 && a->ne[3] == 1;
    default: /* NONE, VIEW and the training ops: not tier I */
        return false;
    }
}
