/* dizuo OpenCL kernels: what every kernel file uses.
 *
 * Targets OpenCL C 1.2 without extensions: halves are read and written with
 * vload_half / vstore_half (no cl_khr_fp16), no subgroups, no doubles.
 *
 * Tensors reach a kernel as (base, offset, ne, nb): a global byte pointer,
 * the tensor's byte offset in it, its 4 dimensions (long4, ggml order: ne.s0
 * varies fastest) and its byte strides (ulong4). Element (i0, i1, i2, i3) is
 * at base + offset + i0 nb.s0 + i1 nb.s1 + i2 nb.s2 + i3 nb.s3; the host
 * checks that every address is aligned for its type.
 *
 * Floating point: contraction is off, so a * b + c rounds twice as in the C
 * reference kernels; fma() is written out where a kernel wants one. */
#pragma OPENCL FP_CONTRACT OFF

/* Element types, numbered as dz_type (include/dizuo/backend.h). */
#define T_F32 0
#define T_F16 1
#define T_Q4_0 2
#define T_Q4_1 3
#define T_Q5_0 6
#define T_Q5_1 7
#define T_Q8_0 8
#define T_Q2_K 10
#define T_Q3_K 11
#define T_Q4_K 12
#define T_Q5_K 13
#define T_Q6_K 14
#define T_IQ4_NL 20
#define T_BF16 30

#define TENSOR(name) global uchar *name, ulong name##_off, long4 name##_ne, ulong4 name##_nb
#define CTENSOR(name) global const uchar *name, ulong name##_off, long4 name##_ne, ulong4 name##_nb

/* Byte offset of element (i0, i1, i2, i3) for strides nb. */
inline ulong at4(ulong4 nb, long i0, long i1, long i2, long i3) {
    return (ulong)i0 * nb.s0 + (ulong)i1 * nb.s1 + (ulong)i2 * nb.s2 + (ulong)i3 * nb.s3;
}

/* (i0, i1, i2, i3) of linear index e in a tensor of shape ne; in 32-bit
 * arithmetic when the numbers fit (64-bit division is slow everywhere). */
inline long4 coords_of(long e, long4 ne) {
    if (e <= 0xffffffffL && (ne.s0 | ne.s1 | ne.s2) <= 0xffffffffL) {
        uint u = (uint)e;
        const uint n0 = (uint)ne.s0, n1 = (uint)ne.s1, n2 = (uint)ne.s2;
        long4 c;
        c.s0 = u % n0;
        u /= n0;
        c.s1 = u % n1;
        u /= n1;
        c.s2 = u % n2;
        c.s3 = u / n2;
        return c;
    }
    long4 c;
    c.s0 = e % ne.s0;
    e /= ne.s0;
    c.s1 = e % ne.s1;
    e /= ne.s1;
    c.s2 = e % ne.s2;
    c.s3 = e / ne.s2;
    return c;
}

inline float ld_f32(global const uchar *p) { return *(global const float *)p; }
inline uint ld_u32(global const uchar *p) { return *(global const uint *)p; }
inline int ld_i32(global const uchar *p) { return *(global const int *)p; }
inline ushort ld_u16(global const uchar *p) { return *(global const ushort *)p; }
inline float ld_f16(global const uchar *p) { return vload_half(0, (global const half *)p); }
inline float ld_bf16(global const uchar *p) { return as_float((uint)ld_u16(p) << 16); }
inline void st_f32(global uchar *p, float v) { *(global float *)p = v; }
inline void st_u32(global uchar *p, uint v) { *(global uint *)p = v; }

/* Any of F32, F16, BF16 at p as a float. */
inline float ld_plain(int type, global const uchar *p) {
    return type == T_F16 ? ld_f16(p) : type == T_BF16 ? ld_bf16(p) : ld_f32(p);
}

/* f rounded to the nearest bfloat16, ties to even; NaN stays a quiet NaN. */
inline ushort f32_to_bf16(float f) {
    uint u = as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 64);
    return (ushort)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* x rounded to the nearest fp16 value (ties to even), as a float. */
inline float round_f16(float x) {
    ushort h;
    vstore_half_rte(x, 0, (half *)&h);
    return vload_half(0, (const half *)&h);
}

