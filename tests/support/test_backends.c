/* Test-only backends: "partial" (own memory, a few ops) and "wrong" (every
 * op, one broken kernel). See test_backends.h. */
#include "test_backends.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"

/* ---- pieces both backends share ---- */

typedef struct test_buffer {
    unsigned char *mem;
    size_t size;
    bool owned; /* false: wraps the caller's host memory */
} test_buffer;

static dz_status test_buffer_new(size_t size, test_buffer **out) {
    test_buffer *b = calloc(1, sizeof *b);
    unsigned char *mem = malloc(size ? size : 1);
    if (!b || !mem) {
        free(b);
        free(mem);
        return dz_fail(DZ_ERR_NOMEM, "test backend: cannot allocate %zu bytes", size);
    }
    b->mem = mem;
    b->size = size;
    b->owned = true;
    *out = b;
    return DZ_OK;
}

static bool in_range(const test_buffer *b, size_t offset, size_t n) {
    return offset <= b->size && n <= b->size - offset;
}

static void buffer_free(void *self, void *buf) {
    (void)self;
    test_buffer *b = buf;
    if (!b) return;
    if (b->owned) free(b->mem);
    free(b);
}

static dz_status buffer_write(void *self, void *buf, size_t offset, const void *src, size_t n) {
    (void)self;
    test_buffer *b = buf;
    if (!in_range(b, offset, n)) return dz_fail(DZ_ERR_ARG, "test backend: write out of range");
    memcpy(b->mem + offset, src, n);
    return DZ_OK;
}

static dz_status buffer_read(void *self, void *buf, size_t offset, void *dst, size_t n) {
    (void)self;
    test_buffer *b = buf;
    if (!in_range(b, offset, n)) return dz_fail(DZ_ERR_ARG, "test backend: read out of range");
    memcpy(dst, b->mem + offset, n);
    return DZ_OK;
}

static dz_status buffer_copy(void *self, void *dst_buf, size_t dst_offset, void *src_buf,
                             size_t src_offset, size_t n) {
    (void)self;
    test_buffer *d = dst_buf, *s = src_buf;
    if (!in_range(d, dst_offset, n) || !in_range(s, src_offset, n))
        return dz_fail(DZ_ERR_ARG, "test backend: copy out of range");
    memmove(d->mem + dst_offset, s->mem + src_offset, n);
    return DZ_OK;
}

static dz_status buffer_fill(void *self, void *buf, size_t offset, uint8_t value, size_t n) {
    (void)self;
    test_buffer *b = buf;
    if (!in_range(b, offset, n)) return dz_fail(DZ_ERR_ARG, "test backend: fill out of range");
    memset(b->mem + offset, value, n);
    return DZ_OK;
}

static dz_status synchronize(void *self) {
    (void)self;
    return DZ_OK;
}

static int one_device(void) { return 1; }

/* ---- partial ---- */

/* Addresses handed to the core: the real pointer with a high bit set, so a
 * core that dereferences device memory faults instead of silently working. */
#define PARTIAL_TAG ((uintptr_t)1 << 62)

static void *tag(void *p) { return (void *)((uintptr_t)p ^ PARTIAL_TAG); }

typedef struct partial_device { int unused; } partial_device;

static dz_status partial_open(int device, void **self) {
    (void)device;
    partial_device *d = calloc(1, sizeof *d);
    if (!d) return dz_fail(DZ_ERR_NOMEM, "partial: out of memory");
    *self = d;
    return DZ_OK;
}

static void partial_close(void *self) { free(self); }

static dz_status partial_props(void *self, dz_device_props *out) {
    (void)self;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "partial:0");
    snprintf(out->description, sizeof out->description,
             "test device: own memory, ADD/MUL/SILU/MUL_MAT F32 only");
    return DZ_OK;
}

static dz_status partial_alloc(void *self, size_t size, void **buf, void **base) {
    (void)self;
    test_buffer *b = NULL;
    dz_status st = test_buffer_new(size, &b);
    if (st) return st;
    *buf = b;
    *base = tag(b->mem);
    return DZ_OK;
}

bool dzt_partial_claims(dz_op op, dz_type type) {
    switch (op) {
    case DZ_OP_NONE:
    case DZ_OP_VIEW:
    case DZ_OP_ADD:
    case DZ_OP_MUL:
    case DZ_OP_SILU:
        return true;
    case DZ_OP_MUL_MAT:
        return type == DZ_TYPE_F32;
    default:
        return false;
    }
}

static bool partial_supports(void *self, const dz_tensor *node) {
    (void)self;
    dz_type type = node->src[0] ? node->src[0]->type : node->type;
    return dzt_partial_claims(node->op, type) && dz_cpu_supports_node(node);
}

