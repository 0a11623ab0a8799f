/* dizuo — tensor: element types and their blocks, tensors, graph building,
 * and the scheduler that places nodes on devices (CPU fallback included).
 *
 * Usage, one forward pass:
 *     dz_ctx *ctx = dz_ctx_create(4096);
 *     dz_tensor *ids = dz_new_tensor_1d(ctx, DZ_TYPE_I32, n); dz_set_input(ids);
 *     dz_tensor *x = dz_get_rows(ctx, tok_embd, ids); ...
 *     dz_graph *g = dz_graph_build(ctx, out);       // NULL if any builder failed
 *     dz_sched_alloc(sched, g);                     // places and allocates
 *     dz_tensor_write(ids, host_ids, 0, n * 4);
 *     dz_sched_compute(sched, g);
 *     dz_tensor_read(out, host_out, 0, dz_nbytes(out));
 *     dz_ctx_destroy(ctx);
 */
#ifndef DIZUO_TENSOR_H
#define DIZUO_TENSOR_H

#include "dizuo/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- element types ---- */

typedef struct dz_type_traits {
    const char *name;   /* "F32", "Q4_K", ... ; NULL for ids that are not types */
    int32_t block_size; /* elements per block (1 for plain types) */
    size_t type_size;   /* bytes per block */
    bool is_quantized;
} dz_type_traits;

/* Traits of a type id; NULL for an id that is not a known type (retired or
 * out of range). Static storage, thread-safe. */
const dz_type_traits *dz_type_info(int type_id);
const char *dz_type_name(dz_type t); /* "?" for unknown ids */
/* Parses a type name ("q4_0", "Q4_0", "f16"); -1 if unknown. */
int dz_type_from_name(const char *name);

/* Bytes of a row of ne0 elements; fails (DZ_ERR_FORMAT) if ne0 is not a
 * multiple of the block size or the size overflows. */
dz_status dz_row_size(dz_type t, int64_t ne0, size_t *out);

/* Scalar conversions (round to nearest even, as ggml does). */
float dz_fp16_to_fp32(uint16_t h);
uint16_t dz_fp32_to_fp16(float f);
float dz_bf16_to_fp32(uint16_t h);
uint16_t dz_fp32_to_bf16(float f);

/* Is there a reference dequantizer for this type (get_rows, matmul weights)? */
bool dz_type_can_dequantize(dz_type t);
/* Is there a reference quantizer (activations, conversions, writing files)? */
bool dz_type_can_quantize(dz_type t);
/* Row conversions between F32 and a type; n a multiple of the block size.
 * DZ_ERR_UNSUPPORTED (naming the type) where no routine exists. */
dz_status dz_dequantize_row(dz_type t, const void *src, float *dst, int64_t n);
dz_status dz_quantize_row(dz_type t, const float *src, void *dst, int64_t n);

/* ---- tensors and graph building ---- */

/* An arena of tensor headers (not data). Builders return NULL on failure and
 * record the first error in the context (dz_ctx_status); a NULL input makes
 * a builder return NULL, so a whole graph can be built and checked once.
 * Error messages name the op, the operands and their shapes. A context is
 * used from one thread at a time. */
typedef struct dz_ctx dz_ctx;

/* max_tensors is a hard capacity: building more fails with DZ_ERR_NOMEM.
 * NULL on allocation failure. The caller owns the context. */
dz_ctx *dz_ctx_create(int32_t max_tensors);
void dz_ctx_destroy(dz_ctx *ctx);           /* NULL is a no-op; data buffers are not freed */
void dz_ctx_reset(dz_ctx *ctx);             /* forget every tensor and graph, keep the arena */
dz_status dz_ctx_status(const dz_ctx *ctx); /* first error, with dz_last_error set at the time */
const char *dz_ctx_error(const dz_ctx *ctx);

dz_tensor *dz_new_tensor(dz_ctx *ctx, dz_type type, int n_dims, const int64_t *ne);
dz_tensor *dz_new_tensor_1d(dz_ctx *ctx, dz_type type, int64_t ne0);
dz_tensor *dz_new_tensor_2d(dz_ctx *ctx, dz_type type, int64_t ne0, int64_t ne1);
dz_tensor *dz_new_tensor_3d(dz_ctx *ctx, dz_type type, int64_t ne0, int64_t ne1, int64_t ne2);
void dz_set_name(dz_tensor *t, const char *fmt, ...) DZ_PRINTF(2, 3);
void dz_set_input(dz_tensor *t);
void dz_set_output(dz_tensor *t);

