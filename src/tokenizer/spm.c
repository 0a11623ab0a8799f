/* SentencePiece-style tokenization (tokenizer.ggml.model = "llama").
 *
 * Spaces become U+2581 ("▁"), optionally with one in front; the text starts as
 * one symbol per UTF-8 character; then, best score first, two neighbouring
 * symbols whose concatenation is a token merge into it, until no neighbours
 * form a token. Symbols that are not tokens at the end come out as byte
 * tokens (<0xHH>). A binary heap makes this O(n log n). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_impl.h"

typedef struct spm_symbol {
    int32_t prev, next; /* neighbours in the chain; -1 at the ends */
    uint32_t off, n;    /* bytes of the escaped text; n = 0 once merged away */
} spm_symbol;

typedef struct spm_state {
    const dz_tokenizer *t;
    const char *text; /* escaped */
    spm_symbol *sym;
    tok_heap heap; /* higher score first, then the leftmost (llama.cpp's order) */
} spm_state;

static dz_status try_bigram(spm_state *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return DZ_OK;
    const spm_symbol *l = &s->sym[left], *r = &s->sym[right];
    int32_t id = tok_find(s->t, s->text + l->off, (size_t)l->n + r->n);
    if (id < 0) return DZ_OK;
    return tok_heap_push(&s->heap, (tok_bigram){.priority = s->t->score[id], .left = left,
                                                .right = right, .size = l->n + r->n});
}

/* Emits one final symbol: its token, or its bytes as byte tokens. */
static dz_status emit_symbol(const spm_state *s, const spm_symbol *sym, tok_ids *out) {
    const dz_tokenizer *t = s->t;
    int32_t id = tok_find(t, s->text + sym->off, sym->n);
    if (id >= 0) return tok_ids_push(out, id);
    for (uint32_t i = 0; i < sym->n; i++) {
        /* llama.cpp throws when a vocabulary lacks the byte; the unknown
         * token (if any) stands in for it here, or the byte is dropped. */
        int32_t b = t->byte_token[(uint8_t)s->text[sym->off + i]];
        if (b < 0) b = t->unk;
        if (b >= 0) {
            dz_status st = tok_ids_push(out, b);
            if (st) return st;
        }
    }
    return DZ_OK;
}

dz_status tok_spm_encode(const dz_tokenizer *t, const char *text, size_t len, bool prefix_space,
                         tok_ids *out) {
    static const char space[3] = {'\xE2', '\x96', '\x81'}; /* U+2581 */
    /* The caller keeps len far below 2^32 / 3: offsets fit 32 bits. */
    spm_state s = {.t = t};
    char *esc = malloc(3 * len + 3);
    dz_status st = DZ_OK;
    if (!esc) return dz_fail(DZ_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);

    /* Escape: every ' ' (and the optional prefix) becomes U+2581. */
    size_t n = 0;
    if (prefix_space) memcpy(esc, space, 3), n = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(esc + n, space, 3);
            n += 3;
        } else {
            esc[n++] = text[i];
        }
    }
    s.text = esc;

    /* One symbol per UTF-8 character (as llama.cpp counts: by the lead byte). */
    int32_t n_sym = 0;
    for (size_t off = 0; off < n; off += tok_utf8_len((uint8_t)esc[off])) n_sym++;
    if (n_sym == 0) goto done;
    s.sym = malloc((size_t)n_sym * sizeof *s.sym);
    if (!s.sym) {
        st = dz_fail(DZ_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
        goto done;
    }
    int32_t k = 0;
    for (size_t off = 0; off < n; k++) {
        size_t clen = tok_utf8_len((uint8_t)esc[off]);
        if (clen > n - off) clen = n - off;
        s.sym[k] = (spm_symbol){.prev = k - 1, .next = off + clen == n ? -1 : k + 1,
                                .off = (uint32_t)off, .n = (uint32_t)clen};
        off += clen;
    }

    for (int32_t i = 1; i < n_sym && !st; i++) st = try_bigram(&s, i - 1, i);
    while (s.heap.n > 0 && !st) {
        tok_bigram b = tok_heap_pop(&s.heap);
        spm_symbol *l = &s.sym[b.left], *r = &s.sym[b.right];
        /* Stale: one side has merged with something else since. */
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s.sym[r->next].prev = b.left;
        if (!(st = try_bigram(&s, l->prev, b.left))) st = try_bigram(&s, b.left, l->next);
    }
    for (int32_t i = 0; i != -1 && !st; i = s.sym[i].next) st = emit_symbol(&s, &s.sym[i], out);
done:
    free(esc);
    free(s.sym);
    tok_heap_free(&s.heap);
    return st;
}
