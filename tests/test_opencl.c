/* The OpenCL backend on opencl:0: the conformance suite of tier I with
 * every case native; buffer transfers at odd sizes and offsets against a
 * host copy; a clear error for an absurd allocation and for an id out of
 * range found by a kernel; stories260K's greedy text and top-5 logits
 * against llama.cpp's reference and the CPU's; batched decoding (paged
 * attention) against the CPU; and the synthetic model's logits in F32, F16,
 * Q8_0 and Q4_0 within ../shared/README.md's limits.
 *
 * Skips (77) with one line when dizuo was built without OpenCL or no
 * OpenCL device exists, unless DZ_REQUIRE_OPENCL=1 (CI), which makes that
 * a failure. */
#include <jansson.h>

#include "dizuo/conformance.h"
#include "dizuo/model.h"
#include "dizuo/tensor.h"
#include "dztest.h"

static const char *DEVICE = "opencl:0";

static void skip_unless_required(const char *why) {
    const char *required = getenv("DZ_REQUIRE_OPENCL");
    if (required && strcmp(required, "1") == 0) {
        fprintf(stderr, "FAIL: %s, and DZ_REQUIRE_OPENCL=1\n", why);
        exit(1);
    }
    printf("SKIP: %s\n", why);
    exit(77);
}

/* ---- the device and its buffers ---- */

static void test_props(dz_device *dev) {
    const dz_device_props *p = dz_device_props_get(dev);
    DZT_EQ_STR(p->name, DEVICE);
    DZT_CHECK(strstr(p->description, "OpenCL") != NULL, "description: %s", p->description);
    DZT_ASSERT(!(p->caps & DZ_CAP_HOST_MEMORY)); /* device memory: data pointers are not host pointers */
    DZT_ASSERT(p->memory_total > 0 && p->memory_free <= p->memory_total);
    printf("%s: %s, %.1f GiB\n", p->name, p->description, (double)p->memory_total / (1 << 30));
}

/* Every transfer is mirrored on a host copy; the device must agree with it. */
static void test_buffers(dz_device *dev) {
    enum { SIZE = 1000003, SMALL = 4099 };
    unsigned char *want = malloc(SIZE), *got = malloc(SIZE), small[SMALL], small_got[SMALL], odd[777];
    for (int i = 0; i < SIZE; i++) want[i] = (unsigned char)(i * 131 + 7);
    for (int i = 0; i < SMALL; i++) small[i] = (unsigned char)(i * 29 + 1);
    for (int i = 0; i < 777; i++) odd[i] = (unsigned char)(255 - i);
    dz_buffer *a = NULL, *b = NULL, *host = NULL, *empty = NULL;
    dz_device *cpu = NULL;
    DZT_OK(dz_buffer_alloc(dev, SIZE, &a));
    DZT_OK(dz_buffer_alloc(dev, SMALL, &b));
    DZT_OK(dz_device_open("cpu", &cpu));
    DZT_OK(dz_buffer_alloc(cpu, SIZE, &host));
    DZT_OK(dz_buffer_alloc(dev, 0, &empty));
    if (!a || !b || !host || !empty) goto out;
    /* Distinct address ranges, so that data addresses name one buffer. */
    const char *pa = a->base, *pb = b->base;
    DZT_CHECK(pb >= pa + SIZE || pb + SMALL <= pa, "buffer ranges overlap: %p +%d, %p +%d", (const void *)pa, SIZE,
              (const void *)pb, SMALL);

    DZT_OK(dz_buffer_write(a, 0, want, SIZE));
    DZT_OK(dz_buffer_write(b, 0, small, SMALL));
    DZT_OK(dz_buffer_write(a, 12345, odd, sizeof odd));
    memcpy(want + 12345, odd, sizeof odd);
    DZT_OK(dz_buffer_fill(a, 99, 0x5a, 13));
    memset(want + 99, 0x5a, 13);
    DZT_OK(dz_buffer_copy(b, 3, a, 54321, 4001)); /* within the device, odd offsets */
    memcpy(small + 3, want + 54321, 4001);
    DZT_OK(dz_buffer_copy(a, 1001, a, 1000, 5000)); /* overlapping, both directions */
    memmove(want + 1001, want + 1000, 5000);
    DZT_OK(dz_buffer_copy(a, 2000, a, 2003, 3001));
    memmove(want + 2000, want + 2003, 3001);
    DZT_OK(dz_buffer_copy(a, 700001, b, 17, 1111)); /* other buffer, other direction */
    memcpy(want + 700001, small + 17, 1111);

    DZT_OK(dz_buffer_read(a, 0, got, SIZE));
    DZT_CHECK(memcmp(got, want, SIZE) == 0, "buffer contents differ from the host copy");
    DZT_OK(dz_buffer_read(a, 777, got, 99999));
    DZT_CHECK(memcmp(got, want + 777, 99999) == 0, "a read at an odd offset differs");
    DZT_OK(dz_buffer_read(b, 0, small_got, SMALL));
    DZT_CHECK(memcmp(small_got, small, SMALL) == 0, "second buffer differs from the host copy");

    /* To and from the CPU: through host memory. */
    DZT_OK(dz_buffer_copy(host, 0, a, 0, SIZE));
    DZT_CHECK(memcmp(host->base, want, SIZE) == 0, "device -> cpu copy differs");
    memset((char *)host->base + 5, 0xc3, 333);
    DZT_OK(dz_buffer_copy(a, 999001, host, 5, 333));
    memset(want + 999001, 0xc3, 333);
    DZT_OK(dz_buffer_read(a, 999000, got, SIZE - 999000));
    DZT_CHECK(memcmp(got, want + 999000, SIZE - 999000) == 0, "cpu -> device copy differs");

    /* Out of range: refused, naming the device; nothing written. */
    DZT_FAILS(dz_buffer_write(b, SMALL - 10, odd, 11), DZ_ERR_ARG);
    DZT_CHECK(strstr(dz_last_error(), DEVICE) != NULL, "%s", dz_last_error());
    DZT_FAILS(dz_buffer_read(a, SIZE, got, 1), DZ_ERR_ARG);
    DZT_FAILS(dz_buffer_copy(a, SIZE - 5, b, 0, 6), DZ_ERR_ARG);
    DZT_OK(dz_buffer_read(b, 0, small_got, SMALL));
    DZT_CHECK(memcmp(small_got, small, SMALL) == 0, "a refused write changed the buffer");
out:
    dz_buffer_free(empty);
    dz_buffer_free(host);
    dz_buffer_free(b);
    dz_buffer_free(a);
    dz_device_close(cpu);
    free(want);
    free(got);
}

