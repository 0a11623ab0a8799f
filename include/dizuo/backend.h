/* dizuo — hal: the backend ABI.
 *
 * This header is what an accelerator vendor implements against. It defines
 * the plain data a backend sees (element types, tensors, graphs, ops) and one
 * versioned table of functions (dz_backend_iface). The core schedules: it asks
 * `supports(node)` and runs whatever a backend refuses on the CPU, copying
 * tensors between buffers as needed.
 *
 * Rules of the table: `abi_version` and `struct_size` come first; functions
 * are only ever appended; a NULL optional function means "not provided" and is
 * announced (or not) by capability bits.
 *
 * Memory: a buffer is a range of device memory the backend allocated (or, for
 * host devices, host memory it was handed). A tensor's `data` is
 * `buffer base + offset`; what that address means is up to the backend that
 * owns the buffer (for host memory it is a plain pointer). */
#ifndef DIZUO_BACKEND_H
#define DIZUO_BACKEND_H

#include "dizuo/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DZ_BACKEND_ABI_VERSION 1u

/* Element types. Numbering is GGUF's (= ggml's), so a file's type id is a
 * dz_type. Gaps are ids ggml retired; files using them are refused. */
typedef enum dz_type {
    DZ_TYPE_F32 = 0,
    DZ_TYPE_F16 = 1,
    DZ_TYPE_Q4_0 = 2,
    DZ_TYPE_Q4_1 = 3,
    DZ_TYPE_Q5_0 = 6,
    DZ_TYPE_Q5_1 = 7,
    DZ_TYPE_Q8_0 = 8,
    DZ_TYPE_Q8_1 = 9,
    DZ_TYPE_Q2_K = 10,
    DZ_TYPE_Q3_K = 11,
    DZ_TYPE_Q4_K = 12,
    DZ_TYPE_Q5_K = 13,
    DZ_TYPE_Q6_K = 14,
    DZ_TYPE_Q8_K = 15,
    DZ_TYPE_IQ2_XXS = 16,
    DZ_TYPE_IQ2_XS = 17,
    DZ_TYPE_IQ3_XXS = 18,
    DZ_TYPE_IQ1_S = 19,
    DZ_TYPE_IQ4_NL = 20,
    DZ_TYPE_IQ3_S = 21,
    DZ_TYPE_IQ2_S = 22,
    DZ_TYPE_IQ4_XS = 23,
    DZ_TYPE_I8 = 24,
    DZ_TYPE_I16 = 25,
    DZ_TYPE_I32 = 26,
    DZ_TYPE_I64 = 27,
    DZ_TYPE_F64 = 28,
    DZ_TYPE_IQ1_M = 29,
    DZ_TYPE_BF16 = 30,
    DZ_TYPE_TQ1_0 = 34,
    DZ_TYPE_TQ2_0 = 35,
    DZ_TYPE_MXFP4 = 39,
    DZ_TYPE_COUNT = 40 /* one past the largest id */
} dz_type;

/* Operations. Shapes use ggml's convention: ne[0] is the fastest-varying
 * dimension; nb[i] is the byte stride of dimension i. "F32" below means the
 * tensor's type must be DZ_TYPE_F32. Unless stated, outputs are contiguous
 * and inputs may be strided views. */
