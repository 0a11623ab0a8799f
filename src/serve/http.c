/* The HTTP side of dizuo serve: the libmicrohttpd daemon (a thread per
 * connection, so a streaming response may block waiting for the engine),
 * routing, authentication, request bodies, responses and errors. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "serve/serve_impl.h"

/* ---- routes ---- */

typedef enum route_id {
    ROUTE_NONE = 0,
    ROUTE_HEALTH,
    ROUTE_READY,
    ROUTE_METRICS,
    ROUTE_MODELS,
    ROUTE_MODEL,
    ROUTE_CHAT,
    ROUTE_COMPLETIONS,
    ROUTE_EMBEDDINGS,
    ROUTE_TOKENIZE,
    ROUTE_DETOKENIZE,
    ROUTE_ADMIN_KEYS,
    ROUTE_ADMIN_KEY,
    ROUTE_USAGE,
} route_id;

typedef struct route {
    route_id id;
    const char *path;  /* exact, or a prefix ending in '/' followed by an id */
    bool has_id;
    const char *label; /* metrics label */
    const char *methods; /* "GET", "POST", "GET POST", "DELETE" */
    bool auth, admin;
} route;

static const route routes[] = {
    {ROUTE_HEALTH, "/health", false, "/health", "GET", false, false},
    {ROUTE_READY, "/ready", false, "/ready", "GET", false, false},
    {ROUTE_METRICS, "/metrics", false, "/metrics", "GET", false, false},
    {ROUTE_MODELS, "/v1/models", false, "/v1/models", "GET", true, false},
    {ROUTE_MODEL, "/v1/models/", true, "/v1/models/{id}", "GET", true, false},
    {ROUTE_CHAT, "/v1/chat/completions", false, "/v1/chat/completions", "POST", true, false},
    {ROUTE_COMPLETIONS, "/v1/completions", false, "/v1/completions", "POST", true, false},
    {ROUTE_EMBEDDINGS, "/v1/embeddings", false, "/v1/embeddings", "POST", true, false},
    {ROUTE_TOKENIZE, "/tokenize", false, "/tokenize", "POST", true, false},
    {ROUTE_DETOKENIZE, "/detokenize", false, "/detokenize", "POST", true, false},
    {ROUTE_ADMIN_KEYS, "/v1/admin/keys", false, "/v1/admin/keys", "GET POST", true, true},
    {ROUTE_ADMIN_KEY, "/v1/admin/keys/", true, "/v1/admin/keys/{id}", "DELETE", true, true},
    {ROUTE_USAGE, "/v1/usage", false, "/v1/usage", "GET", true, true},
};
enum { N_ROUTES = sizeof routes / sizeof routes[0] };

/* The route of a path; *id points at the id part of "/v1/models/{id}". */
static const route *route_find(const char *path, const char **id) {
    *id = NULL;
    for (int i = 0; i < N_ROUTES; i++) {
        const route *rt = &routes[i];
        size_t n = strlen(rt->path);
        if (!rt->has_id && !strcmp(path, rt->path)) return rt;
        if (rt->has_id && !strncmp(path, rt->path, n) && path[n]) {
            *id = path + n;
            return rt;
        }
    }
    return NULL;
}

static bool method_allowed(const route *rt, const char *method) {
    const char *m = !strcmp(method, "HEAD") ? "GET" : method;
    size_t n = strlen(m);
    for (const char *p = rt->methods; (p = strstr(p, m)); p += n)
        if ((p == rt->methods || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ')) return true;
    return false;
}

/* ---- requests ---- */

void dz_req_new_id(dz_req *r, const char *prefix) {
    char hex[25];
    dz_random_hex(hex, 12);
    snprintf(r->id, sizeof r->id, "%s-%s", prefix, hex);
}

static void client_ip(struct MHD_Connection *c, char *out, size_t cap) {
    snprintf(out, cap, "-");
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, (socklen_t)cap);
}

static dz_req *req_new(dz_server *s, struct MHD_Connection *c, const char *url, const char *method) {
    dz_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->srv = s;
    r->conn = c;
    atomic_fetch_add(&s->live_reqs, 1);
    atomic_init(&r->refs, 1);
    r->t_start = dz_time_now();
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->path, sizeof r->path, "%s", url);
    r->route = "other";
    client_ip(c, r->ip, sizeof r->ip);
    dz_req_new_id(r, "req");
    return r;
}

