/* The two CPU backends: "cpu" (the fast path: SIMD kernels chosen at run
 * time, one pool run per graph) and "cpu-ref" (the scalar reference
 * kernels, one pool run per node). Both keep host memory and own a thread
 * pool per device; each has one device (":0"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/cpu/cpu_impl.h"
#include "backends/cpu/fast/fast.h"

#if defined(__x86_64__)
#define CPU_ARCH "x86-64"
#elif defined(__aarch64__)
#define CPU_ARCH "arm64"
#elif defined(__riscv) && __riscv_xlen == 64
#define CPU_ARCH "riscv64"
#else
#define CPU_ARCH "generic"
#endif

enum { MAX_THREADS = 256, DEFAULT_MAX_THREADS = 16 };

typedef struct cpu_device {
    bool fast;
    dz_fast_engine engine;  /* fast: kernels, pool and scratch */
    dz_cpu_pool *pool;      /* reference */
    dz_cpu_scratch scratch;
} cpu_device;

typedef struct cpu_buffer {
    char *mem;
    bool owned; /* false: wrapped host memory */
} cpu_buffer;

static int cpu_device_count(void) { return 1; }

/* One thread per physical core: hyper-threads share a core's vector units,
 * which the kernels keep busy. */
static int default_threads(void) {
    int n = dz_cpu_core_count();
    return n > DEFAULT_MAX_THREADS ? DEFAULT_MAX_THREADS : n;
}

static dz_status open_device(bool fast, int device, void **self) {
    const char *name = fast ? "cpu" : "cpu-ref";
    if (device != 0) return dz_fail(DZ_ERR_ARG, "%s: no device %d (there is one: %s:0)", name, device, name);
    cpu_device *dev = calloc(1, sizeof *dev);
    if (!dev) return dz_fail(DZ_ERR_NOMEM, "%s: out of memory opening the device", name);
    dev->fast = fast;
    dz_status st = fast ? dz_fast_engine_init(&dev->engine, dz_cpu_isa_chosen(), default_threads())
                        : dz_cpu_pool_create(default_threads(), &dev->pool);
    if (st) {
        dz_fast_engine_release(&dev->engine);
        free(dev);
        return st;
    }
    *self = dev;
    return DZ_OK;
}

static dz_status cpu_open(int device, void **self) { return open_device(true, device, self); }
static dz_status cpu_ref_open(int device, void **self) { return open_device(false, device, self); }

static void cpu_close(void *self) {
    cpu_device *dev = self;
    if (!dev) return;
    dz_fast_engine_release(&dev->engine);
    dz_cpu_pool_destroy(dev->pool);
    free(dev->scratch.mem);
    free(dev);
}

static int threads_of(const cpu_device *dev) {
    return dz_cpu_pool_size(dev->fast ? dev->engine.pool : dev->pool);
}

static dz_status cpu_get_props(void *self, dz_device_props *out) {
    cpu_device *dev = self;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", dev->fast ? "cpu" : "cpu-ref");
    int n = threads_of(dev);
    if (dev->fast)
        snprintf(out->description, sizeof out->description, "%s fast (%s), %d thread%s", CPU_ARCH,
                 dz_cpu_isa_name(dev->engine.k->isa), n, n == 1 ? "" : "s");
    else
        snprintf(out->description, sizeof out->description, "%s reference (scalar), %d thread%s", CPU_ARCH, n,
                 n == 1 ? "" : "s");
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) out->memory_total = (uint64_t)pages * (uint64_t)page;
    if (avail > 0 && page > 0) out->memory_free = (uint64_t)avail * (uint64_t)page;
    out->caps = DZ_CAP_HOST_MEMORY | DZ_CAP_THREADS;
    out->tiers = DZ_TIER_I | DZ_TIER_S | DZ_TIER_T;
    return DZ_OK;
}

static dz_status cpu_buffer_alloc(void *self, size_t size, void **buf, void **base) {
    (void)self;
    cpu_buffer *b = malloc(sizeof *b);
    void *mem = NULL;
    /* 64-byte alignment: a cache line, and enough for any element type. */
    if (!b || posix_memalign(&mem, 64, size ? size : 1) != 0) {
        free(b);
        return dz_fail(DZ_ERR_NOMEM, "the system refused %zu bytes of host memory", size);
    }
    b->mem = mem;
    b->owned = true;
    *buf = b;
    *base = mem;
    return DZ_OK;
}

static dz_status cpu_buffer_from_host(void *self, void *ptr, size_t size, void **buf) {
    (void)self;
    (void)size;
    cpu_buffer *b = malloc(sizeof *b);
    if (!b) return dz_fail(DZ_ERR_NOMEM, "cpu: out of memory for a buffer header");
    b->mem = ptr;
    b->owned = false;
    *buf = b;
    return DZ_OK;
}

