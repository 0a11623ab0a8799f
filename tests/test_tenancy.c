/* Tenancy, keys: create / authenticate / list / revoke round trips, that
 * only SHA-256(key) is stored (the database is read with the SQLite API and
 * the raw file bytes are searched), and that bad files, paths and names get
 * clear errors. */
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "dizuo/tenancy.h"
#include "dztest.h"

static char *tmp_path(const char *name) {
    static char buf[8][256];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 256, "%s/%s", dzt_tmpdir(), name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    DZT_ASSERT(f != NULL);
    if (!f) return;
    DZT_EQ_INT(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* Decodes 43 base64url characters into 32 bytes (the key's randomness). */
static bool b64url_decode32(const char *s, unsigned char out[32]) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint64_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (int i = 0; i < 43; i++) {
        const char *c = strchr(alphabet, s[i]);
        if (!c || !s[i]) return false;
        acc = acc << 6 | (uint64_t)(c - alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o < 32) out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return o == 32;
}

static bool contains(const char *hay, size_t n, const void *needle, size_t m) {
    return hay && memmem(hay, n, needle, m) != NULL;
}

static void test_round_trip(void) {
    const char *path = tmp_path("keys.db");
    dz_ledger *l = NULL;
    DZT_FAILS(dz_ledger_open(path, 0, &l), DZ_ERR_IO); /* absent, no CREATE */
    DZT_ASSERT(access(path, F_OK) != 0);
    DZT_OK(dz_ledger_open(path, DZ_LEDGER_CREATE, &l));
    if (!l) return;

    char key_a[DZ_KEY_LEN + 1], key_b[DZ_KEY_LEN + 1], key_c[DZ_KEY_LEN + 1];
    int64_t id_a = 0, id_b = 0, id_c = 0;
    dz_key_spec a = {.tenant = "acme", .quota_tokens = 1000, .rpm = 60, .tpm = 5000,
                     .models = "llama-3-8b,qwen2:7b", .admin = false};
    dz_key_spec b = {.tenant = "acme"};
    dz_key_spec c = {.tenant = "ops.team_1", .admin = true};
    DZT_OK(dz_ledger_key_create(l, &a, key_a, &id_a));
    DZT_OK(dz_ledger_key_create(l, &b, key_b, &id_b));
    DZT_OK(dz_ledger_key_create(l, &c, key_c, &id_c));
    DZT_ASSERT(id_a > 0 && id_b > id_a && id_c > id_b);
    DZT_EQ_INT(strlen(key_a), DZ_KEY_LEN);
    DZT_ASSERT(strncmp(key_a, "dz-", 3) == 0);
    unsigned char raw_a[32], raw_b[32];
    DZT_ASSERT(b64url_decode32(key_a + 3, raw_a));
    DZT_ASSERT(b64url_decode32(key_b + 3, raw_b));
    DZT_ASSERT(memcmp(raw_a, raw_b, 32) != 0);

    dz_auth_result r = DZ_AUTH_UNKNOWN;
    dz_key_info info;
    DZT_OK(dz_ledger_authenticate(l, key_a, &r, &info));
    DZT_EQ_INT(r, DZ_AUTH_OK);
    DZT_EQ_INT(info.id, id_a);
    DZT_EQ_STR(info.tenant, "acme");
    DZT_EQ_INT(info.quota_tokens, 1000);
    DZT_EQ_INT(info.rpm, 60);
    DZT_EQ_INT(info.tpm, 5000);
    DZT_EQ_STR(info.models, "llama-3-8b,qwen2:7b");
    DZT_ASSERT(!info.admin && !info.revoked);
    DZT_ASSERT(strncmp(info.prefix, key_a, DZ_KEY_PREFIX_LEN) == 0);
    DZT_ASSERT(dz_key_allows_model(&info, "qwen2:7b"));
    DZT_ASSERT(dz_key_allows_model(&info, "llama-3-8b"));
    DZT_ASSERT(!dz_key_allows_model(&info, "llama-3"));
    DZT_ASSERT(!dz_key_allows_model(&info, "qwen2:7b,x"));
    DZT_OK(dz_ledger_authenticate(l, key_c, &r, &info));
    DZT_EQ_INT(r, DZ_AUTH_OK);
    DZT_ASSERT(info.admin);
    DZT_EQ_STR(info.tenant, "ops.team_1");
    DZT_ASSERT(dz_key_allows_model(&info, "anything"));

    /* Wrong keys: one character changed, truncated, empty, other shapes. */
    char wrong[DZ_KEY_LEN + 1];
    memcpy(wrong, key_a, sizeof wrong);
    wrong[20] = wrong[20] == 'A' ? 'B' : 'A';
    const char *bad[] = {wrong, "", "dz-", "Bearer x", "dz-short"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = DZ_AUTH_OK;
        DZT_OK(dz_ledger_authenticate(l, bad[i], &r, NULL));
        DZT_EQ_INT(r, DZ_AUTH_UNKNOWN);
    }
    char longer[DZ_KEY_LEN + 2];
    snprintf(longer, sizeof longer, "%sA", key_a);
    DZT_OK(dz_ledger_authenticate(l, longer, &r, NULL));
    DZT_EQ_INT(r, DZ_AUTH_UNKNOWN);

    /* Listing: every key, never a secret. */
    dz_key_info *keys = NULL;
    size_t n = 0;
    DZT_OK(dz_ledger_key_list(l, &keys, &n));
    DZT_EQ_INT(n, 3);
    if (n == 3) {
        DZT_EQ_INT(keys[0].id, id_a);
        DZT_EQ_STR(keys[1].tenant, "acme");
        DZT_EQ_INT(keys[1].quota_tokens, 0);
        DZT_EQ_STR(keys[1].models, "");
        DZT_ASSERT(keys[2].admin);
        DZT_ASSERT(strlen(keys[0].prefix) == DZ_KEY_PREFIX_LEN);
    }
    free(keys);

    /* Revocation counts on the next authenticate, also from another connection. */
    dz_ledger *other = NULL;
    DZT_OK(dz_ledger_open(path, 0, &other));
    DZT_OK(dz_ledger_key_revoke(other, id_b));
    DZT_OK(dz_ledger_key_revoke(other, id_b)); /* again: still fine */
    DZT_FAILS(dz_ledger_key_revoke(other, 999), DZ_ERR_ARG);
    dz_ledger_close(other);
    DZT_OK(dz_ledger_authenticate(l, key_b, &r, NULL));
    DZT_EQ_INT(r, DZ_AUTH_REVOKED);
    DZT_OK(dz_ledger_authenticate(l, key_a, &r, NULL));
    DZT_EQ_INT(r, DZ_AUTH_OK);
    DZT_OK(dz_ledger_key_list(l, &keys, &n));
    if (n == 3) DZT_ASSERT(keys[1].revoked && keys[1].revoked_ms > 0 && !keys[0].revoked);
    free(keys);
    DZT_OK(dz_ledger_check(l));
    dz_ledger_close(l);

    /* Only the hash is stored: read every column of every key row. */
    sqlite3 *db = NULL;
    DZT_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    DZT_EQ_INT(sqlite3_prepare_v2(db, "SELECT hash, prefix, id FROM keys ORDER BY id", -1, &st, NULL),
               SQLITE_OK);
    const char *created[3] = {key_a, key_b, key_c};
    int rows = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW && rows < 3) {
        unsigned char want[32];
        unsigned int wn = 0;
        EVP_Digest(created[rows], DZ_KEY_LEN, want, &wn, EVP_sha256(), NULL);
        DZT_EQ_INT(sqlite3_column_bytes(st, 0), 32);
        const void *blob = sqlite3_column_blob(st, 0);
        DZT_ASSERT(blob && memcmp(blob, want, 32) == 0);
        DZT_EQ_INT(sqlite3_column_bytes(st, 1), DZ_KEY_PREFIX_LEN);
        rows++;
    }
    DZT_EQ_INT(rows, 3);
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* ... and the raw bytes of the file (and WAL, if any) hold no key text
     * beyond the displayed prefix, nor the key's random bytes. */
    const char *files[2] = {path, tmp_path("keys.db-wal")};
    for (int f = 0; f < 2; f++) {
        size_t size = 0;
        char *bytes = dzt_read_file(files[f], &size);
        if (!bytes) continue;
        for (int k = 0; k < 3; k++) {
            DZT_ASSERT(!contains(bytes, size, created[k], DZ_KEY_LEN));
            DZT_ASSERT(!contains(bytes, size, created[k] + DZ_KEY_PREFIX_LEN, 16));
        }
        DZT_ASSERT(!contains(bytes, size, raw_a, 32) && !contains(bytes, size, raw_b, 32));
        free(bytes);
    }
}

static void test_bad_names(void) {
    dz_ledger *l = NULL;
    DZT_OK(dz_ledger_open(tmp_path("names.db"), DZ_LEDGER_CREATE, &l));
    if (!l) return;
    char key[DZ_KEY_LEN + 1] = "untouched";
    int64_t id = -7;
    char long_name[80];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    const char *bad_tenants[] = {"", "a b", "../etc", "x/y", "caf\xc3\xa9", "tab\there", ".hidden",
                                 "-rf", "semi;colon", "quote'", long_name, NULL};
    for (size_t i = 0; i < sizeof bad_tenants / sizeof bad_tenants[0]; i++) {
        dz_key_spec spec = {.tenant = bad_tenants[i]};
        DZT_FAILS(dz_ledger_key_create(l, &spec, key, &id), DZ_ERR_ARG);
        DZT_ASSERT(strstr(dz_last_error(), "tenant") != NULL);
    }
    const char *bad_models[] = {"a,,b", ",a", "a,", "../x", "a b", "/abs", "m\x01"};
    for (size_t i = 0; i < sizeof bad_models / sizeof bad_models[0]; i++) {
        dz_key_spec spec = {.tenant = "t", .models = bad_models[i]};
        DZT_FAILS(dz_ledger_key_create(l, &spec, key, &id), DZ_ERR_ARG);
        DZT_ASSERT(strstr(dz_last_error(), "model") != NULL);
    }
    dz_key_spec neg = {.tenant = "t", .rpm = -1};
    DZT_FAILS(dz_ledger_key_create(l, &neg, key, &id), DZ_ERR_ARG);
    DZT_ASSERT(strstr(dz_last_error(), "rpm") != NULL);
    /* Failed calls changed nothing. */
    DZT_EQ_STR(key, "untouched");
    DZT_EQ_INT(id, -7);
    dz_key_info *keys = NULL;
    size_t n = 99;
    DZT_OK(dz_ledger_key_list(l, &keys, &n));
    DZT_EQ_INT(n, 0);
    free(keys);
    dz_ledger_close(l);
}

/* Runs SQL on a fresh plain SQLite file. */
static void make_sqlite_file(const char *path, const char *sql) {
    sqlite3 *db = NULL;
    DZT_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    DZT_EQ_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void expect_open_error(const char *path, dz_status want, const char *words) {
    dz_ledger *l = (dz_ledger *)&l; /* must come back NULL */
    DZT_FAILS(dz_ledger_open(path, DZ_LEDGER_CREATE, &l), want);
    DZT_ASSERT(l == NULL);
    DZT_CHECK(strstr(dz_last_error(), words) != NULL, "message '%s' lacks '%s'", dz_last_error(), words);
    DZT_CHECK(strstr(dz_last_error(), path) != NULL, "message '%s' lacks the path", dz_last_error());
}

static void test_bad_files(void) {
    /* Text, not a database. */
    char text[5000];
    memset(text, 'x', sizeof text);
    const char *p = tmp_path("text.db");
    write_bytes(p, text, sizeof text);
    expect_open_error(p, DZ_ERR_FORMAT, "not an SQLite database");
    /* A database of another application, and a ledger of a newer dizuo. */
    p = tmp_path("foreign.db");
    make_sqlite_file(p, "CREATE TABLE photos(id INTEGER PRIMARY KEY, name TEXT);");
    expect_open_error(p, DZ_ERR_FORMAT, "another application");
    p = tmp_path("newer.db");
    make_sqlite_file(p, "PRAGMA application_id=1685744743; PRAGMA user_version=2; CREATE TABLE x(y);");
    expect_open_error(p, DZ_ERR_FORMAT, "newer");
    /* Paths: a directory, a parent that is a file, a parent that is absent. */
    expect_open_error(dzt_tmpdir(), DZ_ERR_IO, "directory");
    char under_file[300], no_dir[300];
    snprintf(under_file, sizeof under_file, "%s/x.db", tmp_path("text.db"));
    snprintf(no_dir, sizeof no_dir, "%s/no/such/dir/x.db", dzt_tmpdir());
    expect_open_error(under_file, DZ_ERR_IO, "ledger");
    expect_open_error(no_dir, DZ_ERR_IO, "ledger");
    dz_ledger *l = NULL;
    /* Names SQLite would read as a URI or an in-memory database are files. */
    char cwd[512];
    DZT_ASSERT(getcwd(cwd, sizeof cwd) != NULL);
    DZT_EQ_INT(chdir(dzt_tmpdir()), 0);
    const char *odd[] = {"file:odd.db?mode=memory", ":memory:"};
    for (int i = 0; i < 2; i++) {
        DZT_OK(dz_ledger_open(odd[i], DZ_LEDGER_CREATE, &l));
        dz_ledger_close(l);
        DZT_CHECK(access(odd[i], F_OK) == 0, "no file '%s' was created", odd[i]);
    }
    DZT_EQ_INT(chdir(cwd), 0);
    DZT_FAILS(dz_ledger_open("", DZ_LEDGER_CREATE, &l), DZ_ERR_ARG);
    DZT_FAILS(dz_ledger_open(NULL, DZ_LEDGER_CREATE, &l), DZ_ERR_ARG);
    /* A read-only file (as root, permissions do not bind: skip that case). */
    if (geteuid() != 0) {
        p = tmp_path("ro.db");
        DZT_OK(dz_ledger_open(p, DZ_LEDGER_CREATE, &l));
        dz_ledger_close(l);
        chmod(p, 0444);
        expect_open_error(p, DZ_ERR_IO, "read-only");
    }

    /* A real ledger, then damaged: the header (not a database), then a
     * page in the middle (corrupt; the integrity check names it). */
    p = tmp_path("damaged.db");
    DZT_OK(dz_ledger_open(p, DZ_LEDGER_CREATE, &l));
    if (!l) return;
    char key[DZ_KEY_LEN + 1];
    int64_t id;
    for (int i = 0; i < 200; i++) {
        char tenant[32];
        snprintf(tenant, sizeof tenant, "tenant-%d", i);
        dz_key_spec spec = {.tenant = tenant, .models = "a-fairly-long-model-name-to-fill-pages"};
        DZT_OK(dz_ledger_key_create(l, &spec, key, &id));
    }
    dz_ledger_close(l); /* checkpoints: everything is in the main file */
    size_t size = 0;
    char *bytes = dzt_read_file(p, &size);
    DZT_ASSERT(bytes && size >= 4 * 4096);
    if (!bytes || size < 4 * 4096) return;
    char *copy = malloc(size);
    memcpy(copy, bytes, size);
    memset(copy, 0x5a, 16);
    const char *header = tmp_path("damaged-header.db");
    write_bytes(header, copy, size);
    expect_open_error(header, DZ_ERR_FORMAT, "not an SQLite database");
    memcpy(copy, bytes, size);
    for (size_t i = 2 * 4096; i < 3 * 4096; i++) copy[i] = (char)(i * 131 + 7);
    const char *middle = tmp_path("damaged-middle.db");
    write_bytes(middle, copy, size);
    dz_status s = dz_ledger_open(middle, 0, &l);
    if (s == DZ_OK) {
        DZT_FAILS(dz_ledger_check(l), DZ_ERR_FORMAT);
        DZT_ASSERT(strstr(dz_last_error(), "integrity") || strstr(dz_last_error(), "corrupt"));
        dz_key_info *keys = NULL;
        size_t n = 0;
        s = dz_ledger_key_list(l, &keys, &n); /* either fails cleanly or returns rows */
        DZT_ASSERT(s == DZ_OK || s == DZ_ERR_FORMAT);
        if (!s) free(keys);
        dz_ledger_close(l);
    } else {
        DZT_EQ_INT(s, DZ_ERR_FORMAT);
    }
    free(copy);
    free(bytes);
}

static void test_parse_time(void) {
    int64_t ms = -1;
    DZT_OK(dz_usage_parse_time("1970-01-01", &ms));
    DZT_EQ_INT(ms, 0);
    DZT_OK(dz_usage_parse_time("2024-02-29T12:34:56Z", &ms));
    DZT_EQ_INT(ms, 1709210096000LL); /* date -u -d 2024-02-29T12:34:56Z +%s */
    DZT_OK(dz_usage_parse_time("2000-03-01 00:00", &ms));
    DZT_EQ_INT(ms, 951868800000LL);
    const char *bad[] = {"", "2024", "2023-02-29", "2024-13-01", "2024-01-01T24:00", "2024-1-01",
                         "2024-01-01T10", "2024-01-01x", "1969-12-31", "2024-01-01T10:00:60"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ms = 42;
        DZT_FAILS(dz_usage_parse_time(bad[i], &ms), DZ_ERR_ARG);
        DZT_EQ_INT(ms, 42);
    }
}

int main(void) {
    test_round_trip();
    test_bad_names();
    test_bad_files();
    test_parse_time();
    dz_ledger_close(NULL);
    return dzt_done();
}
