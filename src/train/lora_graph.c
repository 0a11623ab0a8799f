/* The LoRA training graph of one row: the forward pass of a frozen base
 * (llama, qwen2 or gpt2, weights in their file types) with y = W x +
 * scale * B (A x) on every adapted projection, the mean cross-entropy, and
 * the backward pass written out with the tier-T ops down to the lowest
 * adapted layer. Only A and B get gradients.
 *
 * Shapes: d = n_embd, T tokens, hd = head size, nh / nkv heads, r = rank. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/lora_impl.h"

typedef struct lslot {
    lora_target *t; /* NULL: not adapted */
    int part;       /* 0, or 0..2 for a fused qkv */
} lslot;

typedef struct saved {
    lslot s[DZ_LORA_SLOTS];
    dz_tensor *u[DZ_LORA_SLOTS]; /* A x of each adapted slot */
    dz_tensor *x, *r1, *n1, *q, *k, *v, *a2, *h, *r2, *n2, *gate, *up, *act;
} saved;

static dz_tensor *add_bias(dz_ctx *ctx, dz_tensor *x, dz_tensor *b) { return b ? dz_add(ctx, x, b) : x; }
static dz_tensor *cont(dz_ctx *ctx, dz_tensor *t) { return dz_scale(ctx, t, 1.0f); }

/* y = W x (+ scale B (A x)); *u keeps A x. */
static dz_tensor *proj(dz_ctx *ctx, float scale, dz_tensor *w, const lslot *s, dz_tensor *x, dz_tensor **u) {
    dz_tensor *y = dz_mul_mat(ctx, w, x);
    if (!s->t) return y;
    *u = dz_mul_mat(ctx, s->t->a, x);
    return dz_add(ctx, y, dz_scale(ctx, dz_mul_mat(ctx, s->t->b[s->part], *u), scale));
}

/* Backward of proj: records dA and dB, returns dx. */
static dz_tensor *proj_back(dz_ctx *ctx, float scale, dz_tensor *w, const lslot *s, dz_tensor *x, dz_tensor *u,
                            dz_tensor *dy) {
    dz_tensor *dx = dz_mul_mat_back_x(ctx, w, dy);
    if (!s->t) return dx;
    lora_target *t = s->t;
    t->grad_b[s->part] = dz_scale(ctx, dz_mul_mat_back_w(ctx, u, dy), scale);
    dz_tensor *du = dz_scale(ctx, dz_mul_mat_back_x(ctx, t->b[s->part], dy), scale);
    dz_tensor *da = dz_mul_mat_back_w(ctx, x, du);
    t->grad_a = t->grad_a ? dz_add(ctx, t->grad_a, da) : da;
    return dz_add(ctx, dx, dz_mul_mat_back_x(ctx, t->a, du));
}

static dz_tensor *norm(dz_ctx *ctx, const dz_model *m, dz_tensor *x) {
    return m->arch == DZ_ARCH_GPT2 ? dz_layer_norm(ctx, x, m->hp.norm_eps) : dz_rms_norm(ctx, x, m->hp.norm_eps);
}

static dz_tensor *norm_back(dz_ctx *ctx, const dz_model *m, dz_tensor *x, dz_tensor *dy) {
    return m->arch == DZ_ARCH_GPT2 ? dz_layer_norm_back(ctx, x, dy, m->hp.norm_eps)
                                   : dz_rms_norm_back(ctx, x, dy, m->hp.norm_eps);
}

static dz_tensor *rope(dz_ctx *ctx, const dz_model *m, dz_tensor *x, dz_tensor *pos, bool back) {
    const dz_model_hparams *hp = &m->hp;
    if (m->arch == DZ_ARCH_GPT2) return x;
    return back ? dz_rope_back(ctx, x, pos, hp->n_rot, hp->rope_mode, hp->rope_freq_base, hp->rope_freq_scale)
                : dz_rope(ctx, x, pos, hp->n_rot, hp->rope_mode, hp->rope_freq_base, hp->rope_freq_scale);
}

