/* The usage ledger: one durable row per request (exactly once per request
 * id), settling reservations, totals over time ranges, and the UTC time
 * format of the usage reports. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenancy/tenancy_impl.h"

/* Token counts above this are refused: sums of many rows stay exact. */
#define DZ_MAX_ROW_TOKENS ((int64_t)1 << 40)

static dz_status check_row(const dz_usage_row *row) {
    const char *what = "usage row";
    const char *id = row->request_id;
    if (!id || !*id) return dz_fail(DZ_ERR_ARG, "%s: request_id is empty", what);
    size_t n = strnlen(id, DZ_REQUEST_ID_MAX + 1);
    if (n > DZ_REQUEST_ID_MAX)
        return dz_fail(DZ_ERR_ARG, "%s: request_id is longer than %d characters", what, DZ_REQUEST_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == ':' || c == '-'))
            return dz_fail(DZ_ERR_ARG, "%s: request_id has byte 0x%02x at offset %zu; allowed are "
                           "A-Z a-z 0-9 . _ : -", what, c, i);
    }
    dz_status s = dz_check_tenant_name(row->tenant, what);
    if (s) return s;
    if (!row->model) return dz_fail(DZ_ERR_ARG, "%s: model is NULL", what);
    if ((s = dz_check_model_name(row->model, strnlen(row->model, DZ_MODEL_NAME_MAX + 1), what))) return s;
    const char *st = row->status;
    if (!st || !*st) return dz_fail(DZ_ERR_ARG, "%s: status is empty", what);
    n = strnlen(st, DZ_USAGE_STATUS_MAX + 1);
    if (n > DZ_USAGE_STATUS_MAX) return dz_fail(DZ_ERR_ARG, "%s: status is too long", what);
    for (size_t i = 0; i < n; i++)
        if (!((st[i] >= 'a' && st[i] <= 'z') || st[i] == '_'))
            return dz_fail(DZ_ERR_ARG, "%s: status may only hold a-z and _", what);
    if (row->key_id < 0) return dz_fail(DZ_ERR_ARG, "%s: key_id is negative", what);
    const int64_t counts[3] = {row->prompt_tokens, row->cached_tokens, row->completion_tokens};
    static const char *const names[3] = {"prompt_tokens", "cached_tokens", "completion_tokens"};
    for (int i = 0; i < 3; i++)
        if (counts[i] < 0 || counts[i] > DZ_MAX_ROW_TOKENS)
            return dz_fail(DZ_ERR_ARG, "%s: %s = %lld is outside 0..2^40", what, names[i], (long long)counts[i]);
    if (row->cached_tokens > row->prompt_tokens)
        return dz_fail(DZ_ERR_ARG, "%s: cached_tokens (%lld) exceeds prompt_tokens (%lld)", what,
                       (long long)row->cached_tokens, (long long)row->prompt_tokens);
    if (row->start_ms < 0 || row->end_ms < row->start_ms)
        return dz_fail(DZ_ERR_ARG, "%s: times must satisfy 0 <= start_ms <= end_ms (got %lld, %lld)",
                       what, (long long)row->start_ms, (long long)row->end_ms);
    return DZ_OK;
}

