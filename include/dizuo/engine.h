/* dizuo — engine: sampling and generation on top of the model layer. */
#ifndef DIZUO_ENGINE_H
#define DIZUO_ENGINE_H

#include "dizuo/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dz_logit_bias {
    int32_t token;
    float bias; /* added to the logit; -INFINITY bans the token */
} dz_logit_bias;

/* Sampling settings. Applied in this order: logit bias, repetition /
 * frequency / presence penalties over the last repeat_last_n tokens, then
 * (temperature <= 0) greedy argmax, or top-k, top-p, min-p, temperature and a
 * draw from the seeded RNG. Zero-initialised fields mean "off", except use
 * dz_sampler_defaults() for the usual values. */
typedef struct dz_sampler_params {
    float temperature;       /* 0: greedy */
    int32_t top_k;           /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off; > 1 discourages repeats (llama.cpp semantics) */
    int32_t repeat_last_n;   /* window of the penalties; 0: off, -1: whole history */
    float frequency_penalty; /* 0: off; subtracts count * f */
    float presence_penalty;  /* 0: off; subtracts p once a token appeared */
    uint64_t seed;
    const dz_logit_bias *logit_bias;
    int32_t n_logit_bias;
} dz_sampler_params;

/* temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat_penalty 1,
 * repeat_last_n 64, seed 0xD1Z0. */
dz_sampler_params dz_sampler_defaults(void);

typedef struct dz_sampler dz_sampler;

/* Checks the parameters (DZ_ERR_ARG naming the bad one: negative temperature,
 * top_p outside (0,1], a biased token outside the vocabulary ...). The
 * sampler copies the logit biases. Caller owns *out. */
dz_status dz_sampler_create(const dz_sampler_params *p, int32_t n_vocab, dz_sampler **out);
void dz_sampler_free(dz_sampler *s); /* NULL is a no-op */

/* Picks the next token from logits[n_vocab] (the array is used as scratch
 * and modified). Deterministic for a given seed and history. */
int32_t dz_sampler_sample(dz_sampler *s, float *logits);
/* Records a token in the history the penalties look at (prompt tokens too). */
void dz_sampler_accept(dz_sampler *s, int32_t token);
/* Clears the history and re-seeds the RNG. */
void dz_sampler_reset(dz_sampler *s);

/* A small deterministic RNG (xoshiro256**), seeded with splitmix64. */
typedef struct dz_rng { uint64_t s[4]; } dz_rng;
void dz_rng_seed(dz_rng *r, uint64_t seed);
uint64_t dz_rng_next(dz_rng *r);
double dz_rng_uniform(dz_rng *r); /* [0, 1) */

/* ---- the serving engine: continuous batching over a paged KV cache ----
 *
 * One engine thread owns the model, its KV pool and every running sequence.
 * Other threads submit generation requests; at every step the engine admits
 * waiting requests (while the pool has free blocks for their prompts, the
 * tenant with the fewest running sequences first), runs one forward pass over
 * prompt chunks of new sequences and one decode token of every running one
 * (dz_model_forward_batch), samples, and reports each token through the
 * request's callbacks. Requests leave the batch as soon as they finish; a
 * cancelled request's blocks return to the pool at the next step. When the
 * pool runs dry during decoding, the most recently admitted sequence is
 * preempted (blocks freed, recomputed later from its prompt and the tokens
 * it already generated; its client sees no difference). Prefix caching: a
 * request's full prompt blocks are shared with earlier requests of the same
 * tenant, never across tenants. */

typedef struct dz_engine dz_engine;

typedef struct dz_engine_config {
    int32_t n_ctx;            /* positions per sequence (prompt + generated); 0: model's training context, at most 4096 */
    int32_t kv_blocks;        /* blocks in the pool; 0: enough for max_running sequences of n_ctx */
    int32_t block_size;       /* positions per block; 0: 16 */
    int32_t max_running;      /* sequences decoding at once; 0: 8 */
    int32_t max_batch_tokens; /* tokens per forward pass (prompts are chunked to fit); 0: 512 */
    int32_t max_waiting;      /* queued requests before dz_engine_submit answers DZ_ERR_BUSY; 0: 1024 */
    bool no_prefix_cache;     /* turn prefix caching off */
    int32_t max_waiting_per_tenant; /* one tenant's share of the queue; 0: half of max_waiting (at least 1) */
} dz_engine_config;

/* Starts the engine thread on a loaded model (the engine borrows m: free the
 * engine first). Configuration errors are DZ_ERR_ARG naming the field; a
 * pool that does not fit in memory is DZ_ERR_NOMEM. Caller owns *out. */
dz_status dz_engine_create(dz_model *m, const dz_engine_config *cfg, dz_engine **out);
/* Stops the thread: every unfinished request ends with DZ_FINISH_CANCELLED
 * (its on_done runs before this returns). NULL is a no-op. */
void dz_engine_destroy(dz_engine *e);
/* The effective configuration (defaults filled in). */
const dz_engine_config *dz_engine_config_get(const dz_engine *e);
dz_model *dz_engine_model(dz_engine *e);

typedef enum dz_finish {
    DZ_FINISH_STOP = 1,  /* end-of-generation token, or on_token asked to stop */
    DZ_FINISH_LENGTH,    /* max_tokens reached, or the context is full */
    DZ_FINISH_CANCELLED, /* dz_gen_cancel, or the engine shut down */
    DZ_FINISH_ERROR,     /* the forward pass failed; message in dz_gen_result.error */
} dz_finish;

