/* Tests of the conformance suite: its comparator, the CPU reference against
 * itself, a partial device (native for what it supports, correct fallback for
 * the rest), devices with one broken kernel (the suite must flag exactly that
 * op), and the `dizuo conformance` command. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/conformance.h"
#include "dztest.h"
#include "test_backends.h"

/* Every tier-I op of backend.h and every type the suite promises for it. */
static const struct { dz_op op; const char *dtype; } tier_i_cells[] = {
    {DZ_OP_GET_ROWS, "F32"},    {DZ_OP_GET_ROWS, "F16"},  {DZ_OP_GET_ROWS, "BF16"},
    {DZ_OP_GET_ROWS, "Q8_0"},   {DZ_OP_GET_ROWS, "Q4_0"}, {DZ_OP_GET_ROWS, "Q4_1"},
    {DZ_OP_GET_ROWS, "Q5_0"},   {DZ_OP_GET_ROWS, "Q5_1"}, {DZ_OP_GET_ROWS, "IQ4_NL"},
    {DZ_OP_GET_ROWS, "Q2_K"},   {DZ_OP_GET_ROWS, "Q3_K"}, {DZ_OP_GET_ROWS, "Q4_K"},
    {DZ_OP_GET_ROWS, "Q5_K"},   {DZ_OP_GET_ROWS, "Q6_K"}, {DZ_OP_ADD, "F32"},
    {DZ_OP_MUL, "F32"},         {DZ_OP_SCALE, "F32"},     {DZ_OP_RMS_NORM, "F32"},
    {DZ_OP_MUL_MAT, "F32"},     {DZ_OP_MUL_MAT, "F16"},   {DZ_OP_MUL_MAT, "BF16"},
    {DZ_OP_MUL_MAT, "Q8_0"},    {DZ_OP_MUL_MAT, "Q4_0"},  {DZ_OP_MUL_MAT, "Q4_1"},
    {DZ_OP_MUL_MAT, "Q5_0"},    {DZ_OP_MUL_MAT, "Q5_1"},  {DZ_OP_MUL_MAT, "IQ4_NL"},
    {DZ_OP_MUL_MAT, "Q2_K"},    {DZ_OP_MUL_MAT, "Q3_K"},  {DZ_OP_MUL_MAT, "Q4_K"},
    {DZ_OP_MUL_MAT, "Q5_K"},    {DZ_OP_MUL_MAT, "Q6_K"},  {DZ_OP_ROPE, "F32"},
    {DZ_OP_SOFTMAX, "F32"},     {DZ_OP_ATTENTION, "F32"}, {DZ_OP_ATTENTION, "F16"},
    {DZ_OP_SILU, "F32"},        {DZ_OP_SWIGLU, "F32"},    {DZ_OP_CPY, "F32->F32"},
    {DZ_OP_CPY, "F32->F16"},    {DZ_OP_CPY, "F32->BF16"}, {DZ_OP_CPY, "F16->F32"},
    {DZ_OP_CPY, "BF16->F32"},   {DZ_OP_SET_ROWS, "F32"},  {DZ_OP_SET_ROWS, "F32->F16"},
    {DZ_OP_PAGED_ATTENTION, "F32"}, {DZ_OP_PAGED_ATTENTION, "F16"},
    {DZ_OP_LAYER_NORM, "F32"},  {DZ_OP_GELU, "F32"},
};
enum { N_TIER_I_CELLS = sizeof tier_i_cells / sizeof tier_i_cells[0] };

/* ---- the comparator, against hand-computed values ---- */

