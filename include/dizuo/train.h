/* dizuo — train: pretraining llama and gpt2 models on the CPU.
 *
 * A training model holds fp32 master weights, their gradients and the AdamW
 * moments in host memory, one flat array each, laid out parameter after
 * parameter in GGUF order. A trainer builds the forward pass and its
 * explicit backward (tier-T ops, see dz_op in backend.h) as one compute
 * graph of one row of T tokens, plans it once and runs it for every row of
 * a batch, summing the gradients on the host in row order (deterministic for
 * a given thread count). docs/training.md gives the exact semantics.
 *
 * Usage, one step:
 *     dz_trainer_zero_grad(tr);
 *     dz_trainer_backward(tr, inputs, targets, n_rows, &loss);  // per micro-batch
 *     dz_trainer_update(tr, step, &stats);                     // reduce, clip, AdamW
 *
 * Nothing here is thread-safe: one thread drives a model and its trainer. */
#ifndef DIZUO_TRAIN_H
#define DIZUO_TRAIN_H

#include "dizuo/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dz_train_arch { DZ_TRAIN_LLAMA = 0, DZ_TRAIN_GPT2 = 1 } dz_train_arch;

/* The shape of a model. gpt2: n_head_kv = n_head, tied = true. */
typedef struct dz_train_config {
    dz_train_arch arch;
    int32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    bool tied;       /* llama: no output.weight, token_embd is reused */
    float norm_eps;  /* rms_norm / layer_norm epsilon (1e-5) */
    float rope_base; /* llama: 10000 */
} dz_train_config;

/* A default shape for arch (sizes 0: the caller fills them in). */
dz_train_config dz_train_config_default(dz_train_arch arch);
/* Checks a shape; DZ_ERR_ARG naming what does not fit (heads not dividing
 * the width, an odd head size for rope, sizes out of range). */
dz_status dz_train_config_check(const dz_train_config *c);
/* "llama" / "gpt2"; -1 for other names. */
const char *dz_train_arch_name(dz_train_arch a);
int dz_train_arch_from_name(const char *name);

/* One parameter tensor: floats [offset, offset + n) of the flat arrays. */
typedef struct dz_train_param {
    char name[64];     /* GGUF name: "blk.0.attn_q.weight" */
    int32_t n_dims;    /* 1 or 2 */
    int64_t ne[2];     /* ggml order: ne[0] fastest (a Linear's in), ne[1] = out */
    int64_t offset, n;
    bool decay;        /* AdamW weight decay applies: matrices and embeddings */
    bool trainable;    /* false: frozen (no gradient, no update); true by default */
} dz_train_param;

typedef struct dz_train_model dz_train_model;

/* A model of shape c with seeded random weights: every matrix and embedding
 * normal(0, 0.02), the residual projections (attn_output, ffn_down) normal(0,
 * 0.02 / sqrt(2 n_layer)) as GPT-2 does, norm weights 1, biases 0. The same
 * seed gives the same weights on every machine. Caller owns *out. */
dz_status dz_train_model_create(const dz_train_config *c, uint64_t seed, dz_train_model **out);
/* A model from a GGUF file (llama or gpt2 hyper-parameter keys, tensors of
 * any type dizuo can dequantize, converted to F32). The file's tokenizer.*
 * keys, when present, are kept for export and checkpoints, and its
 * tokenizer is built. Errors name the file and the defect. */
dz_status dz_train_model_load(const char *path, dz_train_model **out);
void dz_train_model_free(dz_train_model *m); /* NULL is a no-op */

/* Takes the tokenizer.* keys of g (copied now; g may be closed) for export
 * and builds the tokenizer from them. DZ_ERR_ARG if its vocabulary is not
 * the model's size. */
dz_status dz_train_model_set_tokenizer(dz_train_model *m, const dz_gguf *g);
/* The tokenizer, or NULL when the model has none. */
const dz_tokenizer *dz_train_model_tokenizer(const dz_train_model *m);

