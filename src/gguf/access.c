/* Read access to an opened GGUF file: KVs, array elements, typed lookups,
 * tensors; and the name -> index hash map behind the lookups. Everything here
 * reads memory validated at open, so no bounds are checked twice. */
#include "gguf/gguf_impl.h"

#include <stdlib.h>
#include <string.h>

/* ---- name map ---- */

/* FNV-1a from a per-map seed, then a 64-bit finalizer (splitmix64): a file
 * cannot be crafted so that all its keys land in one probe chain without
 * knowing the seed, which differs between maps and runs. */
static uint64_t hash_name(uint64_t seed, const char *s) {
    uint64_t h = 1469598103934665603ull ^ seed;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

dz_status gguf_map_init(gguf_map *m, int64_t n) {
    size_t cap = 8;
    while (cap < (size_t)n * 2) cap *= 2; /* n is bounded by the file size: no overflow */
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots) return dz_fail(DZ_ERR_NOMEM, "out of memory for a table of %lld names", (long long)n);
    m->mask = cap - 1;
    /* The table's address (randomized by ASLR) and the clock make the seed. */
    m->seed = (uint64_t)(uintptr_t)m->slots * 0x9e3779b97f4a7c15ull ^ (uint64_t)(dz_time_now() * 1e9);
    return DZ_OK;
}

void gguf_map_free(gguf_map *m) {
    free(m->slots);
    m->slots = NULL;
}

bool gguf_map_insert(gguf_map *m, const char *name, int64_t index, int64_t *existing) {
    for (size_t i = hash_name(m->seed, name) & m->mask;; i = (i + 1) & m->mask) {
        gguf_map_slot *s = &m->slots[i];
        if (!s->name) {
            s->name = name;
            s->index = index;
            return true;
        }
        if (!strcmp(s->name, name)) {
            *existing = s->index;
            return false;
        }
    }
}

int64_t gguf_map_find(const gguf_map *m, const char *name) {
    if (!m->slots || !name) return -1;
    for (size_t i = hash_name(m->seed, name) & m->mask;; i = (i + 1) & m->mask) {
        const gguf_map_slot *s = &m->slots[i];
        if (!s->name) return -1;
        if (!strcmp(s->name, name)) return s->index;
    }
}

/* ---- file ---- */

const char *dz_gguf_type_name(dz_gguf_type t) {
    static const char *const names[DZ_GGUF_TYPE_COUNT] = {
        "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
        "bool",  "string", "array", "uint64", "int64", "float64",
    };
    return (unsigned)t < DZ_GGUF_TYPE_COUNT ? names[t] : "?";
}

uint32_t dz_gguf_version(const dz_gguf *g) { return g ? g->version : 0; }
size_t dz_gguf_alignment(const dz_gguf *g) { return g ? g->alignment : 0; }
size_t dz_gguf_data_offset(const dz_gguf *g) { return g ? g->data_offset : 0; }
const void *dz_gguf_base(const dz_gguf *g) { return g ? g->base : NULL; }
size_t dz_gguf_file_size(const dz_gguf *g) { return g ? g->size : 0; }

int64_t dz_gguf_n_kv(const dz_gguf *g) { return g ? g->n_kv : 0; }

const char *dz_gguf_kv_key(const dz_gguf *g, int64_t i) {
    if (!g || i < 0 || i >= g->n_kv) return NULL;
    return g->kv[i].key;
}

void dz_gguf_kv_value(const dz_gguf *g, int64_t i, dz_gguf_value *out) {
    if (!out) return;
    if (!g || i < 0 || i >= g->n_kv) {
        memset(out, 0, sizeof *out);
        out->type = DZ_GGUF_TYPE_COUNT;
        return;
    }
    *out = g->kv[i].value;
}

int64_t dz_gguf_find_kv(const dz_gguf *g, const char *key) {
    return g ? gguf_map_find(&g->kv_map, key) : -1;
}

