/* Buffers of an OpenCL device: a cl_mem each, plus a reserved, never
 * touched range of host addresses standing for it (opencl_impl.h), kept in
 * a table sorted by address so that compute() can map any tensor's data
 * back to its cl_mem and offset. Reads and writes are blocking (when they
 * return, the host memory may be reused); copies and fills are queued, and
 * the queue runs in order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backends/opencl/opencl_impl.h"
#include "dizuo/tensor.h"

static const double MIB = 1024.0 * 1024.0;

/* Inserts b into the sorted table (room was made by the caller). */
static void table_insert(ocl_device *dev, ocl_buffer *b) {
    int i = dev->n_buffers;
    while (i > 0 && dev->buffers[i - 1]->base > b->base) {
        dev->buffers[i] = dev->buffers[i - 1];
        i--;
    }
    dev->buffers[i] = b;
    dev->n_buffers++;
}

static void table_remove(ocl_device *dev, ocl_buffer *b) {
    for (int i = 0; i < dev->n_buffers; i++)
        if (dev->buffers[i] == b) {
            memmove(&dev->buffers[i], &dev->buffers[i + 1], (size_t)(dev->n_buffers - i - 1) * sizeof *dev->buffers);
            dev->n_buffers--;
            return;
        }
}

/* The buffer whose range holds address p, or NULL. */
static ocl_buffer *table_find(const ocl_device *dev, const char *p) {
    int lo = 0, hi = dev->n_buffers - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        ocl_buffer *b = dev->buffers[mid];
        if (p < b->base) hi = mid - 1;
        else if (p >= b->base + b->reserved) lo = mid + 1;
        else return b;
    }
    return NULL;
}

static dz_status out_of_memory(const ocl_device *dev, size_t size, const char *why) {
    return dz_fail(DZ_ERR_NOMEM, "%s (%s): cannot allocate %zu bytes (%.1f MiB): %s", dev->name,
                   dev->info.device_name, size, (double)size / MIB, why);
}

dz_status ocl_buffer_alloc(void *self, size_t size, void **buf, void **base) {
    ocl_device *dev = self;
    char why[160];
    if (size > dev->info.max_alloc) {
        snprintf(why, sizeof why, "the device's largest allocation is %llu bytes (%.1f MiB)",
                 (unsigned long long)dev->info.max_alloc, (double)dev->info.max_alloc / MIB);
        return out_of_memory(dev, size, why);
    }
    if (dev->allocated > dev->info.global_mem || size > dev->info.global_mem - dev->allocated) {
        snprintf(why, sizeof why, "%.1f MiB of the device's %.1f MiB are in use", (double)dev->allocated / MIB,
                 (double)dev->info.global_mem / MIB);
        return out_of_memory(dev, size, why);
    }
    if (dev->n_buffers == dev->cap_buffers) {
        int cap = dev->cap_buffers ? 2 * dev->cap_buffers : 16;
        ocl_buffer **grown = realloc(dev->buffers, (size_t)cap * sizeof *grown);
        if (!grown) return out_of_memory(dev, size, "no host memory for the buffer table");
        dev->buffers = grown;
        dev->cap_buffers = cap;
    }
    ocl_buffer *b = calloc(1, sizeof *b);
    if (!b) return out_of_memory(dev, size, "no host memory for a buffer header");
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    b->size = size;
    b->reserved = (size + page - 1) / page * page;
    void *range = mmap(NULL, b->reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (range == MAP_FAILED) {
        free(b);
        return out_of_memory(dev, size, "no host address range left to name it");
    }
    b->base = range;
    cl_int err;
    b->mem = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, size, NULL, &err);
    /* Drivers may allocate at first use: touch one byte, so that a failure
     * shows here rather than in a later transfer or kernel. */
    const cl_uchar zero = 0;
    if (err == CL_SUCCESS)
        err = clEnqueueFillBuffer(dev->queue, b->mem, &zero, 1, 0, 1, 0, NULL, NULL);
    if (err == CL_SUCCESS) err = clFinish(dev->queue);
    if (err != CL_SUCCESS) {
        if (b->mem) clReleaseMemObject(b->mem);
        munmap(b->base, b->reserved);
        free(b);
        snprintf(why, sizeof why, "%s (%d)", ocl_error_name(err), err);
        return out_of_memory(dev, size, why);
    }
    table_insert(dev, b);
    dev->allocated += size;
    *buf = b;
    *base = b->base;
    return DZ_OK;
}

void ocl_buffer_free(void *self, void *buf) {
    ocl_device *dev = self;
    ocl_buffer *b = buf;
    if (!b) return;
    table_remove(dev, b);
    dev->allocated -= b->size;
    clReleaseMemObject(b->mem); /* the driver frees it once queued work is done with it */
    munmap(b->base, b->reserved);
    free(b);
}

static dz_status transfer_failed(const ocl_device *dev, const char *what, size_t n, cl_int err) {
    return dz_fail(err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES ||
                           err == CL_OUT_OF_HOST_MEMORY
                       ? DZ_ERR_NOMEM
                       : DZ_ERR_DEVICE,
                   "%s: %s of %zu bytes failed: %s (%d)", dev->name, what, n, ocl_error_name(err), err);
}

/* Ranges are checked by the hal (src/hal/buffer.c) before these are called. */
dz_status ocl_buffer_write(void *self, void *buf, size_t offset, const void *src, size_t n) {
    ocl_device *dev = self;
    cl_int err = clEnqueueWriteBuffer(dev->queue, ((ocl_buffer *)buf)->mem, CL_TRUE, offset, n, src, 0, NULL, NULL);
    return err == CL_SUCCESS ? DZ_OK : transfer_failed(dev, "a write", n, err);
}

