/* The server's lifetime: model, engine, ledger and chat template up; the
 * daemon listening; on SIGTERM a drain (new requests 503, running ones
 * finish or are cancelled) and an orderly stop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dizuo/gguf.h"
#include "dizuo/lora.h"
#include "serve/serve_impl.h"

bool dz_server_active_add(dz_server *s, dz_active *a) {
    pthread_mutex_lock(&s->mu);
    if (atomic_load(&s->draining)) {
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    a->next = &s->active;
    a->prev = s->active.prev;
    s->active.prev->next = a;
    s->active.prev = a;
    pthread_mutex_unlock(&s->mu);
    return true;
}

void dz_server_active_remove(dz_server *s, dz_active *a) {
    pthread_mutex_lock(&s->mu);
    if (a->next) {
        a->prev->next = a->next;
        a->next->prev = a->prev;
        a->prev = a->next = NULL;
    }
    if (s->active.next == &s->active) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

dz_oai_limits dz_server_limits(const dz_server *s) {
    dz_oai_limits l = {
        .n_vocab = s->n_vocab, .max_n = s->cfg.max_n, .max_stop = s->cfg.max_stop,
        .max_stop_bytes = s->cfg.max_stop_bytes, .max_prompts = s->cfg.max_prompts,
    };
    return l;
}

const char *dz_server_model_name(const dz_server *s) { return s->model_name; }
struct dz_ledger *dz_server_ledger(dz_server *s) { return s->ledger; }

/* The served id: the file name without directory and ".gguf", made a valid
 * ledger model name (printable ASCII, no spaces, no ".."). */
static void default_model_name(const char *path, char *out, size_t cap) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".gguf")) n -= 5;
    if (n >= cap) n = cap - 1;
    for (size_t i = 0; i < n; i++) {
        char c = base[i];
        out[i] = (c > ' ' && c < 127) ? c : '_';
        if (c == '.' && i > 0 && out[i - 1] == '.') out[i] = '_';
    }
    out[n] = '\0';
    if (!out[0]) snprintf(out, cap, "model");
}

static bool model_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > DZ_MODEL_NAME_MAX || strstr(s, "..") || strchr(s, '/') ) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] >= 127 || s[i] == ',') return false;
    return true;
}

static dz_status load_model(dz_server *s) {
    const dz_serve_config *c = &s->cfg;
    dz_model_options mo = {.device = c->device, .n_threads = c->threads};
    dz_status st = dz_model_load(c->model, &mo, &s->model);
    if (st) return st;
    if (c->lora && (st = dz_model_apply_lora(s->model, c->lora, (float)c->lora_scale))) return st;
    s->tok = dz_model_tokenizer(s->model);
    const dz_model_hparams *hp = dz_model_hparams_get(s->model);
    s->n_vocab = hp->n_vocab;
    s->n_embd = hp->n_embd;
    s->add_bos = dz_tokenizer_add_bos_default(s->tok);
    size_t len = 0;
    const char *text;
    int32_t bos = dz_tokenizer_bos(s->tok), eos = dz_tokenizer_eos(s->tok);
    if (bos >= 0 && (text = dz_tokenizer_token_text(s->tok, bos, &len)) && len < sizeof s->bos_text)
        memcpy(s->bos_text, text, len), s->bos_text[len] = '\0';
    if (eos >= 0 && (text = dz_tokenizer_token_text(s->tok, eos, &len)) && len < sizeof s->eos_text)
        memcpy(s->eos_text, text, len), s->eos_text[len] = '\0';
    /* the chat template: the model's, else the built-in one asked for */
    const char *tmpl = NULL;
    size_t tlen = 0;
    bool found = false;
    if ((st = dz_gguf_get_str(dz_model_gguf(s->model), "tokenizer.chat_template", &tmpl, &tlen, &found)))
        return st;
    char *copy = NULL;
    if (found && tlen) {
        if (!(copy = malloc(tlen + 1))) return dz_fail(DZ_ERR_NOMEM, "out of memory for the chat template");
        memcpy(copy, tmpl, tlen);
        copy[tlen] = '\0';
    }
    st = dz_chat_template_for_model(copy, c->chat_template, &s->tmpl);
    free(copy);
    if (st) return st;
    dz_engine_config ec = {.n_ctx = c->ctx, .kv_blocks = c->kv_blocks, .max_running = c->parallel,
                           .max_waiting = c->max_waiting};
    if ((st = dz_engine_create(s->model, &ec, &s->engine))) return st;
    s->n_ctx = dz_engine_config_get(s->engine)->n_ctx;
    return DZ_OK;
}

