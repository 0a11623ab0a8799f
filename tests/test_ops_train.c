/* The GPT-2 and training ops (LAYER_NORM .. CROSS_ENTROPY_BACK) through the
 * public API on "cpu-ref" and "cpu", each against a reference written here
 * in double: LAYER_NORM and GELU against their formulas, SUM_COLS against a
 * plain sum, and every gradient against central finite differences of the
 * forward op(s) (L = sum of upstream * f(inputs), upstream random).
 * Operands include strided views (q, k, v as column views of one qkv
 * tensor; transposed and sliced matrices), GQA, repeated ids, F16 weights,
 * and the results must not depend on the thread count. A composed step
 * (layer_norm, matmuls, gelu, cross-entropy and all their gradients in one
 * graph) is checked against finite differences of its whole loss; bad
 * shapes and out-of-range ids/targets are refused. */
#include <math.h>
#include <string.h>

#include "dizuo/tensor.h"
#include "dztest.h"

static dz_device *dev;
static dz_sched *sched;
static dz_buffer *bufs[256];
static void *mems[256];
static int n_mem;
static uint64_t rng = 7;

static double uniform(void) { /* [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

static double *randoms(int64_t n, double amp) {
    double *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = amp * uniform();
    return v;
}

/* A contiguous leaf of type (F32 or F16) holding vals (rounded to float/half;
 * vals is updated to the stored values, so references see what the op sees). */
static dz_tensor *leaf(dz_ctx *ctx, dz_type type, int64_t ne0, int64_t ne1, int64_t ne2, double *vals) {
    int64_t ne[4] = {ne0, ne1, ne2, 1};
    dz_tensor *t = dz_new_tensor(ctx, type, 3, ne);
    const int64_t n = ne0 * ne1 * ne2;
    char *mem = calloc(1, dz_nbytes(t) + 1);
    for (int64_t i = 0; i < n; i++) {
        if (type == DZ_TYPE_F16) {
            uint16_t h = dz_fp32_to_fp16((float)vals[i]);
            memcpy(mem + 2 * i, &h, 2);
            vals[i] = dz_fp16_to_fp32(h);
        } else {
            float f = (float)vals[i];
            memcpy(mem + 4 * i, &f, 4);
            vals[i] = f;
        }
    }
    mems[n_mem] = mem;
    DZT_OK(dz_buffer_from_host(dev, mem, dz_nbytes(t), &bufs[n_mem]));
    DZT_OK(dz_tensor_bind(t, bufs[n_mem++], 0));
    return t;
}

static dz_tensor *leaf_i32(dz_ctx *ctx, int64_t n0, int64_t n1, const int32_t *vals) {
    dz_tensor *t = dz_new_tensor_2d(ctx, DZ_TYPE_I32, n0, n1);
    int32_t *mem = malloc((size_t)(n0 * n1) * sizeof *mem);
    memcpy(mem, vals, (size_t)(n0 * n1) * sizeof *mem);
    mems[n_mem] = mem;
    DZT_OK(dz_buffer_from_host(dev, mem, (size_t)(n0 * n1) * sizeof *mem, &bufs[n_mem]));
    DZT_OK(dz_tensor_bind(t, bufs[n_mem++], 0));
    return t;
}

static void free_leaves(void) {
    for (int i = 0; i < n_mem; i++) {
        dz_buffer_free(bufs[i]);
        free(mems[i]);
    }
    n_mem = 0;
}

/* Runs out's graph with n_threads; returns its values (contiguous F32). */
static float *run(dz_ctx *ctx, dz_tensor *out, int n_threads) {
    DZT_OK(dz_ctx_status(ctx));
    dz_graph *g = dz_graph_build(ctx, out);
    const size_t n = (size_t)dz_nelements(out);
    float *v = calloc(n + 1, sizeof *v);
    if (!g) return v;
    DZT_OK(dz_device_set_threads(dev, n_threads));
    DZT_OK(dz_sched_alloc(sched, g));
    DZT_OK(dz_sched_compute(sched, g));
    DZT_OK(dz_tensor_read(out, v, 0, n * sizeof *v));
    return v;
}

/* With 1 and 3 threads (bitwise equal); the 1-thread result. */
static float *run_threads(dz_ctx *ctx, dz_tensor *out) {
    float *one = run(ctx, out, 1), *three = run(ctx, out, 3);
    DZT_CHECK(memcmp(one, three, (size_t)dz_nelements(out) * sizeof(float)) == 0, "%s: 1 and 3 threads differ",
              dz_op_name(out->op));
    free(three);
    return one;
}

static void compare(const char *what, const float *got, const double *want, int64_t n, double atol, double rtol) {
    int bad = 0;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        const double err = fabs(got[i] - want[i]);
        if (!(err <= atol + rtol * fabs(want[i])) && bad++ < 3)
            fprintf(stderr, "  %s[%lld]: got %.9g, want %.9g\n", what, (long long)i, got[i], want[i]);
        if (err > worst) worst = err;
    }
    DZT_CHECK(bad == 0, "%s on %s: %d of %lld values off (worst %g)", what, dz_device_props_get(dev)->name, bad,
              (long long)n, worst);
}

