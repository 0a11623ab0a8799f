/* The case table of the conformance suite: for every op, the types it is
 * tested with (and their limits), the shapes, and a builder that turns one
 * shape and type into a one-op graph.
 *
 * To add a case, add a line to an op's shape table. To add an op, add its
 * types, shapes, builder and describer, and a line to conf_suite. */
#include "conformance/conformance_impl.h"
#include "conformance/cases_train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- helpers for builders ---- */

static conf_layout layout_of(uint32_t flags, int which) {
    uint32_t t = which == 0 ? CONF_A_TRANSPOSED : CONF_B_TRANSPOSED;
    uint32_t p = which == 0 ? CONF_A_PERMUTED : CONF_B_PERMUTED;
    uint32_t s = which == 0 ? CONF_A_SLICED : CONF_B_SLICED;
    if (flags & t) return CONF_TRANSPOSED;
    if (flags & p) return CONF_PERMUTED;
    if (flags & s) return CONF_SLICED;
    return CONF_CONTIG;
}

static int dims_of(const int64_t ne[4]) {
    int n = 1;
    for (int i = 1; i < 4; i++)
        if (ne[i] > 1) n = i + 1;
    return n;
}

/* A leaf the harness fills before compute. */
static dz_tensor *new_leaf(conf_graph *g, dz_type type, const int64_t ne[4], conf_fill fill,
                           float amplitude, bool is_destination) {
    if (g->n_inputs == CONF_MAX_INPUTS) return NULL;
    dz_tensor *leaf = dz_new_tensor(g->ctx, type, dims_of(ne), ne);
    if (!leaf) return NULL;
    dz_set_name(leaf, "in%d", g->n_inputs);
    dz_set_input(leaf);
    g->inputs[g->n_inputs++] = (conf_input){leaf, fill, amplitude, is_destination};
    return leaf;
}

/* An input of shape ne (zeros read as 1) laid out as `layout`: returns the
 * tensor the op sees (the leaf itself, or a view of it). */
static dz_tensor *input(conf_graph *g, dz_type type, const int64_t shape[4], conf_layout layout,
                        conf_fill fill, float amplitude) {
    int64_t ne[4];
    for (int i = 0; i < 4; i++) ne[i] = shape[i] > 0 ? shape[i] : 1;
    switch (layout) {
    case CONF_CONTIG:
        return new_leaf(g, type, ne, fill, amplitude, false);
    case CONF_TRANSPOSED: {
        int64_t leaf_ne[4] = {ne[1], ne[0], ne[2], ne[3]};
        return dz_transpose(g->ctx, new_leaf(g, type, leaf_ne, fill, amplitude, false));
    }
    case CONF_PERMUTED: {
        int64_t leaf_ne[4] = {ne[0], ne[2], ne[1], ne[3]};
        return dz_permute(g->ctx, new_leaf(g, type, leaf_ne, fill, amplitude, false), 0, 2, 1, 3);
    }
    case CONF_SLICED: {
        int64_t leaf_ne[4] = {2 * ne[0], ne[1], ne[2], 1};
        dz_tensor *leaf = new_leaf(g, type, leaf_ne, fill, amplitude, false);
        size_t half_row;
        if (!leaf || dz_row_size(type, ne[0], &half_row) != DZ_OK) return NULL;
        return dz_view_3d(g->ctx, leaf, ne[0], ne[1], ne[2], leaf->nb[1], leaf->nb[2], half_row);
    }
    }
    return NULL;
}

static bool done(conf_graph *g, dz_tensor *node) {
    g->node = node;
    if (!g->result) g->result = node;
    return node != NULL && g->result != NULL;
}

/* ---- describing a case ---- */

static const char *layout_name(conf_layout l) {
    switch (l) {
    case CONF_TRANSPOSED: return "transposed";
    case CONF_PERMUTED: return "permuted";
    case CONF_SLICED: return "row-strided";
    case CONF_CONTIG: break;
    }
    return "";
}

