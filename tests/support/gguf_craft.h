/* A raw byte builder for GGUF files, for tests that need files the writer
 * would never produce: each test crafts a valid file, then breaks it in one
 * targeted way (a length past the end, an unknown type, ...). Nothing here
 * validates: it writes exactly what it is told, little-endian.
 * Allocation failure exits the test program. */
#ifndef GGUF_CRAFT_H
#define GGUF_CRAFT_H

#include <stddef.h>
#include <stdint.h>

typedef struct gguf_craft {
    uint8_t *p;
    size_t n, cap;
} gguf_craft;

void gguf_craft_init(gguf_craft *c);
void gguf_craft_free(gguf_craft *c);

void gguf_craft_bytes(gguf_craft *c, const void *data, size_t n);
void gguf_craft_u8(gguf_craft *c, uint8_t v);
void gguf_craft_u16(gguf_craft *c, uint16_t v);
void gguf_craft_u32(gguf_craft *c, uint32_t v);
void gguf_craft_u64(gguf_craft *c, uint64_t v);
void gguf_craft_f32(gguf_craft *c, float v);
void gguf_craft_f64(gguf_craft *c, double v);
/* A GGUF string: u64 length, then the bytes of s (no NUL). */
void gguf_craft_str(gguf_craft *c, const char *s);
/* Zero bytes up to the next multiple of alignment. */
void gguf_craft_pad(gguf_craft *c, size_t alignment);
/* Overwrites 4 or 8 bytes at pos (which must be inside the file). */
void gguf_craft_patch_u32(gguf_craft *c, size_t pos, uint32_t v);
void gguf_craft_patch_u64(gguf_craft *c, size_t pos, uint64_t v);

/* "GGUF", version, n_tensors, n_kv. */
void gguf_craft_header(gguf_craft *c, uint32_t version, uint64_t n_tensors, uint64_t n_kv);
/* The key and the value type of a KV; the value follows. */
void gguf_craft_key(gguf_craft *c, const char *key, uint32_t type);
void gguf_craft_kv_u32(gguf_craft *c, const char *key, uint32_t v);
void gguf_craft_kv_str(gguf_craft *c, const char *key, const char *s);
/* An array header: element type and count; the elements follow. */
void gguf_craft_array(gguf_craft *c, uint32_t elem_type, uint64_t n);
/* A tensor info: name, n_dims, ne[0..n_dims-1], type, offset. */
void gguf_craft_tensor_info(gguf_craft *c, const char *name, uint32_t n_dims, const uint64_t *ne,
                            uint32_t type, uint64_t offset);

#endif
