/* dizuo bench: prompt-processing and generation speed, measured as
 * llama-bench measures them, and the machine's memory read bandwidth, the
 * ceiling of generation speed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "dizuo/model.h"
#include "dizuo/modeltools.h"

static const char *bench_help =
    "usage: dizuo bench -m MODEL [-p 512] [-n 128] [-t T] [-r 5] [--json]\n"
    "       dizuo bench --membw [-t T] [-r 5] [--membw-mib 1024] [--json]\n"
    "\n"
    "pp<P>: one forward pass of P tokens (in chunks of 512) from an empty cache;\n"
    "tg<N>: N forward passes of one token each, from an empty cache. Tokens are\n"
    "arbitrary valid ids. Each test runs once to warm up (pp: whole; tg: one token),\n"
    "then R times; t/s is the mean +- sample standard deviation of the R runs, as\n"
    "llama-bench reports it. -p 0 or -n 0 skips a test.\n"
    "\n"
    "With a model, bench also measures memory read bandwidth (unless --no-membw) and\n"
    "prints the decode ceiling: bandwidth / bytes of weights read per token (the model's\n"
    "weights), and tg as a fraction of it. --membw alone measures only the bandwidth:\n"
    "T threads read a buffer much larger than the caches, the fastest of R passes counts.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE     GGUF model\n"
    "  -p, --n-prompt P     prompt tokens (default 512)\n"
    "  -n, --n-gen N        generated tokens (default 128)\n"
    "  -t, --threads T      threads (default: the physical cores)\n"
    "  -r, --repetitions R  measured runs per test (default 5)\n"
    "      --json           one JSON array on stdout instead of the table\n"
    "      --membw          measure memory read bandwidth only\n"
    "      --membw-mib M    buffer for the bandwidth measurement (default 1024)\n"
    "      --no-membw       skip the bandwidth measurement (no decode ceiling)\n"
    "      --device NAME    device to run on (default cpu)\n"
    "  -h, --help           this help\n";

typedef struct bench_args {
    const char *model, *device;
    long long n_prompt, n_gen, threads, reps, membw_mib;
    bool json, membw_only, no_membw;
} bench_args;

/* One test's results: t/s per repetition. */
typedef struct bench_result {
    char name[32];
    long long n_prompt, n_gen;
    double *samples; /* reps entries: tokens / seconds */
    double mean, sd;
} bench_result;

static int parse(int argc, char **argv, bench_args *a) {
    const char *cmd = "bench", *v;
    *a = (bench_args){.n_prompt = 512, .n_gen = 128, .reps = 5, .membw_mib = 1024};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        long long *target = NULL, lo = 0, hi = 0;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(bench_help, stdout);
            return DZ_EXIT_OK;
        } else if (!strcmp(o, "--json")) {
            a->json = true;
        } else if (!strcmp(o, "--membw")) {
            a->membw_only = true;
        } else if (!strcmp(o, "--no-membw")) {
            a->no_membw = true;
        } else if (!strcmp(o, "-m") || !strcmp(o, "--model")) {
            if (!(a->model = dz_arg_value(cmd, argc, argv, &i))) return DZ_EXIT_USAGE;
        } else if (!strcmp(o, "--device")) {
            if (!(a->device = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_device(cmd, a->device)) return DZ_EXIT_USAGE;
        } else if (!strcmp(o, "-p") || !strcmp(o, "--n-prompt")) {
            target = &a->n_prompt, lo = 0, hi = 1 << 20;
        } else if (!strcmp(o, "-n") || !strcmp(o, "--n-gen")) {
            target = &a->n_gen, lo = 0, hi = 1 << 20;
        } else if (!strcmp(o, "-t") || !strcmp(o, "--threads")) {
            target = &a->threads, lo = 1, hi = 1024;
        } else if (!strcmp(o, "-r") || !strcmp(o, "--repetitions")) {
            target = &a->reps, lo = 1, hi = 10000;
        } else if (!strcmp(o, "--membw-mib")) {
            target = &a->membw_mib, lo = 1, hi = 1 << 20;
        } else {
            fprintf(stderr, "dizuo bench: unknown option '%s' (see dizuo bench --help)\n", o);
            return DZ_EXIT_USAGE;
        }
        if (target && (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_int(cmd, o, v, lo, hi, target)))
            return DZ_EXIT_USAGE;
    }
    if (!a->membw_only && !a->model) {
        fprintf(stderr, "dizuo bench: -m MODEL or --membw is required (see dizuo bench --help)\n");
        return DZ_EXIT_USAGE;
    }
    if (a->membw_only && a->model) {
        fprintf(stderr, "dizuo bench: --membw measures the machine; leave out -m\n");
        return DZ_EXIT_USAGE;
    }
    if (!a->membw_only && !a->n_prompt && !a->n_gen) {
        fprintf(stderr, "dizuo bench: -p 0 and -n 0 leave nothing to measure\n");
        return DZ_EXIT_USAGE;
    }
    if (!a->threads) a->threads = dz_cpu_physical_cores();
    return -1;
}

