/* The real model against llama.cpp: for each prompt of
 * ../shared/reference/stories260K.greedy.jsonl, the prompt's token ids, every
 * greedy step's token, and its top-5 logits within 1e-4 (library); and the
 * text printed by `dizuo run --temp 0 --no-echo` identical to the reference. */
#include <jansson.h>

#include "dizuo/model.h"
#include "dztest.h"

enum { N_STEPS = 128 };
static const double LOGIT_TOL = 1e-4;

static void check_library(dz_model *m, json_t *ref) {
    const char *prompt = json_string_value(json_object_get(ref, "prompt"));
    json_t *want_ids = json_object_get(ref, "prompt_tokens");
    json_t *steps = json_object_get(ref, "steps");
    const dz_tokenizer *tok = dz_model_tokenizer(m);
    int32_t *ids = NULL;
    size_t n = 0;
    DZT_OK(dz_tokenize(tok, prompt, strlen(prompt), true, false, &ids, &n));
    DZT_EQ_INT(n, json_array_size(want_ids));
    for (size_t i = 0; i < n && i < json_array_size(want_ids); i++)
        DZT_EQ_INT(ids[i], json_integer_value(json_array_get(want_ids, i)));

    int32_t n_vocab = dz_model_hparams_get(m)->n_vocab;
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    dz_kv_cache *kv = NULL;
    DZT_OK(dz_kv_cache_create(m, 512, &kv));
    if (!kv || !logits) return;
    DZT_OK(dz_model_forward(m, kv, ids, (int32_t)n, 0, logits, false));
    int32_t n_past = (int32_t)n;
    int token_mismatch = 0, logit_mismatch = 0;
    double worst = 0;
    for (size_t s = 0; s < json_array_size(steps) && !token_mismatch; s++) {
        json_t *step = json_array_get(steps, s);
        int32_t best = 0;
        for (int32_t v = 1; v < n_vocab; v++)
            if (logits[v] > logits[best]) best = v;
        int32_t want = (int32_t)json_integer_value(json_object_get(step, "token"));
        if (best != want) {
            fprintf(stderr, "'%s' step %zu: greedy token %d, reference %d\n", prompt, s, best, want);
            token_mismatch++;
        }
        json_t *top5 = json_object_get(step, "top5");
        for (size_t k = 0; k < json_array_size(top5); k++) {
            json_t *pair = json_array_get(top5, k);
            int32_t id = (int32_t)json_integer_value(json_array_get(pair, 0));
            double ref_logit = json_number_value(json_array_get(pair, 1));
            double d = fabs(logits[id] - ref_logit);
            if (d > worst) worst = d;
            if (d > LOGIT_TOL) {
                if (logit_mismatch < 5)
                    fprintf(stderr, "'%s' step %zu: logit of %d is %.6f, reference %.6f\n", prompt,
                            s, id, logits[id], ref_logit);
                logit_mismatch++;
            }
        }
        if (s + 1 < json_array_size(steps))
            DZT_OK(dz_model_forward(m, kv, &want, 1, n_past++, logits, false));
    }
    DZT_CHECK(token_mismatch == 0, "'%s': greedy tokens differ from llama.cpp", prompt);
    DZT_CHECK(logit_mismatch == 0, "'%s': %d top-5 logits differ by more than %g (worst %.3g)",
              prompt, logit_mismatch, LOGIT_TOL, worst);
    dz_kv_cache_free(kv);
    free(logits);
    free(ids);
}

static void check_cli(const char *model_path, json_t *ref) {
    const char *prompt = json_string_value(json_object_get(ref, "prompt"));
    const char *want = json_string_value(json_object_get(ref, "text"));
    char *argv[] = {(char *)dzt_bin(), "run", "-m", (char *)model_path, "-p", (char *)prompt,
                    "-n", "128", "--temp", "0", "--no-echo", NULL};
    char *out = NULL, *err = NULL;
    int rc = dzt_run_argv(argv, &out, NULL, &err);
    DZT_CHECK(rc == 0, "dizuo run exited %d: %s", rc, err ? err : "");
    DZT_CHECK(out && strcmp(out, want) == 0, "'%s': dizuo run printed\n  \"%s\"\nreference\n  \"%s\"",
              prompt, out ? out : "(null)", want);
    free(out);
    free(err);
}

int main(void) {
    char *model_path = dzt_shared("models/stories260K.gguf");
    char *ref_path = dzt_shared("reference/stories260K.greedy.jsonl");
    dz_model *m = NULL;
    DZT_OK(dz_model_load(model_path, NULL, &m));
    FILE *f = fopen(ref_path, "r");
    DZT_ASSERT(f != NULL);
    char line[1 << 18];
    int n_prompts = 0;
    while (m && f && fgets(line, sizeof line, f)) {
        json_error_t jerr;
        json_t *ref = json_loads(line, 0, &jerr);
        DZT_CHECK(ref != NULL, "reference line %d: %s", n_prompts + 1, jerr.text);
        if (!ref) continue;
        DZT_EQ_INT(json_array_size(json_object_get(ref, "steps")), N_STEPS);
        check_library(m, ref);
        check_cli(model_path, ref);
        json_decref(ref);
        n_prompts++;
    }
    DZT_EQ_INT(n_prompts, 10);
    if (f) fclose(f);
    dz_model_free(m);
    free(model_path);
    free(ref_path);
    return dzt_done();
}
