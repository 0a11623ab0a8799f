/* "cuda-emu": the CUDA backend's kernel bodies run on the host, for tests
 * on machines without a GPU. It accepts exactly the nodes the CUDA device
 * accepts (dz_cuda_supports_node) and runs them through the same dispatch
 * (dz_cuda_run_node) with each team of GPU threads played by the calling
 * thread. Its memory is malloc'd, but it does not announce
 * DZ_CAP_HOST_MEMORY: the core copies to and from it through
 * buffer_read/buffer_write as it does for a GPU. Not registered; tests open
 * it with dz_device_open_iface(dz_cuda_emu_backend_iface(), 0, ...). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda.h"

typedef struct emu_device {
    unsigned error_word;
    void *scratch;
    size_t scratch_bytes;
    dz_cuda_watch watch;
} emu_device;

static int emu_device_count(void) { return 1; }

static dz_status emu_open(int index, void **self) {
    if (index != 0) return dz_fail(DZ_ERR_ARG, "cuda-emu: no device %d (there is one: cuda-emu:0)", index);
    emu_device *dev = calloc(1, sizeof *dev);
    if (!dev) return dz_fail(DZ_ERR_NOMEM, "cuda-emu: out of memory opening the device");
    *self = dev;
    return DZ_OK;
}

static void emu_close(void *self) {
    emu_device *dev = self;
    if (dev) free(dev->scratch);
    free(dev);
}

static dz_status emu_get_props(void *self, dz_device_props *out) {
    (void)self;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "cuda-emu:0");
    snprintf(out->description, sizeof out->description, "the CUDA kernels run on the host, one thread per team");
    out->caps = 0;
    out->tiers = DZ_TIER_I;
    return DZ_OK;
}

static dz_status emu_buffer_alloc(void *self, size_t size, void **buf, void **base) {
    (void)self;
    void *mem = malloc(size ? size : 1);
    if (!mem) return dz_fail(DZ_ERR_NOMEM, "cuda-emu: out of memory allocating %zu bytes", size);
    *buf = mem;
    *base = mem;
    return DZ_OK;
}

static void emu_buffer_free(void *self, void *buf) {
    (void)self;
    free(buf);
}

static dz_status emu_buffer_write(void *self, void *buf, size_t offset, const void *src, size_t n) {
    (void)self;
    memcpy((char *)buf + offset, src, n);
    return DZ_OK;
}

static dz_status emu_buffer_read(void *self, void *buf, size_t offset, void *dst, size_t n) {
    (void)self;
    memcpy(dst, (const char *)buf + offset, n);
    return DZ_OK;
}

static dz_status emu_buffer_copy(void *self, void *dst_buf, size_t dst_offset, void *src_buf, size_t src_offset,
                                 size_t n) {
    (void)self;
    memmove((char *)dst_buf + dst_offset, (const char *)src_buf + src_offset, n);
    return DZ_OK;
}

static dz_status emu_buffer_fill(void *self, void *buf, size_t offset, uint8_t value, size_t n) {
    (void)self;
    memset((char *)buf + offset, value, n);
    return DZ_OK;
}

static bool emu_supports(void *self, const dz_tensor *node) {
    (void)self;
    return dz_cuda_supports_node(node, 0);
}

static dz_status emu_compute(void *self, const dz_graph *graph) {
    emu_device *dev = self;
    const size_t need = dz_cuda_graph_scratch_bytes(graph);
    if (need > dev->scratch_bytes) {
        void *mem = malloc(need);
        if (!mem) return dz_fail(DZ_ERR_NOMEM, "cuda-emu: out of memory for %zu bytes of scratch", need);
        free(dev->scratch);
        dev->scratch = mem;
        dev->scratch_bytes = need;
    }
    const dz_cuda_exec exec = {true, NULL, &dev->error_word, dev->scratch, dev->scratch_bytes};
    return dz_cuda_run_graph(graph, &exec, &dev->watch, "cuda-emu:0");
}

static dz_status emu_synchronize(void *self) {
    emu_device *dev = self;
    const unsigned word = dev->error_word;
    dev->error_word = 0;
    return dz_cuda_watch_report(&dev->watch, "cuda-emu:0", word);
}

static const dz_backend_iface emu_iface = {
    .abi_version = DZ_BACKEND_ABI_VERSION,
    .struct_size = sizeof(dz_backend_iface),
    .name = "cuda-emu",
    .device_count = emu_device_count,
    .open = emu_open,
    .close = emu_close,
    .get_props = emu_get_props,
    .buffer_alloc = emu_buffer_alloc,
    .buffer_free = emu_buffer_free,
    .buffer_write = emu_buffer_write,
    .buffer_read = emu_buffer_read,
    .buffer_copy = emu_buffer_copy,
    .buffer_fill = emu_buffer_fill,
    .supports = emu_supports,
    .compute = emu_compute,
    .synchronize = emu_synchronize,
    .caps = 0,
    .set_threads = NULL,
    .buffer_from_host = NULL,
};

const dz_backend_iface *dz_cuda_emu_backend_iface(void) { return &emu_iface; }
