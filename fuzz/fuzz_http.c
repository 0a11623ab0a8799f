/* libFuzzer target for the whole HTTP path of dizuo serve: the input is the
 * raw bytes a client sends on one connection (request line, headers, body,
 * pipelined requests), handed to the real libmicrohttpd daemon over a
 * socketpair (MHD_add_connection, no listening socket). The server runs
 * without a model, so generation routes parse their bodies and answer 503;
 * routing, authentication, the admin API, body limits, the parsers and the
 * error responses run for real. "@KEY@" in the input is replaced by a valid
 * admin key, so the fuzzer reaches past authentication. Never crash, leak,
 * or hang: within HANG_SECONDS of the client's last byte the answers must
 * end (EOF) and the daemon must have released the connection (its thread
 * joined, its socket closed, its request freed).
 *
 * libFuzzer's -timeout watchdog is a SIGALRM every timeout/2+1 seconds
 * without SA_RESTART: it interrupts whatever this thread waits in, so every
 * wait here retries on EINTR against a monotonic deadline (fuzz/README.md). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dizuo/tenancy.h"
#include "serve/serve.h"
#include "serve/serve_impl.h" /* the daemon and the live request count: the release check */

#define HANG_SECONDS 10.0

static dz_server *server;
static char key[DZ_KEY_LEN + 1];

static char db[64];

/* At exit (libFuzzer's -max_total_time, -runs): the ledger files go. */
static void remove_db(void) {
    char path[80];
    unlink(db);
    snprintf(path, sizeof path, "%s-wal", db);
    unlink(path);
    snprintf(path, sizeof path, "%s-shm", db);
    unlink(path);
}

static void setup(void) {
    snprintf(db, sizeof db, "/tmp/fuzz_http_%d.db", (int)getpid());
    remove_db();
    atexit(remove_db);
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
}

/* A valid admin key in `key` for every input: an input may revoke it
 * (DELETE /v1/admin/keys/{id}), and the inputs after it must still get past
 * authentication (and one input replayed alone must behave the same). */
static void ensure_admin_key(void) {
    dz_auth_result ar = DZ_AUTH_UNKNOWN;
    if (key[0] && dz_ledger_authenticate(dz_server_ledger(server), key, &ar, NULL) == DZ_OK && ar == DZ_AUTH_OK)
        return;
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

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* poll() on one fd until an event or `deadline` (now_s()), retrying when a
 * signal interrupts it. Returns revents; 0 once the deadline has passed. */
static short poll_until(int fd, short events, double deadline) {
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0) return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n > 0) return p.revents;
        if (n < 0 && errno != EINTR) return POLLERR;
    }
}

/* Connections the daemon still holds (the count drops once it has joined
 * the connection's thread and closed its socket) plus requests not freed. */
static unsigned busy(void) {
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(server->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return (di ? di->num_connections : 0) + (unsigned)atomic_load(&server->live_reqs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!server) setup();
    ensure_admin_key();
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
    /* send everything (the daemon reads concurrently, and may answer or
     * close early), then read the answers to EOF */
    size_t off = 0;
    char buf[65536];
    double deadline = now_s() + HANG_SECONDS;
    while (off < len) {
        short ev = poll_until(sv[1], POLLOUT | POLLIN, deadline);
        if (!ev) break; /* the daemon stopped reading: send no more, see whether it answers */
        if (ev & POLLIN) {
            ssize_t n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0) break;
        }
        if (ev & POLLOUT) {
            ssize_t n = send(sv[1], req + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (n <= 0) break;
            off += (size_t)n;
        }
        if (ev & (POLLHUP | POLLERR | POLLNVAL)) break;
    }
    shutdown(sv[1], SHUT_WR);
    deadline = now_s() + HANG_SECONDS;
    for (;;) {
        if (!poll_until(sv[1], POLLIN, deadline)) __builtin_trap(); /* no EOF: the server hung on this input */
        ssize_t n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) break;
    }
    close(sv[1]);
    free(req);
    /* one input at a time: nothing of this one may still run during the
     * next one or during libFuzzer's leak check */
    while (busy()) {
        if (now_s() > deadline) __builtin_trap(); /* the daemon never released the connection */
        struct timespec ts = {0, 200 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}
