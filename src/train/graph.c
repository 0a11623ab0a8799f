/* The training graph of one row: the forward pass of llama or gpt2 (the
 * semantics of docs/training.md), the mean cross-entropy, and the backward
 * pass written out op by op with the tier-T ops. Every forward result the
 * backward needs stays a node of the same graph, so one compute runs both.
 *
 * Shapes: d = n_embd, T tokens, V = n_vocab, hd = head size, nh / nkv heads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/train_impl.h"

typedef struct builder {
    dz_ctx *ctx;
    const dz_train_model *m;
    dz_train_graph *g;
    int32_t T, p; /* p: the next parameter in table order */
} builder;

/* The next parameter's weight leaf (parameters are consumed in table order). */
static dz_tensor *param(builder *b, int32_t *index) {
    *index = b->p;
    return b->g->w[b->p++];
}

/* A contiguous copy of a (possibly strided) view: SCALE by 1 writes a dense result. */
static dz_tensor *cont(dz_ctx *ctx, dz_tensor *t) { return dz_scale(ctx, t, 1.0f); }

/* Records the gradient of parameter i when it is trainable. */
static void set_grad(builder *b, int32_t i, dz_tensor *grad) {
    if (b->m->params[i].trainable) b->g->grad[i] = grad;
}

static bool trainable(const builder *b, int32_t i) { return b->m->params[i].trainable; }

/* dW of y = W x when W (param i) trains. */
static void matmul_grad(builder *b, int32_t i, dz_tensor *x, dz_tensor *dy) {
    if (trainable(b, i)) set_grad(b, i, dz_mul_mat_back_w(b->ctx, x, dy));
}

/* Backward of y = norm(x) * w: records dw = sum over T of dy * norm(x) and
 * returns d norm(x) = dy * w. */
static dz_tensor *scale_back(builder *b, int32_t iw, dz_tensor *w, dz_tensor *normed, dz_tensor *dy) {
    if (trainable(b, iw)) set_grad(b, iw, dz_sum_cols(b->ctx, dz_mul(b->ctx, dy, normed)));
    return dz_mul(b->ctx, dy, w);
}

/* ---- llama ---- */

typedef struct llama_saved {
    int32_t i_an, i_q, i_k, i_v, i_o, i_fn, i_gate, i_up, i_down;
    dz_tensor *an, *wq, *wk, *wv, *wo, *fn, *wgate, *wup, *wdown;
    dz_tensor *x, *r1, *n1, *q, *k, *v, *a2, *h, *r2, *n2, *gate, *up, *s;
} llama_saved;

