/* dizuo — model: architectures read from GGUF metadata, weights bound to the
 * file mapping, and the forward pass built as a compute graph.
 *
 * Architectures: "llama" (Llama 1/2/3, Mistral, TinyLlama, SmolLM, Yi, ...),
 * "qwen2" (llama plus Q/K/V biases, NeoX rope) and "gpt2" (LayerNorm with
 * bias, learned positions, fused QKV with bias, GELU, tied output). */
#ifndef DIZUO_MODEL_H
#define DIZUO_MODEL_H

#include "dizuo/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dz_model_hparams {
    char arch[32];          /* general.architecture */
    int32_t n_vocab;
    int32_t n_embd;         /* model width */
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;      /* GQA: n_head % n_head_kv == 0 */
    int32_t head_dim;
    int32_t n_ff;           /* feed-forward width */
    int32_t n_ctx_train;    /* context the model was trained with */
    int32_t n_rot;          /* rotated dimensions per head */
    int32_t rope_mode;      /* DZ_ROPE_NORMAL or DZ_ROPE_NEOX */
    float rope_freq_base;
    float rope_freq_scale;  /* 1 / linear scaling factor */
    float norm_eps;         /* RMSNorm (llama, qwen2) or LayerNorm (gpt2) epsilon */
    bool tied_output;       /* no output.weight: the token embedding is reused */
    bool qkv_bias;
} dz_model_hparams;

typedef struct dz_model_options {
    const char *device;  /* "cpu" (default when NULL) */
    int32_t n_threads;   /* 0: the device's default */
} dz_model_options;

typedef struct dz_model dz_model;

/* Loads a GGUF model: maps the file, reads and checks the hyper-parameters,
 * binds every tensor (checking shapes against the hyper-parameters and types
 * against what the device can compute) and builds the tokenizer. Errors name
 * the file and the defect (DZ_ERR_IO, DZ_ERR_FORMAT, DZ_ERR_UNSUPPORTED).
 * The caller owns *out (dz_model_free). */
dz_status dz_model_load(const char *path, const dz_model_options *opt, dz_model **out);
void dz_model_free(dz_model *m); /* NULL is a no-op */

const dz_model_hparams *dz_model_hparams_get(const dz_model *m);
const dz_tokenizer *dz_model_tokenizer(const dz_model *m);
const dz_gguf *dz_model_gguf(const dz_model *m);
size_t dz_model_weight_bytes(const dz_model *m);

/* A single sequence's key/value cache: n_ctx positions for every layer, F32,
 * on the model's device when it can write and read it there, else on the
 * CPU beside it (docs/porting.md). The caller owns *out. */
typedef struct dz_kv_cache dz_kv_cache;
dz_status dz_kv_cache_create(dz_model *m, int32_t n_ctx, dz_kv_cache **out);
void dz_kv_cache_free(dz_kv_cache *kv); /* NULL is a no-op */
int32_t dz_kv_cache_n_ctx(const dz_kv_cache *kv);
size_t dz_kv_cache_bytes(const dz_kv_cache *kv);

/* Runs tokens[0..n) at positions n_past..n_past+n-1, storing their keys and
 * values in kv (positions >= n_past are overwritten). logits receives
 * n * n_vocab floats when all_logits, else n_vocab floats for the last token.
 * DZ_ERR_ARG if a token id is outside the vocabulary or the cache is too
 * small. Not thread-safe for one model. */
dz_status dz_model_forward(dz_model *m, dz_kv_cache *kv, const int32_t *tokens, int32_t n,
                           int32_t n_past, float *logits, bool all_logits);

/* Mean-pooled embeddings of tokens[0..n) (dz_engine_embed runs it on the engine thread):
 * a fresh n-position cache, the model's layers, the output norm, then the
 * mean over positions and L2 normalisation. Not thread-safe for one model. */
dz_status dz_model_embed(dz_model *m, const int32_t *tokens, int32_t n, float *out);

/* ---- paged KV cache and batched forward (continuous batching) ----
 *
 * A pool holds the keys and values of n_blocks blocks of block_size
 * positions, for every layer, placed as a dz_kv_cache is; sequences take blocks
 * as they grow and give them back when freed, so no context is split ahead
 * of time. One dz_model_forward_batch runs new tokens of many sequences
 * (prompt chunks and single decode tokens alike) through one forward pass.
 * Not thread-safe: one thread drives a model, its pool and its sequences. */
typedef struct dz_kv_pool dz_kv_pool;
typedef struct dz_kv_seq dz_kv_seq;

dz_status dz_kv_pool_create(dz_model *m, int32_t n_blocks, int32_t block_size, dz_kv_pool **out);
void dz_kv_pool_free(dz_kv_pool *p); /* NULL is a no-op; every sequence must be freed first */
int32_t dz_kv_pool_block_size(const dz_kv_pool *p);
int32_t dz_kv_pool_n_blocks(const dz_kv_pool *p);
int32_t dz_kv_pool_free_blocks(const dz_kv_pool *p);   /* free or cached (reusable) */
int32_t dz_kv_pool_cached_blocks(const dz_kv_pool *p); /* cached and not in use */
/* Full blocks looked up by dz_kv_seq_create_cached so far, and found. */
void dz_kv_pool_prefix_stats(const dz_kv_pool *p, uint64_t *queries, uint64_t *hits);
size_t dz_kv_pool_bytes(const dz_kv_pool *p);

/* An empty sequence (no blocks yet), outside the prefix cache. */
dz_status dz_kv_seq_create(dz_kv_pool *p, dz_kv_seq **out);
/* A sequence in the prefix cache of tenant: it starts with the longest run of
 * full blocks of tokens[0..n) that an earlier sequence of the same tenant
 * computed (never the last token, whose logits the caller needs), and
 * *n_cached is that length: the caller runs tokens[*n_cached..n) next. Its
 * own full blocks join the cache as it grows; freed, they stay cached until
 * the pool needs them. No sharing across tenants. */
dz_status dz_kv_seq_create_cached(dz_kv_pool *p, uint64_t tenant, const int32_t *tokens, int32_t n,
                                  dz_kv_seq **out, int32_t *n_cached);
void dz_kv_seq_free(dz_kv_seq *s); /* returns its blocks; NULL is a no-op */
int32_t dz_kv_seq_len(const dz_kv_seq *s);
/* Makes room for n more positions, taking blocks from the pool. When the
 * pool has too few free blocks: DZ_ERR_NOMEM ("KV pool exhausted") and
 * nothing changes. */
dz_status dz_kv_seq_reserve(dz_kv_seq *s, int32_t n);

/* n tokens appended to seq (its length grows by n). */
typedef struct dz_batch_item {
    dz_kv_seq *seq;
    const int32_t *tokens;
    int32_t n;
} dz_batch_item;

/* One forward pass over items[0..n_items): item i's tokens go to positions
 * len_i .. len_i + n_i - 1 of its sequence (room is reserved as needed) and
 * logits + i * n_vocab receives the logits of its last token. A sequence
 * appears at most once. On error no sequence's length changes. */
dz_status dz_model_forward_batch(dz_model *m, dz_kv_pool *pool, const dz_batch_item *items, int32_t n_items,
                                 float *logits);

#ifdef __cplusplus
}
#endif
#endif /* DIZUO_MODEL_H */
