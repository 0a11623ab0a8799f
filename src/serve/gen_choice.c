/* One choice of a generation request: tokens -> text on the engine thread
 * (incremental detokenization, stop strings with the partial matches held
 * back, logprobs), and the JSON a client sees of it (stream deltas and the
 * final choice object). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/gen_impl.h"

dz_status dz_choice_init(gen_choice *c, gen_job *job, int index, int32_t prompt) {
    memset(c, 0, sizeof *c);
    c->job = job;
    c->index = index;
    c->prompt = prompt;
    c->want_lp = job->oai->logprobs;
    return dz_detok_create(job->srv->tok, false, &c->detok);
}

void dz_choice_free(gen_choice *c) {
    dz_detok_free(c->detok);
    dz_gen_release(c->gen);
    free(c->text);
    free(c->lp);
    free(c->alt);
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

/* Keeps a token's logprobs: 8 bytes per value (the request's size was
 * bounded by max_logprob_entries at admission). */
static void record_logprobs(gen_choice *c, const dz_gen_token *t, size_t offset) {
    int32_t n_top = t->n_top < 0 ? 0 : t->n_top > DZ_TOP_LOGPROBS_MAX ? DZ_TOP_LOGPROBS_MAX : t->n_top;
    if (c->n_lp + 1 > c->lp_cap) {
        size_t cap = c->lp_cap ? c->lp_cap * 2 : 64;
        gen_lp *lp = realloc(c->lp, cap * sizeof *lp);
        if (!lp) return;
        c->lp = lp;
        c->lp_cap = cap;
    }
    if (c->n_alt + (size_t)n_top > c->alt_cap) {
        size_t cap = c->alt_cap ? c->alt_cap * 2 : 256;
        while (cap < c->n_alt + (size_t)n_top) cap *= 2;
        gen_alt *alt = realloc(c->alt, cap * sizeof *alt);
        if (!alt) return;
        c->alt = alt;
        c->alt_cap = cap;
    }
    c->lp[c->n_lp] = (gen_lp){.token = t->token, .logprob = t->logprob, .offset = offset, .top = c->n_alt,
                              .n_top = n_top};
    for (int32_t i = 0; i < n_top; i++) c->alt[c->n_alt + (size_t)i] = (gen_alt){t->top_ids[i], t->top_logprobs[i]};
    c->n_alt += (size_t)n_top;
    c->n_lp++;
}

/* ---- JSON text written directly (the logprobs can be large) ---- */

typedef struct tbuf {
    char *p;
    size_t n, cap;
    bool oom;
} tbuf;

