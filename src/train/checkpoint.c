/* Checkpoints: one GGUF file, DIR/checkpoint.gguf, holding the shape (the
 * architecture's hyper-parameter keys), the run's state (dizuo.train.*),
 * the tokenizer keys, the weights under their own names and the AdamW
 * moments as adam_m.<name> / adam_v.<name>, all F32. Written through a
 * temporary file renamed into place. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "train/train_impl.h"

enum { CHECKPOINT_VERSION = 1 };

static dz_status checkpoint_path(const char *dir, char *path, size_t cap) {
    if ((size_t)snprintf(path, cap, "%s/checkpoint.gguf", dir) >= cap)
        return dz_fail(DZ_ERR_ARG, "checkpoint directory name too long: %s", dir);
    return DZ_OK;
}

static dz_status set_u64(dz_gguf_writer *w, const char *key, uint64_t v) {
    return dz_gguf_writer_set_scalar(w, key, DZ_GGUF_UINT64, &v);
}

dz_status dz_train_state_write(const dz_train_state *s, dz_gguf_writer *w) {
    dz_status st = dz_gguf_writer_set_u32(w, "dizuo.train.version", CHECKPOINT_VERSION);
    if (!st) st = set_u64(w, "dizuo.train.step", (uint64_t)s->step);
    if (!st) st = set_u64(w, "dizuo.train.row", (uint64_t)s->row);
    if (!st) st = set_u64(w, "dizuo.train.seed", s->seed);
    if (!st) st = set_u64(w, "dizuo.train.data_hash", s->data_hash);
    if (!st) st = dz_gguf_writer_set_u32(w, "dizuo.train.batch", (uint32_t)s->batch);
    if (!st) st = dz_gguf_writer_set_u32(w, "dizuo.train.seq", (uint32_t)s->seq);
    if (!st) st = dz_gguf_writer_set_u32(w, "dizuo.train.grad_accum", (uint32_t)s->grad_accum);
    if (!st && s->losses && s->step > 0)
        st = dz_gguf_writer_set_array(w, "dizuo.train.losses", DZ_GGUF_FLOAT32, s->losses, (uint64_t)s->step);
    if (s->has_opts) {
        const dz_train_opts *o = &s->opts;
        if (!st) st = dz_gguf_writer_set_u32(w, "dizuo.train.opt.steps", (uint32_t)o->steps);
        if (!st) st = dz_gguf_writer_set_u32(w, "dizuo.train.opt.warmup", (uint32_t)o->warmup);
        if (!st) st = dz_gguf_writer_set_u32(w, "dizuo.train.opt.schedule", (uint32_t)o->schedule);
        const struct { const char *key; float v; } reals[] = {
            {"dizuo.train.opt.lr", o->lr},     {"dizuo.train.opt.beta1", o->beta1},
            {"dizuo.train.opt.beta2", o->beta2}, {"dizuo.train.opt.eps", o->eps},
            {"dizuo.train.opt.weight_decay", o->weight_decay}, {"dizuo.train.opt.clip", o->clip},
        };
        for (size_t i = 0; !st && i < sizeof reals / sizeof reals[0]; i++)
            st = dz_gguf_writer_set_f32(w, reals[i].key, reals[i].v);
        if (!st) st = dz_gguf_writer_set_bool(w, "dizuo.train.opt.shuffle", s->shuffle);
    }
    return st;
}

dz_status dz_train_checkpoint_dir(const char *dir, char *path, size_t cap) {
    dz_status st = checkpoint_path(dir, path, cap);
    if (st) return st;
    if (mkdir(dir, 0777) && errno != EEXIST)
        return dz_fail(DZ_ERR_IO, "%s: cannot create the checkpoint directory: %s", dir, strerror(errno));
    return DZ_OK;
}

dz_status dz_train_checkpoint_save(const dz_train_model *m, const dz_train_state *s, const char *dir) {
    char path[4096];
    dz_status st = dz_train_checkpoint_dir(dir, path, sizeof path);
    if (st) return st;
    dz_gguf_writer *w = NULL;
    if ((st = dz_gguf_writer_create(&w))) return st;
    st = dz_train_config_write(&m->cfg, w);
    if (!st) st = dz_train_state_write(s, w);
    if (!st) st = dz_train_model_put_tokenizer_keys(m, w);
    static const char *const prefix[3] = {"", "adam_m.", "adam_v."};
    const float *arrays[3] = {m->w, m->m, m->v};
    for (int a = 0; a < 3; a++)
        for (int32_t i = 0; !st && i < m->n_params; i++) {
            const dz_train_param *p = &m->params[i];
            char name[96];
            snprintf(name, sizeof name, "%s%s", prefix[a], p->name);
            st = dz_gguf_writer_add_tensor(w, name, DZ_TYPE_F32, p->n_dims, p->ne, arrays[a] + p->offset);
        }
    if (!st) st = dz_gguf_writer_write_file(w, path);
    dz_gguf_writer_destroy(w);
    return st;
}

static dz_status get_u64(const dz_gguf *g, const char *key, uint64_t *out) {
    int64_t i = dz_gguf_find_kv(g, key);
    if (i < 0) return dz_fail(DZ_ERR_FORMAT, "missing key '%s'", key);
    dz_gguf_value v;
    dz_gguf_kv_value(g, i, &v);
    dz_status st = dz_gguf_value_uint(&v, out);
    return st ? dz_error_prefix(st, "key '%s': ", key) : DZ_OK;
}

/* The optimizer settings of a checkpoint, when it has them. */
static dz_status read_opts(const dz_gguf *g, dz_train_state *s) {
    if (dz_gguf_find_kv(g, "dizuo.train.opt.lr") < 0) return DZ_OK; /* an older checkpoint */
    dz_train_opts *o = &s->opts;
    uint64_t steps = 0, warmup = 0, schedule = 0;
    dz_status st = get_u64(g, "dizuo.train.opt.steps", &steps);
    if (!st) st = get_u64(g, "dizuo.train.opt.warmup", &warmup);
    if (!st) st = get_u64(g, "dizuo.train.opt.schedule", &schedule);
    if (!st && (steps > INT32_MAX || warmup > INT32_MAX || schedule > DZ_LR_CONSTANT))
        st = dz_fail(DZ_ERR_FORMAT, "optimizer settings out of range");
    const struct { const char *key; float *dst; } reals[] = {
        {"dizuo.train.opt.lr", &o->lr},     {"dizuo.train.opt.beta1", &o->beta1},
        {"dizuo.train.opt.beta2", &o->beta2}, {"dizuo.train.opt.eps", &o->eps},
        {"dizuo.train.opt.weight_decay", &o->weight_decay}, {"dizuo.train.opt.clip", &o->clip},
    };
    for (size_t i = 0; !st && i < sizeof reals / sizeof reals[0]; i++) {
        double v = 0;
        bool found = false;
        st = dz_gguf_get_float(g, reals[i].key, &v, &found);
        if (!st && !found) st = dz_fail(DZ_ERR_FORMAT, "missing key '%s'", reals[i].key);
        *reals[i].dst = (float)v;
    }
    bool found = false;
    if (!st) st = dz_gguf_get_bool(g, "dizuo.train.opt.shuffle", &s->shuffle, &found);
    if (!st && !found) st = dz_fail(DZ_ERR_FORMAT, "missing key 'dizuo.train.opt.shuffle'");
    if (st) return st;
    o->steps = (int32_t)steps;
    o->warmup = (int32_t)warmup;
    o->schedule = (dz_lr_schedule)schedule;
    s->has_opts = true;
    return DZ_OK;
}

