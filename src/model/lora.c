/* LoRA adapters at inference: reading and checking an adapter file against
 * its base, and binding its pairs to the layers' projections, where
 * dz_lora_mul_mat adds scale * B (A x) to W x in both forward passes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/lora.h"
#include "model/model_impl.h"

typedef struct lora_pair_data {
    char name[96];  /* the base matrix */
    int64_t in, out;
    float *a, *b;   /* (in, r) and (r, out), F32 */
} lora_pair_data;

struct dz_lora_adapter {
    int32_t rank, n_pairs;
    float alpha;
    lora_pair_data *pairs;
};

struct dz_model_lora {
    dz_ctx *ctx;
    dz_buffer *buf;
};

dz_tensor *dz_lora_mul_mat(dz_ctx *ctx, dz_tensor *w, const dz_lora_pair *p, dz_tensor *x) {
    dz_tensor *y = dz_mul_mat(ctx, w, x);
    if (!p || !p->a) return y;
    return dz_add(ctx, y, dz_scale(ctx, dz_mul_mat(ctx, p->b, dz_mul_mat(ctx, p->a, x)), p->scale));
}

void dz_model_lora_free(struct dz_model_lora *l) {
    if (!l) return;
    dz_buffer_free(l->buf);
    dz_ctx_destroy(l->ctx);
    free(l);
}

void dz_lora_adapter_free(dz_lora_adapter *a) {
    if (!a) return;
    for (int32_t i = 0; i < a->n_pairs; i++) {
        free(a->pairs[i].a);
        free(a->pairs[i].b);
    }
    free(a->pairs);
    free(a);
}

int32_t dz_lora_adapter_rank(const dz_lora_adapter *a) { return a->rank; }
float dz_lora_adapter_alpha(const dz_lora_adapter *a) { return a->alpha; }
int32_t dz_lora_adapter_n_pairs(const dz_lora_adapter *a) { return a->n_pairs; }
float dz_lora_adapter_factor(const dz_lora_adapter *a, float s) {
    return a->alpha != 0 ? s * a->alpha / (float)a->rank : s;
}

const char *dz_lora_adapter_pair(const dz_lora_adapter *a, int32_t i, int64_t *in, int64_t *out, const float **A,
                                 const float **B) {
    if (i < 0 || i >= a->n_pairs) return NULL;
    const lora_pair_data *p = &a->pairs[i];
    if (in) *in = p->in;
    if (out) *out = p->out;
    if (A) *A = p->a;
    if (B) *B = p->b;
    return p->name;
}

/* The F32 values of a 2-D tensor t (ne0 x ne1) in a new array. */
static dz_status read_f32(const dz_gguf_tensor *t, float **out) {
    if (t->type != DZ_TYPE_F32 && !dz_type_can_dequantize(t->type))
        return dz_fail(DZ_ERR_UNSUPPORTED, "tensor '%s' has type %s, which dizuo cannot convert to F32", t->name,
                       dz_type_name(t->type));
    size_t row;
    dz_status st = dz_row_size(t->type, t->ne[0], &row);
    if (st) return st;
    float *d = malloc((size_t)(t->ne[0] * t->ne[1]) * sizeof *d);
    if (!d) return dz_fail(DZ_ERR_NOMEM, "out of memory for tensor '%s'", t->name);
    for (int64_t r = 0; !st && r < t->ne[1]; r++) {
        const uint8_t *src = (const uint8_t *)t->data + (size_t)r * row;
        if (t->type == DZ_TYPE_F32) memcpy(d + r * t->ne[0], src, (size_t)t->ne[0] * sizeof(float));
        else st = dz_dequantize_row(t->type, src, d + r * t->ne[0], t->ne[0]);
    }
    if (st) {
        free(d);
        return st;
    }
    *out = d;
    return DZ_OK;
}

static bool has_suffix(const char *s, const char *suffix, size_t *stem) {
    size_t n = strlen(s), k = strlen(suffix);
    *stem = n - k;
    return n > k && !strcmp(s + n - k, suffix);
}

/* s (len bytes, not NUL-terminated) equals lit. */
static bool str_is(const char *s, size_t len, const char *lit) { return len == strlen(lit) && !memcmp(s, lit, len); }

