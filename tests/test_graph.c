/* Graph building: the builders' shape checks and their messages, NULL
 * propagation and the first error kept, views (offsets, strides, chains
 * resolved to the underlying tensor), topological order and deduplication,
 * expansion, and tensor properties. */
#include <string.h>

#include "dizuo/tensor.h"
#include "dztest.h"

static int index_of(const dz_graph *g, const dz_tensor *t) {
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i] == t) return i;
    return -1;
}

/* Every operand that is a node comes before its user. */
static bool ordered(const dz_graph *g) {
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < DZ_MAX_SRC; j++) {
            const dz_tensor *s = g->nodes[i]->src[j];
            if (s && s->op != DZ_OP_NONE && index_of(g, s) >= i) return false;
        }
    return true;
}

static void test_properties(void) {
    dz_ctx *ctx = dz_ctx_create(16);
    dz_tensor *a = dz_new_tensor_3d(ctx, DZ_TYPE_F32, 5, 3, 2);
    DZT_EQ_INT(a->n_dims, 3);
    DZT_EQ_INT(a->ne[3], 1);
    DZT_EQ_INT(a->nb[0], 4);
    DZT_EQ_INT(a->nb[1], 20);
    DZT_EQ_INT(a->nb[2], 60);
    DZT_EQ_INT(a->nb[3], 120);
    DZT_EQ_INT(dz_nelements(a), 30);
    DZT_EQ_INT(dz_nrows(a), 6);
    DZT_EQ_INT(dz_nbytes(a), 120);
    DZT_ASSERT(dz_is_contiguous(a));
    dz_tensor *q = dz_new_tensor_2d(ctx, DZ_TYPE_Q4_0, 64, 3);
    DZT_EQ_INT(q->nb[0], 18);
    DZT_EQ_INT(q->nb[1], 36);
    DZT_EQ_INT(dz_nbytes(q), 108);
    dz_set_name(a, "x.%d", 7);
    DZT_EQ_STR(a->name, "x.7");
    dz_set_input(a);
    dz_set_output(a);
    DZT_EQ_INT(a->flags, DZ_TENSOR_INPUT | DZ_TENSOR_OUTPUT);
    DZT_EQ_STR(dz_op_name(DZ_OP_MUL_MAT), "MUL_MAT");
    DZT_EQ_INT(dz_op_tiers(DZ_OP_ATTENTION), DZ_TIER_I);
    DZT_EQ_INT(dz_op_tiers(DZ_OP_VIEW), 0);
    /* Rows of a quantized type must be whole blocks. */
    DZT_ASSERT(dz_new_tensor_1d(ctx, DZ_TYPE_Q8_0, 33) == NULL);
    DZT_FAILS(dz_ctx_status(ctx), DZ_ERR_ARG);
    DZT_ASSERT(strstr(dz_ctx_error(ctx), "block size") != NULL);
    dz_ctx_destroy(ctx);
    dz_ctx_destroy(NULL);
}

