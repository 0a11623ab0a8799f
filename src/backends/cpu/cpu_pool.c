/* A small thread pool for the CPU backend: workers sleep on a condition
 * variable, wake for each run, and the caller works as thread 0. */
#include <pthread.h>
#include <stdlib.h>

#include "backends/cpu/cpu_impl.h"

struct dz_cpu_pool {
    int n_threads;
    pthread_t *workers;       /* n_threads - 1 */
    pthread_mutex_t lock;
    pthread_cond_t wake;      /* a new run or stop */
    pthread_cond_t finished;  /* the last worker of a run is done */
    uint64_t generation;      /* counts runs */
    int running;              /* workers still in the current run */
    bool stop;
    dz_cpu_task_fn fn;
    void *arg;
};

typedef struct worker_start {
    dz_cpu_pool *pool;
    int ith;
} worker_start;

static void *worker_main(void *p) {
    worker_start start = *(worker_start *)p;
    free(p);
    dz_cpu_pool *pool = start.pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->stop && pool->generation == seen) pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stop) break;
        seen = pool->generation;
        dz_cpu_task_fn fn = pool->fn;
        void *arg = pool->arg;
        pthread_mutex_unlock(&pool->lock);
        fn(arg, start.ith, pool->n_threads);
        pthread_mutex_lock(&pool->lock);
        if (--pool->running == 0) pthread_cond_signal(&pool->finished);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

static void stop_workers(dz_cpu_pool *pool, int started) {
    pthread_mutex_lock(&pool->lock);
    pool->stop = true;
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
    pthread_cond_init(&pool->finished, NULL);
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
    pthread_cond_destroy(&pool->finished);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool->workers);
    free(pool);
}

int dz_cpu_pool_size(const dz_cpu_pool *pool) { return pool ? pool->n_threads : 1; }

void dz_cpu_pool_run(dz_cpu_pool *pool, dz_cpu_task_fn fn, void *arg) {
    if (!pool || pool->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->arg = arg;
    pool->running = pool->n_threads - 1;
    pool->generation++;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    fn(arg, 0, pool->n_threads);
    pthread_mutex_lock(&pool->lock);
    while (pool->running > 0) pthread_cond_wait(&pool->finished, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}
