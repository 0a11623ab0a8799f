/* The scheduler: places every node of a graph on a device, plans and
 * allocates memory for unbound tensors, inserts copies where a node reads
 * data held by another device, and runs runs of same-device nodes
 * ("splits") through each backend's compute().
 *
 * Placement: a node that writes into memory that already exists (a CPY into
 * a KV-cache view) runs where that memory is; any other node runs on the
 * first device, in preference order, whose supports() accepts it. An
 * unbound leaf (an input) lives where its first reader runs. VIEW nodes are
 * not computed: their data is their root's data plus an offset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/sched_impl.h"

/* A copy made before a split: `src` as its readers see it, into `dst`, a
 * header owned by the plan that lives on the split's device. */
typedef struct sched_copy {
    dz_tensor *src;
    dz_tensor *dst;
} sched_copy;

typedef struct sched_split {
    int dev;
    int32_t first_node;            /* index in the graph */
    int32_t first_copy, n_copies;  /* in plan.copies */
    dz_graph graph;                /* nodes: originals, or shadows reading copies */
} sched_split;

/* Everything dz_sched_alloc decides about one graph. */
typedef struct sched_plan {
    const dz_graph *graph;
    int32_t n_nodes;
    dz_ptrmap node_index;   /* node -> index in graph */
    int *node_dev;          /* device of each node (VIEW: of its memory; -1 foreign) */
    sched_split *splits;
    int32_t n_splits;
    sched_copy *copies;
    dz_tensor *copy_headers; /* one per copy */
    int32_t n_copies;
    dz_tensor *shadows;      /* node headers whose operands were redirected to copies */
    int32_t n_shadows;
    dz_tensor **split_nodes; /* backing store of every split's graph */
} sched_plan;

struct dz_sched {
    dz_device **devices;
    int n_devices;
    dz_buffer **buffers; /* per device, reused while large enough */
    sched_plan plan;
};

static void plan_free(sched_plan *p) {
    dz_ptrmap_free(&p->node_index);
    free(p->node_dev);
    free(p->splits);
    free(p->copies);
    free(p->copy_headers);
    free(p->shadows);
    free(p->split_nodes);
    memset(p, 0, sizeof *p);
}

dz_status dz_sched_create(dz_device **devices, int n_devices, dz_sched **out) {
    if (!devices || n_devices < 1 || !out) return dz_fail(DZ_ERR_ARG, "dz_sched_create: no devices given");
    bool has_host = false;
    for (int i = 0; i < n_devices; i++) {
        if (!devices[i]) return dz_fail(DZ_ERR_ARG, "dz_sched_create: device %d is NULL", i);
        for (int j = 0; j < i; j++)
            if (devices[j] == devices[i])
                return dz_fail(DZ_ERR_ARG, "dz_sched_create: device %s is listed twice",
                               dz_device_props_get(devices[i])->name);
        has_host |= (dz_device_iface(devices[i])->caps & DZ_CAP_HOST_MEMORY) != 0;
    }
    if (!has_host)
        return dz_fail(DZ_ERR_ARG, "dz_sched_create: no host device (e.g. \"cpu\") among the %d devices to fall back on",
                       n_devices);
    dz_sched *s = calloc(1, sizeof *s);
    if (s) s->devices = malloc((size_t)n_devices * sizeof *s->devices);
    if (s) s->buffers = calloc((size_t)n_devices, sizeof *s->buffers);
    if (!s || !s->devices || !s->buffers) {
        dz_sched_destroy(s);
        return dz_fail(DZ_ERR_NOMEM, "out of memory creating a scheduler");
    }
    memcpy(s->devices, devices, (size_t)n_devices * sizeof *devices);
    s->n_devices = n_devices;
    *out = s;
    return DZ_OK;
}

void dz_sched_destroy(dz_sched *s) {
    if (!s) return;
    plan_free(&s->plan);
    for (int i = 0; s->buffers && i < s->n_devices; i++) dz_buffer_free(s->buffers[i]);
    free(s->buffers);
    free(s->devices);
    free(s);
}

/* ---- planning state of one dz_sched_alloc call ---- */

typedef struct planner {
    dz_sched *s;
    sched_plan plan;
    dz_plan_item *items;
    int32_t n_items, cap_items;
    dz_ptrmap item_of; /* unbound root -> item index */
    bool *read;        /* per item: some node reads it */
} planner;

