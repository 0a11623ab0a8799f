/* MUL_MAT on CUDA: out (N, M, B2, B3) = W (K, N, b2, b3) x X (K, M, B2, B3),
 * out[m][n] = dot(W row n, X row m), W repeated over dims 2 and 3.
 *
 * As the CPU reference (src/backends/cpu/cpu_matmul.c), X is first brought
 * to the weights' "dot type":
 *   W F32, F16, BF16           X as float, rounded to fp16 / bf16 for F16 / BF16 W;
 *   W Q8_0, Q4_0, Q5_0, IQ4_NL X quantized to Q8_0 (the reference's rounding of
 *                              activations), into the device's scratch memory;
 *   W Q4_1, Q5_1               X quantized to Q8_1;
 *   W Q2_K .. Q6_K             X quantized to Q8_K;
 * with the bytes the reference produces; the quantized dots are then the
 * reference's, lane for lane (below): the same bits. Float weights sum
 * float products in double, as the reference does (the order differs).
 * (Model logits amplify rounding: a random-weight model's logits drift away
 * from llama.cpp's beyond ../shared/README.md's limits when the activations
 * are not rounded as its CPU build rounds them.)
 *
 * Kernels: a warp quantizes one block of one X row; 8 threads compute the
 * 8 lanes of one dot of quantized weights (16 W rows per block of 128), for
 * each X row of a tile of TILE_M; a warp computes one float W row against a
 * tile of X rows, its lanes taking every 32nd element. Plain, not fast: no
 * shared-memory tiling, no tensor cores. */
#include "backends/cuda/cuda_common.cuh"

enum { TILE_M = 8, WARPS = 4 };

/* ---- the dot types of X ---- */

/* The activation type a quantized weight type is multiplied with (0: float). */
DZ_HD int dz_dot_type(int w_type) {
    switch (w_type) {
    case DZ_TYPE_Q8_0: case DZ_TYPE_Q4_0: case DZ_TYPE_Q5_0: case DZ_TYPE_IQ4_NL: return DZ_TYPE_Q8_0;
    case DZ_TYPE_Q4_1: case DZ_TYPE_Q5_1: return DZ_TYPE_Q8_1;
    case DZ_TYPE_Q2_K: case DZ_TYPE_Q3_K: case DZ_TYPE_Q4_K: case DZ_TYPE_Q5_K: case DZ_TYPE_Q6_K:
        return DZ_TYPE_Q8_K;
    default: return 0;
    }
}

/* Blocks of the activation types (convert.h):
 *   Q8_0 (34 bytes): fp16 d, int8 qs[32];
 *   Q8_1 (36 bytes): fp16 d, fp16 s = d * sum(qs), int8 qs[32];
 *   Q8_K (292 bytes): float d, int8 qs[256], int16 bsums[16] (sums of 16 qs). */
DZ_HD int dz_act_block_bytes(int t) { return t == DZ_TYPE_Q8_K ? 292 : t == DZ_TYPE_Q8_1 ? 36 : 34; }
DZ_HD int dz_act_block_elems(int t) { return t == DZ_TYPE_Q8_K ? 256 : 32; }

/* Bytes of one X row in the dot type of W. */
static int64_t act_row_bytes(const dz_tensor *w) {
    const int t = dz_dot_type((int)w->type);
    return w->ne[0] / dz_act_block_elems(t) * dz_act_block_bytes(t);
}

extern "C" size_t dz_cuda_mul_mat_scratch_bytes(const dz_tensor *node) {
    const dz_tensor *w = node->src[0], *x = node->src[1];
    if (!dz_dot_type((int)w->type)) return 0;
    return (size_t)(act_row_bytes(w) * dz_nrows(x));
}

/* v rounded half to even and saturated into int8, NaN to 0 (the
 * reference's to_int8 after nearbyintf). */
DZ_HD int dz_round_to_int8(float v) {
    v = rintf(v);
    if (!(v > -128.0f)) return v != v ? 0 : -128;
    return v >= 127.0f ? 127 : (int)v;
}

/* One block of one X row quantized into the scratch (the reference's
 * dz_quantize_row_q8_0_with ACTIVATIONS, dz_quantize_row_q8_1,
 * dz_quantize_row_q8_K). Item i = block b of X row r (rows in the order
 * (m, i2, i3), m fastest). */
