/* GGUF writer: collects KVs (kept encoded, exactly as they will appear in the
 * file) and tensors (copied), then lays out a version 3 file: header, KVs,
 * tensor infos, padding to the alignment, each tensor's data at an aligned
 * offset. The same routine measures the file (no output), fills a buffer or
 * streams to a FILE. */
#include "gguf/gguf_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct writer_kv {
    char *key;
    dz_gguf_type type;
    uint8_t *raw; /* the encoded value (after the type field) */
    size_t raw_size;
} writer_kv;

typedef struct writer_tensor {
    char *name;
    dz_type type;
    int32_t n_dims;
    int64_t ne[DZ_MAX_DIMS];
    size_t size;
    uint8_t *data;
} writer_tensor;

struct dz_gguf_writer {
    uint32_t alignment;
    writer_kv *kv;
    int64_t n_kv, cap_kv;
    writer_tensor *tensors;
    int64_t n_tensors, cap_tensors;
};

dz_status dz_gguf_writer_create(dz_gguf_writer **out) {
    if (!out) return dz_fail(DZ_ERR_ARG, "dz_gguf_writer_create: out is NULL");
    dz_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return dz_fail(DZ_ERR_NOMEM, "out of memory for a GGUF writer");
    w->alignment = DZ_GGUF_DEFAULT_ALIGNMENT;
    *out = w;
    return DZ_OK;
}

void dz_gguf_writer_destroy(dz_gguf_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].raw);
    }
    for (int64_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].data);
    }
    free(w->kv);
    free(w->tensors);
    free(w);
}

/* Grows an array of n elements to hold one more. */
static bool grow(void **items, int64_t n, int64_t *cap, size_t elem_size) {
    if (n < *cap) return true;
    int64_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*items, (size_t)ncap * elem_size);
    if (!p) return false;
    *items = p;
    *cap = ncap;
    return true;
}

/* Sets key to an encoded value (copied). The one place every setter ends,
 * so general.alignment is checked here whichever way it is set. */
static dz_status put_kv(dz_gguf_writer *w, const char *key, dz_gguf_type type, const void *raw,
                        size_t raw_size) {
    if (!w || !key) return dz_fail(DZ_ERR_ARG, "gguf writer: NULL writer or key");
    if (!key[0]) return dz_fail(DZ_ERR_ARG, "gguf writer: empty key");
    uint32_t alignment = w->alignment;
    if (!strcmp(key, DZ_GGUF_ALIGNMENT_KEY)) {
        if (type != DZ_GGUF_UINT32)
            return dz_fail(DZ_ERR_ARG, "gguf writer: key '%s' must be a uint32, not a %s", key,
                           dz_gguf_type_name(type));
        memcpy(&alignment, raw, 4);
        if (alignment == 0 || (alignment & (alignment - 1)))
            return dz_fail(DZ_ERR_ARG, "gguf writer: alignment %u is not a nonzero power of two",
                           alignment);
    }
    uint8_t *copy = malloc(raw_size ? raw_size : 1);
    if (!copy) return dz_fail(DZ_ERR_NOMEM, "out of memory for the value of '%s'", key);
    if (raw_size) memcpy(copy, raw, raw_size);
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key)) continue;
        free(w->kv[i].raw);
        w->kv[i].type = type;
        w->kv[i].raw = copy;
        w->kv[i].raw_size = raw_size;
        w->alignment = alignment;
        return DZ_OK;
    }
    char *kcopy = strdup(key);
    if (!kcopy || !grow((void **)&w->kv, w->n_kv, &w->cap_kv, sizeof *w->kv)) {
        free(kcopy);
        free(copy);
        return dz_fail(DZ_ERR_NOMEM, "out of memory for key '%s'", key);
    }
    w->kv[w->n_kv++] = (writer_kv){kcopy, type, copy, raw_size};
    w->alignment = alignment;
    return DZ_OK;
}

dz_status dz_gguf_writer_set_alignment(dz_gguf_writer *w, uint32_t alignment) {
    return put_kv(w, DZ_GGUF_ALIGNMENT_KEY, DZ_GGUF_UINT32, &alignment, 4);
}

