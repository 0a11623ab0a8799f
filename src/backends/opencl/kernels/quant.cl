/* Quantized weight formats, read 32 elements ("a chunk") at a time.
 *
 * Layouts are GGUF's (src/tensor/convert.h describes each one). The legacy
 * formats have blocks of 32, so chunk c is block c; the K-quants have
 * super-blocks of 256, so chunk c is the 32 elements 32 (c % 8) .. of
 * super-block c / 8. For every format a chunk is
 *
 *     x[l] = d * scale[l / 16] * q[l] - m[l / 16]      (l < 32)
 *
 * with integer levels q (read by levels32) and per-half scales and offsets
 * (read by chunk_scales), which is all that dequantizing (GET_ROWS) and the
 * quantized dot products (matmul.cl) need. The formulas are evaluated in the
 * order of the C dequantizers, so GET_ROWS matches them up to rounding of
 * one product. */

constant char iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* Bytes of one block and elements per block. */
inline int block_bytes(int type) {
    switch (type) {
    case T_Q8_0: return 34;
    case T_Q4_0: return 18;
    case T_Q4_1: return 20;
    case T_Q5_0: return 22;
    case T_Q5_1: return 24;
    case T_IQ4_NL: return 18;
    case T_Q2_K: return 84;
    case T_Q3_K: return 110;
    case T_Q4_K: return 144;
    case T_Q5_K: return 176;
    case T_Q6_K: return 210;
    default: return 0;
    }
}

inline bool is_k_quant(int type) { return type >= T_Q2_K && type <= T_Q6_K; }

/* Start of the block holding chunk c, and the chunk's place in it (0..7). */
inline global const uchar *chunk_block(int type, global const uchar *row, long c, int *sub) {
    if (is_k_quant(type)) {
        *sub = (int)(c % 8);
        return row + (c / 8) * block_bytes(type);
    }
    *sub = 0;
    return row + c * block_bytes(type);
}

/* The 5th bit of element j of a Q5_0/Q5_1 block (qh read as a little-endian uint32). */
inline int bit5(global const uchar *qh, int j) { return (qh[j / 8] >> (j % 8)) & 1; }

/* Q4_K/Q5_K group j (0..7): 6-bit scale and min. */
inline void k4_scale_min(global const uchar *scales, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = scales[j] & 63;
        *mn = scales[j + 4] & 63;
    } else {
        *sc = (scales[j + 4] & 0x0f) | (scales[j - 4] >> 6) << 4;
        *mn = (scales[j + 4] >> 4) | (scales[j] >> 6) << 4;
    }
}

/* Q3_K signed scale of group g (0..15). */
inline int q3_scale(global const uchar *scales, int g) {
    const int lo = g < 8 ? scales[g] & 0x0f : scales[g - 8] >> 4;
    const int hi = (scales[8 + g % 4] >> (2 * (g / 4))) & 3;
    return (lo | hi << 4) - 32;
}

/* The integer levels of the 32 elements of a chunk: Q8_0 qs, Q4_0 q - 8,
 * Q4_1 q, Q5_0 q - 16, Q5_1 q, IQ4_NL its table value, Q2_K q (0..3), Q3_K
 * q (-4..3), Q4_K/Q5_K q, Q6_K q - 32. */
