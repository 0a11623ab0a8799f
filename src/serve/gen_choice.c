/* One choice of a generation request: tokens -> text on the engine thread
 * (incremental detokenization, stop strings with the partial matches held
 * back, logprobs), and the JSON a client sees of it (stream deltas and the
 * final choice object). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/gen_impl.h"

dz_status dz_choice_init(gen_choice *c, gen_job *job, int index, int32_t prompt) {
    memset(c, 0, sizeof *c);
    c->job = job;
    c->index = index;
    c->prompt = prompt;
    dz_status st = dz_detok_create(job->srv->tok, false, &c->detok);
    if (st) return st;
    if (job->oai->logprobs && !(c->lp = json_array())) return dz_fail(DZ_ERR_NOMEM, "out of memory");
    return DZ_OK;
}

void dz_choice_free(gen_choice *c) {
    dz_detok_free(c->detok);
    dz_gen_release(c->gen);
    free(c->text);
    json_decref(c->lp);
    free(c->lp_offset);
}

static bool append_text(gen_choice *c, const char *s, size_t n) {
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        while (cap < c->len + n + 1) cap *= 2;
        char *t = realloc(c->text, cap);
        if (!t) return false;
        c->text = t;
        c->cap = cap;
    }
    memcpy(c->text + c->len, s, n);
    c->len += n;
    c->text[c->len] = '\0';
    return true;
}

/* Looks for the stop strings in the text not yet shown. A full match sets
 * c->final_len to where it starts and returns true; otherwise *show_to is
 * where the shown text may end: before the earliest suffix that could still
 * grow into a stop string. */
static bool scan_stop(gen_choice *c, size_t *show_to) {
    const dz_oai_request *o = c->job->oai;
    size_t hold = c->len;
    for (size_t p = c->emitted; p < c->len; p++) {
        size_t avail = c->len - p;
        for (size_t k = 0; k < o->n_stop; k++) {
            size_t sl = strlen(o->stop[k]);
            if (avail >= sl) {
                if (!memcmp(c->text + p, o->stop[k], sl)) {
                    c->final_len = p;
                    c->stop_matched = true;
                    *show_to = p;
                    return true;
                }
            } else if (p < hold && !memcmp(c->text + p, o->stop[k], avail)) {
                hold = p;
            }
        }
    }
    *show_to = hold;
    return false;
}

static double finite_lp(float v) { return isfinite(v) ? (double)v : -9999.0; }

/* {"token","logprob","bytes"} of a token. */
static json_t *lp_token(const dz_tokenizer *tok, int32_t id, float logprob) {
    char piece[256];
    size_t n = 0;
    if (dz_token_to_piece(tok, id, false, piece, sizeof piece, &n) || n > sizeof piece) n = 0;
    json_t *bytes = json_array();
    for (size_t i = 0; bytes && i < n; i++) json_array_append_new(bytes, json_integer((unsigned char)piece[i]));
    return json_pack("{s:o,s:f,s:o}", "token", dz_json_text(piece, n), "logprob", finite_lp(logprob), "bytes",
                     bytes ? bytes : json_null());
}

static void record_logprobs(gen_choice *c, const dz_gen_token *t, size_t offset) {
    const dz_tokenizer *tok = c->job->srv->tok;
    json_t *e = lp_token(tok, t->token, t->logprob);
    json_t *top = json_array();
    for (int32_t i = 0; e && top && i < t->n_top; i++)
        json_array_append_new(top, lp_token(tok, t->top_ids[i], t->top_logprobs[i]));
    if (!e || !top) {
        json_decref(e);
        json_decref(top);
        return;
    }
    json_object_set_new(e, "top_logprobs", top);
    size_t n = json_array_size(c->lp);
    if (n + 1 > c->lp_cap) {
        size_t cap = c->lp_cap ? c->lp_cap * 2 : 64;
        size_t *o = realloc(c->lp_offset, cap * sizeof *o);
        if (!o) {
            json_decref(e);
            return;
        }
        c->lp_offset = o;
        c->lp_cap = cap;
    }
    c->lp_offset[n] = offset;
    json_array_append_new(c->lp, e);
}

