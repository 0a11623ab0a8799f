/* The conformance report: the cases in the order they ran, folded into a
 * support matrix (one cell per op and type), printed as a table or CSV. */
#include "conformance/conformance_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *dz_conformance_result_name(dz_conformance_result r) {
    switch (r) {
    case DZ_CONFORMANCE_NATIVE: return "native";
    case DZ_CONFORMANCE_FALLBACK: return "fallback";
    case DZ_CONFORMANCE_PARTIAL: return "partial";
    case DZ_CONFORMANCE_FAIL: return "fail";
    }
    return "?";
}

dz_conformance_report *conf_report_create(void) {
    return calloc(1, sizeof(dz_conformance_report));
}

void dz_conformance_report_destroy(dz_conformance_report *r) {
    if (!r) return;
    free(r->cases);
    free(r->cells);
    free(r);
}

/* Grows an array of `size`-byte items to hold one more. */
static dz_status grow(void **items, int32_t *cap, int32_t n, size_t size) {
    if (n < *cap) return DZ_OK;
    int32_t new_cap = *cap ? *cap * 2 : 64;
    void *bigger = realloc(*items, (size_t)new_cap * size);
    if (!bigger) return dz_fail(DZ_ERR_NOMEM, "no memory for %d report entries", new_cap);
    *items = bigger;
    *cap = new_cap;
    return DZ_OK;
}

static void cell_settle(dz_conformance_cell *cell) {
    if (cell->n_failed > 0)
        cell->result = DZ_CONFORMANCE_FAIL;
    else if (cell->n_native == cell->n_cases)
        cell->result = DZ_CONFORMANCE_NATIVE;
    else if (cell->n_fallback == cell->n_cases)
        cell->result = DZ_CONFORMANCE_FALLBACK;
    else
        cell->result = DZ_CONFORMANCE_PARTIAL;
}

dz_status conf_report_add(dz_conformance_report *r, const dz_conformance_case *c) {
    dz_status st = grow((void **)&r->cases, &r->cap_cases, r->n_cases, sizeof *r->cases);
    if (st == DZ_OK) st = grow((void **)&r->cells, &r->cap_cells, r->n_cells, sizeof *r->cells);
    if (st != DZ_OK) return st;
    dz_conformance_cell *cell = (dz_conformance_cell *)dz_conformance_report_find_cell(r, c->op, c->dtype);
    if (!cell) {
        cell = &r->cells[r->n_cells++];
        *cell = (dz_conformance_cell){.op = c->op, .limit = c->limit};
        memcpy(cell->dtype, c->dtype, sizeof cell->dtype);
    }
    cell->n_cases++;
    cell->n_native += c->result == DZ_CONFORMANCE_NATIVE;
    cell->n_fallback += c->result == DZ_CONFORMANCE_FALLBACK;
    cell->n_failed += c->result == DZ_CONFORMANCE_FAIL;
    if (cell->n_cases == 1 || c->nmse > cell->worst_nmse || isnan(c->nmse)) cell->worst_nmse = c->nmse;
    cell_settle(cell);

    r->cases[r->n_cases++] = *c;
    dz_conformance_summary *sum = &r->summary;
    sum->n_cases++;
    sum->n_native += c->result == DZ_CONFORMANCE_NATIVE;
    sum->n_fallback += c->result == DZ_CONFORMANCE_FALLBACK;
    sum->n_failed += c->result == DZ_CONFORMANCE_FAIL;
    return DZ_OK;
}

/* ---- read access ---- */

const dz_conformance_summary *dz_conformance_report_summary(const dz_conformance_report *r) {
    return r ? &r->summary : NULL;
}
int32_t dz_conformance_report_n_cases(const dz_conformance_report *r) { return r ? r->n_cases : 0; }
const dz_conformance_case *dz_conformance_report_case(const dz_conformance_report *r, int32_t i) {
    return r && i >= 0 && i < r->n_cases ? &r->cases[i] : NULL;
}
int32_t dz_conformance_report_n_cells(const dz_conformance_report *r) { return r ? r->n_cells : 0; }
const dz_conformance_cell *dz_conformance_report_cell(const dz_conformance_report *r, int32_t i) {
    return r && i >= 0 && i < r->n_cells ? &r->cells[i] : NULL;
}
const dz_conformance_cell *dz_conformance_report_find_cell(const dz_conformance_report *r,
                                                           dz_op op, const char *dtype) {
    for (int32_t i = 0; r && dtype && i < r->n_cells; i++)
        if (r->cells[i].op == op && strcmp(r->cells[i].dtype, dtype) == 0) return &r->cells[i];
    return NULL;
}

/* ---- output ---- */

static void format_limit(double limit, char *buf, size_t size) {
    if (limit == DZ_CONFORMANCE_LIMIT_EXACT)
        snprintf(buf, size, "exact");
    else
        snprintf(buf, size, "%.0e", limit);
}

static void tier_letters(uint32_t tiers, char *buf, size_t size) {
    snprintf(buf, size, "%s%s%s", tiers & DZ_TIER_I ? "I" : "", tiers & DZ_TIER_S ? "S" : "",
             tiers & DZ_TIER_T ? "T" : "");
}

