/* Internals of the tensor layer shared by its files: the context arena,
 * error recording for builders, and a small pointer set. */
#ifndef DZ_TENSOR_IMPL_H
#define DZ_TENSOR_IMPL_H

#include "dizuo/tensor.h"

/* Set by the scheduler on tensors whose memory it placed: such memory is
 * re-planned on the next dz_sched_alloc instead of being treated as bound. */
#define DZ_TENSOR_PLANNED (1u << 31)

struct dz_ctx {
    dz_tensor *tensors;    /* max_tensors headers */
    int32_t n_tensors, max_tensors;
    dz_status status;      /* first builder error */
    char error[512];
    dz_graph **graphs;     /* graphs built from this ctx (freed on reset/destroy) */
    int32_t n_graphs, cap_graphs;
};

/* Records the first failure of a builder (later ones are dropped), sets the
 * thread's error message, and returns NULL for `return ctx_fail(...)`. */
dz_tensor *dz_ctx_fail(dz_ctx *ctx, dz_status st, const char *fmt, ...) DZ_PRINTF(3, 4);

/* A fresh header: type, shape, contiguous strides; NULL (and ctx error) on a
 * bad shape or a full arena. `op` names the builder in messages. */
dz_tensor *dz_ctx_new(dz_ctx *ctx, const char *op, dz_type type, int n_dims, const int64_t *ne);

/* The tensor whose memory t uses: view_src for views and writes into views,
 * t itself otherwise. */
static inline dz_tensor *dz_tensor_root(const dz_tensor *t) {
    return t->view_src ? t->view_src : (dz_tensor *)t;
}

/* "(4, 3, 1, 1) F32" */
const char *dz_shape_str(const dz_tensor *t, char *buf, size_t cap);

/* Open-addressing set of pointers (graph dedup, scheduler lookups). */
typedef struct dz_ptrmap {
    const void **keys;
    int32_t *values;
    size_t cap; /* power of two */
    size_t count;
} dz_ptrmap;

dz_status dz_ptrmap_init(dz_ptrmap *m, size_t expected);
void dz_ptrmap_free(dz_ptrmap *m);
/* Value of key, or -1. */
int32_t dz_ptrmap_get(const dz_ptrmap *m, const void *key);
/* Inserts or overwrites; grows as needed. */
dz_status dz_ptrmap_put(dz_ptrmap *m, const void *key, int32_t value);

/* ops.c: the builders' common pieces. A DZ_ERR_ARG in the context naming
 * op, the operand(s) ("'name' (shape) TYPE") and why; always NULL. */
dz_tensor *dz_op_fail1(dz_ctx *ctx, const char *op, const dz_tensor *a, const char *why);
dz_tensor *dz_op_fail2(dz_ctx *ctx, const char *op, const dz_tensor *a, const dz_tensor *b, const char *why);
/* A contiguous result node of op, type and shape given, with operands s0..s3. */
dz_tensor *dz_op_node(dz_ctx *ctx, const char *name, dz_op op, dz_type type, int n_dims, const int64_t *ne,
                      dz_tensor *s0, dz_tensor *s1, dz_tensor *s2, dz_tensor *s3);

#endif
