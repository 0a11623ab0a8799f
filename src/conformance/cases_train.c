/* Conformance cases of LAYER_NORM, GELU (tier I) and the training ops
 * (tier T): per op its types, its shapes (what a and b mean is stated above
 * each table) and a builder of the one-op graph. Registered in cases.c
 * through CONF_TRAIN_SUITE (cases_train.h). */
#include "conformance/cases_train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define CHECK_SIZES(name, NAME)                                                                     \
    _Static_assert(N_OF(conf_##name##_types) == CONF_##NAME##_NT, #name ": type count in cases_train.h"); \
    _Static_assert(N_OF(conf_##name##_shapes) == CONF_##NAME##_NS, #name ": shape count in cases_train.h")

/* ---- helpers (as cases.c's) ---- */

static conf_layout layout_of(uint32_t flags, int which) {
    if (flags & (which == 0 ? CONF_A_TRANSPOSED : CONF_B_TRANSPOSED)) return CONF_TRANSPOSED;
    if (flags & (which == 0 ? CONF_A_PERMUTED : CONF_B_PERMUTED)) return CONF_PERMUTED;
    if (flags & (which == 0 ? CONF_A_SLICED : CONF_B_SLICED)) return CONF_SLICED;
    return CONF_CONTIG;
}

static int dims_of(const int64_t ne[4]) {
    int n = 1;
    for (int i = 1; i < 4; i++)
        if (ne[i] > 1) n = i + 1;
    return n;
}

static dz_tensor *new_leaf(conf_graph *g, dz_type type, const int64_t ne[4], conf_fill fill, float amplitude) {
    if (g->n_inputs == CONF_MAX_INPUTS) return NULL;
    dz_tensor *leaf = dz_new_tensor(g->ctx, type, dims_of(ne), ne);
    if (!leaf) return NULL;
    dz_set_name(leaf, "in%d", g->n_inputs);
    dz_set_input(leaf);
    g->inputs[g->n_inputs++] = (conf_input){leaf, fill, amplitude, false};
    return leaf;
}

/* An input of shape (zeros read as 1) laid out as `layout`. */
static dz_tensor *input(conf_graph *g, dz_type type, const int64_t shape[4], conf_layout layout, conf_fill fill,
                        float amplitude) {
    int64_t ne[4];
    for (int i = 0; i < 4; i++) ne[i] = shape[i] > 0 ? shape[i] : 1;
    switch (layout) {
    case CONF_CONTIG:
        return new_leaf(g, type, ne, fill, amplitude);
    case CONF_TRANSPOSED: {
        int64_t leaf_ne[4] = {ne[1], ne[0], ne[2], ne[3]};
        return dz_transpose(g->ctx, new_leaf(g, type, leaf_ne, fill, amplitude));
    }
    case CONF_PERMUTED: {
        int64_t leaf_ne[4] = {ne[0], ne[2], ne[1], ne[3]};
        return dz_permute(g->ctx, new_leaf(g, type, leaf_ne, fill, amplitude), 0, 2, 1, 3);
    }
    case CONF_SLICED: {
        int64_t leaf_ne[4] = {2 * ne[0], ne[1], ne[2], 1};
        dz_tensor *leaf = new_leaf(g, type, leaf_ne, fill, amplitude);
        size_t half_row;
        if (!leaf || dz_row_size(type, ne[0], &half_row) != DZ_OK) return NULL;
        return dz_view_3d(g->ctx, leaf, ne[0], ne[1], ne[2], leaf->nb[1], leaf->nb[2], half_row);
    }
    }
    return NULL;
}

static bool done(conf_graph *g, dz_tensor *node) {
    g->node = g->result = node;
    return node != NULL;
}

static void describe_dims(const char *label, const int64_t ne[4], char *buf, size_t size) {
    int64_t d[4];
    for (int i = 0; i < 4; i++) d[i] = ne[i] > 0 ? ne[i] : 1;
    size_t len = (size_t)snprintf(buf, size, "%s(", label);
    for (int i = 0; i < dims_of(d) && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, i ? ",%lld" : "%lld", (long long)d[i]);
    if (len < size) snprintf(buf + len, size - len, ")");
}

static void describe_layouts(const conf_shape *s, const char *a, const char *b, char *buf, size_t size) {
    static const char *const names[] = {"", "transposed", "permuted", "row-strided"};
    size_t len = strlen(buf);
    conf_layout la = layout_of(s->flags, 0), lb = layout_of(s->flags, 1);
    if (la != CONF_CONTIG && len < size) len += (size_t)snprintf(buf + len, size - len, ", %s %s", a, names[la]);
    if (lb != CONF_CONTIG && len < size) snprintf(buf + len, size - len, ", %s %s", b, names[lb]);
}

static float amp(float a) { return a > 0.0f ? a : 1.0f; }

#define TY(type) {DZ_TYPE_##type, DZ_TYPE_##type, DZ_CONFORMANCE_LIMIT_F32}

/* ---- LAYER_NORM, RMS_NORM_BACK, LAYER_NORM_BACK: a = x (and dy), f[0] eps,
 *      f[1] amplitude of x ---- */

const conf_dtype conf_layer_norm_types[] = {TY(F32)};
const conf_shape conf_layer_norm_shapes[] = {
    {.a = {1}, .f = {1e-5f, 1.0f}},
    {.a = {17, 3}, .f = {1e-5f, 1.0f}},
    {.a = {67, 5, 2}, .f = {1e-5f, 3.0f}},
    {.a = {768, 7}, .f = {1e-5f, 1.0f}},
    {.a = {64, 9}, .f = {1e-5f, 3e-3f}}, /* variance ~ eps */
    {.a = {33, 4, 3}, .f = {1e-5f, 1.0f}, .flags = CONF_A_PERMUTED},
    {.a = {32, 5}, .f = {1e-6f, 1.0f}, .flags = CONF_A_SLICED},
};
CHECK_SIZES(layer_norm, LAYER_NORM);

bool conf_build_layer_norm(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *x = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, amp(s->f[1]));
    return done(g, dz_layer_norm(g->ctx, x, s->f[0]));
}

void conf_describe_layer_norm(const conf_shape *s, char *buf, size_t size) {
    char dims[48];
    describe_dims("", s->a, dims, sizeof dims);
    snprintf(buf, size, "%s eps=%g |x|<=%g", dims, (double)s->f[0], (double)amp(s->f[1]));
    describe_layouts(s, "x", "dy", buf, size);
}

const conf_dtype conf_rms_norm_back_types[] = {TY(F32)};
const conf_shape conf_rms_norm_back_shapes[] = {
    {.a = {1}, .f = {1e-5f, 1.0f}},
    {.a = {17, 3}, .f = {1e-5f, 1.0f}},
    {.a = {288, 9, 2}, .f = {1e-5f, 2.0f}},
    {.a = {33, 4, 3}, .f = {1e-5f, 1.0f}, .flags = CONF_A_PERMUTED | CONF_B_TRANSPOSED},
    {.a = {64, 5}, .f = {1e-6f, 1.0f}, .flags = CONF_A_SLICED},
};
CHECK_SIZES(rms_norm_back, RMS_NORM_BACK);
const conf_dtype conf_layer_norm_back_types[] = {TY(F32)};
const conf_shape conf_layer_norm_back_shapes[] = {
    {.a = {2}, .f = {1e-5f, 1.0f}},
    {.a = {17, 3}, .f = {1e-5f, 1.0f}},
    {.a = {768, 9}, .f = {1e-5f, 2.0f}},
    {.a = {33, 4, 3}, .f = {1e-5f, 1.0f}, .flags = CONF_A_PERMUTED | CONF_B_TRANSPOSED},
    {.a = {64, 5}, .f = {1e-6f, 1.0f}, .flags = CONF_A_SLICED},
};
CHECK_SIZES(layer_norm_back, LAYER_NORM_BACK);

static bool build_norm_back(conf_graph *g, const conf_shape *s, const conf_dtype *t, bool rms) {
    dz_tensor *x = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, amp(s->f[1]));
    dz_tensor *dy = input(g, t->type, s->a, layout_of(s->flags, 1), CONF_FILL_UNIFORM, 1.0f);
    return done(g, rms ? dz_rms_norm_back(g->ctx, x, dy, s->f[0]) : dz_layer_norm_back(g->ctx, x, dy, s->f[0]));
}
bool conf_build_rms_norm_back(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    return build_norm_back(g, s, t, true);
}
bool conf_build_layer_norm_back(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    return build_norm_back(g, s, t, false);
}
void conf_describe_rms_norm_back(const conf_shape *s, char *buf, size_t size) { conf_describe_layer_norm(s, buf, size); }
void conf_describe_layer_norm_back(const conf_shape *s, char *buf, size_t size) {
    conf_describe_layer_norm(s, buf, size);
}

/* ---- GELU, GELU_BACK, SWIGLU_BACK: a = x (gate) shape; f[0] amplitude of x ---- */

const conf_dtype conf_gelu_types[] = {TY(F32)};
const conf_shape conf_gelu_shapes[] = {
    {.a = {1}, .f = {4.0f}},
    {.a = {17, 3}, .f = {4.0f}},
    {.a = {67, 5, 2}, .f = {12.0f}},
    {.a = {17, 5}, .f = {4.0f}, .flags = CONF_A_TRANSPOSED},
    {.a = {16, 3, 4}, .f = {4.0f}, .flags = CONF_A_PERMUTED},
};
CHECK_SIZES(gelu, GELU);

bool conf_build_gelu(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    return done(g, dz_gelu(g->ctx, input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, amp(s->f[0]))));
}

void conf_describe_gelu(const conf_shape *s, char *buf, size_t size) {
    char dims[48];
    describe_dims("", s->a, dims, sizeof dims);
    snprintf(buf, size, "%s |x|<=%g", dims, (double)amp(s->f[0]));
    describe_layouts(s, "x", "dy", buf, size);
}

const conf_dtype conf_gelu_back_types[] = {TY(F32)};
const conf_shape conf_gelu_back_shapes[] = {
    {.a = {1}, .f = {4.0f}},
    {.a = {67, 5, 2}, .f = {6.0f}},
    {.a = {3072, 4}, .f = {4.0f}},
    {.a = {17, 5}, .f = {4.0f}, .flags = CONF_A_TRANSPOSED | CONF_B_SLICED},
};
CHECK_SIZES(gelu_back, GELU_BACK);

bool conf_build_gelu_back(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *x = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, amp(s->f[0]));
    dz_tensor *dy = input(g, t->type, s->a, layout_of(s->flags, 1), CONF_FILL_UNIFORM, 1.0f);
    return done(g, dz_gelu_back(g->ctx, x, dy));
}
void conf_describe_gelu_back(const conf_shape *s, char *buf, size_t size) { conf_describe_gelu(s, buf, size); }

