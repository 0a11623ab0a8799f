/* dizuo train: pretrain (or continue training) a llama or gpt2 model on
 * text or token shards, with checkpoints, resume, a JSONL log, export to
 * GGUF and an SVG loss curve. The semantics are in docs/training.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/train_common.h"
#include "cli/train_mpi.h"
#include "dizuo/train.h"

static const char *train_help =
    "usage: dizuo train (--init MODEL.gguf | --dim D --layers L --heads H --ffn F --ctx C\n"
    "                    (--tokenizer TOK.gguf | --vocab V)) --data FILE[,FILE...] --steps N [options]\n"
    "\n"
    "Trains a model on the CPU with AdamW and writes it as GGUF (-o). Data files are plain\n"
    "UTF-8 text (tokenized with the model's tokenizer) or llm.c token shards (magic 20240520).\n"
    "Step i, row b reads T tokens from the stream and predicts the next T; the loss is the\n"
    "mean cross-entropy over every token of the step (docs/training.md).\n"
    "\n"
    "model:\n"
    "      --arch llama|gpt2     architecture of a new model (default llama)\n"
    "      --init FILE           start from this GGUF model's weights (and tokenizer)\n"
    "      --dim D --layers L --heads H --kv-heads K --ffn F --ctx C\n"
    "                            shape of a new model (kv-heads default H; llama only)\n"
    "      --tokenizer FILE      GGUF whose tokenizer.* keys give the vocabulary\n"
    "      --vocab V             vocabulary size without a tokenizer (token shards only)\n"
    "      --tied                llama: reuse token_embd as the output matrix\n"
    "data and batches:\n"
    "      --data FILE[,FILE]    training data (required)\n"
    "      --val FILE            validation data: loss reported at the end\n"
    "      --doc-sep SEP         text files hold documents separated by SEP (C escapes: \\n\\n\n"
    "                            for a blank line); each document is followed by the\n"
    "                            vocabulary's end-of-text token, so the model learns to stop\n"
    "      --batch B             rows per micro-step (default 4)\n"
    "      --seq T               tokens per row (default min(64, ctx))\n"
    "      --grad-accum A        micro-steps per step (default 1): a step sees A x B rows\n"
    "      --no-shuffle          rows in stream order: row r starts at token r*T\n"
    "      --seed S              initialisation and shuffle seed (default 1234)\n"
    "                            under `mpirun -np P` (builds with MPI) --batch is per rank:\n"
    "                            P ranks train as one with batch P x B (docs/training.md)\n"
    "optimisation:\n"
    "      --steps N             optimizer steps (required)\n"
    "      --lr LR               peak learning rate (default 1e-3)\n"
    "      --warmup W            linear warmup steps (default 0)\n"
    "      --schedule S          cosine (to 0.1 lr at step N) or constant (default cosine)\n"
    "      --beta1 B1 --beta2 B2 --eps E --weight-decay WD\n"
    "                            AdamW (defaults 0.9, 0.95, 1e-8, 0.1)\n"
    "      --clip C              global gradient-norm clip; 0 = off (default 1)\n"
    "  -t, --threads N           CPU threads (default: the device's choice)\n"
    "  --device NAME             device of the forward and backward passes (default cpu; see\n"
    "                            dizuo devices); the weights and the optimizer stay on the CPU\n"
    "output:\n"
    "  -o, --output FILE.gguf    the trained model (and FILE.loss.svg, the loss curve)\n"
    "      --out-type f32|f16    weight type of the output (default f32)\n"
    "      --log FILE.jsonl      one JSON object per step: step, loss, lr, grad_norm, tokens_per_s\n"
    "      --save-every N        checkpoint every N steps (into --checkpoint-dir)\n"
    "      --checkpoint-dir DIR  where checkpoints go (default OUT.ckpt, or the --resume DIR)\n"
    "      --resume DIR          continue the run saved in DIR (bit-identical with the same -t)\n"
    "  -h, --help                this help\n";

typedef struct train_args {
    const char *device, *arch, *init, *tokenizer, *data, *val, *out, *log, *ckpt_dir, *resume, *out_type;
    const char *doc_sep; /* NULL, or doc_sep_buf */
    char doc_sep_buf[64];
    long long dim, layers, heads, kv_heads, ffn, ctx, vocab;
    long long batch, seq, accum, steps, warmup, threads, save_every, seed;
    bool tied, no_shuffle, seed_given, batch_given, seq_given, accum_given;
    dz_train_opts o;
} train_args;

