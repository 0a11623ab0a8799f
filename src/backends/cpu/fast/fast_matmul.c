/* MUL_MAT on the fast path: out (N, M, B2, B3) = W (K, N, b2, b3) x X (K, M, B2, B3).
 *
 * A task runs in two phases separated by one barrier:
 *  1. X is prepared: quantized to Q8_0 as the reference does, with the sums
 *     that undo the panel offset (quantized W); rounded to fp16 values (F16
 *     W); gathered into rows (strided X). The rows are split across the
 *     threads; a single X row (decode) is prepared by every thread into its
 *     own memory instead, which saves the barrier.
 *  2. Work items are handed out dynamically (a thread that is interrupted
 *     does less): for quantized W one item is one panel of R weight rows,
 *     packed into the thread's memory and multiplied with all X rows of its
 *     batch, so every weight byte is read once; for float W one item is a
 *     block of rows x columns (fgemm tiles it in registers).
 * Quantized dots follow the reference's float structure (dz_fast_sum) and
 * are bit-identical to it. */
#include <math.h>
#include <string.h>

#include "backends/cpu/fast/fast.h"
#include "tensor/convert.h"

enum {
    PANELS = 4,      /* quantized W, few X rows: panels of one work item (one run of memory), at most */
    ITEMS_PER_THREAD = 8,
    K_ROWS = 32,     /* K-quant W: rows of one work item */
    FLOAT_ROWS = 64, /* float W: rows x columns of one work item */
    FLOAT_COLS = 64,
    PACKED_MIN_COLS = 8, /* float W: X rows from which weights are packed */
};

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

dz_fast_xq_layout dz_fast_xq_layout_for(int64_t k) {
    dz_fast_xq_layout l;
    const size_t nb = (size_t)k / 32;
    l.d_off = align64((size_t)k);
    l.corr4_off = l.d_off + align64(nb * sizeof(float));
    l.corr32_off = l.corr4_off + align64(nb * 8 * sizeof(int32_t));
    l.gsum_off = l.corr32_off + align64(nb * sizeof(int32_t));
    l.s_off = l.gsum_off + align64(nb * sizeof(int16_t));
    l.bsum16_off = l.s_off + align64(nb * sizeof(float));
    l.stride = l.bsum16_off + align64(2 * nb * sizeof(int16_t));
    return l;
}

/* ---- packing, portable ---- */

/* Any level, any R: rows >= `rows` repeat row 0 (their results are never stored). */
static void pack_portable(dz_fast_qfmt fmt, int R, const dz_fast_pack_args *a) {
    int8_t level[32];
    for (int64_t b = 0; b < a->nblk; b++) dz_fast_pack_prefetch(a, b);
    for (int r = 0; r < R; r++) {
        const char *row = a->w + (size_t)(r < a->rows ? r : 0) * a->row_bytes;
        for (int64_t b = 0; b < a->nblk; b++) {
            uint16_t d, m = 0;
            if (fmt == DZ_FAST_Q4_1) {
                const dz_block_q4_1 *blk = (const dz_block_q4_1 *)row + b;
                dz_levels_q4_1(blk, level);
                d = blk->d;
                m = blk->m;
            } else if (fmt == DZ_FAST_Q5_1) {
                const dz_block_q5_1 *blk = (const dz_block_q5_1 *)row + b;
                dz_levels_q5_1(blk, level);
                d = blk->d;
                m = blk->m;
            } else if (fmt == DZ_FAST_Q4_0) {
                const dz_block_q4_0 *blk = (const dz_block_q4_0 *)row + b;
                dz_levels_q4_0(blk, level);
                d = blk->d;
            } else if (fmt == DZ_FAST_Q5_0) {
                const dz_block_q5_0 *blk = (const dz_block_q5_0 *)row + b;
                dz_levels_q5_0(blk, level);
                d = blk->d;
            } else if (fmt == DZ_FAST_IQ4_NL) {
                const dz_block_iq4_nl *blk = (const dz_block_iq4_nl *)row + b;
                dz_levels_iq4_nl(blk, level);
                d = blk->d;
            } else {
                const dz_block_q8_0 *blk = (const dz_block_q8_0 *)row + b;
                memcpy(level, blk->qs, 32);
                d = blk->d;
            }
            uint8_t *dst = a->panel + ((size_t)b * 8 * R + (size_t)r) * 4;
            for (int g = 0; g < 8; g++)
                for (int j = 0; j < 4; j++) dst[(size_t)g * R * 4 + j] = (uint8_t)(level[4 * g + j] + a->offset);
            a->scales[b * R + r] = dz_fp16_to_fp32(d);
            if (a->mins) a->mins[b * R + r] = dz_fp16_to_fp32(m);
        }
    }
}

