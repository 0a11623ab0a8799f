/* dizuo info MODEL: what a GGUF file holds — format, architecture and
 * hyper-parameters, a tokenizer summary, the other keys, and the tensors.
 * Reads the file through the gguf layer only (no model or tokenizer load),
 * so it also describes files dizuo cannot run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "dizuo/gguf.h"

static const char *const usage_text =
    "usage: dizuo info [--help] MODEL.gguf\n"
    "\n"
    "Prints a GGUF file's version, alignment, architecture, hyper-parameters,\n"
    "tokenizer summary, other metadata (arrays as [type x count]) and a table\n"
    "of its tensors with the total parameter count and size.\n";

enum { MAX_SHOWN_STRING = 80 };

/* Prints a string value quoted, control bytes escaped, cut after
 * MAX_SHOWN_STRING bytes. */
static void print_str(const uint8_t *s, uint64_t n) {
    putchar('"');
    uint64_t shown = n < MAX_SHOWN_STRING ? n : MAX_SHOWN_STRING;
    for (uint64_t i = 0; i < shown; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
    putchar('"');
    if (shown < n) printf("... (%llu bytes)", (unsigned long long)n);
}

/* Whole numbers as such (10000), others as the shortest decimal that reads
 * back as the same value (1e-05, not 9.99999975e-06, for a float32). */
static void print_real(double x, bool is_f32) {
    if (x == floor(x) && fabs(x) < 1e15) {
        printf("%.0f", x);
        return;
    }
    char buf[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        double back = strtod(buf, NULL);
        if (is_f32 ? (float)back == (float)x : back == x) break;
    }
    fputs(buf, stdout);
}

static void print_value(const dz_gguf_value *v) {
    int64_t i;
    uint64_t u;
    double f;
    bool b;
    switch (v->type) {
    case DZ_GGUF_STRING: print_str(v->data, v->n); break;
    case DZ_GGUF_ARRAY:
        printf("[%s x %llu]", dz_gguf_type_name(v->elem_type), (unsigned long long)v->n);
        break;
    case DZ_GGUF_BOOL:
        if (!dz_gguf_value_bool(v, &b)) fputs(b ? "true" : "false", stdout);
        break;
    case DZ_GGUF_FLOAT32:
    case DZ_GGUF_FLOAT64:
        if (!dz_gguf_value_float(v, &f)) print_real(f, v->type == DZ_GGUF_FLOAT32);
        break;
    case DZ_GGUF_UINT64:
        if (!dz_gguf_value_uint(v, &u)) printf("%llu", (unsigned long long)u);
        break;
    default:
        if (!dz_gguf_value_int(v, &i)) printf("%lld", (long long)i);
        break;
    }
}

static void print_kv(const dz_gguf *g, int64_t i) {
    dz_gguf_value v;
    dz_gguf_kv_value(g, i, &v);
    printf("  %-40s = ", dz_gguf_kv_key(g, i));
    print_value(&v);
    putchar('\n');
}

static bool has_prefix(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Keys the tokenizer summary shows (the rest of tokenizer.* is listed with
 * the other keys). */
static const char *const token_id_keys[][2] = {
    {"tokenizer.ggml.bos_token_id", "bos"},
    {"tokenizer.ggml.eos_token_id", "eos"},
    {"tokenizer.ggml.unknown_token_id", "unk"},
};

static bool in_tokenizer_summary(const char *key) {
    if (!strcmp(key, "tokenizer.ggml.model") || !strcmp(key, "tokenizer.ggml.pre") ||
        !strcmp(key, "tokenizer.ggml.tokens"))
        return true;
    for (size_t k = 0; k < sizeof token_id_keys / sizeof token_id_keys[0]; k++)
        if (!strcmp(key, token_id_keys[k][0])) return true;
    return false;
}

static void print_str_key(const dz_gguf *g, const char *label, const char *key) {
    const char *s = NULL;
    size_t len = 0;
    bool found = false;
    printf("%s", label);
    if (dz_gguf_get_str(g, key, &s, &len, &found) == DZ_OK && found) print_str((const uint8_t *)s, len);
    else if (found) fputs("(not a string)", stdout);
    else fputs("(none)", stdout);
    putchar('\n');
}

static void print_tokenizer(const dz_gguf *g) {
    dz_gguf_value tokens;
    bool have_tokens = false;
    bool bad_tokens = dz_gguf_get_array(g, "tokenizer.ggml.tokens", &tokens, &have_tokens) != DZ_OK;
    if (!have_tokens && dz_gguf_find_kv(g, "tokenizer.ggml.model") < 0) {
        printf("tokenizer:       (none)\n");
        return;
    }
    printf("tokenizer:\n");
    print_str_key(g, "  model:         ", "tokenizer.ggml.model");
    print_str_key(g, "  pre:           ", "tokenizer.ggml.pre");
    if (bad_tokens || !have_tokens) printf("  tokens:        %s\n", bad_tokens ? "(not an array)" : "(none)");
    else printf("  tokens:        %llu\n", (unsigned long long)tokens.n);
    for (size_t k = 0; k < sizeof token_id_keys / sizeof token_id_keys[0]; k++) {
        int64_t id = -1;
        bool found = false;
        printf("  %s id:        ", token_id_keys[k][1]);
        if (dz_gguf_get_int(g, token_id_keys[k][0], &id, &found) != DZ_OK) {
            printf("(not an integer)\n");
            continue;
        }
        if (!found) {
            printf("(none)\n");
            continue;
        }
        printf("%lld", (long long)id);
        dz_gguf_value text;
        if (have_tokens && !bad_tokens && tokens.elem_type == DZ_GGUF_STRING && id >= 0 &&
            (uint64_t)id < tokens.n && dz_gguf_array_get(g, &tokens, (uint64_t)id, &text) == DZ_OK) {
            putchar(' ');
            print_str(text.data, text.n);
        }
        putchar('\n');
    }
}

/* "64 x 512" */
static void format_shape(const dz_gguf_tensor *t, char *buf, size_t cap) {
    size_t n = 0;
    for (int d = 0; d < t->n_dims && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, d ? " x %lld" : "%lld", (long long)t->ne[d]);
}

/* 1234567 -> "1.23M" */
static void format_count(double x, const char *const *units, double base, char *buf, size_t cap) {
    int u = 0;
    while (x >= base && units[u + 1]) x /= base, u++;
    if (u == 0) snprintf(buf, cap, "%.0f%s", x, units[0]);
    else snprintf(buf, cap, "%.2f%s", x, units[u]);
}

static void print_tensors(const dz_gguf *g) {
    int64_t n = dz_gguf_n_tensors(g);
    printf("\ntensors (%lld):\n", (long long)n);
    if (n == 0) return;
    int name_w = 4;
    for (int64_t i = 0; i < n; i++) {
        int len = (int)strlen(dz_gguf_tensor_at(g, i)->name);
        if (len > name_w) name_w = len < 64 ? len : 64;
    }
    printf("  %-*s  %-8s  %-24s  %14s\n", name_w, "name", "type", "shape", "bytes");
    double params = 0, bytes = 0;
    for (int64_t i = 0; i < n; i++) {
        const dz_gguf_tensor *t = dz_gguf_tensor_at(g, i);
        char shape[128];
        format_shape(t, shape, sizeof shape);
        printf("  %-*s  %-8s  %-24s  %14zu\n", name_w, t->name, dz_type_name(t->type), shape, t->size);
        double elements = 1;
        for (int d = 0; d < t->n_dims; d++) elements *= (double)t->ne[d];
        params += elements;
        bytes += (double)t->size;
    }
    static const char *const count_units[] = {"", "K", "M", "B", "T", NULL};
    static const char *const byte_units[] = {" B", " KiB", " MiB", " GiB", " TiB", NULL};
    char p[32], b[32];
    format_count(params, count_units, 1000, p, sizeof p);
    format_count(bytes, byte_units, 1024, b, sizeof b);
    printf("total: %.0f parameters (%s), %.0f bytes (%s)\n", params, p, bytes, b);
}

int dz_cmd_info(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return DZ_EXIT_OK;
        }
        if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "dizuo info: unknown option '%s'\n%s", argv[i], usage_text);
            return DZ_EXIT_USAGE;
        }
        if (path) {
            fprintf(stderr, "dizuo info: one model file at a time ('%s' and '%s')\n%s", path, argv[i],
                    usage_text);
            return DZ_EXIT_USAGE;
        }
        path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "dizuo info: missing MODEL\n%s", usage_text);
        return DZ_EXIT_USAGE;
    }

    dz_gguf *g = NULL;
    if (dz_gguf_open(path, &g)) return dz_cli_error("info");

    printf("file:            %s\n", path);
    printf("GGUF version:    %u\n", dz_gguf_version(g));
    printf("alignment:       %zu\n", dz_gguf_alignment(g));
    printf("size:            %zu bytes (data from byte %zu)\n", dz_gguf_file_size(g), dz_gguf_data_offset(g));
    print_str_key(g, "architecture:    ", "general.architecture");
    print_str_key(g, "name:            ", "general.name");

    /* Hyper-parameters: every "<arch>." key. */
    char arch_prefix[80] = "";
    const char *arch = NULL;
    size_t arch_len = 0;
    bool found = false;
    if (dz_gguf_get_str(g, "general.architecture", &arch, &arch_len, &found) == DZ_OK && found &&
        arch_len > 0 && arch_len < sizeof arch_prefix - 1 && !memchr(arch, '\0', arch_len))
        snprintf(arch_prefix, sizeof arch_prefix, "%.*s.", (int)arch_len, arch);
    int64_t n_kv = dz_gguf_n_kv(g);
    if (arch_prefix[0]) {
        printf("\nhyper-parameters:\n");
        for (int64_t i = 0; i < n_kv; i++)
            if (has_prefix(dz_gguf_kv_key(g, i), arch_prefix)) print_kv(g, i);
    }

    putchar('\n');
    print_tokenizer(g);

    printf("\nother keys:\n");
    int n_other = 0;
    for (int64_t i = 0; i < n_kv; i++) {
        const char *key = dz_gguf_kv_key(g, i);
        if ((arch_prefix[0] && has_prefix(key, arch_prefix)) || in_tokenizer_summary(key) ||
            !strcmp(key, "general.architecture") || !strcmp(key, "general.name") ||
            !strcmp(key, "general.alignment"))
            continue;
        print_kv(g, i);
        n_other++;
    }
    if (!n_other) printf("  (none)\n");

    print_tensors(g);
    dz_gguf_close(g);
    return DZ_EXIT_OK;
}
