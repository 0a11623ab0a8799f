/* dizuo quantize: convert a model's weights to another type, with
 * llama.cpp's per-tensor recipes. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "dizuo/modeltools.h"

static void list_targets(FILE *out) {
    fprintf(out, "types (llama.cpp's names; general.file_type gets the ftype value):\n");
    for (int i = 0; i < dz_ftype_count(); i++) {
        const dz_ftype_info *f = dz_ftype_at(i);
        if (dz_ftype_available(f)) fprintf(out, "  %-8s ftype %2d  %s\n", f->name, f->ftype, f->summary);
    }
    bool header = false;
    for (int i = 0; i < dz_ftype_count(); i++) {
        const dz_ftype_info *f = dz_ftype_at(i);
        if (dz_ftype_available(f)) continue;
        fprintf(out, "%s %s", header ? "," : "not in this build (no quantizer yet):", f->name);
        header = true;
    }
    if (header) fputc('\n', out);
}

static void usage(FILE *out) {
    fputs("usage: dizuo quantize IN.gguf OUT.gguf TYPE [options]\n"
          "\n"
          "Converts the weights of IN (F32, F16 or BF16) to TYPE and writes OUT, copying every\n"
          "key. Types are chosen per tensor as llama-quantize chooses them (build 4748): the\n"
          "output matrix gets Q6_K for quantized targets; the _S/_M/_L mixes give attn_v,\n"
          "ffn_down and attn_output more bits in some layers; norms and other 1-D tensors stay\n"
          "as they are. A matrix whose row length is not a multiple of the type's block size\n"
          "falls back as in llama.cpp (Q2_K/Q3_K -> IQ4_NL, Q4_K -> Q5_0, Q5_K -> Q5_1,\n"
          "Q6_K -> Q8_0), and to F16 where no block fits (llama.cpp stops there with an\n"
          "error). Prints one line per tensor and a total. Q3_K, Q4_K and Q5_K mean the _M\n"
          "mixes.\n"
          "\n"
          "options:\n"
          "      --pure               every matrix in TYPE itself (no recipe)\n"
          "      --allow-requantize   accept quantized inputs (dequantized first; loses accuracy)\n"
          "  -t, --threads N          threads (default: the online CPUs)\n"
          "  -q, --quiet              print only the total\n"
          "  -h, --help               this help\n"
          "\n",
          out);
    list_targets(out);
}

typedef struct quantize_progress {
    bool quiet;
} quantize_progress;

static void on_tensor(const dz_tensor_event *ev, void *user) {
    const quantize_progress *qp = user;
    if (qp->quiet) return;
    char shape[80];
    int len = snprintf(shape, sizeof shape, "%lld", (long long)ev->ne[0]);
    for (int d = 1; d < ev->n_dims && len < (int)sizeof shape; d++)
        len += snprintf(shape + len, sizeof shape - (size_t)len, " x %lld", (long long)ev->ne[d]);
    printf("[%4lld/%4lld] %-32s %-18s %-6s -> %-6s %9.3f MiB -> %9.3f MiB%s%s\n",
           (long long)ev->index + 1, (long long)ev->count, ev->name, shape, dz_type_name(ev->from),
           dz_type_name(ev->to), ev->from_bytes / 1048576.0, ev->to_bytes / 1048576.0,
           ev->note ? "  " : "", ev->note ? ev->note : "");
    fflush(stdout);
}

int dz_cmd_quantize(int argc, char **argv) {
    const char *cmd = "quantize", *pos[3] = {NULL, NULL, NULL}, *v;
    int n_pos = 0;
    long long threads = 0;
    dz_quantize_params p = {0};
    quantize_progress qp = {false};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage(stdout);
            return DZ_EXIT_OK;
        } else if (!strcmp(o, "--pure")) {
            p.pure = true;
        } else if (!strcmp(o, "--allow-requantize")) {
            p.allow_requantize = true;
        } else if (!strcmp(o, "-q") || !strcmp(o, "--quiet")) {
            qp.quiet = true;
        } else if (!strcmp(o, "-t") || !strcmp(o, "--threads")) {
            if (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_int(cmd, o, v, 1, 256, &threads))
                return DZ_EXIT_USAGE;
        } else if (o[0] == '-' && o[1] != '\0') {
            fprintf(stderr, "dizuo quantize: unknown option '%s' (see dizuo quantize --help)\n", o);
            return DZ_EXIT_USAGE;
        } else if (n_pos < 3) {
            pos[n_pos++] = o;
        } else {
            fprintf(stderr, "dizuo quantize: unexpected argument '%s' (see dizuo quantize --help)\n", o);
            return DZ_EXIT_USAGE;
        }
    }
    if (n_pos < 3) {
        fprintf(stderr, "dizuo quantize: IN.gguf, OUT.gguf and TYPE are required\n\n");
        usage(stderr);
        return DZ_EXIT_USAGE;
    }
    const dz_ftype_info *f = dz_ftype_find(pos[2]);
    if (!f || !dz_ftype_available(f)) {
        fprintf(stderr, "dizuo quantize: %s type '%s'\n\n", f ? "no quantizer in this build for" : "unknown",
                pos[2]);
        list_targets(stderr);
        return DZ_EXIT_USAGE;
    }
    if (!threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > 256 ? 256 : n;
    }
    p.ftype = f->name;
    p.n_threads = (int32_t)threads;
    dz_quantize_stats stats;
    double t0 = dz_time_now();
    if (dz_model_quantize(pos[0], pos[1], &p, on_tensor, &qp, &stats)) return dz_cli_error(cmd);
    printf("%s -> %s (%s%s, ftype %d): %.2f MiB -> %.2f MiB (%.1f%%), %d tensors converted",
           pos[0], pos[1], f->name, p.pure ? ", pure" : "", f->ftype, stats.bytes_in / 1048576.0,
           stats.bytes_out / 1048576.0, stats.bytes_in ? 100.0 * stats.bytes_out / stats.bytes_in : 0.0,
           stats.n_converted);
    if (stats.n_fallback) printf(", %d with a fallback type", stats.n_fallback);
    printf(", %.1f s\n", dz_time_now() - t0);
    return DZ_EXIT_OK;
}
