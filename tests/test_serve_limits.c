/* Resource limits and billing edges of `dizuo serve` (review findings):
 *  - logprobs are kept compact: a large logprobs request costs memory in
 *    proportion to its response, and one past max_logprob_entries is a 400
 *    naming the logprobs parameter;
 *  - a streaming client that does not read is cut once max_queued_bytes are
 *    queued for it: the generation is cancelled (row "cancelled" with the
 *    tokens computed) and the connection closed;
 *  - a key whose TPM cannot admit a request gets a 400 naming max_tokens;
 *  - GET /v1/usage with a filter the ledger refuses is a 400 naming it;
 *  - a 503 of an n > 1 request refused part way (engine queue full) bills
 *    nothing when nothing was computed;
 *  - on SIGTERM a request never admitted gets 503 and no usage row, while
 *    new requests keep arriving; the server exits promptly (a request let in
 *    during the drain is cancelled too).
 *
 * Needs ../shared/models/stories260K.gguf (skips, exit 77, when absent) and
 * the dizuo binary (env DZ_BIN). */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dizuo/tenancy.h"
#include "dztest.h"
#include "http_client.h"
#include "serve_check.h"
#include "serve_proc.h"

enum { TIMEOUT_MS = 30000 };

static char g_model_path[1024];

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Creates a key in db; writes "Authorization: Bearer KEY\r\n" into auth. */
static void make_key(const char *db, const dz_key_spec *spec, char auth[128]) {
    dz_ledger *l = NULL;
    DZT_OK(dz_ledger_open(db, DZ_LEDGER_CREATE, &l));
    if (!l) exit(dzt_done());
    char key[DZ_KEY_LEN + 1];
    int64_t id;
    DZT_OK(dz_ledger_key_create(l, spec, key, &id));
    snprintf(auth, 128, "Authorization: Bearer %s\r\n", key);
    dz_ledger_close(l);
}

/* Starts a server on db with a config file holding config_json. */
static bool start(dzt_server *s, const char *tag, const char *db, const char *parallel, const char *ctx,
                  const char *config_json) {
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/%s.json", dzt_tmpdir(), tag);
    FILE *f = fopen(cfg, "w");
    if (!f) return false;
    fputs(config_json, f);
    fclose(f);
    const char *args[] = {"-m", g_model_path, "--port", "0", "--db", db, "--parallel", parallel, "-t", "2",
                          "-c", ctx, "--config", cfg, NULL};
    int st = dzt_server_start(s, tag, args, 30000);
    DZT_CHECK(st == 0, "dizuo serve did not start with %s", config_json);
    if (st) return false;
    dzt_response r;
    for (int i = 0; i < 200; i++) {
        int code = dzt_http_request("127.0.0.1", s->port, "GET", "/ready", NULL, NULL, 5000, &r);
        dzt_response_free(&r);
        if (code == 200) return true;
        sleep_ms(50);
    }
    DZT_CHECK(false, "%s: never ready", tag);
    return false;
}

static double metric(const dzt_server *s, const char *name) {
    dzt_response r;
    double v = -1;
    if (dzt_http_request("127.0.0.1", s->port, "GET", "/metrics", NULL, NULL, 5000, &r) == 200)
        v = dzt_metric_sum(r.body, name);
    dzt_response_free(&r);
    return v;
}

/* Waits until metric name reaches at least want (true) or timeout_ms passes. */
static bool wait_metric(const dzt_server *s, const char *name, double want, int timeout_ms) {
    long long until = dzt_now_ms() + timeout_ms;
    while (dzt_now_ms() < until) {
        if (metric(s, name) >= want) return true;
        sleep_ms(50);
    }
    return false;
}

/* Waits until metric name is exactly want (true) or timeout_ms passes. */
static bool wait_metric_eq(const dzt_server *s, const char *name, double want, int timeout_ms) {
    long long until = dzt_now_ms() + timeout_ms;
    do {
        if (metric(s, name) == want) return true;
        sleep_ms(50);
    } while (dzt_now_ms() < until);
    return false;
}

/* A field of /proc/PID/status in kB (-1: none). */
static long proc_kb(pid_t pid, const char *field) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

/* Resets the peak RSS (VmHWM) of pid to its current RSS; false when the
 * kernel does not allow it. */
