/* A parallel loop over [0, n) for the trainer's host-side passes (gradient
 * accumulation, scaling, the norm, AdamW): n split into n_threads contiguous
 * chunks, chunk i run by thread i (the caller's thread runs chunk 0). The
 * split depends only on n and n_threads, so results are deterministic for a
 * given thread count. */
#include <pthread.h>
#include <unistd.h>

#include "train/train_impl.h"

enum { MAX_THREADS = 64, MIN_CHUNK = 1 << 15 };

typedef struct par_job {
    dz_train_par_fn fn;
    void *ctx;
    int64_t lo, hi;
    int ith;
} par_job;

static void *run_job(void *arg) {
    par_job *j = arg;
    j->fn(j->ctx, j->lo, j->hi, j->ith);
    return NULL;
}

int dz_train_par_threads(int32_t requested) {
    long n = requested > 0 ? requested : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

int dz_train_par(int n_threads, int64_t n, dz_train_par_fn fn, void *ctx) {
    int nt = n_threads < 1 ? 1 : n_threads > MAX_THREADS ? MAX_THREADS : n_threads;
    if (n / nt < MIN_CHUNK) nt = (int)(n / MIN_CHUNK) > 0 ? (int)(n / MIN_CHUNK) : 1;
    par_job jobs[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    bool started[MAX_THREADS] = {false};
    for (int i = 0; i < nt; i++)
        jobs[i] = (par_job){fn, ctx, n * i / nt, n * (i + 1) / nt, i};
    for (int i = 1; i < nt; i++) started[i] = pthread_create(&th[i], NULL, run_job, &jobs[i]) == 0;
    fn(ctx, jobs[0].lo, jobs[0].hi, 0);
    for (int i = 1; i < nt; i++) { /* a thread that could not start runs its chunk here */
        if (started[i]) pthread_join(th[i], NULL);
        else fn(ctx, jobs[i].lo, jobs[i].hi, i);
    }
    return nt;
}