static void mean_sd(const double *x, long long n, double *mean, double *sd) {
    double s = 0, ss = 0;
    for (long long i = 0; i < n; i++) s += x[i];
    *mean = s / (double)n;
    for (long long i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (double)(n - 1)) : 0.0;
}

/* A fixed pseudo-random stream of valid token ids (the values do not
 * matter for speed; fixing them makes runs comparable). */
static int32_t next_token(uint64_t *state, int32_t n_vocab) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (int32_t)((*state >> 33) % (uint64_t)n_vocab);
}

/* Prompt processing: n tokens from position 0, in chunks of 512. */
static dz_status run_pp(dz_model *m, dz_kv_cache *kv, const int32_t *tokens, int32_t n, float *logits,
                        double *seconds) {
    enum { UBATCH = 512 };
    double t0 = dz_time_now();
    for (int32_t done = 0; done < n; done += UBATCH) {
        int32_t k = n - done < UBATCH ? n - done : UBATCH;
        dz_status st = dz_model_forward(m, kv, tokens + done, k, done, logits, false);
        if (st) return st;
    }
    *seconds = dz_time_now() - t0;
    return DZ_OK;
}

/* Generation: n single-token passes from position 0, the first token BOS
 * where the model adds one (as llama-bench does). */
static dz_status run_tg(dz_model *m, dz_kv_cache *kv, int32_t n, float *logits, double *seconds) {
    const dz_tokenizer *tok = dz_model_tokenizer(m);
    int32_t n_vocab = dz_model_hparams_get(m)->n_vocab;
    uint64_t state = 2024;
    int32_t id = dz_tokenizer_add_bos_default(tok) && dz_tokenizer_bos(tok) >= 0 ? dz_tokenizer_bos(tok)
                                                                                  : next_token(&state, n_vocab);
    double t0 = dz_time_now();
    for (int32_t i = 0; i < n; i++) {
        dz_status st = dz_model_forward(m, kv, &id, 1, i, logits, false);
        if (st) return st;
        id = next_token(&state, n_vocab);
    }
    *seconds = dz_time_now() - t0;
    return DZ_OK;
}

/* Runs one test: a warm-up, then reps measured runs. */
static dz_status run_test(dz_model *m, const bench_args *a, long long n_prompt, long long n_gen,
                          bench_result *r) {
    int32_t n_vocab = dz_model_hparams_get(m)->n_vocab;
    int32_t n_ctx = (int32_t)(n_prompt > n_gen ? n_prompt : n_gen);
    dz_kv_cache *kv = NULL;
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    int32_t *tokens = malloc((size_t)(n_prompt ? n_prompt : 1) * sizeof *tokens);
    r->samples = calloc((size_t)a->reps, sizeof *r->samples);
    r->n_prompt = n_prompt;
    r->n_gen = n_gen;
    snprintf(r->name, sizeof r->name, n_prompt ? "pp%lld" : "tg%lld", n_prompt ? n_prompt : n_gen);
    dz_status st = !logits || !tokens || !r->samples ? dz_fail(DZ_ERR_NOMEM, "out of memory")
                                                     : dz_kv_cache_create(m, n_ctx, &kv);
    uint64_t state = 1;
    for (long long i = 0; i < n_prompt; i++) tokens[i] = next_token(&state, n_vocab);
    double seconds = 0;
    if (!st) st = n_prompt ? run_pp(m, kv, tokens, (int32_t)n_prompt, logits, &seconds)
                           : run_tg(m, kv, 1, logits, &seconds);
    for (long long rep = 0; rep < a->reps && !st; rep++) {
        st = n_prompt ? run_pp(m, kv, tokens, (int32_t)n_prompt, logits, &seconds)
                      : run_tg(m, kv, (int32_t)n_gen, logits, &seconds);
        r->samples[rep] = (double)(n_prompt ? n_prompt : n_gen) / (seconds > 0 ? seconds : 1e-9);
    }
    if (!st) mean_sd(r->samples, a->reps, &r->mean, &r->sd);
    dz_kv_cache_free(kv);
    free(tokens);
    free(logits);
    return st;
}

