/* MUL_MAT: out (N, M, B2, B3) = W (K, N, b2, b3) x X (K, M, B2, B3),
 * out[m][n] = dot(W row n, X row m), W repeated over dims 2 and 3
 * (r2 = B2 / b2, r3 = B3 / b3). out is contiguous: element (n, m, i2, i3)
 * is float (b M + m) N + n with b = i3 B2 + i2.
 *
 * As on the CPU (src/backends/cpu/cpu_matmul.c), X is first brought to the
 * weights' "dot type", so that results match the CPU reference and
 * llama.cpp: F16 and BF16 weights multiply X rounded to F16 / BF16 (products
 * of two such values are exact in float); quantized weights multiply X
 * quantized per 32 elements (quantize_x: Q8_0 for Q8_0/Q4_0/Q5_0/IQ4_NL,
 * Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants) with exact integer dots per
 * chunk, scaled in float.
 *
 * Kernels: mul_mat_f32_tiled (F32, many X rows: 64 x 64 output tiles
 * through local memory, 4 x 4 per item) and, for every type, a row kernel:
 * a work-group takes one or more W rows and up to MM_ROWS X rows; the items
 * of a W row share its chunks of 32 and their partial sums meet in local
 * memory. */

#define MM_ROWS 8
#define TILE 64  /* outputs per side of a tile of the tiled kernel */
#define TILE_K 16
#define SUB 4    /* each item computes SUB x SUB outputs: a 16 x 16 group */

/* X row r = (m, i2, i3) of x. */
inline global const uchar *x_row(global const uchar *x, ulong off, long4 ne, ulong4 nb, long m, long i2, long i3) {
    return x + off + at4(nb, 0, m, i2, i3);
}

/* F32 weights, many X rows: a 16 x 16 group computes a TILE x TILE tile of
 * out, TILE_K columns of W and X at a time through local memory; item
 * (lx, ly) owns outputs n = n0 + lx + 16 i, m = m0 + ly + 16 j (i, j < SUB),
 * so that neighbouring items touch neighbouring addresses. */
