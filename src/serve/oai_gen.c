/* POST /v1/chat/completions and POST /v1/completions: parse, render the
 * chat template, tokenize, reserve the quota, submit one engine request per
 * choice, then either wait and answer once (billing first) or stream SSE
 * chunks from a content reader that blocks on the job's queue; the usage
 * row is committed before the chunks carrying a finish_reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/gen_impl.h"

enum { WAIT_SLICE_MS = 200 };

/* ---- the job's life ---- */

static void job_free(gen_job *job) {
    for (int i = 0; i < job->n_init; i++) dz_choice_free(&job->choices[i]);
    free(job->choices);
    for (size_t i = 0; job->prompts && i < job->n_prompts; i++) free(job->prompts[i]);
    free(job->prompts);
    free(job->n_prompt);
    if (job->resv) dz_ledger_release(job->srv->ledger, job->resv); /* only on paths that billed nothing */
    dz_oai_request_free(job->oai);
    free(job->q);
    pthread_cond_destroy(&job->cv);
    pthread_mutex_destroy(&job->mu);
    dz_req_unref(job->req);
    free(job);
}

static void job_unref(gen_job *job) {
    if (atomic_fetch_sub(&job->refs, 1) == 1) job_free(job);
}

static void on_done(void *user, const dz_gen_result *res) {
    gen_choice *c = user;
    gen_job *job = c->job;
    dz_choice_on_done(user, res);
    job_unref(job); /* the engine's reference */
}

/* Asks the engine to stop every choice (no wait). */
static void job_cancel(gen_job *job) {
    pthread_mutex_lock(&job->mu);
    job->cancel_requested = true;
    for (int i = 0; i < job->n_choices; i++)
        if (job->choices[i].gen && !job->choices[i].done) dz_gen_cancel(job->choices[i].gen);
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
}

/* The drain's cancellation. */
static void job_cancel_active(dz_active *a) {
    gen_job *job = (gen_job *)(void *)a;
    pthread_mutex_lock(&job->mu);
    job->drained = true;
    pthread_mutex_unlock(&job->mu);
    job_cancel(job);
}

static void timed_wait(gen_job *job, int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    while (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&job->cv, &job->mu, &ts);
}

/* Waits (job->mu held) until every choice is done. */
static void wait_all_done(gen_job *job) {
    while (job->n_done < job->n_choices) timed_wait(job, WAIT_SLICE_MS);
}

/* Bills the job once every choice is done: one usage row with the tokens the
 * engine computed, status "ok", "cancelled" (client gone, drain, timeout) or
 * "error". A job the engine refused part of (503) or the drain cancelled
 * before any token of it was computed is not billed: its reservation is
 * released, no row written (job->unbilled). On a billing failure the
 * reservation is released and false returned. */
static bool job_settle(gen_job *job) {
    dz_server *s = job->srv;
    const char *status = "ok";
    job->prompt_tokens = job->cached_tokens = job->completion_tokens = 0;
    for (int i = 0; i < job->n_choices; i++) {
        const gen_choice *c = &job->choices[i];
        if (!c->gen) continue;
        job->prompt_tokens += c->res.prompt_tokens;
        job->cached_tokens += c->res.cached_tokens;
        job->completion_tokens += c->res.completion_tokens;
        if (c->res.finish == DZ_FINISH_ERROR) status = "error";
        else if (c->res.finish == DZ_FINISH_CANCELLED && strcmp(status, "error")) status = "cancelled";
        double ttft = c->res.t_first_token > 0 ? c->res.t_first_token - c->res.t_submit : -1;
        double tpot = c->res.completion_tokens > 1
                          ? (c->res.t_done - c->res.t_first_token) / (c->res.completion_tokens - 1)
                          : -1;
        dz_metrics_latency(s->metrics, ttft, tpot);
    }
    if (job->client_gone) status = "cancelled";
    pthread_mutex_lock(&job->mu);
    bool refused = job->drained || job->submit_failed;
    pthread_mutex_unlock(&job->mu);
    if (refused && job->prompt_tokens == 0 && job->cached_tokens == 0 && job->completion_tokens == 0) {
        dz_ledger_release(s->ledger, job->resv);
        job->resv = NULL;
        pthread_mutex_lock(&job->mu);
        job->settled = job->unbilled = true;
        pthread_mutex_unlock(&job->mu);
        dz_server_active_remove(s, &job->active);
        return true;
    }
    dz_usage_row row = {
        .request_id = job->id, .tenant = NULL, .key_id = 0, .model = s->model_name,
        .prompt_tokens = job->prompt_tokens, .cached_tokens = job->cached_tokens,
        .completion_tokens = job->completion_tokens, .status = status, .start_ms = job->start_ms,
        .end_ms = dz_wall_ms(),
    };
    if (row.end_ms < row.start_ms) row.end_ms = row.start_ms;
    bool ok = dz_ledger_settle(s->ledger, job->resv, &row) == DZ_OK;
    if (ok) {
        job->resv = NULL;
        dz_metrics_tokens(s->metrics, job->req->key.tenant, s->model_name, job->prompt_tokens, job->cached_tokens,
                          job->completion_tokens);
        job->req->prompt_tokens = job->prompt_tokens;
        job->req->completion_tokens = job->completion_tokens;
    } else {
        dz_log(DZ_LOG_ERROR, "serve: %s: billing failed: %s\n", job->id, dz_last_error());
        dz_ledger_release(s->ledger, job->resv);
        job->resv = NULL;
    }
    pthread_mutex_lock(&job->mu);
    job->settled = true;
    pthread_mutex_unlock(&job->mu);
    dz_server_active_remove(s, &job->active);
    return ok;
}

