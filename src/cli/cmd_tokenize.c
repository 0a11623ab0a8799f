/* dizuo tokenize: the token ids of a text, space separated on one line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "dizuo/tokenizer.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: dizuo tokenize -m MODEL [--no-bos] [--parse-special] (-f FILE | TEXT)\n"
            "\n"
            "Prints the token ids of TEXT (or of FILE's bytes, exactly) on one line.\n"
            "\n"
            "  -m, --model FILE     GGUF file with the vocabulary (a model or vocab-only file)\n"
            "  -f, --file FILE      tokenize this file's contents (no newline is stripped)\n"
            "  --no-bos             do not add BOS even when the vocabulary asks for it\n"
            "  --parse-special      read control-token texts (<s>, <|im_end|>, ...) as those tokens\n"
            "  -h, --help           this text\n");
}

/* Reads a whole file: malloc'd bytes in *data (NUL-terminated), *len. */
static bool read_file(const char *path, char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "dizuo tokenize: cannot open %s: %s\n", path, strerror(errno));
        return false;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *bigger = cap <= SIZE_MAX / 4 ? realloc(buf, cap * 2 + 1) : NULL;
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    bool failed = ferror(f);
    fclose(f);
    if (!buf || failed) {
        fprintf(stderr, "dizuo tokenize: cannot read %s: %s\n", path,
                buf ? "read error" : "out of memory");
        free(buf);
        return false;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return true;
}

static int tokenize_and_print(const char *model, const char *text, size_t len, bool no_bos,
                              bool parse_special) {
    dz_gguf *g = NULL;
    dz_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    dz_status st = dz_gguf_open(model, &g);
    if (!st && (st = dz_tokenizer_load(g, &tok))) dz_error_prefix(st, "%s: ", model);
    if (!st) {
        bool add_bos = !no_bos && dz_tokenizer_add_bos_default(tok);
        st = dz_tokenize(tok, text, len, add_bos, parse_special, &ids, &n);
    }
    int rc = st ? dz_cli_error("tokenize") : DZ_EXIT_OK;
    if (!st) {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "dizuo tokenize: cannot write the output\n");
            rc = DZ_EXIT_ERROR;
        }
    }
    free(ids);
    dz_tokenizer_free(tok);
    dz_gguf_close(g);
    return rc;
}

int dz_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *text = NULL;
    bool no_bos = false, parse_special = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return DZ_EXIT_OK;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model = dz_arg_value("tokenize", argc, argv, &i))) return DZ_EXIT_USAGE;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(file = dz_arg_value("tokenize", argc, argv, &i))) return DZ_EXIT_USAGE;
        } else if (!strcmp(a, "--no-bos")) {
            no_bos = true;
        } else if (!strcmp(a, "--parse-special")) {
            parse_special = true;
        } else if (!strcmp(a, "--")) {
            if (i + 2 != argc || text) {
                fprintf(stderr, "dizuo tokenize: give exactly one TEXT (quote it)\n");
                return DZ_EXIT_USAGE;
            }
            text = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "dizuo tokenize: unknown option '%s' (see dizuo tokenize --help)\n", a);
            return DZ_EXIT_USAGE;
        } else if (text) {
            fprintf(stderr, "dizuo tokenize: give exactly one TEXT (quote it)\n");
            return DZ_EXIT_USAGE;
        } else {
            text = a;
        }
    }
    if (!model || (!file && !text) || (file && text)) {
        fprintf(stderr, "dizuo tokenize: %s\n",
                !model ? "-m MODEL is required" : file ? "give -f FILE or TEXT, not both"
                                                       : "give -f FILE or TEXT");
        usage(stderr);
        return DZ_EXIT_USAGE;
    }
    if (!file) return tokenize_and_print(model, text, strlen(text), no_bos, parse_special);
    char *data;
    size_t len;
    if (!read_file(file, &data, &len)) return DZ_EXIT_ERROR;
    int rc = tokenize_and_print(model, data, len, no_bos, parse_special);
    free(data);
    return rc;
}
