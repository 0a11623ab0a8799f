/* dizuo synth: determinism (same seed -> the same bytes, another seed ->
 * other weights), shapes and hyper-parameters as dz_model_load reads them,
 * the tokenizer copied from the vocabulary file, the weights' statistics
 * against the requested distribution, and bad command lines. */
#include "dizuo/model.h"
#include "dizuo/modeltools.h"
#include "dztest.h"

/* Runs dizuo synth with a small shape plus extra arguments; returns the exit code. */
static int synth_cli(const char *vocab, const char *out, const char *seed, const char *type,
                     const char *extra0, const char *extra1) {
    char *argv[] = {(char *)dzt_bin(), "synth", "--arch", "llama", "--dim", "128", "--layers", "3",
                    "--heads", "4", "--kv-heads", "2", "--ffn", "352", "--ctx", "256",
                    "--vocab-from", (char *)vocab, "--seed", (char *)seed, "--type", (char *)type,
                    "-o", (char *)out, "-q", (char *)extra0, (char *)extra1, NULL};
    char *err = NULL;
    int rc = dzt_run_argv(argv, NULL, NULL, &err);
    if (rc) fprintf(stderr, "dizuo synth -> %s: exit %d: %s\n", out, rc, err ? err : "");
    free(err);
    return rc;
}

static void test_generator(const char *path);

static char *tmp(const char *name) {
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%s/%s", dzt_tmpdir(), name);
    return p;
}

static void test_determinism(const char *vocab) {
    char *a = tmp("a.gguf"), *b = tmp("b.gguf"), *c = tmp("c.gguf");
    DZT_EQ_INT(synth_cli(vocab, a, "7", "F16", NULL, NULL), 0);
    DZT_EQ_INT(synth_cli(vocab, b, "7", "F16", "-t", "1"), 0); /* a's threads: the online CPUs */
    DZT_EQ_INT(synth_cli(vocab, c, "8", "F16", NULL, NULL), 0);
    size_t na = 0, nb = 0, nc = 0;
    char *da = dzt_read_file(a, &na), *db = dzt_read_file(b, &nb), *dc = dzt_read_file(c, &nc);
    DZT_ASSERT(da && db && dc);
    DZT_CHECK(da && db && na == nb && !memcmp(da, db, na), "same seed, different files");
    DZT_CHECK(da && dc && na == nc && memcmp(da, dc, na), "another seed, the same file");
    /* Another seed changes every matrix (not just one), and no norm. */
    dz_gguf *ga = NULL, *gc = NULL;
    DZT_OK(dz_gguf_open(a, &ga));
    DZT_OK(dz_gguf_open(c, &gc));
    for (int64_t i = 0; ga && gc && i < dz_gguf_n_tensors(ga); i++) {
        const dz_gguf_tensor *ta = dz_gguf_tensor_at(ga, i), *tc = dz_gguf_find_tensor(gc, ta->name);
        bool same = tc && tc->size == ta->size && !memcmp(ta->data, tc->data, ta->size);
        DZT_CHECK(same == (ta->n_dims == 1), "seed 7 vs 8: tensor %s %s", ta->name,
                  same ? "unchanged" : "changed");
    }
    dz_gguf_close(ga);
    dz_gguf_close(gc);
    free(da);
    free(db);
    free(dc);

    /* F32 and F16 of one seed draw the same values: F16 = fp16(F32), exactly. */
    char *f32 = tmp("a32.gguf");
    DZT_EQ_INT(synth_cli(vocab, f32, "7", "F32", NULL, NULL), 0);
    dz_gguf *g16 = NULL, *g32 = NULL;
    DZT_OK(dz_gguf_open(a, &g16));
    DZT_OK(dz_gguf_open(f32, &g32));
    const dz_gguf_tensor *h = g16 ? dz_gguf_find_tensor(g16, "blk.1.ffn_up.weight") : NULL;
    const dz_gguf_tensor *s = g32 ? dz_gguf_find_tensor(g32, "blk.1.ffn_up.weight") : NULL;
    DZT_ASSERT(h && s && h->type == DZ_TYPE_F16 && s->type == DZ_TYPE_F32);
    if (h && s) {
        int64_t n = h->ne[0] * h->ne[1], bad = 0;
        for (int64_t i = 0; i < n; i++) {
            float x;
            uint16_t y;
            memcpy(&x, (const char *)s->data + 4 * i, 4);
            memcpy(&y, (const char *)h->data + 2 * i, 2);
            bad += dz_fp32_to_fp16(x) != y;
        }
        DZT_EQ_INT(bad, 0);
    }
    dz_gguf_close(g16);
    dz_gguf_close(g32);
    test_generator(f32);
}

