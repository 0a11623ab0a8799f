/* LoRA training: adapters A and B on a frozen base model opened for
 * inference (its weights stay in their file types), the one-row graph of
 * lora_graph.c run over the rows of a step, AdamW over the adapters only,
 * and the adapter file in llama.cpp's format. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/lora_impl.h"
#include "train/train_impl.h"

struct dz_lora_trainer {
    dz_model *base;
    dz_train_opts o;
    int32_t T, rank, n_targets;
    float alpha;
    lora_target *targets;
    int64_t n_floats;
    float *w, *g, *m, *v, *scratch;
    int32_t *pos;
    dz_sched *sched;
    dz_buffer *wbuf;
    lora_graph graph;
    int64_t rows;
    double loss_sum;
};

static const struct { const char *kind; int slot; bool gpt2; bool llama; } KINDS[] = {
    {"attn_q", DZ_LORA_Q, false, true},       {"attn_k", DZ_LORA_K, false, true},
    {"attn_v", DZ_LORA_V, false, true},       {"attn_qkv", DZ_LORA_Q, true, false},
    {"attn_output", DZ_LORA_O, true, true},   {"ffn_gate", DZ_LORA_GATE, false, true},
    {"ffn_up", DZ_LORA_UP, true, true},       {"ffn_down", DZ_LORA_DOWN, true, true},
};
enum { N_KINDS = sizeof KINDS / sizeof KINDS[0] };

/* The kinds of a comma-separated list as flags over KINDS. */
static dz_status parse_targets(const dz_model *m, const char *list, bool want[N_KINDS]) {
    const bool gpt2 = m->arch == DZ_ARCH_GPT2;
    if (!list) list = gpt2 ? "attn_qkv" : "attn_q,attn_v";
    memset(want, 0, N_KINDS * sizeof *want);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        int k = 0;
        while (k < N_KINDS && !(strlen(KINDS[k].kind) == n && !strncmp(KINDS[k].kind, p, n))) k++;
        if (k == N_KINDS || !(gpt2 ? KINDS[k].gpt2 : KINDS[k].llama))
            return dz_fail(DZ_ERR_ARG, "LoRA target '%.*s' is not one of %s", (int)n, p,
                           gpt2 ? "attn_qkv, attn_output, ffn_up, ffn_down (gpt2)"
                                : "attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down");
        want[k] = true;
        p += n + (p[n] == ',');
    }
    return DZ_OK;
}

void dz_lora_trainer_free(dz_lora_trainer *tr) {
    if (!tr) return;
    dz_lora_graph_free(&tr->graph);
    dz_sched_destroy(tr->sched);
    dz_buffer_free(tr->wbuf);
    dz_model_free(tr->base);
    free(tr->targets);
    free(tr->w);
    free(tr->g);
    free(tr->m);
    free(tr->v);
    free(tr->scratch);
    free(tr->pos);
    free(tr);
}

/* The target table, the flat arrays, and A's seeded init (B stays zero). */
static dz_status make_targets(dz_lora_trainer *tr, const bool want[N_KINDS], uint64_t seed) {
    const dz_model *m = tr->base;
    int32_t n = 0;
    for (int k = 0; k < N_KINDS; k++) n += want[k];
    tr->targets = calloc((size_t)(n * m->hp.n_layer), sizeof *tr->targets);
    if (!tr->targets) return dz_fail(DZ_ERR_NOMEM, "out of memory for the adapters");
    int64_t floats = 0, largest = 1;
    for (int32_t l = 0; l < m->hp.n_layer; l++)
        for (int k = 0; k < N_KINDS; k++) {
            if (!want[k]) continue;
            lora_target *t = &tr->targets[tr->n_targets++];
            snprintf(t->name, sizeof t->name, "blk.%d.%s.weight", l, KINDS[k].kind);
            const dz_gguf_tensor *w = dz_gguf_find_tensor(m->gguf, t->name);
            if (!w || w->n_dims != 2) return dz_fail(DZ_ERR_FORMAT, "the base model has no matrix '%s'", t->name);
            t->layer = l;
            t->slot = KINDS[k].slot;
            t->fused = !strcmp(KINDS[k].kind, "attn_qkv");
            t->in = w->ne[0];
            t->out = w->ne[1];
            t->off_a = floats;
            t->off_b = floats + t->in * tr->rank;
            floats += (t->in + t->out) * tr->rank;
            if ((t->in + t->out) * tr->rank > largest) largest = (t->in + t->out) * tr->rank;
        }
    tr->n_floats = floats;
    tr->w = calloc((size_t)floats, sizeof(float));
    tr->g = calloc((size_t)floats, sizeof(float));
    tr->m = calloc((size_t)floats, sizeof(float));
    tr->v = calloc((size_t)floats, sizeof(float));
    tr->scratch = malloc((size_t)largest * sizeof(float));
    if (!tr->w || !tr->g || !tr->m || !tr->v || !tr->scratch)
        return dz_fail(DZ_ERR_NOMEM, "out of memory for %lld adapter parameters", (long long)floats);
    uint64_t rng = seed;
    for (int32_t i = 0; i < tr->n_targets; i++) {
        const lora_target *t = &tr->targets[i];
        const double std = 1.0 / sqrt((double)t->in);
        for (int64_t j = 0; j < t->in * tr->rank; j++) tr->w[t->off_a + j] = (float)(std * dz_train_rng_normal(&rng));
    }
    return DZ_OK;
}

