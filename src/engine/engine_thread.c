/* The serving engine's lifetime: configuration, the engine thread's loop,
 * embedding jobs and the statistics snapshot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dizuo/engine.h"
#include "engine/engine_impl.h"

static dz_status config_fill(const dz_model *m, const dz_engine_config *in, dz_engine_config *c) {
    *c = in ? *in : (dz_engine_config){0};
    const dz_model_hparams *hp = dz_model_hparams_get(m);
    if (c->n_ctx < 0) return dz_fail(DZ_ERR_ARG, "engine: n_ctx must be >= 0, got %d", c->n_ctx);
    if (c->n_ctx == 0) c->n_ctx = hp->n_ctx_train > 0 && hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (c->n_ctx < 2) return dz_fail(DZ_ERR_ARG, "engine: n_ctx must be at least 2, got %d", c->n_ctx);
    if (strcmp(hp->arch, "gpt2") == 0 && c->n_ctx > hp->n_ctx_train) /* learned positions do not extend */
        return dz_fail(DZ_ERR_ARG, "engine: n_ctx %d exceeds the model's %d learned positions (gpt2.context_length)",
                       c->n_ctx, hp->n_ctx_train);
    if (c->block_size < 0 || c->block_size > 1024)
        return dz_fail(DZ_ERR_ARG, "engine: block_size must be 1..1024, got %d", c->block_size);
    if (c->block_size == 0) c->block_size = 16;
    if (c->max_running < 0 || c->max_running > 1024)
        return dz_fail(DZ_ERR_ARG, "engine: max_running (parallel) must be 1..1024, got %d", c->max_running);
    if (c->max_running == 0) c->max_running = 8;
    if (c->max_batch_tokens < 0) return dz_fail(DZ_ERR_ARG, "engine: max_batch_tokens must be >= 0");
    if (c->max_batch_tokens == 0) c->max_batch_tokens = 512;
    if (c->max_batch_tokens < c->max_running) c->max_batch_tokens = c->max_running;
    if (c->max_waiting < 0) return dz_fail(DZ_ERR_ARG, "engine: max_waiting must be >= 0");
    if (c->max_waiting == 0) c->max_waiting = 1024;
    if (c->max_waiting_per_tenant < 0) return dz_fail(DZ_ERR_ARG, "engine: max_waiting_per_tenant must be >= 0");
    if (c->max_waiting_per_tenant == 0) c->max_waiting_per_tenant = c->max_waiting / 2 > 0 ? c->max_waiting / 2 : 1;
    const int64_t per_seq = (c->n_ctx + c->block_size - 1) / c->block_size;
    if (c->kv_blocks < 0) return dz_fail(DZ_ERR_ARG, "engine: kv_blocks must be >= 0, got %d", c->kv_blocks);
    if (c->kv_blocks == 0) {
        const int64_t n = per_seq * c->max_running;
        if (n > INT32_MAX) return dz_fail(DZ_ERR_ARG, "engine: n_ctx x parallel is too large for one pool");
        c->kv_blocks = (int32_t)n;
    }
    if (c->kv_blocks < 2) return dz_fail(DZ_ERR_ARG, "engine: kv_blocks must be at least 2, got %d", c->kv_blocks);
    return DZ_OK;
}

/* Runs the embedding jobs queued so far. */
static void run_jobs(dz_engine *e) {
    pthread_mutex_lock(&e->mu);
    dz_embed_job *jobs = e->jobs;
    e->jobs = NULL;
    pthread_mutex_unlock(&e->mu);
    for (dz_embed_job *j = jobs, *next; j; j = next) {
        next = j->next;
        j->status = dz_model_embed(e->model, j->tokens, j->n, j->out);
        if (j->status) snprintf(j->error, sizeof j->error, "%s", dz_last_error());
        pthread_mutex_lock(&e->mu);
        j->done = true;
        pthread_cond_broadcast(&e->done);
        pthread_mutex_unlock(&e->mu);
    }
}

static void snapshot(dz_engine *e) {
    dz_engine_stats st;
    memset(&st, 0, sizeof st);
    st.running = e->n_running;
    st.kv_blocks_total = dz_kv_pool_n_blocks(e->pool);
    st.kv_blocks_cached = dz_kv_pool_cached_blocks(e->pool);
    st.kv_blocks_used = st.kv_blocks_total - dz_kv_pool_free_blocks(e->pool);
    dz_kv_pool_prefix_stats(e->pool, &st.prefix_queries, &st.prefix_hits);
    st.steps = e->steps;
    st.preemptions = e->preemptions;
    st.prompt_tokens = e->prompt_computed;
    st.generated_tokens = e->generated;
    pthread_mutex_lock(&e->mu);
    st.waiting = e->n_waiting;
    e->snapshot = st;
    pthread_mutex_unlock(&e->mu);
}

