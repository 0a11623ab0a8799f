/* Memory read bandwidth: the physical ceiling of decode speed, which reads
 * every weight once per token. Threads read their own slices of one large
 * buffer together; the fastest pass counts (others lose time to the
 * scheduler, not to memory). */
#include "dizuo/modeltools.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MAX_THREADS = 1024 };

typedef struct membw_run {
    const uint64_t *buf;
    size_t n_words;
    int n_threads;
    int passes;
    pthread_barrier_t barrier;
    pthread_mutex_t gate_lock;
    pthread_cond_t gate_cond;
    enum { GATE_CLOSED, GATE_GO, GATE_ABORT } gate;
    double *pass_time; /* per pass, written by thread 0 */
} membw_run;

typedef struct membw_thread {
    membw_run *run;
    int ith;
    pthread_t thread;
    volatile uint64_t sink; /* keeps the sums alive so the reads are not optimised away */
} membw_thread;

/* Sums words [begin, end): eight independent accumulators, so the loop is
 * bound by loads (the compiler vectorises it), not by an add chain. */
static uint64_t sum_words(const uint64_t *p, size_t begin, size_t end) {
    uint64_t a[8] = {0};
    size_t i = begin;
    for (; i + 8 <= end; i += 8)
        for (int k = 0; k < 8; k++) a[k] += p[i + k];
    for (; i < end; i++) a[0] += p[i];
    return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

static void *membw_main(void *arg) {
    membw_thread *t = arg;
    membw_run *r = t->run;
    pthread_mutex_lock(&r->gate_lock);
    while (r->gate == GATE_CLOSED) pthread_cond_wait(&r->gate_cond, &r->gate_lock);
    bool go = r->gate == GATE_GO;
    pthread_mutex_unlock(&r->gate_lock);
    if (!go) return NULL;
    size_t begin = r->n_words * (size_t)t->ith / (size_t)r->n_threads;
    size_t end = r->n_words * (size_t)(t->ith + 1) / (size_t)r->n_threads;
    /* First touch by the thread that reads the slice: its pages sit on its node. */
    memset((void *)(r->buf + begin), t->ith + 1, (end - begin) * sizeof(uint64_t));
    for (int pass = 0; pass < r->passes; pass++) {
        pthread_barrier_wait(&r->barrier);
        double t0 = dz_time_now();
        t->sink += sum_words(r->buf, begin, end);
        pthread_barrier_wait(&r->barrier);
        if (t->ith == 0) r->pass_time[pass] = dz_time_now() - t0;
    }
    return NULL;
}

dz_status dz_membw_measure(int32_t n_threads, size_t bytes, int32_t passes, double *gb_per_s) {
    if (!gb_per_s) return dz_fail(DZ_ERR_ARG, "membw: NULL result");
    if (n_threads < 1 || n_threads > MAX_THREADS)
        return dz_fail(DZ_ERR_ARG, "membw: %d threads (1..%d)", n_threads, MAX_THREADS);
    if (passes < 1 || passes > 10000) return dz_fail(DZ_ERR_ARG, "membw: %d passes (1..10000)", passes);
    if (bytes < (1u << 20)) return dz_fail(DZ_ERR_ARG, "membw: a %zu-byte buffer is too small", bytes);
    membw_run run = {.n_words = bytes / sizeof(uint64_t), .n_threads = n_threads, .passes = passes};
    void *buf = NULL;
    membw_thread *threads = calloc((size_t)n_threads, sizeof *threads);
    run.pass_time = calloc((size_t)passes, sizeof *run.pass_time);
    if (!threads || !run.pass_time || posix_memalign(&buf, 4096, run.n_words * sizeof(uint64_t))) {
        free(threads);
        free(run.pass_time);
        return dz_fail(DZ_ERR_NOMEM, "membw: out of memory for a %zu-byte buffer", bytes);
    }
    run.buf = buf;
    pthread_barrier_init(&run.barrier, NULL, (unsigned)n_threads);
    pthread_mutex_init(&run.gate_lock, NULL);
    pthread_cond_init(&run.gate_cond, NULL);
    int started = 1;
    dz_status st = DZ_OK;
    for (int i = 1; i < n_threads; i++, started++) {
        threads[i] = (membw_thread){.run = &run, .ith = i};
        if (pthread_create(&threads[i].thread, NULL, membw_main, &threads[i])) {
            st = dz_fail(DZ_ERR_NOMEM, "membw: cannot start thread %d of %d", i + 1, n_threads);
            break;
        }
    }
    /* Open the gate: every thread starts, or (one failed to) every started one leaves. */
    pthread_mutex_lock(&run.gate_lock);
    run.gate = st ? GATE_ABORT : GATE_GO;
    pthread_cond_broadcast(&run.gate_cond);
    pthread_mutex_unlock(&run.gate_lock);
    threads[0] = (membw_thread){.run = &run, .ith = 0};
    if (!st) membw_main(&threads[0]);
    for (int i = 1; i < started; i++) pthread_join(threads[i].thread, NULL);
    pthread_barrier_destroy(&run.barrier);
    pthread_mutex_destroy(&run.gate_lock);
    pthread_cond_destroy(&run.gate_cond);
    double best = run.pass_time[0];
    for (int i = 1; i < passes; i++)
        if (run.pass_time[i] < best) best = run.pass_time[i];
    if (!st) *gb_per_s = (double)(run.n_words * sizeof(uint64_t)) / (best > 0 ? best : 1e-9) / 1e9;
    free(buf);
    free(threads);
    free(run.pass_time);
    return st;
}

/* Counts distinct thread_siblings_list lines across CPUs: one per core. */
int32_t dz_cpu_physical_cores(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1) online = 1;
    if (online > 4096) online = 4096;
    char (*seen)[64] = calloc((size_t)online, sizeof *seen);
    int32_t cores = 0;
    for (long cpu = 0; seen && cpu < online; cpu++) {
        char path[96], line[64] = {0};
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/thread_siblings_list", cpu);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        bool ok = fgets(line, sizeof line, f) != NULL;
        fclose(f);
        if (!ok) continue;
        bool dup = false;
        for (int32_t k = 0; k < cores && !dup; k++) dup = !strcmp(seen[k], line);
        if (!dup) memcpy(seen[cores++], line, sizeof line);
    }
    free(seen);
    return cores > 0 ? cores : (int32_t)online;
}
