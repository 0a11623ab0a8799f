/* dizuo bench: the JSON and table outputs carry what they promise (parsed
 * with jansson), the bandwidth measurement, and bad command lines. Not a
 * timed test: no speed is asserted beyond "positive". */
#include <jansson.h>

#include "dizuo/modeltools.h"
#include "dztest.h"

static void test_json(const char *model) {
    char *argv[] = {(char *)dzt_bin(), "bench", "-m", (char *)model, "-p", "8", "-n", "4", "-r", "2",
                    "-t", "2", "--membw-mib", "16", "--json", NULL};
    char *out = NULL, *err = NULL;
    DZT_EQ_INT(dzt_run_argv(argv, &out, NULL, &err), 0);
    json_error_t jerr;
    json_t *root = out ? json_loads(out, 0, &jerr) : NULL;
    DZT_CHECK(root && json_is_array(root), "not a JSON array: %s\n%s", root ? "" : jerr.text, out ? out : "");
    DZT_EQ_INT(json_array_size(root), 2);
    const char *tests[] = {"pp8", "tg4"};
    for (size_t i = 0; root && i < json_array_size(root) && i < 2; i++) {
        json_t *t = json_array_get(root, i);
        DZT_EQ_STR(json_string_value(json_object_get(t, "test")), tests[i]);
        DZT_EQ_STR(json_string_value(json_object_get(t, "model_filename")), model);
        DZT_EQ_INT(json_integer_value(json_object_get(t, "n_threads")), 2);
        DZT_EQ_INT(json_integer_value(json_object_get(t, "n_prompt")), i == 0 ? 8 : 0);
        DZT_EQ_INT(json_integer_value(json_object_get(t, "n_gen")), i == 0 ? 0 : 4);
        double avg = json_number_value(json_object_get(t, "avg_ts"));
        double sd = json_number_value(json_object_get(t, "stddev_ts"));
        json_t *samples = json_object_get(t, "samples_ts");
        DZT_CHECK(avg > 0 && isfinite(avg), "%s: avg_ts %g", tests[i], avg);
        DZT_CHECK(sd >= 0 && isfinite(sd), "%s: stddev_ts %g", tests[i], sd);
        DZT_EQ_INT(json_array_size(samples), 2);
        /* the mean and sample sd of the samples, recomputed */
        double a = json_number_value(json_array_get(samples, 0)), b = json_number_value(json_array_get(samples, 1));
        DZT_NEAR(avg, (a + b) / 2, 1e-5 * avg + 1e-6);
        DZT_NEAR(sd, fabs(a - b) / sqrt(2.0), 1e-5 * avg + 1e-6);
        /* stories260K: 1185376-byte file, 14176 bytes of header, so 1171200 of tensors */
        DZT_NEAR(json_number_value(json_object_get(t, "model_size")), 1171200, 0.5);
        double gbs = json_number_value(json_object_get(t, "membw_gbs"));
        double ceiling = json_number_value(json_object_get(t, "decode_ceiling_ts"));
        double bytes = json_number_value(json_object_get(t, "weight_bytes_per_token"));
        DZT_CHECK(gbs > 0 && bytes > 0, "membw_gbs %g, weight_bytes_per_token %g", gbs, bytes);
        DZT_NEAR(ceiling, gbs * 1e9 / bytes, 1e-3 * ceiling);
        if (i == 1) DZT_NEAR(json_number_value(json_object_get(t, "fraction_of_ceiling")), avg / ceiling, 1e-3);
    }
    json_decref(root);
    free(out);
    free(err);
}

static void test_table(const char *model) {
    char *argv[] = {(char *)dzt_bin(), "bench", "-m", (char *)model, "-p", "8", "-n", "4", "-r", "1",
                    "--no-membw", NULL};
    char *out = NULL;
    DZT_EQ_INT(dzt_run_argv(argv, &out, NULL, NULL), 0);
    DZT_CHECK(out && strstr(out, "| model") && strstr(out, " pp8 |") &&
                  strstr(out, " tg4 |") && strstr(out, "llama"),
              "table: %s", out ? out : "");
    DZT_CHECK(out && !strstr(out, "ceiling"), "--no-membw still printed a ceiling: %s", out ? out : "");
    free(out);
}

static void test_membw(void) {
    char *argv[] = {(char *)dzt_bin(), "bench", "--membw", "-t", "1", "-r", "1", "--membw-mib", "8", "--json", NULL};
    char *out = NULL;
    DZT_EQ_INT(dzt_run_argv(argv, &out, NULL, NULL), 0);
    json_error_t jerr;
    json_t *root = out ? json_loads(out, 0, &jerr) : NULL;
    DZT_CHECK(root && json_is_object(root), "not a JSON object: %s", out ? out : "");
    double gbs = json_number_value(json_object_get(root, "membw_gbs"));
    DZT_CHECK(gbs > 0 && isfinite(gbs), "membw_gbs %g", gbs);
    json_decref(root);
    free(out);
    double lib = 0;
    DZT_OK(dz_membw_measure(2, 4u << 20, 2, &lib));
    DZT_CHECK(lib > 0 && isfinite(lib), "dz_membw_measure: %g", lib);
    DZT_FAILS(dz_membw_measure(0, 4u << 20, 2, &lib), DZ_ERR_ARG);
    DZT_FAILS(dz_membw_measure(1, 1024, 2, &lib), DZ_ERR_ARG);
    DZT_FAILS(dz_membw_measure(1, 4u << 20, 0, &lib), DZ_ERR_ARG);
    DZT_ASSERT(dz_cpu_physical_cores() >= 1);
}

static void test_bad_args(const char *model) {
    char *zero[] = {(char *)dzt_bin(), "bench", "-m", (char *)model, "-t", "0", NULL};
    DZT_EQ_INT(dzt_run_argv(zero, NULL, NULL, NULL), 2);
    char *none[] = {(char *)dzt_bin(), "bench", NULL};
    DZT_EQ_INT(dzt_run_argv(none, NULL, NULL, NULL), 2);
    char *nothing[] = {(char *)dzt_bin(), "bench", "-m", (char *)model, "-p", "0", "-n", "0", NULL};
    DZT_EQ_INT(dzt_run_argv(nothing, NULL, NULL, NULL), 2);
    char *reps[] = {(char *)dzt_bin(), "bench", "-m", (char *)model, "-r", "0", NULL};
    DZT_EQ_INT(dzt_run_argv(reps, NULL, NULL, NULL), 2);
    char *both[] = {(char *)dzt_bin(), "bench", "--membw", "-m", (char *)model, NULL};
    DZT_EQ_INT(dzt_run_argv(both, NULL, NULL, NULL), 2);
    char *err = NULL;
    char *missing[] = {(char *)dzt_bin(), "bench", "-m", "/nonexistent/m.gguf", "--no-membw", NULL};
    DZT_EQ_INT(dzt_run_argv(missing, NULL, NULL, &err), 1);
    DZT_CHECK(err && strstr(err, "/nonexistent/m.gguf"), "stderr: %s", err ? err : "");
    free(err);
    char *help[] = {(char *)dzt_bin(), "bench", "--help", NULL};
    char *text = NULL;
    DZT_EQ_INT(dzt_run_argv(help, &text, NULL, NULL), 0);
    DZT_CHECK(text && strstr(text, "usage: dizuo bench"), "help: %s", text ? text : "");
    free(text);
}

int main(void) {
    char *model = dzt_shared("models/stories260K.gguf");
    test_bad_args(model);
    test_membw();
    test_json(model);
    test_table(model);
    free(model);
    return dzt_done();
}
