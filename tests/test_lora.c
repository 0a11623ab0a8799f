/* LoRA: adapter gradients against central finite differences of the loss,
 * a few steps lower the loss, B = 0 leaves the base's outputs unchanged,
 * run-with-adapter equals the merged model, bad adapters are refused, and
 * dizuo finetune resumes from its checkpoints bit for bit.
 * The base is a tiny llama made here (seeded init), quantized to Q8_0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/lora.h"
#include "dizuo/tokenizer_train.h"
#include "dztest.h"

static char base[512], f32[512], adapter[512], merged[512];
enum { T = 16, NTOK = 24 };

static void make_base(void) {
    const char *dir = dzt_tmpdir();
    char tok[512], cmd[2048];
    snprintf(tok, sizeof tok, "%s/tok.gguf", dir);
    snprintf(f32, sizeof f32, "%s/base-f32.gguf", dir);
    snprintf(base, sizeof base, "%s/base-q8.gguf", dir);
    snprintf(adapter, sizeof adapter, "%s/adapter.gguf", dir);
    snprintf(merged, sizeof merged, "%s/merged.gguf", dir);
    const char *text = "the quick brown fox jumps over the lazy dog. a lazy dog sleeps in the sun all day long. ";
    dz_bpe_train_params p = {.vocab_size = 300};
    dz_bpe_trainer *bt = NULL;
    DZT_OK(dz_bpe_trainer_create(&p, &bt));
    for (int i = 0; i < 20; i++) DZT_OK(dz_bpe_trainer_feed(bt, text, strlen(text), NULL));
    DZT_OK(dz_bpe_trainer_train(bt));
    DZT_OK(dz_bpe_trainer_save(bt, "tiny", tok));
    dz_bpe_trainer_destroy(bt);
    dz_gguf *g = NULL;
    dz_tokenizer *tk = NULL;
    DZT_OK(dz_gguf_open(tok, &g));
    DZT_OK(dz_tokenizer_load(g, &tk));
    dz_train_config c = dz_train_config_default(DZ_TRAIN_LLAMA);
    c.n_vocab = dz_tokenizer_n_vocab(tk);
    c.n_embd = 32;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_head_kv = 2;
    c.n_ff = 64;
    c.n_ctx = 32;
    dz_train_model *m = NULL;
    DZT_OK(dz_train_model_create(&c, 7, &m));
    float *w = dz_train_model_weights(m); /* larger weights than 0.02 so the base is not near-uniform */
    for (int64_t i = 0; i < dz_train_model_n_floats(m); i++) w[i] *= 5.0f;
    DZT_OK(dz_train_model_set_tokenizer(m, g));
    DZT_OK(dz_train_model_export(m, f32, DZ_TYPE_F32));
    dz_train_model_free(m);
    dz_tokenizer_free(tk);
    dz_gguf_close(g);
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' '%s' q8_0 2>/dev/null", dzt_bin(), f32, base);
    DZT_EQ_INT(dzt_run(cmd, NULL, NULL), 0);
}

static void tokens(int32_t *ids, int n, int32_t vocab, uint32_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        ids[i] = (int32_t)((seed >> 8) % (uint32_t)vocab);
    }
}

static dz_lora_trainer *trainer(const char *model, const char *targets, float lr) {
    dz_train_opts o = dz_train_opts_default();
    o.seq = T;
    o.steps = 10;
    o.lr = lr;
    o.schedule = DZ_LR_CONSTANT;
    o.weight_decay = 0;
    o.clip = 0;
    o.threads = 1;
    dz_lora_opts lo = {.rank = 4, .alpha = 8, .targets = targets};
    dz_lora_trainer *tr = NULL;
    DZT_OK(dz_lora_trainer_create(model, &lo, &o, 42, &tr));
    return tr;
}

