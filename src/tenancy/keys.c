/* API keys: creation (CSPRNG, only the SHA-256 stored), listing,
 * revocation and authentication (constant-time hash comparison). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "tenancy/tenancy_impl.h"

enum { KEY_RANDOM_BYTES = 32, KEY_HASH_BYTES = 32, KEY_BODY_LEN = 43 };

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 32 bytes -> 43 base64url characters (no padding) + NUL. */
static void encode_b64url(const unsigned char in[KEY_RANDOM_BYTES], char out[KEY_BODY_LEN + 1]) {
    size_t o = 0;
    for (size_t i = 0; i < KEY_RANDOM_BYTES; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < KEY_RANDOM_BYTES) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < KEY_RANDOM_BYTES) v |= in[i + 2];
        size_t chars = i + 2 < KEY_RANDOM_BYTES ? 4 : i + 1 < KEY_RANDOM_BYTES ? 3 : 2;
        for (size_t k = 0; k < chars; k++) out[o++] = b64url[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = '\0';
}

/* Fills buf from the kernel's CSPRNG (getrandom blocks only until the pool
 * is first initialised). */
static dz_status random_bytes(unsigned char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return dz_fail(DZ_ERR_IO, "ledger: getrandom failed: %s", strerror(errno));
        got += (size_t)r;
    }
    return DZ_OK;
}

static dz_status hash_key(const char *key, size_t len, unsigned char out[KEY_HASH_BYTES]) {
    unsigned int n = 0;
    if (!EVP_Digest(key, len, out, &n, EVP_sha256(), NULL) || n != KEY_HASH_BYTES)
        return dz_fail(DZ_ERR_INTERNAL, "ledger: SHA-256 failed in libcrypto");
    return DZ_OK;
}

/* Checks "a,b,c": non-empty entries, each a valid model name. */
static dz_status check_models_list(const char *models) {
    if (!models || !*models) return DZ_OK;
    if (strnlen(models, DZ_MODELS_LIST_MAX + 1) > DZ_MODELS_LIST_MAX)
        return dz_fail(DZ_ERR_ARG, "key: the models list is longer than %d characters", DZ_MODELS_LIST_MAX);
    for (const char *p = models;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        dz_status s = dz_check_model_name(p, len, "key: models list");
        if (s) return s;
        if (!comma) return DZ_OK;
        p = comma + 1;
    }
}

static dz_status check_spec(const dz_key_spec *spec) {
    dz_status s = dz_check_tenant_name(spec->tenant, "key");
    if (s) return s;
    if (spec->quota_tokens < 0 || spec->rpm < 0 || spec->tpm < 0)
        return dz_fail(DZ_ERR_ARG, "key: %s is negative (0 means unlimited)",
                       spec->quota_tokens < 0 ? "quota_tokens" : spec->rpm < 0 ? "rpm" : "tpm");
    return check_models_list(spec->models);
}

