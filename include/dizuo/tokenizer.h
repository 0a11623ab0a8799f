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
 * tokenizer copies what it needs: g may be closed afterwards. Caller owns *out.
 * Behaviour matches llama.cpp's vocabulary loading, with these choices:
 *  - a special-token id of -1 or 0xFFFFFFFF means "none" (llama.cpp keeps its
 *    model default there); any other id outside the vocabulary is an error;
 *  - a gpt2 vocabulary without tokenizer.ggml.pre uses "default" and logs a
 *    warning (as llama.cpp); an unknown .pre is DZ_ERR_UNSUPPORTED;
 *  - every merge's two parts and their concatenation must be tokens;
 *  - duplicate token texts are refused (llama.cpp asserts). */
dz_status dz_tokenizer_load(const dz_gguf *g, dz_tokenizer **out);
void dz_tokenizer_free(dz_tokenizer *t); /* NULL is a no-op */

int32_t dz_tokenizer_n_vocab(const dz_tokenizer *t);
const char *dz_tokenizer_model_name(const dz_tokenizer *t); /* "llama", "gpt2" */
const char *dz_tokenizer_pre_name(const dz_tokenizer *t);   /* "default", "deepseek-coder", ... */
int32_t dz_tokenizer_bos(const dz_tokenizer *t); /* -1 if none */
int32_t dz_tokenizer_eos(const dz_tokenizer *t); /* -1 if none */
int32_t dz_tokenizer_eot(const dz_tokenizer *t); /* end of turn; -1 if none */
int32_t dz_tokenizer_unk(const dz_tokenizer *t); /* -1 if none */
int32_t dz_tokenizer_pad(const dz_tokenizer *t); /* -1 if none */
/* tokenizer.ggml.add_bos_token or the model default (false when there is no BOS). */
bool dz_tokenizer_add_bos_default(const dz_tokenizer *t);
/* tokenizer.ggml.add_eos_token (false unless the file asks; dz_tokenize never adds EOS). */
bool dz_tokenizer_add_eos_default(const dz_tokenizer *t);
/* End of generation: eos, eot, eom and other end tokens of the vocabulary. */
bool dz_tokenizer_is_eog(const dz_tokenizer *t, int32_t id);
/* DZ_TOKEN_* of a token (after llama.cpp's overrides: control-looking end
 * tokens count as control); 0 for an undefined type or an id outside. */
int32_t dz_tokenizer_token_type(const dz_tokenizer *t, int32_t id);
/* A token's text as stored in the vocabulary (not NUL-terminated; *len set),
 * valid while t lives; NULL for an id outside the vocabulary. */
const char *dz_tokenizer_token_text(const dz_tokenizer *t, int32_t id, size_t *len);
/* The id of the token whose text is exactly text[0..len), or -1. */
int32_t dz_tokenizer_find(const dz_tokenizer *t, const char *text, size_t len);

/* Tokenizes len bytes of text (any bytes; invalid UTF-8 is handled as the
 * reference tokenizers do: SentencePiece vocabularies fall back to byte
 * tokens, byte-level BPE reads each byte that starts no valid UTF-8 sequence
 * as U+FFFD). add_bos prepends BOS when the vocabulary has one.
 * User-defined tokens are always recognised in the text (as llama.cpp and
 * Hugging Face do); parse_special also recognises control (and unknown)
 * token texts. *ids is malloc'd (never NULL on success, even for 0 ids) and
 * owned by the caller. DZ_ERR_ARG for text over 256 MiB. Thread-safe. */
dz_status dz_tokenize(const dz_tokenizer *t, const char *text, size_t len, bool add_bos,
                      bool parse_special, int32_t **ids, size_t *n_ids);

/* The bytes a token stands for in output text (SentencePiece's U+2581 as
 * space, byte tokens as their byte, byte-level BPE mapped back to bytes).
 * Control tokens give "" unless render_special. Writes at most cap bytes to
 * buf and sets *n to the full length (so a too-small buffer can be detected).
 * DZ_ERR_ARG for an id outside the vocabulary. */
dz_status dz_token_to_piece(const dz_tokenizer *t, int32_t id, bool render_special, char *buf,
                            size_t cap, size_t *n);

/* The text of a token sequence: pieces concatenated (as dz_token_to_piece),
 * minus the one leading space a SentencePiece vocabulary puts in front of
 * the text (llama.cpp's llama_detokenize without special-token removal and
 * without clean-up of spaces). *text is malloc'd and NUL-terminated, *len its
 * length. DZ_ERR_ARG for an id outside the vocabulary. Thread-safe. */
dz_status dz_detokenize(const dz_tokenizer *t, const int32_t *ids, size_t n_ids,
                        bool render_special, char **text, size_t *len);

/* Streaming detokenizer: turns tokens into text a terminal can print as it
 * comes, holding back an incomplete UTF-8 sequence until its last byte.
 * Pieces are not stripped of leading spaces. One per stream; not
 * thread-safe (the tokenizer may be shared). */
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