typedef enum dz_op {
    DZ_OP_NONE = 0, /* a leaf: its data lives in a buffer */
    DZ_OP_VIEW,     /* no computation: aliases src[0]'s data (view_src/view_offset, own ne/nb):
                       reshape, view, permute and transpose all produce VIEW nodes */
    DZ_OP_GET_ROWS, /* src0 table (ne0, n_rows) any type, src1 ids I32 (n) -> F32 (ne0, n) */
    DZ_OP_ADD,      /* src0 F32 (a,b,c,d) + src1 F32 broadcast (a, b/k, ...) -> F32 like src0 */
    DZ_OP_MUL,      /* as ADD, elementwise product */
    DZ_OP_SCALE,    /* src0 F32 * params.f[0] */
    DZ_OP_RMS_NORM, /* src0 F32 rows of ne0: x / sqrt(mean(x^2) + eps), eps = params.f[0] */
    DZ_OP_MUL_MAT,  /* src0 W (K, N, b2, b3) any matmul type, src1 X F32 (K, M, B2, B3)
                       -> F32 (N, M, B2, B3): out[m][n] = dot(W row n, X row m);
                       W broadcast over dims 2,3 (B2 % b2 == 0, B3 % b3 == 0) */
    DZ_OP_ROPE,     /* src0 x F32 (head_dim, n_head, T), src1 positions I32 (T) -> F32 like x.
                       params.i[0] n_rot (even, <= head_dim), params.i[1] mode (DZ_ROPE_*),
                       params.f[2] freq_base, params.f[3] freq_scale (linear scaling = 1/factor) */
    DZ_OP_SOFTMAX,  /* src0 F32 (n, rows, c, d), optional src1 mask F32 (n, rows) added after
                       scaling -> F32 like src0. params.f[0] scale, params.i[1] causal (0/1),
                       params.i[2] n_past: with causal, row r sees columns j <= n_past + r */
    DZ_OP_ATTENTION,/* src0 q F32 (hd, n_head, T), src1 k (hd, n_kv_head, S) F32|F16,
                       src2 v (hd, n_kv_head, S) F32|F16, optional src3 mask F32 (S, T)
                       -> F32 (hd, n_head, T). n_head % n_kv_head == 0 (GQA: head h uses kv
                       head h / (n_head / n_kv_head)). softmax(scale * q.k + mask) . v;
                       params as SOFTMAX (f[0] scale, i[1] causal, i[2] n_past) */
    DZ_OP_SILU,     /* src0 F32: x / (1 + exp(-x)) */
    DZ_OP_SWIGLU,   /* src0 gate F32, src1 up F32 same shape: silu(gate) * up */
    DZ_OP_CPY,      /* src0 -> this node, converting types (F32 -> F32|F16|BF16, F16|BF16 -> F32).
                       The node is usually a view into another tensor (view_src), e.g. a
                       KV-cache write; shapes must have the same element count */
    DZ_OP_SET_ROWS, /* src0 rows F32 (ne0, n), src1 ids I32 (n) -> this node, a view of the
                       destination (ne0, R) F32|F16: destination row ids[i] = src0 row i
                       (converted), other rows untouched; ids distinct and in [0, R) */
    DZ_OP_PAGED_ATTENTION, /* src0 q F32 (hd, n_head, T), src1 k and src2 v pools
                       (hd, n_kv_head, R) F32|F16, src3 index I32 (W, T): row t lists
                       n_t = index[0][t] visible positions, then their pool rows
                       index[1..n_t][t] in position order (1 <= n_t <= W - 1) -> F32
                       (hd, n_head, T): as ATTENTION for query t over those rows only (the
                       rows of a paged KV cache); params.f[0] scale */
    /* ---- appended for GPT-2 (tier I) ---- */
    DZ_OP_LAYER_NORM, /* src0 F32 rows of ne0: (x - mean) / sqrt(var + eps), var the biased
                       variance of the row, eps = params.f[0] (weight and bias: MUL, ADD) */
    DZ_OP_GELU,     /* src0 F32: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    /* ---- appended for training (tier T): the backward of the ops above ---- */
    DZ_OP_MUL_MAT_BACK_X, /* src0 W (K, N) any matmul type, src1 dY F32 (N, M, B2, B3) -> F32
                       (K, M, B2, B3): dX row m = sum over n of dY[m][n] * W row n (the gradient
                       of MUL_MAT with respect to X; rows may span dims 1..3) */
    DZ_OP_MUL_MAT_BACK_W, /* src0 X F32 (K, M, B2, B3), src1 dY F32 (N, M, B2, B3) -> F32 (K, N):
                       dW row n = sum over every row m of dY[m][n] * X row m */
    DZ_OP_SUM_COLS, /* src0 F32 (n, a, b, c) -> F32 (n): the sum of every row (bias gradients) */
    DZ_OP_RMS_NORM_BACK,   /* src0 x F32, src1 dy F32 (like x) -> dx F32 (like x); eps params.f[0] */
    DZ_OP_LAYER_NORM_BACK, /* as RMS_NORM_BACK for LAYER_NORM */
    DZ_OP_ROPE_BACK, /* as ROPE (same sources and params) on dy: the inverse rotation */
    DZ_OP_ATTENTION_BACK, /* src0 q F32 (hd, n_head, T), src1 k F32 (hd, n_kv_head, T), src2 v
                       F32 (hd, n_kv_head, T), src3 dout F32 (hd, n_head, T) -> F32
                       (hd * (n_head + 2 n_kv_head), T): column t holds dq_t, dk_t, dv_t, the
                       gradients of causal ATTENTION (n_past 0, no mask; f[0] scale) */
    DZ_OP_SWIGLU_BACK, /* src0 gate F32, src1 up F32, src2 dy F32 (all (n, T)) -> F32 (n, T, 2):
                       [:, :, 0] d gate, [:, :, 1] d up */
    DZ_OP_GELU_BACK, /* src0 x F32, src1 dy F32 (like x) -> dx F32 (like x) */
    DZ_OP_GET_ROWS_BACK, /* src0 dY F32 (ne0, n), src1 ids I32 (n), params.i[0] n_rows -> F32
                       (ne0, n_rows): row r = sum of the dY rows i with ids[i] == r (else 0) */
    DZ_OP_CROSS_ENTROPY, /* src0 logits F32 (V, T[, B]), src1 targets I32 (T[, B]) -> F32 (1):
                       the mean over all rows t of logsumexp(logits_t) - logits_t[target_t]
                       (a target outside [0, V) fails the computation) */
    DZ_OP_CROSS_ENTROPY_BACK, /* the same sources, params.f[0] dloss -> F32 like logits:
                       (softmax(logits_t) - onehot(target_t)) * dloss / (number of rows) */
    DZ_OP_COUNT
} dz_op;

