/* dizuo conformance: runs the conformance suite on a device and prints its
 * support matrix. Exit 0 when every case is native or a correct fallback,
 * 1 when any case fails (listed), 2 on a usage error. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "dizuo/backend.h"
#include "dizuo/conformance.h"

static const char *CMD = "conformance";

/* Where the human-readable report goes: stdout, or stderr when the CSV
 * goes to stdout (--csv - or --csv /dev/stdout). */
static FILE *g_out;

static void usage(FILE *out) {
    fprintf(out,
            "usage: dizuo conformance [--device NAME | --all] [--tier I] [--op OP] [--csv FILE]\n"
            "                         [--seed S] [--threads N] [-v]\n\n"
            "Checks a device's kernels against the CPU reference: every op of the tier, every\n"
            "type it takes, odd sizes, strided views, broadcasting, GQA, RoPE modes, masks.\n"
            "Nodes the device refuses run on the CPU (\"fallback\"); a device is certified for a\n"
            "tier when every case is native.\n\n"
            "  --device NAME  device under test: cpu, <backend>:<index> (default cpu)\n"
            "  --all          every device of every backend (built-in and plugins), every tier\n"
            "                 unless --tier says otherwise; with --csv, one matrix of them all\n"
            "                 (docs/support-matrix.csv is made so)\n"
            "  --tier T       op tier: I (inference; the default), S (serving), T (training);\n"
            "                 several as I,S\n"
            "  --op OP        only this op (e.g. MUL_MAT)\n"
            "  --csv FILE     also write the matrix as CSV (- for standard output, the report\n"
            "                 then going to standard error):\n"
            "                 backend,device,op,dtype,status,cases,worst_nmse\n"
            "  --seed S       seed of the inputs (default 1)\n"
            "  --threads N    threads of the CPU reference and fallback\n"
            "  -v             print every case\n\n"
            "exit status: 0 all cases native or fallback, 1 a case failed, 2 usage\n");
}

/* "I", "s", "I,S" -> DZ_TIER_* bits; false on anything else. */
static bool parse_tiers(const char *text, uint32_t *out) {
    uint32_t tiers = 0;
    for (const char *p = text; *p; p++) {
        char c = (char)toupper((unsigned char)*p);
        if (c == 'I') tiers |= DZ_TIER_I;
        else if (c == 'S') tiers |= DZ_TIER_S;
        else if (c == 'T') tiers |= DZ_TIER_T;
        else return false;
        if (p[1] == ',') p++;
        else if (p[1] != '\0') return false;
    }
    *out = tiers;
    return tiers != 0;
}

static void print_case(const dz_conformance_case *c, void *user) {
    (void)user;
    char limit[16];
    if (c->limit == DZ_CONFORMANCE_LIMIT_EXACT) snprintf(limit, sizeof limit, "exact");
    else snprintf(limit, sizeof limit, "%.0e", c->limit);
    fprintf(g_out, "  #%-4d %-8s %-10s %-9s NMSE %-9.3g (%s)  %s%s%s\n", (int)c->index,
           c->result == DZ_CONFORMANCE_FAIL ? "FAIL" : dz_conformance_result_name(c->result),
           dz_op_name(c->op), c->dtype, c->nmse, limit, c->shape, c->message[0] ? ": " : "",
           c->message);
    fflush(g_out);
}

/* Runs the suite on one device and prints its matrix; *out receives the
 * report (NULL when the run could not be made). Returns the exit code. */
static int run_device(const char *device_name, const char *tier_text, const dz_conformance_options *opt,
                      bool verbose, dz_conformance_report **out) {
    *out = NULL;
    dz_device *dev = NULL;
    dz_status st = dz_device_open(device_name, &dev);
    if (st != DZ_OK) {
        dz_cli_error(CMD);
        return st == DZ_ERR_ARG ? DZ_EXIT_USAGE : DZ_EXIT_ERROR;
    }
    if (verbose) fprintf(g_out, "comparator self-check: %s\n", dz_conformance_self_check() == DZ_OK ? "ok" : "FAILED");
    dz_conformance_report *report = NULL;
    st = dz_conformance_run(dev, opt, &report);
    dz_device_close(dev);
    if (st != DZ_OK) {
        dz_cli_error(CMD);
        return st == DZ_ERR_ARG ? DZ_EXIT_USAGE : DZ_EXIT_ERROR;
    }
    const dz_conformance_summary *sum = dz_conformance_report_summary(report);
    int rc = DZ_EXIT_OK;
    if (sum->n_cases == 0) {
        fprintf(g_out, "dizuo %s: no ops in tier %s yet; nothing to check\n", CMD, tier_text);
    } else {
        if (verbose) fprintf(g_out, "\n");
        dz_conformance_report_print(report, g_out);
        if (sum->n_failed > 0) {
            fprintf(g_out, "every case of an op again, with the same inputs: dizuo conformance "
                   "--device %s --op <OP> --seed %llu -v\n", device_name, (unsigned long long)opt->seed);
            rc = DZ_EXIT_ERROR;
        }
    }
    *out = report;
    return rc;
}