/* (a) dA, dB against central differences of the loss in double. */
static void test_gradient(void) {
    dz_lora_trainer *tr = trainer(f32, "attn_q,attn_v,attn_output,ffn_up,ffn_down", 1e-3f); /* F32: Q8 activations are not smooth */
    if (!tr) return;
    const int32_t V = dz_model_hparams_get(dz_lora_trainer_base(tr))->n_vocab;
    int32_t in[T], tg[T];
    tokens(in, T, V, 1);
    tokens(tg, T, V, 2);
    float *w = dz_lora_trainer_weights(tr), *g = dz_lora_trainer_grads(tr);
    const int64_t n = dz_lora_trainer_n_floats(tr);
    uint32_t s = 9;
    for (int64_t i = 0; i < n; i++) { /* B nonzero so that A's gradient is too */
        s = s * 1664525u + 1013904223u;
        w[i] += 0.2f * ((float)(s >> 8) / 16777216.0f - 0.5f);
    }
    dz_lora_trainer_zero_grad(tr);
    double loss;
    DZT_OK(dz_lora_trainer_backward(tr, in, tg, 1, &loss));
    int checked = 0, bad = 0;
    for (int64_t i = 0; i < n; i += n / 23 + 1) { /* a spread of elements of every pair */
        const float keep = w[i], h = 1e-2f;
        double lp, lm;
        w[i] = keep + h;
        DZT_OK(dz_lora_trainer_eval(tr, in, tg, 1, &lp));
        w[i] = keep - h;
        DZT_OK(dz_lora_trainer_eval(tr, in, tg, 1, &lm));
        w[i] = keep;
        const double fd = (lp - lm) / (2.0 * h);
        if (fabs(fd - g[i]) > 3e-4 + 3e-2 * fabs(fd)) {
            bad++;
            fprintf(stderr, "element %lld: gradient %g, finite difference %g\n", (long long)i, g[i], fd);
        }
        checked++;
    }
    DZT_ASSERT(checked >= 20);
    DZT_EQ_INT(bad, 0);
    dz_lora_trainer_free(tr);
}

static void logits_of(const char *model, const char *lora, const int32_t *ids, float *out, int32_t *greedy) {
    dz_model_options mo = {.n_threads = 1};
    dz_model *m = NULL;
    dz_kv_cache *kv = NULL;
    DZT_OK(dz_model_load(model, &mo, &m));
    if (!m) return;
    if (lora) DZT_OK(dz_model_apply_lora(m, lora, 1.0f));
    DZT_OK(dz_kv_cache_create(m, 32, &kv));
    DZT_OK(dz_model_forward(m, kv, ids, NTOK, 0, out, true));
    const int32_t V = dz_model_hparams_get(m)->n_vocab;
    int32_t tok = ids[0], pos = 0;
    float *l = malloc((size_t)V * sizeof *l);
    for (int i = 0; l && i < 16; i++) { /* greedy from the first token */
        DZT_OK(dz_model_forward(m, kv, &tok, 1, pos++, l, false));
        int32_t best = 0;
        for (int32_t v = 1; v < V; v++)
            if (l[v] > l[best]) best = v;
        greedy[i] = tok = best;
    }
    free(l);
    dz_kv_cache_free(kv);
    dz_model_free(m);
}

/* (b), (c), (d) on model (the Q8_0 base or the F32 one). Merged F32
 * matrices are compared with the F32 base: a Q8_0 base's products quantize
 * the activations, its dequantized merge does not. */
static void test_train_merge(const char *base) {
    dz_lora_trainer *tr = trainer(base, NULL, 1e-2f);
    if (!tr) return;
    const int32_t V = dz_model_hparams_get(dz_lora_trainer_base(tr))->n_vocab;
    int32_t in[2 * T], tg[2 * T], ids[NTOK];
    tokens(in, 2 * T, V, 3);
    for (int i = 0; i < 2 * T; i++) tg[i] = (in[i] * 7 + 1) % V; /* a learnable mapping */
    tokens(ids, NTOK, V, 4);
    const size_t nl = (size_t)NTOK * (size_t)V;
    float *lb = malloc(nl * sizeof(float)), *la = malloc(nl * sizeof(float)), *lm = malloc(nl * sizeof(float));
    int32_t gb[16], ga[16], gm[16];
    /* (d) B = 0 at init: exactly the base */
    DZT_OK(dz_lora_trainer_save(tr, adapter));
    logits_of(base, NULL, ids, lb, gb);
    logits_of(base, adapter, ids, la, ga);
    DZT_ASSERT(memcmp(lb, la, nl * sizeof(float)) == 0);
    /* (b) ten steps on one batch lower its loss */
    double first = 0, last = 0;
    for (int step = 0; step < 10; step++) {
        dz_train_stats st;
        dz_lora_trainer_zero_grad(tr);
        DZT_OK(dz_lora_trainer_backward(tr, in, tg, 2, NULL));
        DZT_OK(dz_lora_trainer_update(tr, step, &st));
        if (step == 0) first = st.loss;
        last = st.loss;
    }
    DZT_CHECK(last < first - 0.1, "loss %g -> %g", first, last);
    /* (c) adapter applied == merged model */
    DZT_OK(dz_lora_trainer_save(tr, adapter));
    DZT_OK(dz_lora_merge(base, adapter, 1.0f, DZ_TYPE_F32, merged));
    logits_of(base, adapter, ids, la, ga);
    logits_of(merged, NULL, ids, lm, gm);
    double worst = 0, change = 0;
    for (size_t i = 0; i < nl; i++) {
        worst = fmax(worst, fabs((double)la[i] - lm[i]));
        change = fmax(change, fabs((double)la[i] - lb[i]));
    }
    DZT_CHECK(change > 1e-3, "the trained adapter changes nothing (%g)", change);
    if (base == f32) {
        DZT_CHECK(worst <= 1e-4, "adapter vs merged: max |dlogit| %g", worst);
        DZT_ASSERT(memcmp(ga, gm, sizeof ga) == 0);
    }
    free(lb);
    free(la);
    free(lm);
    dz_lora_trainer_free(tr);
}