dz_status dz_gguf_writer_set_scalar(dz_gguf_writer *w, const char *key, dz_gguf_type type,
                                    const void *data) {
    size_t s = gguf_scalar_size(type);
    if (!s || !data)
        return dz_fail(DZ_ERR_ARG, "gguf writer: key '%s': set_scalar needs a fixed-size type and data, "
                                   "got %s", key ? key : "(null)", dz_gguf_type_name(type));
    return put_kv(w, key, type, data, s);
}

dz_status dz_gguf_writer_set_u32(dz_gguf_writer *w, const char *key, uint32_t v) {
    return put_kv(w, key, DZ_GGUF_UINT32, &v, 4);
}
dz_status dz_gguf_writer_set_i32(dz_gguf_writer *w, const char *key, int32_t v) {
    return put_kv(w, key, DZ_GGUF_INT32, &v, 4);
}
dz_status dz_gguf_writer_set_f32(dz_gguf_writer *w, const char *key, float v) {
    return put_kv(w, key, DZ_GGUF_FLOAT32, &v, 4);
}
dz_status dz_gguf_writer_set_bool(dz_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return put_kv(w, key, DZ_GGUF_BOOL, &b, 1);
}

/* A growing byte buffer for encoding values. */
typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
    bool failed; /* out of memory or size overflow */
} bytes;

static void bytes_put(bytes *b, const void *data, size_t n) {
    if (b->failed || n == 0) return;
    size_t need;
    if (dz_add_overflows(b->n, n, &need)) {
        b->failed = true;
        return;
    }
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n = need;
}

static void bytes_put_u32(bytes *b, uint32_t v) { bytes_put(b, &v, 4); }
static void bytes_put_u64(bytes *b, uint64_t v) { bytes_put(b, &v, 8); }

/* Sets key to the encoded bytes in b (and frees them). */
static dz_status put_bytes(dz_gguf_writer *w, const char *key, dz_gguf_type type, bytes *b) {
    dz_status st = b->failed ? dz_fail(DZ_ERR_NOMEM, "out of memory encoding the value of '%s'",
                                       key ? key : "(null)")
                             : put_kv(w, key, type, b->p, b->n);
    free(b->p);
    return st;
}

dz_status dz_gguf_writer_set_str(dz_gguf_writer *w, const char *key, const char *s) {
    if (!s) return dz_fail(DZ_ERR_ARG, "gguf writer: key '%s': NULL string", key ? key : "(null)");
    bytes b = {0};
    size_t n = strlen(s);
    bytes_put_u64(&b, n);
    bytes_put(&b, s, n);
    return put_bytes(w, key, DZ_GGUF_STRING, &b);
}

dz_status dz_gguf_writer_set_array(dz_gguf_writer *w, const char *key, dz_gguf_type elem_type,
                                   const void *data, uint64_t n) {
    size_t es = gguf_scalar_size(elem_type), total;
    if (!es || (n && !data))
        return dz_fail(DZ_ERR_ARG, "gguf writer: key '%s': set_array needs a fixed-size element type "
                                   "and data, got %s", key ? key : "(null)", dz_gguf_type_name(elem_type));
    if (n > SIZE_MAX || dz_mul_overflows((size_t)n, es, &total))
        return dz_fail(DZ_ERR_ARG, "gguf writer: key '%s': array of %llu elements is too large",
                       key ? key : "(null)", (unsigned long long)n);
    bytes b = {0};
    bytes_put_u32(&b, elem_type);
    bytes_put_u64(&b, n);
    bytes_put(&b, data, total);
    return put_bytes(w, key, DZ_GGUF_ARRAY, &b);
}

dz_status dz_gguf_writer_set_str_array(dz_gguf_writer *w, const char *key, const char *const *strs,
                                       uint64_t n) {
    if (n && !strs) return dz_fail(DZ_ERR_ARG, "gguf writer: key '%s': NULL strings", key ? key : "(null)");
    for (uint64_t i = 0; i < n; i++)
        if (!strs[i])
            return dz_fail(DZ_ERR_ARG, "gguf writer: key '%s': string %llu is NULL", key ? key : "(null)",
                           (unsigned long long)i);
    bytes b = {0};
    bytes_put_u32(&b, DZ_GGUF_STRING);
    bytes_put_u64(&b, n);
    for (uint64_t i = 0; i < n; i++) {
        size_t len = strlen(strs[i]);
        bytes_put_u64(&b, len);
        bytes_put(&b, strs[i], len);
    }
    return put_bytes(w, key, DZ_GGUF_ARRAY, &b);
}

