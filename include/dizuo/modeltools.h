/* dizuo — modeltools: tools that make and convert model files and measure
 * the machine they run on.
 *
 *   dz_model_synth     a random-weight llama model of any shape, deterministic
 *                      by seed, with the tokenizer of another GGUF file
 *   dz_model_quantize  F32/F16/BF16 weights to another type, with llama.cpp's
 *                      per-tensor recipes (Q4_K_M, ...) so files are
 *                      interchangeable with llama.cpp's
 *   dz_membw_measure   memory read bandwidth, the ceiling of decode speed
 *
 * Built on the gguf, tokenizer and tensor layers; knows tensor names of the
 * llama family but does not run models. */
#ifndef DIZUO_MODELTOOLS_H
#define DIZUO_MODELTOOLS_H

#include "dizuo/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One tensor written by a tool, reported to a progress callback as soon as
 * its data is ready. Pointers are valid during the call only. */
typedef struct dz_tensor_event {
    int64_t index;           /* 0-based position in the output file */
    int64_t count;           /* tensors in the output file */
    const char *name;
    int32_t n_dims;
    int64_t ne[DZ_MAX_DIMS];
    dz_type from;            /* the source's type (synth: the same as `to`) */
    dz_type to;
    size_t from_bytes, to_bytes;
    const char *note;        /* why `to` is not the recipe's first choice, or NULL */
} dz_tensor_event;

/* Called from the thread that called the tool, once per tensor, in file order. */
typedef void (*dz_tensor_event_fn)(const dz_tensor_event *ev, void *user);

/* ---- synth ---- */

typedef struct dz_synth_params {
    const char *arch;      /* "llama" (NULL: "llama"); the only architecture so far */
    int32_t n_embd;        /* model width; a multiple of n_head */
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;     /* divides n_head; 0: n_head */
    int32_t n_ff;
    int32_t n_ctx;         /* llama.context_length; 0: 2048 */
    uint64_t seed;
    dz_type type;          /* of the matrices: F32, F16 or BF16 (norms are F32) */
    float init_std;        /* standard deviation of matrix entries; 0: 0.02 */
    int32_t n_threads;     /* threads filling tensors (the file does not depend on it); 0: 1 */
} dz_synth_params;

/* Writes a llama model of the given shape to path: every matrix filled with
 * pseudo-random values of mean 0 and standard deviation init_std (an
 * Irwin-Hall sum of four uniforms: bell-shaped, bounded by 3.5 sd, computed
 * with integers only, so the same parameters give a byte-identical file on
 * any machine and with any n_threads), every norm weight 1. The tokenizer (every tokenizer.* KV) is
 * copied from `vocab`, whose token count becomes the vocabulary size; it must
 * load as a dizuo tokenizer. Tensor names and shapes are those dz_model_load
 * binds (token_embd, output_norm, output, blk.N.{attn_norm, attn_q, attn_k,
 * attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}).
 * The whole file is assembled in memory before it is written (about its
 * size; the writer keeps one copy). DZ_ERR_ARG names a bad parameter;
 * DZ_ERR_IO / DZ_ERR_NOMEM as the writer reports them. path is either
 * untouched or complete. progress may be NULL. Thread-safe for distinct
 * outputs. */
dz_status dz_model_synth(const dz_synth_params *p, const dz_gguf *vocab, const char *path,
                         dz_tensor_event_fn progress, void *user);

/* ---- quantize ---- */

/* A target of dz_model_quantize: one type for every matrix, or one of
 * llama.cpp's mixes. Names and ftype values are llama.cpp's (llama-quantize
 * accepts the same names; general.file_type gets `ftype`). */
typedef struct dz_ftype_info {
    const char *name;      /* "Q4_K_M" */
    int32_t ftype;         /* llama.cpp's LLAMA_FTYPE_* value */
    dz_type base;          /* the type of most matrices */
    const char *summary;   /* one line for help texts */
} dz_ftype_info;

