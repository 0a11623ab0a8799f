/* dizuo — CUDA backend, internal interface (C and CUDA sides).
 *
 * The backend is "cuda": one device per GPU the CUDA runtime sees, memory
 * from cudaMalloc (tensor data pointers are device pointers), one stream per
 * device on which buffer transfers and kernels run in order.
 *
 * Files:  cuda_backend.c    the table: devices, buffers, compute, synchronize
 *         cuda_node.c       which nodes it computes, and the op dispatch
 *         cuda_emu.c        the same kernels run on the host (tests)
 *         cuda_common.cuh   device helpers: element access, fp16/bf16, dequantization,
 *                           block and warp reductions (with host stand-ins)
 *         cuda_ops_elem.cu  GET_ROWS, ADD, MUL, SCALE, SILU, GELU, SWIGLU, CPY, SET_ROWS, ROPE
 *         cuda_ops_row.cu   RMS_NORM, LAYER_NORM, SOFTMAX
 *         cuda_matmul.cu    MUL_MAT
 *         cuda_attention.cu ATTENTION, PAGED_ATTENTION
 *
 * Every kernel body is a __host__ __device__ function of one element, one
 * row or one output tile, written against a small "team" interface (thread
 * index, team size, barrier, sum and max over the team). On the GPU a team
 * is a CUDA block or warp; on the host it is one thread, which lets the
 * tests run every kernel body through the conformance suite on machines
 * without a GPU (cuda_emu.c). What the host run cannot check is the GPU
 * side of a team (the shuffles and shared memory of cuda_common.cuh), the
 * launch shapes, and device memory. */
#ifndef DIZUO_BACKENDS_CUDA_H
#define DIZUO_BACKENDS_CUDA_H

#include "dizuo/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

struct CUstream_st; /* cudaStream_t is `struct CUstream_st *` */

/* The table of the "cuda" backend (registered as a built-in by the
 * registry when the build has CUDA). */
const dz_backend_iface *dz_cuda_backend_iface(void);

/* Bits a kernel sets in the device's error word when the data of a node is
 * invalid (what the CPU checks on the host before computing); the kernel
 * writes zeros (or nothing) instead of reading out of bounds, and
 * synchronize() turns the bit into an error naming the node. */
enum {
    DZ_CUDA_BAD_ROW_ID = 1u << 0,     /* GET_ROWS: an id outside the table */
    DZ_CUDA_BAD_SET_ROW_ID = 1u << 1, /* SET_ROWS: an id outside the destination */
    DZ_CUDA_BAD_PAGE_INDEX = 1u << 2, /* PAGED_ATTENTION: a count or pool row out of range */
    DZ_CUDA_N_ERROR_BITS = 3
};

/* Where a node's kernels run. */
typedef struct dz_cuda_exec {
    bool host;                  /* true: run the kernel bodies on the calling thread, with
                                   host pointers (cuda_emu.c); false: launch on `stream` */
    struct CUstream_st *stream; /* the device's stream (GPU only) */
    unsigned *error_word;       /* DZ_CUDA_BAD_* bits: device memory on the GPU, host memory
                                   on the host */
    void *scratch;              /* memory for a node's intermediates (MUL_MAT's quantized
                                   activations), at least dz_cuda_scratch_bytes(node) */
    size_t scratch_bytes;
} dz_cuda_exec;

/* ---- which nodes (cuda_node.c) ---- */

/* Can the kernels compute this node (op, types, shapes, strides)?
 * max_shared_bytes: the shared memory one block may use (ATTENTION keeps a
 * row of scores there); 0 means no limit (host runs). Pure function. */
bool dz_cuda_supports_node(const dz_tensor *node, size_t max_shared_bytes);

/* Bytes of scratch memory a node needs (0 for most), and the most any node
 * of a graph needs. */
size_t dz_cuda_scratch_bytes(const dz_tensor *node);
size_t dz_cuda_graph_scratch_bytes(const dz_graph *graph);

/* Bytes of shared memory ATTENTION/PAGED_ATTENTION need per block. */
size_t dz_cuda_attention_shared_bytes(const dz_tensor *node);