dz_status dz_lora_trainer_create(const char *base_path, const dz_lora_opts *lo, const dz_train_opts *o,
                                 uint64_t seed, dz_lora_trainer **out) {
    if (lo->rank < 1 || lo->rank > 65536) return dz_fail(DZ_ERR_ARG, "LoRA rank %d must be in 1..65536", lo->rank);
    if (!(lo->alpha > 0 && isfinite(lo->alpha))) return dz_fail(DZ_ERR_ARG, "LoRA alpha %g must be positive", lo->alpha);
    dz_lora_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) return dz_fail(DZ_ERR_NOMEM, "out of memory for the LoRA trainer");
    tr->o = *o;
    tr->T = o->seq;
    tr->rank = lo->rank;
    tr->alpha = lo->alpha;
    dz_model_options mo = {.device = o->device, .n_threads = o->threads};
    dz_status st = dz_model_load(base_path, &mo, &tr->base);
    bool want[N_KINDS];
    if (!st) st = parse_targets(tr->base, lo->targets, want);
    if (!st && (tr->T < 1 || tr->T > tr->base->hp.n_ctx_train))
        st = dz_fail(DZ_ERR_ARG, "a row of %d tokens does not fit the context of %d", tr->T, tr->base->hp.n_ctx_train);
    if (!st && o->steps < 1) st = dz_fail(DZ_ERR_ARG, "the number of steps must be at least 1, not %d", o->steps);
    if (!st) st = make_targets(tr, want, seed);
    if (!st && !(tr->pos = malloc((size_t)tr->T * sizeof *tr->pos))) st = dz_fail(DZ_ERR_NOMEM, "out of memory");
    for (int32_t t = 0; !st && t < tr->T; t++) tr->pos[t] = t;
    /* The adapters stay in host memory (the optimizer updates them there);
     * beside a non-host device they live on the model's fallback CPU. */
    dz_device *devs[2] = {tr->base ? tr->base->device : NULL, tr->base ? tr->base->cpu : NULL};
    if (!st) st = dz_sched_create(devs, devs[1] ? 2 : 1, &tr->sched);
    if (!st) st = dz_buffer_from_host(devs[1] ? devs[1] : devs[0], tr->w, (size_t)tr->n_floats * sizeof(float), &tr->wbuf);
    if (!st)
        st = dz_lora_graph_build(tr->base, tr->targets, tr->n_targets, tr->rank, tr->alpha / (float)tr->rank, tr->T,
                                 &tr->graph);
    for (int32_t i = 0; !st && i < tr->n_targets; i++) {
        lora_target *t = &tr->targets[i];
        const int parts = t->fused ? 3 : 1;
        st = dz_tensor_bind(t->a, tr->wbuf, (size_t)t->off_a * sizeof(float));
        for (int k = 0; !st && k < parts; k++)
            st = dz_tensor_bind(t->b[k], tr->wbuf, (size_t)(t->off_b + k * (t->out / parts) * tr->rank) * sizeof(float));
    }
    if (!st) st = dz_sched_alloc(tr->sched, tr->graph.graph);
    if (st) {
        dz_lora_trainer_free(tr);
        return dz_error_prefix(st, "%s: ", base_path);
    }
    *out = tr;
    return DZ_OK;
}

const dz_model *dz_lora_trainer_base(const dz_lora_trainer *tr) { return tr->base; }
float *dz_lora_trainer_weights(dz_lora_trainer *tr) { return tr->w; }
float *dz_lora_trainer_grads(dz_lora_trainer *tr) { return tr->g; }
int64_t dz_lora_trainer_n_floats(const dz_lora_trainer *tr) { return tr->n_floats; }

void dz_lora_trainer_zero_grad(dz_lora_trainer *tr) {
    memset(tr->g, 0, (size_t)tr->n_floats * sizeof(float));
    tr->rows = 0;
    tr->loss_sum = 0;
}

static dz_status check_ids(const dz_lora_trainer *tr, const int32_t *ids, int64_t n, const char *what) {
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tr->base->hp.n_vocab)
            return dz_fail(DZ_ERR_ARG, "%s id %d at index %lld is outside the vocabulary (0..%d)", what, ids[i],
                           (long long)i, tr->base->hp.n_vocab - 1);
    return DZ_OK;
}

