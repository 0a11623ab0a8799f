/* dizuo tokenizer-train: learns a byte-level BPE vocabulary from text files
 * and writes it as a vocab-only GGUF (read by dizuo and llama.cpp). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "dizuo/tokenizer_train.h"

#define CMD "tokenizer-train"

static void usage(FILE *out) {
    fprintf(out,
            "usage: dizuo tokenizer-train --vocab-size N -o TOK.gguf [options] FILE...\n"
            "\n"
            "Learns a byte-level BPE vocabulary (GPT-2 style: 256 byte tokens, merges, and\n"
            "<|endoftext|> as BOS/EOS/EOT) from UTF-8 text files and writes it as a\n"
            "vocab-only GGUF that dizuo and llama.cpp both read. Text is pre-tokenized with\n"
            "GPT-2's regex (tokenizer.ggml.pre = gpt-2); \"<|endoftext|>\" in a file\n"
            "separates documents. The same input gives a byte-identical file.\n"
            "\n"
            "  --vocab-size N        tokens in the vocabulary, <|endoftext|> included (%d..%d)\n"
            "  -o, --output FILE     the GGUF to write (replaced atomically)\n"
            "  --min-frequency F     do not merge pairs seen fewer than F times (default 2);\n"
            "                        training may then stop below N tokens\n"
            "  --name NAME           general.name of the file (default dizuo-bpe)\n"
            "  -q, --quiet           no progress on stderr\n"
            "  -h, --help            this text\n"
            "\n"
            "FILE may be - for standard input.\n",
            DZ_BPE_MIN_VOCAB, DZ_BPE_MAX_VOCAB);
}

/* Reads a whole file ("-": stdin): malloc'd bytes in *data, *len. */
static bool read_file(const char *path, char **data, size_t *len) {
    bool is_stdin = !strcmp(path, "-");
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "dizuo " CMD ": cannot open %s: %s\n", path, strerror(errno));
        return false;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *bigger = cap <= SIZE_MAX / 4 ? realloc(buf, cap * 2) : NULL;
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    bool failed = ferror(f);
    if (!is_stdin) fclose(f);
    if (!buf || failed) {
        fprintf(stderr, "dizuo " CMD ": cannot read %s: %s\n", path,
                buf ? "read error" : "out of memory");
        free(buf);
        return false;
    }
    *data = buf;
    *len = n;
    return true;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct progress_state {
    bool quiet, tty; /* tty: one line rewritten in place; else a line per 10% */
    double start;
    int last_decile;
} progress_state;

static void on_progress(void *user, const dz_bpe_progress *p) {
    progress_state *ps = user;
    if (ps->quiet) return;
    double t = now_s() - ps->start;
    if (!strcmp(p->phase, "done")) {
        fprintf(stderr, "%smerged: %d / %d tokens (%.1f s)%s\n", ps->tty ? "\r" : "", p->n_vocab,
                p->target_vocab, t, ps->tty ? "                    " : "");
        return;
    }
    int decile = (int)(10.0 * (p->n_vocab - DZ_BPE_MIN_VOCAB) /
                       (p->target_vocab - DZ_BPE_MIN_VOCAB + 1));
    if (!ps->tty && decile <= ps->last_decile) return;
    ps->last_decile = decile;
    fprintf(stderr, "%smerging: %d / %d tokens, last pair seen %lld times (%.1f s)%s",
            ps->tty ? "\r" : "", p->n_vocab, p->target_vocab, (long long)p->last_count, t,
            ps->tty ? "" : "\n");
}

int dz_cmd_tokenizer_train(int argc, char **argv) {
    const char *output = NULL, *name = NULL;
    long long vocab_size = -1, min_frequency = 2;
    progress_state ps = {.tty = isatty(STDERR_FILENO), .last_decile = -1};
    bool only_files = false;
    char **files = calloc((size_t)argc + 1, sizeof *files);
    int n_files = 0;
    if (!files) {
        fprintf(stderr, "dizuo " CMD ": out of memory\n");
        return DZ_EXIT_ERROR;
    }
    int rc = DZ_EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (only_files || (a[0] != '-' || !strcmp(a, "-"))) {
            files[n_files++] = argv[i];
        } else if (!strcmp(a, "--")) {
            only_files = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(files);
            return DZ_EXIT_OK;
        } else if (!strcmp(a, "--vocab-size")) {
            if (!(v = dz_arg_value(CMD, argc, argv, &i)) ||
                !dz_arg_int(CMD, a, v, DZ_BPE_MIN_VOCAB, DZ_BPE_MAX_VOCAB, &vocab_size))
                goto out;
        } else if (!strcmp(a, "--min-frequency")) {
            if (!(v = dz_arg_value(CMD, argc, argv, &i)) ||
                !dz_arg_int(CMD, a, v, 1, INT64_MAX, &min_frequency))
                goto out;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!(output = dz_arg_value(CMD, argc, argv, &i))) goto out;
        } else if (!strcmp(a, "--name")) {
            if (!(name = dz_arg_value(CMD, argc, argv, &i))) goto out;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            ps.quiet = true;
        } else {
            fprintf(stderr, "dizuo " CMD ": unknown option '%s' (see dizuo " CMD " --help)\n", a);
            goto out;
        }
    }
    if (vocab_size < 0 || !output || n_files == 0) {
        fprintf(stderr, "dizuo " CMD ": %s\n",
                vocab_size < 0 ? "--vocab-size N is required"
                : !output      ? "-o TOK.gguf is required"
                               : "give at least one training FILE");
        usage(stderr);
        goto out;
    }

    rc = DZ_EXIT_ERROR;
    ps.start = now_s();
    dz_bpe_trainer *tr = NULL;
    dz_bpe_train_params params = {.vocab_size = (int32_t)vocab_size,
                                  .min_frequency = min_frequency,
                                  .progress = on_progress,
                                  .user = &ps};
    if (dz_bpe_trainer_create(&params, &tr)) {
        rc = dz_cli_error(CMD);
        goto out;
    }
    for (int f = 0; f < n_files; f++) {
        char *data;
        size_t len;
        if (!read_file(files[f], &data, &len)) goto done;
        dz_status st = dz_bpe_trainer_feed(tr, data, len, files[f]);
        free(data);
        if (st) {
            dz_cli_error(CMD);
            goto done;
        }
        if (!ps.quiet)
            fprintf(stderr, "read %s: %zu bytes (%llu distinct words so far, %.1f s)\n", files[f],
                    len, (unsigned long long)dz_bpe_trainer_n_words(tr), now_s() - ps.start);
    }
    if (dz_bpe_trainer_train(tr)) {
        dz_cli_error(CMD);
        goto done;
    }
    if (dz_bpe_trainer_n_vocab(tr) < vocab_size)
        fprintf(stderr, "dizuo " CMD ": note: stopped at %d tokens: no pair of tokens occurs %lld "
                        "times or more any more\n", dz_bpe_trainer_n_vocab(tr), min_frequency);
    if (dz_bpe_trainer_save(tr, name, output)) {
        dz_cli_error(CMD);
        goto done;
    }
    if (!ps.quiet)
        fprintf(stderr, "wrote %s: %d tokens, %d merges (%.1f s)\n", output,
                dz_bpe_trainer_n_vocab(tr), dz_bpe_trainer_n_merges(tr), now_s() - ps.start);
    rc = DZ_EXIT_OK;
done:
    dz_bpe_trainer_destroy(tr);
out:
    free(files);
    return rc;
}
