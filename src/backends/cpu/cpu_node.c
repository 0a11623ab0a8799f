/* Which nodes the CPU backend computes, and computing one node with the
 * reference kernels: checks, scratch memory, then the kernel on every thread. */
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_impl.h"
#include "backends/cpu/cpu_train.h"

/* Plain element types address single elements: nb[0] must be at least the
 * element size, so elements never overlap. Quantized rows must be packed. */
static bool strides_ok(const dz_tensor *t) {
    const dz_type_traits *tt = dz_type_info((int)t->type);
    if (!tt || t->ne[0] % tt->block_size != 0) return false;
    for (int i = 0; i < DZ_MAX_DIMS; i++)
        if (t->ne[i] < 0) return false;
    return tt->block_size == 1 ? t->nb[0] >= tt->type_size : t->nb[0] == tt->type_size;
}

/* The tier-I ops' definitions (dz_op_node_valid) narrowed to the reference
 * kernels: weight types they read, a packed paged-attention index. */
static bool supports_op(const dz_tensor *n) {
    const dz_tensor *a = n->src[0], *d = n->src[3];
    switch (n->op) {
    case DZ_OP_GET_ROWS:
        return dz_op_node_valid(n) && dz_type_can_dequantize(a->type);
    case DZ_OP_MUL_MAT:
        return dz_op_node_valid(n) && dz_cpu_mul_mat_supports_type(a->type);
    case DZ_OP_PAGED_ATTENTION:
        return dz_op_node_valid(n) && d->nb[0] == sizeof(int32_t) && d->nb[1] == (size_t)d->ne[0] * sizeof(int32_t);
    case DZ_OP_ADD: case DZ_OP_MUL: case DZ_OP_SCALE: case DZ_OP_RMS_NORM: case DZ_OP_SILU: case DZ_OP_SWIGLU:
    case DZ_OP_ROPE: case DZ_OP_SOFTMAX: case DZ_OP_ATTENTION: case DZ_OP_CPY: case DZ_OP_SET_ROWS:
    case DZ_OP_LAYER_NORM: case DZ_OP_GELU:
        return dz_op_node_valid(n);
    default: /* training ops (cpu_train.c): F32 contiguous results too */
        return dz_cpu_train_op(n->op) && n->type == DZ_TYPE_F32 && dz_is_contiguous(n) && dz_cpu_train_supports(n);
    }
}

bool dz_cpu_supports_node(const dz_tensor *node) {
    if (!node) return false;
    if (node->op == DZ_OP_NONE || node->op == DZ_OP_VIEW) return true;
    if (!strides_ok(node)) return false;
    for (int i = 0; i < DZ_MAX_SRC; i++)
        if (node->src[i] && !strides_ok(node->src[i])) return false;
    return supports_op(node);
}

/* Data checks the kernels cannot report from their threads. */
static int32_t i32_at(const dz_tensor *t, int64_t i0, int64_t i1) {
    int32_t v;
    memcpy(&v, (const char *)t->data + (size_t)i0 * t->nb[0] + (size_t)i1 * t->nb[1], sizeof v);
    return v;
}

dz_status dz_cpu_check_data(const dz_tensor *node) {
    if (node->op == DZ_OP_SET_ROWS) {
        const dz_tensor *ids = node->src[1];
        for (int64_t i = 0; i < ids->ne[0]; i++) {
            const int32_t id = i32_at(ids, i, 0);
            if (id < 0 || id >= node->ne[1])
                return dz_fail(DZ_ERR_ARG, "set_rows '%s': id %d at index %lld is outside the destination's %lld rows",
                               node->name, id, (long long)i, (long long)node->ne[1]);
        }
    }
    if (node->op == DZ_OP_PAGED_ATTENTION) {
        const dz_tensor *index = node->src[3];
        const int64_t rows = node->src[1]->ne[2], W = index->ne[0];
        for (int64_t t = 0; t < index->ne[1]; t++) {
            const int32_t n = i32_at(index, 0, t);
            if (n < 1 || n > W - 1)
                return dz_fail(DZ_ERR_ARG, "paged_attention '%s': query %lld sees %d positions, not 1..%lld",
                               node->name, (long long)t, n, (long long)(W - 1));
            for (int32_t j = 1; j <= n; j++) {
                const int32_t r = i32_at(index, j, t);
                if (r < 0 || r >= rows)
                    return dz_fail(DZ_ERR_ARG, "paged_attention '%s': position %d of query %lld is pool row %d, "
                                   "outside the pool's %lld rows", node->name, j - 1, (long long)t, r, (long long)rows);
            }
        }
    }
    if (node->op == DZ_OP_GET_ROWS) {
        const dz_tensor *table = node->src[0], *ids = node->src[1];
        for (int64_t i = 0; i < ids->ne[0]; i++) {
            int32_t id;
            memcpy(&id, (const char *)ids->data + (size_t)i * ids->nb[0], sizeof id);
            if (id < 0 || id >= table->ne[1])
                return dz_fail(DZ_ERR_ARG, "get_rows '%s': id %d at index %lld is outside the table's %lld rows",
                               node->name, id, (long long)i, (long long)table->ne[1]);
        }
    }
    if (dz_cpu_train_op(node->op)) return dz_cpu_train_check_data(node);
    return DZ_OK;
}

