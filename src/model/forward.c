/* The forward pass as a compute graph, and the KV cache.
 *
 * llama family, per layer (x: (n_embd, T)):
 *   h = rms_norm(x) * attn_norm
 *   q, k, v = Wq h (+bq), Wk h (+bk), Wv h (+bv)     -> (hd, heads, T), rope on q and k
 *   cache[n_past .. n_past+T) <- k, v
 *   x += Wo attention(q, cache_k[0 .. n_past+T), cache_v[...], causal)
 *   h = rms_norm(x) * ffn_norm
 *   x += W_down (silu(W_gate h) * (W_up h))
 * logits = W_out (rms_norm(x) * output_norm)
 *
 * gpt2: x = token_embd[ids] + position_embd[pos]; LayerNorm with weight and
 * bias where llama has RMSNorm; q, k, v from the thirds of attn_qkv (with
 * biases), no rope; Wo and the MLP (W_down gelu(W_up h + b_up) + b_down)
 * with biases. Its learned positions end at n_ctx_train. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_impl.h"

/* The rows [first, first + count) of a cache tensor, shaped like the new k or v. */
static dz_tensor *cache_rows_view(dz_ctx *ctx, dz_tensor *cache, int32_t first, int32_t count) {
    return dz_view_3d(ctx, cache, cache->ne[0], cache->ne[1], count, cache->nb[1], cache->nb[2],
                      (size_t)first * cache->nb[2]);
}

/* Where a cache of `rows` positions lives: on the model's device when that
 * device can both write the new rows itself (the CPY of forward.c, the
 * SET_ROWS of batch.c) and read the cache (ATTENTION over all its rows,
 * PAGED_ATTENTION over up to 64Ki of them), probed on headers of the
 * cache's shape; else on the CPU beside it. A cache write runs where the
 * cache is, so a device that cannot compute it must not hold it; and a
 * cache its attention cannot read would be copied whole at every layer. */
static dz_device *kv_device(dz_model *m, int64_t rows) {
    if (!m->cpu) return m->device;
    const dz_model_hparams *hp = &m->hp;
    const int64_t width = (int64_t)hp->head_dim * hp->n_head_kv;
    const int64_t window = (rows < 65536 ? rows : 65536) + 1;
    dz_ctx *ctx = dz_ctx_create(24);
    dz_tensor *cache = ctx ? dz_new_tensor_3d(ctx, DZ_TYPE_F32, hp->head_dim, hp->n_head_kv, rows) : NULL;
    dz_tensor *fresh = ctx ? dz_new_tensor_3d(ctx, DZ_TYPE_F32, hp->head_dim, hp->n_head_kv, 1) : NULL;
    dz_tensor *q = ctx ? dz_new_tensor_3d(ctx, DZ_TYPE_F32, hp->head_dim, hp->n_head, 1) : NULL;
    dz_tensor *ids = ctx ? dz_new_tensor_1d(ctx, DZ_TYPE_I32, 1) : NULL;
    dz_tensor *index = ctx ? dz_new_tensor_2d(ctx, DZ_TYPE_I32, window, 1) : NULL;
    bool ok = false;
    if (cache && fresh && q && ids && index) {
        dz_tensor *cpy = dz_cpy(ctx, fresh, cache_rows_view(ctx, cache, 0, 1));
        dz_tensor *set = dz_set_rows(ctx, dz_reshape_2d(ctx, cache, width, rows), dz_reshape_2d(ctx, fresh, width, 1), ids);
        dz_tensor *att = dz_attention(ctx, q, cache, cache, NULL, 1.0f, true, (int32_t)(rows - 1));
        dz_tensor *paged = dz_paged_attention(ctx, q, cache, cache, index, 1.0f);
        ok = cpy && set && att && paged && dz_device_supports(m->device, cpy) &&
             dz_device_supports(m->device, set) && dz_device_supports(m->device, att) &&
             dz_device_supports(m->device, paged);
    }
    dz_ctx_destroy(ctx);
    if (!ok)
        dz_log(DZ_LOG_INFO, "a KV cache of %lld positions stays on the CPU: %s cannot write or read it there\n",
               (long long)rows, dz_device_props_get(m->device)->name);
    return ok ? m->device : m->cpu;
}

