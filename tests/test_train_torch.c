/* The trainer against PyTorch: for each reference file of tests/data/train
 * (written by tools/train_ref.py), the loss of its batch within 1e-4
 * relative, every gradient element within 1e-5 + 1e-3 |b|, and the losses
 * (and gradient norms) of 10 AdamW steps on that batch within 1e-3
 * relative. Skips (77) when the files are absent. */
#include <math.h>

#include "dizuo/train.h"
#include "dztest.h"

static double key_float(const dz_gguf *g, const char *key) {
    double v = NAN;
    bool found = false;
    DZT_OK(dz_gguf_get_float(g, key, &v, &found));
    DZT_CHECK(found, "key %s missing", key);
    return v;
}

/* Float32 array key: n values into out (at most cap); returns n. */
static uint64_t key_floats(const dz_gguf *g, const char *key, float *out, uint64_t cap) {
    dz_gguf_value arr, el;
    bool found = false;
    if (dz_gguf_get_array(g, key, &arr, &found) || !found) return 0;
    uint64_t n = arr.n < cap ? arr.n : cap;
    for (uint64_t i = 0; i < n; i++) {
        double v = NAN;
        if (dz_gguf_array_get(g, &arr, i, &el) || dz_gguf_value_float(&el, &v)) return 0;
        out[i] = (float)v;
    }
    return n;
}

static double rel(double a, double b) { return fabs(a - b) / (fabs(b) > 1e-12 ? fabs(b) : 1e-12); }

