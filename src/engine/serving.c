/* The serving engine: one thread that runs continuous batching over the
 * paged KV cache (see "the serving engine" in dizuo/engine.h).
 *
 * Every step: finish cancelled requests, run queued embedding jobs, admit
 * waiting requests while blocks allow (fewest running sequences per tenant
 * first), make room for one decode token per running sequence (preempting
 * the newest when the pool is dry), fill the rest of the token budget with
 * prompt chunks, run one dz_model_forward_batch, then sample and report a
 * token for every sequence whose known tokens are all computed.
 *
 * Locking: e->mu guards the wait queue, the embedding jobs, the stop flag and
 * the statistics. The running list, the pool and the model belong to the
 * engine thread alone; callbacks run with no lock held. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/engine.h"
#include "engine/engine_impl.h"

/* ---- requests ---- */

static void gen_unref(dz_gen *g) {
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1) return;
    dz_sampler_free(g->sampler);
    free(g->tokens);
    free(g);
}

void dz_gen_release(dz_gen *g) { gen_unref(g); }

void dz_engine_hold(dz_engine *e, bool hold) {
    if (!e) return;
    atomic_store(&e->hold, hold);
    pthread_mutex_lock(&e->mu);
    pthread_cond_signal(&e->wake); /* released: the queue may start */
    pthread_mutex_unlock(&e->mu);
}

void dz_gen_cancel(dz_gen *g) {
    if (!g) return;
    atomic_store(&g->cancel, true);
    dz_engine *e = g->engine;
    pthread_mutex_lock(&e->mu);
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
}

static int32_t blocks_for(const dz_engine *e, int64_t positions) {
    const int64_t bs = e->cfg.block_size;
    return (int32_t)((positions + bs - 1) / bs);
}

dz_status dz_engine_submit(dz_engine *e, const dz_gen_request *req, dz_gen **out) {
    if (!e || !req || !out) return dz_fail(DZ_ERR_ARG, "dz_engine_submit: NULL argument");
    const int32_t n_vocab = dz_model_hparams_get(e->model)->n_vocab, n_ctx = e->cfg.n_ctx;
    if (req->n_prompt < 1 || !req->prompt) return dz_fail(DZ_ERR_ARG, "prompt: empty");
    if (req->n_prompt > n_ctx - 1)
        return dz_fail(DZ_ERR_ARG, "prompt: %d tokens is longer than the context (%d tokens, one kept for the reply)",
                       req->n_prompt, n_ctx);
    if (blocks_for(e, req->n_prompt + 1) > e->cfg.kv_blocks)
        return dz_fail(DZ_ERR_ARG, "prompt: %d tokens need more KV blocks than the pool has (%d of %d positions)",
                       req->n_prompt, e->cfg.kv_blocks, e->cfg.block_size);
    for (int32_t i = 0; i < req->n_prompt; i++)
        if (req->prompt[i] < 0 || req->prompt[i] >= n_vocab)
            return dz_fail(DZ_ERR_ARG, "prompt: token id %d at index %d is outside the vocabulary (0..%d)",
                           req->prompt[i], i, n_vocab - 1);
    if (req->max_tokens < 1) return dz_fail(DZ_ERR_ARG, "max_tokens: must be at least 1, got %d", req->max_tokens);
    if (req->top_logprobs < 0 || req->top_logprobs > DZ_TOP_LOGPROBS_MAX)
        return dz_fail(DZ_ERR_ARG, "top_logprobs: must be 0..%d, got %d", DZ_TOP_LOGPROBS_MAX, req->top_logprobs);
    if (!req->on_done) return dz_fail(DZ_ERR_ARG, "dz_engine_submit: on_done is required");

    dz_gen *g = calloc(1, sizeof *g);
    if (!g) return dz_fail(DZ_ERR_NOMEM, "out of memory for a request");
    g->engine = e;
    g->req = *req;
    g->req.prompt = NULL;
    g->req.sampling.logit_bias = NULL; /* the sampler keeps its own copy */
    g->req.sampling.n_logit_bias = 0;
    const int64_t cap = (int64_t)req->n_prompt + req->max_tokens;
    const int64_t pool_positions = (int64_t)e->cfg.kv_blocks * e->cfg.block_size;
    int64_t max_len = cap < n_ctx ? cap : n_ctx;
    g->max_len = (int32_t)(max_len < pool_positions ? max_len : pool_positions);
    g->tokens = malloc((size_t)g->max_len * sizeof *g->tokens);
    dz_status st = g->tokens ? dz_sampler_create(&req->sampling, n_vocab, &g->sampler)
                             : dz_fail(DZ_ERR_NOMEM, "out of memory for a request's tokens");
    if (st) {
        free(g->tokens);
        free(g);
        return st;
    }
    memcpy(g->tokens, req->prompt, (size_t)req->n_prompt * sizeof *g->tokens);
    for (int32_t i = 0; i < req->n_prompt; i++) dz_sampler_accept(g->sampler, req->prompt[i]);
    g->n_tokens = req->n_prompt;
    g->res.t_submit = dz_time_now();
    atomic_init(&g->refs, 2); /* the caller's and the engine's */
    atomic_init(&g->cancel, false);

    pthread_mutex_lock(&e->mu);
    int32_t tenant_waiting = 0;
    for (const dz_gen *w = e->waiting.head; w; w = w->next) tenant_waiting += w->req.tenant == req->tenant;
    if (e->stopping || e->n_waiting >= e->cfg.max_waiting || tenant_waiting >= e->cfg.max_waiting_per_tenant) {
        const bool stopping = e->stopping, full = e->n_waiting >= e->cfg.max_waiting;
        pthread_mutex_unlock(&e->mu);
        dz_sampler_free(g->sampler);
        free(g->tokens);
        free(g);
        return stopping ? dz_fail(DZ_ERR_BUSY, "the engine is shutting down")
               : full   ? dz_fail(DZ_ERR_BUSY, "the wait queue is full (%d requests)", e->cfg.max_waiting)
                        : dz_fail(DZ_ERR_BUSY, "this tenant already has %d requests waiting", tenant_waiting);
    }
    g->order = e->next_order++;
    dz_genq_push_back(&e->waiting, g);
    e->n_waiting++;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
    *out = g;
    return DZ_OK;
}