dz_status dz_kv_tensors_create(dz_model *m, int64_t rows, const char *name, dz_ctx **ctx_out,
                               dz_buffer **buf_out, dz_tensor ***k_out, dz_tensor ***v_out) {
    const dz_model_hparams *hp = &m->hp;
    dz_tensor **k = calloc((size_t)hp->n_layer, sizeof *k), **v = calloc((size_t)hp->n_layer, sizeof *v);
    dz_ctx *ctx = dz_ctx_create(2 * hp->n_layer + 4);
    dz_buffer *buf = NULL;
    dz_status st = DZ_OK;
    if (!k || !v || !ctx) st = dz_fail(DZ_ERR_NOMEM, "out of memory for the %s tensors", name);
    size_t per_tensor = 0, total = 0;
    if (!st) {
        const size_t row = (size_t)hp->head_dim * (size_t)hp->n_head_kv * sizeof(float);
        if (rows < 1 || dz_mul_overflows(row, (size_t)rows, &per_tensor) ||
            dz_mul_overflows(per_tensor, 2 * (size_t)hp->n_layer, &total))
            st = dz_fail(DZ_ERR_ARG, "a %s of %lld positions does not fit in memory", name, (long long)rows);
    }
    /* Not cleared: a pass reads only rows that it or an earlier one wrote,
     * and an untouched large cache costs neither time nor resident memory. */
    dz_device *dev = st ? NULL : kv_device(m, rows);
    if (!st && (st = dz_buffer_alloc(dev, total, &buf)))
        dz_error_prefix(st, "the %s (%lld positions, %zu bytes): ", name, (long long)rows, total);
    for (int32_t i = 0; !st && i < hp->n_layer; i++) {
        k[i] = dz_new_tensor_3d(ctx, DZ_TYPE_F32, hp->head_dim, hp->n_head_kv, rows);
        v[i] = dz_new_tensor_3d(ctx, DZ_TYPE_F32, hp->head_dim, hp->n_head_kv, rows);
        if (!k[i] || !v[i]) {
            st = dz_fail(DZ_ERR_NOMEM, "%s tensors: %s", name, dz_ctx_error(ctx));
            break;
        }
        dz_set_name(k[i], "%s_k.%d", name, i);
        dz_set_name(v[i], "%s_v.%d", name, i);
        st = dz_tensor_bind(k[i], buf, (size_t)(2 * i) * per_tensor);
        if (!st) st = dz_tensor_bind(v[i], buf, (size_t)(2 * i + 1) * per_tensor);
    }
    if (st) {
        dz_buffer_free(buf);
        dz_ctx_destroy(ctx);
        free(k);
        free(v);
        return st;
    }
    *ctx_out = ctx;
    *buf_out = buf;
    *k_out = k;
    *v_out = v;
    return DZ_OK;
}

dz_status dz_kv_cache_create(dz_model *m, int32_t n_ctx, dz_kv_cache **out) {
    if (n_ctx < 1) return dz_fail(DZ_ERR_ARG, "context size %d must be at least 1", n_ctx);
    if (m->arch == DZ_ARCH_GPT2 && n_ctx > m->hp.n_ctx_train)
        return dz_fail(DZ_ERR_ARG, "context size %d exceeds the model's %d learned positions (gpt2.context_length)",
                       n_ctx, m->hp.n_ctx_train);
    dz_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return dz_fail(DZ_ERR_NOMEM, "out of memory for the KV cache");
    kv->model = m;
    kv->n_ctx = n_ctx;
    dz_status st = dz_kv_tensors_create(m, n_ctx, "cache", &kv->ctx, &kv->buf, &kv->k, &kv->v);
    if (st) {
        free(kv);
        return st;
    }
    *out = kv;
    return DZ_OK;
}

void dz_kv_cache_free(dz_kv_cache *kv) {
    if (!kv) return;
    dz_buffer_free(kv->buf);
    dz_ctx_destroy(kv->ctx);
    free(kv->k);
    free(kv->v);
    free(kv);
}

