/* The ledger database: opening (schema creation and version checks),
 * closing, integrity checks, the clock, SQLite error mapping and the name
 * rules shared by keys and usage rows. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tenancy/tenancy_impl.h"

/* PRAGMA application_id of a dizuo ledger: "dzlg". */
enum { DZ_LEDGER_APP_ID = 0x647a6c67, DZ_BUSY_TIMEOUT_MS = 5000 };

static const char *const schema_sql =
    "CREATE TABLE tenants("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " created_ms INTEGER NOT NULL);"
    "CREATE TABLE keys("
    " id INTEGER PRIMARY KEY,"
    " tenant_id INTEGER NOT NULL REFERENCES tenants(id),"
    " hash BLOB NOT NULL UNIQUE," /* SHA-256 of the key; never the key */
    " prefix TEXT NOT NULL,"
    " quota_tokens INTEGER NOT NULL,"
    " rpm INTEGER NOT NULL,"
    " tpm INTEGER NOT NULL,"
    " models TEXT NOT NULL,"
    " admin INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " revoked_ms INTEGER,"
    " used_tokens INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE usage("
    " request_id TEXT PRIMARY KEY,"
    " tenant TEXT NOT NULL,"
    " key_id INTEGER REFERENCES keys(id),"
    " model TEXT NOT NULL,"
    " prompt_tokens INTEGER NOT NULL,"
    " cached_tokens INTEGER NOT NULL,"
    " completion_tokens INTEGER NOT NULL,"
    " status TEXT NOT NULL,"
    " start_ms INTEGER NOT NULL,"
    " end_ms INTEGER NOT NULL);"
    "CREATE INDEX usage_by_time ON usage(end_ms);"
    "CREATE INDEX usage_by_tenant ON usage(tenant, end_ms);";

int64_t dz_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dz_ledger_now(dz_ledger *l) {
    return l->now_ms ? l->now_ms(l->clock_ctx) : dz_wall_ms();
}

void dz_ledger_set_clock(dz_ledger *l, int64_t (*now_ms)(void *ctx), void *ctx) {
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->now_ms = now_ms;
    l->clock_ctx = now_ms ? ctx : NULL;
    pthread_mutex_unlock(&l->mu);
}

/* Maps an SQLite result code onto a status and a message. */
static dz_status db_fail_with(sqlite3 *db, const char *path, int rc, const char *doing) {
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
        return dz_fail(DZ_ERR_FORMAT, "ledger %s: not an SQLite database (%s)", path, doing);
    case SQLITE_CORRUPT:
        return dz_fail(DZ_ERR_FORMAT, "ledger %s: the database is corrupt (%s: %s)", path, doing, msg);
    case SQLITE_NOMEM:
        return dz_fail(DZ_ERR_NOMEM, "ledger %s: out of memory (%s)", path, doing);
    case SQLITE_CONSTRAINT:
        return dz_fail(DZ_ERR_ARG, "ledger %s: %s: %s", path, doing, msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return dz_fail(DZ_ERR_IO, "ledger %s: %s: the database stayed locked by another "
                       "connection for over %d ms", path, doing, DZ_BUSY_TIMEOUT_MS);
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL:
        return dz_fail(DZ_ERR_IO, "ledger %s: %s: %s", path, doing, msg);
    default:
        return dz_fail(DZ_ERR_INTERNAL, "ledger %s: %s: %s (sqlite code %d)", path, doing, msg, rc);
    }
}

dz_status dz_ledger_db_fail(dz_ledger *l, int rc, const char *doing) {
    return db_fail_with(l->db, l->path, rc, doing);
}

static dz_status exec_on(sqlite3 *db, const char *path, const char *sql, const char *doing) {
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? DZ_OK : db_fail_with(db, path, rc, doing);
}

dz_status dz_ledger_exec(dz_ledger *l, const char *sql, const char *doing) {
    return exec_on(l->db, l->path, sql, doing);
}

/* Runs a query whose first row's first column is an integer. */
static dz_status query_int(sqlite3 *db, const char *path, const char *sql, int64_t *out) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        *out = 0;
        rc = SQLITE_OK;
    }
    dz_status s = rc == SQLITE_OK ? DZ_OK : db_fail_with(db, path, rc, "reading the schema");
    sqlite3_finalize(st);
    return s;
}

/* Gives a new (empty) database the current schema, unless another
 * connection did so first. */