dz_status dz_train_state_read(const dz_gguf *g, dz_train_state *s) {
    memset(s, 0, sizeof *s);
    int64_t version = 0;
    bool found = false;
    dz_status st = dz_gguf_get_int(g, "dizuo.train.version", &version, &found);
    if (!st && !found) st = dz_fail(DZ_ERR_FORMAT, "not a dizuo training checkpoint (no dizuo.train.version)");
    if (!st && version != CHECKPOINT_VERSION)
        st = dz_fail(DZ_ERR_FORMAT, "checkpoint version %lld; this dizuo reads version %d", (long long)version,
                     CHECKPOINT_VERSION);
    uint64_t step = 0, row = 0, batch = 0, seq = 0, accum = 0;
    if (!st) st = get_u64(g, "dizuo.train.step", &step);
    if (!st) st = get_u64(g, "dizuo.train.row", &row);
    if (!st) st = get_u64(g, "dizuo.train.seed", &s->seed);
    if (!st) st = get_u64(g, "dizuo.train.data_hash", &s->data_hash);
    if (!st) st = get_u64(g, "dizuo.train.batch", &batch);
    if (!st) st = get_u64(g, "dizuo.train.seq", &seq);
    if (!st) st = get_u64(g, "dizuo.train.grad_accum", &accum);
    if (!st && (step > INT32_MAX || row > (uint64_t)INT64_MAX / 2 || batch > INT32_MAX || seq > INT32_MAX ||
                accum > INT32_MAX))
        st = dz_fail(DZ_ERR_FORMAT, "state values out of range");
    if (!st) st = read_opts(g, s);
    dz_gguf_value losses;
    found = false;
    if (!st) st = dz_gguf_get_array(g, "dizuo.train.losses", &losses, &found);
    if (!st && found) { /* the loss history (checkpoints of older builds have none) */
        if (losses.elem_type != DZ_GGUF_FLOAT32 || losses.n != step)
            st = dz_fail(DZ_ERR_FORMAT, "key 'dizuo.train.losses' holds %llu values of type %d for step %llu",
                         (unsigned long long)losses.n, (int)losses.elem_type, (unsigned long long)step);
        else if (step > 0 && !(s->losses = malloc((size_t)step * sizeof(float))))
            st = dz_fail(DZ_ERR_NOMEM, "out of memory for the loss history");
        else if (step > 0)
            memcpy(s->losses, losses.data, (size_t)step * sizeof(float));
    }
    if (st) {
        free(s->losses);
        s->losses = NULL;
        return st;
    }
    s->step = (int64_t)step;
    s->row = (int64_t)row;
    s->batch = (int32_t)batch;
    s->seq = (int32_t)seq;
    s->grad_accum = (int32_t)accum;
    return DZ_OK;
}