/* ---- double references of the forward ops (row-major, ne0 fastest) ---- */

/* The scalar L(inputs) whose gradient a backward op computes. */
typedef double (*loss_fn)(void);

/* Central differences of L with respect to x[0..n). */
static double *numeric_grad(loss_fn L, double *x, int64_t n) {
    double *g = malloc((size_t)n * sizeof *g);
    for (int64_t i = 0; i < n; i++) {
        const double keep = x[i], h = 1e-4 * (fabs(keep) > 1 ? fabs(keep) : 1);
        x[i] = keep + h;
        const double up = L();
        x[i] = keep - h;
        const double down = L();
        x[i] = keep;
        g[i] = (up - down) / (2 * h);
    }
    return g;
}

#define GRAD_ATOL 2e-5
#define GRAD_RTOL 2e-4

/* Operands of the loss functions: the current case's arrays. */
static struct {
    double *a, *b, *c, *dy;  /* inputs and upstream gradient */
    const int32_t *ids;
    int64_t n0, n1, n2, n3;  /* sizes (meaning per case) */
    double eps, scale;
    int n_rot, mode;
} C;

static double layer_norm_row(const double *x, int64_t n, double eps, int64_t i, bool rms) {
    double mean = 0, var = 0;
    if (!rms) {
        for (int64_t j = 0; j < n; j++) mean += x[j];
        mean /= (double)n;
    }
    for (int64_t j = 0; j < n; j++) var += (x[j] - mean) * (x[j] - mean);
    return (x[i] - mean) / sqrt(var / (double)n + eps);
}

static double gelu(double x) { return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }
static double silu(double x) { return x / (1 + exp(-x)); }

static double L_norm(bool rms) { /* a (n0, n1) */
    double s = 0;
    for (int64_t r = 0; r < C.n1; r++)
        for (int64_t i = 0; i < C.n0; i++) s += C.dy[r * C.n0 + i] * layer_norm_row(C.a + r * C.n0, C.n0, C.eps, i, rms);
    return s;
}
static double L_rms(void) { return L_norm(true); }
static double L_ln(void) { return L_norm(false); }

static double L_gelu(void) {
    double s = 0;
    for (int64_t i = 0; i < C.n0; i++) s += C.dy[i] * gelu(C.a[i]);
    return s;
}

static double L_swiglu(void) {
    double s = 0;
    for (int64_t i = 0; i < C.n0; i++) s += C.dy[i] * silu(C.a[i]) * C.b[i];
    return s;
}

/* MUL_MAT: y (N, M) = W (K, N) x X (K, M); a = W, b = X, n0 = K, n1 = N, n2 = M. */
static double L_matmul(void) {
    double s = 0;
    for (int64_t m = 0; m < C.n2; m++)
        for (int64_t n = 0; n < C.n1; n++) {
            double y = 0;
            for (int64_t k = 0; k < C.n0; k++) y += C.a[n * C.n0 + k] * C.b[m * C.n0 + k];
            s += C.dy[m * C.n1 + n] * y;
        }
    return s;
}

