/* GPT-2 inference (architecture "gpt2", llama.cpp's tensor names): a small
 * GPT-2 written here with the GGUF writer runs through dz_model_forward and
 * must match a plain, sequential, double-precision GPT-2 written below from
 * the textbook definitions (LayerNorm with bias, learned positions, fused
 * QKV with bias, causal attention, tanh GELU, tied output); the batched
 * paged path must agree with the one-sequence path; positions beyond the
 * learned ones, missing tensors, wrong shapes and bad keys are refused with
 * messages naming the defect; greedy `dizuo run` gives the naive model's
 * text. When tests/data/train/gpt2-tiny.gguf (PyTorch's logits, written by
 * tools/train_ref.py) exists, its logits must be matched too. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/model.h"
#include "dizuo/tensor.h"
#include "dztest.h"

enum { E = 32, L = 2, H = 4, F = 128, V = 64, CTX = 16 };

static const double TOL_ABS = 1e-4, TOL_REL = 1e-4; /* |a - b| <= TOL_ABS + TOL_REL |b| */

/* ---- writing a GPT-2 file ---- */

typedef struct spec {
    const char *drop_tensor; /* leave this tensor out */
    const char *bad_tensor;  /* this tensor's last dimension gets + 1 */
    const char *drop_key;    /* leave this key out */
    int64_t n_head_kv;       /* 0: key absent */
    int64_t pos_rows;        /* rows of position_embd; 0: CTX */
    bool untied;             /* write output.weight */
    bool q8_qkv;             /* attn_qkv.weight as Q8_0 ... */
    bool q8_rounded;         /* ... or as F32 holding the Q8_0 values (the same model for the naive one) */
} spec;

