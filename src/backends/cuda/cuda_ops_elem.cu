/* CUDA kernels of the element-wise ops: one thread per output element
 * (ROPE: per rotated pair). GET_ROWS, ADD, MUL, SCALE, SILU, GELU, SWIGLU,
 * CPY, SET_ROWS, ROPE. Each body mirrors the CPU reference kernel
 * (src/backends/cpu/cpu_kernels.c, cpu_train.c for GELU) operation by
 * operation. */
#include "backends/cuda/cuda_common.cuh"

/* ---- GET_ROWS: out (ne0, n) F32 row i = table row ids[i], dequantized ---- */

struct get_rows_body {
    dz_ct out, table, ids;
    unsigned *error_word;
    DZ_HD void operator()(int64_t e) const {
        const int64_t i0 = e % out.ne[0], n = e / out.ne[0];
        const int32_t id = dz_ld_i32(ids.data + n * ids.nb[0]);
        float v = 0.0f;
        if (id < 0 || id >= table.ne[1]) dz_flag(error_word, DZ_CUDA_BAD_ROW_ID);
        else v = dz_ld_elem(table, table.data + id * table.nb[1], i0);
        dz_st_f32(dz_at(out, i0, n, 0, 0), v);
    }
};

extern "C" int dz_cuda_get_rows(const dz_tensor *node, const dz_cuda_exec *ex) {
    const get_rows_body body = {dz_ct_of(node), dz_ct_of(node->src[0]), dz_ct_of(node->src[1]), ex->error_word};
    return dz_run_elements(body, node->ne[0] * node->ne[1], ex);
}

/* ---- ADD, MUL: out = a op b, b repeated to a's shape ---- */

struct binary_body {
    dz_ct out, a, b;
    bool add;
    DZ_HD void operator()(int64_t e) const {
        int64_t c[4];
        dz_unravel(out.ne, e, c);
        const float x = dz_ld_f32(dz_at(a, c[0], c[1], c[2], c[3]));
        const float y = dz_ld_f32(dz_at(b, c[0] % b.ne[0], c[1] % b.ne[1], c[2] % b.ne[2], c[3] % b.ne[3]));
        dz_st_f32(dz_at(out, c[0], c[1], c[2], c[3]), add ? x + y : x * y);
    }
};

extern "C" int dz_cuda_binary(const dz_tensor *node, const dz_cuda_exec *ex) {
    const binary_body body = {dz_ct_of(node), dz_ct_of(node->src[0]), dz_ct_of(node->src[1]),
                              node->op == DZ_OP_ADD};
    return dz_run_elements(body, dz_nelements(node), ex);
}

/* ---- SCALE, SILU, GELU, SWIGLU ---- */

/* exp, cos and sin are taken in double and rounded once: the correctly
 * rounded float in all but vanishingly rare cases, the same on the GPU and
 * the host, and within an ulp of the reference's libm expf, cosf, sinf. */
DZ_HD float dz_silu(float x) { return x / (1.0f + (float)exp(-(double)x)); }

/* The tanh form, in double as the reference computes it. */
DZ_HD float dz_gelu(float xf) {
    const double x = xf;
    return (float)(0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))));
}

struct unary_body {
    dz_ct out, a, b; /* b: SWIGLU's up */
    int op;
    float s;
    DZ_HD void operator()(int64_t e) const {
        int64_t c[4];
        dz_unravel(out.ne, e, c);
        const float x = dz_ld_f32(dz_at(a, c[0], c[1], c[2], c[3]));
        float y;
        switch (op) {
        case DZ_OP_SCALE: y = x * s; break;
        case DZ_OP_SILU: y = dz_silu(x); break;
        case DZ_OP_GELU: y = dz_gelu(x); break;
        default: y = dz_silu(x) * dz_ld_f32(dz_at(b, c[0], c[1], c[2], c[3])); break; /* SWIGLU */
        }
        dz_st_f32(dz_at(out, c[0], c[1], c[2], c[3]), y);
    }
};

extern "C" int dz_cuda_unary(const dz_tensor *node, const dz_cuda_exec *ex) {
    const unary_body body = {dz_ct_of(node), dz_ct_of(node->src[0]), dz_ct_of(node->src[1]), (int)node->op,
                             node->params.f[0]};
    return dz_run_elements(body, dz_nelements(node), ex);
}

/* ---- CPY: element e (logical order) of src into element e of dst, converted ---- */

