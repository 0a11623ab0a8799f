/* dizuo — LoRA: low-rank adapters in llama.cpp's GGUF format, applied at
 * inference, merged into a base, and trained on a frozen (possibly
 * quantized) base.
 *
 * An adapter file: general.type = "adapter", adapter.type = "lora",
 * adapter.lora.alpha (f32), general.architecture of its base, and for each
 * adapted matrix W (ne0 = in, ne1 = out) of the base the tensors
 * "<W's name>.lora_a" (ne0 = in, ne1 = r) and "<W's name>.lora_b" (ne0 = r,
 * ne1 = out). The adapted product is W x + s (alpha / r) B (A x), s the
 * user's scale (alpha 0: s alone, as llama.cpp does). dizuo adapts the
 * layers' projections: attn_q, attn_k, attn_v, attn_output, ffn_gate,
 * ffn_up, ffn_down (llama, qwen2) and attn_qkv, attn_output, ffn_up,
 * ffn_down (gpt2). docs/training.md describes the whole.
 *
 * Nothing here is thread-safe for one object. */
#ifndef DIZUO_LORA_H
#define DIZUO_LORA_H

#include "dizuo/model.h"
#include "dizuo/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- adapter files ---- */

typedef struct dz_lora_adapter dz_lora_adapter;

/* Reads the adapter at path and checks it against base, the GGUF file of
 * the model it adapts: the architecture matches, every tensor is a
 * ".lora_a"/".lora_b" of an existing 2-D base matrix, with its pair, shapes
 * (in, r) and (r, out) for that matrix and one rank r throughout, of a type
 * dizuo converts to F32. Errors name the file and the defect. The adapter's
 * matrices are converted to F32 copies; the caller owns *out. */
dz_status dz_lora_adapter_load(const char *path, const dz_gguf *base, dz_lora_adapter **out);
void dz_lora_adapter_free(dz_lora_adapter *a); /* NULL is a no-op */
int32_t dz_lora_adapter_rank(const dz_lora_adapter *a);
float dz_lora_adapter_alpha(const dz_lora_adapter *a);
int32_t dz_lora_adapter_n_pairs(const dz_lora_adapter *a);
/* Pair i (0 <= i < n_pairs): the base matrix name, its in and out sizes,
 * A (r rows of in floats) and B (out rows of r floats), owned by a. */
const char *dz_lora_adapter_pair(const dz_lora_adapter *a, int32_t i, int64_t *in, int64_t *out, const float **A,
                                 const float **B);
/* The factor of B A in the adapted product for user scale s: s * alpha / r
 * (s when alpha is 0). */
float dz_lora_adapter_factor(const dz_lora_adapter *a, float s);

/* ---- inference ---- */

/* Loads the adapter at path (dz_lora_adapter_load against m's file) and
 * adds its term, with user scale s, to every projection it targets, in the
 * one-sequence and the batched forward passes. One adapter per model: a
 * second call fails with DZ_ERR_ARG. DZ_ERR_UNSUPPORTED for a target that is
 * not a layer projection. On failure m is unchanged. */
dz_status dz_model_apply_lora(dz_model *m, const char *path, float s);

/* ---- merging ---- */

/* Writes out_path: the base file's keys and tensors with every adapted
 * matrix replaced by W + factor(s) B A, computed in F32 from W dequantized
 * and written as out_type (DZ_TYPE_F32 or DZ_TYPE_F16); the other tensors
 * keep their bytes and type. Atomic (temp + rename). */
dz_status dz_lora_merge(const char *base_path, const char *lora_path, float s, dz_type out_type,
                        const char *out_path);

/* ---- training ---- */

typedef struct dz_lora_opts {
    int32_t rank;        /* r >= 1 */
    float alpha;         /* > 0 */
    const char *targets; /* comma-separated kinds ("attn_q,attn_v"); NULL: "attn_q,attn_v" */
} dz_lora_opts;

typedef struct dz_lora_trainer dz_lora_trainer;

/* Opens the base model at base_path on the CPU (its weights stay in their
 * file types: the forward multiplies by them as they are, the backward
 * reaches x through MUL_MAT_BACK_X on them), makes A (normal, std
 * 1/sqrt(in), seeded) and B (zero) for every targeted matrix of every
 * layer, and builds and plans the one-row graph with its backward. o: the
 * trainer's options (seq, steps, lr, schedule, AdamW, clip, threads, the
 * reduce hook; weight decay applies to A and B). Caller owns *out. */
dz_status dz_lora_trainer_create(const char *base_path, const dz_lora_opts *lo, const dz_train_opts *o,
                                 uint64_t seed, dz_lora_trainer **out);
void dz_lora_trainer_free(dz_lora_trainer *tr); /* NULL is a no-op */
/* The base model (its tokenizer and hyper-parameters). */
const dz_model *dz_lora_trainer_base(const dz_lora_trainer *tr);
/* As dz_trainer_zero_grad / _backward / _update / _eval (train.h), over the
 * adapter's parameters only. */
void dz_lora_trainer_zero_grad(dz_lora_trainer *tr);
dz_status dz_lora_trainer_backward(dz_lora_trainer *tr, const int32_t *inputs, const int32_t *targets,
                                   int32_t n_rows, double *loss);
dz_status dz_lora_trainer_update(dz_lora_trainer *tr, int64_t step, dz_train_stats *stats);
dz_status dz_lora_trainer_eval(dz_lora_trainer *tr, const int32_t *inputs, const int32_t *targets,
                               int32_t n_rows, double *loss);
/* The flat adapter parameters (every A then its B, pair after pair, in the
 * order of the base's layers), their gradients and count, owned by tr.
 * Writing weights changes what the next pass computes. */
float *dz_lora_trainer_weights(dz_lora_trainer *tr);
float *dz_lora_trainer_grads(dz_lora_trainer *tr);
int64_t dz_lora_trainer_n_floats(const dz_lora_trainer *tr);
/* Writes the adapter file (F32 A and B, llama.cpp's keys and names). */
dz_status dz_lora_trainer_save(const dz_lora_trainer *tr, const char *path);
/* Checkpoints of a LoRA run: DIR/checkpoint.gguf (DIR created if needed;
 * written to a temporary file renamed into place) holds the adapters, both
 * AdamW moments, the run's state s (train.h: step, data position, seed,
 * data fingerprint, batch, loss history) and what the trainer was made with
 * (rank, alpha, the adapted matrices). Load it into a trainer made with the
 * same base and options: fills the adapters, the moments and *s (s->losses
 * malloc'd, the caller frees); DZ_ERR_ARG when rank, alpha or the adapted
 * matrices differ, DZ_ERR_FORMAT for a file that is not such a checkpoint.
 * The base's weights are not in it: give the same --base. */
dz_status dz_lora_trainer_checkpoint_save(const dz_lora_trainer *tr, const dz_train_state *s, const char *dir);
dz_status dz_lora_trainer_checkpoint_load(dz_lora_trainer *tr, const char *dir, dz_train_state *s);

#ifdef __cplusplus
}
#endif
#endif /* DIZUO_LORA_H */
