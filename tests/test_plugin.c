/* Backend plugins and CPU fallback, with the test backends of
 * tests/plugins/: two plugins the loader must refuse (an ABI version no core
 * knows; no entry symbol) while everything else keeps working, and a
 * deliberately partial backend (MUL_MAT, ADD, RMS_NORM only, its own
 * memory) on which the real model must still give llama.cpp's greedy
 * tokens and text: every other node runs on the CPU, with the copies the
 * scheduler inserts. Also `dizuo devices` and --device errors. */
#include <dlfcn.h>
#include <jansson.h>
#include <stdlib.h>

#include "dizuo/model.h"
#include "dztest.h"

enum { N_STEPS = 32 };

/* Under AddressSanitizer and ThreadSanitizer, let a huge allocation fail like malloc does
 * instead of aborting: the out-of-memory path is under test. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "allocator_may_return_null=1"; }

static const char *GOOD = DZ_TEST_PLUGIN_DIR "/good/partial.so";
static const char *ABI99 = DZ_TEST_PLUGIN_DIR "/bad/partial_abi99.so";
static const char *NOENTRY = DZ_TEST_PLUGIN_DIR "/bad/partial_noentry.so";

static void check_refusals(void) {
    DZT_ASSERT(dz_plugin_load(ABI99) != DZ_OK);
    DZT_CHECK(strstr(dz_last_error(), "ABI version 99") && strstr(dz_last_error(), "partial_abi99.so"),
              "wrong ABI refused with: %s", dz_last_error());
    DZT_ASSERT(dz_plugin_load(NOENTRY) != DZ_OK);
    DZT_CHECK(strstr(dz_last_error(), "dz_backend_entry") && strstr(dz_last_error(), "partial_noentry.so"),
              "missing entry refused with: %s", dz_last_error());
    DZT_ASSERT(dz_plugin_load(DZ_TEST_PLUGIN_DIR "/no/such.so") != DZ_OK);
    DZT_CHECK(dz_backend_find("partial") == NULL, "a refused plugin left a backend behind");
    /* The rest keeps working. */
    dz_device *cpu = NULL;
    DZT_OK(dz_device_open("cpu", &cpu));
    dz_device_close(cpu);
}

static void check_loaded(void) {
    DZT_OK(dz_plugin_load(GOOD));
    DZT_ASSERT(dz_backend_find("partial") != NULL);
    DZT_ASSERT(dz_plugin_load(GOOD) != DZ_OK); /* the name is taken now */
    DZT_CHECK(strstr(dz_last_error(), "already registered") != NULL, "second load: %s", dz_last_error());
    int loaded = 0, refused = 0;
    for (int i = 0; i < dz_plugin_count(); i++) {
        const dz_plugin_info *p = dz_plugin_at(i);
        if (p->backend) loaded++;
        else if (p->error) refused++;
    }
    DZT_EQ_INT(loaded, 1);
    DZT_EQ_INT(refused, 4);
    dz_device *dev = NULL;
    DZT_OK(dz_device_open("partial:0", &dev));
    if (dev) DZT_CHECK(!(dz_device_props_get(dev)->caps & DZ_CAP_HOST_MEMORY), "partial memory is its own");
    dz_device_close(dev);
}

