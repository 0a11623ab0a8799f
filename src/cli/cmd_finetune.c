/* dizuo finetune: trains a LoRA adapter on a frozen (possibly quantized)
 * base model and writes it in llama.cpp's adapter format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "dizuo/lora.h"

static const char *help =
    "usage: dizuo finetune --base MODEL.gguf --data FILE[,FILE...] --steps N -o ADAPTER.gguf [options]\n"
    "\n"
    "Trains LoRA adapters A (r x in, normal with std 1/sqrt(in)) and B (out x r, zero) on the\n"
    "chosen projections of every layer of a frozen base; the base's weights stay in their\n"
    "file type (quantized bases included). Each adapted product becomes W x + (alpha / r) B (A x).\n"
    "The adapter is written in llama.cpp's LoRA format (dizuo run --lora, llama-cli --lora).\n"
    "\n"
    "      --base FILE           the base model (required)\n"
    "      --lora-rank R         rank r (default 8)\n"
    "      --lora-alpha A        alpha (default 16)\n"
    "      --lora-targets LIST   comma-separated: attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down\n"
    "                            (gpt2: attn_qkv,attn_output,ffn_up,ffn_down); default attn_q,attn_v\n"
    "                            (gpt2: attn_qkv)\n"
    "      --data FILE[,FILE]    training text or llm.c token shards (required)\n"
    "      --doc-sep SEP         text holds documents separated by SEP (e.g. \\n\\n), each then\n"
    "                            followed by the end-of-text token (dizuo train --help)\n"
    "      --batch B --seq T --grad-accum A --steps N --no-shuffle --seed S\n"
    "      --lr LR (default 1e-3) --warmup W --schedule cosine|constant --clip C (default 1)\n"
    "      --beta1 --beta2 --eps --weight-decay (default 0)\n"
    "  -t, --threads N           CPU threads\n"
    "  --device NAME             device of the base model (default cpu; see dizuo devices);\n"
    "                            the adapters and the optimizer stay on the CPU\n"
    "      --log FILE.jsonl      one JSON object per step\n"
    "  -o, --output FILE.gguf    the adapter (required)\n"
    "  -h, --help                this help\n";

static const char *CMD = "finetune";

typedef struct ft_args {
    const char *device, *base, *data, *out, *log, *targets;
    const char *doc_sep; /* NULL, or doc_sep_buf */
    char doc_sep_buf[64];
    long long rank, batch, seq, accum, steps, warmup, threads, seed;
    double alpha;
    bool no_shuffle;
    dz_train_opts o;
} ft_args;

static int parse(int argc, char **argv, ft_args *a) {
    a->o = dz_train_opts_default();
    a->o.weight_decay = 0;
    a->rank = 8;
    a->alpha = 16;
    a->batch = 4;
    a->accum = 1;
    a->seed = 1234;
    const dz_opt_int ints[] = {
        {"--lora-rank", &a->rank, 1, 65536, NULL},    {"--batch", &a->batch, 1, 1 << 16, NULL},
        {"--seq", &a->seq, 1, 1 << 20, NULL},         {"--grad-accum", &a->accum, 1, 1 << 16, NULL},
        {"--steps", &a->steps, 1, 1 << 30, NULL},     {"--warmup", &a->warmup, 0, 1 << 30, NULL},
        {"-t", &a->threads, 1, 1024, NULL},           {"--threads", &a->threads, 1, 1024, NULL},
        {"--seed", &a->seed, 0, INT64_MAX, NULL},
    };
    const dz_opt_str strs[] = {
        {"--base", &a->base}, {"--data", &a->data}, {"-o", &a->out}, {"--output", &a->out},
        {"--log", &a->log},   {"--lora-targets", &a->targets}, {"--device", &a->device},
    };
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = NULL;
        int done = 0;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(help, stdout);
            return DZ_EXIT_OK;
        } else if (!strcmp(o, "--no-shuffle")) {
            a->no_shuffle = true;
            done = 1;
        } else if (!strcmp(o, "--doc-sep")) {
            a->doc_sep = dz_arg_escaped(CMD, argc, argv, &i, a->doc_sep_buf, sizeof a->doc_sep_buf);
            done = a->doc_sep ? 1 : -1;
        } else if (!strcmp(o, "--lora-alpha")) {
            v = dz_arg_value(CMD, argc, argv, &i);
            done = v && dz_arg_float(CMD, o, v, 1e-6, 1e6, &a->alpha) ? 1 : -1;
        }
        if (!done) done = dz_arg_ints(CMD, argc, argv, &i, ints, sizeof ints / sizeof ints[0]);
        if (!done) done = dz_arg_train_opts(CMD, argc, argv, &i, &a->o);
        if (!done) done = dz_arg_strs(CMD, argc, argv, &i, strs, sizeof strs / sizeof strs[0]);
        if (done < 0) return DZ_EXIT_USAGE;
        if (!done) {
            fprintf(stderr, "dizuo finetune: unknown option '%s' (see dizuo finetune --help)\n", o);
            return DZ_EXIT_USAGE;
        }
    }
    const char *missing = !a->base ? "--base MODEL.gguf" : !a->data ? "--data FILE" : !a->steps ? "--steps N"
                          : !a->out ? "-o ADAPTER.gguf" : NULL;
    if (missing) {
        fprintf(stderr, "dizuo finetune: %s is required (see dizuo finetune --help)\n", missing);
        return DZ_EXIT_USAGE;
    }
    if (a->device && !dz_arg_device(CMD, a->device)) return DZ_EXIT_USAGE;
    return -1;
}

