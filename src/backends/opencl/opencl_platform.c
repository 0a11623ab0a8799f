/* Which OpenCL devices the backend uses. Every device of every platform is
 * considered, in the order the ICD loader lists them, and kept when its
 * capabilities suffice — never by vendor or name:
 *   - available, with a compiler (kernels are built from source);
 *   - OpenCL 1.2 or later, full profile (64-bit integers), little-endian
 *     (block formats are read as little-endian halves);
 *   - at least 16 MiB of global and 16 KiB of local memory and work-groups
 *     of 64 items (every kernel's group size).
 * The kept devices are opencl:0, opencl:1, ... Without an ICD loader,
 * platform or device the count is 0, silently. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/opencl/opencl_impl.h"

enum { MAX_DEVICES = 64, MAX_PLATFORMS = 16 };

static ocl_device_info devices[MAX_DEVICES];
static int n_devices;
static pthread_once_t discovered = PTHREAD_ONCE_INIT;

/* A string property, cut to fit buf (OpenCL refuses a buffer that is too
 * small, so the whole string is read first). */
static bool info_string(cl_device_id id, cl_device_info what, char *buf, size_t size) {
    size_t len = 0;
    if (clGetDeviceInfo(id, what, 0, NULL, &len) != CL_SUCCESS || len == 0 || len > 65536) return false;
    char *all = malloc(len + 1);
    bool ok = all && clGetDeviceInfo(id, what, len, all, NULL) == CL_SUCCESS;
    if (ok) {
        all[len] = '\0';
        snprintf(buf, size, "%s", all);
    }
    free(all);
    return ok;
}

static bool info_u64(cl_device_id id, cl_device_info what, uint64_t *out) {
    cl_ulong v = 0;
    if (clGetDeviceInfo(id, what, sizeof v, &v, NULL) != CL_SUCCESS) return false;
    *out = v;
    return true;
}

static bool info_bool(cl_device_id id, cl_device_info what) {
    cl_bool v = CL_FALSE;
    return clGetDeviceInfo(id, what, sizeof v, &v, NULL) == CL_SUCCESS && v == CL_TRUE;
}

/* "OpenCL 1.2 ..." -> 1, 2; false when the text is not of that form. */
static bool parse_version(const char *text, const char *prefix, int *major, int *minor) {
    size_t n = strlen(prefix);
    return strncmp(text, prefix, n) == 0 && sscanf(text + n, "%d.%d", major, minor) == 2;
}

/* Reads what the backend needs; false when the device cannot serve. */
static bool examine(cl_platform_id platform, cl_device_id id, ocl_device_info *d) {
    memset(d, 0, sizeof *d);
    d->platform = platform;
    d->id = id;
    char profile[32], c_version[48];
    cl_uint address_bits = 0, units = 0;
    size_t group = 0;
    cl_device_fp_config fp = 0;
    if (!info_string(id, CL_DEVICE_NAME, d->device_name, sizeof d->device_name) ||
        !info_string(id, CL_DEVICE_VERSION, d->version, sizeof d->version) ||
        !info_string(id, CL_DEVICE_OPENCL_C_VERSION, c_version, sizeof c_version) ||
        !info_string(id, CL_DEVICE_PROFILE, profile, sizeof profile) ||
        !info_u64(id, CL_DEVICE_GLOBAL_MEM_SIZE, &d->global_mem) ||
        !info_u64(id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, &d->max_alloc) ||
        !info_u64(id, CL_DEVICE_LOCAL_MEM_SIZE, &d->local_mem) ||
        clGetDeviceInfo(id, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof group, &group, NULL) != CL_SUCCESS ||
        clGetDeviceInfo(id, CL_DEVICE_ADDRESS_BITS, sizeof address_bits, &address_bits, NULL) != CL_SUCCESS ||
        clGetDeviceInfo(id, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units, NULL) != CL_SUCCESS)
        return false;
    clGetDeviceInfo(id, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL);
    d->max_work_group = group;
    d->compute_units = units;
    d->correct_divide = (fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0;
    int c_major = 0, c_minor = 0;
    bool version_ok = parse_version(d->version, "OpenCL ", &d->version_major, &d->version_minor) &&
                      (d->version_major > 1 || (d->version_major == 1 && d->version_minor >= 2)) &&
                      parse_version(c_version, "OpenCL C ", &c_major, &c_minor) &&
                      (c_major > 1 || (c_major == 1 && c_minor >= 2));
    return version_ok && strcmp(profile, "FULL_PROFILE") == 0 && info_bool(id, CL_DEVICE_AVAILABLE) &&
           info_bool(id, CL_DEVICE_COMPILER_AVAILABLE) && info_bool(id, CL_DEVICE_ENDIAN_LITTLE) &&
           d->global_mem >= (16u << 20) && d->max_alloc >= (16u << 20) && d->local_mem >= (16u << 10) &&
           group >= OCL_GROUP && (address_bits == 32 || address_bits == 64);
}

static void discover(void) {
    cl_platform_id platforms[MAX_PLATFORMS];
    cl_uint n_platforms = 0;
    /* No ICD loader configuration or no platform: an error code, nothing printed. */
    if (clGetPlatformIDs(MAX_PLATFORMS, platforms, &n_platforms) != CL_SUCCESS) return;
    if (n_platforms > MAX_PLATFORMS) n_platforms = MAX_PLATFORMS;
    for (cl_uint p = 0; p < n_platforms; p++) {
        cl_device_id ids[MAX_DEVICES];
        cl_uint n = 0;
        if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, ids, &n) != CL_SUCCESS) continue;
        if (n > MAX_DEVICES) n = MAX_DEVICES;
        for (cl_uint i = 0; i < n && n_devices < MAX_DEVICES; i++)
            if (examine(platforms[p], ids[i], &devices[n_devices])) n_devices++;
    }
}