dz_status dz_gguf_writer_copy_kv(dz_gguf_writer *w, const dz_gguf *g, int64_t i) {
    if (!g || i < 0 || i >= g->n_kv)
        return dz_fail(DZ_ERR_ARG, "gguf writer: copy_kv: no KV %lld in the file", (long long)i);
    /* The encoded value was validated at open and is self-contained (nested
     * arrays included), so copying its bytes is a deep copy. */
    const gguf_kv *kv = &g->kv[i];
    return put_kv(w, kv->key, kv->value.type, kv->raw, kv->raw_size);
}

dz_status dz_gguf_writer_add_tensor(dz_gguf_writer *w, const char *name, dz_type type, int n_dims,
                                    const int64_t *ne, const void *data) {
    if (!w || !name || !ne) return dz_fail(DZ_ERR_ARG, "gguf writer: add_tensor: NULL argument");
    if (!name[0]) return dz_fail(DZ_ERR_ARG, "gguf writer: empty tensor name");
    if (n_dims < 1 || n_dims > DZ_MAX_DIMS)
        return dz_fail(DZ_ERR_ARG, "gguf writer: tensor '%s': n_dims %d is outside 1..%d", name, n_dims,
                       DZ_MAX_DIMS);
    if (!dz_type_info((int)type))
        return dz_fail(DZ_ERR_ARG, "gguf writer: tensor '%s': unknown type id %d", name, (int)type);
    writer_tensor t = {.type = type, .n_dims = n_dims};
    for (int d = 0; d < DZ_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 1)
            return dz_fail(DZ_ERR_ARG, "gguf writer: tensor '%s': dimension %d is %lld", name, d,
                           (long long)t.ne[d]);
    }
    dz_status st = dz_row_size(type, t.ne[0], &t.size);
    if (st) return dz_error_prefix(DZ_ERR_ARG, "gguf writer: tensor '%s': ", name);
    for (int d = 1; d < DZ_MAX_DIMS; d++)
        if ((uint64_t)t.ne[d] > SIZE_MAX || dz_mul_overflows(t.size, (size_t)t.ne[d], &t.size))
            return dz_fail(DZ_ERR_ARG, "gguf writer: tensor '%s': the data size overflows", name);
    for (int64_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return dz_fail(DZ_ERR_ARG, "gguf writer: duplicate tensor name '%s'", name);
    t.name = strdup(name);
    t.data = malloc(t.size);
    if (!t.name || !t.data || !grow((void **)&w->tensors, w->n_tensors, &w->cap_tensors, sizeof *w->tensors)) {
        free(t.name);
        free(t.data);
        return dz_fail(DZ_ERR_NOMEM, "out of memory for tensor '%s' (%zu bytes)", name, t.size);
    }
    if (data)
        memcpy(t.data, data, t.size);
    else
        memset(t.data, 0, t.size);
    w->tensors[w->n_tensors++] = t;
    return DZ_OK;
}

/* ---- layout and output ---- */

/* Where bytes go: nowhere (measuring), a buffer, or a stream. */
typedef struct sink {
    uint8_t *buf;
    FILE *f;
    size_t pos;
    bool failed; /* a write to f failed (errno kept in err) */
    int err;
} sink;

static void sink_put(sink *s, const void *p, size_t n) {
    if (n == 0) return;
    if (s->buf) memcpy(s->buf + s->pos, p, n);
    else if (s->f && !s->failed && fwrite(p, 1, n, s->f) != n) {
        s->failed = true;
        s->err = errno;
    }
    s->pos += n;
}

static void sink_u32(sink *s, uint32_t v) { sink_put(s, &v, 4); }
static void sink_u64(sink *s, uint64_t v) { sink_put(s, &v, 8); }

static void sink_pad(sink *s, size_t alignment) {
    static const uint8_t zeros[4096];
    size_t pad = (alignment - s->pos % alignment) % alignment;
    while (pad) {
        size_t n = pad < sizeof zeros ? pad : sizeof zeros;
        sink_put(s, zeros, n);
        pad -= n;
    }
}

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

/* Checks that the whole file's size is representable (sizes of data already
 * in memory, plus padding): the emit pass below then cannot overflow. */
