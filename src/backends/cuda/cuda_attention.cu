/* ATTENTION and PAGED_ATTENTION on CUDA: one block per (head h, query t),
 *   out[h][t] = softmax(scale * q[h][t] . k[kvh][j] + mask[t][j]) . v[kvh][j],
 * kvh = h / (n_head / n_kv_head), positions j > n_past + t hidden when
 * causal. PAGED_ATTENTION reads query t's positions from its index row
 * (count, then pool rows) instead of 0..S-1.
 *
 * The block's shared memory holds the query row and the row of scores.
 * Each thread scores every size()-th position, then the block runs the
 * reference's softmax (dz_softmax_row), then each thread computes every
 * size()-th output element over all positions. Every float operation is
 * the CPU reference's (src/backends/cpu/cpu_attention.c), in its order:
 * q . k as 16 lanes of fused products summed by dz_reduce16 when the head
 * size is a multiple of 16, else float products summed in double; p . v as
 * 16 lanes; with F16 K the query rounded to fp16 first, with F16 V the
 * probabilities. */
#include <stdlib.h>

#include "backends/cuda/cuda_common.cuh"

enum { ATTN_THREADS = 128, LANES = 16 };

struct attention_body {
    dz_ct out, q, k, v, mask, index;
    bool has_mask, causal, paged;
    int64_t n_past;
    float scale;
    unsigned *error_word;

    /* Pool row of position j (paged: from the index row, -1 if out of range). */
    DZ_HD int64_t kv_row(const char *slots, int64_t j) const {
        if (!paged) return j;
        const int32_t r = dz_ld_i32(slots + (1 + j) * index.nb[0]);
        return r >= 0 && r < k.ne[2] ? r : -1;
    }

    /* q . k_row, as the reference sums it (qs: the query, rounded for F16 K). */
    DZ_HD float dot_qk(const float *qs, const char *k_row) const {
        const int64_t hd = q.ne[0];
        if (hd % LANES == 0) {
            float l[LANES];
            for (int i = 0; i < LANES; i++) l[i] = 0.0f;
            for (int64_t d = 0; d < hd; d++)
                l[d % LANES] = fmaf(dz_ld_plain(k.type, k_row + d * k.nb[0]), qs[d], l[d % LANES]);
            return dz_reduce16(l);
        }
        double sum = 0.0;
        for (int64_t d = 0; d < hd; d++) sum += (double)(dz_ld_plain(k.type, k_row + d * k.nb[0]) * qs[d]);
        return (float)sum;
    }

    /* shared: hd + (positions) floats. */
    template <class Team> DZ_HD void operator()(const Team &team, int64_t row, float *shared) const {
        const int64_t hd = q.ne[0], n_head = q.ne[1];
        const int64_t h = row % n_head, t = row / n_head, kvh = h / (n_head / k.ne[1]);
        float *qs = shared, *w = shared + hd;
        const bool k_half = k.type == DZ_TYPE_F16, v_half = v.type == DZ_TYPE_F16;
        float *dst = (float *)dz_at(out, 0, h, t, 0);

        /* Positions: 0..S-1 (the last visible one `last`), or the index row's. */
        const char *slots = paged ? index.data + t * index.nb[1] : NULL;
        int64_t n = k.ne[2], last = causal ? n_past + t : n - 1;
        if (paged) {
            n = dz_ld_i32(slots);
            if (n < 1 || n > index.ne[0] - 1) { /* the same for the whole block */
                if (team.rank() == 0) dz_flag(error_word, DZ_CUDA_BAD_PAGE_INDEX);
                for (int64_t d = team.rank(); d < hd; d += team.size()) dst[d] = 0.0f;
                return;
            }
            last = n - 1;
        }

        for (int64_t d = team.rank(); d < hd; d += team.size()) {
            const float qd = dz_ld_f32(dz_at(q, d, h, t, 0));
            qs[d] = k_half ? dz_half_to_float(dz_float_to_half(qd)) : qd;
        }
        team.sync();

        /* Scores, scaled, masked; their maximum. */
        float max = -INFINITY;
        for (int64_t j = team.rank(); j < n; j += team.size()) {
            const int64_t kr = kv_row(slots, j);
            float s = -INFINITY;
            if (kr < 0) {
                dz_flag(error_word, DZ_CUDA_BAD_PAGE_INDEX);
            } else if (j <= last) {
                s = dot_qk(qs, dz_at(k, 0, kvh, kr, 0)) * scale;
                if (has_mask) s += dz_ld_f32(dz_at(mask, j, t, 0, 0));
            }
            w[j] = s;
            max = s > max ? s : max;
        }
        dz_softmax_row(team, w, n, team.max(max));
        if (v_half)
            for (int64_t j = team.rank(); j < n; j += team.size()) w[j] = dz_half_to_float(dz_float_to_half(w[j]));
        team.sync();

        /* out = sum_j p_j v_j, 16 lanes. */
        for (int64_t d = team.rank(); d < hd; d += team.size()) {
            float l[LANES];
            for (int i = 0; i < LANES; i++) l[i] = 0.0f;
            for (int64_t j = 0; j < n; j++) {
                const int64_t vr = kv_row(slots, j);
                if (vr >= 0) l[j % LANES] = fmaf(dz_ld_plain(v.type, dz_at(v, d, kvh, vr, 0)), w[j], l[j % LANES]);
            }
            dst[d] = dz_reduce16(l);
        }
    }
};