/* The generator as modeltools.h documents it, restated: row r of tensor i
 * under seed s draws from splitmix64 started at
 * mix64(s ^ 0x632be59bd9b4e019) ^ mix64((i << 40) + r + 1); each value is
 * (sum of the four 16-bit parts of one draw - 2 * 65535) * (std / sd), sd the
 * sum's standard deviation sqrt((65536^2 - 1) / 3), rounded to float. */
static uint64_t ref_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float ref_value(uint64_t seed, uint64_t tensor, uint64_t row, int k, double std) {
    uint64_t state = ref_mix(seed ^ 0x632be59bd9b4e019ull) ^ ref_mix((tensor << 40) + row + 1), u = 0;
    for (int i = 0; i <= k; i++) u = ref_mix(state += 0x9e3779b97f4a7c15ull);
    long sum = (long)(u & 0xffff) + (long)((u >> 16) & 0xffff) + (long)((u >> 32) & 0xffff) + (long)(u >> 48);
    return (float)(sum - 2 * 65535) * (float)(std / sqrt((65536.0 * 65536.0 - 1) / 3));
}

static void test_generator(const char *path) {
    dz_gguf *g = NULL;
    DZT_OK(dz_gguf_open(path, &g));
    if (!g) return;
    /* tensor 0 token_embd, 6 blk.0.attn_k (after attn_norm and attn_q) */
    struct { const char *name; uint64_t index, row; int k; } cells[] = {
        {"token_embd.weight", 0, 0, 0}, {"token_embd.weight", 0, 0, 1}, {"token_embd.weight", 0, 511, 127},
        {"blk.0.attn_k.weight", 5, 3, 17}, {"blk.2.ffn_down.weight", 3 + 2 * 9 + 8, 100, 351},
    };
    for (size_t c = 0; c < sizeof cells / sizeof cells[0]; c++) {
        const dz_gguf_tensor *t = dz_gguf_find_tensor(g, cells[c].name);
        DZT_ASSERT(t && t->type == DZ_TYPE_F32 && dz_gguf_tensor_at(g, (int64_t)cells[c].index) == t);
        if (!t) continue;
        float got;
        memcpy(&got, (const char *)t->data + 4 * ((size_t)cells[c].row * (size_t)t->ne[0] + (size_t)cells[c].k), 4);
        float want = ref_value(7, cells[c].index, cells[c].row, cells[c].k, 0.02);
        DZT_CHECK(got == want, "%s[%llu][%d]: %.9g, the documented generator gives %.9g", cells[c].name,
                  (unsigned long long)cells[c].row, cells[c].k, got, want);
    }
    dz_gguf_close(g);
}