static void test_out_of_memory(dz_device *dev) {
    const dz_device_props *p = dz_device_props_get(dev);
    const size_t sizes[2] = {SIZE_MAX / 2, (size_t)p->memory_total + 1};
    for (int i = 0; i < 2; i++) {
        dz_buffer *x = NULL;
        DZT_FAILS(dz_buffer_alloc(dev, sizes[i], &x), DZ_ERR_NOMEM);
        char size_text[32];
        snprintf(size_text, sizeof size_text, "%zu", sizes[i]);
        DZT_CHECK(strstr(dz_last_error(), DEVICE) && strstr(dz_last_error(), size_text),
                  "the message names the device and the size: %s", dz_last_error());
        DZT_ASSERT(x == NULL);
    }
    dz_buffer *ok = NULL;
    DZT_OK(dz_buffer_alloc(dev, 4096, &ok)); /* the device still serves */
    dz_buffer_free(ok);
}

/* GET_ROWS with an id outside the table: the kernel cannot fail, so it
 * reports the node and synchronize() fails naming it; the next graph runs. */
static void test_data_errors(dz_device *dev) {
    dz_device *cpu = NULL;
    DZT_OK(dz_device_open("cpu", &cpu));
    dz_device *devices[2] = {dev, cpu};
    dz_sched *sched = NULL;
    DZT_OK(dz_sched_create(devices, 2, &sched));
    dz_ctx *ctx = dz_ctx_create(16);
    dz_tensor *table = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 5, 3), *ids = dz_new_tensor_1d(ctx, DZ_TYPE_I32, 2);
    dz_set_input(table);
    dz_set_input(ids);
    dz_tensor *rows = dz_get_rows(ctx, table, ids);
    dz_set_name(rows, "lookup");
    dz_set_output(rows);
    dz_graph *g = dz_graph_build(ctx, rows);
    DZT_ASSERT(g != NULL);
    if (!sched || !g) goto out;
    DZT_OK(dz_sched_alloc(sched, g));
    DZT_ASSERT(dz_sched_node_device(sched, rows) == dev);
    float values[15], out[10];
    for (int i = 0; i < 15; i++) values[i] = (float)i;
    DZT_OK(dz_tensor_write(table, values, 0, sizeof values));
    const int32_t good[2] = {2, 0}, bad[2] = {1, 3};
    DZT_OK(dz_tensor_write(ids, good, 0, sizeof good));
    DZT_OK(dz_sched_compute(sched, g));
    DZT_OK(dz_tensor_read(rows, out, 0, sizeof out));
    DZT_CHECK(out[0] == 10.0f && out[4] == 14.0f && out[5] == 0.0f && out[9] == 4.0f, "rows %g %g %g %g", out[0],
              out[4], out[5], out[9]);
    DZT_OK(dz_tensor_write(ids, bad, 0, sizeof bad));
    DZT_FAILS(dz_sched_compute(sched, g), DZ_ERR_ARG);
    DZT_CHECK(strstr(dz_last_error(), "lookup") && strstr(dz_last_error(), DEVICE), "%s", dz_last_error());
    DZT_OK(dz_tensor_write(ids, good, 0, sizeof good));
    DZT_OK(dz_sched_compute(sched, g));
