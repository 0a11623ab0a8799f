/* The fast path's elementwise, normalization, rope, softmax and copy ops:
 * rows split across threads, each row through a vector kernel of the
 * table. A planner takes a node when its rows are runs of adjacent floats
 * (nb[0] = 4), and leaves the rest (strided views, type conversions,
 * GET_ROWS) to the reference kernels.
 *
 * Where the reference's result is exact (ADD, MUL, SCALE, copies, ROPE's
 * angles and rotations, RMS_NORM's scale), the result here is the same bits;
 * exp-based ops (SILU, SWIGLU, SOFTMAX) use a vector exp within an ulp or
 * two of expf. */
#include <math.h>
#include <string.h>

#include "backends/cpu/fast/fast.h"

static bool rows_adjacent(const dz_tensor *t) { return t && t->type == DZ_TYPE_F32 && t->nb[0] == sizeof(float); }

/* Row r of t's rows (ne1 * ne2 * ne3 of them) as a pointer. */
static float *row_at(const dz_tensor *t, int64_t i1, int64_t i2, int64_t i3) {
    return (float *)dz_cpu_at(t, 0, i1, i2, i3);
}

static void coords(const dz_tensor *t, int64_t r, int64_t *i1, int64_t *i2, int64_t *i3) {
    *i1 = r % t->ne[1];
    *i2 = r / t->ne[1] % t->ne[2];
    *i3 = r / (t->ne[1] * t->ne[2]);
}

/* ---- ADD, MUL (b repeated over rows), SCALE, SILU, SWIGLU, RMS_NORM ---- */

/* One row (decode): elementwise ops split the row itself, in pieces of
 * whole cache lines. */
static void run_one_row(dz_fast_task *t, int ith, int nth) {
    const dz_tensor *out = t->node, *a = out->src[0], *b = out->src[1];
    const dz_fast_kernels *k = t->k;
    const int64_t lines = (out->ne[0] + 15) / 16;
    int64_t lo, hi;
    dz_cpu_split(lines, ith, nth, &lo, &hi);
    lo *= 16;
    hi = hi * 16 < out->ne[0] ? hi * 16 : out->ne[0];
    if (lo >= hi) return;
    float *dst = row_at(out, 0, 0, 0) + lo;
    const float *x = row_at(a, 0, 0, 0) + lo;
    switch (out->op) {
    case DZ_OP_ADD: k->add(x, row_at(b, 0, 0, 0) + lo, dst, hi - lo); break;
    case DZ_OP_MUL: k->mul(x, row_at(b, 0, 0, 0) + lo, dst, hi - lo); break;
    case DZ_OP_SCALE: k->scale(x, out->params.f[0], dst, hi - lo); break;
    case DZ_OP_SILU: k->silu(x, dst, hi - lo); break;
    case DZ_OP_SWIGLU: k->swiglu(x, row_at(b, 0, 0, 0) + lo, dst, hi - lo); break;
    default: break; /* not planned here */
    }
}

static void run_rows(dz_fast_task *t, int ith, int nth) {
    const dz_tensor *out = t->node, *a = out->src[0], *b = out->src[1];
    const dz_fast_kernels *k = t->k;
    const int64_t n = out->ne[0];
    int64_t lo, hi, i1, i2, i3;
    if (dz_nrows(out) == 1 && out->op != DZ_OP_RMS_NORM && n >= 256) {
        run_one_row(t, ith, nth);
        return;
    }
    dz_cpu_split(dz_nrows(out), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        coords(out, r, &i1, &i2, &i3);
        float *dst = row_at(out, i1, i2, i3);
        const float *x = row_at(a, i1, i2, i3);
        switch (out->op) {
        case DZ_OP_ADD: k->add(x, row_at(b, i1 % b->ne[1], i2 % b->ne[2], i3 % b->ne[3]), dst, n); break;
        case DZ_OP_MUL: k->mul(x, row_at(b, i1 % b->ne[1], i2 % b->ne[2], i3 % b->ne[3]), dst, n); break;
        case DZ_OP_SCALE: k->scale(x, out->params.f[0], dst, n); break;
        case DZ_OP_SILU: k->silu(x, dst, n); break;
        case DZ_OP_SWIGLU: k->swiglu(x, row_at(b, i1, i2, i3), dst, n); break;
        case DZ_OP_RMS_NORM: {
            /* As the reference: mean in double, then float. */
            const float mean = (float)(k->sum_squares(x, n) / (double)n);
            k->scale(x, 1.0f / sqrtf(mean + out->params.f[0]), dst, n);
            break;
        }
        default:
            break; /* not planned here */
        }
    }
}

/* CPY F32 -> F32 with rows of one length: the destination's rows alongside
 * the source's. */
static void run_copy(dz_fast_task *t, int ith, int nth) {
    const dz_tensor *dst = t->node, *src = dst->src[0];
    int64_t lo, hi, i1, i2, i3, j1, j2, j3;
    dz_cpu_split(dz_nrows(src), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        coords(src, r, &i1, &i2, &i3);
        coords(dst, r, &j1, &j2, &j3);
        memcpy(row_at(dst, j1, j2, j3), row_at(src, i1, i2, i3), (size_t)src->ne[0] * sizeof(float));
    }
}

