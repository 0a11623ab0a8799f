/* The usage ledger survives a crash of the server: 16 concurrent streaming
 * clients (chat and completions, stream_options.include_usage) load
 * `dizuo serve`, which is then killed with SIGKILL mid-load. Every request
 * whose client received `data: [DONE]` must be in the ledger exactly once with
 * the usage that client was shown; the database must pass integrity_check, the
 * key's used_tokens must equal the sum of its rows, and the server must
 * restart cleanly on the same file. Three kill/restart cycles, then a clean
 * SIGTERM shutdown (exit 0).
 *
 * Needs ../shared/models/stories260K.gguf (skips, exit 77, when absent) and the
 * dizuo binary (env DZ_BIN). */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "dizuo/tenancy.h"
#include "dztest.h"
#include "http_client.h"
#include "serve_proc.h"

enum { N_CLIENTS = 16, N_CYCLES = 3, READ_TIMEOUT_MS = 15000 };

/* What a client saw of one request that ended with [DONE]. */
typedef struct seen_request {
    char id[64];
    long long prompt, cached, completion;
} seen_request;

static struct {
    pthread_mutex_t mu;
    seen_request *v;
    size_t n, cap;
} g_seen = {.mu = PTHREAD_MUTEX_INITIALIZER};

static atomic_int g_stop, g_port;
static atomic_long g_done_cycle;     /* [DONE]s in the current cycle */
static atomic_long g_busy;           /* 429 / 503 answers (retried) */
static atomic_long g_bad_status;     /* other statuses while the server was up */
static atomic_long g_protocol_error; /* malformed streams (see check_chunk) */
static char g_auth[128];

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void protocol_error(const char *what, const char *data) {
    atomic_fetch_add(&g_protocol_error, 1);
    fprintf(stderr, "stream protocol error: %s: %.300s\n", what, data ? data : "(none)");
}

static void record_seen(const char *id, long long p, long long c, long long k) {
    pthread_mutex_lock(&g_seen.mu);
    if (g_seen.n == g_seen.cap) {
        size_t cap = g_seen.cap ? g_seen.cap * 2 : 256;
        seen_request *v = realloc(g_seen.v, cap * sizeof *v);
        if (!v) exit(1);
        g_seen.v = v;
        g_seen.cap = cap;
    }
    seen_request *r = &g_seen.v[g_seen.n++];
    snprintf(r->id, sizeof r->id, "%s", id);
    r->prompt = p;
    r->cached = c;
    r->completion = k;
    pthread_mutex_unlock(&g_seen.mu);
    atomic_fetch_add(&g_done_cycle, 1);
}

static const char *const topics[] = {"a cat", "the sea", "a little dragon", "Lily and her ball",
                                     "a rainy day", "the moon"};