static bool reset_peak(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/clear_refs", (int)pid);
    FILE *f = fopen(path, "w");
    if (!f) return false;
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

/* ---- server 1: limits ---------------------------------------------------- */

static dzt_server g1;
static char g1_db[512], g1_auth[128], g1_admin[128], g1_tpm[128];

static void expect_error(const char *label, const char *method, const char *path, const char *auth, const char *body,
                         int status, const char *param, const char *code) {
    dzt_response r;
    dzt_http_request("127.0.0.1", g1.port, method, path, auth, body, TIMEOUT_MS, &r);
    dzt_want_error w = {status, 0, param, code, NULL};
    dzt_check_oai_error(label, body ? body : path, body ? strlen(body) : strlen(path), &r, &w);
    dzt_response_free(&r);
}

/* 1a: the logprobs bound and the memory of a large logprobs response. */
static void test_logprobs(void) {
    /* 16 x 2000 x 21 = 672000 values > 400000 (the configured bound) */
    expect_error("completions logprobs past the bound", "POST", "/v1/completions", g1_auth,
                 "{\"prompt\":\"Once upon a time\",\"max_tokens\":2000,\"ignore_eos\":true,\"n\":16,\"logprobs\":20}",
                 400, "logprobs", NULL);
    expect_error("chat top_logprobs past the bound", "POST", "/v1/chat/completions", g1_auth,
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":2000,\"n\":16,"
                 "\"logprobs\":true,\"top_logprobs\":20}",
                 400, "top_logprobs", NULL);
    /* no max_tokens: it defaults to the rest of the context (16 x ~2000 x 21 > 400000) */
    expect_error("chat top_logprobs, default max_tokens", "POST", "/v1/chat/completions", g1_auth,
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"n\":16,\"logprobs\":true,"
                 "\"top_logprobs\":20}",
                 400, "top_logprobs", NULL);

    /* within the bound: 16 x 150 x 21 = 50400 values. Peak memory must stay
     * within a few times the response (a JSON object per value took ~1 KB) */
    const char *big = "{\"prompt\":\"Once upon a time\",\"max_tokens\":150,\"ignore_eos\":true,\"n\":16,\"logprobs\":20}";
    long rss0 = proc_kb(g1.pid, "VmRSS");
    bool peak_ok = reset_peak(g1.pid);
    dzt_response r;
    long long t0 = dzt_now_ms();
    int st = dzt_http_request("127.0.0.1", g1.port, "POST", "/v1/completions", g1_auth, big, TIMEOUT_MS, &r);
    long hwm = proc_kb(g1.pid, "VmHWM"), rss1 = proc_kb(g1.pid, "VmRSS");
    DZT_EQ_INT(st, 200);
    json_t *j = st == 200 ? json_loads(r.body, 0, NULL) : NULL;
    DZT_CHECK(j != NULL, "the logprobs response is not JSON: %.200s", r.body ? r.body : "");
    json_t *choices = json_object_get(j, "choices");
    DZT_EQ_INT(json_array_size(choices), 16);
    size_t i;
    json_t *ch;
    long long completion = 0;
    json_array_foreach(choices, i, ch) {
        json_t *lp = json_object_get(ch, "logprobs");
        json_t *toks = json_object_get(lp, "tokens"), *lps = json_object_get(lp, "token_logprobs"),
               *tops = json_object_get(lp, "top_logprobs"), *offs = json_object_get(lp, "text_offset");
        DZT_EQ_INT(json_array_size(toks), 150);
        DZT_EQ_INT(json_array_size(lps), 150);
        DZT_EQ_INT(json_array_size(tops), 150);
        DZT_EQ_INT(json_array_size(offs), 150);
        /* the tokens concatenated are the text; offsets are where each starts; logprobs <= 0 */
        const char *text = json_string_value(json_object_get(ch, "text"));
        size_t at = 0, k;
        json_t *t;
        bool joined = text != NULL, offsets = true, negative = true, tops_ok = true;
        json_array_foreach(toks, k, t) {
            size_t n = json_string_length(t);
            if (json_integer_value(json_array_get(offs, k)) != (json_int_t)at) offsets = false;
            if (!text || strncmp(text + at, json_string_value(t), n)) joined = false;
            at += n;
            if (!json_is_real(json_array_get(lps, k)) || json_real_value(json_array_get(lps, k)) > 0) negative = false;
            json_t *top = json_array_get(tops, k);
            if (!json_is_object(top) || json_object_size(top) < 1 || json_object_size(top) > 20) tops_ok = false;
        }
        DZT_CHECK(joined && text && at == strlen(text), "choice %zu: the logprob tokens do not spell the text", i);
        DZT_CHECK(offsets, "choice %zu: text_offset is not where each token starts", i);
        DZT_CHECK(negative, "choice %zu: a token_logprob is not a real <= 0", i);
        DZT_CHECK(tops_ok, "choice %zu: top_logprobs not objects of 1..20 entries", i);
    }
    completion = json_integer_value(json_object_get(json_object_get(j, "usage"), "completion_tokens"));
    DZT_EQ_INT(completion, 16 * 150);
    json_decref(j);
    long growth = (peak_ok ? hwm : rss1) - rss0; /* kB */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    growth = 0; /* a sanitizer's quarantine and shadow memory make RSS meaningless here */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    growth = 0;
#endif
#endif
    long limit = (long)(r.body_len * 4 / 1024) + 8 * 1024;
    fprintf(stderr, "logprobs 16 x 150 x 21: %lld ms, body %zu bytes, peak RSS +%ld kB (limit %ld kB)%s\n",
            dzt_now_ms() - t0, r.body_len, growth, limit, peak_ok ? "" : " [no peak reset: RSS after]");
    DZT_CHECK(growth < limit, "a logprobs response of %zu bytes raised the peak RSS by %ld kB (limit %ld kB)",
              r.body_len, growth, limit);
    dzt_response_free(&r);

    /* chat: entries {token, logprob, bytes, top_logprobs[{token, logprob, bytes}]}, most likely first */
    const char *chat = "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":8,\"n\":2,"
                       "\"ignore_eos\":true,\"logprobs\":true,\"top_logprobs\":3}";
    st = dzt_http_request("127.0.0.1", g1.port, "POST", "/v1/chat/completions", g1_auth, chat, TIMEOUT_MS, &r);
    DZT_EQ_INT(st, 200);
    j = st == 200 ? json_loads(r.body, 0, NULL) : NULL;
    json_array_foreach(json_object_get(j, "choices"), i, ch) {
        json_t *content = json_object_get(json_object_get(ch, "logprobs"), "content"), *e;
        DZT_EQ_INT(json_array_size(content), 8);
        size_t k;
        json_array_foreach(content, k, e) {
            json_t *top = json_object_get(e, "top_logprobs");
            const char *tok = json_string_value(json_object_get(e, "token"));
            json_t *bytes = json_object_get(e, "bytes");
            DZT_CHECK(tok && json_array_size(bytes) == strlen(tok), "chat entry %zu: bytes do not match the token", k);
            DZT_EQ_INT(json_array_size(top), 3);
            double prev = 1, best = json_real_value(json_object_get(json_array_get(top, 0), "logprob"));
            for (size_t a = 0; a < json_array_size(top); a++) {
                double v = json_real_value(json_object_get(json_array_get(top, a), "logprob"));
                DZT_CHECK(v <= prev && v <= 0, "chat entry %zu: top_logprobs not sorted / not <= 0", k);
                prev = v;
            }
            DZT_CHECK(json_real_value(json_object_get(e, "logprob")) <= best + 1e-6,
                      "chat entry %zu: the token is more likely than the best alternative", k);
        }
    }
    json_decref(j);
    dzt_response_free(&r);
}

/* A raw connection with a tiny receive buffer that sends a request and
 * reads only the response head. Returns the fd (-1 on failure); request id
 * into id. */
static int open_nonreader(int port, const char *auth, const char *body, char id[64]) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    char head[1024];
    int hl = snprintf(head, sizeof head,
                      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      auth, strlen(body));
    if (send(fd, head, (size_t)hl, MSG_NOSIGNAL) != hl || send(fd, body, strlen(body), MSG_NOSIGNAL) < 0) {
        close(fd);
        return -1;
    }
    /* the head, a byte at a time, so that little of the body is read */
    char buf[4096];
    size_t n = 0;
    long long until = dzt_now_ms() + TIMEOUT_MS;
    while (n + 1 < sizeof buf && dzt_now_ms() < until) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0) continue;
        if (recv(fd, buf + n, 1, 0) != 1) break;
        n++;
        buf[n] = '\0';
        if (n >= 4 && !memcmp(buf + n - 4, "\r\n\r\n", 4)) break;
    }
    buf[n] = '\0';
    id[0] = '\0';
    const char *h = strstr(buf, "X-Request-Id: ");
    if (h) sscanf(h + 14, "%63[^\r\n]", id);
    DZT_CHECK(!strncmp(buf, "HTTP/1.1 200", 12) && id[0], "the streamed request's head: %.200s", buf);
    return fd;
}