out:
    dz_ctx_destroy(ctx);
    dz_sched_destroy(sched);
    dz_device_close(cpu);
}

/* ---- the conformance suite: certified for tier I ---- */

/* A weight at an odd offset (a GGUF file with alignment 1) is refused, so
 * that it runs on the CPU instead of failing on the device. */
static void test_misaligned(dz_device *dev) {
    dz_ctx *ctx = dz_ctx_create(8);
    dz_buffer *buf = NULL;
    DZT_OK(dz_buffer_alloc(dev, 4096, &buf));
    dz_tensor *w_even = ctx ? dz_new_tensor_2d(ctx, DZ_TYPE_Q8_0, 32, 2) : NULL;
    dz_tensor *w_odd = ctx ? dz_new_tensor_2d(ctx, DZ_TYPE_Q8_0, 32, 2) : NULL;
    dz_tensor *x = ctx ? dz_new_tensor_2d(ctx, DZ_TYPE_F32, 32, 1) : NULL;
    if (buf && w_even && w_odd && x) {
        DZT_OK(dz_tensor_bind(w_even, buf, 0));
        DZT_OK(dz_tensor_bind(w_odd, buf, 1025));
        DZT_CHECK(dz_device_supports(dev, dz_mul_mat(ctx, w_even, x)), "an aligned Q8_0 weight is refused");
        DZT_CHECK(!dz_device_supports(dev, dz_mul_mat(ctx, w_odd, x)), "a Q8_0 weight at an odd offset is accepted");
    }
    dz_buffer_free(buf);
    dz_ctx_destroy(ctx);
}

static void test_conformance(dz_device *dev) {
    dz_conformance_options opt = dz_conformance_options_default(); /* tier I, seed 1 */
    dz_conformance_report *r = NULL;
    DZT_OK(dz_conformance_run(dev, &opt, &r));
    if (!r) return;
    const dz_conformance_summary *s = dz_conformance_report_summary(r);
    for (int32_t i = 0; i < dz_conformance_report_n_cases(r); i++) {
        const dz_conformance_case *c = dz_conformance_report_case(r, i);
        DZT_CHECK(c->result == DZ_CONFORMANCE_NATIVE, "case #%d %s %s %s: %s %s", c->index, dz_op_name(c->op),
                  c->dtype, c->shape, dz_conformance_result_name(c->result), c->message);
    }
    DZT_ASSERT(s->n_cases > 0);
    DZT_EQ_INT(s->n_native, s->n_cases);
    DZT_CHECK(dz_device_props_get(dev)->tiers & DZ_TIER_I, "the device claims tier I, which the run confirms");
    printf("conformance tier I: %d cases, %d native, %d fallback, %d failed in %.1f s\n", s->n_cases, s->n_native,
           s->n_fallback, s->n_failed, s->seconds);
    dz_conformance_report_destroy(r);
}

/* ---- stories260K: greedy decoding against llama.cpp and the CPU ---- */

enum { N_STEPS = 128 };
static const double LOGIT_TOL = 1e-4;

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* One prompt: the device's greedy tokens, text and top-5 logits against the
 * reference, and its tokens against the CPU's. */