void dz_conformance_report_print(const dz_conformance_report *r, FILE *out) {
    if (!r || !out) return;
    const dz_conformance_summary *s = &r->summary;
    char tiers[8];
    tier_letters(s->tiers, tiers, sizeof tiers);
    fprintf(out, "conformance of %s (backend %s: %s)\ntier %s, seed %llu\n\n", s->device,
            s->backend, s->description, tiers, (unsigned long long)s->seed);
    fprintf(out, "%-18s %-10s %-9s %5s %6s %8s %6s  %-10s %s\n", "op", "dtype", "status",
            "cases", "native", "fallback", "failed", "worst NMSE", "limit");
    for (int32_t i = 0; i < r->n_cells; i++) {
        const dz_conformance_cell *c = &r->cells[i];
        char limit[16];
        format_limit(c->limit, limit, sizeof limit);
        fprintf(out, "%-18s %-10s %-9s %5d %6d %8d %6d  %-10.3g %s\n", dz_op_name(c->op), c->dtype,
                c->result == DZ_CONFORMANCE_FAIL ? "FAIL" : dz_conformance_result_name(c->result),
                (int)c->n_cases, (int)c->n_native, (int)c->n_fallback, (int)c->n_failed,
                c->worst_nmse, limit);
    }
    fprintf(out, "\n%d cases in %.1f s: %d native, %d fallback, %d failed\n", (int)s->n_cases,
            s->seconds, (int)s->n_native, (int)s->n_fallback, (int)s->n_failed);
    if (s->n_failed == 0) return;
    fprintf(out, "failed cases:\n");
    for (int32_t i = 0; i < r->n_cases; i++) {
        const dz_conformance_case *c = &r->cases[i];
        if (c->result == DZ_CONFORMANCE_FAIL)
            fprintf(out, "  #%d %s %s [%s]: %s\n", (int)c->index, dz_op_name(c->op), c->dtype,
                    c->shape, c->message);
    }
}

/* Writes a CSV field, quoted when it holds a comma, quote or line break. */
static void csv_field(FILE *f, const char *text) {
    if (!strpbrk(text, ",\"\r\n")) {
        fputs(text, f);
        return;
    }
    fputc('"', f);
    for (const char *p = text; *p; p++) {
        if (*p == '"') fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

static void write_matrix(FILE *f, const dz_conformance_report *const *reports, int n) {
    fputs("backend,device,op,dtype,status,cases,worst_nmse\n", f);
    for (int k = 0; k < n; k++) {
        const dz_conformance_report *r = reports[k];
        for (int32_t i = 0; i < r->n_cells; i++) {
            const dz_conformance_cell *c = &r->cells[i];
            csv_field(f, r->summary.backend);
            fputc(',', f);
            csv_field(f, r->summary.device);
            fprintf(f, ",%s,%s,%s,%d,%.6g\n", dz_op_name(c->op), c->dtype, dz_conformance_result_name(c->result),
                    (int)c->n_cases, c->worst_nmse);
        }
    }
}

/* "-" and /dev/stdout: the process's standard output (whatever it was
 * redirected to). */
static bool to_stdout(const char *path) { return !strcmp(path, "-") || !strcmp(path, "/dev/stdout"); }

/* A target that exists and is not a regular file (a pipe, a device): written
 * in place, since nothing can be renamed over it. */
static bool write_in_place(const char *path) {
    struct stat st;
    return to_stdout(path) || (stat(path, &st) == 0 && !S_ISREG(st.st_mode));
}

dz_status dz_conformance_reports_write_csv(const dz_conformance_report *const *reports, int n, const char *path) {
    if (!reports || n < 0 || !path) return dz_fail(DZ_ERR_ARG, "dz_conformance_reports_write_csv: bad arguments");
    for (int k = 0; k < n; k++)
        if (!reports[k]) return dz_fail(DZ_ERR_ARG, "dz_conformance_reports_write_csv: report %d is NULL", k);
    if (write_in_place(path)) {
        const bool std_out = to_stdout(path);
        FILE *f = std_out ? stdout : fopen(path, "w");
        if (!f) return dz_fail(DZ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        write_matrix(f, reports, n);
        bool failed = ferror(f) != 0 || (std_out ? fflush(f) != 0 : fclose(f) != 0);
        if (failed) return dz_fail(DZ_ERR_IO, "%s: write failed: %s", std_out ? "standard output" : path,
                                   strerror(errno));
        return DZ_OK;
    }
    /* Written beside the target and renamed over it: a failed write leaves
     * the old matrix as it was. */
    size_t len = strlen(path) + 16;
    char *tmp = malloc(len);
    if (!tmp) return dz_fail(DZ_ERR_NOMEM, "out of memory writing %s", path);
    snprintf(tmp, len, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        dz_status st = dz_fail(DZ_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    write_matrix(f, reports, n);
    bool failed = ferror(f) != 0;
    int saved = errno;
    if (fclose(f) != 0 && !failed) {
        failed = true;
        saved = errno;
    }
    if (!failed && rename(tmp, path) != 0) {
        failed = true;
        saved = errno;
    }
    if (failed) remove(tmp);
    free(tmp);
    if (failed) return dz_fail(DZ_ERR_IO, "%s: write failed: %s", path, strerror(saved));
    return DZ_OK;
}

dz_status dz_conformance_report_write_csv(const dz_conformance_report *r, const char *path) {
    if (!r || !path) return dz_fail(DZ_ERR_ARG, "dz_conformance_report_write_csv: NULL report or path");
    return dz_conformance_reports_write_csv(&r, 1, path);
}
