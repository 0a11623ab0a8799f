/* dizuo quantize and dz_quantize_plan, checked against independent facts:
 *  - the files llama.cpp's quantizer made from synth-tiny-F32 (../shared/
 *    conformance): the same per-tensor types for every target (the _M
 *    mixes included) and the same bytes;
 *  - llama.cpp's recipe rules applied by hand to a 16-layer model;
 *  - the error bound of the Q8_0 format, and logits of the quantized
 *    stories260K against its F32 original;
 *  - exit codes and messages of bad command lines. */
#include "dizuo/model.h"
#include "dizuo/modeltools.h"
#include "dztest.h"

static int run_cli(char **argv, char **out, char **err) {
    return dzt_run_argv(argv, out, NULL, err);
}

/* Quantizes in -> out with the CLI; returns the exit code. */
static int quantize_cli(const char *in, const char *out, const char *type, bool pure) {
    char *argv[] = {(char *)dzt_bin(), "quantize", (char *)in, (char *)out, (char *)type, "-t", "2",
                    "-q", pure ? "--pure" : NULL, NULL};
    char *err = NULL;
    int rc = run_cli(argv, NULL, &err);
    if (rc) fprintf(stderr, "dizuo quantize %s %s %s: exit %d: %s\n", in, out, type, rc, err ? err : "");
    free(err);
    return rc;
}

static int64_t file_type_of(const dz_gguf *g) {
    int64_t v = -1;
    bool found = false;
    dz_gguf_get_int(g, "general.file_type", &v, &found);
    return found ? v : -1;
}

/* ---- against llama.cpp's files ---- */

typedef struct reference_file {
    const char *target;    /* dizuo quantize TYPE */
    const char *file;      /* conformance/synth-tiny-<file>.gguf */
    bool pure;
    int64_t ftype;
} reference_file;

/* Same tensors, same types; *same_bytes counts tensors with identical data. */
static void compare_with_reference(const reference_file *r, const dz_gguf *mine, const dz_gguf *ref,
                                   int *same_bytes, int *n_tensors) {
    *same_bytes = 0;
    *n_tensors = (int)dz_gguf_n_tensors(ref);
    DZT_EQ_INT(dz_gguf_n_tensors(mine), dz_gguf_n_tensors(ref));
    DZT_EQ_INT(file_type_of(mine), r->ftype);
    for (int64_t i = 0; i < dz_gguf_n_tensors(ref); i++) {
        const dz_gguf_tensor *want = dz_gguf_tensor_at(ref, i);
        const dz_gguf_tensor *got = dz_gguf_find_tensor(mine, want->name);
        DZT_CHECK(got != NULL, "%s: tensor %s missing", r->target, want->name);
        if (!got) continue;
        DZT_CHECK(got->type == want->type, "%s: %s is %s, llama.cpp made %s", r->target, want->name,
                  dz_type_name(got->type), dz_type_name(want->type));
        if (got->type == want->type && got->size == want->size && !memcmp(got->data, want->data, got->size))
            (*same_bytes)++;
    }
}

/* The dequantized tensors of two files: NMSE over all matrix values. */
static double nmse_files(const dz_gguf *a, const dz_gguf *b) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < dz_gguf_n_tensors(b); i++) {
        const dz_gguf_tensor *tb = dz_gguf_tensor_at(b, i), *ta = dz_gguf_find_tensor(a, tb->name);
        if (!ta || ta->type != tb->type || !dz_type_can_dequantize(tb->type)) continue;
        int64_t n = tb->ne[0] * tb->ne[1];
        float *xa = malloc((size_t)n * sizeof *xa), *xb = malloc((size_t)n * sizeof *xb);
        if (xa && xb && !dz_dequantize_row(ta->type, ta->data, xa, n) &&
            !dz_dequantize_row(tb->type, tb->data, xb, n))
            for (int64_t k = 0; k < n; k++) {
                num += ((double)xa[k] - xb[k]) * ((double)xa[k] - xb[k]);
                den += (double)xb[k] * xb[k];
            }
        free(xa);
        free(xb);
    }
    return den > 0 ? num / den : 0;
}

