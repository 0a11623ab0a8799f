/* Tokenizer training internals shared by bpe_train.c (the trainer: input,
 * word counts, vocabulary, GGUF output) and bpe_merge.c (the merge loop). */
#ifndef DZ_BPE_TRAIN_H
#define DZ_BPE_TRAIN_H

#include "dizuo/tokenizer_train.h"
#include "tokenizer/tok_impl.h"

/* Words longer than this are counted as pieces of at most this many bytes
 * (cut at character boundaries): merging costs up to the square of a word's
 * length, and real words are far shorter. */
#define BPE_MAX_WORD 256

/* 64-bit FNV-1a with a final avalanche. */
static inline uint64_t bpe_hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* Distinct strings with an id each (ids 0, 1, ... in insertion order), kept
 * back to back in one buffer; open addressing, load factor at most 1/2. */
typedef struct bpe_strset {
    char *text;
    size_t text_n, text_cap;
    size_t *off; /* n + 1 offsets */
    size_t n, off_cap;
    uint32_t *slots; /* id + 1; 0 empty */
    size_t mask;
} bpe_strset;

static inline const char *bpe_strset_get(const bpe_strset *s, size_t id, size_t *len) {
    *len = s->off[id + 1] - s->off[id];
    return s->text + s->off[id];
}
/* The id of s[0..n), or -1. */
int64_t bpe_strset_find(const bpe_strset *set, const char *s, size_t n);
/* Adds s[0..n) (not present yet); its id is the previous set->n. */
dz_status bpe_strset_add(bpe_strset *set, const char *s, size_t n);
void bpe_strset_free(bpe_strset *set);

/* The learned merge rules, in order: pair (left, right) made token result. */
typedef struct bpe_rule {
    int32_t left, right, result;
} bpe_rule;

struct dz_bpe_trainer {
    dz_bpe_train_params params;
    bool trained, broken;
    struct tok_regex_set *regex; /* the "gpt-2" pre-tokenizer */
    uint64_t n_bytes;

    bpe_strset words;    /* distinct words (pieces of at most BPE_MAX_WORD bytes) */
    int64_t *word_count; /* occurrences of each word */
    size_t word_count_cap;

    /* After training: token texts (id order, the special token last) and rules. */
    bpe_strset vocab;
    bpe_rule *rules;
    size_t n_rules;
};

/* bpe_merge.c: learns the rules from tr->words into tr->vocab (which holds
 * the 256 byte tokens on entry) and tr->rules. */
dz_status bpe_learn_merges(dz_bpe_trainer *tr);

#endif /* DZ_BPE_TRAIN_H */
