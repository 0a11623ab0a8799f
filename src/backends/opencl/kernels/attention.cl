/* ATTENTION and PAGED_ATTENTION: for head h and query t,
 *   out[h][t] = softmax(scale * q[h][t] . k_j + mask[t][j]) . v_j
 * over the visible positions j, with kv head h / (n_head / n_kv_head).
 * ATTENTION sees j < S (j <= n_past + t when causal); PAGED_ATTENTION sees
 * n_t = index[0][t] positions whose pool rows are index[1..n_t][t].
 *
 * One work-group per (h, t). The positions go by in blocks of the group's
 * size: each item scores one position of the block, then the block's
 * probabilities are folded into running sums (the "online" softmax: a
 * running maximum, sum and output, rescaled when the maximum grows), so the
 * whole row never has to be held. Item i accumulates output dimensions
 * i, i + wg, ... (at most ATT_DIMS of them: head_dim <= ATT_DIMS * wg).
 * With F16 keys, q is rounded to F16 first, as the CPU reference does. */

#define ATT_DIMS 8

/* scratch (local): q (hd floats), then scores, rows and a reduction area of
 * wg entries each. */
kernel void attention(CTENSOR(q), CTENSOR(k), CTENSOR(v), CTENSOR(mask), CTENSOR(index), int kv_type,
                      int has_mask, int paged, int causal, int n_past, float scale, global uchar *out, ulong out_off,
                      global int *err, int node, local float *scratch) {
    const long h = get_group_id(0), t = get_group_id(1), hd = q_ne.s0, n_head = q_ne.s1;
    const long kvh = h / (n_head / k_ne.s1);
    const int lid = get_local_id(0), wg = get_local_size(0);
    local float *qv = scratch, *score = scratch + hd, *red = score + wg;
    local int *rows = (local int *)(red + wg);

    for (long d = lid; d < hd; d += wg) {
        const float x = ld_f32(q + q_off + at4(q_nb, d, h, t, 0));
        qv[d] = kv_type == T_F16 ? round_f16(x) : x;
    }
    global const uchar *ix = index + index_off + (ulong)t * index_nb.s1;
    long n = k_ne.s2, last = causal ? n_past + t : n - 1;
    if (paged) {
        n = ld_i32(ix);
        if (n < 1 || n > index_ne.s0 - 1) {
            if (lid == 0) report_error(err, node);
            n = 0;
        }
        last = n - 1;
    }
    const long end = min(n, last + 1);
    barrier(CLK_LOCAL_MEM_FENCE);

    float run_max = -INFINITY, run_sum = 0.0f, acc[ATT_DIMS];
    for (int i = 0; i < ATT_DIMS; i++) acc[i] = 0.0f;
    for (long j0 = 0; j0 < end; j0 += wg) {
        const long j = j0 + lid;
        float s = -INFINITY;
        int row = 0;
        if (j < end) {
            row = paged ? ld_i32(ix + (ulong)(1 + j) * index_nb.s0) : (int)j;
            if (row < 0 || row >= k_ne.s2) {
                report_error(err, node);
                row = -1;
            } else {
                global const uchar *kr = k + k_off + at4(k_nb, 0, kvh, row, 0);
                float dot = 0.0f;
                for (long d = 0; d < hd; d++) dot += qv[d] * ld_plain(kv_type, kr + d * k_nb.s0);
                s = dot * scale;
                if (has_mask) s += ld_f32(mask + mask_off + at4(mask_nb, j, t, 0, 0));
            }
        }
        const float block_max = group_max(red, s);
        const float new_max = fmax(run_max, block_max);
        const float p = s == -INFINITY ? 0.0f : exp(s - new_max);
        score[lid] = p;
        rows[lid] = row;
        const float block_sum = group_sum(red, p); /* its barriers publish score and rows */
        if (new_max == -INFINITY) continue;        /* nothing visible yet: the same in every item */
        const float rescale = run_max == -INFINITY ? 0.0f : exp(run_max - new_max);
        run_sum = run_sum * rescale + block_sum;
        run_max = new_max;
        const int block = (int)min((long)wg, end - j0);
        for (int i = 0; i < ATT_DIMS; i++) {
            const long d = lid + (long)i * wg;
            if (d >= hd) break;
            float a = acc[i] * rescale;
            for (int jj = 0; jj < block; jj++)
                if (score[jj] != 0.0f) a += score[jj] * ld_plain(kv_type, v + v_off + at4(v_nb, d, kvh, rows[jj], 0));
            acc[i] = a;
        }
        /* No barrier needed before the next block rewrites score and rows:
         * every item passes group_max's barriers first. */
    }
    global float *dst = (global float *)(out + out_off) + (t * n_head + h) * hd;
    for (int i = 0; i < ATT_DIMS; i++) {
        const long d = lid + (long)i * wg;
        if (d < hd) dst[d] = run_sum > 0.0f ? acc[i] / run_sum : 0.0f;
    }
}
