/* dizuo — conformance: checks a device's kernels against the CPU reference.
 *
 * This is the suite behind the promise to accelerator vendors: implement
 * dz_backend_iface, pass `dizuo conformance --device <name>`, and every model
 * runs. For every op of the requested tiers, every element type the op takes
 * and a list of shapes (odd sizes, n = 1 and batched rows, strided and
 * permuted views, broadcasting, GQA ratios, RoPE modes, masks), the suite
 * builds a one-op graph twice from the same seeded inputs:
 *
 *   - under test: scheduled on [device, cpu], so the node runs on the device
 *     when it says it supports it and falls back to the CPU otherwise;
 *   - reference:  scheduled on the CPU reference backend alone;
 *
 * and compares the outputs. Each case ends as
 *
 *   native    the device ran the node and its output matched;
 *   fallback  the device refused the node, the CPU ran it and it matched
 *             (still correct, but not certified);
 *   fail      wrong output, NaN/Inf in the output, a modified input, or a
 *             failed run.
 *
 * "Matched" means: bit-exact for data movement (GET_ROWS of F32/F16/BF16,
 * CPY F32->F32 and widening conversions, views), otherwise
 * NMSE = sum((out-ref)^2) / sum(ref^2) at most the limit of that op and
 * type (DZ_CONFORMANCE_LIMIT_*). A device is certified for a tier when every
 * case of that tier is native.
 *
 * Before testing anything the run checks its own comparator
 * (dz_conformance_self_check): identical outputs must pass, perturbed ones
 * and NaNs must be flagged. */
#ifndef DIZUO_CONFORMANCE_H
#define DIZUO_CONFORMANCE_H

#include <stdio.h>

#include "dizuo/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* NMSE limits, per op and type (the case table picks one per op/type pair).
 * Per-op figures follow ggml's test-backend-ops; the half and quantized
 * figures are ../shared/README.md's per-format model limits, which per-op
 * errors must not exceed. */
#define DZ_CONFORMANCE_LIMIT_EXACT 0.0   /* bit-exact: data movement */
#define DZ_CONFORMANCE_LIMIT_F32 1e-7    /* F32 arithmetic: summation order, exp/sqrt ulps */
#define DZ_CONFORMANCE_LIMIT_TO_F16 1e-6 /* F32 -> F16 conversion, any rounding mode */
#define DZ_CONFORMANCE_LIMIT_TO_BF16 5e-5 /* F32 -> BF16 conversion, truncation included */
#define DZ_CONFORMANCE_LIMIT_HALF 1e-4   /* F16/BF16 operands (a device may compute in them) */
#define DZ_CONFORMANCE_LIMIT_QUANT 5e-4  /* quantized weights (a device may quantize activations) */

/* Outcome of a case, or of a matrix cell (an op and type over its cases). */
typedef enum dz_conformance_result {
    DZ_CONFORMANCE_NATIVE = 0,   /* ran on the device, matched the reference */
    DZ_CONFORMANCE_FALLBACK = 1, /* the device refused it; the CPU ran it and matched */
    DZ_CONFORMANCE_PARTIAL = 2,  /* cells only: some cases native, others fallback, none failed */
    DZ_CONFORMANCE_FAIL = 3,     /* mismatch, non-finite output, modified input, or run error */
} dz_conformance_result;

/* "native", "fallback", "partial", "fail". Static storage. */
const char *dz_conformance_result_name(dz_conformance_result r);

/* One case: one op, one type, one shape/layout. */
typedef struct dz_conformance_case {
    int32_t index;             /* position in the suite (stable for a given build) */
    dz_op op;
    char dtype[24];            /* the type under test: "F32", "Q4_0" (MUL_MAT/GET_ROWS weights),
                                  "F16" (ATTENTION K/V), "F32->F16" (CPY src->dst) */
    char shape[96];            /* what the case exercises: "K=64 N=17 M=5, x permuted" */
    dz_conformance_result result;
    double nmse;               /* vs the reference; 0 when identical, INFINITY when not finite
                                  or the case did not run */
    double limit;              /* NMSE limit; DZ_CONFORMANCE_LIMIT_EXACT = bit-exact */
    char message[256];         /* why it failed; "" otherwise */
} dz_conformance_case;

/* One cell of the support matrix: an op and type over all its cases. */
typedef struct dz_conformance_cell {
    dz_op op;
    char dtype[24];
    dz_conformance_result result; /* fail if any case failed; native/fallback if all cases
                                     were; partial when mixed */
    int32_t n_cases, n_native, n_fallback, n_failed;
    double worst_nmse;         /* largest NMSE over its cases */
    double limit;
} dz_conformance_cell;

