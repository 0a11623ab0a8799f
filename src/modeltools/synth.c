/* Random-weight llama models of any shape, for benchmarks and tests.
 *
 * Determinism: every row of every tensor draws from its own generator,
 * seeded from the seed, the tensor's index and the row; values are computed
 * with integer arithmetic and one correctly rounded float multiply (no
 * libm), so the same parameters give the same bytes on every machine and
 * compiler, whatever the number of threads. */
#include "dizuo/modeltools.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/tokenizer.h"

/* Limits as dz_model_load applies them (src/model/hparams.c), so a file
 * written here is one the loader accepts. */
enum {
    MAX_EMBD = 1 << 17,
    MAX_LAYERS = 1 << 12,
    MAX_HEADS = 1 << 12,
    MAX_FF = 1 << 20,
    MAX_CTX = 1 << 24,
};

/* ---- the generator ---- */

/* splitmix64 (Steele, Lea, Flood 2014): a 64-bit counter through a mixing
 * function; passes BigCrush and needs one add and three multiplies. */
typedef struct synth_rng {
    uint64_t state;
} synth_rng;

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rng_next(synth_rng *r) {
    r->state += 0x9e3779b97f4a7c15ull;
    return mix64(r->state);
}

/* The stream of row `row` of tensor `index` under `seed`: every row has its
 * own, so rows can be filled in any order by any number of threads; streams
 * start far apart in splitmix64's 2^64 cycle. */
static synth_rng rng_for_row(uint64_t seed, int64_t index, int64_t row) {
    synth_rng r = {mix64(seed ^ 0x632be59bd9b4e019ull) ^ mix64(((uint64_t)index << 40) + (uint64_t)row + 1)};
    return r;
}

/* Sum of four uniform 16-bit integers, centred: mean 0, variance
 * 4 * (65536^2 - 1) / 12, bell-shaped (Irwin-Hall) and bounded by ~3.46 sd. */
static int32_t rng_bell(synth_rng *r) {
    uint64_t u = rng_next(r);
    int32_t s = (int32_t)(u & 0xffff) + (int32_t)((u >> 16) & 0xffff) + (int32_t)((u >> 32) & 0xffff) +
                (int32_t)(u >> 48);
    return s - 2 * 65535; /* the sum's mean is 2 * 65535 */
}

/* The standard deviation of rng_bell: sqrt(4 * (65536^2 - 1) / 12). */
static const double BELL_SD = 37837.227237206;

/* ---- tensors ---- */

/* Fills a row of n elements of `type` (F32, F16, BF16): matrix entries
 * (scale = std / BELL_SD) or, with scale 0, ones. */
static void fill_row(synth_rng *r, dz_type type, float scale, void *dst, int64_t n) {
    if (scale == 0.0f) {
        for (int64_t i = 0; i < n; i++) ((float *)dst)[i] = 1.0f; /* norms: always F32 */
    } else if (type == DZ_TYPE_F16) {
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = dz_fp32_to_fp16((float)rng_bell(r) * scale);
    } else if (type == DZ_TYPE_BF16) {
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = dz_fp32_to_bf16((float)rng_bell(r) * scale);
    } else {
        for (int64_t i = 0; i < n; i++) ((float *)dst)[i] = (float)rng_bell(r) * scale;
    }
}

/* One tensor's rows, shared among threads. */
typedef struct fill_job {
    uint64_t seed;
    int64_t index, ne0, n_rows;
    dz_type type;
    float scale;
    size_t row_bytes;
    uint8_t *data;
    int n_threads, ith;
} fill_job;

static void *fill_rows(void *arg) {
    const fill_job *j = arg;
    for (int64_t r = j->n_rows * j->ith / j->n_threads; r < j->n_rows * (j->ith + 1) / j->n_threads; r++) {
        synth_rng rng = rng_for_row(j->seed, j->index, r);
        fill_row(&rng, j->type, j->scale, j->data + (size_t)r * j->row_bytes, j->ne0);
    }
    return NULL;
}

/* Fills the tensor with up to n_threads threads (fewer if one cannot start:
 * the calling thread then fills the rows of those that did not). */
static void fill_tensor(const fill_job *base, int n_threads) {
    enum { MAX_FILL_THREADS = 64 };
    fill_job jobs[MAX_FILL_THREADS];
    pthread_t threads[MAX_FILL_THREADS];
    bool started[MAX_FILL_THREADS] = {false};
    if (n_threads > MAX_FILL_THREADS) n_threads = MAX_FILL_THREADS;
    if (n_threads > base->n_rows) n_threads = (int)base->n_rows;
    if (n_threads < 1) n_threads = 1;
    for (int i = 0; i < n_threads; i++) {
        jobs[i] = *base;
        jobs[i].n_threads = n_threads;
        jobs[i].ith = i;
        if (i > 0) started[i] = pthread_create(&threads[i], NULL, fill_rows, &jobs[i]) == 0;
    }
    fill_rows(&jobs[0]);
    for (int i = 1; i < n_threads; i++) {
        if (started[i]) pthread_join(threads[i], NULL);
        else fill_rows(&jobs[i]);
    }
}

