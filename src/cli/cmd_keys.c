/* dizuo keys: create, list and revoke the API keys of the model service. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "dizuo/tenancy.h"

int dz_cmd_keys(int argc, char **argv);

static void usage(FILE *out) {
    fprintf(out,
            "usage: dizuo keys create --db FILE --tenant NAME [--quota-tokens N] [--rpm N] [--tpm N]\n"
            "                         [--models a,b] [--admin]\n"
            "       dizuo keys list --db FILE\n"
            "       dizuo keys revoke --db FILE ID\n"
            "\n"
            "create   makes a key for the tenant (created on first use) and prints it, once, on\n"
            "         stdout: only its SHA-256 is stored, it cannot be shown again\n"
            "list     every key: id, tenant, prefix, limits, use, created, revoked (never secrets)\n"
            "revoke   the key with this id fails from its next request on\n"
            "\n"
            "  --db FILE          the ledger database (created by `keys create` when absent)\n"
            "  --tenant NAME      1-64 characters of A-Z a-z 0-9 . _ -\n"
            "  --quota-tokens N   total prompt + completion tokens the key may use (default: no limit)\n"
            "  --rpm N            requests per minute (default: no limit)\n"
            "  --tpm N            tokens per minute (default: no limit)\n"
            "  --models a,b       the models the key may use (default: all)\n"
            "  --admin            the key may use the admin API\n"
            "  -h, --help         this text\n");
}

/* "2026-01-02T03:04:05Z" (UTC) or "-" for 0. */
static void format_time(int64_t ms, char out[32]) {
    if (ms <= 0) {
        snprintf(out, 32, "-");
        return;
    }
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm)) snprintf(out, 32, "?");
}

static void format_limit(int64_t v, char out[24]) {
    if (v <= 0) snprintf(out, 24, "-");
    else snprintf(out, 24, "%lld", (long long)v);
}

static int finish_output(void) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "dizuo keys: cannot write the output\n");
        return DZ_EXIT_ERROR;
    }
    return DZ_EXIT_OK;
}

static int keys_create(const char *db, const dz_key_spec *spec) {
    dz_ledger *l = NULL;
    if (dz_ledger_open(db, DZ_LEDGER_CREATE, &l)) return dz_cli_error("keys");
    char key[DZ_KEY_LEN + 1];
    int64_t id = 0;
    dz_status s = dz_ledger_key_create(l, spec, key, &id);
    dz_ledger_close(l);
    if (s) return dz_cli_error("keys");
    printf("%s\n", key);
    fprintf(stderr, "dizuo keys: created key %lld for tenant '%s' (shown once; store it now)\n",
            (long long)id, spec->tenant);
    return finish_output();
}

static int keys_list(const char *db) {
    dz_ledger *l = NULL;
    if (dz_ledger_open(db, 0, &l)) return dz_cli_error("keys");
    dz_key_info *keys = NULL;
    size_t n = 0;
    dz_status s = dz_ledger_key_list(l, &keys, &n);
    dz_ledger_close(l);
    if (s) return dz_cli_error("keys");
    printf("%-5s %-20s %-10s %12s %12s %8s %10s %-5s %-20s %-20s %s\n", "ID", "TENANT", "PREFIX",
           "QUOTA", "USED", "RPM", "TPM", "ADMIN", "CREATED", "REVOKED", "MODELS");
    for (size_t i = 0; i < n; i++) {
        const dz_key_info *k = &keys[i];
        char quota[24], rpm[24], tpm[24], created[32], revoked[32];
        format_limit(k->quota_tokens, quota);
        format_limit(k->rpm, rpm);
        format_limit(k->tpm, tpm);
        format_time(k->created_ms, created);
        format_time(k->revoked ? k->revoked_ms : 0, revoked);
        printf("%-5lld %-20s %-10s %12s %12lld %8s %10s %-5s %-20s %-20s %s\n", (long long)k->id,
               k->tenant, k->prefix, quota, (long long)k->used_tokens, rpm, tpm, k->admin ? "yes" : "no",
               created, revoked, k->models[0] ? k->models : "*");
    }
    free(keys);
    return finish_output();
}

static int keys_revoke(const char *db, int64_t id) {
    dz_ledger *l = NULL;
    if (dz_ledger_open(db, 0, &l)) return dz_cli_error("keys");
    dz_status s = dz_ledger_key_revoke(l, id);
    dz_ledger_close(l);
    if (s) return dz_cli_error("keys");
    fprintf(stderr, "dizuo keys: revoked key %lld\n", (long long)id);
    return DZ_EXIT_OK;
}

int dz_cmd_keys(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? DZ_EXIT_USAGE : DZ_EXIT_OK;
    }
    const char *action = argv[1];
    bool create = !strcmp(action, "create"), list = !strcmp(action, "list"),
         revoke = !strcmp(action, "revoke");
    if (!create && !list && !revoke) {
        fprintf(stderr, "dizuo keys: unknown action '%s' (create, list or revoke)\n", action);
        return DZ_EXIT_USAGE;
    }
    const char *db = NULL, *id_text = NULL;
    dz_key_spec spec = {0};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        long long v = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return DZ_EXIT_OK;
        } else if (!strcmp(a, "--db")) {
            if (!(db = dz_arg_value("keys", argc, argv, &i))) return DZ_EXIT_USAGE;
        } else if (create && !strcmp(a, "--tenant")) {
            if (!(spec.tenant = dz_arg_value("keys", argc, argv, &i))) return DZ_EXIT_USAGE;
        } else if (create && (!strcmp(a, "--quota-tokens") || !strcmp(a, "--rpm") || !strcmp(a, "--tpm"))) {
            const char *text = dz_arg_value("keys", argc, argv, &i);
            if (!text || !dz_arg_int("keys", a, text, 1, (long long)1 << 53, &v)) return DZ_EXIT_USAGE;
            *(a[2] == 'q' ? &spec.quota_tokens : a[2] == 'r' ? &spec.rpm : &spec.tpm) = v;
        } else if (create && !strcmp(a, "--models")) {
            if (!(spec.models = dz_arg_value("keys", argc, argv, &i))) return DZ_EXIT_USAGE;
        } else if (create && !strcmp(a, "--admin")) {
            spec.admin = true;
        } else if (revoke && a[0] != '-' && !id_text) {
            id_text = a;
        } else {
            fprintf(stderr, "dizuo keys %s: unexpected argument '%s' (see dizuo keys --help)\n", action, a);
            return DZ_EXIT_USAGE;
        }
    }
    if (!db || (create && !spec.tenant) || (revoke && !id_text)) {
        fprintf(stderr, "dizuo keys %s: %s is required\n", action,
                !db ? "--db FILE" : create ? "--tenant NAME" : "the key ID");
        return DZ_EXIT_USAGE;
    }
    if (create) return keys_create(db, &spec);
    if (list) return keys_list(db);
    long long id = 0;
    if (!dz_arg_int("keys", "ID", id_text, 1, INT64_MAX, &id)) return DZ_EXIT_USAGE;
    return keys_revoke(db, id);
}
