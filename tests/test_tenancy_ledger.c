/* Tenancy, the usage ledger: rows recorded exactly once per request id,
 * totals per tenant / model / time range (hand-computed), bad rows refused,
 * and durability: a writer killed with SIGKILL, or exiting without closing
 * (no checkpoint), loses no acknowledged row and leaves a sound database;
 * two processes writing at once lose nothing. */
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dizuo/tenancy.h"
#include "dztest.h"

static const char *path_of(const char *name) {
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 256, "%s/%s", dzt_tmpdir(), name);
    return p;
}

static dz_usage_row row_of(const char *id, const char *tenant, const char *model, int64_t prompt,
                           int64_t cached, int64_t completion, int64_t end_ms) {
    return (dz_usage_row){.request_id = id, .tenant = tenant, .model = model,
                          .prompt_tokens = prompt, .cached_tokens = cached,
                          .completion_tokens = completion, .status = "ok",
                          .start_ms = end_ms - 5, .end_ms = end_ms};
}

static size_t totals(dz_ledger *l, dz_usage_filter f, dz_usage_total **t) {
    size_t n = 0;
    *t = NULL;
    DZT_OK(dz_ledger_usage(l, &f, t, &n));
    return n;
}

static void test_exactly_once_and_totals(void) {
    dz_ledger *l = NULL;
    DZT_OK(dz_ledger_open(path_of("usage.db"), DZ_LEDGER_CREATE, &l));
    if (!l) return;
    /* end times: 1000, 2000, 3000, 4000 ms */
    dz_usage_row rows[] = {
        row_of("r1", "alpha", "m1", 10, 4, 20, 1000),
        row_of("r2", "alpha", "m2", 7, 0, 3, 2000),
        row_of("r3", "beta", "m1", 100, 50, 1, 3000),
        row_of("r4", "alpha", "m1", 1, 1, 1, 4000),
    };
    for (size_t i = 0; i < 4; i++) DZT_OK(dz_ledger_record(l, &rows[i]));
    /* The same request id again is refused, however different the row. */
    dz_usage_row again = row_of("r2", "beta", "m9", 999, 0, 999, 9000);
    DZT_FAILS(dz_ledger_record(l, &again), DZ_ERR_ARG);
    DZT_ASSERT(strstr(dz_last_error(), "already") != NULL);

    dz_usage_total *t;
    size_t n = totals(l, (dz_usage_filter){0}, &t);
    DZT_EQ_INT(n, 2);
    if (n == 2) {
        /* alpha: r1 + r2 + r4 */
        DZT_EQ_STR(t[0].tenant, "alpha");
        DZT_EQ_INT(t[0].requests, 3);
        DZT_EQ_INT(t[0].prompt_tokens, 18);
        DZT_EQ_INT(t[0].cached_tokens, 5);
        DZT_EQ_INT(t[0].completion_tokens, 24);
        DZT_EQ_INT(t[0].total_tokens, 42);
        DZT_EQ_STR(t[0].model, "");
        DZT_EQ_STR(t[1].tenant, "beta");
        DZT_EQ_INT(t[1].requests, 1);
        DZT_EQ_INT(t[1].total_tokens, 101);
    }
    free(t);
    n = totals(l, (dz_usage_filter){.by_model = true}, &t);
    DZT_EQ_INT(n, 3);
    if (n == 3) {
        DZT_EQ_STR(t[0].model, "m1"); /* alpha m1: r1 + r4 */
        DZT_EQ_INT(t[0].requests, 2);
        DZT_EQ_INT(t[0].total_tokens, 32); /* 30 + 2 */
        DZT_EQ_STR(t[1].model, "m2");
        DZT_EQ_INT(t[1].total_tokens, 10);
        DZT_EQ_STR(t[2].tenant, "beta");
    }
    free(t);
    /* [2000, 4000): r2, r3 */
    n = totals(l, (dz_usage_filter){.since_ms = 2000, .until_ms = 4000}, &t);
    DZT_EQ_INT(n, 2);
    if (n == 2) DZT_EQ_INT(t[0].requests + t[1].requests, 2);
    free(t);
    n = totals(l, (dz_usage_filter){.tenant = "alpha", .model = "m1", .since_ms = 1001}, &t);
    DZT_EQ_INT(n, 1);
    if (n == 1) DZT_EQ_INT(t[0].total_tokens, 2); /* r4: 1 + 1 */
    free(t);
    n = totals(l, (dz_usage_filter){.tenant = "nobody"}, &t);
    DZT_EQ_INT(n, 0);
    free(t);
    dz_usage_filter bad = {.tenant = "a b"};
    size_t m = 77;
    t = NULL;
    DZT_FAILS(dz_ledger_usage(l, &bad, &t, &m), DZ_ERR_ARG);
    DZT_ASSERT(t == NULL && m == 77);

    /* Bad rows: each refused, naming the field; nothing recorded. */
    struct { dz_usage_row row; const char *word; } cases[] = {
        {row_of("", "alpha", "m", 1, 0, 1, 10), "request_id"},
        {row_of("id with space", "alpha", "m", 1, 0, 1, 10), "request_id"},
        {row_of("x1", "al/pha", "m", 1, 0, 1, 10), "tenant"},
        {row_of("x2", "alpha", "../m", 1, 0, 1, 10), "model"},
        {row_of("x3", "alpha", "m", -1, 0, 1, 10), "prompt_tokens"},
        {row_of("x4", "alpha", "m", 1, 2, 1, 10), "cached_tokens"},
        {row_of("x5", "alpha", "m", 1, 0, (int64_t)1 << 50, 10), "completion_tokens"},
        {row_of("x6", "alpha", "m", 1, 0, 1, 10), "status"},
        {row_of("x7", "alpha", "m", 1, 0, 1, 10), "start_ms"},
        {row_of("x8", "alpha", "m", 1, 0, 1, 10), "key"},
    };
    cases[7].row.status = "OK!";
    cases[8].row.start_ms = 11;
    cases[9].row.key_id = 12345; /* no such key */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        DZT_FAILS(dz_ledger_record(l, &cases[i].row), DZ_ERR_ARG);
        DZT_CHECK(strstr(dz_last_error(), cases[i].word) != NULL, "case %zu: '%s' lacks '%s'", i,
                  dz_last_error(), cases[i].word);
    }
    n = totals(l, (dz_usage_filter){0}, &t);
    int64_t all = 0;
    for (size_t i = 0; i < n; i++) all += t[i].requests;
    DZT_EQ_INT(all, 4);
    free(t);
    dz_ledger_close(l);
}

