/* The trainer: runs the one-row graph over the rows of a step, sums the
 * gradients on the host in row order, then averages, reduces (the hook of
 * data-parallel training), clips and applies AdamW. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/train_impl.h"

struct dz_trainer {
    dz_train_model *m;
    dz_train_opts o;
    int32_t T;
    dz_device *dev;
    dz_device *cpu;    /* beside any device but the CPU: holds the master weights, runs what dev refuses */
    dz_sched *sched;
    dz_buffer *wbuf;   /* wraps m->w: the graph reads the master weights in place */
    dz_train_graph g;
    float *scratch;    /* one parameter's row gradient */
    int host_threads;  /* threads of the host-side passes */
    int32_t *pos;      /* 0..T-1 */
    int64_t rows;      /* rows since zero_grad */
    double loss_sum;   /* sum of their mean losses */
};

dz_train_opts dz_train_opts_default(void) {
    dz_train_opts o;
    memset(&o, 0, sizeof o);
    o.schedule = DZ_LR_COSINE;
    o.lr = 1e-3f;
    o.beta1 = 0.9f;
    o.beta2 = 0.95f;
    o.eps = 1e-8f;
    o.weight_decay = 0.1f;
    o.clip = 1.0f;
    return o;
}

double dz_train_lr(const dz_train_opts *o, int64_t i) {
    const double lr = o->lr;
    const int64_t W = o->warmup, N = o->steps;
    if (W > 0 && i < W) return lr * (double)(i + 1) / (double)W;
    if (o->schedule == DZ_LR_CONSTANT) return lr;
    const double lr_min = 0.1 * lr, span = (double)(N - W > 1 ? N - W : 1);
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + cos(3.14159265358979323846 * (double)(i - W) / span));
}

void dz_trainer_free(dz_trainer *tr) {
    if (!tr) return;
    dz_train_graph_free(&tr->g);
    dz_sched_destroy(tr->sched);
    dz_buffer_free(tr->wbuf);
    dz_device_close(tr->dev);
    dz_device_close(tr->cpu);
    free(tr->scratch);
    free(tr->pos);
    free(tr);
}

static dz_status check_opts(const dz_train_model *m, const dz_train_opts *o) {
    if (o->seq < 1 || o->seq > m->cfg.n_ctx)
        return dz_fail(DZ_ERR_ARG, "a row of %d tokens does not fit the context of %d", o->seq, m->cfg.n_ctx);
    if (o->steps < 1) return dz_fail(DZ_ERR_ARG, "the number of steps must be at least 1, not %d", o->steps);
    if (o->warmup < 0) return dz_fail(DZ_ERR_ARG, "warmup %d is negative", o->warmup);
    if (!(o->lr > 0 && isfinite(o->lr))) return dz_fail(DZ_ERR_ARG, "learning rate %g must be positive", o->lr);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return dz_fail(DZ_ERR_ARG, "betas %g, %g must be in [0, 1)", o->beta1, o->beta2);
    if (!(o->eps > 0 && isfinite(o->eps))) return dz_fail(DZ_ERR_ARG, "eps %g must be positive", o->eps);
    if (!(o->weight_decay >= 0 && isfinite(o->weight_decay)) || !(o->clip >= 0 && isfinite(o->clip)))
        return dz_fail(DZ_ERR_ARG, "weight decay %g and clip %g must be >= 0", o->weight_decay, o->clip);
    return DZ_OK;
}

dz_status dz_trainer_create(dz_train_model *m, const dz_train_opts *o, dz_trainer **out) {
    dz_status st = check_opts(m, o);
    if (st) return st;
    dz_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) return dz_fail(DZ_ERR_NOMEM, "out of memory for the trainer");
    tr->m = m;
    tr->o = *o;
    tr->T = o->seq;
    tr->host_threads = dz_train_par_threads(o->threads);
    int64_t largest = 1;
    for (int32_t i = 0; i < m->n_params; i++)
        if (m->params[i].n > largest) largest = m->params[i].n;
    tr->scratch = malloc((size_t)largest * sizeof *tr->scratch);
    tr->pos = malloc((size_t)tr->T * sizeof *tr->pos);
    if (!tr->scratch || !tr->pos) st = dz_fail(DZ_ERR_NOMEM, "out of memory for the trainer");
    for (int32_t t = 0; !st && t < tr->T; t++) tr->pos[t] = t;
    const char *name = o->device ? o->device : "cpu";
    if (!st) st = dz_device_open(name, &tr->dev);
    /* The master weights stay in host memory (the optimizer updates them
     * there); on another device the scheduler copies what its nodes read. */
    if (!st && strcmp(dz_device_iface(tr->dev)->name, "cpu") && strcmp(dz_device_iface(tr->dev)->name, "cpu-ref")) {
        st = dz_device_open("cpu", &tr->cpu);
        if (!st && o->threads > 0) st = dz_device_set_threads(tr->cpu, o->threads);
    }
    if (!st && o->threads > 0) st = dz_device_set_threads(tr->dev, o->threads);
    dz_device *devs[2] = {tr->dev, tr->cpu};
    dz_device *host = tr->cpu ? tr->cpu : tr->dev;
    if (!st) st = dz_sched_create(devs, tr->cpu ? 2 : 1, &tr->sched);
    if (!st) st = dz_buffer_from_host(host, m->w, (size_t)m->n_floats * sizeof(float), &tr->wbuf);
    if (!st) st = dz_train_graph_build(m, tr->T, &tr->g);
    for (int32_t i = 0; !st && i < m->n_params; i++)
        st = dz_tensor_bind(tr->g.w[i], tr->wbuf, (size_t)m->params[i].offset * sizeof(float));
    if (!st) st = dz_sched_alloc(tr->sched, tr->g.graph);
    if (st) {
        dz_trainer_free(tr);
        return st;
    }
    *out = tr;
    return DZ_OK;
}