/* ---- phase 1: X rows ---- */

/* Row r (= m + M * (i2 + B2 * i3)) of x as contiguous floats: x's own
 * memory when its elements are adjacent, else gathered into buf. */
static const float *x_row(const dz_tensor *x, int64_t r, float *buf) {
    const int64_t i1 = r % x->ne[1], i2 = r / x->ne[1] % x->ne[2], i3 = r / (x->ne[1] * x->ne[2]);
    const char *p = dz_cpu_at(x, 0, i1, i2, i3);
    if (x->nb[0] == sizeof(float)) return (const float *)p;
    for (int64_t i = 0; i < x->ne[0]; i++) memcpy(&buf[i], p + (size_t)i * x->nb[0], sizeof(float));
    return buf;
}

/* X rows for packed float tiles: row r (column m of batch bi) lands in
 * column m % pnc of tile m / pnc of its batch; the last row of a batch also
 * zeroes the columns that pad its last tile. */
static void tile_x_row(const dz_fast_task *t, int64_t r, const float *row, float *dst) {
    const int64_t M = t->node->src[1]->ne[1], K = t->node->src[1]->ne[0], pnc = t->k->pnc;
    const int64_t tiles = (M + pnc - 1) / pnc, bi = r / M, m = r % M;
    float *tile = dst + (size_t)((bi * tiles + m / pnc) * K) * (size_t)pnc;
    for (int64_t i = 0; i < K; i++) tile[i * pnc + m % pnc] = row[i];
    if (m == M - 1)
        for (int64_t c = m % pnc + 1; c < pnc; c++)
            for (int64_t i = 0; i < K; i++) tile[i * pnc + c] = 0.0f;
}

/* Q8_1's s of each block of a prepared row (its q as Q8_0's): the
 * reference's d * sum(q), d = amax / 127 before fp16 rounding. */
static void q8_1_sums(const float *row, int64_t k, const char *at, dz_fast_xq_layout xl) {
    const int8_t *q = (const int8_t *)at;
    float *s = (float *)(at + xl.s_off);
    for (int64_t b = 0; b < k / 32; b++) {
        float amax = 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            amax = fmaxf(amax, fabsf(row[32 * b + j]));
            sum += q[32 * b + j];
        }
        s[b] = dz_fp16_to_fp32(dz_fp32_to_fp16(amax / 127.0f * (float)sum));
    }
}

/* Prepares X rows [lo, hi) into dst (row r at r * stride, or tiled). buf:
 * 2 K floats of scratch. */
static void prepare_x(const dz_fast_task *t, int64_t lo, int64_t hi, char *dst, float *buf) {
    const dz_tensor *x = t->node->src[1];
    const int64_t k = x->ne[0];
    for (int64_t r = lo; r < hi; r++) {
        const float *row = x_row(x, r, buf);
        if (t->plan.mm.x_tiled) {
            if (t->node->src[0]->type == DZ_TYPE_F16) {
                t->k->round_f16(row, buf + k, k);
                row = buf + k;
            }
            tile_x_row(t, r, row, (float *)dst);
            continue;
        }
        const dz_fast_xq_layout xl = t->plan.mm.xl;
        char *at = dst + (size_t)r * xl.stride;
        if (t->plan.mm.qfmt >= 0) {
            t->k->quantize_q8_0(row, k, t->plan.mm.offset, (int8_t *)at, (float *)(at + xl.d_off),
                                (int32_t *)(at + xl.corr4_off), (int32_t *)(at + xl.corr32_off));
            if (t->plan.mm.qfmt == DZ_FAST_Q4_1 || t->plan.mm.qfmt == DZ_FAST_Q5_1) q8_1_sums(row, k, at, xl);
        } else if (t->plan.mm.kfmt >= 0) {
            t->k->quantize_q8_K(row, k, t->plan.mm.offset, (int8_t *)at, (float *)(at + xl.d_off),
                                (int32_t *)(at + xl.corr4_off), (int16_t *)(at + xl.gsum_off));
            if (t->plan.mm.kfmt == DZ_FAST_Q2_K) {
                const int8_t *q = (const int8_t *)at;
                int16_t *bs = (int16_t *)(at + xl.bsum16_off);
                for (int64_t g = 0; g < k / 16; g++) {
                    int s = 0;
                    for (int j = 0; j < 16; j++) s += q[16 * g + j];
                    bs[g] = (int16_t)s;
                }
            }
        } else {
            float *out = (float *)dst + (size_t)r * t->plan.mm.xf_stride;
            if (t->node->src[0]->type == DZ_TYPE_F16) t->k->round_f16(row, out, k);
            else memcpy(out, row, (size_t)k * sizeof(float));
        }
    }
}

