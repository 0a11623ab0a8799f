/* The GGUF layer: writer -> reader round trips (every value type, nested
 * arrays through copy_kv, alignment, tensor layout), accessor semantics, and
 * the real files in ../shared checked against facts known about them. */
#include <stdlib.h>
#include <time.h>

#include "dizuo/gguf.h"
#include "dztest.h"
#include "gguf_craft.h"

/* ---- helpers ---- */

/* Deep equality of two values (possibly from different files). */
static bool value_equal(const dz_gguf *ga, const dz_gguf_value *a, const dz_gguf *gb,
                        const dz_gguf_value *b) {
    if (a->type != b->type) return false;
    if (a->type == DZ_GGUF_STRING) return a->n == b->n && !memcmp(a->data, b->data, a->n);
    if (a->type != DZ_GGUF_ARRAY) {
        static const size_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
        return !memcmp(a->data, b->data, sizes[a->type]);
    }
    if (a->elem_type != b->elem_type || a->n != b->n) return false;
    for (uint64_t i = 0; i < a->n; i++) {
        dz_gguf_value ea, eb;
        if (dz_gguf_array_get(ga, a, i, &ea) || dz_gguf_array_get(gb, b, i, &eb)) return false;
        if (!value_equal(ga, &ea, gb, &eb)) return false;
    }
    return true;
}

/* Every KV and tensor of a is in b, identical (b may have more KVs). */
static void check_same_content(const dz_gguf *a, const dz_gguf *b) {
    for (int64_t i = 0; i < dz_gguf_n_kv(a); i++) {
        const char *key = dz_gguf_kv_key(a, i);
        int64_t j = dz_gguf_find_kv(b, key);
        DZT_CHECK(j >= 0, "key '%s' missing after the round trip", key);
        if (j < 0) continue;
        dz_gguf_value va, vb;
        dz_gguf_kv_value(a, i, &va);
        dz_gguf_kv_value(b, j, &vb);
        DZT_CHECK(value_equal(a, &va, b, &vb), "key '%s' differs after the round trip", key);
    }
    DZT_EQ_INT(dz_gguf_n_tensors(b), dz_gguf_n_tensors(a));
    for (int64_t i = 0; i < dz_gguf_n_tensors(a); i++) {
        const dz_gguf_tensor *ta = dz_gguf_tensor_at(a, i);
        const dz_gguf_tensor *tb = dz_gguf_find_tensor(b, ta->name);
        DZT_CHECK(tb != NULL, "tensor '%s' missing after the round trip", ta->name);
        if (!tb) continue;
        DZT_CHECK(ta->type == tb->type && ta->n_dims == tb->n_dims && ta->size == tb->size &&
                      !memcmp(ta->ne, tb->ne, sizeof ta->ne) && !memcmp(ta->data, tb->data, ta->size),
                  "tensor '%s' differs after the round trip", ta->name);
        DZT_EQ_INT((dz_gguf_data_offset(b) + tb->offset) % dz_gguf_alignment(b), 0);
    }
}

static dz_gguf_value kv(const dz_gguf *g, const char *key) {
    dz_gguf_value v;
    int64_t i = dz_gguf_find_kv(g, key);
    DZT_CHECK(i >= 0, "key '%s' is absent", key);
    dz_gguf_kv_value(g, i, &v);
    return v;
}

static bool str_is(const dz_gguf_value *v, const char *s) {
    return v->type == DZ_GGUF_STRING && v->n == strlen(s) && !memcmp(v->data, s, v->n);
}

static bool elem_str_is(const dz_gguf *g, const dz_gguf_value *arr, uint64_t i, const char *s) {
    dz_gguf_value e;
    return !dz_gguf_array_get(g, arr, i, &e) && str_is(&e, s);
}

/* ---- writer -> reader ---- */

