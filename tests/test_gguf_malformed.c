/* The GGUF reader against malformed files: each case crafts a file with one
 * defect (tests/support/gguf_craft) and checks that opening it fails with
 * the right status and a message naming the defect; then every prefix of a
 * valid file, which must all fail cleanly. Run under ASan+UBSan too: every
 * file is opened from a heap copy of exactly its size, so any read past the
 * end is caught. */
#include <stdlib.h>
#include <sys/stat.h>

#include "dizuo/gguf.h"
#include "dztest.h"
#include "gguf_craft.h"

enum { T_F32 = 0, T_Q4_0 = 2 };

/* Opens the crafted bytes from an exact-size heap copy. */
static dz_status open_crafted(const gguf_craft *c, size_t n, dz_gguf **g) {
    uint8_t *copy = malloc(n ? n : 1);
    DZT_ASSERT(copy != NULL);
    if (n) memcpy(copy, c->p, n);
    *g = NULL;
    dz_status st = dz_gguf_open_memory(copy, n, g);
    dz_gguf_close(*g);
    free(copy);
    return st;
}

static void expect_fail_at(const char *file, int line, gguf_craft *c, dz_status want, const char *needle) {
    dz_gguf *g = (dz_gguf *)&g; /* a failed open must not touch *out */
    uint8_t *copy = malloc(c->n ? c->n : 1);
    if (c->n) memcpy(copy, c->p, c->n);
    dz_status st = dz_gguf_open_memory(copy, c->n, &g);
    if (st == DZ_OK) dz_gguf_close(g);
    const char *msg = dz_last_error();
    if (getenv("DZT_VERBOSE")) printf("%s:%d: %s\n", file, line, msg);
    DZT_CHECK(st == want, "%s:%d: expected %s, got %s (%s)", file, line, dz_status_str(want),
              dz_status_str(st), msg);
    DZT_CHECK(st == DZ_OK || g == (dz_gguf *)&g, "%s:%d: a failed open changed *out", file, line);
    DZT_CHECK(!needle || strstr(msg, needle), "%s:%d: message \"%s\" does not mention \"%s\"", file,
              line, msg, needle);
    free(copy);
    gguf_craft_free(c);
}
#define EXPECT_FAIL(c, needle) expect_fail_at(__FILE__, __LINE__, (c), DZ_ERR_FORMAT, (needle))

static void expect_ok_at(const char *file, int line, gguf_craft *c) {
    dz_gguf *g = NULL;
    dz_status st = open_crafted(c, c->n, &g);
    DZT_CHECK(st == DZ_OK, "%s:%d: expected success, got %s (%s)", file, line, dz_status_str(st),
              dz_last_error());
    gguf_craft_free(c);
}
#define EXPECT_OK(c) expect_ok_at(__FILE__, __LINE__, (c))

/* A file with one tensor `name` and `data_bytes` zero bytes of data. */
static void one_tensor(gguf_craft *c, const char *name, uint32_t n_dims, const uint64_t *ne,
                       uint32_t type, uint64_t offset, size_t data_bytes) {
    gguf_craft_init(c);
    gguf_craft_header(c, 3, 1, 0);
    gguf_craft_tensor_info(c, name, n_dims, ne, type, offset);
    gguf_craft_pad(c, 32);
    for (size_t i = 0; i < data_bytes; i++) gguf_craft_u8(c, 0);
}

/* A file of KVs only: the header for n_kv of them (the caller adds them). */
static void kv_file(gguf_craft *c, uint64_t n_kv) {
    gguf_craft_init(c);
    gguf_craft_header(c, 3, 0, n_kv);
}