static void test_against_llama_cpp(void) {
    /* ftype values: llama.h's LLAMA_FTYPE_MOSTLY_*. The single-type files were
     * made with --pure, the _M files without. */
    static const reference_file refs[] = {
        {"F16", "F16", false, 1},      {"BF16", "BF16", false, 32},   {"Q8_0", "Q8_0", true, 7},
        {"Q4_0", "Q4_0", true, 2},     {"Q4_1", "Q4_1", true, 3},     {"Q5_0", "Q5_0", true, 8},
        {"Q5_1", "Q5_1", true, 9},     {"Q2_K", "Q2_K", true, 10},    {"Q6_K", "Q6_K", true, 18},
        {"IQ4_NL", "IQ4_NL", true, 25}, {"Q3_K_M", "Q3_K_M", false, 12}, {"Q4_K_M", "Q4_K_M", false, 15},
        {"Q5_K_M", "Q5_K_M", false, 17},
    };
    char *src = dzt_shared("conformance/synth-tiny-F32.gguf");
    for (size_t k = 0; k < sizeof refs / sizeof refs[0]; k++) {
        const reference_file *r = &refs[k];
        char rel[128], out[512];
        snprintf(rel, sizeof rel, "conformance/synth-tiny-%s.gguf", r->file);
        char *ref_path = dzt_shared(rel);
        snprintf(out, sizeof out, "%s/tiny-%s.gguf", dzt_tmpdir(), r->target);
        dz_gguf *ref = NULL, *mine = NULL;
        DZT_OK(dz_gguf_open(ref_path, &ref));

        /* The plan alone (no quantizer needed): the types llama.cpp chose. */
        dz_gguf *in = NULL;
        DZT_OK(dz_gguf_open(src, &in));
        int64_t n = in ? dz_gguf_n_tensors(in) : 0;
        dz_type *types = calloc((size_t)n + 1, sizeof *types);
        dz_quantize_params qp = {.ftype = r->target, .pure = r->pure};
        dz_status st = in ? dz_quantize_plan(in, &qp, types, NULL) : DZ_ERR_IO;
        if (ref && in) {
            DZT_CHECK(st == DZ_OK, "%s plan: %s", r->target, dz_last_error());
            for (int64_t i = 0; i < n && !st; i++) {
                const dz_gguf_tensor *t = dz_gguf_tensor_at(in, i), *w = dz_gguf_find_tensor(ref, t->name);
                DZT_CHECK(w && w->type == types[i], "%s plan: %s -> %s, llama.cpp: %s", r->target,
                          t->name, dz_type_name(types[i]), w ? dz_type_name(w->type) : "(absent)");
            }
        }
        free(types);
        dz_gguf_close(in);

        if (st == DZ_OK && ref && quantize_cli(src, out, r->target, r->pure) == 0 &&
            dz_gguf_open(out, &mine) == DZ_OK) {
            int same = 0, total = 0;
            compare_with_reference(r, mine, ref, &same, &total);
            double nmse = nmse_files(mine, ref);
            printf("  %-7s %2d/%2d tensors byte-identical to llama.cpp's; NMSE of the weights %.3g\n",
                   r->target, same, total, nmse);
            /* dizuo's quantizers round as ggml's reference quantizers do, so
             * every tensor must be llama.cpp's to the byte. */
            DZT_CHECK(same == total, "%s: %d of %d tensors differ from llama.cpp's (weights NMSE %g)",
                      r->target, total - same, total, nmse);
        } else if (st == DZ_OK) {
            DZT_CHECK(false, "%s: quantizing or opening the output failed", r->target);
        }
        dz_gguf_close(mine);
        dz_gguf_close(ref);
        free(ref_path);
    }
    free(src);
}

/* ---- recipe rules by hand ---- */

/* llama.cpp's use_more_bits(i, n) for n = 16: i < 2, i >= 14, (i - 2) % 3 == 2. */
static bool more_bits_16(int i) { return i < 2 || i >= 14 || (i - 2) % 3 == 2; }

static dz_type planned(const dz_gguf *g, const dz_type *types, const char *name) {
    for (int64_t i = 0; i < dz_gguf_n_tensors(g); i++)
        if (!strcmp(dz_gguf_tensor_at(g, i)->name, name)) return types[i];
    return DZ_TYPE_COUNT;
}

static void plan_of(const char *path, const char *target, bool pure, dz_type **types, dz_gguf **g) {
    *types = NULL;
    *g = NULL;
    DZT_OK(dz_gguf_open(path, g));
    if (!*g) return;
    *types = calloc((size_t)dz_gguf_n_tensors(*g), sizeof **types);
    dz_quantize_params qp = {.ftype = target, .pure = pure};
    dz_status st = dz_quantize_plan(*g, &qp, *types, NULL);
    DZT_CHECK(st == DZ_OK, "plan %s: %s", target, dz_last_error());
}

