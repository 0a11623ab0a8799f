/* dizuo — gguf: the GGUF file format (v2 and v3), read and write.
 *
 * Reading maps the file read-only and validates all of it at open: every
 * count, length, offset and size is checked against the file size with
 * overflow-safe arithmetic before it is used. After a successful open every
 * accessor is safe; values and tensor data point into the mapping and live
 * until dz_gguf_close. Knows nothing about models. */
#ifndef DIZUO_GGUF_H
#define DIZUO_GGUF_H

#include "dizuo/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dz_gguf_type {
    DZ_GGUF_UINT8 = 0,
    DZ_GGUF_INT8 = 1,
    DZ_GGUF_UINT16 = 2,
    DZ_GGUF_INT16 = 3,
    DZ_GGUF_UINT32 = 4,
    DZ_GGUF_INT32 = 5,
    DZ_GGUF_FLOAT32 = 6,
    DZ_GGUF_BOOL = 7,
    DZ_GGUF_STRING = 8,
    DZ_GGUF_ARRAY = 9,
    DZ_GGUF_UINT64 = 10,
    DZ_GGUF_INT64 = 11,
    DZ_GGUF_FLOAT64 = 12,
    DZ_GGUF_TYPE_COUNT
} dz_gguf_type;

const char *dz_gguf_type_name(dz_gguf_type t);

typedef struct dz_gguf dz_gguf;

/* A value inside the file. Scalars: `data` points at the little-endian bytes
 * (possibly unaligned: read with memcpy or the helpers below), `n` is 0.
 * Strings: `data` at the bytes, `n` the byte length (not NUL-terminated, may
 * hold any bytes). Arrays: `elem_type` and `n` elements; fetch elements with
 * dz_gguf_array_get (`data` points at the first element). Values are plain
 * structs: copy them freely while the file is open. */
typedef struct dz_gguf_value {
    dz_gguf_type type;
    dz_gguf_type elem_type; /* ARRAY only */
    uint64_t n;             /* STRING: bytes; ARRAY: elements */
    const uint8_t *data;
    const void *priv;       /* reader internals (element index) */
} dz_gguf_value;

typedef struct dz_gguf_tensor {
    const char *name;        /* NUL-terminated copy */
    dz_type type;
    int32_t n_dims;
    int64_t ne[DZ_MAX_DIMS]; /* ne[i] = 1 for i >= n_dims */
    uint64_t offset;         /* from the start of the data section */
    size_t size;             /* bytes */
    const void *data;        /* into the mapping */
} dz_gguf_tensor;

/* Opens and validates a file: maps it read-only (the descriptor is closed at
 * once; tensor data is never copied). The caller owns *out (dz_gguf_close);
 * on failure *out is untouched. Errors name the file, the defect and where
 * (key, tensor, byte offset): DZ_ERR_IO (missing, a directory, unreadable),
 * DZ_ERR_FORMAT (anything malformed, truncation at any byte included),
 * DZ_ERR_NOMEM. Accepted: versions 2 and 3; keys and tensor names nonempty
 * without NUL bytes and unique; arrays nested at most 32 deep;
 * general.alignment a uint32 power of two (default 32); tensors of 1..4
 * dimensions >= 1, of a known type id (types dizuo cannot compute load fine),
 * rows a whole number of blocks, at aligned, non-overlapping offsets inside
 * the file. Memory used is a small multiple of the file's size, whatever
 * the counts in it claim. An open handle is read-only: every accessor below
 * may be called from any number of threads at once. */
dz_status dz_gguf_open(const char *path, dz_gguf **out);
/* The same over memory the caller keeps alive while the handle lives (no copy). */
dz_status dz_gguf_open_memory(const void *data, size_t size, dz_gguf **out);
void dz_gguf_close(dz_gguf *g); /* NULL is a no-op */

/* File facts. dz_gguf_data_offset: where tensor data starts (the file size
 * when a file without tensors ends before its padding). */
uint32_t dz_gguf_version(const dz_gguf *g);
size_t dz_gguf_alignment(const dz_gguf *g);
size_t dz_gguf_data_offset(const dz_gguf *g); /* file offset of the data section */
const void *dz_gguf_base(const dz_gguf *g);   /* start of the mapping */
size_t dz_gguf_file_size(const dz_gguf *g);

/* KVs in file order. dz_gguf_kv_key: NULL when i is out of range;
 * dz_gguf_kv_value: type DZ_GGUF_TYPE_COUNT and data NULL when out of range.
 * dz_gguf_find_kv is a hash lookup, O(1). */
int64_t dz_gguf_n_kv(const dz_gguf *g);
const char *dz_gguf_kv_key(const dz_gguf *g, int64_t i); /* NUL-terminated copy */
void dz_gguf_kv_value(const dz_gguf *g, int64_t i, dz_gguf_value *out);
int64_t dz_gguf_find_kv(const dz_gguf *g, const char *key); /* -1 if absent */

/* Array element i (i < arr->n); nested arrays give ARRAY values. O(1): the
 * elements of arrays of strings and of arrays are indexed at open.
 * DZ_ERR_ARG if arr is not an array of this file or i is out of range. */