/* One streamed request; records it when [DONE] arrived. */
static void one_request(unsigned *rng, bool chat) {
    int max_tokens = 16 + (int)(rand_r(rng) % 49);
    const char *topic = topics[rand_r(rng) % (sizeof topics / sizeof topics[0])];
    char body[1024];
    if (chat)
        snprintf(body, sizeof body,
                 "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"system\",\"content\":\"You tell "
                 "short stories.\"},{\"role\":\"user\",\"content\":\"Tell me about %s.\"}],"
                 "\"max_tokens\":%d,\"temperature\":0.8,\"seed\":%u,\"stream\":true,"
                 "\"stream_options\":{\"include_usage\":true}}",
                 topic, max_tokens, rand_r(rng) % 1000);
    else
        snprintf(body, sizeof body,
                 "{\"model\":\"stories260K\",\"prompt\":\"Once upon a time there was %s. It\","
                 "\"max_tokens\":%d,\"temperature\":0.8,\"seed\":%u,\"stream\":true,"
                 "\"stream_options\":{\"include_usage\":true}}",
                 topic, max_tokens, rand_r(rng) % 1000);
    dzt_http *c = dzt_http_connect("127.0.0.1", atomic_load(&g_port), 2000);
    if (!c) {
        sleep_ms(20);
        return;
    }
    dzt_response r;
    if (dzt_http_send_request(c, "POST", chat ? "/v1/chat/completions" : "/v1/completions",
                              g_auth, body, strlen(body), 5000) != 0 ||
        dzt_http_read_head(c, READ_TIMEOUT_MS, &r) != 0) {
        dzt_http_close(c);
        sleep_ms(20);
        return;
    }
    if (r.status == 429 || r.status == 503) {
        atomic_fetch_add(&g_busy, 1);
        dzt_response_free(&r);
        dzt_http_close(c);
        sleep_ms(50);
        return;
    }
    if (r.status != 200) {
        if (!atomic_load(&g_stop)) {
            atomic_fetch_add(&g_bad_status, 1);
            fprintf(stderr, "unexpected status %d for %s\n", r.status, body);
        }
        dzt_response_free(&r);
        dzt_http_close(c);
        return;
    }
    dzt_response_free(&r);

    const char *object = chat ? "chat.completion.chunk" : "text_completion";
    const char *id_prefix = chat ? "chatcmpl-" : "cmpl-";
    char id[64] = "";
    bool have_usage = false, finished = false;
    long long up = -1, uc = -1, uk = -1;
    char *data;
    while (dzt_http_next_event(c, READ_TIMEOUT_MS, &data) == 1) {
        if (strcmp(data, "[DONE]") == 0) {
            free(data);
            if (!have_usage) protocol_error("[DONE] without a usage chunk", id);
            else if (!finished) protocol_error("[DONE] without a finish_reason", id);
            else record_seen(id, up, uc, uk);
            break;
        }
        json_error_t e;
        json_t *j = json_loads(data, 0, &e);
        const char *cid = json_string_value(json_object_get(j, "id"));
        const char *obj = json_string_value(json_object_get(j, "object"));
        json_t *choices = json_object_get(j, "choices");
        json_t *usage = json_object_get(j, "usage");
        if (!j || !cid || !obj || !json_is_array(choices) || !usage) {
            protocol_error("chunk is not a completion chunk with id, object, choices, usage", data);
        } else if (strcmp(obj, object) != 0 || strncmp(cid, id_prefix, strlen(id_prefix)) != 0) {
            protocol_error("wrong object or id prefix", data);
        } else if (id[0] && strcmp(id, cid) != 0) {
            protocol_error("the id changed within the stream", data);
        } else {
            snprintf(id, sizeof id, "%s", cid);
            for (size_t i = 0; i < json_array_size(choices); i++)
                if (json_is_string(json_object_get(json_array_get(choices, i), "finish_reason")))
                    finished = true;
            if (json_is_object(usage)) {
                json_t *details = json_object_get(usage, "prompt_tokens_details");
                json_t *cached = json_object_get(details, "cached_tokens");
                if (have_usage || json_array_size(choices) != 0 || !json_is_integer(cached))
                    protocol_error("usage chunk: not once, choices not empty, or no cached_tokens", data);
                up = json_integer_value(json_object_get(usage, "prompt_tokens"));
                uc = json_integer_value(cached);
                uk = json_integer_value(json_object_get(usage, "completion_tokens"));
                long long total = json_integer_value(json_object_get(usage, "total_tokens"));
                if (up <= 0 || uk <= 0 || uk > max_tokens || total != up + uk || uc < 0 || uc > up)
                    protocol_error("usage numbers inconsistent", data);
                have_usage = true;
            } else if (!json_is_null(usage)) {
                protocol_error("usage neither null nor an object", data);
            }
        }
        json_decref(j);
        free(data);
    }
    dzt_http_close(c);
}

static void *client_main(void *arg) {
    unsigned rng = (unsigned)(uintptr_t)arg * 2654435761u + (unsigned)time(NULL);
    bool chat = (uintptr_t)arg % 2 == 0;
    while (!atomic_load(&g_stop)) {
        one_request(&rng, chat);
        chat = !chat;
    }
    return NULL;
}

/* One integer/text result of a query on the db (NULL when no row). */
static bool query_text(sqlite3 *db, const char *sql, char *out, size_t cap) {
    sqlite3_stmt *st = NULL;
    bool ok = false;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, cap, "%s", t ? (const char *)t : "(null)");
        ok = true;
    }
    sqlite3_finalize(st);
    return ok;
}

/* The ledger after a crash: sound, every [DONE] billed once with what the
 * client saw, and the key's running total equal to its rows. */
