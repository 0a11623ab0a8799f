/* What train and finetune share (train_common.c). */
#ifndef DZ_CLI_TRAIN_COMMON_H
#define DZ_CLI_TRAIN_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "dizuo/train.h"

/* The optimizer's options: --lr, --beta1, --beta2, --eps, --weight-decay,
 * --clip, --schedule, into o. As dz_arg_ints (cli.h): 1 taken, 0 not one of
 * them, -1 a missing or bad value (message printed). */
int dz_arg_train_opts(const char *cmd, int argc, char **argv, int *i, dz_train_opts *o);
/* The loss over up to 64 rows of T tokens of val (in order), through
 * eval(trainer, inputs, targets, 1 row, &loss); in and tg hold T tokens.
 * Returns the rows used, or -1 after printing the error. */
int64_t dz_cli_val_loss(const char *cmd, dz_train_data *val, int32_t T, int32_t *in, int32_t *tg,
                        int (*eval)(void *trainer, const int32_t *in, const int32_t *tg, double *loss), void *trainer,
                        double *loss);
/* Keeps the run's optimizer settings and row order in s (for its
 * checkpoints); when s came from a checkpoint that has them, first warns on
 * stderr naming each one this command line changes. */
void dz_cli_keep_opts(const char *cmd, dz_train_state *s, const dz_train_opts *o, bool shuffle);
/* Training data from "a,b,c" (at most 64 files): dz_train_data_load. */
dz_status dz_cli_load_data(const char *list, const char *doc_sep, const dz_tokenizer *tok, int32_t n_vocab,
                           dz_train_data **out);
/* Makes losses (room for every step of the run; may be NULL) the run's
 * loss history: the resumed checkpoint's steps copied in (NaN when it kept
 * none), s->losses freed and pointed at it. Returns the first step (0-based)
 * the loss curve can show. */
int64_t dz_cli_take_history(dz_train_state *s, float *losses);
/* The loss curve beside an output: OUT.gguf -> OUT.loss.svg (a name
 * without .gguf gets .loss.svg appended). */
void dz_cli_svg_path(const char *out, char *buf, size_t cap);

#endif