static dz_status check_layout(const dz_gguf_writer *w) {
    size_t total = 64; /* header */
    size_t pad = w->alignment;
    for (int64_t i = 0; i < w->n_kv; i++)
        if (dz_add_overflows(total, strlen(w->kv[i].key) + 12 + w->kv[i].raw_size, &total))
            goto overflow;
    for (int64_t i = 0; i < w->n_tensors; i++)
        if (dz_add_overflows(total, strlen(w->tensors[i].name) + 8 + 4 + 4 * 8 + 4 + 8, &total) ||
            dz_add_overflows(total, w->tensors[i].size, &total) || dz_add_overflows(total, pad, &total))
            goto overflow;
    if (dz_add_overflows(total, pad, &total)) goto overflow;
    return DZ_OK;
overflow:
    return dz_fail(DZ_ERR_ARG, "gguf writer: the file would be too large");
}

static void emit(const dz_gguf_writer *w, sink *s) {
    sink_put(s, "GGUF", 4);
    sink_u32(s, 3);
    sink_u64(s, (uint64_t)w->n_tensors);
    sink_u64(s, (uint64_t)w->n_kv);
    for (int64_t i = 0; i < w->n_kv; i++) {
        const writer_kv *kv = &w->kv[i];
        size_t len = strlen(kv->key);
        sink_u64(s, len);
        sink_put(s, kv->key, len);
        sink_u32(s, kv->type);
        sink_put(s, kv->raw, kv->raw_size);
    }
    size_t offset = 0;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        const writer_tensor *t = &w->tensors[i];
        size_t len = strlen(t->name);
        sink_u64(s, len);
        sink_put(s, t->name, len);
        sink_u32(s, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) sink_u64(s, (uint64_t)t->ne[d]);
        sink_u32(s, (uint32_t)t->type);
        sink_u64(s, offset);
        offset = align_up(offset + t->size, w->alignment);
    }
    /* No tensors, no data section: the file ends here, unpadded (readers
     * accept that), so a large alignment does not bloat a metadata file. */
    if (w->n_tensors) sink_pad(s, w->alignment);
    for (int64_t i = 0; i < w->n_tensors; i++) {
        sink_put(s, w->tensors[i].data, w->tensors[i].size);
        sink_pad(s, w->alignment);
    }
}

dz_status dz_gguf_writer_write_memory(dz_gguf_writer *w, void **out, size_t *size) {
    if (!w || !out || !size) return dz_fail(DZ_ERR_ARG, "gguf writer: write_memory: NULL argument");
    dz_status st = check_layout(w);
    if (st) return st;
    sink measure = {0};
    emit(w, &measure);
    uint8_t *buf = malloc(measure.pos);
    if (!buf) return dz_fail(DZ_ERR_NOMEM, "out of memory for a %zu-byte GGUF file", measure.pos);
    sink s = {.buf = buf};
    emit(w, &s);
    *out = buf;
    *size = s.pos;
    return DZ_OK;
}

dz_status dz_gguf_writer_write_file(dz_gguf_writer *w, const char *path) {
    if (!w || !path) return dz_fail(DZ_ERR_ARG, "gguf writer: write_file: NULL argument");
    dz_status st = check_layout(w);
    if (st) return st;
    size_t n = strlen(path);
    char *tmp = malloc(n + sizeof ".tmp.XXXXXX");
    if (!tmp) return dz_fail(DZ_ERR_NOMEM, "out of memory");
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = dz_fail(DZ_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    fchmod(fd, 0644); /* mkstemp makes 0600; a model file is usually shared */
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        st = dz_fail(DZ_ERR_IO, "%s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return st;
    }
    sink s = {.f = f};
    emit(w, &s);
    if (!s.failed && fflush(f) != 0) s.failed = true, s.err = errno;
    if (!s.failed && fsync(fileno(f)) != 0) s.failed = true, s.err = errno;
    if (fclose(f) != 0 && !s.failed) s.failed = true, s.err = errno;
    if (!s.failed && rename(tmp, path) != 0) s.failed = true, s.err = errno;
    if (s.failed) {
        st = dz_fail(DZ_ERR_IO, "%s: cannot write: %s", path, strerror(s.err));
        unlink(tmp);
    }
    free(tmp);
    return st;
}
