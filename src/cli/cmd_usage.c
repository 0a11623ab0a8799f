/* dizuo usage: token usage per tenant (and model) from the ledger. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "dizuo/tenancy.h"

int dz_cmd_usage(int argc, char **argv);

static void usage(FILE *out) {
    fprintf(out,
            "usage: dizuo usage --db FILE [--tenant T] [--model M] [--by-model] [--since TIME]\n"
            "                   [--until TIME] [--json]\n"
            "\n"
            "Prints requests and prompt / cached / completion / total tokens per tenant, from the\n"
            "usage ledger (one row per finished request, by the time it finished).\n"
            "\n"
            "  --db FILE      the ledger database\n"
            "  --tenant T     only this tenant\n"
            "  --model M      only this model (implies --by-model)\n"
            "  --by-model     one line per tenant and model\n"
            "  --since TIME   requests that finished at or after TIME (UTC: YYYY-MM-DD[THH:MM[:SS]][Z])\n"
            "  --until TIME   requests that finished before TIME\n"
            "  --json         a JSON object instead of a table\n"
            "  -h, --help     this text\n");
}

static int print_json(const dz_usage_filter *f, const dz_usage_total *t, size_t n) {
    json_t *data = json_array();
    json_t *root = json_object();
    for (size_t i = 0; data && i < n; i++) {
        json_t *row = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "tenant", t[i].tenant, "requests",
                                (json_int_t)t[i].requests, "prompt_tokens", (json_int_t)t[i].prompt_tokens,
                                "cached_tokens", (json_int_t)t[i].cached_tokens, "completion_tokens",
                                (json_int_t)t[i].completion_tokens, "total_tokens",
                                (json_int_t)t[i].total_tokens);
        if (row && f->by_model) json_object_set_new(row, "model", json_string(t[i].model));
        if (!row || json_array_append_new(data, row) != 0) {
            json_decref(data);
            data = NULL;
        }
    }
    if (!data || !root) {
        json_decref(data);
        json_decref(root);
        fprintf(stderr, "dizuo usage: out of memory\n");
        return DZ_EXIT_ERROR;
    }
    json_object_set_new(root, "object", json_string("usage"));
    json_object_set_new(root, "since_ms", json_integer(f->since_ms));
    json_object_set_new(root, "until_ms", f->until_ms ? json_integer(f->until_ms) : json_null());
    json_object_set_new(root, "data", data);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) {
        fprintf(stderr, "dizuo usage: out of memory\n");
        return DZ_EXIT_ERROR;
    }
    printf("%s\n", text);
    free(text);
    return DZ_EXIT_OK;
}

static void print_table(const dz_usage_filter *f, const dz_usage_total *t, size_t n) {
    printf("%-20s %-24s %10s %14s %14s %14s %14s\n", "TENANT", f->by_model ? "MODEL" : "", "REQUESTS",
           "PROMPT", "CACHED", "COMPLETION", "TOTAL");
    for (size_t i = 0; i < n; i++)
        printf("%-20s %-24s %10lld %14lld %14lld %14lld %14lld\n", t[i].tenant, t[i].model,
               (long long)t[i].requests, (long long)t[i].prompt_tokens, (long long)t[i].cached_tokens,
               (long long)t[i].completion_tokens, (long long)t[i].total_tokens);
}

int dz_cmd_usage(int argc, char **argv) {
    const char *db = NULL;
    dz_usage_filter f = {0};
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return DZ_EXIT_OK;
        } else if (!strcmp(a, "--db")) {
            if (!(db = dz_arg_value("usage", argc, argv, &i))) return DZ_EXIT_USAGE;
        } else if (!strcmp(a, "--tenant")) {
            if (!(f.tenant = dz_arg_value("usage", argc, argv, &i))) return DZ_EXIT_USAGE;
        } else if (!strcmp(a, "--model")) {
            if (!(f.model = dz_arg_value("usage", argc, argv, &i))) return DZ_EXIT_USAGE;
            f.by_model = true;
        } else if (!strcmp(a, "--by-model")) {
            f.by_model = true;
        } else if (!strcmp(a, "--since") || !strcmp(a, "--until")) {
            const char *text = dz_arg_value("usage", argc, argv, &i);
            if (!text) return DZ_EXIT_USAGE;
            if (dz_usage_parse_time(text, a[2] == 's' ? &f.since_ms : &f.until_ms)) {
                fprintf(stderr, "dizuo usage: %s: %s\n", a, dz_last_error());
                return DZ_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else {
            fprintf(stderr, "dizuo usage: unexpected argument '%s' (see dizuo usage --help)\n", a);
            return DZ_EXIT_USAGE;
        }
    }
    if (!db) {
        fprintf(stderr, "dizuo usage: --db FILE is required\n");
        usage(stderr);
        return DZ_EXIT_USAGE;
    }
    if (f.until_ms && f.until_ms <= f.since_ms) {
        fprintf(stderr, "dizuo usage: --until must be later than --since\n");
        return DZ_EXIT_USAGE;
    }
    dz_ledger *l = NULL;
    if (dz_ledger_open(db, 0, &l)) return dz_cli_error("usage");
    dz_usage_total *totals = NULL;
    size_t n = 0;
    dz_status s = dz_ledger_usage(l, &f, &totals, &n);
    dz_ledger_close(l);
    if (s) return dz_cli_error("usage");
    int rc = DZ_EXIT_OK;
    if (json) rc = print_json(&f, totals, n);
    else print_table(&f, totals, n);
    free(totals);
    if (rc == DZ_EXIT_OK && (fflush(stdout) != 0 || ferror(stdout))) {
        fprintf(stderr, "dizuo usage: cannot write the output\n");
        rc = DZ_EXIT_ERROR;
    }
    return rc;
}