static void test_views(void) {
    dz_ctx *ctx = dz_ctx_create(32);
    dz_tensor *a = dz_new_tensor_3d(ctx, DZ_TYPE_F32, 4, 3, 2); /* 96 bytes */
    dz_set_name(a, "a");

    /* view_2d of rows 1..2 of plane 1, then a view of that: offsets add up. */
    dz_tensor *v = dz_view_2d(ctx, a, 4, 2, a->nb[1], a->nb[2] + a->nb[1]);
    DZT_ASSERT(v && v->op == DZ_OP_VIEW && v->src[0] == a && v->view_src == a);
    DZT_EQ_INT(v->view_offset, 48 + 16);
    dz_tensor *vv = dz_view_1d(ctx, v, 3, 4);
    DZT_ASSERT(vv && vv->src[0] == v && vv->view_src == a);
    DZT_EQ_INT(vv->view_offset, 48 + 16 + 4);

    /* Transpose / permute: ne and nb move together. */
    dz_tensor *t = dz_transpose(ctx, a);
    DZT_EQ_INT(t->ne[0], 3);
    DZT_EQ_INT(t->ne[1], 4);
    DZT_EQ_INT(t->nb[0], 16);
    DZT_EQ_INT(t->nb[1], 4);
    DZT_ASSERT(!dz_is_contiguous(t));
    DZT_EQ_INT(dz_nbytes(t), 96);
    dz_tensor *p = dz_permute(ctx, a, 2, 0, 1, 3); /* dim 0 -> 2, 1 -> 0, 2 -> 1 */
    DZT_EQ_INT(p->ne[0], 3);
    DZT_EQ_INT(p->ne[1], 2);
    DZT_EQ_INT(p->ne[2], 4);
    DZT_EQ_INT(p->nb[0], 16);
    DZT_EQ_INT(p->nb[1], 48);
    DZT_EQ_INT(p->nb[2], 4);
    DZT_ASSERT(p->view_src == a);

    /* Reshape keeps the element count; the result is contiguous. */
    dz_tensor *r = dz_reshape_2d(ctx, a, 12, 2);
    DZT_ASSERT(r && dz_is_contiguous(r) && r->ne[0] == 12 && r->nb[1] == 48);
    dz_tensor *r3 = dz_reshape_3d(ctx, r, 2, 6, 2);
    DZT_ASSERT(r3 && r3->view_src == a && r3->view_offset == 0);
    DZT_OK(dz_ctx_status(ctx));

    /* Errors: too many elements, a strided source, out of bounds, bad axes. */
    DZT_ASSERT(dz_reshape_2d(ctx, a, 5, 5) == NULL);
    DZT_FAILS(dz_ctx_status(ctx), DZ_ERR_ARG);
    DZT_ASSERT(strstr(dz_ctx_error(ctx), "reshape_2d") && strstr(dz_ctx_error(ctx), "(4, 3, 2, 1)"));
    dz_ctx_reset(ctx);
    a = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 4, 3);
    DZT_ASSERT(dz_reshape_2d(ctx, dz_transpose(ctx, a), 12, 1) == NULL);
    DZT_ASSERT(strstr(dz_ctx_error(ctx), "not contiguous") != NULL);
    dz_ctx_reset(ctx);
    a = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 4, 3);
    DZT_ASSERT(dz_view_1d(ctx, a, 4, 36) == NULL); /* bytes 36..52 of 48 */
    DZT_ASSERT(strstr(dz_ctx_error(ctx), "exceeds") != NULL);
    dz_ctx_reset(ctx);
    a = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 4, 3);
    DZT_ASSERT(dz_view_1d(ctx, a, 4, 32) != NULL); /* exactly the last row */
    DZT_ASSERT(dz_view_2d(ctx, a, 4, 2, SIZE_MAX / 2, 0) == NULL); /* a stride that overflows */
    dz_ctx_reset(ctx);
    a = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 4, 3);
    DZT_ASSERT(dz_permute(ctx, a, 0, 0, 1, 2) == NULL);
    DZT_ASSERT(strstr(dz_ctx_error(ctx), "permutation") != NULL);
    dz_ctx_destroy(ctx);
}

static void test_builder_errors(void) {
    dz_ctx *ctx = dz_ctx_create(64);
    dz_tensor *w = dz_new_tensor_2d(ctx, DZ_TYPE_F16, 64, 10);
    dz_tensor *x = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 32, 3);
    dz_set_name(w, "wq");
    dz_set_name(x, "h");
    DZT_ASSERT(dz_mul_mat(ctx, w, x) == NULL);
    DZT_FAILS(dz_ctx_status(ctx), DZ_ERR_ARG);
    const char *msg = dz_ctx_error(ctx);
    DZT_CHECK(strstr(msg, "mul_mat") && strstr(msg, "'wq'") && strstr(msg, "(64, 10, 1, 1) F16") &&
                  strstr(msg, "(32, 3, 1, 1) F32"),
              "message names op and shapes: %s", msg);
    DZT_ASSERT(strstr(dz_last_error(), "mul_mat") != NULL);
    /* The first error is kept; later builders on NULL return NULL quietly. */
    dz_tensor *y = dz_add(ctx, dz_mul_mat(ctx, w, x), x);
    DZT_ASSERT(y == NULL);
    DZT_ASSERT(dz_add(ctx, x, dz_new_tensor_2d(ctx, DZ_TYPE_F32, 5, 3)) == NULL); /* 32 % 5 != 0 */
    DZT_ASSERT(strstr(dz_ctx_error(ctx), "mul_mat") != NULL);
    DZT_ASSERT(dz_graph_build(ctx, x) == NULL); /* a failed context builds no graph */
    DZT_ASSERT(strstr(dz_last_error(), "mul_mat") != NULL);

    /* Each shape rule, each in a fresh context. */