int32_t dz_kv_cache_n_ctx(const dz_kv_cache *kv) { return kv->n_ctx; }
size_t dz_kv_cache_bytes(const dz_kv_cache *kv) { return kv->buf ? kv->buf->size : 0; }


static dz_tensor *add_bias(dz_ctx *ctx, dz_tensor *x, dz_tensor *bias) {
    return bias ? dz_add(ctx, x, bias) : x;
}

dz_status dz_model_check_positions(const dz_model *m, int64_t first, int64_t n) {
    if (m->arch != DZ_ARCH_GPT2 || first + n <= m->hp.n_ctx_train) return DZ_OK;
    return dz_fail(DZ_ERR_ARG, "positions up to %lld exceed the model's %d learned positions (gpt2.context_length)",
                   (long long)(first + n - 1), m->hp.n_ctx_train);
}

dz_tensor *dz_model_input(dz_ctx *ctx, const dz_model *m, dz_tensor *ids, dz_tensor *pos) {
    dz_tensor *x = dz_get_rows(ctx, m->tok_embd, ids); /* (n_embd, T) */
    return m->pos_embd ? dz_add(ctx, x, dz_get_rows(ctx, m->pos_embd, pos)) : x;
}

dz_tensor *dz_model_norm(dz_ctx *ctx, const dz_model *m, dz_tensor *x, dz_tensor *w, dz_tensor *b) {
    const float eps = m->hp.norm_eps;
    if (m->arch == DZ_ARCH_GPT2) return add_bias(ctx, dz_mul(ctx, dz_layer_norm(ctx, x, eps), w), b);
    return add_bias(ctx, dz_mul(ctx, dz_rms_norm(ctx, x, eps), w), b);
}

/* x (hd, heads, T) roped at positions pos; gpt2 (learned positions) leaves it as it is. */
static dz_tensor *rope(dz_ctx *ctx, const dz_model *m, dz_tensor *x, dz_tensor *pos) {
    const dz_model_hparams *hp = &m->hp;
    if (m->arch == DZ_ARCH_GPT2) return x;
    return dz_rope(ctx, x, pos, hp->n_rot, hp->rope_mode, hp->rope_freq_base, hp->rope_freq_scale);
}

void dz_layer_qkv(dz_ctx *ctx, const dz_model *m, const dz_layer *l, dz_tensor *x, dz_tensor *pos, int32_t T,
                  dz_tensor **q, dz_tensor **k, dz_tensor **v) {
    const dz_model_hparams *hp = &m->hp;
    const int32_t hd = hp->head_dim;
    dz_tensor *h = dz_model_norm(ctx, m, x, l->attn_norm, l->attn_norm_b);
    *q = rope(ctx, m, dz_reshape_3d(ctx, add_bias(ctx, dz_lora_mul_mat(ctx, l->wq, &l->lora[DZ_LORA_Q], h), l->bq), hd, hp->n_head, T), pos);
    *k = rope(ctx, m, dz_reshape_3d(ctx, add_bias(ctx, dz_lora_mul_mat(ctx, l->wk, &l->lora[DZ_LORA_K], h), l->bk), hd, hp->n_head_kv, T),
              pos);
    *v = dz_reshape_3d(ctx, add_bias(ctx, dz_lora_mul_mat(ctx, l->wv, &l->lora[DZ_LORA_V], h), l->bv), hd, hp->n_head_kv, T);
}

dz_tensor *dz_layer_finish(dz_ctx *ctx, const dz_model *m, const dz_layer *l, dz_tensor *x, dz_tensor *a) {
    const dz_model_hparams *hp = &m->hp;
    a = dz_reshape_2d(ctx, a, (int64_t)hp->head_dim * hp->n_head, a ? a->ne[2] : 1);
    x = dz_add(ctx, x, add_bias(ctx, dz_lora_mul_mat(ctx, l->wo, &l->lora[DZ_LORA_O], a), l->bo));
    dz_tensor *h = dz_model_norm(ctx, m, x, l->ffn_norm, l->ffn_norm_b);
    dz_tensor *f;
    if (m->arch == DZ_ARCH_GPT2)
        f = dz_gelu(ctx, add_bias(ctx, dz_lora_mul_mat(ctx, l->ffn_up, &l->lora[DZ_LORA_UP], h), l->ffn_up_b));
    else
        f = dz_swiglu(ctx, dz_lora_mul_mat(ctx, l->ffn_gate, &l->lora[DZ_LORA_GATE], h), dz_lora_mul_mat(ctx, l->ffn_up, &l->lora[DZ_LORA_UP], h));
    return dz_add(ctx, x, add_bias(ctx, dz_lora_mul_mat(ctx, l->ffn_down, &l->lora[DZ_LORA_DOWN], f), l->ffn_down_b));
}