static void test_recipes_by_hand(const char *vocab_path) {
    /* 16 layers, width 256, FFN 320: ffn_down rows (320) fit 32-blocks but not 256-blocks. */
    char path[512];
    snprintf(path, sizeof path, "%s/l16.gguf", dzt_tmpdir());
    dz_gguf *vocab = NULL;
    DZT_OK(dz_gguf_open(vocab_path, &vocab));
    dz_synth_params sp = {.n_embd = 256, .n_layer = 16, .n_head = 8, .n_head_kv = 2, .n_ff = 320,
                          .seed = 3, .type = DZ_TYPE_F16};
    DZT_OK(dz_model_synth(&sp, vocab, path, NULL, NULL));
    dz_gguf_close(vocab);

    dz_type *t;
    dz_gguf *g;
    char name[64];
    plan_of(path, "Q4_K_M", false, &t, &g);
    if (t) {
        DZT_EQ_INT(planned(g, t, "output.weight"), DZ_TYPE_Q6_K);
        DZT_EQ_INT(planned(g, t, "token_embd.weight"), DZ_TYPE_Q4_K);
        DZT_EQ_INT(planned(g, t, "output_norm.weight"), DZ_TYPE_F32);
        for (int i = 0; i < 16; i++) {
            snprintf(name, sizeof name, "blk.%d.attn_v.weight", i);
            DZT_CHECK(planned(g, t, name) == (more_bits_16(i) ? DZ_TYPE_Q6_K : DZ_TYPE_Q4_K), "Q4_K_M %s: %s",
                      name, dz_type_name(planned(g, t, name)));
            /* ffn_down: Q6_K -> Q8_0 and Q4_K -> Q5_0 (rows of 320) */
            snprintf(name, sizeof name, "blk.%d.ffn_down.weight", i);
            DZT_CHECK(planned(g, t, name) == (more_bits_16(i) ? DZ_TYPE_Q8_0 : DZ_TYPE_Q5_0), "Q4_K_M %s: %s",
                      name, dz_type_name(planned(g, t, name)));
            snprintf(name, sizeof name, "blk.%d.attn_q.weight", i);
            DZT_EQ_INT(planned(g, t, name), DZ_TYPE_Q4_K);
            snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", i);
            DZT_EQ_INT(planned(g, t, name), DZ_TYPE_F32);
        }
    }
    free(t);
    dz_gguf_close(g);

    plan_of(path, "Q3_K_M", false, &t, &g);
    if (t) {
        for (int i = 0; i < 16; i++) {
            snprintf(name, sizeof name, "blk.%d.attn_v.weight", i);
            DZT_EQ_INT(planned(g, t, name), i < 2 ? DZ_TYPE_Q5_K : DZ_TYPE_Q4_K);
            /* Q5_K (i < 16/16) -> Q5_1, Q4_K -> Q5_0 for rows of 320 */
            snprintf(name, sizeof name, "blk.%d.ffn_down.weight", i);
            DZT_EQ_INT(planned(g, t, name), i < 1 ? DZ_TYPE_Q5_1 : DZ_TYPE_Q5_0);
            snprintf(name, sizeof name, "blk.%d.attn_output.weight", i);
            DZT_EQ_INT(planned(g, t, name), DZ_TYPE_Q4_K);
            snprintf(name, sizeof name, "blk.%d.ffn_up.weight", i);
            DZT_EQ_INT(planned(g, t, name), DZ_TYPE_Q3_K);
        }
    }
    free(t);
    dz_gguf_close(g);

    /* Q4_0 (not pure): the output gets Q6_K, everything else Q4_0. */
    plan_of(path, "Q4_0", false, &t, &g);
    if (t) {
        DZT_EQ_INT(planned(g, t, "output.weight"), DZ_TYPE_Q6_K);
        DZT_EQ_INT(planned(g, t, "token_embd.weight"), DZ_TYPE_Q4_0);
        DZT_EQ_INT(planned(g, t, "blk.7.ffn_down.weight"), DZ_TYPE_Q4_0);
    }
    free(t);
    dz_gguf_close(g);

    /* Pure Q4_K: every matrix Q4_K, ffn_down falling back to Q5_0. */
    plan_of(path, "Q4_K", true, &t, &g);
    if (t) {
        DZT_EQ_INT(planned(g, t, "output.weight"), DZ_TYPE_Q4_K);
        DZT_EQ_INT(planned(g, t, "blk.0.attn_v.weight"), DZ_TYPE_Q4_K);
        DZT_EQ_INT(planned(g, t, "blk.0.ffn_down.weight"), DZ_TYPE_Q5_0);
    }
    free(t);
    dz_gguf_close(g);
}