static void test_compare(void) {
    const float ref[3] = {1.0f, 2.0f, 4.0f}, out[3] = {1.0f, 2.0f, 3.0f};
    dz_conformance_diff d = dz_conformance_compare(out, ref, 3);
    DZT_NEAR(d.nmse, 1.0 / 21.0, 1e-15); /* (4-3)^2 / (1 + 4 + 16) */
    DZT_EQ_INT(d.first_mismatch, 2);
    DZT_EQ_INT(d.first_nonfinite, -1);
    DZT_ASSERT(!dz_conformance_diff_passes(&d, DZ_CONFORMANCE_LIMIT_QUANT));
    DZT_ASSERT(dz_conformance_diff_passes(&d, 0.05));

    d = dz_conformance_compare(ref, ref, 3);
    DZT_NEAR(d.nmse, 0.0, 0.0);
    DZT_ASSERT(dz_conformance_diff_passes(&d, DZ_CONFORMANCE_LIMIT_EXACT));

    /* -0 and +0 are equal numbers but not equal bits: exact must notice. */
    const float pz[2] = {0.0f, 1.0f}, nz[2] = {-0.0f, 1.0f};
    d = dz_conformance_compare(nz, pz, 2);
    DZT_EQ_INT(d.first_mismatch, 0);
    DZT_ASSERT(!dz_conformance_diff_passes(&d, DZ_CONFORMANCE_LIMIT_EXACT));
    DZT_ASSERT(dz_conformance_diff_passes(&d, DZ_CONFORMANCE_LIMIT_F32));

    const float bad[3] = {1.0f, NAN, 4.0f};
    d = dz_conformance_compare(bad, ref, 3);
    DZT_EQ_INT(d.first_nonfinite, 1);
    DZT_ASSERT(isinf(d.nmse));
    DZT_ASSERT(!dz_conformance_diff_passes(&d, 1e30));

    const float zeros[2] = {0.0f, 0.0f}, tiny[2] = {0.0f, 1e-30f};
    d = dz_conformance_compare(zeros, zeros, 2);
    DZT_ASSERT(dz_conformance_diff_passes(&d, DZ_CONFORMANCE_LIMIT_F32));
    d = dz_conformance_compare(tiny, zeros, 2);
    DZT_ASSERT(!dz_conformance_diff_passes(&d, DZ_CONFORMANCE_LIMIT_QUANT));

    DZT_OK(dz_conformance_self_check());
}

/* ---- running the suite ---- */

static dz_conformance_report *run_suite(dz_device *dev) {
    dz_conformance_options opt = dz_conformance_options_default();
    dz_conformance_report *r = NULL;
    DZT_OK(dz_conformance_run(dev, &opt, &r));
    return r;
}

static void print_failures(const dz_conformance_report *r) {
    for (int32_t i = 0; i < dz_conformance_report_n_cases(r); i++) {
        const dz_conformance_case *c = dz_conformance_report_case(r, i);
        if (c->result == DZ_CONFORMANCE_FAIL)
            fprintf(stderr, "  %s %s [%s]: %s\n", dz_op_name(c->op), c->dtype, c->shape, c->message);
    }
}

/* The type a case's dtype label names ("F32->F16": its destination). */
static dz_type case_type(const dz_conformance_case *c) {
    const char *arrow = strstr(c->dtype, "->");
    int t = dz_type_from_name(arrow ? arrow + 2 : c->dtype);
    return t < 0 ? DZ_TYPE_COUNT : (dz_type)t;
}

/* The fast CPU device against the reference: every case native and within
 * its limit (the fast kernels sum in other orders, so not bit-identical). */
static void test_fast_cpu(void) {
    dz_device *cpu = NULL;
    DZT_OK(dz_device_open("cpu", &cpu));
    if (!cpu) return;
    dz_conformance_report *r = run_suite(cpu);
    if (r) {
        const dz_conformance_summary *s = dz_conformance_report_summary(r);
        DZT_EQ_INT(s->n_failed, 0);
        DZT_EQ_INT(s->n_native, s->n_cases);
        DZT_EQ_STR(s->backend, "cpu");
        if (s->n_failed) print_failures(r);
        DZT_EQ_INT(dz_conformance_report_n_cells(r), N_TIER_I_CELLS);
    }
    dz_conformance_report_destroy(r);
    dz_device_close(cpu);
}

