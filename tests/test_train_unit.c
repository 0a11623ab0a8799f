/* The trainer's pieces against hand-computed facts: the learning-rate
 * schedule, the row order of the data loader (in order and shuffled), a
 * NaN loss stopping the step, frozen parameters, and checkpoints that
 * round-trip every array. */
#include <math.h>

#include "dizuo/train.h"
#include "dztest.h"

static void test_schedule(void) {
    dz_train_opts o = dz_train_opts_default();
    o.lr = 1.0f;
    o.steps = 110;
    o.warmup = 10;
    DZT_NEAR(dz_train_lr(&o, 0), 0.1, 1e-12);
    DZT_NEAR(dz_train_lr(&o, 9), 1.0, 1e-12);
    DZT_NEAR(dz_train_lr(&o, 10), 1.0, 1e-12);                 /* cosine starts at lr */
    DZT_NEAR(dz_train_lr(&o, 60), 0.1 + 0.5 * 0.9, 1e-12);     /* halfway: cos = 0 */
    DZT_NEAR(dz_train_lr(&o, 110), 0.1, 1e-12);                /* the end: lr_min */
    o.schedule = DZ_LR_CONSTANT;
    DZT_NEAR(dz_train_lr(&o, 4), 0.5, 1e-12);
    DZT_NEAR(dz_train_lr(&o, 50), 1.0, 1e-12);
}

static void test_rows(void) {
    int32_t tokens[100];
    for (int i = 0; i < 100; i++) tokens[i] = i;
    dz_train_data *d = NULL;
    DZT_OK(dz_train_data_from_tokens(tokens, 100, 100, &d));
    if (!d) return;
    int32_t in[8], tg[8];
    /* in order: row r starts at r*T mod n */
    dz_train_data_row(d, 3, 8, false, 0, in, tg);
    DZT_EQ_INT(in[0], 24);
    DZT_EQ_INT(tg[7], 32);
    dz_train_data_row(d, 12, 8, false, 0, in, tg); /* starts at 96: wraps */
    DZT_EQ_INT(in[3], 99);
    DZT_EQ_INT(in[4], 0);
    DZT_EQ_INT(tg[3], 0);
    /* shuffled: each epoch of 12 rows visits the 12 windows once; same seed, same order */
    int seen[12] = {0}, first_epoch[12], differs = 0;
    for (int r = 0; r < 12; r++) {
        dz_train_data_row(d, r, 8, true, 42, in, tg);
        DZT_EQ_INT(in[0] % 8, 0);
        if (in[0] / 8 < 12) seen[in[0] / 8]++;
        first_epoch[r] = in[0];
    }
    for (int w = 0; w < 12; w++) DZT_EQ_INT(seen[w], 1);
    for (int r = 0; r < 12; r++) {
        dz_train_data_row(d, 12 + r, 8, true, 42, in, tg);
        differs += in[0] != first_epoch[r];
    }
    DZT_ASSERT(differs > 0); /* a fresh permutation per epoch */
    dz_train_data_row(d, 5, 8, true, 42, in, tg);
    DZT_EQ_INT(in[0], first_epoch[5]);
    dz_train_data_free(d);
    DZT_FAILS(dz_train_data_from_tokens(tokens, 100, 50, &d), DZ_ERR_ARG);
}

static dz_train_config tiny(void) {
    dz_train_config c = dz_train_config_default(DZ_TRAIN_LLAMA);
    c.n_vocab = 16;
    c.n_embd = 8;
    c.n_layer = 1;
    c.n_head = 2;
    c.n_head_kv = 1;
    c.n_ff = 16;
    c.n_ctx = 8;
    return c;
}