/* Runs rows; with grads, adds each row's gradient to tr->g. */
static dz_status run_rows(dz_lora_trainer *tr, const int32_t *inputs, const int32_t *targets, int32_t n_rows,
                          bool grads, double *loss) {
    const size_t n = (size_t)tr->T * sizeof(int32_t);
    dz_status st = n_rows < 1 ? dz_fail(DZ_ERR_ARG, "no rows") : DZ_OK;
    if (!st) st = check_ids(tr, inputs, (int64_t)n_rows * tr->T, "input");
    if (!st) st = check_ids(tr, targets, (int64_t)n_rows * tr->T, "target");
    double sum = 0;
    for (int32_t r = 0; !st && r < n_rows; r++) {
        const lora_graph *g = &tr->graph;
        st = dz_tensor_write(g->ids, inputs + (int64_t)r * tr->T, 0, n);
        if (!st) st = dz_tensor_write(g->targets, targets + (int64_t)r * tr->T, 0, n);
        if (!st) st = dz_tensor_write(g->pos, tr->pos, 0, n);
        if (!st) st = dz_sched_compute(tr->sched, g->graph);
        float l = 0;
        if (!st) st = dz_tensor_read(g->loss, &l, 0, sizeof l);
        sum += l;
        for (int32_t i = 0; !st && grads && i < tr->n_targets; i++) {
            const lora_target *t = &tr->targets[i];
            const int parts = t->fused ? 3 : 1;
            dz_tensor *gr[4] = {t->grad_a, t->grad_b[0], t->grad_b[1], t->grad_b[2]};
            const int64_t off[4] = {t->off_a, t->off_b, t->off_b + t->out / 3 * tr->rank,
                                    t->off_b + 2 * (t->out / 3) * tr->rank};
            for (int k = 0; !st && k < 1 + parts; k++) {
                const int64_t cnt = k == 0 ? t->in * tr->rank : t->out / parts * tr->rank;
                st = dz_tensor_read(gr[k], tr->scratch, 0, (size_t)cnt * sizeof(float));
                float *dst = tr->g + off[k];
                for (int64_t j = 0; !st && j < cnt; j++) dst[j] += tr->scratch[j];
            }
        }
    }
    if (!st) *loss = sum / n_rows;
    return st;
}

dz_status dz_lora_trainer_backward(dz_lora_trainer *tr, const int32_t *inputs, const int32_t *targets,
                                   int32_t n_rows, double *loss) {
    double l;
    dz_status st = run_rows(tr, inputs, targets, n_rows, true, &l);
    if (st) return st;
    tr->rows += n_rows;
    tr->loss_sum += l * n_rows;
    if (loss) *loss = l;
    return DZ_OK;
}

dz_status dz_lora_trainer_eval(dz_lora_trainer *tr, const int32_t *inputs, const int32_t *targets,
                               int32_t n_rows, double *loss) {
    return run_rows(tr, inputs, targets, n_rows, false, loss);
}

dz_status dz_lora_trainer_update(dz_lora_trainer *tr, int64_t step, dz_train_stats *stats) {
    const dz_train_update u = {.w = tr->w, .g = tr->g, .m = tr->m, .v = tr->v, .n = tr->n_floats, .what = "adapters"};
    return dz_train_apply_update(&tr->o, dz_train_par_threads(tr->o.threads), &u, tr->rows, tr->loss_sum, step, stats);
}

dz_status dz_lora_trainer_save(const dz_lora_trainer *tr, const char *path) {
    dz_gguf_writer *w = NULL;
    dz_status st = dz_gguf_writer_create(&w);
    if (st) return st;
    st = dz_gguf_writer_set_str(w, "general.architecture", tr->base->hp.arch);
    if (!st) st = dz_gguf_writer_set_str(w, "general.type", "adapter");
    if (!st) st = dz_gguf_writer_set_str(w, "adapter.type", "lora");
    if (!st) st = dz_gguf_writer_set_f32(w, "adapter.lora.alpha", tr->alpha);
    for (int32_t i = 0; !st && i < tr->n_targets; i++) {
        const lora_target *t = &tr->targets[i];
        char name[112];
        const int64_t ne_a[2] = {t->in, tr->rank}, ne_b[2] = {tr->rank, t->out};
        snprintf(name, sizeof name, "%s.lora_a", t->name);
        st = dz_gguf_writer_add_tensor(w, name, DZ_TYPE_F32, 2, ne_a, tr->w + t->off_a);
        snprintf(name, sizeof name, "%s.lora_b", t->name);
        if (!st) st = dz_gguf_writer_add_tensor(w, name, DZ_TYPE_F32, 2, ne_b, tr->w + t->off_b);
    }
    if (!st) st = dz_gguf_writer_write_file(w, path);
    dz_gguf_writer_destroy(w);
    return st;
}
