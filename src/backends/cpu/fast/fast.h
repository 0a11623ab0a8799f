/* Internals of the CPU backend's fast path: the per-ISA kernel tables, the
 * per-node tasks and the graph executor.
 *
 * Structure. The executor (fast_graph.c) turns a graph into one task per
 * node, sizes the scratch memory once, and runs all nodes in a single pool
 * run, the threads meeting at a barrier between nodes unless the next node
 * cannot touch what the nodes since the last barrier touch. Each op's task (fast_matmul.c,
 * fast_ops.c, fast_attention.c) splits its work across the threads and calls
 * the kernels of the chosen ISA level through a dz_fast_kernels table.
 * The tables are made from one source (kernels.inc) compiled once per level
 * (kernels_<level>.c) over a small vector vocabulary (simd_<level>.h).
 *
 * Formats without a fast kernel at the chosen level (BF16 matmuls; K-quants
 * below AVX2 and on NEON; GET_ROWS; strided layouts the fast kernels do
 * not take) run the reference kernel inside the same run.
 *
 * Every fast quantized matmul is bit-identical to the reference (and so to
 * llama.cpp's x86 arithmetic, which the reference reproduces) at every level
 * with fused multiply-add (all but SSE2: scalar's fmaf, AVX2, AVX-512,
 * NEON); SSE2, without it, differs in the last bits.
 *
 * Quantized matmul, Q4_0, Q8_0, Q5_0, IQ4_NL, Q4_1, Q5_1. Weights stream through "panels": R rows
 * (R = the table's qrows) of a quantized matrix unpacked into 8-bit levels,
 * laid out so that one vector holds the same 4 consecutive elements of R rows:
 *   panel[((b * 8 + g) * R + r) * 4 + j] = level of row r, element 32b + 4g + j, plus o
 * where o is the format's offset making levels unsigned (Q4_0: 8; Q5_0: 16;
 * Q4_1, Q5_1: 0, their minimums apart;
 * Q8_0 and IQ4_NL, whose levels span 8 signed bits: the table's wide_offset). One multiply-add of 4-byte groups (vpdpbusd and its
 * equivalents) then yields, in lane r, the integer dot of row r's 4 elements
 * with 4 activations: exactly ggml's integer "lanes", so the float sums can
 * follow the reference's (= llama.cpp's) order bit for bit. Activations are
 * quantized to Q8_0 exactly as the reference does (dz_fast_kernels.quantize_q8_0)
 * and stored with the sums that undo the offset o. With one X row (decode)
 * the levels go from the weights straight to the multiply-adds (qgemv);
 * with many, a packed panel serves every X row (qgemm).
 *
 * K-quants (Q2_K .. Q6_K) keep each row's 8 lanes in a 256-bit half instead
 * (kgemm, see below); F32/F16 weights run in float (fgemm, fgemm_packed). */
#ifndef DZ_CPU_FAST_H
#define DZ_CPU_FAST_H

#include <stdatomic.h>

#include "backends/cpu/cpu_impl.h"

/* ---- quantized matmul: formats, prepared activations, panels ---- */

typedef enum dz_fast_qfmt {
    DZ_FAST_Q4_0, DZ_FAST_Q8_0, DZ_FAST_Q5_0, DZ_FAST_IQ4_NL, DZ_FAST_Q4_1, DZ_FAST_Q5_1, DZ_FAST_QFMT_COUNT
} dz_fast_qfmt;

/* The float structure of a dot product (the reference's, per format):
 *  SINGLE  one float sum: sum = fma((float)block_dot, d_w * d_x, sum)
 *  LANES   8 float lanes: lane l = fma((float)dot of elements 4l..4l+3 of
 *          the block, d_w * d_x, lane l); at the end the lanes are added in
 *          ggml's hsum_float_8 order ((l4+l0)+(l6+l2)) + ((l5+l1)+(l7+l3)).
 *  PAIRS   (one X row only) LANES with even and odd blocks in two sets of
 *          lanes, added lane by lane before the horizontal sum; an odd last
 *          block's integer dot then added alone, unfused: sum + (d_x * d_w) * dot. */
typedef enum dz_fast_sum { DZ_FAST_SUM_SINGLE, DZ_FAST_SUM_LANES, DZ_FAST_SUM_PAIRS } dz_fast_sum;