typedef struct synth_tensor {
    char name[DZ_MAX_NAME];
    int32_t n_dims;
    int64_t ne[2];
    bool is_norm;
} synth_tensor;

/* The tensors of a llama model: the global ones, then each layer's in the
 * order a layer computes them. */
static int64_t list_tensors(const dz_synth_params *p, int64_t n_vocab, synth_tensor *out) {
    const int64_t E = p->n_embd, F = p->n_ff, hd = p->n_embd / p->n_head;
    const int64_t Q = p->n_head * hd, KV = p->n_head_kv * hd;
    int64_t n = 0;
#define ADD(norm, ne0, ne1, ...)                                                               \
    do {                                                                                       \
        synth_tensor *t = &out[n++];                                                           \
        snprintf(t->name, sizeof t->name, __VA_ARGS__);                                       \
        t->is_norm = (norm);                                                                   \
        t->n_dims = (norm) ? 1 : 2;                                                            \
        t->ne[0] = (ne0);                                                                      \
        t->ne[1] = (ne1);                                                                      \
    } while (0)
    ADD(false, E, n_vocab, "token_embd.weight");
    ADD(true, E, 1, "output_norm.weight");
    ADD(false, E, n_vocab, "output.weight");
    for (int32_t i = 0; i < p->n_layer; i++) {
        ADD(true, E, 1, "blk.%d.attn_norm.weight", i);
        ADD(false, E, Q, "blk.%d.attn_q.weight", i);
        ADD(false, E, KV, "blk.%d.attn_k.weight", i);
        ADD(false, E, KV, "blk.%d.attn_v.weight", i);
        ADD(false, Q, E, "blk.%d.attn_output.weight", i);
        ADD(true, E, 1, "blk.%d.ffn_norm.weight", i);
        ADD(false, E, F, "blk.%d.ffn_gate.weight", i);
        ADD(false, E, F, "blk.%d.ffn_up.weight", i);
        ADD(false, F, E, "blk.%d.ffn_down.weight", i);
    }
#undef ADD
    return n;
}

enum { TENSORS_PER_LAYER = 9, GLOBAL_TENSORS = 3 };

static dz_status check_params(const dz_synth_params *p) {
    if (p->arch && strcmp(p->arch, "llama"))
        return dz_fail(DZ_ERR_ARG, "synth: architecture '%s' (only llama so far)", p->arch);
#define RANGE(field, lo, hi)                                                                   \
    if (p->field < (lo) || p->field > (hi))                                                    \
        return dz_fail(DZ_ERR_ARG, "synth: " #field " = %d is outside %d..%d", (int)p->field, \
                       (int)(lo), (int)(hi));
    RANGE(n_embd, 1, MAX_EMBD);
    RANGE(n_layer, 1, MAX_LAYERS);
    RANGE(n_head, 1, MAX_HEADS);
    RANGE(n_head_kv, 0, MAX_HEADS);
    RANGE(n_ff, 1, MAX_FF);
    RANGE(n_ctx, 0, MAX_CTX);
#undef RANGE
    int32_t n_head_kv = p->n_head_kv ? p->n_head_kv : p->n_head;
    if (p->n_embd % p->n_head)
        return dz_fail(DZ_ERR_ARG, "synth: dim %d is not a multiple of heads %d", p->n_embd, p->n_head);
    if ((p->n_embd / p->n_head) % 2)
        return dz_fail(DZ_ERR_ARG, "synth: head dimension %d (dim / heads) is odd; rope needs pairs",
                       p->n_embd / p->n_head);
    if (p->n_head % n_head_kv)
        return dz_fail(DZ_ERR_ARG, "synth: heads %d is not a multiple of kv-heads %d", p->n_head,
                       n_head_kv);
    if (p->type != DZ_TYPE_F32 && p->type != DZ_TYPE_F16 && p->type != DZ_TYPE_BF16)
        return dz_fail(DZ_ERR_ARG, "synth: type %s (F32, F16 or BF16; quantize afterwards)",
                       dz_type_name(p->type));
    if (!(p->init_std >= 0.0f && p->init_std <= 1e3f))
        return dz_fail(DZ_ERR_ARG, "synth: init_std %g is outside 0..1000", (double)p->init_std);
    return DZ_OK;
}

/* llama.cpp's general.file_type for an all-float file. */
static uint32_t float_ftype(dz_type t) { return t == DZ_TYPE_F32 ? 0 : t == DZ_TYPE_F16 ? 1 : 32; }

