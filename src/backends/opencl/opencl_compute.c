/* compute(): every node of a graph becomes one kernel launch (MUL_MAT of
 * F16, BF16 and quantized weights two: converting X, then the dots) on the device's
 * in-order queue; synchronize() waits for the queue and reports the first
 * data error a kernel found (an id out of range). Shapes of every op are in
 * backend.h; the kernels are the .cl files in kernels/. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/opencl/opencl_impl.h"
#include "dizuo/tensor.h"

/* Op codes of the elementwise kernels (kernels/elementwise.cl). */
enum { OP_ADD, OP_MUL, OP_SCALE, OP_SILU, OP_GELU, OP_SWIGLU };
/* Dot types of quantize_x (kernels/matmul.cl). */
enum { XQ_Q8_0, XQ_Q8_1, XQ_Q8_K };

/* One node being launched. */
typedef struct node_job {
    ocl_device *dev;
    const dz_tensor *node;
    int index;           /* in the graph: what a kernel reports a data error as */
    ocl_operand src[DZ_MAX_SRC];
    ocl_operand out;
} node_job;

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

static dz_status resolve_all(node_job *j) {
    static const char *const names[DZ_MAX_SRC] = {"operand 0", "operand 1", "operand 2", "operand 3"};
    for (int i = 0; i < DZ_MAX_SRC; i++) {
        if (!j->node->src[i]) continue;
        dz_status st = ocl_resolve(j->dev, j->node->src[i], j->node, names[i], &j->src[i]);
        if (st) return st;
    }
    return ocl_resolve(j->dev, j->node, j->node, "the result", &j->out);
}

/* A 1-D launch of n items in groups of OCL_GROUP. */
static dz_status run_items(ocl_launch *l, const node_job *j, size_t n) {
    const size_t global = n, local = OCL_GROUP;
    return ocl_launch_run(l, j->node, 1, &global, &local);
}

/* One group of OCL_GROUP items per row. */
static dz_status run_rows(ocl_launch *l, const node_job *j, size_t rows) {
    const size_t global = rows * OCL_GROUP, local = OCL_GROUP;
    return ocl_launch_run(l, j->node, 1, &global, &local);
}

static void arg_out(ocl_launch *l, const node_job *j) {
    ocl_arg_mem(l, j->out.mem);
    ocl_arg(l, sizeof j->out.off, &j->out.off);
}

static void arg_error(ocl_launch *l, node_job *j) {
    ocl_arg_mem(l, j->dev->error_word);
    ocl_arg_int(l, j->index);
    j->dev->error_pending = true;
}

/* ---- elementwise and rows ---- */

static dz_status run_binary(node_job *j, int op) {
    ocl_launch l = ocl_launch_begin(j->dev, K_BINARY);
    ocl_arg_tensor(&l, &j->src[0]);
    ocl_arg_tensor(&l, &j->src[1]);
    arg_out(&l, j);
    ocl_arg_int(&l, op);
    ocl_arg_long(&l, dz_nelements(j->node));
    return run_items(&l, j, (size_t)dz_nelements(j->node));
}

static dz_status run_unary(node_job *j, int op) {
    ocl_launch l = ocl_launch_begin(j->dev, K_UNARY);
    ocl_arg_tensor(&l, &j->src[0]);
    ocl_arg_tensor(&l, j->node->src[1] ? &j->src[1] : &j->src[0]); /* SWIGLU's up; unused otherwise */
    arg_out(&l, j);
    ocl_arg_int(&l, op);
    ocl_arg_float(&l, j->node->params.f[0]);
    ocl_arg_long(&l, dz_nelements(j->node));
    return run_items(&l, j, (size_t)dz_nelements(j->node));
}

static dz_status run_cpy(node_job *j) {
    ocl_launch l = ocl_launch_begin(j->dev, K_CPY);
    ocl_arg_tensor(&l, &j->src[0]);
    ocl_arg_int(&l, (int)j->node->src[0]->type);
    ocl_arg_tensor(&l, &j->out);
    ocl_arg_int(&l, (int)j->node->type);
    ocl_arg_long(&l, dz_nelements(j->node));
    return run_items(&l, j, (size_t)dz_nelements(j->node));
}