static void fill(uint8_t *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

static void test_roundtrip_values(void) {
    dz_gguf_writer *w = NULL;
    DZT_OK(dz_gguf_writer_create(&w));
    if (!w) return;
    uint8_t u8 = 200;
    int8_t i8 = -5;
    uint16_t u16 = 60000;
    int16_t i16 = -300;
    int32_t i32 = -2000000000;
    uint64_t u64 = (1ull << 63) + 5;
    int64_t i64 = -(1ll << 40);
    double f64 = -0.125;
    DZT_OK(dz_gguf_writer_set_str(w, "general.architecture", "llama"));
    DZT_OK(dz_gguf_writer_set_scalar(w, "t.u8", DZ_GGUF_UINT8, &u8));
    DZT_OK(dz_gguf_writer_set_scalar(w, "t.i8", DZ_GGUF_INT8, &i8));
    DZT_OK(dz_gguf_writer_set_scalar(w, "t.u16", DZ_GGUF_UINT16, &u16));
    DZT_OK(dz_gguf_writer_set_scalar(w, "t.i16", DZ_GGUF_INT16, &i16));
    DZT_OK(dz_gguf_writer_set_u32(w, "t.u32", 4000000000u));
    DZT_OK(dz_gguf_writer_set_i32(w, "t.i32", i32));
    DZT_OK(dz_gguf_writer_set_f32(w, "t.f32", 1.5f));
    DZT_OK(dz_gguf_writer_set_bool(w, "t.bool", true));
    DZT_OK(dz_gguf_writer_set_scalar(w, "t.u64", DZ_GGUF_UINT64, &u64));
    DZT_OK(dz_gguf_writer_set_scalar(w, "t.i64", DZ_GGUF_INT64, &i64));
    DZT_OK(dz_gguf_writer_set_scalar(w, "t.f64", DZ_GGUF_FLOAT64, &f64));
    DZT_OK(dz_gguf_writer_set_str(w, "t.str", "na\xc3\xafve \xe4\xb8\xad"));
    DZT_OK(dz_gguf_writer_set_str(w, "t.empty", ""));
    int32_t ints[3] = {1, -2, 3};
    double reals[2] = {0.25, -1e300};
    DZT_OK(dz_gguf_writer_set_array(w, "t.ints", DZ_GGUF_INT32, ints, 3));
    DZT_OK(dz_gguf_writer_set_array(w, "t.reals", DZ_GGUF_FLOAT64, reals, 2));
    DZT_OK(dz_gguf_writer_set_array(w, "t.none", DZ_GGUF_UINT8, NULL, 0));
    const char *toks[3] = {"a", "", "b c"};
    DZT_OK(dz_gguf_writer_set_str_array(w, "t.tokens", toks, 3));
    DZT_OK(dz_gguf_writer_set_str_array(w, "t.no_tokens", NULL, 0));
    DZT_OK(dz_gguf_writer_set_u32(w, "t.twice", 1));
    DZT_OK(dz_gguf_writer_set_str(w, "t.twice", "two")); /* replaces, keeps its place */
    DZT_OK(dz_gguf_writer_set_alignment(w, 64));

    /* Tensors: sizes by hand. F32 5x3: 60 B; F16 8x2x2: 64 B; Q8_0 64x2: 2 rows of 2 blocks of
     * 34 B = 136 B; I32 2x3x4x5: 480 B; Q4_0 32: 18 B. */
    struct { const char *name; dz_type type; int n_dims; int64_t ne[4]; size_t size; } ts[] = {
        {"f32", DZ_TYPE_F32, 2, {5, 3, 1, 1}, 60},
        {"f16", DZ_TYPE_F16, 3, {8, 2, 2, 1}, 64},
        {"q8", DZ_TYPE_Q8_0, 2, {64, 2, 1, 1}, 136},
        {"blk.0.i32", DZ_TYPE_I32, 4, {2, 3, 4, 5}, 480},
        {"q4", DZ_TYPE_Q4_0, 1, {32, 1, 1, 1}, 18},
    };
    enum { NT = sizeof ts / sizeof ts[0] };
    uint8_t data[NT][512];
    for (int i = 0; i < NT; i++) {
        fill(data[i], ts[i].size, (unsigned)i);
        DZT_OK(dz_gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne, data[i]));
    }
    DZT_OK(dz_gguf_writer_add_tensor(w, "zeros", DZ_TYPE_F32, 1, (int64_t[]){4}, NULL));

    void *buf = NULL;
    size_t size = 0;
    DZT_OK(dz_gguf_writer_write_memory(w, &buf, &size));
    dz_gguf *g = NULL;
    DZT_OK(dz_gguf_open_memory(buf, size, &g));
    if (!g) {
        dz_gguf_writer_destroy(w);
        free(buf);
        return;
    }
    DZT_EQ_INT(dz_gguf_version(g), 3);
    DZT_EQ_INT(dz_gguf_alignment(g), 64);
    DZT_EQ_INT(dz_gguf_data_offset(g) % 64, 0);
    DZT_EQ_INT(dz_gguf_n_kv(g), 21);
    DZT_EQ_STR(dz_gguf_kv_key(g, 0), "general.architecture");
    DZT_EQ_STR(dz_gguf_kv_key(g, 19), "t.twice");
    DZT_EQ_STR(dz_gguf_kv_key(g, 20), "general.alignment");

    int64_t iv = 0;
    uint64_t uv = 0;
    double fv = 0;
    bool bv = false;
    dz_gguf_value v = kv(g, "t.u8");
    DZT_OK(dz_gguf_value_int(&v, &iv)); DZT_EQ_INT(iv, 200); DZT_EQ_INT(v.type, DZ_GGUF_UINT8);
    v = kv(g, "t.i8");
    DZT_OK(dz_gguf_value_int(&v, &iv)); DZT_EQ_INT(iv, -5);
    v = kv(g, "t.u16");
    DZT_OK(dz_gguf_value_int(&v, &iv)); DZT_EQ_INT(iv, 60000);
    v = kv(g, "t.i16");
    DZT_OK(dz_gguf_value_int(&v, &iv)); DZT_EQ_INT(iv, -300);
    v = kv(g, "t.u32");
    DZT_OK(dz_gguf_value_uint(&v, &uv)); DZT_ASSERT(uv == 4000000000u);
    v = kv(g, "t.i32");
    DZT_OK(dz_gguf_value_int(&v, &iv)); DZT_EQ_INT(iv, -2000000000);
    v = kv(g, "t.f32");
    DZT_OK(dz_gguf_value_float(&v, &fv)); DZT_NEAR(fv, 1.5, 0);
    v = kv(g, "t.bool");
    DZT_OK(dz_gguf_value_bool(&v, &bv)); DZT_ASSERT(bv);
    v = kv(g, "t.u64");
    DZT_OK(dz_gguf_value_uint(&v, &uv)); DZT_ASSERT(uv == (1ull << 63) + 5);
    DZT_FAILS(dz_gguf_value_int(&v, &iv), DZ_ERR_FORMAT); /* does not fit */
    v = kv(g, "t.i64");
    DZT_OK(dz_gguf_value_int(&v, &iv)); DZT_ASSERT(iv == -(1ll << 40));
    DZT_FAILS(dz_gguf_value_uint(&v, &uv), DZ_ERR_FORMAT); /* negative */
    v = kv(g, "t.f64");
    DZT_OK(dz_gguf_value_float(&v, &fv)); DZT_NEAR(fv, -0.125, 0);
    v = kv(g, "t.str");
    DZT_ASSERT(str_is(&v, "na\xc3\xafve \xe4\xb8\xad"));
    v = kv(g, "t.empty");
    DZT_ASSERT(str_is(&v, ""));
    v = kv(g, "t.twice");
    DZT_ASSERT(str_is(&v, "two"));

    v = kv(g, "t.ints");
    DZT_EQ_INT(v.type, DZ_GGUF_ARRAY); DZT_EQ_INT(v.elem_type, DZ_GGUF_INT32); DZT_EQ_INT(v.n, 3);
    for (uint64_t i = 0; i < 3; i++) {
        dz_gguf_value e;
        DZT_OK(dz_gguf_array_get(g, &v, i, &e));
        DZT_OK(dz_gguf_value_int(&e, &iv)); DZT_EQ_INT(iv, ints[i]);
    }
    dz_gguf_value e;
    DZT_FAILS(dz_gguf_array_get(g, &v, 3, &e), DZ_ERR_ARG);
    v = kv(g, "t.reals");
    DZT_OK(dz_gguf_array_get(g, &v, 1, &e)); DZT_OK(dz_gguf_value_float(&e, &fv)); DZT_NEAR(fv, -1e300, 0);
    v = kv(g, "t.none");
    DZT_EQ_INT(v.elem_type, DZ_GGUF_UINT8); DZT_EQ_INT(v.n, 0);
    v = kv(g, "t.tokens");
    DZT_EQ_INT(v.elem_type, DZ_GGUF_STRING); DZT_EQ_INT(v.n, 3);
    DZT_ASSERT(elem_str_is(g, &v, 0, "a") && elem_str_is(g, &v, 1, "") && elem_str_is(g, &v, 2, "b c"));
    v = kv(g, "t.no_tokens");
    DZT_EQ_INT(v.elem_type, DZ_GGUF_STRING); DZT_EQ_INT(v.n, 0);

    DZT_EQ_INT(dz_gguf_n_tensors(g), NT + 1);
    for (int i = 0; i < NT; i++) {
        const dz_gguf_tensor *t = dz_gguf_tensor_at(g, i);
        DZT_EQ_STR(t->name, ts[i].name);
        DZT_ASSERT(t == dz_gguf_find_tensor(g, ts[i].name));
        DZT_EQ_INT(t->type, ts[i].type);
        DZT_EQ_INT(t->n_dims, ts[i].n_dims);
        for (int d = 0; d < 4; d++) DZT_EQ_INT(t->ne[d], ts[i].ne[d]);
        DZT_EQ_INT(t->size, ts[i].size);
        DZT_EQ_INT(t->offset % 64, 0);
        DZT_ASSERT((const uint8_t *)t->data == (const uint8_t *)buf + dz_gguf_data_offset(g) + t->offset);
        DZT_ASSERT(!memcmp(t->data, data[i], ts[i].size));
    }
    const dz_gguf_tensor *z = dz_gguf_find_tensor(g, "zeros");
    DZT_ASSERT(z && z->size == 16 && !memcmp(z->data, (uint8_t[16]){0}, 16));
    DZT_ASSERT(dz_gguf_find_tensor(g, "absent") == NULL);
    DZT_ASSERT(dz_gguf_tensor_at(g, NT + 1) == NULL && dz_gguf_tensor_at(g, -1) == NULL);

    /* The same bytes through a file. */
    char path[4096];
    snprintf(path, sizeof path, "%s/roundtrip.gguf", dzt_tmpdir());
    DZT_OK(dz_gguf_writer_write_file(w, path));
    size_t fsize = 0;
    char *fbytes = dzt_read_file(path, &fsize);
    DZT_ASSERT(fbytes && fsize == size && !memcmp(fbytes, buf, size));
    free(fbytes);
    dz_gguf *gf = NULL;
    DZT_OK(dz_gguf_open(path, &gf));
    if (gf) check_same_content(g, gf);
    dz_gguf_close(gf);

    dz_gguf_close(g);
    free(buf);
    dz_gguf_writer_destroy(w);
}