enum { DZ_ROPE_NORMAL = 0, DZ_ROPE_NEOX = 2 };

/* Op tiers: I inference, S serving extras, T training. */
enum { DZ_TIER_I = 1u << 0, DZ_TIER_S = 1u << 1, DZ_TIER_T = 1u << 2 };

#define DZ_MAX_DIMS 4
#define DZ_MAX_SRC 4
#define DZ_MAX_OP_PARAMS 8
#define DZ_MAX_NAME 64

struct dz_buffer;

/* A tensor is both a piece of data and a node of a graph (op != NONE). */
typedef struct dz_tensor {
    dz_type type;
    int32_t n_dims;               /* 1..4; ne[i] = 1 for i >= n_dims */
    int64_t ne[DZ_MAX_DIMS];      /* elements per dimension */
    size_t nb[DZ_MAX_DIMS];       /* byte strides: nb[0] = type size (block size for quantized),
                                     nb[1] = row bytes, nb[i] = nb[i-1] * ne[i-1] if contiguous */
    dz_op op;
    union { int32_t i[DZ_MAX_OP_PARAMS]; float f[DZ_MAX_OP_PARAMS]; } params;
    struct dz_tensor *src[DZ_MAX_SRC];
    struct dz_tensor *view_src;   /* non-NULL: data = view_src->data + view_offset */
    size_t view_offset;
    struct dz_buffer *buffer;     /* owner of the data; NULL until allocated */
    void *data;                   /* device address: buffer base + offset */
    uint32_t flags;               /* DZ_TENSOR_* */
    char name[DZ_MAX_NAME];
} dz_tensor;

enum {
    DZ_TENSOR_INPUT = 1u << 0,  /* filled by the caller before compute */
    DZ_TENSOR_OUTPUT = 1u << 1, /* read by the caller after compute: never reused */
    DZ_TENSOR_WEIGHT = 1u << 2, /* model parameter */
    /* bits 16..31 are reserved for the core (the scheduler marks memory it placed) */
};

/* A graph is its nodes in execution order (every src precedes its user).
 * Leaves (op == NONE) are referenced through src and not listed. */
typedef struct dz_graph {
    dz_tensor **nodes;
    int32_t n_nodes;
} dz_graph;

/* Capability bits of a device. */
enum {
    DZ_CAP_HOST_MEMORY = 1u << 0, /* buffers are host memory: data pointers are host pointers,
                                     and dz_buffer_from_host wraps memory without a copy */
    DZ_CAP_THREADS = 1u << 1,     /* set_threads is provided */
};

typedef struct dz_device_props {
    char name[DZ_MAX_NAME];    /* "cpu", "opencl:0" ... */
    char description[128];     /* human-readable: "x86-64 reference (scalar), 2 threads" */
    uint64_t memory_total;     /* bytes; 0 if unknown */
    uint64_t memory_free;
    uint32_t caps;             /* DZ_CAP_*: the core sets this from the table's `caps`, which is
                                  what it relies on (a backend may leave it 0) */
    uint32_t tiers;            /* DZ_TIER_* the backend claims native for this device (every op
                                  of the tier, every type its conformance cases use); `dizuo
                                  conformance` is what verifies the claim */
    uint64_t max_buffer_size;  /* the largest single buffer_alloc the device can honour
                                  (OpenCL's CL_DEVICE_MAX_MEM_ALLOC_SIZE); 0: no limit
                                  beyond its memory */
} dz_device_props;

/* get_props receives props zeroed by the core: fields appended to
 * dz_device_props in later versions read 0 from an older backend.
 *
 * The vendor table. `self` is the backend's per-device state made by open();
 * `buf` is the backend's per-buffer state made by buffer_alloc(). */
