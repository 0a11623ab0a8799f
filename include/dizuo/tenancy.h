/* dizuo — tenancy: tenants, API keys, token quotas, rate limits and the
 * usage ledger, all kept in one SQLite database file (the "ledger").
 *
 * The model server calls this layer on every request:
 *   dz_ledger_authenticate(key)          -> who is calling, with what limits
 *   dz_ledger_reserve(key, prompt+max)   -> admission (RPM, TPM, token quota)
 *   ... generation ...
 *   dz_ledger_settle(reservation, row)   -> one durable usage row, committed
 *                                           before the final chunk is sent
 *   dz_ledger_release(reservation)       -> instead of settle when nothing
 *                                           is to be billed
 *
 * Durability: the database runs in WAL mode with synchronous=FULL, so a row
 * whose dz_ledger_record / dz_ledger_settle returned DZ_OK survives a crash
 * of the process or of the machine. Request ids are unique: a request is
 * billed at most once, and (when the server records before it answers) at
 * least once.
 *
 * Keys: "dz-" followed by 43 base64url characters (256 bits from the OS
 * CSPRNG). Only SHA-256(key) and a short display prefix are stored; the key
 * itself is returned once, at creation.
 *
 * Limits belong to the key: quota_tokens is the total of prompt + completion
 * tokens the key may ever use, rpm / tpm are requests / tokens per sliding
 * minute. 0 means "no limit" for each of them.
 *
 * Thread-safety: every function on a dz_ledger may be called from several
 * threads at once (one mutex inside). Several processes may open the same
 * file (SQLite locking; writers wait up to the busy timeout), but reservations
 * and rate windows live in the memory of the process that made them. */
#ifndef DIZUO_TENANCY_H
#define DIZUO_TENANCY_H

#include "dizuo/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    DZ_KEY_LEN = 46,         /* "dz-" + 43 base64url characters */
    DZ_KEY_PREFIX_LEN = 9,   /* "dz-" + 6 characters, shown in listings */
    DZ_TENANT_NAME_MAX = 64, /* tenant names: 1..64 of [A-Za-z0-9._-], not starting with '.' */
    DZ_MODEL_NAME_MAX = 128, /* model names: 1..128 printable ASCII, no spaces, no ".." */
    DZ_MODELS_LIST_MAX = 1024, /* comma-separated allowed-models list */
    DZ_REQUEST_ID_MAX = 128,   /* request ids: 1..128 of [A-Za-z0-9._:-] */
    DZ_USAGE_STATUS_MAX = 32,  /* row status: 1..32 of [a-z_] ("ok", "cancelled", ...) */
    DZ_LEDGER_SCHEMA_VERSION = 1,
};

typedef struct dz_ledger dz_ledger;

/* ---- opening ---------------------------------------------------------- */

enum {
    DZ_LEDGER_CREATE = 1, /* create the file (and the schema) when absent */
};

/* Opens the ledger at path (flags: DZ_LEDGER_CREATE or 0). A new or empty
 * file gets the current schema. Refuses, with a message naming the file:
 * a file that is not an SQLite database or is corrupt (DZ_ERR_FORMAT), an
 * SQLite database of another application or of a newer dizuo schema
 * (DZ_ERR_FORMAT), an absent file without DZ_LEDGER_CREATE, a directory, a
 * file that cannot be written (DZ_ERR_IO). Caller owns *out. */
dz_status dz_ledger_open(const char *path, int flags, dz_ledger **out);

/* Closes the database (checkpointing the WAL when this is the last
 * connection). Settle or release every reservation first: reservations
 * still outstanding become invalid. NULL is a no-op. Not to be called while
 * other threads still use the ledger. */
void dz_ledger_close(dz_ledger *l);

/* Runs SQLite's integrity_check: DZ_OK when the file is sound, DZ_ERR_FORMAT
 * with the first problems otherwise. */
dz_status dz_ledger_check(dz_ledger *l);