static bool is_unbound(const dz_tensor *t) {
    return !t->buffer || (t->flags & DZ_TENSOR_PLANNED);
}

static int device_index(const dz_sched *s, const dz_device *dev) {
    for (int i = 0; i < s->n_devices; i++)
        if (s->devices[i] == dev) return i;
    return -1;
}

static const char *device_name(const dz_sched *s, int dev) {
    return dev >= 0 ? dz_device_props_get(s->devices[dev])->name : "(a device outside the scheduler)";
}

static dz_status add_item(planner *pl, dz_tensor *t, int dev, int64_t first) {
    if (pl->n_items == pl->cap_items) {
        int32_t cap = pl->cap_items ? pl->cap_items * 2 : 64;
        dz_plan_item *items = realloc(pl->items, (size_t)cap * sizeof *items);
        bool *read = realloc(pl->read, (size_t)cap * sizeof *read);
        if (items) pl->items = items;
        if (read) pl->read = read;
        if (!items || !read) return dz_fail(DZ_ERR_NOMEM, "out of memory planning graph memory");
        pl->cap_items = cap;
    }
    pl->items[pl->n_items] = (dz_plan_item){t, dev, first, first, dz_nbytes(t), 0};
    pl->read[pl->n_items] = false;
    return dz_ptrmap_put(&pl->item_of, t, pl->n_items++);
}

/* Device holding root's memory: -1 when bound outside the scheduler's devices,
 * -2 when unbound and not placed yet. */
static int memory_device(const planner *pl, const dz_tensor *root) {
    if (!is_unbound(root)) return device_index(pl->s, root->buffer->device);
    int32_t item = dz_ptrmap_get(&pl->item_of, root);
    return item >= 0 ? pl->items[item].dev : -2;
}

static void extend_life(planner *pl, const dz_tensor *root, int64_t step, bool is_read) {
    int32_t item = dz_ptrmap_get(&pl->item_of, root);
    if (item < 0) return;
    if (step > pl->items[item].last) pl->items[item].last = step;
    if (is_read) pl->read[item] = true;
}

static dz_status no_device(const dz_tensor *n) {
    char shape[96];
    return dz_fail(DZ_ERR_UNSUPPORTED, "no device can compute node '%s': %s %s%s%s", n->name, dz_op_name(n->op),
                   dz_shape_str(n, shape, sizeof shape), n->src[0] ? " from " : "",
                   n->src[0] ? dz_type_name(n->src[0]->type) : "");
}

/* Chooses the device of node i and places the unbound leaves it reads. */
static dz_status place_node(planner *pl, int32_t i) {
    dz_sched *s = pl->s;
    dz_tensor *n = pl->plan.graph->nodes[i], *root = dz_tensor_root(n);
    int dev = -2;
    if (n->op == DZ_OP_VIEW) {
        pl->plan.node_dev[i] = memory_device(pl, root); /* leaves under a view are placed by readers */
        return DZ_OK;
    }
    if (root != n || !is_unbound(root)) {
        /* The result goes into memory that exists: run there. */
        dev = memory_device(pl, root);
        if (dev == -1)
            return dz_fail(DZ_ERR_ARG, "node '%s' (%s) writes into memory on device %s, which this scheduler does not use",
                           n->name, dz_op_name(n->op), dz_device_props_get(root->buffer->device)->name);
    }
    if (dev >= 0) {
        if (!dz_device_supports(s->devices[dev], n))
            return dz_fail(DZ_ERR_UNSUPPORTED, "node '%s' (%s) writes into memory on device %s, which cannot compute it",
                           n->name, dz_op_name(n->op), device_name(s, dev));
    } else {
        for (int d = 0; d < s->n_devices && dev < 0; d++)
            if (dz_device_supports(s->devices[d], n)) dev = d;
        if (dev < 0) return no_device(n);
    }
    pl->plan.node_dev[i] = dev;
    dz_status st = DZ_OK;
    if (is_unbound(root) && dz_ptrmap_get(&pl->item_of, root) < 0)
        st = add_item(pl, root, dev, root == n ? 2 * (int64_t)i : DZ_STEP_START);
    for (int j = 0; !st && j < DZ_MAX_SRC; j++) {
        dz_tensor *src = n->src[j];
        if (!src) continue;
        dz_tensor *sr = dz_tensor_root(src);
        if (is_unbound(sr) && dz_ptrmap_get(&pl->item_of, sr) < 0) {
            if (sr->op != DZ_OP_NONE)
                return dz_fail(DZ_ERR_ARG, "node '%s' reads '%s', which is not in the graph before it", n->name,
                               sr->name);
            st = add_item(pl, sr, dev, DZ_STEP_START);
        }
    }
    return st;
}

