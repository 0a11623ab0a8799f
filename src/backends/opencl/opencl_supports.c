/* Which nodes the OpenCL kernels compute: the tier-I ops (backend.h) with
 * the types, shapes and strides the kernels handle. Everything else is
 * refused, and the core runs it on the CPU. */
#include "backends/opencl/opencl_impl.h"
#include "dizuo/tensor.h"

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

/* Attention keeps q and a few values per item in local memory, and each
 * item accumulates at most OCL_ATT_DIMS output dimensions. */
static bool attention_fits(const ocl_device *dev, int64_t head_dim) {
    const size_t group = dev->attention_group;
    return head_dim >= 1 && (size_t)head_dim <= OCL_ATT_DIMS * group &&
           ((size_t)head_dim + 3 * group) * sizeof(float) <= dev->info.local_mem;
}

/* The tier-I ops' definitions (dz_op_node_valid) narrowed to the kernels:
 * weight types they dequantize, packed weight rows, attention that fits in
 * local memory, the same type for K and V. */
static bool supports_op(const ocl_device *dev, const dz_tensor *n) {
    const dz_tensor *a = n->src[0], *b = n->src[1], *c = n->src[2];
    switch (n->op) {
    case DZ_OP_GET_ROWS:
        return weight_type(a->type);
    case DZ_OP_MUL_MAT: /* the row kernels read W's elements packed (quantized rows always are) */
        return weight_type(a->type) && a->nb[0] == dz_type_info((int)a->type)->type_size;
    case DZ_OP_ATTENTION:
    case DZ_OP_PAGED_ATTENTION:
        return c->type == b->type && attention_fits(dev, a->ne[0]);
    default:
        return true;
    }
}

bool ocl_supports(void *self, const dz_tensor *node) {
    const ocl_device *dev = self;
    if (!node || !dz_op_node_valid(node) || !layout_ok(node) || !ocl_aligned(node)) return false;
    for (int i = 0; i < DZ_MAX_SRC; i++)
        if (node->src[i] && (!layout_ok(node->src[i]) || !ocl_aligned(node->src[i]))) return false;
    return supports_op(dev, node);
}
