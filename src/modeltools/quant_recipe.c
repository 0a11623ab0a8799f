/* Which type each tensor gets when a model is quantized: the targets
 * llama.cpp knows (names and LLAMA_FTYPE values) and its per-tensor rules
 * (llama_tensor_get_type in src/llama-quant.cpp, build 4748), restated for
 * the targets dizuo has quantizers for. Files made with the same target
 * therefore hold the same types, tensor by tensor, as llama-quantize's. */
#include "dizuo/modeltools.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LLAMA_FTYPE_* values (llama.h). */
enum {
    FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8, FT_Q5_1 = 9,
    FT_Q2_K = 10, FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15,
    FT_Q5_K_S = 16, FT_Q5_K_M = 17, FT_Q6_K = 18, FT_IQ4_NL = 25, FT_BF16 = 32,
};

static const dz_ftype_info ftypes[] = {
    {"F32", FT_F32, DZ_TYPE_F32, "32-bit float"},
    {"F16", FT_F16, DZ_TYPE_F16, "16-bit float"},
    {"BF16", FT_BF16, DZ_TYPE_BF16, "bfloat16"},
    {"Q8_0", FT_Q8_0, DZ_TYPE_Q8_0, "8.5 bits per weight"},
    {"Q4_0", FT_Q4_0, DZ_TYPE_Q4_0, "4.5 bpw; output Q6_K"},
    {"Q4_1", FT_Q4_1, DZ_TYPE_Q4_1, "5.0 bpw; output Q6_K"},
    {"Q5_0", FT_Q5_0, DZ_TYPE_Q5_0, "5.5 bpw; output Q6_K"},
    {"Q5_1", FT_Q5_1, DZ_TYPE_Q5_1, "6.0 bpw; output Q6_K"},
    {"Q2_K", FT_Q2_K, DZ_TYPE_Q2_K, "Q2_K; attn_v Q3_K/Q4_K, ffn_down and attn_output Q3_K"},
    {"Q3_K_S", FT_Q3_K_S, DZ_TYPE_Q3_K, "Q3_K everywhere but the output"},
    {"Q3_K_M", FT_Q3_K_M, DZ_TYPE_Q3_K, "Q3_K; attn_v Q5_K/Q4_K, ffn_down and attn_output Q4_K"},
    {"Q3_K_L", FT_Q3_K_L, DZ_TYPE_Q3_K, "Q3_K; attn_v, ffn_down, attn_output Q5_K"},
    {"Q4_K_S", FT_Q4_K_S, DZ_TYPE_Q4_K, "Q4_K; early attn_v and ffn_down Q5_K"},
    {"Q4_K_M", FT_Q4_K_M, DZ_TYPE_Q4_K, "Q4_K; half of attn_v and ffn_down Q6_K"},
    {"Q5_K_S", FT_Q5_K_S, DZ_TYPE_Q5_K, "Q5_K everywhere but the output"},
    {"Q5_K_M", FT_Q5_K_M, DZ_TYPE_Q5_K, "Q5_K; half of attn_v and ffn_down Q6_K"},
    {"Q6_K", FT_Q6_K, DZ_TYPE_Q6_K, "6.56 bpw"},
    {"IQ4_NL", FT_IQ4_NL, DZ_TYPE_IQ4_NL, "4.5 bpw non-linear; output Q6_K, some attn_v/ffn_down Q5_K"},
};
enum { N_FTYPES = sizeof ftypes / sizeof ftypes[0] };

int dz_ftype_count(void) { return N_FTYPES; }

const dz_ftype_info *dz_ftype_at(int i) { return i >= 0 && i < N_FTYPES ? &ftypes[i] : NULL; }

static bool same_name(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (toupper((unsigned char)*a) != toupper((unsigned char)*b)) return false;
    return *a == *b;
}

const dz_ftype_info *dz_ftype_find(const char *name) {
    if (!name) return NULL;
    /* llama-quantize's aliases: the bare K names are the _M mixes. */
    static const char *const aliases[][2] = {{"Q3_K", "Q3_K_M"}, {"Q4_K", "Q4_K_M"}, {"Q5_K", "Q5_K_M"}};
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (same_name(name, aliases[i][0])) name = aliases[i][1];
    for (int i = 0; i < N_FTYPES; i++)
        if (same_name(name, ftypes[i].name)) return &ftypes[i];
    return NULL;
}

bool dz_ftype_available(const dz_ftype_info *f) { return f && dz_type_can_quantize(f->base); }

/* ---- per-tensor rules ---- */

/* What the rules need to know about the whole model. */
typedef struct recipe_model {
    int32_t ftype;
    int32_t n_layer;
    int32_t n_attn_v;   /* tensors named *attn_v.weight / *attn_qkv.weight */
    int32_t n_gqa;      /* n_head / n_head_kv */
    int32_t n_expert;
    bool is_70b;        /* llama.cpp's LLM_TYPE_70B: 80 layers with GQA */
    bool has_output;    /* an output.weight exists (not tied to token_embd) */
} recipe_model;

