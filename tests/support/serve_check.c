#include "serve_check.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dztest.h"

void dzt_sb_add(dzt_sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) exit(1);
    if (b->n + (size_t)need + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + (size_t)need + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) exit(1);
        b->p = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)need;
}

void dzt_sb_repeat(dzt_sbuf *b, const char *s, int times) {
    for (int i = 0; i < times; i++) dzt_sb_add(b, "%s", s);
}

void dzt_print_request(const char *label, const char *what, const char *req, size_t len) {
    fprintf(stderr, "  [%s] %s (%zu bytes): ", label, what, len);
    for (size_t i = 0; req && i < len && i < 160; i++) {
        unsigned char ch = (unsigned char)req[i];
        if (ch >= 32 && ch < 127) fputc(ch, stderr);
        else fprintf(stderr, "\\x%02x", ch);
    }
    fprintf(stderr, "%s\n", len > 160 ? "..." : "");
}

static bool param_matches(json_t *param, const char *spec) {
    char alt[128];
    for (const char *p = spec; *p;) {
        size_t n = strcspn(p, "|");
        snprintf(alt, sizeof alt, "%.*s", (int)n, p);
        p += n + (p[n] == '|');
        size_t al = strlen(alt);
        if (strcmp(alt, "null") == 0) {
            if (json_is_null(param)) return true;
        } else if (json_is_string(param)) {
            const char *v = json_string_value(param);
            bool prefix = al > 0 && alt[al - 1] == '*';
            if (prefix ? strncmp(v, alt, al - 1) == 0 : strcmp(v, alt) == 0) return true;
        }
    }
    return false;
}

bool dzt_check_oai_error(const char *label, const char *req, size_t len, const dzt_response *r,
                         const dzt_want_error *want) {
    int failed_before = dzt_failed;
    int status = r->status;
    DZT_CHECK(status == want->status || (want->status_alt && status == want->status_alt),
              "[%s] status %d, expected %d%s", label, status, want->status,
              want->status_alt ? " (or the alternative)" : "");
    json_error_t e;
    json_t *j = r->body ? json_loads(r->body, 0, &e) : NULL;
    json_t *err = json_object_get(j, "error");
    json_t *msg = json_object_get(err, "message"), *type = json_object_get(err, "type");
    json_t *param = json_object_get(err, "param"), *code = json_object_get(err, "code");
    bool shape = json_is_object(err) && json_is_string(msg) && json_string_length(msg) > 0 &&
                 json_is_string(type) && param && (json_is_null(param) || json_is_string(param)) && code;
    if (status >= 400)
        DZT_CHECK(shape, "[%s] not an OpenAI error object {error:{message,type,param,code}}", label);
    if (shape) {
        if (status == 400)
            DZT_CHECK(strcmp(json_string_value(type), "invalid_request_error") == 0,
                      "[%s] error.type %s, expected invalid_request_error", label, json_string_value(type));
        if (want->param)
            DZT_CHECK(param_matches(param, want->param), "[%s] error.param %s, expected %s", label,
                      json_is_string(param) ? json_string_value(param) : "null", want->param);
        if (want->code)
            DZT_CHECK(json_is_string(code) && strcmp(json_string_value(code), want->code) == 0,
                      "[%s] error.code %s, expected %s", label,
                      json_is_string(code) ? json_string_value(code) : "(not a string)", want->code);
        if (want->message_has)
            DZT_CHECK(strcasestr(json_string_value(msg), want->message_has) != NULL,
                      "[%s] error.message does not mention %s", label, want->message_has);
    }
    json_decref(j);
    bool ok = dzt_failed == failed_before;
    if (!ok) {
        dzt_print_request(label, "request", req, len);
        fprintf(stderr, "  [%s] got %d: %.300s\n", label, status, r->body ? r->body : "(no body)");
    }
    return ok;
}

double dzt_metric_sum(const char *text, const char *name) {
    size_t nl = strlen(name);
    double sum = 0;
    bool found = false;
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && (p[nl] == ' ' || p[nl] == '{')) {
            /* the value follows the last space before the end (no timestamps here) */
            const char *v = p + len;
            while (v > p && v[-1] != ' ') v--;
            char num[64];
            size_t vl = (size_t)(p + len - v);
            if (vl < sizeof num) {
                memcpy(num, v, vl);
                num[vl] = '\0';
                sum += strtod(num, NULL);
                found = true;
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    return found ? sum : -1;
}

bool dzt_ledger_row(const char *db_path, const char *request_id, dzt_usage_row *row) {
    sqlite3 *db = NULL;
    bool found = false;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db,
                               "SELECT prompt_tokens, cached_tokens, completion_tokens, status FROM usage "
                               "WHERE request_id = ?",
                               -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW) {
                row->prompt = sqlite3_column_int64(st, 0);
                row->cached = sqlite3_column_int64(st, 1);
                row->completion = sqlite3_column_int64(st, 2);
                const unsigned char *s = sqlite3_column_text(st, 3);
                snprintf(row->status, sizeof row->status, "%s", s ? (const char *)s : "");
                found = true;
            }
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return found;
}