dz_status dz_gguf_array_get(const dz_gguf *g, const dz_gguf_value *arr, uint64_t i, dz_gguf_value *out) {
    (void)g;
    if (!arr || !out || arr->type != DZ_GGUF_ARRAY)
        return dz_fail(DZ_ERR_ARG, "dz_gguf_array_get: the value is not an array");
    if (i >= arr->n)
        return dz_fail(DZ_ERR_ARG, "array index %llu is out of range (%llu elements)",
                       (unsigned long long)i, (unsigned long long)arr->n);
    dz_gguf_value v;
    memset(&v, 0, sizeof v);
    v.type = arr->elem_type;
    size_t es = gguf_scalar_size(arr->elem_type);
    if (es) {
        v.data = arr->data + i * es;
        *out = v;
        return DZ_OK;
    }
    const gguf_index *idx = arr->priv;
    if (!idx || !idx->elem || i >= idx->n)
        return dz_fail(DZ_ERR_ARG, "dz_gguf_array_get: the array value did not come from this reader");
    const uint8_t *e = idx->elem[i];
    if (arr->elem_type == DZ_GGUF_STRING) {
        memcpy(&v.n, e, 8);
        v.data = e + 8;
    } else {
        uint32_t et;
        memcpy(&et, e, 4);
        memcpy(&v.n, e + 4, 8);
        v.elem_type = (dz_gguf_type)et;
        v.data = e + 12;
        v.priv = idx->child ? &idx->child[i] : NULL;
    }
    *out = v;
    return DZ_OK;
}

/* ---- scalar values ---- */

dz_status dz_gguf_value_int(const dz_gguf_value *v, int64_t *out) {
    if (!v || !out) return dz_fail(DZ_ERR_ARG, "dz_gguf_value_int: NULL argument");
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
            uint64_t u64; int64_t i64; } x = {0};
    size_t s = gguf_scalar_size(v->type);
    if (s && v->data) memcpy(&x, v->data, s);
    switch (v->type) {
    case DZ_GGUF_UINT8: case DZ_GGUF_BOOL: *out = x.u8; return DZ_OK;
    case DZ_GGUF_INT8: *out = x.i8; return DZ_OK;
    case DZ_GGUF_UINT16: *out = x.u16; return DZ_OK;
    case DZ_GGUF_INT16: *out = x.i16; return DZ_OK;
    case DZ_GGUF_UINT32: *out = x.u32; return DZ_OK;
    case DZ_GGUF_INT32: *out = x.i32; return DZ_OK;
    case DZ_GGUF_INT64: *out = x.i64; return DZ_OK;
    case DZ_GGUF_UINT64:
        if (x.u64 > (uint64_t)INT64_MAX)
            return dz_fail(DZ_ERR_FORMAT, "value %llu does not fit in a signed 64-bit integer",
                           (unsigned long long)x.u64);
        *out = (int64_t)x.u64;
        return DZ_OK;
    default:
        return dz_fail(DZ_ERR_FORMAT, "expected an integer, found a %s", dz_gguf_type_name(v->type));
    }
}

dz_status dz_gguf_value_uint(const dz_gguf_value *v, uint64_t *out) {
    if (!v || !out) return dz_fail(DZ_ERR_ARG, "dz_gguf_value_uint: NULL argument");
    if (v->type == DZ_GGUF_UINT64) {
        memcpy(out, v->data, 8);
        return DZ_OK;
    }
    int64_t x;
    dz_status st = dz_gguf_value_int(v, &x);
    if (st) return st;
    if (x < 0) return dz_fail(DZ_ERR_FORMAT, "value %lld is negative, expected an unsigned integer", (long long)x);
    *out = (uint64_t)x;
    return DZ_OK;
}

