/* dizuo lora-merge: a base model with an adapter folded into its weights. */
#include <stdlib.h>
#include <string.h>

#include "dizuo/lora.h"
#include "dizuo/tensor.h"

/* w (in x out, row-major by out) += f * B A, A (r x in), B (out x r). */
static void add_product(float *w, const float *A, const float *B, int64_t in, int64_t out, int64_t r, float f) {
    for (int64_t o = 0; o < out; o++) {
        float *row = w + o * in;
        for (int64_t k = 0; k < r; k++) {
            const float c = f * B[o * r + k];
            if (c == 0) continue;
            const float *a = A + k * in;
            for (int64_t i = 0; i < in; i++) row[i] += c * a[i];
        }
    }
}

/* Adds the merged matrix of pair i of ad (base tensor t) to w as out_type. */
static dz_status merged_tensor(dz_gguf_writer *w, const dz_gguf_tensor *t, const dz_lora_adapter *ad, int32_t i,
                               float factor, dz_type out_type) {
    int64_t in, out;
    const float *A, *B;
    dz_lora_adapter_pair(ad, i, &in, &out, &A, &B);
    if (t->type != DZ_TYPE_F32 && !dz_type_can_dequantize(t->type))
        return dz_fail(DZ_ERR_UNSUPPORTED, "tensor '%s' has type %s, which dizuo cannot convert to F32", t->name,
                       dz_type_name(t->type));
    size_t row;
    dz_status st = dz_row_size(t->type, in, &row);
    float *d = st ? NULL : malloc((size_t)(in * out) * sizeof *d);
    if (!st && !d) st = dz_fail(DZ_ERR_NOMEM, "out of memory for '%s'", t->name);
    for (int64_t r = 0; !st && r < out; r++) {
        const uint8_t *src = (const uint8_t *)t->data + (size_t)r * row;
        if (t->type == DZ_TYPE_F32) memcpy(d + r * in, src, (size_t)in * sizeof(float));
        else st = dz_dequantize_row(t->type, src, d + r * in, in);
    }
    if (!st) {
        add_product(d, A, B, in, out, dz_lora_adapter_rank(ad), factor);
        const int64_t ne[2] = {in, out};
        if (out_type == DZ_TYPE_F16) {
            uint16_t *h = malloc((size_t)(in * out) * sizeof *h);
            if (!h) st = dz_fail(DZ_ERR_NOMEM, "out of memory for '%s'", t->name);
            for (int64_t j = 0; !st && j < in * out; j++) h[j] = dz_fp32_to_fp16(d[j]);
            if (!st) st = dz_gguf_writer_add_tensor(w, t->name, DZ_TYPE_F16, 2, ne, h);
            free(h);
        } else {
            st = dz_gguf_writer_add_tensor(w, t->name, DZ_TYPE_F32, 2, ne, d);
        }
    }
    free(d);
    return st;
}

dz_status dz_lora_merge(const char *base_path, const char *lora_path, float s, dz_type out_type,
                        const char *out_path) {
    if (out_type != DZ_TYPE_F32 && out_type != DZ_TYPE_F16)
        return dz_fail(DZ_ERR_ARG, "merged matrices are written as F32 or F16, not %s", dz_type_name(out_type));
    dz_gguf *g = NULL;
    dz_lora_adapter *ad = NULL;
    dz_gguf_writer *w = NULL;
    dz_status st = dz_gguf_open(base_path, &g);
    if (st) return st;
    st = dz_lora_adapter_load(lora_path, g, &ad);
    if (!st) st = dz_gguf_writer_create(&w);
    for (int64_t i = 0; !st && i < dz_gguf_n_kv(g); i++) st = dz_gguf_writer_copy_kv(w, g, i);
    const float factor = st ? 0 : dz_lora_adapter_factor(ad, s);
    for (int64_t i = 0; !st && i < dz_gguf_n_tensors(g); i++) {
        const dz_gguf_tensor *t = dz_gguf_tensor_at(g, i);
        int32_t k = 0;
        while (k < dz_lora_adapter_n_pairs(ad) && strcmp(dz_lora_adapter_pair(ad, k, NULL, NULL, NULL, NULL), t->name))
            k++;
        if (k < dz_lora_adapter_n_pairs(ad)) st = merged_tensor(w, t, ad, k, factor, out_type);
        else st = dz_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
    }
    if (!st) st = dz_gguf_writer_write_file(w, out_path);
    dz_gguf_writer_destroy(w);
    dz_lora_adapter_free(ad);
    dz_gguf_close(g);
    return st;
}