/* ROPE of a (hd = n0, heads = n1, T = n2), positions ids, angles in double. */
static double L_rope(void) {
    double s = 0;
    const int64_t hd = C.n0;
    for (int64_t t = 0; t < C.n2; t++)
        for (int64_t h = 0; h < C.n1; h++) {
            const double *x = C.a + (t * C.n1 + h) * hd, *g = C.dy + (t * C.n1 + h) * hd;
            for (int p = 0; p < C.n_rot / 2; p++) {
                const double th = C.ids[t] * pow(10000.0, -2.0 * p / C.n_rot);
                const int j0 = C.mode == DZ_ROPE_NEOX ? p : 2 * p, j1 = C.mode == DZ_ROPE_NEOX ? p + C.n_rot / 2 : 2 * p + 1;
                s += g[j0] * (x[j0] * cos(th) - x[j1] * sin(th)) + g[j1] * (x[j0] * sin(th) + x[j1] * cos(th));
            }
            for (int64_t i = C.n_rot; i < hd; i++) s += g[i] * x[i];
        }
    return s;
}

/* Causal attention: q = a (hd, H, T), k = b, v = c (hd, G, T); n0 hd, n1 H, n2 G, n3 T. */
static double L_attention(void) {
    const int64_t hd = C.n0, H = C.n1, G = C.n2, T = C.n3;
    double s = 0, w[64];
    for (int64_t h = 0; h < H; h++) {
        const int64_t g = h / (H / G);
        for (int64_t t = 0; t < T; t++) {
            double max = -INFINITY, sum = 0;
            for (int64_t j = 0; j <= t; j++) {
                double d = 0;
                for (int64_t i = 0; i < hd; i++) d += C.a[(t * H + h) * hd + i] * C.b[(j * G + g) * hd + i];
                w[j] = d * C.scale;
                if (w[j] > max) max = w[j];
            }
            for (int64_t j = 0; j <= t; j++) sum += w[j] = exp(w[j] - max);
            for (int64_t i = 0; i < hd; i++) {
                double o = 0;
                for (int64_t j = 0; j <= t; j++) o += w[j] / sum * C.c[(j * G + g) * hd + i];
                s += C.dy[(t * H + h) * hd + i] * o;
            }
        }
    }
    return s;
}

/* GET_ROWS of table a (n0, n1 rows) by ids (n2). */
static double L_get_rows(void) {
    double s = 0;
    for (int64_t i = 0; i < C.n2; i++)
        for (int64_t c = 0; c < C.n0; c++) s += C.dy[i * C.n0 + c] * C.a[C.ids[i] * C.n0 + c];
    return s;
}

/* CROSS_ENTROPY of logits a (V = n0, rows n1), targets ids. */
static double L_ce(void) {
    double total = 0;
    for (int64_t r = 0; r < C.n1; r++) {
        const double *x = C.a + r * C.n0;
        double max = -INFINITY, sum = 0;
        for (int64_t i = 0; i < C.n0; i++) max = x[i] > max ? x[i] : max;
        for (int64_t i = 0; i < C.n0; i++) sum += exp(x[i] - max);
        total += max + log(sum) - x[C.ids[r]];
    }
    return total / (double)C.n1;
}

/* ---- cases ---- */

static void test_layer_norm_gelu(void) {
    const int64_t n = 37, rows = 5;
    dz_ctx *ctx = dz_ctx_create(32);
    double *wide = randoms(2 * n * rows, 3.0);
    for (int64_t i = 0; i < 2 * n * rows; i++) wide[i] += 1.5; /* a mean to remove */
    dz_tensor *w = leaf(ctx, DZ_TYPE_F32, 2 * n, rows, 1, wide);
    dz_tensor *x = dz_view_2d(ctx, w, n, rows, w->nb[1], (size_t)n * 4); /* second half of each row */
    float *got = run_threads(ctx, dz_layer_norm(ctx, x, 1e-5f));
    double want[37 * 5];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++) want[r * n + i] = layer_norm_row(wide + r * 2 * n + n, n, 1e-5, i, false);
    compare("layer_norm", got, want, n * rows, 1e-6, 1e-5);
    free(got);

    dz_ctx_reset(ctx);
    double *xs = randoms(n * rows, 6.0);
    got = run_threads(ctx, dz_gelu(ctx, leaf(ctx, DZ_TYPE_F32, n, rows, 1, xs)));
    for (int64_t i = 0; i < n * rows; i++) want[i] = gelu(xs[i]);
    compare("gelu", got, want, n * rows, 1e-6, 1e-6);
    free(got);
    free(wide);
    free(xs);
    dz_ctx_destroy(ctx);
    free_leaves();
}