dz_status dz_gguf_value_float(const dz_gguf_value *v, double *out) {
    if (!v || !out) return dz_fail(DZ_ERR_ARG, "dz_gguf_value_float: NULL argument");
    if (v->type == DZ_GGUF_FLOAT32) {
        float f;
        memcpy(&f, v->data, 4);
        *out = f;
        return DZ_OK;
    }
    if (v->type == DZ_GGUF_FLOAT64) {
        memcpy(out, v->data, 8);
        return DZ_OK;
    }
    return dz_fail(DZ_ERR_FORMAT, "expected a float, found a %s", dz_gguf_type_name(v->type));
}

dz_status dz_gguf_value_bool(const dz_gguf_value *v, bool *out) {
    if (!v || !out) return dz_fail(DZ_ERR_ARG, "dz_gguf_value_bool: NULL argument");
    if (v->type != DZ_GGUF_BOOL)
        return dz_fail(DZ_ERR_FORMAT, "expected a bool, found a %s", dz_gguf_type_name(v->type));
    *out = v->data[0] != 0;
    return DZ_OK;
}

/* ---- lookups by key ---- */

/* The value of key, or NULL (and *found = false) when absent. */
static const dz_gguf_value *lookup(const dz_gguf *g, const char *key, bool *found) {
    int64_t i = dz_gguf_find_kv(g, key);
    if (found) *found = i >= 0;
    return i >= 0 ? &g->kv[i].value : NULL;
}

dz_status dz_gguf_get_int(const dz_gguf *g, const char *key, int64_t *out, bool *found) {
    const dz_gguf_value *v = lookup(g, key, found);
    if (!v) return DZ_OK;
    dz_status st = dz_gguf_value_int(v, out);
    return st ? dz_error_prefix(st, "key '%s': ", key) : DZ_OK;
}

dz_status dz_gguf_get_float(const dz_gguf *g, const char *key, double *out, bool *found) {
    const dz_gguf_value *v = lookup(g, key, found);
    if (!v) return DZ_OK;
    dz_status st = dz_gguf_value_float(v, out);
    return st ? dz_error_prefix(st, "key '%s': ", key) : DZ_OK;
}

dz_status dz_gguf_get_bool(const dz_gguf *g, const char *key, bool *out, bool *found) {
    const dz_gguf_value *v = lookup(g, key, found);
    if (!v) return DZ_OK;
    dz_status st = dz_gguf_value_bool(v, out);
    return st ? dz_error_prefix(st, "key '%s': ", key) : DZ_OK;
}

dz_status dz_gguf_get_str(const dz_gguf *g, const char *key, const char **out, size_t *len,
                          bool *found) {
    const dz_gguf_value *v = lookup(g, key, found);
    if (!v) return DZ_OK;
    if (v->type != DZ_GGUF_STRING)
        return dz_fail(DZ_ERR_FORMAT, "key '%s': expected a string, found a %s", key,
                       dz_gguf_type_name(v->type));
    if (out) *out = (const char *)v->data;
    if (len) *len = (size_t)v->n;
    return DZ_OK;
}

dz_status dz_gguf_get_array(const dz_gguf *g, const char *key, dz_gguf_value *out, bool *found) {
    const dz_gguf_value *v = lookup(g, key, found);
    if (!v) return DZ_OK;
    if (v->type != DZ_GGUF_ARRAY)
        return dz_fail(DZ_ERR_FORMAT, "key '%s': expected an array, found a %s", key,
                       dz_gguf_type_name(v->type));
    if (out) *out = *v;
    return DZ_OK;
}

/* ---- tensors ---- */

int64_t dz_gguf_n_tensors(const dz_gguf *g) { return g ? g->n_tensors : 0; }

const dz_gguf_tensor *dz_gguf_tensor_at(const dz_gguf *g, int64_t i) {
    if (!g || i < 0 || i >= g->n_tensors) return NULL;
    return &g->tensors[i];
}

const dz_gguf_tensor *dz_gguf_find_tensor(const dz_gguf *g, const char *name) {
    int64_t i = g ? gguf_map_find(&g->tensor_map, name) : -1;
    return i >= 0 ? &g->tensors[i] : NULL;
}