static dz_status run_get_rows(node_job *j) {
    const dz_tensor *table = j->node->src[0];
    ocl_launch l = ocl_launch_begin(j->dev, K_GET_ROWS);
    ocl_arg_tensor(&l, &j->src[0]);
    ocl_arg_int(&l, (int)table->type);
    ocl_arg_tensor(&l, &j->src[1]);
    arg_out(&l, j);
    arg_error(&l, j);
    const size_t chunks = (size_t)(table->ne[0] + 31) / 32;
    return run_items(&l, j, chunks * (size_t)j->node->src[1]->ne[0]);
}

static dz_status run_set_rows(node_job *j) {
    ocl_launch l = ocl_launch_begin(j->dev, K_SET_ROWS);
    ocl_arg_tensor(&l, &j->src[0]);
    ocl_arg_tensor(&l, &j->src[1]);
    ocl_arg_tensor(&l, &j->out);
    ocl_arg_int(&l, (int)j->node->type);
    arg_error(&l, j);
    return run_items(&l, j, (size_t)dz_nelements(j->node->src[0]));
}

static dz_status run_norm(node_job *j, ocl_kernel_id kernel) {
    ocl_launch l = ocl_launch_begin(j->dev, kernel);
    ocl_arg_tensor(&l, &j->src[0]);
    arg_out(&l, j);
    ocl_arg_float(&l, j->node->params.f[0]);
    ocl_arg_local(&l, OCL_GROUP * sizeof(cl_float2));
    return run_rows(&l, j, (size_t)dz_nrows(j->node));
}

static dz_status run_softmax(node_job *j) {
    const dz_tensor *n = j->node;
    ocl_launch l = ocl_launch_begin(j->dev, K_SOFTMAX);
    ocl_arg_tensor(&l, &j->src[0]);
    ocl_arg_tensor(&l, n->src[1] ? &j->src[1] : &j->src[0]);
    ocl_arg_int(&l, n->src[1] != NULL);
    arg_out(&l, j);
    ocl_arg_float(&l, n->params.f[0]);
    ocl_arg_int(&l, n->params.i[1] != 0);
    ocl_arg_int(&l, n->params.i[2]);
    ocl_arg_local(&l, OCL_GROUP * sizeof(float));
    return run_rows(&l, j, (size_t)dz_nrows(n));
}

static dz_status run_rope(node_job *j) {
    const dz_tensor *n = j->node;
    const int n_rot = n->params.i[0];
    ocl_launch l = ocl_launch_begin(j->dev, K_ROPE);
    ocl_arg_tensor(&l, &j->src[0]);
    ocl_arg_tensor(&l, &j->src[1]);
    arg_out(&l, j);
    ocl_arg_int(&l, n_rot);
    ocl_arg_int(&l, n->params.i[1] == DZ_ROPE_NEOX);
    /* The same powf as the CPU reference, so that the angles agree bit for bit. */
    ocl_arg_float(&l, powf(n->params.f[2], -2.0f / (float)n_rot));
    ocl_arg_float(&l, n->params.f[3]);
    return run_items(&l, j, (size_t)(n->ne[0] - n_rot / 2) * (size_t)(n->ne[1] * n->ne[2]));
}

/* ---- MUL_MAT ---- */

static ocl_kernel_id quant_kernel(dz_type t, int *mode) {
    *mode = XQ_Q8_0;
    switch (t) {
    case DZ_TYPE_Q8_0: return K_MM_Q8_0;
    case DZ_TYPE_Q4_0: return K_MM_Q4_0;
    case DZ_TYPE_Q5_0: return K_MM_Q5_0;
    case DZ_TYPE_IQ4_NL: return K_MM_IQ4_NL;
    case DZ_TYPE_Q4_1: *mode = XQ_Q8_1; return K_MM_Q4_1;
    case DZ_TYPE_Q5_1: *mode = XQ_Q8_1; return K_MM_Q5_1;
    case DZ_TYPE_Q2_K: *mode = XQ_Q8_K; return K_MM_Q2_K;
    case DZ_TYPE_Q3_K: *mode = XQ_Q8_K; return K_MM_Q3_K;
    case DZ_TYPE_Q4_K: *mode = XQ_Q8_K; return K_MM_Q4_K;
    case DZ_TYPE_Q5_K: *mode = XQ_Q8_K; return K_MM_Q5_K;
    default: *mode = XQ_Q8_K; return K_MM_Q6_K;
    }
}