/* Unbound leaves seen only through views that no computed node reads
 * (a graph whose output is a view of an input) live on the first host device. */
static dz_status place_orphans(planner *pl) {
    const dz_graph *g = pl->plan.graph;
    int host = 0;
    while (!(dz_device_iface(pl->s->devices[host])->caps & DZ_CAP_HOST_MEMORY)) host++;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        dz_tensor *root = dz_tensor_root(g->nodes[i]);
        if (g->nodes[i]->op == DZ_OP_VIEW && is_unbound(root) && dz_ptrmap_get(&pl->item_of, root) < 0) {
            dz_status st = add_item(pl, root, host, DZ_STEP_START);
            if (st) return st;
            pl->items[pl->n_items - 1].last = DZ_STEP_END;
        }
    }
    return DZ_OK;
}

/* Index of the copy of src for the split, creating it when absent. */
static dz_status copy_for(planner *pl, sched_split *split, dz_tensor *src, int32_t node_i, int32_t *out) {
    sched_plan *p = &pl->plan;
    for (int32_t c = split->first_copy; c < split->first_copy + split->n_copies; c++)
        if (p->copies[c].src == src) {
            extend_life(pl, p->copies[c].dst, 2 * (int64_t)node_i, true);
            *out = c;
            return DZ_OK;
        }
    int32_t c = p->n_copies++;
    dz_tensor *h = &p->copy_headers[c];
    *h = (dz_tensor){.type = src->type, .n_dims = src->n_dims, .op = DZ_OP_NONE};
    memcpy(h->ne, src->ne, sizeof h->ne);
    memcpy(h->nb, src->nb, sizeof h->nb);
    snprintf(h->name, sizeof h->name, "%.40s@%.20s", src->name, device_name(pl->s, split->dev));
    p->copies[c] = (sched_copy){src, h};
    split->n_copies++;
    dz_status st = add_item(pl, h, split->dev, 2 * (int64_t)split->first_node - 1);
    if (!st) extend_life(pl, h, 2 * (int64_t)node_i, true);
    *out = c;
    return st;
}

/* Groups consecutive computed nodes of one device into splits, creates the
 * copies each split needs, and extends lifetimes by every read. */
static dz_status build_splits(planner *pl) {
    sched_plan *p = &pl->plan;
    const dz_graph *g = p->graph;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        dz_tensor *n = g->nodes[i];
        if (n->op == DZ_OP_VIEW) continue;
        int dev = p->node_dev[i];
        if (p->n_splits == 0 || p->splits[p->n_splits - 1].dev != dev)
            p->splits[p->n_splits++] = (sched_split){dev, i, p->n_copies, 0, {NULL, 0}};
        sched_split *split = &p->splits[p->n_splits - 1];
        dz_tensor *root = dz_tensor_root(n);
        extend_life(pl, root, 2 * (int64_t)i, false); /* written now */
        for (int j = 0; j < DZ_MAX_SRC; j++) {
            dz_tensor *src = n->src[j];
            if (!src) continue;
            dz_tensor *sr = dz_tensor_root(src);
            extend_life(pl, sr, 2 * (int64_t)i, true);
            if (sr == root) continue; /* the node's own memory (CPY's destination) */
            if (memory_device(pl, sr) != dev) {
                int32_t c;
                dz_status st = copy_for(pl, split, src, i, &c);
                if (st) return st;
            }
        }
    }
    return DZ_OK;
}

/* Memory the caller may read afterwards stays alive to the end: outputs
 * (tensors or views flagged DZ_TENSOR_OUTPUT), results nobody reads, and
 * tensors written into by a CPY. */
static void finish_lifetimes(planner *pl) {
    for (int32_t k = 0; k < pl->n_items; k++)
        if (pl->items[k].tensor->flags & DZ_TENSOR_OUTPUT) pl->items[k].last = DZ_STEP_END;
    const dz_graph *g = pl->plan.graph;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        dz_tensor *n = g->nodes[i], *root = dz_tensor_root(n);
        int32_t item = dz_ptrmap_get(&pl->item_of, root);
        if (item < 0) continue;
        bool unread_result = root == n && !pl->read[item];
        bool written_into = root != n && n->op != DZ_OP_VIEW;
        if ((n->flags & DZ_TENSOR_OUTPUT) || unread_result || written_into) pl->items[item].last = DZ_STEP_END;
    }
}