static void test_header(void) {
    gguf_craft c;
    kv_file(&c, 0);
    EXPECT_OK(&c);

    kv_file(&c, 0);
    memcpy(c.p, "GGUX", 4);
    EXPECT_FAIL(&c, "magic");
    gguf_craft_init(&c);
    gguf_craft_bytes(&c, "PK\3\4", 4);
    EXPECT_FAIL(&c, "magic");

    uint32_t bad_versions[] = {0, 1, 4, 0x03000000};
    const char *needles[] = {"version 0", "version 1", "version 4", "big-endian"};
    for (int i = 0; i < 4; i++) {
        gguf_craft_init(&c);
        gguf_craft_header(&c, bad_versions[i], 0, 0);
        EXPECT_FAIL(&c, needles[i]);
    }
    gguf_craft_init(&c); /* version 2 is read like 3 */
    gguf_craft_header(&c, 2, 0, 1);
    gguf_craft_kv_u32(&c, "general.quantization_version", 2);
    EXPECT_OK(&c);

    /* Counts no file could hold, and counts just above the real ones. */
    gguf_craft_init(&c);
    gguf_craft_header(&c, 3, 1ull << 62, 0);
    EXPECT_FAIL(&c, "n_tensors = 4611686018427387904");
    gguf_craft_init(&c);
    gguf_craft_header(&c, 3, 0, 1ull << 62);
    EXPECT_FAIL(&c, "n_kv = 4611686018427387904");
    gguf_craft_init(&c);
    gguf_craft_header(&c, 3, UINT64_MAX, UINT64_MAX);
    EXPECT_FAIL(&c, "n_kv");
    kv_file(&c, 2);
    gguf_craft_kv_u32(&c, "a.b", 1);
    EXPECT_FAIL(&c, "n_kv = 2");
    kv_file(&c, 3); /* room for 3 minimal KVs, but the first one is long */
    gguf_craft_kv_str(&c, "general.name", "a name long enough to hold two more minimal KVs");
    EXPECT_FAIL(&c, "end of file");
    uint64_t ne[1] = {8};
    one_tensor(&c, "t", 1, ne, T_F32, 0, 32);
    gguf_craft_patch_u64(&c, 8, 2); /* n_tensors 2: the second info is read from the padding */
    EXPECT_FAIL(&c, "tensor 1: tensor name at byte 57 is empty");
    one_tensor(&c, "t", 1, ne, T_F32, 0, 0);
    gguf_craft_patch_u64(&c, 8, 2); /* too few bytes left for a second info */
    EXPECT_FAIL(&c, "n_tensors = 2");

    /* The header itself cut short. */
    gguf_craft_init(&c);
    gguf_craft_bytes(&c, "GGU", 3);
    EXPECT_FAIL(&c, "end of file");
    gguf_craft_init(&c);
    EXPECT_FAIL(&c, "magic");
}

static void test_keys_and_strings(void) {
    gguf_craft c;
    kv_file(&c, 1); /* key length past the end */
    gguf_craft_u64(&c, 1000);
    gguf_craft_bytes(&c, "general.name", 12);
    EXPECT_FAIL(&c, "key at byte 24 has length 1000, past the end");
    kv_file(&c, 1); /* key length 2^64-1 */
    gguf_craft_u64(&c, UINT64_MAX);
    gguf_craft_bytes(&c, "general.name", 12);
    gguf_craft_u32(&c, 4);
    EXPECT_FAIL(&c, "length 18446744073709551615");
    kv_file(&c, 1);
    gguf_craft_kv_u32(&c, "", 1);
    EXPECT_FAIL(&c, "empty");
    kv_file(&c, 1);
    gguf_craft_u64(&c, 3);
    gguf_craft_bytes(&c, "a\0b", 3);
    gguf_craft_u32(&c, 4);
    gguf_craft_u32(&c, 1);
    EXPECT_FAIL(&c, "NUL");

    kv_file(&c, 1); /* string value length past the end */
    gguf_craft_key(&c, "general.name", 8);
    gguf_craft_u64(&c, 100);
    gguf_craft_bytes(&c, "llama", 5);
    EXPECT_FAIL(&c, "key 'general.name': the string at byte");
    kv_file(&c, 1);
    gguf_craft_key(&c, "general.name", 8);
    gguf_craft_u64(&c, UINT64_MAX - 3);
    gguf_craft_bytes(&c, "llama", 5);
    EXPECT_FAIL(&c, "past the end");

    kv_file(&c, 2);
    gguf_craft_kv_u32(&c, "llama.block_count", 4);
    gguf_craft_kv_u32(&c, "llama.block_count", 5);
    EXPECT_FAIL(&c, "duplicate key 'llama.block_count'");

    uint32_t bad_types[] = {13, 0xFFFFFFFFu};
    const char *needles[] = {"unknown value type 13", "unknown value type 4294967295"};
    for (int i = 0; i < 2; i++) {
        kv_file(&c, 1);
        gguf_craft_key(&c, "x.y", bad_types[i]);
        gguf_craft_u64(&c, 0);
        EXPECT_FAIL(&c, needles[i]);
    }
    kv_file(&c, 1); /* a scalar cut short */
    gguf_craft_key(&c, "x.y", 10 /* UINT64 */);
    gguf_craft_u32(&c, 7);
    EXPECT_FAIL(&c, "key 'x.y'");
}