static void test_accessors(void) {
    dz_gguf_writer *w = NULL;
    DZT_OK(dz_gguf_writer_create(&w));
    if (!w) return;
    DZT_OK(dz_gguf_writer_set_u32(w, "n", 7));
    DZT_OK(dz_gguf_writer_set_str(w, "s", "text"));
    DZT_OK(dz_gguf_writer_set_f32(w, "f", 0.5f));
    DZT_OK(dz_gguf_writer_set_bool(w, "b", false));
    uint64_t big = UINT64_MAX;
    DZT_OK(dz_gguf_writer_set_scalar(w, "big", DZ_GGUF_UINT64, &big));
    void *buf = NULL;
    size_t size = 0;
    DZT_OK(dz_gguf_writer_write_memory(w, &buf, &size));
    dz_gguf_writer_destroy(w);
    dz_gguf *g = NULL;
    DZT_OK(dz_gguf_open_memory(buf, size, &g));
    if (!g) {
        free(buf);
        return;
    }
    DZT_EQ_INT(dz_gguf_n_tensors(g), 0);
    DZT_EQ_INT(dz_gguf_alignment(g), 32);
    int64_t iv = -1;
    double fv = -1;
    bool found = true, bv = true;
    const char *s = NULL;
    size_t len = 0;
    DZT_OK(dz_gguf_get_int(g, "n", &iv, &found)); DZT_EQ_INT(iv, 7); DZT_ASSERT(found);
    DZT_OK(dz_gguf_get_int(g, "b", &iv, NULL)); DZT_EQ_INT(iv, 0); /* bool reads as an integer */
    iv = 42;
    DZT_OK(dz_gguf_get_int(g, "absent", &iv, &found)); DZT_ASSERT(!found); DZT_EQ_INT(iv, 42);
    DZT_OK(dz_gguf_get_int(g, "absent", &iv, NULL));
    DZT_FAILS(dz_gguf_get_int(g, "s", &iv, &found), DZ_ERR_FORMAT);
    DZT_CHECK(strstr(dz_last_error(), "'s'") && strstr(dz_last_error(), "string"), "%s", dz_last_error());
    DZT_EQ_INT(iv, 42);
    DZT_FAILS(dz_gguf_get_int(g, "big", &iv, &found), DZ_ERR_FORMAT);
    DZT_CHECK(strstr(dz_last_error(), "'big'") != NULL, "%s", dz_last_error());
    DZT_OK(dz_gguf_get_float(g, "f", &fv, &found)); DZT_NEAR(fv, 0.5, 0);
    DZT_FAILS(dz_gguf_get_float(g, "n", &fv, &found), DZ_ERR_FORMAT);
    DZT_OK(dz_gguf_get_bool(g, "b", &bv, &found)); DZT_ASSERT(!bv);
    DZT_FAILS(dz_gguf_get_bool(g, "n", &bv, &found), DZ_ERR_FORMAT);
    DZT_OK(dz_gguf_get_str(g, "s", &s, &len, &found));
    DZT_ASSERT(s && len == 4 && !memcmp(s, "text", 4));
    DZT_FAILS(dz_gguf_get_str(g, "n", &s, &len, &found), DZ_ERR_FORMAT);
    DZT_CHECK(strstr(dz_last_error(), "'n'") != NULL, "%s", dz_last_error());
    dz_gguf_value v;
    DZT_FAILS(dz_gguf_get_array(g, "s", &v, &found), DZ_ERR_FORMAT);
    DZT_OK(dz_gguf_get_array(g, "absent", &v, &found)); DZT_ASSERT(!found);
    DZT_EQ_INT(dz_gguf_find_kv(g, "f"), 2);
    DZT_EQ_INT(dz_gguf_find_kv(g, "F"), -1);
    DZT_ASSERT(dz_gguf_kv_key(g, 5) == NULL && dz_gguf_kv_key(g, -1) == NULL);
    dz_gguf_kv_value(g, 99, &v);
    DZT_EQ_INT(v.type, DZ_GGUF_TYPE_COUNT);
    dz_gguf_kv_value(g, 0, &v);
    DZT_FAILS(dz_gguf_array_get(g, &v, 0, &v), DZ_ERR_ARG); /* not an array */
    DZT_EQ_STR(dz_gguf_type_name(DZ_GGUF_FLOAT64), "float64");
    DZT_EQ_STR(dz_gguf_type_name(DZ_GGUF_ARRAY), "array");
    dz_gguf_close(g);
    dz_gguf_close(NULL);
    free(buf);
}