/* Appends ", <name> <layout>" for the non-contiguous inputs, mask/causal. */
static void describe_extras(const conf_shape *s, const char *a_name, const char *b_name, char *buf,
                            size_t size) {
    size_t len = strlen(buf);
    conf_layout la = layout_of(s->flags, 0), lb = layout_of(s->flags, 1);
    if (la != CONF_CONTIG && len < size)
        len += (size_t)snprintf(buf + len, size - len, ", %s %s", a_name, layout_name(la));
    if (lb != CONF_CONTIG && len < size)
        len += (size_t)snprintf(buf + len, size - len, ", %s %s", b_name, layout_name(lb));
    if ((s->flags & CONF_MASK) && len < size)
        len += (size_t)snprintf(buf + len, size - len, ", mask");
    if ((s->flags & CONF_CAUSAL) && len < size)
        snprintf(buf + len, size - len, ", causal n_past=%d", (int)s->i[0]);
}

static void describe_dims(const char *label, const int64_t ne[4], char *buf, size_t size) {
    int64_t d[4];
    for (int i = 0; i < 4; i++) d[i] = ne[i] > 0 ? ne[i] : 1;
    int n = dims_of(d);
    size_t len = (size_t)snprintf(buf, size, "%s(", label);
    for (int i = 0; i < n && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, i ? ",%lld" : "%lld", (long long)d[i]);
    if (len < size) snprintf(buf + len, size - len, ")");
}

void conf_dtype_label(dz_op op, const conf_dtype *t, char *buf, size_t size) {
    if (op == DZ_OP_CPY || t->src_type != t->type)
        snprintf(buf, size, "%s->%s", dz_type_name(t->src_type), dz_type_name(t->type));
    else
        snprintf(buf, size, "%s", dz_type_name(t->type));
}

/* ---- the types each op is tested with ---- */

#define EXACT DZ_CONFORMANCE_LIMIT_EXACT
#define LIM_F32 DZ_CONFORMANCE_LIMIT_F32
#define LIM_HALF DZ_CONFORMANCE_LIMIT_HALF
#define LIM_QUANT DZ_CONFORMANCE_LIMIT_QUANT
#define T(type, limit) {DZ_TYPE_##type, DZ_TYPE_##type, limit}

static const conf_dtype f32_only[] = {T(F32, LIM_F32)};
/* Dequantizing one value is one rounding at most: equal up to F32 noise. */
static const conf_dtype get_rows_types[] = {
    T(F32, EXACT),     T(F16, EXACT),     T(BF16, EXACT),    T(Q8_0, LIM_F32),   T(Q4_0, LIM_F32),
    T(Q4_1, LIM_F32),  T(Q5_0, LIM_F32),  T(Q5_1, LIM_F32),  T(IQ4_NL, LIM_F32), T(Q2_K, LIM_F32),
    T(Q3_K, LIM_F32),  T(Q4_K, LIM_F32),  T(Q5_K, LIM_F32),  T(Q6_K, LIM_F32),
};
static const conf_dtype mul_mat_types[] = {
    T(F32, LIM_F32),    T(F16, LIM_HALF),   T(BF16, LIM_HALF),  T(Q8_0, LIM_QUANT),
    T(Q4_0, LIM_QUANT), T(Q4_1, LIM_QUANT), T(Q5_0, LIM_QUANT), T(Q5_1, LIM_QUANT),
    T(IQ4_NL, LIM_QUANT), T(Q2_K, LIM_QUANT), T(Q3_K, LIM_QUANT), T(Q4_K, LIM_QUANT),
    T(Q5_K, LIM_QUANT), T(Q6_K, LIM_QUANT),
};
static const conf_dtype attention_types[] = {T(F32, LIM_F32), T(F16, LIM_HALF)};
/* Widening is exact; narrowing may round either way. */
static const conf_dtype cpy_types[] = {
    {DZ_TYPE_F32, DZ_TYPE_F32, EXACT},
    {DZ_TYPE_F16, DZ_TYPE_F32, DZ_CONFORMANCE_LIMIT_TO_F16},
    {DZ_TYPE_BF16, DZ_TYPE_F32, DZ_CONFORMANCE_LIMIT_TO_BF16},
    {DZ_TYPE_F32, DZ_TYPE_F16, EXACT},
    {DZ_TYPE_F32, DZ_TYPE_BF16, EXACT},
};
/* SET_ROWS: F32 rows written as they are, or rounded to F16 once. */
static const conf_dtype set_rows_types[] = {
    {DZ_TYPE_F32, DZ_TYPE_F32, EXACT},
    {DZ_TYPE_F16, DZ_TYPE_F32, EXACT},
};
#undef T

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- GET_ROWS: a = table (ne0, n_rows), b[0] = n_ids ---- */

