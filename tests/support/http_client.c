#include "http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* How the body of the current response is delimited. */
enum body_mode { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_UNTIL_CLOSE };
/* Where the chunked decoder is. */
enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };

struct dzt_http {
    int fd;
    char *raw; /* bytes received, raw[pos..len) not yet consumed */
    size_t pos, len, cap;
    bool eof;
    enum body_mode mode;
    enum chunk_state chunk;
    long long remaining; /* BODY_LENGTH: body bytes left; CH_DATA: chunk bytes left */
    bool body_done;
    char *dec; /* decoded body bytes not yet handed out */
    size_t dlen, dcap;
};

long long dzt_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ms_left(long long deadline) {
    long long left = deadline - dzt_now_ms();
    return left < 0 ? 0 : (int)left;
}

static bool grow(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t n = *cap ? *cap : 4096;
    while (n < need) n *= 2;
    char *b = realloc(*buf, n);
    if (!b) return false;
    *buf = b;
    *cap = n;
    return true;
}

dzt_http *dzt_http_connect(const char *host, int port, int timeout_ms) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) return NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return NULL;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t el = sizeof err;
        if (errno != EINPROGRESS || poll(&p, 1, timeout_ms) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
            close(fd);
            return NULL;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    dzt_http *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return NULL;
    }
    c->fd = fd;
    return c;
}

static void free_conn(dzt_http *c) {
    free(c->raw);
    free(c->dec);
    free(c);
}

void dzt_http_close(dzt_http *c) {
    if (!c) return;
    close(c->fd);
    free_conn(c);
}

void dzt_http_abort(dzt_http *c) {
    if (!c) return;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c->fd);
    free_conn(c);
}

int dzt_http_send(dzt_http *c, const void *data, size_t len, int timeout_ms) {
    long long deadline = dzt_now_ms() + timeout_ms;
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
        struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
        int left = ms_left(deadline);
        if (left == 0 || poll(&pf, 1, left) <= 0) return -1;
        if (pf.revents & (POLLERR | POLLHUP)) return -1;
    }
    return 0;
}

int dzt_http_send_request(dzt_http *c, const char *method, const char *path, const char *extra_headers,
                          const char *body, size_t body_len, int timeout_ms) {
    size_t cap = strlen(method) + strlen(path) + (extra_headers ? strlen(extra_headers) : 0) + 128;
    char *head = malloc(cap);
    if (!head) return -1;
    int n = snprintf(head, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s", method, path,
                     extra_headers ? extra_headers : "");
    if (body) n += snprintf(head + n, cap - (size_t)n, "Content-Length: %zu\r\n", body_len);
    n += snprintf(head + n, cap - (size_t)n, "\r\n");
    long long deadline = dzt_now_ms() + timeout_ms;
    int rc = dzt_http_send(c, head, (size_t)n, timeout_ms);
    free(head);
    if (rc == 0 && body && body_len) rc = dzt_http_send(c, body, body_len, ms_left(deadline));
    return rc;
}

/* Receives more raw bytes. 1: got some; 0: end of stream; -1: timeout or error. */
static int fill(dzt_http *c, long long deadline) {
    if (c->eof) return 0;
    if (c->pos > 0) { /* compact: consumed bytes are never looked at again */
        memmove(c->raw, c->raw + c->pos, c->len - c->pos);
        c->len -= c->pos;
        c->pos = 0;
    }
    if (!grow(&c->raw, &c->cap, c->len + 65536)) return -1;
    for (;;) {
        ssize_t n = recv(c->fd, c->raw + c->len, c->cap - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            return 1;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            c->eof = true; /* a reset ends the stream like a close does */
            return 0;
        }
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        int left = ms_left(deadline);
        if (left == 0) return -1;
        int pr = poll(&pf, 1, left);
        if (pr < 0 && errno != EINTR) return -1;
        if (pr == 0) return -1;
    }
}

/* Reads one line ending in "\n" (a "\r" before it is dropped) into a
 * malloc'd string. 1: a line; 0: the stream ended first; -1: timeout. */
static int read_line(dzt_http *c, long long deadline, char **line) {
    for (;;) {
        char *nl = c->raw ? memchr(c->raw + c->pos, '\n', c->len - c->pos) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - (c->raw + c->pos));
            size_t keep = n > 0 && nl[-1] == '\r' ? n - 1 : n;
            *line = malloc(keep + 1);
            if (!*line) return -1;
            memcpy(*line, c->raw + c->pos, keep);
            (*line)[keep] = '\0';
            c->pos += n + 1;
            return 1;
        }
        int f = fill(c, deadline);
        if (f <= 0) return f;
    }
}

static void append_dec(dzt_http *c, const char *p, size_t n) {
    if (!grow(&c->dec, &c->dcap, c->dlen + n + 1)) return;
    memcpy(c->dec + c->dlen, p, n);
    c->dlen += n;
    c->dec[c->dlen] = '\0';
}