/* Row kernels: groups of OCL_GROUP items, row_items of them per W row (a
 * power of two from OCL_MM_ROWS to OCL_GROUP, near the row's chunks of 32),
 * up to OCL_MM_ROWS X rows, one batch (dims 2, 3). */
static dz_status run_mm_rows(ocl_launch *l, const node_job *j) {
    const dz_tensor *w = j->node->src[0], *x = j->node->src[1];
    const size_t chunks = (size_t)(w->ne[0] + 31) / 32;
    size_t row_items = OCL_MM_ROWS;
    while (row_items < OCL_GROUP && row_items < chunks) row_items *= 2;
    const size_t rows_per_group = OCL_GROUP / row_items;
    ocl_arg_int(l, (int)row_items);
    ocl_arg_local(l, OCL_MM_ROWS * OCL_GROUP * sizeof(float));
    const size_t global[3] = {((size_t)w->ne[1] + rows_per_group - 1) / rows_per_group * OCL_GROUP,
                              (size_t)(x->ne[1] + OCL_MM_ROWS - 1) / OCL_MM_ROWS, (size_t)(x->ne[2] * x->ne[3])};
    const size_t local[3] = {OCL_GROUP, 1, 1};
    return ocl_launch_run(l, j->node, 3, global, local);
}

static dz_status run_mul_mat(node_job *j) {
    const dz_tensor *w = j->node->src[0], *x = j->node->src[1];
    ocl_device *dev = j->dev;
    if (w->type == DZ_TYPE_F32 && x->ne[1] >= OCL_TILE / 2 &&
        dev->kernel_group[K_MM_TILED] >= OCL_TILE_ITEMS * OCL_TILE_ITEMS) {
        ocl_launch l = ocl_launch_begin(dev, K_MM_TILED);
        ocl_arg_tensor(&l, &j->src[0]);
        ocl_arg_tensor(&l, &j->src[1]);
        arg_out(&l, j);
        const size_t global[3] = {round_up((size_t)w->ne[1], OCL_TILE) / OCL_TILE * OCL_TILE_ITEMS,
                                  round_up((size_t)x->ne[1], OCL_TILE) / OCL_TILE * OCL_TILE_ITEMS,
                                  (size_t)(x->ne[2] * x->ne[3])};
        const size_t local[3] = {OCL_TILE_ITEMS, OCL_TILE_ITEMS, 1};
        return ocl_launch_run(&l, j->node, 3, global, local);
    }
    if (w->type == DZ_TYPE_F32) {
        ocl_launch l = ocl_launch_begin(dev, K_MM_F32);
        ocl_arg_tensor(&l, &j->src[0]);
        ocl_arg_tensor(&l, &j->src[1]);
        arg_out(&l, j);
        return run_mm_rows(&l, j);
    }
    dz_status st;
    if (w->type == DZ_TYPE_F16 || w->type == DZ_TYPE_BF16) {
        /* X rounded to the weights' type once, contiguous, then the dots. */
        const size_t n = (size_t)dz_nelements(x);
        ocl_operand xr = {.off = 0, .ne = j->src[1].ne};
        if ((st = ocl_scratch(dev, 0, n * sizeof(float), &xr.mem)))
            return dz_error_prefix(st, "MUL_MAT node '%s': ", j->node->name);
        xr.nb.s[0] = sizeof(float);
        for (int d = 1; d < DZ_MAX_DIMS; d++) xr.nb.s[d] = xr.nb.s[d - 1] * (cl_ulong)x->ne[d - 1];
        ocl_launch r = ocl_launch_begin(dev, K_ROUND_X);
        ocl_arg_tensor(&r, &j->src[1]);
        ocl_arg_int(&r, (int)w->type);
        ocl_arg_mem(&r, xr.mem);
        ocl_arg_long(&r, (int64_t)n);
        if ((st = run_items(&r, j, n))) return st;
        ocl_launch l = ocl_launch_begin(dev, w->type == DZ_TYPE_F16 ? K_MM_F16 : K_MM_BF16);
        ocl_arg_tensor(&l, &j->src[0]);
        ocl_arg_tensor(&l, &xr);
        arg_out(&l, j);
        return run_mm_rows(&l, j);
    }
    /* Quantized weights: X to the dot type (int8 levels, a float4 per 32), then the dots. */
    int mode;
    const ocl_kernel_id kernel = quant_kernel(w->type, &mode);
    const size_t k = (size_t)x->ne[0], rows = (size_t)dz_nrows(x);
    cl_mem xq, xm;
    st = ocl_scratch(dev, 0, rows * k, &xq);
    if (!st) st = ocl_scratch(dev, 1, rows * (k / 32) * sizeof(cl_float4), &xm);
    if (st) return dz_error_prefix(st, "MUL_MAT node '%s': ", j->node->name);
    ocl_launch q = ocl_launch_begin(dev, K_QUANTIZE_X);
    ocl_arg_tensor(&q, &j->src[1]);
    ocl_arg_int(&q, mode);
    ocl_arg_mem(&q, xq);
    ocl_arg_mem(&q, xm);
    if ((st = run_items(&q, j, rows * (k / (mode == XQ_Q8_K ? 256 : 32))))) return st;
    ocl_launch l = ocl_launch_begin(dev, kernel);
    ocl_arg_tensor(&l, &j->src[0]);
    ocl_arg_mem(&l, xq);
    ocl_arg_mem(&l, xm);
    ocl_arg(&l, sizeof j->src[1].ne, &j->src[1].ne);
    arg_out(&l, j);
    return run_mm_rows(&l, j);
}

