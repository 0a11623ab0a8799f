/* A deliberately partial backend, shipped as a plugin the way a vendor ships
 * one: it links nothing of dizuo's, exports dz_backend_entry, keeps its
 * memory to itself (malloc'd, not announced as host memory, so the core
 * must copy through buffer_read/buffer_write), and computes only three ops:
 * MUL_MAT of contiguous F32 weights by F32 rows, ADD of same-shape
 * contiguous F32 tensors, and RMS_NORM of contiguous F32 rows. Everything
 * else must fall back to the CPU through copies the core scheduler inserts.
 * The environment variable PARTIAL_MAX_BUFFER (bytes) sets the largest
 * buffer it allocates, as a GPU's driver limits one allocation.
 *
 * Built three times by tests/plugins/CMakeLists.txt: as is; with
 * PARTIAL_ABI_VERSION set to a version no core knows; and with
 * PARTIAL_NO_ENTRY (no entry symbol) — the two refusals test_plugin expects. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/backend.h"

#ifndef PARTIAL_ABI_VERSION
#define PARTIAL_ABI_VERSION DZ_BACKEND_ABI_VERSION
#endif

static const dz_host_api *host;

/* Counters the test reads through dlsym (partial_backend_stats). */
static struct { long nodes; long bytes_in; long bytes_out; } stats;

typedef struct pbuf {
    uint8_t *mem;
    size_t size;
} pbuf;

static size_t max_buffer(void) {
    const char *env = getenv("PARTIAL_MAX_BUFFER");
    return env && env[0] ? (size_t)strtoull(env, NULL, 10) : 0;
}

static int p_device_count(void) { return 1; }
static dz_status p_open(int device, void **self) {
    (void)device;
    *self = &stats;
    return DZ_OK;
}
static void p_close(void *self) { (void)self; }

static dz_status p_get_props(void *self, dz_device_props *out) {
    (void)self;
    memset(out, 0, sizeof *out);
    strcpy(out->name, "partial:0");
    strcpy(out->description, "test backend: MUL_MAT F32, ADD, RMS_NORM only");
    out->memory_total = (uint64_t)1 << 32;
    out->memory_free = out->memory_total;
    out->max_buffer_size = max_buffer();
    return DZ_OK;
}

static dz_status p_buffer_alloc(void *self, size_t size, void **buf, void **base) {
    (void)self;
    if (max_buffer() && size > max_buffer())
        return host->fail(DZ_ERR_NOMEM, "partial:0 allocates at most %zu bytes at once", max_buffer());
    pbuf *b = malloc(sizeof *b);
    uint8_t *mem = size <= ((size_t)1 << 40) ? malloc(size ? size : 1) : NULL;
    if (!b || !mem) {
        free(b);
        free(mem);
        return host->fail(DZ_ERR_NOMEM, "partial:0: cannot allocate %zu bytes", size);
    }
    b->mem = mem;
    b->size = size;
    *buf = b;
    *base = mem;
    return DZ_OK;
}

static void p_buffer_free(void *self, void *buf) {
    (void)self;
    pbuf *b = buf;
    if (b) free(b->mem);
    free(b);
}

static dz_status p_buffer_write(void *self, void *buf, size_t offset, const void *src, size_t n) {
    (void)self;
    memcpy(((pbuf *)buf)->mem + offset, src, n);
    stats.bytes_in += (long)n;
    return DZ_OK;
}

static dz_status p_buffer_read(void *self, void *buf, size_t offset, void *dst, size_t n) {
    (void)self;
    memcpy(dst, ((pbuf *)buf)->mem + offset, n);
    stats.bytes_out += (long)n;
    return DZ_OK;
}

static dz_status p_buffer_copy(void *self, void *dst, size_t dst_offset, void *src, size_t src_offset, size_t n) {
    (void)self;
    memmove(((pbuf *)dst)->mem + dst_offset, ((pbuf *)src)->mem + src_offset, n);
    return DZ_OK;
}

static dz_status p_buffer_fill(void *self, void *buf, size_t offset, uint8_t value, size_t n) {
    (void)self;
    memset(((pbuf *)buf)->mem + offset, value, n);
    return DZ_OK;
}

static bool contiguous_f32(const dz_tensor *t) {
    if (t->type != DZ_TYPE_F32 || t->nb[0] != sizeof(float)) return false;
    for (int i = 1; i < DZ_MAX_DIMS; i++)
        if (t->nb[i] != t->nb[i - 1] * (size_t)t->ne[i - 1]) return false;
    return true;
}