/* Writes an adapter with one pair on blk.0.attn_q (d x d) of rank r, shapes
 * and arch as given; drop_b leaves lora_b out. */
static void write_adapter(const char *path, const char *arch, int64_t a0, int64_t b1, bool drop_b, const char *name) {
    dz_gguf_writer *w = NULL;
    DZT_OK(dz_gguf_writer_create(&w));
    DZT_OK(dz_gguf_writer_set_str(w, "general.architecture", arch));
    DZT_OK(dz_gguf_writer_set_str(w, "general.type", "adapter"));
    DZT_OK(dz_gguf_writer_set_str(w, "adapter.type", "lora"));
    DZT_OK(dz_gguf_writer_set_f32(w, "adapter.lora.alpha", 8));
    char n[128];
    const int64_t ne_a[2] = {a0, 4}, ne_b[2] = {4, b1};
    snprintf(n, sizeof n, "%s.lora_a", name);
    DZT_OK(dz_gguf_writer_add_tensor(w, n, DZ_TYPE_F32, 2, ne_a, NULL));
    snprintf(n, sizeof n, "%s.lora_b", name);
    if (!drop_b) DZT_OK(dz_gguf_writer_add_tensor(w, n, DZ_TYPE_F32, 2, ne_b, NULL));
    DZT_OK(dz_gguf_writer_write_file(w, path));
    dz_gguf_writer_destroy(w);
}

/* (e) */
static void test_bad(void) {
    const struct { const char *arch, *name; int64_t a0, b1; bool drop_b; const char *msg; } cases[] = {
        {"gpt2", "blk.0.attn_q.weight", 32, 32, false, "architecture 'gpt2'"},
        {"llama", "blk.0.attn_q.weight", 16, 32, false, "lora_a must be (32, r)"},
        {"llama", "blk.0.attn_q.weight", 32, 32, true, "has no 'blk.0.attn_q.weight.lora_b'"},
        {"llama", "blk.9.attn_q.weight", 32, 32, false, "does not have"},
        {"llama", "output_norm.weight", 32, 32, false, "not a matrix"},
    };
    dz_model_options mo = {.n_threads = 1};
    dz_model *m = NULL;
    DZT_OK(dz_model_load(base, &mo, &m));
    if (!m) return;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/bad%zu.gguf", dzt_tmpdir(), i);
        write_adapter(path, cases[i].arch, cases[i].a0, cases[i].b1, cases[i].drop_b, cases[i].name);
        DZT_FAILS(dz_model_apply_lora(m, path, 1.0f), DZ_ERR_FORMAT);
        DZT_CHECK(strstr(dz_last_error(), cases[i].msg), "case %zu: message '%s'", i, dz_last_error());
    }
    /* the model still runs, unadapted */
    dz_kv_cache *kv = NULL;
    int32_t t = 1;
    float *l = malloc((size_t)dz_model_hparams_get(m)->n_vocab * sizeof *l);
    DZT_OK(dz_kv_cache_create(m, 4, &kv));
    DZT_OK(dz_model_forward(m, kv, &t, 1, 0, l, false));
    free(l);
    dz_kv_cache_free(kv);
    dz_model_free(m);
    /* CLI: a clear message and exit 1 */
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "'%s' run -m '%s' --lora '%s/bad0.gguf' -p x -n 1 2>&1", dzt_bin(), base, dzt_tmpdir());
    DZT_EQ_INT(dzt_run(cmd, &out, NULL), 1);
    DZT_CHECK(out && strstr(out, "architecture"), "run --lora message: %s", out ? out : "(none)");
    free(out);
}

