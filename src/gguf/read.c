/* GGUF reader: maps a file (or takes the caller's memory) and validates all
 * of it before anything is handed out.
 *
 * Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 * n_kv x (string key, u32 type, value), n_tensors x (string name, u32 n_dims,
 * n_dims x u64 ne, u32 type, u64 offset), padding to the alignment, data.
 * A string is a u64 byte length and the bytes; an array is a u32 element
 * type, a u64 count and the elements (which may be strings or arrays).
 *
 * Every count and length is checked against the bytes left before it is used,
 * and no allocation is made from a count before the remaining bytes could hold
 * that many entries of the smallest possible size, so memory stays within a
 * small multiple of the file size whatever the file claims. */
#include "gguf/gguf_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Smallest encodings, used to bound counts before allocating from them:
 * a KV is a key of >= 1 byte (8 + 1), a type (4) and a value of >= 1 byte;
 * a tensor info is a name of >= 1 byte (8 + 1), n_dims (4), one dimension (8),
 * a type (4) and an offset (8). */
enum { MIN_KV_BYTES = 8 + 1 + 4 + 1, MIN_TENSOR_INFO_BYTES = 8 + 1 + 4 + 8 + 4 + 8 };
enum { MIN_STRING_BYTES = 8, MIN_ARRAY_BYTES = 4 + 8 };

typedef struct parser {
    dz_gguf *g;
    const uint8_t *base;
    size_t size;
    size_t pos;
    /* Where in a nested array value the parser is: element path[0] of the
     * outermost array, path[1] of that element, ... (kept on failure). */
    uint64_t path[DZ_GGUF_MAX_DEPTH];
    int path_len;
} parser;

static size_t left(const parser *p) { return p->size - p->pos; }

static dz_status truncated(const parser *p, const char *what, size_t need) {
    return dz_fail(DZ_ERR_FORMAT, "unexpected end of file at byte %zu: %s needs %zu bytes, %zu left",
                   p->pos, what, need, left(p));
}

static dz_status read_u32(parser *p, const char *what, uint32_t *out) {
    if (left(p) < 4) return truncated(p, what, 4);
    memcpy(out, p->base + p->pos, 4);
    p->pos += 4;
    return DZ_OK;
}

static dz_status read_u64(parser *p, const char *what, uint64_t *out) {
    if (left(p) < 8) return truncated(p, what, 8);
    memcpy(out, p->base + p->pos, 8);
    p->pos += 8;
    return DZ_OK;
}

/* A string: u64 byte length, then the bytes (which must all be in the file). */
static dz_status read_str(parser *p, const char *what, const uint8_t **s, uint64_t *len) {
    size_t at = p->pos;
    uint64_t n = 0;
    dz_status st = read_u64(p, what, &n);
    if (st) return st;
    if (n > left(p))
        return dz_fail(DZ_ERR_FORMAT,
                       "%s at byte %zu has length %llu, past the end of the file (%zu bytes left)",
                       what, at, (unsigned long long)n, left(p));
    *s = p->base + p->pos;
    *len = n;
    p->pos += (size_t)n;
    return DZ_OK;
}

/* NUL-terminated copy of a key or tensor name: nonempty, no NUL inside. */
static dz_status copy_name(const uint8_t *s, uint64_t len, const char *what, size_t at, char **out) {
    if (len == 0) return dz_fail(DZ_ERR_FORMAT, "%s at byte %zu is empty", what, at);
    if (memchr(s, '\0', (size_t)len))
        return dz_fail(DZ_ERR_FORMAT, "%s at byte %zu contains a NUL byte", what, at);
    char *c = malloc((size_t)len + 1);
    if (!c) return dz_fail(DZ_ERR_NOMEM, "out of memory for a %llu-byte %s", (unsigned long long)len, what);
    memcpy(c, s, (size_t)len);
    c[len] = '\0';
    *out = c;
    return DZ_OK;
}

void gguf_index_free(gguf_index *idx) {
    if (!idx) return;
    if (idx->child)
        for (uint64_t i = 0; i < idx->n; i++) gguf_index_free(&idx->child[i]);
    free(idx->child);
    free(idx->elem);
    memset(idx, 0, sizeof *idx);
}

static dz_status parse_value(parser *p, uint32_t type, int depth, dz_gguf_value *v, gguf_index *idx);

/* An array: element type, count, elements. Arrays of strings and of arrays
 * get an element index in *idx (freed by the caller, even on failure). */