static bool has(const char *name, const char *part) { return strstr(name, part) != NULL; }

/* llama.cpp's use_more_bits: the first and last eighth of the layers and
 * every third layer in between. */
static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* The layer of a "blk.N." tensor; -1 for others. */
static int layer_of(const char *name) {
    int layer = -1;
    if (sscanf(name, "blk.%d.", &layer) != 1) return -1;
    return layer;
}

/* The recipe's first choice for a tensor llama.cpp would quantize. */
static dz_type recipe_choice(const recipe_model *m, dz_type base, const char *name, int64_t ne0) {
    const int32_t ft = m->ftype;
    const int i = layer_of(name), n = m->n_layer;
    dz_type t = base;
    if (!strcmp(name, "output.weight") || (!m->has_output && !strcmp(name, "token_embd.weight"))) {
        const dz_type_traits *tt = dz_type_info((int)t);
        if (ne0 % tt->block_size != 0) t = DZ_TYPE_Q8_0;
        else if (t != DZ_TYPE_Q8_0) t = DZ_TYPE_Q6_K;
    } else if (!strcmp(name, "token_embd.weight")) {
        /* the targets here leave it at the base type */
    } else if (has(name, "attn_v.weight")) {
        if (ft == FT_Q2_K) t = m->n_gqa >= 4 ? DZ_TYPE_Q4_K : DZ_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M) t = i < 2 ? DZ_TYPE_Q5_K : DZ_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = DZ_TYPE_Q5_K;
        else if (ft == FT_IQ4_NL && m->n_gqa >= 4) t = DZ_TYPE_Q5_K;
        else if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) && use_more_bits(i, m->n_attn_v)) t = DZ_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && i < 4) t = DZ_TYPE_Q5_K;
        if (m->is_70b && (t == DZ_TYPE_Q3_K || t == DZ_TYPE_Q4_K)) t = DZ_TYPE_Q5_K;
        if (m->n_expert == 8) t = DZ_TYPE_Q8_0;
    } else if (has(name, "attn_k.weight")) {
        if (m->n_expert == 8) t = DZ_TYPE_Q8_0;
    } else if (has(name, "ffn_down")) {
        if (ft == FT_Q2_K) t = DZ_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M) t = i < n / 16 ? DZ_TYPE_Q5_K : DZ_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = DZ_TYPE_Q5_K;
        else if (ft == FT_Q4_K_M) { if (use_more_bits(i, n)) t = DZ_TYPE_Q6_K; }
        else if (ft == FT_IQ4_NL && i < n / 8) t = DZ_TYPE_Q5_K;
        else if (ft == FT_Q5_K_M && use_more_bits(i, n)) t = DZ_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && i < n / 8) t = DZ_TYPE_Q5_K;
    } else if (has(name, "attn_output.weight")) {
        if (m->n_expert == 8) {
            if (ft == FT_Q2_K || ft == FT_Q3_K_S || ft == FT_Q3_K_M || ft == FT_IQ4_NL ||
                ft == FT_Q4_K_S || ft == FT_Q4_K_M)
                t = DZ_TYPE_Q5_K;
        } else if (ft == FT_Q2_K) t = DZ_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M) t = DZ_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = DZ_TYPE_Q5_K;
    } else if (has(name, "attn_qkv.weight")) {
        if (ft == FT_Q3_K_M || ft == FT_Q3_K_L) t = DZ_TYPE_Q4_K;
        else if (ft == FT_Q4_K_M) t = DZ_TYPE_Q5_K;
        else if (ft == FT_Q5_K_M) t = DZ_TYPE_Q6_K;
    }
    return t;
}

static bool fits(dz_type t, int64_t ne0) { return ne0 % dz_type_info((int)t)->block_size == 0; }

/* A type whose block divides ne0: llama.cpp's fallbacks, then F16 (where
 * llama.cpp has none it stops with an error; dizuo keeps going). */
static dz_type fallback(dz_type t, int64_t ne0, const char **note) {
    if (fits(t, ne0)) return t;
    dz_type f;
    switch (t) {
    case DZ_TYPE_Q2_K: case DZ_TYPE_Q3_K: f = DZ_TYPE_IQ4_NL; break;
    case DZ_TYPE_Q4_K: f = DZ_TYPE_Q5_0; break;
    case DZ_TYPE_Q5_K: f = DZ_TYPE_Q5_1; break;
    case DZ_TYPE_Q6_K: f = DZ_TYPE_Q8_0; break;
    default: f = DZ_TYPE_F16; break;
    }
    if (!fits(f, ne0)) f = DZ_TYPE_F16;
    *note = "row length not a multiple of the block size: fallback";
    return f;
}

/* llama.cpp's test for tensors to quantize (the parts that concern the
 * architectures of llama.cpp's loader that dizuo may see). */
