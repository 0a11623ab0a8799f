/* Internals of the tenancy layer: the ledger handle, the in-memory admission
 * state (reservations and rate windows per key) and shared helpers. */
#ifndef DZ_TENANCY_IMPL_H
#define DZ_TENANCY_IMPL_H

#include <pthread.h>
#include <sqlite3.h>

#include "dizuo/tenancy.h"

enum {
    DZ_WINDOW_MS = 60000,    /* the RPM / TPM sliding window */
    DZ_KEY_STATE_BUCKETS = 256,
};

/* One admitted request in a key's sliding window. */
typedef struct dz_window_event {
    int64_t time_ms;
    int64_t tokens; /* reserved, then the settled actual tokens */
    uint64_t seq;   /* the reservation that made it */
} dz_window_event;

/* What this process knows about one key between requests. */
typedef struct dz_key_state {
    int64_t key_id;
    int64_t reserved_tokens; /* sum over outstanding reservations */
    dz_window_event *events; /* admitted in the last minute, oldest first */
    size_t n_events, cap_events;
    struct dz_key_state *next; /* hash chain */
} dz_key_state;

struct dz_reservation {
    int64_t key_id;
    char tenant[DZ_TENANT_NAME_MAX + 1];
    int64_t tokens;
    uint64_t seq;
};

struct dz_ledger {
    sqlite3 *db;
    char *path;
    pthread_mutex_t mu; /* guards db use and everything below */
    int64_t (*now_ms)(void *ctx);
    void *clock_ctx;
    dz_key_state *keys[DZ_KEY_STATE_BUCKETS];
    uint64_t next_seq;
};

/* The ledger's clock (the injected one or the real-time clock). */
int64_t dz_ledger_now(dz_ledger *l);

/* Turns an SQLite failure into a dz_status with a message naming the file
 * and what was being done. Call with the mutex held. */
dz_status dz_ledger_db_fail(dz_ledger *l, int rc, const char *doing);

/* Runs SQL with no result rows. */
dz_status dz_ledger_exec(dz_ledger *l, const char *sql, const char *doing);

/* Name checks: DZ_ERR_ARG naming `what` and the defect. */
dz_status dz_check_tenant_name(const char *name, const char *what);
dz_status dz_check_model_name(const char *name, size_t len, const char *what);

/* Copies a column's text into a fixed buffer (truncating; "" for NULL). */
void dz_copy_column(sqlite3_stmt *st, int col, char *dst, size_t cap);

/* Applies a settled row to the admission state (called by dz_ledger_settle,
 * mutex held): the reservation leaves the key's outstanding tokens and its
 * window event takes the actual tokens. Frees res. */
void dz_quota_settled(dz_ledger *l, dz_reservation *res, int64_t actual_tokens);

/* Frees the admission state (dz_ledger_close). */
void dz_quota_free_all(dz_ledger *l);

/* The record step of dz_ledger_record / dz_ledger_settle (mutex held). */
dz_status dz_usage_insert(dz_ledger *l, const dz_usage_row *row);

#endif