/* 1b: a streaming client that does not read is cut at max_queued_bytes. */
static void test_slow_stream(void) {
    /* 16 choices x 200 tokens, each chunk ~1.5 KB with 20 alternatives: ~5 MB of
     * events for a client with a 4 KB window and a 64 KB queue */
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story.\"}],\"max_tokens\":200,"
                       "\"n\":16,\"ignore_eos\":true,\"stream\":true,\"logprobs\":true,\"top_logprobs\":20}";
    char ids[2][64];
    int fds[2];
    long rss0 = proc_kb(g1.pid, "VmRSS");
    for (int k = 0; k < 2; k++) fds[k] = open_nonreader(g1.port, g1_auth, body, ids[k]);
    for (int k = 0; k < 2; k++) {
        if (fds[k] < 0) {
            DZT_CHECK(false, "could not open the non-reading stream %d", k);
            continue;
        }
        dzt_usage_row row = {0};
        bool found = false;
        long long until = dzt_now_ms() + 40000;
        while (!(found = dzt_ledger_row(g1_db, ids[k], &row)) && dzt_now_ms() < until) sleep_ms(100);
        DZT_CHECK(found, "no usage row for the non-reading stream %s within 40 s (the server kept generating for it)",
                  ids[k]);
        if (found) {
            DZT_CHECK(!strcmp(row.status, "cancelled"), "non-reading stream: row status '%s', expected cancelled",
                      row.status);
            DZT_CHECK(row.prompt > 0 && row.completion > 0 && row.completion < 16 * 200,
                      "non-reading stream: row prompt %lld completion %lld (some, not all of 3200, computed)",
                      row.prompt, row.completion);
        }
        /* the server closed the connection: what is left ends in EOF (or a reset) */
        char sink[65536];
        bool closed = false;
        long long end = dzt_now_ms() + 10000;
        while (!closed && dzt_now_ms() < end) {
            struct pollfd p = {.fd = fds[k], .events = POLLIN};
            if (poll(&p, 1, 200) <= 0) continue;
            ssize_t n = recv(fds[k], sink, sizeof sink, 0);
            closed = n <= 0;
        }
        DZT_CHECK(closed, "the server did not close the non-reading stream %d", k);
        close(fds[k]);
    }
    long rss1 = proc_kb(g1.pid, "VmRSS");
    fprintf(stderr, "two non-reading streams: RSS %ld -> %ld kB\n", rss0, rss1);
    DZT_CHECK(wait_metric_eq(&g1, "dizuo_running_sequences", 0, 5000),
              "sequences still running after the slow clients were cut");
}