static const conf_shape get_rows_shapes[] = {
    {.a = {32, 1}, .b = {1}},
    {.a = {64, 17}, .b = {5}},
    {.a = {96, 67}, .b = {33}},
    {.a = {256, 3}, .b = {67}}, /* more ids than rows: repeats */
    {.a = {64, 33}, .b = {7}, .flags = CONF_A_SLICED},
    /* rows long enough for the 256-element blocks of the K-quants */
    {.a = {512, 9}, .b = {4}},
    {.a = {256, 33}, .b = {17}},
    {.a = {768, 5}, .b = {9}, .flags = CONF_A_SLICED},
};

/* Exact cases carry special values (-0, subnormals, extremes) too. */
static conf_fill fill_for(const conf_dtype *t) {
    return t->limit == EXACT ? CONF_FILL_SPECIAL : CONF_FILL_UNIFORM;
}

static bool build_get_rows(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *table = input(g, t->type, s->a, layout_of(s->flags, 0), fill_for(t), 1.0f);
    int64_t ids_ne[4] = {s->b[0]};
    dz_tensor *ids = input(g, DZ_TYPE_I32, ids_ne, CONF_CONTIG, CONF_FILL_IDS, (float)s->a[1]);
    return done(g, dz_get_rows(g->ctx, table, ids));
}

static void describe_get_rows(const conf_shape *s, char *buf, size_t size) {
    snprintf(buf, size, "ne0=%lld rows=%lld ids=%lld", (long long)s->a[0], (long long)s->a[1],
             (long long)s->b[0]);
    describe_extras(s, "table", "ids", buf, size);
}

/* ---- ADD, MUL: a = src0, b = src1 (all zero: same as a; else each dim divides a's) ---- */

static const conf_shape binary_shapes[] = {
    {.a = {1}},
    {.a = {3, 1}},
    {.a = {17, 5}},
    {.a = {67, 3, 2}},
    {.a = {33, 7, 2, 3}},
    {.a = {17, 5}, .b = {17, 1}},                 /* one row for all */
    {.a = {33, 6, 4}, .b = {33, 3, 1}},           /* repeated twice along rows */
    {.a = {32, 4, 3, 2}, .b = {32, 1, 3, 1}},
    {.a = {17, 5}, .flags = CONF_A_TRANSPOSED},
    {.a = {17, 4, 3}, .flags = CONF_A_PERMUTED | CONF_B_PERMUTED},
    {.a = {33, 5, 2}, .b = {33, 1, 2}, .flags = CONF_A_SLICED},
    {.a = {9, 7}, .flags = CONF_B_TRANSPOSED},
};

static bool build_binary(conf_graph *g, const conf_shape *s, const conf_dtype *t, dz_op op) {
    bool same = !s->b[0] && !s->b[1] && !s->b[2] && !s->b[3];
    dz_tensor *a = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, 1.0f);
    dz_tensor *b = input(g, t->type, same ? s->a : s->b, layout_of(s->flags, 1), CONF_FILL_UNIFORM,
                         1.0f);
    return done(g, op == DZ_OP_ADD ? dz_add(g->ctx, a, b) : dz_mul(g->ctx, a, b));
}
static bool build_add(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    return build_binary(g, s, t, DZ_OP_ADD);
}
static bool build_mul(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    return build_binary(g, s, t, DZ_OP_MUL);
}

static void describe_binary(const conf_shape *s, char *buf, size_t size) {
    char a[48], b[48];
    describe_dims("", s->a, a, sizeof a);
    describe_dims(" + ", s->b, b, sizeof b);
    bool same = !s->b[0] && !s->b[1] && !s->b[2] && !s->b[3];
    snprintf(buf, size, "%s%s", a, same ? "" : b);
    describe_extras(s, "src0", "src1", buf, size);
}

/* ---- SCALE, SILU: a = x, f[0] = scale (SCALE), f[1] = amplitude of x (0: 1) ---- */

