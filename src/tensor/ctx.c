/* The context arena of tensor headers, tensor properties, binding tensors to
 * buffers and host transfers, and views (reshape, permute, ...). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor_impl.h"

dz_ctx *dz_ctx_create(int32_t max_tensors) {
    if (max_tensors < 1) max_tensors = 1;
    dz_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return NULL;
    /* calloc: headers start zeroed, so unused fields (src, view_src) are NULL. */
    ctx->tensors = calloc((size_t)max_tensors, sizeof *ctx->tensors);
    if (!ctx->tensors) {
        free(ctx);
        return NULL;
    }
    ctx->max_tensors = max_tensors;
    return ctx;
}

static void free_graphs(dz_ctx *ctx) {
    for (int32_t i = 0; i < ctx->n_graphs; i++) {
        free(ctx->graphs[i]->nodes);
        free(ctx->graphs[i]);
    }
    ctx->n_graphs = 0;
}

void dz_ctx_destroy(dz_ctx *ctx) {
    if (!ctx) return;
    free_graphs(ctx);
    free(ctx->graphs);
    free(ctx->tensors);
    free(ctx);
}

void dz_ctx_reset(dz_ctx *ctx) {
    if (!ctx) return;
    free_graphs(ctx);
    memset(ctx->tensors, 0, (size_t)ctx->n_tensors * sizeof *ctx->tensors);
    ctx->n_tensors = 0;
    ctx->status = DZ_OK;
    ctx->error[0] = '\0';
}

dz_status dz_ctx_status(const dz_ctx *ctx) {
    if (!ctx) return dz_fail(DZ_ERR_ARG, "NULL tensor context");
    if (ctx->status) dz_fail(ctx->status, "%s", ctx->error);
    return ctx->status;
}

const char *dz_ctx_error(const dz_ctx *ctx) { return ctx ? ctx->error : "NULL tensor context"; }

dz_tensor *dz_ctx_fail(dz_ctx *ctx, dz_status st, const char *fmt, ...) {
    char msg[sizeof ctx->error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!ctx->status) {
        ctx->status = st;
        memcpy(ctx->error, msg, sizeof msg);
    }
    dz_fail(st, "%s", msg);
    return NULL;
}

const char *dz_shape_str(const dz_tensor *t, char *buf, size_t cap) {
    snprintf(buf, cap, "(%lld, %lld, %lld, %lld) %s", (long long)t->ne[0], (long long)t->ne[1],
             (long long)t->ne[2], (long long)t->ne[3], dz_type_name(t->type));
    return buf;
}

/* Contiguous strides for t's type and shape; false on overflow. */
static bool set_contiguous_strides(dz_tensor *t, const dz_type_traits *tt) {
    t->nb[0] = tt->type_size;
    size_t row = (size_t)(t->ne[0] / tt->block_size);
    if (dz_mul_overflows(row, tt->type_size, &t->nb[1])) return false;
    for (int i = 2; i < DZ_MAX_DIMS; i++)
        if (dz_mul_overflows(t->nb[i - 1], (size_t)t->ne[i - 1], &t->nb[i])) return false;
    size_t total;
    return !dz_mul_overflows(t->nb[3], (size_t)t->ne[3], &total);
}

dz_tensor *dz_ctx_new(dz_ctx *ctx, const char *op, dz_type type, int n_dims, const int64_t *ne) {
    if (!ctx) return NULL;
    const dz_type_traits *tt = dz_type_info((int)type);
    if (!tt) return dz_ctx_fail(ctx, DZ_ERR_ARG, "%s: unknown type id %d", op, (int)type);
    if (n_dims < 1 || n_dims > DZ_MAX_DIMS || !ne)
        return dz_ctx_fail(ctx, DZ_ERR_ARG, "%s: %d dimensions (1..%d allowed)", op, n_dims, DZ_MAX_DIMS);
    int64_t count = 1;
    for (int i = 0; i < n_dims; i++) {
        if (ne[i] < 0 || (ne[i] > 0 && count > INT64_MAX / ne[i]))
            return dz_ctx_fail(ctx, DZ_ERR_ARG, "%s: dimension %d of %lld elements is invalid", op, i,
                               (long long)ne[i]);
        count *= ne[i];
    }
    if (ne[0] % tt->block_size != 0)
        return dz_ctx_fail(ctx, DZ_ERR_ARG, "%s: rows of %lld elements are not a multiple of %s's block size %d",
                           op, (long long)ne[0], tt->name, tt->block_size);
    if (ctx->n_tensors == ctx->max_tensors)
        return dz_ctx_fail(ctx, DZ_ERR_NOMEM, "%s: the tensor context is full (%d tensors)", op,
                           ctx->max_tensors);
    dz_tensor *t = &ctx->tensors[ctx->n_tensors];
    memset(t, 0, sizeof *t);
    t->type = type;
    t->n_dims = n_dims;
    for (int i = 0; i < DZ_MAX_DIMS; i++) t->ne[i] = i < n_dims ? ne[i] : 1;
    if (!set_contiguous_strides(t, tt))
        return dz_ctx_fail(ctx, DZ_ERR_ARG, "%s: a tensor of %lld elements of %s overflows memory sizes", op,
                           (long long)count, tt->name);
    ctx->n_tensors++;
    return t;
}

