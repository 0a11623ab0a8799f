/* dizuo — CPU reference backend, internal interface.
 *
 * The scalar reference kernels, callable one node at a time by other parts
 * of the core (the conformance harness uses them as the oracle). Every kernel
 * reads and writes host memory: node->data and each src's data must be plain
 * host pointers. */
#ifndef DIZUO_BACKENDS_CPU_H
#define DIZUO_BACKENDS_CPU_H

#include "dizuo/backend.h"

/* Can the reference backend compute this node (op, types, shapes, strides)?
 * VIEW and NONE nodes are "supported" (nothing to compute). Pure function,
 * thread-safe. */
bool dz_cpu_supports_node(const dz_tensor *node);

/* Computes one supported node whose tensors (node and its srcs) are in host
 * memory, splitting rows across up to n_threads threads (n_threads < 1 means
 * 1). VIEW/NONE nodes are a no-op. Returns DZ_ERR_UNSUPPORTED for a node
 * dz_cpu_supports_node refuses, DZ_ERR_NOMEM when scratch memory or threads
 * cannot be had. Thread-safe for distinct output tensors. */
dz_status dz_cpu_compute_node(const dz_tensor *node, int n_threads);

#endif /* DIZUO_BACKENDS_CPU_H */