static const conf_shape unary_shapes[] = {
    {.a = {1}, .f = {0.5f}},
    {.a = {17, 3}, .f = {-3.25f}},
    {.a = {67, 5, 2}, .f = {1e-3f, 12.0f}},
    {.a = {33, 7, 2, 2}, .f = {2.0f}},
    {.a = {17, 5}, .f = {0.75f}, .flags = CONF_A_TRANSPOSED},
    {.a = {16, 3, 4}, .f = {-1.0f}, .flags = CONF_A_PERMUTED},
};

static float amplitude_or_one(float a) { return a > 0.0f ? a : 1.0f; }

static bool build_scale(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *x = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM,
                         amplitude_or_one(s->f[1]));
    return done(g, dz_scale(g->ctx, x, s->f[0]));
}
static bool build_silu(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *x = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM,
                         amplitude_or_one(s->f[1]) * 4.0f);
    return done(g, dz_silu(g->ctx, x));
}

static void describe_unary(const conf_shape *s, char *buf, size_t size) {
    describe_dims("", s->a, buf, size);
    describe_extras(s, "x", "", buf, size);
}
static void describe_scale(const conf_shape *s, char *buf, size_t size) {
    char dims[48];
    describe_dims("", s->a, dims, sizeof dims);
    snprintf(buf, size, "%s * %g", dims, (double)s->f[0]);
    describe_extras(s, "x", "", buf, size);
}

/* ---- SWIGLU: a = gate and up ---- */

static const conf_shape swiglu_shapes[] = {
    {.a = {1}},
    {.a = {17, 3}},
    {.a = {67, 4, 2}},
    {.a = {96, 33}},
    {.a = {17, 5}, .flags = CONF_A_TRANSPOSED | CONF_B_PERMUTED},
};

static bool build_swiglu(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *gate = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, 4.0f);
    dz_tensor *up = input(g, t->type, s->a, layout_of(s->flags, 1), CONF_FILL_UNIFORM, 1.0f);
    return done(g, dz_swiglu(g->ctx, gate, up));
}
static void describe_swiglu(const conf_shape *s, char *buf, size_t size) {
    describe_dims("", s->a, buf, size);
    describe_extras(s, "gate", "up", buf, size);
}

/* ---- RMS_NORM: a = x, f[0] = eps, f[1] = amplitude of x ---- */

static const conf_shape rms_norm_shapes[] = {
    {.a = {1}, .f = {1e-5f, 1.0f}},
    {.a = {17, 3}, .f = {1e-5f, 1.0f}},
    {.a = {67, 5}, .f = {1e-6f, 3.0f}},
    {.a = {256, 7, 2}, .f = {1e-5f, 1.0f}},
    {.a = {64, 9}, .f = {1e-5f, 3e-3f}}, /* mean(x^2) ~ eps: eps matters */
    {.a = {33, 4, 3}, .f = {1e-5f, 1.0f}, .flags = CONF_A_PERMUTED},
    {.a = {32, 5}, .f = {1e-6f, 1.0f}, .flags = CONF_A_SLICED},
};

static bool build_rms_norm(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *x = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, s->f[1]);
    return done(g, dz_rms_norm(g->ctx, x, s->f[0]));
}
static void describe_rms_norm(const conf_shape *s, char *buf, size_t size) {
    char dims[48];
    describe_dims("", s->a, dims, sizeof dims);
    snprintf(buf, size, "%s eps=%g |x|<=%g", dims, (double)s->f[0], (double)s->f[1]);
    describe_extras(s, "x", "", buf, size);
}

/* ---- MUL_MAT: a = W (K, N, b2, b3), b = X (K, M, B2, B3) ---- */