/* Moves up to `limit` available raw bytes into the decoded buffer. */
static size_t take_raw(dzt_http *c, long long limit) {
    size_t avail = c->len - c->pos;
    if (limit >= 0 && (long long)avail > limit) avail = (size_t)limit;
    append_dec(c, c->raw + c->pos, avail);
    c->pos += avail;
    return avail;
}

/* Decodes more of the body. 1: progress; 0: the body is complete (or the
 * stream ended); -1: timeout or a malformed chunked encoding. */
static int body_step(dzt_http *c, long long deadline) {
    if (c->body_done) return 0;
    switch (c->mode) {
    case BODY_NONE:
        c->body_done = true;
        return 0;
    case BODY_LENGTH:
    case BODY_UNTIL_CLOSE:
        if (c->mode == BODY_LENGTH && c->remaining == 0) {
            c->body_done = true;
            return 0;
        }
        if (c->pos == c->len) {
            int f = fill(c, deadline);
            if (f < 0) return -1;
            if (f == 0) {
                c->body_done = true;
                return 0;
            }
        }
        c->remaining -= (long long)take_raw(c, c->mode == BODY_LENGTH ? c->remaining : -1);
        return 1;
    case BODY_CHUNKED:
        break;
    }
    char *line = NULL;
    int r;
    switch (c->chunk) {
    case CH_SIZE:
        r = read_line(c, deadline, &line);
        if (r <= 0) {
            if (r == 0) c->body_done = true;
            return r;
        }
        {
            char *end;
            long long size = strtoll(line, &end, 16);
            bool ok = end != line && size >= 0;
            free(line);
            if (!ok) return -1;
            c->remaining = size;
            c->chunk = size == 0 ? CH_TRAILER : CH_DATA;
        }
        return 1;
    case CH_DATA:
        if (c->pos == c->len) {
            int f = fill(c, deadline);
            if (f <= 0) {
                if (f == 0) c->body_done = true;
                return f;
            }
        }
        c->remaining -= (long long)take_raw(c, c->remaining);
        if (c->remaining == 0) c->chunk = CH_DATA_END;
        return 1;
    case CH_DATA_END:
        r = read_line(c, deadline, &line);
        if (r <= 0) {
            if (r == 0) c->body_done = true;
            return r;
        }
        free(line);
        c->chunk = CH_SIZE;
        return 1;
    case CH_TRAILER:
        r = read_line(c, deadline, &line);
        if (r <= 0) {
            if (r == 0) c->body_done = true;
            return r;
        }
        if (line[0] == '\0') c->body_done = true;
        free(line);
        return 1;
    }
    return -1;
}

void dzt_response_free(dzt_response *r) {
    if (!r) return;
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof *r);
}

const char *dzt_response_header(const dzt_response *r, const char *name, char *buf, size_t cap) {
    if (!r->headers) return NULL;
    size_t nl = strlen(name);
    for (const char *p = r->headers; *p;) {
        const char *end = strstr(p, "\r\n");
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t') v++;
            size_t vl = len - (size_t)(v - p);
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
            if (vl >= cap) vl = cap - 1;
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            return buf;
        }
        if (!end) break;
        p = end + 2;
    }
    return NULL;
}

int dzt_http_read_head(dzt_http *c, int timeout_ms, dzt_response *r) {
    long long deadline = dzt_now_ms() + timeout_ms;
    memset(r, 0, sizeof *r);
    for (;;) {
        char *line = NULL;
        if (read_line(c, deadline, &line) <= 0) return -1;
        if (line[0] == '\0') { /* stray CRLF between responses */
            free(line);
            continue;
        }
        int status = 0;
        bool ok = sscanf(line, "HTTP/1.%*d %d", &status) == 1 && status >= 100 && status <= 999;
        free(line);
        if (!ok) return -1;
        size_t hlen = 0, hcap = 0;
        char *headers = NULL;
        grow(&headers, &hcap, 1);
        headers[0] = '\0';
        for (;;) {
            if (read_line(c, deadline, &line) <= 0) {
                free(headers);
                return -1;
            }
            if (line[0] == '\0') {
                free(line);
                break;
            }
            size_t n = strlen(line);
            if (grow(&headers, &hcap, hlen + n + 3)) {
                memcpy(headers + hlen, line, n);
                memcpy(headers + hlen + n, "\r\n", 3);
                hlen += n + 2;
            }
            free(line);
        }
        if (status < 200) { /* 100 Continue and friends: the real response follows */
            free(headers);
            continue;
        }
        r->status = status;
        r->headers = headers;
        break;
    }
    char v[64];
    c->dlen = 0;
    c->body_done = false;
    c->chunk = CH_SIZE;
    c->remaining = 0;
    if (r->status == 204 || r->status == 304) {
        c->mode = BODY_NONE;
    } else if (dzt_response_header(r, "Transfer-Encoding", v, sizeof v) && strcasestr(v, "chunked")) {
        c->mode = BODY_CHUNKED;
    } else if (dzt_response_header(r, "Content-Length", v, sizeof v)) {
        c->mode = BODY_LENGTH;
        c->remaining = strtoll(v, NULL, 10);
    } else {
        c->mode = BODY_UNTIL_CLOSE;
    }
    return 0;
}