static dz_status parse_array(parser *p, int depth, dz_gguf_value *v, gguf_index *idx) {
    size_t at = p->pos;
    if (depth >= DZ_GGUF_MAX_DEPTH)
        return dz_fail(DZ_ERR_FORMAT, "array at byte %zu is nested more than %d deep", at,
                       DZ_GGUF_MAX_DEPTH);
    uint32_t et = 0;
    uint64_t n = 0;
    dz_status st = read_u32(p, "an array's element type", &et);
    if (st) return st;
    if (!gguf_type_valid(et))
        return dz_fail(DZ_ERR_FORMAT, "array at byte %zu has unknown element type %u", at, et);
    if ((st = read_u64(p, "an array's length", &n))) return st;
    size_t es = gguf_scalar_size(et);
    size_t min = es ? es : et == DZ_GGUF_STRING ? MIN_STRING_BYTES : MIN_ARRAY_BYTES;
    if (n > left(p) / min)
        return dz_fail(DZ_ERR_FORMAT,
                       "array at byte %zu claims %llu elements of type %s, past the end of the file "
                       "(%zu bytes left)",
                       at, (unsigned long long)n, dz_gguf_type_name((dz_gguf_type)et), left(p));
    v->elem_type = (dz_gguf_type)et;
    v->n = n;
    v->data = p->base + p->pos;
    if (es) {
        p->pos += (size_t)n * es; /* n * es <= left: checked above */
        return DZ_OK;
    }
    /* n <= left / 8, so these allocations are bounded by a few times the file size. */
    idx->elem = malloc(n ? (size_t)n * sizeof *idx->elem : 1);
    if (et == DZ_GGUF_ARRAY) idx->child = calloc(n ? (size_t)n : 1, sizeof *idx->child);
    if (!idx->elem || (et == DZ_GGUF_ARRAY && !idx->child)) {
        free(idx->elem);
        free(idx->child);
        idx->elem = NULL;
        idx->child = NULL;
        return dz_fail(DZ_ERR_NOMEM, "out of memory indexing an array of %llu elements",
                       (unsigned long long)n);
    }
    idx->n = n;
    v->priv = idx;
    for (uint64_t i = 0; i < n; i++) {
        idx->elem[i] = p->base + p->pos;
        p->path[depth] = i;
        p->path_len = depth + 1;
        dz_gguf_value ev;
        if ((st = parse_value(p, et, depth + 1, &ev, idx->child ? &idx->child[i] : NULL))) return st;
    }
    p->path_len = depth;
    return DZ_OK;
}

static dz_status parse_value(parser *p, uint32_t type, int depth, dz_gguf_value *v, gguf_index *idx) {
    memset(v, 0, sizeof *v);
    v->type = (dz_gguf_type)type;
    size_t s = gguf_scalar_size(type);
    if (s) {
        if (left(p) < s) return truncated(p, "the value", s);
        v->data = p->base + p->pos;
        p->pos += s;
        return DZ_OK;
    }
    if (type == DZ_GGUF_STRING) {
        const uint8_t *str;
        uint64_t n = 0;
        dz_status st = read_str(p, "the string", &str, &n);
        if (st) return st;
        v->data = str;
        v->n = n;
        return DZ_OK;
    }
    return parse_array(p, depth, v, idx);
}

/* Prefixes the message of a failure inside key's value with the key and,
 * inside an array, the element: "key 'k', element [3][0]: ". */
static dz_status value_error(const parser *p, dz_status st, const char *key) {
    char where[128] = "";
    size_t n = 0;
    int d = 0;
    for (; d < p->path_len && n < sizeof where - 32; d++)
        n += (size_t)snprintf(where + n, sizeof where - n, "[%llu]", (unsigned long long)p->path[d]);
    if (d < p->path_len) snprintf(where + n, sizeof where - n, "...");
    if (p->path_len) return dz_error_prefix(st, "key '%s', element %s: ", key, where);
    return dz_error_prefix(st, "key '%s': ", key);
}