#define EXPECT_FAIL(expr, word)                                                                                   \
    do {                                                                                                          \
        dz_ctx_reset(ctx);                                                                                        \
        dz_tensor *f32_8x3 = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 8, 3);                                            \
        dz_tensor *i32_3 = dz_new_tensor_1d(ctx, DZ_TYPE_I32, 3);                                                 \
        dz_tensor *q3 = dz_new_tensor_3d(ctx, DZ_TYPE_F32, 8, 4, 3);                                              \
        (void)f32_8x3, (void)i32_3, (void)q3;                                                                     \
        DZT_CHECK((expr) == NULL, "%s should fail", #expr);                                                       \
        DZT_CHECK(dz_ctx_status(ctx) == DZ_ERR_ARG && strstr(dz_ctx_error(ctx), word), "%s: %s", #expr,          \
                  dz_ctx_error(ctx));                                                                             \
    } while (0)
    EXPECT_FAIL(dz_get_rows(ctx, f32_8x3, f32_8x3), "get_rows");
    EXPECT_FAIL(dz_add(ctx, f32_8x3, i32_3), "add");
    EXPECT_FAIL(dz_mul(ctx, f32_8x3, dz_new_tensor_2d(ctx, DZ_TYPE_F32, 8, 2)), "broadcast");
    EXPECT_FAIL(dz_scale(ctx, i32_3, 2.0f), "scale");
    EXPECT_FAIL(dz_rms_norm(ctx, f32_8x3, -1.0f), "epsilon");
    EXPECT_FAIL(dz_swiglu(ctx, f32_8x3, q3), "shapes differ");
    EXPECT_FAIL(dz_mul_mat(ctx, dz_new_tensor_3d(ctx, DZ_TYPE_F32, 8, 2, 2), q3), "broadcast");
    EXPECT_FAIL(dz_rope(ctx, q3, dz_new_tensor_1d(ctx, DZ_TYPE_I32, 4), 8, DZ_ROPE_NORMAL, 1e4f, 1), "positions");
    EXPECT_FAIL(dz_rope(ctx, q3, i32_3, 7, DZ_ROPE_NORMAL, 1e4f, 1), "n_rot");
    EXPECT_FAIL(dz_rope(ctx, q3, i32_3, 10, DZ_ROPE_NORMAL, 1e4f, 1), "n_rot");
    EXPECT_FAIL(dz_rope(ctx, q3, i32_3, 8, 1, 1e4f, 1), "mode");
    EXPECT_FAIL(dz_softmax(ctx, f32_8x3, dz_new_tensor_2d(ctx, DZ_TYPE_F32, 7, 3), 1, false, 0), "mask");
    EXPECT_FAIL(dz_softmax(ctx, f32_8x3, NULL, 1, true, -1), "n_past");
    /* attention: q (8, 4, 3); k, v (8, 3 heads, S): 4 % 3 != 0 */
    EXPECT_FAIL(dz_attention(ctx, q3, dz_new_tensor_3d(ctx, DZ_TYPE_F32, 8, 3, 5),
                             dz_new_tensor_3d(ctx, DZ_TYPE_F32, 8, 3, 5), NULL, 1, true, 0), "multiple");
    EXPECT_FAIL(dz_attention(ctx, q3, dz_new_tensor_3d(ctx, DZ_TYPE_F32, 8, 2, 5),
                             dz_new_tensor_3d(ctx, DZ_TYPE_F32, 8, 2, 6), NULL, 1, true, 0), "shaped like k");
    EXPECT_FAIL(dz_attention(ctx, q3, dz_new_tensor_3d(ctx, DZ_TYPE_Q8_0, 32, 2, 5),
                             dz_new_tensor_3d(ctx, DZ_TYPE_F32, 32, 2, 5), NULL, 1, true, 0), "F16");
    EXPECT_FAIL(dz_cpy(ctx, f32_8x3, dz_new_tensor_2d(ctx, DZ_TYPE_F32, 8, 4)), "element counts");
    EXPECT_FAIL(dz_cpy(ctx, dz_new_tensor_1d(ctx, DZ_TYPE_F16, 8), dz_new_tensor_1d(ctx, DZ_TYPE_BF16, 8)), "cpy");