static uint64_t next_rand(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Uniform in [-1, 1]. */
static float uniform(uint64_t *rng) { return (float)(next_rand(rng) % 20001) / 10000.0f - 1.0f; }

typedef enum { MATRIX, NORM, BIAS } kind;

static dz_status add_tensor(dz_gguf_writer *w, const spec *s, uint64_t *rng, kind k, int64_t ne0, int64_t ne1,
                            const char *name) {
    if (s->drop_tensor && !strcmp(s->drop_tensor, name)) return DZ_OK;
    if (s->bad_tensor && !strcmp(s->bad_tensor, name)) {
        if (k == MATRIX) ne1++;
        else ne0++;
    }
    const size_t n = (size_t)(ne0 * ne1);
    float *data = malloc(n * sizeof *data);
    if (!data) return DZ_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        data[i] = k == MATRIX ? 0.25f * uniform(rng) : k == NORM ? 1.0f + 0.2f * uniform(rng) : 0.1f * uniform(rng);
    const int64_t ne[2] = {ne0, ne1};
    dz_type type = DZ_TYPE_F32;
    const void *bytes = data;
    void *q = NULL;
    dz_status st = DZ_OK;
    if ((s->q8_qkv || s->q8_rounded) && strstr(name, "attn_qkv.weight")) { /* split at block-row offsets */
        size_t row = 0;
        st = dz_row_size(DZ_TYPE_Q8_0, ne0, &row);
        if (!st && !(q = malloc(row * (size_t)ne1))) st = DZ_ERR_NOMEM;
        for (int64_t r = 0; !st && r < ne1; r++)
            st = dz_quantize_row(DZ_TYPE_Q8_0, data + r * ne0, (char *)q + (size_t)r * row, ne0);
        for (int64_t r = 0; !st && s->q8_rounded && r < ne1; r++)
            st = dz_dequantize_row(DZ_TYPE_Q8_0, (char *)q + (size_t)r * row, data + r * ne0, ne0);
        if (s->q8_qkv) type = DZ_TYPE_Q8_0, bytes = q;
    }
    if (!st) st = dz_gguf_writer_add_tensor(w, name, type, k == MATRIX ? 2 : 1, ne, bytes);
    free(q);
    free(data);
    return st;
}

/* A byte-level BPE vocabulary of 64 single characters (no merges): "Ġ"
 * (space), a-z, A-Z, 0-9 and "."; "." ends a text. */
static dz_status add_vocab(dz_gguf_writer *w) {
    static char chars[V][4];
    const char *tokens[V];
    int32_t types[V];
    int n = 0;
    memcpy(chars[n++], "\xc4\xa0", 3);
    for (char c = 'a'; c <= 'z'; c++) chars[n++][0] = c;
    for (char c = 'A'; c <= 'Z'; c++) chars[n++][0] = c;
    for (char c = '0'; c <= '9'; c++) chars[n++][0] = c;
    chars[n++][0] = '.';
    for (int i = 0; i < V; i++) tokens[i] = chars[i], types[i] = 1;
    dz_status st;
    if ((st = dz_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2")) ||
        (st = dz_gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt-2")) ||
        (st = dz_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", tokens, V)) ||
        (st = dz_gguf_writer_set_array(w, "tokenizer.ggml.token_type", DZ_GGUF_INT32, types, V)) ||
        (st = dz_gguf_writer_set_str_array(w, "tokenizer.ggml.merges", NULL, 0)) ||
        (st = dz_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", V - 1)) ||
        (st = dz_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", V - 1)) ||
        (st = dz_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false)))
        return st;
    return DZ_OK;
}

static dz_status set_key(dz_gguf_writer *w, const spec *s, const char *key, uint32_t v) {
    if (s->drop_key && !strcmp(s->drop_key, key)) return DZ_OK;
    return dz_gguf_writer_set_u32(w, key, v);
}

static dz_status write_gpt2(const spec *s, const char *path) {
    dz_gguf_writer *w = NULL;
    dz_status st = dz_gguf_writer_create(&w);
    if (st) return st;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    char name[64];
    st = dz_gguf_writer_set_str(w, "general.architecture", "gpt2");
    if (!st) st = set_key(w, s, "gpt2.context_length", CTX);
    if (!st) st = set_key(w, s, "gpt2.embedding_length", E);
    if (!st) st = set_key(w, s, "gpt2.feed_forward_length", F);
    if (!st) st = set_key(w, s, "gpt2.block_count", L);
    if (!st) st = set_key(w, s, "gpt2.attention.head_count", H);
    if (!st && s->n_head_kv) st = set_key(w, s, "gpt2.attention.head_count_kv", (uint32_t)s->n_head_kv);
    if (!st) st = dz_gguf_writer_set_f32(w, "gpt2.attention.layer_norm_epsilon", 1e-5f);
    if (!st) st = add_vocab(w);
    if (!st) st = add_tensor(w, s, &rng, MATRIX, E, V, "token_embd.weight");
    if (!st) st = add_tensor(w, s, &rng, MATRIX, E, s->pos_rows ? s->pos_rows : CTX, "position_embd.weight");
#define T(k, ne0, ne1, suffix)                                   \
    snprintf(name, sizeof name, "blk.%d." suffix, l);           \
    if (!st) st = add_tensor(w, s, &rng, k, ne0, ne1, name);
    for (int l = 0; l < L; l++) {
        T(NORM, E, 1, "attn_norm.weight")
        T(BIAS, E, 1, "attn_norm.bias")
        T(MATRIX, E, 3 * E, "attn_qkv.weight")
        T(BIAS, 3 * E, 1, "attn_qkv.bias")
        T(MATRIX, E, E, "attn_output.weight")
        T(BIAS, E, 1, "attn_output.bias")
        T(NORM, E, 1, "ffn_norm.weight")
        T(BIAS, E, 1, "ffn_norm.bias")
        T(MATRIX, E, F, "ffn_up.weight")
        T(BIAS, F, 1, "ffn_up.bias")
        T(MATRIX, F, E, "ffn_down.weight")
        T(BIAS, E, 1, "ffn_down.bias")
    }
#undef T
    if (!st) st = add_tensor(w, s, &rng, NORM, E, 1, "output_norm.weight");
    if (!st) st = add_tensor(w, s, &rng, BIAS, E, 1, "output_norm.bias");
    if (!st && s->untied) st = add_tensor(w, s, &rng, MATRIX, E, V, "output.weight");
    if (!st) st = dz_gguf_writer_write_file(w, path);
    dz_gguf_writer_destroy(w);
    return st;
}

/* ---- the naive GPT-2, in double precision ---- */

typedef struct naive {
    const dz_gguf *g;
    int n_embd, n_layer, n_head, n_ff, n_vocab;
    double eps;
} naive;

static const float *W(const naive *n, const char *fmt, int l) {
    char name[64];
    snprintf(name, sizeof name, fmt, l);
    const dz_gguf_tensor *t = dz_gguf_find_tensor(n->g, name);
    return t && t->type == DZ_TYPE_F32 ? (const float *)t->data : NULL;
}

/* out[r] = sum_c w[r*cols + c] x[c] + b[r] */
static void matvec(double *out, const float *w, const float *b, const double *x, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        double s = b ? b[r] : 0.0;
        for (int c = 0; c < cols; c++) s += (double)w[(size_t)r * (size_t)cols + (size_t)c] * x[c];
        out[r] = s;
    }
}

/* (x - mean) / sqrt(biased variance + eps) * w + b */
static void layernorm(double *out, const double *x, const float *w, const float *b, int n, double eps) {
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= n;
    const double inv = 1.0 / sqrt(var + eps);
    for (int i = 0; i < n; i++) out[i] = (x[i] - mean) * inv * w[i] + b[i];
}

static double gelu(double x) {
    const double pi = 3.14159265358979323846;
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / pi) * (x + 0.044715 * x * x * x)));
}

/* Logits (T x n_vocab) of every position of tokens[0..T). Every layer runs
 * over the whole sequence: x is (T, E). */
static void naive_forward(const naive *n, const int32_t *tokens, int T, double *logits) {
    const int E_ = n->n_embd, hd = E_ / n->n_head;
    double *x = calloc((size_t)T * E_, sizeof *x), *qkv = calloc((size_t)T * 3 * E_, sizeof *qkv);
    double *a = calloc(E_, sizeof *a), *att = calloc(E_, sizeof *att), *o = calloc(E_, sizeof *o);
    double *u = calloc(n->n_ff, sizeof *u), *sc = calloc(T, sizeof *sc);
    const float *tok = W(n, "token_embd.weight", 0), *pos = W(n, "position_embd.weight", 0);
    const float *out_w = W(n, "output.weight", 0);
    if (!out_w) out_w = tok;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < E_; i++) x[t * E_ + i] = (double)tok[tokens[t] * E_ + i] + pos[t * E_ + i];
    for (int l = 0; l < n->n_layer; l++) {
        for (int t = 0; t < T; t++) {
            layernorm(a, x + t * E_, W(n, "blk.%d.attn_norm.weight", l), W(n, "blk.%d.attn_norm.bias", l), E_,
                      n->eps);
            matvec(qkv + (size_t)t * 3 * E_, W(n, "blk.%d.attn_qkv.weight", l), W(n, "blk.%d.attn_qkv.bias", l),
                   a, 3 * E_, E_);
        }
        for (int t = 0; t < T; t++) {
            const double *q = qkv + (size_t)t * 3 * E_;
            for (int h = 0; h < n->n_head; h++) {
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) {
                    const double *k = qkv + (size_t)j * 3 * E_ + E_ + h * hd;
                    double s = 0;
                    for (int d = 0; d < hd; d++) s += q[h * hd + d] * k[d];
                    sc[j] = s / sqrt((double)hd);
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int j = 0; j <= t; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (int d = 0; d < hd; d++) {
                    double s = 0;
                    for (int j = 0; j <= t; j++) s += sc[j] / sum * qkv[(size_t)j * 3 * E_ + 2 * E_ + h * hd + d];
                    att[h * hd + d] = s;
                }
            }
            matvec(o, W(n, "blk.%d.attn_output.weight", l), W(n, "blk.%d.attn_output.bias", l), att, E_, E_);
            for (int i = 0; i < E_; i++) x[t * E_ + i] += o[i];
            layernorm(a, x + t * E_, W(n, "blk.%d.ffn_norm.weight", l), W(n, "blk.%d.ffn_norm.bias", l), E_,
                      n->eps);
            matvec(u, W(n, "blk.%d.ffn_up.weight", l), W(n, "blk.%d.ffn_up.bias", l), a, n->n_ff, E_);
            for (int i = 0; i < n->n_ff; i++) u[i] = gelu(u[i]);
            matvec(o, W(n, "blk.%d.ffn_down.weight", l), W(n, "blk.%d.ffn_down.bias", l), u, E_, n->n_ff);
            for (int i = 0; i < E_; i++) x[t * E_ + i] += o[i];
        }
    }
    for (int t = 0; t < T; t++) {
        layernorm(a, x + t * E_, W(n, "output_norm.weight", 0), W(n, "output_norm.bias", 0), E_, n->eps);
        matvec(logits + (size_t)t * n->n_vocab, out_w, NULL, a, n->n_vocab, E_);
    }
    free(x), free(qkv), free(a), free(att), free(o), free(u), free(sc);
}