/* ---- durability ---- */

/* Child: records rows crash-0, crash-1, ... for key `key_id`, writing each
 * index to fd after its record returned; never closes the ledger. */
static void crash_writer(const char *path, int64_t key_id, int fd, int count) {
    dz_ledger *l = NULL;
    if (dz_ledger_open(path, 0, &l) != DZ_OK) _exit(3);
    for (int i = 0; i < count; i++) {
        char id[32];
        snprintf(id, sizeof id, "crash-%d", i);
        dz_usage_row row = row_of(id, "crash", "m", 3, 1, 4, 100 + i);
        row.key_id = key_id;
        if (dz_ledger_record(l, &row) != DZ_OK) _exit(4);
        if (write(fd, &i, sizeof i) != (ssize_t)sizeof i) _exit(5);
    }
    _exit(0); /* no dz_ledger_close: the WAL is not checkpointed */
}

/* Counts rows crash-0 .. crash-(n-1) and all rows, with plain SQLite. */
static void count_rows(const char *path, int acked, int64_t *present, int64_t *total) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    *present = *total = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*), sum(CAST(substr(request_id, 7) AS INTEGER) < ?1) FROM usage",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int(st, 1, acked);
        if (sqlite3_step(st) == SQLITE_ROW) {
            *total = sqlite3_column_int64(st, 0);
            *present = sqlite3_column_int64(st, 1);
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_kill_and_exit(bool kill_it) {
    const char *path = path_of(kill_it ? "killed.db" : "exited.db");
    dz_ledger *l = NULL;
    char key[DZ_KEY_LEN + 1];
    int64_t key_id = 0;
    DZT_OK(dz_ledger_open(path, DZ_LEDGER_CREATE, &l));
    dz_key_spec spec = {.tenant = "crash"};
    DZT_OK(dz_ledger_key_create(l, &spec, key, &key_id));
    dz_ledger_close(l); /* no connection open across fork */
    int fds[2];
    DZT_EQ_INT(pipe(fds), 0);
    const int count = kill_it ? 100000 : 40;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        crash_writer(path, key_id, fds[1], count);
    }
    close(fds[1]);
    int acked = 0, i;
    while ((!kill_it || acked < 30) && read(fds[0], &i, sizeof i) == (ssize_t)sizeof i) acked = i + 1;
    if (kill_it) kill(pid, SIGKILL); /* mid-write of some later row */
    int status = 0;
    waitpid(pid, &status, 0);
    /* Rows the child acknowledged before it died (still in the pipe). */
    while (read(fds[0], &i, sizeof i) == (ssize_t)sizeof i) acked = i + 1;
    close(fds[0]);
    if (kill_it) DZT_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    else DZT_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (kill_it) DZT_ASSERT(acked >= 30 && acked < count);
    else DZT_EQ_INT(acked, count);
    char wal[300];
    snprintf(wal, sizeof wal, "%s-wal", path);
    DZT_ASSERT(access(wal, F_OK) == 0); /* left, not checkpointed */

    DZT_OK(dz_ledger_open(path, 0, &l));
    if (!l) return;
    DZT_OK(dz_ledger_check(l));
    int64_t present, total;
    count_rows(path, acked, &present, &total);
    DZT_EQ_INT(present, acked); /* every acknowledged row, once */
    DZT_ASSERT(total >= acked && total <= acked + 1); /* at most the one in flight */
    /* The key's used tokens moved with the rows, in the same transactions. */
    dz_key_info *keys = NULL;
    size_t n = 0;
    DZT_OK(dz_ledger_key_list(l, &keys, &n));
    if (n == 1) DZT_EQ_INT(keys[0].used_tokens, 7 * total);
    free(keys);
    dz_ledger_close(l);
}

