/* tokenizer internals: the vocabulary tables shared by loading, the two
 * tokenization algorithms, the pre-tokenizer and detokenization.
 *
 * Behaviour follows llama.cpp's llama-vocab.cpp (the reference the test data
 * was produced with); where that code would crash or is undefined on bad
 * input, this one refuses at load or degrades safely (see load.c). */
#ifndef DZ_TOK_IMPL_H
#define DZ_TOK_IMPL_H

#include "dizuo/tokenizer.h"

/* Token attributes as bits (llama.cpp's llama_token_attr): the file's token
 * type becomes exactly one of the first six; LSTRIP/RSTRIP are added per
 * model. 0 is "undefined" (a type value outside 1..6). */
enum {
    TOK_ATTR_NORMAL = 1 << 0,
    TOK_ATTR_UNKNOWN = 1 << 1,
    TOK_ATTR_CONTROL = 1 << 2,
    TOK_ATTR_USER_DEFINED = 1 << 3,
    TOK_ATTR_UNUSED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,
    TOK_ATTR_LSTRIP = 1 << 6, /* strip whitespace left of the token when partitioning */
    TOK_ATTR_RSTRIP = 1 << 7, /* ... and right of it */
};
#define TOK_ATTR_SPECIAL (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL)

typedef enum tok_kind { TOK_SPM, TOK_BPE } tok_kind;

/* Open-addressing set of token ids keyed by token text (slot = id + 1, 0 empty). */
typedef struct tok_textmap {
    uint32_t *slots;
    size_t mask;
} tok_textmap;

/* One BPE merge rule: the pair (left, right) of token ids becomes `result`;
 * lower rank merges first. Open addressing on the pair. */
typedef struct tok_merge {
    uint64_t pair; /* left << 32 | right; UINT64_MAX: empty slot */
    int32_t rank;
    int32_t result;
} tok_merge;

typedef struct tok_mergemap {
    tok_merge *slots;
    size_t mask;
    size_t n;
} tok_mergemap;

struct dz_pretok; /* pretok.c */

struct dz_tokenizer {
    tok_kind kind;
    char model_name[8]; /* "llama" or "gpt2" */
    const char *pre_name;

    int32_t n_vocab;
    char *text;       /* all token texts, back to back (token i: text + text_off[i]) */
    size_t *text_off; /* n_vocab + 1 offsets */
    float *score;     /* SPM merge priority (0 when the file has none) */
    uint8_t *type;    /* DZ_TOKEN_* after llama.cpp's overrides, 0 undefined */
    uint8_t *attr;    /* TOK_ATTR_* bits */
    uint8_t *eog;     /* 1: ends generation */
    tok_textmap map;  /* text -> id over the whole vocabulary */
    tok_mergemap merges;

    /* SPM: byte b's fallback token ("<0xHH>", else the 1-byte text; -1 none).
     * BPE: the token whose text is byte b's byte-to-unicode character. */
    int32_t byte_token[256];
    /* BPE: the token whose text is exactly the single byte b (-1 none);
     * what llama.cpp falls back to for a piece that is no token. */
    int32_t raw_byte_token[256];

    int32_t bos, eos, eot, eom, unk, sep, pad, mask;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    bool add_bos, add_eos, add_space_prefix, ignore_merges;

    /* Tokens that are cut out of the text before tokenization (control,
     * user-defined, unknown), longest text first. */
    int32_t *special;
    size_t n_special;

    /* token_to_piece(id, render_special = true) of every token. */
    char *piece;
    size_t *piece_off; /* n_vocab + 1 */

    const struct dz_pretok *pre;  /* BPE only */
    struct tok_regex_set *regex; /* BPE only: pre's compiled regexes */
};

/* ---- vocab.c: token table and lookups ---- */

static inline const char *tok_text(const dz_tokenizer *t, int32_t id, size_t *len) {
    *len = t->text_off[id + 1] - t->text_off[id];
    return t->text + t->text_off[id];
}
/* The id whose text is exactly s[0..n), or -1. */
int32_t tok_find(const dz_tokenizer *t, const char *s, size_t n);
/* Builds t->map over t->text; DZ_ERR_FORMAT naming a duplicated token. */
dz_status tok_map_build(dz_tokenizer *t);
/* Merge table: capacity for n rules; insert keeps the first rule of a pair. */
dz_status tok_merges_init(tok_mergemap *m, size_t n);
void tok_merges_insert(tok_mergemap *m, int32_t left, int32_t right, int32_t rank, int32_t result);
const tok_merge *tok_merges_find(const tok_mergemap *m, int32_t left, int32_t right);
void tok_merges_free(tok_mergemap *m);

/* ---- utf8.c ---- */

/* Length of the UTF-8 sequence a lead byte announces, as llama.cpp counts it
 * (continuation and invalid bytes count 1). */