static naive naive_of(const dz_gguf *g) {
    naive n = {.g = g, .eps = 1e-5};
    int64_t v = 0;
    dz_gguf_get_int(g, "gpt2.embedding_length", &v, NULL), n.n_embd = (int)v;
    dz_gguf_get_int(g, "gpt2.block_count", &v, NULL), n.n_layer = (int)v;
    dz_gguf_get_int(g, "gpt2.attention.head_count", &v, NULL), n.n_head = (int)v;
    dz_gguf_get_int(g, "gpt2.feed_forward_length", &v, NULL), n.n_ff = (int)v;
    const dz_gguf_tensor *t = dz_gguf_find_tensor(g, "token_embd.weight");
    n.n_vocab = t ? (int)t->ne[1] : 0;
    double eps = 0;
    bool found = false;
    if (dz_gguf_get_float(g, "gpt2.attention.layer_norm_epsilon", &eps, &found) == DZ_OK && found) n.eps = eps;
    return n;
}

/* Worst |got - want| over n values, and whether all are within tolerance. */
static bool close_to(const float *got, const double *want, size_t n, double *worst) {
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - want[i]);
        if (d > *worst) *worst = d;
        if (!(d <= TOL_ABS + TOL_REL * fabs(want[i]))) ok = false;
    }
    return ok;
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static const int32_t seq16[CTX] = {8, 5, 12, 12, 15, 0, 23, 15, 18, 12, 4, 63, 34, 1, 2, 40};

