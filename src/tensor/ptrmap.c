/* A pointer -> int32 hash map with open addressing (linear probing). */
#include <stdlib.h>

#include "tensor/tensor_impl.h"

static size_t slot_of(const void *key, size_t cap) {
    uint64_t h = (uint64_t)(uintptr_t)key;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (size_t)h & (cap - 1);
}

dz_status dz_ptrmap_init(dz_ptrmap *m, size_t expected) {
    size_t cap = 16;
    while (cap < 2 * expected + 1) cap *= 2;
    m->keys = calloc(cap, sizeof *m->keys);
    m->values = malloc(cap * sizeof *m->values);
    m->cap = cap;
    m->count = 0;
    if (!m->keys || !m->values) {
        dz_ptrmap_free(m);
        return dz_fail(DZ_ERR_NOMEM, "out of memory for a tensor map of %zu entries", expected);
    }
    return DZ_OK;
}

void dz_ptrmap_free(dz_ptrmap *m) {
    free(m->keys);
    free(m->values);
    m->keys = NULL;
    m->values = NULL;
    m->cap = m->count = 0;
}

int32_t dz_ptrmap_get(const dz_ptrmap *m, const void *key) {
    if (!m->cap) return -1;
    for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (!m->keys[i]) return -1;
        if (m->keys[i] == key) return m->values[i];
    }
}

static void insert(dz_ptrmap *m, const void *key, int32_t value) {
    size_t i = slot_of(key, m->cap);
    while (m->keys[i] && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
    if (!m->keys[i]) m->count++;
    m->keys[i] = key;
    m->values[i] = value;
}

dz_status dz_ptrmap_put(dz_ptrmap *m, const void *key, int32_t value) {
    if (2 * (m->count + 1) > m->cap) {
        dz_ptrmap bigger;
        dz_status st = dz_ptrmap_init(&bigger, m->count + 1);
        if (st) return st;
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) insert(&bigger, m->keys[i], m->values[i]);
        dz_ptrmap_free(m);
        *m = bigger;
    }
    insert(m, key, value);
    return DZ_OK;
}