#undef EXPECT_FAIL

    /* NULL operands: NULL without recording anything. */
    dz_ctx_reset(ctx);
    DZT_ASSERT(dz_silu(ctx, NULL) == NULL);
    DZT_ASSERT(dz_view_1d(ctx, NULL, 3, 0) == NULL);
    DZT_OK(dz_ctx_status(ctx));

    /* A full arena fails with DZ_ERR_NOMEM, naming the capacity. */
    dz_ctx *tiny = dz_ctx_create(2);
    dz_tensor *t = dz_new_tensor_1d(tiny, DZ_TYPE_F32, 4);
    DZT_ASSERT(dz_silu(tiny, t) != NULL);
    DZT_ASSERT(dz_silu(tiny, t) == NULL);
    DZT_FAILS(dz_ctx_status(tiny), DZ_ERR_NOMEM);
    DZT_ASSERT(strstr(dz_ctx_error(tiny), "2 tensors") != NULL);
    dz_ctx_destroy(tiny);
    dz_ctx_destroy(ctx);
}

static void test_order(void) {
    dz_ctx *ctx = dz_ctx_create(64);
    dz_tensor *x = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 8, 3);
    dz_tensor *w = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 8, 8);
    dz_tensor *norm = dz_rms_norm(ctx, x, 1e-5f);
    dz_tensor *a = dz_mul_mat(ctx, w, norm);
    dz_tensor *b = dz_silu(ctx, norm);
    dz_tensor *sum = dz_add(ctx, a, b);              /* diamond: norm used twice */
    dz_tensor *out = dz_mul(ctx, sum, dz_view_1d(ctx, norm, 8, 0));
    dz_graph *g = dz_graph_build(ctx, out);
    DZT_ASSERT(g != NULL);
    if (!g) return;
    DZT_EQ_INT(g->n_nodes, 6); /* norm, a, b, sum, view, out: leaves not listed, norm once */
    DZT_ASSERT(ordered(g));
    DZT_EQ_INT(index_of(g, x), -1);
    DZT_EQ_INT(index_of(g, norm), 0);
    DZT_EQ_INT(index_of(g, out), 5);
    /* Operands are visited in src order: a's chain before b. */
    DZT_ASSERT(index_of(g, a) < index_of(g, b));

    /* Expanding adds only what is new, after what is there. */
    dz_tensor *extra = dz_scale(ctx, b, 2.0f);
    DZT_OK(dz_graph_expand(ctx, g, extra));
    DZT_EQ_INT(g->n_nodes, 7);
    DZT_EQ_INT(index_of(g, extra), 6);
    DZT_OK(dz_graph_expand(ctx, g, out)); /* already there */
    DZT_EQ_INT(g->n_nodes, 7);
    DZT_ASSERT(ordered(g));

    /* A cycle (only possible by editing src by hand) is an error, not a hang. */
    dz_tensor *c1 = dz_silu(ctx, x), *c2 = dz_silu(ctx, c1);
    c1->src[0] = c2;
    DZT_FAILS(dz_graph_expand(ctx, g, c2), DZ_ERR_ARG);
    DZT_ASSERT(strstr(dz_last_error(), "cycle") != NULL);
    DZT_EQ_INT(g->n_nodes, 7); /* unchanged */

    /* A graph from another context cannot be expanded here. */
    dz_ctx *other = dz_ctx_create(4);
    DZT_FAILS(dz_graph_expand(other, g, dz_new_tensor_1d(other, DZ_TYPE_F32, 2)), DZ_ERR_ARG);
    dz_ctx_destroy(other);

    /* A deep chain builds without recursion trouble. */
    dz_ctx *deep = dz_ctx_create(100001);
    dz_tensor *t = dz_new_tensor_1d(deep, DZ_TYPE_F32, 4);
    for (int i = 0; i < 100000; i++) t = dz_scale(deep, t, 1.0f);
    dz_graph *dg = dz_graph_build(deep, t);
    DZT_ASSERT(dg && dg->n_nodes == 100000);
    int chained = 0;
    for (int i = 1; dg && i < dg->n_nodes; i++) chained += dg->nodes[i]->src[0] == dg->nodes[i - 1];
    DZT_EQ_INT(chained, 99999);
    dz_ctx_destroy(deep);
    dz_ctx_destroy(ctx);
}

