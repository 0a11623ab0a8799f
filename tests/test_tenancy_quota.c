/* Tenancy, admission: RPM and TPM sliding windows (with an injected clock,
 * so nothing sleeps), token quotas reserved at admission and settled to
 * actual use, and that concurrent requests cannot overspend a quota. The
 * expected decisions and Retry-After values are worked out by hand in the
 * comments. */
#include <pthread.h>

#include "dizuo/tenancy.h"
#include "dztest.h"

typedef struct fake_clock { int64_t now; } fake_clock;
static int64_t fake_now(void *ctx) { return ((fake_clock *)ctx)->now; }

static dz_ledger *open_fresh(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dzt_tmpdir(), name);
    dz_ledger *l = NULL;
    DZT_OK(dz_ledger_open(path, DZ_LEDGER_CREATE, &l));
    return l;
}

static dz_key_info make_key(dz_ledger *l, const char *tenant, int64_t quota, int64_t rpm, int64_t tpm) {
    dz_key_spec spec = {.tenant = tenant, .quota_tokens = quota, .rpm = rpm, .tpm = tpm};
    char key[DZ_KEY_LEN + 1];
    int64_t id = 0;
    dz_key_info info;
    memset(&info, 0, sizeof info);
    DZT_OK(dz_ledger_key_create(l, &spec, key, &id));
    dz_auth_result r = DZ_AUTH_UNKNOWN;
    DZT_OK(dz_ledger_authenticate(l, key, &r, &info));
    DZT_EQ_INT(r, DZ_AUTH_OK);
    return info;
}

/* Reserves and returns the decision; *res set on OK. */
static dz_admit try_reserve(dz_ledger *l, const dz_key_info *k, int64_t tokens, int64_t *retry,
                            dz_reservation **res) {
    dz_admit d = DZ_ADMIT_OK;
    *res = NULL;
    *retry = -1;
    DZT_OK(dz_ledger_reserve(l, k, tokens, &d, retry, res));
    DZT_ASSERT((d == DZ_ADMIT_OK) == (*res != NULL));
    return d;
}

static dz_usage_row row_of(const char *id, int64_t prompt, int64_t completion, int64_t t) {
    return (dz_usage_row){.request_id = id, .model = "m", .prompt_tokens = prompt,
                          .completion_tokens = completion, .status = "ok", .start_ms = t, .end_ms = t};
}

static void test_rpm(void) {
    dz_ledger *l = open_fresh("rpm.db");
    if (!l) return;
    fake_clock clock = {.now = 1000000};
    dz_ledger_set_clock(l, fake_now, &clock);
    dz_key_info k = make_key(l, "rpm", 0, 3, 0);
    const int64_t t0 = clock.now;
    int64_t retry;
    dz_reservation *r;
    /* Three requests at t0, t0+10 s, t0+20 s pass. */
    for (int i = 0; i < 3; i++) {
        clock.now = t0 + i * 10000;
        DZT_EQ_INT(try_reserve(l, &k, 10, &retry, &r), DZ_ADMIT_OK);
        dz_ledger_release(l, r); /* a released request still counts in RPM */
    }
    /* The fourth at t0+30 s waits for the first to leave at t0+60 s: 30 s. */
    clock.now = t0 + 30000;
    DZT_EQ_INT(try_reserve(l, &k, 10, &retry, &r), DZ_ADMIT_RPM);
    DZT_EQ_INT(retry, 30);
    /* 1 ms before it leaves: rounded up to 1 s. */
    clock.now = t0 + 59999;
    DZT_EQ_INT(try_reserve(l, &k, 10, &retry, &r), DZ_ADMIT_RPM);
    DZT_EQ_INT(retry, 1);
    /* At t0+60 s the first left: one more fits, then the next waits for the
     * one of t0+10 s to leave at t0+70 s: 10 s. */
    clock.now = t0 + 60000;
    DZT_EQ_INT(try_reserve(l, &k, 10, &retry, &r), DZ_ADMIT_OK);
    dz_ledger_release(l, r);
    DZT_EQ_INT(try_reserve(l, &k, 10, &retry, &r), DZ_ADMIT_RPM);
    DZT_EQ_INT(retry, 10);
    /* Another key of the same tenant has its own window. */
    dz_key_info k2 = make_key(l, "rpm", 0, 1, 0);
    DZT_EQ_INT(try_reserve(l, &k2, 10, &retry, &r), DZ_ADMIT_OK);
    dz_ledger_release(l, r);
    dz_ledger_close(l);
}