/* ---- ROPE: the reference's angles, computed once per position ---- */

static void run_rope(dz_fast_task *t, int ith, int nth) {
    const dz_tensor *out = t->node, *x = out->src[0], *positions = out->src[1];
    const int n_rot = out->params.i[0];
    const bool neox = out->params.i[1] == DZ_ROPE_NEOX;
    const float freq_base = out->params.f[2], freq_scale = out->params.f[3];
    const float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    float *cs = (float *)(t->per_thread + (size_t)ith * t->thread_bytes); /* cos, sin per pair */
    int64_t lo, hi, i1, i2, i3, cached = -1;
    dz_cpu_split(dz_nrows(out), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        coords(out, r, &i1, &i2, &i3);
        if (i2 != cached) { /* rows of one position are adjacent: heads are dim 1 */
            int32_t pos;
            memcpy(&pos, (const char *)positions->data + (size_t)i2 * positions->nb[0], sizeof pos);
            float theta = (float)pos;
            for (int p = 0; p < n_rot / 2; p++) {
                const float angle = freq_scale * theta;
                cs[2 * p] = cosf(angle);
                cs[2 * p + 1] = sinf(angle);
                theta *= theta_scale;
            }
            cached = i2;
        }
        const float *src = row_at(x, i1, i2, i3);
        float *dst = row_at(out, i1, i2, i3);
        for (int p = 0; p < n_rot / 2; p++) {
            const int j0 = neox ? p : 2 * p, j1 = neox ? p + n_rot / 2 : 2 * p + 1;
            const float x0 = src[j0], x1 = src[j1], c = cs[2 * p], s = cs[2 * p + 1];
            dst[j0] = x0 * c - x1 * s;
            dst[j1] = x0 * s + x1 * c;
        }
        if (dst != src) memcpy(dst + n_rot, src + n_rot, (size_t)(x->ne[0] - n_rot) * sizeof(float));
    }
}

/* ---- SOFTMAX ---- */

static void run_softmax(dz_fast_task *t, int ith, int nth) {
    const dz_tensor *out = t->node, *a = out->src[0], *mask = out->src[1];
    const dz_fast_kernels *k = t->k;
    const float scale = out->params.f[0];
    const bool causal = out->params.i[1] != 0;
    const int64_t n_past = out->params.i[2], n = a->ne[0];
    int64_t lo, hi, i1, i2, i3;
    dz_cpu_split(dz_nrows(out), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        coords(out, r, &i1, &i2, &i3);
        float *w = row_at(out, i1, i2, i3);
        k->scale(row_at(a, i1, i2, i3), scale, w, n);
        if (mask) k->add(w, row_at(mask, i1, 0, 0), w, n);
        int64_t visible = n;
        if (causal && n_past + i1 + 1 < n) {
            visible = n_past + i1 + 1;
            for (int64_t i = visible; i < n; i++) w[i] = -INFINITY;
        }
        const float max = k->max(w, visible);
        if (max == -INFINITY) { /* nothing visible: zeros, as the reference */
            memset(w, 0, (size_t)n * sizeof *w);
            continue;
        }
        const double sum = k->exp_sum(w, max, visible);
        for (int64_t i = visible; i < n; i++) w[i] = 0.0f;
        k->scale(w, (float)(1.0 / sum), w, visible);
    }
}

/* ---- planning ---- */

bool dz_fast_plan_op(dz_fast_task *t) {
    const dz_tensor *n = t->node, *a = n->src[0], *b = n->src[1];
    switch (n->op) {
    case DZ_OP_ADD:
    case DZ_OP_MUL:
        if (!rows_adjacent(a) || !rows_adjacent(b) || b->ne[0] != a->ne[0]) return false;
        t->fn = run_rows;
        return true;
    case DZ_OP_SWIGLU:
        if (!rows_adjacent(a) || !rows_adjacent(b)) return false;
        t->fn = run_rows;
        return true;
    case DZ_OP_SCALE:
    case DZ_OP_SILU:
    case DZ_OP_RMS_NORM:
        if (!rows_adjacent(a)) return false;
        t->fn = run_rows;
        return true;
    case DZ_OP_ROPE:
        if (!rows_adjacent(a)) return false;
        t->fn = run_rope;
        t->thread_bytes = (size_t)n->params.i[0] * sizeof(float);
        return true;
    case DZ_OP_SOFTMAX:
        if (!rows_adjacent(a) || (b && !rows_adjacent(b))) return false;
        t->fn = run_softmax;
        return true;
    case DZ_OP_CPY:
        if (!rows_adjacent(a) || !rows_adjacent(n) || a->ne[0] != n->ne[0]) return false;
        t->fn = run_copy;
        return true;
    default:
        return false; /* GET_ROWS: the reference's dequantizing copy */
    }
}
