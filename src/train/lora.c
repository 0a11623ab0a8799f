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
    dz_status st = dz_model_load(base_path, &mo, &tr->base); /* its errors name the file */
    if (st) {
        dz_lora_trainer_free(tr);
        return st;
    }
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

/* ---- checkpoints ---- */

static const char *const LORA_ARRAYS[3] = {"lora.adapters", "lora.adam_m", "lora.adam_v"};

dz_status dz_lora_trainer_checkpoint_save(const dz_lora_trainer *tr, const dz_train_state *s, const char *dir) {
    char path[4096];
    dz_status st = dz_train_checkpoint_dir(dir, path, sizeof path);
    if (st) return st;
    const char **names = malloc((size_t)tr->n_targets * sizeof *names);
    if (!names) return dz_fail(DZ_ERR_NOMEM, "out of memory for the checkpoint");
    for (int32_t i = 0; i < tr->n_targets; i++) names[i] = tr->targets[i].name;
    dz_gguf_writer *w = NULL;
    st = dz_gguf_writer_create(&w);
    if (!st) st = dz_gguf_writer_set_str(w, "general.architecture", tr->base->hp.arch);
    if (!st) st = dz_gguf_writer_set_str(w, "general.type", "dizuo-lora-checkpoint");
    if (!st) st = dz_train_state_write(s, w);
    if (!st) st = dz_gguf_writer_set_u32(w, "dizuo.lora.rank", (uint32_t)tr->rank);
    if (!st) st = dz_gguf_writer_set_f32(w, "dizuo.lora.alpha", tr->alpha);
    if (!st) st = dz_gguf_writer_set_str_array(w, "dizuo.lora.targets", names, (uint64_t)tr->n_targets);
    const float *arrays[3] = {tr->w, tr->m, tr->v};
    const int64_t ne[1] = {tr->n_floats};
    for (int a = 0; !st && a < 3; a++) st = dz_gguf_writer_add_tensor(w, LORA_ARRAYS[a], DZ_TYPE_F32, 1, ne, arrays[a]);
    if (!st) st = dz_gguf_writer_write_file(w, path);
    dz_gguf_writer_destroy(w);
    free(names);
    return st;
}

/* What the trainer was made with against what the checkpoint says. */
static dz_status check_made_alike(const dz_lora_trainer *tr, const dz_gguf *g) {
    int64_t rank = 0;
    double alpha = 0;
    bool found = false;
    dz_status st = dz_gguf_get_int(g, "dizuo.lora.rank", &rank, &found);
    if (!st && !found) return dz_fail(DZ_ERR_FORMAT, "not a dizuo LoRA checkpoint (no dizuo.lora.rank)");
    if (!st) st = dz_gguf_get_float(g, "dizuo.lora.alpha", &alpha, &found);
    if (st) return st;
    if (rank != tr->rank || (float)alpha != tr->alpha)
        return dz_fail(DZ_ERR_ARG, "the checkpoint is of --lora-rank %lld --lora-alpha %g, this run of rank %d alpha %g",
                       (long long)rank, alpha, tr->rank, tr->alpha);
    dz_gguf_value v;
    if ((st = dz_gguf_get_array(g, "dizuo.lora.targets", &v, &found))) return st;
    if (!found || v.elem_type != DZ_GGUF_STRING)
        return dz_fail(DZ_ERR_FORMAT, "the checkpoint has no list of adapted matrices (dizuo.lora.targets)");
    bool same = v.n == (uint64_t)tr->n_targets;
    for (int32_t i = 0; same && i < tr->n_targets; i++) {
        dz_gguf_value e;
        same = dz_gguf_array_get(g, &v, (uint64_t)i, &e) == DZ_OK && e.type == DZ_GGUF_STRING &&
               e.n == strlen(tr->targets[i].name) && !memcmp(e.data, tr->targets[i].name, e.n);
    }
    if (!same)
        return dz_fail(DZ_ERR_ARG, "the checkpoint's adapted matrices (%llu) are not this run's (%d): "
                       "--lora-targets or --base differ", (unsigned long long)v.n, tr->n_targets);
    return DZ_OK;
}

dz_status dz_lora_trainer_checkpoint_load(dz_lora_trainer *tr, const char *dir, dz_train_state *s) {
    dz_gguf *g = NULL;
    dz_status st = dz_train_checkpoint_open(dir, &g);
    if (st) return st;
    dz_train_state state;
    memset(&state, 0, sizeof state);
    st = check_made_alike(tr, g);
    if (!st) st = dz_train_state_read(g, &state);
    const dz_gguf_tensor *t[3] = {NULL, NULL, NULL};
    for (int a = 0; !st && a < 3; a++) { /* all checked before any is copied: a failure changes nothing */
        t[a] = dz_gguf_find_tensor(g, LORA_ARRAYS[a]);
        if (!t[a] || t[a]->type != DZ_TYPE_F32 || t[a]->n_dims != 1 || t[a]->ne[0] != tr->n_floats)
            st = dz_fail(DZ_ERR_FORMAT, "tensor '%s' is missing or not %lld F32 values", LORA_ARRAYS[a],
                         (long long)tr->n_floats);
    }
    float *arrays[3] = {tr->w, tr->m, tr->v};
    for (int a = 0; !st && a < 3; a++) memcpy(arrays[a], t[a]->data, (size_t)tr->n_floats * sizeof(float));
    dz_gguf_close(g);
    if (st) {
        free(state.losses);
        return dz_error_prefix(st, "%s/checkpoint.gguf: ", dir);
    }
    *s = state;
    return DZ_OK;
}