void dz_trainer_zero_grad(dz_trainer *tr) {
    memset(tr->m->g, 0, (size_t)tr->m->n_floats * sizeof(float));
    tr->rows = 0;
    tr->loss_sum = 0;
}

/* Runs the graph on row r; *loss its mean loss. */
static dz_status run_row(dz_trainer *tr, const int32_t *ids, const int32_t *targets, double *loss) {
    const size_t n = (size_t)tr->T * sizeof(int32_t);
    dz_status st = dz_tensor_write(tr->g.ids, ids, 0, n);
    if (!st) st = dz_tensor_write(tr->g.targets, targets, 0, n);
    if (!st) st = dz_tensor_write(tr->g.pos, tr->pos, 0, n);
    if (!st) st = dz_sched_compute(tr->sched, tr->g.graph);
    float l = 0;
    if (!st) st = dz_tensor_read(tr->g.loss, &l, 0, sizeof l);
    *loss = l;
    return st;
}

static dz_status check_ids(const dz_trainer *tr, const int32_t *ids, int64_t n, const char *what) {
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tr->m->cfg.n_vocab)
            return dz_fail(DZ_ERR_ARG, "%s id %d at index %lld is outside the vocabulary (0..%d)", what, ids[i],
                           (long long)i, tr->m->cfg.n_vocab - 1);
    return DZ_OK;
}

/* ---- host-side passes, run on dz_train_par's threads ---- */

typedef struct add_ctx { float *dst; const float *src; } add_ctx;
static void add_range(void *ctx, int64_t lo, int64_t hi, int ith) {
    (void)ith;
    add_ctx *a = ctx;
    for (int64_t j = lo; j < hi; j++) a->dst[j] += a->src[j];
}

/* The gradient tensor's data when the host can read it in place (a
 * contiguous tensor in host memory); NULL when it must be copied out. */
static const float *host_view(const dz_tensor *t) {
    if (!t->buffer || !t->data || !dz_is_contiguous(t)) return NULL;
    return dz_device_props_get(t->buffer->device)->caps & DZ_CAP_HOST_MEMORY ? t->data : NULL;
}

dz_status dz_trainer_backward(dz_trainer *tr, const int32_t *inputs, const int32_t *targets, int32_t n_rows,
                              double *loss) {
    const int64_t n = (int64_t)n_rows * tr->T;
    dz_status st = n_rows < 1 ? dz_fail(DZ_ERR_ARG, "no rows") : DZ_OK;
    if (!st) st = check_ids(tr, inputs, n, "input");
    if (!st) st = check_ids(tr, targets, n, "target");
    double sum = 0;
    for (int32_t r = 0; !st && r < n_rows; r++) {
        double l;
        st = run_row(tr, inputs + (int64_t)r * tr->T, targets + (int64_t)r * tr->T, &l);
        for (int32_t i = 0; !st && i < tr->m->n_params; i++) {
            const dz_train_param *p = &tr->m->params[i];
            if (!p->trainable) continue;
            /* In place where possible: a copy of every gradient per row
             * costs as much memory traffic as the accumulation itself. */
            const float *src = host_view(tr->g.grad[i]);
            if (!src && !(st = dz_tensor_read(tr->g.grad[i], tr->scratch, 0, (size_t)p->n * sizeof(float))))
                src = tr->scratch;
            if (!st) {
                add_ctx a = {tr->m->g + p->offset, src};
                dz_train_par(tr->host_threads, p->n, add_range, &a);
            }
        }
        sum += l;
    }
    if (st) return st; /* gradients may hold part of the rows: the caller zeroes them before the next step */
    tr->rows += n_rows;
    tr->loss_sum += sum;
    if (loss) *loss = sum / n_rows;
    return DZ_OK;
}

dz_status dz_trainer_eval(dz_trainer *tr, const int32_t *inputs, const int32_t *targets, int32_t n_rows,
                          double *loss) {
    const int64_t n = (int64_t)n_rows * tr->T;
    dz_status st = n_rows < 1 ? dz_fail(DZ_ERR_ARG, "no rows") : DZ_OK;
    if (!st) st = check_ids(tr, inputs, n, "input");
    if (!st) st = check_ids(tr, targets, n, "target");
    double sum = 0;
    for (int32_t r = 0; !st && r < n_rows; r++) {
        double l;
        st = run_row(tr, inputs + (int64_t)r * tr->T, targets + (int64_t)r * tr->T, &l);
        sum += l;
    }
    if (!st) *loss = sum / n_rows;
    return st;
}

dz_status dz_trainer_update(dz_trainer *tr, int64_t step, dz_train_stats *stats) {
    dz_train_model *m = tr->m;
    const dz_train_update u = {.w = m->w, .g = m->g, .m = m->m, .v = m->v, .n = m->n_floats,
                               .params = m->params, .n_params = m->n_params, .what = "weights"};
    return dz_train_apply_update(&tr->o, tr->host_threads, &u, tr->rows, tr->loss_sum, step, stats);
}