static dz_status partial_compute(void *self, const dz_graph *graph) {
    (void)self;
    for (int32_t i = 0; i < graph->n_nodes; i++) {
        const dz_tensor *node = graph->nodes[i];
        if (node->op == DZ_OP_NONE || node->op == DZ_OP_VIEW) continue;
        /* The kernel sees host pointers: shadow copies with the tag removed. */
        dz_tensor out = *node, src[DZ_MAX_SRC];
        out.data = tag(node->data);
        for (int s = 0; s < DZ_MAX_SRC; s++) {
            if (!node->src[s]) continue;
            src[s] = *node->src[s];
            src[s].data = tag(node->src[s]->data);
            out.src[s] = &src[s];
        }
        dz_status st = dz_cpu_compute_node(&out, 1);
        if (st) return dz_error_prefix(st, "partial: node '%s': ", node->name);
    }
    return DZ_OK;
}

static const dz_backend_iface partial_iface = {
    .abi_version = DZ_BACKEND_ABI_VERSION,
    .struct_size = sizeof(dz_backend_iface),
    .name = "partial",
    .device_count = one_device,
    .open = partial_open,
    .close = partial_close,
    .get_props = partial_props,
    .buffer_alloc = partial_alloc,
    .buffer_free = buffer_free,
    .buffer_write = buffer_write,
    .buffer_read = buffer_read,
    .buffer_copy = buffer_copy,
    .buffer_fill = buffer_fill,
    .supports = partial_supports,
    .compute = partial_compute,
    .synchronize = synchronize,
};

const dz_backend_iface *dzt_partial_backend(void) { return &partial_iface; }

/* ---- wrong ---- */

typedef struct wrong_device { int defect; } wrong_device;

static const char *const defect_names[DZT_WRONG_COUNT] = {
    [DZT_WRONG_RMS_NORM] = "RMS_NORM ignores eps and scales by 1.001",
    [DZT_WRONG_MUL_MAT] = "MUL_MAT drops the last element of K",
    [DZT_WRONG_ADD_STRIDES] = "ADD treats src0 as contiguous",
    [DZT_WRONG_SCALE_TAIL] = "SCALE leaves its last element unwritten",
    [DZT_WRONG_SILU_INPUT] = "SILU overwrites its input",
};

static int wrong_count(void) { return DZT_WRONG_COUNT; }

static dz_status wrong_open(int device, void **self) {
    wrong_device *d = calloc(1, sizeof *d);
    if (!d) return dz_fail(DZ_ERR_NOMEM, "wrong: out of memory");
    d->defect = device;
    *self = d;
    return DZ_OK;
}

static void wrong_close(void *self) { free(self); }

static dz_status wrong_props(void *self, dz_device_props *out) {
    const wrong_device *d = self;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "wrong:%d", d->defect);
    snprintf(out->description, sizeof out->description, "test device: claims every op; %s",
             defect_names[d->defect]);
    out->caps = DZ_CAP_HOST_MEMORY;
    return DZ_OK;
}

static dz_status wrong_alloc(void *self, size_t size, void **buf, void **base) {
    (void)self;
    test_buffer *b = NULL;
    dz_status st = test_buffer_new(size, &b);
    if (st) return st;
    *buf = b;
    *base = b->mem;
    return DZ_OK;
}

static dz_status wrong_from_host(void *self, void *ptr, size_t size, void **buf) {
    (void)self;
    test_buffer *b = calloc(1, sizeof *b);
    if (!b) return dz_fail(DZ_ERR_NOMEM, "wrong: out of memory");
    *b = (test_buffer){ptr, size, false};
    *buf = b;
    return DZ_OK;
}

static bool wrong_supports(void *self, const dz_tensor *node) {
    (void)self;
    (void)node;
    return true;
}

/* RMS_NORM without eps, output scaled by 1.001. */
static dz_status rms_norm_wrong(const dz_tensor *node) {
    dz_tensor shadow = *node;
    shadow.params.f[0] = 0.0f;
    dz_status st = dz_cpu_compute_node(&shadow, 1);
    float *out = node->data;
    for (int64_t i = 0, n = node->ne[0] * node->ne[1] * node->ne[2] * node->ne[3]; i < n; i++)
        out[i] *= 1.001f;
    return st;
}