int64_t dz_nelements(const dz_tensor *t);
size_t dz_nbytes(const dz_tensor *t);        /* bytes spanned, for contiguous tensors the data size */
bool dz_is_contiguous(const dz_tensor *t);
int64_t dz_nrows(const dz_tensor *t);        /* ne1*ne2*ne3 */
/* Whether node is a tier-I op (dizuo/backend.h) with the operand types,
 * shapes and parameters the op is defined for, its result F32 and
 * contiguous (CPY and SET_ROWS write views of any plain type they allow).
 * Weight types (GET_ROWS table, MUL_MAT W) are not checked: each backend
 * narrows this to the types, strides and sizes its kernels handle. False for
 * NONE, VIEW and the training ops. */
bool dz_op_node_valid(const dz_tensor *node);

/* Points a tensor that is not a view at memory in a buffer (weights, KV
 * cache): data = buffer base + offset. DZ_ERR_ARG if it does not fit. The
 * buffer stays the caller's. */
dz_status dz_tensor_bind(dz_tensor *t, dz_buffer *buf, size_t offset);
/* Host <-> tensor data, through the owning buffer (works on any device).
 * offset and n are bytes within the tensor's span (dz_nbytes); a view reads
 * and writes the memory it views. DZ_ERR_ARG before memory is bound or
 * allocated, or outside the span. */
dz_status dz_tensor_write(dz_tensor *t, const void *src, size_t offset, size_t n);
dz_status dz_tensor_read(const dz_tensor *t, void *dst, size_t offset, size_t n);

/* Views (VIEW nodes sharing the source's data). view_src is always the
 * tensor that owns the memory (chains of views are resolved) and
 * view_offset the byte offset in it; src[0] is the tensor viewed. A view
 * outside its source's memory fails. Offsets and strides are in bytes. */
dz_tensor *dz_view_1d(dz_ctx *ctx, dz_tensor *a, int64_t ne0, size_t offset);
dz_tensor *dz_view_2d(dz_ctx *ctx, dz_tensor *a, int64_t ne0, int64_t ne1, size_t nb1, size_t offset);
dz_tensor *dz_view_3d(dz_ctx *ctx, dz_tensor *a, int64_t ne0, int64_t ne1, int64_t ne2,
                      size_t nb1, size_t nb2, size_t offset);
dz_tensor *dz_reshape_2d(dz_ctx *ctx, dz_tensor *a, int64_t ne0, int64_t ne1);  /* a contiguous */
dz_tensor *dz_reshape_3d(dz_ctx *ctx, dz_tensor *a, int64_t ne0, int64_t ne1, int64_t ne2);
dz_tensor *dz_permute(dz_ctx *ctx, dz_tensor *a, int ax0, int ax1, int ax2, int ax3);
dz_tensor *dz_transpose(dz_ctx *ctx, dz_tensor *a); /* swaps dims 0 and 1 */

/* Ops; see dz_op in backend.h for shapes and semantics. */
dz_tensor *dz_get_rows(dz_ctx *ctx, dz_tensor *table, dz_tensor *ids);
dz_tensor *dz_add(dz_ctx *ctx, dz_tensor *a, dz_tensor *b);
dz_tensor *dz_mul(dz_ctx *ctx, dz_tensor *a, dz_tensor *b);
dz_tensor *dz_scale(dz_ctx *ctx, dz_tensor *a, float s);
dz_tensor *dz_rms_norm(dz_ctx *ctx, dz_tensor *a, float eps);
dz_tensor *dz_mul_mat(dz_ctx *ctx, dz_tensor *w, dz_tensor *x);
dz_tensor *dz_rope(dz_ctx *ctx, dz_tensor *x, dz_tensor *pos, int n_rot, int mode,
                   float freq_base, float freq_scale);
dz_tensor *dz_softmax(dz_ctx *ctx, dz_tensor *a, dz_tensor *mask, float scale, bool causal,
                      int32_t n_past);
dz_tensor *dz_attention(dz_ctx *ctx, dz_tensor *q, dz_tensor *k, dz_tensor *v, dz_tensor *mask,
                        float scale, bool causal, int32_t n_past);
dz_tensor *dz_silu(dz_ctx *ctx, dz_tensor *a);
dz_tensor *dz_swiglu(dz_ctx *ctx, dz_tensor *gate, dz_tensor *up);
/* Copies (and converts) src into dst's memory; returns the node to keep in
 * the graph (a view of dst). */
dz_tensor *dz_cpy(dz_ctx *ctx, dz_tensor *src, dz_tensor *dst);
/* Writes the rows of src (ne0, n) F32 into rows ids (I32, n) of dst (ne0, R)
 * F32|F16; returns the node to keep in the graph (a view of dst). */
dz_tensor *dz_set_rows(dz_ctx *ctx, dz_tensor *dst, dz_tensor *src, dz_tensor *ids);
/* Attention of each query over the pool rows its index row lists (see
 * DZ_OP_PAGED_ATTENTION): the attention of a paged KV cache. */
dz_tensor *dz_paged_attention(dz_ctx *ctx, dz_tensor *q, dz_tensor *k_pool, dz_tensor *v_pool,
                              dz_tensor *index, float scale);

