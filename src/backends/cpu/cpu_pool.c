/* The CPU backend's thread pool: n_threads - 1 persistent workers plus the
 * calling thread, which works as thread 0.
 *
 * A run wakes the workers once: each spins briefly on the run counter (a
 * graph of many nodes is dispatched in one run, so the spin only matters
 * between runs) and then sleeps on a condition variable, so an idle pool
 * costs no CPU. Inside a run, threads meet at dz_cpu_pool_barrier, which
 * spins (the threads are running, one per core) and yields the processor
 * when a partner is slow to arrive, so an oversubscribed machine still makes
 * progress. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "backends/cpu/cpu_impl.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax(void) { _mm_pause(); }
#elif defined(__aarch64__)
static inline void cpu_relax(void) { __asm__ __volatile__("yield"); }
#else
static inline void cpu_relax(void) {}
#endif

/* Pauses a waiting thread spins before it sleeps (idle workers) or yields
 * (barriers): tens of microseconds, far less than the work between runs. */
enum { IDLE_SPINS = 1 << 14, BARRIER_SPINS = 1 << 12 };

struct dz_cpu_pool {
    int n_threads;
    pthread_t *workers;           /* n_threads - 1 */
    _Atomic uint64_t generation;  /* counts runs; a worker runs when it changes */
    _Atomic int pending;          /* workers still in the current run */
    _Atomic int sleepers;         /* workers waiting on `wake` */
    _Atomic bool stop;
    dz_cpu_task_fn fn;            /* the current run, published by generation */
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    /* barrier: threads arrived, and the phase that advances when all have */
    _Atomic int arrived;
    _Atomic unsigned phase;
};

typedef struct worker_start {
    dz_cpu_pool *pool;
    int ith;
} worker_start;

/* Waits until the generation differs from seen (or stop), spinning first. */
static uint64_t wait_for_run(dz_cpu_pool *pool, uint64_t seen) {
    for (int i = 0; i < IDLE_SPINS; i++) {
        uint64_t g = atomic_load(&pool->generation);
        if (g != seen || atomic_load(&pool->stop)) return g;
        cpu_relax();
    }
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add(&pool->sleepers, 1);
    /* Announced as a sleeper before this check: a run published after it
     * finds sleepers > 0 and signals under the lock (see dz_cpu_pool_run). */
    while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
        pthread_cond_wait(&pool->wake, &pool->lock);
    atomic_fetch_sub(&pool->sleepers, 1);
    pthread_mutex_unlock(&pool->lock);
    return atomic_load(&pool->generation);
}

static void *worker_main(void *p) {
    worker_start start = *(worker_start *)p;
    free(p);
    dz_cpu_pool *pool = start.pool;
    uint64_t seen = 0;
    for (;;) {
        seen = wait_for_run(pool, seen);
        if (atomic_load(&pool->stop)) break;
        pool->fn(pool->arg, start.ith, pool->n_threads);
        atomic_fetch_sub(&pool->pending, 1);
    }
    return NULL;
}

static void stop_workers(dz_cpu_pool *pool, int started) {
    atomic_store(&pool->stop, true);
    pthread_mutex_lock(&pool->lock);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < started; i++) pthread_join(pool->workers[i], NULL);
}

dz_status dz_cpu_pool_create(int n_threads, dz_cpu_pool **out) {
    if (n_threads < 1) n_threads = 1;
    dz_cpu_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return dz_fail(DZ_ERR_NOMEM, "out of memory for a thread pool");
    pool->n_threads = n_threads;
    pool->workers = calloc((size_t)n_threads, sizeof *pool->workers);
    if (!pool->workers) {
        free(pool);
        return dz_fail(DZ_ERR_NOMEM, "out of memory for a pool of %d threads", n_threads);
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    for (int i = 1; i < n_threads; i++) {
        worker_start *start = malloc(sizeof *start);
        int err = start ? 0 : 1;
        if (start) {
            *start = (worker_start){pool, i};
            err = pthread_create(&pool->workers[i - 1], NULL, worker_main, start);
            if (err) free(start);
        }
        if (err) {
            stop_workers(pool, i - 1);
            pool->n_threads = 1; /* only for the destroy below */
            dz_cpu_pool_destroy(pool);
            return dz_fail(DZ_ERR_NOMEM, "cannot start thread %d of %d", i + 1, n_threads);
        }
    }
    *out = pool;
    return DZ_OK;
}

void dz_cpu_pool_destroy(dz_cpu_pool *pool) {
    if (!pool) return;
    if (pool->n_threads > 1) stop_workers(pool, pool->n_threads - 1);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool->workers);
    free(pool);
}

int dz_cpu_pool_size(const dz_cpu_pool *pool) { return pool ? pool->n_threads : 1; }

/* Spins until *word differs from old; yields the processor now and then. */
static void spin_while_equal_u(_Atomic unsigned *word, unsigned old) {
    for (int i = 0; atomic_load(word) == old; i++) {
        if (i < BARRIER_SPINS) {
            cpu_relax();
        } else {
            sched_yield();
            i = 0;
        }
    }
}

void dz_cpu_pool_run(dz_cpu_pool *pool, dz_cpu_task_fn fn, void *arg) {
    if (!pool || pool->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store(&pool->pending, pool->n_threads - 1);
    atomic_fetch_add(&pool->generation, 1);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
    fn(arg, 0, pool->n_threads);
    for (int i = 0; atomic_load(&pool->pending) > 0; i++) {
        if (i < BARRIER_SPINS) {
            cpu_relax();
        } else {
            sched_yield();
            i = 0;
        }
    }
}

void dz_cpu_pool_barrier(dz_cpu_pool *pool) {
    if (!pool || pool->n_threads == 1) return;
    const unsigned phase = atomic_load(&pool->phase);
    if (atomic_fetch_add(&pool->arrived, 1) == pool->n_threads - 1) {
        atomic_store(&pool->arrived, 0);
        atomic_fetch_add(&pool->phase, 1); /* releases the others */
    } else {
        spin_while_equal_u(&pool->phase, phase);
    }
}