/* The clock used for timestamps and the rate windows, in milliseconds since
 * the epoch. Default: the real-time clock. Tests set their own to move time
 * without sleeping. now_ms NULL restores the default. */
void dz_ledger_set_clock(dz_ledger *l, int64_t (*now_ms)(void *ctx), void *ctx);

/* Milliseconds since the epoch (CLOCK_REALTIME). */
int64_t dz_wall_ms(void);

/* ---- keys ------------------------------------------------------------- */

typedef struct dz_key_spec {
    const char *tenant;   /* created on first use */
    int64_t quota_tokens; /* >= 0; 0: unlimited */
    int64_t rpm;          /* >= 0; 0: unlimited */
    int64_t tpm;          /* >= 0; 0: unlimited */
    const char *models;   /* "a,b,c" or NULL / "": every model */
    bool admin;           /* may use the admin API */
} dz_key_spec;

typedef struct dz_key_info {
    int64_t id; /* the key's public id (> 0) */
    char tenant[DZ_TENANT_NAME_MAX + 1];
    char prefix[DZ_KEY_PREFIX_LEN + 1]; /* first characters of the key */
    int64_t quota_tokens, rpm, tpm;     /* 0: unlimited */
    char models[DZ_MODELS_LIST_MAX + 1]; /* "" : every model */
    bool admin;
    bool revoked;
    int64_t created_ms, revoked_ms; /* revoked_ms 0 while active */
    int64_t used_tokens;            /* settled prompt + completion tokens */
} dz_key_info;

/* Creates a key. key_out receives the secret key (NUL-terminated; shown
 * once: only its hash is stored), *id its public id. DZ_ERR_ARG names a bad
 * field (tenant name, negative limit, a bad model name in the list). */
dz_status dz_ledger_key_create(dz_ledger *l, const dz_key_spec *spec, char key_out[DZ_KEY_LEN + 1],
                               int64_t *id);

/* Every key (active and revoked), ordered by id; never the secrets.
 * *keys is malloc'd (caller frees with free()); *n may be 0. */
dz_status dz_ledger_key_list(dz_ledger *l, dz_key_info **keys, size_t *n);
/* One page of that list: the keys with an id above after_id, at most limit
 * of them (limit <= 0: all). */
dz_status dz_ledger_key_list_page(dz_ledger *l, int64_t after_id, int64_t limit, dz_key_info **keys, size_t *n);

/* Revokes a key: the next dz_ledger_authenticate with it answers
 * DZ_AUTH_REVOKED. Revoking a revoked key is DZ_OK and keeps the first
 * revocation time; an unknown id is DZ_ERR_ARG. */
dz_status dz_ledger_key_revoke(dz_ledger *l, int64_t id);

typedef enum dz_auth_result {
    DZ_AUTH_OK = 0,
    DZ_AUTH_UNKNOWN, /* malformed, or no such key */
    DZ_AUTH_REVOKED,
} dz_auth_result;

/* Looks a key up (the hash compared in constant time). *result says whether
 * the key is valid; on DZ_AUTH_OK *info is filled (info may be NULL).
 * Returns an error status only when the database fails. Reads the database
 * each time, so a revocation by another process counts at once. */
dz_status dz_ledger_authenticate(dz_ledger *l, const char *key, dz_auth_result *result,
                                 dz_key_info *info);

/* Whether the key may use the model (its models list is empty or names it). */
bool dz_key_allows_model(const dz_key_info *key, const char *model);

/* ---- admission: quotas and rate limits ---------------------------------- */

typedef enum dz_admit {
    DZ_ADMIT_OK = 0,
    DZ_ADMIT_RPM,       /* requests per minute exceeded; retry after */
    DZ_ADMIT_TPM,       /* tokens per minute exceeded; retry after */
    DZ_ADMIT_QUOTA,     /* the token quota cannot cover the request */
    DZ_ADMIT_TOO_LARGE, /* the request alone exceeds the key's TPM: never admissible */
} dz_admit;