/* The TPM-too-large answer and the usage filters. */
static void test_admission_and_usage(void) {
    /* tpm 100 < (prompt + 200): no wait can admit it */
    expect_error("request larger than the TPM", "POST", "/v1/completions", g1_tpm,
                 "{\"prompt\":\"Once upon a time\",\"max_tokens\":200}", 400, "max_tokens", "invalid_request_error");
    expect_error("usage tenant with a space", "GET", "/v1/usage?tenant=a%20b", g1_admin, NULL, 400, "tenant", NULL);
    expect_error("usage model with ..", "GET", "/v1/usage?model=a..b", g1_admin, NULL, 400, "model", NULL);
    expect_error("usage since bad", "GET", "/v1/usage?since=yesterday", g1_admin, NULL, 400, "since", NULL);
    dzt_response r;
    DZT_EQ_INT(dzt_http_request("127.0.0.1", g1.port, "GET", "/v1/usage?tenant=lim", g1_admin, NULL, 5000, &r), 200);
    dzt_response_free(&r);
}

/* ---- server 2: a one-sequence engine with a queue of 2 per tenant ---------- */

static dzt_server g2;
static char g2_db[512], g2_auth[128];

/* A long request on its own connection (its answer read later). */
static dzt_http *start_long(const char *body) {
    dzt_http *c = dzt_http_connect("127.0.0.1", g2.port, 5000);
    if (c) dzt_http_send_request(c, "POST", "/v1/completions", g2_auth, body, strlen(body), 5000);
    return c;
}

