/* The comparator of the conformance suite and its self-check.
 *
 * NMSE is accumulated in double so that the measure itself adds no error
 * worth speaking of next to the 1e-7 F32 limit. */
#include "dizuo/conformance.h"

#include <math.h>
#include <string.h>

dz_conformance_diff dz_conformance_compare(const float *out, const float *ref, int64_t n) {
    dz_conformance_diff d = {0.0, -1, -1};
    double err2 = 0.0, ref2 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(out[i]) && d.first_nonfinite < 0) d.first_nonfinite = i;
        if (memcmp(&out[i], &ref[i], sizeof(float)) != 0 && d.first_mismatch < 0)
            d.first_mismatch = i;
        double diff = (double)out[i] - (double)ref[i];
        err2 += diff * diff;
        ref2 += (double)ref[i] * (double)ref[i];
    }
    if (d.first_nonfinite >= 0 || !isfinite(err2))
        d.nmse = INFINITY;
    else if (ref2 > 0.0)
        d.nmse = err2 / ref2;
    else
        d.nmse = err2 == 0.0 ? 0.0 : INFINITY;
    return d;
}

bool dz_conformance_diff_passes(const dz_conformance_diff *d, double limit) {
    if (d->first_nonfinite >= 0 || !isfinite(d->nmse)) return false;
    if (limit == DZ_CONFORMANCE_LIMIT_EXACT) return d->first_mismatch < 0;
    return d->nmse <= limit;
}

/* ---- self-check ---- */

enum { SELF_N = 257 };

/* One check: compare out with ref, expect `want` at `limit`. */
static bool self_expect(const char *what, const float *out, const float *ref, double limit,
                        bool want, dz_status *st) {
    dz_conformance_diff d = dz_conformance_compare(out, ref, SELF_N);
    if (dz_conformance_diff_passes(&d, limit) == want) return true;
    *st = dz_fail(DZ_ERR_INTERNAL, "conformance comparator self-check: %s %s at limit %g "
                  "(nmse %g) but should %s", what, want ? "failed" : "passed", limit, d.nmse,
                  want ? "pass" : "fail");
    return false;
}

dz_status dz_conformance_self_check(void) {
    float ref[SELF_N], out[SELF_N];
    /* A deterministic, irregular signal with both signs. */
    for (int i = 0; i < SELF_N; i++) ref[i] = sinf(0.37f * (float)i + 0.1f) * (1.0f + 0.01f * (float)i);
    dz_status st = DZ_OK;

    memcpy(out, ref, sizeof ref);
    if (!self_expect("identical output", out, ref, DZ_CONFORMANCE_LIMIT_EXACT, true, &st) ||
        !self_expect("identical output", out, ref, DZ_CONFORMANCE_LIMIT_F32, true, &st))
        return st;

    for (int i = 0; i < SELF_N; i++) out[i] = ref[i] * (i % 2 ? 1.001f : 0.999f);
    if (!self_expect("output off by 1e-3", out, ref, DZ_CONFORMANCE_LIMIT_F32, false, &st) ||
        !self_expect("output off by 1e-3", out, ref, DZ_CONFORMANCE_LIMIT_QUANT, true, &st))
        return st;

    memcpy(out, ref, sizeof ref);
    out[SELF_N / 2] = nextafterf(ref[SELF_N / 2], INFINITY);
    if (!self_expect("one ulp off", out, ref, DZ_CONFORMANCE_LIMIT_EXACT, false, &st) ||
        !self_expect("one ulp off", out, ref, DZ_CONFORMANCE_LIMIT_F32, true, &st))
        return st;

    memcpy(out, ref, sizeof ref);
    out[SELF_N - 1] = NAN;
    if (!self_expect("a NaN", out, ref, DZ_CONFORMANCE_LIMIT_QUANT, false, &st)) return st;
    out[SELF_N - 1] = INFINITY;
    if (!self_expect("an Inf", out, ref, DZ_CONFORMANCE_LIMIT_QUANT, false, &st)) return st;

    /* A zero reference: only an all-zero output passes. */
    float zero[SELF_N] = {0};
    memcpy(out, zero, sizeof zero);
    if (!self_expect("zero vs zero", out, zero, DZ_CONFORMANCE_LIMIT_F32, true, &st)) return st;
    out[3] = 1e-20f;
    if (!self_expect("nonzero vs zero", out, zero, DZ_CONFORMANCE_LIMIT_QUANT, false, &st))
        return st;
    return DZ_OK;
}