static void test_arrays(void) {
    gguf_craft c;
    kv_file(&c, 1); /* array length past the end */
    gguf_craft_key(&c, "tokenizer.ggml.scores", 9);
    gguf_craft_array(&c, 6, 10);
    gguf_craft_f32(&c, 1.0f);
    EXPECT_FAIL(&c, "key 'tokenizer.ggml.scores': array at byte");
    kv_file(&c, 1); /* a length whose byte size overflows */
    gguf_craft_key(&c, "tokenizer.ggml.scores", 9);
    gguf_craft_array(&c, 4, UINT64_MAX / 2);
    gguf_craft_u32(&c, 1);
    EXPECT_FAIL(&c, "claims 9223372036854775807 elements");
    kv_file(&c, 1); /* strings: more than the bytes left could hold */
    gguf_craft_key(&c, "tokenizer.ggml.tokens", 9);
    gguf_craft_array(&c, 8, 1ull << 40);
    gguf_craft_str(&c, "a");
    EXPECT_FAIL(&c, "claims 1099511627776 elements of type string");
    kv_file(&c, 1); /* a string element past the end */
    gguf_craft_key(&c, "tokenizer.ggml.tokens", 9);
    gguf_craft_array(&c, 8, 2);
    gguf_craft_str(&c, "a");
    gguf_craft_u64(&c, 50);
    gguf_craft_bytes(&c, "bcdefgh", 7);
    EXPECT_FAIL(&c, "key 'tokenizer.ggml.tokens', element [1]: the string");

    kv_file(&c, 1); /* unknown element type */
    gguf_craft_key(&c, "x.arr", 9);
    gguf_craft_array(&c, 13, 1);
    gguf_craft_u32(&c, 0);
    EXPECT_FAIL(&c, "unknown element type 13");

    /* Nested arrays: the inner length past the end, an inner bad type. */
    kv_file(&c, 1);
    gguf_craft_key(&c, "x.nested", 9);
    gguf_craft_array(&c, 9, 2);
    gguf_craft_array(&c, 4, 1);
    gguf_craft_u32(&c, 7);
    gguf_craft_array(&c, 4, 1000);
    gguf_craft_u32(&c, 7);
    EXPECT_FAIL(&c, "key 'x.nested', element [1]: array at byte 72 claims 1000");
    kv_file(&c, 1);
    gguf_craft_key(&c, "x.nested", 9);
    gguf_craft_array(&c, 9, 1);
    gguf_craft_array(&c, 9, 1);
    gguf_craft_array(&c, 99, 0);
    EXPECT_FAIL(&c, "key 'x.nested', element [0][0]: array at byte 68 has unknown element type 99");
    kv_file(&c, 1); /* outer count larger than the elements present */
    gguf_craft_key(&c, "x.nested", 9);
    gguf_craft_array(&c, 9, 3);
    gguf_craft_array(&c, 8, 1);
    gguf_craft_str(&c, "abc");
    gguf_craft_array(&c, 8, 0);
    EXPECT_FAIL(&c, "key 'x.nested': array at byte 44 claims 3 elements");
    kv_file(&c, 1); /* nested far too deep */
    gguf_craft_key(&c, "x.deep", 9);
    for (int i = 0; i < 1000; i++) gguf_craft_array(&c, 9, 1);
    gguf_craft_array(&c, 4, 0);
    EXPECT_FAIL(&c, "nested more than 32 deep");
    kv_file(&c, 1); /* but a few levels are fine */
    gguf_craft_key(&c, "x.deep", 9);
    for (int i = 0; i < 8; i++) gguf_craft_array(&c, 9, 1);
    gguf_craft_array(&c, 4, 0);
    EXPECT_OK(&c);
}