inline float round_bf16(float x) { return as_float((uint)f32_to_bf16(x) << 16); }

/* Stores f as type (F32, F16 rounded to nearest even, BF16 likewise). */
inline void st_plain(int type, global uchar *p, float f) {
    if (type == T_F16) vstore_half_rte(f, 0, (global half *)p);
    else if (type == T_BF16) *(global ushort *)p = f32_to_bf16(f);
    else st_f32(p, f);
}

/* a / b correctly rounded. Devices that announce correctly rounded division
 * get DZ_CR_DIVIDE and -cl-fp32-correctly-rounded-divide-sqrt; elsewhere the
 * quotient (within a few ulp) is corrected by its exact remainder: of q and
 * its two neighbours the one nearest a / b wins. The activation quantizers
 * need this: their scales must equal the CPU's bit for bit. */
inline float div_rn(float a, float b) {
#ifdef DZ_CR_DIVIDE
    return a / b;
#else
    float q = a / b;
    if (!isfinite(q) || q == 0.0f) return q;
    q = fma(fma(-q, b, a), 1.0f / b, q);
    const float lo = nextafter(q, -INFINITY), hi = nextafter(q, INFINITY);
    const float r = fabs(fma(-q, b, a)), rl = fabs(fma(-lo, b, a)), rh = fabs(fma(-hi, b, a));
    if (rl < r && rl <= rh) return lo;
    if (rh < r) return hi;
    return q;
#endif
}

/* sqrt(a) correctly rounded (see div_rn): of s and its neighbours, the one
 * whose square is nearest a. */
inline float sqrt_rn(float a) {
#ifdef DZ_CR_DIVIDE
    return sqrt(a);
#else
    const float s = sqrt(a);
    if (!isfinite(s) || s == 0.0f) return s;
    const float lo = nextafter(s, 0.0f), hi = nextafter(s, INFINITY);
    const float r = fabs(fma(-s, s, a)), rl = fabs(fma(-lo, lo, a)), rh = fabs(fma(-hi, hi, a));
    if (rl < r && rl <= rh) return lo;
    if (rh < r) return hi;
    return s;
#endif
}

/* ---- float-float sums: hi + lo carries about 48 bits, which stands in for
 * the double sums of the CPU reference (there are no doubles here). With
 * contraction off, two_sum is exact. ---- */

inline float2 ff_add(float2 a, float b) {
    const float s = a.x + b, bb = s - a.x;
    const float err = (a.x - (s - bb)) + (b - bb);
    const float lo = a.y + err, hi = s + lo;
    return (float2)(hi, lo - (hi - s));
}

inline float2 ff_add2(float2 a, float2 b) {
    float2 r = ff_add(a, b.x);
    return ff_add((float2)(r.x, 0.0f), r.y + b.y);
}

/* (a.x + a.y) / n rounded to float, as (float)(double sum / n) rounds it. */
inline float ff_div(float2 a, float n) {
    const float q = div_rn(a.x, n);
    const float r = fma(-q, n, a.x) + a.y; /* the remainder of a correctly rounded quotient is exact */
    return q + div_rn(r, n);
}

/* Records the first data error of a graph (an id out of range): err holds
 * node + 1 of the first node that found one, 0 while none did. */
inline void report_error(global int *err, int node) { atomic_cmpxchg(err, 0, node + 1); }

/* ---- work-group reductions over local memory (size = the group's size, a
 * power of two); every item of the group must call them ---- */

inline float group_sum(local float *scratch, float v) {
    const int lid = get_local_id(0), n = get_local_size(0);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = n / 2; s > 0; s /= 2) {
        if (lid < s) scratch[lid] += scratch[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float r = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

/* The float-float sum over the group (scratch: 2 floats per item). */
inline float2 group_sum_ff(local float2 *scratch, float2 v) {
    const int lid = get_local_id(0), n = get_local_size(0);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = n / 2; s > 0; s /= 2) {
        if (lid < s) scratch[lid] = ff_add2(scratch[lid], scratch[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float2 r = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

inline float group_max(local float *scratch, float v) {
    const int lid = get_local_id(0), n = get_local_size(0);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = n / 2; s > 0; s /= 2) {
        if (lid < s) scratch[lid] = fmax(scratch[lid], scratch[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float r = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}
