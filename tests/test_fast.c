/* The CPU fast path against the CPU reference: every fast kernel, at every
 * ISA level this processor runs (scalar; sse2, avx2, avx512 on x86-64; neon
 * on aarch64), with 1-3
 * threads, on odd shapes, strided operands and batches. Quantized matmuls
 * must be bit-identical to the reference (they reproduce its integer lanes
 * and float order), except at SSE2, which has no fused multiply-add; exact
 * ops (add, mul, copies, rope) must be bit-identical; the rest must agree
 * within NMSE limits far below the conformance suite's. Also: the
 * activation quantizer of every level against the reference's, the device
 * pair "cpu"/"cpu-ref", DZ_CPU_ISA, a whole graph through the fast
 * executor, and the conformance suite on "cpu" at every level. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/fast/fast.h"
#include "dizuo/conformance.h"
#include "dizuo/tensor.h"
#include "dztest.h"
#include "tensor/convert.h"

static uint64_t rng = 12345;

static double uniform(void) { /* [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

/* ---- tensors in plain host memory ---- */

enum { MAX_MEMS = 64 };
static void *mems[MAX_MEMS];
static int n_mems;

static void *keep(void *p) {
    if (n_mems < MAX_MEMS) mems[n_mems++] = p;
    return p;
}

static void free_all(void) {
    for (int i = 0; i < n_mems; i++) free(mems[i]);
    n_mems = 0;
}

/* A contiguous tensor of type t with shape ne (unused dims 1), rows padded
 * by pad_rows extra bytes (a row-strided view when pad > 0). */
static dz_tensor *tensor(dz_type t, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3, size_t pad) {
    dz_tensor *x = keep(calloc(1, sizeof *x));
    const dz_type_traits *tt = dz_type_info((int)t);
    x->type = t;
    x->n_dims = 4;
    x->ne[0] = ne0;
    x->ne[1] = ne1;
    x->ne[2] = ne2;
    x->ne[3] = ne3;
    x->nb[0] = tt->type_size;
    x->nb[1] = (size_t)(ne0 / tt->block_size) * tt->type_size + pad;
    x->nb[2] = x->nb[1] * (size_t)ne1;
    x->nb[3] = x->nb[2] * (size_t)ne2;
    x->data = keep(calloc(1, x->nb[3] * (size_t)ne3 + 64));
    return x;
}

/* Random values in [-amp, amp), quantized/encoded into every row of x. */
static void fill(dz_tensor *x, float amp) {
    float *row = malloc((size_t)x->ne[0] * sizeof *row);
    for (int64_t r = 0; r < dz_nrows(x); r++) {
        for (int64_t i = 0; i < x->ne[0]; i++) row[i] = amp * (float)uniform();
        const int64_t i1 = r % x->ne[1], i2 = r / x->ne[1] % x->ne[2], i3 = r / (x->ne[1] * x->ne[2]);
        char *dst = (char *)x->data + i1 * x->nb[1] + i2 * x->nb[2] + i3 * x->nb[3];
        DZT_OK(dz_quantize_row(x->type, row, dst, x->ne[0]));
    }
    free(row);
}

/* Swaps dims 1 and 2 of x's view (a permuted operand). */
static void permute12(dz_tensor *x) {
    int64_t ne = x->ne[1];
    size_t nb = x->nb[1];
    x->ne[1] = x->ne[2];
    x->nb[1] = x->nb[2];
    x->ne[2] = ne;
    x->nb[2] = nb;
}

static dz_tensor *node(dz_op op, dz_tensor *out, dz_tensor *a, dz_tensor *b, dz_tensor *c, dz_tensor *d) {
    out->op = op;
    out->src[0] = a;
    out->src[1] = b;
    out->src[2] = c;
    out->src[3] = d;
    return out;
}

/* ---- comparing the fast path with the reference ---- */

/* Runs n with the reference and with the fast kernels of isa on `threads`
 * threads; returns the NMSE of the fast result (and whether bit-identical). */