static void test_tensor_infos(void) {
    gguf_craft c;
    uint64_t ne[5] = {8, 2, 1, 1, 1};
    one_tensor(&c, "w", 2, ne, T_F32, 0, 64);
    EXPECT_OK(&c);

    gguf_craft_init(&c);
    gguf_craft_header(&c, 3, 2, 0);
    gguf_craft_tensor_info(&c, "blk.0.w", 1, ne, T_F32, 0);
    gguf_craft_tensor_info(&c, "blk.0.w", 1, ne, T_F32, 32);
    gguf_craft_pad(&c, 32);
    for (int i = 0; i < 64; i++) gguf_craft_u8(&c, 0);
    EXPECT_FAIL(&c, "duplicate tensor name 'blk.0.w'");

    one_tensor(&c, "w0", 0, ne, T_F32, 0, 64);
    EXPECT_FAIL(&c, "tensor 'w0': n_dims = 0");
    one_tensor(&c, "w5", 5, ne, T_F32, 0, 64);
    EXPECT_FAIL(&c, "tensor 'w5': n_dims = 5");
    one_tensor(&c, "wbig", 1, ne, T_F32, 0, 64);
    gguf_craft_patch_u32(&c, 24 + 8 + 4, 0xFFFFFFFFu);
    EXPECT_FAIL(&c, "tensor 'wbig': n_dims = 4294967295");

    uint64_t zero[2] = {8, 0};
    one_tensor(&c, "wz", 2, zero, T_F32, 0, 64);
    EXPECT_FAIL(&c, "tensor 'wz': dimension 1 at byte");
    uint64_t neg[2] = {8, 1ull << 63};
    one_tensor(&c, "wn", 2, neg, T_F32, 0, 64);
    EXPECT_FAIL(&c, "negative");
    uint64_t neg1[1] = {UINT64_MAX};
    one_tensor(&c, "wn1", 1, neg1, T_F32, 0, 64);
    EXPECT_FAIL(&c, "tensor 'wn1': dimension 0");
    uint64_t prod[3] = {1ull << 32, 1ull << 32, 4};
    one_tensor(&c, "wp", 3, prod, T_F32, 0, 64);
    EXPECT_FAIL(&c, "tensor 'wp': the number of elements overflows");
    uint64_t bytes_ovf[2] = {1ull << 32, 1ull << 30}; /* 2^62 elements, 2^64 bytes as F32 */
    one_tensor(&c, "wb", 2, bytes_ovf, T_F32, 0, 64);
    EXPECT_FAIL(&c, "tensor 'wb': the data size overflows");
    uint64_t huge[1] = {1ull << 40}; /* fine as a shape, but not in this file */
    one_tensor(&c, "wh", 1, huge, T_F32, 0, 64);
    EXPECT_FAIL(&c, "tensor 'wh': data at offset 0");

    uint64_t q33[1] = {33};
    one_tensor(&c, "q", 1, q33, T_Q4_0, 0, 64);
    EXPECT_FAIL(&c, "tensor 'q': row of 33 elements is not a multiple of Q4_0's block size 32");
    uint64_t q32[1] = {32};
    one_tensor(&c, "q", 1, q32, T_Q4_0, 0, 18);
    EXPECT_OK(&c);
    one_tensor(&c, "iq", 1, (uint64_t[]){256}, 16 /* IQ2_XXS: loads, not computable */, 0, 66);
    EXPECT_OK(&c);

    uint32_t bad_types[] = {4, 5, 31, 33, 36, 40, 1000, 0xFFFFFFFFu};
    for (int i = 0; i < 8; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "tensor 'w': unknown type id %u", bad_types[i]);
        one_tensor(&c, "w", 1, ne, bad_types[i], 0, 64);
        EXPECT_FAIL(&c, needle);
    }

    gguf_craft_init(&c); /* tensor name past the end */
    gguf_craft_header(&c, 3, 1, 0);
    gguf_craft_u64(&c, 1ull << 50);
    gguf_craft_bytes(&c, "tensor", 6);
    for (int i = 0; i < 40; i++) gguf_craft_u8(&c, 0);
    EXPECT_FAIL(&c, "tensor 0: a tensor name at byte 24");
    one_tensor(&c, "", 1, ne, T_F32, 0, 64);
    EXPECT_FAIL(&c, "empty");
}

