/* dizuo — tokenizer training: learns a byte-level BPE vocabulary from text
 * and writes it as a vocab-only GGUF that dz_tokenizer_load and llama.cpp
 * read (tokenizer.ggml.model "gpt2", tokenizer.ggml.pre "gpt-2").
 *
 * The vocabulary: ids 0..255 are the bytes (token i is byte i written as
 * GPT-2's byte-to-unicode character), then one token per learned merge in
 * the order learned, then <|endoftext|> (a control token, the BOS, EOS and
 * EOT). Text is cut into words by GPT-2's pre-tokenizer regex exactly as the
 * tokenizer cuts it; literal "<|endoftext|>" in the text separates documents
 * and is not counted. Each step merges the pair of neighbouring tokens that
 * occurs most often (counted over all words, weighted by word frequency);
 * ties go to the pair with the smaller (left id, right id). The result is a
 * function of the text alone: the same input gives a byte-identical file. */
#ifndef DIZUO_TOKENIZER_TRAIN_H
#define DIZUO_TOKENIZER_TRAIN_H

#include "dizuo/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The smallest vocabulary: 256 bytes and the special token. */
#define DZ_BPE_MIN_VOCAB 257
/* The largest vocabulary (llama.cpp and dizuo handle more; this keeps token
 * ids well inside 32 bits and the trainer's memory bounded). */
#define DZ_BPE_MAX_VOCAB 1048576
/* The special token's text. */
#define DZ_BPE_EOT_TEXT "<|endoftext|>"

/* A progress report, given to the callback at each phase change and about
 * every 1% of the merges. */
typedef struct dz_bpe_progress {
    const char *phase;    /* "merging" or "done" */
    int32_t n_vocab;      /* tokens so far, special token included */
    int32_t target_vocab; /* the vocab_size asked for */
    int64_t last_count;   /* occurrences of the pair merged last (0 before the first) */
} dz_bpe_progress;

typedef struct dz_bpe_train_params {
    int32_t vocab_size;    /* DZ_BPE_MIN_VOCAB .. DZ_BPE_MAX_VOCAB, special token included */
    int64_t min_frequency; /* pairs seen fewer times are not merged (>= 1; 0 means 2) */
    /* Optional progress callback (called on the training thread). */
    void (*progress)(void *user, const dz_bpe_progress *p);
    void *user;
} dz_bpe_train_params;

typedef struct dz_bpe_trainer dz_bpe_trainer;

/* Creates a trainer. DZ_ERR_ARG for a vocab_size outside
 * DZ_BPE_MIN_VOCAB..DZ_BPE_MAX_VOCAB or a negative min_frequency. The caller
 * owns *out (dz_bpe_trainer_destroy). A trainer is used by one thread at a
 * time. */
dz_status dz_bpe_trainer_create(const dz_bpe_train_params *params, dz_bpe_trainer **out);
void dz_bpe_trainer_destroy(dz_bpe_trainer *tr); /* NULL is a no-op */

/* Adds len bytes of text to the counts. `source` names the text in error
 * messages (a file name; NULL: "text"). The text must be valid UTF-8:
 * DZ_ERR_FORMAT "<source>: invalid UTF-8 at byte offset N" otherwise, and
 * nothing is counted. DZ_ERR_ARG after dz_bpe_trainer_train. DZ_ERR_NOMEM
 * may leave part of the text counted: the trainer then refuses every
 * further call. The text is not kept. */
dz_status dz_bpe_trainer_feed(dz_bpe_trainer *tr, const char *text, size_t len,
                              const char *source);

/* Learns the merges from everything fed. DZ_ERR_FORMAT when nothing (no
 * word) was fed. Stops early, with a smaller vocabulary, when no pair occurs
 * min_frequency times any more (see dz_bpe_trainer_n_vocab). Runs once. */
dz_status dz_bpe_trainer_train(dz_bpe_trainer *tr);

/* Bytes fed, distinct words seen, and (after training) the vocabulary size
 * (special token included) and the number of merges. */
uint64_t dz_bpe_trainer_n_bytes(const dz_bpe_trainer *tr);
uint64_t dz_bpe_trainer_n_words(const dz_bpe_trainer *tr);
int32_t dz_bpe_trainer_n_vocab(const dz_bpe_trainer *tr);
int32_t dz_bpe_trainer_n_merges(const dz_bpe_trainer *tr);

/* Sets the tokenizer.ggml.* keys of the trained vocabulary on w (model,
 * pre, tokens, token_type, merges, bos/eos/eot ids, add_bos_token false).
 * DZ_ERR_ARG before training. Nothing else of w changes. */
dz_status dz_bpe_trainer_to_gguf(const dz_bpe_trainer *tr, dz_gguf_writer *w);

/* Writes a vocab-only GGUF: general.architecture "gpt2", general.name
 * `name` (NULL: "dizuo-bpe"), the keys above and no tensors. The file is
 * replaced atomically (DZ_ERR_IO names path). */
dz_status dz_bpe_trainer_save(const dz_bpe_trainer *tr, const char *name, const char *path);

#ifdef __cplusplus
}
#endif
#endif /* DIZUO_TOKENIZER_TRAIN_H */
