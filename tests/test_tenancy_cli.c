/* Tenancy, the command line: `dizuo keys create|list|revoke` and
 * `dizuo usage`, run as a program against a ledger that the test also reads
 * through the library. Skips (77) while the dizuo binary lacks the commands. */
#include <jansson.h>
#include <unistd.h>

#include "dizuo/tenancy.h"
#include "dztest.h"

/* Runs dizuo with the arguments (NULL-terminated); captures stdout, stderr. */
static int run_list(char **out, char **err, const char *const *args) {
    char *argv[16] = {(char *)dzt_bin()};
    for (int i = 0; args[i] && i < 14; i++) argv[i + 1] = (char *)args[i];
    *out = *err = NULL;
    return dzt_run_argv(argv, out, NULL, err);
}
#define RUN(out, err, ...) run_list(out, err, (const char *const[]){__VA_ARGS__, NULL})

static void test_keys(const char *db) {
    char *out, *err;
    /* create: exactly the key, one line, on stdout */
    int rc = RUN(&out, &err, "keys", "create", "--db", db, "--tenant", "acme", "--quota-tokens", "500");
    DZT_EQ_INT(rc, 0);
    DZT_ASSERT(out && strlen(out) == DZ_KEY_LEN + 1 && out[DZ_KEY_LEN] == '\n' && !strncmp(out, "dz-", 3));
    char key[DZ_KEY_LEN + 1] = "";
    if (out && strlen(out) == DZ_KEY_LEN + 1) memcpy(key, out, DZ_KEY_LEN);
    free(out);
    free(err);
    rc = RUN(&out, &err, "keys", "create", "--db", db, "--tenant", "ops", "--admin", "--models", "a,b");
    DZT_EQ_INT(rc, 0);
    free(out);
    free(err);
    /* bad input: a clear message, nothing on stdout */
    rc = RUN(&out, &err, "keys", "create", "--db", db, "--tenant", "bad name");
    DZT_EQ_INT(rc, 1);
    DZT_ASSERT(out && out[0] == '\0');
    DZT_ASSERT(err && strstr(err, "tenant"));
    free(out);
    free(err);
    rc = RUN(&out, &err, "keys", "create", "--db", db, "--tenant", "x", "--rpm", "-3");
    DZT_EQ_INT(rc, 2);
    DZT_ASSERT(err && strstr(err, "--rpm"));
    free(out);
    free(err);
    rc = RUN(&out, &err, "keys", "create", "--db", db);
    DZT_EQ_INT(rc, 2);
    free(out);
    free(err);
    rc = RUN(&out, &err, "keys", "frobnicate", "--db", db);
    DZT_EQ_INT(rc, 2);
    free(out);
    free(err);

    /* list: both keys, the prefix, never the key */
    rc = RUN(&out, &err, "keys", "list", "--db", db);
    DZT_EQ_INT(rc, 0);
    DZT_ASSERT(out && strstr(out, "acme") && strstr(out, "ops") && strstr(out, "500"));
    char prefix[DZ_KEY_PREFIX_LEN + 1];
    memcpy(prefix, key, DZ_KEY_PREFIX_LEN);
    prefix[DZ_KEY_PREFIX_LEN] = '\0';
    DZT_ASSERT(out && strstr(out, prefix));
    DZT_ASSERT(out && key[0] && !strstr(out, key + DZ_KEY_PREFIX_LEN));
    free(out);
    free(err);

    /* revoke: the key fails from then on */
    dz_ledger *l = NULL;
    DZT_OK(dz_ledger_open(db, 0, &l));
    dz_auth_result r = DZ_AUTH_UNKNOWN;
    dz_key_info info;
    DZT_OK(dz_ledger_authenticate(l, key, &r, &info));
    DZT_EQ_INT(r, DZ_AUTH_OK);
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)info.id);
    rc = RUN(&out, &err, "keys", "revoke", "--db", db, id);
    DZT_EQ_INT(rc, 0);
    free(out);
    free(err);
    DZT_OK(dz_ledger_authenticate(l, key, &r, &info));
    DZT_EQ_INT(r, DZ_AUTH_REVOKED);
    dz_ledger_close(l);
    rc = RUN(&out, &err, "keys", "revoke", "--db", db, "9999");
    DZT_EQ_INT(rc, 1);
    DZT_ASSERT(err && strstr(err, "9999"));
    free(out);
    free(err);
    rc = RUN(&out, &err, "keys", "revoke", "--db", db, "abc");
    DZT_EQ_INT(rc, 2);
    free(out);
    free(err);

    /* list of an absent file: an error, and no file appears */
    char absent[300];
    snprintf(absent, sizeof absent, "%s/absent.db", dzt_tmpdir());
    rc = RUN(&out, &err, "keys", "list", "--db", absent);
    DZT_EQ_INT(rc, 1);
    DZT_ASSERT(access(absent, F_OK) != 0);
    free(out);
    free(err);
}