static void test_tensor_data(void) {
    gguf_craft c;
    uint64_t ne[1] = {8}; /* F32: 32 bytes */
    one_tensor(&c, "w", 1, ne, T_F32, 0, 31);
    EXPECT_FAIL(&c, "tensor 'w': data at offset 0, 32 bytes, runs past the end");
    one_tensor(&c, "w", 1, ne, T_F32, 64, 64);
    EXPECT_FAIL(&c, "runs past the end");
    one_tensor(&c, "w", 1, ne, T_F32, UINT64_MAX - 31, 64); /* offset + size wraps */
    EXPECT_FAIL(&c, "runs past the end");
    one_tensor(&c, "w", 1, ne, T_F32, 16, 64);
    EXPECT_FAIL(&c, "tensor 'w': offset 16 is not a multiple of the alignment 32");
    one_tensor(&c, "w", 1, ne, T_F32, 0, 0); /* no data section at all */
    EXPECT_FAIL(&c, "past the end");

    uint64_t ne16[1] = {16}; /* 64 bytes */
    gguf_craft_init(&c);
    gguf_craft_header(&c, 3, 2, 0);
    gguf_craft_tensor_info(&c, "first", 1, ne16, T_F32, 0);
    gguf_craft_tensor_info(&c, "second", 1, ne, T_F32, 32);
    gguf_craft_pad(&c, 32);
    for (int i = 0; i < 96; i++) gguf_craft_u8(&c, 0);
    EXPECT_FAIL(&c, "tensors 'first' (offset 0, 64 bytes) and 'second' (offset 32) overlap");
    gguf_craft_init(&c); /* the same offset twice */
    gguf_craft_header(&c, 3, 2, 0);
    gguf_craft_tensor_info(&c, "a", 1, ne, T_F32, 0);
    gguf_craft_tensor_info(&c, "b", 1, ne, T_F32, 0);
    gguf_craft_pad(&c, 32);
    for (int i = 0; i < 64; i++) gguf_craft_u8(&c, 0);
    EXPECT_FAIL(&c, "overlap");
    gguf_craft_init(&c); /* out of order but disjoint is fine */
    gguf_craft_header(&c, 3, 2, 0);
    gguf_craft_tensor_info(&c, "a", 1, ne, T_F32, 32);
    gguf_craft_tensor_info(&c, "b", 1, ne, T_F32, 0);
    gguf_craft_pad(&c, 32);
    for (int i = 0; i < 64; i++) gguf_craft_u8(&c, 0);
    EXPECT_OK(&c);
}

