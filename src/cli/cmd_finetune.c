/* dizuo finetune: trains a LoRA adapter on a frozen (possibly quantized)
 * base model and writes it in llama.cpp's adapter format, with checkpoints,
 * resume, a validation loss and an SVG loss curve as dizuo train has. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/train_common.h"
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
    "      --val FILE            validation data: loss reported at the end\n"
    "      --doc-sep SEP         text holds documents separated by SEP (e.g. \\n\\n), each then\n"
    "                            followed by the end-of-text token (dizuo train --help)\n"
    "      --batch B --seq T --grad-accum A --steps N --no-shuffle --seed S\n"
    "      --lr LR (default 1e-3) --warmup W --schedule cosine|constant --clip C (default 1)\n"
    "      --beta1 --beta2 --eps --weight-decay (default 0)\n"
    "  -t, --threads N           CPU threads\n"
    "  --device NAME             device of the base model (default cpu; see dizuo devices);\n"
    "                            the adapters and the optimizer stay on the CPU\n"
    "      --log FILE.jsonl      one JSON object per step\n"
    "  -o, --output FILE.gguf    the adapter (required; and FILE.loss.svg, the loss curve)\n"
    "      --save-every N        checkpoint every N steps: adapters, AdamW moments, data position\n"
    "      --checkpoint-dir DIR  where checkpoints go (default OUT.ckpt, or the --resume DIR)\n"
    "      --resume DIR          continue the run saved in DIR: give the same base, data and\n"
    "                            options (bit-identical with the same -t)\n"
    "  -h, --help                this help\n";

static const char *CMD = "finetune";

typedef struct ft_args {
    const char *device, *base, *data, *val, *out, *log, *targets, *ckpt_dir, *resume;
    const char *doc_sep; /* NULL, or doc_sep_buf */
    char doc_sep_buf[64];
    long long rank, batch, seq, accum, steps, warmup, threads, seed, save_every;
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
        {"--seed", &a->seed, 0, INT64_MAX, NULL},     {"--save-every", &a->save_every, 1, 1 << 30, NULL},
    };
    const dz_opt_str strs[] = {
        {"--base", &a->base}, {"--data", &a->data}, {"-o", &a->out}, {"--output", &a->out},
        {"--log", &a->log},   {"--lora-targets", &a->targets}, {"--device", &a->device},
        {"--val", &a->val},   {"--checkpoint-dir", &a->ckpt_dir}, {"--resume", &a->resume},
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

static int eval_row(void *tr, const int32_t *in, const int32_t *tg, double *loss) {
    return dz_lora_trainer_eval(tr, in, tg, 1, loss) != DZ_OK;
}

/* The steps s->step .. steps - 1, then the validation loss, the adapter
 * and its loss curve. s->losses is replaced by this run's history. */
static int run(const ft_args *a, dz_lora_trainer *tr, dz_train_data *data, dz_train_data *val, dz_train_state *s) {
    const int32_t B = s->batch, T = s->seq, A = s->grad_accum;
    int32_t *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    float *losses = calloc((size_t)a->steps, sizeof *losses);
    const int64_t curve_from = dz_cli_take_history(s, losses);
    char ckpt[4096];
    if (a->ckpt_dir || a->resume) snprintf(ckpt, sizeof ckpt, "%s", a->ckpt_dir ? a->ckpt_dir : a->resume);
    else snprintf(ckpt, sizeof ckpt, "%s.ckpt", a->out);
    FILE *log = a->log ? fopen(a->log, a->resume ? "a" : "w") : NULL;
    int rc = DZ_EXIT_ERROR;
    if (!in || !tg || !losses) fprintf(stderr, "dizuo finetune: out of memory\n");
    else if (a->log && !log) fprintf(stderr, "dizuo finetune: %s: cannot write the log\n", a->log);
    else rc = DZ_EXIT_OK;
    const int64_t every = a->steps / 20 > 0 ? a->steps / 20 : 1;
    int64_t last_saved = a->resume ? s->step : -1;
    for (int64_t step = s->step; rc == DZ_EXIT_OK && step < a->steps; step++) {
        double t0 = dz_time_now();
        dz_lora_trainer_zero_grad(tr);
        for (int32_t k = 0; rc == DZ_EXIT_OK && k < A; k++) {
            for (int32_t b = 0; b < B; b++)
                dz_train_data_row(data, s->row++, T, !a->no_shuffle, s->seed, in + (int64_t)b * T,
                                  tg + (int64_t)b * T);
            if (dz_lora_trainer_backward(tr, in, tg, B, NULL)) rc = dz_cli_error(CMD);
        }
        dz_train_stats st;
        if (rc == DZ_EXIT_OK && dz_lora_trainer_update(tr, step, &st)) {
            rc = dz_cli_error(CMD);
            if (last_saved >= 0)
                fprintf(stderr, "dizuo finetune: the last good checkpoint is %s (step %lld)\n", ckpt,
                        (long long)last_saved);
            else fprintf(stderr, "dizuo finetune: no checkpoint was written (use --save-every)\n");
        }
        if (rc != DZ_EXIT_OK) break;
        s->step = step + 1;
        losses[step] = (float)st.loss;
        double tps = (double)A * B * T / (dz_time_now() - t0 + 1e-9);
        if (log)
            fprintf(log, "{\"step\": %lld, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6f, \"tokens_per_s\": %.1f}\n",
                    (long long)step + 1, st.loss, st.lr, st.grad_norm, tps);
        if ((step + 1) % every == 0 || step == 0 || step + 1 == a->steps)
            fprintf(stderr, "step %lld/%lld  loss %.4f  lr %.3g  %.0f tok/s\n", (long long)step + 1, a->steps, st.loss,
                    st.lr, tps);
        if (a->save_every && s->step % a->save_every == 0) {
            if (dz_lora_trainer_checkpoint_save(tr, s, ckpt)) rc = dz_cli_error(CMD);
            else last_saved = s->step;
        }
    }
    double vl;
    int64_t rows;
    if (rc == DZ_EXIT_OK && val) {
        if ((rows = dz_cli_val_loss(CMD, val, T, in, tg, eval_row, tr, &vl)) < 0) {
            rc = DZ_EXIT_ERROR;
        } else {
            fprintf(stderr, "validation loss %.4f (%lld rows of %s)\n", vl, (long long)rows, a->val);
            if (log) fprintf(log, "{\"step\": %lld, \"val_loss\": %.6f}\n", (long long)s->step, vl);
        }
    }
    char svg[4096];
    dz_cli_svg_path(a->out, svg, sizeof svg);
    if (rc == DZ_EXIT_OK && dz_lora_trainer_save(tr, a->out)) rc = dz_cli_error(CMD);
    if (rc == DZ_EXIT_OK && curve_from < a->steps &&
        dz_train_write_loss_svg(svg, losses + curve_from, a->steps - curve_from, curve_from + 1,
                                "dizuo finetune: loss per step"))
        rc = dz_cli_error(CMD);
    if (rc == DZ_EXIT_OK) fprintf(stderr, "wrote %s and %s\n", a->out, svg);
    if (log) fclose(log);
    free(in);
    free(tg);
    free(losses);
    s->losses = NULL;
    return rc;
}

static dz_status load_data(const char *list, const ft_args *a, const dz_model *m, dz_train_data **out) {
    return dz_cli_load_data(list, a->doc_sep, dz_model_tokenizer(m), dz_model_hparams_get(m)->n_vocab, out);
}

/* The state to start from: the checkpoint's (checked against this
 * command line and data) or a fresh one. */
static dz_status start_state(const ft_args *a, dz_lora_trainer *tr, const dz_train_data *data, dz_train_state *s) {
    memset(s, 0, sizeof *s);
    const uint64_t hash = dz_train_data_hash(data);
    if (!a->resume) {
        *s = (dz_train_state){.seed = (uint64_t)a->seed, .data_hash = hash, .batch = (int32_t)a->batch,
                              .seq = (int32_t)a->seq, .grad_accum = (int32_t)a->accum};
        return DZ_OK;
    }
    dz_status st = dz_lora_trainer_checkpoint_load(tr, a->resume, s);
    if (st) return st;
    if (s->batch != a->batch || s->seq != a->seq || s->grad_accum != a->accum || s->seed != (uint64_t)a->seed)
        st = dz_fail(DZ_ERR_ARG, "the checkpoint in %s is of --batch %d --seq %d --grad-accum %d --seed %llu; "
                     "give the same", a->resume, s->batch, s->seq, s->grad_accum, (unsigned long long)s->seed);
    else if (s->data_hash != hash)
        st = dz_fail(DZ_ERR_ARG, "%s is not the data the checkpoint in %s was trained on", a->data, a->resume);
    else if (s->step > a->steps)
        st = dz_fail(DZ_ERR_ARG, "the checkpoint in %s is at step %lld, past --steps %lld", a->resume,
                     (long long)s->step, a->steps);
    if (st) {
        free(s->losses);
        s->losses = NULL;
    }
    return st;
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
    dz_train_data *data = NULL, *val = NULL;
    dz_train_state s = {0};
    rc = DZ_EXIT_ERROR;
    if (load_data(a.data, &a, m, &data) || (a.val && load_data(a.val, &a, m, &val))) {
        dz_cli_error(CMD);
    } else if (dz_train_data_n_tokens(data) < a.batch * a.seq + 1) {
        fprintf(stderr, "dizuo finetune: %s: %lld tokens; one batch of %lld rows x %lld tokens needs at least %lld\n",
                a.data, (long long)dz_train_data_n_tokens(data), a.batch, a.seq, a.batch * a.seq + 1);
    } else if (start_state(&a, tr, data, &s)) {
        dz_cli_error(CMD);
    } else {
        dz_cli_keep_opts(CMD, &s, &o, !a.no_shuffle);
        fprintf(stderr, "finetune: %s base, rank %lld, alpha %g, %lld adapter parameters, %lld tokens, steps %lld..%lld\n",
                dz_model_hparams_get(m)->arch, a.rank, a.alpha, (long long)dz_lora_trainer_n_floats(tr),
                (long long)dz_train_data_n_tokens(data), (long long)s.step + 1, a.steps);
        rc = run(&a, tr, data, val, &s);
    }
    dz_train_data_free(data);
    dz_train_data_free(val);
    dz_lora_trainer_free(tr);
    return rc;
}