/* ---- stories260K: Q8_0 and Q4_0 ---- */

/* Teacher-forced logits of the first reference prompt plus a few tokens. */
static float *logits_of(const char *path, const int32_t *ids, int n, int *n_vocab) {
    dz_model *m = NULL;
    dz_kv_cache *kv = NULL;
    float *out = NULL;
    DZT_OK(dz_model_load(path, NULL, &m));
    if (m && !dz_kv_cache_create(m, 64, &kv)) {
        *n_vocab = dz_model_hparams_get(m)->n_vocab;
        out = malloc((size_t)n * (size_t)*n_vocab * sizeof *out);
        if (out && dz_model_forward(m, kv, ids, n, 0, out, true)) {
            DZT_CHECK(false, "forward %s: %s", path, dz_last_error());
            free(out);
            out = NULL;
        }
    }
    dz_kv_cache_free(kv);
    dz_model_free(m);
    return out;
}

static void test_stories(const char *stories) {
    /* "Once upon a time" and its first greedy tokens (reference/stories260K.greedy.jsonl) */
    static const int32_t ids[] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298};
    const int n = sizeof ids / sizeof ids[0];
    int n_vocab = 0, nv = 0;
    float *ref = logits_of(stories, ids, n, &n_vocab);
    dz_gguf *src = NULL;
    DZT_OK(dz_gguf_open(stories, &src));
    struct { const char *type; int64_t ftype; dz_type matrix, output; double nmse_max; } cases[] = {
        /* output: Q6_K for Q4_0, 64-element rows do not fit 256-blocks -> Q8_0 */
        {"Q8_0", 7, DZ_TYPE_Q8_0, DZ_TYPE_Q8_0, 1e-3},
        {"Q4_0", 2, DZ_TYPE_Q4_0, DZ_TYPE_Q8_0, 3e-2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0] && src; c++) {
        char out[512];
        snprintf(out, sizeof out, "%s/stories-%s.gguf", dzt_tmpdir(), cases[c].type);
        DZT_EQ_INT(quantize_cli(stories, out, cases[c].type, false), 0);
        dz_gguf *g = NULL;
        DZT_OK(dz_gguf_open(out, &g));
        if (!g) continue;
        DZT_EQ_INT(file_type_of(g), cases[c].ftype);
        int64_t qv = 0;
        DZT_OK(dz_gguf_get_int(g, "general.quantization_version", &qv, NULL));
        DZT_EQ_INT(qv, 2);
        /* Every KV of the source is there with the same encoded value. */
        for (int64_t i = 0; i < dz_gguf_n_kv(src); i++) {
            const char *key = dz_gguf_kv_key(src, i);
            if (!strcmp(key, "general.file_type") || !strcmp(key, "general.quantization_version")) continue;
            dz_gguf_value a, b;
            dz_gguf_kv_value(src, i, &a);
            int64_t j = dz_gguf_find_kv(g, key);
            DZT_CHECK(j >= 0, "%s: key %s not copied", cases[c].type, key);
            if (j < 0) continue;
            dz_gguf_kv_value(g, j, &b);
            DZT_CHECK(a.type == b.type && a.n == b.n, "%s: key %s changed", cases[c].type, key);
        }
        /* Types: 1-D stay F32; ffn_down's 172-element rows fit no block -> F16. */
        for (int64_t i = 0; i < dz_gguf_n_tensors(g); i++) {
            const dz_gguf_tensor *t = dz_gguf_tensor_at(g, i), *s = dz_gguf_find_tensor(src, t->name);
            dz_type want = t->n_dims == 1 ? DZ_TYPE_F32
                           : strstr(t->name, "ffn_down") ? DZ_TYPE_F16
                           : !strcmp(t->name, "output.weight") ? cases[c].output
                                                               : cases[c].matrix;
            DZT_CHECK(t->type == want, "%s: %s is %s, expected %s", cases[c].type, t->name,
                      dz_type_name(t->type), dz_type_name(want));
            if (!s || t->type != DZ_TYPE_Q8_0) continue;
            /* Q8_0's bound: |x - q*d| <= d/2 per element with d = amax/127, plus
             * the rounding of d to fp16 (relative 2^-11) times |q| <= 127. */
            int64_t n_el = t->ne[0] * t->ne[1];
            float *x = malloc((size_t)n_el * sizeof *x);
            if (!x || dz_dequantize_row(t->type, t->data, x, n_el)) { free(x); continue; }
            const float *orig = s->data;
            int bad = 0;
            for (int64_t b = 0; b < n_el / 32; b++) {
                double amax = 0;
                for (int k = 0; k < 32; k++) amax = fmax(amax, fabs(orig[b * 32 + k]));
                double d = amax / 127, tol = d / 2 + amax * 0x1p-11 + 1e-12;
                for (int k = 0; k < 32; k++) bad += fabs((double)x[b * 32 + k] - orig[b * 32 + k]) > tol;
            }
            DZT_CHECK(bad == 0, "%s: %d values of %s outside Q8_0's error bound", cases[c].type, bad, t->name);
            free(x);
        }
        dz_gguf_close(g);
        /* The model runs and stays close to the F32 original. */
        float *q = logits_of(out, ids, n, &nv);
        if (ref && q) {
            double num = 0, den = 0;
            int agree = 0;
            for (int p = 0; p < n; p++) {
                int am = 0, bm = 0;
                for (int v = 0; v < n_vocab; v++) {
                    double a = q[p * n_vocab + v], b = ref[p * n_vocab + v];
                    num += (a - b) * (a - b);
                    den += b * b;
                    if (a > q[p * n_vocab + am]) am = v;
                    if (b > ref[p * n_vocab + bm]) bm = v;
                }
                agree += am == bm;
            }
            printf("  stories260K %s: logits NMSE vs F32 %.3g, top-1 agreement %d/%d\n", cases[c].type,
                   num / den, agree, n);
            DZT_CHECK(num / den < cases[c].nmse_max, "%s: NMSE %g vs F32 over %g", cases[c].type, num / den,
                      cases[c].nmse_max);
            DZT_CHECK(agree >= n - 2, "%s: top-1 agrees with F32 at %d of %d positions", cases[c].type, agree, n);
        }
        free(q);
    }
    dz_gguf_close(src);
    free(ref);
}