int dzt_http_read_response(dzt_http *c, int timeout_ms, dzt_response *r) {
    long long deadline = dzt_now_ms() + timeout_ms;
    if (dzt_http_read_head(c, timeout_ms, r) != 0) return -1;
    int s;
    while ((s = body_step(c, deadline)) > 0) {
    }
    r->body = malloc(c->dlen + 1);
    if (!r->body) return -1;
    memcpy(r->body, c->dec ? c->dec : "", c->dlen);
    r->body[c->dlen] = '\0';
    r->body_len = c->dlen;
    c->dlen = 0;
    if (s < 0) return -1;
    /* a Content-Length body cut short by a close is incomplete */
    if (c->mode == BODY_LENGTH && c->remaining > 0) return -1;
    return 0;
}

/* Finds the end of an event ("\n\n" or "\r\n\r\n") in the decoded bytes. */
static char *event_end(char *p, size_t n, size_t *sep) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] == '\n' && p[i + 1] == '\n') {
            *sep = 2;
            return p + i;
        }
        if (i + 3 < n && p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
            *sep = 4;
            return p + i;
        }
    }
    return NULL;
}

int dzt_http_next_event(dzt_http *c, int timeout_ms, char **data) {
    long long deadline = dzt_now_ms() + timeout_ms;
    *data = NULL;
    for (;;) {
        size_t sep = 0;
        char *end = c->dec ? event_end(c->dec, c->dlen, &sep) : NULL;
        if (end) {
            size_t elen = (size_t)(end - c->dec);
            char *out = malloc(elen + 1);
            size_t olen = 0;
            bool has_data = false;
            if (!out) return -1;
            /* collect the data: lines of the event */
            for (size_t i = 0; i < elen;) {
                size_t j = i;
                while (j < elen && c->dec[j] != '\n') j++;
                size_t ll = j - i;
                if (ll > 0 && c->dec[i + ll - 1] == '\r') ll--;
                if (ll >= 5 && memcmp(c->dec + i, "data:", 5) == 0) {
                    size_t k = i + 5;
                    if (k < i + ll && c->dec[k] == ' ') k++;
                    if (has_data) out[olen++] = '\n';
                    has_data = true;
                    memcpy(out + olen, c->dec + k, i + ll - k);
                    olen += i + ll - k;
                }
                i = j + 1;
            }
            out[olen] = '\0';
            memmove(c->dec, c->dec + elen + sep, c->dlen - elen - sep);
            c->dlen -= elen + sep;
            if (!has_data) {
                /* an event of comments only: skip it */
                free(out);
                continue;
            }
            *data = out;
            return 1;
        }
        int s = body_step(c, deadline);
        if (s == 0) return 0;
        if (s < 0) return -1;
    }
}

int dzt_http_wait_closed(dzt_http *c, int timeout_ms) {
    long long deadline = dzt_now_ms() + timeout_ms;
    for (;;) {
        c->pos = c->len = 0;
        int f = fill(c, deadline);
        if (f == 0) return 1;
        if (f < 0) return 0;
    }
}

int dzt_http_peer_closed(dzt_http *c) {
    if (c->eof) return 1;
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return 1;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return 1;
    return 0;
}

int dzt_http_readable(dzt_http *c, int timeout_ms) {
    if (c->eof || c->pos < c->len) return 1;
    struct pollfd pf = {.fd = c->fd, .events = POLLIN};
    return poll(&pf, 1, timeout_ms) > 0 ? 1 : 0;
}

int dzt_http_request(const char *host, int port, const char *method, const char *path,
                     const char *extra_headers, const char *body, int timeout_ms, dzt_response *r) {
    memset(r, 0, sizeof *r);
    dzt_http *c = dzt_http_connect(host, port, timeout_ms);
    if (!c) return -1;
    size_t el = extra_headers ? strlen(extra_headers) : 0;
    char *headers = malloc(el + 32);
    if (!headers) {
        dzt_http_close(c);
        return -1;
    }
    snprintf(headers, el + 32, "%sConnection: close\r\n", extra_headers ? extra_headers : "");
    int rc = dzt_http_send_request(c, method, path, headers, body, body ? strlen(body) : 0, timeout_ms);
    free(headers);
    /* read even when the send failed: the server may have answered early */
    int got = dzt_http_read_response(c, timeout_ms, r);
    dzt_http_close(c);
    (void)rc;
    if (got != 0 && r->status == 0) return -1;
    return r->status;
}