static dz_status parse_kv(parser *p, int64_t i) {
    dz_gguf *g = p->g;
    gguf_kv *kv = &g->kv[i];
    size_t at = p->pos;
    const uint8_t *s;
    uint64_t len = 0;
    dz_status st = read_str(p, "a key", &s, &len);
    if (!st) st = copy_name(s, len, "key", at, &kv->key);
    if (st) return dz_error_prefix(st, "KV %lld: ", (long long)i);
    g->n_kv = i + 1; /* from here on close() frees this entry */
    int64_t prev;
    if (!gguf_map_insert(&g->kv_map, kv->key, i, &prev))
        return dz_fail(DZ_ERR_FORMAT, "duplicate key '%s' at byte %zu (KVs %lld and %lld)", kv->key, at,
                       (long long)prev, (long long)i);
    size_t type_at = p->pos;
    uint32_t type = 0;
    if ((st = read_u32(p, "the value type", &type))) return dz_error_prefix(st, "key '%s': ", kv->key);
    if (!gguf_type_valid(type))
        return dz_fail(DZ_ERR_FORMAT, "key '%s': unknown value type %u at byte %zu", kv->key, type, type_at);
    size_t value_at = p->pos;
    p->path_len = 0;
    if ((st = parse_value(p, type, 0, &kv->value, &kv->index))) return value_error(p, st, kv->key);
    kv->raw = p->base + value_at;
    kv->raw_size = p->pos - value_at;
    return DZ_OK;
}

static dz_status parse_tensor_info(parser *p, int64_t i) {
    dz_gguf *g = p->g;
    dz_gguf_tensor *t = &g->tensors[i];
    size_t at = p->pos;
    const uint8_t *s;
    uint64_t len = 0;
    char *name = NULL;
    dz_status st = read_str(p, "a tensor name", &s, &len);
    if (!st) st = copy_name(s, len, "tensor name", at, &name);
    if (st) return dz_error_prefix(st, "tensor %lld: ", (long long)i);
    t->name = name;
    g->n_tensors = i + 1; /* from here on close() frees this entry */
    int64_t prev;
    if (!gguf_map_insert(&g->tensor_map, name, i, &prev))
        return dz_fail(DZ_ERR_FORMAT, "duplicate tensor name '%s' at byte %zu (tensors %lld and %lld)",
                       name, at, (long long)prev, (long long)i);

    size_t dims_at = p->pos;
    uint32_t n_dims = 0;
    if ((st = read_u32(p, "the number of dimensions", &n_dims)))
        return dz_error_prefix(st, "tensor '%s': ", name);
    if (n_dims < 1 || n_dims > DZ_MAX_DIMS)
        return dz_fail(DZ_ERR_FORMAT, "tensor '%s': n_dims = %u at byte %zu, must be 1..%d", name,
                       n_dims, dims_at, DZ_MAX_DIMS);
    t->n_dims = (int32_t)n_dims;
    int64_t n_elements = 1;
    for (int d = 0; d < DZ_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= (int)n_dims) continue;
        size_t d_at = p->pos;
        uint64_t ne = 0;
        if ((st = read_u64(p, "a dimension", &ne))) return dz_error_prefix(st, "tensor '%s': ", name);
        if (ne == 0)
            return dz_fail(DZ_ERR_FORMAT, "tensor '%s': dimension %d at byte %zu is 0", name, d, d_at);
        if (ne > (uint64_t)INT64_MAX)
            return dz_fail(DZ_ERR_FORMAT,
                           "tensor '%s': dimension %d at byte %zu is %llu (negative as a signed count)",
                           name, d, d_at, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        if (__builtin_mul_overflow(n_elements, t->ne[d], &n_elements))
            return dz_fail(DZ_ERR_FORMAT, "tensor '%s': the number of elements overflows (dimension %d "
                                          "= %lld at byte %zu)",
                           name, d, (long long)t->ne[d], d_at);
    }

    size_t type_at = p->pos;
    uint32_t type = 0;
    if ((st = read_u32(p, "the tensor type", &type))) return dz_error_prefix(st, "tensor '%s': ", name);
    const dz_type_traits *tt = type < (uint32_t)DZ_TYPE_COUNT ? dz_type_info((int)type) : NULL;
    if (!tt)
        return dz_fail(DZ_ERR_FORMAT, "tensor '%s': unknown type id %u at byte %zu", name, type, type_at);
    t->type = (dz_type)type;
    size_t bytes;
    if ((st = dz_row_size(t->type, t->ne[0], &bytes))) return dz_error_prefix(st, "tensor '%s': ", name);
    for (int d = 1; d < DZ_MAX_DIMS; d++)
        if (dz_mul_overflows(bytes, (size_t)t->ne[d], &bytes))
            return dz_fail(DZ_ERR_FORMAT, "tensor '%s': the data size overflows", name);
    t->size = bytes;
    if ((st = read_u64(p, "the tensor offset", &t->offset)))
        return dz_error_prefix(st, "tensor '%s': ", name);
    return DZ_OK;
}

