/* Which nodes the OpenCL kernels compute: the tier-I ops (backend.h) with
 * the types, shapes and strides the kernels handle. Everything else is
 * refused, and the core runs it on the CPU. */
#include <string.h>

#include "backends/opencl/opencl_impl.h"
#include "dizuo/tensor.h"

static bool is_f32(const dz_tensor *t) { return t && t->type == DZ_TYPE_F32; }
static bool same_shape(const dz_tensor *a, const dz_tensor *b) { return memcmp(a->ne, b->ne, sizeof a->ne) == 0; }

/* Weight types of GET_ROWS and MUL_MAT (kernels/quant.cl, matmul.cl). */
static bool weight_type(dz_type t) {
    switch (t) {
    case DZ_TYPE_F32: case DZ_TYPE_F16: case DZ_TYPE_BF16:
    case DZ_TYPE_Q8_0: case DZ_TYPE_Q4_0: case DZ_TYPE_Q4_1: case DZ_TYPE_Q5_0: case DZ_TYPE_Q5_1:
    case DZ_TYPE_IQ4_NL:
    case DZ_TYPE_Q2_K: case DZ_TYPE_Q3_K: case DZ_TYPE_Q4_K: case DZ_TYPE_Q5_K: case DZ_TYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

/* Types a kernel reads or writes at all. */
static bool known_type(dz_type t) { return weight_type(t) || t == DZ_TYPE_I32; }

/* Strides the kernels can address: plain elements may be anywhere at
 * multiples of their size (views, transposes); quantized rows are whole
 * packed blocks, each row starting 2-byte aligned (their fp16 scales). */
static bool layout_ok(const dz_tensor *t) {
    if (!known_type(t->type)) return false;
    const dz_type_traits *tt = dz_type_info((int)t->type);
    for (int i = 0; i < DZ_MAX_DIMS; i++)
        if (t->ne[i] < 0) return false;
    if (t->ne[0] % tt->block_size != 0) return false;
    if (tt->block_size > 1) {
        if (t->nb[0] != tt->type_size) return false;
        for (int i = 1; i < DZ_MAX_DIMS; i++)
            if (t->nb[i] % 2 != 0) return false;
        return true;
    }
    if (t->nb[0] < tt->type_size) return false;
    for (int i = 0; i < DZ_MAX_DIMS; i++)
        if (t->nb[i] % tt->type_size != 0) return false;
    return true;
}

static bool mask_ok(const dz_tensor *mask, int64_t n_cols, int64_t n_rows) {
    return !mask || (is_f32(mask) && mask->ne[0] == n_cols && mask->ne[1] >= n_rows && mask->ne[2] == 1 &&
                     mask->ne[3] == 1);
}

static bool ids_ok(const dz_tensor *ids, int64_t n) {
    return ids && ids->type == DZ_TYPE_I32 && ids->ne[0] == n && ids->ne[1] == 1 && ids->ne[2] == 1 && ids->ne[3] == 1;
}

/* Attention keeps q and a few values per item in local memory, and each
 * item accumulates at most OCL_ATT_DIMS output dimensions. */
static bool attention_fits(const ocl_device *dev, int64_t head_dim) {
    const size_t group = dev->attention_group;
    return head_dim >= 1 && (size_t)head_dim <= OCL_ATT_DIMS * group &&
           ((size_t)head_dim + 3 * group) * sizeof(float) <= dev->info.local_mem;
}

static bool supports_op(const ocl_device *dev, const dz_tensor *n) {
    const dz_tensor *a = n->src[0], *b = n->src[1], *c = n->src[2], *d = n->src[3];
    switch (n->op) {
    case DZ_OP_GET_ROWS:
        return a && weight_type(a->type) && ids_ok(b, n->ne[1]) && a->ne[2] == 1 && a->ne[3] == 1 &&
               n->ne[0] == a->ne[0] && n->ne[2] == 1 && n->ne[3] == 1;
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
        /* the row kernels read W's elements packed (quantized rows always are) */
        return a && weight_type(a->type) && a->nb[0] == dz_type_info((int)a->type)->type_size && is_f32(b) &&
               a->ne[0] == b->ne[0] && a->ne[2] >= 1 && a->ne[3] >= 1 &&
               b->ne[2] % a->ne[2] == 0 && b->ne[3] % a->ne[3] == 0 && n->ne[0] == a->ne[1] && n->ne[1] == b->ne[1] &&
               n->ne[2] == b->ne[2] && n->ne[3] == b->ne[3];
    case DZ_OP_ROPE: {
        const int n_rot = n->params.i[0], mode = n->params.i[1];
        return is_f32(a) && ids_ok(b, a->ne[2]) && same_shape(n, a) && a->ne[3] == 1 && n_rot >= 2 && n_rot % 2 == 0 &&
               n_rot <= a->ne[0] && (mode == DZ_ROPE_NORMAL || mode == DZ_ROPE_NEOX);
    }
    case DZ_OP_SOFTMAX:
        return is_f32(a) && same_shape(n, a) && mask_ok(b, a->ne[0], a->ne[1]) && n->params.i[2] >= 0;
    case DZ_OP_ATTENTION:
        return is_f32(a) && b && c && (b->type == DZ_TYPE_F32 || b->type == DZ_TYPE_F16) && c->type == b->type &&
               same_shape(b, c) && a->ne[3] == 1 && b->ne[3] == 1 && b->ne[0] == a->ne[0] && b->ne[1] >= 1 &&
               a->ne[1] % b->ne[1] == 0 && same_shape(n, a) && mask_ok(d, b->ne[2], a->ne[2]) &&
               n->params.i[2] >= 0 && attention_fits(dev, a->ne[0]);
    case DZ_OP_PAGED_ATTENTION:
        return is_f32(a) && b && c && d && (b->type == DZ_TYPE_F32 || b->type == DZ_TYPE_F16) && c->type == b->type &&
               same_shape(b, c) && a->ne[3] == 1 && b->ne[3] == 1 && b->ne[0] == a->ne[0] && b->ne[1] >= 1 &&
               a->ne[1] % b->ne[1] == 0 && same_shape(n, a) && d->type == DZ_TYPE_I32 && d->ne[0] >= 2 &&
               d->ne[1] == a->ne[2] && d->ne[2] == 1 && d->ne[3] == 1 && attention_fits(dev, a->ne[0]);
    case DZ_OP_CPY: {
        const bool plain_src = a && (a->type == DZ_TYPE_F32 || a->type == DZ_TYPE_F16 || a->type == DZ_TYPE_BF16);
        const bool plain_dst = n->type == DZ_TYPE_F32 || n->type == DZ_TYPE_F16 || n->type == DZ_TYPE_BF16;
        return plain_src && plain_dst && (a->type == DZ_TYPE_F32 || n->type == DZ_TYPE_F32) &&
               dz_nelements(a) == dz_nelements(n);
    }
    case DZ_OP_SET_ROWS: /* c: the destination, which n aliases */
        return is_f32(a) && ids_ok(b, a->ne[1]) && c && same_shape(n, c) && n->type == c->type &&
               (n->type == DZ_TYPE_F32 || n->type == DZ_TYPE_F16) && n->ne[0] == a->ne[0] && n->ne[2] == 1 &&
               n->ne[3] == 1 && a->ne[2] == 1 && a->ne[3] == 1;
    default: /* training ops: the CPU's */
        return false;
    }
}

bool ocl_supports(void *self, const dz_tensor *node) {
    const ocl_device *dev = self;
    if (!node || !layout_ok(node) || !ocl_aligned(node)) return false;
    for (int i = 0; i < DZ_MAX_SRC; i++)
        if (node->src[i] && (!layout_ok(node->src[i]) || !ocl_aligned(node->src[i]))) return false;
    /* Results are written contiguously, except CPY and SET_ROWS which write views. */
    if (node->op != DZ_OP_CPY && node->op != DZ_OP_SET_ROWS && (node->type != DZ_TYPE_F32 || !dz_is_contiguous(node)))
        return false;
    return supports_op(dev, node);
}
