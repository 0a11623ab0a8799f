/* One optimizer step over flat parameter buffers, shared by the trainer and
 * the LoRA trainer: the gradient sums divided by the rows, the reduce hook,
 * the global norm, clipping and AdamW (as torch.optim.AdamW: decoupled decay
 * on 2-D weights), each pass on dz_train_par's threads. */
#include <math.h>

#include "train/train_impl.h"

typedef struct scale_ctx { float *g; float s; } scale_ctx;
static void scale_range(void *ctx, int64_t lo, int64_t hi, int ith) {
    (void)ith;
    scale_ctx *c = ctx;
    for (int64_t j = lo; j < hi; j++) c->g[j] *= c->s;
}

typedef struct norm_ctx { const float *g; double partial[64]; } norm_ctx;
static void norm_range(void *ctx, int64_t lo, int64_t hi, int ith) {
    norm_ctx *c = ctx;
    double acc[4] = {0, 0, 0, 0}; /* four chains: the adds do not wait on one another */
    int64_t j = lo;
    for (; j + 4 <= hi; j += 4)
        for (int k = 0; k < 4; k++) acc[k] += (double)c->g[j + k] * c->g[j + k];
    for (; j < hi; j++) acc[0] += (double)c->g[j] * c->g[j];
    c->partial[ith] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

typedef struct adamw_ctx {
    const dz_train_update *u;
    bool clip;
    float coef, b1, b2, eps, step_size, bc2s, decay;
} adamw_ctx;

/* Clipping and AdamW of elements [a, b), decayed or not. */
static void adamw_span(const adamw_ctx *c, int64_t a, int64_t b, bool decay) {
    float *w = c->u->w, *g = c->u->g, *mm = c->u->m, *vv = c->u->v;
    for (int64_t j = a; j < b; j++) {
        if (c->clip) g[j] *= c->coef;
        if (decay) w[j] *= c->decay;
        mm[j] = mm[j] * c->b1 + g[j] * (1.0f - c->b1);
        vv[j] = vv[j] * c->b2 + g[j] * g[j] * (1.0f - c->b2);
        w[j] -= c->step_size * mm[j] / (sqrtf(vv[j]) / c->bc2s + c->eps);
    }
}

/* [lo, hi) of every trainable parameter in it (all of it, decayed, without a table). */
static void adamw_range(void *ctx, int64_t lo, int64_t hi, int ith) {
    (void)ith;
    const adamw_ctx *c = ctx;
    const dz_train_update *u = c->u;
    if (!u->params) {
        adamw_span(c, lo, hi, true);
        return;
    }
    for (int32_t i = 0; i < u->n_params; i++) {
        const dz_train_param *p = &u->params[i];
        const int64_t a = p->offset > lo ? p->offset : lo, b = p->offset + p->n < hi ? p->offset + p->n : hi;
        if (p->trainable && a < b) adamw_span(c, a, b, p->decay);
    }
}

dz_status dz_train_apply_update(const dz_train_opts *o, int threads, const dz_train_update *u, int64_t rows,
                                double loss_sum, int64_t step, dz_train_stats *stats) {
    if (rows < 1) return dz_fail(DZ_ERR_ARG, "step %lld: no rows were run", (long long)step + 1);
    scale_ctx sc = {u->g, (float)(1.0 / (double)rows)};
    dz_train_par(threads, u->n, scale_range, &sc);
    double loss = loss_sum / (double)rows;
    dz_status st = o->reduce ? o->reduce(o->reduce_user, u->g, u->n, &loss) : DZ_OK;
    if (st) return st;
    /* the norm over every gradient (frozen parameters' are zero): partial sums
     * per chunk, added in chunk order */
    norm_ctx nc = {u->g, {0}};
    const int chunks = dz_train_par(threads, u->n, norm_range, &nc);
    double sq = 0;
    for (int c = 0; c < chunks; c++) sq += nc.partial[c];
    const double norm = sqrt(sq);
    if (!isfinite(loss) || !isfinite(norm))
        return dz_fail(DZ_ERR_FORMAT, "step %lld: the %s is %s; stopped before updating the %s",
                       (long long)step + 1, isfinite(loss) ? "gradient norm" : "loss",
                       isnan(isfinite(loss) ? norm : loss) ? "NaN" : "infinite", u->what);
    const double lr = dz_train_lr(o, step), t = (double)step + 1;
    const double bc1 = 1.0 - pow(o->beta1, t), bc2_sqrt = sqrt(1.0 - pow(o->beta2, t));
    adamw_ctx ac = {.u = u,
                    .clip = o->clip > 0 && norm > o->clip,
                    .coef = (float)(o->clip / (norm + 1e-6)),
                    .b1 = o->beta1,
                    .b2 = o->beta2,
                    .eps = o->eps,
                    .step_size = (float)(lr / bc1),
                    .bc2s = (float)bc2_sqrt,
                    .decay = (float)(1.0 - lr * o->weight_decay)};
    dz_train_par(threads, u->n, adamw_range, &ac);
    if (stats) {
        stats->loss = loss;
        stats->grad_norm = norm;
        stats->lr = lr;
    }
    return DZ_OK;
}