static double compare(const char *what, dz_tensor *n, dz_cpu_isa isa, int threads, bool *exact) {
    const size_t bytes = n->nb[3] * (size_t)n->ne[3];
    float *ref = malloc(bytes), *got = malloc(bytes);
    void *own = n->data;
    n->data = ref;
    DZT_OK(dz_cpu_compute_node(n, 1));
    n->data = got;
    dz_status st = dz_cpu_fast_compute_node(n, threads, isa);
    DZT_CHECK(st == DZ_OK, "%s [%s, %d threads]: %s", what, dz_cpu_isa_name(isa), threads, dz_last_error());
    n->data = own;
    const int64_t count = (int64_t)(bytes / sizeof(float));
    double err = 0.0, norm = 0.0;
    *exact = memcmp(ref, got, bytes) == 0;
    for (int64_t i = 0; i < count; i++) {
        double e = (double)got[i] - (double)ref[i];
        err += e * e;
        norm += (double)ref[i] * (double)ref[i];
        if (!isfinite(got[i])) err = INFINITY;
    }
    free(ref);
    free(got);
    return norm > 0.0 ? err / norm : err;
}

/* Which levels must reproduce the reference bit for bit. */
enum { EXACT_NONE = 0, EXACT_ALL = (1 << DZ_CPU_ISA_COUNT) - 1, EXACT_FMA = EXACT_ALL & ~(1 << DZ_CPU_ISA_SSE2) };

/* Checks n at every level and thread count: bit-identical at the levels in
 * the mask `exact`, else NMSE <= limit. */
static void check(const char *what, dz_tensor *n, unsigned exact_levels, double limit) {
    for (int isa = 0; isa < DZ_CPU_ISA_COUNT; isa++)
        for (int threads = 1; threads <= 3 && dz_cpu_isa_runs((dz_cpu_isa)isa); threads++) { /* levels it runs */
            bool exact;
            double nmse = compare(what, n, (dz_cpu_isa)isa, threads, &exact);
            if (exact_levels & (1u << isa))
                DZT_CHECK(exact, "%s [%s, %d threads]: not bit-identical to the reference (NMSE %g)", what,
                          dz_cpu_isa_name((dz_cpu_isa)isa), threads, nmse);
            else
                DZT_CHECK(nmse <= limit, "%s [%s, %d threads]: NMSE %g above %g", what,
                          dz_cpu_isa_name((dz_cpu_isa)isa), threads, nmse, limit);
        }
}

/* ---- MUL_MAT ---- */

static void mul_mat_case(dz_type wt, int64_t K, int64_t N, int64_t M, int64_t b2, int64_t B2, int flags) {
    enum { STRIDED_W = 1, STRIDED_X = 2, PERMUTED_X = 4 };
    dz_tensor *w = tensor(wt, K, N, b2, 1, flags & STRIDED_W ? 64 : 0);
    fill(w, 1.0f);
    dz_tensor *x;
    if (flags & PERMUTED_X) {
        x = tensor(DZ_TYPE_F32, K, B2, M, 1, 0);
        fill(x, 1.0f);
        permute12(x);
    } else {
        x = tensor(DZ_TYPE_F32, K, M, B2, 1, flags & STRIDED_X ? 12 : 0);
        fill(x, 1.0f);
    }
    dz_tensor *out = node(DZ_OP_MUL_MAT, tensor(DZ_TYPE_F32, N, M, B2, 1, 0), w, x, NULL, NULL);
    char what[128];
    snprintf(what, sizeof what, "mul_mat %s K%lld N%lld M%lld batch %lld/%lld flags %d", dz_type_name(wt),
             (long long)K, (long long)N, (long long)M, (long long)b2, (long long)B2, flags);
    /* Quantized: the reference's integer lanes and float order, exactly
     * (SSE2 multiplies and adds without fusing). Float weights: another
     * summation order, float instead of double (a dot near zero loses
     * relative precision: the limit is the conformance suite's). */
    const bool quantized = dz_type_info((int)wt)->block_size > 1;
    check(what, out, quantized ? EXACT_FMA : EXACT_NONE, quantized ? 1e-12 : 1e-7);
    free_all();
}

