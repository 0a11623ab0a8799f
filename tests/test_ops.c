/* Every CPU reference op against a naive double-precision implementation
 * written here: odd shapes, strided and permuted operands, broadcasting,
 * single rows, GQA attention with explicit per-head loops, causal masks,
 * and results independent of the thread count. */
#include <string.h>

#include "backends/cpu/cpu.h"
#include "dizuo/tensor.h"
#include "dztest.h"

static dz_device *cpu;
static dz_sched *sched;
static dz_buffer *host_bufs[512];
static void *host_mems[512];
static int n_host;
static uint64_t rng = 42;

static double uniform(void) { /* [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

static float *random_values(int64_t n) {
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = (float)uniform();
    return v;
}

/* A leaf of `type` holding vals (row-major, ne0 fastest), in host memory. */
static dz_tensor *leaf(dz_ctx *ctx, dz_type type, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3,
                       const float *vals) {
    int64_t ne[4] = {ne0, ne1, ne2, ne3};
    dz_tensor *t = dz_new_tensor(ctx, type, 4, ne);
    size_t bytes = dz_nbytes(t), row = t->nb[1];
    char *mem = calloc(1, bytes + 1);
    for (int64_t r = 0; r < dz_nrows(t); r++) dz_quantize_row(type, vals + r * ne0, mem + r * row, ne0);
    host_mems[n_host] = mem;
    DZT_OK(dz_buffer_from_host(cpu, mem, bytes, &host_bufs[n_host]));
    DZT_OK(dz_tensor_bind(t, host_bufs[n_host++], 0));
    return t;
}

static dz_tensor *leaf_i32(dz_ctx *ctx, int64_t n, const int32_t *vals) {
    dz_tensor *t = dz_new_tensor_1d(ctx, DZ_TYPE_I32, n);
    int32_t *mem = malloc((size_t)n * sizeof *mem + 1);
    memcpy(mem, vals, (size_t)n * sizeof *mem);
    host_mems[n_host] = mem;
    DZT_OK(dz_buffer_from_host(cpu, mem, (size_t)n * sizeof *mem, &host_bufs[n_host]));
    DZT_OK(dz_tensor_bind(t, host_bufs[n_host++], 0));
    return t;
}

static void free_leaves(void) {
    for (int i = 0; i < n_host; i++) {
        dz_buffer_free(host_bufs[i]);
        free(host_mems[i]);
    }
    n_host = 0;
}

/* Element of a host tensor (F32, F16, BF16, I32) as double, through its strides. */
static double get(const dz_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    const char *p = (const char *)t->data + i0 * t->nb[0] + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
    uint16_t h;
    float f;
    int32_t i;
    switch (t->type) {
    case DZ_TYPE_F16: memcpy(&h, p, 2); return dz_fp16_to_fp32(h);
    case DZ_TYPE_BF16: memcpy(&h, p, 2); return dz_bf16_to_fp32(h);
    case DZ_TYPE_I32: memcpy(&i, p, 4); return i;
    default: memcpy(&f, p, 4); return f;
    }
}

/* Builds the graph of out, runs it with n_threads, returns its values (contiguous). */
static float *run(dz_ctx *ctx, dz_tensor *out, int n_threads) {
    DZT_OK(dz_ctx_status(ctx));
    dz_graph *g = dz_graph_build(ctx, out);
    DZT_ASSERT(g != NULL);
    if (!g) return calloc((size_t)dz_nelements(out) + 1, sizeof(float));
    DZT_OK(dz_device_set_threads(cpu, n_threads));
    DZT_OK(dz_sched_alloc(sched, g));
    DZT_OK(dz_sched_compute(sched, g));
    float *v = malloc((size_t)dz_nelements(out) * sizeof *v + 1);
    DZT_OK(dz_tensor_read(out, v, 0, (size_t)dz_nelements(out) * sizeof *v));
    return v;
}

/* Compares got (contiguous, out's shape) with want: |got - want| <= atol + rtol |want|. */
static void compare(const char *what, const float *got, const double *want, int64_t n, double atol, double rtol) {
    int bad = 0;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]);
        if (!(err <= atol + rtol * fabs(want[i]))) {
            if (bad++ < 3) fprintf(stderr, "  %s[%lld]: got %.9g, want %.9g\n", what, (long long)i, got[i], want[i]);
        }
        if (err > worst) worst = err;
    }
    DZT_CHECK(bad == 0, "%s: %d of %lld values off (worst %g)", what, bad, (long long)n, worst);
}