/* SWIGLU_BACK: a = (n, T) of gate, up and dy; gate and up laid out as flags say. */
const conf_dtype conf_swiglu_back_types[] = {TY(F32)};
const conf_shape conf_swiglu_back_shapes[] = {
    {.a = {1}, .f = {4.0f}},
    {.a = {17, 3}, .f = {4.0f}},
    {.a = {688, 9}, .f = {6.0f}},
    {.a = {17, 5}, .f = {4.0f}, .flags = CONF_A_TRANSPOSED | CONF_B_SLICED},
};
CHECK_SIZES(swiglu_back, SWIGLU_BACK);

bool conf_build_swiglu_back(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *gate = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, amp(s->f[0]));
    dz_tensor *up = input(g, t->type, s->a, layout_of(s->flags, 1), CONF_FILL_UNIFORM, 1.0f);
    dz_tensor *dy = input(g, t->type, s->a, CONF_CONTIG, CONF_FILL_UNIFORM, 1.0f);
    return done(g, dz_swiglu_back(g->ctx, gate, up, dy));
}
void conf_describe_swiglu_back(const conf_shape *s, char *buf, size_t size) {
    describe_dims("", s->a, buf, size);
    describe_layouts(s, "gate", "up", buf, size);
}

/* ---- MUL_MAT_BACK_X: a = W (K, N), b = dY (N, M, B2) ---- */

