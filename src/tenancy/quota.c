/* Admission: token quotas held by reservations, and the RPM / TPM sliding
 * one-minute windows of each key. This state lives in the process's memory
 * under the ledger mutex; the settled usage it is checked against lives in
 * the database (keys.used_tokens, updated with each usage row). */
#include <stdlib.h>
#include <string.h>

#include "tenancy/tenancy_impl.h"

static size_t bucket_of(int64_t key_id) {
    return (size_t)((uint64_t)key_id * 0x9e3779b97f4a7c15ull >> 56) % DZ_KEY_STATE_BUCKETS;
}

static dz_key_state *find_state(dz_ledger *l, int64_t key_id) {
    for (dz_key_state *k = l->keys[bucket_of(key_id)]; k; k = k->next)
        if (k->key_id == key_id) return k;
    return NULL;
}

static dz_key_state *find_or_add_state(dz_ledger *l, int64_t key_id) {
    dz_key_state *k = find_state(l, key_id);
    if (k) return k;
    k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->key_id = key_id;
    size_t b = bucket_of(key_id);
    k->next = l->keys[b];
    l->keys[b] = k;
    return k;
}

/* Frees a key's state once nothing is outstanding in it. */
static void drop_state_if_idle(dz_ledger *l, dz_key_state *k) {
    if (k->n_events || k->reserved_tokens) return;
    dz_key_state **link = &l->keys[bucket_of(k->key_id)];
    while (*link != k) link = &(*link)->next;
    *link = k->next;
    free(k->events);
    free(k);
}

/* Forgets events that left the window (at or before now - 1 minute). */
static void prune_window(dz_key_state *k, int64_t now) {
    size_t old = 0;
    while (old < k->n_events && now - k->events[old].time_ms >= DZ_WINDOW_MS) old++;
    if (!old) return;
    memmove(k->events, k->events + old, (k->n_events - old) * sizeof *k->events);
    k->n_events -= old;
}

/* Whole seconds (>= 1) until the event at time t leaves the window. */
static int64_t seconds_until_expiry(int64_t t, int64_t now) {
    int64_t ms = t + DZ_WINDOW_MS - now;
    int64_t s = (ms + 999) / 1000;
    return s < 1 ? 1 : s;
}

/* The rate-limit decision for one more request of `tokens` (mutex held). */
static dz_admit check_rates(const dz_key_info *key, const dz_key_state *k, int64_t tokens,
                            int64_t now, int64_t *retry_after_s) {
    if (key->rpm > 0 && (int64_t)k->n_events >= key->rpm) {
        /* The (n - rpm)-th oldest event must leave before one more fits. */
        *retry_after_s = seconds_until_expiry(k->events[k->n_events - (size_t)key->rpm].time_ms, now);
        return DZ_ADMIT_RPM;
    }
    if (key->tpm > 0) {
        if (tokens > key->tpm) return DZ_ADMIT_TOO_LARGE;
        int64_t in_window = 0;
        for (size_t i = 0; i < k->n_events; i++) in_window += k->events[i].tokens;
        if (in_window + tokens > key->tpm) {
            size_t i = 0;
            while (i < k->n_events && in_window + tokens > key->tpm) in_window -= k->events[i++].tokens;
            *retry_after_s = seconds_until_expiry(k->events[i - 1].time_ms, now);
            return DZ_ADMIT_TPM;
        }
    }
    return DZ_ADMIT_OK;
}

/* The key's settled tokens, read from the ledger (mutex held). */
static dz_status settled_tokens(dz_ledger *l, int64_t key_id, int64_t *used) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(l->db, "SELECT used_tokens FROM keys WHERE id = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, key_id);
        rc = sqlite3_step(st);
    }
    dz_status s = DZ_OK;
    if (rc == SQLITE_ROW) *used = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE) s = dz_fail(DZ_ERR_ARG, "ledger %s: no key with id %lld", l->path, (long long)key_id);
    else s = dz_ledger_db_fail(l, rc, "reading a key's used tokens");
    sqlite3_finalize(st);
    return s;
}