dz_tensor *dz_new_tensor(dz_ctx *ctx, dz_type type, int n_dims, const int64_t *ne) {
    return dz_ctx_new(ctx, "new_tensor", type, n_dims, ne);
}

dz_tensor *dz_new_tensor_1d(dz_ctx *ctx, dz_type type, int64_t ne0) {
    return dz_ctx_new(ctx, "new_tensor_1d", type, 1, (int64_t[]){ne0});
}

dz_tensor *dz_new_tensor_2d(dz_ctx *ctx, dz_type type, int64_t ne0, int64_t ne1) {
    return dz_ctx_new(ctx, "new_tensor_2d", type, 2, (int64_t[]){ne0, ne1});
}

dz_tensor *dz_new_tensor_3d(dz_ctx *ctx, dz_type type, int64_t ne0, int64_t ne1, int64_t ne2) {
    return dz_ctx_new(ctx, "new_tensor_3d", type, 3, (int64_t[]){ne0, ne1, ne2});
}

void dz_set_name(dz_tensor *t, const char *fmt, ...) {
    if (!t) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
}

void dz_set_input(dz_tensor *t) {
    if (t) t->flags |= DZ_TENSOR_INPUT;
}

void dz_set_output(dz_tensor *t) {
    if (t) t->flags |= DZ_TENSOR_OUTPUT;
}

int64_t dz_nelements(const dz_tensor *t) { return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; }