static void test_mul_mat(void) {
    const dz_type types[] = {DZ_TYPE_Q4_0, DZ_TYPE_Q8_0, DZ_TYPE_Q4_K, DZ_TYPE_Q6_K, DZ_TYPE_F16,  DZ_TYPE_F32,
                             DZ_TYPE_BF16, DZ_TYPE_Q5_K, DZ_TYPE_Q5_0, DZ_TYPE_IQ4_NL, DZ_TYPE_Q4_1, DZ_TYPE_Q5_1,
                             DZ_TYPE_Q2_K, DZ_TYPE_Q3_K};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const dz_type wt = types[t];
        const int64_t k0 = dz_type_info((int)wt)->block_size > 32 ? 256 : 32;
        /* decode (M = 1): panels of every height, partial panels */
        mul_mat_case(wt, k0, 1, 1, 1, 1, 0);
        mul_mat_case(wt, 3 * k0, 17, 1, 1, 1, 0);
        mul_mat_case(wt, 8 * k0, 40, 1, 1, 1, 0);   /* N % 8 == 0: Q4_0's single-sum structure */
        mul_mat_case(wt, 2 * k0, 257, 1, 1, 1, 1); /* more than one work item, row-strided W */
        /* prefill: column tiles of every width, remainders */
        mul_mat_case(wt, k0, 7, 5, 1, 1, 0);
        mul_mat_case(wt, 4 * k0, 33, 13, 1, 1, 0);
        mul_mat_case(wt, 2 * k0, 64, 40, 1, 1, 0);
        mul_mat_case(wt, 2 * k0, 24, 9, 1, 1, 2);  /* row-strided X */
        mul_mat_case(wt, 2 * k0, 19, 6, 1, 1, 4);  /* permuted X */
        mul_mat_case(wt, 2 * k0, 16, 3, 2, 4, 0);  /* W broadcast over batches */
    }
    /* Float weights with K not a multiple of any vector: the scalar tails. */
    mul_mat_case(DZ_TYPE_F32, 37, 9, 5, 1, 1, 0);
    mul_mat_case(DZ_TYPE_F16, 13, 5, 3, 1, 1, 0);
}

/* ---- the activation quantizer of each level ---- */

static void test_quantizer(void) {
    enum { K = 32 * 41 };
    float *x = malloc(K * sizeof *x);
    dz_block_q8_0 *ref = malloc(K / 32 * sizeof *ref);
    int8_t *q = malloc(K);
    float *d = malloc(K / 32 * sizeof *d);
    int32_t *c4 = malloc(K / 4 * sizeof *c4), *c32 = malloc(K / 32 * sizeof *c32);
    for (int trial = 0; trial < 3; trial++) {
        for (int i = 0; i < K; i++) x[i] = (float)uniform() * (trial == 2 ? 1e-3f : 3.0f);
        /* Ties: values that are multiples of amax/127 * 0.5 land exactly on .5. */
        if (trial == 1)
            for (int i = 0; i < K; i++) x[i] = (float)((int)(uniform() * 254.0)) * 0.5f / 127.0f * 2.0f;
        for (int i = 0; i < 32; i++) x[64 + i] = 0.0f; /* an all-zero block */
        dz_quantize_row_q8_0_with(x, ref, K, DZ_Q8_ROUND_ACTIVATIONS);
        for (int isa = 0; isa < DZ_CPU_ISA_COUNT; isa++) {
            if (!dz_cpu_isa_runs((dz_cpu_isa)isa)) continue;
            const dz_fast_kernels *k = dz_fast_kernels_for((dz_cpu_isa)isa);
            DZT_EQ_INT(k->isa, isa);
            k->quantize_q8_0(x, K, 8, q, d, c4, c32);
            int bad_q = 0, bad_d = 0, bad_c = 0;
            for (int b = 0; b < K / 32; b++) {
                bad_d += d[b] != dz_fp16_to_fp32(ref[b].d);
                int s32 = 0;
                for (int g = 0; g < 8; g++) {
                    int s = 0;
                    for (int j = 0; j < 4; j++) {
                        bad_q += q[32 * b + 4 * g + j] != ref[b].qs[4 * g + j];
                        s += ref[b].qs[4 * g + j];
                    }
                    bad_c += c4[8 * b + g] != -8 * s;
                    s32 += s;
                }
                bad_c += c32[b] != -8 * s32;
            }
            DZT_CHECK(bad_q == 0 && bad_d == 0 && bad_c == 0,
                      "quantize_q8_0 [%s] trial %d: %d levels, %d scales, %d sums differ from the reference",
                      dz_cpu_isa_name((dz_cpu_isa)isa), trial, bad_q, bad_d, bad_c);
        }
    }
    free(x);
    free(ref);
    free(q);
    free(d);
    free(c4);
    free(c32);
}

