/* The CUDA backend (src/backends/cuda/, docs/cuda.md).
 *
 * Built without CUDA: skips. Built with it, on any machine:
 *   - the kernel bodies, run on the host ("cuda-emu", cuda.h), pass the
 *     whole tier-I conformance suite against the CPU reference, every case
 *     native (so supports() takes every tier-I case, and each kernel's
 *     indexing, dequantization and arithmetic are right);
 *   - bad row ids in GET_ROWS / SET_ROWS fail the computation with a message
 *     naming the node, and buffers round-trip (through the same checks that
 *     run on a GPU below);
 *   - the synthetic model's logits in 5 formats are within ../shared/README.md's
 *     limits of llama.cpp's (when ../shared is there);
 *   - "cuda" is a registered backend whose device_count() answers quietly.
 * Then, without a GPU, it skips (77) saying so, unless DZ_REQUIRE_CUDA=1
 * (a GPU machine's check), which makes that a failure. With one, on cuda:0:
 * the properties, buffer round trips (fills, overlapping copies, copies to
 * and from the CPU, refused ranges, an impossible allocation), the bad-id
 * errors, the tier-I suite with every case native, and the model logits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/conformance.h"
#include "dizuo/model.h"
#include "dizuo/tensor.h"
#include "dztest.h"

#ifdef DZ_HAVE_CUDA
#include "backends/cuda/cuda.h"

/* ---- the tier-I suite, every case native ---- */

static void print_case(const dz_conformance_case *c, void *user) {
    (void)user;
    if (c->result != DZ_CONFORMANCE_NATIVE)
        fprintf(stderr, "  %s %s [%s]: %s (NMSE %.3g, limit %.0e) %s\n", dz_op_name(c->op), c->dtype, c->shape,
                dz_conformance_result_name(c->result), c->nmse, c->limit, c->message);
}

static void check_tier_i(dz_device *dev) {
    dz_conformance_options opt = dz_conformance_options_default();
    opt.tiers = DZ_TIER_I;
    opt.on_case = print_case;
    dz_conformance_report *report = NULL;
    DZT_OK(dz_conformance_run(dev, &opt, &report));
    if (!report) return;
    const dz_conformance_summary *s = dz_conformance_report_summary(report);
    printf("%s: tier I: %d cases, %d native, %d fallback, %d failed (%.1f s)\n", s->device, s->n_cases, s->n_native,
           s->n_fallback, s->n_failed, s->seconds);
    DZT_EQ_INT(s->n_failed, 0);
    DZT_EQ_INT(s->n_fallback, 0);
    DZT_EQ_INT(s->n_native, s->n_cases);
    /* Every tier-I op was tested (the suite covers each). */
    bool tested[DZ_OP_COUNT] = {false};
    for (int32_t i = 0; i < dz_conformance_report_n_cells(report); i++)
        tested[dz_conformance_report_cell(report, i)->op] = true;
    for (int op = DZ_OP_NONE; op < DZ_OP_COUNT; op++)
        if (dz_op_tiers((dz_op)op) & DZ_TIER_I)
            DZT_CHECK(tested[op], "%s: no conformance case of tier-I op %s", s->device, dz_op_name((dz_op)op));
    dz_conformance_report_destroy(report);
}

/* ---- bad row ids: the kernels write zeros (or nothing), and the run fails naming the node ---- */