/* The whole context at once, then in pieces (a prompt, then one token at a
 * time up to the last learned position), against the naive model. */
static void test_forward(const char *path, const char *device, const naive *nv, const double *want) {
    dz_model *m = NULL;
    DZT_OK(dz_model_load(path, &(dz_model_options){.device = device, .n_threads = 2}, &m));
    if (!m) return;
    const dz_model_hparams *hp = dz_model_hparams_get(m);
    DZT_EQ_STR(hp->arch, "gpt2");
    DZT_EQ_INT(hp->n_head_kv, H);
    DZT_EQ_INT(hp->n_ctx_train, CTX);
    DZT_EQ_INT(hp->n_vocab, nv->n_vocab);
    DZT_EQ_INT(hp->tied_output, dz_gguf_find_tensor(nv->g, "output.weight") == NULL);
    const int32_t nV = hp->n_vocab;
    float *got = malloc((size_t)CTX * (size_t)nV * sizeof *got);
    dz_kv_cache *kv = NULL;
    DZT_OK(dz_kv_cache_create(m, CTX, &kv));
    if (!got || !kv) return;
    double worst = 0;
    DZT_OK(dz_model_forward(m, kv, seq16, CTX, 0, got, true));
    DZT_CHECK(close_to(got, want, (size_t)CTX * (size_t)nV, &worst), "%s: all logits differ by up to %g", device,
              worst);
    printf("%s: %d positions at once: worst |difference| from the double-precision model %.3g\n", device, CTX,
           worst);
    worst = 0;
    DZT_OK(dz_model_forward(m, kv, seq16, 5, 0, got, false));
    bool ok = close_to(got, want + 4 * (size_t)nV, (size_t)nV, &worst);
    for (int32_t p = 5; p < CTX; p++) {
        DZT_OK(dz_model_forward(m, kv, &seq16[p], 1, p, got, false));
        ok = close_to(got, want + (size_t)p * (size_t)nV, (size_t)nV, &worst) && ok;
    }
    DZT_CHECK(ok, "%s: incremental logits differ by up to %g", device, worst);
    printf("%s: prompt of 5, then one token at a time: worst |difference| %.3g\n", device, worst);
    /* learned positions end at CTX */
    dz_kv_cache *big = NULL;
    DZT_FAILS(dz_kv_cache_create(m, CTX + 1, &big), DZ_ERR_ARG);
    DZT_CHECK(strstr(dz_last_error(), "learned positions") != NULL, "message: %s", dz_last_error());
    DZT_FAILS(dz_model_forward(m, kv, seq16, 2, CTX - 1, got, false), DZ_ERR_ARG);
    DZT_CHECK(strstr(dz_last_error(), "gpt2.context_length") != NULL, "message: %s", dz_last_error());
    dz_kv_cache_free(kv);
    free(got);
    dz_model_free(m);
}

/* A model whose attn_qkv.weight is Q8_0 against the naive model of the same
 * weight values in F32: the matmul quantizes activations to 8 bits, so the
 * logits agree to about 1e-2 (a misplaced third would be off by the
 * logits' whole scale) and the greedy tokens exactly. */