/* Size of the prepared X, or 0 when float W reads X where it is. */
static size_t prepared_x_bytes(const dz_fast_task *t) {
    const dz_tensor *x = t->node->src[1];
    const size_t rows = (size_t)dz_nrows(x);
    if (t->plan.mm.qfmt >= 0 || t->plan.mm.kfmt >= 0) return rows * t->plan.mm.xl.stride;
    if (t->plan.mm.x_tiled) {
        const size_t M = (size_t)x->ne[1], pnc = (size_t)t->k->pnc, tiles = (M + pnc - 1) / pnc;
        return (rows / M) * tiles * pnc * (size_t)x->ne[0] * sizeof(float);
    }
    if (t->node->src[0]->type == DZ_TYPE_F16 || x->nb[0] != sizeof(float) || x->nb[1] % sizeof(float) != 0)
        return rows * t->plan.mm.xf_stride * sizeof(float);
    return 0;
}

/* Runs phase 1; returns the prepared X (NULL: float W reads x directly). */
static const char *phase_prepare(dz_fast_task *t, int ith, int nth, char *mine_x, float *buf) {
    const size_t bytes = prepared_x_bytes(t);
    if (bytes == 0) return NULL;
    const int64_t rows = dz_nrows(t->node->src[1]);
    if (t->plan.mm.x_private) {
        prepare_x(t, 0, rows, mine_x, buf);
        return mine_x;
    }
    int64_t lo, hi;
    dz_cpu_split(rows, ith, nth, &lo, &hi);
    prepare_x(t, lo, hi, t->shared, buf);
    dz_cpu_pool_barrier(t->pool);
    return t->shared;
}

/* ---- batches ---- */

typedef struct batch {
    const char *w;    /* W's matrix for this batch */
    int64_t x_row0;   /* first X row (= output column block) */
    float *out;       /* (N, M) */
} batch;

static batch batch_at(const dz_tensor *out, int64_t bi) {
    const dz_tensor *w = out->src[0], *x = out->src[1];
    const int64_t i2 = bi % x->ne[2], i3 = bi / x->ne[2];
    const int64_t r2 = x->ne[2] / w->ne[2], r3 = x->ne[3] / w->ne[3];
    batch b;
    b.w = (const char *)w->data + (size_t)(i2 / r2) * w->nb[2] + (size_t)(i3 / r3) * w->nb[3];
    b.x_row0 = bi * x->ne[1];
    b.out = (float *)out->data + (size_t)b.x_row0 * (size_t)out->ne[0];
    return b;
}

/* ---- quantized W ---- */

/* Bytes of weights of the panel starting at row row0. */
static size_t panel_bytes_at(const dz_fast_task *t, int64_t row0) {
    const dz_tensor *w = t->node->src[0];
    const int64_t R = t->k->qrows, rows = w->ne[1] - row0 < R ? w->ne[1] - row0 : R;
    return (size_t)rows * w->nb[1];
}

/* Panels of one work item: with many X rows a panel is plenty of work, and
 * small items balance the threads; with few, runs of memory prefetch better,
 * as long as each thread still gets ITEMS_PER_THREAD items or more (the
 * last item to finish sets when all threads can go on). */
static int64_t panels_per_item(const dz_fast_task *t) {
    if (t->node->src[1]->ne[1] >= 16) return 1;
    const int64_t n_panels = (t->node->src[0]->ne[1] + t->k->qrows - 1) / t->k->qrows;
    const int64_t per = n_panels / ((int64_t)ITEMS_PER_THREAD * t->n_threads);
    return per < 1 ? 1 : per > PANELS ? PANELS : per;
}

