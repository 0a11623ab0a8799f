/* A tiny raw HTTP/1.1 client for tests that drive `dizuo serve` over a
 * socket: it sends whatever bytes the test gives it (malformed requests
 * included), reads a response's status line, headers and body (Content-Length,
 * chunked, or until close) with a deadline, reads Server-Sent Events one at a
 * time while the server is still streaming, and connects or closes at will.
 *
 * Nothing here interprets JSON; tests parse bodies with jansson. Every call
 * takes a timeout in milliseconds and never blocks longer. Sends use
 * MSG_NOSIGNAL, so a peer that closed gives an error, not SIGPIPE.
 * Not thread-safe per connection; separate connections are independent. */
#ifndef DZT_HTTP_CLIENT_H
#define DZT_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct dzt_http dzt_http;

/* A response: status 0 when none arrived. headers is the raw header block
 * (lines after the status line, "\r\n"-separated), body the decoded body
 * (chunked encoding removed), both malloc'd and NUL-terminated. */
typedef struct dzt_response {
    int status;
    char *headers;
    char *body;
    size_t body_len;
} dzt_response;

/* Connects to host:port (IPv4 dotted or "localhost"). NULL on failure. */
dzt_http *dzt_http_connect(const char *host, int port, int timeout_ms);

/* Closes the socket and frees the connection; dzt_http_abort closes with a
 * reset (SO_LINGER 0), as a client that vanishes. NULL is a no-op. */
void dzt_http_close(dzt_http *c);
void dzt_http_abort(dzt_http *c);

/* Sends all len bytes. 0 when sent, -1 when the peer closed or the deadline
 * passed (a peer that stops reading blocks the send). */
int dzt_http_send(dzt_http *c, const void *data, size_t len, int timeout_ms);

/* Sends a request: "METHOD PATH HTTP/1.1", Host, extra header lines (each
 * ending in "\r\n", may be NULL), Content-Length of body when body is not
 * NULL, then the body. */
int dzt_http_send_request(dzt_http *c, const char *method, const char *path, const char *extra_headers,
                          const char *body, size_t body_len, int timeout_ms);

/* Reads a whole response (skipping 1xx interim ones). 0 when a complete
 * response arrived; -1 otherwise (r->status may still be set when the head
 * arrived but the body did not). r is reset first; free it with
 * dzt_response_free. */
int dzt_http_read_response(dzt_http *c, int timeout_ms, dzt_response *r);

/* Reads only the status line and headers (for a streamed body, read next
 * with dzt_http_next_event). Same return convention. */
int dzt_http_read_head(dzt_http *c, int timeout_ms, dzt_response *r);

/* The next SSE event of a streamed body after dzt_http_read_head: *data
 * receives the event's data lines joined with '\n' (malloc'd). Returns 1 for
 * an event, 0 when the body ended (cleanly or by the server closing),
 * -1 on timeout or socket error. Comment lines and fields other than data
 * are skipped. */
int dzt_http_next_event(dzt_http *c, int timeout_ms, char **data);

/* Whether the server closes the connection within timeout_ms (anything it
 * sends meanwhile is read and discarded; a reset counts as closed).
 * Returns 1 closed, 0 still open. */
int dzt_http_wait_closed(dzt_http *c, int timeout_ms);

/* Non-blocking probe: 1 when the peer has closed (EOF/reset seen or
 * pending), 0 otherwise. Data that is waiting is kept. */
int dzt_http_peer_closed(dzt_http *c);

/* Whether a response byte (or the close) is waiting, within timeout_ms:
 * 1 yes, 0 no. Reads nothing. */
int dzt_http_readable(dzt_http *c, int timeout_ms);

/* The value of header name (case-insensitive) copied into buf, or NULL. */
const char *dzt_response_header(const dzt_response *r, const char *name, char *buf, size_t cap);

void dzt_response_free(dzt_response *r);

/* One request on a fresh connection ("Connection: close" is added), the
 * response read into *r. Returns the status, or -1 when none came. */
int dzt_http_request(const char *host, int port, const char *method, const char *path,
                     const char *extra_headers, const char *body, int timeout_ms, dzt_response *r);

/* Milliseconds of a monotonic clock. */
long long dzt_now_ms(void);

#endif
