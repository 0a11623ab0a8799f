/* dizuo logits: teacher-forced logits of a token sequence, in the .logits
 * format (little-endian int32 n_tokens, int32 n_vocab, int32 tokens[n],
 * float32 logits[n][n_vocab]; row i = logits after tokens[0..i]). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "dizuo/model.h"

static const char *logits_help =
    "usage: dizuo logits -m MODEL --tokens FILE -o OUT [options]\n"
    "\n"
    "Runs the token ids in FILE (whitespace-separated integers) through the model and\n"
    "writes the logits of every position to OUT in the .logits format: int32 n_tokens,\n"
    "int32 n_vocab, int32 tokens[n_tokens], float32 logits[n_tokens][n_vocab].\n"
    "\n"
    "options:\n"
    "  -m, --model FILE      GGUF model (required)\n"
    "      --tokens FILE     token ids (required)\n"
    "  -o, --output FILE     where to write the logits (required)\n"
    "  -b, --batch N         tokens per forward pass (default 512)\n"
    "  -t, --threads N       CPU threads\n"
    "      --device NAME     device to run on (default cpu)\n"
    "  -h, --help            this help\n";

/* Reads whitespace-separated ids; malloc'd array in *ids. */
static int read_ids(const char *path, int32_t **ids, size_t *n) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "dizuo logits: cannot open %s: %s\n", path, strerror(errno));
        return DZ_EXIT_ERROR;
    }
    size_t cap = 256, len = 0;
    int32_t *buf = malloc(cap * sizeof *buf);
    long long v;
    int got;
    while (buf && (got = fscanf(f, "%lld", &v)) == 1) {
        if (v < 0 || v > INT32_MAX) {
            fprintf(stderr, "dizuo logits: %s: token id %lld at index %zu is out of range\n", path, v, len);
            free(buf);
            fclose(f);
            return DZ_EXIT_ERROR;
        }
        if (len == cap) {
            int32_t *bigger = realloc(buf, 2 * cap * sizeof *buf);
            if (!bigger) { free(buf); buf = NULL; break; }
            buf = bigger;
            cap *= 2;
        }
        buf[len++] = (int32_t)v;
    }
    bool at_end = buf && feof(f);
    fclose(f);
    if (!buf) {
        fprintf(stderr, "dizuo logits: out of memory reading %s\n", path);
        return DZ_EXIT_ERROR;
    }
    if (!at_end || len == 0) {
        fprintf(stderr, "dizuo logits: %s: %s\n", path,
                len == 0 ? "no token ids" : "expected whitespace-separated integers");
        free(buf);
        return DZ_EXIT_ERROR;
    }
    *ids = buf;
    *n = len;
    return DZ_EXIT_OK;
}

static int write_logits(const char *path, const int32_t *ids, int32_t n, int32_t n_vocab,
                        const float *logits) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "dizuo logits: cannot create %s: %s\n", path, strerror(errno));
        return DZ_EXIT_ERROR;
    }
    size_t cells = (size_t)n * (size_t)n_vocab;
    bool ok = fwrite(&n, 4, 1, f) == 1 && fwrite(&n_vocab, 4, 1, f) == 1 &&
              fwrite(ids, 4, (size_t)n, f) == (size_t)n && fwrite(logits, 4, cells, f) == cells;
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        fprintf(stderr, "dizuo logits: writing %s failed: %s\n", path, strerror(errno));
        remove(path);
        return DZ_EXIT_ERROR;
    }
    return DZ_EXIT_OK;
}

int dz_cmd_logits(int argc, char **argv) {
    const char *cmd = "logits", *model_path = NULL, *tokens_path = NULL, *out_path = NULL,
               *device = NULL, *v;
    long long threads = 0, batch = 512;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(logits_help, stdout);
            return DZ_EXIT_OK;
        } else if (!strcmp(o, "-m") || !strcmp(o, "--model")) {
            if (!(model_path = dz_arg_value(cmd, argc, argv, &i))) return DZ_EXIT_USAGE;
        } else if (!strcmp(o, "--tokens")) {
            if (!(tokens_path = dz_arg_value(cmd, argc, argv, &i))) return DZ_EXIT_USAGE;
        } else if (!strcmp(o, "-o") || !strcmp(o, "--output")) {
            if (!(out_path = dz_arg_value(cmd, argc, argv, &i))) return DZ_EXIT_USAGE;
        } else if (!strcmp(o, "--device")) {
            if (!(device = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_device(cmd, device)) return DZ_EXIT_USAGE;
        } else if (!strcmp(o, "-t") || !strcmp(o, "--threads")) {
            if (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_int(cmd, o, v, 1, 1024, &threads))
                return DZ_EXIT_USAGE;
        } else if (!strcmp(o, "-b") || !strcmp(o, "--batch")) {
            if (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_int(cmd, o, v, 1, 1 << 16, &batch))
                return DZ_EXIT_USAGE;
        } else {
            fprintf(stderr, "dizuo logits: unknown option '%s' (see dizuo logits --help)\n", o);
            return DZ_EXIT_USAGE;
        }
    }
    if (!model_path || !tokens_path || !out_path) {
        fprintf(stderr, "dizuo logits: -m MODEL, --tokens FILE and -o OUT are required\n");
        return DZ_EXIT_USAGE;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = read_ids(tokens_path, &ids, &n);
    if (rc) return rc;
    dz_model_options mo = {.device = device, .n_threads = (int32_t)threads};
    dz_model *model = NULL;
    dz_kv_cache *kv = NULL;
    float *logits = NULL;
    if (n > (1u << 24)) {
        fprintf(stderr, "dizuo logits: %zu tokens is too many\n", n);
        free(ids);
        return DZ_EXIT_ERROR;
    }
    if (dz_model_load(model_path, &mo, &model) || dz_kv_cache_create(model, (int32_t)n, &kv)) {
        rc = dz_cli_error(cmd);
        goto done;
    }
    int32_t n_vocab = dz_model_hparams_get(model)->n_vocab;
    logits = malloc(n * (size_t)n_vocab * sizeof *logits);
    if (!logits) {
        fprintf(stderr, "dizuo logits: out of memory for %zu x %d logits\n", n, n_vocab);
        rc = DZ_EXIT_ERROR;
        goto done;
    }
    for (size_t done = 0; done < n; done += (size_t)batch) {
        int32_t k = (int32_t)(n - done < (size_t)batch ? n - done : (size_t)batch);
        if (dz_model_forward(model, kv, ids + done, k, (int32_t)done, logits + done * (size_t)n_vocab, true)) {
            rc = dz_cli_error(cmd);
            goto done;
        }
    }
    rc = write_logits(out_path, ids, (int32_t)n, n_vocab, logits);
done:
    free(logits);
    dz_kv_cache_free(kv);
    dz_model_free(model);
    free(ids);
    return rc;
}