void dz_req_unref(dz_req *r) {
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1) return;
    dz_server *s = r->srv;
    double dur = dz_time_now() - r->t_start;
    dz_metrics_request(s->metrics, r->route, r->status, dur);
    dz_access_entry e = {
        .request_id = r->id, .ip = r->ip, .method = r->method, .path = r->path,
        .tenant = r->authed ? r->key.tenant : NULL, .model = r->model[0] ? r->model : NULL,
        .status = r->status, .key_id = r->authed ? r->key.id : 0, .prompt_tokens = r->prompt_tokens,
        .completion_tokens = r->completion_tokens, .duration_ms = dur * 1000.0,
    };
    dz_accesslog_write(s->alog, &e);
    free(r->body);
    free(r);
    atomic_fetch_sub(&s->live_reqs, 1);
}

bool dz_req_client_gone(dz_req *r) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return true;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL)) return true;
    if (p.revents & POLLIN) {
        char b;
        return recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
    }
    return false;
}

/* ---- responses ---- */

static enum MHD_Result queue(dz_req *r, int status, struct MHD_Response *resp, const char *content_type) {
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    r->status = status;
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result dz_respond_text(dz_req *r, int status, const char *content_type, const char *text, size_t len) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    return queue(r, status, resp, content_type);
}

enum MHD_Result dz_respond_json(dz_req *r, int status, json_t *body) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) return MHD_NO;
    size_t len = strlen(text);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    return queue(r, status, resp, "application/json");
}

static const char *error_type(int status, const char *code) {
    if (status == 403) return "permission_error";
    if (status == 429) return code;
    if (status >= 500) return "server_error";
    return "invalid_request_error";
}

json_t *dz_error_json(int status, const char *code, const char *param, const char *message) {
    json_t *e = json_pack("{s:o,s:s,s:o,s:o}", "message", dz_json_text(message, strlen(message)), "type",
                          error_type(status, code), "param", param && param[0] ? json_string(param) : json_null(),
                          "code", code ? json_string(code) : json_null());
    return e ? json_pack("{s:o}", "error", e) : NULL;
}

