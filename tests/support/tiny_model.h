/* Writes small llama-architecture GGUF models at test time (random weights, a
 * SentencePiece-style vocabulary with byte tokens), with knobs to break them
 * in one targeted way each. */
#ifndef DZ_TINY_MODEL_H
#define DZ_TINY_MODEL_H

#include "dizuo/gguf.h"

typedef struct tiny_model_spec {
    const char *arch;          /* "llama" */
    int64_t n_embd, n_layer, n_head, n_head_kv, n_ff;
    bool omit_embd_key;        /* drop <arch>.embedding_length */
    const char *drop_tensor;   /* name of a tensor to leave out, or NULL */
    const char *bad_tensor;    /* tensor whose shape gets ne0 + 1 ... */
    const char *typed_tensor;  /* tensor written with `tensor_type` instead of F32 */
    dz_type tensor_type;
    int64_t embd_rows_delta;   /* token_embd rows = n_vocab + delta */
    int64_t rope_dims;         /* 0: key absent */
    bool qkv_bias;             /* write blk.N.attn_{q,k,v}.bias (qwen2 has them) */
    uint64_t seed;
} tiny_model_spec;

tiny_model_spec tiny_model_default(void);
/* Writes the model to path; returns DZ_OK or the writer's status. */
dz_status tiny_model_write(const tiny_model_spec *spec, const char *path);

#endif
