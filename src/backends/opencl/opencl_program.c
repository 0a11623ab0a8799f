/* The kernel program of an opened device, built once from the embedded
 * OpenCL C source (the .cl files in kernels/, joined by cmake/opencl.cmake), with one
 * cl_kernel per kernel kept for the device's life; and launching kernels:
 * arguments in order, then one enqueue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/opencl/opencl_impl.h"
#include "dizuo/tensor.h"

extern const char dz_opencl_kernel_source[]; /* generated: build/generated/opencl_kernels.c */

static const char *const kernel_names[K_COUNT] = {
    [K_BINARY] = "binary_f32",       [K_UNARY] = "unary_f32",       [K_CPY] = "cpy",
    [K_GET_ROWS] = "get_rows",       [K_SET_ROWS] = "set_rows",     [K_RMS_NORM] = "rms_norm",
    [K_LAYER_NORM] = "layer_norm",   [K_SOFTMAX] = "softmax",       [K_ROPE] = "rope",
    [K_MM_TILED] = "mul_mat_f32_tiled", [K_MM_F32] = "mul_mat_f32", [K_MM_F16] = "mul_mat_f16",
    [K_MM_BF16] = "mul_mat_bf16",    [K_ROUND_X] = "round_x",       [K_QUANTIZE_X] = "quantize_x", [K_MM_Q8_0] = "mul_mat_q8_0",
    [K_MM_Q4_0] = "mul_mat_q4_0",    [K_MM_Q4_1] = "mul_mat_q4_1",  [K_MM_Q5_0] = "mul_mat_q5_0",
    [K_MM_Q5_1] = "mul_mat_q5_1",    [K_MM_IQ4_NL] = "mul_mat_iq4_nl", [K_MM_Q2_K] = "mul_mat_q2_k",
    [K_MM_Q3_K] = "mul_mat_q3_k",    [K_MM_Q4_K] = "mul_mat_q4_k",  [K_MM_Q5_K] = "mul_mat_q5_k",
    [K_MM_Q6_K] = "mul_mat_q6_k",    [K_ATTENTION] = "attention",
};

/* The compiler's log, cut to fit an error message. */
static void build_log(ocl_device *dev, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = '\0';
    if (clGetProgramBuildInfo(dev->program, dev->info.id, CL_PROGRAM_BUILD_LOG, size - 1, buf, &len) != CL_SUCCESS)
        return;
    buf[len < size ? len : size - 1] = '\0';
}

dz_status ocl_program_build(ocl_device *dev) {
    cl_int err;
    const char *source = dz_opencl_kernel_source;
    dev->program = clCreateProgramWithSource(dev->context, 1, &source, NULL, &err);
    if (err != CL_SUCCESS)
        return dz_fail(DZ_ERR_DEVICE, "%s: creating the kernel program: %s (%d)", dev->name, ocl_error_name(err), err);
    /* Exact division where the device offers it (kernels/common.cl div_rn). */
    const char *options = dev->info.correct_divide
                              ? "-cl-std=CL1.2 -cl-fp32-correctly-rounded-divide-sqrt -DDZ_CR_DIVIDE"
                              : "-cl-std=CL1.2";
    err = clBuildProgram(dev->program, 1, &dev->info.id, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        char log[600];
        build_log(dev, log, sizeof log);
        return dz_fail(DZ_ERR_DEVICE, "%s: building the kernels failed: %s (%d)%s%s", dev->name,
                       ocl_error_name(err), err, log[0] ? ": " : "", log);
    }
    for (int k = 0; k < K_COUNT; k++) {
        dev->kernels[k] = clCreateKernel(dev->program, kernel_names[k], &err);
        if (err == CL_SUCCESS)
            err = clGetKernelWorkGroupInfo(dev->kernels[k], dev->info.id, CL_KERNEL_WORK_GROUP_SIZE,
                                           sizeof dev->kernel_group[k], &dev->kernel_group[k], NULL);
        if (err != CL_SUCCESS)
            return dz_fail(DZ_ERR_DEVICE, "%s: kernel '%s': %s (%d)", dev->name, kernel_names[k],
                           ocl_error_name(err), err);
    }
    /* Every launch uses groups of OCL_GROUP except the tiled matmul
     * (OCL_TILE_ITEMS^2, skipped when too large: the row kernel does the work)
     * and attention (smaller groups limit head_dim, see supports). */
    for (int k = 0; k < K_COUNT; k++)
        if (k != K_MM_TILED && k != K_ATTENTION && dev->kernel_group[k] < OCL_GROUP)
            return dz_fail(DZ_ERR_DEVICE, "%s: kernel '%s' runs at most %zu items per group; %d are needed",
                           dev->name, kernel_names[k], dev->kernel_group[k], OCL_GROUP);
    size_t group = OCL_GROUP;
    while (group > dev->kernel_group[K_ATTENTION]) group /= 2;
    if (group < 8)
        return dz_fail(DZ_ERR_DEVICE, "%s: the attention kernel runs at most %zu items per group", dev->name,
                       dev->kernel_group[K_ATTENTION]);
    dev->attention_group = group;
    return DZ_OK;
}