static void *engine_main(void *arg) {
    dz_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stopping && !e->jobs && e->n_running == 0 && !e->waiting.head) pthread_cond_wait(&e->wake, &e->mu);
        const bool stopping = e->stopping;
        pthread_mutex_unlock(&e->mu);
        if (stopping) break;
        run_jobs(e);
        dz_engine_reap_cancelled(e);
        dz_engine_admit(e);
        dz_engine_step(e);
        snapshot(e);
        if (atomic_load(&e->hold) && e->n_running == 0) { /* held with requests waiting: idle until woken */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_mutex_lock(&e->mu);
            if (!e->stopping && !e->jobs) pthread_cond_timedwait(&e->wake, &e->mu, &ts);
            pthread_mutex_unlock(&e->mu);
        }
    }
    /* shutdown: every request left ends cancelled */
    while (e->running.head) {
        dz_gen *g = e->running.head;
        dz_genq_remove(&e->running, g);
        e->n_running--;
        dz_engine_finish(e, g, DZ_FINISH_CANCELLED, NULL);
    }
    for (;;) {
        pthread_mutex_lock(&e->mu);
        dz_gen *g = e->waiting.head;
        if (g) dz_genq_remove(&e->waiting, g), e->n_waiting--;
        pthread_mutex_unlock(&e->mu);
        if (!g) break;
        dz_engine_finish(e, g, DZ_FINISH_CANCELLED, NULL);
    }
    pthread_mutex_lock(&e->mu);
    for (dz_embed_job *j = e->jobs; j; j = j->next) {
        j->status = DZ_ERR_BUSY;
        snprintf(j->error, sizeof j->error, "the engine is shutting down");
        j->done = true;
    }
    e->jobs = NULL;
    pthread_cond_broadcast(&e->done);
    pthread_mutex_unlock(&e->mu);
    snapshot(e);
    return NULL;
}

static void engine_free(dz_engine *e) {
    dz_kv_pool_free(e->pool);
    free(e->items);
    free(e->item_gen);
    free(e->logits);
    free(e->raw);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->wake);
    pthread_cond_destroy(&e->done);
    free(e);
}

dz_status dz_engine_create(dz_model *m, const dz_engine_config *cfg, dz_engine **out) {
    if (!m || !out) return dz_fail(DZ_ERR_ARG, "dz_engine_create: NULL argument");
    dz_engine_config c;
    dz_status st = config_fill(m, cfg, &c);
    if (st) return st;
    dz_engine *e = calloc(1, sizeof *e);
    if (!e) return dz_fail(DZ_ERR_NOMEM, "out of memory for the engine");
    atomic_init(&e->hold, false);
    e->model = m;
    e->cfg = c;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->wake, NULL);
    pthread_cond_init(&e->done, NULL);
    const size_t n_vocab = (size_t)dz_model_hparams_get(m)->n_vocab, R = (size_t)c.max_running;
    e->items = calloc(R, sizeof *e->items);
    e->item_gen = calloc(R, sizeof *e->item_gen);
    e->logits = malloc(R * n_vocab * sizeof *e->logits);
    e->raw = malloc(n_vocab * sizeof *e->raw);
    if (!e->items || !e->item_gen || !e->logits || !e->raw) {
        engine_free(e);
        return dz_fail(DZ_ERR_NOMEM, "out of memory for the engine's batch");
    }
    st = dz_kv_pool_create(m, c.kv_blocks, c.block_size, &e->pool);
    if (st) {
        engine_free(e);
        return dz_error_prefix(st, "engine: KV pool of %d blocks of %d positions: ", c.kv_blocks, c.block_size);
    }
    snapshot(e);
    if (pthread_create(&e->thread, NULL, engine_main, e)) {
        engine_free(e);
        return dz_fail(DZ_ERR_NOMEM, "engine: cannot start its thread");
    }
    *out = e;
    return DZ_OK;
}

void dz_engine_destroy(dz_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    engine_free(e);
}

const dz_engine_config *dz_engine_config_get(const dz_engine *e) { return &e->cfg; }
dz_model *dz_engine_model(dz_engine *e) { return e->model; }

void dz_engine_stats_get(dz_engine *e, dz_engine_stats *st) {
    pthread_mutex_lock(&e->mu);
    *st = e->snapshot;
    st->waiting = e->n_waiting;
    pthread_mutex_unlock(&e->mu);
}

dz_status dz_engine_embed(dz_engine *e, const int32_t *tokens, int32_t n, float *out) {
    if (!e || !out || (n > 0 && !tokens)) return dz_fail(DZ_ERR_ARG, "dz_engine_embed: NULL argument");
    if (n < 1) return dz_fail(DZ_ERR_ARG, "input: empty");
    if (n > e->cfg.n_ctx)
        return dz_fail(DZ_ERR_ARG, "input: %d tokens is longer than the context (%d tokens)", n, e->cfg.n_ctx);
    dz_embed_job job = {.tokens = tokens, .n = n, .out = out};
    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        return dz_fail(DZ_ERR_BUSY, "the engine is shutting down");
    }
    job.next = e->jobs;
    e->jobs = &job;
    pthread_cond_signal(&e->wake);
    while (!job.done) pthread_cond_wait(&e->done, &e->mu);
    pthread_mutex_unlock(&e->mu);
    return job.status ? dz_fail(job.status, "%s", job.error) : DZ_OK;
}