/* The reference against itself: bit-identical, every cell. */
static void test_cpu_against_itself(void) {
    dz_device *cpu = NULL;
    DZT_OK(dz_device_open("cpu-ref", &cpu));
    if (!cpu) return;
    dz_conformance_report *r = run_suite(cpu);
    if (r) {
        const dz_conformance_summary *s = dz_conformance_report_summary(r);
        DZT_EQ_INT(s->n_failed, 0);
        DZT_EQ_INT(s->n_native, s->n_cases);
        DZT_CHECK(s->n_cases >= 150, "only %d cases", (int)s->n_cases);
        DZT_EQ_STR(s->backend, "cpu-ref");
        if (s->n_failed) print_failures(r);
        for (int i = 0; i < N_TIER_I_CELLS; i++) {
            const dz_conformance_cell *c =
                dz_conformance_report_find_cell(r, tier_i_cells[i].op, tier_i_cells[i].dtype);
            DZT_CHECK(c != NULL, "no cell for %s %s", dz_op_name(tier_i_cells[i].op),
                      tier_i_cells[i].dtype);
            if (!c) continue;
            DZT_CHECK(c->result == DZ_CONFORMANCE_NATIVE && c->n_cases >= 4,
                      "%s %s: %s over %d cases", dz_op_name(c->op), c->dtype,
                      dz_conformance_result_name(c->result), (int)c->n_cases);
            DZT_CHECK(c->worst_nmse == 0.0, "%s %s: the CPU differs from itself (NMSE %g)",
                      dz_op_name(c->op), c->dtype, c->worst_nmse);
        }
        DZT_EQ_INT(dz_conformance_report_n_cells(r), N_TIER_I_CELLS);
    }
    dz_conformance_report_destroy(r);

    /* Same seed, same inputs; one op only; unknown op names are refused. */
    dz_conformance_options opt = dz_conformance_options_default();
    opt.only_op = "mul_mat";
    r = NULL;
    DZT_OK(dz_conformance_run(cpu, &opt, &r));
    for (int32_t i = 0; r && i < dz_conformance_report_n_cases(r); i++)
        DZT_EQ_INT(dz_conformance_report_case(r, i)->op, DZ_OP_MUL_MAT);
    DZT_CHECK(dz_conformance_report_n_cases(r) >= 25, "%d MUL_MAT cases",
              (int)dz_conformance_report_n_cases(r));
    dz_conformance_report_destroy(r);
    opt.only_op = "no_such_op";
    static char sentinel;
    dz_conformance_report *untouched = (dz_conformance_report *)&sentinel;
    r = untouched;
    DZT_FAILS(dz_conformance_run(cpu, &opt, &r), DZ_ERR_ARG);
    DZT_ASSERT(r == untouched);
    DZT_ASSERT(strstr(dz_last_error(), "MUL_MAT") != NULL); /* lists the ops */

    /* Tiers without ops (S so far): an empty report, not an error. */
    opt = dz_conformance_options_default();
    opt.tiers = DZ_TIER_S;
    r = NULL;
    DZT_OK(dz_conformance_run(cpu, &opt, &r));
    DZT_EQ_INT(dz_conformance_report_n_cases(r), 0);
    dz_conformance_report_destroy(r);
    /* Tier T: every training op has cases, all native on the CPU. */
    opt.tiers = DZ_TIER_T;
    r = NULL;
    DZT_OK(dz_conformance_run(cpu, &opt, &r));
    DZT_CHECK(r && dz_conformance_report_n_cases(r) >= 13, "tier T: %d cases",
              r ? (int)dz_conformance_report_n_cases(r) : -1);
    for (int32_t i = 0; r && i < dz_conformance_report_n_cases(r); i++)
        DZT_CHECK(dz_conformance_report_case(r, i)->result == DZ_CONFORMANCE_NATIVE, "tier T case %d: %s", (int)i,
                  dz_conformance_report_case(r, i)->message);
    dz_conformance_report_destroy(r);
    dz_device_close(cpu);
}

static void test_partial_device(void) {
    dz_device *dev = NULL;
    DZT_OK(dz_device_open_iface(dzt_partial_backend(), 0, &dev));
    if (!dev) return;
    dz_conformance_report *r = run_suite(dev);
    if (r) {
        const dz_conformance_summary *s = dz_conformance_report_summary(r);
        DZT_EQ_INT(s->n_failed, 0);
        if (s->n_failed) print_failures(r);
        DZT_ASSERT(s->n_native > 0 && s->n_fallback > 0);
        DZT_EQ_STR(s->device, "partial:0");
        for (int32_t i = 0; i < dz_conformance_report_n_cases(r); i++) {
            const dz_conformance_case *c = dz_conformance_report_case(r, i);
            bool claimed = dzt_partial_claims(c->op, case_type(c));
            DZT_CHECK(c->result == (claimed ? DZ_CONFORMANCE_NATIVE : DZ_CONFORMANCE_FALLBACK),
                      "%s %s [%s]: %s, expected %s", dz_op_name(c->op), c->dtype, c->shape,
                      dz_conformance_result_name(c->result), claimed ? "native" : "fallback");
        }
        const dz_conformance_cell *c = dz_conformance_report_find_cell(r, DZ_OP_MUL_MAT, "F32");
        DZT_ASSERT(c && c->result == DZ_CONFORMANCE_NATIVE);
        c = dz_conformance_report_find_cell(r, DZ_OP_MUL_MAT, "Q4_0");
        DZT_ASSERT(c && c->result == DZ_CONFORMANCE_FALLBACK);
        c = dz_conformance_report_find_cell(r, DZ_OP_RMS_NORM, "F32");
        DZT_ASSERT(c && c->result == DZ_CONFORMANCE_FALLBACK);
    }
    dz_conformance_report_destroy(r);
    dz_device_close(dev);
}