bool dz_graph_add_stores(dz_ctx *ctx, dz_graph **g, dz_tensor *k_store, dz_tensor *v_store) {
    if (!*g) {
        *g = dz_graph_build(ctx, k_store);
        if (!*g) return false;
    } else if (dz_graph_expand(ctx, *g, k_store)) {
        return false;
    }
    return dz_graph_expand(ctx, *g, v_store) == DZ_OK;
}

dz_status dz_model_graph_ctx(dz_model *m) {
    if (m->gctx) dz_ctx_reset(m->gctx);
    else m->gctx = dz_ctx_create(64 * m->hp.n_layer + 64); /* headers: ~40 tensors per layer plus the ends */
    return m->gctx ? DZ_OK : dz_fail(DZ_ERR_NOMEM, "out of memory for the forward graph");
}

/* What a pass returns: the last position's logits, every position's, or
 * every position's final hidden state (after the output norm). */
typedef enum { OUT_LAST_LOGITS, OUT_ALL_LOGITS, OUT_HIDDEN } out_kind;

/* Builds the graph of one forward pass; *out is (n_vocab, T or 1) logits or
 * (n_embd, T) hidden states. */
static dz_graph *build_graph(dz_model *m, dz_kv_cache *kv, int32_t T, int32_t n_past,
                             out_kind kind, dz_tensor **ids_out, dz_tensor **pos_out,
                             dz_tensor **logits_out) {
    const dz_model_hparams *hp = &m->hp;
    dz_ctx *ctx = m->gctx;
    const int32_t hd = hp->head_dim, n_kv = n_past + T;
    const float kq_scale = 1.0f / sqrtf((float)hd);

    dz_tensor *ids = dz_new_tensor_1d(ctx, DZ_TYPE_I32, T);
    dz_tensor *pos = dz_new_tensor_1d(ctx, DZ_TYPE_I32, T);
    dz_set_input(ids);
    dz_set_input(pos);
    dz_tensor *x = dz_model_input(ctx, m, ids, pos); /* (n_embd, T) */
    dz_graph *g = NULL;

    for (int32_t il = 0; il < hp->n_layer; il++) {
        const dz_layer *l = &m->layers[il];
        dz_tensor *q, *k, *v;
        dz_layer_qkv(ctx, m, l, x, pos, T, &q, &k, &v);
        if (!dz_graph_add_stores(ctx, &g, dz_cpy(ctx, k, cache_rows_view(ctx, kv->k[il], n_past, T)),
                                 dz_cpy(ctx, v, cache_rows_view(ctx, kv->v[il], n_past, T))))
            return NULL;
        dz_tensor *a = dz_attention(ctx, q, cache_rows_view(ctx, kv->k[il], 0, n_kv),
                                    cache_rows_view(ctx, kv->v[il], 0, n_kv), NULL, kq_scale, true,
                                    n_past); /* (hd, n_head, T) */
        x = dz_layer_finish(ctx, m, l, x, a);
    }
    x = dz_model_norm(ctx, m, x, m->output_norm, m->output_norm_b);
    if (kind == OUT_LAST_LOGITS && T > 1 && x) /* only the last position's logits are needed */
        x = dz_view_2d(ctx, x, x->ne[0], 1, x->nb[1], (size_t)(T - 1) * x->nb[1]);
    dz_tensor *logits = kind == OUT_HIDDEN ? x : dz_mul_mat(ctx, m->output, x);
    dz_set_output(logits);
    if (dz_graph_expand(ctx, g, logits)) return NULL;
    *ids_out = ids;
    *pos_out = pos;
    *logits_out = logits;
    return g;
}

/* One pass of tokens[0..n) at n_past.. into kv; out receives what kind asks
 * for (rows * width floats). */
