/* The scale searches of the K-quant quantizers, and the Q8_K activation
 * quantizer. The algorithms are ggml's (ggml-quants.c: make_qx_quants,
 * make_q3_quants, make_qkx2_quants, quantize_row_q8_K_ref), written from
 * their description so that dizuo's files match llama-quantize's; the float
 * operations are kept in ggml's order, which decides ties between scales. */
#include <string.h>

#include "tensor/convert.h"
#include "tensor/quant_impl.h"

/* Weight of element x in the fit, by rmse_type (ggml's choices). */
static float fit_weight(int rmse_type, float x) {
    switch (rmse_type) {
    case 1: return x * x;
    case 2: return 1.0f;
    case 3: return fabsf(x);
    default: return sqrtf(fabsf(x));
    }
}

/* max: the signed value of largest magnitude (first one on ties). */
static float signed_max(int n, const float *x, float *amax_out) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

float dz_make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type) {
    float amax;
    const float max = signed_max(n, x, &amax);
    if (!(amax >= DZ_GROUP_MAX_EPS)) { /* all zero (or NaN) */
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    if (rmse_type == 0) {
        for (int i = 0; i < n; i++)
            L[i] = (int8_t)(nmax + dz_clamp_int(dz_nearest_int(iscale * x[i]), -nmax, nmax - 1));
        return 1 / iscale;
    }
    int return_early = rmse_type < 0;
    if (return_early) rmse_type = -rmse_type;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = dz_clamp_int(dz_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = fit_weight(rmse_type, x[i]);
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    if (return_early) return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = dz_clamp_int(dz_nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = fit_weight(rmse_type, x[i]);
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + dz_clamp_int(dz_nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

float dz_make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    const float max = signed_max(n, x, &amax);
    if (!(amax >= DZ_GROUP_MAX_EPS)) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = dz_clamp_int(dz_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = dz_clamp_int(dz_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0 ? sumlx / suml2 : 0.0f;
}

float dz_make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                          float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep, int use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (!(max > min)) { /* constant block (or NaN) */
        memset(L, 0, (size_t)n);
        *the_min = max == min ? -min : 0.0f;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_mad = 0;
    for (int i = 0; i < n; i++) {
        int l = dz_clamp_int(dz_nearest_int(iscale * (x[i] - min)), 0, nmax);
        L[i] = (uint8_t)l;
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_mad += weights[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = dz_clamp_int(dz_nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float mad = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                mad += weights[i] * diff;
            }
            if (mad < best_mad) {
                memcpy(L, Laux, (size_t)n);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* ---- Q8_K activations ---- */

void dz_quantize_row_q8_K(const float *x, dz_block_q8_K *y, int64_t n) {
    for (int64_t b = 0; b < n / DZ_QK_K; b++, x += DZ_QK_K) {
        float amax;
        const float max = signed_max(DZ_QK_K, x, &amax);
        if (!(amax > 0)) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < DZ_QK_K; j++)
            y[b].qs[j] = (int8_t)dz_clamp_int(dz_nearest_int(iscale * x[j]), -128, 127);
        for (int g = 0; g < DZ_QK_K / 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += y[b].qs[16 * g + j];
            y[b].bsums[g] = (int16_t)sum;
        }
        y[b].d = 1 / iscale;
    }
}