static void check_prompt(dz_model *m, dz_model *cpu, json_t *ref) {
    const char *prompt = json_string_value(json_object_get(ref, "prompt"));
    const char *want_text = json_string_value(json_object_get(ref, "text"));
    json_t *steps = json_object_get(ref, "steps");
    const dz_tokenizer *tok = dz_model_tokenizer(m);
    const int32_t n_vocab = dz_model_hparams_get(m)->n_vocab;
    int32_t *ids = NULL;
    size_t n = 0;
    float *logits = malloc((size_t)n_vocab * sizeof *logits), *cpu_logits = malloc((size_t)n_vocab * sizeof *logits);
    dz_kv_cache *kv = NULL, *cpu_kv = NULL;
    dz_detok *detok = NULL;
    char text[4096] = "";
    size_t text_len = 0;
    DZT_OK(dz_tokenize(tok, prompt, strlen(prompt), true, false, &ids, &n));
    DZT_OK(dz_kv_cache_create(m, 512, &kv));
    DZT_OK(dz_kv_cache_create(cpu, 512, &cpu_kv));
    DZT_OK(dz_detok_create(tok, false, &detok));
    if (!ids || !kv || !cpu_kv || !detok || !logits || !cpu_logits) goto out;
    DZT_OK(dz_model_forward(m, kv, ids, (int32_t)n, 0, logits, false));
    DZT_OK(dz_model_forward(cpu, cpu_kv, ids, (int32_t)n, 0, cpu_logits, false));
    int32_t n_past = (int32_t)n;
    int mismatches = 0, far_logits = 0;
    double worst = 0;
    for (size_t s = 0; s < json_array_size(steps) && !mismatches; s++) {
        json_t *step = json_array_get(steps, s);
        const int32_t id = argmax(logits, n_vocab), cpu_id = argmax(cpu_logits, n_vocab);
        const int32_t want = (int32_t)json_integer_value(json_object_get(step, "token"));
        if (id != want || id != cpu_id) {
            fprintf(stderr, "'%s' step %zu: %s chose %d, the CPU %d, llama.cpp %d\n", prompt, s, DEVICE, id, cpu_id,
                    want);
            mismatches++;
        }
        json_t *top5 = json_object_get(step, "top5");
        for (size_t k = 0; k < json_array_size(top5); k++) {
            json_t *pair = json_array_get(top5, k);
            const double d = fabs(logits[json_integer_value(json_array_get(pair, 0))] -
                                  json_number_value(json_array_get(pair, 1)));
            worst = d > worst ? d : worst;
            far_logits += d > LOGIT_TOL;
        }
        const char *piece;
        size_t len;
        if (dz_detok_push(detok, id, &piece, &len) == DZ_OK && text_len + len < sizeof text) {
            memcpy(text + text_len, piece, len);
            text[text_len += len] = '\0';
        }
        if (s + 1 < json_array_size(steps)) {
            DZT_OK(dz_model_forward(m, kv, &id, 1, n_past, logits, false));
            DZT_OK(dz_model_forward(cpu, cpu_kv, &cpu_id, 1, n_past, cpu_logits, false));
            n_past++;
        }
    }
    const char *rest;
    size_t len;
    if (dz_detok_flush(detok, &rest, &len) == DZ_OK && text_len + len < sizeof text) {
        memcpy(text + text_len, rest, len);
        text[text_len + len] = '\0';
    }
    DZT_CHECK(mismatches == 0, "'%s': greedy tokens on %s differ", prompt, DEVICE);
    DZT_CHECK(far_logits == 0, "'%s': %d top-5 logits differ from llama.cpp's by more than %g (worst %.3g)", prompt,
              far_logits, LOGIT_TOL, worst);
    DZT_CHECK(want_text && strcmp(text, want_text) == 0, "'%s': %s wrote\n  \"%s\"\nreference\n  \"%s\"", prompt,
              DEVICE, text, want_text ? want_text : "(null)");
out:
    dz_detok_free(detok);
    dz_kv_cache_free(kv);
    dz_kv_cache_free(cpu_kv);
    free(ids);
    free(logits);
    free(cpu_logits);
}

/* Two prompts through one batched pass (a paged KV cache: PAGED_ATTENTION),
 * then a decode step of both, against the CPU's one-sequence passes. */