static void check_bad_ids(dz_device *dev, dz_device *cpu) {
    dz_device *devices[2] = {dev, cpu};
    const char *dev_name = dz_device_props_get(dev)->name;

    /* GET_ROWS from a (4, 3) table with id 7. */
    dz_ctx *ctx = dz_ctx_create(16);
    dz_tensor *table = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 4, 3), *ids = dz_new_tensor_1d(ctx, DZ_TYPE_I32, 2);
    dz_set_input(table);
    dz_set_input(ids);
    dz_tensor *rows = dz_get_rows(ctx, table, ids);
    dz_set_name(rows, "bad_get_rows");
    dz_set_output(rows);
    dz_graph *g = dz_graph_build(ctx, rows);
    dz_sched *sched = NULL;
    DZT_OK(dz_sched_create(devices, 2, &sched));
    DZT_OK(dz_sched_alloc(sched, g));
    DZT_ASSERT(dz_sched_node_device(sched, rows) == dev);
    const float table_values[12] = {0};
    const int32_t bad_ids[2] = {1, 7};
    DZT_OK(dz_tensor_write(table, table_values, 0, sizeof table_values));
    DZT_OK(dz_tensor_write(ids, bad_ids, 0, sizeof bad_ids));
    DZT_FAILS(dz_sched_compute(sched, g), DZ_ERR_ARG);
    DZT_CHECK(strstr(dz_last_error(), "bad_get_rows") && strstr(dz_last_error(), dev_name),
              "the message names the node and the device: %s", dz_last_error());
    /* The error is reported once: a good run afterwards succeeds. */
    const int32_t good_ids[2] = {2, 0};
    DZT_OK(dz_tensor_write(ids, good_ids, 0, sizeof good_ids));
    DZT_OK(dz_sched_compute(sched, g));
    dz_sched_destroy(sched);
    dz_ctx_destroy(ctx);

    /* SET_ROWS into a (4, 5) destination with id -1. */
    ctx = dz_ctx_create(16);
    dz_tensor *dst = dz_new_tensor_2d(ctx, DZ_TYPE_F16, 4, 5), *src = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 4, 2);
    ids = dz_new_tensor_1d(ctx, DZ_TYPE_I32, 2);
    dz_set_input(dst);
    dz_set_input(src);
    dz_set_input(ids);
    dz_tensor *set = dz_set_rows(ctx, dst, src, ids);
    dz_set_name(set, "bad_set_rows");
    g = dz_graph_build(ctx, set);
    DZT_OK(dz_sched_create(devices, 2, &sched));
    DZT_OK(dz_sched_alloc(sched, g));
    const float src_values[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const int32_t bad_set_ids[2] = {-1, 3};
    uint16_t dst_values[20] = {0};
    DZT_OK(dz_tensor_write(dst, dst_values, 0, sizeof dst_values));
    DZT_OK(dz_tensor_write(src, src_values, 0, sizeof src_values));
    DZT_OK(dz_tensor_write(ids, bad_set_ids, 0, sizeof bad_set_ids));
    DZT_FAILS(dz_sched_compute(sched, g), DZ_ERR_ARG);
    DZT_CHECK(strstr(dz_last_error(), "bad_set_rows") != NULL, "the message names the node: %s", dz_last_error());
    /* The good row was still written: row 3 = src row 1 (5, 6, 7, 8), exactly representable in fp16. */
    DZT_OK(dz_tensor_read(dst, dst_values, 0, sizeof dst_values));
    DZT_NEAR(dz_fp16_to_fp32(dst_values[12]), 5.0, 0.0);
    DZT_NEAR(dz_fp16_to_fp32(dst_values[15]), 8.0, 0.0);
    DZT_NEAR(dz_fp16_to_fp32(dst_values[0]), 0.0, 0.0);
    dz_sched_destroy(sched);
    dz_ctx_destroy(ctx);
}

/* ---- buffers: everything checked against the same operations on host memory ---- */

static void check_buffers(dz_device *dev, dz_device *cpu) {
    enum { SIZE = (1 << 20) + 3 };
    unsigned char *want = malloc(SIZE), *got = malloc(SIZE);
    dz_buffer *a = NULL, *b = NULL, *host = NULL;
    DZT_ASSERT(want && got);
    DZT_OK(dz_buffer_alloc(dev, SIZE, &a));
    DZT_OK(dz_buffer_alloc(dev, SIZE, &b));
    DZT_OK(dz_buffer_alloc(cpu, SIZE, &host));
    if (!want || !got || !a || !b || !host) goto out;
    for (size_t i = 0; i < SIZE; i++) want[i] = (unsigned char)(i * 2654435761u >> 13);

    DZT_OK(dz_buffer_write(a, 0, want, SIZE));
    DZT_OK(dz_buffer_read(a, 0, got, SIZE));
    DZT_ASSERT(memcmp(want, got, SIZE) == 0);

    DZT_OK(dz_buffer_fill(a, 100, 0xab, 1000));
    memset(want + 100, 0xab, 1000);
    /* Overlapping copies within one buffer, both directions (memmove semantics). */
    DZT_OK(dz_buffer_copy(a, 1000, a, 0, 4096));
    memmove(want + 1000, want, 4096);
    DZT_OK(dz_buffer_copy(a, 7, a, 5000, 70000));
    memmove(want + 7, want + 5000, 70000);
    DZT_OK(dz_buffer_read(a, 0, got, SIZE));
    DZT_ASSERT(memcmp(want, got, SIZE) == 0);

    /* Between buffers of the device, and to and from the CPU. */
    DZT_OK(dz_buffer_copy(b, 3, a, 0, SIZE - 3));
    DZT_OK(dz_buffer_copy(host, 0, b, 3, SIZE - 3));
    DZT_ASSERT(memcmp(host->base, want, SIZE - 3) == 0);
    DZT_OK(dz_buffer_fill(host, 0, 0x5a, 17));
    DZT_OK(dz_buffer_copy(b, 0, host, 0, 17));
    DZT_OK(dz_buffer_read(b, 0, got, 20));
    DZT_ASSERT(got[0] == 0x5a && got[16] == 0x5a && got[17] == want[14]);

    /* Ranges outside the buffer are refused before reaching the device. */
    DZT_FAILS(dz_buffer_write(a, SIZE - 1, want, 2), DZ_ERR_ARG);
    DZT_FAILS(dz_buffer_copy(b, 0, a, 1, SIZE), DZ_ERR_ARG);
out:
    dz_buffer_free(a);
    dz_buffer_free(b);
    dz_buffer_free(host);
    free(want);
    free(got);
}