static enum MHD_Result respond_error_v(dz_req *r, int status, const char *code, const char *param,
                                       int64_t retry_after_s, const char *fmt, va_list ap) {
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    json_t *body = dz_error_json(status, code, param, msg);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    if (retry_after_s > 0) {
        char ra[24];
        snprintf(ra, sizeof ra, "%lld", (long long)retry_after_s);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    if (status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    return queue(r, status, resp, "application/json");
}

enum MHD_Result dz_respond_error(dz_req *r, int status, const char *code, const char *param, int64_t retry_after_s,
                                 const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ret = respond_error_v(r, status, code, param, retry_after_s, fmt, ap);
    va_end(ap);
    return ret;
}

enum MHD_Result dz_respond_oai_error(dz_req *r, const dz_oai_error *e) {
    const char *code = e->status == 400 ? "invalid_request_error" : e->status == 500 ? "internal_error" : NULL;
    return dz_respond_error(r, e->status ? e->status : 400, code, e->param, 0, "%s", e->message);
}

enum MHD_Result dz_respond_stream(dz_req *r, MHD_ContentReaderCallback reader, void *cls,
                                  MHD_ContentReaderFreeCallback free_cb) {
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, cls, free_cb);
    if (!resp) {
        free_cb(cls);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return queue(r, 200, resp, "text/event-stream");
}

bool dz_req_model_ok(dz_req *r, const char *model) {
    dz_server *s = r->srv;
    if (model && strcmp(model, s->model_name) && strcmp(model, "default")) {
        dz_respond_error(r, 404, "model_not_found", "model", 0, "The model '%.128s' does not exist", model);
        return false;
    }
    snprintf(r->model, sizeof r->model, "%s", s->model_name);
    if (r->authed && !dz_key_allows_model(&r->key, s->model_name)) {
        dz_respond_error(r, 403, "model_not_allowed", "model", 0, "This key may not use the model '%s'",
                         s->model_name);
        return false;
    }
    return true;
}

/* ---- authentication ---- */

typedef struct auth_scan {
    int count;
    const char *value;
} auth_scan;

static enum MHD_Result count_auth(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    auth_scan *a = cls;
    if (key && !strcasecmp(key, "Authorization")) {
        a->count++;
        a->value = value;
    }
    return MHD_YES;
}

/* Checks the Authorization header; queues 401/403/500 and returns false
 * when the request may not go on. */
static bool authenticate(dz_req *r, bool admin, enum MHD_Result *ret) {
    auth_scan a = {0, NULL};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_auth, &a);
    const char *why = NULL;
    char key[DZ_KEY_LEN + 2];
    if (a.count == 0) why = "Missing API key: send an Authorization: Bearer <key> header";
    else if (a.count > 1) why = "More than one Authorization header";
    else {
        const char *v = a.value ? a.value : "";
        while (*v == ' ' || *v == '\t') v++;
        if (strncasecmp(v, "Bearer", 6) || (v[6] != ' ' && v[6] != '\t')) {
            why = "Malformed Authorization header: expected 'Bearer <key>'";
        } else {
            v += 6;
            while (*v == ' ' || *v == '\t') v++;
            size_t n = strlen(v);
            while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
            if (n == 0) why = "Missing API key: the Authorization header is empty";
            else if (n > DZ_KEY_LEN) why = "Incorrect API key provided";
            else {
                memcpy(key, v, n);
                key[n] = '\0';
            }
        }
    }
    if (!why) {
        dz_auth_result res = DZ_AUTH_UNKNOWN;
        if (dz_ledger_authenticate(r->srv->ledger, key, &res, &r->key)) {
            dz_log(DZ_LOG_ERROR, "serve: authentication: %s\n", dz_last_error());
            *ret = dz_respond_error(r, 500, "internal_error", NULL, 0, "The key database failed");
            return false;
        }
        if (res == DZ_AUTH_REVOKED) why = "This API key has been revoked";
        else if (res != DZ_AUTH_OK) why = "Incorrect API key provided";
    }
    if (why) {
        *ret = dz_respond_error(r, 401, "invalid_api_key", NULL, 0, "%s", why);
        return false;
    }
    r->authed = true;
    if (admin && !r->key.admin) {
        *ret = dz_respond_error(r, 403, "permission_denied", NULL, 0, "This route needs an admin key");
        return false;
    }
    return true;
}

/* ---- the access handler ---- */

static enum MHD_Result respond_plain_json(dz_req *r, int status, const char *text) {
    return dz_respond_text(r, status, "application/json", text, strlen(text));
}

static enum MHD_Result dispatch(dz_req *r, const route *rt, const char *id) {
    dz_server *s = r->srv;
    switch (rt->id) {
    case ROUTE_HEALTH: return respond_plain_json(r, 200, "{\"status\":\"ok\"}");
    case ROUTE_READY:
        if (atomic_load(&s->draining)) return respond_plain_json(r, 503, "{\"status\":\"draining\"}");
        if (!s->engine) return respond_plain_json(r, 503, "{\"status\":\"no model\"}");
        return respond_plain_json(r, 200, "{\"status\":\"ready\"}");
    case ROUTE_METRICS: {
        dz_engine_stats st;
        if (s->engine) dz_engine_stats_get(s->engine, &st);
        size_t len = 0;
        char *text = dz_metrics_render(s->metrics, s->engine ? &st : NULL, &len);
        if (!text) return MHD_NO;
        struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(text);
            return MHD_NO;
        }
        return queue(r, 200, resp, "text/plain; version=0.0.4; charset=utf-8");
    }
    case ROUTE_MODELS: return dz_handle_models(r, NULL);
    case ROUTE_MODEL: return dz_handle_models(r, id);
    case ROUTE_CHAT: return dz_handle_chat(r);
    case ROUTE_COMPLETIONS: return dz_handle_completions(r);
    case ROUTE_EMBEDDINGS: return dz_handle_embeddings(r);
    case ROUTE_TOKENIZE: return dz_handle_tokenize(r);
    case ROUTE_DETOKENIZE: return dz_handle_detokenize(r);
    case ROUTE_ADMIN_KEYS: return dz_handle_admin_keys(r, NULL);
    case ROUTE_ADMIN_KEY: return dz_handle_admin_keys(r, id);
    case ROUTE_USAGE: return dz_handle_usage(r);
    default: return dz_respond_error(r, 404, "not_found", NULL, 0, "Unknown route");
    }
}

/* First call (headers in): answers what needs no body; MHD_YES with
 * *answered false to go on reading the body. */
