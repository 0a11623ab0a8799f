/* Memory planning for the scheduler: a greedy interval allocator. Items are
 * taken in order of birth; an item reuses the lowest gap left by items that
 * died before it was born, or extends the device's total. */
#include <stdlib.h>
#include <string.h>

#include "tensor/sched_impl.h"

typedef struct live {
    size_t offset, size;
    int64_t last;
} live;

static int by_offset(const void *a, const void *b) {
    const live *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Order of placement: by birth, then by index (stable). */
typedef struct order {
    int64_t first;
    int32_t index;
} order;

static int by_birth(const void *a, const void *b) {
    const order *x = a, *y = b;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

dz_status dz_plan_offsets(dz_plan_item *items, int32_t n_items, int n_devices, size_t *totals) {
    for (int d = 0; d < n_devices; d++) totals[d] = 0;
    if (n_items == 0) return DZ_OK;
    order *ord = malloc((size_t)n_items * sizeof *ord);
    live *active = malloc((size_t)n_items * sizeof *active);
    if (!ord || !active) {
        free(ord);
        free(active);
        return dz_fail(DZ_ERR_NOMEM, "out of memory planning %d tensors", n_items);
    }
    dz_status st = DZ_OK;
    for (int d = 0; d < n_devices && !st; d++) {
        int32_t n = 0, n_active = 0;
        for (int32_t i = 0; i < n_items; i++)
            if (items[i].dev == d) ord[n++] = (order){items[i].first, i};
        qsort(ord, (size_t)n, sizeof *ord, by_birth);
        size_t total = 0;
        for (int32_t k = 0; k < n; k++) {
            dz_plan_item *it = &items[ord[k].index];
            size_t size;
            if (dz_add_overflows(it->size, DZ_PLAN_ALIGN - 1, &size)) {
                st = dz_fail(DZ_ERR_NOMEM, "tensor '%s' of %zu bytes is too large", it->tensor->name, it->size);
                break;
            }
            size &= ~(DZ_PLAN_ALIGN - 1);
            /* Forget items that died before this one is born. */
            int32_t kept = 0;
            for (int32_t a = 0; a < n_active; a++)
                if (active[a].last >= it->first) active[kept++] = active[a];
            n_active = kept;
            qsort(active, (size_t)n_active, sizeof *active, by_offset);
            /* Lowest gap that fits. */
            size_t at = 0;
            for (int32_t a = 0; a < n_active; a++) {
                if (active[a].offset >= at && active[a].offset - at >= size) break;
                size_t end = active[a].offset + active[a].size;
                if (end > at) at = end;
            }
            size_t end;
            if (dz_add_overflows(at, size, &end)) {
                st = dz_fail(DZ_ERR_NOMEM, "planned memory overflows at tensor '%s'", it->tensor->name);
                break;
            }
            it->offset = at;
            active[n_active++] = (live){at, size, it->last};
            if (end > total) total = end;
        }
        totals[d] = total;
    }
    free(ord);
    free(active);
    return st;
}