static const char *CMD = "train";

/* Parses argv; returns -1 to continue, else an exit code. */
static int parse(int argc, char **argv, train_args *a) {
    a->o = dz_train_opts_default();
    a->batch = 4;
    a->accum = 1;
    a->seed = 1234;
    const dz_opt_int ints[] = {
        {"--dim", &a->dim, 2, 1 << 20, NULL},        {"--layers", &a->layers, 1, 4096, NULL},
        {"--heads", &a->heads, 1, 1 << 16, NULL},    {"--kv-heads", &a->kv_heads, 1, 1 << 16, NULL},
        {"--ffn", &a->ffn, 1, 1 << 20, NULL},        {"--ctx", &a->ctx, 1, 1 << 20, NULL},
        {"--vocab", &a->vocab, 2, 1 << 24, NULL},    {"--batch", &a->batch, 1, 1 << 16, &a->batch_given},
        {"--seq", &a->seq, 1, 1 << 20, &a->seq_given}, {"--grad-accum", &a->accum, 1, 1 << 16, &a->accum_given},
        {"--steps", &a->steps, 1, 1 << 30, NULL},    {"--warmup", &a->warmup, 0, 1 << 30, NULL},
        {"-t", &a->threads, 1, 1024, NULL},          {"--threads", &a->threads, 1, 1024, NULL},
        {"--save-every", &a->save_every, 1, 1 << 30, NULL}, {"--seed", &a->seed, 0, INT64_MAX, &a->seed_given},
    };
    const dz_opt_str strs[] = {
        {"--arch", &a->arch}, {"--init", &a->init}, {"--tokenizer", &a->tokenizer}, {"--data", &a->data},
        {"--val", &a->val}, {"-o", &a->out}, {"--output", &a->out}, {"--log", &a->log},
        {"--checkpoint-dir", &a->ckpt_dir}, {"--device", &a->device}, {"--resume", &a->resume}, {"--out-type", &a->out_type},
    };
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        int done = 0;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(train_help, stdout);
            return DZ_EXIT_OK;
        } else if (!strcmp(o, "--tied")) {
            a->tied = true;
            done = 1;
        } else if (!strcmp(o, "--no-shuffle")) {
            a->no_shuffle = true;
            done = 1;
        } else if (!strcmp(o, "--doc-sep")) {
            a->doc_sep = dz_arg_escaped(CMD, argc, argv, &i, a->doc_sep_buf, sizeof a->doc_sep_buf);
            done = a->doc_sep ? 1 : -1;
        }
        if (!done) done = dz_arg_ints(CMD, argc, argv, &i, ints, sizeof ints / sizeof ints[0]);
        if (!done) done = dz_arg_train_opts(CMD, argc, argv, &i, &a->o);
        if (!done) done = dz_arg_strs(CMD, argc, argv, &i, strs, sizeof strs / sizeof strs[0]);
        if (done < 0) return DZ_EXIT_USAGE;
        if (!done) {
            fprintf(stderr, "dizuo train: unknown option '%s' (see dizuo train --help)\n", o);
            return DZ_EXIT_USAGE;
        }
    }
    const char *missing = !a->data ? "--data FILE" : !a->steps ? "--steps N" : NULL;
    if (!missing && !a->init && !a->resume && !(a->dim && a->layers && a->heads && a->ffn && a->ctx))
        missing = "--init MODEL.gguf, --resume DIR or a shape (--dim --layers --heads --ffn --ctx)";
    if (!missing && !a->init && !a->resume && !a->tokenizer && !a->vocab) missing = "--tokenizer TOK.gguf or --vocab V";
    if (missing) {
        fprintf(stderr, "dizuo train: %s is required (see dizuo train --help)\n", missing);
        return DZ_EXIT_USAGE;
    }
    if (a->arch && dz_train_arch_from_name(a->arch) < 0) {
        fprintf(stderr, "dizuo train: --arch is llama or gpt2, not '%s'\n", a->arch);
        return DZ_EXIT_USAGE;
    }
    if (a->out_type && strcmp(a->out_type, "f32") && strcmp(a->out_type, "f16")) {
        fprintf(stderr, "dizuo train: --out-type is f32 or f16, not '%s'\n", a->out_type);
        return DZ_EXIT_USAGE;
    }
    if (a->device && !dz_arg_device(CMD, a->device)) return DZ_EXIT_USAGE;
    return -1;
}

