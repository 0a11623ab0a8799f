/* dizuo info: the summary of real files (facts known about them), and the
 * exit codes of the usage and error paths. */
#include "dztest.h"

static int run_info(const char *arg, char **out, char **err) {
    char *argv[] = {(char *)dzt_bin(), "info", (char *)arg, NULL};
    if (!arg) argv[2] = NULL;
    return dzt_run_argv(argv, out, NULL, err);
}

#define HAS(text, needle) DZT_CHECK((text) && strstr((text), (needle)), "output lacks \"%s\"", (needle))

int main(void) {
    char *path = dzt_shared("models/stories260K.gguf");
    char *out = NULL, *err = NULL;
    DZT_EQ_INT(run_info(path, &out, &err), 0);
    HAS(out, "GGUF version:    3");
    HAS(out, "alignment:       32");
    HAS(out, "architecture:    \"llama\"");
    HAS(out, "llama.embedding_length                   = 64");
    HAS(out, "llama.block_count                        = 5");
    HAS(out, "llama.attention.layer_norm_rms_epsilon   = 1e-05");
    HAS(out, "tokens:        512");
    HAS(out, "bos id:        1 \"<s>\"");
    HAS(out, "eos id:        2 \"</s>\"");
    HAS(out, "tokenizer.ggml.scores                    = [float32 x 512]");
    HAS(out, "tensors (48):");
    HAS(out, "token_embd.weight");
    HAS(out, "64 x 512");
    HAS(out, "172 x 64");
    /* 2 x 64x512 + 64 + 5 layers x (64x64 x 2 + 64x32 x 2 + 3 x 64x172 + 2 x 64) = 292800 */
    HAS(out, "total: 292800 parameters");
    HAS(out, "1171200 bytes");
    free(out), out = NULL;
    free(err), err = NULL;
    free(path);

    path = dzt_shared("conformance/synth-tiny-Q4_0.gguf");
    DZT_EQ_INT(run_info(path, &out, &err), 0);
    HAS(out, "Q4_0");
    HAS(out, "llama.feed_forward_length                = 768");
    free(out), out = NULL;
    free(err), err = NULL;
    free(path);

    DZT_EQ_INT(run_info("--help", &out, &err), 0);
    HAS(out, "usage: dizuo info");
    free(out), out = NULL;
    free(err), err = NULL;
    DZT_EQ_INT(run_info(NULL, &out, &err), 2);
    HAS(err, "usage: dizuo info");
    free(out), out = NULL;
    free(err), err = NULL;
    DZT_EQ_INT(run_info("--bogus", &out, &err), 2);
    free(out), out = NULL;
    free(err), err = NULL;
    DZT_EQ_INT(run_info("/nonexistent/model.gguf", &out, &err), 1);
    HAS(err, "dizuo info: /nonexistent/model.gguf");
    free(out), out = NULL;
    free(err), err = NULL;
    return dzt_done();
}