static dz_status read_alignment(dz_gguf *g) {
    g->alignment = DZ_GGUF_DEFAULT_ALIGNMENT;
    int64_t i = gguf_map_find(&g->kv_map, DZ_GGUF_ALIGNMENT_KEY);
    if (i < 0) return DZ_OK;
    const dz_gguf_value *v = &g->kv[i].value;
    if (v->type != DZ_GGUF_UINT32)
        return dz_fail(DZ_ERR_FORMAT, "key '%s' has type %s, the alignment must be a uint32",
                       DZ_GGUF_ALIGNMENT_KEY, dz_gguf_type_name(v->type));
    uint32_t a;
    memcpy(&a, v->data, 4);
    if (a == 0 || (a & (a - 1)) != 0)
        return dz_fail(DZ_ERR_FORMAT, "key '%s' = %u: the alignment must be a nonzero power of two",
                       DZ_GGUF_ALIGNMENT_KEY, a);
    g->alignment = a;
    return DZ_OK;
}

typedef struct extent {
    uint64_t offset;
    size_t size;
    int64_t index;
} extent;

static int extent_cmp(const void *a, const void *b) {
    const extent *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Places the data section and checks every tensor's bytes: aligned, inside
 * the file, and not overlapping another tensor's. */
static dz_status check_tensor_data(dz_gguf *g, size_t infos_end) {
    size_t start;
    if (dz_add_overflows(infos_end, g->alignment - 1, &start))
        return dz_fail(DZ_ERR_FORMAT, "the data section offset overflows");
    start &= ~(g->alignment - 1);
    if (g->n_tensors == 0) {
        /* No data: the padding may be absent at the end of the file. */
        g->data_offset = start < g->size ? start : g->size;
        return DZ_OK;
    }
    if (start > g->size)
        return dz_fail(DZ_ERR_FORMAT,
                       "the data section would start at byte %zu (tensor infos end at %zu, alignment "
                       "%zu), past the end of the file (%zu bytes)",
                       start, infos_end, g->alignment, g->size);
    g->data_offset = start;
    size_t data_size = g->size - start;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        dz_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            return dz_fail(DZ_ERR_FORMAT, "tensor '%s': offset %llu is not a multiple of the alignment %zu",
                           t->name, (unsigned long long)t->offset, g->alignment);
        if (t->offset > data_size || t->size > data_size - t->offset)
            return dz_fail(DZ_ERR_FORMAT,
                           "tensor '%s': data at offset %llu, %zu bytes, runs past the end of the data "
                           "section (%zu bytes from file byte %zu)",
                           t->name, (unsigned long long)t->offset, t->size, data_size, start);
        t->data = g->base + start + t->offset;
    }
    extent *ex = malloc((size_t)g->n_tensors * sizeof *ex);
    if (!ex) return dz_fail(DZ_ERR_NOMEM, "out of memory checking %lld tensors", (long long)g->n_tensors);
    for (int64_t i = 0; i < g->n_tensors; i++)
        ex[i] = (extent){g->tensors[i].offset, g->tensors[i].size, i};
    qsort(ex, (size_t)g->n_tensors, sizeof *ex, extent_cmp);
    dz_status st = DZ_OK;
    for (int64_t i = 1; i < g->n_tensors && !st; i++) {
        const extent *a = &ex[i - 1], *b = &ex[i];
        if (a->offset + a->size > b->offset) /* both within data_size: no overflow */
            st = dz_fail(DZ_ERR_FORMAT, "tensors '%s' (offset %llu, %zu bytes) and '%s' (offset %llu) overlap",
                         g->tensors[a->index].name, (unsigned long long)a->offset, a->size,
                         g->tensors[b->index].name, (unsigned long long)b->offset);
    }
    free(ex);
    return st;
}