const conf_dtype conf_mul_mat_back_x_types[] = {
    TY(F32), TY(F16), TY(BF16), TY(Q8_0), TY(Q4_0), TY(Q4_K),
};
const conf_shape conf_mul_mat_back_x_shapes[] = {
    {.a = {256, 1}, .b = {1, 3}},
    {.a = {256, 17}, .b = {17, 5}},
    {.a = {512, 67}, .b = {67, 33}},
    {.a = {256, 96}, .b = {96, 20, 3}},
    {.a = {768, 64}, .b = {64, 64}},
    {.a = {256, 9}, .b = {9, 13}, .flags = CONF_B_TRANSPOSED},
    {.a = {256, 9}, .b = {9, 4, 2}, .flags = CONF_A_SLICED | CONF_B_PERMUTED},
};
CHECK_SIZES(mul_mat_back_x, MUL_MAT_BACK_X);

bool conf_build_mul_mat_back_x(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *w = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, 1.0f);
    dz_tensor *dy = input(g, DZ_TYPE_F32, s->b, layout_of(s->flags, 1), CONF_FILL_UNIFORM, 1.0f);
    return done(g, dz_mul_mat_back_x(g->ctx, w, dy));
}

void conf_describe_mul_mat_back_x(const conf_shape *s, char *buf, size_t size) {
    char a[48], b[48];
    describe_dims("w", s->a, a, sizeof a);
    describe_dims("dy", s->b, b, sizeof b);
    snprintf(buf, size, "%s %s", a, b);
    describe_layouts(s, "w", "dy", buf, size);
}