struct quantize_x_body {
    dz_ct x;
    char *dst;
    int type;            /* Q8_0, Q8_1 or Q8_K */
    int64_t row_bytes, blocks_per_row;
    template <class Team> DZ_HD void operator()(const Team &team, int64_t item) const {
        const int64_t r = item / blocks_per_row, b = item % blocks_per_row;
        int64_t m, i2, i3;
        dz_row_coords(x.ne, r, &m, &i2, &i3);
        const int n = dz_act_block_elems(type);
        const int64_t k0 = b * n;
        char *blk = dst + r * row_bytes + b * dz_act_block_bytes(type);
        if (type != DZ_TYPE_Q8_K) {
            float amax = 0.0f;
            for (int j = team.rank(); j < n; j += team.size())
                amax = fmaxf(amax, fabsf(dz_ld_f32(dz_at(x, k0 + j, m, i2, i3))));
            amax = team.max(amax);
            const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
            int8_t *qs = (int8_t *)blk + (type == DZ_TYPE_Q8_1 ? 4 : 2);
            int sum = 0;
            for (int j = team.rank(); j < n; j += team.size()) {
                const int q = dz_round_to_int8(dz_ld_f32(dz_at(x, k0 + j, m, i2, i3)) * id);
                qs[j] = (int8_t)q;
                sum += q;
            }
            sum = team.sum(sum);
            if (team.rank() == 0) {
                *(uint16_t *)blk = dz_float_to_half(d);
                if (type == DZ_TYPE_Q8_1) *(uint16_t *)(blk + 2) = dz_float_to_half(d * (float)sum);
            }
            return;
        }
        /* Q8_K: scaled by the value of largest magnitude (the first one on ties). */
        float amax = 0.0f;
        int first = n;
        for (int j = team.rank(); j < n; j += team.size()) {
            const float ax = fabsf(dz_ld_f32(dz_at(x, k0 + j, m, i2, i3)));
            if (ax > amax) {
                amax = ax;
                first = j;
            }
        }
        const float best = team.max(amax);
        first = team.min(amax == best && best > 0.0f ? first : n);
        int8_t *qs = (int8_t *)(blk + 4);
        int16_t *bsums = (int16_t *)(blk + 4 + 256);
        if (!(best > 0.0f)) { /* all zero (or NaN): a zero block */
            for (int j = team.rank(); j < n; j += team.size()) qs[j] = 0;
            for (int g = team.rank(); g < 16; g += team.size()) bsums[g] = 0;
            if (team.rank() == 0) *(float *)blk = 0.0f;
            return;
        }
        const float iscale = -127.0f / dz_ld_f32(dz_at(x, k0 + first, m, i2, i3));
        for (int j = team.rank(); j < n; j += team.size()) {
            const float v = rintf(iscale * dz_ld_f32(dz_at(x, k0 + j, m, i2, i3)));
            /* nearest_int saturates at +-4194303 and maps NaN to 0; then clamped to int8 */
            qs[j] = (int8_t)(v != v ? 0 : v < -128.0f ? -128 : v > 127.0f ? 127 : (int)v);
        }
        team.sync(); /* the sums read the other lanes' quants */
        for (int g = team.rank(); g < 16; g += team.size()) {
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += qs[16 * g + j];
            bsums[g] = (int16_t)sum;
        }
        if (team.rank() == 0) *(float *)blk = 1.0f / iscale;
    }
};

/* ---- quantized dots: the reference's lanes ----
 * The reference (cpu_matmul.c, "quantized dots") keeps 8 float lanes per
 * dot: lane l takes, block after block, the exact integer dot of the
 * elements whose index within their run of 32 is 4l..4l+3 (times their
 * group scale, for the K-quants) by a fused multiply-add with the block's
 * float scale; the lanes are added at the end in hsum8's order. Some types
 * add a chain of their own (the minimums); Q4_0 matrices that llama.cpp
 * repacks use one chain of whole-block sums, and IQ4_NL against a single X
 * row two sets of lanes (even and odd blocks). Here the 8 lanes of a dot are
 * 8 threads, each running its chain over all blocks; lane 0 then combines
 * them. Every float operation is the reference's, in its order: the dots
 * are the same bits. */