/* Mean, standard deviation and largest magnitude of every matrix; norms 1. */
static void test_values(const char *path, double want_std) {
    dz_gguf *g = NULL;
    DZT_OK(dz_gguf_open(path, &g));
    for (int64_t i = 0; g && i < dz_gguf_n_tensors(g); i++) {
        const dz_gguf_tensor *t = dz_gguf_tensor_at(g, i);
        int64_t n = t->ne[0] * t->ne[1];
        float *x = malloc((size_t)n * sizeof *x);
        DZT_OK(dz_dequantize_row(t->type, t->data, x, n));
        if (t->n_dims == 1) {
            int64_t ones = 0;
            for (int64_t k = 0; k < n; k++) ones += x[k] == 1.0f;
            DZT_CHECK(ones == n && t->type == DZ_TYPE_F32, "%s: %lld of %lld values are 1", t->name,
                      (long long)ones, (long long)n);
        } else {
            double sum = 0, sq = 0, amax = 0;
            for (int64_t k = 0; k < n; k++) {
                sum += x[k];
                sq += (double)x[k] * x[k];
                amax = fmax(amax, fabs(x[k]));
            }
            double mean = sum / n, sd = sqrt(sq / n - mean * mean);
            /* sampling error of the mean: sd / sqrt(n); of the sd: about sd / sqrt(2n) */
            DZT_CHECK(fabs(mean) < 5 * want_std / sqrt((double)n), "%s: mean %g", t->name, mean);
            DZT_CHECK(fabs(sd - want_std) < 5 * want_std / sqrt(2.0 * n) + 1e-3 * want_std, "%s: sd %g, want %g",
                      t->name, sd, want_std);
            /* a sum of four uniforms reaches at most 2 * sqrt(3) sd */
            DZT_CHECK(amax <= 2 * sqrt(3.0) * want_std * 1.001, "%s: |x| up to %g", t->name, amax);
        }
        free(x);
    }
    dz_gguf_close(g);
}

static void test_loads(const char *vocab) {
    char *path = tmp("load.gguf");
    DZT_EQ_INT(synth_cli(vocab, path, "1", "BF16", "--std", "0.05"), 0);
    test_values(path, 0.05);
    dz_model *m = NULL;
    DZT_OK(dz_model_load(path, NULL, &m));
    if (!m) return;
    const dz_model_hparams *hp = dz_model_hparams_get(m);
    DZT_EQ_STR(hp->arch, "llama");
    DZT_EQ_INT(hp->n_embd, 128);
    DZT_EQ_INT(hp->n_layer, 3);
    DZT_EQ_INT(hp->n_head, 4);
    DZT_EQ_INT(hp->n_head_kv, 2);
    DZT_EQ_INT(hp->head_dim, 32);
    DZT_EQ_INT(hp->n_rot, 32);
    DZT_EQ_INT(hp->n_ff, 352);
    DZT_EQ_INT(hp->n_ctx_train, 256);
    DZT_EQ_INT(hp->n_vocab, 512); /* stories260K's vocabulary */
    DZT_ASSERT(!hp->tied_output);
    /* The tokenizer is stories260K's: its ids for "Once upon a time"
     * (reference/stories260K.greedy.jsonl). */
    int32_t *ids = NULL;
    size_t n = 0;
    const dz_tokenizer *tok = dz_model_tokenizer(m);
    DZT_OK(dz_tokenize(tok, "Once upon a time", 16, true, false, &ids, &n));
    static const int32_t want[] = {1, 403, 407, 261, 378};
    DZT_EQ_INT(n, 5);
    for (size_t i = 0; ids && i < n && i < 5; i++) DZT_EQ_INT(ids[i], want[i]);
    /* A forward pass gives finite logits of a sane size: with entries of sd
     * 0.05 and a unit-rms input, a logit has sd about 0.05 * sqrt(128) = 0.57. */
    dz_kv_cache *kv = NULL;
    float *logits = malloc(512 * 5 * sizeof *logits);
    DZT_OK(dz_kv_cache_create(m, 16, &kv));
    if (kv && ids && n == 5) {
        DZT_OK(dz_model_forward(m, kv, ids, 5, 0, logits, true));
        double sq = 0;
        bool finite = true;
        for (int i = 0; i < 512 * 5; i++) {
            finite &= isfinite(logits[i]);
            sq += (double)logits[i] * logits[i];
        }
        double rms = sqrt(sq / (512 * 5));
        DZT_ASSERT(finite);
        DZT_CHECK(rms > 0.1 && rms < 3, "logits rms %g", rms);
    }
    free(logits);
    free(ids);
    dz_kv_cache_free(kv);
    dz_model_free(m);
}