typedef struct dz_reservation dz_reservation;

/* Admits a request of the key that may use up to `tokens` tokens (prompt +
 * max completion tokens, >= 1). On DZ_ADMIT_OK *res is a reservation
 * that holds the tokens against the quota and counts the request in the key's
 * RPM/TPM windows until it is settled or released (exactly one of the two
 * must follow). Otherwise *res is NULL and, for RPM/TPM, *retry_after_s is
 * the whole number of seconds (>= 1) after which the same request would
 * pass; 0 for QUOTA and TOO_LARGE. Tokens in use = settled usage in the
 * ledger + outstanding reservations, so concurrent requests cannot overspend.
 * Thread-safe. */
dz_status dz_ledger_reserve(dz_ledger *l, const dz_key_info *key, int64_t tokens, dz_admit *decision,
                            int64_t *retry_after_s, dz_reservation **res);

/* Frees a reservation without billing anything (the request failed before
 * any work, or is recorded elsewhere). The request still counts in the RPM
 * window; its tokens leave the TPM window. NULL is a no-op. */
void dz_ledger_release(dz_ledger *l, dz_reservation *res);

/* ---- the usage ledger --------------------------------------------------- */

typedef struct dz_usage_row {
    const char *request_id; /* unique in the ledger */
    const char *tenant;
    int64_t key_id;         /* 0: no key */
    const char *model;
    int64_t prompt_tokens, cached_tokens, completion_tokens; /* cached <= prompt */
    const char *status;     /* "ok", "cancelled", "error", ... */
    int64_t start_ms, end_ms; /* ms since the epoch, start <= end */
} dz_usage_row;

/* Appends one row, committed durably before the call returns, and adds its
 * prompt + completion tokens to the key's used tokens. A request id already
 * in the ledger is refused with DZ_ERR_ARG (billing is exactly once); a bad
 * field with DZ_ERR_ARG naming it. */
dz_status dz_ledger_record(dz_ledger *l, const dz_usage_row *row);

/* dz_ledger_record and the release of the reservation, as one step: the
 * reserved tokens turn into the settled ones with no moment at which both or
 * neither count. row->tenant may be NULL and row->key_id 0 (taken from the
 * reservation); when given they must match it. On failure the reservation is
 * untouched (still to be settled or released). */
dz_status dz_ledger_settle(dz_ledger *l, dz_reservation *res, const dz_usage_row *row);

typedef struct dz_usage_filter {
    const char *tenant; /* NULL: every tenant */
    const char *model;  /* NULL: every model */
    int64_t since_ms;   /* rows with end_ms >= since_ms (0: from the start) */
    int64_t until_ms;   /* rows with end_ms <  until_ms (0: no end) */
    bool by_model;      /* one total per (tenant, model) instead of per tenant */
} dz_usage_filter;

typedef struct dz_usage_total {
    char tenant[DZ_TENANT_NAME_MAX + 1];
    char model[DZ_MODEL_NAME_MAX + 1]; /* "" unless by_model */
    int64_t requests;
    int64_t prompt_tokens, cached_tokens, completion_tokens, total_tokens;
} dz_usage_total;

/* Usage totals matching the filter, ordered by tenant (then model).
 * *totals is malloc'd (caller frees with free()); *n may be 0. */
dz_status dz_ledger_usage(dz_ledger *l, const dz_usage_filter *filter, dz_usage_total **totals,
                          size_t *n);

/* Parses a UTC time "YYYY-MM-DD", "YYYY-MM-DDTHH:MM", "YYYY-MM-DDTHH:MM:SS"
 * (an optional trailing 'Z'; a space instead of 'T') into ms since the
 * epoch. DZ_ERR_ARG otherwise. */
dz_status dz_usage_parse_time(const char *text, int64_t *ms);

#ifdef __cplusplus
}
#endif
#endif /* DIZUO_TENANCY_H */