static void check_batch(dz_model *m, dz_model *cpu, const char *p0, const char *p1) {
    const dz_tokenizer *tok = dz_model_tokenizer(m);
    const int32_t n_vocab = dz_model_hparams_get(m)->n_vocab;
    int32_t *ids[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    DZT_OK(dz_tokenize(tok, p0, strlen(p0), true, false, &ids[0], &n[0]));
    DZT_OK(dz_tokenize(tok, p1, strlen(p1), true, false, &ids[1], &n[1]));
    dz_kv_pool *pool = NULL;
    dz_kv_seq *seq[2] = {NULL, NULL};
    float *got = malloc(2 * (size_t)n_vocab * sizeof *got), *want = malloc((size_t)n_vocab * sizeof *want);
    DZT_OK(dz_kv_pool_create(m, 16, 16, &pool));
    for (int i = 0; pool && i < 2; i++) DZT_OK(dz_kv_seq_create(pool, &seq[i]));
    if (!ids[0] || !ids[1] || !seq[0] || !seq[1] || !got || !want) goto out;
    int32_t next[2] = {0, 0};
    for (int step = 0; step < 2; step++) {
        dz_batch_item items[2];
        for (int i = 0; i < 2; i++)
            items[i] = step == 0 ? (dz_batch_item){seq[i], ids[i], (int32_t)n[i]} : (dz_batch_item){seq[i], &next[i], 1};
        DZT_OK(dz_model_forward_batch(m, pool, items, 2, got));
        for (int i = 0; i < 2; i++) {
            /* The same tokens through the CPU's one-sequence pass. */
            dz_kv_cache *kv = NULL;
            DZT_OK(dz_kv_cache_create(cpu, 64, &kv));
            if (!kv) continue;
            DZT_OK(dz_model_forward(cpu, kv, ids[i], (int32_t)n[i], 0, want, false));
            if (step == 1) DZT_OK(dz_model_forward(cpu, kv, &next[i], 1, (int32_t)n[i], want, false));
            double worst = 0;
            for (int32_t v = 0; v < n_vocab; v++) {
                const double d = fabs(got[(size_t)i * n_vocab + v] - want[v]);
                worst = d > worst ? d : worst;
            }
            DZT_CHECK(worst <= LOGIT_TOL, "batched pass, sequence %d, step %d: logits differ from the CPU's by %.3g", i,
                      step, worst);
            dz_kv_cache_free(kv);
        }
        for (int i = 0; i < 2; i++) next[i] = argmax(got + (size_t)i * n_vocab, n_vocab);
    }
out:
    for (int i = 0; i < 2; i++) {
        dz_kv_seq_free(seq[i]);
        free(ids[i]);
    }
    dz_kv_pool_free(pool);
    free(got);
    free(want);
}

static void test_stories(const char *model_path, const char *ref_path) {
    dz_model *m = NULL, *cpu = NULL;
    const dz_model_options on_device = {.device = DEVICE};
    DZT_OK(dz_model_load(model_path, &on_device, &m));
    DZT_OK(dz_model_load(model_path, NULL, &cpu));
    FILE *f = fopen(ref_path, "r");
    DZT_ASSERT(f != NULL);
    static char line[1 << 18];
    int n_prompts = 0;
    const char *first = NULL;
    json_t *refs[16] = {NULL};
    while (m && cpu && f && n_prompts < 16 && fgets(line, sizeof line, f)) {
        json_error_t jerr;
        json_t *ref = json_loads(line, 0, &jerr);
        DZT_CHECK(ref != NULL, "reference line %d: %s", n_prompts + 1, jerr.text);
        if (!ref) continue;
        check_prompt(m, cpu, ref);
        refs[n_prompts++] = ref;
    }
    DZT_EQ_INT(n_prompts, 10);
    if (n_prompts >= 2) {
        first = json_string_value(json_object_get(refs[0], "prompt"));
        check_batch(m, cpu, first, json_string_value(json_object_get(refs[1], "prompt")));
    }
    printf("stories260K on %s: %d prompts x %d greedy steps checked\n", DEVICE, n_prompts, N_STEPS);
    for (int i = 0; i < n_prompts; i++) json_decref(refs[i]);
    if (f) fclose(f);
    dz_model_free(m);
    dz_model_free(cpu);
}

/* ---- the synthetic model's logits, per weight format ---- */

typedef struct logits_limit {
    const char *type;
    double max_nmse, min_top1; /* ../shared/README.md */
} logits_limit;

static const logits_limit limits[] = {{"F32", 1e-8, 0.98}, {"F16", 1e-4, 0.95}, {"Q8_0", 5e-4, 0.95}, {"Q4_0", 5e-4, 0.95}};
enum { N_LIMITS = sizeof limits / sizeof limits[0] };

static void test_logits(const logits_limit *lim, const char *model_path, const char *ref_path) {
    size_t size = 0;
    char *raw = dzt_read_file(ref_path, &size);
    int32_t n_tokens = 0, n_vocab = 0;
    if (raw && size >= 8) {
        memcpy(&n_tokens, raw, 4);
        memcpy(&n_vocab, raw + 4, 4);
    }
    const bool ok = n_tokens > 0 && n_vocab > 0 && size == 8 + 4 * (size_t)n_tokens * (1 + (size_t)n_vocab);
    DZT_CHECK(ok, "%s: malformed reference %s", lim->type, ref_path);
    dz_model *m = NULL;
    dz_kv_cache *kv = NULL;
    float *got = ok ? malloc((size_t)n_tokens * (size_t)n_vocab * sizeof *got) : NULL;
    const dz_model_options on_device = {.device = DEVICE};
    if (ok) DZT_OK(dz_model_load(model_path, &on_device, &m));
    if (m) DZT_OK(dz_kv_cache_create(m, n_tokens, &kv));
    if (kv && got) {
        const int32_t *tokens = (const int32_t *)(raw + 8);
        const float *ref = (const float *)(raw + 8 + 4 * (size_t)n_tokens);
        DZT_OK(dz_model_forward(m, kv, tokens, n_tokens, 0, got, true));
        double num = 0, den = 0;
        int agree = 0;
        for (int32_t t = 0; t < n_tokens; t++) {
            const float *a = got + (size_t)t * n_vocab, *b = ref + (size_t)t * n_vocab;
            for (int32_t v = 0; v < n_vocab; v++) {
                num += ((double)a[v] - b[v]) * ((double)a[v] - b[v]);
                den += (double)b[v] * b[v];
            }
            agree += argmax(a, n_vocab) == argmax(b, n_vocab);
        }
        const double nmse = num / den, top1 = (double)agree / n_tokens;
        printf("synth-tiny %-5s on %s: NMSE %.3e (limit %.0e), top-1 %.1f%% (limit %.0f%%)\n", lim->type, DEVICE, nmse,
               lim->max_nmse, 100 * top1, 100 * lim->min_top1);
        DZT_CHECK(nmse <= lim->max_nmse, "%s: NMSE %.3e > %.0e", lim->type, nmse, lim->max_nmse);
        DZT_CHECK(top1 >= lim->min_top1, "%s: top-1 agreement %.3f < %.2f", lim->type, top1, lim->min_top1);
    }
    dz_kv_cache_free(kv);
    dz_model_free(m);
    free(got);
    free(raw);
}

int main(void) {
    const dz_backend_iface *opencl = dz_backend_find("opencl");
    if (!opencl) skip_unless_required("dizuo was built without the OpenCL backend (cmake -DDZ_OPENCL=ON)");
    if (opencl->device_count() < 1) skip_unless_required("no OpenCL device (clinfo -l lists none)");
    /* Every reference first, so that a missing one skips before anything ran. */
    char *stories = dzt_shared("models/stories260K.gguf"), *greedy = dzt_shared("reference/stories260K.greedy.jsonl");
    char *models[N_LIMITS], *refs[N_LIMITS];
    for (int i = 0; i < N_LIMITS; i++) {
        char rel[96];
        snprintf(rel, sizeof rel, "conformance/synth-tiny-%s.gguf", limits[i].type);
        models[i] = dzt_shared(rel);
        snprintf(rel, sizeof rel, "conformance/%s.logits", limits[i].type);
        refs[i] = dzt_shared(rel);
    }

    dz_device *dev = NULL;
    DZT_OK(dz_device_open(DEVICE, &dev));
    if (dev) {
        test_props(dev);
        test_buffers(dev);
        test_out_of_memory(dev);
        test_data_errors(dev);
        test_misaligned(dev);
        test_conformance(dev);
        dz_device_close(dev);
    }
    test_stories(stories, greedy);
    for (int i = 0; i < N_LIMITS; i++) {
        test_logits(&limits[i], models[i], refs[i]);
        free(models[i]);
        free(refs[i]);
    }
    free(stories);
    free(greedy);
    return dzt_done();
}