static dz_status set_metadata(dz_gguf_writer *w, const dz_synth_params *p, int32_t n_vocab,
                              const dz_gguf *vocab) {
    char name[96];
    snprintf(name, sizeof name, "synth-llama-%dx%d", p->n_embd, p->n_layer);
    dz_status st;
    if ((st = dz_gguf_writer_set_str(w, "general.architecture", "llama")) ||
        (st = dz_gguf_writer_set_str(w, "general.name", name)) ||
        (st = dz_gguf_writer_set_u32(w, "general.file_type", float_ftype(p->type))) ||
        (st = dz_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)n_vocab)) ||
        (st = dz_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)p->n_ctx)) ||
        (st = dz_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)p->n_embd)) ||
        (st = dz_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)p->n_layer)) ||
        (st = dz_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)p->n_ff)) ||
        (st = dz_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)p->n_head)) ||
        (st = dz_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)p->n_head_kv)) ||
        (st = dz_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)(p->n_embd / p->n_head))) ||
        (st = dz_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f)) ||
        (st = dz_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f)))
        return st;
    for (int64_t i = 0; i < dz_gguf_n_kv(vocab); i++) {
        const char *key = dz_gguf_kv_key(vocab, i);
        if (strncmp(key, "tokenizer.", 10)) continue;
        if ((st = dz_gguf_writer_copy_kv(w, vocab, i))) return st;
    }
    return DZ_OK;
}

static dz_status add_tensors(dz_gguf_writer *w, const dz_synth_params *p, const synth_tensor *list,
                             int64_t n, dz_tensor_event_fn progress, void *user) {
    const float std = p->init_std != 0.0f ? p->init_std : 0.02f;
    const float scale = (float)(std / BELL_SD);
    void *data = NULL;
    size_t cap = 0;
    dz_status st = DZ_OK;
    for (int64_t i = 0; i < n && !st; i++) {
        const synth_tensor *t = &list[i];
        dz_type type = t->is_norm ? DZ_TYPE_F32 : p->type;
        size_t row, size;
        if ((st = dz_row_size(type, t->ne[0], &row))) break;
        if (dz_mul_overflows(row, (size_t)t->ne[1], &size)) {
            st = dz_fail(DZ_ERR_ARG, "synth: tensor '%s' is too large", t->name);
            break;
        }
        if (size > cap) {
            free(data);
            cap = size;
            if (!(data = malloc(cap))) {
                st = dz_fail(DZ_ERR_NOMEM, "synth: out of memory for tensor '%s' (%zu bytes)", t->name, size);
                break;
            }
        }
        fill_job job = {.seed = p->seed, .index = i, .ne0 = t->ne[0], .n_rows = t->ne[1], .type = type,
                        .scale = t->is_norm ? 0.0f : scale, .row_bytes = row, .data = data};
        fill_tensor(&job, p->n_threads);
        if ((st = dz_gguf_writer_add_tensor(w, t->name, type, t->n_dims, t->ne, data))) break;
        if (progress) {
            dz_tensor_event ev = {.index = i, .count = n, .name = t->name, .n_dims = t->n_dims,
                                  .ne = {t->ne[0], t->n_dims > 1 ? t->ne[1] : 1, 1, 1},
                                  .from = type, .to = type, .from_bytes = size, .to_bytes = size};
            progress(&ev, user);
        }
    }
    free(data);
    return st;
}

dz_status dz_model_synth(const dz_synth_params *params, const dz_gguf *vocab, const char *path,
                         dz_tensor_event_fn progress, void *user) {
    if (!params || !vocab || !path) return dz_fail(DZ_ERR_ARG, "synth: NULL argument");
    dz_synth_params p = *params;
    dz_status st = check_params(&p);
    if (st) return st;
    if (!p.n_head_kv) p.n_head_kv = p.n_head;
    if (!p.n_ctx) p.n_ctx = 2048;

    dz_tokenizer *tok = NULL;
    if ((st = dz_tokenizer_load(vocab, &tok)))
        return dz_error_prefix(st, "synth: the vocabulary file's tokenizer: ");
    int32_t n_vocab = dz_tokenizer_n_vocab(tok);
    dz_tokenizer_free(tok);

    int64_t n = GLOBAL_TENSORS + (int64_t)p.n_layer * TENSORS_PER_LAYER;
    synth_tensor *list = calloc((size_t)n, sizeof *list);
    dz_gguf_writer *w = NULL;
    if (!list) return dz_fail(DZ_ERR_NOMEM, "synth: out of memory");
    list_tensors(&p, n_vocab, list);
    if (!(st = dz_gguf_writer_create(&w)) && !(st = set_metadata(w, &p, n_vocab, vocab)) &&
        !(st = add_tensors(w, &p, list, n, progress, user)))
        st = dz_gguf_writer_write_file(w, path);
    dz_gguf_writer_destroy(w);
    free(list);
    return st;
}
