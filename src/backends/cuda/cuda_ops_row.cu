/* CUDA kernels of the row-wise ops: one block per row, each thread taking
 * every size()-th element of it, the row's sums and maximum reduced over
 * the block. RMS_NORM, LAYER_NORM, SOFTMAX. The arithmetic mirrors the CPU
 * reference (src/backends/cpu/cpu_kernels.c, cpu_train.c): the same
 * precision for every sum (double where it uses double), the same
 * operations in the same order; only the order of additions differs. */
#include "backends/cuda/cuda_common.cuh"

enum { ROW_THREADS = 256 };

/* ---- RMS_NORM: x / sqrt(mean(x^2) + eps); LAYER_NORM: (x - mean) / sqrt(var + eps) ---- */

struct norm_body {
    dz_ct out, a;
    float eps;
    bool layer; /* LAYER_NORM, else RMS_NORM */
    template <class Team> DZ_HD void operator()(const Team &team, int64_t r) const {
        int64_t i1, i2, i3;
        dz_row_coords(out.ne, r, &i1, &i2, &i3);
        const char *x = dz_at(a, 0, i1, i2, i3);
        char *dst = dz_at(out, 0, i1, i2, i3);
        const int64_t n = a.ne[0];
        if (!layer) {
            double sum = 0.0;
            for (int64_t i = team.rank(); i < n; i += team.size()) {
                const float v = dz_ld_f32(x + i * a.nb[0]);
                sum += (double)(v * v);
            }
            sum = team.sum(sum);
            const float mean = (float)(sum / (double)n);
            const float scale = 1.0f / sqrtf(mean + eps);
            for (int64_t i = team.rank(); i < n; i += team.size())
                dz_st_f32(dst + i * 4, dz_ld_f32(x + i * a.nb[0]) * scale);
            return;
        }
        double sum = 0.0;
        for (int64_t i = team.rank(); i < n; i += team.size()) sum += (double)dz_ld_f32(x + i * a.nb[0]);
        const double mean = team.sum(sum) / (double)n;
        double var = 0.0;
        for (int64_t i = team.rank(); i < n; i += team.size()) {
            const double c = (double)dz_ld_f32(x + i * a.nb[0]) - mean;
            var += c * c;
        }
        var = team.sum(var);
        const double rstd = 1.0 / sqrt(var / (double)n + (double)eps);
        for (int64_t i = team.rank(); i < n; i += team.size())
            dz_st_f32(dst + i * 4, (float)(((double)dz_ld_f32(x + i * a.nb[0]) - mean) * rstd));
    }
};

extern "C" int dz_cuda_norm(const dz_tensor *node, const dz_cuda_exec *ex) {
    const norm_body body = {dz_ct_of(node), dz_ct_of(node->src[0]), node->params.f[0],
                            node->op == DZ_OP_LAYER_NORM};
    return dz_run_rows(body, dz_nrows(node), ROW_THREADS, ex);
}

/* ---- SOFTMAX: row r of (n, rows, c, d): w = x * scale, + mask[r], columns
 *      j > n_past + r hidden when causal, then the reference's softmax
 *      (dz_softmax_row). The output row holds w meanwhile. ---- */

struct softmax_body {
    dz_ct out, a, mask;
    bool has_mask, causal;
    int64_t n_past;
    float scale;
    template <class Team> DZ_HD void operator()(const Team &team, int64_t r) const {
        int64_t i1, i2, i3;
        dz_row_coords(out.ne, r, &i1, &i2, &i3);
        const char *x = dz_at(a, 0, i1, i2, i3);
        float *w = (float *)dz_at(out, 0, i1, i2, i3);
        const int64_t n = a.ne[0];
        float max = -INFINITY;
        for (int64_t i = team.rank(); i < n; i += team.size()) {
            float v = dz_ld_f32(x + i * a.nb[0]) * scale;
            if (has_mask) v += dz_ld_f32(dz_at(mask, i, i1, 0, 0));
            if (causal && i > n_past + i1) v = -INFINITY;
            w[i] = v;
            max = v > max ? v : max;
        }
        dz_softmax_row(team, w, n, team.max(max));
    }
};

extern "C" int dz_cuda_softmax(const dz_tensor *node, const dz_cuda_exec *ex) {
    const dz_tensor *mask = node->src[1];
    const softmax_body body = {dz_ct_of(node),          dz_ct_of(node->src[0]), dz_ct_of(mask),
                               mask != NULL,            node->params.i[1] != 0, (int64_t)node->params.i[2],
                               node->params.f[0]};
    return dz_run_rows(body, dz_nrows(node), ROW_THREADS, ex);
}