/* Checks the keys of g against base. */
static dz_status check_keys(const dz_gguf *g, const dz_gguf *base, float *alpha) {
    const char *type = NULL, *atype = NULL, *arch = NULL, *base_arch = NULL;
    size_t len = 0, blen = 0;
    bool found = false;
    dz_status st = dz_gguf_get_str(g, "general.type", &type, &len, &found);
    if (st || !found || !str_is(type, len, "adapter"))
        return dz_fail(DZ_ERR_FORMAT, "not an adapter: general.type is %s%.*s%s, not \"adapter\"", found ? "\"" : "",
                       found ? (int)len : 6, found ? type : "absent", found ? "\"" : "");
    st = dz_gguf_get_str(g, "adapter.type", &atype, &len, &found);
    if (st || !found || !str_is(atype, len, "lora"))
        return dz_fail(DZ_ERR_FORMAT, "adapter.type is %.*s, not \"lora\"", found ? (int)len : 6, found ? atype : "absent");
    st = dz_gguf_get_str(g, "general.architecture", &arch, &len, &found);
    if (st || !found) return dz_fail(DZ_ERR_FORMAT, "general.architecture is missing");
    st = dz_gguf_get_str(base, "general.architecture", &base_arch, &blen, &found);
    if (st || !found) return dz_fail(DZ_ERR_FORMAT, "the base model has no general.architecture");
    if (len != blen || memcmp(arch, base_arch, len))
        return dz_fail(DZ_ERR_FORMAT, "the adapter is for architecture '%.*s', the base model is '%.*s'", (int)len, arch,
                       (int)blen, base_arch);
    double a = 0;
    st = dz_gguf_get_float(g, "adapter.lora.alpha", &a, &found);
    if (st) return st;
    *alpha = found ? (float)a : 0.0f;
    if (!(*alpha >= 0 && *alpha < 1e30f)) return dz_fail(DZ_ERR_FORMAT, "adapter.lora.alpha %g is not a finite value >= 0", a);
    return DZ_OK;
}

/* Fills pair p from the tensors of base matrix `name`: a and b. */
static dz_status read_pair(const dz_gguf *base, const char *name, const dz_gguf_tensor *a, const dz_gguf_tensor *b,
                           int32_t *rank, lora_pair_data *p) {
    const dz_gguf_tensor *w = dz_gguf_find_tensor(base, name);
    if (!w) return dz_fail(DZ_ERR_FORMAT, "'%s.lora_a' adapts '%s', which the base model does not have", name, name);
    if (w->n_dims != 2) return dz_fail(DZ_ERR_FORMAT, "'%s' in the base model is not a matrix", name);
    if (!b) return dz_fail(DZ_ERR_FORMAT, "'%s.lora_a' has no '%s.lora_b'", name, name);
    if (!a) return dz_fail(DZ_ERR_FORMAT, "'%s.lora_b' has no '%s.lora_a'", name, name);
    if (a->n_dims != 2 || b->n_dims != 2 || a->ne[0] != w->ne[0] || b->ne[1] != w->ne[1] || a->ne[1] != b->ne[0])
        return dz_fail(DZ_ERR_FORMAT,
                       "'%s' is (%lld, %lld): lora_a must be (%lld, r) and lora_b (r, %lld), but they are "
                       "(%lld, %lld, %lld) and (%lld, %lld, %lld)",
                       name, (long long)w->ne[0], (long long)w->ne[1], (long long)w->ne[0], (long long)w->ne[1],
                       (long long)a->ne[0], (long long)a->ne[1], (long long)a->ne[2], (long long)b->ne[0],
                       (long long)b->ne[1], (long long)b->ne[2]);
    if (*rank == 0) *rank = (int32_t)a->ne[1];
    if (a->ne[1] != *rank)
        return dz_fail(DZ_ERR_FORMAT, "'%s' has rank %lld, the adapter's other pairs rank %d", name,
                       (long long)a->ne[1], *rank);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->in = w->ne[0];
    p->out = w->ne[1];
    dz_status st = read_f32(a, &p->a);
    if (!st) st = read_f32(b, &p->b);
    return st;
}