static void test_usage(const char *db) {
    dz_ledger *l = NULL;
    DZT_OK(dz_ledger_open(db, 0, &l));
    if (!l) return;
    int64_t jan2 = 0, jan3 = 0;
    DZT_OK(dz_usage_parse_time("2026-01-02", &jan2));
    DZT_OK(dz_usage_parse_time("2026-01-03", &jan3));
    dz_usage_row rows[] = {
        {.request_id = "u1", .tenant = "acme", .model = "m1", .prompt_tokens = 10, .cached_tokens = 2,
         .completion_tokens = 5, .status = "ok", .start_ms = jan2 + 1000, .end_ms = jan2 + 2000},
        {.request_id = "u2", .tenant = "acme", .model = "m2", .prompt_tokens = 1, .completion_tokens = 1,
         .status = "cancelled", .start_ms = jan3 + 1000, .end_ms = jan3 + 2000},
        {.request_id = "u3", .tenant = "ops", .model = "m1", .prompt_tokens = 100, .completion_tokens = 50,
         .status = "ok", .start_ms = jan3, .end_ms = jan3 + 10},
    };
    for (int i = 0; i < 3; i++) DZT_OK(dz_ledger_record(l, &rows[i]));
    dz_ledger_close(l);

    char *out, *err;
    int rc = RUN(&out, &err, "usage", "--db", db, "--json");
    DZT_EQ_INT(rc, 0);
    json_error_t jerr;
    json_t *root = out ? json_loads(out, 0, &jerr) : NULL;
    DZT_ASSERT(root != NULL);
    json_t *data = json_object_get(root, "data");
    DZT_EQ_INT(json_array_size(data), 2);
    json_t *acme = json_array_get(data, 0);
    DZT_EQ_STR(json_string_value(json_object_get(acme, "tenant")), "acme");
    DZT_EQ_INT(json_integer_value(json_object_get(acme, "requests")), 2);
    DZT_EQ_INT(json_integer_value(json_object_get(acme, "prompt_tokens")), 11);
    DZT_EQ_INT(json_integer_value(json_object_get(acme, "cached_tokens")), 2);
    DZT_EQ_INT(json_integer_value(json_object_get(acme, "total_tokens")), 17);
    json_decref(root);
    free(out);
    free(err);

    /* Only what finished on Jan 3 (from 00:00 UTC), for model m1: ops' u3. */
    rc = RUN(&out, &err, "usage", "--db", db, "--since", "2026-01-03T00:00:00Z", "--model", "m1", "--json");
    DZT_EQ_INT(rc, 0);
    root = out ? json_loads(out, 0, &jerr) : NULL;
    data = json_object_get(root, "data");
    DZT_EQ_INT(json_array_size(data), 1);
    DZT_EQ_STR(json_string_value(json_object_get(json_array_get(data, 0), "tenant")), "ops");
    DZT_EQ_STR(json_string_value(json_object_get(json_array_get(data, 0), "model")), "m1");
    DZT_EQ_INT(json_integer_value(json_object_get(json_array_get(data, 0), "total_tokens")), 150);
    json_decref(root);
    free(out);
    free(err);

    rc = RUN(&out, &err, "usage", "--db", db, "--tenant", "acme", "--until", "2026-01-03");
    DZT_EQ_INT(rc, 0);
    DZT_ASSERT(out && strstr(out, "acme") && !strstr(out, "ops"));
    free(out);
    free(err);

    rc = RUN(&out, &err, "usage", "--db", db, "--since", "yesterday");
    DZT_EQ_INT(rc, 2);
    DZT_ASSERT(err && strstr(err, "--since"));
    free(out);
    free(err);
    rc = RUN(&out, &err, "usage");
    DZT_EQ_INT(rc, 2);
    free(out);
    free(err);
}

int main(void) {
    char *out = NULL, *err = NULL;
    int rc = RUN(&out, &err, "keys", "--help");
    bool wired = rc == 0 && out && strstr(out, "keys create");
    free(out);
    free(err);
    if (!wired) {
        printf("SKIP: %s has no `keys` command yet\n", dzt_bin());
        return 77;
    }
    char db[300];
    snprintf(db, sizeof db, "%s/cli.db", dzt_tmpdir());
    test_keys(db);
    test_usage(db);
    return dzt_done();
}
