/* Loading a model: map the file, check the hyper-parameters, bind every
 * weight tensor to the mapping (checking its shape and type), build the
 * tokenizer. Nothing is copied on a host device. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_impl.h"

typedef enum weight_kind { WEIGHT_MATRIX, WEIGHT_VECTOR } weight_kind;

/* Looks up tensor `name` and checks its shape (ne0, ne1) and type against
 * kind. Absent and optional: *out = NULL. Every check names the tensor. */
static dz_status find_tensor(const dz_model *m, const char *name, bool optional, weight_kind kind, int64_t ne0,
                             int64_t ne1, const dz_gguf_tensor **out) {
    *out = NULL;
    const dz_gguf_tensor *info = dz_gguf_find_tensor(m->gguf, name);
    if (!info) {
        if (optional) return DZ_OK;
        return dz_fail(DZ_ERR_FORMAT, "missing tensor '%s'", name);
    }
    bool shape_ok = info->ne[0] == ne0 && info->ne[1] == (kind == WEIGHT_MATRIX ? ne1 : 1) &&
                    info->ne[2] == 1 && info->ne[3] == 1;
    if (!shape_ok) {
        if (kind == WEIGHT_MATRIX)
            return dz_fail(DZ_ERR_FORMAT,
                           "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld] "
                           "from the hyper-parameters",
                           name, (long long)info->ne[0], (long long)info->ne[1],
                           (long long)info->ne[2], (long long)info->ne[3], (long long)ne0,
                           (long long)ne1);
        return dz_fail(DZ_ERR_FORMAT,
                       "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld] from the "
                       "hyper-parameters",
                       name, (long long)info->ne[0], (long long)info->ne[1], (long long)info->ne[2],
                       (long long)info->ne[3], (long long)ne0);
    }
    if (kind == WEIGHT_VECTOR && info->type != DZ_TYPE_F32)
        return dz_fail(DZ_ERR_UNSUPPORTED, "tensor '%s' has type %s; norms and biases must be F32",
                       name, dz_type_name(info->type));
    if (kind == WEIGHT_MATRIX && !dz_type_can_dequantize(info->type))
        return dz_fail(DZ_ERR_UNSUPPORTED, "tensor '%s' has type %s, which dizuo cannot compute yet",
                       name, dz_type_name(info->type));
    *out = info;
    return DZ_OK;
}

/* A weight tensor (ne0, ne1) of info's type over the file's bytes from
 * info's data + skip, named `name`. */
static dz_status bind_bytes(dz_model *m, const dz_gguf_tensor *info, const char *name, weight_kind kind,
                            int64_t ne0, int64_t ne1, size_t skip, dz_tensor **out) {
    int64_t ne[2] = {ne0, ne1};
    dz_tensor *t = dz_new_tensor(m->wctx, info->type, kind == WEIGHT_MATRIX ? 2 : 1, ne);
    if (!t) return dz_fail(DZ_ERR_NOMEM, "tensor '%s': %s", name, dz_ctx_error(m->wctx));
    dz_set_name(t, "%s", name);
    t->flags |= DZ_TENSOR_WEIGHT;
    /* The piece of the weights holding this tensor (pieces are few and in file order). */
    const size_t at = (size_t)((const char *)info->data - (const char *)dz_gguf_base(m->gguf)) + skip;
    int32_t k = m->n_weights - 1;
    while (k > 0 && m->weights_start[k] > at) k--;
    dz_status st = dz_tensor_bind(t, m->weights[k], at - m->weights_start[k]);
    if (st) return dz_error_prefix(st, "tensor '%s': ", name);
    *out = t;
    return DZ_OK;
}

/* Binds tensor `name` (printf-style) with the expected shape. Absent and
 * optional: *out = NULL. Every check names the tensor. */
static dz_status bind_tensor(dz_model *m, dz_tensor **out, bool optional, weight_kind kind,
                             int64_t ne0, int64_t ne1, const char *fmt, ...) DZ_PRINTF(7, 8);

static dz_status bind_tensor(dz_model *m, dz_tensor **out, bool optional, weight_kind kind,
                             int64_t ne0, int64_t ne1, const char *fmt, ...) {
    char name[DZ_MAX_NAME];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    *out = NULL;
    const dz_gguf_tensor *info;
    dz_status st = find_tensor(m, name, optional, kind, ne0, ne1, &info);
    if (st || !info) return st;
    if ((st = bind_bytes(m, info, name, kind, ne0, ne1, 0, out))) return st;
    m->weight_bytes += info->size;
    return DZ_OK;
}