/* The logprobs object of entries [from, to): chat {"content":[...]}, or
 * completions' {"tokens","token_logprobs","top_logprobs","text_offset"}. */
static json_t *lp_render(gen_choice *c, size_t from, size_t to) {
    if (!c->lp) return json_null();
    if (c->job->chat) {
        json_t *content = json_array();
        for (size_t i = from; content && i < to; i++) json_array_append(content, json_array_get(c->lp, i));
        return content ? json_pack("{s:o}", "content", content) : json_null();
    }
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    for (size_t i = from; tokens && lps && tops && offs && i < to; i++) {
        json_t *e = json_array_get(c->lp, i), *top = json_object(), *alt;
        size_t j;
        json_array_append(tokens, json_object_get(e, "token"));
        json_array_append(lps, json_object_get(e, "logprob"));
        json_array_foreach(json_object_get(e, "top_logprobs"), j, alt)
            if (top) json_object_set(top, json_string_value(json_object_get(alt, "token")), json_object_get(alt, "logprob"));
        json_array_append_new(tops, top ? top : json_null());
        json_array_append_new(offs, json_integer((json_int_t)c->lp_offset[i]));
    }
    json_t *o = json_pack("{s:o*,s:o*,s:o*,s:o*}", "tokens", tokens, "token_logprobs", lps, "top_logprobs", tops,
                          "text_offset", offs);
    return o ? o : json_null();
}

json_t *dz_job_chunk(gen_job *job, json_t *choices) {
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:o}", "id", job->id, "object",
                          job->chat ? "chat.completion.chunk" : "text_completion", "created", (json_int_t)job->created,
                          "model", job->srv->model_name, "choices", choices);
    if (o && job->oai->include_usage) json_object_set_new(o, "usage", json_null());
    return o;
}

json_t *dz_choice_delta(gen_choice *c, const char *text, size_t len, size_t lp_from, size_t lp_to,
                        const char *finish, bool role) {
    json_t *lp = c->lp && lp_to > lp_from ? lp_render(c, lp_from, lp_to) : json_null();
    json_t *fin = finish ? json_string(finish) : json_null();
    json_t *ch;
    if (c->job->chat) {
        json_t *delta = json_object();
        if (delta && role) json_object_set_new(delta, "role", json_string("assistant"));
        if (delta && (len || role)) json_object_set_new(delta, "content", dz_json_text(text, len));
        ch = json_pack("{s:i,s:o*,s:o,s:o}", "index", c->index, "delta", delta, "logprobs", lp, "finish_reason", fin);
    } else {
        ch = json_pack("{s:i,s:o,s:o,s:o}", "index", c->index, "text", dz_json_text(text, len), "logprobs", lp,
                       "finish_reason", fin);
    }
    json_t *choices = ch ? json_pack("[o]", ch) : NULL;
    return choices ? dz_job_chunk(c->job, choices) : NULL;
}

const char *dz_choice_finish_reason(const gen_choice *c) {
    return c->res.finish == DZ_FINISH_STOP || c->stop_matched ? "stop" : "length";
}

json_t *dz_choice_final(gen_choice *c) {
    json_t *text = dz_json_text(c->text, c->final_len);
    json_t *lp = lp_render(c, 0, c->lp ? json_array_size(c->lp) : 0);
    const char *fin = dz_choice_finish_reason(c);
    if (c->job->chat)
        return json_pack("{s:i,s:{s:s,s:o},s:o,s:s}", "index", c->index, "message", "role", "assistant", "content",
                         text, "logprobs", lp, "finish_reason", fin);
    return json_pack("{s:o,s:i,s:o,s:s}", "text", text, "index", c->index, "logprobs", lp, "finish_reason", fin);
}