/* An op's result against the numeric gradient of L with respect to x. */
static void check_grad(const char *what, const float *got, loss_fn L, double *x, int64_t n) {
    double *want = numeric_grad(L, x, n);
    compare(what, got, want, n, GRAD_ATOL, GRAD_RTOL);
    free(want);
}

static void test_norm_backs(void) {
    for (int rms = 0; rms < 2; rms++) {
        dz_ctx *ctx = dz_ctx_create(32);
        C.n0 = 19, C.n1 = 6, C.eps = 1e-5;
        C.a = randoms(C.n0 * C.n1, 2.0), C.dy = randoms(C.n0 * C.n1, 1.0);
        dz_tensor *x = leaf(ctx, DZ_TYPE_F32, C.n0, C.n1, 1, C.a), *dy = leaf(ctx, DZ_TYPE_F32, C.n0, C.n1, 1, C.dy);
        dz_tensor *out = rms ? dz_rms_norm_back(ctx, x, dy, 1e-5f) : dz_layer_norm_back(ctx, x, dy, 1e-5f);
        float *got = run_threads(ctx, out);
        check_grad(rms ? "rms_norm_back" : "layer_norm_back", got, rms ? L_rms : L_ln, C.a, C.n0 * C.n1);
        free(got);
        free(C.a), free(C.dy);
        dz_ctx_destroy(ctx);
        free_leaves();
    }
}

static void test_gelu_swiglu_backs(void) {
    dz_ctx *ctx = dz_ctx_create(32);
    C.n0 = 23 * 4;
    C.a = randoms(C.n0, 4.0), C.b = randoms(C.n0, 1.0), C.dy = randoms(C.n0, 1.0);
    dz_tensor *x = leaf(ctx, DZ_TYPE_F32, 23, 4, 1, C.a), *up = leaf(ctx, DZ_TYPE_F32, 23, 4, 1, C.b);
    dz_tensor *dy = leaf(ctx, DZ_TYPE_F32, 23, 4, 1, C.dy);
    float *got = run_threads(ctx, dz_gelu_back(ctx, x, dy));
    check_grad("gelu_back", got, L_gelu, C.a, C.n0);
    free(got);
    got = run_threads(ctx, dz_swiglu_back(ctx, x, up, dy));
    check_grad("swiglu_back d gate", got, L_swiglu, C.a, C.n0);
    check_grad("swiglu_back d up", got + C.n0, L_swiglu, C.b, C.n0);
    free(got);
    free(C.a), free(C.b), free(C.dy);
    dz_ctx_destroy(ctx);
    free_leaves();
}

static void test_mul_mat_backs(void) {
    const dz_type wtypes[] = {DZ_TYPE_F32, DZ_TYPE_F16};
    for (int wt = 0; wt < 2; wt++) {
        dz_ctx *ctx = dz_ctx_create(32);
        C.n0 = 37, C.n1 = 21, C.n2 = 2 * 9; /* K, N, M (as 9 x 2) */
        C.a = randoms(C.n0 * C.n1, 1.0), C.b = randoms(C.n0 * C.n2, 1.0), C.dy = randoms(C.n1 * C.n2, 1.0);
        dz_tensor *w = leaf(ctx, wtypes[wt], C.n0, C.n1, 1, C.a);
        dz_tensor *dy = leaf(ctx, DZ_TYPE_F32, C.n1, 9, 2, C.dy);
        /* X transposed: a leaf (M, K) viewed as (K, M) */
        double *xt = malloc((size_t)(C.n0 * C.n2) * sizeof *xt);
        for (int64_t m = 0; m < C.n2; m++)
            for (int64_t k = 0; k < C.n0; k++) xt[k * C.n2 + m] = C.b[m * C.n0 + k];
        dz_tensor *x = dz_transpose(ctx, leaf(ctx, DZ_TYPE_F32, C.n2, C.n0, 1, xt));
        for (int64_t m = 0; m < C.n2; m++)
            for (int64_t k = 0; k < C.n0; k++) C.b[m * C.n0 + k] = xt[k * C.n2 + m]; /* as stored */
        float *got = run_threads(ctx, dz_mul_mat_back_x(ctx, w, dy));
        check_grad(wt ? "mul_mat_back_x (F16 W)" : "mul_mat_back_x", got, L_matmul, C.b, C.n0 * C.n2);
        free(got);
        if (wt == 0) {
            dz_tensor *x2 = dz_reshape_2d(ctx, dy, C.n1, C.n2); /* dY (N, M) for back_w */
            got = run_threads(ctx, dz_mul_mat_back_w(ctx, x, x2));
            check_grad("mul_mat_back_w", got, L_matmul, C.a, C.n0 * C.n1);
            free(got);
        }
        free(C.a), free(C.b), free(C.dy), free(xt);
        dz_ctx_destroy(ctx);
        free_leaves();
    }
}