/* One prepared activation row of k elements at base:
 *   int8 q[k] at 0;
 *   float d[] at d_off: the scale of each block (Q8_0: k/32, fp16-rounded;
 *       Q8_K: k/256);
 *   int32 corr4[k/4] at corr4_off: -o * the sum of each 4 q;
 *   int32 corr32[k/32] at corr32_off: -o * the sum of each 32 (Q8_0);
 *   int16 gsum[k/32] at gsum_off: the sum of each 32 q (Q8_K);
 *   float s[k/32] at s_off: Q8_1's s of each block, d * sum(q) fp16-rounded
 *       (d before rounding: amax / 127), for Q4_1/Q5_1;
 *   int16 bsum16[k/16] at bsum16_off: the sum of each 16 q (Q8_K, for Q2_K).
 * Rows are stride bytes apart. */
typedef struct dz_fast_xq_layout {
    size_t stride, d_off, corr4_off, corr32_off, gsum_off, s_off, bsum16_off;
} dz_fast_xq_layout;

dz_fast_xq_layout dz_fast_xq_layout_for(int64_t k);

/* out[c * ldo + r] = dot(panel row r, prepared X row c) for r < rows,
 * c < m, with the sum structure `sum`. */
typedef struct dz_fast_qgemm_args {
    const uint8_t *panel;   /* [nblk][8][R][4] */
    const float *scales;    /* [nblk][R]: d_w */
    const float *mins;      /* [nblk][R]: m_w (Q4_1, Q5_1: out += sum of m_w * s_x, in a float
                             * of its own added last; LANES only), or NULL */
    int64_t nblk;           /* blocks of 32 per row */
    int rows;               /* valid rows, <= R */
    const char *x;          /* prepared X row 0 */
    dz_fast_xq_layout xl;
    int64_t m;              /* X rows */
    float *out;
    size_t ldo;
    dz_fast_sum sum;
    bool wide;              /* levels span 8 signed bits (packed with the table's wide_offset) */
} dz_fast_qgemm_args;

/* Packs rows [0, rows) (rows <= R; the rest of the panel is garbage that
 * is never stored) of nblk blocks each, row i at w + i * row_bytes, into
 * panel and scales, levels plus offset. Meanwhile it prefetches
 * [prefetch, prefetch + prefetch_bytes), the next panel's weights: a panel
 * reads R short runs at once, which the hardware prefetchers do not see
 * coming. */
typedef struct dz_fast_pack_args {
    const char *w;
    size_t row_bytes;
    int rows;
    int64_t nblk;
    int offset;
    uint8_t *panel;
    float *scales;
    float *mins;            /* Q4_1, Q5_1: the blocks' m as floats, like scales */
    const char *prefetch;
    size_t prefetch_bytes;
} dz_fast_pack_args;
typedef void (*dz_fast_pack_fn)(const dz_fast_pack_args *a);

/* The prefetches of block b of nblk: an even share of the region's lines. */
static inline void dz_fast_pack_prefetch(const dz_fast_pack_args *a, int64_t b) {
    if (!a->prefetch) return;
    const int64_t lines = (int64_t)(a->prefetch_bytes + 63) / 64, per = (lines + a->nblk - 1) / a->nblk;
    for (int64_t i = b * per; i < (b + 1) * per && i < lines; i++) __builtin_prefetch(a->prefetch + 64 * i, 0, 3);
}

/* One panel's rows times one prepared X row, without packing: out[r] for
 * r < src.rows (src as for a pack; its panel and scales are unused). */
typedef struct dz_fast_qgemv_args {
    dz_fast_pack_args src;
    const char *x;
    dz_fast_xq_layout xl;
    float *out;
    dz_fast_sum sum;
} dz_fast_qgemv_args;

/* ---- K-quants (Q2_K .. Q6_K) against Q8_K activations ----
 * Their reference (= llama.cpp's AVX2 vec_dot) keeps 8 integer lanes per
 * 32-element group, lane l summing elements 4l..4l+3 times the group's
 * scale across a super-block: exactly the int32 lanes of a byte product of
 * 32 bytes, so these kernels keep each row's 8 lanes in a 256-bit half and
 * read weights row by row. out[c * ldo + r] for r < rows, c < m. */
typedef enum dz_fast_kfmt {
    DZ_FAST_Q4_K, DZ_FAST_Q5_K, DZ_FAST_Q6_K, DZ_FAST_Q2_K, DZ_FAST_Q3_K, DZ_FAST_KFMT_COUNT
} dz_fast_kfmt;

typedef struct dz_fast_kgemm_args {
    const char *w;          /* row 0 */
    size_t row_bytes;
    int64_t rows;
    int64_t nsb;            /* super-blocks of 256 per row */
    const char *x;          /* prepared X row 0 (Q8_K) */
    dz_fast_xq_layout xl;
    int64_t m;
    float *out;
    size_t ldo;
    const char *next_w;     /* rows the caller reads next (same stride), or NULL: prefetched meanwhile */
    bool cold;              /* nothing of w is on its way yet: prefetch the first tile first */
} dz_fast_kgemm_args;

