/* dz_tokenize: special tokens cut out first, then each piece of plain text
 * through the vocabulary's algorithm (llama_vocab::impl::tokenize). */
#include <stdlib.h>

#include "tokenizer/tok_impl.h"

/* Keeps every internal offset and count within 32 bits (SPM escaping can
 * triple the text) with room to spare. */
#define MAX_TEXT ((size_t)INT32_MAX / 8)

dz_status dz_tokenize(const dz_tokenizer *t, const char *text, size_t len, bool add_bos,
                      bool parse_special, int32_t **ids, size_t *n_ids) {
    if (!t || (!text && len) || !ids || !n_ids) return dz_fail(DZ_ERR_ARG, "dz_tokenize: NULL argument");
    if (len > MAX_TEXT)
        return dz_fail(DZ_ERR_ARG, "text of %zu bytes is too long to tokenize at once (at most %zu)",
                       len, MAX_TEXT);
    tok_fragment *frags = NULL;
    size_t n_frags = 0;
    tok_ids out = {0};
    dz_status st = tok_partition(t, text, len, parse_special, &frags, &n_frags);
    if (st) return st;
    if (add_bos && t->bos >= 0) st = tok_ids_push(&out, t->bos);
    /* SentencePiece puts a space in front of text that starts the input or
     * follows a special token. */
    bool after_special = true;
    for (size_t i = 0; i < n_frags && !st; i++) {
        const tok_fragment *f = &frags[i];
        if (f->token >= 0) {
            st = tok_ids_push(&out, f->token);
            after_special = true;
        } else if (t->kind == TOK_SPM) {
            st = tok_spm_encode(t, text + f->off, f->len, t->add_space_prefix && after_special, &out);
            after_special = false;
        } else {
            st = tok_bpe_encode(t, text + f->off, f->len, &out);
        }
    }
    free(frags);
    if (!st && !out.v && !(out.v = malloc(sizeof *out.v)))
        st = dz_fail(DZ_ERR_NOMEM, "out of memory for token ids");
    if (st) {
        free(out.v);
        return st;
    }
    *ids = out.v;
    *n_ids = out.n;
    return DZ_OK;
}
