/* `dizuo logits` against llama.cpp's teacher-forced logits of the synthetic
 * model in every weight format dizuo computes, within the limits of
 * ../shared/README.md: NMSE = sum((a-b)^2) / sum(b^2) and top-1 agreement. */
#include "dztest.h"

typedef struct limit {
    const char *type;
    double max_nmse;
    double min_top1; /* fraction of positions whose argmax agrees */
} limit;

/* The single-type files hold every matrix in that type; the _M files are
 * llama.cpp's mixes (Q3_K_M: Q3_K, Q4_K, Q5_K, Q6_K; Q4_K_M: Q4_K, Q6_K;
 * Q5_K_M: Q5_K, Q6_K). */
static const limit limits[] = {
    {"F32", 1e-8, 0.98},    {"F16", 1e-4, 0.95},    {"BF16", 1e-4, 0.95},   {"Q8_0", 5e-4, 0.95},
    {"Q4_0", 5e-4, 0.95},   {"Q4_1", 5e-4, 0.95},   {"Q5_0", 5e-4, 0.95},   {"Q5_1", 5e-4, 0.95},
    {"Q2_K", 2e-3, 0.90},   {"Q3_K_M", 2e-3, 0.90}, {"Q4_K_M", 5e-4, 0.95}, {"Q5_K_M", 5e-4, 0.95},
    {"Q6_K", 5e-4, 0.95},   {"IQ4_NL", 2e-3, 0.90},
};

typedef struct logits_file {
    int32_t n_tokens, n_vocab;
    int32_t *tokens;
    float *logits;
    char *raw;
} logits_file;

static bool read_logits(const char *path, logits_file *lf) {
    size_t size;
    lf->raw = dzt_read_file(path, &size);
    if (!lf->raw || size < 8) return false;
    memcpy(&lf->n_tokens, lf->raw, 4);
    memcpy(&lf->n_vocab, lf->raw + 4, 4);
    if (lf->n_tokens <= 0 || lf->n_vocab <= 0) return false;
    size_t want = 8 + 4 * (size_t)lf->n_tokens * (1 + (size_t)lf->n_vocab);
    if (size != want) return false;
    lf->tokens = (int32_t *)(lf->raw + 8);
    lf->logits = (float *)(lf->raw + 8 + 4 * (size_t)lf->n_tokens);
    return true;
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static void check_type(const limit *lim, const char *tokens_txt) {
    char rel[128], out[512];
    snprintf(rel, sizeof rel, "conformance/synth-tiny-%s.gguf", lim->type);
    char *model = dzt_shared(rel);
    snprintf(rel, sizeof rel, "conformance/%s.logits", lim->type);
    char *ref_path = dzt_shared(rel);
    snprintf(out, sizeof out, "%s/%s.logits", dzt_tmpdir(), lim->type);
    char *argv[] = {(char *)dzt_bin(), "logits", "-m", model, "--tokens", (char *)tokens_txt,
                    "-o", out, NULL};
    char *err = NULL;
    int rc = dzt_run_argv(argv, NULL, NULL, &err);
    DZT_CHECK(rc == 0, "%s: dizuo logits exited %d: %s", lim->type, rc, err ? err : "");
    logits_file ref = {0}, got = {0};
    DZT_CHECK(read_logits(ref_path, &ref), "%s: cannot read %s", lim->type, ref_path);
    DZT_CHECK(rc == 0 && read_logits(out, &got), "%s: cannot read dizuo's %s", lim->type, out);
    if (ref.raw && got.raw && ref.n_tokens == got.n_tokens && ref.n_vocab == got.n_vocab) {
        DZT_CHECK(memcmp(ref.tokens, got.tokens, 4 * (size_t)ref.n_tokens) == 0,
                  "%s: token ids differ", lim->type);
        double num = 0, den = 0;
        int agree = 0;
        for (int32_t t = 0; t < ref.n_tokens; t++) {
            const float *a = got.logits + (size_t)t * ref.n_vocab, *b = ref.logits + (size_t)t * ref.n_vocab;
            for (int32_t v = 0; v < ref.n_vocab; v++) {
                double d = (double)a[v] - b[v];
                num += d * d;
                den += (double)b[v] * b[v];
            }
            agree += argmax(a, ref.n_vocab) == argmax(b, ref.n_vocab);
        }
        double nmse = num / den, top1 = (double)agree / ref.n_tokens;
        printf("%-6s NMSE %.3e (limit %.0e)  top-1 %.1f%% (limit %.0f%%)\n", lim->type, nmse,
               lim->max_nmse, 100 * top1, 100 * lim->min_top1);
        DZT_CHECK(nmse <= lim->max_nmse, "%s: NMSE %.3e > %.0e", lim->type, nmse, lim->max_nmse);
        DZT_CHECK(top1 >= lim->min_top1, "%s: top-1 agreement %.3f < %.2f", lim->type, top1, lim->min_top1);
    } else {
        DZT_CHECK(false, "%s: shapes differ (%d x %d vs reference %d x %d)", lim->type, got.n_tokens,
                  got.n_vocab, ref.n_tokens, ref.n_vocab);
    }
    free(ref.raw);
    free(got.raw);
    free(err);
    free(model);
    free(ref_path);
}

int main(void) {
    char *tokens_txt = dzt_shared("conformance/tokens.txt");
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) check_type(&limits[i], tokens_txt);
    free(tokens_txt);
    return dzt_done();
}
