/* Models that contradict themselves are refused with a message naming the
 * defect: unknown architecture, missing hyper-parameters or tensors, shapes
 * that disagree with the hyper-parameters, absurd counts, types that cannot
 * be computed. The files are crafted here, at test time. */
#include "dizuo/model.h"
#include "dztest.h"
#include "tiny_model.h"

static void expect_refused(const char *label, const tiny_model_spec *spec, dz_status want,
                           const char *needle) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s.gguf", dzt_tmpdir(), label);
    dz_status wst = tiny_model_write(spec, path);
    DZT_CHECK(wst == DZ_OK, "%s: writing the crafted model failed: %s", label, dz_last_error());
    dz_model *m = NULL;
    dz_status st = dz_model_load(path, NULL, &m);
    DZT_CHECK(st == want, "%s: expected %s, got %s (%s)", label, dz_status_str(want),
              dz_status_str(st), dz_last_error());
    DZT_CHECK(strstr(dz_last_error(), needle) != NULL, "%s: message \"%s\" does not mention \"%s\"",
              label, dz_last_error(), needle);
    DZT_ASSERT(m == NULL);
    dz_model_free(m);
}

static void test_valid_model_runs(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/valid.gguf", dzt_tmpdir());
    tiny_model_spec spec = tiny_model_default();
    DZT_OK(tiny_model_write(&spec, path));
    dz_model *m = NULL;
    DZT_OK(dz_model_load(path, NULL, &m));
    if (!m) return;
    const dz_model_hparams *hp = dz_model_hparams_get(m);
    DZT_EQ_INT(hp->n_layer, 2);
    DZT_EQ_INT(hp->head_dim, 8);
    DZT_ASSERT(hp->tied_output);
    dz_kv_cache *kv = NULL;
    DZT_OK(dz_kv_cache_create(m, 16, &kv));
    float logits[3 + 256 + 5];
    int32_t ids[3] = {1, 260, 261};
    DZT_OK(dz_model_forward(m, kv, ids, 3, 0, logits, false));
    bool finite = true;
    for (int i = 0; i < hp->n_vocab; i++) finite &= isfinite(logits[i]);
    DZT_ASSERT(finite);
    int32_t bad = hp->n_vocab;
    DZT_FAILS(dz_model_forward(m, kv, &bad, 1, 3, logits, false), DZ_ERR_ARG);
    DZT_FAILS(dz_model_forward(m, kv, ids, 3, 15, logits, false), DZ_ERR_ARG);
    dz_kv_cache_free(kv);
    dz_model_free(m);
}

static void test_cli_reports(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/cli-bad.gguf", dzt_tmpdir());
    tiny_model_spec spec = tiny_model_default();
    spec.arch = "gptj";
    DZT_OK(tiny_model_write(&spec, path));
    char *argv[] = {(char *)dzt_bin(), "run", "-m", path, "-p", "hi", NULL};
    char *err = NULL;
    int rc = dzt_run_argv(argv, NULL, NULL, &err);
    DZT_EQ_INT(rc, 1);
    DZT_CHECK(err && strstr(err, "unknown architecture 'gptj'"), "stderr: %s", err ? err : "");
    free(err);
    char *argv2[] = {(char *)dzt_bin(), "run", "-m", "/nonexistent/model.gguf", "-p", "hi", NULL};
    rc = dzt_run_argv(argv2, NULL, NULL, &err);
    DZT_EQ_INT(rc, 1);
    DZT_CHECK(err && strstr(err, "/nonexistent/model.gguf"), "stderr: %s", err ? err : "");
    free(err);
    char *argv3[] = {(char *)dzt_bin(), "run", "-m", path, "-p", "hi", "-t", "0", NULL};
    DZT_EQ_INT(dzt_run_argv(argv3, NULL, NULL, NULL), 2);
}

int main(void) {
    test_valid_model_runs();
    test_cli_reports();
    tiny_model_spec s;

    s = tiny_model_default(); s.arch = "gptj";
    expect_refused("arch", &s, DZ_ERR_UNSUPPORTED, "unknown architecture 'gptj'");
    s = tiny_model_default(); s.omit_embd_key = true;
    expect_refused("no-embd", &s, DZ_ERR_FORMAT, "llama.embedding_length");
    s = tiny_model_default(); s.n_layer = 0;
    expect_refused("layers-0", &s, DZ_ERR_FORMAT, "block_count");
    s = tiny_model_default(); s.n_layer = 1 << 30;
    expect_refused("layers-huge", &s, DZ_ERR_FORMAT, "block_count");
    s = tiny_model_default(); s.n_head = 0;
    expect_refused("heads-0", &s, DZ_ERR_FORMAT, "head_count");
    s = tiny_model_default(); s.n_head = 1 << 30;
    expect_refused("heads-huge", &s, DZ_ERR_FORMAT, "head_count");
    s = tiny_model_default(); s.n_head_kv = 3;
    expect_refused("kv-heads", &s, DZ_ERR_FORMAT, "head_count_kv");
    s = tiny_model_default(); s.n_embd = 30;
    expect_refused("embd-heads", &s, DZ_ERR_FORMAT, "not a multiple of head_count");
    s = tiny_model_default(); s.rope_dims = 16;
    expect_refused("rope-dims", &s, DZ_ERR_FORMAT, "rope.dimension_count");
    s = tiny_model_default(); s.drop_tensor = "blk.1.ffn_up.weight";
    expect_refused("missing", &s, DZ_ERR_FORMAT, "missing tensor 'blk.1.ffn_up.weight'");
    s = tiny_model_default(); s.drop_tensor = "token_embd.weight";
    expect_refused("missing-embd", &s, DZ_ERR_FORMAT, "token_embd.weight");
    s = tiny_model_default(); s.bad_tensor = "blk.0.attn_k.weight";
    expect_refused("shape", &s, DZ_ERR_FORMAT, "'blk.0.attn_k.weight' has shape [33, 16");
    s = tiny_model_default(); s.embd_rows_delta = 7;
    expect_refused("vocab-rows", &s, DZ_ERR_FORMAT, "token_embd.weight has");
    s = tiny_model_default(); s.typed_tensor = "output_norm.weight"; s.tensor_type = DZ_TYPE_F16;
    expect_refused("norm-type", &s, DZ_ERR_UNSUPPORTED, "must be F32");
    s = tiny_model_default(); s.n_embd = 256; s.n_head = 4; s.n_head_kv = 2; s.n_ff = 256;
    s.typed_tensor = "blk.0.ffn_up.weight"; s.tensor_type = DZ_TYPE_IQ2_XXS;
    expect_refused("iq2", &s, DZ_ERR_UNSUPPORTED, "'blk.0.ffn_up.weight' has type IQ2_XXS");
    return dzt_done();
}
