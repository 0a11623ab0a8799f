/* The fast path's executor: a graph becomes one task per node, planned and
 * checked before anything runs, with the scratch memory allocated once;
 * then a single pool run walks all nodes. Ops without a fast kernel (or
 * shapes the fast kernels do not take) run the reference kernel inside the
 * same run.
 *
 * Barriers. The threads meet between two nodes unless the second cannot
 * conflict with any node run since the last meeting: it reads nothing they
 * write, writes nothing they read or write (byte ranges of the tensors),
 * and neither uses the shared scratch memory. Then a thread that finishes
 * its share of one node starts the next (decode's q, k and v projections,
 * say) while the other is still busy. Each thread's private scratch is one
 * region for the whole run, so consecutive tasks never overlap in it. */
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_train.h"
#include "backends/cpu/fast/fast.h"
#include "backends/cpu/fast/fast_train.h"

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* ---- the reference kernels as tasks ---- */

static void run_reference(dz_fast_task *t, int ith, int nth) {
    const dz_cpu_job job = {t->node, t->shared, t->per_thread, t->thread_bytes};
    if (t->node->op == DZ_OP_MUL_MAT) {
        if (ith == 0) dz_cpu_mul_mat_prepare(t->node, t->shared);
        dz_cpu_pool_barrier(t->pool);
    }
    dz_cpu_kernel_of(t->node->op)(&job, ith, nth);
}

static void plan_reference(dz_fast_task *t) {
    t->fn = run_reference;
    t->shared_bytes = t->node->op == DZ_OP_MUL_MAT ? dz_cpu_mul_mat_shared_bytes(t->node) : 0;
    t->thread_bytes = t->node->op == DZ_OP_ATTENTION || t->node->op == DZ_OP_PAGED_ATTENTION
                          ? dz_cpu_attention_thread_bytes(t->node)
                          : dz_cpu_train_thread_bytes(t->node);
}

static void plan(dz_fast_task *t) {
    bool fast;
    switch (t->node->op) {
    case DZ_OP_MUL_MAT: fast = dz_fast_plan_mul_mat(t); break;
    case DZ_OP_ATTENTION: fast = dz_fast_plan_attention(t); break;
    case DZ_OP_PAGED_ATTENTION: fast = dz_fast_plan_paged_attention(t); break;
    default: fast = dz_cpu_train_op(t->node->op) ? dz_fast_plan_train(t) : dz_fast_plan_op(t); break;
    }
    if (!fast) plan_reference(t);
}

/* ---- the engine ---- */

dz_status dz_fast_engine_init(dz_fast_engine *e, dz_cpu_isa isa, int n_threads) {
    memset(e, 0, sizeof *e);
    e->k = dz_fast_kernels_for(isa);
    return dz_cpu_pool_create(n_threads, &e->pool);
}

void dz_fast_engine_release(dz_fast_engine *e) {
    if (!e) return;
    dz_cpu_pool_destroy(e->pool);
    free(e->scratch);
    free(e->tasks);
    memset(e, 0, sizeof *e);
}

dz_status dz_fast_engine_set_threads(dz_fast_engine *e, int n_threads) {
    if (n_threads == dz_cpu_pool_size(e->pool)) return DZ_OK;
    dz_cpu_pool *pool;
    dz_status st = dz_cpu_pool_create(n_threads, &pool);
    if (st) return st;
    dz_cpu_pool_destroy(e->pool);
    e->pool = pool;
    return DZ_OK;
}

/* ---- barriers ---- */

enum { SEGMENT_MAX = 8 }; /* nodes between two barriers, at most */

typedef struct span {
    const char *lo, *hi;
} span;

static span span_of(const dz_tensor *t) {
    const char *lo = t->data;
    return (span){lo, lo + dz_nbytes(t)};
}

static bool overlap(span a, span b) { return a.lo < b.hi && b.lo < a.hi; }

/* Does b conflict with a (run concurrently)? b reads what a writes, or
 * writes what a reads or writes. */
static bool conflict(const dz_fast_task *a, const dz_fast_task *b) {
    const span aw = span_of(a->node), bw = span_of(b->node);
    if (overlap(aw, bw)) return true;
    for (int i = 0; i < DZ_MAX_SRC; i++) {
        if (b->node->src[i] && dz_nelements(b->node->src[i]) > 0 && overlap(aw, span_of(b->node->src[i])))
            return true;
        if (a->node->src[i] && dz_nelements(a->node->src[i]) > 0 && overlap(bw, span_of(a->node->src[i])))
            return true;
    }
    return false;
}