/* The shape the command line asks for (a new model). */
static dz_status shape_from_args(const train_args *a, int32_t n_vocab, dz_train_config *c) {
    *c = dz_train_config_default(a->arch ? (dz_train_arch)dz_train_arch_from_name(a->arch) : DZ_TRAIN_LLAMA);
    c->n_vocab = n_vocab;
    c->n_embd = (int32_t)a->dim;
    c->n_layer = (int32_t)a->layers;
    c->n_head = (int32_t)a->heads;
    c->n_head_kv = (int32_t)(a->kv_heads ? a->kv_heads : a->heads);
    c->n_ff = (int32_t)a->ffn;
    c->n_ctx = (int32_t)a->ctx;
    if (c->arch == DZ_TRAIN_LLAMA) c->tied = a->tied;
    return dz_train_config_check(c);
}

/* A new model from a shape and a tokenizer file (or a bare vocabulary size). */
static dz_status new_model(const train_args *a, dz_train_model **out) {
    dz_gguf *g = NULL;
    dz_tokenizer *tok = NULL;
    dz_status st = DZ_OK;
    int32_t n_vocab = (int32_t)a->vocab;
    if (a->tokenizer) {
        st = dz_gguf_open(a->tokenizer, &g);
        if (!st) st = dz_tokenizer_load(g, &tok);
        if (!st) n_vocab = dz_tokenizer_n_vocab(tok);
        if (st) dz_error_prefix(st, "%s: ", a->tokenizer);
        if (!st && a->vocab && a->vocab != n_vocab)
            st = dz_fail(DZ_ERR_ARG, "--vocab %lld differs from the tokenizer's %d tokens", a->vocab, n_vocab);
    }
    dz_train_config c;
    if (!st) st = shape_from_args(a, n_vocab, &c);
    if (!st) st = dz_train_model_create(&c, (uint64_t)a->seed, out);
    if (!st && g) st = dz_train_model_set_tokenizer(*out, g);
    dz_tokenizer_free(tok);
    dz_gguf_close(g);
    return st;
}

/* --resume: the checkpoint must be of the shape and run the command line asks for. */
static dz_status check_resume(const train_args *a, const dz_train_model *m, const dz_train_state *s, int ranks) {
    const dz_train_config *c = dz_train_model_config(m);
    if (a->dim || a->layers || a->heads || a->ffn || a->ctx) {
        dz_train_config want;
        dz_status st = shape_from_args(a, c->n_vocab, &want);
        if (st) return st;
        if (want.arch != c->arch || want.n_embd != c->n_embd || want.n_layer != c->n_layer ||
            want.n_head != c->n_head || want.n_head_kv != c->n_head_kv || want.n_ff != c->n_ff ||
            want.n_ctx != c->n_ctx || want.tied != c->tied)
            return dz_fail(DZ_ERR_ARG,
                           "the checkpoint in %s holds a %s model of dim %d, %d layers, %d heads (%d kv), ffn %d, "
                           "ctx %d; this run asks for %s dim %d, %d layers, %d heads (%d kv), ffn %d, ctx %d",
                           a->resume, dz_train_arch_name(c->arch), c->n_embd, c->n_layer, c->n_head, c->n_head_kv,
                           c->n_ff, c->n_ctx, dz_train_arch_name(want.arch), want.n_embd, want.n_layer, want.n_head,
                           want.n_head_kv, want.n_ff, want.n_ctx);
    }
    if (s->batch % ranks)
        return dz_fail(DZ_ERR_ARG, "the checkpoint in %s has a batch of %d rows, which %d ranks cannot share",
                       a->resume, s->batch, ranks);
    if ((a->batch_given && a->batch * ranks != s->batch) || (a->seq_given && a->seq != s->seq) ||
        (a->accum_given && a->accum != s->grad_accum))
        return ranks > 1 ? dz_fail(DZ_ERR_ARG,
                                   "the checkpoint in %s was made with a batch of %d rows in all (--batch %d on each "
                                   "of %d ranks) --seq %d --grad-accum %d",
                                   a->resume, s->batch, s->batch / ranks, ranks, s->seq, s->grad_accum)
                         : dz_fail(DZ_ERR_ARG, "the checkpoint in %s was made with --batch %d --seq %d --grad-accum %d",
                                   a->resume, s->batch, s->seq, s->grad_accum);
    if (a->seed_given && (uint64_t)a->seed != s->seed)
        return dz_fail(DZ_ERR_ARG, "the checkpoint in %s was made with --seed %llu", a->resume,
                       (unsigned long long)s->seed);
    if (s->step > a->steps)
        return dz_fail(DZ_ERR_ARG, "the checkpoint in %s is at step %lld, past --steps %lld", a->resume,
                       (long long)s->step, a->steps);
    return DZ_OK;
}