/* ---- the other ops ---- */

static void test_elementwise(void) {
    const int64_t shapes[][4] = {{1, 1, 1, 1}, {7, 3, 1, 1}, {67, 5, 2, 1}, {2048, 4, 1, 1}, {33, 2, 3, 2}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t *ne = shapes[s];
        dz_tensor *a = tensor(DZ_TYPE_F32, ne[0], ne[1], ne[2], ne[3], 0), *b = tensor(DZ_TYPE_F32, ne[0], ne[1], ne[2], ne[3], 0);
        dz_tensor *row = tensor(DZ_TYPE_F32, ne[0], 1, 1, 1, 0);
        fill(a, 4.0f);
        fill(b, 2.0f);
        fill(row, 1.0f);
        char what[96];
        dz_tensor *n = tensor(DZ_TYPE_F32, ne[0], ne[1], ne[2], ne[3], 0);
        snprintf(what, sizeof what, "add %lldx%lld", (long long)ne[0], (long long)ne[1]);
        check(what, node(DZ_OP_ADD, n, a, b, NULL, NULL), EXACT_ALL, 0.0);
        snprintf(what, sizeof what, "mul by a row %lldx%lld", (long long)ne[0], (long long)ne[1]);
        check(what, node(DZ_OP_MUL, n, a, row, NULL, NULL), EXACT_ALL, 0.0);
        n->params.f[0] = 0.37f;
        snprintf(what, sizeof what, "scale %lldx%lld", (long long)ne[0], (long long)ne[1]);
        check(what, node(DZ_OP_SCALE, n, a, NULL, NULL, NULL), EXACT_ALL, 0.0);
        snprintf(what, sizeof what, "silu %lldx%lld", (long long)ne[0], (long long)ne[1]);
        check(what, node(DZ_OP_SILU, n, a, NULL, NULL, NULL), EXACT_NONE, 1e-12);
        snprintf(what, sizeof what, "swiglu %lldx%lld", (long long)ne[0], (long long)ne[1]);
        check(what, node(DZ_OP_SWIGLU, n, a, b, NULL, NULL), EXACT_NONE, 1e-12);
        n->params.f[0] = 1e-5f;
        snprintf(what, sizeof what, "rms_norm %lldx%lld", (long long)ne[0], (long long)ne[1]);
        check(what, node(DZ_OP_RMS_NORM, n, a, NULL, NULL, NULL), EXACT_NONE, 1e-13);
        snprintf(what, sizeof what, "cpy %lldx%lld", (long long)ne[0], (long long)ne[1]);
        check(what, node(DZ_OP_CPY, b, a, NULL, NULL, NULL), EXACT_ALL, 0.0);
        free_all();
    }
    /* Silu far out: exp underflow and overflow. */
    dz_tensor *a = tensor(DZ_TYPE_F32, 8, 1, 1, 1, 0), *n = tensor(DZ_TYPE_F32, 8, 1, 1, 1, 0);
    const float far[8] = {-200.0f, -88.5f, -87.0f, -1e-30f, 0.0f, 20.0f, 88.0f, 200.0f};
    memcpy(a->data, far, sizeof far);
    check("silu of extreme values", node(DZ_OP_SILU, n, a, NULL, NULL, NULL), EXACT_NONE, 1e-12);
    free_all();
}

