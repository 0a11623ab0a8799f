/* Row-wise ops: RMS_NORM, LAYER_NORM and SOFTMAX with one work-group per
 * row (its items stride over the row, then reduce in local memory), and
 * ROPE with one work-item per rotated pair. Row r of a tensor is
 * (i1, i2, i3) = (r % ne1, r / ne1 % ne2, r / (ne1 ne2)); outputs are
 * contiguous F32, so output row r starts at out + 4 ne0 r. */

inline global const uchar *row_of(global const uchar *base, ulong off, long4 ne, ulong4 nb, long r) {
    return base + off + at4(nb, 0, r % ne.s1, r / ne.s1 % ne.s2, r / (ne.s1 * ne.s2));
}

/* RMS_NORM: x / sqrt(mean(x^2) + eps), rounded as the CPU reference rounds
 * it: float squares, their sum exact enough to equal its double sum, the
 * mean rounded to float once. That matters more than it seems: the next
 * MUL_MAT quantizes these values, and with quantized weights many of them
 * sit exactly on a rounding tie, where one ulp decides. */
kernel void rms_norm(CTENSOR(x), global uchar *out, ulong out_off, float eps, local float *scratch) {
    const long r = get_group_id(0), n = x_ne.s0;
    const int lid = get_local_id(0), wg = get_local_size(0);
    global const uchar *src = row_of(x, x_off, x_ne, x_nb, r);
    global float *dst = (global float *)(out + out_off) + r * n;
    float2 sum = (float2)(0.0f, 0.0f);
    for (long i = lid; i < n; i += wg) {
        const float v = ld_f32(src + i * x_nb.s0);
        sum = ff_add(sum, v * v);
    }
    sum = group_sum_ff((local float2 *)scratch, sum);
    const float scale = div_rn(1.0f, sqrt_rn(ff_div(sum, (float)n) + eps));
    for (long i = lid; i < n; i += wg) dst[i] = ld_f32(src + i * x_nb.s0) * scale;
}

/* LAYER_NORM: (x - mean) / sqrt(var + eps), var the biased variance (two passes). */
kernel void layer_norm(CTENSOR(x), global uchar *out, ulong out_off, float eps, local float *scratch) {
    const long r = get_group_id(0), n = x_ne.s0;
    const int lid = get_local_id(0), wg = get_local_size(0);
    global const uchar *src = row_of(x, x_off, x_ne, x_nb, r);
    global float *dst = (global float *)(out + out_off) + r * n;
    float sum = 0.0f;
    for (long i = lid; i < n; i += wg) sum += ld_f32(src + i * x_nb.s0);
    const float mean = group_sum(scratch, sum) / (float)n;
    float var = 0.0f;
    for (long i = lid; i < n; i += wg) {
        const float c = ld_f32(src + i * x_nb.s0) - mean;
        var += c * c;
    }
    var = group_sum(scratch, var) / (float)n;
    const float rstd = 1.0f / sqrt(var + eps);
    for (long i = lid; i < n; i += wg) dst[i] = (ld_f32(src + i * x_nb.s0) - mean) * rstd;
}

/* SOFTMAX of row r: w = x * scale + mask[row i1], columns j > n_past + i1
 * hidden when causal, then exp(w - max) / sum. A row with nothing visible
 * becomes zeros. The mask is optional (has_mask 0: any buffer). */
kernel void softmax(CTENSOR(x), CTENSOR(mask), int has_mask, global uchar *out, ulong out_off, float scale,
                    int causal, int n_past, local float *scratch) {
    const long r = get_group_id(0), n = x_ne.s0, i1 = r % x_ne.s1;
    const int lid = get_local_id(0), wg = get_local_size(0);
    global const uchar *src = row_of(x, x_off, x_ne, x_nb, r);
    global const uchar *mrow = mask + mask_off + (ulong)i1 * mask_nb.s1;
    global float *dst = (global float *)(out + out_off) + r * n;
    const long visible = causal ? min(n, (long)n_past + i1 + 1) : n;
    float max_w = -INFINITY;
    for (long i = lid; i < visible; i += wg) {
        float w = ld_f32(src + i * x_nb.s0) * scale;
        if (has_mask) w += ld_f32(mrow + i * mask_nb.s0);
        dst[i] = w;
        max_w = fmax(max_w, w);
    }
    max_w = group_max(scratch, max_w);
    float sum = 0.0f;
    for (long i = lid; i < visible; i += wg) {
        const float p = max_w == -INFINITY ? 0.0f : exp(dst[i] - max_w);
        dst[i] = p;
        sum += p;
    }
    sum = group_sum(scratch, sum);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (long i = lid; i < n; i += wg) dst[i] = i < visible ? dst[i] * inv : 0.0f;
}

/* ROPE on x (head_dim, n_head, T): pair p < n_rot/2 of a row at position
 * pos turns by freq_scale * pos * theta_scale^p, theta_scale =
 * freq_base^(-2/n_rot) given by the host; theta is built by repeated
 * multiplication, as the CPU reference does, so both round alike. NORMAL
 * pairs (2p, 2p + 1), NEOX (p, p + n_rot/2); elements from n_rot on are
 * copied. Work-item e does item k = e % (head_dim - n_rot/2) of row
 * e / (head_dim - n_rot/2): pair k for k < n_rot/2, else element k + n_rot/2. */
kernel void rope(CTENSOR(x), CTENSOR(pos), global uchar *out, ulong out_off, int n_rot, int neox,
                 float theta_scale, float freq_scale) {
    const long hd = x_ne.s0, half_rot = n_rot / 2, per_row = hd - half_rot, e = get_global_id(0);
    const long k = e % per_row, r = e / per_row;
    if (r >= x_ne.s1 * x_ne.s2) return;
    const long i1 = r % x_ne.s1, i2 = r / x_ne.s1;
    global const uchar *src = x + x_off + at4(x_nb, 0, i1, i2, 0);
    global float *dst = (global float *)(out + out_off) + r * hd;
    if (k >= half_rot) {
        const long i = k + half_rot;
        dst[i] = ld_f32(src + i * x_nb.s0);
        return;
    }
    float theta = (float)ld_i32(pos + pos_off + (ulong)i2 * pos_nb.s0);
    for (int p = 0; p < k; p++) theta *= theta_scale;
    const float angle = freq_scale * theta, c = cos(angle), s = sin(angle);
    const long j0 = neox ? k : 2 * k, j1 = neox ? k + half_rot : 2 * k + 1;
    const float x0 = ld_f32(src + j0 * x_nb.s0), x1 = ld_f32(src + j1 * x_nb.s0);
    dst[j0] = x0 * c - x1 * s;
    dst[j1] = x0 * s + x1 * c;
}