static void cpu_buffer_free(void *self, void *buf) {
    (void)self;
    cpu_buffer *b = buf;
    if (!b) return;
    if (b->owned) free(b->mem);
    free(b);
}

/* Ranges are checked by the hal before these are called. */
static dz_status cpu_buffer_write(void *self, void *buf, size_t offset, const void *src, size_t n) {
    (void)self;
    memcpy(((cpu_buffer *)buf)->mem + offset, src, n);
    return DZ_OK;
}

static dz_status cpu_buffer_read(void *self, void *buf, size_t offset, void *dst, size_t n) {
    (void)self;
    memcpy(dst, ((cpu_buffer *)buf)->mem + offset, n);
    return DZ_OK;
}

static dz_status cpu_buffer_copy(void *self, void *dst_buf, size_t dst_offset, void *src_buf, size_t src_offset,
                                 size_t n) {
    (void)self;
    memmove(((cpu_buffer *)dst_buf)->mem + dst_offset, ((cpu_buffer *)src_buf)->mem + src_offset, n);
    return DZ_OK;
}

static dz_status cpu_buffer_fill(void *self, void *buf, size_t offset, uint8_t value, size_t n) {
    (void)self;
    memset(((cpu_buffer *)buf)->mem + offset, value, n);
    return DZ_OK;
}

static bool cpu_supports(void *self, const dz_tensor *node) {
    (void)self;
    return dz_cpu_supports_node(node);
}

static dz_status cpu_compute(void *self, const dz_graph *graph) {
    cpu_device *dev = self;
    if (dev->fast) return dz_fast_engine_compute(&dev->engine, graph->nodes, graph->n_nodes);
    for (int32_t i = 0; i < graph->n_nodes; i++) {
        dz_status st = dz_cpu_run_node(dev->pool, &dev->scratch, graph->nodes[i]);
        if (st) return st;
    }
    return DZ_OK;
}

static dz_status cpu_synchronize(void *self) {
    (void)self;
    return DZ_OK; /* compute is synchronous */
}

static dz_status cpu_set_threads(void *self, int n_threads) {
    cpu_device *dev = self;
    if (n_threads < 1 || n_threads > MAX_THREADS)
        return dz_fail(DZ_ERR_ARG, "cpu: %d threads requested; 1..%d allowed", n_threads, MAX_THREADS);
    if (dev->fast) return dz_fast_engine_set_threads(&dev->engine, n_threads);
    if (n_threads == dz_cpu_pool_size(dev->pool)) return DZ_OK;
    dz_cpu_pool *pool;
    dz_status st = dz_cpu_pool_create(n_threads, &pool);
    if (st) return st;
    dz_cpu_pool_destroy(dev->pool);
    dev->pool = pool;
    return DZ_OK;
}

static const dz_backend_iface cpu_iface = {
    .abi_version = DZ_BACKEND_ABI_VERSION,
    .struct_size = sizeof(dz_backend_iface),
    .name = "cpu",
    .device_count = cpu_device_count,
    .open = cpu_open,
    .close = cpu_close,
    .get_props = cpu_get_props,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .buffer_write = cpu_buffer_write,
    .buffer_read = cpu_buffer_read,
    .buffer_copy = cpu_buffer_copy,
    .buffer_fill = cpu_buffer_fill,
    .supports = cpu_supports,
    .compute = cpu_compute,
    .synchronize = cpu_synchronize,
    .caps = DZ_CAP_HOST_MEMORY | DZ_CAP_THREADS,
    .set_threads = cpu_set_threads,
    .buffer_from_host = cpu_buffer_from_host,
};

const dz_backend_iface *dz_cpu_backend_iface(void) { return &cpu_iface; }

static const dz_backend_iface cpu_ref_iface = {
    .abi_version = DZ_BACKEND_ABI_VERSION,
    .struct_size = sizeof(dz_backend_iface),
    .name = "cpu-ref",
    .device_count = cpu_device_count,
    .open = cpu_ref_open,
    .close = cpu_close,
    .get_props = cpu_get_props,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .buffer_write = cpu_buffer_write,
    .buffer_read = cpu_buffer_read,
    .buffer_copy = cpu_buffer_copy,
    .buffer_fill = cpu_buffer_fill,
    .supports = cpu_supports,
    .compute = cpu_compute,
    .synchronize = cpu_synchronize,
    .caps = DZ_CAP_HOST_MEMORY | DZ_CAP_THREADS,
    .set_threads = cpu_set_threads,
    .buffer_from_host = cpu_buffer_from_host,
};

const dz_backend_iface *dz_cpu_ref_backend_iface(void) { return &cpu_ref_iface; }