static void test_writer_arguments(void) {
    dz_gguf_writer *w = NULL;
    DZT_OK(dz_gguf_writer_create(&w));
    if (!w) return;
    DZT_OK(dz_gguf_writer_set_alignment(w, 16));
    DZT_FAILS(dz_gguf_writer_set_alignment(w, 0), DZ_ERR_ARG);
    DZT_FAILS(dz_gguf_writer_set_alignment(w, 3), DZ_ERR_ARG);
    DZT_FAILS(dz_gguf_writer_set_u32(w, "general.alignment", 48), DZ_ERR_ARG);
    DZT_FAILS(dz_gguf_writer_set_str(w, "general.alignment", "32"), DZ_ERR_ARG);
    DZT_FAILS(dz_gguf_writer_set_i32(w, "general.alignment", 32), DZ_ERR_ARG);
    DZT_FAILS(dz_gguf_writer_set_u32(w, "", 1), DZ_ERR_ARG);
    DZT_FAILS(dz_gguf_writer_set_str(w, "k", NULL), DZ_ERR_ARG);
    uint8_t one = 1;
    DZT_FAILS(dz_gguf_writer_set_scalar(w, "k", DZ_GGUF_STRING, &one), DZ_ERR_ARG);
    DZT_FAILS(dz_gguf_writer_set_array(w, "k", DZ_GGUF_STRING, &one, 1), DZ_ERR_ARG);
    const char *strs[2] = {"a", NULL};
    DZT_FAILS(dz_gguf_writer_set_str_array(w, "k", strs, 2), DZ_ERR_ARG);
    int64_t ne[5] = {32, 1, 1, 1, 1};
    float zeros[32] = {0};
    DZT_OK(dz_gguf_writer_add_tensor(w, "t", DZ_TYPE_F32, 1, ne, zeros));
    DZT_FAILS(dz_gguf_writer_add_tensor(w, "t", DZ_TYPE_F32, 1, ne, zeros), DZ_ERR_ARG);
    DZT_FAILS(dz_gguf_writer_add_tensor(w, "u", DZ_TYPE_F32, 0, ne, zeros), DZ_ERR_ARG);
    DZT_FAILS(dz_gguf_writer_add_tensor(w, "u", DZ_TYPE_F32, 5, ne, zeros), DZ_ERR_ARG);
    DZT_FAILS(dz_gguf_writer_add_tensor(w, "u", (dz_type)4, 1, ne, zeros), DZ_ERR_ARG);
    DZT_FAILS(dz_gguf_writer_add_tensor(w, "u", DZ_TYPE_Q4_0, 1, (int64_t[]){33}, zeros), DZ_ERR_ARG);
    DZT_FAILS(dz_gguf_writer_add_tensor(w, "u", DZ_TYPE_F32, 2, (int64_t[]){4, 0}, zeros), DZ_ERR_ARG);
    DZT_FAILS(dz_gguf_writer_add_tensor(w, "", DZ_TYPE_F32, 1, ne, zeros), DZ_ERR_ARG);
    /* The failed calls changed nothing: one KV (alignment 16), one tensor. */
    void *buf = NULL;
    size_t size = 0;
    DZT_OK(dz_gguf_writer_write_memory(w, &buf, &size));
    dz_gguf *g = NULL;
    DZT_OK(dz_gguf_open_memory(buf, size, &g));
    DZT_EQ_INT(dz_gguf_n_kv(g), 1);
    DZT_EQ_INT(dz_gguf_alignment(g), 16);
    DZT_EQ_INT(dz_gguf_n_tensors(g), 1);
    dz_gguf_close(g);
    free(buf);
    DZT_FAILS(dz_gguf_writer_write_file(w, "/nonexistent-dir/x.gguf"), DZ_ERR_IO);
    DZT_CHECK(strstr(dz_last_error(), "/nonexistent-dir/x.gguf") != NULL, "%s", dz_last_error());
    dz_gguf_writer_destroy(w);

    /* Without tensors there is no data section to pad: a huge alignment costs nothing. */
    DZT_OK(dz_gguf_writer_create(&w));
    DZT_OK(dz_gguf_writer_set_alignment(w, 1u << 30));
    DZT_OK(dz_gguf_writer_write_memory(w, &buf, &size));
    DZT_CHECK(size < 100, "%zu bytes", size);
    DZT_OK(dz_gguf_open_memory(buf, size, &g));
    DZT_EQ_INT(dz_gguf_alignment(g), 1u << 30);
    DZT_EQ_INT(dz_gguf_data_offset(g), size);
    dz_gguf_close(g);
    free(buf);
    dz_gguf_writer_destroy(w);
    dz_gguf_writer_destroy(NULL);
}