/* Which cases of the broken op a defect must fail. */
typedef enum { FAILS_ALL, FAILS_MOST, FAILS_VIEWS } defect_reach;

/* The wrong devices: each must fail its broken op, with a message that says
 * how, and pass every other op natively. */
static const struct {
    int defect;
    dz_op op;
    defect_reach reach;
    const char *message;
} defects[] = {
    {DZT_WRONG_RMS_NORM, DZ_OP_RMS_NORM, FAILS_ALL, "NMSE"}, /* 1e-6 against a 1e-7 limit */
    /* A missing K term hides when that element of x happens to be near 0. */
    {DZT_WRONG_MUL_MAT, DZ_OP_MUL_MAT, FAILS_MOST, "NMSE"},
    {DZT_WRONG_ADD_STRIDES, DZ_OP_ADD, FAILS_VIEWS, "NMSE"},
    {DZT_WRONG_SCALE_TAIL, DZ_OP_SCALE, FAILS_ALL, "nan"},
    {DZT_WRONG_SILU_INPUT, DZ_OP_SILU, FAILS_ALL, "changed its input"},
};
enum { N_DEFECTS = sizeof defects / sizeof defects[0] };

static void test_wrong_device(int d) {
    dz_device *dev = NULL;
    DZT_OK(dz_device_open_iface(dzt_wrong_backend(), defects[d].defect, &dev));
    if (!dev) return;
    dz_conformance_report *r = run_suite(dev);
    const dz_op broken = defects[d].op;
    int failed = 0, passed = 0;
    for (int32_t i = 0; r && i < dz_conformance_report_n_cases(r); i++) {
        const dz_conformance_case *c = dz_conformance_report_case(r, i);
        bool fails = c->result == DZ_CONFORMANCE_FAIL;
        if (c->op != broken) {
            DZT_CHECK(c->result == DZ_CONFORMANCE_NATIVE, "wrong:%d %s %s [%s]: %s (%s)",
                      defects[d].defect, dz_op_name(c->op), c->dtype, c->shape,
                      dz_conformance_result_name(c->result), c->message);
            continue;
        }
        failed += fails;
        passed += !fails;
        bool is_view = strstr(c->shape, "src0 ") != NULL;
        if (defects[d].reach == FAILS_ALL || (defects[d].reach == FAILS_VIEWS && is_view))
            DZT_CHECK(fails, "wrong:%d %s %s [%s] passed (NMSE %g)", defects[d].defect,
                      dz_op_name(c->op), c->dtype, c->shape, c->nmse);
        if (defects[d].reach == FAILS_VIEWS && !is_view)
            DZT_CHECK(!fails, "wrong:%d %s [%s] failed: %s", defects[d].defect, dz_op_name(c->op),
                      c->shape, c->message);
        if (fails)
            DZT_CHECK(strstr(c->message, defects[d].message) != NULL, "wrong:%d: message '%s'",
                      defects[d].defect, c->message);
    }
    DZT_CHECK(failed > 0, "wrong:%d: no %s case failed", defects[d].defect, dz_op_name(broken));
    /* The same seed gives the same inputs, whether or not other ops run. */
    dz_conformance_options opt = dz_conformance_options_default();
    opt.only_op = dz_op_name(broken);
    dz_conformance_report *alone = NULL;
    DZT_OK(dz_conformance_run(dev, &opt, &alone));
    for (int32_t i = 0, j = 0; r && i < dz_conformance_report_n_cases(r); i++) {
        const dz_conformance_case *c = dz_conformance_report_case(r, i);
        if (c->op != broken) continue;
        const dz_conformance_case *again = dz_conformance_report_case(alone, j++);
        DZT_CHECK(again && again->nmse == c->nmse && !strcmp(again->shape, c->shape),
                  "%s [%s]: NMSE %g alone, %g in the full run", dz_op_name(c->op), c->shape,
                  again ? again->nmse : -1.0, c->nmse);
    }
    dz_conformance_report_destroy(alone);
    if (defects[d].reach == FAILS_MOST)
        DZT_CHECK(failed >= 4 * (failed + passed) / 5, "wrong:%d: only %d of %d %s cases failed",
                  defects[d].defect, failed, failed + passed, dz_op_name(broken));
    /* In the matrix: exactly the cells of the broken op fail. */
    for (int32_t i = 0; r && i < dz_conformance_report_n_cells(r); i++) {
        const dz_conformance_cell *c = dz_conformance_report_cell(r, i);
        DZT_CHECK((c->result == DZ_CONFORMANCE_FAIL) == (c->op == broken),
                  "wrong:%d cell %s %s: %s", defects[d].defect, dz_op_name(c->op), c->dtype,
                  dz_conformance_result_name(c->result));
    }
    dz_conformance_report_destroy(r);
    dz_device_close(dev);
}