static void test_tpm(void) {
    dz_ledger *l = open_fresh("tpm.db");
    if (!l) return;
    fake_clock clock = {.now = 5000000};
    dz_ledger_set_clock(l, fake_now, &clock);
    dz_key_info k = make_key(l, "tpm", 0, 0, 1000);
    const int64_t t0 = clock.now;
    int64_t retry;
    dz_reservation *r1, *r2, *r3;
    DZT_EQ_INT(try_reserve(l, &k, 600, &retry, &r1), DZ_ADMIT_OK);
    /* 600 + 500 > 1000: wait until the 600 leaves (t0+60 s), from t0+1 s: 59 s. */
    clock.now = t0 + 1000;
    DZT_EQ_INT(try_reserve(l, &k, 500, &retry, &r2), DZ_ADMIT_TPM);
    DZT_EQ_INT(retry, 59);
    /* Settled to the actual 100 + 200 = 300 tokens: 300 + 500 <= 1000. */
    dz_usage_row row = row_of("tpm-1", 100, 200, clock.now);
    DZT_OK(dz_ledger_settle(l, r1, &row));
    clock.now = t0 + 2000;
    DZT_EQ_INT(try_reserve(l, &k, 500, &retry, &r2), DZ_ADMIT_OK);
    /* 300 + 500 + 300 > 1000; without the oldest (300, t0): 800 <= 1000, so
     * wait for t0+60 s, from t0+3 s: 57 s. */
    clock.now = t0 + 3000;
    DZT_EQ_INT(try_reserve(l, &k, 300, &retry, &r3), DZ_ADMIT_TPM);
    DZT_EQ_INT(retry, 57);
    /* Alone larger than the TPM: never admissible. */
    DZT_EQ_INT(try_reserve(l, &k, 1001, &retry, &r3), DZ_ADMIT_TOO_LARGE);
    DZT_EQ_INT(retry, 0);
    /* Released: its 500 leave the window, 300 + 300 fits. */
    dz_ledger_release(l, r2);
    DZT_EQ_INT(try_reserve(l, &k, 300, &retry, &r3), DZ_ADMIT_OK);
    dz_ledger_release(l, r3);
    /* A minute later everything has left. */
    clock.now = t0 + 63000;
    DZT_EQ_INT(try_reserve(l, &k, 1000, &retry, &r3), DZ_ADMIT_OK);
    dz_ledger_release(l, r3);
    dz_ledger_close(l);
}

static void test_quota(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/quota.db", dzt_tmpdir());
    dz_ledger *l = open_fresh("quota.db");
    if (!l) return;
    dz_key_info k = make_key(l, "q", 1000, 0, 0);
    int64_t retry;
    dz_reservation *a, *b, *c, *d;
    DZT_EQ_INT(try_reserve(l, &k, 700, &retry, &a), DZ_ADMIT_OK);
    DZT_EQ_INT(try_reserve(l, &k, 400, &retry, &b), DZ_ADMIT_QUOTA); /* 700 + 400 > 1000 */
    DZT_EQ_INT(retry, 0);
    DZT_EQ_INT(try_reserve(l, &k, 300, &retry, &b), DZ_ADMIT_OK); /* exactly 1000 */
    DZT_EQ_INT(try_reserve(l, &k, 1, &retry, &c), DZ_ADMIT_QUOTA);
    /* a settles to 100 + 150 = 250: in use 250 + 300; 450 more fit, 451 not. */
    dz_usage_row row = row_of("q-a", 100, 150, 1);
    DZT_OK(dz_ledger_settle(l, a, &row));
    DZT_EQ_INT(try_reserve(l, &k, 451, &retry, &c), DZ_ADMIT_QUOTA);
    DZT_EQ_INT(try_reserve(l, &k, 450, &retry, &c), DZ_ADMIT_OK);
    /* A failed settle (mismatched tenant, then a duplicate id) leaves the
     * reservation outstanding. */
    dz_usage_row wrong = row_of("q-b", 1, 1, 2);
    wrong.tenant = "other";
    DZT_FAILS(dz_ledger_settle(l, b, &wrong), DZ_ERR_ARG);
    dz_usage_row dup = row_of("q-a", 1, 1, 2);
    DZT_FAILS(dz_ledger_settle(l, b, &dup), DZ_ERR_ARG);
    DZT_EQ_INT(try_reserve(l, &k, 1, &retry, &d), DZ_ADMIT_QUOTA); /* b still held */
    dz_ledger_release(l, b);                                      /* cancelled: nothing billed */
    dz_ledger_release(l, c);
    /* Used 250 of 1000: 750 fit, 751 not. */
    DZT_EQ_INT(try_reserve(l, &k, 751, &retry, &d), DZ_ADMIT_QUOTA);
    DZT_EQ_INT(try_reserve(l, &k, 750, &retry, &d), DZ_ADMIT_OK);
    dz_ledger_release(l, d);
    /* Bad arguments. */
    dz_admit dec;
    DZT_FAILS(dz_ledger_reserve(l, &k, 0, &dec, &retry, &d), DZ_ERR_ARG);
    DZT_FAILS(dz_ledger_reserve(l, &k, -5, &dec, &retry, &d), DZ_ERR_ARG);
    dz_key_info ghost = k;
    ghost.id = 424242;
    DZT_FAILS(dz_ledger_reserve(l, &ghost, 5, &dec, &retry, &d), DZ_ERR_ARG);
    dz_ledger_release(l, NULL);
    dz_ledger_close(l);
    /* The settled use is in the database: after reopening, 750 still fit, 751 not. */
    DZT_OK(dz_ledger_open(path, 0, &l));
    if (!l) return;
    DZT_EQ_INT(try_reserve(l, &k, 751, &retry, &d), DZ_ADMIT_QUOTA);
    DZT_EQ_INT(try_reserve(l, &k, 750, &retry, &d), DZ_ADMIT_OK);
    dz_ledger_release(l, d);
    dz_ledger_close(l);
}