static void check_ledger(const char *path, int64_t key_id, const char *when) {
    fprintf(stderr, "checking the ledger %s: %zu requests saw [DONE]\n", when, g_seen.n);
    sqlite3 *db = NULL;
    DZT_CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK, "open %s: %s", path,
              db ? sqlite3_errmsg(db) : "?");
    sqlite3_busy_timeout(db, 5000);
    char text[256] = "";
    DZT_ASSERT(query_text(db, "PRAGMA integrity_check", text, sizeof text));
    DZT_EQ_STR(text, "ok");
    DZT_ASSERT(query_text(db, "SELECT count(*) FROM (SELECT request_id FROM usage GROUP BY request_id "
                              "HAVING count(*) > 1)", text, sizeof text));
    DZT_EQ_STR(text, "0");

    sqlite3_stmt *st = NULL;
    DZT_ASSERT(sqlite3_prepare_v2(db,
                                  "SELECT count(*), max(prompt_tokens), max(cached_tokens), "
                                  "max(completion_tokens), max(status) FROM usage WHERE request_id = ?",
                                  -1, &st, NULL) == SQLITE_OK);
    size_t missing = 0, wrong = 0;
    for (size_t i = 0; st && i < g_seen.n; i++) {
        const seen_request *r = &g_seen.v[i];
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW) continue;
        long long n = sqlite3_column_int64(st, 0);
        const char *status = (const char *)sqlite3_column_text(st, 4);
        if (n != 1) {
            if (missing++ < 5) fprintf(stderr, "request %s (saw [DONE]) has %lld ledger rows\n", r->id, n);
            continue;
        }
        long long p = sqlite3_column_int64(st, 1), c = sqlite3_column_int64(st, 2),
                  k = sqlite3_column_int64(st, 3);
        if (p != r->prompt || c != r->cached || k != r->completion || !status || strcmp(status, "ok")) {
            if (wrong++ < 5)
                fprintf(stderr, "request %s: client saw %lld/%lld/%lld, ledger has %lld/%lld/%lld %s\n",
                        r->id, r->prompt, r->cached, r->completion, p, c, k, status ? status : "");
        }
    }
    sqlite3_finalize(st);
    DZT_EQ_INT(missing, 0);
    DZT_EQ_INT(wrong, 0);

    /* ids the clients saw are distinct */
    size_t dup = 0;
    for (size_t i = 0; i < g_seen.n; i++)
        for (size_t j = i + 1; j < g_seen.n; j++) dup += strcmp(g_seen.v[i].id, g_seen.v[j].id) == 0;
    DZT_EQ_INT(dup, 0);

    long long rows = 0;
    if (query_text(db, "SELECT count(*) FROM usage", text, sizeof text)) rows = atoll(text);
    DZT_CHECK(rows >= (long long)g_seen.n, "ledger rows %lld < requests that saw [DONE] %zu", rows,
              g_seen.n);
    /* the key's used_tokens moved with its rows, in the same transactions */
    char sql[256], used[64] = "", sum[64] = "";
    snprintf(sql, sizeof sql, "SELECT used_tokens FROM keys WHERE id = %lld", (long long)key_id);
    query_text(db, sql, used, sizeof used);
    snprintf(sql, sizeof sql,
             "SELECT coalesce(sum(prompt_tokens + completion_tokens), 0) FROM usage WHERE key_id = %lld",
             (long long)key_id);
    query_text(db, sql, sum, sizeof sum);
    DZT_EQ_STR(used, sum);
    sqlite3_close(db);

    /* and the library's own view of the file */
    dz_ledger *l = NULL;
    DZT_OK(dz_ledger_open(path, 0, &l));
    if (l) DZT_OK(dz_ledger_check(l));
    dz_ledger_close(l);
}

static int start_server(dzt_server *srv, const char *model, const char *db) {
    const char *args[] = {"-m", model, "--port", "0", "--db", db, "--parallel", "8", "-t", "2", NULL};
    if (dzt_server_start(srv, "serve", args, 30000) != 0) return -1;
    atomic_store(&g_port, srv->port);
    dzt_response r;
    int st = dzt_http_request("127.0.0.1", srv->port, "GET", "/health", NULL, NULL, 5000, &r);
    DZT_EQ_INT(st, 200);
    dzt_response_free(&r);
    /* the model is loaded once /ready answers 200 */
    long long deadline = dzt_now_ms() + 20000;
    do {
        st = dzt_http_request("127.0.0.1", srv->port, "GET", "/ready", NULL, NULL, 5000, &r);
        dzt_response_free(&r);
        if (st == 200) break;
        sleep_ms(50);
    } while (dzt_now_ms() < deadline);
    DZT_EQ_INT(st, 200);
    return 0;
}