/* Greedy tokens of the real model on the partial device against llama.cpp's. */
static void check_model(const char *model_path, json_t *ref, void (*stats)(long *, long *, long *)) {
    dz_model_options mo = {.device = "partial:0"};
    dz_model *m = NULL;
    DZT_OK(dz_model_load(model_path, &mo, &m));
    if (!m) return;
    const char *prompt = json_string_value(json_object_get(ref, "prompt"));
    json_t *steps = json_object_get(ref, "steps");
    int32_t *ids = NULL;
    size_t n = 0;
    DZT_OK(dz_tokenize(dz_model_tokenizer(m), prompt, strlen(prompt), true, false, &ids, &n));
    const int32_t n_vocab = dz_model_hparams_get(m)->n_vocab;
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    dz_kv_cache *kv = NULL;
    DZT_OK(dz_kv_cache_create(m, 256, &kv));
    long nodes0, in0, out0, nodes1, in1, out1;
    stats(&nodes0, &in0, &out0);
    DZT_OK(dz_model_forward(m, kv, ids, (int32_t)n, 0, logits, false));
    int32_t n_past = (int32_t)n, mismatches = 0;
    for (size_t s = 0; kv && logits && s < N_STEPS && s < json_array_size(steps); s++) {
        int32_t best = 0;
        for (int32_t v = 1; v < n_vocab; v++)
            if (logits[v] > logits[best]) best = v;
        int32_t want = (int32_t)json_integer_value(json_object_get(json_array_get(steps, s), "token"));
        if (best != want) mismatches++;
        if (s + 1 < N_STEPS) DZT_OK(dz_model_forward(m, kv, &want, 1, n_past++, logits, false));
    }
    DZT_CHECK(mismatches == 0, "'%s': %d greedy tokens differ from llama.cpp on partial:0", prompt, mismatches);
    stats(&nodes1, &in1, &out1);
    /* Its three ops ran there, and data crossed in both directions. */
    DZT_CHECK(nodes1 > nodes0, "partial:0 computed no node");
    DZT_CHECK(in1 > in0 && out1 > out0, "no copies to and from partial:0 (%ld in, %ld out)", in1 - in0, out1 - out0);
    dz_kv_cache_free(kv);
    /* Out of memory: a clear error naming the allocation and its size. A
     * 1.3 TiB cache fails unless the kernel promises any amount of memory
     * (vm.overcommit_memory = 1), where the check cannot be made. */
    FILE *oc = fopen("/proc/sys/vm/overcommit_memory", "r");
    int mode = oc && fscanf(oc, "%d", &mode) == 1 ? mode : 0;
    if (oc) fclose(oc);
    if (mode != 1) {
        dz_kv_cache *huge = NULL;
        DZT_ASSERT(dz_kv_cache_create(m, 1 << 30, &huge) != DZ_OK);
        DZT_CHECK(strstr(dz_last_error(), "cache") && strstr(dz_last_error(), "bytes"), "huge cache: %s",
                  dz_last_error());
        DZT_ASSERT(huge == NULL);
    }
    free(logits);
    free(ids);
    dz_model_free(m);
}

/* `dizuo run` of the reference prompt, greedy, on partial:0; its exit status. */
static int run_partial(const char *model_path, json_t *ref, char **out, char **err) {
    const char *prompt = json_string_value(json_object_get(ref, "prompt"));
    char *argv[] = {(char *)dzt_bin(), "run", "-m", (char *)model_path, "-p", (char *)prompt, "-n", "128",
                    "--temp", "0", "--no-echo", "--device", "partial:0", NULL};
    return dzt_run_argv(argv, out, NULL, err);
}

/* Weights in several buffers, as on a device whose largest allocation is
 * smaller than the model: the same greedy text; a tensor larger than that
 * allocation is refused with its name and both sizes. */
static void check_split_weights(const char *model_path, json_t *ref) {
    setenv("PARTIAL_MAX_BUFFER", "262144", 1);
    const char *want = json_string_value(json_object_get(ref, "text"));
    char *out = NULL, *err = NULL;
    int rc = run_partial(model_path, ref, &out, &err);
    DZT_CHECK(rc == 0 && out && !strcmp(out, want), "weights in 256 KiB buffers: exit %d, printed \"%s\": %s", rc,
              out ? out : "", err ? err : "");
    free(out);
    free(err);
    setenv("PARTIAL_MAX_BUFFER", "65536", 1); /* token_embd.weight is 128 KiB */
    dz_model_options mo = {.device = "partial:0"};
    dz_model *m = NULL;
    DZT_ASSERT(dz_model_load(model_path, &mo, &m) != DZ_OK);
    DZT_CHECK(strstr(dz_last_error(), "token_embd.weight") && strstr(dz_last_error(), "65536"),
              "a tensor over the largest buffer: %s", dz_last_error());
    dz_model_free(m);
    unsetenv("PARTIAL_MAX_BUFFER");
}

