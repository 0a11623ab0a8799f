/* Internals of dizuo serve shared by its files: the server, one HTTP
 * request, responses and errors, metrics, the access log. */
#ifndef DZ_SERVE_IMPL_H
#define DZ_SERVE_IMPL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "dizuo/chat.h"
#include "dizuo/engine.h"
#include "dizuo/tenancy.h"
#include "serve/oai_parse.h"
#include "serve/serve.h"

/* ---- metrics (metrics.c): a thread-safe Prometheus registry ---- */

typedef struct dz_metrics dz_metrics;
dz_status dz_metrics_create(dz_metrics **out);
void dz_metrics_destroy(dz_metrics *m); /* NULL is a no-op */
/* One finished HTTP request: dizuo_requests_total{route,status} and the
 * duration histogram. */
void dz_metrics_request(dz_metrics *m, const char *route, int status, double duration_s);
/* Billed tokens of one request (dizuo_*_tokens_total{tenant,model}). */
void dz_metrics_tokens(dz_metrics *m, const char *tenant, const char *model, int64_t prompt, int64_t cached,
                       int64_t completion);
/* One generation's time to first token and time per output token (< 0: none). */
void dz_metrics_latency(dz_metrics *m, double ttft_s, double tpot_s);
/* The text exposition (format 0.0.4) with the engine's gauges (st may be
 * NULL). Malloc'd; caller frees. NULL when out of memory. */
char *dz_metrics_render(dz_metrics *m, const dz_engine_stats *st, size_t *len);

/* ---- access log (accesslog.c): one JSON object per line ---- */

typedef struct dz_accesslog dz_accesslog;
typedef struct dz_access_entry {
    const char *request_id, *ip, *method, *path, *tenant, *model;
    int status;
    int64_t key_id, prompt_tokens, completion_tokens;
    double duration_ms;
} dz_access_entry;
/* path NULL: stderr. */
dz_status dz_accesslog_open(const char *path, dz_accesslog **out);
void dz_accesslog_write(dz_accesslog *a, const dz_access_entry *e); /* thread-safe */
void dz_accesslog_close(dz_accesslog *a); /* NULL is a no-op */

/* ---- the server ---- */

/* A request holding engine work, so that a drain can cancel it. */
typedef struct dz_active {
    struct dz_active *prev, *next;
    void (*cancel)(struct dz_active *a); /* must not block */
} dz_active;

struct dz_server {
    dz_serve_config cfg;
    dz_model *model;         /* NULL: no model (generation routes answer 503) */
    dz_engine *engine;
    dz_ledger *ledger;
    const dz_tokenizer *tok;
    dz_chat_template *tmpl;
    char model_name[DZ_MODEL_NAME_MAX + 1];
    int32_t n_ctx, n_vocab, n_embd;
    char bos_text[64], eos_text[64];
    bool add_bos;
    struct MHD_Daemon *mhd;
    struct dz_conns *conns;  /* open connections, for the receive deadline (http.c) */
    uint16_t port;
    int64_t created_s;       /* unix time the model was loaded (models' "created") */
    atomic_bool draining;
    atomic_int live_reqs;     /* dz_req objects alive (responses not yet fully sent) */
    bool stopped;
    pthread_mutex_t mu;      /* guards active */
    pthread_cond_t idle;     /* active became empty */
    dz_active active;        /* sentinel of a circular list */
    dz_metrics *metrics;
    dz_accesslog *alog;
};

/* Connection guards (conn.c): the receive deadline's watchdog and a 413
 * sent while an upload is still arriving. */
struct dz_conns;
dz_status dz_conns_create(const dz_serve_config *c, struct dz_conns **out);
void dz_conns_destroy(struct dz_conns *cs); /* NULL is a no-op; after the daemon stopped */
void dz_conns_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                     enum MHD_ConnectionNotificationCode code); /* MHD_OPTION_NOTIFY_CONNECTION */
/* handling true: the request is in (no receive deadline); false: the next one starts. */
void dz_conns_set_handling(dz_server *s, struct MHD_Connection *c, bool handling);
/* The serial number of a live connection (0: untracked), valid for
 * dz_conns_cut after the connection may have closed. Connection thread only. */
uint64_t dz_conns_serial(dz_server *s, struct MHD_Connection *c);
/* Shuts down the socket of connection `serial` when it is still open (MHD
 * then closes it and frees its response). Any thread; does not block. */
void dz_conns_cut(dz_server *s, uint64_t serial);

/* Stops the daemon (joining its threads) and the connection watchdog. */
void dz_http_stop(dz_server *s);

/* Registers a request holding engine work, unless the server drains (the
 * check and the registration are one step under s->mu, so a drain cancels
 * every request it lets in). Returns false when draining. */