/* The statements of one record, inside a transaction. */
static dz_status insert_row(dz_ledger *l, const dz_usage_row *row) {
    const char *doing = "recording usage";
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(l->db,
                                "INSERT INTO usage(request_id, tenant, key_id, model, prompt_tokens, "
                                "cached_tokens, completion_tokens, status, start_ms, end_ms) "
                                "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, row->request_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, row->tenant, -1, SQLITE_STATIC);
        if (row->key_id > 0) sqlite3_bind_int64(st, 3, row->key_id);
        else sqlite3_bind_null(st, 3);
        sqlite3_bind_text(st, 4, row->model, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, row->prompt_tokens);
        sqlite3_bind_int64(st, 6, row->cached_tokens);
        sqlite3_bind_int64(st, 7, row->completion_tokens);
        sqlite3_bind_text(st, 8, row->status, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 9, row->start_ms);
        sqlite3_bind_int64(st, 10, row->end_ms);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return dz_fail(DZ_ERR_ARG, "ledger %s: request id '%s' is already in the ledger (a request is "
                       "billed once)", l->path, row->request_id);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return dz_fail(DZ_ERR_ARG, "ledger %s: no key with id %lld", l->path, (long long)row->key_id);
    if (rc != SQLITE_DONE) return dz_ledger_db_fail(l, rc, doing);
    if (row->key_id <= 0) return DZ_OK;
    st = NULL;
    rc = sqlite3_prepare_v2(l->db, "UPDATE keys SET used_tokens = used_tokens + ?2 WHERE id = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, row->key_id);
        sqlite3_bind_int64(st, 2, row->prompt_tokens + row->completion_tokens);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return dz_ledger_db_fail(l, rc, doing);
    if (sqlite3_changes(l->db) != 1)
        return dz_fail(DZ_ERR_ARG, "ledger %s: no key with id %lld", l->path, (long long)row->key_id);
    return DZ_OK;
}

dz_status dz_usage_insert(dz_ledger *l, const dz_usage_row *row) {
    dz_status s = check_row(row);
    if (s) return s;
    if ((s = dz_ledger_exec(l, "BEGIN IMMEDIATE", "recording usage"))) return s;
    s = insert_row(l, row);
    /* COMMIT returns after the WAL is synced (synchronous=FULL). */
    if (!s) s = dz_ledger_exec(l, "COMMIT", "recording usage");
    if (s) sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    return s;
}

dz_status dz_ledger_record(dz_ledger *l, const dz_usage_row *row) {
    if (!l || !row) return dz_fail(DZ_ERR_ARG, "dz_ledger_record: a NULL argument");
    pthread_mutex_lock(&l->mu);
    dz_status s = dz_usage_insert(l, row);
    pthread_mutex_unlock(&l->mu);
    return s;
}

dz_status dz_ledger_settle(dz_ledger *l, dz_reservation *res, const dz_usage_row *row) {
    if (!l || !res || !row) return dz_fail(DZ_ERR_ARG, "dz_ledger_settle: a NULL argument");
    if (row->key_id != 0 && row->key_id != res->key_id)
        return dz_fail(DZ_ERR_ARG, "dz_ledger_settle: the row's key id %lld is not the reservation's %lld",
                       (long long)row->key_id, (long long)res->key_id);
    if (row->tenant && strcmp(row->tenant, res->tenant) != 0)
        return dz_fail(DZ_ERR_ARG, "dz_ledger_settle: the row's tenant is not the reservation's '%s'",
                       res->tenant);
    dz_usage_row full = *row;
    full.key_id = res->key_id;
    full.tenant = res->tenant;
    pthread_mutex_lock(&l->mu);
    dz_status s = dz_usage_insert(l, &full);
    if (!s) dz_quota_settled(l, res, full.prompt_tokens + full.completion_tokens);
    pthread_mutex_unlock(&l->mu);
    return s;
}

dz_status dz_ledger_usage(dz_ledger *l, const dz_usage_filter *filter, dz_usage_total **totals,
                          size_t *n) {
    if (!l || !filter || !totals || !n) return dz_fail(DZ_ERR_ARG, "dz_ledger_usage: a NULL argument");
    dz_status s = DZ_OK;
    if (filter->tenant && (s = dz_check_tenant_name(filter->tenant, "usage filter"))) return s;
    if (filter->model &&
        (s = dz_check_model_name(filter->model, strnlen(filter->model, DZ_MODEL_NAME_MAX + 1), "usage filter")))
        return s;
    if (filter->since_ms < 0 || filter->until_ms < 0)
        return dz_fail(DZ_ERR_ARG, "usage filter: negative time");
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT tenant, %s, count(*), sum(prompt_tokens), sum(cached_tokens), sum(completion_tokens) "
             "FROM usage WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR model = ?2) "
             "AND end_ms >= ?3 AND (?4 = 0 OR end_ms < ?4) GROUP BY tenant%s ORDER BY tenant%s",
             filter->by_model ? "model" : "''", filter->by_model ? ", model" : "",
             filter->by_model ? ", model" : "");
    dz_usage_total *list = NULL;
    size_t count = 0, cap = 0;
    pthread_mutex_lock(&l->mu);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(l->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        if (filter->tenant) sqlite3_bind_text(st, 1, filter->tenant, -1, SQLITE_STATIC);
        if (filter->model) sqlite3_bind_text(st, 2, filter->model, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, filter->since_ms);
        sqlite3_bind_int64(st, 4, filter->until_ms);
    }
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            size_t new_cap = cap ? cap * 2 : 16;
            dz_usage_total *bigger = realloc(list, new_cap * sizeof *list);
            if (!bigger) {
                s = dz_fail(DZ_ERR_NOMEM, "ledger %s: out of memory reading usage", l->path);
                break;
            }
            list = bigger;
            cap = new_cap;
        }
        dz_usage_total *t = &list[count++];
        memset(t, 0, sizeof *t);
        dz_copy_column(st, 0, t->tenant, sizeof t->tenant);
        dz_copy_column(st, 1, t->model, sizeof t->model);
        t->requests = sqlite3_column_int64(st, 2);
        t->prompt_tokens = sqlite3_column_int64(st, 3);
        t->cached_tokens = sqlite3_column_int64(st, 4);
        t->completion_tokens = sqlite3_column_int64(st, 5);
        t->total_tokens = t->prompt_tokens + t->completion_tokens;
        rc = SQLITE_OK;
    }
    if (!s && rc != SQLITE_DONE) s = dz_ledger_db_fail(l, rc, "reading usage");
    sqlite3_finalize(st);
    pthread_mutex_unlock(&l->mu);
    if (s) {
        free(list);
        return s;
    }
    *totals = list;
    *n = count;
    return DZ_OK;
}

/* Days from 1970-01-01 to the civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Reads exactly `digits` decimal digits. */
static bool read_digits(const char **p, int digits, int64_t *out) {
    int64_t v = 0;
    for (int i = 0; i < digits; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    *p += digits;
    *out = v;
    return true;
}

dz_status dz_usage_parse_time(const char *text, int64_t *ms) {
    if (!text || !ms) return dz_fail(DZ_ERR_ARG, "time: a NULL argument");
    const char *p = text;
    int64_t y, mo, d, h = 0, mi = 0, sec = 0;
    bool ok = read_digits(&p, 4, &y) && *p++ == '-' && read_digits(&p, 2, &mo) && *p++ == '-' &&
              read_digits(&p, 2, &d);
    if (ok && (*p == 'T' || *p == ' ')) {
        p++;
        ok = read_digits(&p, 2, &h) && *p++ == ':' && read_digits(&p, 2, &mi);
        if (ok && *p == ':') {
            p++;
            ok = read_digits(&p, 2, &sec);
        }
    }
    if (ok && *p == 'Z') p++;
    if (!ok || *p != '\0')
        return dz_fail(DZ_ERR_ARG, "time '%.40s' is not YYYY-MM-DD[THH:MM[:SS]][Z] (UTC)", text);
    static const int month_days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > month_days[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || sec > 59)
        return dz_fail(DZ_ERR_ARG, "time '%.40s' is out of range (from 1970, a real date and time)", text);
    *ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + sec * 1000;
    return DZ_OK;
}