/* Runs out with 1 and 3 threads: results must be bitwise equal; returns the 1-thread result. */
static float *run_threads(dz_ctx *ctx, dz_tensor *out) {
    float *one = run(ctx, out, 1), *three = run(ctx, out, 3);
    DZT_CHECK(memcmp(one, three, (size_t)dz_nelements(out) * sizeof(float)) == 0, "'%s': 1 and 3 threads differ",
              dz_op_name(out->op));
    free(three);
    return one;
}

static void test_get_rows(void) {
    const dz_type types[] = {DZ_TYPE_F32, DZ_TYPE_F16, DZ_TYPE_BF16, DZ_TYPE_Q8_0, DZ_TYPE_Q4_0};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        dz_ctx *ctx = dz_ctx_create(16);
        const int64_t ne0 = 64, rows = 9;
        /* Multiples of 1/8 in [-4, 4): exact in every plain type. */
        float *vals = malloc(ne0 * rows * sizeof *vals);
        for (int64_t i = 0; i < ne0 * rows; i++) vals[i] = (float)((int)(uniform() * 32)) / 8.0f;
        const int32_t ids_v[] = {3, 0, 8, 3, 5, 1, 7};
        dz_tensor *table = leaf(ctx, types[k], ne0, rows, 1, 1, vals);
        dz_tensor *ids_all = leaf_i32(ctx, 7, ids_v);
        dz_tensor *ids_view = dz_view_1d(ctx, ids_all, 5, 2 * sizeof(int32_t)); /* 8, 3, 5, 1, 7 */
        dz_tensor *out = dz_get_rows(ctx, table, ids_view);
        float *got = run_threads(ctx, out);
        /* Reference: the values themselves (exact types) or the format's decoding. */
        double *want = malloc(ne0 * 5 * sizeof *want);
        for (int n = 0; n < 5; n++) {
            int id = ids_v[2 + n];
            float row[64];
            if (types[k] == DZ_TYPE_Q8_0 || types[k] == DZ_TYPE_Q4_0)
                dz_dequantize_row(types[k], (const char *)table->data + id * table->nb[1], row, ne0);
            for (int i = 0; i < ne0; i++)
                want[n * ne0 + i] = (types[k] == DZ_TYPE_Q8_0 || types[k] == DZ_TYPE_Q4_0) ? row[i] : vals[id * ne0 + i];
        }
        char what[32];
        snprintf(what, sizeof what, "get_rows %s", dz_type_name(types[k]));
        compare(what, got, want, ne0 * 5, 0, 0);
        free(got);
        free(want);
        free(vals);
        dz_ctx_destroy(ctx);
        free_leaves();
    }
}

