/* Device buffers: allocation, host-memory wrapping, and bounds-checked
 * transfers through the owning backend's table. */
#include <stdlib.h>
#include <string.h>

#include "hal/hal_impl.h"

static dz_status new_buffer(dz_device *dev, size_t size, bool wraps_host, dz_buffer **out) {
    dz_buffer *b = calloc(1, sizeof *b);
    if (!b) return dz_fail(DZ_ERR_NOMEM, "out of memory for a buffer header");
    b->device = dev;
    b->size = size;
    b->wraps_host = wraps_host;
    *out = b;
    return DZ_OK;
}

dz_status dz_buffer_alloc(dz_device *dev, size_t size, dz_buffer **out) {
    if (!dev || !out) return dz_fail(DZ_ERR_ARG, "dz_buffer_alloc: NULL argument");
    dz_buffer *b = NULL;
    dz_status st = new_buffer(dev, size, false, &b);
    if (st) return st;
    /* A zero-byte request still gets a distinct allocation, so base is valid.
     * The message is cleared first: what follows is the backend's own reason
     * or nothing, never an older error. */
    dz_clear_error();
    st = dev->iface->buffer_alloc(dev->self, size ? size : 1, &b->ctx, &b->base);
    if (st) {
        free(b);
        /* The backend's reason (its largest allocation, say), when it gave one, follows. */
        const char *why = dz_last_error();
        const bool said = why && why[0];
        if (st == DZ_ERR_NOMEM && said)
            return dz_error_prefix(st, "device %s: out of memory allocating %zu bytes (%.1f MiB): ", dev->props.name,
                                   size, (double)size / (1024.0 * 1024.0));
        if (st == DZ_ERR_NOMEM)
            return dz_fail(st, "device %s: out of memory allocating %zu bytes (%.1f MiB)", dev->props.name, size,
                           (double)size / (1024.0 * 1024.0));
        if (said) return dz_error_prefix(st, "device %s: allocating %zu bytes: ", dev->props.name, size);
        return dz_fail(st, "device %s: allocating %zu bytes failed", dev->props.name, size);
    }
    *out = b;
    return DZ_OK;
}

dz_status dz_buffer_from_host(dz_device *dev, void *ptr, size_t size, dz_buffer **out) {
    if (!dev || !out || !ptr) return dz_fail(DZ_ERR_ARG, "dz_buffer_from_host: NULL argument");
    if (!(dev->iface->caps & DZ_CAP_HOST_MEMORY))
        return dz_fail(DZ_ERR_UNSUPPORTED, "device %s cannot use host memory directly (no DZ_CAP_HOST_MEMORY)",
                       dev->props.name);
    dz_buffer *b = NULL;
    dz_status st = new_buffer(dev, size, true, &b);
    if (st) return st;
    st = dev->iface->buffer_from_host(dev->self, ptr, size, &b->ctx);
    if (st) {
        free(b);
        return dz_error_prefix(st, "device %s: wrapping %zu bytes of host memory: ", dev->props.name, size);
    }
    b->base = ptr;
    *out = b;
    return DZ_OK;
}

void dz_buffer_free(dz_buffer *buf) {
    if (!buf) return;
    buf->device->iface->buffer_free(buf->device->self, buf->ctx);
    free(buf);
}

static dz_status check_range(const dz_buffer *buf, size_t offset, size_t n, const char *what) {
    size_t end;
    if (!buf) return dz_fail(DZ_ERR_ARG, "%s: NULL buffer", what);
    if (dz_add_overflows(offset, n, &end) || end > buf->size)
        return dz_fail(DZ_ERR_ARG, "%s: bytes [%zu, %zu + %zu) lie outside the buffer of %zu bytes on %s",
                       what, offset, offset, n, buf->size, buf->device->props.name);
    return DZ_OK;
}

dz_status dz_buffer_write(dz_buffer *buf, size_t offset, const void *src, size_t n) {
    dz_status st = check_range(buf, offset, n, "buffer write");
    if (st || n == 0) return st;
    if (!src) return dz_fail(DZ_ERR_ARG, "buffer write: NULL source");
    dz_device *dev = buf->device;
    st = dev->iface->buffer_write(dev->self, buf->ctx, offset, src, n);
    return st ? dz_error_prefix(st, "device %s: writing %zu bytes: ", dev->props.name, n) : DZ_OK;
}

dz_status dz_buffer_read(dz_buffer *buf, size_t offset, void *dst, size_t n) {
    dz_status st = check_range(buf, offset, n, "buffer read");
    if (st || n == 0) return st;
    if (!dst) return dz_fail(DZ_ERR_ARG, "buffer read: NULL destination");
    dz_device *dev = buf->device;
    st = dev->iface->buffer_read(dev->self, buf->ctx, offset, dst, n);
    return st ? dz_error_prefix(st, "device %s: reading %zu bytes: ", dev->props.name, n) : DZ_OK;
}

dz_status dz_buffer_fill(dz_buffer *buf, size_t offset, uint8_t value, size_t n) {
    dz_status st = check_range(buf, offset, n, "buffer fill");
    if (st || n == 0) return st;
    dz_device *dev = buf->device;
    st = dev->iface->buffer_fill(dev->self, buf->ctx, offset, value, n);
    return st ? dz_error_prefix(st, "device %s: filling %zu bytes: ", dev->props.name, n) : DZ_OK;
}

dz_status dz_buffer_copy(dz_buffer *dst, size_t dst_offset, dz_buffer *src, size_t src_offset, size_t n) {
    dz_status st = check_range(dst, dst_offset, n, "buffer copy (destination)");
    if (!st) st = check_range(src, src_offset, n, "buffer copy (source)");
    if (st || n == 0) return st;
    if (dst->device == src->device) {
        dz_device *dev = dst->device;
        st = dev->iface->buffer_copy(dev->self, dst->ctx, dst_offset, src->ctx, src_offset, n);
        return st ? dz_error_prefix(st, "device %s: copying %zu bytes: ", dev->props.name, n) : DZ_OK;
    }
    /* Between devices: through host memory, directly when one side is host memory. */
    if (src->device->iface->caps & DZ_CAP_HOST_MEMORY)
        return dz_buffer_write(dst, dst_offset, (const char *)src->base + src_offset, n);
    if (dst->device->iface->caps & DZ_CAP_HOST_MEMORY)
        return dz_buffer_read(src, src_offset, (char *)dst->base + dst_offset, n);
    enum { CHUNK = 1 << 22 };
    size_t chunk = n < CHUNK ? n : CHUNK;
    void *staging = malloc(chunk);
    if (!staging) return dz_fail(DZ_ERR_NOMEM, "out of memory for a %zu-byte staging buffer", chunk);
    for (size_t done = 0; !st && done < n; done += chunk) {
        size_t part = n - done < chunk ? n - done : chunk;
        st = dz_buffer_read(src, src_offset + done, staging, part);
        if (!st) st = dz_buffer_write(dst, dst_offset + done, staging, part);
    }
    free(staging);
    return st;
}