enum dot_mode {
    DOT_LANES,          /* 8 lanes */
    DOT_LANES_SUMMS,    /* 8 lanes + a chain in lane 0 (Q4_1, Q5_1: m * s added; Q5_K: fused minimums) */
    DOT_LANES_MINS4,    /* 8 lanes + 4 chains of minimums in lanes 0..3 (Q4_K) */
    DOT_CHAIN,          /* one chain of whole-block sums in lane 0 (repacked Q4_0) */
    DOT_LANES_PAIRS,    /* even and odd blocks in two sets of lanes, an odd last block apart (IQ4_NL, one X row) */
};

/* What one lane of one dot leaves: its chain(s), and the extra chain. */
struct lane_sums {
    float a, b, e;
};

/* The integer dot of W elements [j, j + 4) of a block with X quants qx[0..4). */
DZ_HD int dz_dot4(int type, const uint8_t *wb, int j, const int8_t *qx) {
    return dz_block_level(type, wb, j) * qx[0] + dz_block_level(type, wb, j + 1) * qx[1] +
           dz_block_level(type, wb, j + 2) * qx[2] + dz_block_level(type, wb, j + 3) * qx[3];
}

struct mul_mat_q_body {
    dz_ct out, w, x;
    int64_t r2, r3;
    const char *x_quant;   /* X in the dot type, row_bytes per row, rows in (m, i2, i3) order */
    int64_t row_bytes;
    int mode;              /* dot_mode */

    /* Lane l of the dot of W row w_row with quantized X row xr. */
    DZ_HD lane_sums lane(const uint8_t *w_row, const uint8_t *xr, int l) const {
        const int type = w.type, wbytes = dz_block_bytes(type);
        lane_sums r = {0.0f, 0.0f, 0.0f};
        if (dz_block_elems(type) == 32) {
            const int64_t nb = w.ne[0] / 32;
            const int xbytes = dz_act_block_bytes(dz_dot_type(type));
            const bool q8_1 = dz_dot_type(type) == DZ_TYPE_Q8_1;
            for (int64_t i = 0; i < nb; i++) {
                const uint8_t *wb = w_row + i * wbytes, *xb = xr + i * xbytes;
                const int8_t *qx = (const int8_t *)xb + (q8_1 ? 4 : 2);
                const float dw = dz_block_d(type, wb), dx = dz_half_to_float(dz_ld_u16_le(xb));
                if (mode == DOT_CHAIN) { /* lane 0: sum = fma(sumi, d_w d_x, sum) */
                    if (l != 0) continue;
                    int sumi = 0;
                    for (int j = 0; j < 32; j += 4) sumi += dz_dot4(type, wb, j, qx + j);
                    r.a = fmaf((float)sumi, dw * dx, r.a);
                } else if (mode == DOT_LANES_PAIRS) { /* blocks 2p, 2p+1 in a, b; an odd last one in lane 0's e */
                    const int lane_int = dz_dot4(type, wb, 4 * l, qx + 4 * l);
                    if (i % 2 == 0 && i + 1 < nb) r.a = fmaf(dx * dw, (float)lane_int, r.a);
                    else if (i % 2 == 1) r.b = fmaf(dx * dw, (float)lane_int, r.b);
                    else if (l == 0) {
                        int sumi = 0;
                        for (int j = 0; j < 32; j += 4) sumi += dz_dot4(type, wb, j, qx + j);
                        r.e = dx * dw * (float)sumi;
                    }
                } else {
                    if (q8_1 && l == 0) r.e += dz_block_m(type, wb) * dz_half_to_float(dz_ld_u16_le(xb + 2));
                    r.a = fmaf(dw * dx, (float)dz_dot4(type, wb, 4 * l, qx + 4 * l), r.a);
                }
            }
            return r;
        }
        /* K-quants against Q8_K: per super-block, lane l takes the elements
         * 32 s + 4 l .. + 3 (s < 8), each run of 4 times its group's scale. */
        const int64_t nb = w.ne[0] / 256;
        const int gs = dz_k_group_size(type);
        for (int64_t i = 0; i < nb; i++) {
            const uint8_t *wb = w_row + i * wbytes, *xb = xr + i * 292;
            const float dx = *(const float *)xb;
            const int8_t *qx = (const int8_t *)(xb + 4);
            const int16_t *bsums = (const int16_t *)(xb + 4 + 256);
            int lane_int = 0, sc, mn;
            for (int s8 = 0; s8 < 8; s8++) {
                const int j = 32 * s8 + 4 * l;
                dz_k_group(type, wb, j / gs, &sc, &mn);
                lane_int += sc * dz_dot4(type, wb, j, qx + j);
            }
            const float d = dx * dz_block_d(type, wb);
            switch (type) {
            case DZ_TYPE_Q2_K: { /* first dmin times the minimums of groups 2l, 2l+1 */
                int sc0, mn0, sc1, mn1;
                dz_k_group(type, wb, 2 * l, &sc0, &mn0);
                dz_k_group(type, wb, 2 * l + 1, &sc1, &mn1);
                const float dmin = -dx * dz_block_m(type, wb);
                r.a = fmaf(dmin, (float)(mn0 * bsums[2 * l] + mn1 * bsums[2 * l + 1]), r.a);
                break;
            }
            case DZ_TYPE_Q4_K:
            case DZ_TYPE_Q5_K: { /* mins[k] = m(2k) * sum(group 2k) + m(2k+1) * sum(group 2k+1) */
                int mins[4];
                for (int k = 0; k < 4; k++) {
                    int sc0, mn0, sc1, mn1;
                    dz_k_group(type, wb, 2 * k, &sc0, &mn0);
                    dz_k_group(type, wb, 2 * k + 1, &sc1, &mn1);
                    mins[k] = mn0 * (bsums[4 * k] + bsums[4 * k + 1]) + mn1 * (bsums[4 * k + 2] + bsums[4 * k + 3]);
                }
                const float dmin = -dx * dz_block_m(type, wb);
                if (type == DZ_TYPE_Q4_K && l < 4) r.e = fmaf(dmin, (float)mins[l], r.e);
                if (type == DZ_TYPE_Q5_K && l == 0)
                    r.e = fmaf(dmin, (float)(mins[0] + mins[1] + mins[2] + mins[3]), r.e);
                break;
            }
            default: break;
            }
            r.a = fmaf(d, (float)lane_int, r.a);
        }
        return r;
    }

