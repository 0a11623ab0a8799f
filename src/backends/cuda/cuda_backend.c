/* The CUDA backend's table: one device per GPU the CUDA runtime sees, each
 * with a stream on which every transfer and kernel of the device runs in
 * order. Buffers are cudaMalloc'd device memory (no DZ_CAP_HOST_MEMORY: the
 * core copies through buffer_read/buffer_write). compute() queues the
 * graph's kernels; synchronize() waits for them and reports what failed.
 *
 * The CUDA runtime is linked statically and loads the driver at run time,
 * so the program runs on machines without one: device_count() is then 0,
 * quietly. */
#include <cuda_runtime_api.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda.h"
#include "dizuo/tensor.h"

typedef struct cuda_device {
    int index;
    char name[DZ_MAX_NAME];      /* "cuda:0" */
    char description[128];       /* "NVIDIA H200, compute capability 9.0, 132 SMs" */
    cudaStream_t stream;
    unsigned *error_word;        /* device memory: DZ_CUDA_BAD_* bits of the kernels */
    size_t max_shared;           /* dynamic shared memory a block may use */
    void *scratch;               /* device memory for intermediates, grown as graphs need */
    size_t scratch_bytes;
    dz_cuda_watch watch;
} cuda_device;

/* ---- errors ---- */

/* Fails with `status` and "<what>: <CUDA's message>", clearing CUDA's
 * last error (a sticky error stays: the device is then unusable). */
static dz_status cuda_fail(dz_status status, cudaError_t err, const char *fmt, ...) DZ_PRINTF(3, 4);
static dz_status cuda_fail(dz_status status, cudaError_t err, const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    (void)cudaGetLastError();
    return dz_fail(status, "%s: %s (%s)", what, cudaGetErrorString(err), cudaGetErrorName(err));
}

/* Makes the device current for the calling thread (each host thread has its own). */
static dz_status use(const cuda_device *dev) {
    cudaError_t err = cudaSetDevice(dev->index);
    return err == cudaSuccess ? DZ_OK : cuda_fail(DZ_ERR_DEVICE, err, "%s: selecting the device", dev->name);
}

/* ---- devices ---- */

static pthread_once_t count_once = PTHREAD_ONCE_INIT;
static int n_devices;

/* No driver, no GPU, a driver too old for this runtime: no devices. */
static void count_devices(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) count = 0;
    (void)cudaGetLastError();
    n_devices = count > 0 ? count : 0;
}

static int cuda_device_count(void) {
    pthread_once(&count_once, count_devices);
    return n_devices;
}

static void cuda_close(void *self);

static dz_status cuda_open(int index, void **self) {
    if (index < 0 || index >= cuda_device_count())
        return dz_fail(DZ_ERR_ARG, "cuda: no device %d (there are %d)", index, cuda_device_count());
    cuda_device *dev = calloc(1, sizeof *dev);
    if (!dev) return dz_fail(DZ_ERR_NOMEM, "cuda: out of memory opening device %d", index);
    dev->index = index;
    snprintf(dev->name, sizeof dev->name, "cuda:%d", index);
    struct cudaDeviceProp prop;
    cudaError_t err;
    dz_status st = use(dev);
    if (!st && (err = cudaGetDeviceProperties(&prop, index)) != cudaSuccess)
        st = cuda_fail(DZ_ERR_DEVICE, err, "%s: reading the device's properties", dev->name);
    if (!st && (err = cudaStreamCreateWithFlags(&dev->stream, cudaStreamNonBlocking)) != cudaSuccess)
        st = cuda_fail(DZ_ERR_DEVICE, err, "%s: creating a stream", dev->name);
    if (!st && (err = cudaMalloc((void **)&dev->error_word, sizeof *dev->error_word)) != cudaSuccess)
        st = cuda_fail(err == cudaErrorMemoryAllocation ? DZ_ERR_NOMEM : DZ_ERR_DEVICE, err,
                       "%s: allocating the error word", dev->name);
    /* On the device's stream (which does not wait for the legacy default
     * stream), so that the kernels queued after it see the zero. */
    if (!st && (err = cudaMemsetAsync(dev->error_word, 0, sizeof *dev->error_word, dev->stream)) != cudaSuccess)
        st = cuda_fail(DZ_ERR_DEVICE, err, "%s: clearing the error word", dev->name);
    if (!st && (err = (cudaError_t)dz_cuda_attention_init(prop.sharedMemPerBlockOptin, &dev->max_shared)) !=
                   cudaSuccess)
        st = cuda_fail(DZ_ERR_DEVICE, err, "%s: setting the attention kernel's shared memory", dev->name);
    if (st) {
        cuda_close(dev);
        return st;
    }
    snprintf(dev->description, sizeof dev->description, "%.80s, compute capability %d.%d, %d SMs", prop.name,
             prop.major, prop.minor, prop.multiProcessorCount);
    *self = dev;
    return DZ_OK;
}