static const conf_shape mul_mat_shapes[] = {
    {.a = {32, 1}, .b = {32, 1}},                       /* n = 1 */
    {.a = {64, 17}, .b = {64, 1}},                      /* matrix-vector */
    {.a = {64, 3}, .b = {64, 7}},
    {.a = {96, 67}, .b = {96, 5}},
    {.a = {256, 33}, .b = {256, 3}},
    {.a = {128, 16}, .b = {128, 33}},                   /* batched rows */
    {.a = {64, 17, 2}, .b = {64, 5, 4}},                /* W broadcast over dim 2 */
    {.a = {32, 3, 1, 2}, .b = {32, 2, 3, 2}},           /* ... and dims 2, 3 */
    {.a = {64, 17}, .b = {64, 5, 3}, .flags = CONF_B_PERMUTED},
    {.a = {64, 9}, .b = {64, 4}, .flags = CONF_A_SLICED},
    /* K a multiple of 256, for the K-quants' blocks */
    {.a = {512, 9}, .b = {512, 4}},
    {.a = {256, 17, 2}, .b = {256, 5, 4}},
    {.a = {512, 7}, .b = {512, 3, 2}, .flags = CONF_B_PERMUTED},
    {.a = {256, 9}, .b = {256, 1}, .flags = CONF_A_SLICED},
};

static bool build_mul_mat(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *w = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, 1.0f);
    dz_tensor *x = input(g, DZ_TYPE_F32, s->b, layout_of(s->flags, 1), CONF_FILL_UNIFORM, 1.0f);
    return done(g, dz_mul_mat(g->ctx, w, x));
}
static void describe_mul_mat(const conf_shape *s, char *buf, size_t size) {
    char w[48], x[48];
    describe_dims("w", s->a, w, sizeof w);
    describe_dims("x", s->b, x, sizeof x);
    snprintf(buf, size, "%s %s", w, x);
    describe_extras(s, "w", "x", buf, size);
}

/* ---- ROPE: a = x (head_dim, n_head, T), i[0] = n_rot, i[1] = mode,
 *      f[0] = freq_base, f[1] = freq_scale; positions uniform in [0, 2048) ---- */

static const conf_shape rope_shapes[] = {
    {.a = {64, 4, 1}, .i = {64, DZ_ROPE_NORMAL}, .f = {10000.0f, 1.0f}},
    {.a = {64, 3, 7}, .i = {64, DZ_ROPE_NEOX}, .f = {10000.0f, 1.0f}},
    {.a = {64, 2, 17}, .i = {32, DZ_ROPE_NORMAL}, .f = {10000.0f, 1.0f}}, /* partial n_rot */
    {.a = {48, 3, 5}, .i = {16, DZ_ROPE_NEOX}, .f = {10000.0f, 1.0f}},
    {.a = {128, 2, 9}, .i = {128, DZ_ROPE_NEOX}, .f = {500000.0f, 0.25f}}, /* freq scaling */
    {.a = {32, 5, 3}, .i = {32, DZ_ROPE_NORMAL}, .f = {10000.0f, 0.5f}},
    {.a = {64, 4, 6}, .i = {64, DZ_ROPE_NEOX}, .f = {10000.0f, 1.0f}, .flags = CONF_A_PERMUTED},
    {.a = {32, 3, 4}, .i = {24, DZ_ROPE_NORMAL}, .f = {10000.0f, 1.0f}, .flags = CONF_A_SLICED},
};

static bool build_rope(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *x = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, 1.0f);
    int64_t pos_ne[4] = {s->a[2]};
    dz_tensor *pos = input(g, DZ_TYPE_I32, pos_ne, CONF_CONTIG, CONF_FILL_POS, 2048.0f);
    return done(g, dz_rope(g->ctx, x, pos, s->i[0], s->i[1], s->f[0], s->f[1]));
}
static void describe_rope(const conf_shape *s, char *buf, size_t size) {
    char dims[48];
    describe_dims("", s->a, dims, sizeof dims);
    snprintf(buf, size, "%s %s n_rot=%d base=%g scale=%g", dims,
             s->i[1] == DZ_ROPE_NEOX ? "neox" : "normal", (int)s->i[0], (double)s->f[0],
             (double)s->f[1]);
    describe_extras(s, "x", "", buf, size);
}

/* ---- SOFTMAX: a = x (n, rows, c, d), f[0] = scale, f[1] = amplitude, i[0] = n_past
 *      (with CONF_CAUSAL; causal cases have n = n_past + rows) ---- */