typedef struct dz_backend_iface {
    uint32_t abi_version;  /* DZ_BACKEND_ABI_VERSION the backend was built against */
    uint32_t struct_size;  /* sizeof(dz_backend_iface) it was built with */
    const char *name;      /* short lowercase name: "cpu", "opencl", "cuda" */

    /* --- required --- */
    int (*device_count)(void);
    dz_status (*open)(int device, void **self);
    void (*close)(void *self);
    dz_status (*get_props)(void *self, dz_device_props *out);

    /* Allocates size bytes; *base is the address tensors offset from. */
    dz_status (*buffer_alloc)(void *self, size_t size, void **buf, void **base);
    void (*buffer_free)(void *self, void *buf);
    /* Transfers are synchronous as the core sees them: buffer_write returns
     * once `src` may be reused; buffer_read returns once `dst` holds the
     * data, including what compute() calls made before it wrote (so it
     * waits for them). buffer_copy and buffer_fill are ordered after earlier
     * compute() calls and before later ones and reads. */
    dz_status (*buffer_write)(void *self, void *buf, size_t offset, const void *src, size_t n);
    dz_status (*buffer_read)(void *self, void *buf, size_t offset, void *dst, size_t n);
    dz_status (*buffer_copy)(void *self, void *dst_buf, size_t dst_offset, void *src_buf,
                             size_t src_offset, size_t n);
    dz_status (*buffer_fill)(void *self, void *buf, size_t offset, uint8_t value, size_t n);

    /* Can this device compute `node` (op, types, shapes, strides) natively?
     * Asked only for ops that compute (never NONE or VIEW). */
    bool (*supports)(void *self, const dz_tensor *node);
    /* Computes every node of the graph in order. Every node is supported and
     * every tensor it touches lives in this device's buffers. The core never
     * passes NONE or VIEW nodes; an operand may be a view, whose `data`
     * already points into the viewed memory (use data and nb, never
     * view_src). May return before the work is done; synchronize() waits. */
    dz_status (*compute)(void *self, const dz_graph *graph);
    dz_status (*synchronize)(void *self);

    uint32_t caps; /* DZ_CAP_* the optional functions below honour */

    /* --- optional (v1) --- */
    /* DZ_CAP_THREADS: number of worker threads (>= 1). */
    dz_status (*set_threads)(void *self, int n_threads);
    /* DZ_CAP_HOST_MEMORY: wrap host memory [ptr, ptr+size) as a buffer without copying. */
    dz_status (*buffer_from_host)(void *self, void *ptr, size_t size, void **buf);
} dz_backend_iface;

/* ---- plugins: a backend shipped as a shared library ----
 *
 * A plugin is a shared library in a plugin directory (see below) that
 * exports one function, DZ_BACKEND_ENTRY_SYMBOL, of type dz_backend_entry_fn.
 * The core calls it once with the services it offers (the plugin links
 * nothing of dizuo's) and registers the table it returns, checked as
 * dz_backend_register checks it. A NULL result refuses the plugin; the
 * plugin should say why through host->fail first. The entry function only
 * returns the table: it must not call into dizuo (the registry is being
 * built) and should leave driver start-up to open(); once it has run, the
 * library is never unloaded, even when the table is refused. */
typedef struct dz_host_api {
    uint32_t abi_version; /* DZ_BACKEND_ABI_VERSION of the core */
    uint32_t struct_size; /* sizeof(dz_host_api) of the core; fields are only appended */
    /* Sets the thread's error message (printf format) and returns `status`:
     * what a backend function returns on failure so that the user reads why. */
    dz_status (*fail)(dz_status status, const char *fmt, ...);
    /* Writes a line to dizuo's log at `level` (DZ_LOG_*). */
    void (*log)(int level, const char *fmt, ...);
} dz_host_api;

typedef const dz_backend_iface *(*dz_backend_entry_fn)(const dz_host_api *host);
#define DZ_BACKEND_ENTRY_SYMBOL "dz_backend_entry"

/* Where plugins are looked for when the registry starts: every directory of
 * the environment variable DZ_PLUGIN_PATH (':'-separated), else
 * DZ_PLUGIN_DIR_DEFAULT. Every "*.so" file there is tried, in name order. */
#define DZ_PLUGIN_PATH_ENV "DZ_PLUGIN_PATH"
#define DZ_PLUGIN_DIR_DEFAULT "/usr/local/lib/dizuo/backends"

/* What happened to one plugin file: `backend` is the name it registered
 * (NULL if refused), `error` why it was refused (NULL if loaded). */