/* ---- float matmul (F32, F16 weights) ----
 * out[c * ldo + r] = sum_k w[r][k] * x[c][k] for r < n, c < m. F16 weights
 * are converted exactly; x holds floats (for F16 weights already rounded to
 * fp16 values, as the reference rounds them). fgemm_packed reads x in
 * tiles of pnc columns, so that a tile's broadcasts are adjacent: column c,
 * element k at x[(c / pnc * k_total + k) * pnc + c % pnc]. */
typedef struct dz_fast_fgemm_args {
    const char *w;          /* row 0 */
    size_t w_stride;        /* bytes between rows */
    dz_type wtype;          /* F32 or F16 */
    int64_t n;
    const float *x;         /* row 0; fgemm_packed: tile 0 (below) */
    size_t x_stride;        /* floats between rows; fgemm_packed: unused */
    int64_t m;
    int64_t k;
    float *out;
    size_t ldo;
    const char *next_w;     /* rows the caller reads next (same stride), or NULL: prefetched meanwhile */
} dz_fast_fgemm_args;

/* ---- attention: a block of query rows sharing one K/V head ----
 * out row r = softmax over j < visible[r] of (scale * q_r . k_j + mask_r[j])
 * applied to v_j, with an online softmax over tiles of SIMD_VL keys (each
 * tile of K transposed once for all rows). */
typedef struct dz_fast_attn_args {
    const float *q;          /* rows x hd, adjacent */
    int rows;
    int64_t hd;
    const int64_t *visible;  /* keys each row sees (a prefix) */
    const float *const *mask;/* per row: mask[r][j] added to the scaled score, or NULL */
    const char *k, *v;       /* key / value j at k + row_j * kv_stride (hd adjacent floats) */
    size_t kv_stride;
    const int32_t *kv_rows;  /* row_j = kv_rows[j] (a paged cache), or NULL: row_j = j */
    float scale;
    float *const *out;       /* per row: hd floats */
    float *scratch;          /* dz_fast_attn_scratch(rows, hd) floats */
} dz_fast_attn_args;

/* ---- the kernel table of one ISA level ---- */

typedef struct dz_fast_kernels {
    dz_cpu_isa isa;
    int qrows;        /* R: rows of a quantized panel */
    int wide_offset;  /* offset o of formats with 8-bit signed levels (Q8_0): 128 or 0 */

    /* Activations: n floats (n a multiple of 32) -> q (n int8) and d (n/32
     * floats), bit for bit dz_quantize_row_q8_0_with(..., ACTIVATIONS), and
     * the offset sums corr4 (n/4) and corr32 (n/32) for offset o. */
    void (*quantize_q8_0)(const float *x, int64_t n, int o, int8_t *q, float *d, int32_t *corr4,
                          int32_t *corr32);
    /* n floats (n a multiple of 256) -> q, d (n/256) bit for bit
     * dz_quantize_row_q8_K, corr4 for offset o, gsum. */
    void (*quantize_q8_K)(const float *x, int64_t n, int o, int8_t *q, float *d, int32_t *corr4, int16_t *gsum);
    /* NULL where the level has none (the reference computes those). */
    void (*kgemm[DZ_FAST_KFMT_COUNT])(const dz_fast_kgemm_args *a);
    /* Packers by format; NULL: the portable one in fast_matmul.c. */
    dz_fast_pack_fn pack[DZ_FAST_QFMT_COUNT];
    /* Panel times a single X row, fused (decode); NULL: pack, then qgemm. */
    void (*qgemv[DZ_FAST_QFMT_COUNT])(const dz_fast_qgemv_args *a);
    void (*qgemm)(const dz_fast_qgemm_args *a);
    void (*fgemm)(const dz_fast_fgemm_args *a);
    /* Float weights, many X rows: a->n <= frows rows converted into a panel
     * (scratch: frows * fkc floats), tiles of X broadcast. NULL: fgemm only.
     * X comes in tiles of pnc columns (see dz_fast_fgemm_args). */
    void (*fgemm_packed)(const dz_fast_fgemm_args *a, float *panel);
    int frows, fkc, pnc;

    /* Rows of n floats (n >= 0, any alignment). */
    void (*round_f16)(const float *x, float *y, int64_t n); /* y = fp16 value of x */
    void (*add)(const float *a, const float *b, float *y, int64_t n);
    void (*mul)(const float *a, const float *b, float *y, int64_t n);
    void (*scale)(const float *a, float s, float *y, int64_t n);
    void (*silu)(const float *x, float *y, int64_t n);
    void (*swiglu)(const float *gate, const float *up, float *y, int64_t n);
    double (*sum_squares)(const float *x, int64_t n); /* float squares summed in double */
    float (*dot)(const float *a, const float *b, int64_t n);
    void (*axpy)(float a, const float *x, float *y, int64_t n); /* y += a * x */
    float (*max)(const float *x, int64_t n);                    /* -inf for n = 0 */
    /* x = exp(x - m) in place; returns the sum of the results in double. */
    double (*exp_sum)(float *x, float m, int64_t n);
    void (*attend)(const dz_fast_attn_args *a);
} dz_fast_kernels;