static dz_tensor *llama_build(builder *b, dz_tensor **dlogits_out) {
    const dz_train_config *c = &b->m->cfg;
    dz_ctx *ctx = b->ctx;
    const int32_t T = b->T, hd = c->n_embd / c->n_head, nh = c->n_head, nkv = c->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd), eps = c->norm_eps;
    llama_saved *L = calloc((size_t)c->n_layer, sizeof *L);
    if (!L) return NULL;
    int32_t i_emb, i_on, i_out = -1;
    dz_tensor *emb = param(b, &i_emb);
    dz_tensor *x = dz_get_rows(ctx, emb, b->g->ids); /* (d, T) */
    for (int32_t l = 0; l < c->n_layer; l++) {
        llama_saved *s = &L[l];
        s->an = param(b, &s->i_an);
        s->wq = param(b, &s->i_q);
        s->wk = param(b, &s->i_k);
        s->wv = param(b, &s->i_v);
        s->wo = param(b, &s->i_o);
        s->fn = param(b, &s->i_fn);
        s->wgate = param(b, &s->i_gate);
        s->wup = param(b, &s->i_up);
        s->wdown = param(b, &s->i_down);
        s->x = x;
        s->r1 = dz_rms_norm(ctx, x, eps);
        s->n1 = dz_mul(ctx, s->r1, s->an);
        s->q = dz_rope(ctx, dz_reshape_3d(ctx, dz_mul_mat(ctx, s->wq, s->n1), hd, nh, T), b->g->pos, hd,
                       DZ_ROPE_NORMAL, c->rope_base, 1.0f);
        s->k = dz_rope(ctx, dz_reshape_3d(ctx, dz_mul_mat(ctx, s->wk, s->n1), hd, nkv, T), b->g->pos, hd,
                       DZ_ROPE_NORMAL, c->rope_base, 1.0f);
        s->v = dz_reshape_3d(ctx, dz_mul_mat(ctx, s->wv, s->n1), hd, nkv, T);
        dz_tensor *a = dz_attention(ctx, s->q, s->k, s->v, NULL, scale, true, 0); /* (hd, nh, T) */
        s->a2 = dz_reshape_2d(ctx, a, (int64_t)hd * nh, T);
        s->h = dz_add(ctx, x, dz_mul_mat(ctx, s->wo, s->a2));
        s->r2 = dz_rms_norm(ctx, s->h, eps);
        s->n2 = dz_mul(ctx, s->r2, s->fn);
        s->gate = dz_mul_mat(ctx, s->wgate, s->n2); /* (ff, T) */
        s->up = dz_mul_mat(ctx, s->wup, s->n2);
        s->s = dz_swiglu(ctx, s->gate, s->up);
        x = dz_add(ctx, s->h, dz_mul_mat(ctx, s->wdown, s->s));
    }
    dz_tensor *onorm = param(b, &i_on);
    dz_tensor *wout = c->tied ? emb : param(b, &i_out);
    dz_tensor *rf = dz_rms_norm(ctx, x, eps), *nf = dz_mul(ctx, rf, onorm);
    dz_tensor *logits = dz_mul_mat(ctx, wout, nf); /* (V, T) */
    dz_tensor *loss = dz_cross_entropy(ctx, logits, b->g->targets);

    /* backward */
    dz_tensor *dlogits = dz_cross_entropy_back(ctx, logits, b->g->targets, 1.0f);
    dz_tensor *dout_w = trainable(b, c->tied ? i_emb : i_out) ? dz_mul_mat_back_w(ctx, nf, dlogits) : NULL;
    if (!c->tied) set_grad(b, i_out, dout_w);
    dz_tensor *dnf = dz_mul_mat_back_x(ctx, wout, dlogits);
    dz_tensor *dx = dz_rms_norm_back(ctx, x, scale_back(b, i_on, onorm, rf, dnf), eps);
    for (int32_t l = c->n_layer - 1; l >= 0; l--) {
        llama_saved *s = &L[l];
        /* x' = h + W_down swiglu(W_gate n2, W_up n2) */
        matmul_grad(b, s->i_down, s->s, dx);
        dz_tensor *ds = dz_mul_mat_back_x(ctx, s->wdown, dx);
        dz_tensor *dgu = dz_swiglu_back(ctx, s->gate, s->up, ds); /* (ff, T, 2) */
        dz_tensor *dgate = dgu ? dz_view_2d(ctx, dgu, dgu->ne[0], T, dgu->nb[1], 0) : NULL;
        dz_tensor *dup = dgu ? dz_view_2d(ctx, dgu, dgu->ne[0], T, dgu->nb[1], dgu->nb[2]) : NULL;
        matmul_grad(b, s->i_gate, s->n2, dgate);
        matmul_grad(b, s->i_up, s->n2, dup);
        dz_tensor *dn2 = dz_add(ctx, dz_mul_mat_back_x(ctx, s->wgate, dgate), dz_mul_mat_back_x(ctx, s->wup, dup));
        dz_tensor *dh = dz_add(ctx, dx, dz_rms_norm_back(ctx, s->h, scale_back(b, s->i_fn, s->fn, s->r2, dn2), eps));
        /* h = x + Wo attention(rope(Wq n1), rope(Wk n1), Wv n1) */
        matmul_grad(b, s->i_o, s->a2, dh);
        dz_tensor *da = dz_reshape_3d(ctx, dz_mul_mat_back_x(ctx, s->wo, dh), hd, nh, T);
        dz_tensor *dqkv = dz_attention_back(ctx, s->q, s->k, s->v, da, scale); /* (hd (nh + 2 nkv), T) */
        size_t cb = dqkv ? dqkv->nb[1] : 0, hb = (size_t)hd * sizeof(float);
        dz_tensor *dq = dz_view_3d(ctx, dqkv, hd, nh, T, hb, cb, 0);
        dz_tensor *dk = dz_view_3d(ctx, dqkv, hd, nkv, T, hb, cb, (size_t)nh * hb);
        dz_tensor *dv = dz_view_2d(ctx, dqkv, (int64_t)hd * nkv, T, cb, (size_t)(nh + nkv) * hb);
        dq = dz_reshape_2d(ctx, dz_rope_back(ctx, cont(ctx, dq), b->g->pos, hd, DZ_ROPE_NORMAL, c->rope_base, 1.0f),
                           (int64_t)hd * nh, T);
        dk = dz_reshape_2d(ctx, dz_rope_back(ctx, cont(ctx, dk), b->g->pos, hd, DZ_ROPE_NORMAL, c->rope_base, 1.0f),
                           (int64_t)hd * nkv, T);
        dv = cont(ctx, dv);
        matmul_grad(b, s->i_q, s->n1, dq);
        matmul_grad(b, s->i_k, s->n1, dk);
        matmul_grad(b, s->i_v, s->n1, dv);
        dz_tensor *dn1 = dz_add(ctx, dz_add(ctx, dz_mul_mat_back_x(ctx, s->wq, dq), dz_mul_mat_back_x(ctx, s->wk, dk)),
                                dz_mul_mat_back_x(ctx, s->wv, dv));
        dx = dz_add(ctx, dh, dz_rms_norm_back(ctx, s->x, scale_back(b, s->i_an, s->an, s->r1, dn1), eps));
    }
    if (trainable(b, i_emb)) {
        dz_tensor *demb = dz_get_rows_back(ctx, dx, b->g->ids, c->n_vocab);
        set_grad(b, i_emb, c->tied ? dz_add(ctx, demb, dout_w) : demb);
    }
    free(L);
    *dlogits_out = dlogits;
    return loss;
}