/* ---- attention ---- */

static dz_status run_attention(node_job *j) {
    const dz_tensor *n = j->node;
    const bool paged = n->op == DZ_OP_PAGED_ATTENTION;
    const bool has_mask = !paged && n->src[3];
    const size_t group = j->dev->attention_group, head_dim = (size_t)n->ne[0];
    ocl_launch l = ocl_launch_begin(j->dev, K_ATTENTION);
    for (int i = 0; i < 3; i++) ocl_arg_tensor(&l, &j->src[i]);
    ocl_arg_tensor(&l, has_mask ? &j->src[3] : &j->src[0]); /* mask; unused without */
    ocl_arg_tensor(&l, paged ? &j->src[3] : &j->src[0]);    /* index; unused unless paged */
    ocl_arg_int(&l, (int)n->src[1]->type);
    ocl_arg_int(&l, has_mask);
    ocl_arg_int(&l, paged);
    ocl_arg_int(&l, !paged && n->params.i[1] != 0);
    ocl_arg_int(&l, paged ? 0 : n->params.i[2]);
    ocl_arg_float(&l, n->params.f[0]);
    arg_out(&l, j);
    arg_error(&l, j);
    ocl_arg_local(&l, (head_dim + 3 * group) * sizeof(float));
    const size_t global[2] = {(size_t)n->ne[1] * group, (size_t)n->ne[2]}, local[2] = {group, 1};
    return ocl_launch_run(&l, n, 2, global, local);
}

/* ---- the graph ---- */

