/* dizuo — tokenizer: text <-> token ids for the vocabularies GGUF files carry.
 *
 * Models: SentencePiece-style ("llama": score-driven merges, byte fallback)
 * and byte-level BPE ("gpt2": ranked merges after a regex pre-tokenizer chosen
 * by tokenizer.ggml.pre). A tokenizer is immutable after load and may be used
 * from several threads at once. */
#ifndef DIZUO_TOKENIZER_H
#define DIZUO_TOKENIZER_H

#include "dizuo/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dz_tokenizer dz_tokenizer;

/* Token attributes (tokenizer.ggml.token_type values). */
enum {
    DZ_TOKEN_NORMAL = 1,
    DZ_TOKEN_UNKNOWN = 2,
    DZ_TOKEN_CONTROL = 3,
    DZ_TOKEN_USER_DEFINED = 4,
    DZ_TOKEN_UNUSED = 5,
    DZ_TOKEN_BYTE = 6,
};

/* Builds a tokenizer from a GGUF file's tokenizer.* keys. Validates the
 * vocabulary (array types and lengths, special ids inside the vocabulary,
 * byte tokens, merges) and fails with DZ_ERR_FORMAT naming the defect, or
 * DZ_ERR_UNSUPPORTED for an unknown tokenizer.ggml.model / .pre. The
 * tokenizer copies what it needs: g may be closed afterwards. Caller owns *out. */
dz_status dz_tokenizer_load(const dz_gguf *g, dz_tokenizer **out);
void dz_tokenizer_free(dz_tokenizer *t); /* NULL is a no-op */

int32_t dz_tokenizer_n_vocab(const dz_tokenizer *t);
const char *dz_tokenizer_model_name(const dz_tokenizer *t); /* "llama", "gpt2" */
const char *dz_tokenizer_pre_name(const dz_tokenizer *t);   /* "default", "deepseek-coder", ... */
int32_t dz_tokenizer_bos(const dz_tokenizer *t); /* -1 if none */
int32_t dz_tokenizer_eos(const dz_tokenizer *t); /* -1 if none */
bool dz_tokenizer_add_bos_default(const dz_tokenizer *t); /* tokenizer.ggml.add_bos_token or model default */
/* End of generation: eos, eot, eom and other end tokens of the vocabulary. */
bool dz_tokenizer_is_eog(const dz_tokenizer *t, int32_t id);
int32_t dz_tokenizer_token_type(const dz_tokenizer *t, int32_t id);

/* Tokenizes len bytes of text (any bytes; invalid UTF-8 is handled as the
 * reference tokenizers do). add_bos prepends BOS when the vocabulary has one;
 * parse_special recognises control/user-defined token texts in the input.
 * *ids is malloc'd and owned by the caller. */
dz_status dz_tokenize(const dz_tokenizer *t, const char *text, size_t len, bool add_bos,
                      bool parse_special, int32_t **ids, size_t *n_ids);

/* The bytes a token stands for in output text (SentencePiece's U+2581 as
 * space, byte tokens as their byte, byte-level BPE mapped back to bytes).
 * Control tokens give "" unless render_special. Writes at most cap bytes to
 * buf and sets *n to the full length (so a too-small buffer can be detected).
 * DZ_ERR_ARG for an id outside the vocabulary. */
dz_status dz_token_to_piece(const dz_tokenizer *t, int32_t id, bool render_special, char *buf,
                            size_t cap, size_t *n);

/* Streaming detokenizer: turns tokens into text a terminal can print as it
 * comes, holding back an incomplete UTF-8 sequence until its last byte. */
typedef struct dz_detok dz_detok;
dz_status dz_detok_create(const dz_tokenizer *t, bool render_special, dz_detok **out);
void dz_detok_free(dz_detok *d); /* NULL is a no-op */
/* Adds a token; *text and *n give the bytes now complete (valid until the next call). */
dz_status dz_detok_push(dz_detok *d, int32_t id, const char **text, size_t *n);
/* Whatever is held back (an incomplete sequence at the end), as is. */
dz_status dz_detok_flush(dz_detok *d, const char **text, size_t *n);

#ifdef __cplusplus
}
#endif
#endif /* DIZUO_TOKENIZER_H */