static bool any_finish(const gen_job *job, dz_finish f) {
    for (int i = 0; i < job->n_choices; i++)
        if (job->choices[i].gen && job->choices[i].res.finish == f) return true;
    return false;
}

/* ---- streaming ---- */

/* Bills the finished stream and queues its end: finish chunks, the usage
 * chunk, [DONE] (or an error event when billing or the engine failed). */
static void stream_finish(gen_job *job) {
    bool billed = job_settle(job);
    if (job->unbilled) {
        dz_job_push(job, dz_error_json(503, "server_shutting_down", NULL,
                                       "The server is shutting down; nothing was computed or billed"));
    } else if (!billed || any_finish(job, DZ_FINISH_ERROR)) {
        const char *msg = billed ? "The generation failed" : "The usage could not be recorded; nothing was billed";
        dz_job_push(job, dz_error_json(500, "internal_error", NULL, msg));
    } else {
        for (int i = 0; i < job->n_choices; i++) {
            gen_choice *c = &job->choices[i];
            dz_job_push(job, dz_choice_delta(c, "", 0, 0, 0, dz_choice_finish_reason(c), false));
        }
        if (job->oai->include_usage) {
            json_t *chunk = dz_job_chunk(job, json_array());
            if (chunk) json_object_set_new(chunk, "usage", dz_job_usage(job));
            dz_job_push(job, chunk);
        }
        dz_job_push_raw(job, "data: [DONE]\n\n", 14);
    }
    pthread_mutex_lock(&job->mu);
    job->ended = true;
    pthread_mutex_unlock(&job->mu);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    gen_job *job = cls;
    dz_server *s = job->srv;
    const double keepalive = s->cfg.idle_timeout_s / 2.0 < 15 ? s->cfg.idle_timeout_s / 2.0 : 15;
    pthread_mutex_lock(&job->mu);
    for (;;) {
        if (job->slow_client) { /* cut: free_cb cancels and bills */
            pthread_mutex_unlock(&job->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (job->q_off < job->q_len) {
            size_t n = job->q_len - job->q_off;
            if (n > max) n = max;
            memcpy(buf, job->q + job->q_off, n);
            job->q_off += n;
            if (job->q_off == job->q_len) job->q_off = job->q_len = 0;
            job->last_send = dz_time_now();
            pthread_mutex_unlock(&job->mu);
            return (ssize_t)n;
        }
        if (job->ended) {
            pthread_mutex_unlock(&job->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (job->n_done == job->n_choices && !job->settled) {
            pthread_mutex_unlock(&job->mu);
            stream_finish(job);
            pthread_mutex_lock(&job->mu);
            continue;
        }
        pthread_mutex_unlock(&job->mu);
        if (dz_req_client_gone(job->req)) return MHD_CONTENT_READER_END_WITH_ERROR; /* free_cb cancels */
        double now = dz_time_now();
        if (now > job->deadline && !job->timed_out) {
            job->timed_out = true;
            job_cancel(job);
        }
        pthread_mutex_lock(&job->mu);
        if (job->q_off == job->q_len && now - job->last_send > keepalive) {
            /* an SSE comment: keeps proxies and the idle timeout from closing a long wait */
            pthread_mutex_unlock(&job->mu);
            dz_job_push_raw(job, ": keep-alive\n\n", 14);
            pthread_mutex_lock(&job->mu);
            job->last_send = now;
            continue;
        }
        if (job->q_off == job->q_len && !job->ended && !(job->n_done == job->n_choices))
            timed_wait(job, WAIT_SLICE_MS);
    }
}

/* The response is gone (sent, or the client left): a stream cut short is
 * cancelled and billed as such. */
static void stream_free(void *cls) {
    gen_job *job = cls;
    pthread_mutex_lock(&job->mu);
    bool settled = job->settled;
    pthread_mutex_unlock(&job->mu);
    if (!settled) {
        pthread_mutex_lock(&job->mu);
        job->client_gone = true;
        pthread_mutex_unlock(&job->mu);
        job_cancel(job);
        pthread_mutex_lock(&job->mu);
        wait_all_done(job);
        pthread_mutex_unlock(&job->mu);
        job_settle(job);
    }
    job_unref(job);
}

/* ---- admission ---- */

/* Token ids of each prompt: the chat template's render, or the completion
 * prompts. 400 (queued) and false on a bad prompt. */
static bool job_tokenize(gen_job *job, enum MHD_Result *ret) {
    dz_server *s = job->srv;
    dz_req *r = job->req;
    dz_oai_request *o = job->oai;
    size_t n_prompts = job->chat ? 1 : o->n_prompts;
    job->prompts = calloc(n_prompts, sizeof *job->prompts);
    job->n_prompt = calloc(n_prompts, sizeof *job->n_prompt);
    if (!job->prompts || !job->n_prompt) return (*ret = MHD_NO), false;
    job->n_prompts = n_prompts;
    const char *param = job->chat ? "messages" : "prompt";
    for (size_t p = 0; p < n_prompts; p++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (job->chat) {
            dz_chat_message *msgs = calloc(o->n_messages, sizeof *msgs);
            if (!msgs) return (*ret = MHD_NO), false;
            for (size_t i = 0; i < o->n_messages; i++) {
                msgs[i].role = o->messages[i].role;
                msgs[i].content = o->messages[i].content;
            }
            dz_chat_render_opts ro = {.add_generation_prompt = true, .bos_token = s->bos_text,
                                      .eos_token = s->eos_text};
            char *text = NULL;
            size_t len = 0;
            dz_status st = dz_chat_template_render(s->tmpl, msgs, o->n_messages, &ro, &text, &len);
            free(msgs);
            if (st) {
                *ret = dz_respond_error(r, st == DZ_ERR_NOMEM ? 500 : 400, "invalid_request_error", "messages", 0,
                                        "The chat template refused the messages: %s", dz_last_error());
                return false;
            }
            size_t bl = strlen(s->bos_text);
            bool add_bos = s->add_bos && !(bl && len >= bl && !memcmp(text, s->bos_text, bl));
            st = dz_tokenize(s->tok, text, len, add_bos, true, &ids, &n);
            free(text);
            if (st) return (*ret = dz_respond_error(r, 400, "invalid_request_error", param, 0, "%s", dz_last_error())), false;
        } else if (o->prompts[p].tokens) {
            n = (size_t)o->prompts[p].n_tokens;
            if (!(ids = malloc(n * sizeof *ids))) return (*ret = MHD_NO), false;
            memcpy(ids, o->prompts[p].tokens, n * sizeof *ids);
        } else {
            dz_status st = dz_tokenize(s->tok, o->prompts[p].text, o->prompts[p].text_len, s->add_bos, true, &ids, &n);
            if (st) return (*ret = dz_respond_error(r, 400, "invalid_request_error", param, 0, "%s", dz_last_error())), false;
        }
        job->prompts[p] = ids;
        job->n_prompt[p] = n > INT32_MAX ? INT32_MAX : (int32_t)n;
        if (n == 0) return (*ret = dz_respond_error(r, 400, "invalid_request_error", param, 0, "The prompt is empty")), false;
        if (n > (size_t)s->n_ctx - 1)
            return (*ret = dz_respond_error(r, 400, "context_length_exceeded", param, 0,
                                            "The prompt is %zu tokens, longer than the context (%d tokens, one kept "
                                            "for the reply)", n, s->n_ctx)), false;
        if (o->max_tokens && (int64_t)n + o->max_tokens > s->n_ctx)
            return (*ret = dz_respond_error(r, 400, "context_length_exceeded", "max_tokens", 0,
                                            "max_tokens is too large: the prompt (%zu tokens) plus max_tokens (%d) is "
                                            "more than the context (%d tokens)", n, o->max_tokens, s->n_ctx)), false;
    }
    return true;
}

static int32_t max_tokens_of(const gen_job *job, int32_t p) {
    return job->oai->max_tokens ? job->oai->max_tokens : job->srv->n_ctx - job->n_prompt[p];
}

/* The response's logprob values, n x max_tokens x (1 + top_logprobs),
 * must stay within max_logprob_entries (memory and body size). 400 naming
 * the logprobs parameter otherwise. */
static bool check_logprobs_size(gen_job *job, enum MHD_Result *ret) {
    const dz_oai_request *o = job->oai;
    if (!o->logprobs) return true;
    int64_t entries = 0;
    for (int i = 0; i < job->n_choices; i++)
        entries += (int64_t)max_tokens_of(job, job->choices[i].prompt) * (1 + o->top_logprobs);
    int64_t cap = job->srv->cfg.max_logprob_entries;
    if (entries <= cap) return true;
    const char *param = job->chat && o->top_logprobs > 0 ? "top_logprobs" : "logprobs";
    *ret = dz_respond_error(job->req, 400, "invalid_request_error", param, 0,
                            "%s: the response could hold %lld logprob values (n x max_tokens x (1 + top_logprobs)%s), "
                            "more than this server's limit of %lld (max_logprob_entries); lower n, max_tokens or %s",
                            param, (long long)entries, o->max_tokens ? "" : ", max_tokens defaulting to the context",
                            (long long)cap, job->chat ? "top_logprobs" : "logprobs");
    return false;
}

/* Quota and rate limits: (prompt + max_tokens) per choice. */
static bool job_reserve(gen_job *job, enum MHD_Result *ret) {
    dz_req *r = job->req;
    int64_t tokens = 0;
    for (int i = 0; i < job->n_choices; i++) {
        int32_t p = job->choices[i].prompt;
        tokens += (int64_t)job->n_prompt[p] + max_tokens_of(job, p);
    }
    dz_admit d = DZ_ADMIT_OK;
    int64_t retry = 0;
    if (dz_ledger_reserve(job->srv->ledger, &r->key, tokens, &d, &retry, &job->resv)) {
        dz_log(DZ_LOG_ERROR, "serve: %s: reservation failed: %s\n", job->id, dz_last_error());
        *ret = dz_respond_error(r, 500, "internal_error", NULL, 0, "The usage ledger failed");
        return false;
    }
    switch (d) {
    case DZ_ADMIT_OK: return true;
    case DZ_ADMIT_RPM:
        *ret = dz_respond_error(r, 429, "rate_limit_exceeded", NULL, retry, "Rate limit reached: requests per minute");
        return false;
    case DZ_ADMIT_TPM:
        *ret = dz_respond_error(r, 429, "rate_limit_exceeded", NULL, retry, "Rate limit reached: tokens per minute");
        return false;
    case DZ_ADMIT_TOO_LARGE: /* waiting cannot help: a client error, not a rate limit */
        *ret = dz_respond_error(r, 400, "invalid_request_error", "max_tokens", 0,
                                "The request may use %lld tokens ((prompt + max_tokens) x n), more than this key's "
                                "tokens-per-minute limit admits; lower max_tokens or n",
                                (long long)tokens);
        return false;
    default:
        *ret = dz_respond_error(r, 429, "insufficient_quota", NULL, 0,
                                "You exceeded your token quota (this request may use %lld tokens)", (long long)tokens);
        return false;
    }
}

/* The sampler settings of choice i. */
static dz_sampler_params sampling_of(const gen_job *job, int i) {
    const dz_oai_request *o = job->oai;
    dz_sampler_params sp = dz_sampler_defaults();
    if (o->has_temperature) sp.temperature = (float)o->temperature;
    if (o->has_top_p) sp.top_p = (float)o->top_p;
    sp.presence_penalty = (float)o->presence_penalty;
    sp.frequency_penalty = (float)o->frequency_penalty;
    uint64_t seed;
    if (o->has_seed) seed = o->seed + (uint64_t)i;
    else {
        char hex[17];
        dz_random_hex(hex, 8);
        seed = strtoull(hex, NULL, 16);
    }
    sp.seed = seed;
    sp.logit_bias = o->logit_bias;
    sp.n_logit_bias = (int32_t)o->n_logit_bias;
    return sp;
}

/* Submits every choice. On failure the ones submitted are cancelled and
 * waited for, and an error is queued. */
static bool job_submit(gen_job *job, enum MHD_Result *ret) {
    dz_server *s = job->srv;
    const dz_oai_request *o = job->oai;
    for (int i = 0; i < job->n_choices; i++) {
        gen_choice *c = &job->choices[i];
        dz_gen_request gr = {
            .tenant = dz_tenant_group(job->req->key.tenant), .prompt = job->prompts[c->prompt],
            .n_prompt = job->n_prompt[c->prompt], .max_tokens = max_tokens_of(job, c->prompt),
            .sampling = sampling_of(job, i), .ignore_eos = o->ignore_eos, .logprobs = o->logprobs,
            .top_logprobs = o->top_logprobs, .on_token = dz_choice_on_token, .on_done = on_done, .user = c,
        };
        atomic_fetch_add(&job->refs, 1);
        dz_gen *g = NULL;
        dz_status st = dz_engine_submit(s->engine, &gr, &g);
        if (st) {
            atomic_fetch_sub(&job->refs, 1);
            char msg[320];
            snprintf(msg, sizeof msg, "%s", dz_last_error());
            pthread_mutex_lock(&job->mu);
            job->n_choices = i; /* the rest was never submitted */
            job->submit_failed = true;
            pthread_mutex_unlock(&job->mu);
            job_cancel(job);
            pthread_mutex_lock(&job->mu);
            wait_all_done(job);
            pthread_mutex_unlock(&job->mu);
            /* bills exactly what the choices already queued computed, or (nothing) releases */
            job_settle(job);
            if (st == DZ_ERR_BUSY)
                *ret = dz_respond_error(job->req, 503, "server_overloaded", NULL, 1, "The server is overloaded: %s", msg);
            else if (st == DZ_ERR_ARG) {
                const char *param = !strncmp(msg, "max_tokens", 10) ? "max_tokens"
                                    : job->chat                     ? "messages"
                                                                    : "prompt";
                *ret = dz_respond_error(job->req, 400, "invalid_request_error", param, 0, "%s", msg);
            } else {
                *ret = dz_respond_error(job->req, 500, "internal_error", NULL, 0, "The engine failed: %s", msg);
            }
            return false;
        }
        pthread_mutex_lock(&job->mu);
        c->gen = g;
        if (job->cancel_requested) dz_gen_cancel(g);
        pthread_mutex_unlock(&job->mu);
    }
    return true;
}

/* ---- the handlers ---- */

static enum MHD_Result respond_final(gen_job *job) {
    dz_req *r = job->req;
    bool billed = job_settle(job);
    if (job->client_gone) {
        r->status = 499; /* nobody to answer */
        return MHD_NO;
    }
    if (job->unbilled)
        return dz_respond_error(r, 503, "server_shutting_down", NULL, 5,
                                "The server is shutting down; nothing was computed or billed");
    if (!billed)
        return dz_respond_error(r, 500, "internal_error", NULL, 0, "The usage could not be recorded; nothing was billed");
    if (any_finish(job, DZ_FINISH_ERROR))
        return dz_respond_error(r, 500, "internal_error", NULL, 0, "The generation failed");
    size_t len = 0;
    char *body = dz_job_final_body(job, &len);
    if (!body) return MHD_NO;
    enum MHD_Result ret = dz_respond_text(r, 200, "application/json", body, len);
    free(body);
    return ret;
}

static enum MHD_Result handle_generation(dz_req *r, dz_oai_kind kind) {
    dz_server *s = r->srv;
    dz_req_new_id(r, kind == DZ_OAI_CHAT ? "chatcmpl" : "cmpl");
    dz_oai_limits lim = dz_server_limits(s);
    dz_oai_request *o = NULL;
    dz_oai_error err;
    if (dz_oai_parse(kind, r->body, r->body_len, &lim, &o, &err)) return dz_respond_oai_error(r, &err);
    if (!dz_req_model_ok(r, o->model)) {
        dz_oai_request_free(o);
        return MHD_YES;
    }
    if (!s->engine || atomic_load(&s->draining)) {
        dz_oai_request_free(o);
        return s->engine ? dz_respond_error(r, 503, "server_shutting_down", NULL, 5, "The server is shutting down")
                         : dz_respond_error(r, 503, "server_overloaded", NULL, 5, "No model is loaded");
    }
    gen_job *job = calloc(1, sizeof *job);
    if (!job) {
        dz_oai_request_free(o);
        return MHD_NO;
    }
    job->srv = s;
    job->req = r;
    r->conn_serial = dz_conns_serial(s, r->conn);
    atomic_fetch_add(&r->refs, 1);
    job->oai = o;
    job->chat = kind == DZ_OAI_CHAT;
    job->stream = o->stream;
    snprintf(job->id, sizeof job->id, "%s", r->id);
    job->created = dz_unix_now();
    job->start_ms = dz_wall_ms();
    job->deadline = dz_time_now() + s->cfg.request_timeout_s;
    job->last_send = dz_time_now();
    job->active.cancel = job_cancel_active;
    atomic_init(&job->refs, 1);
    pthread_mutex_init(&job->mu, NULL);
    pthread_cond_init(&job->cv, NULL);
    enum MHD_Result ret = MHD_NO;
    if (!job_tokenize(job, &ret)) goto out;
    size_t n_prompts = job->chat ? 1 : o->n_prompts;
    job->choices = calloc(n_prompts * (size_t)o->n, sizeof *job->choices);
    if (!job->choices) goto out;
    for (size_t p = 0; p < n_prompts; p++)
        for (int j = 0; j < o->n; j++) {
            int i = (int)(p * (size_t)o->n) + j;
            dz_status st = dz_choice_init(&job->choices[i], job, i, (int32_t)p);
            job->n_choices = job->n_init = i + 1;
            if (st) {
                ret = dz_respond_error(r, 500, "internal_error", NULL, 0, "%s", dz_last_error());
                goto out;
            }
        }
    if (!check_logprobs_size(job, &ret) || !job_reserve(job, &ret)) goto out;
    if (!dz_server_active_add(s, &job->active)) { /* the drain began meanwhile (job_free releases) */
        ret = dz_respond_error(r, 503, "server_shutting_down", NULL, 5, "The server is shutting down");
        goto out;
    }
    if (job->stream && job->chat)
        for (int i = 0; i < job->n_choices; i++)
            dz_job_push(job, dz_choice_delta(&job->choices[i], "", 0, 0, 0, NULL, true));
    if (!job_submit(job, &ret)) goto out;
    if (job->stream) return dz_respond_stream(r, stream_read, job, stream_free); /* the job's reference moves */
    /* not streamed: wait here, watching for a client that leaves */
    pthread_mutex_lock(&job->mu);
    while (job->n_done < job->n_choices) {
        timed_wait(job, WAIT_SLICE_MS);
        if (job->n_done == job->n_choices || job->client_gone) continue;
        pthread_mutex_unlock(&job->mu);
        bool gone = dz_req_client_gone(r);
        if (gone || (dz_time_now() > job->deadline && !job->timed_out)) {
            if (gone) job->client_gone = true;
            else job->timed_out = true;
            job_cancel(job);
        }
        pthread_mutex_lock(&job->mu);
    }
    pthread_mutex_unlock(&job->mu);
    ret = respond_final(job);
out:
    job_unref(job);
    return ret;
}

enum MHD_Result dz_handle_chat(dz_req *r) { return handle_generation(r, DZ_OAI_CHAT); }
enum MHD_Result dz_handle_completions(dz_req *r) { return handle_generation(r, DZ_OAI_COMPLETION); }