/* a (7, 5, 3, 2) op b for several broadcast shapes; a also permuted. */
static void test_binary(void) {
    const int64_t b_shapes[][4] = {{7, 5, 3, 2}, {7, 1, 3, 1}, {1, 5, 1, 2}, {1, 1, 1, 1}, {7, 5, 1, 1}};
    for (int op = 0; op < 2; op++)
        for (size_t s = 0; s < sizeof b_shapes / sizeof b_shapes[0]; s++)
            for (int permuted = 0; permuted < 2; permuted++) {
                dz_ctx *ctx = dz_ctx_create(16);
                const int64_t *bs = b_shapes[s];
                float *av = random_values(7 * 5 * 3 * 2), *bv = random_values(bs[0] * bs[1] * bs[2] * bs[3]);
                dz_tensor *a;
                if (permuted) /* stored as (5, 7, 3, 2), seen as (7, 5, 3, 2) */
                    a = dz_transpose(ctx, leaf(ctx, DZ_TYPE_F32, 5, 7, 3, 2, av));
                else
                    a = leaf(ctx, DZ_TYPE_F32, 7, 5, 3, 2, av);
                dz_tensor *b = leaf(ctx, DZ_TYPE_F32, bs[0], bs[1], bs[2], bs[3], bv);
                dz_tensor *out = op ? dz_mul(ctx, a, b) : dz_add(ctx, a, b);
                float *got = run_threads(ctx, out);
                double want[210];
                int k = 0;
                for (int i3 = 0; i3 < 2; i3++)
                    for (int i2 = 0; i2 < 3; i2++)
                        for (int i1 = 0; i1 < 5; i1++)
                            for (int i0 = 0; i0 < 7; i0++, k++) {
                                double x = get(a, i0, i1, i2, i3);
                                double y = get(b, i0 % bs[0], i1 % bs[1], i2 % bs[2], i3 % bs[3]);
                                want[k] = op ? x * y : x + y;
                            }
                compare(op ? "mul" : "add", got, want, 210, 1e-7, 1e-6);
                free(got);
                free(av);
                free(bv);
                dz_ctx_destroy(ctx);
                free_leaves();
            }
}

static void test_unary(void) {
    dz_ctx *ctx = dz_ctx_create(32);
    float *gv = random_values(13 * 4), *uv = random_values(13 * 4);
    for (int i = 0; i < 13 * 4; i++) gv[i] *= 8; /* silu over [-8, 8] */
    dz_tensor *g = dz_transpose(ctx, leaf(ctx, DZ_TYPE_F32, 4, 13, 1, 1, gv)); /* (13, 4), strided */
    dz_tensor *u = leaf(ctx, DZ_TYPE_F32, 13, 4, 1, 1, uv);
    double want_scale[52], want_silu[52], want_swiglu[52];
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < 13; i++) {
            double x = get(g, i, r, 0, 0), s = x / (1 + exp(-x));
            want_scale[r * 13 + i] = x * -0.375;
            want_silu[r * 13 + i] = s;
            want_swiglu[r * 13 + i] = s * get(u, i, r, 0, 0);
        }
    float *got = run_threads(ctx, dz_scale(ctx, g, -0.375f));
    compare("scale", got, want_scale, 52, 0, 1e-7);
    free(got);
    got = run_threads(ctx, dz_silu(ctx, g));
    compare("silu", got, want_silu, 52, 1e-7, 1e-6);
    free(got);
    got = run_threads(ctx, dz_swiglu(ctx, g, u));
    compare("swiglu", got, want_swiglu, 52, 1e-7, 1e-6);
    free(got);
    free(gv);
    free(uv);
    dz_ctx_destroy(ctx);
    free_leaves();
}

static void test_rms_norm(void) {
    const int64_t shapes[][2] = {{13, 5}, {1, 3}, {64, 1}};
    for (int s = 0; s < 3; s++)
        for (int permuted = 0; permuted < 2; permuted++) {
            dz_ctx *ctx = dz_ctx_create(16);
            int64_t n = shapes[s][0], rows = shapes[s][1];
            float *v = random_values(n * rows);
            dz_tensor *x = permuted ? dz_transpose(ctx, leaf(ctx, DZ_TYPE_F32, rows, n, 1, 1, v))
                                    : leaf(ctx, DZ_TYPE_F32, n, rows, 1, 1, v);
            float *got = run_threads(ctx, dz_rms_norm(ctx, x, 1e-5f));
            double *want = malloc(n * rows * sizeof *want);
            for (int64_t r = 0; r < rows; r++) {
                double ss = 0;
                for (int64_t i = 0; i < n; i++) ss += get(x, i, r, 0, 0) * get(x, i, r, 0, 0);
                for (int64_t i = 0; i < n; i++) want[r * n + i] = get(x, i, r, 0, 0) / sqrt(ss / n + 1e-5);
            }
            compare("rms_norm", got, want, n * rows, 1e-6, 1e-5);
            free(got);
            free(want);
            free(v);
            dz_ctx_destroy(ctx);
            free_leaves();
        }
}

