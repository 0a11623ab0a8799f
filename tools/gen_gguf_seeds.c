/* Writes the seed corpus of the GGUF fuzzer (fuzz/corpus/gguf/): small valid
 * files covering every value type, arrays of strings, nested arrays, several
 * alignments, versions 2 and 3, and tensors of plain and quantized types.
 * Most are made by the library's writer; nested arrays (which the writer
 * only copies) are encoded by hand.
 *
 * Build and run: see fuzz/README.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/gguf.h"

static const char *out_dir;
static int failures;

static void save(const char *name, const void *data, size_t size) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size) {
        fprintf(stderr, "gen_gguf_seeds: cannot write %s\n", path);
        failures++;
    }
    if (f) fclose(f);
}

/* Writes w as `name` (and, when v2 is set, a version 2 copy). */
static void emit(dz_gguf_writer *w, const char *name, bool v2) {
    void *buf = NULL;
    size_t size = 0;
    if (dz_gguf_writer_write_memory(w, &buf, &size)) {
        fprintf(stderr, "gen_gguf_seeds: %s: %s\n", name, dz_last_error());
        failures++;
        dz_gguf_writer_destroy(w);
        return;
    }
    save(name, buf, size);
    if (v2) {
        uint32_t version = 2;
        memcpy((uint8_t *)buf + 4, &version, 4);
        char v2name[256];
        snprintf(v2name, sizeof v2name, "v2-%s", name);
        save(v2name, buf, size);
    }
    free(buf);
    dz_gguf_writer_destroy(w);
}

static dz_gguf_writer *writer(void) {
    dz_gguf_writer *w = NULL;
    if (dz_gguf_writer_create(&w)) {
        fprintf(stderr, "gen_gguf_seeds: %s\n", dz_last_error());
        exit(1);
    }
    return w;
}

static void seed_empty(void) { emit(writer(), "empty.gguf", false); }

static void seed_scalars(void) {
    dz_gguf_writer *w = writer();
    uint8_t u8 = 7;
    int8_t i8 = -7;
    uint16_t u16 = 700;
    int16_t i16 = -700;
    uint64_t u64 = 1ull << 40;
    int64_t i64 = -(1ll << 40);
    double f64 = 3.25;
    dz_gguf_writer_set_scalar(w, "s.u8", DZ_GGUF_UINT8, &u8);
    dz_gguf_writer_set_scalar(w, "s.i8", DZ_GGUF_INT8, &i8);
    dz_gguf_writer_set_scalar(w, "s.u16", DZ_GGUF_UINT16, &u16);
    dz_gguf_writer_set_scalar(w, "s.i16", DZ_GGUF_INT16, &i16);
    dz_gguf_writer_set_u32(w, "s.u32", 70000);
    dz_gguf_writer_set_i32(w, "s.i32", -70000);
    dz_gguf_writer_set_f32(w, "s.f32", 0.5f);
    dz_gguf_writer_set_bool(w, "s.bool", true);
    dz_gguf_writer_set_scalar(w, "s.u64", DZ_GGUF_UINT64, &u64);
    dz_gguf_writer_set_scalar(w, "s.i64", DZ_GGUF_INT64, &i64);
    dz_gguf_writer_set_scalar(w, "s.f64", DZ_GGUF_FLOAT64, &f64);
    dz_gguf_writer_set_str(w, "s.str", "hello");
    dz_gguf_writer_set_str(w, "s.empty", "");
    int32_t ints[4] = {1, -2, 3, -4};
    float reals[3] = {0.5f, -1.0f, 2.0f};
    uint8_t flags[2] = {1, 0};
    dz_gguf_writer_set_array(w, "a.i32", DZ_GGUF_INT32, ints, 4);
    dz_gguf_writer_set_array(w, "a.f32", DZ_GGUF_FLOAT32, reals, 3);
    dz_gguf_writer_set_array(w, "a.bool", DZ_GGUF_BOOL, flags, 2);
    dz_gguf_writer_set_array(w, "a.none", DZ_GGUF_UINT64, NULL, 0);
    const char *strs[3] = {"a", "", "xyz"};
    dz_gguf_writer_set_str_array(w, "a.str", strs, 3);
    emit(w, "scalars.gguf", true);
}