const dz_train_config *dz_train_model_config(const dz_train_model *m);
int32_t dz_train_model_n_params(const dz_train_model *m);
/* Parameter i (0 <= i < n_params), or NULL. */
dz_train_param *dz_train_model_param(dz_train_model *m, int32_t i);
dz_train_param *dz_train_model_find(dz_train_model *m, const char *name);
/* Total floats of every parameter. */
int64_t dz_train_model_n_floats(const dz_train_model *m);
/* The flat arrays (n_floats each), owned by the model: weights, gradients,
 * AdamW first and second moments. */
float *dz_train_model_weights(dz_train_model *m);
float *dz_train_model_grads(dz_train_model *m);
float *dz_train_model_adam_m(dz_train_model *m);
float *dz_train_model_adam_v(dz_train_model *m);

/* Writes the model as a GGUF file dizuo run and llama.cpp load: the
 * architecture's hyper-parameter keys, the tokenizer keys, the weights as
 * F32 or F16 (out_type; 1-D tensors always F32). Atomic (temp + rename). */
dz_status dz_train_model_export(const dz_train_model *m, const char *path, dz_type out_type);

/* ---- optimisation ---- */

typedef enum dz_lr_schedule { DZ_LR_COSINE = 0, DZ_LR_CONSTANT = 1 } dz_lr_schedule;

/* Called after the gradients of a step are summed and averaged, before
 * clipping: data-parallel training all-reduces (averages) grads and the loss
 * here. grads holds n floats (the flat gradient array; frozen parameters
 * hold zeros). Returns DZ_OK or a failure that stops the step. */
typedef dz_status (*dz_grad_reduce_fn)(void *user, float *grads, int64_t n, double *loss);

typedef struct dz_train_opts {
    int32_t seq;          /* T: tokens per row (<= n_ctx) */
    int32_t steps;        /* N: total steps (the cosine schedule's length) */
    int32_t warmup;       /* W */
    dz_lr_schedule schedule;
    float lr, beta1, beta2, eps, weight_decay;
    float clip;           /* global-norm clip; 0: off */
    int32_t threads;      /* 0: the device's default */
    const char *device;   /* NULL: "cpu" */
    dz_grad_reduce_fn reduce;
    void *reduce_user;
} dz_train_opts;

/* Defaults: lr 1e-3, betas 0.9 / 0.95, eps 1e-8, weight decay 0.1, clip 1,
 * cosine, no warmup; seq and steps must be set by the caller. */
dz_train_opts dz_train_opts_default(void);

/* The learning rate of 0-based step i (TRAIN.md): warmup, then cosine down
 * to 0.1 lr, or constant. */
double dz_train_lr(const dz_train_opts *o, int64_t i);

typedef struct dz_trainer dz_trainer;

/* Builds and plans the graph of one row for model m (which must outlive the
 * trainer; the trainer reads and writes its arrays). Caller owns *out. */
dz_status dz_trainer_create(dz_train_model *m, const dz_train_opts *o, dz_trainer **out);
void dz_trainer_free(dz_trainer *tr); /* NULL is a no-op */

/* Zeroes the gradients and the step's loss and row count. */
void dz_trainer_zero_grad(dz_trainer *tr);
/* Forward and backward of n_rows rows (inputs and targets: n_rows x T ids,
 * row-major), adding each row's gradient of its mean loss to the gradient
 * sums. *loss (may be NULL): the mean loss of these rows. DZ_ERR_ARG for an
 * id outside the vocabulary (nothing changed then). */
dz_status dz_trainer_backward(dz_trainer *tr, const int32_t *inputs, const int32_t *targets,
                              int32_t n_rows, double *loss);

typedef struct dz_train_stats {
    double loss;      /* the mean over every token of the step */
    double grad_norm; /* global L2 norm before clipping */
    double lr;        /* lr of this step */
} dz_train_stats;

/* Ends step i (0-based): divides the gradient sums by the rows seen since
 * dz_trainer_zero_grad (the loss becomes the mean over all tokens), calls
 * the reduce hook, clips, and applies AdamW with lr_i to every trainable
 * parameter (bias correction with t = i + 1). A non-finite loss or gradient
 * norm fails with DZ_ERR_FORMAT naming the step, weights untouched. */
dz_status dz_trainer_update(dz_trainer *tr, int64_t step, dz_train_stats *stats);

