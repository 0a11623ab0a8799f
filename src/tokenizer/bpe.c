/* Byte-level BPE tokenization (tokenizer.ggml.model = "gpt2").
 *
 * The text (invalid UTF-8 replaced by U+FFFD) is cut into words by the
 * pre-tokenizer's regexes; each word starts as one symbol per byte (the token
 * of that byte's byte-to-unicode character), then the neighbouring pair with
 * the lowest merge rank merges, leftmost first, until no pair has a rule.
 * Merge rules only ever name tokens (checked at load), so every symbol carries
 * a token id and a rule lookup is one hash probe. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_impl.h"

typedef struct bpe_symbol {
    int32_t prev, next;
    int32_t id; /* token id, -1 for a byte whose character is no token */
    uint32_t n; /* bytes of the word; 0 once merged away */
} bpe_symbol;

typedef struct bpe_state {
    const dz_tokenizer *t;
    bpe_symbol *sym;
    tok_heap heap;
} bpe_state;

static dz_status try_bigram(bpe_state *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return DZ_OK;
    int32_t lid = s->sym[left].id, rid = s->sym[right].id;
    if (lid < 0 || rid < 0) return DZ_OK;
    const tok_merge *m = tok_merges_find(&s->t->merges, lid, rid);
    if (!m) return DZ_OK;
    return tok_heap_push(&s->heap, (tok_bigram){.priority = -(double)m->rank, .left = left,
                                                .right = right, .left_id = lid, .right_id = rid,
                                                .result = m->result});
}

/* A symbol that is no token: llama.cpp looks up each byte of its text (the
 * byte's character) as a one-byte token and keeps those it finds. */
static dz_status emit_fallback(const dz_tokenizer *t, uint8_t byte, tok_ids *out) {
    char ch[4];
    size_t n = tok_utf8_encode(tok_byte_cp[byte], ch);
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->raw_byte_token[(uint8_t)ch[i]];
        dz_status st;
        if (id >= 0 && (st = tok_ids_push(out, id))) return st;
    }
    return DZ_OK;
}

/* The word's byte-level text as a token, for ignore_merges vocabularies. */
static int32_t find_whole_word(const dz_tokenizer *t, const uint8_t *word, size_t n, char *scratch) {
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += tok_utf8_encode(tok_byte_cp[word[i]], scratch + len);
    return tok_find(t, scratch, len);
}

static dz_status encode_word(bpe_state *s, const uint8_t *word, size_t n, char *scratch,
                             tok_ids *out) {
    const dz_tokenizer *t = s->t;
    dz_status st = DZ_OK;
    if (t->ignore_merges) {
        int32_t id = find_whole_word(t, word, n, scratch);
        if (id >= 0) return tok_ids_push(out, id);
    }
    bpe_symbol *sym = s->sym;
    for (size_t i = 0; i < n; i++)
        sym[i] = (bpe_symbol){.prev = (int32_t)i - 1, .next = i + 1 == n ? -1 : (int32_t)i + 1,
                              .id = t->byte_token[word[i]], .n = 1};
    s->heap.n = 0;
    for (size_t i = 1; i < n && !st; i++) st = try_bigram(s, (int32_t)i - 1, (int32_t)i);
    while (s->heap.n > 0 && !st) {
        tok_bigram b = tok_heap_pop(&s->heap);
        bpe_symbol *l = &sym[b.left], *r = &sym[b.right];
        /* Stale: a side has merged since (its id changed or it is gone). */
        if (l->n == 0 || r->n == 0 || l->id != b.left_id || r->id != b.right_id || l->next != b.right)
            continue;
        l->id = b.result;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = b.left;
        if (!(st = try_bigram(s, l->prev, b.left))) st = try_bigram(s, b.left, l->next);
    }
    for (int32_t i = 0; i != -1 && !st; i = sym[i].next) {
        if (sym[i].id >= 0)
            st = tok_ids_push(out, sym[i].id);
        else /* only single bytes lack a token: merge results are tokens */
            st = emit_fallback(t, word[i], out);
    }
    return st;
}

dz_status tok_bpe_encode(const dz_tokenizer *t, const char *text, size_t len, tok_ids *out) {
    char *clean = NULL, *scratch = NULL;
    size_t clean_len, longest = 0;
    tok_words words = {0};
    bpe_state s = {.t = t};
    dz_status st = tok_utf8_sanitize(text, len, &clean, &clean_len);
    if (st) return st;
    if ((st = tok_pretok_split(t->regex, clean, clean_len, &words))) goto done;
    for (size_t w = 0; w < words.n; w++)
        if (words.len[w] > longest) longest = words.len[w];
    s.sym = malloc((longest + 1) * sizeof *s.sym);
    scratch = malloc(2 * longest + 1); /* a byte's character is at most 2 bytes */
    if (!s.sym || !scratch) {
        st = dz_fail(DZ_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
        goto done;
    }
    size_t off = 0;
    for (size_t w = 0; w < words.n && !st; off += words.len[w], w++)
        if (words.len[w] > 0)
            st = encode_word(&s, (const uint8_t *)clean + off, words.len[w], scratch, out);
done:
    free(clean);
    free(scratch);
    free(s.sym);
    tok_heap_free(&s.heap);
    tok_words_free(&words);
    return st;
}
