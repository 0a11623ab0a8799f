/* libFuzzer target for the whole HTTP path of dizuo serve: the input is the
 * raw bytes a client sends on one connection (request line, headers, body,
 * pipelined requests), handed to the real libmicrohttpd daemon over a
 * socketpair (MHD_add_connection, no listening socket). The server runs
 * without a model, so generation routes parse their bodies and answer 503;
 * routing, authentication, the admin API, body limits, the parsers and the
 * error responses run for real. "@KEY@" in the input is replaced by a valid
 * admin key, so the fuzzer reaches past authentication. Never crash, leak,
 * or hang. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dizuo/tenancy.h"
#include "serve/serve.h"

static dz_server *server;
static char key[DZ_KEY_LEN + 1];

static void setup(void) {
    char db[64];
    snprintf(db, sizeof db, "/tmp/fuzz_http_%d.db", (int)getpid());
    unlink(db);
    dz_serve_config c;
    if (dz_serve_config_init(&c) || dz_serve_config_set_str(&c.db, db) ||
        dz_serve_config_set_str(&c.access_log, "/dev/null"))
        abort();
    c.max_body_bytes = 64 * 1024;
    c.max_connections = 1024;
    c.max_connections_per_ip = 0;
    c.idle_timeout_s = 2;
    if (dz_server_create(&c, &server) || dz_server_start(server, false)) abort();
    dz_serve_config_clear(&c);
    dz_key_spec spec = {.tenant = "fuzz", .admin = true};
    int64_t id = 0;
    if (dz_ledger_key_create(dz_server_ledger(server), &spec, key, &id)) abort();
}

/* The input with every "@KEY@" replaced by the admin key. */
static char *expand(const uint8_t *data, size_t size, size_t *out_len) {
    char *out = malloc(size * (DZ_KEY_LEN / 5 + 2) + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < size;) {
        if (i + 5 <= size && !memcmp(data + i, "@KEY@", 5)) {
            memcpy(out + o, key, DZ_KEY_LEN);
            o += DZ_KEY_LEN;
            i += 5;
        } else {
            out[o++] = (char)data[i++];
        }
    }
    *out_len = o;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!server) setup();
    size_t len = 0;
    char *req = expand(data, size, &len);
    if (!req) return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        free(req);
        return 0;
    }
    if (dz_server_add_connection(server, sv[0]) != DZ_OK) { /* the daemon closed sv[0] */
        close(sv[1]);
        free(req);
        return 0;
    }
    /* send everything (the daemon reads concurrently), then read the answers to EOF */
    size_t off = 0;
    char buf[65536];
    while (off < len) {
        struct pollfd p = {.fd = sv[1], .events = POLLOUT | POLLIN};
        if (poll(&p, 1, 5000) <= 0) break;
        if (p.revents & POLLIN) {
            ssize_t n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0) break;
        }
        if (p.revents & POLLOUT) {
            ssize_t n = send(sv[1], req + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n <= 0) break;
            off += (size_t)n;
        }
        if (p.revents & (POLLHUP | POLLERR)) break;
    }
    shutdown(sv[1], SHUT_WR);
    for (;;) {
        struct pollfd p = {.fd = sv[1], .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0) { fprintf(stderr, "STALL fd=%d\n", sv[0]); raise(SIGSTOP); } /* DEBUG */
        ssize_t n = recv(sv[1], buf, sizeof buf, 0);
        if (n <= 0) break;
    }
    close(sv[1]);
    free(req);
    return 0;
}
