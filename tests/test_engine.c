/* The serving engine (continuous batching on its own thread): many requests
 * submitted at once, with fewer batch slots than requests, a pool small
 * enough to force preemption, and prefix caching, must each produce the
 * greedy tokens the one-sequence path (dz_model_forward, argmax) produces
 * alone. Also: cancellation returns every block, request checks, fairness
 * across tenants, shutdown with requests in flight, and embeddings checked
 * against the model's own output layer (W_out . h is the logits up to the
 * norm of h). Model: ../shared/models/stories260K.gguf on the reference
 * device, where batched and one-sequence sums are identical. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dizuo/engine.h"
#include "dizuo/gguf.h"
#include "dztest.h"

enum { N_REQ = 6, MAX_NEW = 40, PROMPT_MAX = 80 };

typedef struct outcome {
    pthread_mutex_t mu;
    int32_t tokens[MAX_NEW];
    int32_t n;
    bool done;
    dz_gen_result res;
    int32_t cancel_after; /* > 0: on_token asks to stop after this many */
    int32_t hold_at;      /* > 0: on_token waits at this token until gate_open() */
    double t_first;
} outcome;

/* A gate the engine thread waits at (on_token runs on it): while it is
 * closed, an outcome's hold_at-th token stops the whole engine, so the test
 * can queue requests knowing none of the running ones moves meanwhile. */
static pthread_mutex_t g_gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_gate_cv = PTHREAD_COND_INITIALIZER;
static bool g_gate_closed;

static void gate_set(bool closed) {
    pthread_mutex_lock(&g_gate_mu);
    g_gate_closed = closed;
    pthread_cond_broadcast(&g_gate_cv);
    pthread_mutex_unlock(&g_gate_mu);
}

static bool on_token(void *user, const dz_gen_token *t) {
    outcome *o = user;
    pthread_mutex_lock(&o->mu);
    if (o->n < MAX_NEW) o->tokens[o->n] = t->token;
    if (o->n == 0) o->t_first = dz_time_now();
    o->n++;
    const bool stop = o->cancel_after > 0 && o->n >= o->cancel_after;
    const bool hold = o->hold_at > 0 && o->n == o->hold_at;
    pthread_mutex_unlock(&o->mu);
    if (hold) {
        pthread_mutex_lock(&g_gate_mu);
        while (g_gate_closed) pthread_cond_wait(&g_gate_cv, &g_gate_mu);
        pthread_mutex_unlock(&g_gate_mu);
    }
    return stop;
}

/* The engine's stats once its snapshot shows nothing running and no block
 * held (the snapshot follows the step after the last on_done), or the last
 * one after a second. */
static dz_engine_stats settled_stats(dz_engine *e) {
    dz_engine_stats st;
    for (int tries = 0; tries < 1000; tries++) {
        dz_engine_stats_get(e, &st);
        if (st.running == 0 && st.kv_blocks_used == 0) break;
        usleep(1000);
    }
    return st;
}

static void on_done(void *user, const dz_gen_result *r) {
    outcome *o = user;
    pthread_mutex_lock(&o->mu);
    o->res = *r;
    o->done = true;
    pthread_mutex_unlock(&o->mu);
}

static bool wait_done(outcome *o, double timeout_s) {
    const double t0 = dz_time_now();
    for (;;) {
        pthread_mutex_lock(&o->mu);
        const bool d = o->done;
        pthread_mutex_unlock(&o->mu);
        if (d) return true;
        if (dz_time_now() - t0 > timeout_s) return false;
        usleep(1000);
    }
}