/* ---- finishing ---- */

/* Ends g: frees its sequence, runs on_done, drops the engine's reference:
 * g may be freed when this returns (the client may hold the last one). */
void dz_engine_finish(dz_engine *e, dz_gen *g, dz_finish why, const char *error) {
    dz_kv_seq_free(g->seq);
    g->seq = NULL;
    g->res.finish = why;
    g->res.prompt_tokens = g->prompt_done;
    g->res.t_done = dz_time_now();
    if (error) snprintf(g->res.error, sizeof g->res.error, "%s", error);
    g->req.on_done(g->req.user, &g->res);
    (void)e;
    gen_unref(g);
}

/* ---- the step ---- */

static int32_t tenant_running(const dz_engine *e, uint64_t tenant) {
    int32_t n = 0;
    for (const dz_gen *g = e->running.head; g; g = g->next) n += g->req.tenant == tenant;
    return n;
}

/* Records how much of g's prompt is in its sequence (the most so far). */
static void note_prompt_done(dz_gen *g) {
    const int32_t done = g->n_computed < g->req.n_prompt ? g->n_computed : g->req.n_prompt;
    if (done > g->prompt_done) g->prompt_done = done;
}

/* Tries to start g's sequence; false when the pool cannot take it now. */
static bool try_admit(dz_engine *e, dz_gen *g) {
    int32_t n_cached = 0;
    dz_status st = e->cfg.no_prefix_cache
                       ? dz_kv_seq_create(e->pool, &g->seq)
                       : dz_kv_seq_create_cached(e->pool, g->req.tenant, g->tokens, g->n_tokens, &g->seq, &n_cached);
    if (st) return false;
    const int32_t held = blocks_for(e, n_cached);
    const int32_t need = blocks_for(e, g->n_tokens) - held;
    /* keep one block of headroom per running sequence so decoding can go on */
    if (dz_kv_pool_free_blocks(e->pool) < need + e->n_running || dz_kv_seq_reserve(g->seq, g->n_tokens - n_cached)) {
        dz_kv_seq_free(g->seq);
        g->seq = NULL;
        return false;
    }
    if (!g->admitted_once) g->res.cached_tokens = n_cached < g->req.n_prompt ? n_cached : g->req.n_prompt;
    g->admitted_once = true;
    g->n_computed = n_cached;
    note_prompt_done(g);
    return true;
}

/* How many of the last admissions were of tenant t. */
static int32_t tenant_recent(const dz_engine *e, uint64_t tenant) {
    int32_t n = 0;
    for (int32_t i = 0; i < e->n_recent; i++) n += e->recent[i] == tenant;
    return n;
}