static dz_tensor *build(const dz_model *m, saved *L, int32_t low, float sc, int32_t T, lora_graph *g) {
    const dz_model_hparams *hp = &m->hp;
    dz_ctx *ctx = g->ctx;
    const int32_t hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv;
    const float kq = 1.0f / sqrtf((float)hd);
    const bool gpt2 = m->arch == DZ_ARCH_GPT2;
    dz_tensor *x = dz_model_input(ctx, m, g->ids, g->pos);
    for (int32_t il = 0; il < hp->n_layer; il++) {
        const dz_layer *l = &m->layers[il];
        saved *s = &L[il];
        s->x = x;
        s->r1 = norm(ctx, m, x);
        s->n1 = add_bias(ctx, dz_mul(ctx, s->r1, l->attn_norm), l->attn_norm_b);
        s->q = rope(ctx, m, dz_reshape_3d(ctx, add_bias(ctx, proj(ctx, sc, l->wq, &s->s[DZ_LORA_Q], s->n1, &s->u[DZ_LORA_Q]), l->bq), hd, nh, T), g->pos, false);
        s->k = rope(ctx, m, dz_reshape_3d(ctx, add_bias(ctx, proj(ctx, sc, l->wk, &s->s[DZ_LORA_K], s->n1, &s->u[DZ_LORA_K]), l->bk), hd, nkv, T), g->pos, false);
        s->v = dz_reshape_3d(ctx, add_bias(ctx, proj(ctx, sc, l->wv, &s->s[DZ_LORA_V], s->n1, &s->u[DZ_LORA_V]), l->bv), hd, nkv, T);
        dz_tensor *a = dz_attention(ctx, s->q, s->k, s->v, NULL, kq, true, 0);
        s->a2 = dz_reshape_2d(ctx, a, (int64_t)hd * nh, T);
        s->h = dz_add(ctx, x, add_bias(ctx, proj(ctx, sc, l->wo, &s->s[DZ_LORA_O], s->a2, &s->u[DZ_LORA_O]), l->bo));
        s->r2 = norm(ctx, m, s->h);
        s->n2 = add_bias(ctx, dz_mul(ctx, s->r2, l->ffn_norm), l->ffn_norm_b);
        if (gpt2) {
            s->up = add_bias(ctx, proj(ctx, sc, l->ffn_up, &s->s[DZ_LORA_UP], s->n2, &s->u[DZ_LORA_UP]), l->ffn_up_b);
            s->act = dz_gelu(ctx, s->up);
        } else {
            s->gate = proj(ctx, sc, l->ffn_gate, &s->s[DZ_LORA_GATE], s->n2, &s->u[DZ_LORA_GATE]);
            s->up = proj(ctx, sc, l->ffn_up, &s->s[DZ_LORA_UP], s->n2, &s->u[DZ_LORA_UP]);
            s->act = dz_swiglu(ctx, s->gate, s->up);
        }
        x = dz_add(ctx, s->h, add_bias(ctx, proj(ctx, sc, l->ffn_down, &s->s[DZ_LORA_DOWN], s->act, &s->u[DZ_LORA_DOWN]), l->ffn_down_b));
    }
    dz_tensor *rf = norm(ctx, m, x);
    dz_tensor *nf = add_bias(ctx, dz_mul(ctx, rf, m->output_norm), m->output_norm_b);
    dz_tensor *logits = dz_mul_mat(ctx, m->output, nf);
    dz_tensor *loss = dz_cross_entropy(ctx, logits, g->targets);

    /* backward: only what reaches an adapter */
    dz_tensor *dlogits = dz_cross_entropy_back(ctx, logits, g->targets, 1.0f);
    dz_tensor *dx = norm_back(ctx, m, x, dz_mul(ctx, dz_mul_mat_back_x(ctx, m->output, dlogits), m->output_norm));
    for (int32_t il = hp->n_layer - 1; il >= low; il--) {
        const dz_layer *l = &m->layers[il];
        saved *s = &L[il];
        dz_tensor *dn2;
        dz_tensor *dact = proj_back(ctx, sc, l->ffn_down, &s->s[DZ_LORA_DOWN], s->act, s->u[DZ_LORA_DOWN], dx);
        if (gpt2) {
            dz_tensor *dup = dz_gelu_back(ctx, s->up, dact);
            dn2 = proj_back(ctx, sc, l->ffn_up, &s->s[DZ_LORA_UP], s->n2, s->u[DZ_LORA_UP], dup);
        } else {
            dz_tensor *dgu = dz_swiglu_back(ctx, s->gate, s->up, dact); /* (ff, T, 2) */
            dz_tensor *dgate = dgu ? dz_view_2d(ctx, dgu, dgu->ne[0], T, dgu->nb[1], 0) : NULL;
            dz_tensor *dup = dgu ? dz_view_2d(ctx, dgu, dgu->ne[0], T, dgu->nb[1], dgu->nb[2]) : NULL;
            dn2 = dz_add(ctx, proj_back(ctx, sc, l->ffn_gate, &s->s[DZ_LORA_GATE], s->n2, s->u[DZ_LORA_GATE], dgate),
                         proj_back(ctx, sc, l->ffn_up, &s->s[DZ_LORA_UP], s->n2, s->u[DZ_LORA_UP], dup));
        }
        dz_tensor *dh = dz_add(ctx, dx, norm_back(ctx, m, s->h, dz_mul(ctx, dn2, l->ffn_norm)));
        dz_tensor *da = dz_reshape_3d(ctx, proj_back(ctx, sc, l->wo, &s->s[DZ_LORA_O], s->a2, s->u[DZ_LORA_O], dh), hd, nh, T);
        dz_tensor *dqkv = dz_attention_back(ctx, s->q, s->k, s->v, da, kq); /* (hd (nh + 2 nkv), T) */
        size_t cb = dqkv ? dqkv->nb[1] : 0, hb = (size_t)hd * sizeof(float);
        dz_tensor *dq = dz_view_3d(ctx, dqkv, hd, nh, T, hb, cb, 0);
        dz_tensor *dk = dz_view_3d(ctx, dqkv, hd, nkv, T, hb, cb, (size_t)nh * hb);
        dz_tensor *dv = dz_view_2d(ctx, dqkv, (int64_t)hd * nkv, T, cb, (size_t)(nh + nkv) * hb);
        dq = dz_reshape_2d(ctx, rope(ctx, m, cont(ctx, dq), g->pos, true), (int64_t)hd * nh, T);
        dk = dz_reshape_2d(ctx, rope(ctx, m, cont(ctx, dk), g->pos, true), (int64_t)hd * nkv, T);
        dv = cont(ctx, dv);
        dz_tensor *dn1 = dz_add(ctx,
                                dz_add(ctx, proj_back(ctx, sc, l->wq, &s->s[DZ_LORA_Q], s->n1, s->u[DZ_LORA_Q], dq),
                                       proj_back(ctx, sc, l->wk, &s->s[DZ_LORA_K], s->n1, s->u[DZ_LORA_K], dk)),
                                proj_back(ctx, sc, l->wv, &s->s[DZ_LORA_V], s->n1, s->u[DZ_LORA_V], dv));
        if (il > low) dx = dz_add(ctx, dh, norm_back(ctx, m, s->x, dz_mul(ctx, dn1, l->attn_norm)));
    }
    return loss;
}