void ocl_program_release(ocl_device *dev) {
    for (int k = 0; k < K_COUNT; k++)
        if (dev->kernels[k]) clReleaseKernel(dev->kernels[k]);
    if (dev->program) clReleaseProgram(dev->program);
}

/* ---- launching ---- */

ocl_launch ocl_launch_begin(ocl_device *dev, ocl_kernel_id kernel) {
    return (ocl_launch){dev, kernel, 0, CL_SUCCESS};
}

void ocl_arg(ocl_launch *l, size_t size, const void *value) {
    cl_int err = clSetKernelArg(l->dev->kernels[l->kernel], l->n_args++, size, value);
    if (l->err == CL_SUCCESS) l->err = err;
}

void ocl_arg_mem(ocl_launch *l, cl_mem mem) { ocl_arg(l, sizeof mem, &mem); }

void ocl_arg_int(ocl_launch *l, int value) {
    cl_int v = value;
    ocl_arg(l, sizeof v, &v);
}

void ocl_arg_long(ocl_launch *l, int64_t value) {
    cl_long v = value;
    ocl_arg(l, sizeof v, &v);
}

void ocl_arg_float(ocl_launch *l, float value) {
    cl_float v = value;
    ocl_arg(l, sizeof v, &v);
}

void ocl_arg_tensor(ocl_launch *l, const ocl_operand *t) {
    ocl_arg_mem(l, t->mem);
    ocl_arg(l, sizeof t->off, &t->off);
    ocl_arg(l, sizeof t->ne, &t->ne);
    ocl_arg(l, sizeof t->nb, &t->nb);
}

void ocl_arg_local(ocl_launch *l, size_t bytes) { ocl_arg(l, bytes, NULL); }

dz_status ocl_launch_run(ocl_launch *l, const dz_tensor *node, cl_uint dims, const size_t *global,
                         const size_t *local) {
    size_t rounded[3];
    for (cl_uint d = 0; d < dims; d++) {
        rounded[d] = global[d];
        if (local && rounded[d] % local[d]) rounded[d] += local[d] - rounded[d] % local[d];
        if (rounded[d] == 0) return DZ_OK; /* nothing to do */
    }
    cl_int err = l->err;
    if (err == CL_SUCCESS)
        err = clEnqueueNDRangeKernel(l->dev->queue, l->dev->kernels[l->kernel], dims, NULL, rounded, local, 0, NULL,
                                     NULL);
    if (err == CL_SUCCESS) return DZ_OK;
    dz_status st = err == CL_OUT_OF_RESOURCES || err == CL_OUT_OF_HOST_MEMORY || err == CL_MEM_OBJECT_ALLOCATION_FAILURE
                       ? DZ_ERR_NOMEM
                       : DZ_ERR_DEVICE;
    return dz_fail(st, "%s: %s node '%s': launching kernel '%s' failed: %s (%d)", l->dev->name, dz_op_name(node->op),
                   node->name, kernel_names[l->kernel], ocl_error_name(err), err);
}
