/* Which nodes the CUDA kernels compute, and running one node: checks, then
 * the op's launcher. Also the watch that turns the kernels' error bits into
 * messages. supports() is the tier-I ops' definitions (dz_op_node_valid)
 * narrowed to what the kernels read: the element types below, aligned plain
 * elements, packed quantized rows, launch grids and shared memory that fit. */
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "backends/cuda/cuda.h"
#include "dizuo/tensor.h"

/* Element types the kernels read (cuda_common.cuh: dz_ld_plain, dz_dequant_in_block). */
static bool readable_type(dz_type t) {
    switch (t) {
    case DZ_TYPE_F32: case DZ_TYPE_F16: case DZ_TYPE_BF16: case DZ_TYPE_I32:
    case DZ_TYPE_Q8_0: case DZ_TYPE_Q4_0: case DZ_TYPE_Q4_1: case DZ_TYPE_Q5_0: case DZ_TYPE_Q5_1:
    case DZ_TYPE_IQ4_NL: case DZ_TYPE_Q2_K: case DZ_TYPE_Q3_K: case DZ_TYPE_Q4_K: case DZ_TYPE_Q5_K:
    case DZ_TYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

/* Types a weight (GET_ROWS table, MUL_MAT W) may have. */
static bool weight_type(dz_type t) { return t != DZ_TYPE_I32 && readable_type(t); }

/* Plain elements: strides that keep every element at its natural alignment
 * (given an aligned start) and apart; quantized rows: packed blocks. */
static bool strides_ok(const dz_tensor *t) {
    const dz_type_traits *tt = dz_type_info((int)t->type);
    if (!tt || !readable_type(t->type) || t->ne[0] % tt->block_size != 0) return false;
    for (int i = 0; i < DZ_MAX_DIMS; i++)
        if (t->ne[i] < 0) return false;
    if (tt->block_size > 1) return t->nb[0] == tt->type_size;
    if (t->nb[0] < tt->type_size) return false;
    for (int i = 0; i < DZ_MAX_DIMS; i++)
        if (t->nb[i] % tt->type_size != 0) return false;
    return true;
}

/* The tier-I ops' definitions (dz_op_node_valid) narrowed to the kernels:
 * weight types they read, launch grids and shared memory that fit. */
static bool supports_op(const dz_tensor *n, size_t max_shared) {
    const dz_tensor *a = n->src[0];
    switch (n->op) {
    case DZ_OP_GET_ROWS:
        return weight_type(a->type);
    case DZ_OP_MUL_MAT:
        return weight_type(a->type) && dz_cuda_mul_mat_fits(n);
    case DZ_OP_ATTENTION:
    case DZ_OP_PAGED_ATTENTION:
        return max_shared == 0 || dz_cuda_attention_shared_bytes(n) <= max_shared;
    default:
        return true;
    }
}

static bool aligned(const dz_tensor *t);

bool dz_cuda_supports_node(const dz_tensor *node, size_t max_shared_bytes) {
    if (!node) return false;
    if (node->op == DZ_OP_NONE || node->op == DZ_OP_VIEW) return true;
    if (!dz_op_node_valid(node) || !strides_ok(node) || !aligned(node)) return false;
    for (int i = 0; i < DZ_MAX_SRC; i++)
        if (node->src[i] && (!strides_ok(node->src[i]) || !aligned(node->src[i]))) return false;
    return supports_op(node, max_shared_bytes);
}

/* ---- running a node ---- */

size_t dz_cuda_scratch_bytes(const dz_tensor *node) {
    return node->op == DZ_OP_MUL_MAT ? dz_cuda_mul_mat_scratch_bytes(node) : 0;
}

size_t dz_cuda_graph_scratch_bytes(const dz_graph *graph) {
    size_t need = 0;
    for (int32_t i = 0; i < graph->n_nodes; i++) {
        const size_t bytes = dz_cuda_scratch_bytes(graph->nodes[i]);
        if (bytes > need) need = bytes;
    }
    return need;
}

/* Plain elements must sit at their natural alignment (the kernels load
 * them whole), quantized blocks at 2 bytes (their fp16 scales); a view at an
 * odd offset, or a weight of a GGUF file with alignment 1, would fault on
 * the GPU. Unbound tensors (data NULL) are placed aligned by the scheduler. */
static bool aligned(const dz_tensor *t) {
    const dz_type_traits *tt = dz_type_info((int)t->type);
    if (!t->data || !tt) return true;
    return (uintptr_t)t->data % (tt->block_size > 1 ? 2 : tt->type_size) == 0;
}

dz_status dz_cuda_run_node(const dz_tensor *node, const dz_cuda_exec *exec) {
    const dz_tensor *operands[1 + DZ_MAX_SRC] = {node, node->src[0], node->src[1], node->src[2], node->src[3]};
    for (int i = 0; i < 1 + DZ_MAX_SRC; i++) {
        const dz_tensor *t = operands[i];
        if (!t) continue;
        if (!t->data && dz_nelements(t) > 0)
            return dz_fail(DZ_ERR_ARG, "cuda: %s node '%s': tensor '%s' has no memory", dz_op_name(node->op),
                           node->name, t->name);
        if (!aligned(t))
            return dz_fail(DZ_ERR_UNSUPPORTED,
                           "cuda: %s node '%s': the data of '%s' (%s) is not aligned to its %zu-byte elements",
                           dz_op_name(node->op), node->name, t->name, dz_type_name(t->type),
                           dz_type_info((int)t->type)->type_size);
    }
    int rc;
    switch (node->op) {
    case DZ_OP_NONE: case DZ_OP_VIEW: return DZ_OK;
    case DZ_OP_GET_ROWS: rc = dz_cuda_get_rows(node, exec); break;
    case DZ_OP_ADD: case DZ_OP_MUL: rc = dz_cuda_binary(node, exec); break;
    case DZ_OP_SCALE: case DZ_OP_SILU: case DZ_OP_GELU: case DZ_OP_SWIGLU: rc = dz_cuda_unary(node, exec); break;
    case DZ_OP_RMS_NORM: case DZ_OP_LAYER_NORM: rc = dz_cuda_norm(node, exec); break;
    case DZ_OP_MUL_MAT: rc = dz_cuda_mul_mat(node, exec); break;
    case DZ_OP_ROPE: rc = dz_cuda_rope(node, exec); break;
    case DZ_OP_SOFTMAX: rc = dz_cuda_softmax(node, exec); break;
    case DZ_OP_ATTENTION: case DZ_OP_PAGED_ATTENTION: rc = dz_cuda_attention(node, exec); break;
    case DZ_OP_CPY: rc = dz_cuda_cpy(node, exec); break;
    case DZ_OP_SET_ROWS: rc = dz_cuda_set_rows(node, exec); break;
    default:
        return dz_fail(DZ_ERR_UNSUPPORTED, "cuda: no kernel for %s (node '%s')", dz_op_name(node->op), node->name);
    }
    if (rc == cudaErrorMemoryAllocation && exec->host)
        return dz_fail(DZ_ERR_NOMEM, "cuda-emu: out of memory for the scratch of %s node '%s'",
                       dz_op_name(node->op), node->name);
    if (rc != 0)
        return dz_fail(DZ_ERR_DEVICE, "cuda: launching %s for node '%s' failed: %s", dz_op_name(node->op), node->name,
                       cudaGetErrorString((cudaError_t)rc));
    return DZ_OK;
}

/* ---- error bits ---- */

static const struct {
    unsigned bit;
    dz_op op;
    const char *what;
} error_kinds[DZ_CUDA_N_ERROR_BITS] = {
    {DZ_CUDA_BAD_ROW_ID, DZ_OP_GET_ROWS, "was given a row id outside its table (those rows were written as zeros)"},
    {DZ_CUDA_BAD_SET_ROW_ID, DZ_OP_SET_ROWS, "was given a row id outside its destination (those rows were skipped)"},
    {DZ_CUDA_BAD_PAGE_INDEX, DZ_OP_PAGED_ATTENTION,
     "was given an index row whose count or pool rows are out of range (those were skipped)"},
};

dz_status dz_cuda_run_graph(const dz_graph *graph, const dz_cuda_exec *exec, dz_cuda_watch *w, const char *device) {
    for (int32_t i = 0; i < graph->n_nodes; i++) {
        dz_cuda_watch_node(w, graph->nodes[i]);
        const dz_status st = dz_cuda_run_node(graph->nodes[i], exec);
        if (st) return dz_error_prefix(st, "%s: ", device);
    }
    return DZ_OK;
}

void dz_cuda_watch_node(dz_cuda_watch *w, const dz_tensor *node) {
    for (int k = 0; k < DZ_CUDA_N_ERROR_BITS; k++)
        if (error_kinds[k].op == node->op && !(w->armed & error_kinds[k].bit)) {
            w->armed |= error_kinds[k].bit;
            w->op[k] = node->op;
            snprintf(w->node[k], sizeof w->node[k], "%s", node->name);
        }
}

dz_status dz_cuda_watch_report(dz_cuda_watch *w, const char *device, unsigned word) {
    const unsigned armed = w->armed;
    w->armed = 0;
    for (int k = 0; k < DZ_CUDA_N_ERROR_BITS; k++)
        if (word & error_kinds[k].bit)
            return dz_fail(DZ_ERR_ARG, "%s: %s node '%s'%s %s", device, dz_op_name(error_kinds[k].op),
                           (armed & error_kinds[k].bit) ? w->node[k] : "?",
                           (armed & error_kinds[k].bit) ? " (or a later one of the graph)" : "", error_kinds[k].what);
    return DZ_OK;
}