/* ---- gpt2 ---- */

typedef struct gpt2_saved {
    int32_t i_n1w, i_n1b, i_qkvw, i_qkvb, i_ow, i_ob, i_n2w, i_n2b, i_upw, i_upb, i_dnw, i_dnb;
    dz_tensor *n1w, *n1b, *qkvw, *qkvb, *ow, *ob, *n2w, *n2b, *upw, *upb, *dnw, *dnb;
    dz_tensor *x, *l1, *ain, *q, *k, *v, *a2, *h, *l2, *fin, *up, *ge;
} gpt2_saved;

/* Backward of y = norm(x) * w + bias: records dw, dbias; returns dx. */
static dz_tensor *layer_norm_affine_back(builder *b, int32_t iw, dz_tensor *w, int32_t ib, dz_tensor *x,
                                         dz_tensor *normed, dz_tensor *dy) {
    if (trainable(b, ib)) set_grad(b, ib, dz_sum_cols(b->ctx, dy));
    return dz_layer_norm_back(b->ctx, x, scale_back(b, iw, w, normed, dy), b->m->cfg.norm_eps);
}

static dz_tensor *gpt2_build(builder *b, dz_tensor **dlogits_out) {
    const dz_train_config *c = &b->m->cfg;
    dz_ctx *ctx = b->ctx;
    const int32_t T = b->T, d = c->n_embd, nh = c->n_head, hd = d / nh;
    const float scale = 1.0f / sqrtf((float)hd), eps = c->norm_eps;
    const size_t fb = sizeof(float);
    gpt2_saved *L = calloc((size_t)c->n_layer, sizeof *L);
    if (!L) return NULL;
    int32_t i_emb, i_pos, i_fw, i_fb;
    dz_tensor *emb = param(b, &i_emb), *pemb = param(b, &i_pos);
    dz_tensor *x = dz_add(ctx, dz_get_rows(ctx, emb, b->g->ids), dz_get_rows(ctx, pemb, b->g->pos));
    for (int32_t l = 0; l < c->n_layer; l++) {
        gpt2_saved *s = &L[l];
        s->n1w = param(b, &s->i_n1w);
        s->n1b = param(b, &s->i_n1b);
        s->qkvw = param(b, &s->i_qkvw);
        s->qkvb = param(b, &s->i_qkvb);
        s->ow = param(b, &s->i_ow);
        s->ob = param(b, &s->i_ob);
        s->n2w = param(b, &s->i_n2w);
        s->n2b = param(b, &s->i_n2b);
        s->upw = param(b, &s->i_upw);
        s->upb = param(b, &s->i_upb);
        s->dnw = param(b, &s->i_dnw);
        s->dnb = param(b, &s->i_dnb);
        s->x = x;
        s->l1 = dz_layer_norm(ctx, x, eps);
        s->ain = dz_add(ctx, dz_mul(ctx, s->l1, s->n1w), s->n1b);
        dz_tensor *qkv = dz_add(ctx, dz_mul_mat(ctx, s->qkvw, s->ain), s->qkvb); /* (3d, T) */
        size_t cb = qkv ? qkv->nb[1] : 0;
        s->q = cont(ctx, dz_view_3d(ctx, qkv, hd, nh, T, hd * fb, cb, 0));
        s->k = cont(ctx, dz_view_3d(ctx, qkv, hd, nh, T, hd * fb, cb, (size_t)d * fb));
        s->v = cont(ctx, dz_view_3d(ctx, qkv, hd, nh, T, hd * fb, cb, (size_t)2 * d * fb));
        dz_tensor *a = dz_attention(ctx, s->q, s->k, s->v, NULL, scale, true, 0);
        s->a2 = dz_reshape_2d(ctx, a, d, T);
        s->h = dz_add(ctx, x, dz_add(ctx, dz_mul_mat(ctx, s->ow, s->a2), s->ob));
        s->l2 = dz_layer_norm(ctx, s->h, eps);
        s->fin = dz_add(ctx, dz_mul(ctx, s->l2, s->n2w), s->n2b);
        s->up = dz_add(ctx, dz_mul_mat(ctx, s->upw, s->fin), s->upb); /* (ff, T) */
        s->ge = dz_gelu(ctx, s->up);
        x = dz_add(ctx, s->h, dz_add(ctx, dz_mul_mat(ctx, s->dnw, s->ge), s->dnb));
    }
    dz_tensor *fw = param(b, &i_fw), *fbias = param(b, &i_fb);
    dz_tensor *lf = dz_layer_norm(ctx, x, eps);
    dz_tensor *nf = dz_add(ctx, dz_mul(ctx, lf, fw), fbias);
    dz_tensor *logits = dz_mul_mat(ctx, emb, nf);
    dz_tensor *loss = dz_cross_entropy(ctx, logits, b->g->targets);

    /* backward */
    dz_tensor *dlogits = dz_cross_entropy_back(ctx, logits, b->g->targets, 1.0f);
    dz_tensor *dout_w = trainable(b, i_emb) ? dz_mul_mat_back_w(ctx, nf, dlogits) : NULL;
    dz_tensor *dnf = dz_mul_mat_back_x(ctx, emb, dlogits);
    dz_tensor *dx = layer_norm_affine_back(b, i_fw, fw, i_fb, x, lf, dnf);
    for (int32_t l = c->n_layer - 1; l >= 0; l--) {
        gpt2_saved *s = &L[l];
        /* x' = h + W_down gelu(W_up fin + b_up) + b_down */
        if (trainable(b, s->i_dnb)) set_grad(b, s->i_dnb, dz_sum_cols(ctx, dx));
        matmul_grad(b, s->i_dnw, s->ge, dx);
        dz_tensor *dup = dz_gelu_back(ctx, s->up, dz_mul_mat_back_x(ctx, s->dnw, dx));
        if (trainable(b, s->i_upb)) set_grad(b, s->i_upb, dz_sum_cols(ctx, dup));
        matmul_grad(b, s->i_upw, s->fin, dup);
        dz_tensor *dfin = dz_mul_mat_back_x(ctx, s->upw, dup);
        dz_tensor *dh = dz_add(ctx, dx, layer_norm_affine_back(b, s->i_n2w, s->n2w, s->i_n2b, s->h, s->l2, dfin));
        /* h = x + W_o attention(q, k, v) + b_o, with q, k, v the thirds of W_qkv ain + b_qkv */
        if (trainable(b, s->i_ob)) set_grad(b, s->i_ob, dz_sum_cols(ctx, dh));
        matmul_grad(b, s->i_ow, s->a2, dh);
        dz_tensor *da = dz_reshape_3d(ctx, dz_mul_mat_back_x(ctx, s->ow, dh), hd, nh, T);
        dz_tensor *dqkv = dz_attention_back(ctx, s->q, s->k, s->v, da, scale); /* (3d, T): q, k, v per column */
        if (trainable(b, s->i_qkvb)) set_grad(b, s->i_qkvb, dz_sum_cols(ctx, dqkv));
        matmul_grad(b, s->i_qkvw, s->ain, dqkv);
        dz_tensor *dain = dz_mul_mat_back_x(ctx, s->qkvw, dqkv);
        dx = dz_add(ctx, dh, layer_norm_affine_back(b, s->i_n1w, s->n1w, s->i_n1b, s->x, s->l1, dain));
    }
    if (trainable(b, i_emb)) set_grad(b, i_emb, dz_add(ctx, dz_get_rows_back(ctx, dx, b->g->ids, c->n_vocab), dout_w));
    if (trainable(b, i_pos)) set_grad(b, i_pos, dz_get_rows_back(ctx, dx, b->g->pos, c->n_ctx));
    free(L);
    *dlogits_out = dlogits;
    return loss;
}