static void alignment_file(gguf_craft *c, uint32_t type, uint64_t value) {
    gguf_craft_init(c);
    gguf_craft_header(c, 3, 0, 1);
    gguf_craft_key(c, "general.alignment", type);
    if (type == 8) gguf_craft_str(c, "32");
    else if (type == 10) gguf_craft_u64(c, value);
    else gguf_craft_u32(c, (uint32_t)value);
}

static void test_alignment(void) {
    gguf_craft c;
    alignment_file(&c, 4, 0);
    EXPECT_FAIL(&c, "'general.alignment' = 0");
    alignment_file(&c, 4, 3);
    EXPECT_FAIL(&c, "power of two");
    alignment_file(&c, 4, 0x80000001u);
    EXPECT_FAIL(&c, "power of two");
    alignment_file(&c, 8, 0);
    EXPECT_FAIL(&c, "'general.alignment' has type string");
    alignment_file(&c, 10, 32);
    EXPECT_FAIL(&c, "'general.alignment' has type uint64");
    alignment_file(&c, 5, 32); /* int32 is not uint32 */
    EXPECT_FAIL(&c, "uint32");
    alignment_file(&c, 4, 1);
    EXPECT_OK(&c);

    /* Alignment 64: data section and offsets follow it. */
    uint64_t ne[1] = {8};
    gguf_craft_init(&c);
    gguf_craft_header(&c, 3, 2, 1);
    gguf_craft_kv_u32(&c, "general.alignment", 64);
    gguf_craft_tensor_info(&c, "a", 1, ne, T_F32, 0);
    gguf_craft_tensor_info(&c, "b", 1, ne, T_F32, 32); /* aligned to 32 but not to 64 */
    gguf_craft_pad(&c, 64);
    for (int i = 0; i < 64; i++) gguf_craft_u8(&c, 0);
    EXPECT_FAIL(&c, "tensor 'b': offset 32 is not a multiple of the alignment 64");

    gguf_craft_init(&c);
    gguf_craft_header(&c, 3, 1, 1);
    gguf_craft_kv_u32(&c, "general.alignment", 64);
    gguf_craft_tensor_info(&c, "a", 1, ne, T_F32, 0);
    size_t infos_end = c.n;
    gguf_craft_pad(&c, 64);
    for (int i = 0; i < 32; i++) gguf_craft_u8(&c, (uint8_t)i);
    dz_gguf *g = NULL;
    DZT_OK(dz_gguf_open_memory(c.p, c.n, &g));
    if (g) {
        DZT_EQ_INT(dz_gguf_alignment(g), 64);
        DZT_EQ_INT(dz_gguf_data_offset(g), (infos_end + 63) / 64 * 64);
        DZT_EQ_INT(((const uint8_t *)dz_gguf_find_tensor(g, "a")->data)[5], 5);
    }
    dz_gguf_close(g);
    gguf_craft_free(&c);
}

/* A small valid file with every kind of value, nested arrays and two
 * tensors, the last one ending exactly at the end of the file. */
static void full_file(gguf_craft *c) {
    gguf_craft_init(c);
    gguf_craft_header(c, 3, 2, 9);
    gguf_craft_kv_str(c, "general.architecture", "llama");
    gguf_craft_kv_u32(c, "general.alignment", 32);
    gguf_craft_key(c, "a.u8", 0), gguf_craft_u8(c, 7);
    gguf_craft_key(c, "a.i16", 3), gguf_craft_u16(c, 0xFFFF);
    gguf_craft_key(c, "a.f64", 12), gguf_craft_f64(c, 0.5);
    gguf_craft_key(c, "a.bool", 7), gguf_craft_u8(c, 1);
    gguf_craft_key(c, "a.tokens", 9), gguf_craft_array(c, 8, 3);
    gguf_craft_str(c, "x"), gguf_craft_str(c, ""), gguf_craft_str(c, "yz");
    gguf_craft_key(c, "a.ints", 9), gguf_craft_array(c, 5, 2);
    gguf_craft_u32(c, 1), gguf_craft_u32(c, 2);
    gguf_craft_key(c, "a.nested", 9), gguf_craft_array(c, 9, 2);
    gguf_craft_array(c, 8, 1), gguf_craft_str(c, "in");
    gguf_craft_array(c, 6, 1), gguf_craft_f32(c, 2.0f);
    uint64_t ne_a[2] = {4, 2}, ne_b[1] = {32};
    gguf_craft_tensor_info(c, "a", 2, ne_a, T_F32, 0);
    gguf_craft_tensor_info(c, "b", 1, ne_b, T_Q4_0, 32);
    gguf_craft_pad(c, 32);
    for (int i = 0; i < 32 + 18; i++) gguf_craft_u8(c, (uint8_t)i);
}

