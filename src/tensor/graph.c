/* Graph building: every node an output depends on, in an order where each
 * node follows its operands (a depth-first post-order, operands visited in
 * src order), each node once. Leaves are not listed. */
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor_impl.h"

enum { VISITING = 1, DONE = 2 };

static dz_status push_node(dz_graph *g, int32_t *cap, dz_tensor *t) {
    if (g->n_nodes == *cap) {
        int32_t new_cap = *cap ? *cap * 2 : 64;
        dz_tensor **nodes = realloc(g->nodes, (size_t)new_cap * sizeof *nodes);
        if (!nodes) return dz_fail(DZ_ERR_NOMEM, "out of memory for a graph of %d nodes", new_cap);
        g->nodes = nodes;
        *cap = new_cap;
    }
    g->nodes[g->n_nodes++] = t;
    return DZ_OK;
}

/* Appends out's unvisited dependencies and out itself to g. `seen` holds
 * every tensor already in g (and visited leaves). Iterative, so deep graphs
 * cannot overflow the C stack. */
static dz_status visit(dz_graph *g, int32_t *cap, dz_ptrmap *seen, dz_tensor *out) {
    typedef struct { dz_tensor *t; int next_src; } frame;
    int32_t depth = 0, stack_cap = 64;
    frame *stack = malloc((size_t)stack_cap * sizeof *stack);
    if (!stack) return dz_fail(DZ_ERR_NOMEM, "out of memory walking a graph");
    dz_status st = DZ_OK;
    if (dz_ptrmap_get(seen, out) < 0) {
        st = dz_ptrmap_put(seen, out, VISITING);
        stack[depth++] = (frame){out, 0};
    }
    while (!st && depth > 0) {
        frame *f = &stack[depth - 1];
        if (f->next_src < DZ_MAX_SRC) {
            dz_tensor *s = f->t->src[f->next_src++];
            if (!s) continue;
            int32_t state = dz_ptrmap_get(seen, s);
            if (state == VISITING) {
                st = dz_fail(DZ_ERR_ARG, "graph: tensor '%s' depends on itself (a cycle)", s->name);
                break;
            }
            if (state == DONE) continue;
            if ((st = dz_ptrmap_put(seen, s, VISITING))) break;
            if (depth == stack_cap) {
                frame *bigger = realloc(stack, (size_t)stack_cap * 2 * sizeof *stack);
                if (!bigger) {
                    st = dz_fail(DZ_ERR_NOMEM, "out of memory walking a graph");
                    break;
                }
                stack = bigger;
                stack_cap *= 2;
            }
            stack[depth++] = (frame){s, 0};
            continue;
        }
        dz_tensor *t = f->t;
        depth--;
        if ((st = dz_ptrmap_put(seen, t, DONE))) break;
        if (t->op != DZ_OP_NONE) st = push_node(g, cap, t);
    }
    free(stack);
    return st;
}

/* Rebuilds the visited set of an existing graph: its nodes and their leaves. */
static dz_status seed(dz_ptrmap *seen, const dz_graph *g) {
    dz_status st = dz_ptrmap_init(seen, (size_t)g->n_nodes * 2 + 64);
    for (int32_t i = 0; !st && i < g->n_nodes; i++) {
        st = dz_ptrmap_put(seen, g->nodes[i], DONE);
        for (int j = 0; !st && j < DZ_MAX_SRC; j++)
            if (g->nodes[i]->src[j] && g->nodes[i]->src[j]->op == DZ_OP_NONE)
                st = dz_ptrmap_put(seen, g->nodes[i]->src[j], DONE);
    }
    return st;
}

/* Capacity of g's node array: graphs grow by doubling from 64. */
static int32_t capacity_of(const dz_graph *g) {
    int32_t cap = 0;
    if (g->n_nodes) {
        cap = 64;
        while (cap < g->n_nodes) cap *= 2;
    }
    return cap;
}

static dz_status check_ctx(dz_ctx *ctx, const dz_tensor *out, const char *what) {
    if (!ctx) return dz_fail(DZ_ERR_ARG, "%s: NULL context", what);
    if (ctx->status) return dz_fail(ctx->status, "%s", ctx->error);
    if (!out) return dz_fail(DZ_ERR_ARG, "%s: NULL output tensor", what);
    return DZ_OK;
}

dz_graph *dz_graph_build(dz_ctx *ctx, dz_tensor *out) {
    if (check_ctx(ctx, out, "graph_build")) return NULL;
    if (ctx->n_graphs == ctx->cap_graphs) {
        int32_t cap = ctx->cap_graphs ? ctx->cap_graphs * 2 : 4;
        dz_graph **graphs = realloc(ctx->graphs, (size_t)cap * sizeof *graphs);
        if (!graphs) {
            dz_ctx_fail(ctx, DZ_ERR_NOMEM, "graph_build: out of memory");
            return NULL;
        }
        ctx->graphs = graphs;
        ctx->cap_graphs = cap;
    }
    dz_graph *g = calloc(1, sizeof *g);
    if (!g) {
        dz_ctx_fail(ctx, DZ_ERR_NOMEM, "graph_build: out of memory");
        return NULL;
    }
    dz_ptrmap seen;
    int32_t cap = 0;
    dz_status st = dz_ptrmap_init(&seen, (size_t)ctx->n_tensors + 16);
    if (!st) st = visit(g, &cap, &seen, out);
    dz_ptrmap_free(&seen);
    if (st) {
        dz_ctx_fail(ctx, st, "graph_build: %s", dz_last_error());
        free(g->nodes);
        free(g);
        return NULL;
    }
    ctx->graphs[ctx->n_graphs++] = g;
    return g;
}

dz_status dz_graph_expand(dz_ctx *ctx, dz_graph *g, dz_tensor *out) {
    dz_status st = check_ctx(ctx, out, "graph_expand");
    if (st) return st;
    if (!g) return dz_fail(DZ_ERR_ARG, "graph_expand: NULL graph");
    bool owned = false;
    for (int32_t i = 0; i < ctx->n_graphs && !owned; i++) owned = ctx->graphs[i] == g;
    if (!owned) return dz_fail(DZ_ERR_ARG, "graph_expand: the graph was not built from this context");
    dz_ptrmap seen;
    int32_t cap = capacity_of(g), n_before = g->n_nodes;
    st = seed(&seen, g);
    if (!st) st = visit(g, &cap, &seen, out);
    dz_ptrmap_free(&seen);
    if (st) {
        g->n_nodes = n_before; /* a failed call changes nothing */
        return st;
    }
    return DZ_OK;
}