void dz_train_graph_free(dz_train_graph *g) {
    dz_ctx_destroy(g->ctx);
    free(g->w);
    free(g->grad);
    memset(g, 0, sizeof *g);
}

dz_status dz_train_graph_build(const dz_train_model *m, int32_t T, dz_train_graph *g) {
    const dz_train_config *c = &m->cfg;
    memset(g, 0, sizeof *g);
    g->ctx = dz_ctx_create(200 * c->n_layer + m->n_params + 256);
    g->w = calloc((size_t)m->n_params, sizeof *g->w);
    g->grad = calloc((size_t)m->n_params, sizeof *g->grad);
    if (!g->ctx || !g->w || !g->grad) {
        dz_train_graph_free(g);
        return dz_fail(DZ_ERR_NOMEM, "out of memory for the training graph");
    }
    dz_ctx *ctx = g->ctx;
    for (int32_t i = 0; i < m->n_params; i++) {
        const dz_train_param *p = &m->params[i];
        g->w[i] = dz_new_tensor(ctx, DZ_TYPE_F32, p->n_dims, p->ne);
        if (g->w[i]) {
            dz_set_name(g->w[i], "%s", p->name);
            g->w[i]->flags |= DZ_TENSOR_WEIGHT;
        }
    }
    g->ids = dz_new_tensor_1d(ctx, DZ_TYPE_I32, T);
    g->targets = dz_new_tensor_1d(ctx, DZ_TYPE_I32, T);
    g->pos = dz_new_tensor_1d(ctx, DZ_TYPE_I32, T);
    dz_set_input(g->ids);
    dz_set_input(g->targets);
    dz_set_input(g->pos);
    builder b = {.ctx = ctx, .m = m, .g = g, .T = T};
    dz_tensor *dlogits = NULL;
    g->loss = c->arch == DZ_TRAIN_GPT2 ? gpt2_build(&b, &dlogits) : llama_build(&b, &dlogits);
    dz_status st = dz_ctx_status(ctx);
    if (!g->loss || st) {
        st = dz_fail(st ? st : DZ_ERR_NOMEM, "building the training graph: %s", dz_ctx_error(ctx));
        dz_train_graph_free(g);
        return st;
    }
    dz_set_output(g->loss);
    g->graph = dz_graph_build(ctx, g->loss);
    for (int32_t i = 0; g->graph && !st && i < m->n_params; i++) {
        if (!m->params[i].trainable) continue;
        if (!g->grad[i]) {
            st = dz_fail(DZ_ERR_INTERNAL, "no gradient for '%s'", m->params[i].name);
            break;
        }
        dz_set_name(g->grad[i], "grad.%s", m->params[i].name);
        dz_set_output(g->grad[i]);
        st = dz_graph_expand(ctx, g->graph, g->grad[i]);
    }
    if (!g->graph && !st) {
        st = dz_ctx_status(ctx);
        st = dz_fail(st ? st : DZ_ERR_NOMEM, "building the training graph: %s", dz_ctx_error(ctx));
    }
    if (st) dz_train_graph_free(g);
    return st;
}