static void note_admitted(dz_engine *e, uint64_t tenant) {
    e->recent[e->recent_at] = tenant;
    e->recent_at = (e->recent_at + 1) % DZ_ENGINE_RECENT;
    if (e->n_recent < DZ_ENGINE_RECENT) e->n_recent++;
}

/* Moves waiting requests into the batch: the tenant with the fewest running
 * sequences first; among equals the one admitted least of late (so when
 * several slots free at once, a tenant that just had its turn waits for the
 * others), then arrival order. */
void dz_engine_admit(dz_engine *e) {
    while (e->n_running < e->cfg.max_running && !atomic_load(&e->hold)) {
        pthread_mutex_lock(&e->mu);
        dz_gen *best = NULL;
        int32_t best_n = INT32_MAX, best_recent = INT32_MAX;
        for (dz_gen *g = e->waiting.head; g; g = g->next) {
            const int32_t n = tenant_running(e, g->req.tenant);
            if (n > best_n) continue;
            const int32_t recent = tenant_recent(e, g->req.tenant);
            if (n < best_n || recent < best_recent) best = g, best_n = n, best_recent = recent;
        }
        if (best) dz_genq_remove(&e->waiting, best), e->n_waiting--;
        pthread_mutex_unlock(&e->mu);
        if (!best) return;
        if (!try_admit(e, best)) {
            if (e->n_running == 0) { /* an empty pool cannot take it: it never will */
                dz_engine_finish(e, best, DZ_FINISH_ERROR, "the KV pool cannot hold this request's tokens");
                continue;
            }
            pthread_mutex_lock(&e->mu);
            dz_genq_push_front(&e->waiting, best);
            e->n_waiting++;
            pthread_mutex_unlock(&e->mu);
            return;
        }
        dz_genq_push_back(&e->running, best);
        e->n_running++;
        note_admitted(e, best->req.tenant);
    }
}

/* Gives the newest running sequence's blocks back; it waits at the front of
 * the queue and recomputes its tokens when admitted again. */
static void preempt_newest(dz_engine *e) {
    dz_gen *victim = NULL;
    for (dz_gen *g = e->running.head; g; g = g->next)
        if (!victim || g->order > victim->order) victim = g;
    if (!victim) return;
    dz_genq_remove(&e->running, victim);
    e->n_running--;
    dz_kv_seq_free(victim->seq);
    victim->seq = NULL;
    victim->n_computed = 0;
    e->preemptions++;
    pthread_mutex_lock(&e->mu);
    dz_genq_push_front(&e->waiting, victim);
    e->n_waiting++;
    pthread_mutex_unlock(&e->mu);
}

/* Ends requests whose client cancelled, running and waiting. */
void dz_engine_reap_cancelled(dz_engine *e) {
    for (dz_gen *g = e->running.head, *next; g; g = next) {
        next = g->next;
        if (!atomic_load(&g->cancel)) continue;
        dz_genq_remove(&e->running, g);
        e->n_running--;
        dz_engine_finish(e, g, DZ_FINISH_CANCELLED, NULL);
    }
    dz_genq cancelled = {0};
    pthread_mutex_lock(&e->mu);
    for (dz_gen *g = e->waiting.head, *next; g; g = next) {
        next = g->next;
        if (!atomic_load(&g->cancel)) continue;
        dz_genq_remove(&e->waiting, g);
        e->n_waiting--;
        dz_genq_push_back(&cancelled, g);
    }
    pthread_mutex_unlock(&e->mu);
    while (cancelled.head) {
        dz_gen *g = cancelled.head;
        dz_genq_remove(&cancelled, g);
        dz_engine_finish(e, g, DZ_FINISH_CANCELLED, NULL);
    }
}

/* Log-softmax of the raw logits: the chosen token's value and the top k. */
static void fill_logprobs(const float *logits, int32_t n_vocab, dz_gen_token *t, int32_t k) {
    float mx = logits[0];
    for (int32_t i = 1; i < n_vocab; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - mx);
    const double lse = mx + log(sum);
    t->logprob = (float)(logits[t->token] - lse);
    t->n_top = 0;
    for (int32_t i = 0; i < n_vocab; i++) { /* insertion into a sorted list of k */
        int32_t j = t->n_top < k ? t->n_top++ : k;
        if (j == k && (k == 0 || logits[i] <= logits[t->top_ids[k - 1]])) continue;
        if (j == k) j = k - 1;
        while (j > 0 && logits[t->top_ids[j - 1]] < logits[i]) {
            t->top_ids[j] = t->top_ids[j - 1];
            j--;
        }
        t->top_ids[j] = i;
    }
    for (int32_t j = 0; j < t->n_top; j++) t->top_logprobs[j] = (float)(logits[t->top_ids[j]] - lse);
}

