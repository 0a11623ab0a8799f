/* dizuo run: generate text from a prompt, streamed to stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "dizuo/engine.h"
#include "dizuo/lora.h"

static const char *run_help =
    "usage: dizuo run -m MODEL -p PROMPT [options]\n"
    "\n"
    "Generates text after PROMPT. stdout carries the prompt followed by the generated\n"
    "text, streamed as produced; logs (and timings with -v) go to stderr. Generation\n"
    "stops at an end-of-generation token, after N tokens, or when the context is full.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE        GGUF model (required)\n"
    "  -p, --prompt TEXT       prompt (required)\n"
    "  -n, --n-predict N       tokens to generate (default 128)\n"
    "      --temp T            temperature; 0 = greedy (default 0.8)\n"
    "      --top-k K           keep the K most likely tokens; 0 = off (default 40)\n"
    "      --top-p P           nucleus sampling; 1 = off (default 0.95)\n"
    "      --min-p P           drop tokens below P x the top probability; 0 = off (default 0.05)\n"
    "      --repeat-penalty R  penalise the last 64 tokens; 1 = off (default 1)\n"
    "      --repeat-last-n N   window of the repeat penalty (default 64)\n"
    "      --seed S            RNG seed (default: random; printed with -v)\n"
    "  -t, --threads N         CPU threads (default: the device's choice)\n"
    "  -c, --ctx-size N        context size (default: the model's, at most 4096)\n"
    "      --device NAME       device to run on (default cpu)\n"
    "      --lora FILE         apply a LoRA adapter (llama.cpp's format)\n"
    "      --lora-scale S      the adapter's user scale (default 1)\n"
    "      --no-echo           print only the generated text\n"
    "  -v, --verbose           model facts and timings on stderr\n"
    "  -h, --help              this help\n";

typedef struct run_args {
    const char *model, *prompt, *device, *lora;
    double lora_scale;
    long long n_predict, threads, ctx;
    bool echo, verbose, seed_given;
    dz_sampler_params sp;
} run_args;

/* Parses argv; returns -1 to continue, else an exit code. */
static int parse(int argc, char **argv, run_args *a) {
    const char *cmd = "run";
    a->sp = dz_sampler_defaults();
    a->lora_scale = 1;
    a->n_predict = 128;
    a->echo = true;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v;
        long long n;
        double f;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(run_help, stdout);
            return DZ_EXIT_OK;
        } else if (!strcmp(o, "--no-echo")) {
            a->echo = false;
        } else if (!strcmp(o, "-v") || !strcmp(o, "--verbose")) {
            a->verbose = true;
        } else if (!strcmp(o, "-m") || !strcmp(o, "--model")) {
            if (!(a->model = dz_arg_value(cmd, argc, argv, &i))) return DZ_EXIT_USAGE;
        } else if (!strcmp(o, "-p") || !strcmp(o, "--prompt")) {
            if (!(a->prompt = dz_arg_value(cmd, argc, argv, &i))) return DZ_EXIT_USAGE;
        } else if (!strcmp(o, "--lora")) {
            if (!(a->lora = dz_arg_value(cmd, argc, argv, &i))) return DZ_EXIT_USAGE;
        } else if (!strcmp(o, "--lora-scale")) {
            if (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_float(cmd, o, v, -1e6, 1e6, &a->lora_scale))
                return DZ_EXIT_USAGE;
        } else if (!strcmp(o, "--device")) {
            if (!(a->device = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_device(cmd, a->device)) return DZ_EXIT_USAGE;
        } else if (!strcmp(o, "-n") || !strcmp(o, "--n-predict")) {
            if (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_int(cmd, o, v, 0, 1 << 24, &a->n_predict))
                return DZ_EXIT_USAGE;
        } else if (!strcmp(o, "-t") || !strcmp(o, "--threads")) {
            if (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_int(cmd, o, v, 1, 1024, &a->threads))
                return DZ_EXIT_USAGE;
        } else if (!strcmp(o, "-c") || !strcmp(o, "--ctx-size")) {
            if (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_int(cmd, o, v, 1, 1 << 24, &a->ctx))
                return DZ_EXIT_USAGE;
        } else if (!strcmp(o, "--seed")) {
            if (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_int(cmd, o, v, 0, INT64_MAX, &n))
                return DZ_EXIT_USAGE;
            a->sp.seed = (uint64_t)n;
            a->seed_given = true;
        } else if (!strcmp(o, "--temp")) {
            if (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_float(cmd, o, v, 0, 100, &f))
                return DZ_EXIT_USAGE;
            a->sp.temperature = (float)f;
        } else if (!strcmp(o, "--top-k")) {
            if (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_int(cmd, o, v, 0, 1 << 24, &n))
                return DZ_EXIT_USAGE;
            a->sp.top_k = (int32_t)n;
        } else if (!strcmp(o, "--top-p")) {
            if (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_float(cmd, o, v, 1e-6, 1, &f))
                return DZ_EXIT_USAGE;
            a->sp.top_p = (float)f;
        } else if (!strcmp(o, "--min-p")) {
            if (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_float(cmd, o, v, 0, 1, &f))
                return DZ_EXIT_USAGE;
            a->sp.min_p = (float)f;
        } else if (!strcmp(o, "--repeat-penalty")) {
            if (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_float(cmd, o, v, 1e-3, 100, &f))
                return DZ_EXIT_USAGE;
            a->sp.repeat_penalty = (float)f;
        } else if (!strcmp(o, "--repeat-last-n")) {
            if (!(v = dz_arg_value(cmd, argc, argv, &i)) || !dz_arg_int(cmd, o, v, -1, 1 << 16, &n))
                return DZ_EXIT_USAGE;
            a->sp.repeat_last_n = (int32_t)n;
        } else {
            fprintf(stderr, "dizuo run: unknown option '%s' (see dizuo run --help)\n", o);
            return DZ_EXIT_USAGE;
        }
    }
    if (!a->model || !a->prompt) {
        fprintf(stderr, "dizuo run: %s is required (see dizuo run --help)\n",
                !a->model ? "-m MODEL" : "-p PROMPT");
        return DZ_EXIT_USAGE;
    }
    if (!a->seed_given) a->sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    return -1;
}

