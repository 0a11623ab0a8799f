/* dizuo — CPU backend, internal interface.
 *
 * The CPU backend has two faces, registered as two backends:
 *   "cpu"     the fast path: SIMD kernels for the processor it runs on
 *             (chosen at run time), threads, one dispatch per graph;
 *   "cpu-ref" the scalar reference: plain C written for clarity, the oracle
 *             every test and the conformance harness compare against.
 * Both compute every op and type the reference supports, on host memory.
 *
 * The reference kernels are also callable one node at a time by other parts
 * of the core (dz_cpu_compute_node), and the fast ones likewise for tests
 * (dz_cpu_fast_compute_node). Every kernel reads and writes host memory:
 * node->data and each src's data must be plain host pointers. */
#ifndef DIZUO_BACKENDS_CPU_H
#define DIZUO_BACKENDS_CPU_H

#include "dizuo/backend.h"

/* The table of the reference backend, "cpu-ref" (dz_cpu_backend_iface() in
 * dizuo/backend.h is the fast "cpu"). */
const dz_backend_iface *dz_cpu_ref_backend_iface(void);

/* Can the reference backend compute this node (op, types, shapes, strides)?
 * VIEW and NONE nodes are "supported" (nothing to compute). The fast path
 * supports exactly the same nodes. Pure function, thread-safe. */
bool dz_cpu_supports_node(const dz_tensor *node);

/* Computes one supported node whose tensors (node and its srcs) are in host
 * memory with the reference kernels, splitting rows across up to n_threads
 * threads (n_threads < 1 means 1). VIEW/NONE nodes are a no-op. Returns
 * DZ_ERR_UNSUPPORTED for a node dz_cpu_supports_node refuses, DZ_ERR_NOMEM
 * when scratch memory or threads cannot be had. Thread-safe for distinct
 * output tensors. */
dz_status dz_cpu_compute_node(const dz_tensor *node, int n_threads);

/* ---- the fast path ---- */

/* Instruction-set levels of the fast kernels. Every level runs on any
 * processor that has its instructions:
 *   SCALAR  portable C (any architecture)
 *   SSE2    x86-64 baseline
 *   AVX2    AVX2 + FMA + F16C (x86-64-v3)
 *   AVX512  AVX-512 F/BW/VL + VNNI, with the AVX2 set
 *   NEON    aarch64 baseline (Advanced SIMD)
 * The x86-64 levels are in increasing order; the levels of one processor
 * are SCALAR and those up to its best (dz_cpu_isa_runs). */
typedef enum dz_cpu_isa {
    DZ_CPU_ISA_SCALAR = 0,
    DZ_CPU_ISA_SSE2,
    DZ_CPU_ISA_AVX2,
    DZ_CPU_ISA_AVX512,
    DZ_CPU_ISA_NEON,
    DZ_CPU_ISA_COUNT
} dz_cpu_isa;

/* The best level this processor and build can run (CPUID on x86-64, NEON on
 * aarch64, SCALAR elsewhere). */
dz_cpu_isa dz_cpu_isa_supported(void);
/* Whether this processor and build run level isa: SCALAR everywhere, on
 * x86-64 the x86-64 levels up to dz_cpu_isa_supported(), on aarch64 NEON. */
bool dz_cpu_isa_runs(dz_cpu_isa isa);
/* The level the "cpu" device uses: dz_cpu_isa_supported(), or the level
 * the environment variable DZ_CPU_ISA=scalar|sse2|avx2|avx512|neon names
 * when this processor runs it (else the best level, with a warning). Read
 * at each device open. */
dz_cpu_isa dz_cpu_isa_chosen(void);
/* "scalar", "sse2", "avx2", "avx512", "neon"; "?" out of range. */
const char *dz_cpu_isa_name(dz_cpu_isa isa);

/* As dz_cpu_compute_node, with the fast kernels of level isa (the best
 * level, dz_cpu_isa_supported(), where this processor does not run isa).
 * Results agree with the reference within the conformance limits of each
 * op and type. For tests and tools. */
dz_status dz_cpu_fast_compute_node(const dz_tensor *node, int n_threads, dz_cpu_isa isa);

/* Physical processor cores this process may run on (at least 1): the
 * default thread count of both CPU devices. */
int dz_cpu_core_count(void);

#endif /* DIZUO_BACKENDS_CPU_H */