/* The inserts of dz_ledger_key_create, inside a transaction (mutex held). */
static dz_status insert_key(dz_ledger *l, const dz_key_spec *spec, const unsigned char *hash,
                            const char *prefix, int64_t now, int64_t *id) {
    sqlite3_stmt *st = NULL;
    const char *doing = "creating a key";
    int rc = sqlite3_prepare_v2(l->db, "INSERT OR IGNORE INTO tenants(name, created_ms) VALUES(?1, ?2)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, spec->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return dz_ledger_db_fail(l, rc, doing);
    st = NULL;
    rc = sqlite3_prepare_v2(l->db,
                            "INSERT INTO keys(tenant_id, hash, prefix, quota_tokens, rpm, tpm, models, "
                            "admin, created_ms) SELECT id, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 FROM tenants "
                            "WHERE name = ?1",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, spec->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, hash, KEY_HASH_BYTES, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, prefix, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, spec->quota_tokens);
        sqlite3_bind_int64(st, 5, spec->rpm);
        sqlite3_bind_int64(st, 6, spec->tpm);
        sqlite3_bind_text(st, 7, spec->models ? spec->models : "", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 8, spec->admin ? 1 : 0);
        sqlite3_bind_int64(st, 9, now);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return dz_ledger_db_fail(l, rc, doing);
    if (sqlite3_changes(l->db) != 1)
        return dz_fail(DZ_ERR_INTERNAL, "ledger %s: tenant '%s' vanished while creating a key",
                       l->path, spec->tenant);
    *id = sqlite3_last_insert_rowid(l->db);
    return DZ_OK;
}

dz_status dz_ledger_key_create(dz_ledger *l, const dz_key_spec *spec, char key_out[DZ_KEY_LEN + 1],
                               int64_t *id) {
    if (!l || !spec || !key_out || !id)
        return dz_fail(DZ_ERR_ARG, "dz_ledger_key_create: a NULL argument");
    dz_status s = check_spec(spec);
    if (s) return s;
    unsigned char secret[KEY_RANDOM_BYTES], hash[KEY_HASH_BYTES];
    char key[DZ_KEY_LEN + 1], prefix[DZ_KEY_PREFIX_LEN + 1];
    memcpy(key, "dz-", 3);
    if ((s = random_bytes(secret, sizeof secret))) return s;
    encode_b64url(secret, key + 3);
    OPENSSL_cleanse(secret, sizeof secret);
    if ((s = hash_key(key, DZ_KEY_LEN, hash))) return s;
    memcpy(prefix, key, DZ_KEY_PREFIX_LEN);
    prefix[DZ_KEY_PREFIX_LEN] = '\0';

    pthread_mutex_lock(&l->mu);
    int64_t new_id = 0;
    s = dz_ledger_exec(l, "BEGIN IMMEDIATE", "creating a key");
    if (!s) {
        s = insert_key(l, spec, hash, prefix, dz_ledger_now(l), &new_id);
        if (!s) s = dz_ledger_exec(l, "COMMIT", "creating a key");
        if (s) sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_unlock(&l->mu);
    if (!s) {
        memcpy(key_out, key, DZ_KEY_LEN + 1);
        *id = new_id;
    }
    OPENSSL_cleanse(key, sizeof key);
    return s;
}

static const char *const key_columns =
    "SELECT k.id, t.name, k.prefix, k.quota_tokens, k.rpm, k.tpm, k.models, k.admin, "
    "k.created_ms, k.revoked_ms, k.used_tokens, k.hash FROM keys k JOIN tenants t ON t.id = k.tenant_id ";

static void read_key_row(sqlite3_stmt *st, dz_key_info *k) {
    memset(k, 0, sizeof *k);
    k->id = sqlite3_column_int64(st, 0);
    dz_copy_column(st, 1, k->tenant, sizeof k->tenant);
    dz_copy_column(st, 2, k->prefix, sizeof k->prefix);
    k->quota_tokens = sqlite3_column_int64(st, 3);
    k->rpm = sqlite3_column_int64(st, 4);
    k->tpm = sqlite3_column_int64(st, 5);
    dz_copy_column(st, 6, k->models, sizeof k->models);
    k->admin = sqlite3_column_int(st, 7) != 0;
    k->created_ms = sqlite3_column_int64(st, 8);
    k->revoked = sqlite3_column_type(st, 9) != SQLITE_NULL;
    k->revoked_ms = k->revoked ? sqlite3_column_int64(st, 9) : 0;
    k->used_tokens = sqlite3_column_int64(st, 10);
}

dz_status dz_ledger_key_list_page(dz_ledger *l, int64_t after_id, int64_t limit, dz_key_info **keys, size_t *n) {
    if (!l || !keys || !n) return dz_fail(DZ_ERR_ARG, "dz_ledger_key_list: a NULL argument");
    char sql[512];
    snprintf(sql, sizeof sql, "%sWHERE k.id > ?1 ORDER BY k.id LIMIT ?2", key_columns);
    dz_key_info *list = NULL;
    size_t count = 0, cap = 0;
    dz_status s = DZ_OK;
    pthread_mutex_lock(&l->mu);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(l->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 1, after_id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1); /* -1: no limit */
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            size_t new_cap = cap ? cap * 2 : 16;
            dz_key_info *bigger = realloc(list, new_cap * sizeof *list);
            if (!bigger) {
                s = dz_fail(DZ_ERR_NOMEM, "ledger %s: out of memory listing keys", l->path);
                break;
            }
            list = bigger;
            cap = new_cap;
        }
        read_key_row(st, &list[count++]);
        rc = SQLITE_OK;
    }
    if (!s && rc != SQLITE_DONE) s = dz_ledger_db_fail(l, rc, "listing keys");
    sqlite3_finalize(st);
    pthread_mutex_unlock(&l->mu);
    if (s) {
        free(list);
        return s;
    }
    *keys = list;
    *n = count;
    return DZ_OK;
}