/* Nested arrays (which only a crafted file has) survive copy_kv. */
static void test_copy_nested(void) {
    gguf_craft c;
    gguf_craft_init(&c);
    gguf_craft_header(&c, 3, 0, 3);
    gguf_craft_key(&c, "n.pairs", 9); /* [[1, 2], [7]] */
    gguf_craft_array(&c, 9, 2);
    gguf_craft_array(&c, 4, 2), gguf_craft_u32(&c, 1), gguf_craft_u32(&c, 2);
    gguf_craft_array(&c, 4, 1), gguf_craft_u32(&c, 7);
    gguf_craft_key(&c, "n.deep", 9); /* [[["x", "yz"]], [], [[]]] */
    gguf_craft_array(&c, 9, 3);
    gguf_craft_array(&c, 9, 1);
    gguf_craft_array(&c, 8, 2), gguf_craft_str(&c, "x"), gguf_craft_str(&c, "yz");
    gguf_craft_array(&c, 9, 0);
    gguf_craft_array(&c, 9, 1);
    gguf_craft_array(&c, 6, 0);
    gguf_craft_kv_str(&c, "n.after", "tail");
    dz_gguf *g = NULL;
    DZT_OK(dz_gguf_open_memory(c.p, c.n, &g));
    if (!g) {
        gguf_craft_free(&c);
        return;
    }
    dz_gguf_value v, e, e2;
    int64_t iv = 0;
    v = kv(g, "n.pairs");
    DZT_EQ_INT(v.elem_type, DZ_GGUF_ARRAY); DZT_EQ_INT(v.n, 2);
    DZT_OK(dz_gguf_array_get(g, &v, 1, &e));
    DZT_EQ_INT(e.type, DZ_GGUF_ARRAY); DZT_EQ_INT(e.elem_type, DZ_GGUF_UINT32); DZT_EQ_INT(e.n, 1);
    DZT_OK(dz_gguf_array_get(g, &e, 0, &e2)); DZT_OK(dz_gguf_value_int(&e2, &iv)); DZT_EQ_INT(iv, 7);
    DZT_OK(dz_gguf_array_get(g, &v, 0, &e));
    DZT_OK(dz_gguf_array_get(g, &e, 1, &e2)); DZT_OK(dz_gguf_value_int(&e2, &iv)); DZT_EQ_INT(iv, 2);
    v = kv(g, "n.deep");
    DZT_OK(dz_gguf_array_get(g, &v, 0, &e));
    DZT_OK(dz_gguf_array_get(g, &e, 0, &e2));
    DZT_EQ_INT(e2.elem_type, DZ_GGUF_STRING); DZT_ASSERT(elem_str_is(g, &e2, 1, "yz"));
    DZT_OK(dz_gguf_array_get(g, &v, 1, &e)); DZT_EQ_INT(e.n, 0); DZT_EQ_INT(e.elem_type, DZ_GGUF_ARRAY);
    DZT_OK(dz_gguf_array_get(g, &v, 2, &e)); DZT_OK(dz_gguf_array_get(g, &e, 0, &e2));
    DZT_EQ_INT(e2.elem_type, DZ_GGUF_FLOAT32); DZT_EQ_INT(e2.n, 0);
    v = kv(g, "n.after");
    DZT_ASSERT(str_is(&v, "tail"));

    dz_gguf_writer *w = NULL;
    DZT_OK(dz_gguf_writer_create(&w));
    for (int64_t i = 0; w && i < dz_gguf_n_kv(g); i++) DZT_OK(dz_gguf_writer_copy_kv(w, g, i));
    DZT_FAILS(dz_gguf_writer_copy_kv(w, g, 3), DZ_ERR_ARG);
    void *buf = NULL;
    size_t size = 0;
    DZT_OK(dz_gguf_writer_write_memory(w, &buf, &size));
    dz_gguf_writer_destroy(w);
    dz_gguf *g2 = NULL;
    DZT_OK(dz_gguf_open_memory(buf, size, &g2));
    if (g2) {
        DZT_EQ_INT(dz_gguf_n_kv(g2), 3);
        check_same_content(g, g2);
    }
    dz_gguf_close(g2);
    dz_gguf_close(g);
    gguf_craft_free(&c);
    free(buf);
}

