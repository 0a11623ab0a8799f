/* Test-only backends: small dz_backend_iface tables that exercise the
 * scheduler and prove the conformance suite catches what it should. Both
 * compute with the CPU reference kernels (dz_cpu_compute_node), so any
 * difference from the reference is deliberate.
 *
 * "partial": a device with its own memory. Buffers are malloc'd, but the
 *   addresses it hands the core are tagged so that they fault if the core
 *   dereferences them (x86-64: non-canonical): the data is reachable only
 *   through buffer_read/write/copy/fill, as on an accelerator. No
 *   DZ_CAP_HOST_MEMORY. It supports ADD, MUL, SILU and MUL_MAT with F32
 *   weights (where the CPU reference does); everything else falls back.
 *
 * "wrong": a host-memory device that claims every op and computes each one
 *   with the reference, except one deliberately broken kernel chosen by the
 *   device index (DZT_WRONG_*). */
#ifndef DZ_TEST_BACKENDS_H
#define DZ_TEST_BACKENDS_H

#include "dizuo/backend.h"

const dz_backend_iface *dzt_partial_backend(void);

/* Does the partial device compute this (op, weight type) natively? */
bool dzt_partial_claims(dz_op op, dz_type type);

enum {
    DZT_WRONG_RMS_NORM = 0,    /* RMS_NORM ignores eps and scales by 1 + 1e-3 */
    DZT_WRONG_MUL_MAT = 1,     /* MUL_MAT drops the last element of K */
    DZT_WRONG_ADD_STRIDES = 2, /* ADD treats src0 as contiguous (wrong only for views) */
    DZT_WRONG_SCALE_TAIL = 3,  /* SCALE leaves the last element of its output unwritten */
    DZT_WRONG_SILU_INPUT = 4,  /* SILU is right but also overwrites its input */
    DZT_WRONG_COUNT
};

const dz_backend_iface *dzt_wrong_backend(void);

#endif
