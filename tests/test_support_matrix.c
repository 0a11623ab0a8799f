/* docs/support-matrix.csv matches the code: `dizuo conformance --all --csv`
 * run now must give, for every device it finds that the committed matrix
 * also lists, exactly the committed rows (backend, device, op, type, status,
 * number of cases; the NMSE column varies with the processor and is not
 * compared). Devices the committed matrix lists but this build or machine
 * lacks (an OpenCL device without an ICD, say) are named and skipped;
 * `dizuo conformance --all --csv docs/support-matrix.csv` regenerates the file. */
#include <stdlib.h>

#include "dztest.h"

enum { MAX_ROWS = 4096 };

typedef struct row {
    char device[64];
    char key[512];  /* backend,device,op,dtype,status,cases */
} row;

/* Reads a matrix CSV; returns the number of rows (header excluded). */
static int read_matrix(const char *path, row *rows) {
    FILE *f = fopen(path, "r");
    DZT_CHECK(f != NULL, "cannot read %s", path);
    if (!f) return 0;
    char line[512];
    int n = 0;
    DZT_CHECK(fgets(line, sizeof line, f) && !strcmp(line, "backend,device,op,dtype,status,cases,worst_nmse\n"),
              "%s: unexpected header", path);
    while (n < MAX_ROWS && fgets(line, sizeof line, f)) {
        char *last = strrchr(line, ',');
        if (!last) continue;
        *last = '\0';
        snprintf(rows[n].key, sizeof rows[n].key, "%s", line);
        const char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        if (!c1 || !c2) continue;
        snprintf(rows[n].device, sizeof rows[n].device, "%.*s", (int)(c2 - c1 - 1), c1 + 1);
        n++;
    }
    fclose(f);
    return n;
}

static bool has_device(const row *rows, int n, const char *device) {
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].device, device)) return true;
    return false;
}

static bool has_key(const row *rows, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].key, key)) return true;
    return false;
}

int main(void) {
    const char *src = getenv("DZ_SOURCE_DIR");
    DZT_ASSERT(src != NULL);
    char committed_path[4096], now_path[4096];
    snprintf(committed_path, sizeof committed_path, "%s/docs/support-matrix.csv", src);
    snprintf(now_path, sizeof now_path, "%s/matrix.csv", dzt_tmpdir());
    setenv("DZ_PLUGIN_PATH", "/nonexistent", 1); /* the built-in backends only */
    char *argv[] = {(char *)dzt_bin(), "conformance", "--all", "--csv", now_path, NULL};
    char *out = NULL, *err = NULL;
    int rc = dzt_run_argv(argv, &out, NULL, &err);
    DZT_CHECK(rc == 0, "dizuo conformance --all exited %d: %s", rc, err ? err : "");
    free(out);
    free(err);

    static row committed[MAX_ROWS], now[MAX_ROWS];
    int n_committed = read_matrix(committed_path, committed), n_now = read_matrix(now_path, now);
    DZT_CHECK(n_committed > 0 && n_now > 0, "empty matrix (%d committed, %d now)", n_committed, n_now);
    int compared = 0;
    for (int i = 0; i < n_now; i++) {
        if (!has_device(committed, n_committed, now[i].device)) continue;
        DZT_CHECK(has_key(committed, n_committed, now[i].key), "docs/support-matrix.csv lacks the row %s",
                  now[i].key);
        compared++;
    }
    for (int i = 0; i < n_committed; i++) {
        if (!has_device(now, n_now, committed[i].device)) {
            if (i == 0 || strcmp(committed[i].device, committed[i - 1].device))
                printf("device %s is not on this machine or in this build: its rows are not checked\n",
                       committed[i].device);
            continue;
        }
        DZT_CHECK(has_key(now, n_now, committed[i].key), "docs/support-matrix.csv has %s; the code now gives another",
                  committed[i].key);
    }
    DZT_CHECK(has_device(now, n_now, "cpu") && has_device(committed, n_committed, "cpu"), "no cpu rows");
    printf("%d rows checked against docs/support-matrix.csv\n", compared);

    /* --csv -: the matrix on standard output, the report on standard error */
    char *argv_std[] = {(char *)dzt_bin(), "conformance", "--op", "ADD", "--csv", "-", NULL};
    rc = dzt_run_argv(argv_std, &out, NULL, &err);
    DZT_CHECK(rc == 0, "dizuo conformance --op ADD --csv - exited %d: %s", rc, err ? err : "");
    const char *head = "backend,device,op,dtype,status,cases,worst_nmse\n";
    DZT_CHECK(out && !strncmp(out, head, strlen(head)), "--csv -: standard output does not start with the header: %.200s",
              out ? out : "(none)");
    if (out && !strncmp(out, head, strlen(head))) {
        char key[512];
        snprintf(key, sizeof key, "%s", out + strlen(head));
        char *last = strrchr(key, ',');
        if (last) *last = '\0';
        DZT_CHECK(has_key(committed, n_committed, key), "--csv -: the row \"%s\" is not in docs/support-matrix.csv",
                  key);
        DZT_CHECK(strchr(out + strlen(head), '\n') == out + strlen(out) - 1, "--csv -: more than one row: %s", out);
    }
    DZT_CHECK(err && strstr(err, "conformance of cpu"), "--csv -: the report is not on standard error: %s",
              err ? err : "(none)");
    free(out);
    free(err);
    return dzt_done();
}