/* Binds a fused tensor `name` of three equal parts along its last dimension
 * (a matrix (ne0, 3 n) or a vector (3 n)) as three tensors, "<name>.q",
 * ".k" and ".v": gpt2's attn_qkv, whose rows are q's, then k's, then v's. */
static dz_status bind_thirds(dz_model *m, dz_tensor *out[3], weight_kind kind, int64_t ne0, int64_t n,
                             const char *fmt, ...) DZ_PRINTF(6, 7);

static dz_status bind_thirds(dz_model *m, dz_tensor *out[3], weight_kind kind, int64_t ne0, int64_t n,
                             const char *fmt, ...) {
    char name[DZ_MAX_NAME - 2], part[DZ_MAX_NAME];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const bool matrix = kind == WEIGHT_MATRIX;
    const dz_gguf_tensor *info;
    dz_status st = find_tensor(m, name, false, kind, matrix ? ne0 : 3 * n, 3 * n, &info);
    if (st) return st;
    size_t bytes = 0; /* of one part */
    if (matrix) {
        size_t row = 0;
        if ((st = dz_row_size(info->type, ne0, &row))) return dz_error_prefix(st, "tensor '%s': ", name);
        bytes = row * (size_t)n;
    } else {
        bytes = (size_t)n * sizeof(float);
    }
    static const char suffix[3] = {'q', 'k', 'v'};
    for (int i = 0; i < 3; i++) {
        snprintf(part, sizeof part, "%s.%c", name, suffix[i]);
        if ((st = bind_bytes(m, info, part, kind, matrix ? ne0 : n, matrix ? n : 1, (size_t)i * bytes, &out[i])))
            return st;
    }
    m->weight_bytes += info->size;
    return DZ_OK;
}

static dz_status bind_llama(dz_model *m) {
    const dz_model_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, V = hp->n_vocab, F = hp->n_ff;
    const int64_t Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    dz_status st;
    if ((st = bind_tensor(m, &m->tok_embd, false, WEIGHT_MATRIX, E, V, "token_embd.weight")))
        return st;
    if ((st = bind_tensor(m, &m->output_norm, false, WEIGHT_VECTOR, E, 1, "output_norm.weight")))
        return st;
    if ((st = bind_tensor(m, &m->output, true, WEIGHT_MATRIX, E, V, "output.weight"))) return st;
    m->hp.tied_output = m->output == NULL;
    if (!m->output) m->output = m->tok_embd;
    if (dz_gguf_find_tensor(m->gguf, "rope_freqs.weight"))
        return dz_fail(DZ_ERR_UNSUPPORTED, "rope frequency factors (rope_freqs.weight, Llama 3.1 "
                                           "style rope scaling) are not supported yet");
    if (dz_gguf_find_tensor(m->gguf, "blk.0.ffn_gate_inp.weight"))
        return dz_fail(DZ_ERR_UNSUPPORTED, "mixture-of-experts layers are not supported yet");
    for (int32_t i = 0; i < hp->n_layer; i++) {
        dz_layer *l = &m->layers[i];
        bool need_bias = hp->qkv_bias;
        if ((st = bind_tensor(m, &l->attn_norm, false, WEIGHT_VECTOR, E, 1, "blk.%d.attn_norm.weight", i)) ||
            (st = bind_tensor(m, &l->wq, false, WEIGHT_MATRIX, E, Q, "blk.%d.attn_q.weight", i)) ||
            (st = bind_tensor(m, &l->wk, false, WEIGHT_MATRIX, E, KV, "blk.%d.attn_k.weight", i)) ||
            (st = bind_tensor(m, &l->wv, false, WEIGHT_MATRIX, E, KV, "blk.%d.attn_v.weight", i)) ||
            (st = bind_tensor(m, &l->bq, !need_bias, WEIGHT_VECTOR, Q, 1, "blk.%d.attn_q.bias", i)) ||
            (st = bind_tensor(m, &l->bk, !need_bias, WEIGHT_VECTOR, KV, 1, "blk.%d.attn_k.bias", i)) ||
            (st = bind_tensor(m, &l->bv, !need_bias, WEIGHT_VECTOR, KV, 1, "blk.%d.attn_v.bias", i)) ||
            (st = bind_tensor(m, &l->wo, false, WEIGHT_MATRIX, Q, E, "blk.%d.attn_output.weight", i)) ||
            (st = bind_tensor(m, &l->ffn_norm, false, WEIGHT_VECTOR, E, 1, "blk.%d.ffn_norm.weight", i)) ||
            (st = bind_tensor(m, &l->ffn_gate, false, WEIGHT_MATRIX, E, F, "blk.%d.ffn_gate.weight", i)) ||
            (st = bind_tensor(m, &l->ffn_up, false, WEIGHT_MATRIX, E, F, "blk.%d.ffn_up.weight", i)) ||
            (st = bind_tensor(m, &l->ffn_down, false, WEIGHT_MATRIX, F, E, "blk.%d.ffn_down.weight", i)))
            return st;
    }
    return DZ_OK;
}