/* Prefetches the first panel of item it, in memory order. */
static void prefetch_panel(const dz_fast_task *t, int64_t it, int64_t chunks) {
    const dz_tensor *w = t->node->src[0];
    const int64_t row0 = it % chunks * panels_per_item(t) * t->k->qrows;
    const char *first = batch_at(t->node, it / chunks).w + (size_t)row0 * w->nb[1];
    const size_t bytes = panel_bytes_at(t, row0);
    for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(first + o, 0, 3);
}

static void run_quantized(dz_fast_task *t, int ith, int nth) {
    const dz_tensor *out = t->node, *w = out->src[0], *x = out->src[1];
    const dz_fast_kernels *k = t->k;
    const int R = k->qrows;
    const int64_t K = w->ne[0], N = w->ne[1], M = x->ne[1], nblk = K / 32;
    char *mine = t->per_thread + (size_t)ith * t->thread_bytes;
    uint8_t *panel = (uint8_t *)mine;
    float *scales = (float *)(mine + align64((size_t)R * (size_t)K));
    const bool with_min = t->plan.mm.qfmt == DZ_FAST_Q4_1 || t->plan.mm.qfmt == DZ_FAST_Q5_1;
    float *mins = with_min ? scales + align64((size_t)R * (size_t)(K / 32) * sizeof(float)) / sizeof(float) : NULL;
    float *buf = (float *)(mine + t->plan.mm.panel_bytes);
    char *mine_x = (char *)buf + align64((size_t)K * sizeof(float));
    const char *xq = phase_prepare(t, ith, nth, mine_x, buf);

    const dz_fast_qfmt fmt = (dz_fast_qfmt)t->plan.mm.qfmt;
    const dz_fast_pack_fn pack = k->pack[fmt];
    const int64_t per_item = panels_per_item(t);
    const int64_t n_panels = (N + R - 1) / R, chunks = (n_panels + per_item - 1) / per_item;
    const int64_t n_items = chunks * x->ne[2] * x->ne[3];
    dz_fast_pack_args pa = {.row_bytes = w->nb[1], .nblk = nblk, .offset = t->plan.mm.offset, .panel = panel,
                            .scales = scales, .mins = mins};
    dz_fast_qgemm_args a = {.panel = panel, .scales = scales, .mins = mins, .nblk = nblk, .xl = t->plan.mm.xl, .m = M,
                            .ldo = (size_t)N, .sum = t->plan.mm.sum,
                            .wide = fmt == DZ_FAST_Q8_0 || fmt == DZ_FAST_IQ4_NL};
    /* Each thread claims its next item before starting the last panel of the
     * current one, so that panel's packing can prefetch the next one's. */
    int64_t it = dz_fast_next_item(t, n_items);
    if (it >= 0) prefetch_panel(t, it, chunks);
    while (it >= 0) {
        const int64_t following = dz_fast_next_item(t, n_items);
        const batch b = batch_at(out, it / chunks);
        const int64_t p0 = it % chunks * per_item, p1 = p0 + per_item < n_panels ? p0 + per_item : n_panels;
        for (int64_t p = p0; p < p1; p++) {
            const int64_t row0 = p * R;
            pa.rows = (int)(N - row0 < R ? N - row0 : R);
            pa.w = b.w + (size_t)row0 * w->nb[1];
            if (p + 1 < p1) {
                pa.prefetch = pa.w + (size_t)R * w->nb[1];
                pa.prefetch_bytes = panel_bytes_at(t, row0 + R);
            } else if (following >= 0) {
                const int64_t next_row0 = following % chunks * per_item * R;
                pa.prefetch = batch_at(out, following / chunks).w + (size_t)next_row0 * w->nb[1];
                pa.prefetch_bytes = panel_bytes_at(t, next_row0);
            } else {
                pa.prefetch = NULL;
            }
            if (M == 1 && k->qgemv[fmt]) { /* one X row: no panel */
                const dz_fast_qgemv_args g = {.src = pa, .x = xq + (size_t)b.x_row0 * a.xl.stride, .xl = a.xl,
                                              .out = b.out + row0, .sum = a.sum};
                k->qgemv[fmt](&g);
                continue;
            }
            if (pack) pack(&pa);
            else pack_portable(fmt, R, &pa);
            a.rows = pa.rows;
            a.x = xq + (size_t)b.x_row0 * a.xl.stride;
            a.out = b.out + row0;
            k->qgemm(&a);
        }
        it = following;
    }
}