static inline size_t tok_utf8_len(uint8_t lead) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[lead >> 4];
}
/* Decodes one strictly valid UTF-8 sequence at s[0..n) (n >= 1): returns its
 * length and sets *cp, or returns 0 for an invalid or truncated sequence. */
size_t tok_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
/* Writes cp (<= 0x10FFFF) as UTF-8 to out (4 bytes room); returns the length. */
size_t tok_utf8_encode(uint32_t cp, char *out);
/* Copies text into a malloc'd valid UTF-8 string, each byte that does not
 * start a valid sequence replaced by U+FFFD (llama.cpp's decoding, made strict
 * about overlong forms, surrogates and code points past U+10FFFF). */
dz_status tok_utf8_sanitize(const char *text, size_t len, char **out, size_t *out_len);

/* Value of a hexadecimal digit, -1 for any other character. */
static inline int tok_hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* GPT-2's byte-to-unicode table: byte b stands for code point tok_byte_cp[b]. */
extern const uint16_t tok_byte_cp[256];
/* The byte code point cp stands for, or -1 if cp is none of the 256. */
int tok_cp_byte(uint32_t cp);

/* ---- pretok.c: BPE pre-tokenizers (tokenizer.ggml.pre) ---- */

typedef struct dz_pretok dz_pretok;
/* Finds the pre-tokenizer called name[0..len) (NULL: "default"); NULL if unknown. */
const dz_pretok *tok_pretok_find(const char *name, size_t len);
const char *tok_pretok_name(const dz_pretok *p);
/* Applies the flags llama.cpp ties to a pre-tokenizer (add_bos, ...). */
void tok_pretok_defaults(const dz_pretok *p, dz_tokenizer *t);

/* A pre-tokenizer's compiled regexes; shared read-only by every thread. */
struct tok_regex_set;
dz_status tok_regex_compile(const dz_pretok *p, struct tok_regex_set **out);
void tok_regex_free(struct tok_regex_set *rs); /* NULL is a no-op */

/* Word boundaries of valid UTF-8 text: a list of byte lengths. */
typedef struct tok_words {
    size_t *len;
    size_t n, cap;
} tok_words;
/* Splits text into words; out->len is malloc'd (tok_words_free). */
dz_status tok_pretok_split(const struct tok_regex_set *rs, const char *text, size_t len,
                           tok_words *out);
void tok_words_free(tok_words *w);

/* ---- output id lists ---- */

typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids;
dz_status tok_ids_push(tok_ids *ids, int32_t id);

/* ---- spm.c / bpe.c: one fragment of raw text (no special tokens inside) ---- */

/* A candidate merge of two neighbouring symbols, for both merge loops: SPM
 * ranks by score (priority = score), BPE by merge rank (priority = -rank).
 * Higher priority pops first; ties go to the leftmost pair. */
typedef struct tok_bigram {
    double priority;
    int32_t left, right;              /* symbol indexes */
    uint32_t size;                    /* SPM: bytes of left + right when made */
    int32_t left_id, right_id, result; /* BPE: the token ids of the rule */
} tok_bigram;

typedef struct tok_heap {
    tok_bigram *items;
    size_t n, cap;
} tok_heap;

dz_status tok_heap_push(tok_heap *h, tok_bigram b); /* DZ_ERR_NOMEM when it cannot grow */
tok_bigram tok_heap_pop(tok_heap *h);               /* h->n > 0 */
void tok_heap_free(tok_heap *h);

dz_status tok_spm_encode(const dz_tokenizer *t, const char *text, size_t len, bool prefix_space,
                         tok_ids *out);
dz_status tok_bpe_encode(const dz_tokenizer *t, const char *text, size_t len, tok_ids *out);

/* ---- special.c ---- */

/* Finds special tokens by text (EOT, EOM, FIM) where the file gives no id,
 * marks end-of-generation tokens, sets per-model strip attributes and builds
 * the partition list, as llama.cpp's vocab loading does. */
dz_status tok_specials_setup(dz_tokenizer *t, const char *general_name, size_t name_len,
                             const char *pre, size_t pre_len);

/* A piece of the input: raw text [off, off+len) or one special token. */
typedef struct tok_fragment {
    int32_t token; /* -1: raw text */
    size_t off, len;
} tok_fragment;
/* Splits text at the special tokens it contains (control and unknown ones
 * only when parse_special; user-defined always). *frags is malloc'd. */
dz_status tok_partition(const dz_tokenizer *t, const char *text, size_t len, bool parse_special,
                        tok_fragment **frags, size_t *n_frags);

/* ---- detok.c ---- */

/* Builds the piece cache (after attributes are final). */
dz_status tok_pieces_build(dz_tokenizer *t);

#endif /* DZ_TOK_IMPL_H */
