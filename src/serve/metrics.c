/* Prometheus metrics of dizuo serve: counters by label set, three latency
 * histograms, and the engine's gauges read at scrape time. One mutex. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve_impl.h"

static const double ttft_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const double tpot_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
static const double dur_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
enum { MAX_BUCKETS = 16 };

typedef struct histogram {
    const double *le;
    int n;
    uint64_t counts[MAX_BUCKETS]; /* per bucket, not cumulative */
    uint64_t count;
    double sum;
} histogram;

typedef struct req_count {
    const char *route; /* static label */
    int status;
    uint64_t n;
} req_count;

typedef struct tok_count {
    char tenant[DZ_TENANT_NAME_MAX + 1], model[DZ_MODEL_NAME_MAX + 1];
    uint64_t prompt, cached, completion;
} tok_count;

struct dz_metrics {
    pthread_mutex_t mu;
    req_count *reqs;
    size_t n_reqs, cap_reqs;
    tok_count *toks;
    size_t n_toks, cap_toks;
    histogram ttft, tpot, dur;
};

static void hist_init(histogram *h, const double *le, int n) {
    memset(h, 0, sizeof *h);
    h->le = le;
    h->n = n;
}

static void hist_add(histogram *h, double v) {
    int i = 0;
    while (i < h->n && v > h->le[i]) i++;
    if (i < h->n) h->counts[i]++;
    h->count++;
    h->sum += v;
}

dz_status dz_metrics_create(dz_metrics **out) {
    dz_metrics *m = calloc(1, sizeof *m);
    if (!m) return dz_fail(DZ_ERR_NOMEM, "out of memory for the metrics");
    pthread_mutex_init(&m->mu, NULL);
    hist_init(&m->ttft, ttft_buckets, sizeof ttft_buckets / sizeof *ttft_buckets);
    hist_init(&m->tpot, tpot_buckets, sizeof tpot_buckets / sizeof *tpot_buckets);
    hist_init(&m->dur, dur_buckets, sizeof dur_buckets / sizeof *dur_buckets);
    *out = m;
    return DZ_OK;
}

void dz_metrics_destroy(dz_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m->reqs);
    free(m->toks);
    free(m);
}

/* Grows *arr to hold one more element of size sz; false when out of memory. */
static bool grow(void **arr, size_t *cap, size_t n, size_t sz) {
    if (n < *cap) return true;
    size_t c = *cap ? *cap * 2 : 16;
    void *a = realloc(*arr, c * sz);
    if (!a) return false;
    *arr = a;
    *cap = c;
    return true;
}

void dz_metrics_request(dz_metrics *m, const char *route, int status, double duration_s) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    size_t i = 0;
    while (i < m->n_reqs && !(m->reqs[i].status == status && !strcmp(m->reqs[i].route, route))) i++;
    if (i == m->n_reqs && grow((void **)&m->reqs, &m->cap_reqs, m->n_reqs, sizeof *m->reqs))
        m->reqs[m->n_reqs++] = (req_count){route, status, 0};
    if (i < m->n_reqs) m->reqs[i].n++;
    hist_add(&m->dur, duration_s);
    pthread_mutex_unlock(&m->mu);
}

void dz_metrics_tokens(dz_metrics *m, const char *tenant, const char *model, int64_t prompt, int64_t cached,
                       int64_t completion) {
    if (!m || !tenant || !model) return;
    pthread_mutex_lock(&m->mu);
    size_t i = 0;
    while (i < m->n_toks && !(!strcmp(m->toks[i].tenant, tenant) && !strcmp(m->toks[i].model, model))) i++;
    if (i == m->n_toks && grow((void **)&m->toks, &m->cap_toks, m->n_toks, sizeof *m->toks)) {
        tok_count *t = &m->toks[m->n_toks++];
        memset(t, 0, sizeof *t);
        snprintf(t->tenant, sizeof t->tenant, "%s", tenant);
        snprintf(t->model, sizeof t->model, "%s", model);
    }
    if (i < m->n_toks) {
        m->toks[i].prompt += (uint64_t)prompt;
        m->toks[i].cached += (uint64_t)cached;
        m->toks[i].completion += (uint64_t)completion;
    }
    pthread_mutex_unlock(&m->mu);
}