/* gpt2 (fused attn_qkv, no gate): adapters on all four of its projections
 * apply at inference as they merge. Base: the PyTorch reference gpt2 of
 * tests/data/train (16 learned positions, so 12 tokens here). */
static void test_gpt2_targets(void) {
    char g2[512];
    const char *src = getenv("DZ_SOURCE_DIR");
    snprintf(g2, sizeof g2, "%s/tests/data/train/gpt2-tiny.gguf", src ? src : ".");
    dz_lora_trainer *tr = trainer(g2, "attn_qkv,attn_output,ffn_up,ffn_down", 1e-2f);
    if (!tr) return;
    const int32_t V = dz_model_hparams_get(dz_lora_trainer_base(tr))->n_vocab;
    int32_t in[2 * T], tg[2 * T], ids[12];
    tokens(in, 2 * T, V, 5);
    for (int i = 0; i < 2 * T; i++) tg[i] = (in[i] * 5 + 3) % V;
    tokens(ids, 12, V, 6);
    for (int step = 0; step < 5; step++) {
        dz_train_stats st;
        dz_lora_trainer_zero_grad(tr);
        DZT_OK(dz_lora_trainer_backward(tr, in, tg, 2, NULL));
        DZT_OK(dz_lora_trainer_update(tr, step, &st));
    }
    DZT_OK(dz_lora_trainer_save(tr, adapter));
    DZT_OK(dz_lora_merge(g2, adapter, 1.0f, DZ_TYPE_F32, merged));
    float *la = malloc(12 * (size_t)V * sizeof(float)), *lm = malloc(12 * (size_t)V * sizeof(float));
    const char *models[2] = {g2, merged}, *loras[2] = {adapter, NULL};
    float *outs[2] = {la, lm};
    for (int k = 0; k < 2 && la && lm; k++) {
        dz_model_options mo = {.n_threads = 1};
        dz_model *m = NULL;
        dz_kv_cache *kv = NULL;
        DZT_OK(dz_model_load(models[k], &mo, &m));
        if (!m) break;
        if (loras[k]) DZT_OK(dz_model_apply_lora(m, loras[k], 1.0f));
        DZT_OK(dz_kv_cache_create(m, 12, &kv));
        DZT_OK(dz_model_forward(m, kv, ids, 12, 0, outs[k], true));
        dz_kv_cache_free(kv);
        dz_model_free(m);
    }
    double worst = 0;
    for (size_t i = 0; la && lm && i < 12 * (size_t)V; i++) worst = fmax(worst, fabs((double)la[i] - lm[i]));
    DZT_CHECK(worst <= 1e-4, "gpt2 adapter (qkv, output, up, down) vs merged: max |dlogit| %g", worst);
    free(la);
    free(lm);
    dz_lora_trainer_free(tr);
}

/* dizuo finetune's checkpoints: 3 steps saved then resumed to 6 give the
 * adapter, the loss curve and the logged losses of 6 uninterrupted steps,
 * byte for byte (a constant learning rate: the schedule does not depend on
 * --steps); resuming with other options or data is refused by name. */
static void run_ok(const char *what, const char *cmd) {
    char *out = NULL;
    int rc = dzt_run(cmd, &out, NULL);
    DZT_CHECK(rc == 0, "%s: exit %d: %s", what, rc, cmd);
    free(out);
}

static void run_fails(const char *what, const char *cmd, const char *needle) {
    char full[4096], *out = NULL;
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    int rc = dzt_run(full, &out, NULL);
    DZT_CHECK(rc == 1 && out && strstr(out, needle), "%s: exit %d, expected 1 and \"%s\": %s", what, rc, needle,
              out ? out : "");
    free(out);
}