/* An allocation no device can satisfy: out of memory, naming the device. */
static void check_huge_alloc(dz_device *dev) {
    dz_buffer *huge = NULL;
    DZT_FAILS(dz_buffer_alloc(dev, (size_t)1 << 56, &huge), DZ_ERR_NOMEM);
    DZT_CHECK(strstr(dz_last_error(), dz_device_props_get(dev)->name) != NULL, "names the device: %s",
              dz_last_error());
    DZT_ASSERT(huge == NULL);
}

/* ---- whole models: the synthetic model's teacher-forced logits against
 *      llama.cpp's (../shared/conformance), within ../shared/README.md's
 *      limits (NMSE, top-1 agreement) ---- */

typedef struct logits_ref {
    int32_t n_tokens, n_vocab;
    int32_t *tokens;
    float *logits;
    char *raw;
} logits_ref;

static bool read_logits_ref(const char *path, logits_ref *r) {
    size_t size = 0;
    r->raw = dzt_read_file(path, &size);
    if (!r->raw || size < 8) return false;
    memcpy(&r->n_tokens, r->raw, 4);
    memcpy(&r->n_vocab, r->raw + 4, 4);
    if (r->n_tokens <= 0 || r->n_vocab <= 0 || size != 8 + 4 * (size_t)r->n_tokens * (1 + (size_t)r->n_vocab))
        return false;
    r->tokens = (int32_t *)(r->raw + 8);
    r->logits = (float *)(r->raw + 8 + 4 * (size_t)r->n_tokens);
    return true;
}

static int64_t argmax(const float *v, int32_t n) {
    int64_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

static void check_model_logits(const char *device) {
    static const struct { const char *type; double max_nmse, min_top1; } formats[] = {
        {"F32", 1e-8, 0.98}, {"F16", 1e-4, 0.95}, {"Q4_0", 5e-4, 0.95}, {"Q4_K_M", 5e-4, 0.95}, {"Q2_K", 2e-3, 0.90},
    };
    const char *shared = getenv("DZ_SHARED_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/conformance/synth-tiny-F32.gguf", shared ? shared : "../shared");
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        printf("%s: no ../shared/conformance: the model checks are left out\n", device);
        return;
    }
    fclose(probe);
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
        logits_ref ref = {0};
        snprintf(path, sizeof path, "%s/conformance/%s.logits", shared ? shared : "../shared", formats[f].type);
        DZT_CHECK(read_logits_ref(path, &ref), "cannot read %s", path);
        snprintf(path, sizeof path, "%s/conformance/synth-tiny-%s.gguf", shared ? shared : "../shared",
                 formats[f].type);
        const dz_model_options mo = {.device = device};
        dz_model *model = NULL;
        dz_kv_cache *kv = NULL;
        float *out = ref.raw ? malloc((size_t)ref.n_tokens * (size_t)ref.n_vocab * sizeof *out) : NULL;
        if (out) {
            DZT_OK(dz_model_load(path, &mo, &model));
            if (model) DZT_OK(dz_kv_cache_create(model, ref.n_tokens, &kv));
        }
        if (kv) DZT_OK(dz_model_forward(model, kv, ref.tokens, ref.n_tokens, 0, out, true));
        if (kv && dz_model_hparams_get(model)->n_vocab == ref.n_vocab) {
            double err = 0.0, norm = 0.0;
            int agree = 0;
            for (int32_t t = 0; t < ref.n_tokens; t++) {
                const float *a = out + (size_t)t * ref.n_vocab, *b = ref.logits + (size_t)t * ref.n_vocab;
                for (int32_t i = 0; i < ref.n_vocab; i++) {
                    err += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
                    norm += (double)b[i] * b[i];
                }
                agree += argmax(a, ref.n_vocab) == argmax(b, ref.n_vocab);
            }
            const double nmse = err / norm, top1 = (double)agree / ref.n_tokens;
            printf("%s: synth-tiny-%s logits: NMSE %.3g, top-1 %.1f%%\n", device, formats[f].type, nmse, 100 * top1);
            DZT_CHECK(nmse <= formats[f].max_nmse, "%s %s: NMSE %.3g above %g", device, formats[f].type, nmse,
                      formats[f].max_nmse);
            DZT_CHECK(top1 >= formats[f].min_top1, "%s %s: top-1 agreement %.3f below %.2f", device,
                      formats[f].type, top1, formats[f].min_top1);
        }
        dz_kv_cache_free(kv);
        dz_model_free(model);
        free(out);
        free(ref.raw);
    }
}

