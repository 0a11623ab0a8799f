/* Model shapes: defaults, checks, and the GGUF hyper-parameter keys of the
 * two architectures (read from a file, written on export). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/train_impl.h"

enum { MAX_SIZE = 1 << 20, MAX_LAYERS = 4096, MAX_VOCAB = 1 << 24 };

dz_train_config dz_train_config_default(dz_train_arch arch) {
    dz_train_config c;
    memset(&c, 0, sizeof c);
    c.arch = arch;
    c.norm_eps = 1e-5f;
    c.rope_base = 10000.0f;
    c.tied = arch == DZ_TRAIN_GPT2;
    return c;
}

const char *dz_train_arch_name(dz_train_arch a) { return a == DZ_TRAIN_GPT2 ? "gpt2" : "llama"; }

int dz_train_arch_from_name(const char *name) {
    if (!strcmp(name, "llama")) return DZ_TRAIN_LLAMA;
    if (!strcmp(name, "gpt2")) return DZ_TRAIN_GPT2;
    return -1;
}

dz_status dz_train_config_check(const dz_train_config *c) {
    if (c->arch != DZ_TRAIN_LLAMA && c->arch != DZ_TRAIN_GPT2)
        return dz_fail(DZ_ERR_ARG, "unknown architecture %d (llama or gpt2)", (int)c->arch);
    if (c->n_vocab < 2 || c->n_vocab > MAX_VOCAB)
        return dz_fail(DZ_ERR_ARG, "vocabulary size %d is outside 2..%d", c->n_vocab, MAX_VOCAB);
    if (c->n_embd < 2 || c->n_embd > MAX_SIZE) return dz_fail(DZ_ERR_ARG, "width %d is outside 2..%d", c->n_embd, MAX_SIZE);
    if (c->n_layer < 1 || c->n_layer > MAX_LAYERS)
        return dz_fail(DZ_ERR_ARG, "layer count %d is outside 1..%d", c->n_layer, MAX_LAYERS);
    if (c->n_ff < 1 || c->n_ff > MAX_SIZE) return dz_fail(DZ_ERR_ARG, "ffn width %d is outside 1..%d", c->n_ff, MAX_SIZE);
    if (c->n_ctx < 1 || c->n_ctx > MAX_SIZE) return dz_fail(DZ_ERR_ARG, "context %d is outside 1..%d", c->n_ctx, MAX_SIZE);
    if (c->n_head < 1 || c->n_embd % c->n_head)
        return dz_fail(DZ_ERR_ARG, "%d heads do not divide the width %d", c->n_head, c->n_embd);
    if (c->n_head_kv < 1 || c->n_head % c->n_head_kv)
        return dz_fail(DZ_ERR_ARG, "%d kv heads do not divide the %d heads", c->n_head_kv, c->n_head);
    if (c->arch == DZ_TRAIN_GPT2 && (c->n_head_kv != c->n_head || !c->tied))
        return dz_fail(DZ_ERR_ARG, "gpt2 has as many kv heads as heads (%d, not %d) and a tied output", c->n_head,
                       c->n_head_kv);
    if (c->arch == DZ_TRAIN_LLAMA && (c->n_embd / c->n_head) % 2)
        return dz_fail(DZ_ERR_ARG, "the head size %d (width %d / %d heads) must be even for rope",
                       c->n_embd / c->n_head, c->n_embd, c->n_head);
    if (!(c->norm_eps > 0 && c->norm_eps < 1)) return dz_fail(DZ_ERR_ARG, "norm epsilon %g is outside (0, 1)", c->norm_eps);
    if (c->arch == DZ_TRAIN_LLAMA && !(c->rope_base > 1 && isfinite(c->rope_base)))
        return dz_fail(DZ_ERR_ARG, "rope base %g must be above 1", c->rope_base);
    return DZ_OK;
}

static dz_status get_size(const dz_gguf *g, const char *arch, const char *suffix, bool required, int32_t lo,
                          int32_t hi, int32_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v = 0;
    bool found = false;
    dz_status st = dz_gguf_get_int(g, key, &v, &found);
    if (st) return st;
    if (!found) return required ? dz_fail(DZ_ERR_FORMAT, "missing hyper-parameter '%s'", key) : DZ_OK;
    if (v < lo || v > hi)
        return dz_fail(DZ_ERR_FORMAT, "hyper-parameter '%s' = %lld is outside %d..%d", key, (long long)v, lo, hi);
    *out = (int32_t)v;
    return DZ_OK;
}

static dz_status get_eps(const dz_gguf *g, const char *key, float *out) {
    double v = 0;
    bool found = false;
    dz_status st = dz_gguf_get_float(g, key, &v, &found);
    if (st) return st;
    if (!found) return DZ_OK;
    if (!(v > 0 && v < 1)) return dz_fail(DZ_ERR_FORMAT, "hyper-parameter '%s' = %g is outside (0, 1)", key, v);
    *out = (float)v;
    return DZ_OK;
}

dz_status dz_train_config_read(const dz_gguf *g, dz_train_config *out) {
    const char *arch;
    size_t len;
    bool found = false;
    dz_status st = dz_gguf_get_str(g, "general.architecture", &arch, &len, &found);
    if (st) return st;
    if (!found) return dz_fail(DZ_ERR_FORMAT, "missing 'general.architecture'");
    char name[16] = "";
    if (len < sizeof name) memcpy(name, arch, len);
    int a = dz_train_arch_from_name(name);
    if (a < 0)
        return dz_fail(DZ_ERR_UNSUPPORTED, "architecture '%.*s' cannot be trained (llama or gpt2)",
                       (int)(len > 32 ? 32 : len), arch);
    dz_train_config c = dz_train_config_default((dz_train_arch)a);
    c.n_ctx = 2048;
    if ((st = get_size(g, name, "embedding_length", true, 1, MAX_SIZE, &c.n_embd)) ||
        (st = get_size(g, name, "block_count", true, 1, MAX_LAYERS, &c.n_layer)) ||
        (st = get_size(g, name, "attention.head_count", true, 1, MAX_SIZE, &c.n_head)) ||
        (st = get_size(g, name, "feed_forward_length", true, 1, MAX_SIZE, &c.n_ff)) ||
        (st = get_size(g, name, "context_length", c.arch == DZ_TRAIN_GPT2, 1, MAX_SIZE, &c.n_ctx)))
        return st;
    c.n_head_kv = c.n_head;
    if (c.arch == DZ_TRAIN_LLAMA) {
        if ((st = get_size(g, name, "attention.head_count_kv", false, 1, MAX_SIZE, &c.n_head_kv))) return st;
        if ((st = get_eps(g, "llama.attention.layer_norm_rms_epsilon", &c.norm_eps))) return st;
        double base = 0;
        if ((st = dz_gguf_get_float(g, "llama.rope.freq_base", &base, &found))) return st;
        if (found) c.rope_base = (float)base;
        int32_t n_rot = c.n_head ? c.n_embd / c.n_head : 0;
        if ((st = get_size(g, name, "rope.dimension_count", false, 1, MAX_SIZE, &n_rot))) return st;
        if (c.n_head && n_rot != c.n_embd / c.n_head)
            return dz_fail(DZ_ERR_UNSUPPORTED, "training needs rope over the whole head (%d), not %d dimensions",
                           c.n_embd / c.n_head, n_rot);
        c.tied = dz_gguf_find_tensor(g, "output.weight") == NULL;
    } else if ((st = get_eps(g, "gpt2.attention.layer_norm_epsilon", &c.norm_eps))) {
        return st;
    }
    const dz_gguf_tensor *emb = dz_gguf_find_tensor(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2) return dz_fail(DZ_ERR_FORMAT, "missing the 2-D tensor 'token_embd.weight'");
    if (emb->ne[1] > MAX_VOCAB) return dz_fail(DZ_ERR_FORMAT, "a vocabulary of %lld is too large", (long long)emb->ne[1]);
    c.n_vocab = (int32_t)emb->ne[1];
    if ((st = dz_train_config_check(&c))) return dz_fail(DZ_ERR_FORMAT, "%s", dz_last_error());
    *out = c;
    return DZ_OK;
}

static dz_status put_u32(dz_gguf_writer *w, const char *arch, const char *suffix, int32_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return dz_gguf_writer_set_u32(w, key, (uint32_t)v);
}

dz_status dz_train_config_write(const dz_train_config *c, dz_gguf_writer *w) {
    const char *a = dz_train_arch_name(c->arch);
    dz_status st;
    if ((st = dz_gguf_writer_set_str(w, "general.architecture", a)) ||
        (st = put_u32(w, a, "context_length", c->n_ctx)) || (st = put_u32(w, a, "embedding_length", c->n_embd)) ||
        (st = put_u32(w, a, "feed_forward_length", c->n_ff)) || (st = put_u32(w, a, "block_count", c->n_layer)) ||
        (st = put_u32(w, a, "attention.head_count", c->n_head)))
        return st;
    if (c->arch == DZ_TRAIN_GPT2) return dz_gguf_writer_set_f32(w, "gpt2.attention.layer_norm_epsilon", c->norm_eps);
    if ((st = put_u32(w, a, "attention.head_count_kv", c->n_head_kv)) ||
        (st = put_u32(w, a, "rope.dimension_count", c->n_embd / c->n_head)) ||
        (st = put_u32(w, a, "vocab_size", c->n_vocab)) ||
        (st = dz_gguf_writer_set_f32(w, "llama.rope.freq_base", c->rope_base)))
        return st;
    return dz_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
}

dz_status dz_train_model_put_tokenizer_keys(const dz_train_model *m, dz_gguf_writer *w) {
    if (!m->tok_gguf) return DZ_OK;
    for (int64_t i = 0; i < dz_gguf_n_kv(m->tok_gguf); i++) {
        dz_status st = dz_gguf_writer_copy_kv(w, m->tok_gguf, i);
        if (st) return st;
    }
    return DZ_OK;
}

dz_status dz_train_model_export(const dz_train_model *m, const char *path, dz_type out_type) {
    if (out_type != DZ_TYPE_F32 && out_type != DZ_TYPE_F16)
        return dz_fail(DZ_ERR_ARG, "export writes F32 or F16 weights, not %s", dz_type_name(out_type));
    dz_gguf_writer *w = NULL;
    dz_status st = dz_gguf_writer_create(&w);
    if (st) return st;
    uint16_t *half = NULL;
    st = dz_train_config_write(&m->cfg, w);
    /* The model's name: the output file's, without directory and ".gguf". */
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t len = strlen(base);
    if (len > 5 && !strcmp(base + len - 5, ".gguf")) len -= 5;
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name - 1 ? len : sizeof name - 1), base);
    if (!st) st = dz_gguf_writer_set_str(w, "general.name", name[0] ? name : "dizuo-trained");
    if (!st) st = dz_gguf_writer_set_u32(w, "general.file_type", out_type == DZ_TYPE_F16 ? 1u : 0u);
    if (!st) st = dz_train_model_put_tokenizer_keys(m, w);
    for (int32_t i = 0; !st && i < m->n_params; i++) {
        const dz_train_param *p = &m->params[i];
        const float *src = m->w + p->offset;
        if (out_type == DZ_TYPE_F16 && p->n_dims == 2) {
            uint16_t *h = realloc(half, (size_t)p->n * sizeof *h);
            if (!h) {
                st = dz_fail(DZ_ERR_NOMEM, "out of memory converting '%s' to F16", p->name);
                break;
            }
            half = h;
            for (int64_t j = 0; j < p->n; j++) half[j] = dz_fp32_to_fp16(src[j]);
            st = dz_gguf_writer_add_tensor(w, p->name, DZ_TYPE_F16, p->n_dims, p->ne, half);
        } else {
            st = dz_gguf_writer_add_tensor(w, p->name, DZ_TYPE_F32, p->n_dims, p->ne, src);
        }
        /* GPT-2's output is tied, but llama.cpp's loader requires output.weight
         * (its converter writes a copy of the embedding): write one too. */
        if (!st && m->cfg.arch == DZ_TRAIN_GPT2 && !strcmp(p->name, "token_embd.weight")) {
            const bool f16 = out_type == DZ_TYPE_F16;
            st = dz_gguf_writer_add_tensor(w, "output.weight", f16 ? DZ_TYPE_F16 : DZ_TYPE_F32, p->n_dims, p->ne,
                                           f16 ? (const void *)half : (const void *)src);
        }
    }
    free(half);
    if (!st) st = dz_gguf_writer_write_file(w, path);
    dz_gguf_writer_destroy(w);
    return st;
}