static bool same_bytes(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = dzt_read_file(a, &na), *y = dzt_read_file(b, &nb);
    bool same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static void test_finetune_resume(void) {
    const char *dir = dzt_tmpdir();
    char data[512], val[512], common[2048], cmd[4096], p[8][600];
    snprintf(data, sizeof data, "%s/ft.txt", dir);
    snprintf(val, sizeof val, "%s/ft-val.txt", dir);
    FILE *f = fopen(data, "w");
    for (int i = 0; i < 30; i++) fprintf(f, "the quick brown fox %d jumps over the lazy dog. ", i);
    fclose(f);
    f = fopen(val, "w");
    fputs("a lazy dog sleeps in the sun all day long. the fox jumps. ", f);
    fclose(f);
    const char *names[8] = {"a.gguf", "a.loss.svg", "a.jsonl", "b3.gguf", "b.gguf", "b.loss.svg", "b.jsonl", "ck"};
    for (int i = 0; i < 8; i++) snprintf(p[i], sizeof p[i], "%s/ft-%s", dir, names[i]);
    snprintf(common, sizeof common,
             "'%s' finetune --base '%s' --data '%s' --val '%s' --seq 8 --batch 2 --lora-rank 4 --schedule constant "
             "--lr 1e-2 -t 2",
             dzt_bin(), base, data, val);
    snprintf(cmd, sizeof cmd, "%s --steps 6 -o '%s' --log '%s' 2>/dev/null", common, p[0], p[2]);
    run_ok("6 steps", cmd);
    snprintf(cmd, sizeof cmd, "%s --steps 3 --save-every 3 --checkpoint-dir '%s' -o '%s' --log '%s' 2>/dev/null",
             common, p[7], p[3], p[6]);
    run_ok("3 steps, a checkpoint", cmd);
    snprintf(cmd, sizeof cmd, "%s --steps 6 --resume '%s' -o '%s' --log '%s' 2>/dev/null", common, p[7], p[4], p[6]);
    run_ok("resumed to 6", cmd);
    DZT_CHECK(same_bytes(p[0], p[4]), "the resumed adapter %s differs from the uninterrupted run's %s", p[4], p[0]);
    DZT_CHECK(same_bytes(p[1], p[5]), "the resumed loss curve %s differs from %s", p[5], p[1]);
    /* the logs: the same per-step losses (tokens_per_s aside), then the validation loss */
    char *la = dzt_read_file(p[2], NULL), *lb = dzt_read_file(p[6], NULL);
    DZT_ASSERT(la && lb && strstr(la, "\"val_loss\"") && strstr(lb, "\"val_loss\""));
    for (int step = 1; la && lb && step <= 6; step++) {
        char key[32], va[64] = "", vb[64] = "";
        snprintf(key, sizeof key, "{\"step\": %d, \"loss\": ", step);
        const char *x = strstr(la, key), *y = strstr(lb, key);
        if (x) sscanf(x + strlen(key), "%63[^,]", va);
        if (y) sscanf(y + strlen(key), "%63[^,]", vb);
        DZT_CHECK(x && y && !strcmp(va, vb), "step %d: loss %s uninterrupted, %s resumed", step, va, vb);
    }
    free(la);
    free(lb);
    /* resumes that cannot continue that run */
    snprintf(cmd, sizeof cmd, "%s --steps 6 --resume '%s' --batch 3 -o '%s'", common, p[7], p[4]);
    run_fails("another batch", cmd, "--batch 2");
    snprintf(cmd, sizeof cmd, "%s --steps 6 --resume '%s' --lora-targets attn_q -o '%s'", common, p[7], p[4]);
    run_fails("other targets", cmd, "--lora-targets");
    snprintf(cmd, sizeof cmd, "%s --steps 6 --resume '%s' --data '%s' -o '%s'", common, p[7], val, p[4]);
    run_fails("other data", cmd, "is not the data");
    snprintf(cmd, sizeof cmd, "%s --steps 2 --resume '%s' -o '%s'", common, p[7], p[4]);
    run_fails("past --steps", cmd, "past --steps 2");
}

int main(void) {
    make_base();
    test_finetune_resume();
    test_gpt2_targets();
    test_gradient();
    test_train_merge(base);
    test_train_merge(f32);
    test_bad();
    return dzt_done();
}