/* While the previous node finishes: the first panel of item ith, which
 * thread ith usually claims first. */
static void warm_quantized(const dz_fast_task *t, int ith, int nth) {
    (void)nth;
    const dz_tensor *w = t->node->src[0], *x = t->node->src[1];
    const int64_t per_item = panels_per_item(t);
    const int64_t n_panels = (w->ne[1] + t->k->qrows - 1) / t->k->qrows, chunks = (n_panels + per_item - 1) / per_item;
    if (ith < chunks * x->ne[2] * x->ne[3]) prefetch_panel(t, ith, chunks);
}

/* ---- K-quant W ---- */

/* The first rows of item ith (see warm_quantized). */
static void warm_kquant(const dz_fast_task *t, int ith, int nth) {
    (void)nth;
    const dz_tensor *w = t->node->src[0];
    if ((int64_t)ith * K_ROWS >= w->ne[1]) return;
    const int64_t rows = w->ne[1] - (int64_t)ith * K_ROWS < 4 ? w->ne[1] - (int64_t)ith * K_ROWS : 4;
    const char *first = (const char *)w->data + (size_t)ith * K_ROWS * w->nb[1];
    for (size_t o = 0; o < (size_t)rows * w->nb[1]; o += 64) __builtin_prefetch(first + o, 0, 3);
}

static void run_kquant(dz_fast_task *t, int ith, int nth) {
    const dz_tensor *out = t->node, *w = out->src[0], *x = out->src[1];
    const int64_t K = w->ne[0], N = w->ne[1];
    char *mine = t->per_thread + (size_t)ith * t->thread_bytes;
    float *buf = (float *)mine;
    char *mine_x = mine + align64((size_t)K * sizeof(float));
    const char *xq = phase_prepare(t, ith, nth, mine_x, buf);

    const int64_t chunks = (N + K_ROWS - 1) / K_ROWS, n_items = chunks * x->ne[2] * x->ne[3];
    dz_fast_kgemm_args a = {.row_bytes = w->nb[1], .nsb = K / 256, .xl = t->plan.mm.xl, .m = x->ne[1],
                            .ldo = (size_t)N};
    /* The next item is claimed before this one runs (see run_float). */
    bool cold = true;
    for (int64_t it = dz_fast_next_item(t, n_items), following; it >= 0; it = following, cold = false) {
        following = dz_fast_next_item(t, n_items);
        const batch b = batch_at(out, it / chunks);
        const int64_t r0 = it % chunks * K_ROWS;
        a.w = b.w + (size_t)r0 * w->nb[1];
        a.next_w = following >= 0 ? batch_at(out, following / chunks).w + (size_t)(following % chunks * K_ROWS) * w->nb[1]
                                  : NULL;
        a.cold = cold;
        a.rows = N - r0 < K_ROWS ? N - r0 : K_ROWS;
        a.x = xq + (size_t)b.x_row0 * a.xl.stride;
        a.out = b.out + r0;
        t->k->kgemm[t->plan.mm.kfmt](&a);
    }
}

/* ---- float W ---- */

/* The first rows of item ith when X is one row (see warm_quantized). */
static void warm_float(const dz_fast_task *t, int ith, int nth) {
    (void)nth;
    const dz_tensor *w = t->node->src[0], *x = t->node->src[1];
    if (dz_nrows(x) != 1 || (int64_t)ith * FLOAT_ROWS >= w->ne[1]) return;
    const int64_t rows = w->ne[1] - (int64_t)ith * FLOAT_ROWS < 4 ? w->ne[1] - (int64_t)ith * FLOAT_ROWS : 4;
    const char *first = (const char *)w->data + (size_t)ith * FLOAT_ROWS * w->nb[1];
    for (size_t o = 0; o < (size_t)rows * w->nb[1]; o += 64) __builtin_prefetch(first + o, 0, 3);
}