dz_cpu_kernel_fn dz_cpu_kernel_of(dz_op op) {
    switch (op) {
    case DZ_OP_GET_ROWS: return dz_cpu_get_rows;
    case DZ_OP_ADD: case DZ_OP_MUL: return dz_cpu_binary;
    case DZ_OP_SCALE: case DZ_OP_SILU: case DZ_OP_SWIGLU: return dz_cpu_unary;
    case DZ_OP_RMS_NORM: return dz_cpu_rms_norm;
    case DZ_OP_MUL_MAT: return dz_cpu_mul_mat;
    case DZ_OP_ROPE: return dz_cpu_rope;
    case DZ_OP_SOFTMAX: return dz_cpu_softmax;
    case DZ_OP_ATTENTION: return dz_cpu_attention;
    case DZ_OP_CPY: return dz_cpu_cpy;
    case DZ_OP_SET_ROWS: return dz_cpu_set_rows;
    case DZ_OP_PAGED_ATTENTION: return dz_cpu_paged_attention;
    default: return dz_cpu_train_kernel_of(op);
    }
}

typedef struct task {
    dz_cpu_kernel_fn kernel;
    dz_cpu_job job;
} task;

static void run_task(void *arg, int ith, int nth) {
    const task *t = arg;
    t->kernel(&t->job, ith, nth);
}

static size_t align_up(size_t n) { return (n + 63) & ~(size_t)63; }

dz_status dz_cpu_check_node(const dz_tensor *node) {
    if (!node) return dz_fail(DZ_ERR_ARG, "cpu: NULL node");
    if (node->op == DZ_OP_NONE || node->op == DZ_OP_VIEW) return DZ_OK;
    if (!dz_cpu_supports_node(node)) {
        return dz_fail(DZ_ERR_UNSUPPORTED, "cpu: cannot compute %s node '%s' (%lld, %lld, %lld, %lld) %s%s%s",
                       dz_op_name(node->op), node->name, (long long)node->ne[0], (long long)node->ne[1],
                       (long long)node->ne[2], (long long)node->ne[3], dz_type_name(node->type),
                       node->src[0] ? " from " : "", node->src[0] ? dz_type_name(node->src[0]->type) : "");
    }
    if (!node->data) return dz_fail(DZ_ERR_ARG, "cpu: node '%s' has no memory", node->name);
    for (int i = 0; i < DZ_MAX_SRC; i++)
        if (node->src[i] && !node->src[i]->data && dz_nelements(node->src[i]) > 0)
            return dz_fail(DZ_ERR_ARG, "cpu: operand %d '%s' of node '%s' has no memory", i, node->src[i]->name,
                           node->name);
    return dz_cpu_check_data(node);
}

dz_status dz_cpu_run_node(dz_cpu_pool *pool, dz_cpu_scratch *scratch, const dz_tensor *node) {
    dz_status st = dz_cpu_check_node(node);
    if (st || node->op == DZ_OP_NONE || node->op == DZ_OP_VIEW) return st;

    int nth = dz_cpu_pool_size(pool);
    size_t shared = node->op == DZ_OP_MUL_MAT ? align_up(dz_cpu_mul_mat_shared_bytes(node)) : 0;
    size_t per_thread = node->op == DZ_OP_ATTENTION || node->op == DZ_OP_PAGED_ATTENTION
                            ? align_up(dz_cpu_attention_thread_bytes(node))
                            : align_up(dz_cpu_train_thread_bytes(node));
    size_t need = shared + per_thread * (size_t)nth;
    if (need > scratch->size) {
        void *mem = malloc(need);
        if (!mem) return dz_fail(DZ_ERR_NOMEM, "cpu: out of memory for %zu bytes of scratch (node '%s')", need,
                                 node->name);
        free(scratch->mem);
        scratch->mem = mem;
        scratch->size = need;
    }
    char *base = scratch->mem;
    task t = {dz_cpu_kernel_of(node->op), {node, base, base ? base + shared : NULL, per_thread}};
    if (node->op == DZ_OP_MUL_MAT) dz_cpu_mul_mat_prepare(node, t.job.shared);
    dz_cpu_pool_run(pool, run_task, &t);
    return DZ_OK;
}

dz_status dz_cpu_compute_node(const dz_tensor *node, int n_threads) {
    dz_cpu_pool *pool = NULL;
    if (n_threads > 1) {
        dz_status st = dz_cpu_pool_create(n_threads, &pool);
        if (st) return st;
    }
    dz_cpu_scratch scratch = {NULL, 0};
    dz_status st = dz_cpu_run_node(pool, &scratch, node);
    free(scratch.mem);
    dz_cpu_pool_destroy(pool);
    return st;
}
