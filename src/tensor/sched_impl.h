/* Internals of the scheduler shared by sched.c (placement, splits, running)
 * and sched_plan.c (memory planning). */
#ifndef DZ_SCHED_IMPL_H
#define DZ_SCHED_IMPL_H

#include "tensor/tensor_impl.h"

/* Time on the plan's clock: node i runs at step 2*i; the copies before a
 * split whose first node is i happen at 2*i - 1; inputs exist from STEP_START. */
#define DZ_STEP_START INT64_C(-2)
#define DZ_STEP_END INT64_MAX

/* One piece of memory to place: an unbound tensor (leaf, node result or a
 * copy made for another device) alive on device `dev` during [first, last]. */
typedef struct dz_plan_item {
    dz_tensor *tensor;
    int dev;
    int64_t first, last;
    size_t size;
    size_t offset; /* set by dz_plan_offsets */
} dz_plan_item;

/* Places items of each device in memory so that items alive at the same
 * time never overlap; reuses memory of items that are no longer alive.
 * Sets every item's offset and totals[dev] (bytes needed per device). */
dz_status dz_plan_offsets(dz_plan_item *items, int32_t n_items, int n_devices, size_t *totals);

/* Alignment of every placed tensor (bytes). */
#define DZ_PLAN_ALIGN ((size_t)256)

#endif