/* ---- MUL_MAT_BACK_W: a = X (K, M, B2), b = dY (N, M, B2) ---- */

const conf_dtype conf_mul_mat_back_w_types[] = {TY(F32)};
const conf_shape conf_mul_mat_back_w_shapes[] = {
    {.a = {1, 1}, .b = {1, 1}},
    {.a = {64, 5}, .b = {17, 5}},
    {.a = {96, 33, 2}, .b = {67, 33, 2}},
    {.a = {256, 64}, .b = {128, 64}},
    {.a = {768, 67}, .b = {100, 67}},
    {.a = {64, 13}, .b = {17, 13}, .flags = CONF_A_TRANSPOSED | CONF_B_TRANSPOSED},
    {.a = {32, 4, 3}, .b = {9, 4, 3}, .flags = CONF_A_PERMUTED | CONF_B_SLICED},
};
CHECK_SIZES(mul_mat_back_w, MUL_MAT_BACK_W);

bool conf_build_mul_mat_back_w(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *x = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, 1.0f);
    dz_tensor *dy = input(g, t->type, s->b, layout_of(s->flags, 1), CONF_FILL_UNIFORM, 1.0f);
    return done(g, dz_mul_mat_back_w(g->ctx, x, dy));
}

void conf_describe_mul_mat_back_w(const conf_shape *s, char *buf, size_t size) {
    char a[48], b[48];
    describe_dims("x", s->a, a, sizeof a);
    describe_dims("dy", s->b, b, sizeof b);
    snprintf(buf, size, "%s %s", a, b);
    describe_layouts(s, "x", "dy", buf, size);
}

/* ---- SUM_COLS: a = the input ---- */

const conf_dtype conf_sum_cols_types[] = {TY(F32)};
const conf_shape conf_sum_cols_shapes[] = {
    {.a = {1}},
    {.a = {17, 3}},
    {.a = {67, 5, 2}},
    {.a = {768, 33, 2, 2}},
    {.a = {17, 5}, .flags = CONF_A_TRANSPOSED},
    {.a = {16, 3, 4}, .flags = CONF_A_PERMUTED},
};
CHECK_SIZES(sum_cols, SUM_COLS);

bool conf_build_sum_cols(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    return done(g, dz_sum_cols(g->ctx, input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, 1.0f)));
}
void conf_describe_sum_cols(const conf_shape *s, char *buf, size_t size) {
    describe_dims("", s->a, buf, size);
    describe_layouts(s, "x", "", buf, size);
}

/* ---- ROPE_BACK: a = dy (head_dim, n_head, T), i[0] n_rot, i[1] mode, f[0] base,
 *      f[1] freq_scale; positions uniform in [0, 2048) ---- */

