/* Internals of the OpenCL backend shared by its files.
 *
 *   opencl_platform.c  which devices exist (chosen by capabilities), OpenCL error names
 *   opencl_backend.c   the dz_backend_iface table: open, close, properties
 *   opencl_program.c   the kernel program (built once per opened device), launching kernels
 *   opencl_memory.c    buffers, the address map, scratch memory
 *   opencl_supports.c  which nodes the kernels compute
 *   opencl_compute.c   compute() and synchronize(): one launch per op
 *   kernels/           the kernels (OpenCL C 1.2, .cl files), embedded at configure time
 *
 * Addresses: a buffer's memory is a cl_mem, which has no host address. Each
 * buffer is given a range of the process's address space reserved with
 * mmap(PROT_NONE) and never touched, so ranges of live buffers never
 * overlap; a tensor's data (base + offset) is mapped back to the buffer and
 * offset by the device's sorted table of ranges. A stray host access to
 * such an address faults at once instead of reading something else.
 *
 * Threads: a device (and its buffers) is used by one thread at a time, as
 * the ABI says; cl_kernel objects carry their arguments, so two threads
 * must not share one. Discovery (device_count) is thread-safe. */
#ifndef DZ_OPENCL_IMPL_H
#define DZ_OPENCL_IMPL_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#include "dizuo/backend.h"

/* ---- discovery (opencl_platform.c) ---- */

/* What the backend needs to know of a device before opening it. */
typedef struct ocl_device_info {
    cl_platform_id platform;
    cl_device_id id;
    char device_name[64];
    char version[48];        /* CL_DEVICE_VERSION, e.g. "OpenCL 3.0 PoCL ..." */
    int version_major, version_minor;
    uint64_t global_mem;     /* CL_DEVICE_GLOBAL_MEM_SIZE */
    uint64_t max_alloc;      /* CL_DEVICE_MAX_MEM_ALLOC_SIZE */
    uint64_t local_mem;      /* CL_DEVICE_LOCAL_MEM_SIZE */
    size_t max_work_group;   /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
    cl_uint compute_units;
    bool correct_divide;     /* CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT in the single-precision config */
} ocl_device_info;

/* Devices usable by the backend (OpenCL 1.2+, full profile, little-endian,
 * compiler available, enough memory), over all platforms in platform order.
 * Found once; 0 when there is no ICD loader, platform or device. */
int ocl_device_count(void);
const ocl_device_info *ocl_device_at(int index); /* NULL if out of range */

/* "CL_OUT_OF_RESOURCES" ... for an OpenCL error code. Static storage. */
const char *ocl_error_name(cl_int err);

/* ---- kernels (opencl_program.c) ---- */

typedef enum ocl_kernel_id {
    K_BINARY, K_UNARY, K_CPY, K_GET_ROWS, K_SET_ROWS,
    K_RMS_NORM, K_LAYER_NORM, K_SOFTMAX, K_ROPE,
    K_MM_TILED, K_MM_F32, K_MM_F16, K_MM_BF16, K_ROUND_X, K_QUANTIZE_X,
    K_MM_Q8_0, K_MM_Q4_0, K_MM_Q4_1, K_MM_Q5_0, K_MM_Q5_1, K_MM_IQ4_NL,
    K_MM_Q2_K, K_MM_Q3_K, K_MM_Q4_K, K_MM_Q5_K, K_MM_Q6_K,
    K_ATTENTION,
    K_COUNT
} ocl_kernel_id;

/* Work-group sizes the launches use (powers of two) and the shapes of
 * kernels/matmul.cl and attention.cl: the tiled matmul's group is
 * OCL_TILE_ITEMS^2 items computing OCL_TILE x OCL_TILE outputs; row kernels
 * take up to OCL_MM_ROWS X rows; attention items own up to OCL_ATT_DIMS
 * output dimensions each. */
enum { OCL_GROUP = 64, OCL_TILE = 64, OCL_TILE_ITEMS = 16, OCL_ATT_DIMS = 8, OCL_MM_ROWS = 8 };

/* A buffer: its memory and the host address range standing for it. */
typedef struct ocl_buffer {
    cl_mem mem;
    char *base;      /* start of the reserved range */
    size_t size;     /* bytes of mem */
    size_t reserved; /* bytes of the range (size rounded up to pages) */
} ocl_buffer;

enum { OCL_SCRATCH_SLOTS = 2 };

typedef struct ocl_node_ref {
    dz_op op;
    char name[DZ_MAX_NAME];
} ocl_node_ref;