static void test_wrong_devices(void) {
    DZT_EQ_INT(N_DEFECTS, DZT_WRONG_COUNT);
    for (int d = 0; d < N_DEFECTS; d++) test_wrong_device(d);
}

/* ---- the command ---- */

static int run_cli(const char *args, char **out, char **err) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' conformance %s", dzt_bin(), args);
    char *argv[16] = {"/bin/sh", "-c", cmd, NULL};
    return dzt_run_argv(argv, out, NULL, err);
}

static void test_cli(void) {
    char *out = NULL, *err = NULL;
    DZT_EQ_INT(run_cli("", &out, &err), 0);
    DZT_ASSERT(out && strstr(out, "MUL_MAT") && strstr(out, "Q4_0") && strstr(out, "native"));
    DZT_ASSERT(out && strstr(out, " 0 failed"));
    free(out);
    free(err);

    DZT_EQ_INT(run_cli("--device nosuch", &out, &err), 2);
    DZT_CHECK(err && strstr(err, "nosuch") && strstr(err, "cpu:0"), "stderr: %s", err ? err : "");
    free(out);
    free(err);

    char csv[512];
    snprintf(csv, sizeof csv, "--device cpu-ref --seed 7 --op get_rows --csv '%s/matrix.csv'", dzt_tmpdir());
    DZT_EQ_INT(run_cli(csv, &out, &err), 0);
    free(out);
    free(err);
    snprintf(csv, sizeof csv, "%s/matrix.csv", dzt_tmpdir());
    char *text = dzt_read_file(csv, NULL);
    DZT_ASSERT(text != NULL);
    int rows = 0;
    for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        if (rows++ == 0) {
            DZT_EQ_STR(line, "backend,device,op,dtype,status,cases,worst_nmse");
            continue;
        }
        char backend[32], device[32], op[32], dtype[32], status[32];
        int cases;
        double nmse;
        int n = sscanf(line, "%31[^,],%31[^,],%31[^,],%31[^,],%31[^,],%d,%lf", backend, device,
                       op, dtype, status, &cases, &nmse);
        DZT_CHECK(n == 7, "row '%s': %d fields", line, n);
        if (n != 7) continue;
        DZT_EQ_STR(backend, "cpu-ref");
        DZT_EQ_STR(op, dz_op_name(DZ_OP_GET_ROWS));
        DZT_EQ_STR(status, "native");
        DZT_ASSERT(cases >= 4 && nmse == 0.0);
    }
    DZT_EQ_INT(rows, 1 + 14); /* header + the 14 table formats */
    free(text);

    DZT_EQ_INT(run_cli("--op silu -v", &out, &err), 0);
    DZT_ASSERT(out && strstr(out, "self-check: ok") && strstr(out, "#0 "));
    free(out);
    free(err);

    DZT_EQ_INT(run_cli("--tier S", &out, &err), 0);
    DZT_ASSERT(out && strstr(out, "no ops in tier S"));
    free(out);
    free(err);

    DZT_EQ_INT(run_cli("--tier X", &out, &err), 2);
    free(out);
    free(err);
    DZT_EQ_INT(run_cli("--bogus", &out, &err), 2);
    free(out);
    free(err);
    DZT_EQ_INT(run_cli("--op nosuch", &out, &err), 2);
    free(out);
    free(err);
    DZT_EQ_INT(run_cli("--help", &out, &err), 0);
    DZT_ASSERT(out && strstr(out, "--csv"));
    free(out);
    free(err);
}

int main(void) {
    test_compare();
    test_cpu_against_itself();
    test_fast_cpu();
    test_partial_device();
    test_wrong_devices();
    test_cli();
    return dzt_done();
}
