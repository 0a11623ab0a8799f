/* What train and finetune share: the optimizer's options, the validation
 * pass and the loss curve's file name. Not in the DZ_CORE_ONLY program
 * (cmake/core.cmake), which has no trainer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/train_common.h"

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

void dz_cli_keep_opts(const char *cmd, dz_train_state *s, const dz_train_opts *o, bool shuffle) {
    if (s->has_opts) { /* a resumed run: what its command line changes */
        const dz_train_opts *c = &s->opts;
        char diff[512] = "";
        size_t n = 0;
#define DIFF(cond, ...) \
    if ((cond) && n < sizeof diff) n += (size_t)snprintf(diff + n, sizeof diff - n, __VA_ARGS__)
        /* --steps is the cosine schedule's length; a constant one may go on for longer */
        DIFF(c->steps != o->steps && o->schedule == DZ_LR_COSINE, " --steps %d (was %d)", o->steps, c->steps);
        DIFF(c->warmup != o->warmup, " --warmup %d (was %d)", o->warmup, c->warmup);
        DIFF(c->schedule != o->schedule, " --schedule %s (was %s)", o->schedule == DZ_LR_COSINE ? "cosine" : "constant",
             c->schedule == DZ_LR_COSINE ? "cosine" : "constant");
        DIFF(c->lr != o->lr, " --lr %g (was %g)", o->lr, c->lr);
        DIFF(c->beta1 != o->beta1, " --beta1 %g (was %g)", o->beta1, c->beta1);
        DIFF(c->beta2 != o->beta2, " --beta2 %g (was %g)", o->beta2, c->beta2);
        DIFF(c->eps != o->eps, " --eps %g (was %g)", o->eps, c->eps);
        DIFF(c->weight_decay != o->weight_decay, " --weight-decay %g (was %g)", o->weight_decay, c->weight_decay);
        DIFF(c->clip != o->clip, " --clip %g (was %g)", o->clip, c->clip);
        DIFF(s->shuffle != shuffle, " %s (was %s)", shuffle ? "shuffled rows" : "--no-shuffle",
             s->shuffle ? "shuffled rows" : "--no-shuffle");
#undef DIFF
        if (n)
            fprintf(stderr, "dizuo %s: warning: the run resumes with other settings than it began with:%s; it "
                    "goes on with these, so it is not the run it would have been without the stop\n", cmd, diff);
    }
    s->opts = *o;
    s->opts.device = NULL;
    s->opts.reduce = NULL;
    s->opts.reduce_user = NULL;
    s->shuffle = shuffle;
    s->has_opts = true;
}

dz_status dz_cli_load_data(const char *list, const char *doc_sep, const dz_tokenizer *tok, int32_t n_vocab,
                           dz_train_data **out) {
    char *copy = strdup(list);
    if (!copy) return dz_fail(DZ_ERR_NOMEM, "out of memory");
    const char *paths[64];
    int n = 0;
    for (char *save = NULL, *p = strtok_r(copy, ",", &save); p && n < 64; p = strtok_r(NULL, ",", &save))
        paths[n++] = p;
    dz_status st = dz_train_data_load(paths, n, tok, n_vocab, doc_sep, out);
    free(copy);
    return st;
}

int64_t dz_cli_take_history(dz_train_state *s, float *losses) {
    const int64_t curve_from = s->step == 0 || s->losses ? 0 : s->step;
    for (int64_t i = 0; losses && i < s->step; i++) /* steps without a history: none, not 0 */
        losses[i] = s->losses ? s->losses[i] : NAN;
    free(s->losses);
    s->losses = losses; /* what checkpoints keep */
    return curve_from;
}