static dz_status forward(dz_model *m, dz_kv_cache *kv, const int32_t *tokens, int32_t n, int32_t n_past,
                         out_kind kind, float *out_data) {
    const dz_model_hparams *hp = &m->hp;
    if (n < 1) return dz_fail(DZ_ERR_ARG, "no tokens to evaluate");
    if (kv->model != m) return dz_fail(DZ_ERR_ARG, "the KV cache belongs to another model");
    if (n_past >= 0 && dz_model_check_positions(m, n_past, n)) return DZ_ERR_ARG;
    if (n_past < 0 || n > kv->n_ctx - n_past)
        return dz_fail(DZ_ERR_ARG, "%d tokens after position %d exceed the context of %d", n,
                       n_past, kv->n_ctx);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return dz_fail(DZ_ERR_ARG, "token id %d at index %d is outside the vocabulary (0..%d)",
                           tokens[i], i, hp->n_vocab - 1);

    dz_status st = dz_model_graph_ctx(m);
    if (st) return st;
    dz_tensor *ids, *pos, *out;
    dz_graph *g = build_graph(m, kv, n, n_past, kind, &ids, &pos, &out);
    if (!g) {
        st = dz_ctx_status(m->gctx);
        return dz_fail(st ? st : DZ_ERR_INTERNAL, "building the forward graph: %s",
                       dz_ctx_error(m->gctx));
    }
    st = dz_sched_alloc(m->sched, g);
    if (st) return st;
    int32_t *positions = malloc((size_t)n * sizeof *positions);
    if (!positions) return dz_fail(DZ_ERR_NOMEM, "out of memory for positions");
    for (int32_t i = 0; i < n; i++) positions[i] = n_past + i;
    st = dz_tensor_write(ids, tokens, 0, (size_t)n * sizeof *tokens);
    if (!st) st = dz_tensor_write(pos, positions, 0, (size_t)n * sizeof *positions);
    free(positions);
    if (!st) st = dz_sched_compute(m->sched, g);
    if (!st) {
        size_t rows = kind == OUT_LAST_LOGITS ? 1 : (size_t)n;
        size_t width = (size_t)(kind == OUT_HIDDEN ? hp->n_embd : hp->n_vocab);
        st = dz_tensor_read(out, out_data, 0, rows * width * sizeof(float));
    }
    return st;
}

dz_status dz_model_forward(dz_model *m, dz_kv_cache *kv, const int32_t *tokens, int32_t n,
                           int32_t n_past, float *logits, bool all_logits) {
    return forward(m, kv, tokens, n, n_past, all_logits ? OUT_ALL_LOGITS : OUT_LAST_LOGITS, logits);
}

dz_status dz_model_embed(dz_model *m, const int32_t *tokens, int32_t n, float *out) {
    if (n < 1) return dz_fail(DZ_ERR_ARG, "no tokens to embed");
    const size_t d = (size_t)m->hp.n_embd;
    float *hidden = malloc((size_t)n * d * sizeof *hidden);
    if (!hidden) return dz_fail(DZ_ERR_NOMEM, "out of memory for %d hidden states", n);
    dz_kv_cache *kv = NULL;
    dz_status st = dz_kv_cache_create(m, n, &kv);
    if (!st) st = forward(m, kv, tokens, n, 0, OUT_HIDDEN, hidden);
    dz_kv_cache_free(kv);
    if (st) {
        free(hidden);
        return st;
    }
    double *sum = calloc(d, sizeof *sum), norm = 0;
    if (!sum) {
        free(hidden);
        return dz_fail(DZ_ERR_NOMEM, "out of memory for an embedding");
    }
    for (int32_t t = 0; t < n; t++)
        for (size_t i = 0; i < d; i++) sum[i] += hidden[(size_t)t * d + i];
    for (size_t i = 0; i < d; i++) norm += sum[i] * sum[i];
    norm = norm > 0 ? sqrt(norm) : 1; /* the mean's 1/n cancels in the normalisation */
    for (size_t i = 0; i < d; i++) out[i] = (float)(sum[i] / norm);
    free(sum);
    free(hidden);
    return DZ_OK;
}