inline void levels32(int type, global const uchar *blk, int sub, char q[32]) {
    switch (type) {
    case T_Q8_0:
        for (int j = 0; j < 32; j++) q[j] = (char)blk[2 + j];
        break;
    case T_Q4_0:
    case T_Q4_1:
    case T_IQ4_NL: {
        global const uchar *qs = blk + (type == T_Q4_1 ? 4 : 2);
        for (int j = 0; j < 16; j++) {
            const int lo = qs[j] & 0x0f, hi = qs[j] >> 4;
            if (type == T_IQ4_NL) {
                q[j] = iq4nl_values[lo];
                q[j + 16] = iq4nl_values[hi];
            } else {
                const int bias = type == T_Q4_0 ? 8 : 0;
                q[j] = (char)(lo - bias);
                q[j + 16] = (char)(hi - bias);
            }
        }
        break;
    }
    case T_Q5_0:
    case T_Q5_1: {
        global const uchar *qh = blk + (type == T_Q5_0 ? 2 : 4), *qs = qh + 4;
        const int bias = type == T_Q5_0 ? 16 : 0;
        for (int j = 0; j < 16; j++) {
            q[j] = (char)(((qs[j] & 0x0f) | bit5(qh, j) << 4) - bias);
            q[j + 16] = (char)(((qs[j] >> 4) | bit5(qh, j + 16) << 4) - bias);
        }
        break;
    }
    case T_Q2_K:
    case T_Q3_K: {
        /* element 128h + 32s + l: bits 2s of qs[32h + l]; Q3_K's high bit:
         * bit (32 sub + l) / 32 = sub of hmask[l] */
        global const uchar *qs = blk + (type == T_Q2_K ? 16 : 32);
        const int h = sub / 4, s = sub % 4;
        for (int l = 0; l < 32; l++) {
            int v = (qs[32 * h + l] >> (2 * s)) & 3;
            if (type == T_Q3_K) v -= (blk[l] >> sub) & 1 ? 0 : 4;
            q[l] = (char)v;
        }
        break;
    }
    case T_Q4_K:
    case T_Q5_K: {
        /* element 64p + l: low nibble of qs[32p + l]; 64p + 32 + l: high nibble;
         * Q5_K's 5th bit: bit sub of qh[l] */
        global const uchar *qs = blk + (type == T_Q4_K ? 16 : 48) + 32 * (sub / 2);
        for (int l = 0; l < 32; l++) {
            int v = sub % 2 ? qs[l] >> 4 : qs[l] & 0x0f;
            if (type == T_Q5_K) v |= ((blk[16 + l] >> sub) & 1) << 4;
            q[l] = (char)v;
        }
        break;
    }
    case T_Q6_K: {
        const int h = sub / 4, s = sub % 4;
        global const uchar *ql = blk + 64 * h + 32 * (s & 1), *qh = blk + 128 + 32 * h;
        for (int l = 0; l < 32; l++) {
            const int lo = s >= 2 ? ql[l] >> 4 : ql[l] & 0x0f;
            q[l] = (char)((lo | ((qh[l] >> (2 * s)) & 3) << 4) - 32);
        }
        break;
    }
    }
}

/* Scales of a chunk: x[l] = d * sc[l / 16] * q[l] - dmin * mn[l / 16] for the
 * K-quants (Q3_K and Q6_K: mn = 0); x[l] = d * q[l] + m for the legacy
 * formats (sc = 1; m is the block minimum of Q4_1/Q5_1, else 0). */
typedef struct chunk_scales {
    float d, dmin, m;
    int sc[2], mn[2];
} chunk_scales;

inline chunk_scales scales_of(int type, global const uchar *blk, int sub) {
    chunk_scales s = {0.0f, 0.0f, 0.0f, {1, 1}, {0, 0}};
    switch (type) {
    case T_Q4_1:
    case T_Q5_1:
        s.m = ld_f16(blk + 2);
        s.d = ld_f16(blk);
        break;
    case T_Q2_K:
        s.d = ld_f16(blk + 80);
        s.dmin = ld_f16(blk + 82);
        for (int i = 0; i < 2; i++) {
            s.sc[i] = blk[2 * sub + i] & 0x0f;
            s.mn[i] = blk[2 * sub + i] >> 4;
        }
        break;
    case T_Q3_K:
        s.d = ld_f16(blk + 108);
        for (int i = 0; i < 2; i++) s.sc[i] = q3_scale(blk + 96, 2 * sub + i);
        break;
    case T_Q4_K:
    case T_Q5_K:
        s.d = ld_f16(blk);
        s.dmin = ld_f16(blk + 2);
        k4_scale_min(blk + 4, sub, &s.sc[0], &s.mn[0]);
        s.sc[1] = s.sc[0];
        s.mn[1] = s.mn[0];
        break;
    case T_Q6_K:
        s.d = ld_f16(blk + 208);
        for (int i = 0; i < 2; i++) s.sc[i] = (char)blk[192 + 2 * sub + i];
        break;
    default: /* Q8_0, Q4_0, Q5_0, IQ4_NL */
        s.d = ld_f16(blk);
        break;
    }
    return s;
}

/* Chunk c of a quantized row, dequantized into out[0..32). */
inline void dequant_chunk(int type, global const uchar *row, long c, float out[32]) {
    int sub;
    global const uchar *blk = chunk_block(type, row, c, &sub);
    char q[32];
    levels32(type, blk, sub, q);
    const chunk_scales s = scales_of(type, blk, sub);
    if (is_k_quant(type)) {
        for (int l = 0; l < 32; l++) {
            const float dl = s.d * (float)s.sc[l / 16], ml = s.dmin * (float)s.mn[l / 16];
            out[l] = dl * (float)q[l] - ml;
        }
    } else if (type == T_Q4_1 || type == T_Q5_1) {
        for (int l = 0; l < 32; l++) out[l] = (float)q[l] * s.d + s.m;
    } else {
        for (int l = 0; l < 32; l++) out[l] = (float)q[l] * s.d;
    }
}