static bool emit(const char *text, size_t n) {
    if (n && fwrite(text, 1, n, stdout) != n) return false;
    return fflush(stdout) == 0;
}

/* Evaluates the prompt, then samples until EOG, n_predict or a full context. */
static int generate(const run_args *a, dz_model *model, dz_kv_cache *kv, const int32_t *prompt,
                    size_t n_prompt) {
    const dz_model_hparams *hp = dz_model_hparams_get(model);
    const dz_tokenizer *tok = dz_model_tokenizer(model);
    int32_t n_ctx = dz_kv_cache_n_ctx(kv);
    if (n_prompt == 0) {
        fprintf(stderr, "dizuo run: the prompt gives no tokens\n");
        return DZ_EXIT_ERROR;
    }
    if (n_prompt >= (size_t)n_ctx) {
        fprintf(stderr, "dizuo run: the prompt has %zu tokens; the context holds %d (raise -c)\n",
                n_prompt, n_ctx);
        return DZ_EXIT_ERROR;
    }
    float *logits = malloc((size_t)hp->n_vocab * sizeof *logits);
    dz_sampler *sampler = NULL;
    dz_detok *detok = NULL;
    int rc = DZ_EXIT_ERROR;
    if (!logits) {
        fprintf(stderr, "dizuo run: out of memory\n");
        goto done;
    }
    if (dz_sampler_create(&a->sp, hp->n_vocab, &sampler) || dz_detok_create(tok, false, &detok)) {
        dz_cli_error("run");
        goto done;
    }
    for (size_t i = 0; i < n_prompt; i++) dz_sampler_accept(sampler, prompt[i]);

    double t0 = dz_time_now();
    enum { N_BATCH = 512 };
    for (size_t done = 0; done < n_prompt; done += N_BATCH) {
        int32_t n = (int32_t)(n_prompt - done < N_BATCH ? n_prompt - done : N_BATCH);
        if (dz_model_forward(model, kv, prompt + done, n, (int32_t)done, logits, false)) {
            dz_cli_error("run");
            goto done;
        }
    }
    double t1 = dz_time_now();
    int32_t n_past = (int32_t)n_prompt, n_gen = 0;
    const char *text;
    size_t len;
    while (n_gen < a->n_predict && n_past < n_ctx) {
        int32_t id = dz_sampler_sample(sampler, logits);
        if (dz_tokenizer_is_eog(tok, id)) break;
        dz_sampler_accept(sampler, id);
        n_gen++;
        if (dz_detok_push(detok, id, &text, &len)) {
            dz_cli_error("run");
            goto done;
        }
        if (!emit(text, len)) goto done;
        if (n_gen == a->n_predict || n_past + 1 >= n_ctx) break;
        if (dz_model_forward(model, kv, &id, 1, n_past, logits, false)) {
            dz_cli_error("run");
            goto done;
        }
        n_past++;
    }
    if (dz_detok_flush(detok, &text, &len) == DZ_OK) emit(text, len);
    if (isatty(STDOUT_FILENO)) emit("\n", 1); /* the shell prompt on its own line; pipes get the text exactly */
    double t2 = dz_time_now();
    if (a->verbose)
        fprintf(stderr, "prompt: %zu tokens in %.3f s (%.1f t/s); generated: %d tokens in %.3f s (%.1f t/s)\n",
                n_prompt, t1 - t0, (double)n_prompt / (t1 - t0 + 1e-9), n_gen, t2 - t1,
                (double)n_gen / (t2 - t1 + 1e-9));
    rc = DZ_EXIT_OK;
done:
    dz_detok_free(detok);
    dz_sampler_free(sampler);
    free(logits);
    return rc;
}