static void test_rope_softmax(void) {
    const int shapes[][4] = {{64, 4, 7, 0}, {64, 3, 5, 2}, {48, 3, 5, 2}, {128, 2, 9, 0}};
    const int n_rot[] = {64, 64, 16, 96};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int hd = shapes[s][0], heads = shapes[s][1], T = shapes[s][2], mode = shapes[s][3];
        dz_tensor *x = tensor(DZ_TYPE_F32, hd, heads, T, 1, 0), *pos = tensor(DZ_TYPE_I32, T, 1, 1, 1, 0);
        fill(x, 1.0f);
        for (int t = 0; t < T; t++) ((int32_t *)pos->data)[t] = (t * 397) % 2048;
        dz_tensor *n = node(DZ_OP_ROPE, tensor(DZ_TYPE_F32, hd, heads, T, 1, 0), x, pos, NULL, NULL);
        n->params.i[0] = n_rot[s];
        n->params.i[1] = mode;
        n->params.f[2] = s == 3 ? 500000.0f : 10000.0f;
        n->params.f[3] = s == 3 ? 0.25f : 1.0f;
        char what[64];
        snprintf(what, sizeof what, "rope hd %d n_rot %d mode %d", hd, n_rot[s], mode);
        check(what, n, EXACT_ALL, 0.0);
        free_all();
    }
    const int sm[][4] = {{17, 3, 0, 0}, {67, 5, 1, 0}, {33, 5, 1, 28}, {20, 4, 2, 16}, {7, 7, 1, 0}};
    for (size_t s = 0; s < sizeof sm / sizeof sm[0]; s++) {
        const int n_cols = sm[s][0], rows = sm[s][1], kind = sm[s][2], n_past = sm[s][3];
        dz_tensor *x = tensor(DZ_TYPE_F32, n_cols, rows, 2, 1, 0), *mask = NULL;
        fill(x, 5.0f);
        if (kind == 2) {
            mask = tensor(DZ_TYPE_F32, n_cols, rows, 1, 1, 0);
            fill(mask, 1.0f);
            ((float *)mask->data)[3] = -INFINITY;
        }
        dz_tensor *n = node(DZ_OP_SOFTMAX, tensor(DZ_TYPE_F32, n_cols, rows, 2, 1, 0), x, mask, NULL, NULL);
        n->params.f[0] = 0.7f;
        n->params.i[1] = kind >= 1;
        n->params.i[2] = n_past;
        char what[64];
        snprintf(what, sizeof what, "softmax %dx%d kind %d n_past %d", n_cols, rows, kind, n_past);
        check(what, n, EXACT_NONE, 1e-12);
        free_all();
    }
}

