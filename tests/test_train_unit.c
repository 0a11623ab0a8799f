/* The trainer's pieces against hand-computed facts: the learning-rate
 * schedule, the row order of the data loader (in order and shuffled), a
 * NaN loss stopping the step, frozen parameters, checkpoints that
 * round-trip every array, and text cut into documents that end with EOS. */
#include <math.h>

#include "dizuo/tokenizer.h"
#include "dizuo/tokenizer_train.h"
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

/* The stream as row 0 of one window over all of it (in order). */
static int64_t stream_of(dz_train_data *d, int32_t *out, int64_t cap) {
    const int64_t n = dz_train_data_n_tokens(d);
    if (n < 2 || n > cap) return -1;
    int32_t *tg = malloc((size_t)n * sizeof *tg);
    dz_train_data_row(d, 0, (int32_t)(n - 1), false, 0, out, tg);
    out[n - 1] = tg[n - 2];
    free(tg);
    return n;
}

/* Appends the tokens of text (BOS as the vocabulary says), then eos if >= 0. */
static int64_t expect_doc(const dz_tokenizer *tok, const char *text, int32_t eos, int32_t *out, int64_t n) {
    int32_t *ids = NULL;
    size_t k = 0;
    DZT_OK(dz_tokenize(tok, text, strlen(text), dz_tokenizer_add_bos_default(tok), false, &ids, &k));
    for (size_t i = 0; i < k; i++) out[n++] = ids[i];
    free(ids);
    if (eos >= 0) out[n++] = eos;
    return n;
}

static void test_doc_sep(void) {
    /* a small byte-level BPE vocabulary (its <|endoftext|> is the EOS) */
    const char *corpus = "the cat sat on the mat. the dog sat on the log. ";
    dz_bpe_train_params bp = {.vocab_size = 300};
    dz_bpe_trainer *bt = NULL;
    DZT_OK(dz_bpe_trainer_create(&bp, &bt));
    DZT_OK(dz_bpe_trainer_feed(bt, corpus, strlen(corpus), NULL));
    DZT_OK(dz_bpe_trainer_train(bt));
    char tok_path[512], text_path[512];
    snprintf(tok_path, sizeof tok_path, "%s/tok.gguf", dzt_tmpdir());
    snprintf(text_path, sizeof text_path, "%s/docs.txt", dzt_tmpdir());
    DZT_OK(dz_bpe_trainer_save(bt, NULL, tok_path));
    dz_bpe_trainer_destroy(bt);
    dz_gguf *g = NULL;
    dz_tokenizer *tok = NULL;
    DZT_OK(dz_gguf_open(tok_path, &g));
    if (g) DZT_OK(dz_tokenizer_load(g, &tok));
    if (!tok) {
        dz_gguf_close(g);
        return;
    }
    const int32_t eos = dz_tokenizer_eos(tok), n_vocab = dz_tokenizer_n_vocab(tok);
    DZT_ASSERT(eos >= 0);
    /* three documents; the run of four newlines holds an empty one */
    const char *text = "the cat sat.\n\nthe dog\nsat.\n\n\n\non the mat";
    FILE *f = fopen(text_path, "w");
    fputs(text, f);
    fclose(f);
    const char *paths[] = {text_path};
    int32_t got[256], want[256];
    dz_train_data *d = NULL;
    DZT_OK(dz_train_data_load(paths, 1, tok, n_vocab, "\n\n", &d));
    int64_t n_want = expect_doc(tok, "the cat sat.", eos, want, 0);
    n_want = expect_doc(tok, "the dog\nsat.", eos, want, n_want);
    n_want = expect_doc(tok, "on the mat", eos, want, n_want);
    int64_t n_got = d ? stream_of(d, got, 256) : -1;
    DZT_EQ_INT(n_got, n_want);
    for (int64_t i = 0; i < n_got && n_got == n_want; i++)
        DZT_CHECK(got[i] == want[i], "doc-sep stream: token %lld is %d, expected %d", (long long)i, got[i], want[i]);
    dz_train_data_free(d);
    /* without a separator: one document, no EOS */
    d = NULL;
    DZT_OK(dz_train_data_load(paths, 1, tok, n_vocab, NULL, &d));
    n_want = expect_doc(tok, text, -1, want, 0);
    n_got = d ? stream_of(d, got, 256) : -1;
    DZT_EQ_INT(n_got, n_want);
    for (int64_t i = 0; i < n_got && n_got == n_want; i++)
        DZT_CHECK(got[i] == want[i], "whole-file stream: token %lld is %d, expected %d", (long long)i, got[i], want[i]);
    dz_train_data_free(d);
    /* a separator that is not UTF-8 */
    DZT_FAILS(dz_train_data_load(paths, 1, tok, n_vocab, "\xff", &d), DZ_ERR_ARG);
    dz_tokenizer_free(tok);
    dz_gguf_close(g);
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
    float history[7] = {9.5f, 8.25f, 7.125f, 6.0f, 5.5f, 5.25f, 5.125f};
    dz_train_state s = {.step = 7, .row = 28, .seed = 0xFEDCBA9876543210ull, .data_hash = ~0ull, .batch = 4,
                        .seq = 8, .grad_accum = 1, .losses = history};
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
        DZT_ASSERT(t.losses && !memcmp(t.losses, history, sizeof history)); /* the loss history */
        free(t.losses);
    }
    /* a checkpoint without a loss history loads with none */
    s.losses = NULL;
    DZT_OK(dz_train_checkpoint_save(m, &s, dir));
    dz_train_model_free(back);
    back = NULL;
    DZT_OK(dz_train_checkpoint_load(dir, &back, &t));
    DZT_ASSERT(back && t.losses == NULL);
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
    test_doc_sep();
    test_nan_and_frozen();
    test_checkpoint();
    return dzt_done();
}
