/* One work-item per element: ADD, MUL, SCALE, SILU, GELU, SWIGLU, CPY, and
 * the row copies GET_ROWS and SET_ROWS. Outputs of the arithmetic ops are
 * contiguous F32 (out + 4 e); inputs may be any strided view. */

#define OP_ADD 0
#define OP_MUL 1
#define OP_SCALE 2
#define OP_SILU 3
#define OP_GELU 4
#define OP_SWIGLU 5

/* out (ne of a) = a op b, b repeated along every dimension it is shorter in. */
kernel void binary_f32(CTENSOR(a), CTENSOR(b), global uchar *out, ulong out_off, int op, long n) {
    const long e = get_global_id(0);
    if (e >= n) return;
    const long4 i = coords_of(e, a_ne);
    const float x = ld_f32(a + a_off + at4(a_nb, i.s0, i.s1, i.s2, i.s3));
    /* b repeats: an index past its size wraps (rarely more than once: no division) */
    long4 j = i;
    if (j.s0 >= b_ne.s0) j.s0 %= b_ne.s0;
    if (j.s1 >= b_ne.s1) j.s1 %= b_ne.s1;
    if (j.s2 >= b_ne.s2) j.s2 %= b_ne.s2;
    if (j.s3 >= b_ne.s3) j.s3 %= b_ne.s3;
    const float y = ld_f32(b + b_off + at4(b_nb, j.s0, j.s1, j.s2, j.s3));
    st_f32(out + out_off + 4 * e, op == OP_ADD ? x + y : x * y);
}

inline float silu(float x) { return x / (1.0f + exp(-x)); }

/* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
inline float gelu(float x) { return 0.5f * x * (1.0f + tanh(0.7978845608f * (x + 0.044715f * x * x * x))); }

/* out = f(a) (SCALE: a * s; SWIGLU: silu(a) * b, b shaped like a). */
kernel void unary_f32(CTENSOR(a), CTENSOR(b), global uchar *out, ulong out_off, int op, float s, long n) {
    const long e = get_global_id(0);
    if (e >= n) return;
    const long4 i = coords_of(e, a_ne);
    const float x = ld_f32(a + a_off + at4(a_nb, i.s0, i.s1, i.s2, i.s3));
    float y;
    switch (op) {
    case OP_SCALE: y = x * s; break;
    case OP_SILU: y = silu(x); break;
    case OP_GELU: y = gelu(x); break;
    default: y = silu(x) * ld_f32(b + b_off + at4(b_nb, i.s0, i.s1, i.s2, i.s3)); break;
    }
    st_f32(out + out_off + 4 * e, y);
}

/* dst (any view, type dst_type) = src (type src_type), elements paired in
 * logical order. F32 -> F32 and BF16 -> F32 copy bits, so -0, subnormals and
 * NaN payloads survive on devices that flush denormals in arithmetic. */
kernel void cpy(CTENSOR(src), int src_type, TENSOR(dst), int dst_type, long n) {
    const long e = get_global_id(0);
    if (e >= n) return;
    const long4 i = coords_of(e, src_ne), j = coords_of(e, dst_ne);
    global const uchar *s = src + src_off + at4(src_nb, i.s0, i.s1, i.s2, i.s3);
    global uchar *d = dst + dst_off + at4(dst_nb, j.s0, j.s1, j.s2, j.s3);
    if (dst_type == T_F32 && src_type == T_F32) st_u32(d, ld_u32(s));
    else if (dst_type == T_F32 && src_type == T_BF16) st_u32(d, (uint)ld_u16(s) << 16);
    else st_plain(dst_type, d, ld_plain(src_type, s));
}

/* GET_ROWS: out row r (F32, contiguous, ne0 = table row length) = table row
 * ids[r], converted. Work-item e: the 32 elements from 32 (e % chunks) of
 * row e / chunks; an id outside the table leaves NaN in its row and reports
 * the node. */
kernel void get_rows(CTENSOR(table), int type, CTENSOR(ids), global uchar *out, ulong out_off,
                     global int *err, int node) {
    const long ne0 = table_ne.s0, chunks = (ne0 + 31) / 32, e = get_global_id(0);
    const long c = e % chunks, r = e / chunks;
    if (r >= ids_ne.s0) return;
    global float *dst = (global float *)(out + out_off) + r * ne0 + c * 32;
    const int id = ld_i32(ids + ids_off + (ulong)r * ids_nb.s0);
    const int len = (int)min((long)32, ne0 - c * 32);
    if (id < 0 || id >= table_ne.s1) {
        if (c == 0) report_error(err, node);
        for (int l = 0; l < len; l++) dst[l] = NAN;
        return;
    }
    global const uchar *row = table + table_off + (ulong)id * table_nb.s1;
    if (type == T_F32 || type == T_F16 || type == T_BF16) {
        global uint *bits = (global uint *)dst;
        for (int l = 0; l < len; l++) {
            global const uchar *p = row + (ulong)(c * 32 + l) * table_nb.s0;
            bits[l] = type == T_F32 ? ld_u32(p) : type == T_BF16 ? (uint)ld_u16(p) << 16 : as_uint(ld_f16(p));
        }
        return;
    }
    float v[32];
    dequant_chunk(type, row, c, v);
    for (int l = 0; l < 32; l++) dst[l] = v[l];
}

/* SET_ROWS: dst row ids[r] (F32 or F16, a view) = src row r (F32).
 * Work-item e: element e % ne0 of row e / ne0. An id outside dst's rows
 * writes nothing and reports the node. */
kernel void set_rows(CTENSOR(src), CTENSOR(ids), TENSOR(dst), int dst_type, global int *err, int node) {
    const long e = get_global_id(0), i = e % src_ne.s0, r = e / src_ne.s0;
    if (r >= src_ne.s1) return;
    const int id = ld_i32(ids + ids_off + (ulong)r * ids_nb.s0);
    if (id < 0 || id >= dst_ne.s1) {
        if (i == 0) report_error(err, node);
        return;
    }
    global const uchar *s = src + src_off + at4(src_nb, i, r, 0, 0);
    global uchar *d = dst + dst_off + at4(dst_nb, i, id, 0, 0);
    if (dst_type == T_F32) st_u32(d, ld_u32(s));
    else st_plain(dst_type, d, ld_f32(s));
}