dz_status dz_train_checkpoint_open(const char *dir, dz_gguf **g) {
    char path[4096];
    dz_status st = checkpoint_path(dir, path, sizeof path);
    return st ? st : dz_gguf_open(path, g);
}

dz_status dz_train_checkpoint_load(const char *dir, dz_train_model **out, dz_train_state *s) {
    dz_gguf *g = NULL;
    dz_status st = dz_train_checkpoint_open(dir, &g);
    if (st) return st;
    dz_train_model *m = NULL;
    dz_train_state state;
    dz_train_config c;
    st = dz_train_state_read(g, &state);
    if (!st) st = dz_train_config_read(g, &c);
    if (!st) st = dz_train_model_alloc(&c, &m);
    static const char *const prefix[3] = {"", "adam_m.", "adam_v."};
    for (int a = 0; !st && a < 3; a++) {
        float *arrays[3] = {m->w, m->m, m->v};
        for (int32_t i = 0; !st && i < m->n_params; i++) {
            const dz_train_param *p = &m->params[i];
            char name[96];
            snprintf(name, sizeof name, "%s%s", prefix[a], p->name);
            st = dz_train_read_tensor(g, name, p, arrays[a] + p->offset);
        }
    }
    if (!st && dz_gguf_find_kv(g, "tokenizer.ggml.model") >= 0) st = dz_train_model_set_tokenizer(m, g);
    dz_gguf_close(g);
    if (st) {
        free(state.losses); /* NULL unless the state was read */
        dz_train_model_free(m);
        return dz_error_prefix(st, "%s/checkpoint.gguf: ", dir);
    }
    *out = m;
    *s = state;
    return DZ_OK;
}

dz_status dz_train_write_loss_svg(const char *path, const float *losses, int64_t n, int64_t first_step,
                                  const char *title) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) return dz_fail(DZ_ERR_ARG, "path too long");
    FILE *f = fopen(tmp, "w");
    if (!f) return dz_fail(DZ_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    const double W = 800, H = 400, L = 70, R = 20, Tp = 40, B = 50;
    double lo = 0, hi = 1;
    bool any = false;
    for (int64_t i = 0; i < n; i++) {
        double v = losses[i];
        if (v != v || v > 1e30 || v < -1e30) continue;
        if (!any || v < lo) lo = v;
        if (!any || v > hi) hi = v;
        any = true;
    }
    if (!any) lo = 0, hi = 1;
    if (hi - lo < 1e-9) hi = lo + 1;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H);
    fprintf(f, "<text x=\"%.0f\" y=\"22\" font-size=\"15\">", L);
    for (const char *c = title ? title : ""; *c; c++) /* escape the title */
        fputs(*c == '<' ? "&lt;" : *c == '>' ? "&gt;" : *c == '&' ? "&amp;" : (char[2]){*c, 0}, f);
    fprintf(f, "</text>\n<g stroke=\"#ccc\">\n");
    for (int k = 0; k <= 4; k++) {
        double y = Tp + (H - Tp - B) * k / 4.0, v = hi - (hi - lo) * k / 4.0;
        fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\"/>"
                   "<text x=\"%.0f\" y=\"%.1f\" stroke=\"none\" text-anchor=\"end\">%.3f</text>\n",
                L, y, W - R, y, L - 6, y + 4, v);
    }
    fprintf(f, "</g>\n<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">step (%lld .. %lld)</text>\n"
               "<text x=\"16\" y=\"%.0f\" transform=\"rotate(-90 16 %.0f)\" text-anchor=\"middle\">loss</text>\n",
            (L + W - R) / 2, H - 12, (long long)first_step, (long long)(first_step + n - 1), (Tp + H - B) / 2,
            (Tp + H - B) / 2);
    fprintf(f, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"");
    for (int64_t i = 0; i < n; i++) {
        double v = losses[i];
        if (v != v || v > 1e30 || v < -1e30) continue;
        double x = L + (W - L - R) * (n > 1 ? (double)i / (double)(n - 1) : 0.5);
        double y = Tp + (H - Tp - B) * (hi - v) / (hi - lo);
        fprintf(f, "%.1f,%.1f ", x, y);
    }
    fprintf(f, "\"/>\n</svg>\n");
    bool bad = ferror(f) != 0;
    if (fclose(f) || bad) {
        remove(tmp);
        return dz_fail(DZ_ERR_IO, "%s: write error", tmp);
    }
    if (rename(tmp, path)) {
        remove(tmp);
        return dz_fail(DZ_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    }
    return DZ_OK;
}
