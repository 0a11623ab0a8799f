/* The token table's lookups: text -> id and (left, right) -> merge rule, both
 * open-addressing hash tables sized at load (load factor at most 1/2), so a
 * 150k-token vocabulary loads in milliseconds and every lookup is O(1). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_impl.h"

/* FNV-1a with a final avalanche (token texts are short). */
static uint64_t hash_bytes(const char *s, size_t n) {
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

static uint64_t hash_pair(uint64_t pair) {
    pair ^= pair >> 33;
    pair *= 0xff51afd7ed558ccdull;
    pair ^= pair >> 33;
    pair *= 0xc4ceb9fe1a85ec53ull;
    pair ^= pair >> 33;
    return pair;
}

/* Smallest power of two >= 2n (and >= 16); 0 on overflow. */
static size_t table_capacity(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) {
        if (cap > SIZE_MAX / 4) return 0;
        cap *= 2;
    }
    return cap;
}

int32_t tok_find(const dz_tokenizer *t, const char *s, size_t n) {
    size_t i = (size_t)hash_bytes(s, n) & t->map.mask;
    for (;;) {
        uint32_t slot = t->map.slots[i];
        if (slot == 0) return -1;
        int32_t id = (int32_t)(slot - 1);
        size_t len;
        const char *text = tok_text(t, id, &len);
        if (len == n && memcmp(text, s, n) == 0) return id;
        i = (i + 1) & t->map.mask;
    }
}

dz_status tok_map_build(dz_tokenizer *t) {
    size_t cap = table_capacity((size_t)t->n_vocab);
    uint32_t *slots = cap ? calloc(cap, sizeof *slots) : NULL;
    if (!slots) return dz_fail(DZ_ERR_NOMEM, "out of memory for the token table");
    t->map.slots = slots;
    t->map.mask = cap - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        size_t len;
        const char *text = tok_text(t, id, &len);
        size_t i = (size_t)hash_bytes(text, len) & t->map.mask;
        while (slots[i] != 0) {
            size_t other_len;
            const char *other = tok_text(t, (int32_t)(slots[i] - 1), &other_len);
            if (other_len == len && memcmp(other, text, len) == 0)
                return dz_fail(DZ_ERR_FORMAT,
                               "tokenizer.ggml.tokens: tokens %u and %d have the same text '%.*s'",
                               slots[i] - 1, id, (int)(len > 64 ? 64 : len), text);
            i = (i + 1) & t->map.mask;
        }
        slots[i] = (uint32_t)id + 1;
    }
    return DZ_OK;
}

dz_status tok_merges_init(tok_mergemap *m, size_t n) {
    size_t cap = table_capacity(n);
    tok_merge *slots = cap && cap <= SIZE_MAX / sizeof *slots ? malloc(cap * sizeof *slots) : NULL;
    if (!slots) return dz_fail(DZ_ERR_NOMEM, "out of memory for %zu merges", n);
    for (size_t i = 0; i < cap; i++) slots[i].pair = UINT64_MAX;
    m->slots = slots;
    m->mask = cap - 1;
    m->n = 0;
    return DZ_OK;
}

void tok_merges_insert(tok_mergemap *m, int32_t left, int32_t right, int32_t rank, int32_t result) {
    uint64_t pair = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t i = (size_t)hash_pair(pair) & m->mask;
    while (m->slots[i].pair != UINT64_MAX) {
        if (m->slots[i].pair == pair) return; /* the first rule of a pair wins, as in llama.cpp */
        i = (i + 1) & m->mask;
    }
    m->slots[i] = (tok_merge){.pair = pair, .rank = rank, .result = result};
    m->n++;
}

const tok_merge *tok_merges_find(const tok_mergemap *m, int32_t left, int32_t right) {
    if (!m->slots) return NULL;
    uint64_t pair = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t i = (size_t)hash_pair(pair) & m->mask;
    for (;;) {
        const tok_merge *slot = &m->slots[i];
        if (slot->pair == pair) return slot;
        if (slot->pair == UINT64_MAX) return NULL;
        i = (i + 1) & m->mask;
    }
}

void tok_merges_free(tok_mergemap *m) {
    free(m->slots);
    m->slots = NULL;
}

dz_status tok_ids_push(tok_ids *ids, int32_t id) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *v = cap <= SIZE_MAX / sizeof *v ? realloc(ids->v, cap * sizeof *v) : NULL;
        if (!v) return dz_fail(DZ_ERR_NOMEM, "out of memory for %zu token ids", cap);
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return DZ_OK;
}
