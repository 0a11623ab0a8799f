/* Internal to the quantizers (src/tensor/quant_*.c): rounding helpers and the
 * scale searches of ggml's reference K-quant quantizers. */
#ifndef DZ_TENSOR_QUANT_IMPL_H
#define DZ_TENSOR_QUANT_IMPL_H

#include <math.h>
#include <stdint.h>

/* Blocks whose largest magnitude is below this are quantized as zeros. */
#define DZ_GROUP_MAX_EPS 1e-15f

/* v rounded to the nearest integer, halves to even (ggml's nearest_int), for
 * |v| <= 4194303; larger magnitudes saturate there and NaN gives 0, so that
 * garbage input stays defined behaviour. nearbyintf rather than ggml's
 * "+ 1.5 * 2^23" trick: a compiler may fuse that addition with a preceding
 * multiplication into one fma, which rounds differently. */
static inline int dz_nearest_int(float v) {
    if (!(fabsf(v) <= 4194303.0f)) return v != v ? 0 : v > 0 ? 4194303 : -4194303;
    return (int)nearbyintf(v);
}

static inline int dz_clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Symmetric levels for n values: L[i] in 0..2*nmax-1 (level - nmax is the
 * signed quant) and returns the scale. rmse_type 1 weighs errors by x^2 and
 * tries 18 scales around nmax/max, keeping the best weighted least-squares
 * fit (ggml's make_qx_quants; qw NULL). */
float dz_make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type);

/* Q3_K's variant: L[i] in 0..2*nmax-1, with up to 5 rounds of moving single
 * levels when that improves the x^2-weighted fit (ggml's make_q3_quants,
 * do_rmse). */
float dz_make_q3_quants(int n, int nmax, const float *x, int8_t *L);

/* Asymmetric levels L[i] in 0..nmax with x ~ scale * L - *the_min: starts
 * from the min/max fit, then tries nstep+1 scales (nmax + rmin + rdelta * is)
 * / (max - min), solving weighted least squares for scale and min each time
 * and keeping the smallest weighted error (absolute if use_mad, else squared)
 * (ggml's make_qkx2_quants). Laux: n bytes of scratch. */
float dz_make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                          float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep, int use_mad);

#endif