dz_status dz_server_create(const dz_serve_config *c, dz_server **out) {
    dz_status st = dz_serve_config_check(c);
    if (st) return st;
    dz_server *s = calloc(1, sizeof *s);
    if (!s) return dz_fail(DZ_ERR_NOMEM, "out of memory for the server");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->idle, NULL);
    s->active.next = s->active.prev = &s->active;
    atomic_init(&s->draining, false);
    atomic_init(&s->live_reqs, 0);
    s->created_s = dz_unix_now();
    if ((st = dz_serve_config_copy(&s->cfg, c))) goto fail;
    if (c->model_name) {
        if (!model_name_ok(c->model_name)) {
            st = dz_fail(DZ_ERR_ARG, "model_name: '%s' must be 1..%d printable characters without spaces, ',', '/' "
                         "or '..'", c->model_name, DZ_MODEL_NAME_MAX);
            goto fail;
        }
        snprintf(s->model_name, sizeof s->model_name, "%s", c->model_name);
    } else if (c->model) {
        default_model_name(c->model, s->model_name, sizeof s->model_name);
    }
    if ((st = dz_metrics_create(&s->metrics)) || (st = dz_accesslog_open(c->access_log, &s->alog))) goto fail;
    if ((st = dz_ledger_open(c->db, DZ_LEDGER_CREATE, &s->ledger))) goto fail;
    if (c->model && (st = load_model(s))) goto fail;
    *out = s;
    return DZ_OK;
fail:
    dz_server_destroy(s);
    return st;
}

/* Waits until no request holds engine work, or until deadline (dz_time_now). */
static bool wait_idle(dz_server *s, double deadline) {
    pthread_mutex_lock(&s->mu);
    while (s->active.next != &s->active && dz_time_now() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->idle, &s->mu, &ts);
    }
    bool idle = s->active.next == &s->active;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

void dz_server_drain(dz_server *s) {
    if (!s || s->stopped) return;
    /* under s->mu: from here on dz_server_active_add refuses, so the cancel
     * below reaches every request that holds engine work */
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->draining, true);
    pthread_mutex_unlock(&s->mu);
    if (s->mhd) {
        if (!wait_idle(s, dz_time_now() + s->cfg.drain_timeout_s)) {
            dz_log(DZ_LOG_WARN, "serve: drain timeout (%d s): cancelling the running requests\n",
                   s->cfg.drain_timeout_s);
            dz_engine_hold(s->engine, true); /* a cancelled request's slot goes to no waiting one */
            pthread_mutex_lock(&s->mu);
            for (dz_active *a = s->active.next; a != &s->active; a = a->next) a->cancel(a);
            pthread_mutex_unlock(&s->mu);
            if (!wait_idle(s, dz_time_now() + 30))
                dz_log(DZ_LOG_ERROR, "serve: requests still running after their cancellation\n");
        }
        /* let the last responses (final chunks, [DONE]) reach their clients */
        double until = dz_time_now() + 5;
        while (atomic_load(&s->live_reqs) > 0 && dz_time_now() < until) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        dz_http_stop(s); /* joins the connection threads */
    }
    s->stopped = true;
}

void dz_server_destroy(dz_server *s) {
    if (!s) return;
    dz_server_drain(s);
    dz_http_stop(s);
    dz_engine_destroy(s->engine); /* cancels whatever is left; on_done runs here */
    dz_chat_template_destroy(s->tmpl);
    dz_model_free(s->model);
    dz_ledger_close(s->ledger);
    dz_metrics_destroy(s->metrics);
    dz_accesslog_close(s->alog);
    dz_serve_config_clear(&s->cfg);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