/* The mean loss of n_rows rows without touching gradients (validation). */
dz_status dz_trainer_eval(dz_trainer *tr, const int32_t *inputs, const int32_t *targets, int32_t n_rows,
                          double *loss);

/* ---- data ---- */

/* A token stream from files: plain UTF-8 text (tokenized with tok) or
 * llm.c token shards. Without doc_sep (NULL or "") a text file is
 * one document, starting with BOS when the vocabulary adds one, and no EOS
 * is added. With doc_sep, every text file is cut at each occurrence of it
 * (the separator itself dropped, empty pieces skipped) and every piece is a
 * document: BOS when the vocabulary adds one, its tokens, then the
 * vocabulary's EOS (a vocabulary without one is refused), so a model learns
 * where documents end. An llm.c token shard has
 * a 256 x int32 header: magic 20240520, version 1, token count; then that
 * many uint16 tokens. Shards are recognised by their magic. Errors name the
 * file: non-UTF-8 text (with the byte offset), a truncated shard, a token
 * outside the vocabulary of n_vocab. */
typedef struct dz_train_data dz_train_data;

dz_status dz_train_data_load(const char *const *paths, int n_paths, const dz_tokenizer *tok, int32_t n_vocab,
                             const char *doc_sep, dz_train_data **out);
/* A stream over tokens the caller gives (copied). */
dz_status dz_train_data_from_tokens(const int32_t *tokens, int64_t n, int32_t n_vocab, dz_train_data **out);
void dz_train_data_free(dz_train_data *d); /* NULL is a no-op */
int64_t dz_train_data_n_tokens(const dz_train_data *d);
/* A fingerprint of the stream (FNV-1a of its tokens), kept in checkpoints. */
uint64_t dz_train_data_hash(const dz_train_data *d);

/* Row r (0-based, counting every row drawn so far) of T tokens: inputs and
 * the next T tokens as targets. shuffle false: the row starts at r*T
 * (wrapping at the end of the stream). shuffle true: the stream's
 * n_tokens / T windows are taken in a fresh seeded permutation per epoch of
 * that many rows (docs/training.md). Caches the permutation of the
 * current epoch in d. */
void dz_train_data_row(dz_train_data *d, int64_t r, int32_t T, bool shuffle, uint64_t seed, int32_t *inputs,
                       int32_t *targets);

/* ---- checkpoints ---- */

/* What a checkpoint holds besides the model and the moments. */
typedef struct dz_train_state {
    int64_t step;       /* steps done */
    int64_t row;        /* rows drawn (the data position) */
    uint64_t seed;      /* the run's seed (shuffle and init) */
    uint64_t data_hash; /* dz_train_data_hash of the stream it trained on */
    int32_t batch, seq, grad_accum;
    float *losses;      /* the loss of each of steps 1..step: given to save (NULL: not kept);
                           from load a malloc'd copy the caller frees (NULL when the
                           checkpoint holds none) */
    /* The optimizer settings the run began with (steps, warmup, schedule, lr,
       betas, eps, weight decay, clip) and its row order, kept so that a resume
       can name what its command line changes; has_opts false: none kept. */
    bool has_opts, shuffle;
    dz_train_opts opts;
} dz_train_state;

/* Writes DIR/checkpoint.gguf (created with DIR if needed) atomically: a
 * temporary file renamed into place, so a killed run leaves the previous
 * checkpoint whole. Holds config, weights, both moments, state and the
 * tokenizer keys. */
dz_status dz_train_checkpoint_save(const dz_train_model *m, const dz_train_state *s, const char *dir);
/* Reads DIR/checkpoint.gguf: a new model (weights and moments) and its
 * state. DZ_ERR_FORMAT for another checkpoint version or a malformed file. */
dz_status dz_train_checkpoint_load(const char *dir, dz_train_model **out, dz_train_state *s);

/* Writes an SVG line chart of losses[0..n), the losses of steps
 * first_step .. first_step + n - 1, to path. */
dz_status dz_train_write_loss_svg(const char *path, const float *losses, int64_t n, int64_t first_step,
                                  const char *title);

#ifdef __cplusplus
}
#endif
#endif /* DIZUO_TRAIN_H */