/* X rounded as llama.cpp's x86 CPU matmul rounds activations for Q8_0 dots:
 * per block of 32, d = fp16(amax / 127), q = round-half-even(x * 127 / amax). */
static void round_like_q8_0_activations(float *x, int64_t k) {
    for (int64_t b = 0; b < k; b += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b + j]));
        float d = dz_fp16_to_fp32(dz_fp32_to_fp16(amax / 127.0f)), id = amax ? 127.0f / amax : 0.0f;
        for (int j = 0; j < 32; j++) x[b + j] = (float)rint(x[b + j] * id) * d;
    }
}

/* W (K, N, b2, 1) x X (K, M, B2, 1); X optionally permuted. Reference: the
 * weights as stored (decoded), X rounded to the weights' dot type as the
 * format prescribes, then a double dot; and, looser, X unrounded. For the
 * Q8_0 dot, X holds exact rounding ties (amax 127, values k + 0.5). */
static void check_mul_mat(dz_type wt, int64_t K, int64_t N, int64_t M, int64_t b2, int64_t B2, bool permute_x) {
    dz_ctx *ctx = dz_ctx_create(16);
    float *wv = random_values(K * N * b2), *xv = random_values(K * M * B2);
    dz_type dot_t = wt == DZ_TYPE_Q4_0 ? DZ_TYPE_Q8_0 : wt;
    if (dot_t == DZ_TYPE_Q8_0)
        for (int64_t i = 0; i < K * M * B2; i++)
            xv[i] = i % 32 == 0 ? 127.0f : i % 3 == 0 ? (float)(int)(xv[i] * 100) + 0.5f : xv[i] * 100;
    dz_tensor *w = leaf(ctx, wt, K, N, b2, 1, wv);
    dz_tensor *x = permute_x ? dz_permute(ctx, leaf(ctx, DZ_TYPE_F32, K, B2, M, 1, xv), 0, 2, 1, 3)
                             : leaf(ctx, DZ_TYPE_F32, K, M, B2, 1, xv);
    float *got = run_threads(ctx, dz_mul_mat(ctx, w, x));
    double *want = malloc(N * M * B2 * sizeof *want), *loose = malloc(N * M * B2 * sizeof *loose);
    float *wrow = malloc(K * sizeof *wrow), *xrow = malloc(K * sizeof *xrow), *xq = malloc(K * sizeof *xq);
    char *tmp = malloc(K * 4);
    for (int64_t i2 = 0; i2 < B2; i2++)
        for (int64_t m = 0; m < M; m++) {
            for (int64_t k = 0; k < K; k++) xrow[k] = (float)get(x, k, m, i2, 0);
            if (dot_t == DZ_TYPE_Q8_0) {
                memcpy(xq, xrow, K * sizeof *xq);
                round_like_q8_0_activations(xq, K);
            } else {
                dz_quantize_row(dot_t, xrow, tmp, K);
                dz_dequantize_row(dot_t, tmp, xq, K);
            }
            for (int64_t n = 0; n < N; n++) {
                dz_dequantize_row(wt, (const char *)w->data + n * w->nb[1] + (i2 / (B2 / b2)) * w->nb[2], wrow, K);
                double s = 0, s_loose = 0;
                for (int64_t k = 0; k < K; k++) {
                    s += (double)wrow[k] * xq[k];
                    s_loose += (double)wrow[k] * xrow[k];
                }
                want[(i2 * M + m) * N + n] = s;
                loose[(i2 * M + m) * N + n] = s_loose;
            }
        }
    char what[64];
    snprintf(what, sizeof what, "mul_mat %s K%lld N%lld M%lld%s", dz_type_name(wt), (long long)K, (long long)N,
             (long long)M, permute_x ? " permuted" : "");
    /* Quantized dots: X is ~100x larger, so float rounding of the block sums
     * reaches ~1e-4 absolute while still being exact to ~1e-7 relative. */
    compare(what, got, want, N * M * B2, dot_t == DZ_TYPE_Q8_0 ? 2e-4 : 1e-5, 1e-5);
    double loose_tol = wt == DZ_TYPE_F32 ? 1e-5 : wt == DZ_TYPE_F16 ? 0.01 : wt == DZ_TYPE_BF16 ? 0.08 : 8.0;
    compare(what, got, loose, N * M * B2, loose_tol, 0); /* Q8_0 dots: X is ~100x larger */
    free(got);
    free(want);
    free(loose);
    free(wrow);
    free(xrow);
    free(xq);
    free(tmp);
    free(wv);
    free(xv);
    dz_ctx_destroy(ctx);
    free_leaves();
}