    /* The dot from its 8 lanes, as the reference finishes it. */
    DZ_HD float combine(const lane_sums s[8]) const {
        float a[8];
        for (int l = 0; l < 8; l++) a[l] = s[l].a;
        switch (mode) {
        case DOT_CHAIN: return s[0].a;
        case DOT_LANES_PAIRS: {
            for (int l = 0; l < 8; l++) a[l] = s[l].a + s[l].b;
            return w.ne[0] / 32 % 2 ? dz_hsum8(a) + s[0].e : dz_hsum8(a); /* the odd last block */
        }
        case DOT_LANES_SUMMS: return dz_hsum8(a) + s[0].e;
        case DOT_LANES_MINS4: return dz_hsum8(a) + ((s[0].e + s[2].e) + (s[1].e + s[3].e));
        default: return dz_hsum8(a);
        }
    }

    DZ_HD const uint8_t *w_row(int64_t n, int64_t i2, int64_t i3) const {
        return (const uint8_t *)w.data + n * w.nb[1] + (i2 / r2) * w.nb[2] + (i3 / r3) * w.nb[3];
    }
    DZ_HD const uint8_t *x_row(int64_t m, int64_t i2, int64_t i3) const {
        return (const uint8_t *)x_quant + (m + x.ne[1] * (i2 + x.ne[2] * i3)) * row_bytes;
    }
};

/* The reference's choice of dot (cpu_matmul.c: dot_for). */
static int dot_mode_of(const dz_tensor *w, const dz_tensor *x) {
    if (w->type == DZ_TYPE_Q4_0 && w->ne[1] % 8 == 0 && w->ne[2] == 1 && w->ne[3] == 1) return DOT_CHAIN;
    if (w->type == DZ_TYPE_IQ4_NL && x->ne[1] < 2) return DOT_LANES_PAIRS;
    switch (w->type) {
    case DZ_TYPE_Q4_1: case DZ_TYPE_Q5_1: case DZ_TYPE_Q5_K: return DOT_LANES_SUMMS;
    case DZ_TYPE_Q4_K: return DOT_LANES_MINS4;
    default: return DOT_LANES;
    }
}