/* Marks which tasks start after a barrier. */
static void place_barriers(dz_fast_task *tasks, int n) {
    int first = 0; /* the segment since the last barrier: tasks [first, i) */
    for (int i = 1; i < n; i++) {
        bool need = tasks[i].shared_bytes > 0 || i - first >= SEGMENT_MAX;
        for (int j = first; j < i && !need; j++) need = tasks[j].shared_bytes > 0 || conflict(&tasks[j], &tasks[i]);
        tasks[i].barrier_before = need;
        if (need) first = i;
    }
}

typedef struct graph_run {
    dz_fast_task *tasks;
    int n;
    dz_cpu_pool *pool;
} graph_run;

static void run_graph(void *arg, int ith, int nth) {
    const graph_run *run = arg;
    for (int i = 0; i < run->n; i++) {
        const dz_fast_task *next = i + 1 < run->n ? &run->tasks[i + 1] : NULL;
        run->tasks[i].fn(&run->tasks[i], ith, nth);
        if (next && next->barrier_before) {
            if (next->warm) next->warm(next, ith, nth);
            dz_cpu_pool_barrier(run->pool);
        }
    }
}

dz_status dz_fast_engine_compute(dz_fast_engine *e, dz_tensor *const *nodes, int n) {
    if (n > e->tasks_cap) {
        dz_fast_task *tasks = malloc((size_t)n * sizeof *tasks);
        if (!tasks) return dz_fail(DZ_ERR_NOMEM, "cpu: out of memory planning %d nodes", n);
        free(e->tasks);
        e->tasks = tasks;
        e->tasks_cap = n;
    }
    const int nth = dz_cpu_pool_size(e->pool);
    size_t max_shared = 0, max_thread = 0;
    int n_tasks = 0;
    for (int i = 0; i < n; i++) {
        const dz_tensor *node = nodes[i];
        dz_status st = dz_cpu_check_node(node);
        if (st) return st;
        if (node->op == DZ_OP_NONE || node->op == DZ_OP_VIEW) continue;
        dz_fast_task *t = &e->tasks[n_tasks++];
        memset(t, 0, sizeof *t);
        t->node = node;
        t->k = e->k;
        t->pool = e->pool;
        t->n_threads = nth;
        atomic_init(&t->next, 0);
        plan(t);
        if (t->shared_bytes > max_shared) max_shared = t->shared_bytes;
        if (t->thread_bytes > max_thread) max_thread = t->thread_bytes;
    }
    max_shared = align64(max_shared);
    max_thread = align64(max_thread);
    const size_t need = max_shared + max_thread * (size_t)nth;
    if (need > e->scratch_size) {
        char *mem = NULL;
        if (posix_memalign((void **)&mem, 64, need) != 0)
            return dz_fail(DZ_ERR_NOMEM, "cpu: out of memory for %zu bytes of scratch", need);
        free(e->scratch);
        e->scratch = mem;
        e->scratch_size = need;
    }
    for (int i = 0; i < n_tasks; i++) { /* one private region per thread for the whole run */
        dz_fast_task *t = &e->tasks[i];
        t->shared = e->scratch;
        t->per_thread = e->scratch ? e->scratch + max_shared : NULL;
        t->thread_bytes = max_thread;
    }
    place_barriers(e->tasks, n_tasks);
    if (n_tasks == 0) return DZ_OK;
    graph_run run = {e->tasks, n_tasks, e->pool};
    dz_cpu_pool_run(e->pool, run_graph, &run);
    return DZ_OK;
}

dz_status dz_cpu_fast_compute_node(const dz_tensor *node, int n_threads, dz_cpu_isa isa) {
    dz_fast_engine e;
    dz_status st = dz_fast_engine_init(&e, isa, n_threads < 1 ? 1 : n_threads);
    if (st) return st;
    dz_tensor *nodes[1] = {(dz_tensor *)node};
    st = dz_fast_engine_compute(&e, nodes, 1);
    dz_fast_engine_release(&e);
    return st;
}