static void test_mul_mat(void) {
    const dz_type types[] = {DZ_TYPE_F32, DZ_TYPE_F16, DZ_TYPE_BF16, DZ_TYPE_Q8_0, DZ_TYPE_Q4_0};
    for (size_t t = 0; t < 5; t++) {
        check_mul_mat(types[t], 96, 7, 5, 2, 4, false);
        check_mul_mat(types[t], 64, 1, 3, 1, 1, false);
        check_mul_mat(types[t], 32, 5, 1, 1, 1, false);
        check_mul_mat(types[t], 64, 3, 6, 1, 2, true);
    }
}

static void check_rope(int mode, int64_t hd, int n_rot) {
    dz_ctx *ctx = dz_ctx_create(16);
    const int64_t H = 3, T = 5;
    const int32_t pos_v[5] = {0, 3, 17, 100, 5};
    float *v = random_values(hd * H * T);
    /* x stored (hd, T, H) and permuted to (hd, H, T): strided rows. */
    dz_tensor *x = dz_permute(ctx, leaf(ctx, DZ_TYPE_F32, hd, T, H, 1, v), 0, 2, 1, 3);
    dz_tensor *pos = leaf_i32(ctx, T, pos_v);
    const double base = 10000.0, fscale = 0.5;
    float *got = run_threads(ctx, dz_rope(ctx, x, pos, n_rot, mode, (float)base, (float)fscale));
    double *want = malloc(hd * H * T * sizeof *want);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            double *o = want + (t * H + h) * hd;
            for (int64_t i = 0; i < hd; i++) o[i] = get(x, i, h, t, 0);
            for (int p = 0; p < n_rot / 2; p++) {
                double theta = pos_v[t] * fscale * pow(base, -2.0 * p / n_rot);
                int64_t j0 = mode == DZ_ROPE_NEOX ? p : 2 * p, j1 = mode == DZ_ROPE_NEOX ? p + n_rot / 2 : 2 * p + 1;
                double x0 = get(x, j0, h, t, 0), x1 = get(x, j1, h, t, 0);
                o[j0] = x0 * cos(theta) - x1 * sin(theta);
                o[j1] = x0 * sin(theta) + x1 * cos(theta);
            }
        }
    compare(mode == DZ_ROPE_NEOX ? "rope neox" : "rope normal", got, want, hd * H * T, 2e-5, 1e-5);
    free(got);
    free(want);
    free(v);
    dz_ctx_destroy(ctx);
    free_leaves();
}

static void test_rope(void) {
    check_rope(DZ_ROPE_NORMAL, 10, 10);
    check_rope(DZ_ROPE_NORMAL, 10, 6);
    check_rope(DZ_ROPE_NEOX, 12, 12);
    check_rope(DZ_ROPE_NEOX, 12, 8);
}