/* ---- the real files ---- */

static void test_stories260k(void) {
    char *path = dzt_shared("models/stories260K.gguf");
    dz_gguf *g = NULL;
    DZT_OK(dz_gguf_open(path, &g));
    if (!g) {
        free(path);
        return;
    }
    DZT_EQ_INT(dz_gguf_version(g), 3);
    DZT_EQ_INT(dz_gguf_n_tensors(g), 48); /* 5 layers x 9 + embedding, output norm, output */
    int64_t iv = 0;
    bool found = false;
    DZT_OK(dz_gguf_get_int(g, "llama.embedding_length", &iv, &found)); DZT_EQ_INT(iv, 64);
    DZT_OK(dz_gguf_get_int(g, "llama.block_count", &iv, &found)); DZT_EQ_INT(iv, 5);
    DZT_OK(dz_gguf_get_int(g, "llama.attention.head_count", &iv, &found)); DZT_EQ_INT(iv, 8);
    DZT_OK(dz_gguf_get_int(g, "llama.attention.head_count_kv", &iv, &found)); DZT_EQ_INT(iv, 4);
    DZT_OK(dz_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &iv, &found)); DZT_EQ_INT(iv, 1);
    DZT_OK(dz_gguf_get_int(g, "tokenizer.ggml.eos_token_id", &iv, &found)); DZT_EQ_INT(iv, 2);
    const char *s = NULL;
    size_t len = 0;
    DZT_OK(dz_gguf_get_str(g, "general.architecture", &s, &len, &found));
    DZT_ASSERT(found && len == 5 && !memcmp(s, "llama", 5));
    dz_gguf_value toks;
    DZT_OK(dz_gguf_get_array(g, "tokenizer.ggml.tokens", &toks, &found));
    DZT_EQ_INT(toks.elem_type, DZ_GGUF_STRING); DZT_EQ_INT(toks.n, 512);
    /* SentencePiece (llama2.c): <unk> <s> </s>, then the 256 byte tokens. */
    DZT_ASSERT(elem_str_is(g, &toks, 0, "<unk>") && elem_str_is(g, &toks, 1, "<s>") &&
               elem_str_is(g, &toks, 2, "</s>") && elem_str_is(g, &toks, 3, "<0x00>") &&
               elem_str_is(g, &toks, 3 + 0x61, "<0x61>") && elem_str_is(g, &toks, 258, "<0xFF>"));
    const dz_gguf_tensor *t = dz_gguf_find_tensor(g, "token_embd.weight");
    DZT_ASSERT(t != NULL);
    if (t) {
        DZT_EQ_INT(t->type, DZ_TYPE_F32); DZT_EQ_INT(t->n_dims, 2);
        DZT_EQ_INT(t->ne[0], 64); DZT_EQ_INT(t->ne[1], 512); DZT_EQ_INT(t->size, 64 * 512 * 4);
    }
    t = dz_gguf_find_tensor(g, "blk.4.ffn_down.weight");
    DZT_ASSERT(t && t->ne[0] == 172 && t->ne[1] == 64);
    /* Tensor data ends inside the file, aligned, and the mapping is the whole file. */
    size_t end = 0;
    for (int64_t i = 0; i < dz_gguf_n_tensors(g); i++) {
        t = dz_gguf_tensor_at(g, i);
        size_t e = dz_gguf_data_offset(g) + t->offset + t->size;
        if (e > end) end = e;
        DZT_EQ_INT(((const uint8_t *)t->data - (const uint8_t *)dz_gguf_base(g)) % 32, 0);
    }
    DZT_ASSERT(end <= dz_gguf_file_size(g));

    /* Full round trip: every KV (copy_kv) and tensor into a new file. */
    dz_gguf_writer *w = NULL;
    DZT_OK(dz_gguf_writer_create(&w));
    for (int64_t i = 0; w && i < dz_gguf_n_kv(g); i++) DZT_OK(dz_gguf_writer_copy_kv(w, g, i));
    for (int64_t i = 0; w && i < dz_gguf_n_tensors(g); i++) {
        t = dz_gguf_tensor_at(g, i);
        DZT_OK(dz_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data));
    }
    char out[4096];
    snprintf(out, sizeof out, "%s/stories-copy.gguf", dzt_tmpdir());
    DZT_OK(dz_gguf_writer_write_file(w, out));
    dz_gguf_writer_destroy(w);
    dz_gguf *g2 = NULL;
    DZT_OK(dz_gguf_open(out, &g2));
    if (g2) {
        DZT_EQ_INT(dz_gguf_n_kv(g2), dz_gguf_n_kv(g));
        check_same_content(g, g2);
        check_same_content(g2, g);
    }
    dz_gguf_close(g2);
    dz_gguf_close(g);
    free(path);
}