static dz_status parse_header(parser *p, uint64_t *n_tensors, uint64_t *n_kv) {
    dz_gguf *g = p->g;
    if (p->size < 4 || memcmp(p->base, "GGUF", 4) != 0) {
        if (p->size < 4 && memcmp(p->base, "GGUF", p->size) == 0)
            return dz_fail(DZ_ERR_FORMAT, "unexpected end of file at byte %zu: the magic needs 4 bytes",
                           p->size);
        uint8_t m[4] = {0};
        memcpy(m, p->base, p->size < 4 ? p->size : 4);
        return dz_fail(DZ_ERR_FORMAT, "not a GGUF file: bad magic %02x %02x %02x %02x (expected \"GGUF\")",
                       m[0], m[1], m[2], m[3]);
    }
    p->pos = 4;
    dz_status st = read_u32(p, "the version", &g->version);
    if (st) return st;
    if (g->version == 1)
        return dz_fail(DZ_ERR_FORMAT, "GGUF version 1 is not supported (an early format; reconvert the "
                                      "model to version 3)");
    if (g->version != 2 && g->version != 3) {
        if (g->version >= 0x10000 && (g->version & 0xFFFF) == 0)
            return dz_fail(DZ_ERR_FORMAT, "unsupported GGUF version 0x%08x: this looks like a big-endian "
                                          "file, dizuo reads little-endian versions 2 and 3",
                           g->version);
        return dz_fail(DZ_ERR_FORMAT, "unsupported GGUF version %u (dizuo reads versions 2 and 3)",
                       g->version);
    }
    if ((st = read_u64(p, "the tensor count", n_tensors))) return st;
    if ((st = read_u64(p, "the KV count", n_kv))) return st;
    /* Both counts must fit in what is left, at the smallest entry size each. */
    size_t room = left(p);
    if (*n_kv > room / MIN_KV_BYTES || *n_tensors > room / MIN_TENSOR_INFO_BYTES ||
        *n_kv * MIN_KV_BYTES > room - *n_tensors * MIN_TENSOR_INFO_BYTES)
        return dz_fail(DZ_ERR_FORMAT,
                       "header claims n_kv = %llu and n_tensors = %llu, more than the %zu bytes after "
                       "the header can hold",
                       (unsigned long long)*n_kv, (unsigned long long)*n_tensors, room);
    return DZ_OK;
}

static dz_status parse(dz_gguf *g) {
    parser p = {.g = g, .base = g->base, .size = g->size};
    uint64_t n_tensors = 0, n_kv = 0;
    dz_status st = parse_header(&p, &n_tensors, &n_kv);
    if (st) return st;
    /* Counts are bounded by the file size (parse_header), so these are too. */
    g->kv = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) return dz_fail(DZ_ERR_NOMEM, "out of memory for the file's tables");
    if ((st = gguf_map_init(&g->kv_map, (int64_t)n_kv))) return st;
    if ((st = gguf_map_init(&g->tensor_map, (int64_t)n_tensors))) return st;
    for (uint64_t i = 0; i < n_kv; i++)
        if ((st = parse_kv(&p, (int64_t)i))) return st;
    if ((st = read_alignment(g))) return st;
    for (uint64_t i = 0; i < n_tensors; i++)
        if ((st = parse_tensor_info(&p, (int64_t)i))) return st;
    return check_tensor_data(g, p.pos);
}

static dz_status open_bytes(const uint8_t *base, size_t size, bool mapped, dz_gguf **out) {
    dz_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        if (mapped) munmap((void *)base, size);
        return dz_fail(DZ_ERR_NOMEM, "out of memory");
    }
    g->base = base;
    g->size = size;
    g->mapped = mapped;
    dz_status st = parse(g);
    if (st) {
        dz_gguf_close(g);
        return st;
    }
    *out = g;
    return DZ_OK;
}

dz_status dz_gguf_open_memory(const void *data, size_t size, dz_gguf **out) {
    if (!out) return dz_fail(DZ_ERR_ARG, "dz_gguf_open_memory: out is NULL");
    if (!data && size) return dz_fail(DZ_ERR_ARG, "dz_gguf_open_memory: data is NULL");
    static const uint8_t empty[1];
    return open_bytes(data ? data : empty, size, false, out);
}

dz_status dz_gguf_open(const char *path, dz_gguf **out) {
    if (!path || !out) return dz_fail(DZ_ERR_ARG, "dz_gguf_open: path or out is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dz_fail(DZ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return dz_fail(DZ_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return dz_fail(DZ_ERR_IO, "%s: is a directory, not a GGUF file", path);
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return dz_fail(DZ_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return dz_fail(DZ_ERR_FORMAT, "%s: empty file (0 bytes), not a GGUF file", path);
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return dz_fail(DZ_ERR_IO, "%s: too large to map", path);
    }
    size_t size = (size_t)sb.st_size;
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file */
    if (m == MAP_FAILED) return dz_fail(DZ_ERR_IO, "%s: cannot map %zu bytes: %s", path, size, strerror(e));
    dz_status st = open_bytes(m, size, true, out);
    if (st) return dz_error_prefix(st, "%s: ", path);
    return DZ_OK;
}

void dz_gguf_close(dz_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            gguf_index_free(&g->kv[i].index);
        }
    free(g->kv);
    if (g->tensors)
        for (int64_t i = 0; i < g->n_tensors; i++) free((char *)g->tensors[i].name);
    free(g->tensors);
    gguf_map_free(&g->kv_map);
    gguf_map_free(&g->tensor_map);
    if (g->mapped) munmap((void *)g->base, g->size);
    free(g);
}