dz_status ocl_buffer_read(void *self, void *buf, size_t offset, void *dst, size_t n) {
    ocl_device *dev = self;
    cl_int err = clEnqueueReadBuffer(dev->queue, ((ocl_buffer *)buf)->mem, CL_TRUE, offset, n, dst, 0, NULL, NULL);
    return err == CL_SUCCESS ? DZ_OK : transfer_failed(dev, "a read", n, err);
}

dz_status ocl_buffer_copy(void *self, void *dst_buf, size_t dst_offset, void *src_buf, size_t src_offset, size_t n) {
    ocl_device *dev = self;
    ocl_buffer *dst = dst_buf, *src = src_buf;
    /* OpenCL refuses overlapping copies within one buffer: go through the host. */
    if (dst == src && dst_offset < src_offset + n && src_offset < dst_offset + n) {
        void *tmp = malloc(n);
        if (!tmp) return dz_fail(DZ_ERR_NOMEM, "%s: no host memory to stage an overlapping copy of %zu bytes",
                                 dev->name, n);
        dz_status st = ocl_buffer_read(self, src, src_offset, tmp, n);
        if (!st) st = ocl_buffer_write(self, dst, dst_offset, tmp, n);
        free(tmp);
        return st;
    }
    /* Not waited for: the queue is in order, so every later use sees the copy. */
    cl_int err = clEnqueueCopyBuffer(dev->queue, src->mem, dst->mem, src_offset, dst_offset, n, 0, NULL, NULL);
    return err == CL_SUCCESS ? DZ_OK : transfer_failed(dev, "a copy", n, err);
}

dz_status ocl_buffer_fill(void *self, void *buf, size_t offset, uint8_t value, size_t n) {
    ocl_device *dev = self;
    const cl_uchar pattern = value;
    cl_int err = clEnqueueFillBuffer(dev->queue, ((ocl_buffer *)buf)->mem, &pattern, 1, offset, n, 0, NULL, NULL);
    return err == CL_SUCCESS ? DZ_OK : transfer_failed(dev, "a fill", n, err);
}

/* ---- operands of kernels ---- */

size_t ocl_span_bytes(const dz_tensor *t) {
    const dz_type_traits *tt = dz_type_info((int)t->type);
    if (!tt || dz_nelements(t) == 0) return 0;
    size_t end = (size_t)(t->ne[0] / tt->block_size - 1) * t->nb[0] + tt->type_size;
    for (int i = 1; i < DZ_MAX_DIMS; i++) end += (size_t)(t->ne[i] - 1) * t->nb[i];
    return end;
}

/* Alignment the kernels need for an operand's address: its scalar size
 * (F32/I32 4, F16/BF16 2, quantized blocks 2 for their fp16 scales). */
static size_t alignment_of(dz_type type) {
    return type == DZ_TYPE_F32 || type == DZ_TYPE_I32 ? 4 : 2;
}

bool ocl_aligned(const dz_tensor *t) {
    /* Buffer bases are page-aligned, so the address's alignment is the offset's. */
    return !t->data || (uintptr_t)t->data % alignment_of(t->type) == 0;
}

dz_status ocl_resolve(ocl_device *dev, const dz_tensor *t, const dz_tensor *node, const char *which,
                      ocl_operand *out) {
    const char *p = t->data;
    const size_t span = ocl_span_bytes(t);
    ocl_buffer *b = p ? table_find(dev, p) : NULL;
    if (!b || (size_t)(p - b->base) > b->size || span > b->size - (size_t)(p - b->base))
        return dz_fail(DZ_ERR_ARG, "%s: %s node '%s': %s '%s' does not lie in a buffer of this device", dev->name,
                       dz_op_name(node->op), node->name, which, t->name);
    out->mem = b->mem;
    out->off = (cl_ulong)(p - b->base);
    if (out->off % alignment_of(t->type))
        return dz_fail(DZ_ERR_ARG, "%s: %s node '%s': %s '%s' starts at byte %llu of its buffer, not a multiple of %zu",
                       dev->name, dz_op_name(node->op), node->name, which, t->name, (unsigned long long)out->off,
                       alignment_of(t->type));
    for (int i = 0; i < DZ_MAX_DIMS; i++) {
        out->ne.s[i] = t->ne[i];
        out->nb.s[i] = t->nb[i];
    }
    return DZ_OK;
}

dz_status ocl_scratch(ocl_device *dev, int slot, size_t size, cl_mem *out) {
    if (size > dev->scratch_size[slot]) {
        if (size > dev->info.max_alloc)
            return out_of_memory(dev, size, "scratch memory beyond the device's largest allocation");
        cl_int err;
        cl_mem grown = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, size, NULL, &err);
        if (err != CL_SUCCESS) {
            char why[96];
            snprintf(why, sizeof why, "scratch memory: %s (%d)", ocl_error_name(err), err);
            return out_of_memory(dev, size, why);
        }
        if (dev->scratch[slot]) clReleaseMemObject(dev->scratch[slot]); /* freed once queued work is done with it */
        dev->allocated += size - dev->scratch_size[slot];
        dev->scratch[slot] = grown;
        dev->scratch_size[slot] = size;
    }
    *out = dev->scratch[slot];
    return DZ_OK;
}