dz_status dz_lora_adapter_load(const char *path, const dz_gguf *base, dz_lora_adapter **out) {
    dz_gguf *g = NULL;
    dz_status st = dz_gguf_open(path, &g);
    if (st) return st;
    dz_lora_adapter *ad = calloc(1, sizeof *ad);
    const int64_t n = dz_gguf_n_tensors(g);
    if (!ad || !(ad->pairs = calloc((size_t)(n / 2 + 1), sizeof *ad->pairs)))
        st = dz_fail(DZ_ERR_NOMEM, "out of memory for the adapter");
    if (!st) st = check_keys(g, base, &ad->alpha);
    for (int64_t i = 0; !st && i < n; i++) {
        const dz_gguf_tensor *t = dz_gguf_tensor_at(g, i);
        size_t stem;
        bool is_a = has_suffix(t->name, ".lora_a", &stem), is_b = !is_a && has_suffix(t->name, ".lora_b", &stem);
        if (!is_a && !is_b) {
            st = dz_fail(DZ_ERR_FORMAT, "tensor '%s' is neither a .lora_a nor a .lora_b", t->name);
            break;
        }
        if (stem >= sizeof ad->pairs[0].name) {
            st = dz_fail(DZ_ERR_FORMAT, "tensor name '%s' is too long", t->name);
            break;
        }
        char name[96], other[112];
        snprintf(name, sizeof name, "%.*s", (int)stem, t->name);
        snprintf(other, sizeof other, "%s.lora_%c", name, is_a ? 'b' : 'a');
        const dz_gguf_tensor *o = dz_gguf_find_tensor(g, other);
        if (is_b) { /* pairs are read at their lora_a; a lone lora_b is an error */
            if (!o) st = dz_fail(DZ_ERR_FORMAT, "'%s' has no '%s'", t->name, other);
            continue;
        }
        if (ad->n_pairs > n / 2) {
            st = dz_fail(DZ_ERR_FORMAT, "more .lora_a tensors than pairs");
            break;
        }
        st = read_pair(base, name, t, o, &ad->rank, &ad->pairs[ad->n_pairs]);
        ad->n_pairs++;
    }
    if (!st && ad->n_pairs == 0) st = dz_fail(DZ_ERR_FORMAT, "the adapter holds no .lora_a/.lora_b pairs");
    dz_gguf_close(g);
    if (st) {
        dz_lora_adapter_free(ad);
        return dz_error_prefix(st, "%s: ", path);
    }
    *out = ad;
    return DZ_OK;
}

/* The layer and slot of base matrix `name` in m; false for a matrix dizuo
 * does not adapt. gpt2's attn_qkv has three slots (q, k, v): *fused. */
static bool slot_of(const dz_model *m, const char *name, int32_t *layer, int *slot, bool *fused) {
    static const struct { const char *kind; int slot; } kinds[] = {
        {"attn_q", DZ_LORA_Q},       {"attn_k", DZ_LORA_K},   {"attn_v", DZ_LORA_V},
        {"attn_output", DZ_LORA_O},  {"ffn_gate", DZ_LORA_GATE}, {"ffn_up", DZ_LORA_UP},
        {"ffn_down", DZ_LORA_DOWN},  {"attn_qkv", DZ_LORA_Q},
    };
    int l = -1, end = 0;
    char kind[32];
    if (sscanf(name, "blk.%d.%31[a-z_].weight%n", &l, kind, &end) != 2 || name[end] != '\0') return false;
    if (l < 0 || l >= m->hp.n_layer) return false;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        if (!strcmp(kind, kinds[k].kind)) {
            *fused = !strcmp(kind, "attn_qkv");
            const bool gpt2 = m->arch == DZ_ARCH_GPT2;
            /* gpt2 has a fused attn_qkv and no gate; the others separate q, k, v */
            if (gpt2 ? (kinds[k].slot == DZ_LORA_GATE || (!*fused && kinds[k].slot <= DZ_LORA_V)) : *fused)
                return false;
            *layer = l;
            *slot = kinds[k].slot;
            return true;
        }
    return false;
}

/* A weight-like F32 tensor (ne0, ne1) at offset of buf. */
static dz_tensor *bind_new(dz_ctx *ctx, dz_buffer *buf, size_t offset, int64_t ne0, int64_t ne1, const char *name,
                           const char *suffix, dz_status *st) {
    dz_tensor *t = dz_new_tensor_2d(ctx, DZ_TYPE_F32, ne0, ne1);
    if (!t) {
        *st = dz_fail(DZ_ERR_NOMEM, "adapter tensors: %s", dz_ctx_error(ctx));
        return NULL;
    }
    dz_set_name(t, "%s.%s", name, suffix);
    t->flags |= DZ_TENSOR_WEIGHT;
    *st = dz_tensor_bind(t, buf, offset);
    return *st ? NULL : t;
}