/* Long enough (seconds, even without sanitizers) to be still running when
 * the test acts on it; the tests cancel it long before its end. */
enum { LONG_TOKENS = 8000 };
static const char *LONG_BODY = "{\"prompt\":\"Once upon a time\",\"max_tokens\":8000,\"ignore_eos\":true}";

/* 2: choice 2 of 3 refused (queue full) while 0 and 1 wait: 503, not billed. */
static void test_partial_503(void) {
    dzt_http *occ = start_long(LONG_BODY);
    DZT_CHECK(occ && wait_metric(&g2, "dizuo_running_sequences", 1, 10000), "the long request did not start");
    const char *body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":5,\"n\":3}";
    dzt_response r;
    int st = dzt_http_request("127.0.0.1", g2.port, "POST", "/v1/completions", g2_auth, body, TIMEOUT_MS, &r);
    dzt_want_error w = {503, 0, "null", "server_overloaded", NULL};
    dzt_check_oai_error("n=3 with room for 2 waiting", body, strlen(body), &r, &w);
    char id[64], ra[32];
    DZT_CHECK(dzt_response_header(&r, "Retry-After", ra, sizeof ra) != NULL, "503 without Retry-After");
    if (dzt_response_header(&r, "X-Request-Id", id, sizeof id)) {
        dzt_usage_row row;
        bool found = dzt_ledger_row(g2_db, id, &row);
        DZT_CHECK(!found, "the 503 (status %d) was billed: row %s prompt %lld completion %lld", st, row.status,
                  row.prompt, row.completion);
    } else {
        DZT_CHECK(false, "the 503 has no X-Request-Id");
    }
    dzt_response_free(&r);
    dzt_http_abort(occ); /* cancelled */
    DZT_CHECK(wait_metric_eq(&g2, "dizuo_running_sequences", 0, 10000), "the abandoned long request still runs");
}

static atomic_bool g_hammer_stop;
static atomic_int g_hammer_sent, g_hammer_503;

/* Sends requests back to back until told to stop or the server is gone. */
static void *hammer_main(void *arg) {
    (void)arg;
    const char *body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":1900,\"ignore_eos\":true,\"n\":2}";
    while (!atomic_load(&g_hammer_stop)) {
        dzt_response r;
        int st = dzt_http_request("127.0.0.1", g2.port, "POST", "/v1/completions", g2_auth, body, 60000, &r);
        dzt_response_free(&r);
        atomic_fetch_add(&g_hammer_sent, 1);
        if (st == 503) atomic_fetch_add(&g_hammer_503, 1);
        if (st < 0) break; /* the server stopped */
    }
    return NULL;
}

/* Drain: the running request is cancelled and billed what it computed; one
 * never admitted gets 503 and no row; requests arriving meanwhile do not
 * hold the exit back. */