static void run_float(dz_fast_task *t, int ith, int nth) {
    const dz_tensor *out = t->node, *w = out->src[0], *x = out->src[1];
    const dz_fast_kernels *k = t->k;
    const int64_t K = w->ne[0], N = w->ne[1], M = x->ne[1];
    char *mine = t->per_thread + (size_t)ith * t->thread_bytes;
    float *buf = (float *)mine, *panel = (float *)(mine + 2 * align64((size_t)K * sizeof(float)));
    char *mine_x = (char *)panel + align64((size_t)k->frows * (size_t)k->fkc * sizeof(float));
    const char *xp = phase_prepare(t, ith, nth, mine_x, buf);

    /* Packed panels of frows rows x all columns, or blocks of rows x columns. */
    const bool packed = t->plan.mm.x_tiled;
    const int64_t rows_per = packed ? k->frows : FLOAT_ROWS, cols_per = packed ? M : FLOAT_COLS;
    const int64_t row_blocks = (N + rows_per - 1) / rows_per, col_blocks = (M + cols_per - 1) / cols_per;
    const int64_t per_batch = row_blocks * col_blocks, n_items = per_batch * x->ne[2] * x->ne[3];
    dz_fast_fgemm_args a = {.w_stride = w->nb[1], .wtype = w->type, .k = K, .ldo = (size_t)N};
    /* The next item is claimed before this one runs, so that its first rows
     * are prefetched while this one's last tile runs. */
    for (int64_t it = dz_fast_next_item(t, n_items), following; it >= 0; it = following) {
        following = dz_fast_next_item(t, n_items);
        const int64_t bi = it / per_batch, rb = it % per_batch % row_blocks, cb = it % per_batch / row_blocks;
        const batch b = batch_at(out, bi);
        const int64_t r0 = rb * rows_per, c0 = cb * cols_per;
        a.w = b.w + (size_t)r0 * w->nb[1];
        a.next_w = following >= 0 ? batch_at(out, following / per_batch).w +
                                        (size_t)(following % per_batch % row_blocks * rows_per) * w->nb[1]
                                  : NULL;
        a.n = N - r0 < rows_per ? N - r0 : rows_per;
        a.m = M - c0 < cols_per ? M - c0 : cols_per;
        if (packed) { /* tiles of the batch; c0 = 0 */
            const int64_t tiles = (M + k->pnc - 1) / k->pnc;
            a.x = (const float *)xp + (size_t)(bi * tiles * K) * (size_t)k->pnc;
        } else if (xp) {
            a.x_stride = t->plan.mm.xf_stride;
            a.x = (const float *)xp + (size_t)(b.x_row0 + c0) * a.x_stride;
        } else { /* X rows read in place: equal strides within a batch */
            const int64_t i2 = bi % x->ne[2], i3 = bi / x->ne[2];
            a.x_stride = x->nb[1] / sizeof(float);
            a.x = (const float *)dz_cpu_at(x, 0, c0, i2, i3);
        }
        a.out = b.out + (size_t)c0 * (size_t)N + (size_t)r0;
        if (packed) k->fgemm_packed(&a, panel);
        else k->fgemm(&a);
    }
}

/* ---- planning ---- */

/* The reference's sum structure for W x X (see cpu_matmul.c's dot_for). */
static dz_fast_sum sum_for(const dz_tensor *w, const dz_tensor *x) {
    if (w->type == DZ_TYPE_Q4_0 && w->ne[1] % 8 == 0 && w->ne[2] == 1 && w->ne[3] == 1) return DZ_FAST_SUM_SINGLE;
    if (w->type == DZ_TYPE_IQ4_NL && x->ne[1] < 2) return DZ_FAST_SUM_PAIRS;
    return DZ_FAST_SUM_LANES;
}

