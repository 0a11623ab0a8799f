/* The OpenCL backend's table: devices opencl:0, opencl:1, ... (every
 * capable device of every platform, opencl_platform.c), each opened with
 * its own context, in-order queue and kernel program. Memory is the
 * device's (no DZ_CAP_HOST_MEMORY): the core copies what the CPU computes
 * to and from it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/opencl/opencl_impl.h"

static int ocl_count(void) { return ocl_device_count(); }

static void ocl_close(void *self) {
    ocl_device *dev = self;
    if (!dev) return;
    if (dev->queue) clFinish(dev->queue);
    /* Buffers the caller did not free (it should have) go with the device. */
    while (dev->n_buffers > 0) ocl_buffer_free(dev, dev->buffers[dev->n_buffers - 1]);
    free(dev->buffers);
    free(dev->nodes_seen);
    for (int i = 0; i < OCL_SCRATCH_SLOTS; i++)
        if (dev->scratch[i]) clReleaseMemObject(dev->scratch[i]);
    if (dev->error_word) clReleaseMemObject(dev->error_word);
    ocl_program_release(dev);
    if (dev->queue) clReleaseCommandQueue(dev->queue);
    if (dev->context) clReleaseContext(dev->context);
    free(dev);
}

static dz_status failed(ocl_device *dev, const char *what, cl_int err) {
    dz_status st = dz_fail(err == CL_OUT_OF_HOST_MEMORY || err == CL_OUT_OF_RESOURCES ? DZ_ERR_NOMEM : DZ_ERR_DEVICE,
                           "%s (%s): %s: %s (%d)", dev->name, dev->info.device_name, what, ocl_error_name(err), err);
    ocl_close(dev);
    return st;
}

static dz_status ocl_open(int index, void **self) {
    const ocl_device_info *info = ocl_device_at(index);
    if (!info) return dz_fail(DZ_ERR_ARG, "opencl: no device %d (there are %d)", index, ocl_device_count());
    ocl_device *dev = calloc(1, sizeof *dev);
    if (!dev) return dz_fail(DZ_ERR_NOMEM, "opencl:%d: out of memory opening the device", index);
    dev->index = index;
    dev->info = *info;
    snprintf(dev->name, sizeof dev->name, "opencl:%d", index);
    const cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)info->platform, 0};
    cl_int err;
    dev->context = clCreateContext(props, 1, &info->id, NULL, NULL, &err);
    if (err != CL_SUCCESS) return failed(dev, "creating a context", err);
    dev->queue = clCreateCommandQueue(dev->context, info->id, 0, &err);
    if (err != CL_SUCCESS) return failed(dev, "creating a command queue", err);
    dev->error_word = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, sizeof(cl_int), NULL, &err);
    const cl_int zero = 0;
    if (err == CL_SUCCESS)
        err = clEnqueueWriteBuffer(dev->queue, dev->error_word, CL_TRUE, 0, sizeof zero, &zero, 0, NULL, NULL);
    if (err != CL_SUCCESS) return failed(dev, "creating the error word", err);
    dz_status st = ocl_program_build(dev);
    if (st) {
        ocl_close(dev);
        return st;
    }
    *self = dev;
    return DZ_OK;
}

static dz_status ocl_get_props(void *self, dz_device_props *out) {
    const ocl_device *dev = self;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", dev->name);
    snprintf(out->description, sizeof out->description, "%.60s (OpenCL %d.%d, %u compute units)",
             dev->info.device_name, dev->info.version_major, dev->info.version_minor, dev->info.compute_units);
    out->memory_total = dev->info.global_mem;
    /* OpenCL cannot tell what other processes use: free is what this one has not taken. */
    out->memory_free = dev->info.global_mem > dev->allocated ? dev->info.global_mem - dev->allocated : 0;
    out->max_buffer_size = dev->info.max_alloc;
    out->caps = 0;
    /* `dizuo conformance --device opencl:0 --tier I` shows every case native (docs/opencl.md). */
    out->tiers = DZ_TIER_I;
    return DZ_OK;
}

static const dz_backend_iface opencl_iface = {
    .abi_version = DZ_BACKEND_ABI_VERSION,
    .struct_size = sizeof(dz_backend_iface),
    .name = "opencl",
    .device_count = ocl_count,
    .open = ocl_open,
    .close = ocl_close,
    .get_props = ocl_get_props,
    .buffer_alloc = ocl_buffer_alloc,
    .buffer_free = ocl_buffer_free,
    .buffer_write = ocl_buffer_write,
    .buffer_read = ocl_buffer_read,
    .buffer_copy = ocl_buffer_copy,
    .buffer_fill = ocl_buffer_fill,
    .supports = ocl_supports,
    .compute = ocl_compute,
    .synchronize = ocl_synchronize,
    .caps = 0,
};

const dz_backend_iface *dz_opencl_backend_iface(void);
const dz_backend_iface *dz_opencl_backend_iface(void) { return &opencl_iface; }