/* gpt2 (llama.cpp's names): learned positions, a fused attn_qkv, LayerNorms
 * and projections with biases, output.weight optional (tied). */
static dz_status bind_gpt2(dz_model *m) {
    const dz_model_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, V = hp->n_vocab, F = hp->n_ff, C = hp->n_ctx_train;
    dz_status st;
    if ((st = bind_tensor(m, &m->tok_embd, false, WEIGHT_MATRIX, E, V, "token_embd.weight")) ||
        (st = bind_tensor(m, &m->pos_embd, false, WEIGHT_MATRIX, E, C, "position_embd.weight")) ||
        (st = bind_tensor(m, &m->output_norm, false, WEIGHT_VECTOR, E, 1, "output_norm.weight")) ||
        (st = bind_tensor(m, &m->output_norm_b, false, WEIGHT_VECTOR, E, 1, "output_norm.bias")) ||
        (st = bind_tensor(m, &m->output, true, WEIGHT_MATRIX, E, V, "output.weight")))
        return st;
    m->hp.tied_output = m->output == NULL;
    if (!m->output) m->output = m->tok_embd;
    for (int32_t i = 0; i < hp->n_layer; i++) {
        dz_layer *l = &m->layers[i];
        dz_tensor *w[3] = {NULL, NULL, NULL}, *b[3] = {NULL, NULL, NULL};
        if ((st = bind_tensor(m, &l->attn_norm, false, WEIGHT_VECTOR, E, 1, "blk.%d.attn_norm.weight", i)) ||
            (st = bind_tensor(m, &l->attn_norm_b, false, WEIGHT_VECTOR, E, 1, "blk.%d.attn_norm.bias", i)) ||
            (st = bind_thirds(m, w, WEIGHT_MATRIX, E, E, "blk.%d.attn_qkv.weight", i)) ||
            (st = bind_thirds(m, b, WEIGHT_VECTOR, E, E, "blk.%d.attn_qkv.bias", i)) ||
            (st = bind_tensor(m, &l->wo, false, WEIGHT_MATRIX, E, E, "blk.%d.attn_output.weight", i)) ||
            (st = bind_tensor(m, &l->bo, false, WEIGHT_VECTOR, E, 1, "blk.%d.attn_output.bias", i)) ||
            (st = bind_tensor(m, &l->ffn_norm, false, WEIGHT_VECTOR, E, 1, "blk.%d.ffn_norm.weight", i)) ||
            (st = bind_tensor(m, &l->ffn_norm_b, false, WEIGHT_VECTOR, E, 1, "blk.%d.ffn_norm.bias", i)) ||
            (st = bind_tensor(m, &l->ffn_up, false, WEIGHT_MATRIX, E, F, "blk.%d.ffn_up.weight", i)) ||
            (st = bind_tensor(m, &l->ffn_up_b, false, WEIGHT_VECTOR, F, 1, "blk.%d.ffn_up.bias", i)) ||
            (st = bind_tensor(m, &l->ffn_down, false, WEIGHT_MATRIX, F, E, "blk.%d.ffn_down.weight", i)) ||
            (st = bind_tensor(m, &l->ffn_down_b, false, WEIGHT_VECTOR, E, 1, "blk.%d.ffn_down.bias", i)))
            return st;
        l->wq = w[0], l->wk = w[1], l->wv = w[2];
        l->bq = b[0], l->bk = b[1], l->bv = b[2];
    }
    return DZ_OK;
}

