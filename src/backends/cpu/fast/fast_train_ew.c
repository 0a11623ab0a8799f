/* The fast path of the exp-based elementwise training ops: GELU,
 * GELU_BACK, SWIGLU_BACK. Each row goes through in chunks: the argument of
 * the exponential is computed in float, exponentiated in place by the
 * table's vector exp (exp_sum), then combined. With u = sqrt(2/pi)
 * (x + 0.044715 x^3) and s = sigmoid(2u) = 1 / (1 + exp(-2u)):
 *   gelu(x) = 0.5 x (1 + tanh u) = x s
 *   gelu'(x) = s + 2 x s (1 - s) u'(x),  u' = sqrt(2/pi) (1 + 3 0.044715 x^2)
 * and for SWIGLU, s = sigmoid(g) = 1 / (1 + exp(-g)):
 *   d gate = dy up s (1 + g (1 - s)),  d up = dy g s.
 * exp(-2u) overflowing to infinity gives s = 0 (the limit), never NaN.
 * Rows must be runs of adjacent floats; other layouts run the reference. */
#include <string.h>

#include "backends/cpu/fast/fast_train.h"

enum { CHUNK = 256 }; /* floats per exp_sum call */

#define GELU_C 0.7978845608f /* sqrt(2 / pi) */
#define GELU_A 0.044715f

static const float *row_in(const dz_tensor *t, int64_t r) {
    return (const float *)dz_cpu_at(t, 0, r % t->ne[1], r / t->ne[1] % t->ne[2], r / (t->ne[1] * t->ne[2]));
}

/* GELU and GELU_BACK: rows of x (n, ...) [and dy] -> out (n, ...). */
static void run_gelu(dz_fast_task *t, int ith, int nth) {
    const dz_tensor *out = t->node, *x = out->src[0], *dy = out->src[1];
    const bool back = out->op == DZ_OP_GELU_BACK;
    const int64_t n = out->ne[0];
    float z[CHUNK];
    int64_t lo, hi;
    dz_cpu_split(dz_nrows(out), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *xr = row_in(x, r), *gr = back ? row_in(dy, r) : NULL;
        float *y = (float *)out->data + (size_t)(r * n);
        for (int64_t c0 = 0; c0 < n; c0 += CHUNK) {
            const int64_t len = n - c0 < CHUNK ? n - c0 : CHUNK;
            const float *xc = xr + c0;
            for (int64_t i = 0; i < len; i++) z[i] = -2.0f * GELU_C * (xc[i] + GELU_A * xc[i] * xc[i] * xc[i]);
            t->k->exp_sum(z, 0.0f, len);
            if (!back) {
                for (int64_t i = 0; i < len; i++) y[c0 + i] = xc[i] / (1.0f + z[i]);
                continue;
            }
            for (int64_t i = 0; i < len; i++) {
                const float s = 1.0f / (1.0f + z[i]), du = GELU_C * (1.0f + 3.0f * GELU_A * xc[i] * xc[i]);
                y[c0 + i] = gr[c0 + i] * (s + 2.0f * xc[i] * s * (1.0f - s) * du);
            }
        }
    }
}

/* SWIGLU_BACK: gate, up, dy (n, T) -> out (n, T, 2). */
static void run_swiglu_back(dz_fast_task *t, int ith, int nth) {
    const dz_tensor *out = t->node, *gate = out->src[0], *up = out->src[1], *dy = out->src[2];
    const int64_t n = gate->ne[0], T = gate->ne[1];
    float z[CHUNK];
    int64_t lo, hi;
    dz_cpu_split(T, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *g = row_in(gate, r), *u = row_in(up, r), *d = row_in(dy, r);
        float *dg = (float *)out->data + (size_t)(r * n), *du = (float *)out->data + (size_t)((T + r) * n);
        for (int64_t c0 = 0; c0 < n; c0 += CHUNK) {
            const int64_t len = n - c0 < CHUNK ? n - c0 : CHUNK;
            for (int64_t i = 0; i < len; i++) z[i] = -g[c0 + i];
            t->k->exp_sum(z, 0.0f, len);
            for (int64_t i = 0; i < len; i++) {
                const float gi = g[c0 + i], s = 1.0f / (1.0f + z[i]);
                dg[c0 + i] = d[c0 + i] * u[c0 + i] * s * (1.0f + gi * (1.0f - s));
                du[c0 + i] = d[c0 + i] * gi * s;
            }
        }
    }
}

static bool adjacent(const dz_tensor *t) { return !t || t->nb[0] == sizeof(float); }

bool dz_fast_plan_train_ew(dz_fast_task *t) {
    const dz_tensor *n = t->node;
    if (!adjacent(n->src[0]) || !adjacent(n->src[1]) || !adjacent(n->src[2])) return false;
    switch (n->op) {
    case DZ_OP_GELU:
    case DZ_OP_GELU_BACK: t->fn = run_gelu; return true;
    case DZ_OP_SWIGLU_BACK: t->fn = run_swiglu_back; return true;
    default: return false;
    }
}