typedef struct dz_plugin_info {
    const char *path;
    const char *backend;
    const char *error;
} dz_plugin_info;

/* Loads one plugin file and registers its backend. On refusal (not a
 * shared library, no entry symbol, entry declined, wrong ABI version,
 * malformed table, name taken, registry full) returns the error naming the
 * file. The outcome is recorded for dz_plugin_at (the first 32 files).
 * Thread-safe against other plugin loading; lookups that run while a
 * plugin registers may not see it yet. */
dz_status dz_plugin_load(const char *path);
/* The plugin files tried so far (from the plugin path and dz_plugin_load). */
int dz_plugin_count(void);
const dz_plugin_info *dz_plugin_at(int i);

/* ---- registry and devices (the core side of the ABI) ---- */

/* Registers a backend. Refuses (DZ_ERR_UNSUPPORTED, message naming both
 * versions) an ABI version this core does not know or a table smaller than
 * v1's; refuses (DZ_ERR_ARG) a table missing a required function, announcing
 * a capability without its function, or reusing a registered name. The table
 * must outlive the process's use of it (it is not copied). Built-in backends
 * ("cpu") are registered on first use of the registry. Not thread-safe
 * against concurrent registration; lookups are safe once registration is done. */
dz_status dz_backend_register(const dz_backend_iface *iface);
int dz_backend_count(void);
const dz_backend_iface *dz_backend_at(int i);
const dz_backend_iface *dz_backend_find(const char *name);

typedef struct dz_device dz_device;

/* Opens a device by name: "cpu", "cpu:0", "<backend>:<index>"; "<backend>"
 * alone means index 0. Unknown names fail with DZ_ERR_ARG and a message that
 * lists the available devices. The caller owns *out (dz_device_close). */
dz_status dz_device_open(const char *name, dz_device **out);
/* Whether `name` denotes a device that exists, without opening it (no
 * driver context is made): DZ_OK, or DZ_ERR_ARG with the message
 * dz_device_open would give. */
dz_status dz_device_check_name(const char *name);
/* Opens a device through an explicit table (tests, plugins), checked as
 * dz_backend_register checks it but not registered. */
dz_status dz_device_open_iface(const dz_backend_iface *iface, int index, dz_device **out);
void dz_device_close(dz_device *dev); /* NULL is a no-op; close buffers first */
/* Properties read at open (and after dz_device_set_threads); owned by dev. */
const dz_device_props *dz_device_props_get(const dz_device *dev);
const dz_backend_iface *dz_device_iface(const dz_device *dev);
void *dz_device_self(const dz_device *dev);
bool dz_device_supports(dz_device *dev, const dz_tensor *node);
dz_status dz_device_set_threads(dz_device *dev, int n_threads); /* ignored without DZ_CAP_THREADS */

typedef struct dz_buffer {
    dz_device *device;
    void *ctx;     /* the backend's buffer state */
    void *base;    /* address tensors in this buffer offset from */
    size_t size;
    bool wraps_host; /* made by dz_buffer_from_host: memory not owned */
} dz_buffer;

/* Buffers: one device's memory. The caller owns *out (dz_buffer_free, before
 * closing the device). Transfers check [offset, offset + n) against the
 * buffer's size (DZ_ERR_ARG naming the device otherwise). A buffer may be
 * used from one thread at a time. */

/* Allocates a device buffer; on failure DZ_ERR_NOMEM naming the device and size. */
dz_status dz_buffer_alloc(dz_device *dev, size_t size, dz_buffer **out);
/* Wraps host memory (device must have DZ_CAP_HOST_MEMORY); memory stays the caller's. */
dz_status dz_buffer_from_host(dz_device *dev, void *ptr, size_t size, dz_buffer **out);
void dz_buffer_free(dz_buffer *buf); /* NULL is a no-op */
dz_status dz_buffer_write(dz_buffer *buf, size_t offset, const void *src, size_t n);
dz_status dz_buffer_read(dz_buffer *buf, size_t offset, void *dst, size_t n);
dz_status dz_buffer_fill(dz_buffer *buf, size_t offset, uint8_t value, size_t n);
/* Copies n bytes between buffers: within one device through its buffer_copy,
 * between devices through host memory (directly when either side is host
 * memory, else in staged chunks). Ranges are checked against both buffers. */
dz_status dz_buffer_copy(dz_buffer *dst, size_t dst_offset, dz_buffer *src, size_t src_offset, size_t n);

/* The built-in CPU reference backend's table. */
const dz_backend_iface *dz_cpu_backend_iface(void);

#ifdef __cplusplus
}
#endif
#endif /* DIZUO_BACKEND_H */