static void test_sum_cols(void) {
    dz_ctx *ctx = dz_ctx_create(32);
    double *v = randoms(29 * 4 * 3, 1.0);
    float *got = run_threads(ctx, dz_sum_cols(ctx, leaf(ctx, DZ_TYPE_F32, 29, 4, 3, v)));
    double want[29] = {0};
    for (int64_t r = 0; r < 12; r++)
        for (int64_t i = 0; i < 29; i++) want[i] += v[r * 29 + i];
    compare("sum_cols", got, want, 29, 1e-6, 1e-6);
    free(got), free(v);
    dz_ctx_destroy(ctx);
    free_leaves();
}

static void test_rope_back(void) {
    const int cfg[2][2] = {{16, DZ_ROPE_NORMAL}, {8, DZ_ROPE_NEOX}};
    const int32_t pos[5] = {0, 3, 1, 7, 12};
    for (int c = 0; c < 2; c++) {
        dz_ctx *ctx = dz_ctx_create(32);
        C.n0 = 16, C.n1 = 3, C.n2 = 5, C.n_rot = cfg[c][0], C.mode = cfg[c][1], C.ids = pos;
        C.a = randoms(16 * 3 * 5, 1.0), C.dy = randoms(16 * 3 * 5, 1.0);
        dz_tensor *dy = leaf(ctx, DZ_TYPE_F32, 16, 3, 5, C.dy);
        dz_tensor *p = leaf_i32(ctx, 5, 1, pos);
        float *got = run_threads(ctx, dz_rope_back(ctx, dy, p, C.n_rot, C.mode, 10000.0f, 1.0f));
        check_grad(c ? "rope_back neox partial" : "rope_back normal", got, L_rope, C.a, 16 * 3 * 5);
        free(got), free(C.a), free(C.dy);
        dz_ctx_destroy(ctx);
        free_leaves();
    }
}

/* q, k, v are column views of one qkv tensor (hd (H + 2G), T), as a fused
 * projection makes them. */