static dz_status create_schema(sqlite3 *db, const char *path) {
    dz_status s = exec_on(db, path, "BEGIN IMMEDIATE", "creating the schema");
    if (s) return s;
    int64_t version = 0;
    s = query_int(db, path, "PRAGMA user_version", &version);
    if (!s && version == 0) {
        char pragmas[128];
        snprintf(pragmas, sizeof pragmas, "PRAGMA application_id=%d; PRAGMA user_version=%d;",
                 DZ_LEDGER_APP_ID, DZ_LEDGER_SCHEMA_VERSION);
        s = exec_on(db, path, schema_sql, "creating the schema");
        if (!s) s = exec_on(db, path, pragmas, "creating the schema");
    }
    if (!s) s = exec_on(db, path, "COMMIT", "creating the schema");
    if (s) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return s;
}

/* Decides whether the opened file is a ledger this dizuo can use, creating
 * the schema in an empty one. */
static dz_status check_schema(sqlite3 *db, const char *path) {
    int64_t app = 0, version = 0, n_objects = 0;
    dz_status s = query_int(db, path, "PRAGMA application_id", &app);
    if (!s) s = query_int(db, path, "PRAGMA user_version", &version);
    if (!s) s = query_int(db, path, "SELECT count(*) FROM sqlite_schema", &n_objects);
    if (s) return s;
    bool empty = app == 0 && version == 0 && n_objects == 0;
    if (!empty && app != DZ_LEDGER_APP_ID)
        return dz_fail(DZ_ERR_FORMAT, "ledger %s: an SQLite database of another application "
                       "(application_id 0x%llx), not a dizuo ledger", path, (unsigned long long)app);
    if (version > DZ_LEDGER_SCHEMA_VERSION)
        return dz_fail(DZ_ERR_FORMAT, "ledger %s: schema version %lld was written by a newer "
                       "dizuo; this one understands up to version %d", path, (long long)version,
                       DZ_LEDGER_SCHEMA_VERSION);
    /* WAL before anything is written: a new file starts in WAL mode. */
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    bool wal = rc == SQLITE_ROW && sqlite3_column_text(st, 0) &&
               strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return db_fail_with(db, path, rc, "switching to WAL mode");
    if (!wal)
        return dz_fail(DZ_ERR_IO, "ledger %s: cannot use WAL mode (is the file on a read-only or "
                       "network file system?)", path);
    if (version == 0 && (s = create_schema(db, path))) return s;
    /* A dizuo ledger of this version has these tables; a damaged one may not. */
    st = NULL;
    rc = sqlite3_prepare_v2(db, "SELECT 1 FROM tenants, keys, usage LIMIT 0", -1, &st, NULL);
    sqlite3_finalize(st);
    if (rc == SQLITE_ERROR)
        return dz_fail(DZ_ERR_FORMAT, "ledger %s: a dizuo ledger with tables missing: %s", path,
                       sqlite3_errmsg(db));
    if (rc != SQLITE_OK) return db_fail_with(db, path, rc, "reading the schema");
    return exec_on(db, path, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
                   "setting synchronous=FULL");
}

/* Removes a database file this process created (and its WAL files). */
static void remove_created(const char *path) {
    size_t n = strlen(path);
    char *side = malloc(n + 5);
    unlink(path);
    if (!side) return;
    snprintf(side, n + 5, "%s-wal", path);
    unlink(side);
    snprintf(side, n + 5, "%s-shm", path);
    unlink(side);
    free(side);
}

dz_status dz_ledger_open(const char *path, int flags, dz_ledger **out) {
    if (!out) return dz_fail(DZ_ERR_ARG, "dz_ledger_open: out is NULL");
    *out = NULL;
    if (!path || !*path) return dz_fail(DZ_ERR_ARG, "ledger: the database path is empty");
    if (flags & ~DZ_LEDGER_CREATE) return dz_fail(DZ_ERR_ARG, "ledger %s: unknown flags 0x%x", path, flags);
    if (sqlite3_threadsafe() == 0)
        return dz_fail(DZ_ERR_UNSUPPORTED, "ledger: this SQLite library was built without threads");
    struct stat sb;
    bool creating = false;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return dz_fail(DZ_ERR_IO, "ledger %s: is a directory", path);
    } else if (errno != ENOENT || !(flags & DZ_LEDGER_CREATE)) {
        return dz_fail(DZ_ERR_IO, "ledger %s: %s%s", path, strerror(errno),
                       errno == ENOENT ? " (create it with `dizuo keys create`)" : "");
    } else {
        creating = true;
    }
    /* SQLite reads "file:..." as a URI and ":memory:" as no file at all; a
     * relative path spelled "./..." is always just a file. */
    bool relative = path[0] != '/' && path[0] != '.';
    size_t len = strlen(path);
    dz_ledger *l = calloc(1, sizeof *l);
    char *copy = malloc(len + 3);
    if (!l || !copy) {
        free(l);
        free(copy);
        return dz_fail(DZ_ERR_NOMEM, "ledger %s: out of memory", path);
    }
    snprintf(copy, len + 3, "%s%s", relative ? "./" : "", path);
    l->path = copy;
    sqlite3 *db = NULL;
    int open_flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX |
                     (flags & DZ_LEDGER_CREATE ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(l->path, &db, open_flags, NULL);
    dz_status s = DZ_OK;
    if (rc != SQLITE_OK) {
        s = db_fail_with(db, path, rc, "opening");
    } else {
        sqlite3_extended_result_codes(db, 1);
        sqlite3_busy_timeout(db, DZ_BUSY_TIMEOUT_MS);
        /* The file is untrusted: no schema tricks, no functions from it. */
        sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
        sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
        if (sqlite3_db_readonly(db, "main") == 1)
            s = dz_fail(DZ_ERR_IO, "ledger %s: the file is read-only (the ledger must be writable)", path);
        else
            s = check_schema(db, path);
    }
    if (s) {
        sqlite3_close(db);
        if (creating) remove_created(path); /* a failed open leaves no file behind */
        free(l->path);
        free(l);
        return s;
    }
    l->db = db;
    pthread_mutex_init(&l->mu, NULL);
    *out = l;
    return DZ_OK;
}