/* Softmax of (n, rows, c): scale, optional mask, optional causal. */
static void check_softmax(bool use_mask, bool causal, int32_t n_past, bool hide_row) {
    dz_ctx *ctx = dz_ctx_create(16);
    const int64_t n = 11, rows = 4, c = 3;
    float *v = random_values(n * rows * c), *mv = random_values(n * rows);
    for (int i = 0; i < n * rows; i++) mv[i] = mv[i] < -0.6f ? -INFINITY : mv[i];
    if (hide_row)
        for (int i = 0; i < n; i++) mv[2 * n + i] = -INFINITY;
    dz_tensor *a = leaf(ctx, DZ_TYPE_F32, n, rows, c, 1, v);
    dz_tensor *mask = use_mask ? leaf(ctx, DZ_TYPE_F32, n, rows, 1, 1, mv) : NULL;
    float *got = run_threads(ctx, dz_softmax(ctx, a, mask, 0.7f, causal, n_past));
    double want[132];
    for (int64_t k = 0; k < c; k++)
        for (int64_t r = 0; r < rows; r++) {
            double w[11], max = -INFINITY, sum = 0;
            for (int64_t i = 0; i < n; i++) {
                w[i] = 0.7 * v[(k * rows + r) * n + i] + (use_mask ? mv[r * n + i] : 0);
                if (causal && i > n_past + r) w[i] = -INFINITY;
                max = fmax(max, w[i]);
            }
            for (int64_t i = 0; i < n; i++) sum += max == -INFINITY ? 0 : exp(w[i] - max);
            for (int64_t i = 0; i < n; i++) want[(k * rows + r) * n + i] = sum > 0 ? exp(w[i] - max) / sum : 0;
        }
    compare("softmax", got, want, n * rows * c, 1e-7, 1e-6);
    free(got);
    free(v);
    free(mv);
    dz_ctx_destroy(ctx);
    free_leaves();
}

static void test_softmax(void) {
    check_softmax(false, false, 0, false);
    check_softmax(true, false, 0, false);
    check_softmax(false, true, 5, false);
    check_softmax(true, true, 2, false);
    check_softmax(true, false, 0, true); /* a row with every column hidden: zeros */
}

/* GQA attention against explicit per-head loops. K and V are views of the
 * first S positions of larger caches (hd, Hkv, S_cache), like a KV cache. */
static void check_attention(dz_type kv_type, bool use_mask, bool causal, int32_t n_past, int64_t T) {
    dz_ctx *ctx = dz_ctx_create(32);
    const int64_t hd = 8, H = 4, Hkv = 2, S = n_past + T, S_cache = S + 3;
    float *qv = random_values(hd * H * T), *kv = random_values(hd * Hkv * S_cache), *vv = random_values(hd * Hkv * S_cache);
    float *mv = random_values(S * T);
    for (int i = 0; i < S * T; i++) mv[i] = mv[i] < -0.7f ? -INFINITY : mv[i];
    if (T > 1)
        for (int j = 0; j < S; j++) mv[1 * S + j] = -INFINITY; /* row t = 1 sees nothing */
    dz_tensor *q = leaf(ctx, DZ_TYPE_F32, hd, H, T, 1, qv);
    dz_tensor *kc = leaf(ctx, kv_type, hd, Hkv, S_cache, 1, kv), *vc = leaf(ctx, kv_type, hd, Hkv, S_cache, 1, vv);
    dz_tensor *k = dz_view_3d(ctx, kc, hd, Hkv, S, kc->nb[1], kc->nb[2], 0);
    dz_tensor *v = dz_view_3d(ctx, vc, hd, Hkv, S, vc->nb[1], vc->nb[2], 0);
    dz_tensor *mask = use_mask ? leaf(ctx, DZ_TYPE_F32, S, T, 1, 1, mv) : NULL;
    const double scale = 1.0 / sqrt((double)hd);
    float *got = run_threads(ctx, dz_attention(ctx, q, k, v, mask, (float)scale, causal, n_past));
    double *want = calloc(hd * H * T, sizeof *want);
    for (int64_t h = 0; h < H; h++) {
        int64_t g = h / (H / Hkv);
        for (int64_t t = 0; t < T; t++) {
            double w[64], max = -INFINITY, sum = 0;
            for (int64_t j = 0; j < S; j++) {
                double dot = 0;
                for (int64_t d = 0; d < hd; d++) dot += get(q, d, h, t, 0) * get(k, d, g, j, 0);
                w[j] = dot * scale + (use_mask ? mv[t * S + j] : 0);
                if (causal && j > n_past + t) w[j] = -INFINITY;
                max = fmax(max, w[j]);
            }
            if (max == -INFINITY) continue; /* nothing visible: zeros */
            for (int64_t j = 0; j < S; j++) sum += exp(w[j] - max);
            for (int64_t j = 0; j < S; j++)
                for (int64_t d = 0; d < hd; d++) want[(t * H + h) * hd + d] += exp(w[j] - max) / sum * get(v, d, g, j, 0);
        }
    }
    char what[64];
    snprintf(what, sizeof what, "attention %s T%lld mask%d causal%d", dz_type_name(kv_type), (long long)T, use_mask, causal);
    /* F16 K/V: q and the probabilities are rounded to fp16 as llama.cpp does. */
    compare(what, got, want, hd * H * T, kv_type == DZ_TYPE_F16 ? 2e-3 : 1e-6, kv_type == DZ_TYPE_F16 ? 2e-3 : 1e-5);
    int nans = 0;
    for (int64_t i = 0; i < hd * H * T; i++) nans += isnan(got[i]);
    DZT_EQ_INT(nans, 0);
    free(got);
    free(want);
    free(qv);
    free(kv);
    free(vv);
    free(mv);
    dz_ctx_destroy(ctx);
    free_leaves();
}