/* An opened device. */
typedef struct ocl_device {
    int index;
    char name[DZ_MAX_NAME]; /* "opencl:N" */
    ocl_device_info info;
    cl_context context;
    cl_command_queue queue;
    cl_program program;
    cl_kernel kernels[K_COUNT];
    size_t kernel_group[K_COUNT]; /* largest work-group each kernel allows */
    size_t attention_group;       /* work-group of the attention kernel (head_dim <= 8 x it) */
    uint64_t allocated;           /* bytes of live buffers */
    ocl_buffer **buffers;         /* live buffers sorted by base */
    int n_buffers, cap_buffers;
    cl_mem scratch[OCL_SCRATCH_SLOTS]; /* grow-only, e.g. MUL_MAT's quantized activations */
    size_t scratch_size[OCL_SCRATCH_SLOTS];
    cl_mem error_word;            /* one int: node + 1 of the first data error (kernels/common.cl) */
    bool error_pending;           /* a computed graph had nodes that report data errors */
    ocl_node_ref *nodes_seen;     /* the last graph's nodes, to name the one with a data error */
    int cap_nodes_seen;
} ocl_device;

dz_status ocl_program_build(ocl_device *dev);
void ocl_program_release(ocl_device *dev);

/* A tensor as a kernel sees it: memory, byte offset, shape, strides. */
typedef struct ocl_operand {
    cl_mem mem;
    cl_ulong off;
    cl_long4 ne;
    cl_ulong4 nb;
} ocl_operand;

/* Arguments of one launch, set in order; the first failure is kept. */
typedef struct ocl_launch {
    ocl_device *dev;
    ocl_kernel_id kernel;
    cl_uint n_args;
    cl_int err;
} ocl_launch;

ocl_launch ocl_launch_begin(ocl_device *dev, ocl_kernel_id kernel);
void ocl_arg(ocl_launch *l, size_t size, const void *value);
void ocl_arg_mem(ocl_launch *l, cl_mem mem);
void ocl_arg_int(ocl_launch *l, int value);
void ocl_arg_long(ocl_launch *l, int64_t value);
void ocl_arg_float(ocl_launch *l, float value);
void ocl_arg_tensor(ocl_launch *l, const ocl_operand *t); /* 4 arguments: mem, off, ne, nb */
void ocl_arg_local(ocl_launch *l, size_t bytes);         /* local memory of that size */
/* Enqueues the kernel over global[0..dims) items in groups of local (NULL:
 * the driver's choice); global sizes are rounded up to whole groups.
 * Failures name the node: "opencl:0: MUL_MAT node 'ffn_up': ...". */
dz_status ocl_launch_run(ocl_launch *l, const dz_tensor *node, cl_uint dims, const size_t *global,
                         const size_t *local);

/* ---- memory (opencl_memory.c) ---- */

dz_status ocl_buffer_alloc(void *self, size_t size, void **buf, void **base);
void ocl_buffer_free(void *self, void *buf);
dz_status ocl_buffer_write(void *self, void *buf, size_t offset, const void *src, size_t n);
dz_status ocl_buffer_read(void *self, void *buf, size_t offset, void *dst, size_t n);
dz_status ocl_buffer_copy(void *self, void *dst_buf, size_t dst_offset, void *src_buf, size_t src_offset,
                          size_t n);
dz_status ocl_buffer_fill(void *self, void *buf, size_t offset, uint8_t value, size_t n);

/* Bytes from t->data to one past its last byte (0 for an empty tensor). */
size_t ocl_span_bytes(const dz_tensor *t);
/* Resolves operand t of node (which: "operand 1", "the result") to its
 * buffer, checking that it lies inside one of this device's buffers and is
 * aligned for its type. */
/* Whether a bound operand sits at the alignment its kernels need (an
 * unbound one, data NULL, is taken as aligned: the scheduler aligns what it
 * places). A GGUF file with alignment 1 can put weights at odd offsets. */
bool ocl_aligned(const dz_tensor *t);
dz_status ocl_resolve(ocl_device *dev, const dz_tensor *t, const dz_tensor *node, const char *which,
                      ocl_operand *out);
/* Scratch buffer `slot`, grown to at least size bytes (contents not kept). */
dz_status ocl_scratch(ocl_device *dev, int slot, size_t size, cl_mem *out);

/* ---- ops (opencl_supports.c, opencl_compute.c) ---- */

bool ocl_supports(void *self, const dz_tensor *node);
dz_status ocl_compute(void *self, const dz_graph *graph);
dz_status ocl_synchronize(void *self);

#endif /* DZ_OPENCL_IMPL_H */
