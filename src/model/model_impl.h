/* Internals of the model layer shared by its files. */
#ifndef DZ_MODEL_IMPL_H
#define DZ_MODEL_IMPL_H

#include "dizuo/model.h"
#include "dizuo/tensor.h"

typedef struct dz_layer {
    dz_tensor *attn_norm;                 /* (n_embd) */
    dz_tensor *wq, *wk, *wv;              /* (n_embd, n_head*hd), (n_embd, n_head_kv*hd) x2 */
    dz_tensor *bq, *bk, *bv;              /* biases or NULL */
    dz_tensor *wo;                        /* (n_head*hd, n_embd) */
    dz_tensor *ffn_norm;                  /* (n_embd) */
    dz_tensor *ffn_gate, *ffn_up;         /* (n_embd, n_ff) */
    dz_tensor *ffn_down;                  /* (n_ff, n_embd) */
} dz_layer;

struct dz_model {
    dz_model_hparams hp;
    dz_gguf *gguf;
    dz_tokenizer *tok;
    dz_device *device;   /* where weights and caches live */
    dz_device *cpu;      /* fallback device (== device when running on the CPU) */
    dz_sched *sched;
    dz_buffer *weights;  /* wraps the file mapping */
    dz_ctx *wctx;        /* headers of the weight tensors */
    dz_tensor *tok_embd, *output_norm, *output;
    dz_layer *layers;
    size_t weight_bytes;
    dz_ctx *gctx;        /* headers of one forward pass, reset per call */
};

struct dz_kv_cache {
    dz_model *model;
    int32_t n_ctx;
    dz_buffer *buf;
    dz_ctx *ctx;
    dz_tensor **k, **v; /* per layer: (head_dim, n_head_kv, n_ctx) */
};

/* Reads and checks the hyper-parameters of g (hparams.c). */
dz_status dz_hparams_read(const dz_gguf *g, dz_model_hparams *hp);

/* ---- shared by the one-sequence pass (forward.c) and the batched one (batch.c) ---- */

/* Per layer K and V tensors of (head_dim, n_head_kv, rows) F32, named
 * "<name>_k.<i>" / "<name>_v.<i>", headers in a new *ctx, memory in one new
 * *buf on the model's device (not cleared). *k and *v: arrays of n_layer.
 * On failure everything made here is freed and the outputs are untouched. */
dz_status dz_kv_tensors_create(dz_model *m, int64_t rows, const char *name, dz_ctx **ctx, dz_buffer **buf,
                               dz_tensor ***k, dz_tensor ***v);
/* The graph context of a pass: m->gctx, reset (or made). */
dz_status dz_model_graph_ctx(dz_model *m);
/* Layer l's q (hd, n_head, T), k and v (hd, n_head_kv, T) from x (n_embd,
 * T): normed, projected (+bias), q and k roped at positions pos. */
void dz_layer_qkv(dz_ctx *ctx, const dz_model *m, const dz_layer *l, dz_tensor *x, dz_tensor *pos, int32_t T,
                  dz_tensor **q, dz_tensor **k, dz_tensor **v);
/* The rest of layer l after attention a (hd, n_head, T): x + Wo a, then the
 * feed-forward block; returns the new x. */
dz_tensor *dz_layer_finish(dz_ctx *ctx, const dz_model *m, const dz_layer *l, dz_tensor *x, dz_tensor *a);
/* Adds the cache writes k_store and v_store to *g (made by the first call),
 * ahead of the attention that reads them. False on failure. */
bool dz_graph_add_stores(dz_ctx *ctx, dz_graph **g, dz_tensor *k_store, dz_tensor *v_store);

#endif
