/* Internals of the CPU backend shared by its files: the thread pool, the
 * per-node job, and the reference kernels (one function per op). The fast
 * path's internals are in fast/fast.h. */
#ifndef DZ_CPU_IMPL_H
#define DZ_CPU_IMPL_H

#include "backends/cpu/cpu.h"
#include "dizuo/tensor.h"

/* ---- thread pool: n_threads - 1 workers plus the calling thread ---- */

typedef struct dz_cpu_pool dz_cpu_pool;
/* Called once on every thread with ith in 0..nth-1; ith 0 is the caller. */
typedef void (*dz_cpu_task_fn)(void *arg, int ith, int nth);

dz_status dz_cpu_pool_create(int n_threads, dz_cpu_pool **out);
void dz_cpu_pool_destroy(dz_cpu_pool *pool); /* NULL is a no-op */
int dz_cpu_pool_size(const dz_cpu_pool *pool);
/* Runs fn on every thread of the pool and returns when all have finished.
 * Workers spin briefly after a run, then sleep on a condition variable (no
 * busy waiting when idle). pool NULL runs fn(arg, 0, 1) on the caller.
 * One run at a time: not thread-safe for one pool. */
void dz_cpu_pool_run(dz_cpu_pool *pool, dz_cpu_task_fn fn, void *arg);
/* Called by every thread of a run (all n_threads of them): returns once all
 * have arrived; writes before it are visible to every thread after it.
 * NULL or a single-thread pool: returns at once. */
void dz_cpu_pool_barrier(dz_cpu_pool *pool);

/* ---- jobs ---- */

/* Scratch memory of one node: `shared` is prepared once before the threads
 * start (e.g. MUL_MAT's activations converted to the weights' dot type);
 * each thread owns thread_bytes at per_thread + ith * thread_bytes. */
typedef struct dz_cpu_job {
    const dz_tensor *node;
    void *shared;
    char *per_thread;
    size_t thread_bytes;
} dz_cpu_job;

/* Grow-only scratch memory reused across nodes. */
typedef struct dz_cpu_scratch {
    void *mem;
    size_t size;
} dz_cpu_scratch;

/* Computes one node with the pool (NULL: on the caller only), using and
 * growing *scratch. Same contract as dz_cpu_compute_node. */
dz_status dz_cpu_run_node(dz_cpu_pool *pool, dz_cpu_scratch *scratch, const dz_tensor *node);
/* Everything dz_cpu_run_node checks before computing: the node is supported,
 * its tensors have memory, its data is valid (dz_cpu_check_data). DZ_OK for
 * NONE/VIEW. Sets the error message on failure. */
dz_status dz_cpu_check_node(const dz_tensor *node);
/* Data checks that depend on values, not shapes: GET_ROWS ids inside the
 * table. (ids are always leaves: no op produces I32.) */
dz_status dz_cpu_check_data(const dz_tensor *node);

/* The reference kernel of an op (NULL for NONE/VIEW). */
typedef void (*dz_cpu_kernel_fn)(const dz_cpu_job *job, int ith, int nth);
dz_cpu_kernel_fn dz_cpu_kernel_of(dz_op op);

/* Rows [*lo, *hi) of n that thread ith of nth handles. */
static inline void dz_cpu_split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    int64_t per = (n + nth - 1) / nth;
    *lo = per * ith < n ? per * ith : n;
    *hi = *lo + per < n ? *lo + per : n;
}

/* Address of element (i0, i1, i2, i3) of t (i0 in elements; plain types). */
static inline char *dz_cpu_at(const dz_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return (char *)t->data + (size_t)i0 * t->nb[0] + (size_t)i1 * t->nb[1] + (size_t)i2 * t->nb[2] +
           (size_t)i3 * t->nb[3];
}

/* Kernels (cpu_kernels.c, cpu_matmul.c, cpu_attention.c). Shapes are in backend.h. */
void dz_cpu_get_rows(const dz_cpu_job *job, int ith, int nth);
void dz_cpu_binary(const dz_cpu_job *job, int ith, int nth);   /* ADD, MUL */
void dz_cpu_unary(const dz_cpu_job *job, int ith, int nth);    /* SCALE, SILU, SWIGLU */
void dz_cpu_rms_norm(const dz_cpu_job *job, int ith, int nth);
void dz_cpu_rope(const dz_cpu_job *job, int ith, int nth);
void dz_cpu_softmax(const dz_cpu_job *job, int ith, int nth);
void dz_cpu_cpy(const dz_cpu_job *job, int ith, int nth);

/* MUL_MAT: shared = X converted to the weights' dot type (prepare), then dots. */
size_t dz_cpu_mul_mat_shared_bytes(const dz_tensor *node);
void dz_cpu_mul_mat_prepare(const dz_tensor *node, void *shared);
void dz_cpu_mul_mat(const dz_cpu_job *job, int ith, int nth);
bool dz_cpu_mul_mat_supports_type(dz_type t);

/* ATTENTION: per-thread scores and accumulators. */
size_t dz_cpu_attention_thread_bytes(const dz_tensor *node);
void dz_cpu_attention(const dz_cpu_job *job, int ith, int nth);
void dz_cpu_paged_attention(const dz_cpu_job *job, int ith, int nth);
/* SET_ROWS: rows split across threads. */
void dz_cpu_set_rows(const dz_cpu_job *job, int ith, int nth);

/* Softmax of one row in place, as ggml's x86 (AVX-512) build does:
 * max-subtracted dz_cpu_expf_ggml, sums of 16-lane chunks in float added
 * in double, scaled by (float)(1/sum). A row that is entirely -inf becomes
 * zeros. */
void dz_cpu_softmax_row(float *w, int64_t n);
/* exp(x) as ggml's vector expf computes it on x86 (AVX-512 form): within
 * 1 ulp or so of expf, but rounded as llama.cpp's softmax rounds. */
float dz_cpu_expf_ggml(float x);
/* The sum of 16 floats in the order of gcc's _mm512_reduce_add_ps (how
 * llama.cpp's AVX-512 build adds the lanes of a vector). */
static inline float dz_cpu_reduce16(const float l[16]) {
    float t3[8], t6[4];
    for (int i = 0; i < 8; i++) t3[i] = l[8 + i] + l[i];
    for (int i = 0; i < 4; i++) t6[i] = t3[4 + i] + t3[i];
    return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

#endif