static void test_quantized(const char *path, const double *want) {
    dz_model *m = NULL;
    DZT_OK(dz_model_load(path, &(dz_model_options){.device = "cpu-ref"}, &m));
    if (!m) return;
    float *got = malloc((size_t)CTX * V * sizeof *got);
    dz_kv_cache *kv = NULL;
    DZT_OK(dz_kv_cache_create(m, CTX, &kv));
    if (got && kv) {
        DZT_OK(dz_model_forward(m, kv, seq16, CTX, 0, got, true));
        double worst = 0, scale = 0;
        for (size_t i = 0; i < (size_t)CTX * V; i++) {
            worst = fmax(worst, fabs((double)got[i] - want[i]));
            scale = fmax(scale, fabs(want[i]));
        }
        for (int t = 0; t < CTX; t++) {
            int32_t best = 0;
            for (int32_t v = 1; v < V; v++)
                if (want[t * V + v] > want[t * V + best]) best = v;
            DZT_EQ_INT(argmax(got + (size_t)t * V, V), best);
        }
        DZT_CHECK(worst <= 0.05, "Q8_0 attn_qkv: logits differ by up to %g (largest logit %g)", worst, scale);
        printf("Q8_0 attn_qkv (cpu-ref): worst |difference| %.3g, largest |logit| %.3g\n", worst, scale);
    }
    dz_kv_cache_free(kv);
    free(got);
    dz_model_free(m);
}

/* ---- the batched path against the one-sequence path ---- */

enum { N_SEQ = 3, STEPS = 8 };
static const int32_t prompts[N_SEQ][7] = {{8, 5, 12, 12, 15}, {34, 1, 2}, {0, 23, 15, 18, 12, 4, 9}};
static const int32_t prompt_len[N_SEQ] = {5, 3, 7};

static void test_batch(const char *path, const char *device, bool exact) {
    dz_model *m = NULL;
    DZT_OK(dz_model_load(path, &(dz_model_options){.device = device, .n_threads = 2}, &m));
    if (!m) return;
    const int32_t nV = dz_model_hparams_get(m)->n_vocab;
    float *solo = calloc((size_t)N_SEQ * STEPS * (size_t)nV, sizeof *solo), *lg = malloc(N_SEQ * (size_t)nV * 4);
    int32_t solo_tok[N_SEQ][STEPS];
    for (int s = 0; s < N_SEQ && solo && lg; s++) { /* alone, greedy */
        dz_kv_cache *kv = NULL;
        DZT_OK(dz_kv_cache_create(m, CTX, &kv));
        int32_t tok = 0;
        for (int step = 0; step < STEPS && kv; step++) {
            float *out = solo + ((size_t)s * STEPS + (size_t)step) * (size_t)nV;
            if (step == 0) DZT_OK(dz_model_forward(m, kv, prompts[s], prompt_len[s], 0, out, false));
            else DZT_OK(dz_model_forward(m, kv, &tok, 1, prompt_len[s] + step - 1, out, false));
            tok = solo_tok[s][step] = argmax(out, nV);
        }
        dz_kv_cache_free(kv);
    }
    const int blocks[3] = {16, 3, 1};
    for (int b = 0; b < 3 && solo && lg; b++) { /* sequence s joins at step s */
        dz_kv_pool *pool = NULL;
        DZT_OK(dz_kv_pool_create(m, (N_SEQ * CTX + blocks[b] - 1) / blocks[b], blocks[b], &pool));
        if (!pool) break;
        dz_kv_seq *seqs[N_SEQ] = {0};
        int32_t next[N_SEQ], done[N_SEQ] = {0};
        double worst = 0;
        int mismatched = 0;
        for (int step = 0; step < STEPS + N_SEQ - 1; step++) {
            dz_batch_item items[N_SEQ];
            int who[N_SEQ], n = 0;
            for (int s = 0; s < N_SEQ; s++) {
                if (step < s || done[s] >= STEPS) continue;
                if (step == s) {
                    DZT_OK(dz_kv_seq_create(pool, &seqs[s]));
                    items[n] = (dz_batch_item){seqs[s], prompts[s], prompt_len[s]};
                } else {
                    items[n] = (dz_batch_item){seqs[s], &next[s], 1};
                }
                who[n++] = s;
            }
            DZT_OK(dz_model_forward_batch(m, pool, items, n, lg));
            for (int i = 0; i < n; i++) {
                const int s = who[i];
                const float *got = lg + (size_t)i * (size_t)nV;
                const float *want = solo + ((size_t)s * STEPS + (size_t)done[s]) * (size_t)nV;
                if (memcmp(got, want, (size_t)nV * sizeof *got)) mismatched++;
                for (int32_t v = 0; v < nV; v++)
                    if (fabs((double)got[v] - want[v]) > worst) worst = fabs((double)got[v] - want[v]);
                next[s] = argmax(got, nV);
                DZT_CHECK(next[s] == solo_tok[s][done[s]], "%s, blocks of %d: sequence %d step %d: token %d, alone %d",
                          device, blocks[b], s, done[s], next[s], solo_tok[s][done[s]]);
                done[s]++;
            }
        }
        if (exact)
            DZT_CHECK(mismatched == 0, "%s, blocks of %d: %d steps' logits differ from the one-sequence path", device,
                      blocks[b], mismatched);
        else
            DZT_CHECK(worst <= 1e-4, "%s, blocks of %d: logits differ from the one-sequence path by up to %g", device,
                      blocks[b], worst);
        printf("%s, blocks of %d: batched vs one-sequence: %d of %d steps not bit-identical, worst %.3g\n", device,
               blocks[b], mismatched, N_SEQ * STEPS, worst);
        /* sequence 2 holds 14 positions: 2 more fit, 3 do not, and the refusal changes nothing */
        const int32_t three[3] = {1, 2, 3};
        DZT_EQ_INT(dz_kv_seq_len(seqs[2]), prompt_len[2] + STEPS - 1);
        DZT_FAILS(dz_model_forward_batch(m, pool, &(dz_batch_item){seqs[2], three, 3}, 1, lg), DZ_ERR_ARG);
        DZT_CHECK(strstr(dz_last_error(), "learned positions") != NULL, "message: %s", dz_last_error());
        DZT_EQ_INT(dz_kv_seq_len(seqs[2]), prompt_len[2] + STEPS - 1);
        DZT_OK(dz_model_forward_batch(m, pool, &(dz_batch_item){seqs[2], three, 2}, 1, lg));
        DZT_EQ_INT(dz_kv_seq_len(seqs[2]), CTX);
        for (int s = 0; s < N_SEQ; s++) dz_kv_seq_free(seqs[s]);
        dz_kv_pool_free(pool);
    }
    free(solo);
    free(lg);
    dz_model_free(m);
}

