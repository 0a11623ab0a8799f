/* Shared argument parsing for the subcommands. */
#include "cli/cli.h"
#include "dizuo/backend.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/common.h"

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