static void test_attention_back(void) {
    const int64_t hd = 8, H = 4, G = 2, T = 6, W = hd * (H + 2 * G);
    dz_ctx *ctx = dz_ctx_create(32);
    double *qkv = randoms(W * T, 1.0);
    dz_tensor *all = leaf(ctx, DZ_TYPE_F32, W, T, 1, qkv);
    dz_tensor *q = dz_view_3d(ctx, all, hd, H, T, hd * 4, all->nb[1], 0);
    dz_tensor *k = dz_view_3d(ctx, all, hd, G, T, hd * 4, all->nb[1], (size_t)(H * hd) * 4);
    dz_tensor *v = dz_view_3d(ctx, all, hd, G, T, hd * 4, all->nb[1], (size_t)((H + G) * hd) * 4);
    C.n0 = hd, C.n1 = H, C.n2 = G, C.n3 = T, C.scale = 1.0 / sqrt((double)hd);
    C.dy = randoms(hd * H * T, 1.0);
    dz_tensor *dout = leaf(ctx, DZ_TYPE_F32, hd, H, T, C.dy);
    C.a = malloc((size_t)(hd * H * T) * sizeof(double));
    C.b = malloc((size_t)(hd * G * T) * sizeof(double));
    C.c = malloc((size_t)(hd * G * T) * sizeof(double));
    for (int64_t t = 0; t < T; t++) {
        memcpy(C.a + t * H * hd, qkv + t * W, (size_t)(H * hd) * sizeof(double));
        memcpy(C.b + t * G * hd, qkv + t * W + H * hd, (size_t)(G * hd) * sizeof(double));
        memcpy(C.c + t * G * hd, qkv + t * W + (H + G) * hd, (size_t)(G * hd) * sizeof(double));
    }
    float *got = run_threads(ctx, dz_attention_back(ctx, q, k, v, dout, (float)C.scale));
    double *gq = numeric_grad(L_attention, C.a, hd * H * T), *gk = numeric_grad(L_attention, C.b, hd * G * T);
    double *gv = numeric_grad(L_attention, C.c, hd * G * T);
    double *want = malloc((size_t)(W * T) * sizeof *want);
    for (int64_t t = 0; t < T; t++) {
        memcpy(want + t * W, gq + t * H * hd, (size_t)(H * hd) * sizeof(double));
        memcpy(want + t * W + H * hd, gk + t * G * hd, (size_t)(G * hd) * sizeof(double));
        memcpy(want + t * W + (H + G) * hd, gv + t * G * hd, (size_t)(G * hd) * sizeof(double));
    }
    compare("attention_back (GQA, column views)", got, want, W * T, GRAD_ATOL, GRAD_RTOL);
    free(got), free(gq), free(gk), free(gv), free(want), free(qkv), free(C.a), free(C.b), free(C.c), free(C.dy);
    dz_ctx_destroy(ctx);
    free_leaves();
}

static void test_get_rows_back(void) {
    dz_ctx *ctx = dz_ctx_create(32);
    const int32_t ids[7] = {2, 0, 2, 4, 2, 0, 1}; /* row 3 never, 2 three times */
    C.n0 = 13, C.n1 = 5, C.n2 = 7, C.ids = ids;
    C.a = randoms(13 * 5, 1.0), C.dy = randoms(13 * 7, 1.0);
    dz_tensor *dy = leaf(ctx, DZ_TYPE_F32, 13, 7, 1, C.dy);
    dz_tensor *id = dz_view_1d(ctx, leaf_i32(ctx, 7, 1, ids), 7, 0);
    float *got = run_threads(ctx, dz_get_rows_back(ctx, dy, id, 5));
    check_grad("get_rows_back", got, L_get_rows, C.a, 13 * 5);
    free(got), free(C.a), free(C.dy);
    dz_ctx_destroy(ctx);
    free_leaves();
}

static void test_cross_entropy(void) {
    dz_ctx *ctx = dz_ctx_create(32);
    const int32_t tg[6] = {3, 0, 40, 17, 17, 2};
    C.n0 = 41, C.n1 = 6, C.ids = tg;
    C.a = randoms(41 * 6, 5.0);
    dz_tensor *lg = leaf(ctx, DZ_TYPE_F32, 41, 3, 2, C.a); /* (V, T, B) */
    dz_tensor *t = leaf_i32(ctx, 3, 2, tg);
    float *got = run_threads(ctx, dz_cross_entropy(ctx, lg, t));
    const double want = L_ce();
    compare("cross_entropy", got, &want, 1, 1e-6, 1e-6);
    free(got);
    got = run_threads(ctx, dz_cross_entropy_back(ctx, lg, t, 2.5f));
    double *g = numeric_grad(L_ce, C.a, 41 * 6);
    for (int64_t i = 0; i < 41 * 6; i++) g[i] *= 2.5;
    compare("cross_entropy_back", got, g, 41 * 6, GRAD_ATOL, GRAD_RTOL);
    free(got), free(g), free(C.a);
    dz_ctx_destroy(ctx);
    free_leaves();
}