struct cpy_body {
    dz_ct dst, src;
    DZ_HD void operator()(int64_t e) const {
        int64_t s[4], d[4];
        dz_unravel(src.ne, e, s);
        dz_unravel(dst.ne, e, d);
        dz_st_plain(dst.type, dz_at(dst, d[0], d[1], d[2], d[3]),
                    dz_ld_plain(src.type, dz_at(src, s[0], s[1], s[2], s[3])));
    }
};

extern "C" int dz_cuda_cpy(const dz_tensor *node, const dz_cuda_exec *ex) {
    const cpy_body body = {dz_ct_of(node), dz_ct_of(node->src[0])};
    return dz_run_elements(body, dz_nelements(node->src[0]), ex);
}

/* ---- SET_ROWS: destination row ids[r] = src row r (F32), converted ---- */

struct set_rows_body {
    dz_ct dst, src, ids; /* dst: the node, a view of the destination */
    unsigned *error_word;
    DZ_HD void operator()(int64_t e) const {
        const int64_t i = e % src.ne[0], r = e / src.ne[0];
        const int32_t id = dz_ld_i32(ids.data + r * ids.nb[0]);
        if (id < 0 || id >= dst.ne[1]) {
            dz_flag(error_word, DZ_CUDA_BAD_SET_ROW_ID);
            return;
        }
        dz_st_plain(dst.type, dz_at(dst, i, id, 0, 0), dz_ld_f32(dz_at(src, i, r, 0, 0)));
    }
};

extern "C" int dz_cuda_set_rows(const dz_tensor *node, const dz_cuda_exec *ex) {
    const set_rows_body body = {dz_ct_of(node), dz_ct_of(node->src[0]), dz_ct_of(node->src[1]), ex->error_word};
    return dz_run_elements(body, node->src[0]->ne[0] * node->src[0]->ne[1], ex);
}

/* ---- ROPE: x (head_dim, n_head, T), positions (T) ----
 * Pair p at position pos turns by freq_scale * theta_p, theta_p = pos *
 * theta_scale^p computed as the reference does, by p multiplications in
 * float (so that the angles agree bit for bit; theta_scale is computed on
 * the host with the reference's powf); cos and sin as dz_silu's exp. NORMAL pairs (x[2p], x[2p+1]), NEOX
 * pairs (x[p], x[p + n_rot/2]); elements from n_rot on are copied. Item k
 * of a row: k < n_rot/2 the pair k, else the element n_rot + (k - n_rot/2). */

struct rope_body {
    dz_ct out, x, pos;
    int n_rot;
    bool neox;
    float theta_scale, freq_scale;
    DZ_HD void operator()(int64_t e) const {
        const int64_t half = n_rot / 2, per_row = half + (x.ne[0] - n_rot);
        const int64_t k = e % per_row, r = e / per_row;
        int64_t i1, i2, i3;
        dz_row_coords(out.ne, r, &i1, &i2, &i3);
        const char *src = dz_at(x, 0, i1, i2, i3);
        char *dst = dz_at(out, 0, i1, i2, i3);
        if (k >= half) {
            const int64_t i = n_rot + (k - half);
            dz_st_f32(dst + i * 4, dz_ld_f32(src + i * x.nb[0]));
            return;
        }
        const int p = (int)k;
        float theta = (float)dz_ld_i32(pos.data + i2 * pos.nb[0]);
        for (int q = 0; q < p; q++) theta *= theta_scale;
        const float angle = freq_scale * theta;
        const float cos_t = (float)cos((double)angle), sin_t = (float)sin((double)angle);
        const int64_t j0 = neox ? p : 2 * p, j1 = neox ? p + half : 2 * p + 1;
        const float x0 = dz_ld_f32(src + j0 * x.nb[0]), x1 = dz_ld_f32(src + j1 * x.nb[0]);
        dz_st_f32(dst + j0 * 4, x0 * cos_t - x1 * sin_t);
        dz_st_f32(dst + j1 * 4, x0 * sin_t + x1 * cos_t);
    }
};

extern "C" int dz_cuda_rope(const dz_tensor *node, const dz_cuda_exec *ex) {
    const int n_rot = node->params.i[0];
    const rope_body body = {dz_ct_of(node),
                            dz_ct_of(node->src[0]),
                            dz_ct_of(node->src[1]),
                            n_rot,
                            node->params.i[1] == DZ_ROPE_NEOX,
                            powf(node->params.f[2], -2.0f / (float)n_rot),
                            node->params.f[3]};
    const int64_t per_row = n_rot / 2 + (node->ne[0] - n_rot);
    return dz_run_elements(body, per_row * dz_nrows(node), ex);
}
