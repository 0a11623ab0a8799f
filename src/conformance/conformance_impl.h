/* Internals of the conformance suite: the case table (cases.c), the graph
 * a case builds (its inputs and the node under test), and the report
 * (report.c). The harness (harness.c) runs cases and fills the report. */
#ifndef DZ_CONFORMANCE_IMPL_H
#define DZ_CONFORMANCE_IMPL_H

#include "dizuo/conformance.h"

/* How one input of a case is laid out in memory. The op sees a tensor of
 * the case's shape; the leaf behind it may be larger or ordered otherwise. */
typedef enum conf_layout {
    CONF_CONTIG = 0,  /* a plain contiguous leaf */
    CONF_TRANSPOSED,  /* leaf (ne1, ne0, ...) transposed: element stride != element size */
    CONF_PERMUTED,    /* leaf (ne0, ne2, ne1, ...) with dims 1 and 2 swapped: rows not contiguous */
    CONF_SLICED,      /* the second half of each row of a leaf twice as wide (3-D at most) */
} conf_layout;

/* How an input is filled. */
typedef enum conf_fill {
    CONF_FILL_UNIFORM, /* uniform in [-amplitude, amplitude] */
    CONF_FILL_IDS,     /* I32 uniform in [0, amplitude) (row ids) */
    CONF_FILL_POS,     /* I32 uniform in [0, amplitude) (RoPE positions) */
    CONF_FILL_DISTINCT,/* I32 distinct values in [0, amplitude) (SET_ROWS ids; n <= amplitude) */
    CONF_FILL_PAGED,   /* I32 (W, T) PAGED_ATTENTION index: row t = n_t in [1, W - 1], then n_t
                          distinct pool rows in [0, amplitude) (W - 1 <= amplitude), then zeros */
    CONF_FILL_MASK,    /* F32 uniform in [-1, 1], about 1 in 8 set to -inf; column 0 never */
    CONF_FILL_SPECIAL, /* as UNIFORM, with 1 in 7 a value data movement must keep bit for bit:
                          -0, a subnormal of the type, its largest finite magnitude */
} conf_fill;

/* Input bits of conf_shape.flags (what layout each input has, and extras). */
enum {
    CONF_A_TRANSPOSED = 1u << 0, /* first input (src0) */
    CONF_A_PERMUTED = 1u << 1,
    CONF_A_SLICED = 1u << 2,
    CONF_B_TRANSPOSED = 1u << 3, /* second input (src1) */
    CONF_B_PERMUTED = 1u << 4,
    CONF_B_SLICED = 1u << 5,
    CONF_MASK = 1u << 6,         /* SOFTMAX / ATTENTION: an explicit mask */
    CONF_CAUSAL = 1u << 7,       /* SOFTMAX / ATTENTION: causal, n_past = i[0] */
    CONF_DST_VIEW = 1u << 8,     /* CPY: the destination is a window of a larger tensor */
};

/* A shape of a case: the dims of up to two tensors (zeros read as 1) and
 * scalars; what each means is stated above each op's table in cases.c. */
typedef struct conf_shape {
    int64_t a[4];
    int64_t b[4];
    uint32_t flags;
    float f[2];
    int32_t i[2];
} conf_shape;

/* A type an op is tested with, and the limit that applies to it. */
typedef struct conf_dtype {
    dz_type type;      /* weights / K,V / CPY destination / the F32 of F32-only ops */
    dz_type src_type;  /* CPY source; otherwise = type */
    double limit;      /* DZ_CONFORMANCE_LIMIT_* */
} conf_dtype;

enum { CONF_MAX_INPUTS = 8 };

typedef struct conf_input {
    dz_tensor *leaf;
    conf_fill fill;
    float amplitude;
    bool is_destination; /* CPY's destination: written by the op, not checked unchanged */
} conf_input;

/* One build of a case's graph. */
typedef struct conf_graph {
    dz_ctx *ctx;
    conf_input inputs[CONF_MAX_INPUTS];
    int n_inputs;
    dz_tensor *node;   /* the op under test (placement decides native/fallback) */
    dz_tensor *result; /* what is read back and compared: node, or CPY's destination */
} conf_graph;

/* Builds the op's graph into g (inputs, node, result). Returns false when a
 * builder failed (the ctx holds the error). */
typedef bool (*conf_build_fn)(conf_graph *g, const conf_shape *s, const conf_dtype *t);

/* One op of the suite: its types, its shapes, its builder. */
typedef struct conf_op_table {
    dz_op op;
    const conf_dtype *dtypes;
    int n_dtypes;
    const conf_shape *shapes;
    int n_shapes;
    conf_build_fn build;
    /* Writes a short description of a shape ("K=64 N=17 M=5, x permuted"). */
    void (*describe)(const conf_shape *s, char *buf, size_t size);
} conf_op_table;

/* The suite: every op, in the order the matrix lists them. */
extern const conf_op_table conf_suite[];
extern const int conf_suite_size;

/* The dtype label of a case: "Q4_0", or "F32->F16" for CPY. */
void conf_dtype_label(dz_op op, const conf_dtype *t, char *buf, size_t size);

/* ---- report (report.c) ---- */

struct dz_conformance_report {
    dz_conformance_summary summary;
    dz_conformance_case *cases;
    int32_t n_cases, cap_cases;
    dz_conformance_cell *cells;
    int32_t n_cells, cap_cells;
};

dz_conformance_report *conf_report_create(void);
/* Appends a finished case and folds it into its cell. */
dz_status conf_report_add(dz_conformance_report *r, const dz_conformance_case *c);

/* ---- random numbers (splitmix64: tiny, and every seed is a good seed) ---- */

static inline uint64_t conf_rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* Uniform in [0, 1). */
static inline double conf_rng_unit(uint64_t *state) {
    return (double)(conf_rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

#endif /* DZ_CONFORMANCE_IMPL_H */
