/* gguf internals shared by the reader, the accessors and the writer. */
#ifndef DZ_GGUF_IMPL_H
#define DZ_GGUF_IMPL_H

#include "dizuo/gguf.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "dizuo's gguf layer reads little-endian values in place: big-endian hosts are not supported"
#endif

enum {
    DZ_GGUF_DEFAULT_ALIGNMENT = 32,
    /* Arrays of arrays nest at most this deep (real files nest 2 deep); the
     * reader recurses once per level, so the limit bounds its stack. */
    DZ_GGUF_MAX_DEPTH = 32,
};

#define DZ_GGUF_ALIGNMENT_KEY "general.alignment"

/* Bytes of one value of a fixed-size type; 0 for STRING, ARRAY and unknown ids. */
static inline size_t gguf_scalar_size(uint32_t t) {
    switch (t) {
    case DZ_GGUF_UINT8: case DZ_GGUF_INT8: case DZ_GGUF_BOOL: return 1;
    case DZ_GGUF_UINT16: case DZ_GGUF_INT16: return 2;
    case DZ_GGUF_UINT32: case DZ_GGUF_INT32: case DZ_GGUF_FLOAT32: return 4;
    case DZ_GGUF_UINT64: case DZ_GGUF_INT64: case DZ_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static inline bool gguf_type_valid(uint32_t t) { return t < DZ_GGUF_TYPE_COUNT; }

/* Element index of an array whose elements vary in size (strings, arrays),
 * built at open so that element i is found in O(1). Arrays of fixed-size
 * elements need none (element i is at data + i * size). */
typedef struct gguf_index {
    uint64_t n;
    const uint8_t **elem;     /* start of element i: a string's length field, an array's header */
    struct gguf_index *child; /* arrays of arrays: element i's own index; else NULL */
} gguf_index;

typedef struct gguf_kv {
    char *key;           /* NUL-terminated copy */
    dz_gguf_value value; /* value.priv = &index for arrays of strings/arrays */
    gguf_index index;
    const uint8_t *raw;  /* the encoded value (after the type field), for copying */
    size_t raw_size;
} gguf_kv;

/* Open-addressing hash map from a NUL-terminated name to an index. */
typedef struct gguf_map_slot {
    const char *name; /* NULL: empty */
    int64_t index;
} gguf_map_slot;

typedef struct gguf_map {
    gguf_map_slot *slots;
    size_t mask;   /* capacity - 1 (capacity a power of two) */
    uint64_t seed; /* of the hash */
} gguf_map;

/* Capacity for n names (load at most 1/2). DZ_ERR_NOMEM on failure. */
dz_status gguf_map_init(gguf_map *m, int64_t n);
void gguf_map_free(gguf_map *m);
/* Inserts name -> index; if name is present, returns false and sets *existing. */
bool gguf_map_insert(gguf_map *m, const char *name, int64_t index, int64_t *existing);
int64_t gguf_map_find(const gguf_map *m, const char *name); /* -1 if absent */

struct dz_gguf {
    const uint8_t *base; /* the whole file */
    size_t size;
    bool mapped;         /* base is our mmap (else the caller's memory) */
    uint32_t version;
    size_t alignment;
    size_t data_offset;

    int64_t n_kv;
    gguf_kv *kv;
    int64_t n_tensors;
    dz_gguf_tensor *tensors;
    gguf_map kv_map;
    gguf_map tensor_map;
};

/* Frees an index tree (not the struct itself). */
void gguf_index_free(gguf_index *idx);

#endif