bool dz_fast_plan_mul_mat(dz_fast_task *t) {
    const dz_tensor *w = t->node->src[0], *x = t->node->src[1];
    const int64_t K = w->ne[0], rows_x = dz_nrows(x);
    const size_t gather = align64((size_t)K * sizeof(float));
    t->plan.mm.x_private = rows_x == 1 && t->n_threads > 1;
    t->plan.mm.qfmt = t->plan.mm.kfmt = -1;
    t->plan.mm.x_tiled = false;
    switch (w->type) {
    case DZ_TYPE_Q2_K:
    case DZ_TYPE_Q3_K:
    case DZ_TYPE_Q4_K:
    case DZ_TYPE_Q5_K:
    case DZ_TYPE_Q6_K: {
        switch (w->type) {
        case DZ_TYPE_Q2_K: t->plan.mm.kfmt = DZ_FAST_Q2_K; break;
        case DZ_TYPE_Q3_K: t->plan.mm.kfmt = DZ_FAST_Q3_K; break;
        case DZ_TYPE_Q4_K: t->plan.mm.kfmt = DZ_FAST_Q4_K; break;
        case DZ_TYPE_Q5_K: t->plan.mm.kfmt = DZ_FAST_Q5_K; break;
        default: t->plan.mm.kfmt = DZ_FAST_Q6_K; break;
        }
        if (!t->k->kgemm[t->plan.mm.kfmt]) return false;
        /* Q6_K's levels are q - 32, Q3_K's q - 4 */
        t->plan.mm.offset = w->type == DZ_TYPE_Q6_K ? 32 : w->type == DZ_TYPE_Q3_K ? 4 : 0;
        t->plan.mm.xl = dz_fast_xq_layout_for(K);
        const size_t xbytes = prepared_x_bytes(t);
        t->shared_bytes = t->plan.mm.x_private ? 0 : xbytes;
        t->thread_bytes = gather + (t->plan.mm.x_private ? xbytes : 0);
        t->fn = run_kquant;
        t->warm = warm_kquant;
        return true;
    }
    case DZ_TYPE_Q4_0:
    case DZ_TYPE_Q8_0:
    case DZ_TYPE_Q5_0:
    case DZ_TYPE_IQ4_NL:
    case DZ_TYPE_Q4_1:
    case DZ_TYPE_Q5_1: {
        const size_t R = (size_t)t->k->qrows;
        switch (w->type) {
        case DZ_TYPE_Q4_0: t->plan.mm.qfmt = DZ_FAST_Q4_0; t->plan.mm.offset = 8; break;
        case DZ_TYPE_Q5_0: t->plan.mm.qfmt = DZ_FAST_Q5_0; t->plan.mm.offset = 16; break;
        case DZ_TYPE_IQ4_NL: t->plan.mm.qfmt = DZ_FAST_IQ4_NL; t->plan.mm.offset = t->k->wide_offset; break;
        case DZ_TYPE_Q4_1: t->plan.mm.qfmt = DZ_FAST_Q4_1; t->plan.mm.offset = 0; break;
        case DZ_TYPE_Q5_1: t->plan.mm.qfmt = DZ_FAST_Q5_1; t->plan.mm.offset = 0; break;
        default: t->plan.mm.qfmt = DZ_FAST_Q8_0; t->plan.mm.offset = t->k->wide_offset; break;
        }
        t->plan.mm.sum = sum_for(w, x);
        t->plan.mm.xl = dz_fast_xq_layout_for(K);
        t->plan.mm.panel_bytes = align64(R * (size_t)K) + 2 * align64(R * (size_t)(K / 32) * sizeof(float)); /* + mins */
        const size_t xbytes = prepared_x_bytes(t);
        t->shared_bytes = t->plan.mm.x_private ? 0 : xbytes;
        t->thread_bytes = t->plan.mm.panel_bytes + gather + (t->plan.mm.x_private ? xbytes : 0);
        t->fn = run_quantized;
        t->warm = warm_quantized;
        return true;
    }
    case DZ_TYPE_F32:
    case DZ_TYPE_F16: {
        if (w->nb[0] != dz_type_info((int)w->type)->type_size) return false; /* gaps between weights */
        t->plan.mm.xf_stride = (size_t)(K + 15) / 16 * 16;
        t->plan.mm.x_tiled = t->k->fgemm_packed && x->ne[1] >= PACKED_MIN_COLS;
        const size_t xbytes = prepared_x_bytes(t);
        t->shared_bytes = t->plan.mm.x_private ? 0 : xbytes;
        t->thread_bytes = 2 * gather + align64((size_t)t->k->frows * (size_t)t->k->fkc * sizeof(float)) +
                          (t->plan.mm.x_private ? xbytes : 0);
        t->fn = run_float;
        t->warm = warm_float;
        return true;
    }
    default:
        return false;
    }
}