static dz_status bind_weights(dz_model *m) {
    return m->arch == DZ_ARCH_GPT2 ? bind_gpt2(m) : bind_llama(m);
}

/* The vocabulary size: the token embedding's rows, which the tokenizer must match. */
static dz_status read_vocab_size(dz_model *m) {
    const dz_gguf_tensor *emb = dz_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!emb) return dz_fail(DZ_ERR_FORMAT, "missing tensor 'token_embd.weight'");
    if (emb->n_dims != 2 || emb->ne[1] < 1 || emb->ne[1] > (1 << 24))
        return dz_fail(DZ_ERR_FORMAT, "tensor 'token_embd.weight' has an implausible shape");
    m->hp.n_vocab = (int32_t)emb->ne[1];
    int32_t n_tok = dz_tokenizer_n_vocab(m->tok);
    if (n_tok != m->hp.n_vocab)
        return dz_fail(DZ_ERR_FORMAT, "the tokenizer has %d tokens but token_embd.weight has %d rows",
                       n_tok, m->hp.n_vocab);
    return DZ_OK;
}

/* The model's device and, unless it is the CPU, the CPU beside it: the
 * scheduler runs there whatever the device refuses. */
static dz_status open_devices(dz_model *m, const dz_model_options *opt) {
    const char *name = opt && opt->device ? opt->device : "cpu";
    dz_status st = dz_device_open(name, &m->device);
    if (st) return st;
    const int32_t threads = opt ? opt->n_threads : 0;
    if (threads > 0 && (st = dz_device_set_threads(m->device, threads))) return st;
    /* The CPU itself needs nothing beside it; any other device does, host memory or not. */
    const char *backend = dz_device_iface(m->device)->name;
    if (!strcmp(backend, "cpu") || !strcmp(backend, "cpu-ref")) return dz_sched_create(&m->device, 1, &m->sched);
    if ((st = dz_device_open("cpu", &m->cpu))) return dz_error_prefix(st, "the CPU to fall back on: ");
    if (threads > 0 && (st = dz_device_set_threads(m->cpu, threads))) return st;
    dz_device *devs[2] = {m->device, m->cpu};
    return dz_sched_create(devs, 2, &m->sched);
}

/* The weights: the file mapping itself on a host device; on any other
 * device a copy of the file's tensor data, in as few pieces as the device's
 * largest buffer allows (a tensor never straddles two). */
static dz_status add_piece(dz_model *m, size_t start, size_t end) {
    dz_buffer **bufs = realloc(m->weights, (size_t)(m->n_weights + 1) * sizeof *bufs);
    if (bufs) m->weights = bufs;
    size_t *starts = bufs ? realloc(m->weights_start, (size_t)(m->n_weights + 1) * sizeof *starts) : NULL;
    if (starts) m->weights_start = starts;
    if (!bufs || !starts) return dz_fail(DZ_ERR_NOMEM, "out of memory placing the weights");
    const char *dev = dz_device_props_get(m->device)->name;
    const size_t size = end - start;
    dz_buffer *b = NULL;
    dz_status st = dz_buffer_alloc(m->device, size ? size : 1, &b);
    if (st) return dz_error_prefix(st, "the model's weights (%zu bytes of them) on %s: ", size, dev);
    m->weights[m->n_weights] = b;
    m->weights_start[m->n_weights++] = start;
    /* In pieces, so that a device with small staging transfers never sees a huge one. */
    const char *base = dz_gguf_base(m->gguf);
    const size_t chunk = (size_t)64 << 20;
    for (size_t done = 0; done < size; done += chunk) {
        const size_t n = size - done < chunk ? size - done : chunk;
        if ((st = dz_buffer_write(b, done, base + start + done, n)))
            return dz_error_prefix(st, "copying the model's weights to %s: ", dev);
    }
    return DZ_OK;
}

