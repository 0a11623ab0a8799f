/* The training model: the parameter table of an architecture, its flat fp32
 * arrays (weights, gradients, AdamW moments), seeded initialisation, loading
 * from GGUF, and the tokenizer it carries for export. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/train_impl.h"

uint64_t dz_train_rng_next(uint64_t *state) { /* splitmix64 */
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Box-Muller on two uniforms in (0, 1]; one normal per call (the second is dropped). */
double dz_train_rng_normal(uint64_t *state) {
    double u1 = ((double)(dz_train_rng_next(state) >> 11) + 1.0) * 0x1.0p-53;
    double u2 = (double)(dz_train_rng_next(state) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

typedef struct table {
    dz_train_param *p;
    int32_t n, cap;
    int64_t floats;
} table;

static bool add_param(table *t, const char *name, int64_t ne0, int64_t ne1, bool decay) {
    if (t->n == t->cap) return false;
    dz_train_param *p = &t->p[t->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->n_dims = ne1 > 0 ? 2 : 1;
    p->ne[0] = ne0;
    p->ne[1] = ne1 > 0 ? ne1 : 1;
    p->n = ne0 * p->ne[1];
    p->offset = t->floats;
    p->decay = decay;
    p->trainable = true;
    t->floats += p->n;
    return true;
}

/* The parameters of shape c in GGUF order (train.h); false if t is too small. */
static bool build_table(const dz_train_config *c, table *t) {
    const int64_t d = c->n_embd, hd = c->n_embd / c->n_head, ff = c->n_ff;
    char name[64];
    bool ok = add_param(t, "token_embd.weight", d, c->n_vocab, true);
    if (c->arch == DZ_TRAIN_GPT2) ok = ok && add_param(t, "position_embd.weight", d, c->n_ctx, true);
#define P(suffix, ne0, ne1, decay) \
    (snprintf(name, sizeof name, "blk.%d.%s", l, suffix), ok = ok && add_param(t, name, ne0, ne1, decay))
    for (int32_t l = 0; l < c->n_layer; l++) {
        if (c->arch == DZ_TRAIN_LLAMA) {
            P("attn_norm.weight", d, 0, false);
            P("attn_q.weight", d, hd * c->n_head, true);
            P("attn_k.weight", d, hd * c->n_head_kv, true);
            P("attn_v.weight", d, hd * c->n_head_kv, true);
            P("attn_output.weight", hd * c->n_head, d, true);
            P("ffn_norm.weight", d, 0, false);
            P("ffn_gate.weight", d, ff, true);
            P("ffn_up.weight", d, ff, true);
            P("ffn_down.weight", ff, d, true);
        } else {
            P("attn_norm.weight", d, 0, false);
            P("attn_norm.bias", d, 0, false);
            P("attn_qkv.weight", d, 3 * d, true);
            P("attn_qkv.bias", 3 * d, 0, false);
            P("attn_output.weight", d, d, true);
            P("attn_output.bias", d, 0, false);
            P("ffn_norm.weight", d, 0, false);
            P("ffn_norm.bias", d, 0, false);
            P("ffn_up.weight", d, ff, true);
            P("ffn_up.bias", ff, 0, false);
            P("ffn_down.weight", ff, d, true);
            P("ffn_down.bias", d, 0, false);
        }
    }
#undef P
    ok = ok && add_param(t, "output_norm.weight", d, 0, false);
    if (c->arch == DZ_TRAIN_GPT2) ok = ok && add_param(t, "output_norm.bias", d, 0, false);
    if (c->arch == DZ_TRAIN_LLAMA && !c->tied) ok = ok && add_param(t, "output.weight", d, c->n_vocab, true);
    return ok;
}

dz_status dz_train_model_alloc(const dz_train_config *c, dz_train_model **out) {
    dz_status st = dz_train_config_check(c);
    if (st) return st;
    table t = {.cap = 16 + 12 * c->n_layer};
    t.p = calloc((size_t)t.cap, sizeof *t.p);
    if (!t.p) return dz_fail(DZ_ERR_NOMEM, "out of memory for the parameter table");
    if (!build_table(c, &t)) {
        free(t.p);
        return dz_fail(DZ_ERR_INTERNAL, "parameter table overflow");
    }
    size_t bytes;
    if (t.floats > (int64_t)(SIZE_MAX / 16) || dz_mul_overflows((size_t)t.floats, sizeof(float), &bytes)) {
        free(t.p);
        return dz_fail(DZ_ERR_ARG, "a model of %lld parameters does not fit in memory", (long long)t.floats);
    }
    dz_train_model *m = calloc(1, sizeof *m);
    if (m) {
        m->w = calloc((size_t)t.floats, sizeof(float));
        m->g = calloc((size_t)t.floats, sizeof(float));
        m->m = calloc((size_t)t.floats, sizeof(float));
        m->v = calloc((size_t)t.floats, sizeof(float));
    }
    if (!m || !m->w || !m->g || !m->m || !m->v) {
        if (m) m->params = t.p;
        dz_train_model_free(m);
        if (!m) free(t.p);
        return dz_fail(DZ_ERR_NOMEM, "out of memory for %lld parameters (x4 floats)", (long long)t.floats);
    }
    m->cfg = *c;
    m->params = t.p;
    m->n_params = t.n;
    m->n_floats = t.floats;
    *out = m;
    return DZ_OK;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

dz_status dz_train_model_create(const dz_train_config *c, uint64_t seed, dz_train_model **out) {
    dz_train_model *m = NULL;
    dz_status st = dz_train_model_alloc(c, &m);
    if (st) return st;
    uint64_t rng = seed;
    const double std = 0.02, std_resid = 0.02 / sqrt(2.0 * c->n_layer);
    for (int32_t i = 0; i < m->n_params; i++) {
        const dz_train_param *p = &m->params[i];
        float *w = m->w + p->offset;
        if (p->n_dims == 2) {
            double s = ends_with(p->name, "attn_output.weight") || ends_with(p->name, "ffn_down.weight") ? std_resid : std;
            for (int64_t j = 0; j < p->n; j++) w[j] = (float)(s * dz_train_rng_normal(&rng));
        } else {
            float v = ends_with(p->name, ".bias") ? 0.0f : 1.0f;
            for (int64_t j = 0; j < p->n; j++) w[j] = v;
        }
    }
    *out = m;
    return DZ_OK;
}

dz_status dz_train_read_tensor(const dz_gguf *g, const char *name, const dz_train_param *p, float *dst) {
    const dz_gguf_tensor *t = dz_gguf_find_tensor(g, name);
    if (!t) return dz_fail(DZ_ERR_FORMAT, "missing tensor '%s'", name);
    if (t->n_dims > 2 || t->ne[0] != p->ne[0] || t->ne[1] != p->ne[1])
        return dz_fail(DZ_ERR_FORMAT, "tensor '%s' is (%lld, %lld, %lld), the shape needs (%lld, %lld)", name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)p->ne[0],
                       (long long)p->ne[1]);
    if (t->type != DZ_TYPE_F32 && !dz_type_can_dequantize(t->type))
        return dz_fail(DZ_ERR_UNSUPPORTED, "tensor '%s' has type %s, which dizuo cannot convert to F32", name,
                       dz_type_name(t->type));
    size_t row;
    dz_status st = dz_row_size(t->type, t->ne[0], &row);
    if (st) return st;
    for (int64_t r = 0; r < p->ne[1]; r++) {
        const uint8_t *src = (const uint8_t *)t->data + (size_t)r * row;
        float *out = dst + r * p->ne[0];
        if (t->type == DZ_TYPE_F32) memcpy(out, src, (size_t)p->ne[0] * sizeof(float));
        else if ((st = dz_dequantize_row(t->type, src, out, p->ne[0]))) return st;
    }
    return DZ_OK;
}

dz_status dz_train_model_load(const char *path, dz_train_model **out) {
    dz_gguf *g = NULL;
    dz_status st = dz_gguf_open(path, &g);
    if (st) return st;
    dz_train_config c;
    dz_train_model *m = NULL;
    st = dz_train_config_read(g, &c);
    if (!st) st = dz_train_model_alloc(&c, &m);
    for (int32_t i = 0; !st && i < m->n_params; i++) st = dz_train_read_tensor(g, m->params[i].name, &m->params[i], m->w + m->params[i].offset);
    if (!st && dz_gguf_find_kv(g, "tokenizer.ggml.model") >= 0) st = dz_train_model_set_tokenizer(m, g);
    dz_gguf_close(g);
    if (st) {
        dz_train_model_free(m);
        return dz_error_prefix(st, "%s: ", path);
    }
    *out = m;
    return DZ_OK;
}

dz_status dz_train_model_set_tokenizer(dz_train_model *m, const dz_gguf *g) {
    dz_gguf_writer *w = NULL;
    dz_status st = dz_gguf_writer_create(&w);
    if (st) return st;
    for (int64_t i = 0; !st && i < dz_gguf_n_kv(g); i++)
        if (!strncmp(dz_gguf_kv_key(g, i), "tokenizer.", 10)) st = dz_gguf_writer_copy_kv(w, g, i);
    void *image = NULL;
    size_t size = 0;
    dz_gguf *tg = NULL;
    dz_tokenizer *tok = NULL;
    if (!st) st = dz_gguf_writer_write_memory(w, &image, &size);
    dz_gguf_writer_destroy(w);
    if (!st) st = dz_gguf_open_memory(image, size, &tg);
    if (!st) st = dz_tokenizer_load(tg, &tok);
    if (!st && dz_tokenizer_n_vocab(tok) != m->cfg.n_vocab)
        st = dz_fail(DZ_ERR_ARG, "the tokenizer has %d tokens; the model's vocabulary is %d", dz_tokenizer_n_vocab(tok),
                     m->cfg.n_vocab);
    if (st) {
        dz_tokenizer_free(tok);
        dz_gguf_close(tg);
        free(image);
        return st;
    }
    dz_tokenizer_free(m->tok);
    dz_gguf_close(m->tok_gguf);
    free(m->tok_file);
    m->tok = tok;
    m->tok_gguf = tg;
    m->tok_file = image;
    m->tok_file_size = size;
    return DZ_OK;
}

void dz_train_model_free(dz_train_model *m) {
    if (!m) return;
    dz_tokenizer_free(m->tok);
    dz_gguf_close(m->tok_gguf);
    free(m->tok_file);
    free(m->params);
    free(m->w);
    free(m->g);
    free(m->m);
    free(m->v);
    free(m);
}

const dz_tokenizer *dz_train_model_tokenizer(const dz_train_model *m) { return m->tok; }
const dz_train_config *dz_train_model_config(const dz_train_model *m) { return &m->cfg; }
int32_t dz_train_model_n_params(const dz_train_model *m) { return m->n_params; }
int64_t dz_train_model_n_floats(const dz_train_model *m) { return m->n_floats; }
float *dz_train_model_weights(dz_train_model *m) { return m->w; }
float *dz_train_model_grads(dz_train_model *m) { return m->g; }
float *dz_train_model_adam_m(dz_train_model *m) { return m->m; }
float *dz_train_model_adam_v(dz_train_model *m) { return m->v; }

dz_train_param *dz_train_model_param(dz_train_model *m, int32_t i) {
    return i >= 0 && i < m->n_params ? &m->params[i] : NULL;
}

dz_train_param *dz_train_model_find(dz_train_model *m, const char *name) {
    for (int32_t i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) return &m->params[i];
    return NULL;
}