void dz_lora_graph_free(lora_graph *g) {
    dz_ctx_destroy(g->ctx);
    memset(g, 0, sizeof *g);
}

dz_status dz_lora_graph_build(const dz_model *m, lora_target *targets, int32_t n, int32_t rank, float scale,
                              int32_t T, lora_graph *g) {
    const dz_model_hparams *hp = &m->hp;
    memset(g, 0, sizeof *g);
    saved *L = calloc((size_t)hp->n_layer, sizeof *L);
    g->ctx = dz_ctx_create(128 * hp->n_layer + 48 * n + 256);
    if (!L || !g->ctx) {
        free(L);
        dz_lora_graph_free(g);
        return dz_fail(DZ_ERR_NOMEM, "out of memory for the LoRA training graph");
    }
    dz_ctx *ctx = g->ctx;
    int32_t low = hp->n_layer - 1;
    for (int32_t i = 0; i < n; i++) {
        lora_target *t = &targets[i];
        const int parts = t->fused ? 3 : 1;
        t->grad_a = NULL;
        t->a = dz_new_tensor_2d(ctx, DZ_TYPE_F32, t->in, rank);
        if (t->a) dz_set_name(t->a, "%s.lora_a", t->name);
        for (int k = 0; k < parts; k++) {
            t->grad_b[k] = NULL;
            t->b[k] = dz_new_tensor_2d(ctx, DZ_TYPE_F32, rank, t->out / parts);
            if (t->b[k]) dz_set_name(t->b[k], "%s.lora_b%d", t->name, k);
            L[t->layer].s[t->slot + k] = (lslot){.t = t, .part = k};
        }
        if (t->layer < low) low = t->layer;
    }
    g->ids = dz_new_tensor_1d(ctx, DZ_TYPE_I32, T);
    g->targets = dz_new_tensor_1d(ctx, DZ_TYPE_I32, T);
    g->pos = dz_new_tensor_1d(ctx, DZ_TYPE_I32, T);
    dz_set_input(g->ids);
    dz_set_input(g->targets);
    dz_set_input(g->pos);
    g->loss = dz_ctx_status(ctx) ? NULL : build(m, L, low, scale, T, g);
    free(L);
    dz_status st = dz_ctx_status(ctx);
    if (!st && g->loss) {
        dz_set_output(g->loss);
        g->graph = dz_graph_build(ctx, g->loss);
    }
    for (int32_t i = 0; !st && g->graph && i < n; i++) {
        lora_target *t = &targets[i];
        dz_tensor *gr[4] = {t->grad_a, t->grad_b[0], t->fused ? t->grad_b[1] : NULL, t->fused ? t->grad_b[2] : NULL};
        for (int k = 0; !st && k < (t->fused ? 4 : 2); k++) {
            if (!gr[k]) {
                st = dz_fail(DZ_ERR_INTERNAL, "no gradient for the adapter of '%s'", t->name);
                break;
            }
            dz_set_output(gr[k]);
            st = dz_graph_expand(ctx, g->graph, gr[k]);
        }
    }
    if (!st && !g->graph) st = DZ_ERR_NOMEM;
    if (st) {
        st = dz_fail(st, "building the LoRA training graph: %s", dz_ctx_status(ctx) ? dz_ctx_error(ctx) : dz_last_error());
        dz_lora_graph_free(g);
    }
    return st;
}