static void test_drain(void) {
    dzt_http *occ = start_long(LONG_BODY);
    DZT_CHECK(occ && wait_metric(&g2, "dizuo_running_sequences", 1, 10000), "the long request did not start");
    dzt_http *waiting = start_long("{\"prompt\":\"Once upon a time\",\"max_tokens\":5}");
    DZT_CHECK(waiting && wait_metric(&g2, "dizuo_queue_length", 1, 10000), "the second request is not queued");
    pthread_t th[4];
    atomic_store(&g_hammer_stop, false);
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, hammer_main, NULL);
    for (long long until = dzt_now_ms() + 2000; atomic_load(&g_hammer_sent) < 4 && dzt_now_ms() < until;)
        sleep_ms(10);
    /* what the checks below rely on: the long request still runs, one waits */
    DZT_CHECK(!dzt_http_readable(occ, 0) && metric(&g2, "dizuo_running_sequences") == 1 &&
                  metric(&g2, "dizuo_queue_length") >= 1,
              "before SIGTERM: the long request already ended or none waits (the machine is too slow for this test)");
    long long t0 = dzt_now_ms();
    kill(g2.pid, SIGTERM);
    dzt_response r1, r2;
    dzt_http_read_response(waiting, TIMEOUT_MS, &r2);
    dzt_http_read_response(occ, TIMEOUT_MS, &r1);
    int code = dzt_server_stop(&g2, SIGTERM, 30000);
    long long took = dzt_now_ms() - t0;
    atomic_store(&g_hammer_stop, true);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    fprintf(stderr, "drain: exit %d after %lld ms; %d requests sent meanwhile (%d got 503)\n", code, took,
            atomic_load(&g_hammer_sent), atomic_load(&g_hammer_503));
    DZT_EQ_INT(code, 0);
    DZT_CHECK(took < 10000, "the drain took %lld ms (drain_timeout_s 0)", took);
    /* the one never admitted */
    dzt_want_error w = {503, 0, "null", "server_shutting_down", NULL};
    dzt_check_oai_error("never admitted at the drain", "(queued request)", 16, &r2, &w);
    char id[64];
    dzt_usage_row row;
    if (dzt_response_header(&r2, "X-Request-Id", id, sizeof id))
        DZT_CHECK(!dzt_ledger_row(g2_db, id, &row), "a request never admitted was billed at the drain: %s %lld+%lld",
                  row.status, row.prompt, row.completion);
    /* the running one: billed as cancelled with what it computed */
    DZT_CHECK(r1.status == 200, "the running request at the drain: %d", r1.status);
    if (dzt_response_header(&r1, "X-Request-Id", id, sizeof id)) {
        bool found = dzt_ledger_row(g2_db, id, &row);
        DZT_CHECK(found && !strcmp(row.status, "cancelled") && row.completion > 0 && row.completion < LONG_TOKENS,
                  "the running request's row: %s %s %lld+%lld", found ? "found" : "missing", found ? row.status : "",
                  row.prompt, row.completion);
    }
    dzt_response_free(&r1);
    dzt_response_free(&r2);
    dzt_http_close(occ);
    dzt_http_close(waiting);
}

int main(void) {
    char *model = dzt_shared("models/stories260K.gguf");
    if (!dzt_serve_available()) {
        printf("SKIP: %s has no `serve` command yet\n", dzt_bin());
        return 77;
    }
    snprintf(g_model_path, sizeof g_model_path, "%s", model);
    long long t0 = dzt_now_ms();

    snprintf(g1_db, sizeof g1_db, "%s/limits.db", dzt_tmpdir());
    dz_key_spec plain = {.tenant = "lim"}, admin = {.tenant = "ops", .admin = true},
                tpm = {.tenant = "tpm", .tpm = 100};
    make_key(g1_db, &plain, g1_auth);
    make_key(g1_db, &admin, g1_admin);
    make_key(g1_db, &tpm, g1_tpm);
    if (start(&g1, "limits", g1_db, "4", "2048", "{\"max_logprob_entries\": 400000, \"max_queued_bytes\": 65536}\n")) {
        test_logprobs();
        test_admission_and_usage();
        test_slow_stream();
        DZT_EQ_INT(dzt_server_stop(&g1, SIGTERM, 30000), 0);
    }

    snprintf(g2_db, sizeof g2_db, "%s/queue.db", dzt_tmpdir());
    make_key(g2_db, &plain, g2_auth);
    if (start(&g2, "queue", g2_db, "1", "8192",
              "{\"max_waiting\": 4, \"drain_timeout_s\": 0, \"request_timeout_s\": 120}\n")) {
        test_partial_503();
        test_drain();
        if (g2.pid) dzt_server_stop(&g2, SIGKILL, 5000);
    }
    fprintf(stderr, "test_serve_limits: %lld ms\n", dzt_now_ms() - t0);
    if (dzt_failed) {
        dzt_server_print_log(&g1, 2000);
        dzt_server_print_log(&g2, 2000);
    }
    free(model);
    return dzt_done();
}