/* Floats of scratch dz_fast_kernels.attend needs (for any level). */
static inline size_t dz_fast_attn_scratch(int rows, int64_t hd) {
    const size_t hdp = (size_t)(hd + 15) / 16 * 16;
    return (size_t)rows * hdp + hdp * 16 + 2 * (size_t)rows + 16 * (size_t)rows + 64;
}

extern const dz_fast_kernels dz_fast_kernels_scalar;
#if defined(__x86_64__)
extern const dz_fast_kernels dz_fast_kernels_sse2;
extern const dz_fast_kernels dz_fast_kernels_avx2;
extern const dz_fast_kernels dz_fast_kernels_avx512;
#endif
#if defined(__aarch64__)
extern const dz_fast_kernels dz_fast_kernels_neon;
#endif

/* The table of a level (the best level where the processor does not run
 * it: dz_cpu_isa_runs). */
const dz_fast_kernels *dz_fast_kernels_for(dz_cpu_isa isa);

/* ---- tasks: one per node ---- */

typedef struct dz_fast_task dz_fast_task;
typedef void (*dz_fast_fn)(dz_fast_task *t, int ith, int nth);

struct dz_fast_task {
    const dz_tensor *node;
    const dz_fast_kernels *k;
    dz_cpu_pool *pool;       /* for a barrier inside a task (all threads call it) */
    dz_fast_fn fn;
    /* Optional: called by each thread while it waits for the node before
     * this one to finish, to prefetch what it will read first. */
    void (*warm)(const dz_fast_task *t, int ith, int nth);
    size_t shared_bytes;     /* sizes asked for by the planner ... */
    size_t thread_bytes;     /* (the executor then sets it to the stride between threads' memory) */
    char *shared;            /* ... and the memory given by the executor */
    char *per_thread;        /* thread ith's at per_thread + ith * thread_bytes */
    _Atomic int64_t next;    /* work items handed out so far (dynamic scheduling) */
    int n_threads;
    bool barrier_before;     /* the threads meet before this task starts (see fast_graph.c) */
    union {                  /* planner's notes */
        struct {
            int qfmt;            /* dz_fast_qfmt, or -1 (float or K-quant weights) */
            int kfmt;            /* dz_fast_kfmt, or -1 */
            dz_fast_sum sum;
            int offset;          /* o of the format */
            bool x_private;      /* each thread prepares all of X in its own memory */
            dz_fast_xq_layout xl;
            size_t xf_stride;    /* floats per prepared X row (float weights) */
            bool x_tiled;        /* float weights, packed: X prepared in tiles of pnc columns */
            size_t panel_bytes;  /* per thread: packed panel + scales */
        } mm;
    } plan;
};

/* Planners: fill t->fn and the scratch sizes for t->node (supported by
 * dz_cpu_supports_node). Return false to let the reference kernel run it. */
bool dz_fast_plan_mul_mat(dz_fast_task *t);
bool dz_fast_plan_attention(dz_fast_task *t);
bool dz_fast_plan_paged_attention(dz_fast_task *t);
bool dz_fast_plan_op(dz_fast_task *t); /* the other ops (fast_ops.c) */

/* Thread ith's next work item of n, or -1 when all are handed out. */
static inline int64_t dz_fast_next_item(dz_fast_task *t, int64_t n) {
    int64_t i = atomic_fetch_add(&t->next, 1);
    return i < n ? i : -1;
}

/* ---- the executor (one per "cpu" device) ---- */

typedef struct dz_fast_engine {
    const dz_fast_kernels *k;
    dz_cpu_pool *pool;
    char *scratch;
    size_t scratch_size;
    dz_fast_task *tasks;
    int tasks_cap;
} dz_fast_engine;

dz_status dz_fast_engine_init(dz_fast_engine *e, dz_cpu_isa isa, int n_threads);
void dz_fast_engine_release(dz_fast_engine *e); /* frees what init made; e itself is the caller's */
dz_status dz_fast_engine_set_threads(dz_fast_engine *e, int n_threads);
/* Computes nodes[0..n) in order (each supported, operands in host memory). */
dz_status dz_fast_engine_compute(dz_fast_engine *e, dz_tensor *const *nodes, int n);

#endif