/* Two processes record at once into one file: nothing lost. */
static void test_two_writers(void) {
    const char *path = path_of("two.db");
    dz_ledger *l = NULL;
    DZT_OK(dz_ledger_open(path, DZ_LEDGER_CREATE, &l));
    dz_ledger_close(l);
    pid_t pids[2];
    for (int w = 0; w < 2; w++) {
        pids[w] = fork();
        if (pids[w] == 0) {
            dz_ledger *mine = NULL;
            if (dz_ledger_open(path, 0, &mine) != DZ_OK) _exit(3);
            for (int i = 0; i < 50; i++) {
                char id[32];
                snprintf(id, sizeof id, "p%d-%d", w, i);
                dz_usage_row row = row_of(id, "two", "m", 1, 0, 1, 10);
                if (dz_ledger_record(mine, &row) != DZ_OK) _exit(4);
            }
            dz_ledger_close(mine);
            _exit(0);
        }
    }
    for (int w = 0; w < 2; w++) {
        int status = 0;
        waitpid(pids[w], &status, 0);
        DZT_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    DZT_OK(dz_ledger_open(path, 0, &l));
    if (!l) return;
    dz_usage_total *t = NULL;
    size_t n = 0;
    dz_usage_filter all = {0};
    DZT_OK(dz_ledger_usage(l, &all, &t, &n));
    DZT_EQ_INT(n, 1);
    if (n == 1) DZT_EQ_INT(t[0].requests, 100);
    free(t);
    DZT_OK(dz_ledger_check(l));
    dz_ledger_close(l);
}

int main(void) {
    test_exactly_once_and_totals();
    test_kill_and_exit(false);
    test_kill_and_exit(true);
    test_two_writers();
    return dzt_done();
}