static void test_attention(void) {
    /* hd, heads, kv heads, T, S, causal, n_past, mask */
    const int cases[][8] = {{64, 4, 4, 1, 1, 0, 0, 0},     {64, 8, 2, 1, 17, 1, 16, 0},  {32, 6, 3, 7, 7, 1, 0, 0},
                            {64, 4, 1, 5, 33, 1, 28, 0},   {32, 2, 2, 3, 19, 0, 0, 1},   {128, 2, 1, 17, 67, 1, 50, 1},
                            {64, 32, 4, 3, 300, 1, 297, 0}, {64, 4, 2, 40, 290, 0, 0, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int *p = cases[c];
        dz_tensor *q = tensor(DZ_TYPE_F32, p[0], p[1], p[3], 1, 0);
        dz_tensor *k = tensor(DZ_TYPE_F32, p[0], p[2], p[4], 1, 0), *v = tensor(DZ_TYPE_F32, p[0], p[2], p[4], 1, 0);
        dz_tensor *mask = p[7] ? tensor(DZ_TYPE_F32, p[4], p[3], 1, 1, 0) : NULL;
        fill(q, 1.0f);
        fill(k, 1.0f);
        fill(v, 1.0f);
        if (mask) {
            fill(mask, 1.0f);
            ((float *)mask->data)[1] = -INFINITY;
        }
        dz_tensor *n = node(DZ_OP_ATTENTION, tensor(DZ_TYPE_F32, p[0], p[1], p[3], 1, 0), q, k, v, mask);
        n->params.f[0] = 1.0f / sqrtf((float)p[0]);
        n->params.i[1] = p[5];
        n->params.i[2] = p[6];
        char what[96];
        snprintf(what, sizeof what, "attention hd %d heads %d/%d T %d S %d", p[0], p[1], p[2], p[3], p[4]);
        check(what, n, EXACT_NONE, 1e-11);
        free_all();
    }
}

/* ---- devices, ISA choice, a whole graph ---- */

static void test_devices(void) {
    dz_device *fast = NULL, *ref = NULL;
    DZT_OK(dz_device_open("cpu", &fast));
    DZT_OK(dz_device_open("cpu-ref", &ref));
    if (!fast || !ref) return;
    DZT_EQ_STR(dz_device_props_get(fast)->name, "cpu");
    DZT_EQ_STR(dz_device_props_get(ref)->name, "cpu-ref");
    const char *desc = dz_device_props_get(fast)->description;
    DZT_CHECK(strstr(desc, dz_cpu_isa_name(dz_cpu_isa_chosen())) != NULL, "description '%s'", desc);
    DZT_OK(dz_device_set_threads(fast, 3));
    DZT_CHECK(strstr(dz_device_props_get(fast)->description, "3 threads") != NULL, "%s",
              dz_device_props_get(fast)->description);
    DZT_FAILS(dz_device_set_threads(fast, 0), DZ_ERR_ARG);
    DZT_ASSERT(dz_cpu_core_count() >= 1);

    /* A chain of nodes through the scheduler on each device: the same values. */
    float out[2][4 * 96];
    dz_device *devs[2] = {fast, ref};
    for (int d = 0; d < 2; d++) {
        rng = 99;
        dz_sched *sched = NULL;
        DZT_OK(dz_sched_create(&devs[d], 1, &sched));
        dz_ctx *ctx = dz_ctx_create(64);
        dz_tensor *w = dz_new_tensor_2d(ctx, DZ_TYPE_Q8_0, 64, 96), *x = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 64, 4);
        dz_set_input(w);
        dz_set_input(x);
        dz_tensor *h = dz_mul_mat(ctx, w, dz_rms_norm(ctx, x, 1e-5f));
        dz_tensor *y = dz_add(ctx, dz_scale(ctx, h, 0.5f), dz_mul_mat(ctx, w, x));
        dz_set_output(y);
        dz_graph *g = dz_graph_build(ctx, y);
        DZT_ASSERT(g != NULL);
        if (g && sched) {
            DZT_OK(dz_sched_alloc(sched, g));
            char wq[96 * 68];
            float xv[64 * 4], row[64];
            for (int r = 0; r < 96; r++) {
                for (int i = 0; i < 64; i++) row[i] = (float)uniform();
                dz_quantize_row(DZ_TYPE_Q8_0, row, wq + r * 68, 64);
            }
            for (int i = 0; i < 64 * 4; i++) xv[i] = (float)uniform();
            DZT_OK(dz_tensor_write(w, wq, 0, sizeof wq));
            DZT_OK(dz_tensor_write(x, xv, 0, sizeof xv));
            DZT_OK(dz_sched_compute(sched, g));
            DZT_OK(dz_tensor_read(y, out[d], 0, sizeof out[d]));
        }
        dz_ctx_destroy(ctx);
        dz_sched_destroy(sched);
    }
    int differ = 0;
    for (int i = 0; i < 4 * 96; i++) differ += fabsf(out[0][i] - out[1][i]) > 1e-5f * (1.0f + fabsf(out[1][i]));
    DZT_EQ_INT(differ, 0);
    dz_device_close(fast);
    dz_device_close(ref);

    /* DZ_CPU_ISA lowers the level; unknown names and levels above the
     * processor's fall back to the best one. */
    setenv("DZ_CPU_ISA", "scalar", 1);
    DZT_EQ_INT(dz_cpu_isa_chosen(), DZ_CPU_ISA_SCALAR);
    setenv("DZ_CPU_ISA", "nonsense", 1);
    DZT_EQ_INT(dz_cpu_isa_chosen(), dz_cpu_isa_supported());
    setenv("DZ_CPU_ISA", "avx512", 1);
    DZT_EQ_INT(dz_cpu_isa_chosen(), dz_cpu_isa_runs(DZ_CPU_ISA_AVX512) ? DZ_CPU_ISA_AVX512 : dz_cpu_isa_supported());
    setenv("DZ_CPU_ISA", "neon", 1);
    DZT_EQ_INT(dz_cpu_isa_chosen(), dz_cpu_isa_runs(DZ_CPU_ISA_NEON) ? DZ_CPU_ISA_NEON : dz_cpu_isa_supported());
#if defined(__aarch64__)
    DZT_EQ_INT(dz_cpu_isa_supported(), DZ_CPU_ISA_NEON);
#endif
    setenv("DZ_CPU_ISA", "scalar", 1);
    DZT_OK(dz_device_open("cpu", &fast));
    if (fast) DZT_CHECK(strstr(dz_device_props_get(fast)->description, "scalar") != NULL, "%s",
                        dz_device_props_get(fast)->description);
    dz_device_close(fast);
    unsetenv("DZ_CPU_ISA");
    DZT_EQ_STR(dz_cpu_isa_name(DZ_CPU_ISA_AVX2), "avx2");
    DZT_EQ_STR(dz_cpu_isa_name(DZ_CPU_ISA_NEON), "neon");
    DZT_EQ_STR(dz_cpu_isa_name(DZ_CPU_ISA_COUNT), "?");
}