int64_t dz_nrows(const dz_tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

size_t dz_nbytes(const dz_tensor *t) {
    for (int i = 0; i < DZ_MAX_DIMS; i++)
        if (t->ne[i] <= 0) return 0;
    const dz_type_traits *tt = dz_type_info((int)t->type);
    if (!tt) return 0;
    /* The span from the first byte to the last element's end (strides >= 0). */
    size_t bytes;
    int first_dim;
    if (tt->block_size == 1) {
        bytes = tt->type_size;
        first_dim = 0;
    } else { /* blocks stay packed along dimension 0 */
        bytes = (size_t)(t->ne[0] / tt->block_size) * t->nb[0];
        first_dim = 1;
    }
    for (int i = first_dim; i < DZ_MAX_DIMS; i++) bytes += (size_t)(t->ne[i] - 1) * t->nb[i];
    return bytes;
}

bool dz_is_contiguous(const dz_tensor *t) {
    const dz_type_traits *tt = dz_type_info((int)t->type);
    if (!tt || t->nb[0] != tt->type_size) return false;
    size_t expect = (size_t)(t->ne[0] / tt->block_size) * tt->type_size;
    for (int i = 1; i < DZ_MAX_DIMS; i++) {
        if (t->ne[i] != 1 && t->nb[i] != expect) return false;
        expect *= (size_t)t->ne[i];
    }
    return true;
}

/* ---- memory ---- */

dz_status dz_tensor_bind(dz_tensor *t, dz_buffer *buf, size_t offset) {
    if (!t || !buf) return dz_fail(DZ_ERR_ARG, "dz_tensor_bind: NULL argument");
    if (t->view_src)
        return dz_fail(DZ_ERR_ARG, "tensor '%s' is a view: bind the tensor it views instead", t->name);
    size_t end, bytes = dz_nbytes(t);
    if (dz_add_overflows(offset, bytes, &end) || end > buf->size)
        return dz_fail(DZ_ERR_ARG, "tensor '%s' (%zu bytes at offset %zu) does not fit in a buffer of %zu bytes",
                       t->name, bytes, offset, buf->size);
    t->buffer = buf;
    t->data = (char *)buf->base + offset;
    t->flags &= ~DZ_TENSOR_PLANNED;
    return DZ_OK;
}

/* The buffer holding t's data and t's byte offset in it. */
static dz_status locate(const dz_tensor *t, size_t offset, size_t n, const char *what,
                        dz_buffer **buf, size_t *at) {
    if (!t) return dz_fail(DZ_ERR_ARG, "%s: NULL tensor", what);
    const dz_tensor *root = dz_tensor_root(t);
    if (!root->buffer || !t->data)
        return dz_fail(DZ_ERR_ARG, "%s: tensor '%s' has no memory yet (bind it or run dz_sched_alloc)", what,
                       t->name);
    size_t end, bytes = dz_nbytes(t);
    if (dz_add_overflows(offset, n, &end) || end > bytes)
        return dz_fail(DZ_ERR_ARG, "%s: bytes [%zu, %zu + %zu) lie outside tensor '%s' of %zu bytes", what,
                       offset, offset, n, t->name, bytes);
    *buf = root->buffer;
    *at = (size_t)((const char *)t->data - (const char *)root->buffer->base) + offset;
    return DZ_OK;
}

dz_status dz_tensor_write(dz_tensor *t, const void *src, size_t offset, size_t n) {
    dz_buffer *buf = NULL;
    size_t at = 0;
    dz_status st = locate(t, offset, n, "tensor write", &buf, &at);
    return st ? st : dz_buffer_write(buf, at, src, n);
}

dz_status dz_tensor_read(const dz_tensor *t, void *dst, size_t offset, size_t n) {
    dz_buffer *buf = NULL;
    size_t at = 0;
    dz_status st = locate(t, offset, n, "tensor read", &buf, &at);
    return st ? st : dz_buffer_read(buf, at, dst, n);
}

/* ---- views ---- */

/* dz_nbytes with overflow checks (view strides come from callers). */
static bool span_checked(const dz_tensor *t, size_t *out) {
    for (int i = 0; i < DZ_MAX_DIMS; i++)
        if (t->ne[i] <= 0) {
            *out = 0;
            return true;
        }
    const dz_type_traits *tt = dz_type_info((int)t->type);
    size_t bytes = tt->type_size, term;
    int first_dim = 0;
    if (tt->block_size != 1) {
        if (dz_mul_overflows((size_t)(t->ne[0] / tt->block_size), t->nb[0], &bytes)) return false;
        first_dim = 1;
    }
    for (int i = first_dim; i < DZ_MAX_DIMS; i++)
        if (dz_mul_overflows((size_t)(t->ne[i] - 1), t->nb[i], &term) || dz_add_overflows(bytes, term, &bytes))
            return false;
    *out = bytes;
    return true;
}

/* A VIEW node of `a` with the given shape and strides at byte `offset` from
 * a's data. Checks that the view stays inside the memory of a's root. */
static dz_tensor *make_view(dz_ctx *ctx, const char *op, dz_tensor *a, int n_dims, const int64_t *ne,
                            const size_t *nb, size_t offset) {
    if (!ctx || !a) return NULL;
    dz_tensor *v = dz_ctx_new(ctx, op, a->type, n_dims, ne);
    if (!v) return NULL;
    for (int i = 0; i < DZ_MAX_DIMS; i++) v->nb[i] = nb[i];
    dz_tensor *root = dz_tensor_root(a);
    size_t base = a->view_src ? a->view_offset : 0, at, end;
    size_t span = 0, root_bytes = dz_nbytes(root);
    if (!span_checked(v, &span) || dz_add_overflows(base, offset, &at) || dz_add_overflows(at, span, &end) ||
        end > root_bytes) {
        char s1[96], s2[96];
        ctx->n_tensors--; /* give the header back */
        return dz_ctx_fail(ctx, DZ_ERR_ARG, "%s: a view %s of %zu bytes at offset %zu exceeds '%s' %s (%zu bytes)",
                           op, dz_shape_str(v, s1, sizeof s1), span, offset, root->name,
                           dz_shape_str(root, s2, sizeof s2), root_bytes);
    }
    v->op = DZ_OP_VIEW;
    v->src[0] = a;
    v->view_src = root;
    v->view_offset = at;
    if (root->buffer && root->data) {
        v->buffer = root->buffer;
        v->data = (char *)root->data + at;
    }
    snprintf(v->name, sizeof v->name, "%.50s (view)", a->name);
    return v;
}

dz_tensor *dz_view_1d(dz_ctx *ctx, dz_tensor *a, int64_t ne0, size_t offset) {
    if (!a) return NULL;
    size_t nb[4] = {a->nb[0], 0, 0, 0};
    const dz_type_traits *tt = dz_type_info((int)a->type);
    nb[1] = nb[2] = nb[3] = (size_t)(ne0 > 0 ? ne0 : 0) / (size_t)tt->block_size * tt->type_size;
    return make_view(ctx, "view_1d", a, 1, (int64_t[]){ne0}, nb, offset);
}

dz_tensor *dz_view_2d(dz_ctx *ctx, dz_tensor *a, int64_t ne0, int64_t ne1, size_t nb1, size_t offset) {
    if (!a) return NULL;
    size_t nb[4] = {a->nb[0], nb1, nb1 * (size_t)(ne1 > 0 ? ne1 : 0), 0};
    nb[3] = nb[2];
    return make_view(ctx, "view_2d", a, 2, (int64_t[]){ne0, ne1}, nb, offset);
}

dz_tensor *dz_view_3d(dz_ctx *ctx, dz_tensor *a, int64_t ne0, int64_t ne1, int64_t ne2, size_t nb1,
                      size_t nb2, size_t offset) {
    if (!a) return NULL;
    size_t nb[4] = {a->nb[0], nb1, nb2, nb2 * (size_t)(ne2 > 0 ? ne2 : 0)};
    return make_view(ctx, "view_3d", a, 3, (int64_t[]){ne0, ne1, ne2}, nb, offset);
}

static dz_tensor *reshape(dz_ctx *ctx, const char *op, dz_tensor *a, int n_dims, const int64_t *ne) {
    if (!ctx || !a) return NULL;
    char s[96];
    if (!dz_is_contiguous(a))
        return dz_ctx_fail(ctx, DZ_ERR_ARG, "%s: '%s' %s is not contiguous", op, a->name,
                           dz_shape_str(a, s, sizeof s));
    int64_t count = 1;
    for (int i = 0; i < n_dims; i++) {
        if (ne[i] < 0 || (ne[i] > 0 && count > INT64_MAX / ne[i])) count = -1;
        if (count < 0) break;
        count *= ne[i];
    }
    if (count != dz_nelements(a))
        return dz_ctx_fail(ctx, DZ_ERR_ARG, "%s: cannot reshape '%s' %s (%lld elements) to (%lld, %lld, %lld)",
                           op, a->name, dz_shape_str(a, s, sizeof s), (long long)dz_nelements(a),
                           (long long)ne[0], (long long)(n_dims > 1 ? ne[1] : 1),
                           (long long)(n_dims > 2 ? ne[2] : 1));
    dz_tensor probe = {.type = a->type, .ne = {1, 1, 1, 1}};
    for (int i = 0; i < n_dims; i++) probe.ne[i] = ne[i];
    const dz_type_traits *tt = dz_type_info((int)a->type);
    size_t nb[4] = {tt->type_size, (size_t)(probe.ne[0] / tt->block_size) * tt->type_size, 0, 0};
    nb[2] = nb[1] * (size_t)probe.ne[1];
    nb[3] = nb[2] * (size_t)probe.ne[2];
    return make_view(ctx, op, a, n_dims, ne, nb, 0);
}

dz_tensor *dz_reshape_2d(dz_ctx *ctx, dz_tensor *a, int64_t ne0, int64_t ne1) {
    return reshape(ctx, "reshape_2d", a, 2, (int64_t[]){ne0, ne1});
}

dz_tensor *dz_reshape_3d(dz_ctx *ctx, dz_tensor *a, int64_t ne0, int64_t ne1, int64_t ne2) {
    return reshape(ctx, "reshape_3d", a, 3, (int64_t[]){ne0, ne1, ne2});
}

dz_tensor *dz_permute(dz_ctx *ctx, dz_tensor *a, int ax0, int ax1, int ax2, int ax3) {
    if (!ctx || !a) return NULL;
    const int axes[4] = {ax0, ax1, ax2, ax3};
    bool seen[4] = {false, false, false, false};
    for (int i = 0; i < 4; i++) {
        if (axes[i] < 0 || axes[i] > 3 || seen[axes[i]])
            return dz_ctx_fail(ctx, DZ_ERR_ARG, "permute: axes (%d, %d, %d, %d) are not a permutation of 0..3",
                               ax0, ax1, ax2, ax3);
        seen[axes[i]] = true;
    }
    if (dz_type_info((int)a->type)->block_size != 1 && axes[0] != 0)
        return dz_ctx_fail(ctx, DZ_ERR_ARG, "permute: '%s' is %s; its blocks cannot leave dimension 0",
                           a->name, dz_type_name(a->type));
    /* Dimension i of a becomes dimension axes[i] of the result. */
    int64_t ne[4];
    size_t nb[4];
    for (int i = 0; i < 4; i++) {
        ne[axes[i]] = a->ne[i];
        nb[axes[i]] = a->nb[i];
    }
    int n_dims = 4;
    while (n_dims > 1 && ne[n_dims - 1] == 1) n_dims--;
    return make_view(ctx, "permute", a, n_dims, ne, nb, 0);
}

dz_tensor *dz_transpose(dz_ctx *ctx, dz_tensor *a) { return dz_permute(ctx, a, 1, 0, 2, 3); }