/* MUL_MAT on a copy of x (K, M, B2, B3) whose last column is zero. */
static dz_status mul_mat_wrong(const dz_tensor *node) {
    const dz_tensor *x = node->src[1];
    int64_t K = x->ne[0], rows = x->ne[1] * x->ne[2] * x->ne[3];
    float *copy = malloc((size_t)(K * rows) * sizeof(float));
    if (!copy) return dz_fail(DZ_ERR_NOMEM, "wrong: out of memory");
    int64_t r = 0;
    for (int64_t i3 = 0; i3 < x->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < x->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < x->ne[1]; i1++, r++)
                for (int64_t k = 0; k < K; k++) {
                    const char *p = (const char *)x->data + i3 * x->nb[3] + i2 * x->nb[2] +
                                    i1 * x->nb[1] + k * x->nb[0];
                    copy[r * K + k] = k == K - 1 ? 0.0f : *(const float *)p;
                }
    dz_tensor x_copy = *x, shadow = *node;
    x_copy.op = DZ_OP_NONE;
    x_copy.view_src = NULL;
    x_copy.data = copy;
    x_copy.nb[0] = sizeof(float);
    for (int d = 1; d < DZ_MAX_DIMS; d++) x_copy.nb[d] = x_copy.nb[d - 1] * (size_t)x->ne[d - 1];
    shadow.src[1] = &x_copy;
    dz_status st = dz_cpu_compute_node(&shadow, 1);
    free(copy);
    return st;
}

/* ADD reading src0 as if it were contiguous. */
static dz_status add_wrong(const dz_tensor *node) {
    dz_tensor a = *node->src[0], shadow = *node;
    a.nb[0] = sizeof(float);
    for (int d = 1; d < DZ_MAX_DIMS; d++) a.nb[d] = a.nb[d - 1] * (size_t)a.ne[d - 1];
    shadow.src[0] = &a;
    return dz_cpu_compute_node(&shadow, 1);
}

/* SCALE into a scratch copy, all but the last element copied out. */
static dz_status scale_wrong(const dz_tensor *node) {
    int64_t n = node->ne[0] * node->ne[1] * node->ne[2] * node->ne[3];
    float *scratch = malloc((size_t)n * sizeof(float));
    if (!scratch) return dz_fail(DZ_ERR_NOMEM, "wrong: out of memory");
    dz_tensor shadow = *node;
    shadow.data = scratch;
    dz_status st = dz_cpu_compute_node(&shadow, 1);
    memcpy(node->data, scratch, (size_t)(n - 1) * sizeof(float));
    free(scratch);
    return st;
}

/* SILU, then the result written over the first element of x as well. */
static dz_status silu_wrong(const dz_tensor *node) {
    dz_status st = dz_cpu_compute_node(node, 1);
    memcpy(node->src[0]->data, node->data, sizeof(float));
    return st;
}

static dz_status wrong_compute(void *self, const dz_graph *graph) {
    const wrong_device *d = self;
    for (int32_t i = 0; i < graph->n_nodes; i++) {
        const dz_tensor *node = graph->nodes[i];
        dz_status st;
        if (d->defect == DZT_WRONG_RMS_NORM && node->op == DZ_OP_RMS_NORM)
            st = rms_norm_wrong(node);
        else if (d->defect == DZT_WRONG_MUL_MAT && node->op == DZ_OP_MUL_MAT)
            st = mul_mat_wrong(node);
        else if (d->defect == DZT_WRONG_ADD_STRIDES && node->op == DZ_OP_ADD)
            st = add_wrong(node);
        else if (d->defect == DZT_WRONG_SCALE_TAIL && node->op == DZ_OP_SCALE)
            st = scale_wrong(node);
        else if (d->defect == DZT_WRONG_SILU_INPUT && node->op == DZ_OP_SILU)
            st = silu_wrong(node);
        else
            st = dz_cpu_compute_node(node, 1);
        if (st) return dz_error_prefix(st, "wrong: node '%s': ", node->name);
    }
    return DZ_OK;
}

static const dz_backend_iface wrong_iface = {
    .abi_version = DZ_BACKEND_ABI_VERSION,
    .struct_size = sizeof(dz_backend_iface),
    .name = "wrong",
    .device_count = wrong_count,
    .open = wrong_open,
    .close = wrong_close,
    .get_props = wrong_props,
    .buffer_alloc = wrong_alloc,
    .buffer_free = buffer_free,
    .buffer_write = buffer_write,
    .buffer_read = buffer_read,
    .buffer_copy = buffer_copy,
    .buffer_fill = buffer_fill,
    .supports = wrong_supports,
    .compute = wrong_compute,
    .synchronize = synchronize,
    .caps = DZ_CAP_HOST_MEMORY,
    .buffer_from_host = wrong_from_host,
};

const dz_backend_iface *dzt_wrong_backend(void) { return &wrong_iface; }