void dz_ledger_close(dz_ledger *l) {
    if (!l) return;
    dz_quota_free_all(l);
    sqlite3_close(l->db); /* last connection: checkpoints and removes the WAL */
    pthread_mutex_destroy(&l->mu);
    free(l->path);
    free(l);
}

dz_status dz_ledger_check(dz_ledger *l) {
    if (!l) return dz_fail(DZ_ERR_ARG, "dz_ledger_check: ledger is NULL");
    pthread_mutex_lock(&l->mu);
    sqlite3_stmt *st = NULL;
    char problems[512] = "";
    size_t used = 0;
    int rc = sqlite3_prepare_v2(l->db, "PRAGMA integrity_check(8)", -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(st, 0);
        if (line && strcmp(line, "ok") != 0 && used < sizeof problems - 1) {
            int w = snprintf(problems + used, sizeof problems - used, "%s%s", used ? "; " : "", line);
            used = w < 0 ? used : used + (size_t)w;
            if (used > sizeof problems - 1) used = sizeof problems - 1;
        }
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    dz_status s = DZ_OK;
    if (rc != SQLITE_DONE) s = dz_ledger_db_fail(l, rc, "checking integrity");
    else if (used) s = dz_fail(DZ_ERR_FORMAT, "ledger %s: integrity check failed: %s", l->path, problems);
    pthread_mutex_unlock(&l->mu);
    return s;
}

void dz_copy_column(sqlite3_stmt *st, int col, char *dst, size_t cap) {
    const unsigned char *text = sqlite3_column_text(st, col);
    size_t n = text ? strnlen((const char *)text, cap - 1) : 0;
    if (n) memcpy(dst, text, n);
    dst[n] = '\0';
}

/* ---- names ---- */

dz_status dz_check_tenant_name(const char *name, const char *what) {
    if (!name || !*name) return dz_fail(DZ_ERR_ARG, "%s: the tenant name is empty", what);
    size_t n = strnlen(name, DZ_TENANT_NAME_MAX + 1);
    if (n > DZ_TENANT_NAME_MAX)
        return dz_fail(DZ_ERR_ARG, "%s: the tenant name is longer than %d characters", what,
                       DZ_TENANT_NAME_MAX);
    if (name[0] == '.' || name[0] == '-')
        return dz_fail(DZ_ERR_ARG, "%s: the tenant name '%s' starts with '%c'", what, name, name[0]);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return dz_fail(DZ_ERR_ARG, "%s: the tenant name has byte 0x%02x at offset %zu; allowed "
                           "are A-Z a-z 0-9 . _ -", what, c, i);
    }
    return DZ_OK;
}

dz_status dz_check_model_name(const char *name, size_t len, const char *what) {
    if (!name || len == 0) return dz_fail(DZ_ERR_ARG, "%s: the model name is empty", what);
    if (len > DZ_MODEL_NAME_MAX)
        return dz_fail(DZ_ERR_ARG, "%s: the model name is longer than %d characters", what,
                       DZ_MODEL_NAME_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7f || c == ',')
            return dz_fail(DZ_ERR_ARG, "%s: the model name has byte 0x%02x at offset %zu; allowed "
                           "is printable ASCII without spaces or commas", what, c, i);
        if (c == '.' && i + 1 < len && name[i + 1] == '.')
            return dz_fail(DZ_ERR_ARG, "%s: the model name contains '..'", what);
    }
    if (name[0] == '/') return dz_fail(DZ_ERR_ARG, "%s: the model name starts with '/'", what);
    return DZ_OK;
}