static int run(const ft_args *a, dz_lora_trainer *tr, dz_train_data *data, int32_t B, int32_t T) {
    int32_t *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    FILE *log = a->log ? fopen(a->log, "w") : NULL;
    int rc = DZ_EXIT_ERROR;
    if (!in || !tg) fprintf(stderr, "dizuo finetune: out of memory\n");
    else if (a->log && !log) fprintf(stderr, "dizuo finetune: %s: cannot write the log\n", a->log);
    else rc = DZ_EXIT_OK;
    const int64_t every = a->steps / 20 > 0 ? a->steps / 20 : 1;
    int64_t row = 0;
    for (int64_t step = 0; rc == DZ_EXIT_OK && step < a->steps; step++) {
        double t0 = dz_time_now();
        dz_lora_trainer_zero_grad(tr);
        for (int32_t k = 0; rc == DZ_EXIT_OK && k < a->accum; k++) {
            for (int32_t b = 0; b < B; b++)
                dz_train_data_row(data, row++, T, !a->no_shuffle, (uint64_t)a->seed, in + (int64_t)b * T,
                                  tg + (int64_t)b * T);
            if (dz_lora_trainer_backward(tr, in, tg, B, NULL)) rc = dz_cli_error(CMD);
        }
        dz_train_stats st;
        if (rc == DZ_EXIT_OK && dz_lora_trainer_update(tr, step, &st)) rc = dz_cli_error(CMD);
        if (rc != DZ_EXIT_OK) break;
        double tps = (double)a->accum * B * T / (dz_time_now() - t0 + 1e-9);
        if (log)
            fprintf(log, "{\"step\": %lld, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6f, \"tokens_per_s\": %.1f}\n",
                    (long long)step + 1, st.loss, st.lr, st.grad_norm, tps);
        if ((step + 1) % every == 0 || step == 0 || step + 1 == a->steps)
            fprintf(stderr, "step %lld/%lld  loss %.4f  lr %.3g  %.0f tok/s\n", (long long)step + 1, a->steps, st.loss,
                    st.lr, tps);
    }
    if (rc == DZ_EXIT_OK && dz_lora_trainer_save(tr, a->out)) rc = dz_cli_error(CMD);
    if (rc == DZ_EXIT_OK) fprintf(stderr, "wrote %s\n", a->out);
    if (log) fclose(log);
    free(in);
    free(tg);
    return rc;
}

int dz_cmd_finetune(int argc, char **argv) {
    ft_args a;
    memset(&a, 0, sizeof a);
    int rc = parse(argc, argv, &a);
    if (rc >= 0) return rc;
    dz_gguf *g = NULL;
    int64_t n_ctx = 0;
    bool found = false;
    /* the row length default needs the base's context before the trainer exists */
    if (!a.seq) {
        if (dz_gguf_open(a.base, &g)) return dz_cli_error(CMD);
        const char *arch = NULL;
        size_t len;
        char key[96];
        if (!dz_gguf_get_str(g, "general.architecture", &arch, &len, &found) && found) {
            snprintf(key, sizeof key, "%.*s.context_length", (int)len, arch);
            dz_gguf_get_int(g, key, &n_ctx, &found);
        }
        dz_gguf_close(g);
        a.seq = n_ctx > 0 && n_ctx < 64 ? n_ctx : 64;
    }
    dz_train_opts o = a.o;
    o.seq = (int32_t)a.seq;
    o.steps = (int32_t)a.steps;
    o.warmup = (int32_t)a.warmup;
    o.threads = (int32_t)a.threads;
    o.device = a.device;
    dz_lora_opts lo = {.rank = (int32_t)a.rank, .alpha = (float)a.alpha, .targets = a.targets};
    dz_lora_trainer *tr = NULL;
    if (dz_lora_trainer_create(a.base, &lo, &o, (uint64_t)a.seed, &tr)) return dz_cli_error(CMD);
    const dz_model *m = dz_lora_trainer_base(tr);
    char *copy = strdup(a.data);
    const char *paths[64];
    int n = 0;
    for (char *save = NULL, *p = copy ? strtok_r(copy, ",", &save) : NULL; p && n < 64; p = strtok_r(NULL, ",", &save))
        paths[n++] = p;
    dz_train_data *data = NULL;
    rc = DZ_EXIT_ERROR;
    if (dz_train_data_load(paths, n, dz_model_tokenizer(m), dz_model_hparams_get(m)->n_vocab, a.doc_sep, &data)) {
        dz_cli_error(CMD);
    } else if (dz_train_data_n_tokens(data) < a.batch * a.seq + 1) {
        fprintf(stderr, "dizuo finetune: %s: %lld tokens; one batch of %lld rows x %lld tokens needs at least %lld\n",
                a.data, (long long)dz_train_data_n_tokens(data), a.batch, a.seq, a.batch * a.seq + 1);
    } else {
        fprintf(stderr, "finetune: %s base, rank %lld, alpha %g, %lld adapter parameters, %lld tokens\n",
                dz_model_hparams_get(m)->arch, a.rank, a.alpha, (long long)dz_lora_trainer_n_floats(tr),
                (long long)dz_train_data_n_tokens(data));
        rc = run(&a, tr, data, (int32_t)a.batch, (int32_t)a.seq);
    }
    free(copy);
    dz_train_data_free(data);
    dz_lora_trainer_free(tr);
    return rc;
}