static void test_truncation(void) {
    gguf_craft c;
    full_file(&c);
    dz_gguf *g = NULL;
    DZT_OK(open_crafted(&c, c.n, &g));
    int ok_prefixes = 0, bad_status = 0, no_message = 0;
    for (size_t n = 0; n < c.n; n++) {
        dz_clear_error();
        dz_status st = open_crafted(&c, n, &g);
        if (st == DZ_OK) ok_prefixes++;
        else if (st != DZ_ERR_FORMAT) bad_status++;
        else if (!dz_last_error()[0]) no_message++;
    }
    DZT_EQ_INT(ok_prefixes, 0);
    DZT_EQ_INT(bad_status, 0);
    DZT_EQ_INT(no_message, 0);
    /* A cut inside a key's value names the key (a.tokens spans bytes 182..240). */
    open_crafted(&c, 230, &g);
    DZT_CHECK(strstr(dz_last_error(), "key 'a.tokens'") != NULL, "%s", dz_last_error());
    gguf_craft_free(&c);
}

static void test_files(void) {
    const char *dir = dzt_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/no-such-model.gguf", dir);
    dz_gguf *g = NULL;
    DZT_FAILS(dz_gguf_open(path, &g), DZ_ERR_IO);
    DZT_CHECK(strstr(dz_last_error(), path) != NULL, "%s", dz_last_error());
    DZT_ASSERT(g == NULL);
    DZT_FAILS(dz_gguf_open(dir, &g), DZ_ERR_IO);
    DZT_CHECK(strstr(dz_last_error(), "directory") && strstr(dz_last_error(), dir), "%s", dz_last_error());

    snprintf(path, sizeof path, "%s/empty.gguf", dir);
    FILE *f = fopen(path, "wb");
    DZT_ASSERT(f != NULL);
    if (f) fclose(f);
    DZT_FAILS(dz_gguf_open(path, &g), DZ_ERR_FORMAT);
    DZT_CHECK(strstr(dz_last_error(), path) != NULL, "%s", dz_last_error());

    /* A defect found in a file names the file. */
    snprintf(path, sizeof path, "%s/bad-version.gguf", dir);
    gguf_craft c;
    gguf_craft_init(&c);
    gguf_craft_header(&c, 1, 0, 0);
    f = fopen(path, "wb");
    if (f) {
        fwrite(c.p, 1, c.n, f);
        fclose(f);
    }
    gguf_craft_free(&c);
    DZT_FAILS(dz_gguf_open(path, &g), DZ_ERR_FORMAT);
    DZT_CHECK(strstr(dz_last_error(), path) && strstr(dz_last_error(), "version 1"), "%s",
              dz_last_error());
    DZT_ASSERT(g == NULL);
    DZT_FAILS(dz_gguf_open_memory(NULL, 10, &g), DZ_ERR_ARG);
}

int main(void) {
    test_header();
    test_keys_and_strings();
    test_arrays();
    test_tensor_infos();
    test_tensor_data();
    test_alignment();
    test_truncation();
    test_files();
    return dzt_done();
}