static void test_nan_and_frozen(void) {
    dz_train_config c = tiny();
    dz_train_model *m = NULL;
    DZT_OK(dz_train_model_create(&c, 7, &m));
    if (!m) return;
    dz_train_opts o = dz_train_opts_default();
    o.seq = 4;
    o.steps = 3;
    o.threads = 1;
    dz_train_param *norm = dz_train_model_find(m, "blk.0.attn_norm.weight");
    dz_train_param *wq = dz_train_model_find(m, "blk.0.attn_q.weight");
    DZT_ASSERT(norm && wq && !norm->decay && wq->decay);
    if (!norm || !wq) return;
    wq->trainable = false; /* frozen: no gradient, no update */
    dz_trainer *tr = NULL;
    DZT_OK(dz_trainer_create(m, &o, &tr));
    const int32_t in[4] = {1, 2, 3, 4}, tg[4] = {2, 3, 4, 5};
    float *w = dz_train_model_weights(m);
    float q0 = w[wq->offset], n0 = w[norm->offset];
    dz_train_stats st;
    dz_trainer_zero_grad(tr);
    DZT_OK(dz_trainer_backward(tr, in, tg, 1, NULL));
    DZT_OK(dz_trainer_update(tr, 0, &st));
    DZT_ASSERT(w[wq->offset] == q0);
    DZT_ASSERT(w[norm->offset] != n0);
    DZT_NEAR(st.loss, log(16.0), 0.05);
    /* a NaN weight: the step stops, naming it, before any weight changes */
    dz_train_param *emb = dz_train_model_find(m, "token_embd.weight");
    w[emb->offset + 1 * emb->ne[0]] = NAN; /* the embedding of token 1 */
    float before = w[norm->offset];
    dz_trainer_zero_grad(tr);
    DZT_OK(dz_trainer_backward(tr, in, tg, 1, NULL));
    DZT_FAILS(dz_trainer_update(tr, 1, &st), DZ_ERR_FORMAT);
    DZT_ASSERT(strstr(dz_last_error(), "step 2") && strstr(dz_last_error(), "NaN"));
    DZT_ASSERT(w[norm->offset] == before);
    /* ids outside the vocabulary */
    const int32_t bad[4] = {1, 2, 16, 4};
    DZT_FAILS(dz_trainer_backward(tr, bad, tg, 1, NULL), DZ_ERR_ARG);
    dz_trainer_free(tr);
    dz_train_model_free(m);
}

static void test_checkpoint(void) {
    dz_train_config c = tiny();
    dz_train_model *m = NULL, *back = NULL;
    DZT_OK(dz_train_model_create(&c, 9, &m));
    if (!m) return;
    int64_t n = dz_train_model_n_floats(m);
    for (int64_t i = 0; i < n; i++) {
        dz_train_model_adam_m(m)[i] = (float)i * 0.5f;
        dz_train_model_adam_v(m)[i] = (float)i * 0.25f;
    }
    dz_train_state s = {.step = 7, .row = 28, .seed = 0xFEDCBA9876543210ull, .data_hash = ~0ull, .batch = 4,
                        .seq = 8, .grad_accum = 1};
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ckpt", dzt_tmpdir());
    DZT_OK(dz_train_checkpoint_save(m, &s, dir));
    dz_train_state t;
    DZT_OK(dz_train_checkpoint_load(dir, &back, &t));
    if (back) {
        DZT_EQ_INT(dz_train_model_n_floats(back), n);
        DZT_ASSERT(!memcmp(dz_train_model_weights(back), dz_train_model_weights(m), (size_t)n * 4));
        DZT_ASSERT(!memcmp(dz_train_model_adam_m(back), dz_train_model_adam_m(m), (size_t)n * 4));
        DZT_ASSERT(!memcmp(dz_train_model_adam_v(back), dz_train_model_adam_v(m), (size_t)n * 4));
        DZT_EQ_INT(t.step, 7);
        DZT_EQ_INT(t.row, 28);
        DZT_ASSERT(t.seed == s.seed && t.data_hash == s.data_hash);
        DZT_EQ_INT(t.batch, 4);
        DZT_EQ_INT(dz_train_model_config(back)->n_head_kv, 1);
    }
    dz_train_model_free(back);
    dz_train_model_free(m);
    /* a shape that does not fit */
    c.n_head = 3;
    DZT_FAILS(dz_train_model_create(&c, 1, &m), DZ_ERR_ARG);
    DZT_ASSERT(strstr(dz_last_error(), "3 heads do not divide the width 8"));
}

int main(void) {
    test_schedule();
    test_rows();
    test_nan_and_frozen();
    test_checkpoint();
    return dzt_done();
}