static void check_cli(const char *model_path, json_t *ref) {
    const char *prompt = json_string_value(json_object_get(ref, "prompt"));
    const char *want = json_string_value(json_object_get(ref, "text"));
    char *out = NULL, *err = NULL;
    int rc = run_partial(model_path, ref, &out, &err);
    DZT_CHECK(rc == 0, "dizuo run --device partial:0 exited %d: %s", rc, err ? err : "");
    DZT_CHECK(out && strcmp(out, want) == 0, "'%s' on partial:0 printed\n  \"%s\"\nreference\n  \"%s\"", prompt,
              out ? out : "(null)", want);
    /* The refused plugins of the path were reported and did not stop the run. */
    DZT_CHECK(err && strstr(err, "partial_abi99.so") && strstr(err, "partial_noentry.so"),
              "refused plugins not reported: %s", err ? err : "");
    free(out);
    free(err);
}

static void check_devices_cli(void) {
    char *argv[] = {(char *)dzt_bin(), "devices", NULL};
    char *out = NULL, *err = NULL;
    int rc = dzt_run_argv(argv, &out, NULL, &err);
    DZT_EQ_INT(rc, 0);
    DZT_CHECK(out && strstr(out, "\ncpu ") && strstr(out, "\npartial:0 ") && strstr(out, "refused"),
              "dizuo devices printed:\n%s", out ? out : "");
    free(out);
    free(err);
    char *bad[] = {(char *)dzt_bin(), "run", "-m", "x.gguf", "-p", "x", "--device", "nosuch:3", NULL};
    rc = dzt_run_argv(bad, &out, NULL, &err);
    DZT_CHECK(rc != 0 && err && strstr(err, "nosuch:3") && strstr(err, "partial:0") && strstr(err, "cpu:0"),
              "--device nosuch:3 gave %d: %s", rc, err ? err : "");
    free(out);
    free(err);
}

int main(void) {
    /* No plugin from the machine's plugin directory: the counts below are ours. */
    setenv("DZ_PLUGIN_PATH", DZ_TEST_PLUGIN_DIR "/none", 1);
    check_refusals();
    check_loaded();
    /* For the program: a plugin path holding the good and the two bad plugins. */
    setenv("DZ_PLUGIN_PATH", DZ_TEST_PLUGIN_DIR "/good:" DZ_TEST_PLUGIN_DIR "/bad", 1);
    check_devices_cli();

    char *model_path = dzt_shared("models/stories260K.gguf");
    char *ref_path = dzt_shared("reference/stories260K.greedy.jsonl");
    void *h = dlopen(GOOD, RTLD_NOW | RTLD_NOLOAD);
    union { void *p; void (*fn)(long *, long *, long *); } stats = {.p = h ? dlsym(h, "partial_backend_stats") : NULL};
    DZT_ASSERT(stats.p != NULL);
    FILE *f = fopen(ref_path, "r");
    DZT_ASSERT(f != NULL);
    char line[1 << 18];
    for (int i = 0; i < 3 && f && fgets(line, sizeof line, f); i++) {
        json_t *ref = json_loads(line, 0, NULL);
        DZT_ASSERT(ref != NULL);
        check_model(model_path, ref, stats.fn);
        check_cli(model_path, ref);
        if (i == 0) check_split_weights(model_path, ref);
        json_decref(ref);
    }
    if (f) fclose(f);
    if (h) dlclose(h);
    free(model_path);
    free(ref_path);
    return dzt_done();
}