static int64_t n_elements(const dz_tensor *t) { return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; }

static bool p_supports(void *self, const dz_tensor *n) {
    (void)self;
    if (!contiguous_f32(n)) return false;
    switch (n->op) {
    case DZ_OP_MUL_MAT: /* 2-D only: W (K, N) by X (K, M) */
        return contiguous_f32(n->src[0]) && contiguous_f32(n->src[1]) && n->src[0]->ne[2] == 1 &&
               n->src[0]->ne[3] == 1 && n->src[1]->ne[2] == 1 && n->src[1]->ne[3] == 1;
    case DZ_OP_ADD:
        return contiguous_f32(n->src[0]) && contiguous_f32(n->src[1]) &&
               memcmp(n->src[0]->ne, n->src[1]->ne, sizeof n->ne) == 0;
    case DZ_OP_RMS_NORM:
        return contiguous_f32(n->src[0]);
    default:
        return false;
    }
}

static void mul_mat(dz_tensor *n) {
    const dz_tensor *w = n->src[0], *x = n->src[1];
    const int64_t K = w->ne[0], N = w->ne[1], M = x->ne[1];
    const float *W = w->data, *X = x->data;
    float *Y = n->data;
    for (int64_t m = 0; m < M; m++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++) acc += (double)W[j * K + k] * (double)X[m * K + k];
            Y[m * N + j] = (float)acc;
        }
}

static void rms_norm(dz_tensor *n) {
    const dz_tensor *x = n->src[0];
    const int64_t len = x->ne[0], rows = n_elements(x) / len;
    const float *X = x->data;
    float *Y = n->data;
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0;
        for (int64_t i = 0; i < len; i++) ss += (double)X[r * len + i] * X[r * len + i];
        const double inv = 1.0 / sqrt(ss / (double)len + (double)n->params.f[0]);
        for (int64_t i = 0; i < len; i++) Y[r * len + i] = (float)(X[r * len + i] * inv);
    }
}

static dz_status p_compute(void *self, const dz_graph *g) {
    (void)self;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        dz_tensor *n = g->nodes[i];
        switch (n->op) {
        case DZ_OP_MUL_MAT:
            mul_mat(n);
            break;
        case DZ_OP_ADD: {
            const float *a = n->src[0]->data, *b = n->src[1]->data;
            float *y = n->data;
            for (int64_t k = 0, e = n_elements(n); k < e; k++) y[k] = a[k] + b[k];
            break;
        }
        case DZ_OP_RMS_NORM:
            rms_norm(n);
            break;
        default:
            return host->fail(DZ_ERR_UNSUPPORTED, "partial:0 was given node '%s' (op %d), which it refused",
                              n->name, (int)n->op);
        }
        stats.nodes++;
    }
    return DZ_OK;
}

static dz_status p_synchronize(void *self) {
    (void)self;
    return DZ_OK;
}

static const dz_backend_iface partial_iface = {
    .abi_version = PARTIAL_ABI_VERSION,
    .struct_size = sizeof(dz_backend_iface),
    .name = "partial",
    .device_count = p_device_count,
    .open = p_open,
    .close = p_close,
    .get_props = p_get_props,
    .buffer_alloc = p_buffer_alloc,
    .buffer_free = p_buffer_free,
    .buffer_write = p_buffer_write,
    .buffer_read = p_buffer_read,
    .buffer_copy = p_buffer_copy,
    .buffer_fill = p_buffer_fill,
    .supports = p_supports,
    .compute = p_compute,
    .synchronize = p_synchronize,
};

/* Nodes computed and bytes moved in and out so far (for the test). */
__attribute__((visibility("default"))) void partial_backend_stats(long *nodes, long *bytes_in, long *bytes_out);
void partial_backend_stats(long *nodes, long *bytes_in, long *bytes_out) {
    *nodes = stats.nodes;
    *bytes_in = stats.bytes_in;
    *bytes_out = stats.bytes_out;
}

#ifdef PARTIAL_NO_ENTRY
/* The table is still built (a plugin that forgot to export its entry). */
__attribute__((visibility("default"))) const dz_backend_iface *partial_backend_table(void);
const dz_backend_iface *partial_backend_table(void) { return &partial_iface; }
#else
__attribute__((visibility("default"))) const dz_backend_iface *dz_backend_entry(const dz_host_api *h);
const dz_backend_iface *dz_backend_entry(const dz_host_api *h) {
    if (!h || h->abi_version < 1) return NULL;
    host = h;
    return &partial_iface;
}
#endif
