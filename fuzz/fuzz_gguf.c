/* libFuzzer target for the GGUF reader: any input either fails to open with
 * a message, or opens and then every accessor is safe: every KV (nested
 * arrays element by element), every tensor's first and last data byte. A
 * file that opens must also survive a copy through the writer and open again
 * with the same content (checked with __builtin_trap so libFuzzer reports it). */
#include <stdlib.h>
#include <string.h>

#include "dizuo/gguf.h"

static volatile uint64_t sink;

static void touch(const uint8_t *p, uint64_t n) {
    if (n) sink += p[0] + p[n - 1];
}

static void walk_value(const dz_gguf *g, const dz_gguf_value *v) {
    int64_t i64;
    uint64_t u64;
    double f;
    bool b;
    switch (v->type) {
    case DZ_GGUF_STRING: touch(v->data, v->n); return;
    case DZ_GGUF_ARRAY:
        for (uint64_t i = 0; i < v->n; i++) {
            dz_gguf_value e;
            if (dz_gguf_array_get(g, v, i, &e) != DZ_OK) __builtin_trap();
            walk_value(g, &e);
        }
        return;
    default:
        if (!dz_gguf_value_int(v, &i64)) sink += (uint64_t)i64;
        if (!dz_gguf_value_uint(v, &u64)) sink += u64;
        if (!dz_gguf_value_float(v, &f)) sink += f == f;
        if (!dz_gguf_value_bool(v, &b)) sink += b;
        return;
    }
}

/* Re-serializes everything and checks the copy reads back the same. */
static void check_copy(const dz_gguf *g) {
    dz_gguf_writer *w = NULL;
    if (dz_gguf_writer_create(&w)) return;
    for (int64_t i = 0; i < dz_gguf_n_kv(g); i++)
        if (dz_gguf_writer_copy_kv(w, g, i)) __builtin_trap();
    for (int64_t i = 0; i < dz_gguf_n_tensors(g); i++) {
        const dz_gguf_tensor *t = dz_gguf_tensor_at(g, i);
        if (dz_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data)) __builtin_trap();
    }
    void *buf = NULL;
    size_t size = 0;
    if (dz_gguf_writer_write_memory(w, &buf, &size)) __builtin_trap();
    dz_gguf *c = NULL;
    if (dz_gguf_open_memory(buf, size, &c)) __builtin_trap();
    if (dz_gguf_n_kv(c) != dz_gguf_n_kv(g) || dz_gguf_n_tensors(c) != dz_gguf_n_tensors(g)) __builtin_trap();
    for (int64_t i = 0; i < dz_gguf_n_tensors(g); i++) {
        const dz_gguf_tensor *a = dz_gguf_tensor_at(g, i), *b = dz_gguf_tensor_at(c, i);
        if (strcmp(a->name, b->name) || a->size != b->size || memcmp(a->data, b->data, a->size))
            __builtin_trap();
    }
    dz_gguf_close(c);
    free(buf);
    dz_gguf_writer_destroy(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dz_gguf *g = NULL;
    if (dz_gguf_open_memory(data, size, &g) != DZ_OK) return 0;
    sink += dz_gguf_version(g) + dz_gguf_alignment(g) + dz_gguf_data_offset(g) + dz_gguf_file_size(g);
    for (int64_t i = 0; i < dz_gguf_n_kv(g); i++) {
        const char *key = dz_gguf_kv_key(g, i);
        if (dz_gguf_find_kv(g, key) != i) __builtin_trap();
        dz_gguf_value v;
        dz_gguf_kv_value(g, i, &v);
        walk_value(g, &v);
        int64_t iv;
        double fv;
        bool bv;
        const char *s;
        size_t len;
        dz_gguf_get_int(g, key, &iv, NULL);
        dz_gguf_get_float(g, key, &fv, NULL);
        dz_gguf_get_bool(g, key, &bv, NULL);
        dz_gguf_get_str(g, key, &s, &len, NULL);
        dz_gguf_get_array(g, key, &v, NULL);
    }
    for (int64_t i = 0; i < dz_gguf_n_tensors(g); i++) {
        const dz_gguf_tensor *t = dz_gguf_tensor_at(g, i);
        if (dz_gguf_find_tensor(g, t->name) != t) __builtin_trap();
        touch(t->data, t->size);
    }
    check_copy(g);
    dz_gguf_close(g);
    return 0;
}