/* Query rows: n_head * T; positions per row at most S (or W - 1). */
static int64_t max_positions(const dz_tensor *node) {
    return node->op == DZ_OP_PAGED_ATTENTION ? node->src[3]->ne[0] - 1 : node->src[1]->ne[2];
}

extern "C" size_t dz_cuda_attention_shared_bytes(const dz_tensor *node) {
    const int64_t n = max_positions(node);
    return (size_t)(node->src[0]->ne[0] + (n > 0 ? n : 0)) * sizeof(float);
}

#ifdef __CUDACC__
__global__ void dz_attention_kernel(attention_body body, int64_t rows) {
    extern __shared__ float dz_attention_shared[];
    const dz_block_team team{};
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        body(team, r, dz_attention_shared);
        team.sync(); /* the next row overwrites the shared row */
    }
}
#endif

extern "C" int dz_cuda_attention_init(size_t optin_bytes, size_t *usable_bytes) {
    cudaFuncAttributes attr;
    cudaError_t err = cudaFuncGetAttributes(&attr, dz_attention_kernel);
    if (err != cudaSuccess) return (int)err;
    const size_t usable = optin_bytes > attr.sharedSizeBytes ? optin_bytes - attr.sharedSizeBytes : 0;
    err = cudaFuncSetAttribute(dz_attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)usable);
    if (err == cudaSuccess) *usable_bytes = usable;
    return (int)err;
}

extern "C" int dz_cuda_attention(const dz_tensor *node, const dz_cuda_exec *ex) {
    const bool paged = node->op == DZ_OP_PAGED_ATTENTION;
    const dz_tensor *mask = paged ? NULL : node->src[3];
    const attention_body body = {dz_ct_of(node),
                                 dz_ct_of(node->src[0]),
                                 dz_ct_of(node->src[1]),
                                 dz_ct_of(node->src[2]),
                                 dz_ct_of(mask),
                                 dz_ct_of(paged ? node->src[3] : NULL),
                                 mask != NULL,
                                 !paged && node->params.i[1] != 0,
                                 paged,
                                 paged ? 0 : (int64_t)node->params.i[2],
                                 node->params.f[0],
                                 ex->error_word};
    const int64_t rows = node->src[0]->ne[1] * node->src[0]->ne[2];
    const size_t shared = dz_cuda_attention_shared_bytes(node);
    if (rows <= 0) return 0;
    if (ex->host) {
        float *scratch = (float *)malloc(shared ? shared : 1);
        if (!scratch) return (int)cudaErrorMemoryAllocation;
        const dz_host_team team{};
        for (int64_t r = 0; r < rows; r++) body(team, r, scratch);
        free(scratch);
        return 0;
    }
    dz_attention_kernel<<<dz_grid(rows, 1, 1 << 16), ATTN_THREADS, shared, dz_stream(ex)>>>(body, rows);
    return (int)cudaGetLastError();
}