enum { DZ_TOP_LOGPROBS_MAX = 20 };

/* One generated token. logprob and top_* are log-softmax values of the
 * model's raw logits (before bias, penalties and temperature), filled when
 * the request asked for logprobs. */
typedef struct dz_gen_token {
    int32_t token;
    int32_t index; /* 0 for the first generated token */
    float logprob;
    int32_t n_top; /* entries in top_ids / top_logprobs, most likely first */
    int32_t top_ids[DZ_TOP_LOGPROBS_MAX];
    float top_logprobs[DZ_TOP_LOGPROBS_MAX];
} dz_gen_token;

typedef struct dz_gen_result {
    dz_finish finish;
    int32_t prompt_tokens;     /* prompt tokens computed or served from the cache: all of them once a
                                  token was generated, fewer (0 if never admitted) when it ended before */
    int32_t cached_tokens;     /* prompt tokens served from the prefix cache (first admission) */
    int32_t completion_tokens; /* tokens reported through on_token */
    double t_submit, t_first_token, t_done; /* dz_time_now() seconds; t_first_token 0 when none */
    char error[256];           /* DZ_FINISH_ERROR: what failed */
} dz_gen_result;

typedef struct dz_gen_request {
    uint64_t tenant;         /* prefix-cache and fairness group (e.g. a hash of the tenant name) */
    const int32_t *prompt;   /* copied by dz_engine_submit */
    int32_t n_prompt;        /* >= 1 */
    int32_t max_tokens;      /* >= 1; n_prompt + max_tokens is capped at n_ctx (finish LENGTH) */
    dz_sampler_params sampling; /* copied, logit biases included */
    bool ignore_eos;         /* do not stop on end-of-generation tokens */
    bool logprobs;           /* fill dz_gen_token.logprob */
    int32_t top_logprobs;    /* 0..DZ_TOP_LOGPROBS_MAX alternatives per token (needs logprobs) */
    /* Called on the engine thread for every generated token, in order; must
     * not block for long. Returning true ends the request with
     * DZ_FINISH_STOP (this token counted). */
    bool (*on_token)(void *user, const dz_gen_token *tok);
    /* Called exactly once, last, on the engine thread (or in
     * dz_engine_destroy). No callback for this request follows it. */
    void (*on_done)(void *user, const dz_gen_result *res);
    void *user;
} dz_gen_request;

typedef struct dz_gen dz_gen;

/* Queues a request. Checks it first: DZ_ERR_ARG names a bad field
 * (n_prompt < 1 or > n_ctx - 1 "prompt is longer than the context", a token
 * outside the vocabulary, max_tokens < 1, sampling parameters);
 * DZ_ERR_BUSY when the wait queue, or the tenant's share of it, is full or
 * the engine is stopping. On
 * DZ_OK *out is a handle the caller must release with dz_gen_release (the
 * callbacks may run before dz_engine_submit returns); on failure no callback
 * is ever called. Thread-safe. */
dz_status dz_engine_submit(dz_engine *e, const dz_gen_request *req, dz_gen **out);
/* Asks the engine to stop a request (the client went away): on_done follows
 * soon with DZ_FINISH_CANCELLED unless the request already finished.
 * Thread-safe; any time before dz_gen_release. */
void dz_gen_cancel(dz_gen *g);
/* Drops the caller's reference (the engine keeps its own until on_done).
 * NULL is a no-op. */
void dz_gen_release(dz_gen *g);
/* hold true: from now on no waiting request is started (a server's drain
 * calls it before cancelling what is left, so that cancelling a running
 * request does not let a waiting one in first); waiting requests stay
 * queued until cancelled, released, or dz_engine_destroy. hold false:
 * starting them again. Thread-safe; NULL is a no-op. */
void dz_engine_hold(dz_engine *e, bool hold);

/* Mean-pooled, L2-normalised final hidden states (after the output norm) of
 * tokens[0..n), computed on the engine thread between steps; out receives
 * n_embd floats. Blocks the caller. DZ_ERR_ARG for an empty input, one
 * longer than n_ctx or a token outside the vocabulary; DZ_ERR_BUSY when
 * stopping. Thread-safe. */
dz_status dz_engine_embed(dz_engine *e, const int32_t *tokens, int32_t n, float *out);

typedef struct dz_engine_stats {
    int32_t waiting;            /* queued, not yet admitted */
    int32_t running;            /* in the batch */
    int32_t kv_blocks_total;
    int32_t kv_blocks_used;     /* held by sequences (cached-but-free blocks not counted) */
    int32_t kv_blocks_cached;   /* free blocks that still hold a cached prefix */
    uint64_t prefix_queries;    /* full prompt blocks looked up in the prefix cache */
    uint64_t prefix_hits;       /* ... and found */
    uint64_t steps;             /* forward passes run */
    uint64_t preemptions;
    uint64_t prompt_tokens;     /* computed prompt tokens (cache hits excluded) */
    uint64_t generated_tokens;
} dz_engine_stats;

/* A consistent snapshot of the counters. Thread-safe. */
void dz_engine_stats_get(dz_engine *e, dz_engine_stats *st);


#ifdef __cplusplus
}
#endif
#endif /* DIZUO_ENGINE_H */