static void test_library_errors(const char *vocab_path) {
    dz_gguf *vocab = NULL;
    DZT_OK(dz_gguf_open(vocab_path, &vocab));
    if (!vocab) return;
    char *path = tmp("never.gguf");
    dz_synth_params p = {.n_embd = 100, .n_layer = 1, .n_head = 3, .n_ff = 8, .type = DZ_TYPE_F16};
    DZT_FAILS(dz_model_synth(&p, vocab, path, NULL, NULL), DZ_ERR_ARG); /* 100 % 3 */
    p.n_head = 4, p.n_head_kv = 3;
    DZT_FAILS(dz_model_synth(&p, vocab, path, NULL, NULL), DZ_ERR_ARG); /* 4 % 3 */
    p.n_head = 20, p.n_head_kv = 0;
    DZT_FAILS(dz_model_synth(&p, vocab, path, NULL, NULL), DZ_ERR_ARG); /* head_dim 5 is odd */
    p.n_head = 4, p.type = DZ_TYPE_Q4_0;
    DZT_FAILS(dz_model_synth(&p, vocab, path, NULL, NULL), DZ_ERR_ARG);
    p.type = DZ_TYPE_F16, p.arch = "gptj";
    DZT_FAILS(dz_model_synth(&p, vocab, path, NULL, NULL), DZ_ERR_ARG);
    FILE *f = fopen(path, "rb");
    DZT_CHECK(f == NULL, "a failed synth left %s behind", path);
    if (f) fclose(f);
    dz_gguf_close(vocab);
}

static void test_bad_args(const char *vocab) {
    char *out = tmp("bad.gguf"), *err = NULL;
    /* dim not a multiple of heads: usage */
    char *shape[] = {(char *)dzt_bin(), "synth", "--dim", "100", "--layers", "1", "--heads", "3", "--ffn",
                     "8", "--vocab-from", (char *)vocab, "-o", out, NULL};
    DZT_EQ_INT(dzt_run_argv(shape, NULL, NULL, &err), 2);
    DZT_CHECK(err && strstr(err, "not a multiple"), "stderr: %s", err ? err : "");
    free(err);
    char *type[] = {(char *)dzt_bin(), "synth", "--dim", "64", "--layers", "1", "--heads", "4", "--ffn", "8",
                    "--vocab-from", (char *)vocab, "--type", "Q4_0", "-o", out, NULL};
    DZT_EQ_INT(dzt_run_argv(type, NULL, NULL, NULL), 2);
    char *missing[] = {(char *)dzt_bin(), "synth", "--dim", "64", "--layers", "1", "--heads", "4", "--ffn",
                       "8", "-o", out, NULL};
    DZT_EQ_INT(dzt_run_argv(missing, NULL, NULL, NULL), 2);
    char *zero[] = {(char *)dzt_bin(), "synth", "--dim", "0", "--layers", "1", "--heads", "4", "--ffn", "8",
                    "--vocab-from", (char *)vocab, "-o", out, NULL};
    DZT_EQ_INT(dzt_run_argv(zero, NULL, NULL, NULL), 2);
    char *novocab[] = {(char *)dzt_bin(), "synth", "--dim", "64", "--layers", "1", "--heads", "4", "--ffn",
                       "8", "--vocab-from", "/nonexistent/vocab.gguf", "-o", out, NULL};
    DZT_EQ_INT(dzt_run_argv(novocab, NULL, NULL, &err), 1);
    DZT_CHECK(err && strstr(err, "/nonexistent/vocab.gguf"), "stderr: %s", err ? err : "");
    free(err);
    char *help[] = {(char *)dzt_bin(), "synth", "--help", NULL};
    char *text = NULL;
    DZT_EQ_INT(dzt_run_argv(help, &text, NULL, NULL), 0);
    DZT_CHECK(text && strstr(text, "usage: dizuo synth"), "help: %s", text ? text : "");
    free(text);
}

int main(void) {
    char *vocab = dzt_shared("models/stories260K.gguf");
    test_determinism(vocab);
    test_loads(vocab);
    test_library_errors(vocab);
    test_bad_args(vocab);
    free(vocab);
    return dzt_done();
}