/* GPT-2 (tier I) and training (tier T) ops: see dz_op in backend.h for the
 * shapes and the exact definitions (src/tensor/ops_train.c). */
dz_tensor *dz_layer_norm(dz_ctx *ctx, dz_tensor *a, float eps);
dz_tensor *dz_gelu(dz_ctx *ctx, dz_tensor *a);
dz_tensor *dz_mul_mat_back_x(dz_ctx *ctx, dz_tensor *w, dz_tensor *dy);
dz_tensor *dz_mul_mat_back_w(dz_ctx *ctx, dz_tensor *x, dz_tensor *dy);
dz_tensor *dz_sum_cols(dz_ctx *ctx, dz_tensor *a);
dz_tensor *dz_rms_norm_back(dz_ctx *ctx, dz_tensor *x, dz_tensor *dy, float eps);
dz_tensor *dz_layer_norm_back(dz_ctx *ctx, dz_tensor *x, dz_tensor *dy, float eps);
dz_tensor *dz_rope_back(dz_ctx *ctx, dz_tensor *dy, dz_tensor *pos, int n_rot, int mode, float freq_base,
                        float freq_scale);
dz_tensor *dz_attention_back(dz_ctx *ctx, dz_tensor *q, dz_tensor *k, dz_tensor *v, dz_tensor *dout, float scale);
dz_tensor *dz_swiglu_back(dz_ctx *ctx, dz_tensor *gate, dz_tensor *up, dz_tensor *dy);
dz_tensor *dz_gelu_back(dz_ctx *ctx, dz_tensor *x, dz_tensor *dy);
dz_tensor *dz_get_rows_back(dz_ctx *ctx, dz_tensor *dy, dz_tensor *ids, int64_t n_rows);
dz_tensor *dz_cross_entropy(dz_ctx *ctx, dz_tensor *logits, dz_tensor *targets);
dz_tensor *dz_cross_entropy_back(dz_ctx *ctx, dz_tensor *logits, dz_tensor *targets, float dloss);

/* Collects every node `out` depends on, in execution order (operands first,
 * in src order; each node once). Graph memory belongs to ctx: valid until
 * dz_ctx_reset/destroy. NULL (and ctx status set) if any builder had failed. */
dz_graph *dz_graph_build(dz_ctx *ctx, dz_tensor *out);
/* Adds another output (and its dependencies not yet in g) to the end of a
 * graph built from ctx; nodes already there keep their places, so nodes
 * added by earlier calls run first (a KV-cache write before its reader).
 * On failure g is unchanged. */
dz_status dz_graph_expand(dz_ctx *ctx, dz_graph *g, dz_tensor *out);

const char *dz_op_name(dz_op op);
/* Which tiers an op belongs to (DZ_TIER_* bits). */
uint32_t dz_op_tiers(dz_op op);

/* ---- scheduler ---- */

/* Places nodes on devices and runs graphs. devices[0..n-1] in order of
 * preference; a host device (CPU) must be among them: it is the fallback for
 * nodes the others refuse. A node whose output already has a buffer (a write
 * into a KV-cache view) runs on that buffer's device; if that device does not
 * support it, scheduling fails with DZ_ERR_UNSUPPORTED naming the node.
 * The scheduler does not own the devices. Not thread-safe. */
typedef struct dz_sched dz_sched;

dz_status dz_sched_create(dz_device **devices, int n_devices, dz_sched **out);
void dz_sched_destroy(dz_sched *s);
/* Assigns every node a device and allocates memory for every tensor of g
 * without a buffer (inputs included: they live where their first reader
 * runs). Copies are inserted where a node reads data held by another
 * device. Results share memory once no later node reads them, except
 * DZ_TENSOR_OUTPUT tensors and results nothing reads. The memory belongs to
 * the scheduler, is reused between calls when large enough, and stays valid
 * until the next dz_sched_alloc or dz_sched_destroy. Planning the same graph
 * again is allowed. On failure the previous plan still stands. */
dz_status dz_sched_alloc(dz_sched *s, dz_graph *g);
/* Runs g (the graph of the last dz_sched_alloc) and waits for it. Errors of a
 * device name the device and the first node of the failing run. */
dz_status dz_sched_compute(dz_sched *s, dz_graph *g);
/* After dz_sched_alloc: the device a node was placed on (for a VIEW, the
 * device holding its memory); NULL for tensors not in the planned graph. */
dz_device *dz_sched_node_device(const dz_sched *s, const dz_tensor *node);
/* After dz_sched_alloc: how many tensor copies between devices each
 * dz_sched_compute makes. */
int32_t dz_sched_n_copies(const dz_sched *s);

#ifdef __cplusplus
}
#endif
#endif /* DIZUO_TENSOR_H */