static enum MHD_Result on_headers(dz_req *r, const route *rt, bool *answered) {
    dz_server *s = r->srv;
    *answered = true;
    if (!rt) return dz_respond_error(r, 404, "not_found", NULL, 0, "Unknown route %.200s", r->path);
    r->route = rt->label;
    if (!method_allowed(rt, r->method))
        return dz_respond_error(r, 405, "method_not_allowed", NULL, 0, "Method %s is not allowed on %s (use %s)",
                                r->method, rt->label, rt->methods);
    if (rt->auth && atomic_load(&s->draining))
        return dz_respond_error(r, 503, "server_shutting_down", NULL, 5, "The server is shutting down");
    enum MHD_Result ret = MHD_YES;
    if (rt->auth && !authenticate(r, rt->admin, &ret)) return ret;
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (end != cl && n > (unsigned long long)s->cfg.max_body_bytes)
            return dz_respond_error(r, 413, "request_too_large", NULL, 0, "The request body is larger than %lld bytes",
                                    (long long)s->cfg.max_body_bytes);
    }
    *answered = false;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)version;
    dz_server *s = cls;
    dz_req *r = *con_cls;
    const char *id = NULL;
    const route *rt = route_find(url, &id);
    if (!r) {
        if (!(r = req_new(s, c, url, method))) return MHD_NO;
        *con_cls = r;
        bool answered = false;
        enum MHD_Result ret = on_headers(r, rt, &answered);
        if (answered) {
            r->started = true;
            dz_conns_set_handling(s, c, true);
        }
        return ret;
    }
    if (r->started) { /* answered early: drop whatever body follows */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->body_len + n > (size_t)s->cfg.max_body_bytes) {
            char msg[96];
            snprintf(msg, sizeof msg, "The request body is larger than %lld bytes", (long long)s->cfg.max_body_bytes);
            r->started = true;
            return dz_conn_reject_upload(r, 413, "request_too_large", msg);
        }
        if (r->body_len + n + 1 > r->body_cap) {
            size_t cap = r->body_cap ? r->body_cap : 4096;
            while (cap < r->body_len + n + 1) cap *= 2;
            char *b = realloc(r->body, cap);
            if (!b) return MHD_NO;
            r->body = b;
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, upload_data, n);
        r->body_len += n;
        r->body[r->body_len] = '\0';
        return MHD_YES;
    }
    r->started = true;
    dz_conns_set_handling(s, c, true);
    return dispatch(r, rt, id);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)toe;
    dz_conns_set_handling(cls, c, false);
    dz_req *r = *con_cls;
    *con_cls = NULL;
    dz_req_unref(r);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    if (dz_log_get_level() < DZ_LOG_DEBUG) return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    if (n && msg[n - 1] == '\n') msg[n - 1] = '\0';
    dz_log(DZ_LOG_DEBUG, "serve: libmicrohttpd: %s\n", msg);
}

/* ---- the daemon ---- */

dz_status dz_server_start(dz_server *s, bool listen) {
    const dz_serve_config *c = &s->cfg;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
    struct sockaddr_in addr4;
    struct sockaddr_in6 addr6;
    const struct sockaddr *addr = NULL;
    memset(&addr4, 0, sizeof addr4);
    memset(&addr6, 0, sizeof addr6);
    if (!listen) {
        flags |= MHD_USE_NO_LISTEN_SOCKET;
    } else if (inet_pton(AF_INET, c->host, &addr4.sin_addr) == 1) {
        addr4.sin_family = AF_INET;
        addr4.sin_port = htons((uint16_t)c->port);
        addr = (const struct sockaddr *)&addr4;
    } else if (inet_pton(AF_INET6, c->host, &addr6.sin6_addr) == 1) {
        addr6.sin6_family = AF_INET6;
        addr6.sin6_port = htons((uint16_t)c->port);
        addr = (const struct sockaddr *)&addr6;
        flags |= MHD_USE_IPv6;
    } else if (!strcmp(c->host, "localhost")) {
        addr4.sin_family = AF_INET;
        addr4.sin_port = htons((uint16_t)c->port);
        addr4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr = (const struct sockaddr *)&addr4;
    } else {
        return dz_fail(DZ_ERR_ARG, "host: '%s' is not an IPv4 or IPv6 address", c->host);
    }
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_CONNECTION_LIMIT, c->max_connections, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, c->max_connections_per_ip, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, c->idle_timeout_s, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, c->max_header_bytes, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, s},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)dz_conns_notify, s},
        {addr ? MHD_OPTION_SOCK_ADDR : MHD_OPTION_END, 0, (void *)addr},
        {MHD_OPTION_END, 0, NULL},
    };
    dz_status st = dz_conns_create(c, &s->conns);
    if (st) return st;
    s->mhd = MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, opts,
                              MHD_OPTION_END);
    if (!s->mhd) {
        dz_conns_destroy(s->conns);
        s->conns = NULL;
        return dz_fail(DZ_ERR_IO, "cannot listen on %s:%d (address in use, or not permitted)", c->host, c->port);
    }
    if (listen) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
        s->port = di ? di->port : (uint16_t)c->port;
    }
    return DZ_OK;
}

uint16_t dz_server_port(const dz_server *s) { return s->port; }

void dz_http_stop(dz_server *s) {
    if (s->mhd) MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    dz_conns_destroy(s->conns);
    s->conns = NULL;
}

dz_status dz_server_add_connection(dz_server *s, int fd) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!s->mhd || MHD_add_connection(s->mhd, fd, (const struct sockaddr *)&a, sizeof a) != MHD_YES)
        return dz_fail(DZ_ERR_IO, "the daemon refused a connection");
    return DZ_OK;
}