/* The admission decision and, when admitted, its bookkeeping (mutex held). */
static dz_status admit(dz_ledger *l, const dz_key_info *key, int64_t tokens, dz_admit *decision,
                       int64_t *retry_after_s, dz_reservation **res) {
    int64_t now = dz_ledger_now(l);
    dz_key_state *k = find_or_add_state(l, key->id);
    if (!k) return dz_fail(DZ_ERR_NOMEM, "ledger: out of memory admitting a request");
    prune_window(k, now);
    dz_status s = DZ_OK;
    *decision = DZ_ADMIT_OK;
    if (key->quota_tokens > 0) {
        int64_t used = 0;
        if ((s = settled_tokens(l, key->id, &used))) goto done;
        if (used > key->quota_tokens - k->reserved_tokens - tokens) {
            *decision = DZ_ADMIT_QUOTA;
            goto done;
        }
    }
    if ((*decision = check_rates(key, k, tokens, now, retry_after_s))) goto done;
    if ((key->rpm > 0 || key->tpm > 0) && k->n_events == k->cap_events) {
        size_t cap = k->cap_events ? k->cap_events * 2 : 8;
        dz_window_event *bigger = realloc(k->events, cap * sizeof *bigger);
        if (!bigger) {
            s = dz_fail(DZ_ERR_NOMEM, "ledger: out of memory admitting a request");
            goto done;
        }
        k->events = bigger;
        k->cap_events = cap;
    }
    dz_reservation *r = calloc(1, sizeof *r);
    if (!r) {
        s = dz_fail(DZ_ERR_NOMEM, "ledger: out of memory admitting a request");
        goto done;
    }
    r->key_id = key->id;
    memcpy(r->tenant, key->tenant, sizeof r->tenant);
    r->tenant[DZ_TENANT_NAME_MAX] = '\0';
    r->tokens = tokens;
    r->seq = ++l->next_seq;
    if (key->rpm > 0 || key->tpm > 0)
        k->events[k->n_events++] = (dz_window_event){.time_ms = now, .tokens = tokens, .seq = r->seq};
    k->reserved_tokens += tokens;
    *res = r;
done:
    drop_state_if_idle(l, k);
    return s;
}

dz_status dz_ledger_reserve(dz_ledger *l, const dz_key_info *key, int64_t tokens, dz_admit *decision,
                            int64_t *retry_after_s, dz_reservation **res) {
    if (!l || !key || !decision || !retry_after_s || !res)
        return dz_fail(DZ_ERR_ARG, "dz_ledger_reserve: a NULL argument");
    if (key->id <= 0) return dz_fail(DZ_ERR_ARG, "dz_ledger_reserve: key id %lld is not a key", (long long)key->id);
    /* 2^40 tokens is far beyond any request; the bound keeps sums exact. */
    if (tokens < 1 || tokens > ((int64_t)1 << 40))
        return dz_fail(DZ_ERR_ARG, "dz_ledger_reserve: tokens must be in 1..2^40, got %lld", (long long)tokens);
    dz_admit d = DZ_ADMIT_OK;
    int64_t retry = 0;
    dz_reservation *r = NULL;
    pthread_mutex_lock(&l->mu);
    dz_status s = admit(l, key, tokens, &d, &retry, &r);
    pthread_mutex_unlock(&l->mu);
    if (s) return s;
    *decision = d;
    *retry_after_s = d == DZ_ADMIT_RPM || d == DZ_ADMIT_TPM ? retry : 0;
    *res = r;
    return DZ_OK;
}

void dz_quota_settled(dz_ledger *l, dz_reservation *res, int64_t actual_tokens) {
    dz_key_state *k = find_state(l, res->key_id);
    if (k) {
        k->reserved_tokens -= res->tokens;
        for (size_t i = k->n_events; i-- > 0;) {
            if (k->events[i].seq == res->seq) {
                k->events[i].tokens = actual_tokens;
                break;
            }
        }
        prune_window(k, dz_ledger_now(l));
        drop_state_if_idle(l, k);
    }
    free(res);
}

void dz_ledger_release(dz_ledger *l, dz_reservation *res) {
    if (!l || !res) return;
    pthread_mutex_lock(&l->mu);
    dz_quota_settled(l, res, 0);
    pthread_mutex_unlock(&l->mu);
}

void dz_quota_free_all(dz_ledger *l) {
    for (size_t b = 0; b < DZ_KEY_STATE_BUCKETS; b++) {
        for (dz_key_state *k = l->keys[b], *next; k; k = next) {
            next = k->next;
            free(k->events);
            free(k);
        }
        l->keys[b] = NULL;
    }
}