const conf_dtype conf_rope_back_types[] = {TY(F32)};
const conf_shape conf_rope_back_shapes[] = {
    {.a = {64, 4, 1}, .i = {64, DZ_ROPE_NORMAL}, .f = {10000.0f, 1.0f}},
    {.a = {64, 3, 7}, .i = {64, DZ_ROPE_NEOX}, .f = {10000.0f, 1.0f}},
    {.a = {64, 2, 17}, .i = {32, DZ_ROPE_NORMAL}, .f = {10000.0f, 0.5f}},
    {.a = {64, 4, 6}, .i = {64, DZ_ROPE_NEOX}, .f = {10000.0f, 1.0f}, .flags = CONF_A_PERMUTED},
    {.a = {32, 3, 4}, .i = {24, DZ_ROPE_NORMAL}, .f = {10000.0f, 1.0f}, .flags = CONF_A_SLICED},
};
CHECK_SIZES(rope_back, ROPE_BACK);

bool conf_build_rope_back(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *dy = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, 1.0f);
    int64_t pos_ne[4] = {s->a[2]};
    dz_tensor *pos = input(g, DZ_TYPE_I32, pos_ne, CONF_CONTIG, CONF_FILL_POS, 2048.0f);
    return done(g, dz_rope_back(g->ctx, dy, pos, s->i[0], s->i[1], s->f[0], s->f[1]));
}
void conf_describe_rope_back(const conf_shape *s, char *buf, size_t size) {
    char dims[48];
    describe_dims("", s->a, dims, sizeof dims);
    snprintf(buf, size, "%s %s n_rot=%d base=%g scale=%g", dims, s->i[1] == DZ_ROPE_NEOX ? "neox" : "normal",
             (int)s->i[0], (double)s->f[0], (double)s->f[1]);
    describe_layouts(s, "dy", "", buf, size);
}

/* ---- ATTENTION_BACK: a = q and dout (head_dim, n_head, T), b[0] = n_kv_head:
 *      k, v (head_dim, n_kv_head, T); scale 1/sqrt(head_dim); layouts: A for q,
 *      B for k and v ---- */

const conf_dtype conf_attention_back_types[] = {TY(F32)};
const conf_shape conf_attention_back_shapes[] = {
    {.a = {64, 4, 1}, .b = {4}},
    {.a = {32, 6, 7}, .b = {3}},   /* GQA 2 */
    {.a = {64, 4, 33}, .b = {1}},  /* MQA */
    {.a = {64, 12, 64}, .b = {12}},
    {.a = {16, 8, 20}, .b = {2}},  /* GQA 4 */
    {.a = {64, 4, 9}, .b = {2}, .flags = CONF_A_PERMUTED | CONF_B_PERMUTED},
    {.a = {8, 2, 2400}, .b = {1}}, /* long: the fast path's row-wise form (per-head GEMMs need too much scratch) */
};
CHECK_SIZES(attention_back, ATTENTION_BACK);

bool conf_build_attention_back(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    const int64_t kv_ne[4] = {s->a[0], s->b[0], s->a[2]};
    dz_tensor *q = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, 1.0f);
    dz_tensor *k = input(g, t->type, kv_ne, layout_of(s->flags, 1), CONF_FILL_UNIFORM, 1.0f);
    dz_tensor *v = input(g, t->type, kv_ne, layout_of(s->flags, 1), CONF_FILL_UNIFORM, 1.0f);
    dz_tensor *dout = input(g, t->type, s->a, CONF_CONTIG, CONF_FILL_UNIFORM, 1.0f);
    return done(g, dz_attention_back(g->ctx, q, k, v, dout, 1.0f / sqrtf((float)s->a[0])));
}
void conf_describe_attention_back(const conf_shape *s, char *buf, size_t size) {
    snprintf(buf, size, "hd=%lld heads=%lld/%lld T=%lld", (long long)s->a[0], (long long)s->a[1], (long long)s->b[0],
             (long long)s->a[2]);
    describe_layouts(s, "q", "k,v", buf, size);
}

/* ---- GET_ROWS_BACK: a = dY (ne0, n), b[0] = n_rows (ids uniform in [0, n_rows)) ---- */