int dz_cmd_run(int argc, char **argv) {
    run_args a;
    memset(&a, 0, sizeof a);
    int rc = parse(argc, argv, &a);
    if (rc >= 0) return rc;
    if (a.verbose) dz_log_set_level(DZ_LOG_INFO);

    dz_model_options mo = {.device = a.device, .n_threads = (int32_t)a.threads};
    dz_model *model = NULL;
    dz_kv_cache *kv = NULL;
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    if (dz_model_load(a.model, &mo, &model)) return dz_cli_error("run");
    if (a.lora && dz_model_apply_lora(model, a.lora, (float)a.lora_scale)) {
        dz_model_free(model);
        return dz_cli_error("run");
    }
    const dz_model_hparams *hp = dz_model_hparams_get(model);
    int32_t n_ctx = a.ctx ? (int32_t)a.ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    const dz_tokenizer *tok = dz_model_tokenizer(model);
    if (dz_kv_cache_create(model, n_ctx, &kv) ||
        dz_tokenize(tok, a.prompt, strlen(a.prompt), dz_tokenizer_add_bos_default(tok), false,
                    &prompt, &n_prompt)) {
        rc = dz_cli_error("run");
    } else {
        if (a.verbose)
            fprintf(stderr, "model: %s, %d layers, width %d, %d heads (%d kv), vocab %d; context %d; "
                            "prompt %zu tokens; seed %llu\n",
                    hp->arch, hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv, hp->n_vocab,
                    n_ctx, n_prompt, (unsigned long long)a.sp.seed);
        if (a.echo) emit(a.prompt, strlen(a.prompt));
        rc = generate(&a, model, kv, prompt, n_prompt);
    }
    free(prompt);
    dz_kv_cache_free(kv);
    dz_model_free(model);
    return rc;
}
