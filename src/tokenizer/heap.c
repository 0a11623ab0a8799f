/* The binary heap of candidate merges shared by the SPM and BPE loops. */
#include <stdlib.h>

#include "tokenizer/tok_impl.h"

static bool before(const tok_bigram *a, const tok_bigram *b) {
    if (a->priority != b->priority) return a->priority > b->priority;
    return a->left < b->left;
}

dz_status tok_heap_push(tok_heap *h, tok_bigram b) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        tok_bigram *items = cap <= SIZE_MAX / sizeof *items ? realloc(h->items, cap * sizeof *items) : NULL;
        if (!items) return dz_fail(DZ_ERR_NOMEM, "out of memory tokenizing");
        h->items = items;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&b, &h->items[parent])) break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = b;
    return DZ_OK;
}

tok_bigram tok_heap_pop(tok_heap *h) {
    tok_bigram top = h->items[0], last = h->items[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&h->items[c + 1], &h->items[c])) c++;
        if (!before(&h->items[c], &last)) break;
        h->items[i] = h->items[c];
        i = c;
    }
    if (n > 0) h->items[i] = last;
    return top;
}

void tok_heap_free(tok_heap *h) {
    free(h->items);
    h->items = NULL;
    h->n = h->cap = 0;
}