static int by_offset(const void *a, const void *b) {
    const dz_gguf_tensor *x = *(const dz_gguf_tensor *const *)a, *y = *(const dz_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static dz_status place_weights(dz_model *m) {
    void *base = (void *)dz_gguf_base(m->gguf); /* read-only mapping: weights are never written */
    const size_t file_size = dz_gguf_file_size(m->gguf);
    if (dz_device_props_get(m->device)->caps & DZ_CAP_HOST_MEMORY) {
        if (!(m->weights = calloc(1, sizeof *m->weights)) || !(m->weights_start = calloc(1, sizeof(size_t))))
            return dz_fail(DZ_ERR_NOMEM, "out of memory placing the weights");
        m->n_weights = 1;
        return dz_buffer_from_host(m->device, base, file_size, &m->weights[0]);
    }
    const dz_device_props *props = dz_device_props_get(m->device);
    const size_t data = dz_gguf_data_offset(m->gguf), limit = (size_t)props->max_buffer_size;
    const int64_t n = dz_gguf_n_tensors(m->gguf);
    if (!limit || file_size - data <= limit) return add_piece(m, data, file_size);
    const dz_gguf_tensor **order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    if (!order) return dz_fail(DZ_ERR_NOMEM, "out of memory placing the weights");
    for (int64_t i = 0; i < n; i++) order[i] = dz_gguf_tensor_at(m->gguf, i);
    qsort(order, (size_t)n, sizeof *order, by_offset);
    dz_status st = DZ_OK;
    size_t start = 0, end = 0; /* the piece being gathered: [start, end) of the file; empty when end == 0 */
    for (int64_t i = 0; !st && i < n; i++) {
        const size_t t0 = data + (size_t)order[i]->offset, t1 = t0 + order[i]->size;
        if (order[i]->size > limit) {
            st = dz_fail(DZ_ERR_NOMEM, "tensor '%s' (%zu bytes) is larger than the largest buffer %s can allocate (%zu bytes)",
                         order[i]->name, order[i]->size, props->name, limit);
        } else if (end && t1 - start > limit) {
            st = add_piece(m, start, end);
            start = t0;
            end = t1;
        } else {
            if (!end) start = t0;
            if (t1 > end) end = t1;
        }
    }
    if (!st && end) st = add_piece(m, start, end);
    free(order);
    return st;
}

static dz_status load(dz_model *m, const dz_model_options *opt) {
    dz_status st;
    if ((st = dz_hparams_read(m->gguf, &m->hp))) return st;
    m->arch = dz_arch_of(&m->hp);
    if ((st = dz_tokenizer_load(m->gguf, &m->tok))) return st;
    if ((st = read_vocab_size(m))) return st;
    if ((st = open_devices(m, opt))) return st;
    if ((st = place_weights(m))) return st;
    /* Enough headers for every tensor the file has (and then some). */
    int64_t n = dz_gguf_n_tensors(m->gguf) + 16;
    if (n > (1 << 20)) n = 1 << 20;
    m->wctx = dz_ctx_create((int32_t)n);
    m->layers = calloc((size_t)m->hp.n_layer, sizeof *m->layers);
    if (!m->wctx || !m->layers) return dz_fail(DZ_ERR_NOMEM, "out of memory for the model's tensors");
    return bind_weights(m);
}

dz_status dz_model_load(const char *path, const dz_model_options *opt, dz_model **out) {
    dz_model *m = calloc(1, sizeof *m);
    if (!m) return dz_fail(DZ_ERR_NOMEM, "out of memory loading %s", path);
    dz_status st = dz_gguf_open(path, &m->gguf); /* its errors name the file */
    if (!st && (st = load(m, opt))) dz_error_prefix(st, "%s: ", path);
    if (st) {
        dz_model_free(m);
        return st;
    }
    *out = m;
    return DZ_OK;
}

void dz_model_free(dz_model *m) {
    if (!m) return;
    dz_ctx_destroy(m->gctx);
    dz_ctx_destroy(m->wctx);
    dz_model_lora_free(m->lora);
    free(m->layers);
    for (int32_t i = 0; i < m->n_weights; i++) dz_buffer_free(m->weights[i]);
    free(m->weights);
    free(m->weights_start);
    dz_sched_destroy(m->sched);
    dz_device_close(m->device);
    dz_device_close(m->cpu);
    dz_tokenizer_free(m->tok);
    dz_gguf_close(m->gguf);
    free(m);
}

const dz_model_hparams *dz_model_hparams_get(const dz_model *m) { return &m->hp; }
const dz_tokenizer *dz_model_tokenizer(const dz_model *m) { return m->tok; }
const dz_gguf *dz_model_gguf(const dz_model *m) { return m->gguf; }
size_t dz_model_weight_bytes(const dz_model *m) { return m->weight_bytes; }