/* Facts of the model file for the table: a llama-bench-like description. */
typedef struct model_facts {
    char desc[96];
    double size_bytes, n_params, weight_bytes;
} model_facts;

static void describe(dz_model *m, model_facts *f) {
    const dz_gguf *g = dz_model_gguf(m);
    f->size_bytes = f->n_params = 0;
    for (int64_t i = 0; i < dz_gguf_n_tensors(g); i++) {
        const dz_gguf_tensor *t = dz_gguf_tensor_at(g, i);
        f->size_bytes += (double)t->size;
        f->n_params += (double)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    }
    f->weight_bytes = (double)dz_model_weight_bytes(m);
    int64_t ftype = -1;
    const char *fname = NULL;
    if (dz_gguf_get_int(g, "general.file_type", &ftype, NULL) == DZ_OK)
        for (int i = 0; i < dz_ftype_count() && !fname; i++)
            if (dz_ftype_at(i)->ftype == ftype) fname = dz_ftype_at(i)->name;
    if (!fname) {
        const dz_gguf_tensor *t = dz_gguf_find_tensor(g, "blk.0.ffn_up.weight");
        fname = t ? dz_type_name(t->type) : "?";
    }
    double p = f->n_params;
    char size[16];
    if (p >= 1e9) snprintf(size, sizeof size, "%.1fB", p / 1e9);
    else if (p >= 1e6) snprintf(size, sizeof size, "%.0fM", p / 1e6);
    else snprintf(size, sizeof size, "%.0fK", p / 1e3);
    snprintf(f->desc, sizeof f->desc, "%s %s %s", dz_model_hparams_get(m)->arch, size, fname);
}

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void print_json(const bench_args *a, const model_facts *f, const bench_result *res, int n,
                       double membw) {
    printf("[\n");
    for (int i = 0; i < n; i++) {
        const bench_result *r = &res[i];
        printf("  {\n    \"model_filename\": ");
        json_string(a->model);
        printf(",\n    \"model_type\": ");
        json_string(f->desc);
        printf(",\n    \"model_size\": %.0f,\n    \"model_n_params\": %.0f,\n", f->size_bytes, f->n_params);
        printf("    \"backend\": ");
        json_string(a->device ? a->device : "cpu");
        printf(",\n    \"n_threads\": %lld,\n    \"n_prompt\": %lld,\n    \"n_gen\": %lld,\n", a->threads,
               r->n_prompt, r->n_gen);
        printf("    \"test\": \"%s\",\n    \"avg_ts\": %.6f,\n    \"stddev_ts\": %.6f,\n", r->name, r->mean, r->sd);
        printf("    \"samples_ts\": [");
        for (long long k = 0; k < a->reps; k++) printf("%s%.6f", k ? ", " : "", r->samples[k]);
        printf("]");
        if (membw > 0) {
            double ceiling = membw * 1e9 / f->weight_bytes;
            printf(",\n    \"membw_gbs\": %.3f,\n    \"weight_bytes_per_token\": %.0f,\n"
                   "    \"decode_ceiling_ts\": %.3f",
                   membw, f->weight_bytes, ceiling);
            if (r->n_gen) printf(",\n    \"fraction_of_ceiling\": %.4f", r->mean / ceiling);
        }
        printf("\n  }%s\n", i + 1 < n ? "," : "");
    }
    printf("]\n");
}