static void test_attention(void) {
    for (int f16 = 0; f16 < 2; f16++) {
        dz_type t = f16 ? DZ_TYPE_F16 : DZ_TYPE_F32;
        check_attention(t, false, true, 0, 5);  /* prefill */
        check_attention(t, false, true, 4, 3);  /* chunk after 4 cached positions */
        check_attention(t, false, true, 6, 1);  /* decode one token */
        check_attention(t, true, false, 2, 3);  /* explicit mask, with a fully hidden row */
        check_attention(t, true, true, 1, 4);
    }
}

/* CPY converts into a strided destination (a transposed view into a larger
 * tensor) and leaves the rest of the destination untouched. */
static void check_cpy(dz_type from, dz_type to) {
    dz_ctx *ctx = dz_ctx_create(16);
    float *sv = random_values(6 * 4), *dv = random_values(8 * 6);
    dz_tensor *src = dz_transpose(ctx, leaf(ctx, from, 6, 4, 1, 1, sv)); /* (4, 6), strided */
    dz_tensor *dst_full = leaf(ctx, to, 8, 6, 1, 1, dv);
    dz_tensor *dst = dz_view_2d(ctx, dst_full, 4, 6, dst_full->nb[1], 2 * dst_full->nb[0]); /* columns 2..5 */
    dz_tensor *node = dz_cpy(ctx, src, dst);
    dz_graph *g = dz_graph_build(ctx, node);
    DZT_OK(dz_sched_alloc(sched, g));
    DZT_OK(dz_sched_compute(sched, g));
    int bad = 0;
    for (int r = 0; r < 6; r++)
        for (int i = 0; i < 8; i++) {
            double got = get(dst_full, i, r, 0, 0), want;
            if (i >= 2 && i < 6) {
                double s = get(src, i - 2, r, 0, 0);
                want = to == DZ_TYPE_F16 ? dz_fp16_to_fp32(dz_fp32_to_fp16((float)s))
                       : to == DZ_TYPE_BF16 ? dz_bf16_to_fp32(dz_fp32_to_bf16((float)s)) : s;
            } else {
                want = to == DZ_TYPE_F16 ? dz_fp16_to_fp32(dz_fp32_to_fp16(dv[r * 8 + i]))
                       : to == DZ_TYPE_BF16 ? dz_bf16_to_fp32(dz_fp32_to_bf16(dv[r * 8 + i])) : dv[r * 8 + i];
            }
            bad += got != want;
        }
    DZT_CHECK(bad == 0, "cpy %s -> %s: %d elements wrong", dz_type_name(from), dz_type_name(to), bad);
    free(sv);
    free(dv);
    dz_ctx_destroy(ctx);
    free_leaves();
}

