/* The CPU reference of the GPT-2 (tier I: LAYER_NORM, GELU) and training
 * (tier T) ops: which nodes it takes, the data checks, per-thread scratch,
 * and one kernel per op. Shapes and definitions are dz_op's in backend.h
 * (with ops_train.c's two generalizations: MUL_MAT_BACK_X/W rows over dims
 * 1..3, CROSS_ENTROPY over logits (V, T, B, C)). */
#ifndef DZ_CPU_TRAIN_H
#define DZ_CPU_TRAIN_H

#include "backends/cpu/cpu_impl.h"

/* Is op one of these (LAYER_NORM .. CROSS_ENTROPY_BACK)? */
static inline bool dz_cpu_train_op(dz_op op) { return op >= DZ_OP_LAYER_NORM && op < DZ_OP_COUNT; }

/* Shapes, types and params of a node of the training ops (LAYER_NORM and
 * GELU, tier I, are checked by dz_op_node_valid; strides and the output's
 * contiguity by dz_cpu_supports_node). */
bool dz_cpu_train_supports(const dz_tensor *node);
/* Value checks: GET_ROWS_BACK ids in [0, n_rows), CROSS_ENTROPY(_BACK)
 * targets in [0, V). DZ_ERR_ARG naming the node and the bad index. */
dz_status dz_cpu_train_check_data(const dz_tensor *node);
/* Bytes of private scratch each thread of the node's kernel needs (0 if none). */
size_t dz_cpu_train_thread_bytes(const dz_tensor *node);
/* The kernel of one of these ops. */
dz_cpu_kernel_fn dz_cpu_train_kernel_of(dz_op op);

/* Kernels (cpu_train.c). All outputs F32 contiguous; inputs through nb. */
void dz_cpu_layer_norm(const dz_cpu_job *job, int ith, int nth);      /* x (n, ...) -> (n, ...) */
void dz_cpu_gelu(const dz_cpu_job *job, int ith, int nth);            /* x (n, ...) -> (n, ...) */
void dz_cpu_sum_cols(const dz_cpu_job *job, int ith, int nth);        /* a (n, a, b, c) -> (n) */
void dz_cpu_rms_norm_back(const dz_cpu_job *job, int ith, int nth);   /* x, dy (n, ...) -> dx (n, ...) */
void dz_cpu_layer_norm_back(const dz_cpu_job *job, int ith, int nth); /* x, dy (n, ...) -> dx (n, ...) */
void dz_cpu_gelu_back(const dz_cpu_job *job, int ith, int nth);       /* x, dy (n, ...) -> dx (n, ...) */
void dz_cpu_rope_back(const dz_cpu_job *job, int ith, int nth);       /* dy (hd, H, T), pos (T) -> (hd, H, T) */
void dz_cpu_swiglu_back(const dz_cpu_job *job, int ith, int nth);     /* gate, up, dy (n, T) -> (n, T, 2) */
void dz_cpu_get_rows_back(const dz_cpu_job *job, int ith, int nth);   /* dY (ne0, n), ids (n) -> (ne0, R) */
void dz_cpu_cross_entropy(const dz_cpu_job *job, int ith, int nth);   /* logits (V, T..), tgt (T..) -> (1) */
void dz_cpu_cross_entropy_back(const dz_cpu_job *job, int ith, int nth); /* -> (V, T..) */

/* Kernels (cpu_train_mm.c). */
void dz_cpu_mul_mat_back_x(const dz_cpu_job *job, int ith, int nth); /* W (K, N), dY (N, M..) -> (K, M..) */
void dz_cpu_mul_mat_back_w(const dz_cpu_job *job, int ith, int nth); /* X (K, M..), dY (N, M..) -> (K, N) */
/* q (hd, H, T), k, v (hd, G, T), dout (hd, H, T) -> (hd (H + 2G), T) */
void dz_cpu_attention_back(const dz_cpu_job *job, int ith, int nth);
size_t dz_cpu_train_mm_thread_bytes(const dz_tensor *node);

/* Row (i1, i2, i3) of t (any dequantizable type, gaps between plain
 * elements allowed) as ne0 floats at dst. */
void dz_cpu_train_load_row(const dz_tensor *t, int64_t i1, int64_t i2, int64_t i3, float *dst);

#endif