static void check_file(const char *path) {
    fprintf(stderr, "%s\n", path);
    dz_gguf *g = NULL;
    DZT_OK(dz_gguf_open(path, &g));
    if (!g) return;
    const dz_gguf_tensor *ti = dz_gguf_find_tensor(g, "train.inputs"), *tt = dz_gguf_find_tensor(g, "train.targets");
    DZT_ASSERT(ti && tt && ti->type == DZ_TYPE_I32 && tt->type == DZ_TYPE_I32 && ti->ne[0] == tt->ne[0] &&
               ti->ne[1] == tt->ne[1]);
    if (!ti || !tt) {
        dz_gguf_close(g);
        return;
    }
    const int32_t T = (int32_t)ti->ne[0], B = (int32_t)ti->ne[1];
    const int32_t *inputs = ti->data, *targets = tt->data;

    dz_train_opts o = dz_train_opts_default();
    o.seq = T;
    o.steps = 10;
    o.warmup = 0;
    o.schedule = DZ_LR_CONSTANT;
    o.lr = (float)key_float(g, "train.lr");
    o.beta1 = (float)key_float(g, "train.beta1");
    o.beta2 = (float)key_float(g, "train.beta2");
    o.eps = (float)key_float(g, "train.eps");
    o.weight_decay = (float)key_float(g, "train.weight_decay");
    o.clip = (float)key_float(g, "train.clip");
    o.threads = 1;

    /* loss and every gradient of the batch */
    dz_train_model *m = NULL;
    dz_trainer *tr = NULL;
    DZT_OK(dz_train_model_load(path, &m));
    if (m) DZT_OK(dz_trainer_create(m, &o, &tr));
    if (!tr) {
        dz_train_model_free(m);
        dz_gguf_close(g);
        return;
    }
    double loss = NAN;
    dz_trainer_zero_grad(tr);
    DZT_OK(dz_trainer_backward(tr, inputs, targets, B, &loss));
    const double want_loss = key_float(g, "train.loss");
    DZT_CHECK(rel(loss, want_loss) <= 1e-4, "loss %.9g vs torch %.9g", loss, want_loss);
    fprintf(stderr, "  loss %.8f vs %.8f (rel %.2e)\n", loss, want_loss, rel(loss, want_loss));
    double worst = 0;
    const char *worst_name = "";
    int64_t n_checked = 0, n_bad = 0;
    for (int32_t i = 0; i < dz_train_model_n_params(m); i++) {
        const dz_train_param *p = dz_train_model_param(m, i);
        char name[96];
        snprintf(name, sizeof name, "grad.%s", p->name);
        const dz_gguf_tensor *gt = dz_gguf_find_tensor(g, name);
        DZT_CHECK(gt && gt->type == DZ_TYPE_F32 && gt->ne[0] == p->ne[0] && gt->ne[1] == p->ne[1],
                  "%s missing or of another shape", name);
        if (!gt || gt->ne[0] != p->ne[0] || gt->ne[1] != p->ne[1]) continue;
        const float *want = gt->data, *got = dz_train_model_grads(m) + p->offset;
        for (int64_t j = 0; j < p->n; j++) {
            double a = got[j] / (double)B, b = want[j]; /* the trainer holds the sum over rows */
            double ratio = fabs(a - b) / (1e-5 + 1e-3 * fabs(b));
            if (ratio > worst) worst = ratio, worst_name = p->name;
            if (ratio > 1 && n_bad++ < 5)
                fprintf(stderr, "  %s[%lld]: %.9g vs torch %.9g\n", p->name, (long long)j, a, b);
            n_checked++;
        }
    }
    DZT_CHECK(n_bad == 0, "%lld of %lld gradient elements outside 1e-5 + 1e-3|b|", (long long)n_bad,
              (long long)n_checked);
    fprintf(stderr, "  %lld gradient elements; worst |a-b| / (1e-5 + 1e-3|b|) = %.3f (%s)\n", (long long)n_checked,
            worst, worst_name);
    dz_trainer_free(tr);
    dz_train_model_free(m);

    /* 10 AdamW steps on the same batch, from the file's weights */
    float want_losses[64], want_norms[64];
    uint64_t n_steps = key_floats(g, "train.losses", want_losses, 64);
    uint64_t n_norms = key_floats(g, "train.grad_norms", want_norms, 64);
    DZT_EQ_INT(n_steps, 10);
    m = NULL;
    tr = NULL;
    DZT_OK(dz_train_model_load(path, &m));
    if (m) DZT_OK(dz_trainer_create(m, &o, &tr));
    double worst_step = 0, worst_norm = 0;
    for (uint64_t i = 0; tr && i < n_steps; i++) {
        dz_train_stats st;
        dz_trainer_zero_grad(tr);
        DZT_OK(dz_trainer_backward(tr, inputs, targets, B, NULL));
        DZT_OK(dz_trainer_update(tr, (int64_t)i, &st));
        DZT_CHECK(rel(st.loss, want_losses[i]) <= 1e-3, "step %llu: loss %.9g vs torch %.9g",
                  (unsigned long long)i + 1, st.loss, want_losses[i]);
        if (rel(st.loss, want_losses[i]) > worst_step) worst_step = rel(st.loss, want_losses[i]);
        if (i < n_norms) {
            DZT_CHECK(rel(st.grad_norm, want_norms[i]) <= 1e-3, "step %llu: grad norm %.9g vs torch %.9g",
                      (unsigned long long)i + 1, st.grad_norm, want_norms[i]);
            if (rel(st.grad_norm, want_norms[i]) > worst_norm) worst_norm = rel(st.grad_norm, want_norms[i]);
        }
    }
    fprintf(stderr, "  10 steps: worst loss rel %.2e, worst grad-norm rel %.2e (last loss %.6f)\n", worst_step,
            worst_norm, n_steps ? want_losses[n_steps - 1] : 0.0f);
    dz_trainer_free(tr);
    dz_train_model_free(m);
    dz_gguf_close(g);
}

int main(void) {
    const char *src = getenv("DZ_SOURCE_DIR");
    static const char *const files[] = {"llama-tiny.gguf", "llama-tied.gguf", "gpt2-tiny.gguf"};
    int found = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tests/data/train/%s", src ? src : ".", files[i]);
        FILE *f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "missing %s\n", path);
            continue;
        }
        fclose(f);
        found++;
        check_file(path);
    }
    if (!found) {
        printf("SKIP: no reference files in tests/data/train (tools/train_ref.py writes them)\n");
        return 77;
    }
    return dzt_done();
}