bool dz_server_active_add(dz_server *s, dz_active *a);
void dz_server_active_remove(dz_server *s, dz_active *a);

/* ---- one HTTP request (http.c) ---- */

typedef struct dz_req {
    dz_server *srv;
    struct MHD_Connection *conn;
    atomic_int refs;         /* MHD's, plus one while a stream lives */
    char id[48];             /* request id: X-Request-Id and the ledger's */
    char method[16];
    char path[256];
    const char *route;       /* metrics label */
    char ip[64];
    uint64_t conn_serial;    /* dz_conns_serial of its connection */
    double t_start;          /* dz_time_now() */
    char *body;
    size_t body_len, body_cap;
    bool body_too_large, started;
    /* filled as the request goes */
    int status;
    bool authed;
    dz_key_info key;
    char model[DZ_MODEL_NAME_MAX + 1];
    int64_t prompt_tokens, completion_tokens;
} dz_req;

/* Drops a reference; the last one writes the access log and the request
 * metrics and frees r. */
void dz_req_unref(dz_req *r);
/* A new request id "<prefix>-<24 hex>" into r->id. */
void dz_req_new_id(dz_req *r, const char *prefix);

/* Queue a response on r's connection (only from the access handler). They
 * return what the handler returns to libmicrohttpd. */
enum MHD_Result dz_respond_json(dz_req *r, int status, json_t *body); /* steals body */
enum MHD_Result dz_respond_text(dz_req *r, int status, const char *content_type, const char *text, size_t len);
/* {"error":{"message","type","param","code"}}; retry_after_s > 0 adds Retry-After. */
enum MHD_Result dz_respond_error(dz_req *r, int status, const char *code, const char *param, int64_t retry_after_s,
                                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
enum MHD_Result dz_respond_oai_error(dz_req *r, const dz_oai_error *e);
/* Answers status with an error body written on the socket directly and
 * closes the connection (for a body over the limit while it still arrives,
 * when libmicrohttpd cannot queue a response). Returns MHD_NO. */
enum MHD_Result dz_conn_reject_upload(dz_req *r, int status, const char *code, const char *message);
/* A streamed response from a content reader (text/event-stream). */
enum MHD_Result dz_respond_stream(dz_req *r, MHD_ContentReaderCallback reader, void *cls,
                                  MHD_ContentReaderFreeCallback free_cb);
/* The error object as a JSON value (new reference). */
json_t *dz_error_json(int status, const char *code, const char *param, const char *message);

/* Whether the client of r's connection has closed its side (poll, no wait). */
bool dz_req_client_gone(dz_req *r);
/* The served model for a request's "model" (NULL: the default), or a 404
 * response. Returns true when it is served. */
bool dz_req_model_ok(dz_req *r, const char *model);

/* ---- handlers: each queues a response and returns MHD_YES / MHD_NO ---- */

enum MHD_Result dz_handle_chat(dz_req *r);         /* oai_gen.c */
enum MHD_Result dz_handle_completions(dz_req *r);  /* oai_gen.c */
enum MHD_Result dz_handle_models(dz_req *r, const char *id); /* oai_misc.c; id NULL: the list */
enum MHD_Result dz_handle_embeddings(dz_req *r);   /* oai_misc.c */
enum MHD_Result dz_handle_tokenize(dz_req *r);     /* oai_misc.c */
enum MHD_Result dz_handle_detokenize(dz_req *r);   /* oai_misc.c */
enum MHD_Result dz_handle_admin_keys(dz_req *r, const char *id); /* admin.c; id: DELETE */
enum MHD_Result dz_handle_usage(dz_req *r);        /* admin.c */

/* The limits the request parser applies on this server. */
dz_oai_limits dz_server_limits(const dz_server *s);

/* ---- small helpers (util.c) ---- */

/* Copies src into dst (cap bytes), replacing invalid UTF-8 with U+FFFD;
 * returns a malloc'd string (or NULL when out of memory) of *out_len bytes. */
char *dz_utf8_sanitize(const char *src, size_t len, size_t *out_len);
/* A JSON string of bytes that may hold invalid UTF-8 (replaced). */
json_t *dz_json_text(const char *s, size_t len);
/* The engine's tenant group (prefix cache, fairness) of a tenant name: a
 * number unique to the name in this process (never a hash, so two tenants
 * can never share cached blocks). Thread-safe. */
uint64_t dz_tenant_group(const char *name);
/* n random bytes as 2n lower-case hex digits + NUL. */
void dz_random_hex(char *out, size_t n_bytes);
/* Unix time in seconds. */
int64_t dz_unix_now(void);

#endif