/* Bad shapes fail at build time with a message; bad ids at compute time. */
static void test_refusals(void) {
    dz_ctx *ctx = dz_ctx_create(64);
    double v[64] = {0};
    dz_tensor *a = leaf(ctx, DZ_TYPE_F32, 8, 4, 1, v), *b = leaf(ctx, DZ_TYPE_F32, 4, 8, 1, v);
    DZT_ASSERT(dz_rms_norm_back(ctx, a, b, 1e-5f) == NULL);
    DZT_ASSERT(dz_ctx_status(ctx) == DZ_ERR_ARG);
    DZT_ASSERT(strstr(dz_ctx_error(ctx), "rms_norm_back") != NULL);
    /* (the context keeps its first error; each builder still refuses) */
    DZT_ASSERT(dz_mul_mat_back_x(ctx, a, a) == NULL);   /* dY's ne0 8 != W's N 4 */
    DZT_ASSERT(dz_mul_mat_back_w(ctx, a, b) == NULL);   /* rows 4 vs 8 */
    DZT_ASSERT(dz_attention_back(ctx, a, a, a, b, 1.0f) == NULL);
    DZT_ASSERT(dz_get_rows_back(ctx, a, a, 3) == NULL); /* ids not I32 */
    DZT_ASSERT(dz_layer_norm(ctx, a, -1.0f) == NULL);
    DZT_ASSERT(dz_cross_entropy_back(ctx, a, b, 1.0f) == NULL); /* targets not I32 */
    DZT_ASSERT(dz_swiglu_back(ctx, a, a, b) == NULL);
    dz_ctx_destroy(ctx);

    /* a target outside the vocabulary fails the compute, naming it */
    ctx = dz_ctx_create(64);
    a = leaf(ctx, DZ_TYPE_F32, 8, 4, 1, v);
    const int32_t tg[4] = {0, 8, 1, 2};
    dz_graph *g = dz_graph_build(ctx, dz_cross_entropy(ctx, a, dz_view_1d(ctx, leaf_i32(ctx, 4, 1, tg), 4, 0)));
    DZT_ASSERT(g != NULL);
    if (g) {
        DZT_OK(dz_sched_alloc(sched, g));
        DZT_ASSERT(dz_sched_compute(sched, g) == DZ_ERR_ARG);
        DZT_ASSERT(strstr(dz_last_error(), "target 8") != NULL);
    }
    dz_ctx_destroy(ctx);
    ctx = dz_ctx_create(64);
    a = leaf(ctx, DZ_TYPE_F32, 8, 4, 1, v);
    const int32_t ids[2] = {0, 5};
    dz_tensor *id = dz_view_1d(ctx, leaf_i32(ctx, 2, 1, ids), 2, 0);
    g = dz_graph_build(ctx, dz_get_rows_back(ctx, dz_view_2d(ctx, a, 8, 2, a->nb[1], 0), id, 5));
    DZT_ASSERT(g != NULL);
    if (g) {
        DZT_OK(dz_sched_alloc(sched, g));
        DZT_ASSERT(dz_sched_compute(sched, g) == DZ_ERR_ARG); /* 5 rows: 0..4 */
        DZT_ASSERT(strstr(dz_last_error(), "id 5") != NULL);
    }
    dz_ctx_destroy(ctx);
    free_leaves();
}

/* ---- a composed step: x -> layer_norm -> W1 -> gelu -> W2 -> cross-entropy,
 * and back through every op, in one graph (several outputs), checked
 * against finite differences of the whole loss ---- */

enum { SD = 16, SF = 24, SV = 11, ST = 5 };
static double *S_x, *S_w1, *S_w2;
static const int32_t S_tg[ST] = {3, 10, 0, 3, 7};

static double L_step(void) {
    double total = 0;
    for (int t = 0; t < ST; t++) {
        double n[SD], h[SF], lg[SV], max = -INFINITY, sum = 0;
        for (int i = 0; i < SD; i++) n[i] = layer_norm_row(S_x + t * SD, SD, 1e-5, i, false);
        for (int f = 0; f < SF; f++) {
            double a = 0;
            for (int i = 0; i < SD; i++) a += S_w1[f * SD + i] * n[i];
            h[f] = gelu(a);
        }
        for (int v = 0; v < SV; v++) {
            lg[v] = 0;
            for (int f = 0; f < SF; f++) lg[v] += S_w2[v * SF + f] * h[f];
            max = lg[v] > max ? lg[v] : max;
        }
        for (int v = 0; v < SV; v++) sum += exp(lg[v] - max);
        total += max + log(sum) - lg[S_tg[t]];
    }
    return total / ST;
}