/* Gives every device a buffer of at least totals[d] bytes, reusing the old
 * one when large enough. All or nothing. */
static dz_status ensure_buffers(dz_sched *s, const size_t *totals) {
    dz_buffer **fresh = calloc((size_t)s->n_devices, sizeof *fresh);
    if (!fresh) return dz_fail(DZ_ERR_NOMEM, "out of memory for buffer handles");
    dz_status st = DZ_OK;
    for (int d = 0; d < s->n_devices && !st; d++)
        if (totals[d] > 0 && (!s->buffers[d] || s->buffers[d]->size < totals[d]))
            st = dz_buffer_alloc(s->devices[d], totals[d], &fresh[d]);
    for (int d = 0; d < s->n_devices; d++) {
        if (!fresh[d]) continue;
        if (st) {
            dz_buffer_free(fresh[d]);
        } else {
            dz_buffer_free(s->buffers[d]);
            s->buffers[d] = fresh[d];
        }
    }
    free(fresh);
    return st ? dz_error_prefix(st, "allocating graph memory: ") : DZ_OK;
}

/* Sets data pointers: placed items, then every node living in another's memory. */
static void assign_memory(planner *pl) {
    for (int32_t k = 0; k < pl->n_items; k++) {
        dz_plan_item *it = &pl->items[k];
        dz_buffer *buf = pl->s->buffers[it->dev];
        it->tensor->buffer = buf;
        it->tensor->data = (char *)buf->base + it->offset;
        it->tensor->flags |= DZ_TENSOR_PLANNED;
    }
    const dz_graph *g = pl->plan.graph;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        dz_tensor *n = g->nodes[i];
        if (!n->view_src) continue;
        n->buffer = n->view_src->buffer;
        n->data = (char *)n->view_src->data + n->view_offset;
        if (pl->plan.node_dev[i] == -2) pl->plan.node_dev[i] = memory_device(pl, n->view_src);
    }
}

/* Fills each split's node list; a node reading copies is replaced by a shadow
 * header whose operands point at the copies. Runs after memory is assigned. */
static void finish_splits(planner *pl) {
    sched_plan *p = &pl->plan;
    int32_t used = 0;
    for (int32_t k = 0; k < p->n_splits; k++) {
        sched_split *split = &p->splits[k];
        int32_t end = k + 1 < p->n_splits ? p->splits[k + 1].first_node : p->n_nodes;
        split->graph.nodes = p->split_nodes + used;
        for (int32_t i = split->first_node; i < end; i++) {
            dz_tensor *n = p->graph->nodes[i];
            if (n->op == DZ_OP_VIEW) continue;
            dz_tensor *shadow = NULL;
            for (int j = 0; j < DZ_MAX_SRC; j++)
                for (int32_t c = split->first_copy; n->src[j] && c < split->first_copy + split->n_copies; c++)
                    if (p->copies[c].src == n->src[j]) {
                        if (!shadow) {
                            shadow = &p->shadows[p->n_shadows++];
                            *shadow = *n;
                        }
                        shadow->src[j] = p->copies[c].dst;
                    }
            p->split_nodes[used++] = shadow ? shadow : n;
            split->graph.n_nodes++;
        }
    }
}

static dz_status plan_alloc_arrays(sched_plan *p, int32_t n) {
    size_t count = n > 0 ? (size_t)n : 1;
    p->node_dev = malloc(count * sizeof *p->node_dev);
    p->splits = malloc(count * sizeof *p->splits);
    p->copies = malloc(count * DZ_MAX_SRC * sizeof *p->copies);
    p->copy_headers = calloc(count * DZ_MAX_SRC, sizeof *p->copy_headers);
    p->shadows = malloc(count * sizeof *p->shadows);
    p->split_nodes = malloc(count * sizeof *p->split_nodes);
    if (!p->node_dev || !p->splits || !p->copies || !p->copy_headers || !p->shadows || !p->split_nodes)
        return dz_fail(DZ_ERR_NOMEM, "out of memory scheduling a graph of %d nodes", n);
    return dz_ptrmap_init(&p->node_index, count);
}