/* Binds pair p of ad to its slot(s) in the staged layer copies `layers`. */
static dz_status bind_pair(dz_model *m, const dz_lora_adapter *ad, int32_t i, struct dz_model_lora *ml,
                           size_t *offset, dz_layer *layers, float factor) {
    const lora_pair_data *p = &ad->pairs[i];
    const int64_t r = ad->rank;
    int32_t l;
    int slot;
    bool fused;
    if (!slot_of(m, p->name, &l, &slot, &fused))
        return dz_fail(DZ_ERR_UNSUPPORTED, "'%s': dizuo applies adapters to the layers' projections only (%s)",
                       p->name, m->arch == DZ_ARCH_GPT2 ? "attn_qkv, attn_output, ffn_up, ffn_down"
                                                        : "attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down");
    if (layers[l].lora[slot].a) return dz_fail(DZ_ERR_FORMAT, "'%s' is adapted twice", p->name);
    dz_status st = DZ_OK;
    const size_t a_bytes = (size_t)(p->in * r) * sizeof(float), b_bytes = (size_t)(r * p->out) * sizeof(float);
    dz_tensor *a = bind_new(ml->ctx, ml->buf, *offset, p->in, r, p->name, "lora_a", &st);
    if (!st) st = dz_tensor_write(a, p->a, 0, a_bytes);
    if (st) return st;
    const int parts = fused ? 3 : 1;
    const int64_t rows = p->out / parts;
    for (int k = 0; k < parts; k++) {
        dz_tensor *b = bind_new(ml->ctx, ml->buf, *offset + a_bytes + (size_t)k * b_bytes / parts, r, rows, p->name,
                                "lora_b", &st);
        if (!st) st = dz_tensor_write(b, p->b + (size_t)(k * rows * r), 0, b_bytes / parts);
        if (st) return st;
        layers[l].lora[slot + k] = (dz_lora_pair){.a = a, .b = b, .scale = factor};
    }
    *offset += a_bytes + b_bytes;
    return DZ_OK;
}

dz_status dz_model_apply_lora(dz_model *m, const char *path, float s) {
    if (m->lora) return dz_fail(DZ_ERR_ARG, "%s: the model already has an adapter applied", path);
    dz_lora_adapter *ad = NULL;
    dz_status st = dz_lora_adapter_load(path, m->gguf, &ad);
    if (st) return st;
    struct dz_model_lora *ml = calloc(1, sizeof *ml);
    dz_layer *layers = malloc((size_t)m->hp.n_layer * sizeof *layers);
    dz_ctx *gctx = dz_ctx_create(100 * m->hp.n_layer + 64); /* the pass grows by up to 28 headers per layer */
    size_t total = 0, offset = 0;
    for (int32_t i = 0; i < ad->n_pairs; i++)
        total += (size_t)((ad->pairs[i].in + ad->pairs[i].out) * ad->rank) * sizeof(float);
    if (!ml || !layers || !gctx || !(ml->ctx = dz_ctx_create(4 * ad->n_pairs + 4)))
        st = dz_fail(DZ_ERR_NOMEM, "out of memory for the adapter");
    if (!st) {
        memcpy(layers, m->layers, (size_t)m->hp.n_layer * sizeof *layers);
        st = dz_buffer_alloc(m->device, total, &ml->buf);
    }
    const float factor = dz_lora_adapter_factor(ad, s);
    for (int32_t i = 0; !st && i < ad->n_pairs; i++) st = bind_pair(m, ad, i, ml, &offset, layers, factor);
    dz_lora_adapter_free(ad);
    if (st) {
        dz_model_lora_free(ml);
        dz_ctx_destroy(gctx);
        free(layers);
        return dz_error_prefix(st, "%s: ", path);
    }
    memcpy(m->layers, layers, (size_t)m->hp.n_layer * sizeof *layers);
    free(layers);
    dz_ctx_destroy(m->gctx);
    m->gctx = gctx;
    m->lora = ml;
    return DZ_OK;
}