/* ---- malformed files ---- */

static void expect_refusal(const char *label, const spec *s, dz_status status, const char *needle) {
    char path[512];
    snprintf(path, sizeof path, "%s/gpt2-%s.gguf", dzt_tmpdir(), label);
    DZT_OK(write_gpt2(s, path));
    dz_model *m = NULL;
    dz_status st = dz_model_load(path, NULL, &m);
    DZT_CHECK(st == status && strstr(dz_last_error(), needle),
              "%s: expected %s naming '%s', got %s: %s", label, dz_status_str(status), needle, dz_status_str(st),
              st ? dz_last_error() : "(loaded)");
    DZT_ASSERT(m == NULL);
    dz_model_free(m);
    remove(path);
}

static void test_malformed(void) {
    expect_refusal("no-pos", &(spec){.drop_tensor = "position_embd.weight"}, DZ_ERR_FORMAT, "position_embd.weight");
    expect_refusal("no-qkv-bias", &(spec){.drop_tensor = "blk.1.attn_qkv.bias"}, DZ_ERR_FORMAT,
                   "'blk.1.attn_qkv.bias'");
    expect_refusal("no-qkv", &(spec){.drop_tensor = "blk.0.attn_qkv.weight"}, DZ_ERR_FORMAT,
                   "'blk.0.attn_qkv.weight'");
    expect_refusal("no-out-norm-bias", &(spec){.drop_tensor = "output_norm.bias"}, DZ_ERR_FORMAT,
                   "output_norm.bias");
    expect_refusal("no-ffn-down-bias", &(spec){.drop_tensor = "blk.1.ffn_down.bias"}, DZ_ERR_FORMAT,
                   "blk.1.ffn_down.bias");
    expect_refusal("bad-qkv", &(spec){.bad_tensor = "blk.0.attn_qkv.weight"}, DZ_ERR_FORMAT,
                   "'blk.0.attn_qkv.weight' has shape [32, 97, 1, 1], expected [32, 96]");
    expect_refusal("bad-qkv-bias", &(spec){.bad_tensor = "blk.1.attn_qkv.bias"}, DZ_ERR_FORMAT,
                   "'blk.1.attn_qkv.bias' has shape [97, 1, 1, 1], expected [96]");
    expect_refusal("bad-up-bias", &(spec){.bad_tensor = "blk.1.ffn_up.bias"}, DZ_ERR_FORMAT, "blk.1.ffn_up.bias");
    expect_refusal("bad-pos-rows", &(spec){.pos_rows = CTX + 4}, DZ_ERR_FORMAT,
                   "'position_embd.weight' has shape [32, 20, 1, 1], expected [32, 16]");
    expect_refusal("no-ctx", &(spec){.drop_key = "gpt2.context_length"}, DZ_ERR_FORMAT, "gpt2.context_length");
    expect_refusal("no-embd", &(spec){.drop_key = "gpt2.embedding_length"}, DZ_ERR_FORMAT, "gpt2.embedding_length");
    expect_refusal("gqa", &(spec){.n_head_kv = 2}, DZ_ERR_FORMAT, "head_count_kv 2 differs from head_count 4");
}

