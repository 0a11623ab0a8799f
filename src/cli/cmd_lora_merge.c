/* dizuo lora-merge: folds a LoRA adapter into its base model. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "dizuo/lora.h"

static const char *help =
    "usage: dizuo lora-merge --base MODEL.gguf --lora ADAPTER.gguf -o MERGED.gguf [options]\n"
    "\n"
    "Writes the base model with every adapted matrix W replaced by W + s (alpha / r) B A.\n"
    "Adapted matrices are computed in F32 and written as --out-type; a quantized base's\n"
    "adapted matrices are dequantized first (the result is F32 or F16, not quantized).\n"
    "Every other tensor and key is copied unchanged.\n"
    "\n"
    "      --base FILE           the base model (required)\n"
    "      --lora FILE           the adapter (required)\n"
    "      --lora-scale S        user scale s (default 1)\n"
    "      --out-type f32|f16    type of the merged matrices (default f32)\n"
    "  -o, --output FILE         the merged model (required)\n"
    "  -h, --help                this help\n";

int dz_cmd_lora_merge(int argc, char **argv) {
    const char *base = NULL, *lora = NULL, *out = NULL, *type = "f32";
    double scale = 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(help, stdout);
            return DZ_EXIT_OK;
        }
        if (!(v = dz_arg_value("lora-merge", argc, argv, &i))) return DZ_EXIT_USAGE;
        if (!strcmp(o, "--base")) base = v;
        else if (!strcmp(o, "--lora")) lora = v;
        else if (!strcmp(o, "-o") || !strcmp(o, "--output")) out = v;
        else if (!strcmp(o, "--out-type")) type = v;
        else if (!strcmp(o, "--lora-scale")) {
            if (!dz_arg_float("lora-merge", o, v, -1e6, 1e6, &scale)) return DZ_EXIT_USAGE;
        } else {
            fprintf(stderr, "dizuo lora-merge: unknown option '%s' (see dizuo lora-merge --help)\n", o);
            return DZ_EXIT_USAGE;
        }
    }
    if (!base || !lora || !out) {
        fprintf(stderr, "dizuo lora-merge: --base, --lora and -o are required (see dizuo lora-merge --help)\n");
        return DZ_EXIT_USAGE;
    }
    if (strcmp(type, "f32") && strcmp(type, "f16")) {
        fprintf(stderr, "dizuo lora-merge: --out-type is f32 or f16, not '%s'\n", type);
        return DZ_EXIT_USAGE;
    }
    if (dz_lora_merge(base, lora, (float)scale, strcmp(type, "f16") ? DZ_TYPE_F32 : DZ_TYPE_F16, out))
        return dz_cli_error("lora-merge");
    fprintf(stderr, "wrote %s\n", out);
    return DZ_EXIT_OK;
}
