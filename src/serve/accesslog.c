/* The access log: one JSON object per request and line, on stderr or a
 * file. Never the key, the Authorization header or the body. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/serve_impl.h"

struct dz_accesslog {
    FILE *f;
    bool owned;
    pthread_mutex_t mu;
};

dz_status dz_accesslog_open(const char *path, dz_accesslog **out) {
    dz_accesslog *a = calloc(1, sizeof *a);
    if (!a) return dz_fail(DZ_ERR_NOMEM, "out of memory for the access log");
    if (path) {
        if (!(a->f = fopen(path, "a"))) {
            free(a);
            return dz_fail(DZ_ERR_IO, "access_log: cannot open '%s'", path);
        }
        a->owned = true;
    } else {
        a->f = stderr;
    }
    pthread_mutex_init(&a->mu, NULL);
    *out = a;
    return DZ_OK;
}

void dz_accesslog_close(dz_accesslog *a) {
    if (!a) return;
    if (a->owned) fclose(a->f);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

static json_t *str_or_null(const char *s) { return s ? dz_json_text(s, strlen(s)) : json_null(); }

void dz_accesslog_write(dz_accesslog *a, const dz_access_entry *e) {
    if (!a) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32], full[48];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(full, sizeof full, "%s.%03dZ", when, (int)(ts.tv_nsec / 1000000) % 1000);
    json_t *o = json_pack("{s:s,s:o,s:o,s:o,s:o,s:i,s:o,s:o,s:o,s:I,s:I,s:f}", "ts", full, "request_id",
                          str_or_null(e->request_id), "ip", str_or_null(e->ip), "method", str_or_null(e->method),
                          "path", str_or_null(e->path), "status", e->status, "tenant", str_or_null(e->tenant),
                          "key_id", e->key_id ? json_integer(e->key_id) : json_null(), "model", str_or_null(e->model),
                          "prompt_tokens", (json_int_t)e->prompt_tokens, "completion_tokens",
                          (json_int_t)e->completion_tokens, "duration_ms", e->duration_ms);
    char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!line) return;
    pthread_mutex_lock(&a->mu);
    fprintf(a->f, "%s\n", line);
    fflush(a->f);
    pthread_mutex_unlock(&a->mu);
    free(line);
}