/* A tiny llama-shaped file: hyper-parameters, a vocabulary, weights. */
static void seed_model(const char *name, uint32_t alignment, dz_type matrix_type) {
    dz_gguf_writer *w = writer();
    dz_gguf_writer_set_str(w, "general.architecture", "llama");
    dz_gguf_writer_set_str(w, "general.name", "seed");
    if (alignment) dz_gguf_writer_set_alignment(w, alignment);
    dz_gguf_writer_set_u32(w, "llama.embedding_length", 32);
    dz_gguf_writer_set_u32(w, "llama.block_count", 1);
    dz_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    const char *toks[8] = {"<unk>", "<s>", "</s>", "a", "b", "ab", "\xe2\x96\x81\x61", "<0x0A>"};
    float scores[8] = {0, 0, 0, -1, -2, -3, -4, -5};
    int32_t types[8] = {2, 3, 3, 1, 1, 1, 1, 6};
    dz_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    dz_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", toks, 8);
    dz_gguf_writer_set_array(w, "tokenizer.ggml.scores", DZ_GGUF_FLOAT32, scores, 8);
    dz_gguf_writer_set_array(w, "tokenizer.ggml.token_type", DZ_GGUF_INT32, types, 8);
    dz_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    uint8_t data[2048];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 37);
    dz_gguf_writer_add_tensor(w, "output_norm.weight", DZ_TYPE_F32, 1, (int64_t[]){32}, data);
    dz_gguf_writer_add_tensor(w, "token_embd.weight", DZ_TYPE_F16, 2, (int64_t[]){32, 8}, data);
    int64_t ne0 = matrix_type == DZ_TYPE_Q4_K ? 256 : 32;
    dz_gguf_writer_add_tensor(w, "blk.0.attn_q.weight", matrix_type, 2, (int64_t[]){ne0, 2}, data);
    dz_gguf_writer_add_tensor(w, "blk.0.cube", DZ_TYPE_I8, 4, (int64_t[]){2, 3, 2, 2}, data);
    emit(w, name, alignment == 0);
}

/* A hand-encoded file, little-endian. */
typedef struct raw {
    uint8_t b[512];
    size_t n;
} raw;

static void raw_put(raw *r, const void *p, size_t n) {
    memcpy(r->b + r->n, p, n);
    r->n += n;
}
static void raw_u32(raw *r, uint32_t v) { raw_put(r, &v, 4); }
static void raw_u64(raw *r, uint64_t v) { raw_put(r, &v, 8); }
static void raw_str(raw *r, const char *s) {
    raw_u64(r, strlen(s));
    raw_put(r, s, strlen(s));
}
static void raw_array(raw *r, uint32_t elem_type, uint64_t n) {
    raw_u32(r, elem_type);
    raw_u64(r, n);
}

/* Nested arrays: n.nested = [[1, 2], [["x"], []], []]. */
static void seed_nested(void) {
    raw r = {.n = 0};
    raw_put(&r, "GGUF", 4);
    raw_u32(&r, 3);
    raw_u64(&r, 0);
    raw_u64(&r, 2);
    raw_str(&r, "n.nested");
    raw_u32(&r, DZ_GGUF_ARRAY);
    raw_array(&r, DZ_GGUF_ARRAY, 3);
    raw_array(&r, DZ_GGUF_UINT32, 2);
    raw_u32(&r, 1);
    raw_u32(&r, 2);
    raw_array(&r, DZ_GGUF_ARRAY, 2);
    raw_array(&r, DZ_GGUF_STRING, 1);
    raw_str(&r, "x");
    raw_array(&r, DZ_GGUF_FLOAT32, 0);
    raw_array(&r, DZ_GGUF_INT8, 0);
    raw_str(&r, "general.name");
    raw_u32(&r, DZ_GGUF_STRING);
    raw_str(&r, "nested");
    save("nested.gguf", r.b, r.n);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: gen_gguf_seeds DIR\n");
        return 2;
    }
    out_dir = argv[1];
    seed_empty();
    seed_scalars();
    seed_model("model-q4_0.gguf", 0, DZ_TYPE_Q4_0);
    seed_model("model-q8_0-align64.gguf", 64, DZ_TYPE_Q8_0);
    seed_model("model-q4_k-align1.gguf", 1, DZ_TYPE_Q4_K);
    seed_nested();
    return failures ? 1 : 0;
}