/* ---- bad command lines ---- */

static void test_bad_args(const char *stories) {
    char out[512], *err = NULL;
    snprintf(out, sizeof out, "%s/never.gguf", dzt_tmpdir());
    char *unknown[] = {(char *)dzt_bin(), "quantize", (char *)stories, out, "Q7_X", NULL};
    DZT_EQ_INT(run_cli(unknown, NULL, &err), 2);
    DZT_CHECK(err && strstr(err, "Q7_X") && strstr(err, "Q8_0") && strstr(err, "Q4_0"),
              "unknown type: stderr should name it and list the types: %s", err ? err : "");
    free(err);
    char *zero[] = {(char *)dzt_bin(), "quantize", (char *)stories, out, "Q8_0", "-t", "0", NULL};
    DZT_EQ_INT(run_cli(zero, NULL, NULL), 2);
    char *missing[] = {(char *)dzt_bin(), "quantize", "/nonexistent/in.gguf", out, "Q8_0", NULL};
    DZT_EQ_INT(run_cli(missing, NULL, &err), 1);
    DZT_CHECK(err && strstr(err, "/nonexistent/in.gguf"), "missing input: stderr should name it: %s",
              err ? err : "");
    free(err);
    char *few[] = {(char *)dzt_bin(), "quantize", (char *)stories, out, NULL};
    DZT_EQ_INT(run_cli(few, NULL, NULL), 2);
    char *opt[] = {(char *)dzt_bin(), "quantize", "--bogus", NULL};
    DZT_EQ_INT(run_cli(opt, NULL, NULL), 2);
    char *help[] = {(char *)dzt_bin(), "quantize", "--help", NULL};
    char *text = NULL;
    DZT_EQ_INT(run_cli(help, &text, NULL), 0);
    DZT_CHECK(text && strstr(text, "usage: dizuo quantize") && strstr(text, "Q4_K_M"), "help: %s",
              text ? text : "");
    free(text);
    FILE *f = fopen(out, "rb");
    DZT_CHECK(f == NULL, "a failed run left %s behind", out);
    if (f) fclose(f);
    /* An already quantized input is refused unless requantizing is allowed. */
    char *q8 = dzt_shared("conformance/synth-tiny-Q8_0.gguf");
    char *requant[] = {(char *)dzt_bin(), "quantize", q8, out, "Q4_0", NULL};
    DZT_EQ_INT(run_cli(requant, NULL, &err), 1);
    DZT_CHECK(err && strstr(err, "requantiz"), "requantizing: %s", err ? err : "");
    free(err);
    free(q8);
}

int main(void) {
    char *stories = dzt_shared("models/stories260K.gguf");
    test_bad_args(stories);
    test_stories(stories);
    test_recipes_by_hand(stories);
    test_against_llama_cpp();
    free(stories);
    return dzt_done();
}