static void cuda_close(void *self) {
    cuda_device *dev = self;
    if (!dev) return;
    if (cudaSetDevice(dev->index) == cudaSuccess) {
        if (dev->stream) cudaStreamSynchronize(dev->stream);
        if (dev->error_word) cudaFree(dev->error_word);
        if (dev->scratch) cudaFree(dev->scratch);
        if (dev->stream) cudaStreamDestroy(dev->stream);
    }
    (void)cudaGetLastError();
    free(dev);
}

static dz_status cuda_get_props(void *self, dz_device_props *out) {
    cuda_device *dev = self;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", dev->name);
    snprintf(out->description, sizeof out->description, "%s", dev->description);
    size_t free_bytes = 0, total_bytes = 0; /* unknown (0) if the device cannot say */
    if (cudaSetDevice(dev->index) == cudaSuccess && cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
        out->memory_total = total_bytes;
        out->memory_free = free_bytes;
    }
    (void)cudaGetLastError();
    out->caps = 0;
    /* Every tier-I op and type of the conformance suite has a kernel
     * (cuda_node.c); `dizuo conformance --device cuda:N` checks the claim. */
    out->tiers = DZ_TIER_I;
    return DZ_OK;
}

/* ---- buffers: the buffer handle is the device pointer itself ---- */

static dz_status cuda_buffer_alloc(void *self, size_t size, void **buf, void **base) {
    cuda_device *dev = self;
    dz_status st = use(dev);
    if (st) return st;
    void *mem = NULL;
    cudaError_t err = cudaMalloc(&mem, size ? size : 1);
    if (err == cudaErrorMemoryAllocation)
        return cuda_fail(DZ_ERR_NOMEM, err, "%s: out of memory allocating %zu bytes (%.1f MiB)", dev->name, size,
                         (double)size / (1024.0 * 1024.0));
    if (err != cudaSuccess) return cuda_fail(DZ_ERR_DEVICE, err, "%s: allocating %zu bytes", dev->name, size);
    *buf = mem;
    *base = mem;
    return DZ_OK;
}

static void cuda_buffer_free(void *self, void *buf) {
    cuda_device *dev = self;
    if (!buf || use(dev)) return;
    cudaFree(buf); /* waits for the work using it */
    (void)cudaGetLastError();
}

/* Transfers run on the device's stream, after the work queued before them,
 * and are finished when these return. */
static dz_status finish(cuda_device *dev, cudaError_t err, const char *what, size_t n) {
    if (err == cudaSuccess) err = cudaStreamSynchronize(dev->stream);
    return err == cudaSuccess ? DZ_OK : cuda_fail(DZ_ERR_DEVICE, err, "%s: %s %zu bytes", dev->name, what, n);
}

static dz_status cuda_buffer_write(void *self, void *buf, size_t offset, const void *src, size_t n) {
    cuda_device *dev = self;
    dz_status st = use(dev);
    if (st) return st;
    return finish(dev, cudaMemcpyAsync((char *)buf + offset, src, n, cudaMemcpyHostToDevice, dev->stream),
                  "writing", n);
}

static dz_status cuda_buffer_read(void *self, void *buf, size_t offset, void *dst, size_t n) {
    cuda_device *dev = self;
    dz_status st = use(dev);
    if (st) return st;
    return finish(dev, cudaMemcpyAsync(dst, (const char *)buf + offset, n, cudaMemcpyDeviceToHost, dev->stream),
                  "reading", n);
}

/* memmove semantics: cudaMemcpy does not allow overlapping ranges, so an
 * overlapping copy goes through a temporary buffer. */
static dz_status cuda_buffer_copy(void *self, void *dst_buf, size_t dst_offset, void *src_buf, size_t src_offset,
                                  size_t n) {
    cuda_device *dev = self;
    dz_status st = use(dev);
    if (st) return st;
    char *dst = (char *)dst_buf + dst_offset;
    const char *src = (const char *)src_buf + src_offset;
    const bool overlap = dst < src + n && src < dst + n;
    if (!overlap)
        return finish(dev, cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, dev->stream), "copying", n);
    void *tmp = NULL;
    cudaError_t err = cudaMalloc(&tmp, n);
    if (err == cudaErrorMemoryAllocation)
        return cuda_fail(DZ_ERR_NOMEM, err, "%s: out of memory for a %zu-byte copy between overlapping ranges",
                         dev->name, n);
    if (err == cudaSuccess) err = cudaMemcpyAsync(tmp, src, n, cudaMemcpyDeviceToDevice, dev->stream);
    if (err == cudaSuccess) err = cudaMemcpyAsync(dst, tmp, n, cudaMemcpyDeviceToDevice, dev->stream);
    st = finish(dev, err, "copying", n);
    if (tmp) cudaFree(tmp);
    return st;
}