int ocl_device_count(void) {
    pthread_once(&discovered, discover);
    return n_devices;
}

const ocl_device_info *ocl_device_at(int index) {
    return index >= 0 && index < ocl_device_count() ? &devices[index] : NULL;
}

const char *ocl_error_name(cl_int err) {
    switch (err) {
    case CL_SUCCESS: return "CL_SUCCESS";
    case CL_DEVICE_NOT_FOUND: return "CL_DEVICE_NOT_FOUND";
    case CL_DEVICE_NOT_AVAILABLE: return "CL_DEVICE_NOT_AVAILABLE";
    case CL_COMPILER_NOT_AVAILABLE: return "CL_COMPILER_NOT_AVAILABLE";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_OUT_OF_RESOURCES: return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY: return "CL_OUT_OF_HOST_MEMORY";
    case CL_BUILD_PROGRAM_FAILURE: return "CL_BUILD_PROGRAM_FAILURE";
    case CL_MISALIGNED_SUB_BUFFER_OFFSET: return "CL_MISALIGNED_SUB_BUFFER_OFFSET";
    case CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST: return "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST";
    case CL_INVALID_VALUE: return "CL_INVALID_VALUE";
    case CL_INVALID_DEVICE: return "CL_INVALID_DEVICE";
    case CL_INVALID_CONTEXT: return "CL_INVALID_CONTEXT";
    case CL_INVALID_COMMAND_QUEUE: return "CL_INVALID_COMMAND_QUEUE";
    case CL_INVALID_MEM_OBJECT: return "CL_INVALID_MEM_OBJECT";
    case CL_INVALID_BUILD_OPTIONS: return "CL_INVALID_BUILD_OPTIONS";
    case CL_INVALID_PROGRAM_EXECUTABLE: return "CL_INVALID_PROGRAM_EXECUTABLE";
    case CL_INVALID_KERNEL_NAME: return "CL_INVALID_KERNEL_NAME";
    case CL_INVALID_KERNEL: return "CL_INVALID_KERNEL";
    case CL_INVALID_ARG_INDEX: return "CL_INVALID_ARG_INDEX";
    case CL_INVALID_ARG_VALUE: return "CL_INVALID_ARG_VALUE";
    case CL_INVALID_ARG_SIZE: return "CL_INVALID_ARG_SIZE";
    case CL_INVALID_KERNEL_ARGS: return "CL_INVALID_KERNEL_ARGS";
    case CL_INVALID_WORK_DIMENSION: return "CL_INVALID_WORK_DIMENSION";
    case CL_INVALID_WORK_GROUP_SIZE: return "CL_INVALID_WORK_GROUP_SIZE";
    case CL_INVALID_WORK_ITEM_SIZE: return "CL_INVALID_WORK_ITEM_SIZE";
    case CL_INVALID_GLOBAL_OFFSET: return "CL_INVALID_GLOBAL_OFFSET";
    case CL_INVALID_OPERATION: return "CL_INVALID_OPERATION";
    case CL_INVALID_BUFFER_SIZE: return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_GLOBAL_WORK_SIZE: return "CL_INVALID_GLOBAL_WORK_SIZE";
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR"; /* cl_khr_icd: no platform installed */
    default: return "an unknown OpenCL error";
    }
}
