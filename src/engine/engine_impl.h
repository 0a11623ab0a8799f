/* Internals of the serving engine shared by serving.c (the step) and
 * engine_thread.c (lifetime, the thread, embeddings, statistics). */
#ifndef DZ_ENGINE_IMPL_H
#define DZ_ENGINE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "dizuo/engine.h"

struct dz_gen {
    dz_engine *engine;
    atomic_int refs;     /* the caller's and the engine's */
    atomic_bool cancel;
    dz_gen_request req;  /* prompt and logit biases not kept (copied below / in the sampler) */
    dz_sampler *sampler;
    int32_t *tokens;     /* prompt, then generated tokens: max_len slots */
    int32_t n_tokens, max_len;
    int32_t n_computed;  /* tokens whose keys and values are in seq */
    dz_kv_seq *seq;      /* NULL while waiting */
    bool admitted_once;
    int32_t prompt_done; /* prompt tokens computed or cached so far (the most ever; preemption keeps it) */
    uint64_t order;      /* arrival number: the newest is preempted first */
    dz_gen_result res;
    dz_gen *prev, *next; /* in the wait queue or the running list */
};

/* A doubly linked list of requests. */
typedef struct dz_genq {
    dz_gen *head, *tail;
} dz_genq;

static inline void dz_genq_push_back(dz_genq *q, dz_gen *g) {
    g->next = NULL;
    g->prev = q->tail;
    if (q->tail) q->tail->next = g;
    else q->head = g;
    q->tail = g;
}

static inline void dz_genq_push_front(dz_genq *q, dz_gen *g) {
    g->prev = NULL;
    g->next = q->head;
    if (q->head) q->head->prev = g;
    else q->tail = g;
    q->head = g;
}

static inline void dz_genq_remove(dz_genq *q, dz_gen *g) {
    if (g->prev) g->prev->next = g->next;
    else q->head = g->next;
    if (g->next) g->next->prev = g->prev;
    else q->tail = g->prev;
    g->prev = g->next = NULL;
}

/* An embedding asked for by another thread, run between steps. */
typedef struct dz_embed_job {
    const int32_t *tokens;
    int32_t n;
    float *out;
    bool done;
    dz_status status;
    char error[256];
    struct dz_embed_job *next;
} dz_embed_job;

enum { DZ_ENGINE_RECENT = 64 }; /* admissions remembered for the fairness tie-break */

struct dz_engine {
    dz_model *model;
    dz_engine_config cfg;
    dz_kv_pool *pool;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;  /* work arrived, or a request was cancelled */
    pthread_cond_t done;  /* an embedding job finished */
    bool stopping;        /* guarded by mu */
    atomic_bool hold;     /* dz_engine_hold: no waiting request is started */
    /* guarded by mu */
    dz_genq waiting;
    int32_t n_waiting;
    uint64_t next_order;
    dz_embed_job *jobs;
    /* the engine thread's own */
    dz_genq running;
    int32_t n_running;
    dz_batch_item *items; /* max_running entries */
    dz_gen **item_gen;
    float *logits;        /* max_running * n_vocab */
    float *raw;           /* n_vocab: raw logits kept for logprobs */
    uint64_t steps, preemptions, prompt_computed, generated;
    uint64_t recent[DZ_ENGINE_RECENT]; /* the tenants of the last admissions (a ring) */
    int32_t n_recent, recent_at;
    dz_engine_stats snapshot; /* guarded by mu, refreshed after every step */
};

/* serving.c: one step of the batch, and what happens around it. */
void dz_engine_reap_cancelled(dz_engine *e);
void dz_engine_admit(dz_engine *e);
void dz_engine_step(dz_engine *e);
/* Ends g with why (and on_done); used at shutdown for every request left. */
void dz_engine_finish(dz_engine *e, dz_gen *g, dz_finish why, const char *error);

#endif /* DZ_ENGINE_IMPL_H */
