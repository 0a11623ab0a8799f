/* dizuo synth: a random-weight model of any shape, for benchmarks and tests. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "dizuo/modeltools.h"

static const char *synth_help =
    "usage: dizuo synth --dim D --layers L --heads H --ffn F --vocab-from MODEL.gguf -o OUT.gguf\n"
    "                   [--arch llama] [--kv-heads K] [--ctx C] [--seed S] [--type F16] [--std X]\n"
    "\n"
    "Writes a llama model of the given shape with random weights: matrices of mean 0 and\n"
    "standard deviation X (bell-shaped: a sum of four uniforms), norm weights 1. The same\n"
    "arguments give a byte-identical file. The tokenizer (every tokenizer.* key) is copied\n"
    "from MODEL.gguf; the vocabulary size is its token count. Quantize the result with\n"
    "dizuo quantize. Progress goes to stderr.\n"
    "\n"
    "options:\n"
    "      --arch NAME         architecture (default and only choice so far: llama)\n"
    "      --dim D             model width, a multiple of --heads (required)\n"
    "      --layers L          transformer blocks (required)\n"
    "      --heads H           attention heads; dim / heads must be even (required)\n"
    "      --kv-heads K        key/value heads, dividing H (default H)\n"
    "      --ffn F             feed-forward width (required)\n"
    "      --vocab-from FILE   GGUF file whose tokenizer to copy (required)\n"
    "      --ctx C             llama.context_length (default 2048)\n"
    "      --seed S            random seed (default 1)\n"
    "      --type T            type of the matrices: F32, F16 or BF16 (default F16)\n"
    "      --std X             standard deviation of matrix entries (default 0.02)\n"
    "  -t, --threads N         threads filling the tensors (default: the online CPUs;\n"
    "                          the file does not depend on it)\n"
    "  -o, --output FILE       where to write the model (required)\n"
    "  -q, --quiet             no progress on stderr\n"
    "  -h, --help              this help\n"
    "\n"
    "example (TinyLlama 1.1B shape):\n"
    "  dizuo synth --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 \\\n"
    "      --vocab-from ../shared/tokenizers/ggml-vocab-llama-spm.gguf -o llama-1.1b-f16.gguf\n";

typedef struct synth_progress {
    bool quiet;
    const char *path;
    size_t total;
} synth_progress;

static void on_tensor(const dz_tensor_event *ev, void *user) {
    synth_progress *sp = user;
    sp->total += ev->to_bytes;
    if (sp->quiet) return;
    char shape[64];
    if (ev->n_dims > 1)
        snprintf(shape, sizeof shape, "%lld x %lld", (long long)ev->ne[0], (long long)ev->ne[1]);
    else
        snprintf(shape, sizeof shape, "%lld", (long long)ev->ne[0]);
    fprintf(stderr, "[%4lld/%4lld] %-28s %-5s %-14s %9.2f MiB\n", (long long)ev->index + 1,
            (long long)ev->count, ev->name, dz_type_name(ev->to), shape, ev->to_bytes / 1048576.0);
    if (ev->index + 1 == ev->count)
        fprintf(stderr, "writing %.2f MiB to %s\n", sp->total / 1048576.0, sp->path);
}

int dz_cmd_synth(int argc, char **argv) {
    const char *cmd = "synth", *vocab_path = NULL, *out_path = NULL, *type_name = "F16", *v;
    dz_synth_params p = {.arch = "llama", .seed = 1};
    long long dim = 0, layers = 0, heads = 0, kv_heads = 0, ffn = 0, ctx = 2048, seed = 1, threads = 0;
    double std = 0.02;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        long long *target = NULL, lo = 1, hi = 1 << 20;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(synth_help, stdout);
            return DZ_EXIT_OK;
        } else if (!strcmp(o, "-q") || !strcmp(o, "--quiet")) {
            quiet = true;
            continue;
        } else if (!strcmp(o, "--arch")) {
            if (!(p.arch = dz_arg_value(cmd, argc, argv, &i))) return DZ_EXIT_USAGE;
            if (strcmp(p.arch, "llama")) {
                fprintf(stderr, "dizuo synth: --arch %s: only llama is supported\n", p.arch);
                return DZ_EXIT_USAGE;
            }
            continue;
        } else if (!strcmp(o, "--vocab-from")) {
            if (!(vocab_path = dz_arg_value(cmd, argc, argv, &i))) return DZ_EXIT_USAGE;
            continue;
        } else if (!strcmp(o, "-o") || !strcmp(o, "--output")) {
            if (!(out_path = dz_arg_value(cmd, argc, argv, &i))) return DZ_EXIT_USAGE;
            continue;
        } else if (!strcmp(o, "--type")) {
            if (!(type_name = dz_arg_value(cmd, argc, argv, &i))) return DZ_EXIT_USAGE;
            continue;
        } else if (!strcmp(o, "--std")) {
            if (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_float(cmd, o, v, 1e-9, 1e3, &std))
                return DZ_EXIT_USAGE;
            continue;
        } else if (!strcmp(o, "--dim")) {
            target = &dim, hi = 1 << 17;
        } else if (!strcmp(o, "--layers")) {
            target = &layers, hi = 1 << 12;
        } else if (!strcmp(o, "--heads")) {
            target = &heads, hi = 1 << 12;
        } else if (!strcmp(o, "--kv-heads")) {
            target = &kv_heads, hi = 1 << 12;
        } else if (!strcmp(o, "--ffn")) {
            target = &ffn, hi = 1 << 20;
        } else if (!strcmp(o, "--ctx")) {
            target = &ctx, hi = 1 << 24;
        } else if (!strcmp(o, "--seed")) {
            target = &seed, lo = 0, hi = INT64_MAX;
        } else if (!strcmp(o, "-t") || !strcmp(o, "--threads")) {
            target = &threads, hi = 64;
        } else {
            fprintf(stderr, "dizuo synth: unknown option '%s' (see dizuo synth --help)\n", o);
            return DZ_EXIT_USAGE;
        }
        if (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_int(cmd, o, v, lo, hi, target))
            return DZ_EXIT_USAGE;
    }
    if (!dim || !layers || !heads || !ffn || !vocab_path || !out_path) {
        fprintf(stderr, "dizuo synth: --dim, --layers, --heads, --ffn, --vocab-from and -o are "
                        "required (see dizuo synth --help)\n");
        return DZ_EXIT_USAGE;
    }
    int type = dz_type_from_name(type_name);
    if (type != DZ_TYPE_F32 && type != DZ_TYPE_F16 && type != DZ_TYPE_BF16) {
        fprintf(stderr, "dizuo synth: --type %s: choose F32, F16 or BF16 (quantize afterwards)\n",
                type_name);
        return DZ_EXIT_USAGE;
    }
    p.n_embd = (int32_t)dim;
    p.n_layer = (int32_t)layers;
    p.n_head = (int32_t)heads;
    p.n_head_kv = (int32_t)(kv_heads ? kv_heads : heads);
    p.n_ff = (int32_t)ffn;
    p.n_ctx = (int32_t)ctx;
    p.seed = (uint64_t)seed;
    p.type = (dz_type)type;
    p.init_std = (float)std;
    if (!threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > 64 ? 64 : n;
    }
    p.n_threads = (int32_t)threads;

    dz_gguf *vocab = NULL;
    if (dz_gguf_open(vocab_path, &vocab)) return dz_cli_error(cmd);
    synth_progress sp = {.quiet = quiet, .path = out_path};
    double t0 = dz_time_now();
    dz_status st = dz_model_synth(&p, vocab, out_path, on_tensor, &sp);
    dz_gguf_close(vocab);
    if (st == DZ_ERR_ARG) {
        /* the shape itself is inconsistent (dim % heads, ...): a usage error */
        fprintf(stderr, "dizuo synth: %s\n", dz_last_error());
        return DZ_EXIT_USAGE;
    }
    if (st) return dz_cli_error(cmd);
    if (!quiet)
        fprintf(stderr, "wrote %s: %.2f MiB in %.1f s\n", out_path, sp.total / 1048576.0,
                dz_time_now() - t0);
    return DZ_EXIT_OK;
}
