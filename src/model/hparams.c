/* Hyper-parameters from GGUF metadata, checked before anything is sized by them. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/model_impl.h"

/* Limits far beyond any real model, so absurd values are refused before use. */
enum {
    MAX_EMBD = 1 << 17,
    MAX_LAYERS = 1 << 12,
    MAX_HEADS = 1 << 12,
    MAX_FF = 1 << 20,
    MAX_CTX = 1 << 24,
    MAX_HEAD_DIM = 1 << 12,
};

static dz_status get_count(const dz_gguf *g, const char *arch, const char *suffix, bool required,
                           int64_t lo, int64_t hi, int32_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v = 0;
    bool found = false;
    dz_status st = dz_gguf_get_int(g, key, &v, &found);
    if (st) return st;
    if (!found) {
        if (required) return dz_fail(DZ_ERR_FORMAT, "missing hyper-parameter '%s'", key);
        return DZ_OK;
    }
    if (v < lo || v > hi)
        return dz_fail(DZ_ERR_FORMAT, "hyper-parameter '%s' = %lld is outside %lld..%lld", key,
                       (long long)v, (long long)lo, (long long)hi);
    *out = (int32_t)v;
    return DZ_OK;
}

static dz_status get_real(const dz_gguf *g, const char *arch, const char *suffix, float *out,
                          bool *found) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    double v = 0;
    dz_status st = dz_gguf_get_float(g, key, &v, found);
    if (st) return st;
    if (!*found) return DZ_OK;
    if (!isfinite(v) || v <= 0 || v > 1e30)
        return dz_fail(DZ_ERR_FORMAT, "hyper-parameter '%s' = %g must be positive and finite", key, v);
    *out = (float)v;
    return DZ_OK;
}

dz_arch dz_arch_of(const dz_model_hparams *hp) {
    if (!strcmp(hp->arch, "gpt2")) return DZ_ARCH_GPT2;
    return !strcmp(hp->arch, "qwen2") ? DZ_ARCH_QWEN2 : DZ_ARCH_LLAMA;
}

/* gpt2: learned positions (context_length is required: it is the number of
 * position embeddings), LayerNorm, no rope, n_head_kv = n_head. */