/* The conformance suite on the "cpu" device at every level DZ_CPU_ISA can
 * choose (the harness compares against "cpu-ref"): every case native, none
 * failed. */
static void test_conformance_levels(void) {
    for (int isa = 0; isa < DZ_CPU_ISA_COUNT; isa++) {
        if (!dz_cpu_isa_runs((dz_cpu_isa)isa)) continue;
        setenv("DZ_CPU_ISA", dz_cpu_isa_name((dz_cpu_isa)isa), 1);
        dz_device *dev = NULL;
        DZT_OK(dz_device_open("cpu", &dev));
        dz_conformance_report *r = NULL;
        if (dev) DZT_OK(dz_conformance_run(dev, NULL, &r));
        if (r) {
            const dz_conformance_summary *s = dz_conformance_report_summary(r);
            DZT_CHECK(s->n_failed == 0 && s->n_native == s->n_cases && s->n_cases >= 150,
                      "conformance of cpu [%s]: %d cases, %d native, %d failed", dz_cpu_isa_name((dz_cpu_isa)isa),
                      (int)s->n_cases, (int)s->n_native, (int)s->n_failed);
        }
        dz_conformance_report_destroy(r);
        dz_device_close(dev);
    }
    unsetenv("DZ_CPU_ISA");
}

/* Refusals are the reference's: unsupported nodes, missing memory, bad ids. */
static void test_refusals(void) {
    dz_tensor *w = tensor(DZ_TYPE_Q4_0, 64, 3, 1, 1, 0), *x = tensor(DZ_TYPE_F32, 32, 2, 1, 1, 0);
    dz_tensor *n = node(DZ_OP_MUL_MAT, tensor(DZ_TYPE_F32, 3, 2, 1, 1, 0), w, x, NULL, NULL);
    DZT_FAILS(dz_cpu_fast_compute_node(n, 2, dz_cpu_isa_supported()), DZ_ERR_UNSUPPORTED); /* K differs */
    dz_tensor *table = tensor(DZ_TYPE_F32, 8, 5, 1, 1, 0), *ids = tensor(DZ_TYPE_I32, 2, 1, 1, 1, 0);
    ((int32_t *)ids->data)[1] = 5;
    n = node(DZ_OP_GET_ROWS, tensor(DZ_TYPE_F32, 8, 2, 1, 1, 0), table, ids, NULL, NULL);
    DZT_FAILS(dz_cpu_fast_compute_node(n, 2, dz_cpu_isa_supported()), DZ_ERR_ARG);
    n->data = NULL;
    DZT_FAILS(dz_cpu_fast_compute_node(n, 2, dz_cpu_isa_supported()), DZ_ERR_ARG);
    free_all();
}

int main(void) {
    test_quantizer();
    test_mul_mat();
    test_elementwise();
    test_rope_softmax();
    test_attention();
    test_devices();
    test_conformance_levels();
    test_refusals();
    return dzt_done();
}