static void test_conformance_models(void) {
    static const char *types[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0",
                                  "Q5_1", "Q2_K", "Q6_K", "IQ4_NL", "Q3_K_M", "Q4_K_M", "Q5_K_M"};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        char rel[128];
        snprintf(rel, sizeof rel, "conformance/synth-tiny-%s.gguf", types[k]);
        char *path = dzt_shared(rel);
        dz_gguf *g = NULL;
        DZT_OK(dz_gguf_open(path, &g));
        free(path);
        if (!g) continue;
        int64_t iv = 0;
        DZT_OK(dz_gguf_get_int(g, "llama.embedding_length", &iv, NULL)); DZT_EQ_INT(iv, 256);
        DZT_OK(dz_gguf_get_int(g, "llama.block_count", &iv, NULL)); DZT_EQ_INT(iv, 4);
        DZT_OK(dz_gguf_get_int(g, "llama.attention.head_count", &iv, NULL)); DZT_EQ_INT(iv, 8);
        DZT_OK(dz_gguf_get_int(g, "llama.attention.head_count_kv", &iv, NULL)); DZT_EQ_INT(iv, 4);
        DZT_OK(dz_gguf_get_int(g, "llama.feed_forward_length", &iv, NULL)); DZT_EQ_INT(iv, 768);
        dz_gguf_value toks;
        DZT_OK(dz_gguf_get_array(g, "tokenizer.ggml.tokens", &toks, NULL)); DZT_EQ_INT(toks.n, 512);
        DZT_EQ_INT(dz_gguf_n_tensors(g), 4 * 9 + 3);
        const dz_gguf_tensor *q = dz_gguf_find_tensor(g, "blk.0.attn_q.weight");
        DZT_ASSERT(q && q->ne[0] == 256 && q->ne[1] == 256);
        if (q && !strchr(types[k], 'M')) /* single-type files: every matrix in that type */
            DZT_CHECK(!strcmp(dz_type_name(q->type), types[k]), "%s: attn_q is %s", types[k],
                      dz_type_name(q->type));
        dz_gguf_close(g);
    }
}