static dz_status run_node(node_job *j) {
    dz_status st = resolve_all(j);
    if (st) return st;
    switch (j->node->op) {
    case DZ_OP_GET_ROWS: return run_get_rows(j);
    case DZ_OP_ADD: return run_binary(j, OP_ADD);
    case DZ_OP_MUL: return run_binary(j, OP_MUL);
    case DZ_OP_SCALE: return run_unary(j, OP_SCALE);
    case DZ_OP_SILU: return run_unary(j, OP_SILU);
    case DZ_OP_GELU: return run_unary(j, OP_GELU);
    case DZ_OP_SWIGLU: return run_unary(j, OP_SWIGLU);
    case DZ_OP_RMS_NORM: return run_norm(j, K_RMS_NORM);
    case DZ_OP_LAYER_NORM: return run_norm(j, K_LAYER_NORM);
    case DZ_OP_SOFTMAX: return run_softmax(j);
    case DZ_OP_ROPE: return run_rope(j);
    case DZ_OP_MUL_MAT: return run_mul_mat(j);
    case DZ_OP_ATTENTION:
    case DZ_OP_PAGED_ATTENTION: return run_attention(j);
    case DZ_OP_CPY: return run_cpy(j);
    case DZ_OP_SET_ROWS: return run_set_rows(j);
    default:
        return dz_fail(DZ_ERR_INTERNAL, "%s: %s node '%s' was scheduled here but is not supported", j->dev->name,
                       dz_op_name(j->node->op), j->node->name);
    }
}

dz_status ocl_compute(void *self, const dz_graph *graph) {
    ocl_device *dev = self;
    dz_status st;
    if (dev->error_pending && (st = ocl_synchronize(dev))) return st; /* an earlier graph's error first */
    if (graph->n_nodes > dev->cap_nodes_seen) {
        ocl_node_ref *grown = realloc(dev->nodes_seen, (size_t)graph->n_nodes * sizeof *grown);
        if (!grown) return dz_fail(DZ_ERR_NOMEM, "%s: no host memory for a graph of %d nodes", dev->name,
                                   graph->n_nodes);
        dev->nodes_seen = grown;
        dev->cap_nodes_seen = graph->n_nodes;
    }
    for (int32_t i = 0; i < graph->n_nodes; i++) {
        const dz_tensor *node = graph->nodes[i];
        dev->nodes_seen[i].op = node->op;
        memcpy(dev->nodes_seen[i].name, node->name, sizeof node->name);
        dev->nodes_seen[i].name[DZ_MAX_NAME - 1] = '\0';
        if (!ocl_supports(dev, node))
            return dz_fail(DZ_ERR_UNSUPPORTED, "%s: cannot compute %s node '%s' (%s)", dev->name,
                           dz_op_name(node->op), node->name, dz_type_name(node->type));
        if (dz_nelements(node) == 0) continue;
        node_job j = {.dev = dev, .node = node, .index = i};
        if ((st = run_node(&j))) return st;
    }
    return DZ_OK;
}

/* What a data error of op means. */
static const char *data_error(dz_op op) {
    switch (op) {
    case DZ_OP_GET_ROWS: return "an id lies outside the table's rows";
    case DZ_OP_SET_ROWS: return "an id lies outside the destination's rows";
    default: return "the index has a count outside 1..W-1 or a row outside the pool";
    }
}

dz_status ocl_synchronize(void *self) {
    ocl_device *dev = self;
    cl_int err = clFinish(dev->queue);
    if (err != CL_SUCCESS)
        return dz_fail(DZ_ERR_DEVICE, "%s: waiting for the queue: %s (%d)", dev->name, ocl_error_name(err), err);
    if (!dev->error_pending) return DZ_OK;
    cl_int node = 0;
    err = clEnqueueReadBuffer(dev->queue, dev->error_word, CL_TRUE, 0, sizeof node, &node, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return dz_fail(DZ_ERR_DEVICE, "%s: reading the error word: %s (%d)", dev->name, ocl_error_name(err), err);
    dev->error_pending = false;
    if (node == 0) return DZ_OK;
    const cl_int zero = 0;
    clEnqueueWriteBuffer(dev->queue, dev->error_word, CL_TRUE, 0, sizeof zero, &zero, 0, NULL, NULL);
    if (node < 1 || node > dev->cap_nodes_seen)
        return dz_fail(DZ_ERR_ARG, "%s: a kernel found an index out of range", dev->name);
    const ocl_node_ref *ref = &dev->nodes_seen[node - 1];
    return dz_fail(DZ_ERR_ARG, "%s: %s node '%s': %s", dev->name, dz_op_name(ref->op), ref->name, data_error(ref->op));
}
