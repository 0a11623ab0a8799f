/* Connection-level guards libmicrohttpd 0.9.75 lacks:
 *  - a receive deadline: a request (line, headers and body) must arrive
 *    whole within min(request_timeout_s, 2 x idle_timeout_s) of the
 *    connection's start or of the previous response's end; a client that
 *    trickles bytes (one a second keeps the idle timeout from firing) is
 *    cut off by a watchdog thread that shuts its socket down;
 *  - a 413 while a chunked upload is still arriving (MHD can only queue a
 *    response before the body or after all of it), written on the socket
 *    directly before the connection is closed. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "serve/serve_impl.h"

typedef struct conn_track {
    struct conn_track *prev, *next;
    int fd;
    uint64_t serial;
    double deadline;  /* dz_time_now() by which the current request must be in */
    bool handling;    /* the request is in: the handler or the response runs */
    bool cut;
} conn_track;

struct dz_conns {
    pthread_mutex_t mu;
    conn_track head; /* sentinel */
    double receive_s;
    pthread_t thread;
    atomic_bool stop;
    uint64_t next_serial;
};

static void *watchdog_main(void *arg) {
    struct dz_conns *cs = arg;
    while (!atomic_load(&cs->stop)) {
        struct timespec ts = {0, 250 * 1000 * 1000};
        nanosleep(&ts, NULL);
        double now = dz_time_now();
        pthread_mutex_lock(&cs->mu);
        for (conn_track *t = cs->head.next; t != &cs->head; t = t->next)
            if (!t->handling && !t->cut && now > t->deadline && t->fd >= 0) {
                /* the fd stays open until MHD's CLOSED notification, which takes cs->mu */
                shutdown(t->fd, SHUT_RDWR);
                t->cut = true;
            }
        pthread_mutex_unlock(&cs->mu);
    }
    return NULL;
}

dz_status dz_conns_create(const dz_serve_config *c, struct dz_conns **out) {
    struct dz_conns *cs = calloc(1, sizeof *cs);
    if (!cs) return dz_fail(DZ_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&cs->mu, NULL);
    cs->head.next = cs->head.prev = &cs->head;
    cs->receive_s = c->request_timeout_s < 2.0 * c->idle_timeout_s ? c->request_timeout_s : 2.0 * c->idle_timeout_s;
    atomic_init(&cs->stop, false);
    if (pthread_create(&cs->thread, NULL, watchdog_main, cs)) {
        pthread_mutex_destroy(&cs->mu);
        free(cs);
        return dz_fail(DZ_ERR_IO, "cannot start the connection watchdog thread");
    }
    *out = cs;
    return DZ_OK;
}

void dz_conns_destroy(struct dz_conns *cs) {
    if (!cs) return;
    atomic_store(&cs->stop, true);
    pthread_join(cs->thread, NULL);
    while (cs->head.next != &cs->head) { /* none left once the daemon stopped; be safe */
        conn_track *t = cs->head.next;
        cs->head.next = t->next;
        free(t);
    }
    pthread_mutex_destroy(&cs->mu);
    free(cs);
}

void dz_conns_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                     enum MHD_ConnectionNotificationCode code) {
    dz_server *s = cls;
    struct dz_conns *cs = s->conns;
    if (!cs) return;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_track *t = calloc(1, sizeof *t);
        *socket_context = t;
        if (!t) return;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        t->fd = ci ? ci->connect_fd : -1;
        t->deadline = dz_time_now() + cs->receive_s;
        pthread_mutex_lock(&cs->mu);
        t->serial = ++cs->next_serial;
        t->next = &cs->head;
        t->prev = cs->head.prev;
        cs->head.prev->next = t;
        cs->head.prev = t;
        pthread_mutex_unlock(&cs->mu);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        conn_track *t = *socket_context;
        *socket_context = NULL;
        if (!t) return;
        pthread_mutex_lock(&cs->mu);
        t->prev->next = t->next;
        t->next->prev = t->prev;
        pthread_mutex_unlock(&cs->mu);
        free(t);
    }
}

void dz_conns_set_handling(dz_server *s, struct MHD_Connection *c, bool handling) {
    struct dz_conns *cs = s->conns;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_track *t = ci ? ci->socket_context : NULL;
    if (!cs || !t) return;
    pthread_mutex_lock(&cs->mu);
    t->handling = handling;
    if (!handling) t->deadline = dz_time_now() + cs->receive_s;
    pthread_mutex_unlock(&cs->mu);
}

uint64_t dz_conns_serial(dz_server *s, struct MHD_Connection *c) {
    struct dz_conns *cs = s->conns;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_track *t = ci ? ci->socket_context : NULL;
    if (!cs || !t) return 0;
    pthread_mutex_lock(&cs->mu);
    uint64_t serial = t->serial;
    pthread_mutex_unlock(&cs->mu);
    return serial;
}

void dz_conns_cut(dz_server *s, uint64_t serial) {
    struct dz_conns *cs = s->conns;
    if (!cs || !serial) return;
    pthread_mutex_lock(&cs->mu);
    for (conn_track *t = cs->head.next; t != &cs->head; t = t->next)
        if (t->serial == serial) {
            /* the fd stays open until MHD's CLOSED notification, which takes cs->mu */
            if (t->fd >= 0 && !t->cut) shutdown(t->fd, SHUT_RDWR);
            t->cut = true;
            break;
        }
    pthread_mutex_unlock(&cs->mu);
}

/* Sends all of buf on a non-blocking socket, waiting up to timeout_ms. */
static bool send_all(int fd, const char *buf, size_t len, int timeout_ms) {
    double until = dz_time_now() + timeout_ms / 1000.0;
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (dz_time_now() > until || poll(&p, 1, 100) < 0) return false;
    }
    return true;
}

enum MHD_Result dz_conn_reject_upload(dz_req *r, int status, const char *code, const char *message) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    r->status = status;
    if (!ci) return MHD_NO;
    int fd = ci->connect_fd;
    json_t *body = dz_error_json(status, code, NULL, message);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) return MHD_NO;
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "X-Request-Id: %s\r\nConnection: close\r\n\r\n",
                      status, status == 413 ? "Content Too Large" : "Bad Request", strlen(text), r->id);
    if (send_all(fd, head, (size_t)hl, 2000) && send_all(fd, text, strlen(text), 2000)) {
        /* lingering close: read what the client still sends, so that closing
         * with unread data (a reset) does not destroy the answer in flight */
        shutdown(fd, SHUT_WR);
        double until = dz_time_now() + 2;
        char sink[16384];
        while (dz_time_now() < until) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, 100) < 0) break;
            if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
            if (recv(fd, sink, sizeof sink, MSG_DONTWAIT) <= 0) break;
        }
    }
    free(text);
    return MHD_NO;
}