/* ---- float weights: a warp per W row and tile of X rows, sums in double
 *      (the reference's dot_f32/f16/bf16 sum float products in double) ---- */

/* X as the reference's dot type sees it for float weights: rounded to
 * fp16 (bf16) for F16 (BF16) weights. */
DZ_HD float dz_as_dot_type(int w_type, float x) {
    if (w_type == DZ_TYPE_F16) return dz_half_to_float(dz_float_to_half(x));
    if (w_type == DZ_TYPE_BF16) return dz_bf16_to_float(dz_float_to_bf16(x));
    return x;
}

struct mul_mat_body {
    dz_ct out, w, x;
    int64_t r2, r3;        /* X matrices per W matrix along dims 2 and 3 */
    /* W row n against X rows m0 .. m0 + TILE_M - 1 (those below M) of matrix (i2, i3). */
    template <class Team> DZ_HD void operator()(const Team &team, int64_t n, int64_t m0, int64_t i2, int64_t i3) const {
        const char *w_row = w.data + n * w.nb[1] + (i2 / r2) * w.nb[2] + (i3 / r3) * w.nb[3];
        const int64_t m_left = x.ne[1] - m0;
        double acc[TILE_M];
        for (int t = 0; t < TILE_M; t++) acc[t] = 0.0;
        for (int64_t k = team.rank(); k < w.ne[0]; k += team.size()) {
            const float wk = dz_ld_plain(w.type, w_row + k * w.nb[0]);
            DZ_UNROLL
            for (int t = 0; t < TILE_M; t++)
                if (t < m_left) acc[t] += (double)(wk * dz_as_dot_type(w.type, dz_ld_f32(dz_at(x, k, m0 + t, i2, i3))));
        }
        DZ_UNROLL
        for (int t = 0; t < TILE_M; t++) {
            if (t >= m_left) break; /* the same for every lane */
            const double dot = team.sum(acc[t]);
            if (team.rank() == 0) dz_st_f32(dz_at(out, n, m0 + t, i2, i3), (float)dot);
        }
    }
};

#ifdef __CUDACC__
/* grid: x over W rows (WARPS per block), y over tiles of X rows, z over the
 * matrices (i2 + B2 * i3). */
__global__ void dz_mul_mat_kernel(mul_mat_body body) {
    const dz_warp_team team{};
    const int64_t n = (int64_t)blockIdx.x * WARPS + threadIdx.x / 32;
    if (n >= body.w.ne[1]) return; /* whole warps leave together */
    const int64_t m0 = (int64_t)blockIdx.y * TILE_M;
    const int64_t i2 = blockIdx.z % body.x.ne[2], i3 = blockIdx.z / body.x.ne[2];
    body(team, n, m0, i2, i3);
}

/* Quantized weights: 8 threads (the lanes) per W row, Q_ROWS W rows per
 * block; grid y over tiles of TILE_M X rows, z over the matrices. */
enum { Q_ROWS = 16 };
__global__ void dz_mul_mat_q_kernel(mul_mat_q_body body) {
    const int l = threadIdx.x & 7;
    const int64_t n = (int64_t)blockIdx.x * Q_ROWS + threadIdx.x / 8;
    const bool active = n < body.w.ne[1]; /* inactive threads still take part in the shuffles */
    const int64_t m0 = (int64_t)blockIdx.y * TILE_M;
    const int64_t i2 = blockIdx.z % body.x.ne[2], i3 = blockIdx.z / body.x.ne[2];
    for (int t = 0; t < TILE_M && m0 + t < body.x.ne[1]; t++) { /* the same for the whole block */
        lane_sums mine = {0.0f, 0.0f, 0.0f};
        if (active) mine = body.lane(body.w_row(n, i2, i3), body.x_row(m0 + t, i2, i3), l);
        lane_sums all[8];
        for (int k = 0; k < 8; k++) {
            all[k].a = __shfl_sync(0xffffffffu, mine.a, k, 8);
            all[k].b = __shfl_sync(0xffffffffu, mine.b, k, 8);
            all[k].e = __shfl_sync(0xffffffffu, mine.e, k, 8);
        }
        if (active && l == 0) dz_st_f32(dz_at(body.out, n, m0 + t, i2, i3), body.combine(all));
    }
}
#endif