typedef struct dz_conformance_summary {
    char backend[DZ_MAX_NAME];  /* backend table name: "cpu" */
    char device[DZ_MAX_NAME];   /* device name: "cpu", "opencl:0" */
    char description[128];      /* the device's description */
    uint32_t tiers;             /* DZ_TIER_* bits tested */
    uint64_t seed;
    int32_t n_cases, n_native, n_fallback, n_failed;
    double seconds;             /* wall time of the run */
} dz_conformance_summary;

typedef struct dz_conformance_options {
    uint32_t tiers;       /* DZ_TIER_* bits to test; 0 means DZ_TIER_I */
    uint64_t seed;        /* inputs are drawn from this seed: same seed, same inputs */
    int n_threads;        /* threads of the CPU devices (reference and fallback); <= 0 leaves
                             their default */
    const char *only_op;  /* NULL: every op; else one op name ("MUL_MAT", case-insensitive) */
    /* Called after each case in order (progress, verbose output); may be NULL.
     * The case is valid only during the call. */
    void (*on_case)(const dz_conformance_case *c, void *user);
    void *user;
} dz_conformance_options;

/* Defaults: tier I, seed 1, default threads, every op, no callback. */
dz_conformance_options dz_conformance_options_default(void);

typedef struct dz_conformance_report dz_conformance_report;

/* Runs the suite on `dev` (opened by the caller, not owned). Opens its own
 * CPU reference device. Failing cases do not make the call fail: they are in
 * the report. Returns DZ_ERR_ARG for an unknown only_op or bad tiers,
 * DZ_ERR_INTERNAL if the comparator's self-check fails, DZ_ERR_NOMEM, or the
 * error of opening the CPU device; *out is then untouched. On success the
 * caller owns *out (dz_conformance_report_destroy). A suite with no cases for
 * the requested tiers succeeds with an empty report. Not thread-safe against
 * other users of `dev`. */
dz_status dz_conformance_run(dz_device *dev, const dz_conformance_options *opt,
                             dz_conformance_report **out);
void dz_conformance_report_destroy(dz_conformance_report *r); /* NULL is a no-op */

/* Read access to a report; pointers stay valid until the report is destroyed.
 * Out-of-range indices return NULL. */
const dz_conformance_summary *dz_conformance_report_summary(const dz_conformance_report *r);
int32_t dz_conformance_report_n_cases(const dz_conformance_report *r);
const dz_conformance_case *dz_conformance_report_case(const dz_conformance_report *r, int32_t i);
int32_t dz_conformance_report_n_cells(const dz_conformance_report *r);
const dz_conformance_cell *dz_conformance_report_cell(const dz_conformance_report *r, int32_t i);
/* The cell of an op and type label ("Q4_0", "F32->F16"); NULL if none. */
const dz_conformance_cell *dz_conformance_report_find_cell(const dz_conformance_report *r,
                                                           dz_op op, const char *dtype);

/* Prints the support matrix (one line per op and type) and a summary line. */
void dz_conformance_report_print(const dz_conformance_report *r, FILE *out);
/* Writes the matrix as CSV to `path`, header
 * "backend,device,op,dtype,status,cases,worst_nmse", one row per cell.
 * DZ_ERR_IO naming the path on failure. */
dz_status dz_conformance_report_write_csv(const dz_conformance_report *r, const char *path);
/* The matrices of several reports (e.g. every device) in one CSV, rows in
 * report order. The file is written whole and renamed into place: on failure
 * the old file is untouched. */
dz_status dz_conformance_reports_write_csv(const dz_conformance_report *const *reports, int n, const char *path);

/* ---- the comparator ---- */

/* Differences between an output and its reference, n elements. */
typedef struct dz_conformance_diff {
    double nmse;               /* sum((out-ref)^2) / sum(ref^2); 0 when equal (both all zero
                                  included); INFINITY when ref is all zero and out is not, or
                                  when out has a NaN/Inf */
    int64_t first_nonfinite;   /* index of the first NaN/Inf in out; -1 if none */
    int64_t first_mismatch;    /* index of the first element whose bits differ; -1 if none */
} dz_conformance_diff;

/* Compares out[0..n) with ref[0..n). Pure, thread-safe. */
dz_conformance_diff dz_conformance_compare(const float *out, const float *ref, int64_t n);
/* Does a diff pass a limit? Never with a NaN/Inf; limit 0 (EXACT) needs
 * identical bits; otherwise nmse <= limit. */
bool dz_conformance_diff_passes(const dz_conformance_diff *d, double limit);

/* Checks the comparator on made-up data: identical outputs pass, a 1e-3
 * relative perturbation fails the F32 limit, a one-ulp change fails an exact
 * comparison, NaN and Inf fail every limit. DZ_ERR_INTERNAL naming the first
 * broken check. Thread-safe. */
dz_status dz_conformance_self_check(void);

#ifdef __cplusplus
}
#endif
#endif /* DIZUO_CONFORMANCE_H */