dz_status dz_ledger_key_list(dz_ledger *l, dz_key_info **keys, size_t *n) {
    return dz_ledger_key_list_page(l, 0, 0, keys, n);
}

dz_status dz_ledger_key_revoke(dz_ledger *l, int64_t id) {
    if (!l) return dz_fail(DZ_ERR_ARG, "dz_ledger_key_revoke: ledger is NULL");
    pthread_mutex_lock(&l->mu);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(l->db, "UPDATE keys SET revoked_ms = coalesce(revoked_ms, ?2) WHERE id = ?1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, dz_ledger_now(l));
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    dz_status s = DZ_OK;
    if (rc != SQLITE_DONE) s = dz_ledger_db_fail(l, rc, "revoking a key");
    else if (sqlite3_changes(l->db) == 0) s = dz_fail(DZ_ERR_ARG, "ledger %s: no key with id %lld", l->path, (long long)id);
    pthread_mutex_unlock(&l->mu);
    return s;
}

/* Whether text has the shape of a key; anything else is unknown without a
 * database lookup. */
static bool key_shaped(const char *key) {
    if (strnlen(key, DZ_KEY_LEN + 1) != DZ_KEY_LEN || memcmp(key, "dz-", 3) != 0) return false;
    for (size_t i = 3; i < DZ_KEY_LEN; i++)
        if (!strchr(b64url, key[i]) || key[i] == '\0') return false;
    return true;
}

dz_status dz_ledger_authenticate(dz_ledger *l, const char *key, dz_auth_result *result,
                                 dz_key_info *info) {
    if (!l || !key || !result) return dz_fail(DZ_ERR_ARG, "dz_ledger_authenticate: a NULL argument");
    *result = DZ_AUTH_UNKNOWN;
    if (!key_shaped(key)) return DZ_OK;
    unsigned char hash[KEY_HASH_BYTES];
    dz_status s = hash_key(key, DZ_KEY_LEN, hash);
    if (s) return s;
    char sql[512];
    snprintf(sql, sizeof sql, "%sWHERE k.hash = ?1", key_columns);
    dz_key_info found;
    dz_auth_result r = DZ_AUTH_UNKNOWN;
    pthread_mutex_lock(&l->mu);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(l->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_blob(st, 1, hash, KEY_HASH_BYTES, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_ROW) {
        /* The index found the row; the stored hash is compared again in
         * constant time, so no timing depends on how much of it matched. */
        const void *stored = sqlite3_column_blob(st, 11);
        if (stored && sqlite3_column_bytes(st, 11) == KEY_HASH_BYTES &&
            CRYPTO_memcmp(stored, hash, KEY_HASH_BYTES) == 0) {
            read_key_row(st, &found);
            r = found.revoked ? DZ_AUTH_REVOKED : DZ_AUTH_OK;
        }
        rc = SQLITE_DONE;
    }
    if (rc != SQLITE_DONE) s = dz_ledger_db_fail(l, rc, "authenticating a key");
    sqlite3_finalize(st);
    pthread_mutex_unlock(&l->mu);
    if (s) return s;
    *result = r;
    if (info && r == DZ_AUTH_OK) *info = found;
    return DZ_OK;
}

bool dz_key_allows_model(const dz_key_info *key, const char *model) {
    if (!key || !model) return false;
    if (!key->models[0]) return true;
    size_t len = strlen(model);
    for (const char *p = key->models;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == len && memcmp(p, model, len) == 0) return true;
        if (!comma) return false;
        p = comma + 1;
    }
}