static const conf_shape softmax_shapes[] = {
    {.a = {1}, .f = {1.0f, 1.0f}},
    {.a = {17, 3}, .f = {1.0f, 1.0f}},
    {.a = {67, 5, 2}, .f = {0.125f, 4.0f}},
    {.a = {33, 4}, .f = {10.0f, 5.0f}}, /* exp overflows without subtracting the max */
    {.a = {7, 7}, .f = {1.0f, 1.0f}, .flags = CONF_CAUSAL},
    {.a = {33, 5, 4}, .f = {0.5f, 2.0f}, .i = {28}, .flags = CONF_CAUSAL},
    {.a = {19, 3, 2}, .f = {1.0f, 1.0f}, .flags = CONF_MASK},
    {.a = {20, 4}, .f = {0.7f, 1.0f}, .i = {16}, .flags = CONF_MASK | CONF_CAUSAL},
    {.a = {17, 3, 4}, .f = {1.0f, 1.0f}, .flags = CONF_A_PERMUTED},
};

static bool build_softmax(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *x = input(g, t->type, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, s->f[1]);
    dz_tensor *mask = NULL;
    if (s->flags & CONF_MASK) {
        int64_t mask_ne[4] = {s->a[0], s->a[1]};
        mask = input(g, DZ_TYPE_F32, mask_ne, CONF_CONTIG, CONF_FILL_MASK, 1.0f);
        if (!mask) return false;
    }
    return done(g, dz_softmax(g->ctx, x, mask, s->f[0], (s->flags & CONF_CAUSAL) != 0, s->i[0]));
}
static void describe_softmax(const conf_shape *s, char *buf, size_t size) {
    char dims[48];
    describe_dims("", s->a, dims, sizeof dims);
    snprintf(buf, size, "%s scale=%g |x|<=%g", dims, (double)s->f[0], (double)s->f[1]);
    describe_extras(s, "x", "", buf, size);
}

/* ---- ATTENTION: a = q (head_dim, n_head, T), b = (S, n_kv_head); K and V are
 *      (head_dim, n_kv_head, S) of the tested type; scale 1/sqrt(head_dim);
 *      i[0] = n_past with CONF_CAUSAL ---- */

static const conf_shape attention_shapes[] = {
    {.a = {64, 4, 1}, .b = {1, 4}},                                  /* n = 1 */
    {.a = {64, 8, 1}, .b = {17, 2}, .i = {16}, .flags = CONF_CAUSAL}, /* decode, GQA 4 */
    {.a = {32, 6, 7}, .b = {7, 3}, .flags = CONF_CAUSAL},             /* prefill, GQA 2 */
    {.a = {64, 4, 5}, .b = {33, 1}, .i = {28}, .flags = CONF_CAUSAL}, /* MQA, chunk after n_past */
    {.a = {32, 2, 3}, .b = {19, 2}, .flags = CONF_MASK},
    {.a = {128, 2, 17}, .b = {67, 1}, .i = {50}, .flags = CONF_CAUSAL | CONF_MASK},
    {.a = {64, 4, 3}, .b = {9, 2}, .i = {6}, .flags = CONF_CAUSAL | CONF_A_PERMUTED | CONF_B_PERMUTED},
};

static bool build_attention(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    int64_t head_dim = s->a[0], T = s->a[2], S = s->b[0], n_kv_head = s->b[1];
    dz_tensor *q = input(g, DZ_TYPE_F32, s->a, layout_of(s->flags, 0), CONF_FILL_UNIFORM, 1.0f);
    int64_t kv_ne[4] = {head_dim, n_kv_head, S};
    conf_layout kv_layout = layout_of(s->flags, 1);
    dz_tensor *k = input(g, t->type, kv_ne, kv_layout, CONF_FILL_UNIFORM, 1.0f);
    dz_tensor *v = input(g, t->type, kv_ne, kv_layout, CONF_FILL_UNIFORM, 1.0f);
    dz_tensor *mask = NULL;
    if (s->flags & CONF_MASK) {
        int64_t mask_ne[4] = {S, T};
        mask = input(g, DZ_TYPE_F32, mask_ne, CONF_CONTIG, CONF_FILL_MASK, 1.0f);
        if (!mask) return false;
    }
    float scale = 1.0f / sqrtf((float)head_dim);
    return done(g, dz_attention(g->ctx, q, k, v, mask, scale, (s->flags & CONF_CAUSAL) != 0,
                                s->i[0]));
}
static void describe_attention(const conf_shape *s, char *buf, size_t size) {
    snprintf(buf, size, "hd=%lld heads=%lld/%lld T=%lld S=%lld", (long long)s->a[0],
             (long long)s->a[1], (long long)s->b[1], (long long)s->a[2], (long long)s->b[0]);
    describe_extras(s, "q", "k,v", buf, size);
}