static void print_table(const bench_args *a, const model_facts *f, const bench_result *res, int n,
                        double membw) {
    printf("| %-30s | %10s | %10s | %-10s | %7s | %13s | %20s |\n", "model", "size", "params", "backend",
           "threads", "test", "t/s");
    printf("| ------------------------------ | ---------: | ---------: | ---------- | ------: | "
           "------------: | -------------------: |\n");
    for (int i = 0; i < n; i++) {
        char size[32], params[32], ts[48];
        snprintf(size, sizeof size, f->size_bytes >= 1073741824.0 ? "%.2f GiB" : "%.2f MiB",
                 f->size_bytes >= 1073741824.0 ? f->size_bytes / 1073741824.0 : f->size_bytes / 1048576.0);
        snprintf(params, sizeof params, f->n_params >= 1e9 ? "%.2f B" : "%.2f M",
                 f->n_params >= 1e9 ? f->n_params / 1e9 : f->n_params / 1e6);
        snprintf(ts, sizeof ts, "%.2f ± %.2f", res[i].mean, res[i].sd);
        /* "±" is two bytes in UTF-8: pad one more to keep the column */
        printf("| %-30s | %10s | %10s | %-10s | %7lld | %13s | %21s |\n", f->desc, size, params,
               a->device ? a->device : "CPU", a->threads, res[i].name, ts);
    }
    if (membw > 0) {
        double ceiling = membw * 1e9 / f->weight_bytes;
        printf("\nmemory read bandwidth %.1f GB/s (%lld threads); weights %.1f MB per token -> decode "
               "ceiling %.1f t/s\n", membw, a->threads, f->weight_bytes / 1e6, ceiling);
        for (int i = 0; i < n; i++)
            if (res[i].n_gen)
                printf("%s: %.2f t/s = %.1f%% of the ceiling\n", res[i].name, res[i].mean,
                       100.0 * res[i].mean / ceiling);
    }
}

static int bench_membw(const bench_args *a) {
    double gbs = 0;
    if (dz_membw_measure((int32_t)a->threads, (size_t)a->membw_mib << 20, (int32_t)(a->reps < 3 ? 3 : a->reps),
                         &gbs))
        return dz_cli_error("bench");
    if (a->json)
        printf("{\"membw_gbs\": %.3f, \"n_threads\": %lld, \"buffer_bytes\": %lld}\n", gbs, a->threads,
               a->membw_mib << 20);
    else
        printf("memory read bandwidth: %.1f GB/s (%lld threads, %lld MiB buffer, best of %lld passes)\n",
               gbs, a->threads, a->membw_mib, a->reps < 3 ? 3 : a->reps);
    return DZ_EXIT_OK;
}

int dz_cmd_bench(int argc, char **argv) {
    bench_args a;
    int rc = parse(argc, argv, &a);
    if (rc >= 0) return rc;
    if (a.membw_only) return bench_membw(&a);

    /* Bandwidth first, while the model is not yet competing for memory. */
    double membw = 0;
    if (!a.no_membw && dz_membw_measure((int32_t)a.threads, (size_t)a.membw_mib << 20, 5, &membw))
        return dz_cli_error("bench");
    dz_model_options mo = {.device = a.device, .n_threads = (int32_t)a.threads};
    dz_model *m = NULL;
    if (dz_model_load(a.model, &mo, &m)) return dz_cli_error("bench");
    model_facts facts;
    describe(m, &facts);
    bench_result res[2];
    memset(res, 0, sizeof res);
    int n = 0;
    dz_status st = DZ_OK;
    if (a.n_prompt && !(st = run_test(m, &a, a.n_prompt, 0, &res[n]))) n++;
    if (!st && a.n_gen && !(st = run_test(m, &a, 0, a.n_gen, &res[n]))) n++;
    if (st) rc = dz_cli_error("bench");
    else if (a.json) print_json(&a, &facts, res, n, membw);
    else print_table(&a, &facts, res, n, membw);
    for (int i = 0; i < 2; i++) free(res[i].samples);
    dz_model_free(m);
    return st ? rc : DZ_EXIT_OK;
}