static double thread_cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void test_tokenizer_files(void) {
    /* Vocabulary sizes of the published tokenizers, and a few known tokens. */
    static const struct { const char *name; uint64_t n_tokens; int64_t tok; const char *text; } vocabs[] = {
        {"llama-spm", 32000, 1, "<s>"},
        {"gpt-2", 50257, 50256, "<|endoftext|>"},
        {"falcon", 65024, 11, "<|endoftext|>"},
        {"phi-3", 32064, 2, "</s>"},
        {"deepseek-coder", 32256, -1, NULL},
        {"gpt-neox", 50432, 0, "<|endoftext|>"},
        {"mpt", 50432, -1, NULL},
        {"refact", 49216, -1, NULL},
        {"starcoder", 49152, 0, "<|endoftext|>"},
    };
    for (size_t k = 0; k < sizeof vocabs / sizeof vocabs[0]; k++) {
        char rel[128];
        snprintf(rel, sizeof rel, "tokenizers/ggml-vocab-%s.gguf", vocabs[k].name);
        char *path = dzt_shared(rel);
        dz_gguf *g = NULL;
        /* the thread's CPU time: a cold page cache or a busy machine does not
         * count, work that grows out of proportion with the file does */
        const double t0 = thread_cpu_ms();
        DZT_OK(dz_gguf_open(path, &g));
        const double ms = thread_cpu_ms() - t0;
        free(path);
        if (!g) continue;
        DZT_CHECK(ms < 500, "%s: opening took %.1f ms of CPU", vocabs[k].name, ms);
        DZT_EQ_INT(dz_gguf_n_tensors(g), 0);
        dz_gguf_value toks;
        bool found = false;
        DZT_OK(dz_gguf_get_array(g, "tokenizer.ggml.tokens", &toks, &found));
        DZT_CHECK(found && toks.n == vocabs[k].n_tokens, "%s: %llu tokens", vocabs[k].name,
                  (unsigned long long)toks.n);
        if (vocabs[k].text)
            DZT_CHECK(elem_str_is(g, &toks, (uint64_t)vocabs[k].tok, vocabs[k].text), "%s: token %lld",
                      vocabs[k].name, (long long)vocabs[k].tok);
        /* Every element reachable, last one included. */
        uint64_t total = 0;
        for (uint64_t i = 0; i < toks.n; i++) {
            dz_gguf_value e;
            if (dz_gguf_array_get(g, &toks, i, &e)) break;
            total += e.n;
        }
        DZT_ASSERT(total > toks.n);
        dz_gguf_close(g);
    }
    char *path = dzt_shared("tokenizers/ggml-vocab-gpt-2.gguf");
    dz_gguf *g = NULL;
    DZT_OK(dz_gguf_open(path, &g));
    dz_gguf_value merges;
    bool found = false;
    DZT_OK(dz_gguf_get_array(g, "tokenizer.ggml.merges", &merges, &found));
    DZT_ASSERT(found && merges.n == 50000); /* GPT-2's merges.txt has 50,000 rules */
    DZT_ASSERT(elem_str_is(g, &merges, 0, "\xc4\xa0 t")); /* the first rule: "Ġ t" */
    dz_gguf_close(g);
    free(path);
}

int main(void) {
    test_roundtrip_values();
    test_accessors();
    test_writer_arguments();
    test_copy_nested();
    test_stories260k();
    test_conformance_models();
    test_tokenizer_files();
    return dzt_done();
}