void dz_metrics_latency(dz_metrics *m, double ttft_s, double tpot_s) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    if (ttft_s >= 0) hist_add(&m->ttft, ttft_s);
    if (tpot_s >= 0) hist_add(&m->tpot, tpot_s);
    pthread_mutex_unlock(&m->mu);
}

/* ---- text exposition ---- */

typedef struct buf {
    char *p;
    size_t len, cap;
    bool failed;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* A label value with \, " and newline escaped. */
static void escape_label(const char *s, char *out, size_t cap) {
    size_t o = 0;
    for (; *s && o + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') out[o++] = '\\', out[o++] = *s;
        else if (*s == '\n') out[o++] = '\\', out[o++] = 'n';
        else out[o++] = *s;
    }
    out[o] = '\0';
}

static void put_hist(buf *b, const char *name, const char *help, const histogram *h) {
    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < h->n; i++) {
        cum += h->counts[i];
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i], (unsigned long long)cum);
    }
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)h->count, name,
        h->sum, name, (unsigned long long)h->count);
}

static void put_gauge(buf *b, const char *name, const char *help, const char *type, double v) {
    put(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

char *dz_metrics_render(dz_metrics *m, const dz_engine_stats *st, size_t *len) {
    buf b = {malloc(8192), 0, 8192, false};
    if (!b.p) return NULL;
    pthread_mutex_lock(&m->mu);
    put(&b, "# HELP dizuo_requests_total HTTP requests by route and status.\n"
            "# TYPE dizuo_requests_total counter\n");
    for (size_t i = 0; i < m->n_reqs; i++)
        put(&b, "dizuo_requests_total{route=\"%s\",status=\"%d\"} %llu\n", m->reqs[i].route, m->reqs[i].status,
            (unsigned long long)m->reqs[i].n);
    static const char *tok_names[3] = {"dizuo_prompt_tokens_total", "dizuo_cached_tokens_total",
                                       "dizuo_completion_tokens_total"};
    static const char *tok_help[3] = {"Billed prompt tokens.", "Billed prompt tokens served from the prefix cache.",
                                      "Billed completion tokens."};
    for (int k = 0; k < 3; k++) {
        put(&b, "# HELP %s %s\n# TYPE %s counter\n", tok_names[k], tok_help[k], tok_names[k]);
        for (size_t i = 0; i < m->n_toks; i++) {
            const tok_count *t = &m->toks[i];
            char model[2 * DZ_MODEL_NAME_MAX + 4];
            escape_label(t->model, model, sizeof model);
            uint64_t v = k == 0 ? t->prompt : k == 1 ? t->cached : t->completion;
            put(&b, "%s{tenant=\"%s\",model=\"%s\"} %llu\n", tok_names[k], t->tenant, model, (unsigned long long)v);
        }
    }
    put_hist(&b, "dizuo_time_to_first_token_seconds", "Time from submission to the first generated token.",
             &m->ttft);
    put_hist(&b, "dizuo_time_per_output_token_seconds", "Mean time between generated tokens of a request.",
             &m->tpot);
    put_hist(&b, "dizuo_request_duration_seconds", "End-to-end duration of HTTP requests.", &m->dur);
    pthread_mutex_unlock(&m->mu);
    dz_engine_stats z;
    memset(&z, 0, sizeof z);
    if (!st) st = &z;
    put_gauge(&b, "dizuo_queue_length", "Requests waiting for admission to the batch.", "gauge", st->waiting);
    put_gauge(&b, "dizuo_running_sequences", "Sequences in the running batch.", "gauge", st->running);
    put_gauge(&b, "dizuo_kv_blocks_used", "KV cache blocks held by sequences.", "gauge", st->kv_blocks_used);
    put_gauge(&b, "dizuo_kv_blocks_total", "KV cache blocks in the pool.", "gauge", st->kv_blocks_total);
    put_gauge(&b, "dizuo_prefix_cache_queries_total", "Full prompt blocks looked up in the prefix cache.", "counter",
              (double)st->prefix_queries);
    put_gauge(&b, "dizuo_prefix_cache_hits_total", "Full prompt blocks found in the prefix cache.", "counter",
              (double)st->prefix_hits);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