kernel void mul_mat_f32_tiled(CTENSOR(w), CTENSOR(x), global uchar *out, ulong out_off) {
    local float wt[TILE_K][TILE + 1], xt[TILE_K][TILE + 1];
    const int lx = get_local_id(0), ly = get_local_id(1), item = ly * 16 + lx;
    const long K = w_ne.s0, N = w_ne.s1, M = x_ne.s1, B2 = x_ne.s2;
    const long n0 = get_group_id(0) * TILE, m0 = get_group_id(1) * TILE, b = get_group_id(2);
    const long i2 = b % B2, i3 = b / B2;
    global const uchar *wm = w + w_off + at4(w_nb, 0, 0, i2 / (B2 / w_ne.s2), i3 / (x_ne.s3 / w_ne.s3));
    global const uchar *xm = x + x_off + at4(x_nb, 0, 0, i2, i3);
    float acc[SUB][SUB];
    for (int i = 0; i < SUB; i++)
        for (int j = 0; j < SUB; j++) acc[i][j] = 0.0f;
    for (long k0 = 0; k0 < K; k0 += TILE_K) {
        for (int q = 0; q < TILE * TILE_K / 256; q++) { /* 4 values of each tile per item */
            const int idx = item + 256 * q, row = idx / TILE_K, kk = idx % TILE_K;
            const long k = k0 + kk;
            wt[kk][row] = n0 + row < N && k < K ? ld_f32(wm + (n0 + row) * w_nb.s1 + k * w_nb.s0) : 0.0f;
            xt[kk][row] = m0 + row < M && k < K ? ld_f32(xm + (m0 + row) * x_nb.s1 + k * x_nb.s0) : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < TILE_K; kk++) {
            float wv[SUB], xv[SUB];
            for (int i = 0; i < SUB; i++) {
                wv[i] = wt[kk][lx + 16 * i];
                xv[i] = xt[kk][ly + 16 * i];
            }
            for (int i = 0; i < SUB; i++)
                for (int j = 0; j < SUB; j++) acc[i][j] += wv[i] * xv[j];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    global float *o = (global float *)(out + out_off);
    for (int j = 0; j < SUB; j++) {
        const long m = m0 + ly + 16 * j;
        for (int i = 0; i < SUB; i++) {
            const long n = n0 + lx + 16 * i;
            if (n < N && m < M) o[(b * M + m) * N + n] = acc[i][j];
        }
    }
}

/* Row kernels: a group of wg items takes wg / row_items W rows, row_items
 * items each (a power of two near the row's number of chunks, so that short
 * rows do not leave most items idle), and up to MM_ROWS X rows from m0. */

/* Item lid's W row, and its place among that row's items. */
inline long group_row(int row_items, int *part) {
    const int lid = get_local_id(0);
    *part = lid % row_items;
    return get_group_id(0) * (get_local_size(0) / row_items) + lid / row_items;
}

/* The end of a row kernel: sums the partials of each W row's items
 * (scratch: MM_ROWS x group size floats) and stores out[m][n] for the
 * `rows` X rows from m0. */
inline void finish_rows(float acc[MM_ROWS], int rows, int row_items, local float *scratch, global uchar *out,
                        ulong out_off, long n, long N, long m0, long M, long b) {
    const int lid = get_local_id(0), wg = get_local_size(0), part = lid % row_items, first = lid - part;
    for (int j = 0; j < MM_ROWS; j++) scratch[j * wg + lid] = acc[j];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = row_items / 2; s > 0; s /= 2) {
        if (part < s)
            for (int j = 0; j < rows; j++) scratch[j * wg + lid] += scratch[j * wg + lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (n < N && part < rows) ((global float *)(out + out_off))[(b * M + m0 + part) * N + n] = scratch[part * wg + first];
}

/* X (F32, any view) rounded to F16 or BF16 values, contiguous: what the
 * row kernel of F16/BF16 weights multiplies (as the CPU converts X once). */
kernel void round_x(CTENSOR(x), int type, global float *out, long n) {
    const long e = get_global_id(0);
    if (e >= n) return;
    const long4 i = coords_of(e, x_ne);
    const float v = ld_f32(x + x_off + at4(x_nb, i.s0, i.s1, i.s2, i.s3));
    out[e] = type == T_F16 ? round_f16(v) : round_bf16(v);
}

/* Row kernel of F32, F16 and BF16 weights; X is F32 (for F16/BF16 weights,
 * round_x's output). */
inline void mul_mat_plain(int type, CTENSOR(w), CTENSOR(x), global uchar *out, ulong out_off, int row_items,
                          local float *scratch) {
    const long K = w_ne.s0, N = w_ne.s1, M = x_ne.s1, B2 = x_ne.s2;
    const long m0 = get_group_id(1) * MM_ROWS, b = get_group_id(2), i2 = b % B2, i3 = b / B2;
    const int rows = (int)min((long)MM_ROWS, M - m0);
    int part;
    const long n = group_row(row_items, &part);
    global const uchar *wrow = w + w_off + at4(w_nb, 0, min(n, N - 1), i2 / (B2 / w_ne.s2), i3 / (x_ne.s3 / w_ne.s3));
    global const uchar *x0 = x_row(x, x_off, x_ne, x_nb, m0, i2, i3);
    const int esize = type == T_F32 ? 4 : 2;
    float acc[MM_ROWS] = {0.0f};
    for (long c = part; n < N && c * 32 < K; c += row_items) {
        const int len = (int)min((long)32, K - c * 32);
        float wv[32];
        for (int l = 0; l < len; l++) wv[l] = ld_plain(type, wrow + (c * 32 + l) * esize);
        for (int j = 0; j < rows; j++) {
            global const uchar *xp = x0 + j * x_nb.s1 + (ulong)(c * 32) * x_nb.s0;
            float a = 0.0f;
            for (int l = 0; l < len; l++) a += wv[l] * ld_f32(xp + l * x_nb.s0);
            acc[j] += a;
        }
    }
    finish_rows(acc, rows, row_items, scratch, out, out_off, n, N, m0, M, b);
}

#define MUL_MAT_PLAIN(name, type)                                                                            \
    kernel void name(CTENSOR(w), CTENSOR(x), global uchar *out, ulong out_off, int row_items, local float *scratch) { \
        mul_mat_plain(type, w, w_off, w_ne, w_nb, x, x_off, x_ne, x_nb, out, out_off, row_items, scratch);    \
    }
MUL_MAT_PLAIN(mul_mat_f32, T_F32)
MUL_MAT_PLAIN(mul_mat_f16, T_F16)
MUL_MAT_PLAIN(mul_mat_bf16, T_BF16)

/* ---- quantized weights ---- */

/* Dot types of X (quantize_x's mode). */
#define XQ_Q8_0 0
#define XQ_Q8_1 1
#define XQ_Q8_K 2

/* X (K, M, B2, B3) F32 -> xq (K int8 per row, rows in order) and xm (one
 * float4 per chunk of 32: (d, s, bsum of its first 16, bsum of its last 16)),
 * quantized exactly as the CPU quantizes activations (src/tensor/convert.h):
 *   Q8_0: d = fp16(amax / 127), q = round-half-even(x * (127 / amax));
 *   Q8_1: the same, and s = fp16(amax / 127 * sum(q));
 *   Q8_K: per 256, max = the value of largest magnitude (the first),
 *         iscale = -127 / max, q = round-half-even(iscale x), d = 1 / iscale.
 * Work-item e: piece i = e % (K / piece) of X row r = e / (K / piece), a
 * piece being 32 elements (Q8_K: 256). */
kernel void quantize_x(CTENSOR(x), int mode, global char *xq, global float4 *xm) {
    const long K = x_ne.s0, per = mode == XQ_Q8_K ? 256 : 32, e = get_global_id(0);
    const long i = e % (K / per), r = e / (K / per);
    if (r >= x_ne.s1 * x_ne.s2 * x_ne.s3) return;
    global const uchar *src = x_row(x, x_off, x_ne, x_nb, r % x_ne.s1, r / x_ne.s1 % x_ne.s2, r / (x_ne.s1 * x_ne.s2));
    src += (ulong)(i * per) * x_nb.s0;
    global char *q = xq + r * K + i * per;
    global float4 *meta = xm + r * (K / 32) + i * (per / 32);
    if (mode != XQ_Q8_K) {
        float amax = 0.0f;
        for (int l = 0; l < 32; l++) amax = fmax(amax, fabs(ld_f32(src + l * x_nb.s0)));
        const float d = div_rn(amax, 127.0f), id = amax != 0.0f ? div_rn(127.0f, amax) : 0.0f;
        int sum = 0;
        for (int l = 0; l < 32; l++) {
            q[l] = convert_char_sat_rte(ld_f32(src + l * x_nb.s0) * id);
            sum += q[l];
        }
        meta[0] = (float4)(round_f16(d), mode == XQ_Q8_1 ? round_f16(d * (float)sum) : 0.0f, 0.0f, 0.0f);
        return;
    }
    float amax = 0.0f, max = 0.0f;
    for (int l = 0; l < 256; l++) {
        const float v = ld_f32(src + l * x_nb.s0);
        if (fabs(v) > amax) {
            amax = fabs(v);
            max = v;
        }
    }
    const float iscale = amax > 0.0f ? div_rn(-127.0f, max) : 0.0f;
    const float d = amax > 0.0f ? div_rn(1.0f, iscale) : 0.0f;
    for (int c = 0; c < 8; c++) {
        int bsum[2] = {0, 0};
        for (int l = 0; l < 32; l++) {
            const char v = convert_char_sat_rte(iscale * ld_f32(src + (c * 32 + l) * x_nb.s0));
            q[c * 32 + l] = v;
            bsum[l / 16] += v;
        }
        meta[c] = (float4)(d, 0.0f, (float)bsum[0], (float)bsum[1]);
    }
}

/* One chunk of a W row (levels q, scales s) against the same chunk of a
 * quantized X row (levels xq, meta xm). */
inline float dot_chunk(int type, const char q[32], chunk_scales s, global const char *xq, float4 xm) {
    int sum[2] = {0, 0};
    for (int l = 0; l < 32; l++) sum[l / 16] += q[l] * xq[l];
    if (is_k_quant(type)) {
        const float r = (s.d * xm.s0) * (float)(s.sc[0] * sum[0] + s.sc[1] * sum[1]);
        return r - (s.dmin * xm.s0) * (float)(s.mn[0] * (int)xm.s2 + s.mn[1] * (int)xm.s3);
    }
    const float r = (float)(sum[0] + sum[1]) * (s.d * xm.s0);
    return type == T_Q4_1 || type == T_Q5_1 ? r + s.m * xm.s1 : r;
}

/* Row kernel of quantized weights; xq/xm from quantize_x. */
inline void mul_mat_quant(int type, CTENSOR(w), global const char *xq, global const float4 *xm, long4 x_ne,
                          global uchar *out, ulong out_off, int row_items, local float *scratch) {
    const long K = w_ne.s0, N = w_ne.s1, M = x_ne.s1, B2 = x_ne.s2, n_chunks = K / 32;
    const long m0 = get_group_id(1) * MM_ROWS, b = get_group_id(2), i2 = b % B2, i3 = b / B2;
    const int rows = (int)min((long)MM_ROWS, M - m0);
    int part;
    const long n = group_row(row_items, &part);
    global const uchar *wrow = w + w_off + at4(w_nb, 0, min(n, N - 1), i2 / (B2 / w_ne.s2), i3 / (x_ne.s3 / w_ne.s3));
    float acc[MM_ROWS] = {0.0f};
    for (long c = part; n < N && c < n_chunks; c += row_items) {
        int sub;
        global const uchar *blk = chunk_block(type, wrow, c, &sub);
        char q[32];
        levels32(type, blk, sub, q);
        const chunk_scales s = scales_of(type, blk, sub);
        for (int j = 0; j < rows; j++) {
            const long xr = b * M + m0 + j;
            acc[j] += dot_chunk(type, q, s, xq + xr * K + c * 32, xm[xr * n_chunks + c]);
        }
    }
    finish_rows(acc, rows, row_items, scratch, out, out_off, n, N, m0, M, b);
}

#define MUL_MAT_QUANT(name, type)                                                                       \
    kernel void name(CTENSOR(w), global const char *xq, global const float4 *xm, long4 x_ne, global uchar *out, \
                     ulong out_off, int row_items, local float *scratch) {                              \
        mul_mat_quant(type, w, w_off, w_ne, w_nb, xq, xm, x_ne, out, out_off, row_items, scratch);     \
    }
MUL_MAT_QUANT(mul_mat_q8_0, T_Q8_0)
MUL_MAT_QUANT(mul_mat_q4_0, T_Q4_0)
MUL_MAT_QUANT(mul_mat_q4_1, T_Q4_1)
MUL_MAT_QUANT(mul_mat_q5_0, T_Q5_0)
MUL_MAT_QUANT(mul_mat_q5_1, T_Q5_1)
MUL_MAT_QUANT(mul_mat_iq4_nl, T_IQ4_NL)
MUL_MAT_QUANT(mul_mat_q2_k, T_Q2_K)
MUL_MAT_QUANT(mul_mat_q3_k, T_Q3_K)
MUL_MAT_QUANT(mul_mat_q4_k, T_Q4_K)
MUL_MAT_QUANT(mul_mat_q5_k, T_Q5_K)
MUL_MAT_QUANT(mul_mat_q6_k, T_Q6_K)