static dz_status load_data(const char *list, const char *doc_sep, const dz_train_model *m, dz_train_data **out) {
    return dz_cli_load_data(list, doc_sep, dz_train_model_tokenizer(m), dz_train_model_config(m)->n_vocab, out);
}

static void fmt_duration(double s, char *buf, size_t cap) {
    long t = s > 0 && s < 1e8 ? (long)(s + 0.5) : 0;
    snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

/* Data-parallel runs: what every rank must agree on (weights, moments,
 * progress, data and optimizer settings), and the weights alone. */
static uint64_t run_fingerprint(const train_args *a, dz_train_model *m, const dz_train_state *s,
                                const dz_train_opts *o, bool shuffle) {
    const size_t n = (size_t)dz_train_model_n_floats(m) * sizeof(float);
    const int64_t ints[] = {(int64_t)n, s->batch, s->seq, s->grad_accum, s->step, s->row, (int64_t)s->seed,
                            (int64_t)s->data_hash, a->steps, o->warmup, o->schedule, shuffle};
    const float reals[] = {o->lr, o->beta1, o->beta2, o->eps, o->weight_decay, o->clip};
    uint64_t h = dz_dp_hash(0xcbf29ce484222325ull, ints, sizeof ints);
    h = dz_dp_hash(h, reals, sizeof reals);
    h = dz_dp_hash(h, dz_train_model_weights(m), n);
    h = dz_dp_hash(h, dz_train_model_adam_m(m), n);
    return dz_dp_hash(h, dz_train_model_adam_v(m), n);
}

static uint64_t weights_fingerprint(dz_train_model *m) {
    return dz_dp_hash(0xcbf29ce484222325ull, dz_train_model_weights(m),
                      (size_t)dz_train_model_n_floats(m) * sizeof(float));
}

/* " (P ranks x B rows)" for a data-parallel run, "" for one rank. */
static const char *dp_note(const dz_dp *dp, int32_t B, char *buf, size_t cap) {
    if (dp->size < 2) return "";
    snprintf(buf, cap, " (%d ranks x %d rows)", dp->size, B);
    return buf;
}

static int eval_row(void *tr, const int32_t *in, const int32_t *tg, double *loss) {
    return dz_trainer_eval(tr, in, tg, 1, loss) != DZ_OK;
}

/* The whole run after the model exists; returns an exit code. */
static int train(const train_args *a, dz_train_model *m, dz_train_state *s, dz_dp *dp) {
    /* G rows per micro-step over all ranks (the checkpoint's batch); this rank runs B of them */
    const int32_t G = s->batch, B = G / dp->size, T = s->seq, A = s->grad_accum;
    const bool lead = dp->rank == 0; /* rank 0 logs and writes; the others stay quiet */
    const bool shuffle = !a->no_shuffle;
    dz_train_data *data = NULL, *val = NULL;
    dz_trainer *tr = NULL;
    FILE *log = NULL;
    int32_t *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    float *losses = calloc((size_t)a->steps, sizeof *losses);
    int rc = DZ_EXIT_ERROR;
    char ckpt[4096] = "";
    if (a->ckpt_dir || a->resume) snprintf(ckpt, sizeof ckpt, "%s", a->ckpt_dir ? a->ckpt_dir : a->resume);
    else snprintf(ckpt, sizeof ckpt, "%s.ckpt", a->out ? a->out : "dizuo-train");
    const int64_t curve_from = dz_cli_take_history(s, losses);
    if (!in || !tg || !losses) {
        fprintf(stderr, "dizuo train: out of memory\n");
        goto done;
    }
    dz_train_opts o = a->o;
    o.seq = T;
    o.steps = (int32_t)a->steps;
    o.warmup = (int32_t)a->warmup;
    o.threads = (int32_t)a->threads;
    o.device = a->device;
    if (dp->size > 1) {
        o.reduce = dz_dp_reduce;
        o.reduce_user = dp;
    }
    const dz_train_config *c = dz_train_model_config(m);
    if (T > c->n_ctx) {
        fprintf(stderr, "dizuo train: --seq %d exceeds the model's context of %d\n", T, c->n_ctx);
        goto done;
    }
    if (load_data(a->data, a->doc_sep, m, &data) || (a->val && load_data(a->val, a->doc_sep, m, &val))) {
        dz_cli_error(CMD);
        goto done;
    }
    const int64_t n_tokens = dz_train_data_n_tokens(data);
    if (n_tokens < (int64_t)G * T + 1) {
        fprintf(stderr, "dizuo train: %s: %lld tokens; one batch of %d rows x %d tokens needs at least %lld\n", a->data,
                (long long)n_tokens, G, T, (long long)G * T + 1);
        goto done;
    }
    if (a->resume && s->data_hash != dz_train_data_hash(data)) {
        fprintf(stderr, "dizuo train: %s is not the data the checkpoint in %s was trained on\n", a->data, a->resume);
        goto done;
    }
    s->data_hash = dz_train_data_hash(data);
    if (!lead) s->has_opts = false; /* rank 0 tells what a resume changes */
    dz_cli_keep_opts(CMD, s, &o, shuffle);
    if (dz_trainer_create(m, &o, &tr)) {
        dz_cli_error(CMD);
        goto done;
    }
    if (lead && a->log && !(log = fopen(a->log, a->resume ? "a" : "w"))) {
        fprintf(stderr, "dizuo train: %s: cannot write the log\n", a->log);
        goto done;
    }
    int64_t n_floats = dz_train_model_n_floats(m);
    if (!dz_dp_same(dp, run_fingerprint(a, m, s, &o, shuffle), "at the start")) {
        dp->together = true;
        goto done;
    }
    char note[64];
    if (lead)
        fprintf(stderr, "train: %s, %lld parameters, %lld tokens, %d x %d x %d tokens per step%s, steps %lld..%lld\n",
                dz_train_arch_name(c->arch), (long long)n_floats, (long long)n_tokens, A, G, T, dp_note(dp, B, note, sizeof note),
                (long long)s->step + 1, a->steps);
    const bool tty = lead && isatty(STDERR_FILENO);
    const int64_t first = s->step, every = a->steps / 20 > 0 ? a->steps / 20 : 1;
    const double t_start = dz_time_now();
    int64_t last_saved = a->resume ? s->step : -1;
    for (int64_t step = s->step; step < a->steps; step++) {
        double t0 = dz_time_now();
        dz_trainer_zero_grad(tr);
        for (int32_t k = 0; k < A; k++) {
            for (int32_t b = 0; b < B; b++)
                dz_train_data_row(data, s->row + (int64_t)k * G + (int64_t)dp->rank * B + b, T, shuffle, s->seed,
                                  in + (int64_t)b * T, tg + (int64_t)b * T);
            if (dz_trainer_backward(tr, in, tg, B, NULL)) {
                dz_cli_error(CMD);
                goto done;
            }
        }
        dz_train_stats st;
        if (dz_trainer_update(tr, step, &st)) {
            dp->together = true; /* every rank fails alike (same reduced gradients); rank 0 tells */
            if (!lead) goto done;
            fprintf(stderr, "%sdizuo train: %s\n", tty ? "\n" : "", dz_last_error());
            if (last_saved >= 0) fprintf(stderr, "dizuo train: the last good checkpoint is %s (step %lld)\n", ckpt, (long long)last_saved);
            else fprintf(stderr, "dizuo train: no checkpoint was written (use --save-every)\n");
            goto done;
        }
        s->row += (int64_t)A * G;
        s->step = step + 1;
        losses[step] = (float)st.loss;
        double now = dz_time_now(), tps = (double)A * G * T / (now - t0 > 1e-9 ? now - t0 : 1e-9);
        if (log) {
            fprintf(log, "{\"step\": %lld, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6f, \"tokens_per_s\": %.1f}\n",
                    (long long)step + 1, st.loss, st.lr, st.grad_norm, tps);
            fflush(log);
        }
        if (lead && (tty || (step + 1) % every == 0 || step + 1 == a->steps)) {
            char eta[32];
            fmt_duration((now - t_start) / (double)(step + 1 - first) * (double)(a->steps - step - 1), eta, sizeof eta);
            fprintf(stderr, "%sstep %lld/%lld  loss %.4f  lr %.3g  %.0f tok/s  ETA %s%s", tty ? "\r" : "",
                    (long long)step + 1, a->steps, st.loss, st.lr, tps, eta, tty ? "  " : "\n");
        }
        if (a->save_every && s->step % a->save_every == 0) {
            if (!dz_dp_same(dp, weights_fingerprint(m), "after a step")) {
                dp->together = true;
                goto done;
            }
            if (lead && dz_train_checkpoint_save(m, s, ckpt)) {
                dz_cli_error(CMD);
                goto done;
            }
            last_saved = s->step;
        }
    }
    if (tty) fputc('\n', stderr);
    if (!dz_dp_same(dp, weights_fingerprint(m), "at the end")) {
        dp->together = true;
        goto done;
    }
    if (val && lead) {
        double vl;
        const int64_t rows = dz_cli_val_loss(CMD, val, T, in, tg, eval_row, tr, &vl);
        if (rows < 0) goto done;
        fprintf(stderr, "validation loss %.4f (%lld rows of %s)\n", vl, (long long)rows, a->val);
        if (log) fprintf(log, "{\"step\": %lld, \"val_loss\": %.6f}\n", (long long)s->step, vl);
    }
    if (a->out && lead) {
        dz_type type = a->out_type && !strcmp(a->out_type, "f16") ? DZ_TYPE_F16 : DZ_TYPE_F32;
        if (!dz_train_model_tokenizer(m))
            fprintf(stderr, "dizuo train: warning: the model has no tokenizer; %s holds weights only\n", a->out);
        if (dz_train_model_export(m, a->out, type)) {
            dz_cli_error(CMD);
            goto done;
        }
        char svg[4096];
        dz_cli_svg_path(a->out, svg, sizeof svg);
        if (curve_from < a->steps && dz_train_write_loss_svg(svg, losses + curve_from, a->steps - curve_from,
                                                             curve_from + 1, "dizuo train: loss per step")) {
            dz_cli_error(CMD);
            goto done;
        }
        fprintf(stderr, "wrote %s and %s\n", a->out, svg);
    }
    rc = DZ_EXIT_OK;
done:
    if (log) fclose(log);
    dz_trainer_free(tr);
    dz_train_data_free(data);
    dz_train_data_free(val);
    free(in);
    free(tg);
    free(losses);
    s->losses = NULL;
    return rc;
}

int dz_cmd_train(int argc, char **argv) {
    train_args a;
    memset(&a, 0, sizeof a);
    int rc = parse(argc, argv, &a);
    if (rc >= 0) return rc;
    dz_dp dp;
    if (!dz_dp_init(&dp)) return DZ_EXIT_ERROR;
    if (a.batch * dp.size > INT32_MAX) {
        fprintf(stderr, "dizuo train: --batch %lld on %d ranks is too large a batch\n", a.batch, dp.size);
        return dz_dp_finish(&dp, DZ_EXIT_USAGE);
    }
    dz_train_model *m = NULL;
    dz_train_state s;
    memset(&s, 0, sizeof s);
    dz_status st;
    if (a.resume) {
        st = dz_train_checkpoint_load(a.resume, &m, &s);
        if (!st) st = check_resume(&a, m, &s, dp.size);
    } else {
        st = a.init ? dz_train_model_load(a.init, &m) : new_model(&a, &m);
        if (!st && a.init && a.arch && dz_train_arch_from_name(a.arch) != (int)dz_train_model_config(m)->arch)
            st = dz_fail(DZ_ERR_ARG, "%s is a %s model, not %s", a.init,
                         dz_train_arch_name(dz_train_model_config(m)->arch), a.arch);
        s.seed = (uint64_t)a.seed;
        s.batch = (int32_t)(a.batch * dp.size); /* the global batch: as one rank with that batch */
        s.grad_accum = (int32_t)a.accum;
        if (!st) {
            int32_t n_ctx = dz_train_model_config(m)->n_ctx;
            s.seq = (int32_t)(a.seq ? a.seq : n_ctx < 64 ? n_ctx : 64);
        }
    }
    if (st) {
        free(s.losses);
        dz_train_model_free(m);
        return dz_dp_finish(&dp, dz_cli_error(CMD));
    }
    rc = train(&a, m, &s, &dp);
    dz_train_model_free(m);
    return dz_dp_finish(&dp, rc);
}
