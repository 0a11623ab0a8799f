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

#endif