static dz_status cuda_buffer_fill(void *self, void *buf, size_t offset, uint8_t value, size_t n) {
    cuda_device *dev = self;
    dz_status st = use(dev);
    if (st) return st;
    return finish(dev, cudaMemsetAsync((char *)buf + offset, value, n, dev->stream), "filling", n);
}

/* ---- computing ---- */

static bool cuda_supports(void *self, const dz_tensor *node) {
    const cuda_device *dev = self;
    return dz_cuda_supports_node(node, dev->max_shared);
}

/* Makes the scratch memory at least `need` bytes. The old memory may still
 * be in use by queued kernels: they finish first. */
static dz_status ensure_scratch(cuda_device *dev, size_t need) {
    if (need <= dev->scratch_bytes) return DZ_OK;
    cudaError_t err = cudaStreamSynchronize(dev->stream);
    if (err != cudaSuccess) return cuda_fail(DZ_ERR_DEVICE, err, "%s: the queued work failed", dev->name);
    if (dev->scratch) cudaFree(dev->scratch);
    dev->scratch = NULL;
    dev->scratch_bytes = 0;
    err = cudaMalloc(&dev->scratch, need);
    if (err != cudaSuccess)
        return cuda_fail(err == cudaErrorMemoryAllocation ? DZ_ERR_NOMEM : DZ_ERR_DEVICE, err,
                         "%s: allocating %zu bytes of scratch memory", dev->name, need);
    dev->scratch_bytes = need;
    return DZ_OK;
}

static dz_status cuda_compute(void *self, const dz_graph *graph) {
    cuda_device *dev = self;
    dz_status st = use(dev);
    if (st) return st;
    if ((st = ensure_scratch(dev, dz_cuda_graph_scratch_bytes(graph)))) return st;
    const dz_cuda_exec exec = {false, dev->stream, dev->error_word, dev->scratch, dev->scratch_bytes};
    return dz_cuda_run_graph(graph, &exec, &dev->watch, dev->name);
}

static dz_status cuda_synchronize(void *self) {
    cuda_device *dev = self;
    dz_status st = use(dev);
    if (st) return st;
    cudaError_t err = cudaStreamSynchronize(dev->stream);
    if (err != cudaSuccess) {
        dev->watch.armed = 0;
        return cuda_fail(DZ_ERR_DEVICE, err, "%s: the queued work failed", dev->name);
    }
    if (!dev->watch.armed) return DZ_OK; /* no node of the graph can have set an error bit */
    unsigned word = 0;
    err = cudaMemcpy(&word, dev->error_word, sizeof word, cudaMemcpyDeviceToHost);
    if (err == cudaSuccess && word) err = cudaMemsetAsync(dev->error_word, 0, sizeof word, dev->stream);
    if (err != cudaSuccess) {
        dev->watch.armed = 0;
        return cuda_fail(DZ_ERR_DEVICE, err, "%s: reading or clearing the kernels' error word", dev->name);
    }
    return dz_cuda_watch_report(&dev->watch, dev->name, word);
}

static const dz_backend_iface cuda_iface = {
    .abi_version = DZ_BACKEND_ABI_VERSION,
    .struct_size = sizeof(dz_backend_iface),
    .name = "cuda",
    .device_count = cuda_device_count,
    .open = cuda_open,
    .close = cuda_close,
    .get_props = cuda_get_props,
    .buffer_alloc = cuda_buffer_alloc,
    .buffer_free = cuda_buffer_free,
    .buffer_write = cuda_buffer_write,
    .buffer_read = cuda_buffer_read,
    .buffer_copy = cuda_buffer_copy,
    .buffer_fill = cuda_buffer_fill,
    .supports = cuda_supports,
    .compute = cuda_compute,
    .synchronize = cuda_synchronize,
    .caps = 0,
    .set_threads = NULL,
    .buffer_from_host = NULL,
};

const dz_backend_iface *dz_cuda_backend_iface(void) { return &cuda_iface; }