/* ---- dizuo run ---- */

/* Greedy `dizuo run --temp 0` gives the naive model's greedy text. */
static void test_cli(const char *path, const naive *nv) {
    dz_model *m = NULL;
    DZT_OK(dz_model_load(path, NULL, &m));
    if (!m) return;
    const dz_tokenizer *tok = dz_model_tokenizer(m);
    const char *prompt = "Hi there";
    int32_t *ids = NULL;
    size_t n_ids = 0;
    DZT_OK(dz_tokenize(tok, prompt, strlen(prompt), dz_tokenizer_add_bos_default(tok), false, &ids, &n_ids));
    enum { N_PREDICT = 6 };
    int32_t seq[CTX];
    DZT_CHECK(ids && n_ids >= 2 && n_ids + N_PREDICT < CTX, "prompt of %zu tokens", n_ids);
    if (!ids || n_ids < 2 || n_ids + N_PREDICT >= CTX) return;
    memcpy(seq, ids, n_ids * sizeof *ids);
    double *lg = malloc((size_t)CTX * (size_t)nv->n_vocab * sizeof *lg);
    char want[256] = "", piece[64];
    size_t n = n_ids, want_len = 0, piece_len = 0;
    for (int g = 0; g < N_PREDICT && lg; g++) {
        naive_forward(nv, seq, (int)n, lg);
        const double *last = lg + (n - 1) * (size_t)nv->n_vocab;
        int32_t best = 0;
        for (int32_t v = 1; v < nv->n_vocab; v++)
            if (last[v] > last[best]) best = v;
        if (dz_tokenizer_is_eog(tok, best)) break;
        DZT_OK(dz_token_to_piece(tok, best, false, piece, sizeof piece, &piece_len));
        memcpy(want + want_len, piece, piece_len);
        want_len += piece_len;
        seq[n++] = best;
    }
    want[want_len] = '\0';
    char n_arg[8];
    snprintf(n_arg, sizeof n_arg, "%d", N_PREDICT);
    char *argv[] = {(char *)dzt_bin(), "run", "-m", (char *)path, "-p", (char *)prompt, "--temp", "0", "-n", n_arg,
                    "--no-echo", "-t", "2", NULL};
    char *out = NULL, *err = NULL;
    const int rc = dzt_run_argv(argv, &out, NULL, &err);
    DZT_CHECK(rc == 0, "dizuo run exited %d: %s", rc, err ? err : "");
    DZT_CHECK(out && !strcmp(out, want), "dizuo run printed '%s', the double-precision model's greedy text is '%s'",
              out ? out : "(null)", want);
    printf("dizuo run --temp 0 -p '%s': '%s'\n", prompt, out ? out : "");
    free(out);
    free(err);
    free(lg);
    free(ids);
    dz_model_free(m);
}

/* ---- PyTorch's reference ---- */

/* Copies the reference file with the 64-token vocabulary added, for a
 * reference file without a tokenizer (dz_model_load needs one). */
static bool copy_with_vocab(const dz_gguf *ref, const char *path) {
    dz_gguf_writer *w = NULL;
    DZT_OK(dz_gguf_writer_create(&w));
    dz_status st = DZ_OK;
    for (int64_t i = 0; w && !st && i < dz_gguf_n_kv(ref); i++) st = dz_gguf_writer_copy_kv(w, ref, i);
    if (w && !st) st = add_vocab(w);
    for (int64_t i = 0; w && !st && i < dz_gguf_n_tensors(ref); i++) {
        const dz_gguf_tensor *t = dz_gguf_tensor_at(ref, i);
        st = dz_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
    }
    if (w && !st) st = dz_gguf_writer_write_file(w, path);
    DZT_OK(st);
    dz_gguf_writer_destroy(w);
    return w && !st;
}

