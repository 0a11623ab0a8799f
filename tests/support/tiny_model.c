#include "tiny_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/tensor.h"

static const char *const words[] = {"\xe2\x96\x81" "the", "\xe2\x96\x81" "a", "\xe2\x96\x81" "cat", "at", "\xe2\x96\x81"};
enum { N_WORDS = 5, N_VOCAB = 3 + 256 + N_WORDS };

tiny_model_spec tiny_model_default(void) {
    tiny_model_spec s;
    memset(&s, 0, sizeof s);
    s.arch = "llama";
    s.n_embd = 32;
    s.n_layer = 2;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.n_ff = 64;
    s.seed = 42;
    s.tensor_type = DZ_TYPE_F32;
    return s;
}

static uint64_t next(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static dz_status add(dz_gguf_writer *w, const tiny_model_spec *s, uint64_t *rng, const char *name,
                     int64_t ne0, int64_t ne1) {
    if (s->drop_tensor && !strcmp(s->drop_tensor, name)) return DZ_OK;
    if (s->bad_tensor && !strcmp(s->bad_tensor, name)) ne0 += 1;
    int64_t ne[2] = {ne0, ne1};
    int n_dims = ne1 > 1 ? 2 : 1;
    size_t n = (size_t)(ne0 * ne1);
    float *data = malloc(n * sizeof *data);
    if (!data) return DZ_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        data[i] = ((float)(next(rng) % 2001) / 1000.0f - 1.0f) * 0.3f + (ne1 == 1 ? 1.0f : 0.0f);
    dz_status st;
    if (s->typed_tensor && !strcmp(s->typed_tensor, name) && s->tensor_type != DZ_TYPE_F32) {
        size_t row = 0;
        st = dz_row_size(s->tensor_type, ne0, &row);
        void *q = st ? NULL : calloc((size_t)ne1, row);
        if (!st && !q) st = DZ_ERR_NOMEM;
        if (!st) st = dz_gguf_writer_add_tensor(w, name, s->tensor_type, n_dims, ne, q);
        free(q);
    } else {
        st = dz_gguf_writer_add_tensor(w, name, DZ_TYPE_F32, n_dims, ne, data);
    }
    free(data);
    return st;
}

dz_status tiny_model_write(const tiny_model_spec *s, const char *path) {
    dz_gguf_writer *w = NULL;
    dz_status st = dz_gguf_writer_create(&w);
    if (st) return st;
    char key[128];
    const char *a = s->arch;
    dz_gguf_writer_set_str(w, "general.architecture", a);
#define SET_U32(suffix, v)                                   \
    snprintf(key, sizeof key, "%s." suffix, a);              \
    dz_gguf_writer_set_u32(w, key, (uint32_t)(v));
    if (!s->omit_embd_key) { SET_U32("embedding_length", s->n_embd); }
    SET_U32("block_count", s->n_layer);
    SET_U32("attention.head_count", s->n_head);
    SET_U32("attention.head_count_kv", s->n_head_kv);
    SET_U32("feed_forward_length", s->n_ff);
    SET_U32("context_length", 128);
    if (s->rope_dims) { SET_U32("rope.dimension_count", s->rope_dims); }
#undef SET_U32
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", a);
    dz_gguf_writer_set_f32(w, key, 1e-5f);

    /* Vocabulary: <unk> <s> </s>, 256 byte tokens, a few words. */
    const char *tokens[N_VOCAB];
    char bytes[256][8];
    float scores[N_VOCAB];
    int32_t types[N_VOCAB];
    tokens[0] = "<unk>", tokens[1] = "<s>", tokens[2] = "</s>";
    types[0] = 2, types[1] = 3, types[2] = 3;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tokens[3 + b] = bytes[b];
        types[3 + b] = 6;
    }
    for (int i = 0; i < N_WORDS; i++) tokens[259 + i] = words[i], types[259 + i] = 1;
    for (int i = 0; i < N_VOCAB; i++) scores[i] = i < 259 ? 0.0f : -(float)i;
    dz_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    dz_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", tokens, N_VOCAB);
    dz_gguf_writer_set_array(w, "tokenizer.ggml.scores", DZ_GGUF_FLOAT32, scores, N_VOCAB);
    dz_gguf_writer_set_array(w, "tokenizer.ggml.token_type", DZ_GGUF_INT32, types, N_VOCAB);
    dz_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    dz_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    dz_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);

    uint64_t rng = s->seed | 1;
    const int64_t E = s->n_embd, hd = s->n_head > 0 && E / s->n_head > 0 ? E / s->n_head : 1;
    const int64_t KV = hd * s->n_head_kv, F = s->n_ff;
    char name[64];
    st = add(w, s, &rng, "token_embd.weight", E, N_VOCAB + s->embd_rows_delta);
    if (!st) st = add(w, s, &rng, "output_norm.weight", E, 1);
    for (int64_t l = 0; !st && l < s->n_layer && l < 4; l++) {
#define T(suffix, ne0, ne1)                                              \
    snprintf(name, sizeof name, "blk.%lld." suffix, (long long)l);      \
    if (!st) st = add(w, s, &rng, name, ne0, ne1);
        T("attn_norm.weight", E, 1)
        T("attn_q.weight", E, E)
        T("attn_k.weight", E, KV)
        T("attn_v.weight", E, KV)
        if (s->qkv_bias) {
            T("attn_q.bias", E, 1)
            T("attn_k.bias", KV, 1)
            T("attn_v.bias", KV, 1)
        }
        T("attn_output.weight", E, E)
        T("ffn_norm.weight", E, 1)
        T("ffn_gate.weight", E, F)
        T("ffn_up.weight", E, F)
        T("ffn_down.weight", F, E)
#undef T
    }
    if (!st) st = dz_gguf_writer_write_file(w, path);
    dz_gguf_writer_destroy(w);
    return st;
}