/* Waits until o has at least n tokens (true) or 30 s pass. */
static bool wait_tokens(outcome *o, int32_t n) {
    const double t0 = dz_time_now();
    for (;;) {
        pthread_mutex_lock(&o->mu);
        const int32_t got = o->n;
        pthread_mutex_unlock(&o->mu);
        if (got >= n) return true;
        if (dz_time_now() - t0 > 30) return false;
        usleep(500);
    }
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Greedy n_new tokens after prompt through the one-sequence path; stops at
 * an end-of-generation token like the engine. Returns the count. */
static int32_t reference(dz_model *m, const int32_t *prompt, int32_t n_prompt, int32_t n_new, int32_t *out) {
    const int32_t n_vocab = dz_model_hparams_get(m)->n_vocab;
    dz_kv_cache *kv = NULL;
    float *lg = malloc((size_t)n_vocab * sizeof *lg);
    DZT_OK(dz_kv_cache_create(m, n_prompt + n_new, &kv));
    int32_t n = 0;
    if (kv && lg && dz_model_forward(m, kv, prompt, n_prompt, 0, lg, false) == DZ_OK) {
        for (; n < n_new; n++) {
            const int32_t t = argmax(lg, n_vocab);
            if (dz_tokenizer_is_eog(dz_model_tokenizer(m), t)) break;
            out[n] = t;
            if (dz_model_forward(m, kv, &t, 1, n_prompt + n, lg, false)) break;
        }
    }
    dz_kv_cache_free(kv);
    free(lg);
    return n;
}

static dz_gen_request greedy_request(const int32_t *prompt, int32_t n, int32_t max_tokens, uint64_t tenant,
                                     outcome *o) {
    dz_gen_request r;
    memset(&r, 0, sizeof r);
    r.tenant = tenant;
    r.prompt = prompt;
    r.n_prompt = n;
    r.max_tokens = max_tokens;
    r.sampling = dz_sampler_defaults();
    r.sampling.temperature = 0;
    r.on_token = on_token;
    r.on_done = on_done;
    r.user = o;
    return r;
}

static void outcome_init(outcome *o) {
    memset(o, 0, sizeof *o);
    pthread_mutex_init(&o->mu, NULL);
}

/* Prompt i: a shared 40-token story prefix for even i (same tenant, so the
 * prefix cache may serve it), then a few distinct tokens. */
static int32_t make_prompt(int i, int32_t *p) {
    int32_t n = 0;
    p[n++] = 1;
    const int32_t len = (i % 2 == 0) ? 40 : 5 + i;
    for (int32_t k = 0; k < len; k++) p[n++] = (i % 2 == 0) ? 260 + (k * 7) % 200 : 300 + (k * 13 + i) % 150;
    for (int32_t k = 0; k < 3; k++) p[n++] = 270 + (i * 5 + k) % 40;
    return n;
}

/* All requests at once through the engine vs each alone. */
static void check_batch(dz_model *m, const char *what, dz_engine_config cfg, bool expect_preemption) {
    int32_t prompts[N_REQ][PROMPT_MAX], n_prompt[N_REQ], ref[N_REQ][MAX_NEW], n_ref[N_REQ];
    for (int i = 0; i < N_REQ; i++) { /* before the engine: one thread drives a model */
        n_prompt[i] = make_prompt(i, prompts[i]);
        n_ref[i] = reference(m, prompts[i], n_prompt[i], MAX_NEW, ref[i]);
    }
    dz_engine *e = NULL;
    DZT_OK(dz_engine_create(m, &cfg, &e));
    if (!e) return;
    outcome o[N_REQ];
    dz_gen *g[N_REQ] = {0};
    for (int i = 0; i < N_REQ; i++) {
        outcome_init(&o[i]);
        dz_gen_request r = greedy_request(prompts[i], n_prompt[i], MAX_NEW, 7, &o[i]);
        DZT_OK(dz_engine_submit(e, &r, &g[i]));
    }
    for (int i = 0; i < N_REQ; i++) {
        DZT_CHECK(wait_done(&o[i], 60), "%s: request %d finished", what, i);
        DZT_EQ_INT(o[i].res.completion_tokens, n_ref[i]);
        DZT_EQ_INT(o[i].n, n_ref[i]);
        DZT_EQ_INT(o[i].res.finish, n_ref[i] == MAX_NEW ? DZ_FINISH_LENGTH : DZ_FINISH_STOP);
        DZT_EQ_INT(o[i].res.prompt_tokens, n_prompt[i]);
        DZT_CHECK(o[i].n == n_ref[i] && memcmp(o[i].tokens, ref[i], (size_t)n_ref[i] * sizeof(int32_t)) == 0,
                  "%s: request %d gives the one-sequence greedy tokens", what, i);
        dz_gen_release(g[i]);
    }
    dz_engine_stats st = settled_stats(e);
    DZT_EQ_INT(st.running, 0);
    DZT_EQ_INT(st.waiting, 0);
    DZT_EQ_INT(st.kv_blocks_used, 0);
    if (expect_preemption) DZT_CHECK(st.preemptions > 0, "%s: the small pool forced preemption", what);
    if (!cfg.no_prefix_cache) DZT_CHECK(st.prefix_hits > 0, "%s: the shared prefix was served from the cache", what);
    int32_t cached = 0;
    for (int i = 0; i < N_REQ; i++) cached += o[i].res.cached_tokens;
    if (cfg.no_prefix_cache) DZT_EQ_INT(cached, 0);
    dz_engine_destroy(e);
}

static void check_cancel_and_checks(dz_model *m) {
    dz_engine *e = NULL;
    dz_engine_config cfg = {.n_ctx = 256, .max_running = 2};
    DZT_OK(dz_engine_create(m, &cfg, &e));
    if (!e) return;
    const int32_t n_vocab = dz_model_hparams_get(m)->n_vocab;
    int32_t prompt[PROMPT_MAX], long_prompt[300] = {0};
    const int32_t n = make_prompt(1, prompt);
    outcome o, stopper;
    outcome_init(&o);
    outcome_init(&stopper);
    dz_gen *g = NULL, *gs = NULL, *bad = NULL;

    /* bad requests are refused at once, naming the field */
    dz_gen_request r = greedy_request(long_prompt, 256, 4, 1, &o);
    DZT_FAILS(dz_engine_submit(e, &r, &bad), DZ_ERR_ARG);
    DZT_CHECK(strstr(dz_last_error(), "longer than the context") != NULL, "message: %s", dz_last_error());
    r = greedy_request(prompt, n, 0, 1, &o);
    DZT_FAILS(dz_engine_submit(e, &r, &bad), DZ_ERR_ARG);
    int32_t out_of_vocab[2] = {1, n_vocab};
    r = greedy_request(out_of_vocab, 2, 4, 1, &o);
    DZT_FAILS(dz_engine_submit(e, &r, &bad), DZ_ERR_ARG);
    r = greedy_request(prompt, 0, 4, 1, &o);
    DZT_FAILS(dz_engine_submit(e, &r, &bad), DZ_ERR_ARG);
    DZT_ASSERT(bad == NULL);

    /* on_token asking to stop ends with STOP after exactly that many tokens */
    stopper.cancel_after = 3;
    r = greedy_request(prompt, n, 200, 1, &stopper);
    DZT_OK(dz_engine_submit(e, &r, &gs));
    DZT_ASSERT(wait_done(&stopper, 30));
    DZT_EQ_INT(stopper.res.finish, DZ_FINISH_STOP);
    DZT_EQ_INT(stopper.res.completion_tokens, 3);

    /* a client that goes away: cancelled, every block back */
    r = greedy_request(prompt, n, 200, 1, &o);
    r.ignore_eos = true;
    DZT_OK(dz_engine_submit(e, &r, &g));
    if (g) DZT_ASSERT(wait_tokens(&o, 2));
    dz_gen_cancel(g);
    DZT_ASSERT(wait_done(&o, 30));
    DZT_EQ_INT(o.res.finish, DZ_FINISH_CANCELLED);
    DZT_CHECK(o.res.completion_tokens < 200, "cancelled before the end (%d tokens)", o.res.completion_tokens);
    dz_gen_release(g);
    dz_gen_release(gs);
    dz_engine_stats st = settled_stats(e);
    DZT_EQ_INT(st.kv_blocks_used, 0);
    DZT_EQ_INT(st.running, 0);
    dz_engine_destroy(e);
}

/* Tenant A's five requests are queued first and its first two start
 * together (the engine is held while they are queued); tenant B's one comes
 * while they run (the engine waits at A's first token). A's two end in the
 * same step, freeing both slots at once: B must start first (A just had its
 * turn), before A's three later requests. */
static void check_fairness(dz_model *m) {
    dz_engine *e = NULL;
    dz_engine_config cfg = {.n_ctx = 256, .max_running = 2};
    DZT_OK(dz_engine_create(m, &cfg, &e));
    if (!e) return;
    int32_t prompt[PROMPT_MAX];
    const int32_t n = make_prompt(3, prompt);
    outcome a[5], b;
    dz_gen *ga[5], *gb = NULL;
    dz_engine_hold(e, true);
    gate_set(true);
    for (int i = 0; i < 5; i++) {
        outcome_init(&a[i]);
        a[i].hold_at = i == 0 ? 1 : 0;
        dz_gen_request r = greedy_request(prompt, n, 24, 100, &a[i]);
        r.ignore_eos = true;
        DZT_OK(dz_engine_submit(e, &r, &ga[i]));
    }
    dz_engine_hold(e, false);
    DZT_ASSERT(wait_tokens(&a[0], 1)); /* A's first request at the gate */
    outcome_init(&b);
    dz_gen_request r = greedy_request(prompt, n, 24, 200, &b);
    r.ignore_eos = true;
    DZT_OK(dz_engine_submit(e, &r, &gb));
    gate_set(false);
    DZT_ASSERT(wait_done(&b, 60));
    for (int i = 0; i < 5; i++) DZT_ASSERT(wait_done(&a[i], 60));
    int later = 0; /* A's requests that started after B */
    for (int i = 0; i < 5; i++) later += a[i].t_first > b.t_first;
    DZT_CHECK(later == 3, "tenant B started after %d of A's 5 requests (expected after A's first two only)", 5 - later);
    for (int i = 0; i < 5; i++) dz_gen_release(ga[i]);
    dz_gen_release(gb);
    dz_engine_destroy(e);
}

/* Shutdown with requests running and waiting: every one ends CANCELLED, and
 * a request never admitted bills no prompt tokens. Also the per-tenant share
 * of the wait queue. */
static void check_shutdown(dz_model *m) {
    dz_engine *e = NULL;
    dz_engine_config cfg = {.n_ctx = 256, .max_running = 1, .max_waiting_per_tenant = 2};
    DZT_OK(dz_engine_create(m, &cfg, &e));
    if (!e) return;
    int32_t prompt[PROMPT_MAX];
    const int32_t n = make_prompt(2, prompt);
    outcome o[4];
    dz_gen *g[4] = {0}, *extra = NULL;
    for (int i = 0; i < 4; i++) outcome_init(&o[i]);
    dz_gen_request r = greedy_request(prompt, n, 200, 1, &o[0]);
    r.ignore_eos = true;
    DZT_OK(dz_engine_submit(e, &r, &g[0]));
    DZT_ASSERT(wait_tokens(&o[0], 1)); /* running, so the next ones wait */
    for (int i = 1; i < 3; i++) {
        r = greedy_request(prompt, n, 200, 1, &o[i]);
        DZT_OK(dz_engine_submit(e, &r, &g[i]));
    }
    r = greedy_request(prompt, n, 200, 1, &o[3]); /* tenant 1 already has 2 waiting */
    DZT_FAILS(dz_engine_submit(e, &r, &extra), DZ_ERR_BUSY);
    r = greedy_request(prompt, n, 200, 2, &o[3]); /* another tenant still gets in */
    DZT_OK(dz_engine_submit(e, &r, &g[3]));
    dz_engine_destroy(e);
    for (int i = 0; i < 4; i++) {
        DZT_ASSERT(o[i].done);
        DZT_EQ_INT(o[i].res.finish, DZ_FINISH_CANCELLED);
        DZT_EQ_INT(o[i].res.prompt_tokens, i == 0 ? n : 0);
        DZT_EQ_INT(o[i].res.completion_tokens, i == 0 ? o[0].n : 0);
        dz_gen_release(g[i]);
    }
}

/* dz_engine_hold: once held, a cancelled running request's slot goes to no
 * waiting one; the waiting one ends CANCELLED when cancelled, never started. */
static void check_hold(dz_model *m) {
    dz_engine *e = NULL;
    dz_engine_config cfg = {.n_ctx = 256, .max_running = 1};
    DZT_OK(dz_engine_create(m, &cfg, &e));
    if (!e) return;
    int32_t prompt[PROMPT_MAX];
    const int32_t n = make_prompt(2, prompt);
    outcome run, wait;
    outcome_init(&run);
    outcome_init(&wait);
    run.hold_at = 1; /* the engine stops at its first token */
    gate_set(true);
    dz_gen *gr = NULL, *gw = NULL;
    dz_gen_request r = greedy_request(prompt, n, 200, 1, &run);
    r.ignore_eos = true;
    DZT_OK(dz_engine_submit(e, &r, &gr));
    r = greedy_request(prompt, n, 200, 2, &wait);
    DZT_OK(dz_engine_submit(e, &r, &gw));
    DZT_ASSERT(wait_tokens(&run, 1)); /* the running one is at the gate */
    dz_engine_hold(e, true);
    dz_gen_cancel(gr);
    gate_set(false);
    DZT_ASSERT(wait_done(&run, 30));
    DZT_EQ_INT(run.res.finish, DZ_FINISH_CANCELLED);
    usleep(200 * 1000); /* time enough to start the waiting one, were it let in */
    pthread_mutex_lock(&wait.mu);
    const int32_t got = wait.n;
    const bool done = wait.done;
    pthread_mutex_unlock(&wait.mu);
    DZT_CHECK(got == 0 && !done, "a held engine started a waiting request (%d tokens, done %d)", got, done);
    dz_gen_cancel(gw);
    DZT_ASSERT(wait_done(&wait, 30));
    DZT_EQ_INT(wait.res.finish, DZ_FINISH_CANCELLED);
    DZT_EQ_INT(wait.res.prompt_tokens, 0);
    dz_gen_release(gr);
    dz_gen_release(gw);
    dz_engine_destroy(e);
}

/* The embedding of one token t is h/|h| with h the final normed hidden
 * state; the model's logits for that position are W_out h, so W_out e must
 * point the same way as the logits of dz_model_forward. */
static void check_embed(dz_model *m) {
    const dz_gguf_tensor *w = dz_gguf_find_tensor(dz_model_gguf(m), "output.weight");
    DZT_ASSERT(w && w->type == DZ_TYPE_F32 && w->ne[0] == 64);
    const int32_t n_vocab = dz_model_hparams_get(m)->n_vocab, d = 64;
    float emb[64], emb2[64], *lg = malloc((size_t)n_vocab * sizeof *lg);
    int32_t tok[1] = {300};
    dz_kv_cache *kv = NULL; /* the reference logits, before the engine drives the model */
    DZT_OK(dz_kv_cache_create(m, 4, &kv));
    DZT_OK(dz_model_forward(m, kv, tok, 1, 0, lg, false));
    dz_engine *e = NULL;
    DZT_OK(dz_engine_create(m, &(dz_engine_config){.n_ctx = 128}, &e));
    if (!e || !w) return;
    DZT_OK(dz_engine_embed(e, tok, 1, emb));
    double dot = 0, nw = 0, nl = 0, ne = 0;
    const float *W = w->data;
    for (int32_t v = 0; v < n_vocab; v++) {
        double we = 0;
        for (int32_t i = 0; i < d; i++) we += (double)W[(size_t)v * (size_t)d + i] * emb[i];
        dot += we * lg[v];
        nw += we * we;
        nl += (double)lg[v] * lg[v];
    }
    for (int32_t i = 0; i < d; i++) ne += (double)emb[i] * emb[i];
    DZT_NEAR(sqrt(ne), 1.0, 1e-5);
    DZT_NEAR(dot / sqrt(nw * nl), 1.0, 1e-5);
    /* several tokens: unit norm, and the same input gives the same vector */
    int32_t many[5] = {1, 300, 301, 302, 303};
    DZT_OK(dz_engine_embed(e, many, 5, emb));
    DZT_OK(dz_engine_embed(e, many, 5, emb2));
    ne = 0;
    for (int32_t i = 0; i < d; i++) ne += (double)emb[i] * emb[i];
    DZT_NEAR(sqrt(ne), 1.0, 1e-5);
    DZT_ASSERT(memcmp(emb, emb2, sizeof emb) == 0);
    DZT_FAILS(dz_engine_embed(e, many, 0, emb), DZ_ERR_ARG);
    int32_t bad[1] = {n_vocab};
    DZT_FAILS(dz_engine_embed(e, bad, 1, emb), DZ_ERR_ARG);
    dz_kv_cache_free(kv);
    free(lg);
    dz_engine_destroy(e);
}

int main(void) {
    char *path = dzt_shared("models/stories260K.gguf");
    dz_model *m = NULL;
    dz_model_options opt = {.device = "cpu-ref", .n_threads = 1};
    DZT_OK(dz_model_load(path, &opt, &m));
    if (!m) return dzt_done();

    /* enough room: 3 slots for 6 requests, prefix cache on and off */
    check_batch(m, "roomy pool", (dz_engine_config){.n_ctx = 256, .max_running = 3, .max_batch_tokens = 32}, false);
    check_batch(m, "no prefix cache",
                (dz_engine_config){.n_ctx = 256, .max_running = 3, .no_prefix_cache = true}, false);
    /* 9 blocks of 16 for up to 4 sequences of up to 85 positions: preemption */
    check_batch(m, "small pool",
                (dz_engine_config){.n_ctx = 256, .max_running = 4, .kv_blocks = 9, .max_batch_tokens = 24}, true);
    check_cancel_and_checks(m);
    check_fairness(m);
    check_shutdown(m);
    check_hold(m);
    check_embed(m);
    dz_model_free(m);
    free(path);
    return dzt_done();
}