/* Samples and reports g's next token from its logits (scratch); ends g when
 * it is done. Returns whether g is still running. */
static bool emit_token(dz_engine *e, dz_gen *g, float *logits) {
    const int32_t n_vocab = dz_model_hparams_get(e->model)->n_vocab;
    dz_gen_token t;
    memset(&t, 0, sizeof t);
    if (g->req.logprobs) memcpy(e->raw, logits, (size_t)n_vocab * sizeof *logits);
    t.token = dz_sampler_sample(g->sampler, logits);
    dz_sampler_accept(g->sampler, t.token);
    if (!g->req.ignore_eos && dz_tokenizer_is_eog(dz_model_tokenizer(e->model), t.token)) {
        dz_engine_finish(e, g, DZ_FINISH_STOP, NULL);
        return false;
    }
    if (g->req.logprobs) fill_logprobs(e->raw, n_vocab, &t, g->req.top_logprobs);
    t.index = g->res.completion_tokens;
    g->tokens[g->n_tokens++] = t.token;
    g->res.completion_tokens++;
    if (g->res.completion_tokens == 1) g->res.t_first_token = dz_time_now();
    e->generated++;
    const bool stop = g->req.on_token && g->req.on_token(g->req.user, &t);
    const bool full = g->n_tokens >= g->max_len;
    /* g may be freed once finished (the client holds the last reference) */
    if (stop) dz_engine_finish(e, g, DZ_FINISH_STOP, NULL);
    else if (full) dz_engine_finish(e, g, DZ_FINISH_LENGTH, NULL);
    return !stop && !full;
}

/* One forward pass over the running batch. */
void dz_engine_step(dz_engine *e) {
    /* room for one decode token per decoding sequence, preempting when dry */
    for (;;) {
        bool short_of_room = false;
        for (dz_gen *g = e->running.head; g; g = g->next)
            if (g->n_tokens - g->n_computed == 1 && dz_kv_seq_reserve(g->seq, 1)) {
                short_of_room = true;
                break;
            }
        if (!short_of_room || e->n_running <= 1) break;
        preempt_newest(e);
    }
    int32_t n_items = 0, budget = e->cfg.max_batch_tokens;
    for (int pass = 0; pass < 2; pass++) /* decode tokens first, then prompt chunks */
        for (dz_gen *g = e->running.head; g && budget > 0; g = g->next) {
            const int32_t todo = g->n_tokens - g->n_computed;
            if ((pass == 0) != (todo == 1)) continue;
            const int32_t n = todo < budget ? todo : budget;
            e->items[n_items] = (dz_batch_item){g->seq, g->tokens + g->n_computed, n};
            e->item_gen[n_items++] = g;
            budget -= n;
        }
    if (n_items == 0) return;
    dz_status st = dz_model_forward_batch(e->model, e->pool, e->items, n_items, e->logits);
    if (st) { /* a pass that fails ends the requests in it */
        char msg[256];
        snprintf(msg, sizeof msg, "%s", dz_last_error());
        dz_log(DZ_LOG_ERROR, "engine: forward pass failed: %s\n", msg);
        for (int32_t i = 0; i < n_items; i++) {
            dz_genq_remove(&e->running, e->item_gen[i]);
            e->n_running--;
            dz_engine_finish(e, e->item_gen[i], DZ_FINISH_ERROR, msg);
        }
        return;
    }
    e->steps++;
    const int32_t n_vocab = dz_model_hparams_get(e->model)->n_vocab;
    for (int32_t i = 0; i < n_items; i++) {
        dz_gen *g = e->item_gen[i];
        const int32_t end = g->n_computed + e->items[i].n, prompt_end = g->req.n_prompt;
        if (g->n_computed < prompt_end) e->prompt_computed += (uint64_t)((end < prompt_end ? end : prompt_end) - g->n_computed);
        g->n_computed = end;
        note_prompt_done(g);
        if (g->n_computed < g->n_tokens) continue; /* more prompt to go */
        dz_genq_remove(&e->running, g); /* emit_token may end g */
        e->n_running--;
        if (emit_token(e, g, e->logits + (size_t)i * (size_t)n_vocab)) {
            dz_genq_push_back(&e->running, g);
            e->n_running++;
        }
    }
}