const conf_dtype conf_get_rows_back_types[] = {TY(F32)};
const conf_shape conf_get_rows_back_shapes[] = {
    {.a = {32, 1}, .b = {1}},
    {.a = {64, 17}, .b = {5}}, /* repeats */
    {.a = {768, 64}, .b = {257}},
    {.a = {33, 9}, .b = {40}, .flags = CONF_A_SLICED},
};
CHECK_SIZES(get_rows_back, GET_ROWS_BACK);

bool conf_build_get_rows_back(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *dy = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, 1.0f);
    const int64_t ids_ne[4] = {s->a[1] > 0 ? s->a[1] : 1};
    dz_tensor *ids = input(g, DZ_TYPE_I32, ids_ne, CONF_CONTIG, CONF_FILL_IDS, (float)s->b[0]);
    return done(g, dz_get_rows_back(g->ctx, dy, ids, s->b[0]));
}
void conf_describe_get_rows_back(const conf_shape *s, char *buf, size_t size) {
    snprintf(buf, size, "ne0=%lld ids=%lld rows=%lld", (long long)s->a[0], (long long)s->a[1], (long long)s->b[0]);
    describe_layouts(s, "dy", "", buf, size);
}

/* ---- CROSS_ENTROPY(_BACK): a = logits (V, T, B), f[0] amplitude, f[1] dloss;
 *      targets uniform in [0, V) ---- */

const conf_dtype conf_cross_entropy_types[] = {TY(F32)};
const conf_shape conf_cross_entropy_shapes[] = {
    {.a = {1, 1}, .f = {1.0f, 1.0f}},
    {.a = {17, 3}, .f = {1.0f, 1.0f}},
    {.a = {64, 8, 2}, .f = {5.0f, 0.5f}},
    {.a = {50257, 4}, .f = {30.0f, 1.0f}}, /* GPT-2's vocabulary; exp overflows without the max */
    {.a = {96, 7}, .f = {2.0f, 1.0f}, .flags = CONF_A_SLICED},
};
CHECK_SIZES(cross_entropy, CROSS_ENTROPY);
const conf_dtype conf_cross_entropy_back_types[] = {TY(F32)};
const conf_shape conf_cross_entropy_back_shapes[] = {
    {.a = {1, 1}, .f = {1.0f, 1.0f}},
    {.a = {17, 3}, .f = {1.0f, 1.0f}},
    {.a = {64, 8, 2}, .f = {5.0f, 0.5f}},
    {.a = {50257, 4}, .f = {30.0f, 1.0f}},
    {.a = {96, 7}, .f = {2.0f, 1.0f}, .flags = CONF_A_SLICED},
};
CHECK_SIZES(cross_entropy_back, CROSS_ENTROPY_BACK);

static bool build_ce(conf_graph *g, const conf_shape *s, const conf_dtype *t, bool back) {
    dz_tensor *logits = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, amp(s->f[0]));
    const int64_t tg_ne[4] = {s->a[1], s->a[2], s->a[3]};
    dz_tensor *tg = input(g, DZ_TYPE_I32, tg_ne, CONF_CONTIG, CONF_FILL_IDS, (float)s->a[0]);
    return done(g, back ? dz_cross_entropy_back(g->ctx, logits, tg, s->f[1]) : dz_cross_entropy(g->ctx, logits, tg));
}
bool conf_build_cross_entropy(conf_graph *g, const conf_shape *s, const conf_dtype *t) { return build_ce(g, s, t, false); }
bool conf_build_cross_entropy_back(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    return build_ce(g, s, t, true);
}
void conf_describe_cross_entropy(const conf_shape *s, char *buf, size_t size) {
    char dims[48];
    describe_dims("", s->a, dims, sizeof dims);
    snprintf(buf, size, "%s |logits|<=%g", dims, (double)amp(s->f[0]));
    describe_layouts(s, "logits", "", buf, size);
}
void conf_describe_cross_entropy_back(const conf_shape *s, char *buf, size_t size) {
    char dims[48];
    describe_dims("", s->a, dims, sizeof dims);
    snprintf(buf, size, "%s |logits|<=%g dloss=%g", dims, (double)amp(s->f[0]), (double)s->f[1]);
    describe_layouts(s, "logits", "", buf, size);
}