static void test_composed_step(void) {
    dz_ctx *ctx = dz_ctx_create(64);
    S_x = randoms(SD * ST, 2.0), S_w1 = randoms(SF * SD, 0.5), S_w2 = randoms(SV * SF, 0.5);
    dz_tensor *x = leaf(ctx, DZ_TYPE_F32, SD, ST, 1, S_x), *w1 = leaf(ctx, DZ_TYPE_F32, SD, SF, 1, S_w1);
    dz_tensor *w2 = leaf(ctx, DZ_TYPE_F32, SF, SV, 1, S_w2);
    dz_tensor *tg = leaf_i32(ctx, ST, 1, S_tg);
    dz_tensor *n = dz_layer_norm(ctx, x, 1e-5f), *pre = dz_mul_mat(ctx, w1, n), *h = dz_gelu(ctx, pre);
    dz_tensor *logits = dz_mul_mat(ctx, w2, h), *loss = dz_cross_entropy(ctx, logits, tg);
    dz_tensor *dlogits = dz_cross_entropy_back(ctx, logits, tg, 1.0f);
    dz_tensor *dw2 = dz_mul_mat_back_w(ctx, h, dlogits), *dh = dz_mul_mat_back_x(ctx, w2, dlogits);
    dz_tensor *dpre = dz_gelu_back(ctx, pre, dh);
    dz_tensor *dw1 = dz_mul_mat_back_w(ctx, n, dpre), *dn = dz_mul_mat_back_x(ctx, w1, dpre);
    dz_tensor *dx = dz_layer_norm_back(ctx, x, dn, 1e-5f);
    dz_tensor *outs[] = {loss, dw2, dw1, dx};
    for (int i = 0; i < 4; i++) dz_set_output(outs[i]);
    DZT_OK(dz_ctx_status(ctx));
    dz_graph *g = dz_graph_build(ctx, loss);
    DZT_ASSERT(g != NULL);
    for (int i = 1; i < 4 && g; i++) DZT_OK(dz_graph_expand(ctx, g, outs[i]));
    if (g) {
        DZT_OK(dz_device_set_threads(dev, 2));
        DZT_OK(dz_sched_alloc(sched, g));
        DZT_OK(dz_sched_compute(sched, g));
        float got_loss, got_w2[SV * SF], got_w1[SF * SD], got_x[SD * ST];
        DZT_OK(dz_tensor_read(loss, &got_loss, 0, sizeof got_loss));
        DZT_OK(dz_tensor_read(dw2, got_w2, 0, sizeof got_w2));
        DZT_OK(dz_tensor_read(dw1, got_w1, 0, sizeof got_w1));
        DZT_OK(dz_tensor_read(dx, got_x, 0, sizeof got_x));
        const double want = L_step();
        compare("step loss", &got_loss, &want, 1, 1e-6, 1e-5);
        check_grad("step dW2", got_w2, L_step, S_w2, SV * SF);
        check_grad("step dW1", got_w1, L_step, S_w1, SF * SD);
        check_grad("step dx", got_x, L_step, S_x, SD * ST);
    }
    free(S_x), free(S_w1), free(S_w2);
    dz_ctx_destroy(ctx);
    free_leaves();
}

int main(void) {
    const char *devices[] = {"cpu-ref", "cpu"};
    for (int d = 0; d < 2; d++) {
        DZT_OK(dz_device_open(devices[d], &dev));
        DZT_OK(dz_sched_create(&dev, 1, &sched));
        test_layer_norm_gelu();
        test_norm_backs();
        test_gelu_swiglu_backs();
        test_mul_mat_backs();
        test_sum_cols();
        test_rope_back();
        test_attention_back();
        test_get_rows_back();
        test_cross_entropy();
        test_refusals();
        test_composed_step();
        dz_sched_destroy(sched);
        dz_device_close(dev);
    }
    return dzt_done();
}
