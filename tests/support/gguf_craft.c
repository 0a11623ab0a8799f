/* Raw GGUF byte builder for tests (see gguf_craft.h). */
#include "gguf_craft.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gguf_craft_init(gguf_craft *c) { memset(c, 0, sizeof *c); }

void gguf_craft_free(gguf_craft *c) {
    free(c->p);
    memset(c, 0, sizeof *c);
}

void gguf_craft_bytes(gguf_craft *c, const void *data, size_t n) {
    if (c->n + n > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (cap < c->n + n) cap *= 2;
        uint8_t *p = realloc(c->p, cap);
        if (!p) {
            fprintf(stderr, "gguf_craft: out of memory\n");
            exit(1);
        }
        c->p = p;
        c->cap = cap;
    }
    if (n) memcpy(c->p + c->n, data, n);
    c->n += n;
}

void gguf_craft_u8(gguf_craft *c, uint8_t v) { gguf_craft_bytes(c, &v, 1); }
void gguf_craft_u16(gguf_craft *c, uint16_t v) { gguf_craft_bytes(c, &v, 2); }
void gguf_craft_u32(gguf_craft *c, uint32_t v) { gguf_craft_bytes(c, &v, 4); }
void gguf_craft_u64(gguf_craft *c, uint64_t v) { gguf_craft_bytes(c, &v, 8); }
void gguf_craft_f32(gguf_craft *c, float v) { gguf_craft_bytes(c, &v, 4); }
void gguf_craft_f64(gguf_craft *c, double v) { gguf_craft_bytes(c, &v, 8); }

void gguf_craft_str(gguf_craft *c, const char *s) {
    size_t n = strlen(s);
    gguf_craft_u64(c, n);
    gguf_craft_bytes(c, s, n);
}

void gguf_craft_pad(gguf_craft *c, size_t alignment) {
    while (c->n % alignment) gguf_craft_u8(c, 0);
}

void gguf_craft_patch_u32(gguf_craft *c, size_t pos, uint32_t v) {
    if (pos + 4 <= c->n) memcpy(c->p + pos, &v, 4);
}

void gguf_craft_patch_u64(gguf_craft *c, size_t pos, uint64_t v) {
    if (pos + 8 <= c->n) memcpy(c->p + pos, &v, 8);
}

void gguf_craft_header(gguf_craft *c, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    gguf_craft_bytes(c, "GGUF", 4);
    gguf_craft_u32(c, version);
    gguf_craft_u64(c, n_tensors);
    gguf_craft_u64(c, n_kv);
}

void gguf_craft_key(gguf_craft *c, const char *key, uint32_t type) {
    gguf_craft_str(c, key);
    gguf_craft_u32(c, type);
}

void gguf_craft_kv_u32(gguf_craft *c, const char *key, uint32_t v) {
    gguf_craft_key(c, key, 4 /* UINT32 */);
    gguf_craft_u32(c, v);
}

void gguf_craft_kv_str(gguf_craft *c, const char *key, const char *s) {
    gguf_craft_key(c, key, 8 /* STRING */);
    gguf_craft_str(c, s);
}

void gguf_craft_array(gguf_craft *c, uint32_t elem_type, uint64_t n) {
    gguf_craft_u32(c, elem_type);
    gguf_craft_u64(c, n);
}

void gguf_craft_tensor_info(gguf_craft *c, const char *name, uint32_t n_dims, const uint64_t *ne,
                            uint32_t type, uint64_t offset) {
    gguf_craft_str(c, name);
    gguf_craft_u32(c, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) gguf_craft_u64(c, ne[i]);
    gguf_craft_u32(c, type);
    gguf_craft_u64(c, offset);
}