/* Launches (or, on the host, runs) the kernels of one supported node.
 * Checks the alignment of every operand's data first (DZ_ERR_UNSUPPORTED
 * naming the operand). A failed launch is DZ_ERR_DEVICE naming the op, the
 * node and the CUDA error. On the GPU the work is queued, not finished. */
dz_status dz_cuda_run_node(const dz_tensor *node, const dz_cuda_exec *exec);

/* Which nodes of a compute() may set which DZ_CUDA_BAD_* bit (the first
 * of each), so that the error after synchronize() can name it. */
typedef struct dz_cuda_watch {
    unsigned armed;                                   /* bits some node may set */
    char node[DZ_CUDA_N_ERROR_BITS][DZ_MAX_NAME];
    dz_op op[DZ_CUDA_N_ERROR_BITS];
} dz_cuda_watch;

/* Notes a node about to run (call for every node of a compute()). */
void dz_cuda_watch_node(dz_cuda_watch *w, const dz_tensor *node);
/* Runs every node of a graph in order (dz_cuda_run_node), noting each in
 * the watch; an error is prefixed with "<device>: ". */
dz_status dz_cuda_run_graph(const dz_graph *graph, const dz_cuda_exec *exec, dz_cuda_watch *w, const char *device);
/* After the work finished, with the error word it left: DZ_OK for 0, else
 * DZ_ERR_ARG naming the device, the node and what its data got wrong.
 * Disarms the watch either way. */
dz_status dz_cuda_watch_report(dz_cuda_watch *w, const char *device, unsigned word);

/* ---- kernel launchers (the .cu files) ----
 * Each takes a node that dz_cuda_supports_node accepted and returns a CUDA
 * error code (0 = cudaSuccess): the launch's, or 0 when there was nothing
 * to do. On the host they run to completion. Shapes are in backend.h. */
int dz_cuda_get_rows(const dz_tensor *node, const dz_cuda_exec *exec);
int dz_cuda_binary(const dz_tensor *node, const dz_cuda_exec *exec);  /* ADD, MUL */
int dz_cuda_unary(const dz_tensor *node, const dz_cuda_exec *exec);   /* SCALE, SILU, GELU, SWIGLU */
int dz_cuda_cpy(const dz_tensor *node, const dz_cuda_exec *exec);
int dz_cuda_set_rows(const dz_tensor *node, const dz_cuda_exec *exec);
int dz_cuda_rope(const dz_tensor *node, const dz_cuda_exec *exec);
int dz_cuda_norm(const dz_tensor *node, const dz_cuda_exec *exec);    /* RMS_NORM, LAYER_NORM */
int dz_cuda_softmax(const dz_tensor *node, const dz_cuda_exec *exec);
int dz_cuda_mul_mat(const dz_tensor *node, const dz_cuda_exec *exec);
int dz_cuda_attention(const dz_tensor *node, const dz_cuda_exec *exec); /* ATTENTION, PAGED_ATTENTION */

/* MUL_MAT: do the node's dimensions fit the launch grid (tiles of X rows,
 * matrices)? And the scratch bytes of its quantized activations. */
bool dz_cuda_mul_mat_fits(const dz_tensor *node);
size_t dz_cuda_mul_mat_scratch_bytes(const dz_tensor *node);

/* Raises the dynamic shared-memory limit of the attention kernel on the
 * current device to what it allows: optin_bytes (the device's per-block
 * opt-in maximum) less the kernel's static shared memory, stored in
 * *usable_bytes. Called once per device at open. CUDA error code. */
int dz_cuda_attention_init(size_t optin_bytes, size_t *usable_bytes);

/* ---- the host-run twin (cuda_emu.c) ----
 * A backend "cuda-emu" (not registered: open it with dz_device_open_iface)
 * whose buffers are malloc'd memory the core treats as device memory (it
 * copies to and from it as for a GPU) and whose compute() runs the CUDA
 * kernel bodies on the host. supports() is the CUDA device's. For tests. */
const dz_backend_iface *dz_cuda_emu_backend_iface(void);

#ifdef __cplusplus
}
#endif
#endif /* DIZUO_BACKENDS_CUDA_H */