/* ---- CPY: a = src shape; with CONF_DST_VIEW the destination is the window of
 *      rows [i[0], i[0] + a[1]) of a (a[0], b[1], a[2]) tensor (a KV-cache write);
 *      the whole destination tensor is compared, so stray writes show ---- */

static const conf_shape cpy_shapes[] = {
    {.a = {1}},
    {.a = {17, 3}},
    {.a = {67, 5, 2}},
    {.a = {17, 5}, .flags = CONF_A_TRANSPOSED},
    {.a = {32, 3, 4}, .flags = CONF_A_PERMUTED},
    {.a = {64, 3}, .b = {0, 19}, .i = {7}, .flags = CONF_DST_VIEW},
    {.a = {32, 5, 2}, .b = {0, 11}, .i = {4}, .flags = CONF_DST_VIEW}, /* strided window */
};

static bool build_cpy(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *src = input(g, t->src_type, s->a, layout_of(s->flags, 0), fill_for(t), 1.0f);
    dz_tensor *dst;
    if (s->flags & CONF_DST_VIEW) {
        int64_t cache_ne[4] = {s->a[0], s->b[1], s->a[2] > 0 ? s->a[2] : 1, 1};
        dz_tensor *cache = new_leaf(g, t->type, cache_ne, CONF_FILL_UNIFORM, 1.0f, true);
        if (!cache) return false;
        g->result = cache;
        dst = dz_view_3d(g->ctx, cache, s->a[0], s->a[1], cache_ne[2], cache->nb[1], cache->nb[2],
                         (size_t)s->i[0] * cache->nb[1]);
    } else {
        int64_t ne[4];
        for (int i = 0; i < 4; i++) ne[i] = s->a[i] > 0 ? s->a[i] : 1;
        dst = g->result = new_leaf(g, t->type, ne, CONF_FILL_UNIFORM, 1.0f, true);
    }
    return done(g, dz_cpy(g->ctx, src, dst));
}
static void describe_cpy(const conf_shape *s, char *buf, size_t size) {
    describe_dims("", s->a, buf, size);
    describe_extras(s, "src", "", buf, size);
    size_t len = strlen(buf);
    if ((s->flags & CONF_DST_VIEW) && len < size)
        snprintf(buf + len, size - len, ", into rows %d.. of %lld", (int)s->i[0], (long long)s->b[1]);
}

/* ---- SET_ROWS: a = rows (ne0, n), b[1] = R destination rows (distinct ids); the
 *      whole destination is compared, so stray writes show ---- */

static const conf_shape set_rows_shapes[] = {
    {.a = {32, 1}, .b = {0, 1}},
    {.a = {64, 5}, .b = {0, 19}},
    {.a = {256, 7}, .b = {0, 7}},  /* every row written */
    {.a = {96, 3}, .b = {0, 40}},
};

static bool build_set_rows(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    dz_tensor *src = input(g, DZ_TYPE_F32, s->a, CONF_CONTIG, CONF_FILL_UNIFORM, 1.0f);
    int64_t ids_ne[4] = {s->a[1] > 0 ? s->a[1] : 1};
    dz_tensor *ids = input(g, DZ_TYPE_I32, ids_ne, CONF_CONTIG, CONF_FILL_DISTINCT, (float)s->b[1]);
    int64_t dst_ne[4] = {s->a[0], s->b[1], 1, 1};
    dz_tensor *dst = new_leaf(g, t->type, dst_ne, CONF_FILL_UNIFORM, 1.0f, true);
    if (!dst) return false;
    g->result = dst;
    return done(g, dz_set_rows(g->ctx, dst, src, ids));
}
static void describe_set_rows(const conf_shape *s, char *buf, size_t size) {
    snprintf(buf, size, "%lld rows of %lld into %lld", (long long)(s->a[1] > 0 ? s->a[1] : 1), (long long)s->a[0],
             (long long)s->b[1]);
}