static void test_reference(void) {
    const char *src = getenv("DZ_SOURCE_DIR");
    char ref_path[1024], path[512];
    snprintf(ref_path, sizeof ref_path, "%s/tests/data/train/gpt2-tiny.gguf", src ? src : "..");
    dz_gguf *ref = NULL;
    if (dz_gguf_open(ref_path, &ref) != DZ_OK) {
        printf("note: %s is absent; compared with the double-precision model only\n", ref_path);
        return;
    }
    const dz_gguf_tensor *in = dz_gguf_find_tensor(ref, "train.inputs"), *lt = dz_gguf_find_tensor(ref, "train.logits");
    DZT_CHECK(in && lt && in->type == DZ_TYPE_I32 && lt->type == DZ_TYPE_F32 && in->n_dims == 2 &&
                  lt->ne[1] == in->ne[0] && lt->ne[2] == in->ne[1],
              "the reference file lacks train.inputs (I32, T x B) or train.logits (F32, V x T x B)");
    snprintf(path, sizeof path, "%s/gpt2-torch.gguf", dzt_tmpdir());
    const bool has_vocab = dz_gguf_find_kv(ref, "tokenizer.ggml.model") >= 0;
    const bool usable = in && lt && (has_vocab || copy_with_vocab(ref, path));
    const char *devices[2] = {"cpu-ref", "cpu"};
    for (int d = 0; d < 2 && usable; d++) {
        dz_model *m = NULL;
        DZT_OK(dz_model_load(has_vocab ? ref_path : path, &(dz_model_options){.device = devices[d]}, &m));
        if (!m) break;
        const int32_t T = (int32_t)in->ne[0], B = (int32_t)in->ne[1], nV = dz_model_hparams_get(m)->n_vocab;
        DZT_EQ_INT(lt->ne[0], nV);
        const naive nv = naive_of(ref);
        float *got = malloc((size_t)T * (size_t)nV * sizeof *got);
        double *want = malloc((size_t)T * (size_t)nV * sizeof *want), *mine = malloc((size_t)T * (size_t)nV * 8);
        double worst = 0, worst_naive = 0;
        for (int32_t b = 0; b < B && got && want && mine && lt->ne[0] == nV; b++) {
            const int32_t *tokens = (const int32_t *)in->data + (size_t)b * (size_t)T;
            const float *torch = (const float *)lt->data + (size_t)b * (size_t)T * (size_t)nV;
            for (size_t i = 0; i < (size_t)T * (size_t)nV; i++) want[i] = torch[i];
            dz_kv_cache *kv = NULL;
            DZT_OK(dz_kv_cache_create(m, T, &kv));
            DZT_OK(dz_model_forward(m, kv, tokens, T, 0, got, true));
            DZT_CHECK(close_to(got, want, (size_t)T * (size_t)nV, &worst),
                      "%s, row %d: dizuo's logits differ from PyTorch's by up to %g", devices[d], b, worst);
            dz_kv_cache_free(kv);
            naive_forward(&nv, tokens, T, mine); /* the naive model against PyTorch too */
            for (size_t i = 0; i < (size_t)T * (size_t)nV; i++)
                if (fabs(mine[i] - want[i]) > worst_naive) worst_naive = fabs(mine[i] - want[i]);
        }
        DZT_CHECK(worst_naive <= TOL_ABS, "the double-precision model differs from PyTorch by %g", worst_naive);
        printf("%s: PyTorch reference (%d rows of %d): worst |difference| dizuo %.3g, double-precision model %.3g\n",
               devices[d], B, T, worst, worst_naive);
        free(got), free(want), free(mine);
        dz_model_free(m);
    }
    dz_gguf_close(ref);
    if (!has_vocab) remove(path);
}

int main(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/gpt2-tiny-test.gguf", dzt_tmpdir());
    for (int untied = 0; untied < 2; untied++) {
        DZT_OK(write_gpt2(&(spec){.untied = untied}, path));
        dz_gguf *g = NULL;
        DZT_OK(dz_gguf_open(path, &g));
        if (!g) break;
        const naive nv = naive_of(g);
        double *want = malloc((size_t)CTX * V * sizeof *want);
        naive_forward(&nv, seq16, CTX, want);
        test_forward(path, "cpu-ref", &nv, want);
        test_forward(path, "cpu", &nv, want);
        if (!untied) {
            test_batch(path, "cpu-ref", true);
            test_batch(path, "cpu", false);
            test_cli(path, &nv);
        }
        free(want);
        dz_gguf_close(g);
    }
    /* A quantized fused attn_qkv (Q8_0) is split at whole rows of blocks. */
    char twin[512];
    snprintf(twin, sizeof twin, "%s/gpt2-tiny-q8-twin.gguf", dzt_tmpdir());
    DZT_OK(write_gpt2(&(spec){.q8_qkv = true}, path));
    DZT_OK(write_gpt2(&(spec){.q8_rounded = true}, twin));
    dz_gguf *g = NULL;
    DZT_OK(dz_gguf_open(twin, &g));
    if (g) {
        const naive nv = naive_of(g);
        double *want = malloc((size_t)CTX * V * sizeof *want);
        naive_forward(&nv, seq16, CTX, want);
        test_quantized(path, want);
        free(want);
        dz_gguf_close(g);
    }
    remove(twin);
    remove(path);
    test_malformed();
    test_reference();
    return dzt_done();
}