/* The KV-cache pattern: a CPY into a view of a bound tensor is a node that
 * lives in the cache's memory; the graph keeps the order it was expanded in. */
static void test_cpy_into_view(void) {
    dz_device *cpu;
    DZT_OK(dz_device_open("cpu", &cpu));
    dz_buffer *buf;
    DZT_OK(dz_buffer_alloc(cpu, 4 * 2 * 10 * sizeof(float), &buf));
    dz_ctx *ctx = dz_ctx_create(32);
    dz_tensor *cache = dz_new_tensor_3d(ctx, DZ_TYPE_F32, 4, 2, 10);
    DZT_OK(dz_tensor_bind(cache, buf, 0));
    dz_tensor *k = dz_new_tensor_3d(ctx, DZ_TYPE_F32, 4, 2, 3);
    dz_tensor *rows = dz_view_3d(ctx, cache, 4, 2, 3, cache->nb[1], cache->nb[2], 5 * cache->nb[2]);
    DZT_ASSERT(rows->data == (char *)buf->base + 5 * 32); /* bound at build time */
    dz_tensor *store = dz_cpy(ctx, dz_scale(ctx, k, 1.0f), rows);
    DZT_ASSERT(store && store->op == DZ_OP_CPY && store->view_src == cache && store->view_offset == 160);
    DZT_ASSERT(store->data == rows->data && store->buffer == buf);
    DZT_ASSERT(memcmp(store->nb, rows->nb, sizeof store->nb) == 0);
    dz_graph *g = dz_graph_build(ctx, store);
    dz_tensor *read = dz_silu(ctx, dz_view_3d(ctx, cache, 4, 2, 8, cache->nb[1], cache->nb[2], 0));
    DZT_OK(dz_graph_expand(ctx, g, read));
    DZT_ASSERT(index_of(g, store) < index_of(g, read));
    /* Binding rules: views cannot be bound; a tensor must fit its buffer. */
    DZT_FAILS(dz_tensor_bind(rows, buf, 0), DZ_ERR_ARG);
    dz_tensor *big = dz_new_tensor_1d(ctx, DZ_TYPE_F32, 81);
    DZT_FAILS(dz_tensor_bind(big, buf, 0), DZ_ERR_ARG);
    DZT_FAILS(dz_tensor_write(big, "x", 0, 1), DZ_ERR_ARG); /* no memory yet */
    float four[4] = {1, 2, 3, 4}, back[4];
    DZT_OK(dz_tensor_write(rows, four, 8, sizeof four));
    DZT_OK(dz_tensor_read(cache, back, 5 * 32 + 8, sizeof back));
    DZT_ASSERT(memcmp(four, back, sizeof four) == 0);
    DZT_FAILS(dz_tensor_read(rows, back, dz_nbytes(rows) - 4, 8), DZ_ERR_ARG);
    dz_ctx_destroy(ctx);
    dz_buffer_free(buf);
    dz_device_close(cpu);
}

int main(void) {
    test_properties();
    test_views();
    test_builder_errors();
    test_order();
    test_cpy_into_view();
    return dzt_done();
}