/* ---- PAGED_ATTENTION: a = q (head_dim, n_head, T), b = (R, n_kv_head, W): pools
 *      (head_dim, n_kv_head, R) of the tested type; index (W, T), each query
 *      seeing 1..W-1 distinct pool rows in a random order ---- */

static const conf_shape paged_attention_shapes[] = {
    {.a = {64, 4, 1}, .b = {1, 4, 2}},    /* one position */
    {.a = {64, 8, 1}, .b = {40, 2, 18}},  /* decode, GQA 4 */
    {.a = {32, 6, 5}, .b = {23, 3, 12}},  /* several queries, GQA 2 */
    {.a = {128, 2, 3}, .b = {70, 1, 67}}, /* MQA, long rows */
    {.a = {8, 8, 4}, .b = {16, 4, 9}},    /* a small head */
};

static bool build_paged_attention(conf_graph *g, const conf_shape *s, const conf_dtype *t) {
    const int64_t head_dim = s->a[0], T = s->a[2], R = s->b[0], n_kv_head = s->b[1], W = s->b[2];
    dz_tensor *q = input(g, DZ_TYPE_F32, s->a, CONF_CONTIG, CONF_FILL_UNIFORM, 1.0f);
    int64_t pool_ne[4] = {head_dim, n_kv_head, R};
    dz_tensor *k = input(g, t->type, pool_ne, CONF_CONTIG, CONF_FILL_UNIFORM, 1.0f);
    dz_tensor *v = input(g, t->type, pool_ne, CONF_CONTIG, CONF_FILL_UNIFORM, 1.0f);
    int64_t index_ne[4] = {W, T};
    dz_tensor *index = input(g, DZ_TYPE_I32, index_ne, CONF_CONTIG, CONF_FILL_PAGED, (float)R);
    return done(g, dz_paged_attention(g->ctx, q, k, v, index, 1.0f / sqrtf((float)head_dim)));
}
static void describe_paged_attention(const conf_shape *s, char *buf, size_t size) {
    snprintf(buf, size, "hd=%lld heads=%lld/%lld T=%lld pool=%lld up to %lld each", (long long)s->a[0],
             (long long)s->a[1], (long long)s->b[1], (long long)s->a[2], (long long)s->b[0],
             (long long)(s->b[2] - 1));
}

/* ---- the suite ---- */

#define OP(op_, types, shapes, build, describe) \
    {op_, types, N_OF(types), shapes, N_OF(shapes), build, describe}

const conf_op_table conf_suite[] = {
    OP(DZ_OP_GET_ROWS, get_rows_types, get_rows_shapes, build_get_rows, describe_get_rows),
    OP(DZ_OP_ADD, f32_only, binary_shapes, build_add, describe_binary),
    OP(DZ_OP_MUL, f32_only, binary_shapes, build_mul, describe_binary),
    OP(DZ_OP_SCALE, f32_only, unary_shapes, build_scale, describe_scale),
    OP(DZ_OP_RMS_NORM, f32_only, rms_norm_shapes, build_rms_norm, describe_rms_norm),
    OP(DZ_OP_MUL_MAT, mul_mat_types, mul_mat_shapes, build_mul_mat, describe_mul_mat),
    OP(DZ_OP_ROPE, f32_only, rope_shapes, build_rope, describe_rope),
    OP(DZ_OP_SOFTMAX, f32_only, softmax_shapes, build_softmax, describe_softmax),
    OP(DZ_OP_ATTENTION, attention_types, attention_shapes, build_attention, describe_attention),
    OP(DZ_OP_SILU, f32_only, unary_shapes, build_silu, describe_unary),
    OP(DZ_OP_SWIGLU, f32_only, swiglu_shapes, build_swiglu, describe_swiglu),
    OP(DZ_OP_CPY, cpy_types, cpy_shapes, build_cpy, describe_cpy),
    OP(DZ_OP_SET_ROWS, set_rows_types, set_rows_shapes, build_set_rows, describe_set_rows),
    OP(DZ_OP_PAGED_ATTENTION, attention_types, paged_attention_shapes, build_paged_attention,
       describe_paged_attention),
    CONF_TRAIN_SUITE, /* LAYER_NORM, GELU and the training ops (cases_train.c) */
};
const int conf_suite_size = N_OF(conf_suite);
