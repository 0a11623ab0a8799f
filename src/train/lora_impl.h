/* Internals of LoRA training shared by src/train/lora.c and lora_graph.c. */
#ifndef DZ_LORA_IMPL_H
#define DZ_LORA_IMPL_H

#include "dizuo/lora.h"
#include "model/model_impl.h"

/* One adapted matrix: A (in, r) at off_a and B (r, out) at off_b of the flat
 * arrays. gpt2's attn_qkv feeds three slots (q, k, v) with B's thirds. */
typedef struct lora_target {
    char name[96];  /* the base matrix: "blk.0.attn_q.weight" */
    int32_t layer;
    int slot;       /* DZ_LORA_* (the first of three when fused) */
    bool fused;
    int64_t in, out, off_a, off_b;
    dz_tensor *a, *b[3];           /* leaves of the graph */
    dz_tensor *grad_a, *grad_b[3]; /* their gradients */
} lora_target;

typedef struct lora_graph {
    dz_ctx *ctx;
    dz_graph *graph;
    dz_tensor *ids, *targets, *pos, *loss;
} lora_graph;

/* Builds the one-row graph (T tokens) of base m with the adapters of
 * targets[0..n) (leaves unbound), scale = alpha / r. On failure g is empty. */
dz_status dz_lora_graph_build(const dz_model *m, lora_target *targets, int32_t n, int32_t rank, float scale,
                              int32_t T, lora_graph *g);
void dz_lora_graph_free(lora_graph *g);

#endif
