/* Internals of the model layer shared by its files. */
#ifndef DZ_MODEL_IMPL_H
#define DZ_MODEL_IMPL_H

#include "dizuo/model.h"
#include "dizuo/tensor.h"

/* The architectures the model layer builds graphs for. */
typedef enum dz_arch {
    DZ_ARCH_LLAMA, /* RMSNorm, RoPE, SwiGLU, GQA */
    DZ_ARCH_QWEN2, /* llama plus Q/K/V biases, NeoX rope */
    DZ_ARCH_GPT2,  /* LayerNorm with bias, learned positions, GELU, biases everywhere, no rope */
} dz_arch;

/* A LoRA pair on one projection (src/model/lora.c): y = W x + scale * B (A x),
 * A (in, r), B (r, out), F32. Unset (a NULL) on most projections. */
typedef struct dz_lora_pair {
    dz_tensor *a, *b;
    float scale;
} dz_lora_pair;
enum { DZ_LORA_Q, DZ_LORA_K, DZ_LORA_V, DZ_LORA_O, DZ_LORA_GATE, DZ_LORA_UP, DZ_LORA_DOWN, DZ_LORA_SLOTS };
/* W x, plus the LoRA term of p when p->a is set. */
dz_tensor *dz_lora_mul_mat(dz_ctx *ctx, dz_tensor *w, const dz_lora_pair *p, dz_tensor *x);
struct dz_model_lora;
void dz_model_lora_free(struct dz_model_lora *l); /* NULL is a no-op */

/* One layer's weights. gpt2's fused attn_qkv is bound as three tensors over
 * its thirds (wq, wk, wv and bq, bk, bv), so every architecture projects
 * the same way. */
typedef struct dz_layer {
    dz_tensor *attn_norm, *attn_norm_b;   /* (n_embd); the bias gpt2 only */
    dz_tensor *wq, *wk, *wv;              /* (n_embd, n_head*hd), (n_embd, n_head_kv*hd) x2 */
    dz_tensor *bq, *bk, *bv;              /* biases or NULL */
    dz_tensor *wo, *bo;                   /* (n_head*hd, n_embd), (n_embd) or NULL */
    dz_tensor *ffn_norm, *ffn_norm_b;     /* (n_embd); the bias gpt2 only */
    dz_tensor *ffn_gate;                  /* (n_embd, n_ff); NULL for gpt2 */
    dz_tensor *ffn_up, *ffn_up_b;         /* (n_embd, n_ff), (n_ff) or NULL */
    dz_tensor *ffn_down, *ffn_down_b;     /* (n_ff, n_embd), (n_embd) or NULL */
    dz_lora_pair lora[DZ_LORA_SLOTS];     /* the applied adapter's pairs (zero: none) */
} dz_layer;

struct dz_model {
    dz_model_hparams hp;
    dz_arch arch;
    dz_gguf *gguf;
    dz_tokenizer *tok;
    dz_device *device;   /* where weights and caches live */
    dz_device *cpu;      /* fallback device beside a non-host device; NULL on a host device */
    dz_sched *sched;
    dz_buffer **weights;    /* host device: one, wrapping the file mapping; else pieces of the
                               file's data section, each within the device's largest buffer */
    size_t *weights_start;  /* file offset of each piece's first byte */
    int32_t n_weights;
    dz_ctx *wctx;        /* headers of the weight tensors */
    dz_tensor *tok_embd, *output_norm, *output;
    dz_tensor *pos_embd;      /* gpt2: (n_embd, n_ctx_train) learned positions; else NULL */
    dz_tensor *output_norm_b; /* gpt2: (n_embd); else NULL */
    dz_layer *layers;
    size_t weight_bytes;
    dz_ctx *gctx;        /* headers of one forward pass, reset per call */
    struct dz_model_lora *lora; /* the applied LoRA adapter (lora.c) or NULL */
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
/* The architecture named by hp->arch (one dz_hparams_read accepted). */
dz_arch dz_arch_of(const dz_model_hparams *hp);

/* ---- shared by the one-sequence pass (forward.c) and the batched one (batch.c) ---- */

/* Per layer K and V tensors of (head_dim, n_head_kv, rows) F32, named
 * "<name>_k.<i>" / "<name>_v.<i>", headers in a new *ctx, memory in one new
 * *buf on the model's device (not cleared). *k and *v: arrays of n_layer.
 * On failure everything made here is freed and the outputs are untouched. */
dz_status dz_kv_tensors_create(dz_model *m, int64_t rows, const char *name, dz_ctx **ctx, dz_buffer **buf,
                               dz_tensor ***k, dz_tensor ***v);
/* The graph context of a pass: m->gctx, reset (or made). */
dz_status dz_model_graph_ctx(dz_model *m);
/* Checks that positions [first, first + n) exist for the model: gpt2's
 * learned positions stop at n_ctx_train. DZ_ERR_ARG naming the limit. */
dz_status dz_model_check_positions(const dz_model *m, int64_t first, int64_t n);
/* The input of the first layer for token ids (I32, T) at positions pos (I32,
 * T): the token embeddings, plus the position embeddings for gpt2. */
dz_tensor *dz_model_input(dz_ctx *ctx, const dz_model *m, dz_tensor *ids, dz_tensor *pos);
/* x (n_embd, T) normed with the model's norm (RMSNorm, or gpt2's LayerNorm)
 * and scaled by w, plus b when not NULL. */
dz_tensor *dz_model_norm(dz_ctx *ctx, const dz_model *m, dz_tensor *x, dz_tensor *w, dz_tensor *b);
/* Layer l's q (hd, n_head, T), k and v (hd, n_head_kv, T) from x (n_embd,
 * T): normed, projected (+bias), q and k roped at positions pos (not gpt2). */
void dz_layer_qkv(dz_ctx *ctx, const dz_model *m, const dz_layer *l, dz_tensor *x, dz_tensor *pos, int32_t T,
                  dz_tensor **q, dz_tensor **k, dz_tensor **v);
/* The rest of layer l after attention a (hd, n_head, T): x + Wo a (+bo),
 * then the feed-forward block (SwiGLU, or gpt2's GELU MLP with biases);
 * returns the new x. */
dz_tensor *dz_layer_finish(dz_ctx *ctx, const dz_model *m, const dz_layer *l, dz_tensor *x, dz_tensor *a);
/* Adds the cache writes k_store and v_store to *g (made by the first call),
 * ahead of the attention that reads them. False on failure. */
bool dz_graph_add_stores(dz_ctx *ctx, dz_graph **g, dz_tensor *k_store, dz_tensor *v_store);

#endif