/* The targets dizuo knows, in a fixed order; NULL out of range. Static storage. */
int dz_ftype_count(void);
const dz_ftype_info *dz_ftype_at(int i);
/* By name, case-insensitive; "Q3_K", "Q4_K", "Q5_K" mean the _M mixes (as in
 * llama-quantize). NULL if unknown. */
const dz_ftype_info *dz_ftype_find(const char *name);
/* Does this build have a quantizer for the target's base type? (Tensors the
 * recipe sends to other types are checked when planned.) */
bool dz_ftype_available(const dz_ftype_info *f);

typedef struct dz_quantize_params {
    const char *ftype;       /* a dz_ftype_find name (required) */
    bool pure;               /* every matrix in the base type: no recipe */
    bool allow_requantize;   /* accept quantized sources (dequantized first) */
    int32_t n_threads;       /* 0: 1 */
} dz_quantize_params;

/* Which type each tensor of `in` gets, in file order (types[i] for tensor i;
 * the caller provides dz_gguf_n_tensors(in) entries). The rules are
 * llama.cpp's llama_tensor_get_type (build 4748) for the llama family:
 *  - quantized: tensors whose name ends in "weight", of 2+ dimensions, not
 *    "*_norm.weight"; everything else keeps its type;
 *  - unless pure, and for quantized targets only: output.weight (or
 *    token_embd.weight without an output) gets Q6_K (Q8_0 stays Q8_0);
 *    attn_v, ffn_down, attn_output, attn_qkv get more bits in the _M/_S/_L
 *    mixes by layer (use_more_bits: the first and last eighth and every
 *    third layer between);
 *  - a row length that is not a multiple of the chosen type's block falls
 *    back as llama.cpp does (Q2_K/Q3_K -> IQ4_NL, Q4_K -> Q5_0, Q5_K -> Q5_1,
 *    Q6_K -> Q8_0), then to F16; where llama.cpp gives up (Q4_0..Q8_0,
 *    IQ4_NL, or a pure file) dizuo also falls back to F16.
 * notes (may be NULL) receives, per tensor, NULL or a static-storage reason
 * for a fallback. Fails (DZ_ERR_ARG) on an unknown ftype, (DZ_ERR_UNSUPPORTED)
 * naming the tensor when a type has no quantizer here or a quantized source
 * would need requantizing without allow_requantize. */
dz_status dz_quantize_plan(const dz_gguf *in, const dz_quantize_params *p, dz_type *types,
                           const char **notes);

typedef struct dz_quantize_stats {
    size_t bytes_in, bytes_out;  /* tensor data */
    int32_t n_converted;         /* tensors whose type changed */
    int32_t n_fallback;          /* of them, those that fell back */
} dz_quantize_stats;

/* Reads in_path, converts its tensors as dz_quantize_plan says and writes
 * out_path: every KV copied, general.file_type set to the target's ftype and
 * general.quantization_version to 2; tensors in the input's order. Source
 * rows with NaN or infinity are refused (DZ_ERR_FORMAT naming the tensor and
 * row). Memory: the output file's size plus one tensor; the input is mapped.
 * stats may be NULL. out_path is either untouched or complete. */
dz_status dz_model_quantize(const char *in_path, const char *out_path, const dz_quantize_params *p,
                            dz_tensor_event_fn progress, void *user, dz_quantize_stats *stats);

/* ---- machine ---- */

/* Memory read bandwidth in GB/s (1e9 bytes per second): n_threads threads
 * each read their share of a `bytes` buffer (use much more than the caches,
 * e.g. 1 GiB); the fastest of `passes` passes counts. The buffer is written
 * once first so every page is really mapped. DZ_ERR_ARG on n_threads < 1,
 * passes < 1 or bytes < 1 MiB; DZ_ERR_NOMEM. */
dz_status dz_membw_measure(int32_t n_threads, size_t bytes, int32_t passes, double *gb_per_s);

/* Physical cores of this machine (hyper-thread siblings counted once), from
 * Linux's sysfs; the online CPU count where that is unreadable. >= 1. */
int32_t dz_cpu_physical_cores(void);

#ifdef __cplusplus
}
#endif
#endif /* DIZUO_MODELTOOLS_H */