static void tb_add(tbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void tb_str(tbuf *b, const char *s) { tb_add(b, s, strlen(s)); }

static void tb_fmt(tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_fmt(tbuf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) tb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON value's compact text (v stolen). */
static void tb_json(tbuf *b, json_t *v) {
    char *t = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    if (!t) {
        b->oom = true;
        return;
    }
    tb_str(b, t);
    free(t);
}

/* A logprob as a JSON real (-9999.0 for -inf / NaN); float precision. */
static void tb_lp(tbuf *b, float v) {
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.9g", isfinite(v) ? (double)v : -9999.0);
    if (!strpbrk(tmp, ".eE")) strcat(tmp, ".0");
    tb_str(b, tmp);
}

/* A token's text; *n 0 when it has none. */
static void piece_of(const dz_tokenizer *tok, int32_t id, char piece[256], size_t *n) {
    *n = 0;
    if (dz_token_to_piece(tok, id, false, piece, 256, n) || *n > 256) *n = 0;
}

/* Chat: {"token","logprob","bytes"[,"top_logprobs"]}. */
static void tb_chat_token(tbuf *b, const dz_tokenizer *tok, int32_t id, float lp) {
    char piece[256];
    size_t n;
    piece_of(tok, id, piece, &n);
    tb_str(b, "{\"token\":");
    tb_json(b, dz_json_text(piece, n));
    tb_str(b, ",\"logprob\":");
    tb_lp(b, lp);
    tb_str(b, ",\"bytes\":[");
    for (size_t i = 0; i < n; i++) tb_fmt(b, i ? ",%u" : "%u", (unsigned)(unsigned char)piece[i]);
    tb_str(b, "]");
}

/* The logprobs object of entries [from, to): chat {"content":[...]}, or
 * completions' {"tokens","token_logprobs","top_logprobs","text_offset"}. */
static void tb_logprobs(tbuf *b, const gen_choice *c, size_t from, size_t to) {
    const dz_tokenizer *tok = c->job->srv->tok;
    if (c->job->chat) {
        tb_str(b, "{\"content\":[");
        for (size_t i = from; i < to; i++) {
            const gen_lp *e = &c->lp[i];
            if (i > from) tb_str(b, ",");
            tb_chat_token(b, tok, e->token, e->logprob);
            tb_str(b, ",\"top_logprobs\":[");
            for (int32_t j = 0; j < e->n_top; j++) {
                if (j) tb_str(b, ",");
                tb_chat_token(b, tok, c->alt[e->top + (size_t)j].token, c->alt[e->top + (size_t)j].logprob);
                tb_str(b, "}");
            }
            tb_str(b, "]}");
        }
        tb_str(b, "]}");
        return;
    }
    char piece[256];
    size_t n;
    tb_str(b, "{\"tokens\":[");
    for (size_t i = from; i < to; i++) {
        piece_of(tok, c->lp[i].token, piece, &n);
        if (i > from) tb_str(b, ",");
        tb_json(b, dz_json_text(piece, n));
    }
    tb_str(b, "],\"token_logprobs\":[");
    for (size_t i = from; i < to; i++) {
        if (i > from) tb_str(b, ",");
        tb_lp(b, c->lp[i].logprob);
    }
    tb_str(b, "],\"top_logprobs\":[");
    for (size_t i = from; i < to; i++) {
        const gen_lp *e = &c->lp[i];
        /* an object keyed by token text: the first (most likely) of equal texts wins */
        char seen[DZ_TOP_LOGPROBS_MAX][256];
        size_t seen_n[DZ_TOP_LOGPROBS_MAX];
        int32_t n_seen = 0;
        tb_str(b, i > from ? ",{" : "{");
        for (int32_t j = 0; j < e->n_top; j++) {
            const gen_alt *a = &c->alt[e->top + (size_t)j];
            piece_of(tok, a->token, seen[n_seen], &seen_n[n_seen]);
            bool dup = false;
            for (int32_t k = 0; k < n_seen && !dup; k++)
                dup = seen_n[k] == seen_n[n_seen] && !memcmp(seen[k], seen[n_seen], seen_n[k]);
            if (dup) continue;
            if (n_seen) tb_str(b, ",");
            json_t *key = dz_json_text(seen[n_seen], seen_n[n_seen]);
            n_seen++;
            tb_json(b, key);
            tb_str(b, ":");
            tb_lp(b, a->logprob);
        }
        tb_str(b, "}");
    }
    tb_str(b, "],\"text_offset\":[");
    for (size_t i = from; i < to; i++) tb_fmt(b, i > from ? ",%zu" : "%zu", c->lp[i].offset);
    tb_str(b, "]}");
}

/* The logprobs of entries [from, to) as a JSON value (stream deltas: a few entries). */
static json_t *lp_value(const gen_choice *c, size_t from, size_t to) {
    tbuf b = {0};
    tb_logprobs(&b, c, from, to);
    json_t *v = b.oom ? NULL : json_loadb(b.p, b.n, 0, NULL);
    free(b.p);
    return v ? v : json_null();
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
    json_t *lp = c->want_lp && lp_to > lp_from ? lp_value(c, lp_from, lp_to) : json_null();
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

/* The non-streamed choice object. */
static void tb_choice_final(tbuf *b, gen_choice *c) {
    const char *fin = dz_choice_finish_reason(c);
    if (c->job->chat) {
        tb_fmt(b, "{\"index\":%d,\"message\":{\"role\":\"assistant\",\"content\":", c->index);
        tb_json(b, dz_json_text(c->text, c->final_len));
        tb_str(b, "},\"logprobs\":");
    } else {
        tb_str(b, "{\"text\":");
        tb_json(b, dz_json_text(c->text, c->final_len));
        tb_fmt(b, ",\"index\":%d,\"logprobs\":", c->index);
    }
    if (c->want_lp) tb_logprobs(b, c, 0, c->n_lp);
    else tb_str(b, "null");
    tb_fmt(b, ",\"finish_reason\":\"%s\"}", fin);
}

char *dz_job_final_body(gen_job *job, size_t *len) {
    tbuf b = {0};
    tb_str(&b, "{\"id\":");
    tb_json(&b, json_string(job->id));
    tb_fmt(&b, ",\"object\":\"%s\",\"created\":%lld,\"model\":", job->chat ? "chat.completion" : "text_completion",
           (long long)job->created);
    tb_json(&b, json_string(job->srv->model_name));
    tb_str(&b, ",\"choices\":[");
    for (int i = 0; i < job->n_choices; i++) {
        if (i) tb_str(&b, ",");
        tb_choice_final(&b, &job->choices[i]);
    }
    tb_str(&b, "],\"usage\":");
    tb_json(&b, dz_job_usage(job));
    tb_str(&b, "}");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.n;
    return b.p;
}

json_t *dz_job_usage(gen_job *job) {
    return json_pack("{s:I,s:I,s:I,s:{s:I}}", "prompt_tokens", (json_int_t)job->prompt_tokens, "completion_tokens",
                     (json_int_t)job->completion_tokens, "total_tokens",
                     (json_int_t)(job->prompt_tokens + job->completion_tokens), "prompt_tokens_details",
                     "cached_tokens", (json_int_t)job->cached_tokens);
}

/* ---- the stream queue ---- */

/* Appends a, b, c to the queue (job->mu held). False when the unsent bytes
 * would pass max_queued_bytes while the generation runs (the client reads
 * too slowly: nothing is appended) or when out of memory (the event is
 * lost; the stream stays well-formed). */
static bool queue_append(gen_job *job, const char *a, size_t an, const char *b, size_t bn, const char *c, size_t cn) {
    size_t add = an + bn + cn, pending = job->q_len - job->q_off;
    if (!job->settled && pending + add > (size_t)job->srv->cfg.max_queued_bytes) return false;
    if (job->q_off && job->q_len + add > job->q_cap) { /* reuse what the reader already took */
        memmove(job->q, job->q + job->q_off, pending);
        job->q_off = 0;
        job->q_len = pending;
    }
    size_t need = job->q_len + add;
    if (need > job->q_cap) {
        size_t cap = job->q_cap ? job->q_cap * 2 : 4096;
        while (cap < need) cap *= 2;
        char *q = realloc(job->q, cap);
        if (!q) return true;
        job->q = q;
        job->q_cap = cap;
    }
    memcpy(job->q + job->q_len, a, an);
    memcpy(job->q + job->q_len + an, b, bn);
    memcpy(job->q + job->q_len + an + bn, c, cn);
    job->q_len = need;
    return true;
}

/* The queue overflowed (job->mu held): the client is slow. Cancels every
 * choice; returns whether this call found it (the caller cuts the
 * connection, outside the lock). */
static bool mark_slow(gen_job *job) {
    if (job->slow_client) return false;
    job->slow_client = true;
    job->cancel_requested = true;
    for (int i = 0; i < job->n_choices; i++)
        if (job->choices[i].gen && !job->choices[i].done) dz_gen_cancel(job->choices[i].gen);
    return true;
}

static void push(gen_job *job, const char *a, size_t an, const char *b, size_t bn, const char *c, size_t cn) {
    pthread_mutex_lock(&job->mu);
    bool cut = !job->slow_client && !queue_append(job, a, an, b, bn, c, cn) && mark_slow(job);
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
    if (cut) {
        dz_log(DZ_LOG_WARN, "serve: %s: the client reads too slowly (over %lld queued bytes): cancelled\n", job->id,
               (long long)job->srv->cfg.max_queued_bytes);
        dz_conns_cut(job->srv, job->req->conn_serial);
    }
}

void dz_job_push(gen_job *job, json_t *event) {
    /* reals are float logprobs: 9 digits round-trip them */
    char *text = event ? json_dumps(event, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(event);
    if (!text) return;
    push(job, "data: ", 6, text, strlen(text), "\n\n", 2);
    free(text);
}

void dz_job_push_raw(gen_job *job, const char *bytes, size_t n) { push(job, bytes, n, "", 0, "", 0); }

/* ---- engine callbacks ---- */

/* Streams text[emitted..to) with the logprob entries not yet sent. */
static void stream_text(gen_choice *c, size_t to, bool all_lp) {
    size_t n_lp = c->n_lp;
    /* logprob entries go out with the text of their tokens: those whose text starts before `to` */
    size_t lp_to = c->lp_sent;
    while (lp_to < n_lp && (all_lp || c->lp[lp_to].offset < to)) lp_to++;
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
    if (c->want_lp) record_logprobs(c, tok, offset);
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