static void test_cpy(void) {
    check_cpy(DZ_TYPE_F32, DZ_TYPE_F32);
    check_cpy(DZ_TYPE_F32, DZ_TYPE_F16);
    check_cpy(DZ_TYPE_F32, DZ_TYPE_BF16);
    check_cpy(DZ_TYPE_F16, DZ_TYPE_F32);
    check_cpy(DZ_TYPE_BF16, DZ_TYPE_F32);
    /* Different row lengths: (6, 4) into (8, 3) element by element. */
    dz_ctx *ctx = dz_ctx_create(8);
    float *sv = random_values(24), zeros[24] = {0};
    dz_tensor *src = leaf(ctx, DZ_TYPE_F32, 6, 4, 1, 1, sv), *dst = leaf(ctx, DZ_TYPE_F32, 8, 3, 1, 1, zeros);
    dz_graph *g = dz_graph_build(ctx, dz_cpy(ctx, src, dst));
    DZT_OK(dz_sched_alloc(sched, g));
    DZT_OK(dz_sched_compute(sched, g));
    DZT_CHECK(memcmp(dst->data, sv, sizeof zeros) == 0, "cpy with different row lengths");
    free(sv);
    dz_ctx_destroy(ctx);
    free_leaves();
}

/* dz_cpu_compute_node: the harness's entry point, with threads, and refusals. */
static void test_compute_node(void) {
    dz_ctx *ctx = dz_ctx_create(16);
    float *av = random_values(40), *bv = random_values(40);
    dz_tensor *a = leaf(ctx, DZ_TYPE_F32, 8, 5, 1, 1, av), *b = leaf(ctx, DZ_TYPE_F32, 8, 5, 1, 1, bv);
    dz_tensor *sum = dz_add(ctx, a, b);
    float out[40];
    sum->data = out;
    DZT_ASSERT(dz_cpu_supports_node(sum));
    DZT_OK(dz_cpu_compute_node(sum, 4));
    int bad = 0;
    for (int i = 0; i < 40; i++) bad += out[i] != av[i] + bv[i];
    DZT_EQ_INT(bad, 0);
    /* IQ2_XXS weights have no kernel: refused, and computing fails cleanly. */
    dz_tensor *w = dz_new_tensor_2d(ctx, DZ_TYPE_IQ2_XXS, 256, 2);
    dz_tensor *x = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 256, 1);
    dz_tensor *mm = dz_mul_mat(ctx, w, x);
    DZT_ASSERT(mm && !dz_cpu_supports_node(mm));
    DZT_FAILS(dz_cpu_compute_node(mm, 1), DZ_ERR_UNSUPPORTED);
    /* Out-of-range ids are an argument error, not a crash. */
    dz_tensor *table = leaf(ctx, DZ_TYPE_F32, 8, 5, 1, 1, av);
    dz_tensor *ids = leaf_i32(ctx, 2, (const int32_t[]){1, 5});
    dz_tensor *rows = dz_get_rows(ctx, table, ids);
    rows->data = out;
    DZT_FAILS(dz_cpu_compute_node(rows, 2), DZ_ERR_ARG);
    free(av);
    free(bv);
    dz_ctx_destroy(ctx);
    free_leaves();
}

int main(void) {
    DZT_OK(dz_device_open("cpu", &cpu));
    if (!cpu) return dzt_done();
    DZT_OK(dz_sched_create(&cpu, 1, &sched));
    test_get_rows();
    test_binary();
    test_unary();
    test_rms_norm();
    test_mul_mat();
    test_rope();
    test_softmax();
    test_attention();
    test_cpy();
    test_compute_node();
    dz_sched_destroy(sched);
    dz_device_close(cpu);
    return dzt_done();
}