int main(void) {
    char *model = dzt_shared("models/stories260K.gguf");
    if (!dzt_serve_available()) {
        printf("SKIP: %s has no `serve` command yet\n", dzt_bin());
        return 77;
    }
    char db[512];
    snprintf(db, sizeof db, "%s/crash.db", dzt_tmpdir());

    dz_ledger *l = NULL;
    DZT_OK(dz_ledger_open(db, DZ_LEDGER_CREATE, &l));
    char key[DZ_KEY_LEN + 1] = "";
    int64_t key_id = 0;
    dz_key_spec spec = {.tenant = "crashtest"};
    DZT_OK(dz_ledger_key_create(l, &spec, key, &key_id));
    dz_key_spec admin = {.tenant = "ops", .admin = true}; /* no first-start admin key printout */
    char admin_key[DZ_KEY_LEN + 1];
    int64_t admin_id;
    DZT_OK(dz_ledger_key_create(l, &admin, admin_key, &admin_id));
    dz_ledger_close(l);
    snprintf(g_auth, sizeof g_auth, "Authorization: Bearer %s\r\n", key);

    dzt_server srv;
    if (start_server(&srv, model, db) != 0) {
        DZT_CHECK(0, "dizuo serve did not start");
        return dzt_done();
    }
    for (int cycle = 0; cycle < N_CYCLES; cycle++) {
        atomic_store(&g_stop, 0);
        atomic_store(&g_done_cycle, 0);
        pthread_t th[N_CLIENTS];
        for (uintptr_t i = 0; i < N_CLIENTS; i++) pthread_create(&th[i], NULL, client_main, (void *)i);
        /* at least a second of load and some finished requests, then the crash */
        long long t0 = dzt_now_ms();
        while (dzt_now_ms() - t0 < 6000 &&
               (dzt_now_ms() - t0 < 1200 || atomic_load(&g_done_cycle) < 2 * N_CLIENTS))
            sleep_ms(20);
        bool alive = dzt_server_alive(&srv, NULL);
        DZT_CHECK(alive, "the server died under load (cycle %d)", cycle);
        int st = alive ? dzt_server_stop(&srv, SIGKILL, 5000) : -SIGKILL;
        atomic_store(&g_stop, 1);
        for (int i = 0; i < N_CLIENTS; i++) pthread_join(th[i], NULL);
        DZT_EQ_INT(st, -SIGKILL);
        fprintf(stderr, "cycle %d: %ld requests saw [DONE] in %lld ms before the kill\n", cycle,
                atomic_load(&g_done_cycle), dzt_now_ms() - t0);
        DZT_CHECK(atomic_load(&g_done_cycle) > 0, "no request completed in cycle %d", cycle);

        char when[64];
        snprintf(when, sizeof when, "after kill %d", cycle + 1);
        check_ledger(db, key_id, when);
        /* the server starts cleanly on the crashed file */
        if (start_server(&srv, model, db) != 0) {
            DZT_CHECK(0, "dizuo serve did not restart on the crashed ledger (cycle %d)", cycle);
            return dzt_done();
        }
    }

    /* the restarted server serves and bills a request, then shuts down cleanly */
    atomic_store(&g_stop, 0);
    atomic_store(&g_done_cycle, 0);
    unsigned rng = 7;
    for (int i = 0; i < 20 && atomic_load(&g_done_cycle) == 0; i++) one_request(&rng, i % 2 == 0);
    DZT_EQ_INT(atomic_load(&g_done_cycle), 1);
    DZT_EQ_INT(dzt_server_stop(&srv, SIGTERM, 30000), 0);
    check_ledger(db, key_id, "after a clean shutdown");

    DZT_EQ_INT(atomic_load(&g_protocol_error), 0);
    DZT_EQ_INT(atomic_load(&g_bad_status), 0);
    fprintf(stderr, "%zu requests saw [DONE]; %ld busy answers (429/503) retried\n", g_seen.n,
            atomic_load(&g_busy));
    if (dzt_failed) dzt_server_print_log(&srv, 3000);
    free(g_seen.v);
    free(model);
    return dzt_done();
}
