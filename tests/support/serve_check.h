/* Checks shared by the tests of `dizuo serve`: OpenAI error objects,
 * Prometheus samples, usage-ledger rows, and a growing string to build
 * request bodies with. */
#ifndef DZT_SERVE_CHECK_H
#define DZT_SERVE_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "http_client.h"

/* A growing NUL-terminated string; start from {0}, free(b.p) when done.
 * Exits the test on allocation failure. */
typedef struct dzt_sbuf {
    char *p;
    size_t n, cap;
} dzt_sbuf;

void dzt_sb_add(dzt_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dzt_sb_repeat(dzt_sbuf *b, const char *s, int times);

/* Prints a request for a report line: at most 160 bytes, non-ASCII escaped. */
void dzt_print_request(const char *label, const char *what, const char *req, size_t len);

/* What an error answer must be. status_alt: a second accepted status (0:
 * none). param: NULL to skip, else alternatives separated by '|', "null"
 * for JSON null, a trailing '*' for a prefix ("logit_bias*"). code,
 * message_has: NULL to skip. */
typedef struct dzt_want_error {
    int status, status_alt;
    const char *param;
    const char *code;
    const char *message_has; /* case-insensitive substring of error.message */
} dzt_want_error;

/* Checks r against want, and that the body is an OpenAI error object
 * {"error":{"message":non-empty,"type":string,"param":string|null,"code":...}}
 * (type "invalid_request_error" for 400). Counts one pass or reports every
 * mismatch with the request (req, len) and the answer. Returns whether all held. */
bool dzt_check_oai_error(const char *label, const char *req, size_t len, const dzt_response *r,
                         const dzt_want_error *want);

/* Sum of the samples of the metric `name` (every label set) in Prometheus
 * text; -1 when there is none. */
double dzt_metric_sum(const char *text, const char *name);

/* One usage-ledger row, looked up by request id while the server may run. */
typedef struct dzt_usage_row {
    long long prompt, cached, completion;
    char status[32];
} dzt_usage_row;

/* Reads the row of request_id from the ledger file; true when found. */
bool dzt_ledger_row(const char *db_path, const char *request_id, dzt_usage_row *row);

#endif