/* The largest grid dimensions y and z a launch may have. */
enum { MAX_GRID_YZ = 65535 };

extern "C" bool dz_cuda_mul_mat_fits(const dz_tensor *node) {
    const dz_tensor *x = node->src[1];
    return (x->ne[1] + TILE_M - 1) / TILE_M <= MAX_GRID_YZ && x->ne[2] * x->ne[3] <= MAX_GRID_YZ &&
           (node->src[0]->ne[1] + WARPS - 1) / WARPS <= INT32_MAX;
}

/* Quantized weights: X into the dot type, then the lanes. */
static int mul_mat_quantized(const dz_tensor *node, const dz_cuda_exec *ex) {
    const dz_tensor *w = node->src[0], *x = node->src[1];
    const int x_type = dz_dot_type((int)w->type);
    if (ex->scratch_bytes < dz_cuda_mul_mat_scratch_bytes(node)) return (int)cudaErrorInvalidValue;
    const int64_t row_bytes = act_row_bytes(w), blocks = w->ne[0] / dz_act_block_elems(x_type);
    const quantize_x_body quantize = {dz_ct_of(x), (char *)ex->scratch, x_type, row_bytes, blocks};
    int rc = dz_run_warps(quantize, dz_nrows(x) * blocks, ex);
    if (rc) return rc;
    const mul_mat_q_body body = {dz_ct_of(node), dz_ct_of(w), dz_ct_of(x), x->ne[2] / w->ne[2], x->ne[3] / w->ne[3],
                                 (const char *)ex->scratch, row_bytes, dot_mode_of(w, x)};
    const int64_t n_rows = w->ne[1], n_tiles = (x->ne[1] + TILE_M - 1) / TILE_M, n_mats = x->ne[2] * x->ne[3];
    if (ex->host) {
        for (int64_t z = 0; z < n_mats; z++) {
            const int64_t i2 = z % x->ne[2], i3 = z / x->ne[2];
            for (int64_t m = 0; m < x->ne[1]; m++)
                for (int64_t n = 0; n < n_rows; n++) {
                    lane_sums all[8];
                    for (int l = 0; l < 8; l++) all[l] = body.lane(body.w_row(n, i2, i3), body.x_row(m, i2, i3), l);
                    dz_st_f32(dz_at(body.out, n, m, i2, i3), body.combine(all));
                }
        }
        return 0;
    }
    const dim3 grid((unsigned)((n_rows + Q_ROWS - 1) / Q_ROWS), (unsigned)n_tiles, (unsigned)n_mats);
    dz_mul_mat_q_kernel<<<grid, Q_ROWS * 8, 0, dz_stream(ex)>>>(body);
    return (int)cudaGetLastError();
}

extern "C" int dz_cuda_mul_mat(const dz_tensor *node, const dz_cuda_exec *ex) {
    const dz_tensor *w = node->src[0], *x = node->src[1];
    const int64_t n_rows = w->ne[1], n_tiles = (x->ne[1] + TILE_M - 1) / TILE_M, n_mats = x->ne[2] * x->ne[3];
    if (n_rows == 0 || n_tiles == 0 || n_mats == 0) return 0;
    if (dz_dot_type((int)w->type)) return mul_mat_quantized(node, ex);
    const mul_mat_body body = {dz_ct_of(node), dz_ct_of(w), dz_ct_of(x), x->ne[2] / w->ne[2], x->ne[3] / w->ne[3]};
    if (ex->host) {
        const dz_host_team team{};
        for (int64_t z = 0; z < n_mats; z++)
            for (int64_t tile = 0; tile < n_tiles; tile++)
                for (int64_t n = 0; n < n_rows; n++) body(team, n, tile * TILE_M, z % x->ne[2], z / x->ne[2]);
        return 0;
    }
    const dim3 grid((unsigned)((n_rows + WARPS - 1) / WARPS), (unsigned)n_tiles, (unsigned)n_mats);
    dz_mul_mat_kernel<<<grid, WARPS * 32, 0, dz_stream(ex)>>>(body);
    return (int)cudaGetLastError();
}