static dz_status read_gpt2(const dz_gguf *g, dz_model_hparams *hp) {
    const char *a = hp->arch;
    dz_status st;
    if ((st = get_count(g, a, "embedding_length", true, 1, MAX_EMBD, &hp->n_embd))) return st;
    if ((st = get_count(g, a, "block_count", true, 1, MAX_LAYERS, &hp->n_layer))) return st;
    if ((st = get_count(g, a, "attention.head_count", true, 1, MAX_HEADS, &hp->n_head))) return st;
    hp->n_head_kv = hp->n_head;
    if ((st = get_count(g, a, "attention.head_count_kv", false, 1, MAX_HEADS, &hp->n_head_kv))) return st;
    if (hp->n_head_kv != hp->n_head)
        return dz_fail(DZ_ERR_FORMAT, "gpt2: head_count_kv %d differs from head_count %d (gpt2 has no "
                       "grouped-query attention)", hp->n_head_kv, hp->n_head);
    if ((st = get_count(g, a, "feed_forward_length", true, 1, MAX_FF, &hp->n_ff))) return st;
    if ((st = get_count(g, a, "context_length", true, 1, MAX_CTX, &hp->n_ctx_train))) return st;
    if (hp->n_embd % hp->n_head != 0)
        return dz_fail(DZ_ERR_FORMAT, "embedding_length %d is not a multiple of head_count %d", hp->n_embd,
                       hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    hp->n_rot = 0; /* no rope */
    hp->rope_mode = DZ_ROPE_NORMAL;
    hp->rope_freq_base = 10000.0f;
    hp->rope_freq_scale = 1.0f;
    hp->norm_eps = 1e-5f;
    bool found;
    if ((st = get_real(g, a, "attention.layer_norm_epsilon", &hp->norm_eps, &found))) return st;
    hp->qkv_bias = true;
    return DZ_OK;
}

dz_status dz_hparams_read(const dz_gguf *g, dz_model_hparams *out) {
    dz_model_hparams hp;
    memset(&hp, 0, sizeof hp);
    const char *arch;
    size_t arch_len;
    bool found;
    dz_status st = dz_gguf_get_str(g, "general.architecture", &arch, &arch_len, &found);
    if (st) return st;
    if (!found) return dz_fail(DZ_ERR_FORMAT, "missing 'general.architecture'");
    if (arch_len == 0 || arch_len >= sizeof hp.arch || memchr(arch, '\0', arch_len))
        return dz_fail(DZ_ERR_UNSUPPORTED, "unknown architecture '%.*s' (dizuo runs llama, qwen2, gpt2)",
                       (int)(arch_len > 40 ? 40 : arch_len), arch);
    memcpy(hp.arch, arch, arch_len);
    hp.arch[arch_len] = '\0';
    if (strcmp(hp.arch, "llama") && strcmp(hp.arch, "qwen2") && strcmp(hp.arch, "gpt2"))
        return dz_fail(DZ_ERR_UNSUPPORTED, "unknown architecture '%s' (dizuo runs llama, qwen2, gpt2)",
                       hp.arch);
    if (dz_arch_of(&hp) == DZ_ARCH_GPT2) {
        if ((st = read_gpt2(g, &hp))) return st;
        *out = hp;
        return DZ_OK;
    }
    const char *a = hp.arch;

    if ((st = get_count(g, a, "embedding_length", true, 1, MAX_EMBD, &hp.n_embd))) return st;
    if ((st = get_count(g, a, "block_count", true, 1, MAX_LAYERS, &hp.n_layer))) return st;
    if ((st = get_count(g, a, "attention.head_count", true, 1, MAX_HEADS, &hp.n_head))) return st;
    hp.n_head_kv = hp.n_head;
    if ((st = get_count(g, a, "attention.head_count_kv", false, 1, MAX_HEADS, &hp.n_head_kv)))
        return st;
    if ((st = get_count(g, a, "feed_forward_length", true, 1, MAX_FF, &hp.n_ff))) return st;
    hp.n_ctx_train = 2048;
    if ((st = get_count(g, a, "context_length", false, 1, MAX_CTX, &hp.n_ctx_train))) return st;

    if (hp.n_head % hp.n_head_kv != 0)
        return dz_fail(DZ_ERR_FORMAT, "head_count %d is not a multiple of head_count_kv %d",
                       hp.n_head, hp.n_head_kv);
    if (hp.n_embd % hp.n_head != 0)
        return dz_fail(DZ_ERR_FORMAT, "embedding_length %d is not a multiple of head_count %d",
                       hp.n_embd, hp.n_head);
    hp.head_dim = hp.n_embd / hp.n_head;
    if ((st = get_count(g, a, "attention.key_length", false, 2, MAX_HEAD_DIM, &hp.head_dim)))
        return st;
    int32_t v_dim = hp.head_dim;
    if ((st = get_count(g, a, "attention.value_length", false, 2, MAX_HEAD_DIM, &v_dim))) return st;
    if (v_dim != hp.head_dim)
        return dz_fail(DZ_ERR_UNSUPPORTED, "key_length %d != value_length %d", hp.head_dim, v_dim);
    if (hp.head_dim % 2)
        return dz_fail(DZ_ERR_FORMAT, "head dimension %d is odd (rope needs pairs)", hp.head_dim);
    hp.n_rot = hp.head_dim;
    if ((st = get_count(g, a, "rope.dimension_count", false, 2, hp.head_dim, &hp.n_rot))) return st;
    if (hp.n_rot % 2) return dz_fail(DZ_ERR_FORMAT, "rope.dimension_count %d is odd", hp.n_rot);

    hp.norm_eps = 1e-5f;
    if ((st = get_real(g, a, "attention.layer_norm_rms_epsilon", &hp.norm_eps, &found))) return st;
    hp.rope_freq_base = 10000.0f;
    if ((st = get_real(g, a, "rope.freq_base", &hp.rope_freq_base, &found))) return st;
    hp.rope_freq_scale = 1.0f;
    float factor = 1.0f;
    if ((st = get_real(g, a, "rope.scale_linear", &factor, &found))) return st;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    const char *scaling = NULL;
    size_t scaling_len = 0;
    if ((st = dz_gguf_get_str(g, key, &scaling, &scaling_len, &found))) return st;
    bool linear = !found || (scaling_len == 6 && !memcmp(scaling, "linear", 6));
    bool none = found && scaling_len == 4 && !memcmp(scaling, "none", 4);
    if (found && !linear && !none)
        return dz_fail(DZ_ERR_UNSUPPORTED, "rope scaling type '%.*s' (dizuo supports none, linear)",
                       (int)(scaling_len > 32 ? 32 : scaling_len), scaling);
    if ((st = get_real(g, a, "rope.scaling.factor", &factor, &found))) return st;
    if (!none) hp.rope_freq_scale = 1.0f / factor;

    hp.rope_mode = strcmp(a, "qwen2") == 0 ? DZ_ROPE_NEOX : DZ_ROPE_NORMAL;
    hp.qkv_bias = strcmp(a, "qwen2") == 0;
    *out = hp;
    return DZ_OK;
}