dz_status dz_gguf_array_get(const dz_gguf *g, const dz_gguf_value *arr, uint64_t i,
                            dz_gguf_value *out);

/* Scalar readers. Integers accept any integer type (and BOOL) whose value
 * fits the output (a UINT64 above INT64_MAX fails value_int, a negative value
 * fails value_uint); floats accept FLOAT32/FLOAT64; bools accept BOOL (any
 * nonzero byte is true). DZ_ERR_FORMAT on a type mismatch, *out untouched. */
dz_status dz_gguf_value_int(const dz_gguf_value *v, int64_t *out);
dz_status dz_gguf_value_uint(const dz_gguf_value *v, uint64_t *out);
dz_status dz_gguf_value_float(const dz_gguf_value *v, double *out);
dz_status dz_gguf_value_bool(const dz_gguf_value *v, bool *out);

/* Lookups by key. An absent key is not an error: DZ_OK, *out untouched and
 * *found = false (found may be NULL). A value of the wrong type is
 * DZ_ERR_FORMAT naming the key. */
dz_status dz_gguf_get_int(const dz_gguf *g, const char *key, int64_t *out, bool *found);
dz_status dz_gguf_get_float(const dz_gguf *g, const char *key, double *out, bool *found);
dz_status dz_gguf_get_bool(const dz_gguf *g, const char *key, bool *out, bool *found);
/* String by key: pointer into the mapping and its length (not NUL-terminated). */
dz_status dz_gguf_get_str(const dz_gguf *g, const char *key, const char **out, size_t *len,
                          bool *found);
/* Array by key: *out describes it (type ARRAY). */
dz_status dz_gguf_get_array(const dz_gguf *g, const char *key, dz_gguf_value *out, bool *found);

/* Tensors in file order; dz_gguf_tensor_at is NULL out of range.
 * dz_gguf_find_tensor is a hash lookup, O(1). */
int64_t dz_gguf_n_tensors(const dz_gguf *g);
const dz_gguf_tensor *dz_gguf_tensor_at(const dz_gguf *g, int64_t i);
const dz_gguf_tensor *dz_gguf_find_tensor(const dz_gguf *g, const char *name); /* NULL if absent */

/* ---- writing ---- */

typedef struct dz_gguf_writer dz_gguf_writer;

/* A writer collects KVs and tensors, then writes a v3 file: KVs and tensors
 * in the order first added, the data section and every tensor's data at a
 * multiple of the alignment (zero padding). Setting a key twice replaces the
 * value in place. Tensor data is copied at add time (NULL data: zeros). Bad
 * arguments (empty key, duplicate tensor name, a shape or type the reader
 * would refuse, general.alignment not a uint32 power of two) fail with
 * DZ_ERR_ARG and change nothing. Writing does not change the writer, so it
 * may be written several times. Not thread-safe. */
dz_status dz_gguf_writer_create(dz_gguf_writer **out);
void dz_gguf_writer_destroy(dz_gguf_writer *w); /* NULL is a no-op */
/* Sets general.alignment (a uint32 KV, written to the file); power of 2. */
dz_status dz_gguf_writer_set_alignment(dz_gguf_writer *w, uint32_t alignment);
/* Scalars: `data` is the little-endian value of a non-array, non-string type. */
dz_status dz_gguf_writer_set_scalar(dz_gguf_writer *w, const char *key, dz_gguf_type type,
                                    const void *data);
dz_status dz_gguf_writer_set_u32(dz_gguf_writer *w, const char *key, uint32_t v);
dz_status dz_gguf_writer_set_i32(dz_gguf_writer *w, const char *key, int32_t v);
dz_status dz_gguf_writer_set_f32(dz_gguf_writer *w, const char *key, float v);
dz_status dz_gguf_writer_set_bool(dz_gguf_writer *w, const char *key, bool v);
dz_status dz_gguf_writer_set_str(dz_gguf_writer *w, const char *key, const char *s);
/* Array of a fixed-size scalar type: n elements at data. */
dz_status dz_gguf_writer_set_array(dz_gguf_writer *w, const char *key, dz_gguf_type elem_type,
                                   const void *data, uint64_t n);
dz_status dz_gguf_writer_set_str_array(dz_gguf_writer *w, const char *key,
                                       const char *const *strs, uint64_t n);
/* Copies KV i (any type, nested arrays included) from an open file; the
 * writer keeps its own copy, g may be closed afterwards. */
dz_status dz_gguf_writer_copy_kv(dz_gguf_writer *w, const dz_gguf *g, int64_t i);
dz_status dz_gguf_writer_add_tensor(dz_gguf_writer *w, const char *name, dz_type type,
                                    int n_dims, const int64_t *ne, const void *data);
/* Writes to path via a temporary file beside it, synced and renamed into
 * place: path is either untouched or complete. DZ_ERR_IO names path. */
dz_status dz_gguf_writer_write_file(dz_gguf_writer *w, const char *path);
/* Writes to a malloc'd buffer the caller frees. */
dz_status dz_gguf_writer_write_memory(dz_gguf_writer *w, void **out, size_t *size);

#ifdef __cplusplus
}
#endif
#endif /* DIZUO_GGUF_H */
