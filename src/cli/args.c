/* Shared argument parsing for the subcommands. */
#include "cli/cli.h"
#include "dizuo/backend.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/common.h"
#include "dizuo/train.h"

bool dz_arg_int(const char *cmd, const char *opt, const char *text, long long lo, long long hi,
                long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0') {
        fprintf(stderr, "dizuo %s: %s expects an integer, got '%s'\n", cmd, opt, text);
        return false;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "dizuo %s: %s must be in %lld..%lld, got %lld\n", cmd, opt, lo, hi, v);
        return false;
    }
    *out = v;
    return true;
}

bool dz_arg_float(const char *cmd, const char *opt, const char *text, double lo, double hi,
                  double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end != '\0' || !isfinite(v)) {
        fprintf(stderr, "dizuo %s: %s expects a number, got '%s'\n", cmd, opt, text);
        return false;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "dizuo %s: %s must be in %g..%g, got %g\n", cmd, opt, lo, hi, v);
        return false;
    }
    *out = v;
    return true;
}

const char *dz_arg_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "dizuo %s: option %s needs a value (see dizuo %s --help)\n", cmd, argv[*i], cmd);
        return NULL;
    }
    *i += 1;
    return argv[*i];
}

bool dz_arg_device(const char *cmd, const char *name) {
    if (dz_device_check_name(name) == DZ_OK) return true; /* a failure to open it is reported where it is used */
    fprintf(stderr, "dizuo %s: --device: %s (see dizuo devices)\n", cmd, dz_last_error());
    return false;
}

int dz_cli_error(const char *cmd) {
    fprintf(stderr, "dizuo %s: %s\n", cmd, dz_last_error());
    return DZ_EXIT_ERROR;
}

const char *dz_arg_escaped(const char *cmd, int argc, char **argv, int *i, char *out, size_t cap) {
    const char *opt = argv[*i], *text = dz_arg_value(cmd, argc, argv, i);
    if (!text) return NULL;
    size_t n = 0;
    for (const char *p = text; *p; p++) {
        char c = *p;
        if (c == '\\') {
            switch (*++p) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case '\\': c = '\\'; break;
            default:
                fprintf(stderr, "dizuo %s: %s: unknown escape '\\%.1s' in '%s' (known: \\n \\t \\r \\\\)\n", cmd, opt, p,
                        text);
                return NULL;
            }
        }
        if (n + 1 >= cap) {
            fprintf(stderr, "dizuo %s: %s: '%s' is longer than %zu bytes\n", cmd, opt, text, cap - 1);
            return NULL;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    if (n == 0) {
        fprintf(stderr, "dizuo %s: %s: empty\n", cmd, opt);
        return NULL;
    }
    return out;
}

int dz_arg_ints(const char *cmd, int argc, char **argv, int *i, const dz_opt_int *opts, size_t n) {
    for (size_t k = 0; k < n; k++) {
        if (strcmp(argv[*i], opts[k].name)) continue;
        const char *v = dz_arg_value(cmd, argc, argv, i);
        if (!v || !dz_arg_int(cmd, opts[k].name, v, opts[k].lo, opts[k].hi, opts[k].dst)) return -1;
        if (opts[k].given) *opts[k].given = true;
        return 1;
    }
    return 0;
}

int dz_arg_strs(const char *cmd, int argc, char **argv, int *i, const dz_opt_str *opts, size_t n) {
    for (size_t k = 0; k < n; k++) {
        if (strcmp(argv[*i], opts[k].name)) continue;
        return (*opts[k].dst = dz_arg_value(cmd, argc, argv, i)) ? 1 : -1;
    }
    return 0;
}

int dz_arg_train_opts(const char *cmd, int argc, char **argv, int *i, dz_train_opts *o) {
    const struct { const char *name; float *dst; double lo, hi; } reals[] = {
        {"--lr", &o->lr, 1e-12, 10},          {"--beta1", &o->beta1, 0, 0.999999},
        {"--beta2", &o->beta2, 0, 0.999999},  {"--eps", &o->eps, 1e-30, 1},
        {"--weight-decay", &o->weight_decay, 0, 10}, {"--clip", &o->clip, 0, 1e9},
    };
    const char *name = argv[*i];
    if (!strcmp(name, "--schedule")) {
        const char *v = dz_arg_value(cmd, argc, argv, i);
        if (!v) return -1;
        if (!strcmp(v, "cosine")) o->schedule = DZ_LR_COSINE;
        else if (!strcmp(v, "constant")) o->schedule = DZ_LR_CONSTANT;
        else {
            fprintf(stderr, "dizuo %s: --schedule is cosine or constant, not '%s'\n", cmd, v);
            return -1;
        }
        return 1;
    }
    for (size_t k = 0; k < sizeof reals / sizeof reals[0]; k++) {
        if (strcmp(name, reals[k].name)) continue;
        const char *v = dz_arg_value(cmd, argc, argv, i);
        double f;
        if (!v || !dz_arg_float(cmd, name, v, reals[k].lo, reals[k].hi, &f)) return -1;
        *reals[k].dst = (float)f;
        return 1;
    }
    return 0;
}

int64_t dz_cli_val_loss(const char *cmd, dz_train_data *val, int32_t T, int32_t *in, int32_t *tg,
                        int (*eval)(void *trainer, const int32_t *in, const int32_t *tg, double *loss), void *trainer,
                        double *loss) {
    int64_t rows = dz_train_data_n_tokens(val) / T;
    rows = rows < 1 ? 1 : rows > 64 ? 64 : rows;
    double sum = 0, l;
    for (int64_t r = 0; r < rows; r++) {
        dz_train_data_row(val, r, T, false, 0, in, tg);
        if (eval(trainer, in, tg, &l)) {
            dz_cli_error(cmd);
            return -1;
        }
        sum += l;
    }
    *loss = sum / (double)rows;
    return rows;
}

void dz_cli_svg_path(const char *out, char *buf, size_t cap) {
    size_t n = strlen(out);
    if (n > 5 && !strcmp(out + n - 5, ".gguf")) n -= 5;
    snprintf(buf, cap, "%.*s.loss.svg", (int)n, out);
}