static void check_device(dz_device *dev, dz_device *cpu) {
    check_buffers(dev, cpu);
    check_bad_ids(dev, cpu);
    check_tier_i(dev);
}

int main(void) {
    dz_device *cpu = NULL, *emu = NULL, *gpu = NULL;
    DZT_OK(dz_device_open("cpu", &cpu));
    if (!cpu) return dzt_done();

    /* The kernel bodies on the host (registered, so that models can open it by name). */
    DZT_OK(dz_backend_register(dz_cuda_emu_backend_iface()));
    DZT_OK(dz_device_open("cuda-emu", &emu));
    if (emu) {
        check_device(emu, cpu);
        dz_device_close(emu);
        check_model_logits("cuda-emu");
    }

    /* The real backend: registered, and quiet without a GPU. */
    const dz_backend_iface *cuda = dz_backend_find("cuda");
    DZT_ASSERT(cuda != NULL);
    const int count = cuda ? cuda->device_count() : 0;
    DZT_ASSERT(count >= 0);
    if (count == 0) {
        const char *required = getenv("DZ_REQUIRE_CUDA");
        const int rc = dzt_done();
        dz_device_close(cpu);
        if (required && strcmp(required, "1") == 0) {
            fprintf(stderr, "FAIL: no CUDA device (no GPU or no driver), and DZ_REQUIRE_CUDA=1\n");
            return 1;
        }
        if (rc != 0) return rc;
        printf("SKIP: no CUDA device (no GPU or no driver); the kernels passed on the host (cuda-emu)\n");
        return 77;
    }

    DZT_OK(dz_device_open("cuda:0", &gpu));
    if (gpu) {
        const dz_device_props *p = dz_device_props_get(gpu);
        printf("cuda:0: %s, %.1f GiB (%.1f free)\n", p->description, (double)p->memory_total / (1 << 30),
               (double)p->memory_free / (1 << 30));
        DZT_EQ_STR(p->name, "cuda:0");
        DZT_ASSERT(p->description[0] != '\0');
        DZT_ASSERT((p->caps & DZ_CAP_HOST_MEMORY) == 0);
        DZT_ASSERT(p->tiers & DZ_TIER_I);
        DZT_ASSERT(p->memory_total > 0 && p->memory_free <= p->memory_total);
        check_huge_alloc(gpu);
        check_device(gpu, cpu);
        dz_device_close(gpu);
        check_model_logits("cuda:0");
    }
    DZT_FAILS(dz_device_open("cuda:99", &gpu), DZ_ERR_ARG);
    dz_device_close(cpu);
    return dzt_done();
}

#else

int main(void) {
    const char *required = getenv("DZ_REQUIRE_CUDA");
    if (required && strcmp(required, "1") == 0) {
        fprintf(stderr, "FAIL: built without CUDA, and DZ_REQUIRE_CUDA=1\n");
        return 1;
    }
    printf("SKIP: built without CUDA (configure with -DDZ_CUDA=ON where nvcc is installed)\n");
    return 77;
}

#endif