static int run_one(const char *device_name, const char *tier_text, const dz_conformance_options *opt, bool verbose,
                   const char *csv) {
    dz_conformance_report *report = NULL;
    int rc = run_device(device_name, tier_text, opt, verbose, &report);
    if (report && csv && dz_conformance_report_write_csv(report, csv) != DZ_OK) rc = dz_cli_error(CMD);
    dz_conformance_report_destroy(report);
    return rc;
}

int dz_cmd_conformance(int argc, char **argv) {
    const char *device_name = "cpu", *csv = NULL, *tier_text = "I";
    dz_conformance_options opt = dz_conformance_options_default();
    bool verbose = false, all = false, tier_given = false, device_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long long v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return DZ_EXIT_OK;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = true;
        } else if (!strcmp(a, "--all")) {
            all = true;
        } else if (!strcmp(a, "--device")) {
            if (!(device_name = dz_arg_value(CMD, argc, argv, &i)) || !dz_arg_device(CMD, device_name))
                return DZ_EXIT_USAGE;
            device_given = true;
        } else if (!strcmp(a, "--tier")) {
            if (!(tier_text = dz_arg_value(CMD, argc, argv, &i))) return DZ_EXIT_USAGE;
            tier_given = true;
        } else if (!strcmp(a, "--op")) {
            if (!(opt.only_op = dz_arg_value(CMD, argc, argv, &i))) return DZ_EXIT_USAGE;
        } else if (!strcmp(a, "--csv")) {
            if (!(csv = dz_arg_value(CMD, argc, argv, &i))) return DZ_EXIT_USAGE;
        } else if (!strcmp(a, "--seed")) {
            const char *text = dz_arg_value(CMD, argc, argv, &i);
            if (!text || !dz_arg_int(CMD, "--seed", text, 0, INT64_MAX, &v)) return DZ_EXIT_USAGE;
            opt.seed = (uint64_t)v;
        } else if (!strcmp(a, "--threads")) {
            const char *text = dz_arg_value(CMD, argc, argv, &i);
            if (!text || !dz_arg_int(CMD, "--threads", text, 1, 1024, &v)) return DZ_EXIT_USAGE;
            opt.n_threads = (int)v;
        } else {
            fprintf(stderr, "dizuo %s: unknown option '%s' (see dizuo %s --help)\n", CMD, a, CMD);
            return DZ_EXIT_USAGE;
        }
    }
    if (all && device_given) {
        fprintf(stderr, "dizuo %s: --all runs every device; give it or --device, not both\n", CMD);
        return DZ_EXIT_USAGE;
    }
    if (all && !tier_given) tier_text = "I,S,T";
    if (!parse_tiers(tier_text, &opt.tiers)) {
        fprintf(stderr, "dizuo %s: unknown tier '%s': tiers are I (inference), S (serving), "
                "T (training)\n", CMD, tier_text);
        return DZ_EXIT_USAGE;
    }
    if (verbose) opt.on_case = print_case;
    g_out = csv && (!strcmp(csv, "-") || !strcmp(csv, "/dev/stdout")) ? stderr : stdout;

    if (!all) return run_one(device_name, tier_text, &opt, verbose, csv);

    /* --all: every device of every backend, one CSV with all their rows. */
    dz_conformance_report *reports[64];
    int n_reports = 0, rc = DZ_EXIT_OK;
    for (int b = 0; b < dz_backend_count() && n_reports < 64; b++) {
        const dz_backend_iface *iface = dz_backend_at(b);
        for (int d = 0; d < iface->device_count() && n_reports < 64; d++) {
            char name[DZ_MAX_NAME + 16];
            snprintf(name, sizeof name, "%s:%d", iface->name, d);
            fprintf(g_out, "== %s\n", name);
            fflush(g_out);
            dz_conformance_report *r = NULL;
            int one = run_device(name, tier_text, &opt, verbose, &r);
            if (one != DZ_EXIT_OK) rc = DZ_EXIT_ERROR; /* a device of the list: not a usage error */
            if (r) reports[n_reports++] = r;
            fprintf(g_out, "\n");
        }
    }
    if (csv && dz_conformance_reports_write_csv((const dz_conformance_report *const *)reports, n_reports, csv))
        rc = dz_cli_error(CMD);
    else if (csv)
        fprintf(g_out, "support matrix of %d device%s written to %s\n", n_reports, n_reports == 1 ? "" : "s", csv);
    for (int i = 0; i < n_reports; i++) dz_conformance_report_destroy(reports[i]);
    return rc;
}