json_t *dz_job_usage(gen_job *job) {
    return json_pack("{s:I,s:I,s:I,s:{s:I}}", "prompt_tokens", (json_int_t)job->prompt_tokens, "completion_tokens",
                     (json_int_t)job->completion_tokens, "total_tokens",
                     (json_int_t)(job->prompt_tokens + job->completion_tokens), "prompt_tokens_details",
                     "cached_tokens", (json_int_t)job->cached_tokens);
}

/* ---- the stream queue ---- */

static void queue_append(gen_job *job, const char *a, size_t an, const char *b, size_t bn, const char *c, size_t cn) {
    size_t need = job->q_len + an + bn + cn;
    if (need > job->q_cap) {
        size_t cap = job->q_cap ? job->q_cap * 2 : 4096;
        while (cap < need) cap *= 2;
        char *q = realloc(job->q, cap);
        if (!q) return; /* the event is lost; the stream stays well-formed */
        job->q = q;
        job->q_cap = cap;
    }
    memcpy(job->q + job->q_len, a, an);
    memcpy(job->q + job->q_len + an, b, bn);
    memcpy(job->q + job->q_len + an + bn, c, cn);
    job->q_len = need;
}

void dz_job_push(gen_job *job, json_t *event) {
    char *text = event ? json_dumps(event, JSON_COMPACT) : NULL;
    json_decref(event);
    if (!text) return;
    pthread_mutex_lock(&job->mu);
    queue_append(job, "data: ", 6, text, strlen(text), "\n\n", 2);
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
    free(text);
}

void dz_job_push_raw(gen_job *job, const char *bytes, size_t n) {
    pthread_mutex_lock(&job->mu);
    queue_append(job, bytes, n, "", 0, "", 0);
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
}

/* ---- engine callbacks ---- */

/* Streams text[emitted..to) with the logprob entries not yet sent. */
static void stream_text(gen_choice *c, size_t to, bool all_lp) {
    size_t n_lp = c->lp ? json_array_size(c->lp) : 0;
    /* logprob entries go out with the text of their tokens: those whose text starts before `to` */
    size_t lp_to = c->lp_sent;
    while (lp_to < n_lp && (all_lp || c->lp_offset[lp_to] < to)) lp_to++;
    if (to <= c->emitted && lp_to == c->lp_sent) return;
    size_t from = c->emitted > to ? to : c->emitted;
    dz_job_push(c->job, dz_choice_delta(c, c->text + from, to - from, c->lp_sent, lp_to, NULL, false));
    c->lp_sent = lp_to;
    if (to > c->emitted) c->emitted = to;
}

bool dz_choice_on_token(void *user, const dz_gen_token *tok) {
    gen_choice *c = user;
    gen_job *job = c->job;
    const char *piece = NULL;
    size_t n = 0;
    size_t offset = c->len;
    if (dz_detok_push(c->detok, tok->token, &piece, &n) == DZ_OK && n) append_text(c, piece, n);
    if (c->lp) record_logprobs(c, tok, offset);
    size_t show_to = c->len;
    bool stop = job->oai->n_stop && scan_stop(c, &show_to);
    if (job->stream && !stop) stream_text(c, show_to, false);
    return stop;
}

void dz_choice_on_done(void *user, const dz_gen_result *res) {
    gen_choice *c = user;
    gen_job *job = c->job;
    if (!c->stop_matched) {
        const char *rest = NULL;
        size_t n = 0;
        if (dz_detok_flush(c->detok, &rest, &n) == DZ_OK && n) append_text(c, rest, n);
        c->final_len = c->len;
    }
    /* whatever was held back for a stop string that never came, and the last logprobs */
    if (job->stream && res->finish != DZ_FINISH_ERROR) stream_text(c, c->final_len, true);
    pthread_mutex_lock(&job->mu);
    c->res = *res;
    c->done = true;
    job->n_done++;
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
}