/* ---- concurrency ---- */

enum { N_THREADS = 8, QUOTA = 6000, PER_REQUEST = 100 };

typedef struct worker {
    dz_ledger *ledger;
    const dz_key_info *key;
    int index;
    int64_t admitted, settled_tokens, refused;
} worker;

/* Each worker admits requests of PER_REQUEST tokens until refused 20 times
 * in a row; two in three settle to the full amount, one in three is
 * cancelled (released). */
static void *work(void *arg) {
    worker *w = arg;
    int streak = 0;
    for (int i = 0; streak < 20 && i < 10000; i++) {
        dz_admit d;
        int64_t retry;
        dz_reservation *res = NULL;
        if (dz_ledger_reserve(w->ledger, w->key, PER_REQUEST, &d, &retry, &res) != DZ_OK) break;
        if (d != DZ_ADMIT_OK) {
            w->refused++;
            streak++;
            continue;
        }
        streak = 0;
        w->admitted++;
        if (i % 3 == 2) {
            dz_ledger_release(w->ledger, res);
            continue;
        }
        char id[64];
        snprintf(id, sizeof id, "w%d-%d", w->index, i);
        dz_usage_row row = row_of(id, 40, PER_REQUEST - 40, i);
        if (dz_ledger_settle(w->ledger, res, &row) == DZ_OK) w->settled_tokens += PER_REQUEST;
        else dz_ledger_release(w->ledger, res);
    }
    return NULL;
}

static void test_concurrent_quota(void) {
    dz_ledger *l = open_fresh("concurrent.db");
    if (!l) return;
    dz_key_info k = make_key(l, "busy", QUOTA, 0, 0);
    pthread_t th[N_THREADS];
    worker w[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        w[i] = (worker){.ledger = l, .key = &k, .index = i};
        DZT_EQ_INT(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    int64_t settled = 0, admitted = 0, refused = 0;
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        settled += w[i].settled_tokens;
        admitted += w[i].admitted;
        refused += w[i].refused;
    }
    /* Every request reserves exactly what it uses, so once all were refused
     * the quota is spent exactly, never exceeded. */
    DZT_EQ_INT(settled, QUOTA);
    DZT_ASSERT(admitted > QUOTA / PER_REQUEST); /* the cancelled ones came back */
    DZT_ASSERT(refused >= 20 * N_THREADS);
    dz_usage_filter all = {0};
    dz_usage_total *t = NULL;
    size_t n = 0;
    DZT_OK(dz_ledger_usage(l, &all, &t, &n));
    DZT_EQ_INT(n, 1);
    if (n == 1) {
        DZT_EQ_INT(t[0].total_tokens, QUOTA);
        DZT_EQ_INT(t[0].requests, QUOTA / PER_REQUEST);
        DZT_EQ_INT(t[0].prompt_tokens, 40 * (QUOTA / PER_REQUEST));
    }
    free(t);
    dz_key_info *keys = NULL;
    DZT_OK(dz_ledger_key_list(l, &keys, &n));
    if (n == 1) DZT_EQ_INT(keys[0].used_tokens, QUOTA);
    free(keys);
    DZT_OK(dz_ledger_check(l));
    dz_ledger_close(l);
}

int main(void) {
    test_rpm();
    test_tpm();
    test_quota();
    test_concurrent_quota();
    return dzt_done();
}