dz_status dz_sched_alloc(dz_sched *s, dz_graph *g) {
    if (!s || !g || (g->n_nodes > 0 && !g->nodes)) return dz_fail(DZ_ERR_ARG, "dz_sched_alloc: NULL argument");
    planner pl = {.s = s};
    pl.plan.graph = g;
    pl.plan.n_nodes = g->n_nodes;
    dz_status st = plan_alloc_arrays(&pl.plan, g->n_nodes);
    if (!st) st = dz_ptrmap_init(&pl.item_of, (size_t)g->n_nodes * 2 + 16);
    for (int32_t i = 0; !st && i < g->n_nodes; i++) {
        if (!g->nodes[i]) st = dz_fail(DZ_ERR_ARG, "dz_sched_alloc: node %d is NULL", i);
        else if (dz_ptrmap_get(&pl.plan.node_index, g->nodes[i]) >= 0)
            st = dz_fail(DZ_ERR_ARG, "dz_sched_alloc: node '%s' appears twice", g->nodes[i]->name);
        else st = dz_ptrmap_put(&pl.plan.node_index, g->nodes[i], i);
    }
    for (int32_t i = 0; !st && i < g->n_nodes; i++) st = place_node(&pl, i);
    if (!st) st = place_orphans(&pl);
    if (!st) st = build_splits(&pl);
    size_t *totals = NULL;
    if (!st) {
        finish_lifetimes(&pl);
        totals = calloc((size_t)s->n_devices, sizeof *totals);
        st = totals ? dz_plan_offsets(pl.items, pl.n_items, s->n_devices, totals)
                    : dz_fail(DZ_ERR_NOMEM, "out of memory planning graph memory");
    }
    if (!st) st = ensure_buffers(s, totals);
    if (!st) {
        assign_memory(&pl);
        finish_splits(&pl);
        plan_free(&s->plan);
        s->plan = pl.plan;
    } else {
        plan_free(&pl.plan);
    }
    free(totals);
    free(pl.items);
    free(pl.read);
    dz_ptrmap_free(&pl.item_of);
    return st;
}

/* Copies src (any device) into the bytes of dst (this split's device). */
static dz_status run_copy(const sched_copy *c) {
    const dz_tensor *root = dz_tensor_root(c->src);
    dz_buffer *from = root->buffer, *to = c->dst->buffer;
    size_t from_off = (size_t)((const char *)c->src->data - (const char *)from->base);
    size_t to_off = (size_t)((const char *)c->dst->data - (const char *)to->base);
    return dz_buffer_copy(to, to_off, from, from_off, dz_nbytes(c->src));
}

dz_status dz_sched_compute(dz_sched *s, dz_graph *g) {
    if (!s || !g) return dz_fail(DZ_ERR_ARG, "dz_sched_compute: NULL argument");
    const sched_plan *p = &s->plan;
    if (p->graph != g || p->n_nodes != g->n_nodes)
        return dz_fail(DZ_ERR_ARG, "dz_sched_compute: the graph was not planned (call dz_sched_alloc after building it)");
    for (int32_t k = 0; k < p->n_splits; k++) {
        const sched_split *split = &p->splits[k];
        dz_device *dev = s->devices[split->dev];
        const dz_backend_iface *iface = dz_device_iface(dev);
        for (int32_t c = split->first_copy; c < split->first_copy + split->n_copies; c++) {
            dz_status st = run_copy(&p->copies[c]);
            if (st) return dz_error_prefix(st, "copying '%s' to %s: ", p->copies[c].src->name, device_name(s, split->dev));
        }
        dz_status st = iface->compute(dz_device_self(dev), &split->graph);
        if (!st) st = iface->synchronize(dz_device_self(dev));
        if (st)
            return dz_error_prefix(st, "device %s, nodes from '%s': ", device_name(s, split->dev),
                                   split->graph.n_nodes ? split->graph.nodes[0]->name : "");
    }
    return DZ_OK;
}

dz_device *dz_sched_node_device(const dz_sched *s, const dz_tensor *node) {
    if (!s || !node) return NULL;
    int32_t i = dz_ptrmap_get(&s->plan.node_index, node);
    if (i < 0 || s->plan.node_dev[i] < 0) return NULL;
    return s->devices[s->plan.node_dev[i]];
}

int32_t dz_sched_n_copies(const dz_sched *s) { return s ? s->plan.n_copies : 0; }