static bool is_quantizable(const dz_gguf_tensor *t) {
    size_t len = strlen(t->name);
    if (len < 6 || strcmp(t->name + len - 6, "weight")) return false;
    /* ggml_n_dims: trailing dimensions of 1 do not count ([64, 1] is a vector) */
    int n_dims = 1;
    for (int d = 1; d < DZ_MAX_DIMS; d++)
        if (t->ne[d] > 1) n_dims = d + 1;
    if (n_dims < 2) return false;
    static const char *const never[] = {"_norm.weight", "ffn_gate_inp.weight", "ssm_conv1d.weight",
                                        "time_mix_", "attn_rel_b.weight"};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (has(t->name, never[i])) return false;
    return strcmp(t->name, "position_embd.weight") && strcmp(t->name, "token_types.weight");
}

/* Reads what the rules need from the file's metadata. */
static dz_status read_model(const dz_gguf *g, int32_t ftype, recipe_model *m) {
    memset(m, 0, sizeof *m);
    m->ftype = ftype;
    const char *arch = "";
    size_t arch_len = 0;
    bool found = false;
    dz_status st = dz_gguf_get_str(g, "general.architecture", &arch, &arch_len, &found);
    if (st) return st;
    if (!found || arch_len == 0 || arch_len > 64) arch_len = 0;
    char key[128];
    int64_t n_layer = 0, n_head = 0, n_head_kv = 0, n_expert = 0;
    bool have_kv = false;
#define GET(suffix, var, found_ptr)                                                            \
    snprintf(key, sizeof key, "%.*s.%s", (int)arch_len, arch, suffix);                          \
    if ((st = dz_gguf_get_int(g, key, &var, found_ptr))) return st;
    GET("block_count", n_layer, NULL);
    GET("attention.head_count", n_head, NULL);
    GET("attention.head_count_kv", n_head_kv, &have_kv);
    GET("expert_count", n_expert, NULL);
#undef GET
    if (!have_kv) n_head_kv = n_head;
    for (int64_t i = 0; i < dz_gguf_n_tensors(g); i++) {
        const char *name = dz_gguf_tensor_at(g, i)->name;
        if (has(name, "attn_v.weight") || has(name, "attn_qkv.weight") || has(name, "attn_kv_b.weight"))
            m->n_attn_v++;
        if (!strcmp(name, "output.weight")) m->has_output = true;
    }
    m->n_layer = n_layer > 0 && n_layer < (1 << 20) ? (int32_t)n_layer : 0;
    m->n_gqa = n_head > 0 && n_head_kv > 0 ? (int32_t)(n_head / n_head_kv) : 1;
    m->n_expert = n_expert > 0 && n_expert < (1 << 20) ? (int32_t)n_expert : 0;
    m->is_70b = arch_len == 5 && !memcmp(arch, "llama", 5) && n_layer == 80 && n_head != n_head_kv;
    return DZ_OK;
}

dz_status dz_quantize_plan(const dz_gguf *in, const dz_quantize_params *p, dz_type *types,
                           const char **notes) {
    if (!in || !p || !types) return dz_fail(DZ_ERR_ARG, "quantize: NULL argument");
    const dz_ftype_info *f = dz_ftype_find(p->ftype);
    if (!f) return dz_fail(DZ_ERR_ARG, "quantize: unknown target type '%s'", p->ftype ? p->ftype : "(null)");
    recipe_model m;
    dz_status st = read_model(in, f->ftype, &m);
    if (st) return st;
    /* Recipes shape quantized targets only; float targets convert every matrix. */
    bool recipe = !p->pure && dz_type_info((int)f->base)->is_quantized;
    int64_t n = dz_gguf_n_tensors(in);
    for (int64_t i = 0; i < n; i++) {
        const dz_gguf_tensor *t = dz_gguf_tensor_at(in, i);
        const char *note = NULL;
        dz_type to = t->type;
        if (is_quantizable(t)) {
            to = recipe ? recipe_choice(&m, f->base, t->name, t->ne[0]) : f->base;
            to = fallback(to, t->ne[0], &note);
        }
        if (to != t->type) {
            const dz_type_traits *from = dz_type_info((int)t->type);
            if (from->is_quantized && !p->allow_requantize)
                return dz_fail(DZ_ERR_UNSUPPORTED, "tensor '%s' is already %s; requantizing to %s "
                               "loses accuracy (allow it explicitly)", t->name, from->name, dz_type_name(to));
            if (!dz_type_can_dequantize(t->type))
                return dz_fail(DZ_ERR_UNSUPPORTED, "tensor '%s': dizuo cannot read type %s",
                               t->name, from->name);
            if (!dz_type_can_quantize(to))
                return dz_fail(DZ_ERR_UNSUPPORTED, "tensor '%s' needs type %s, which dizuo cannot "
                               "write yet", t->name, dz_type_name(to));
        }
        types[i] = to;
        if (notes) notes[i] = note;
    }
    return DZ_OK;
}
