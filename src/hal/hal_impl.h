/* Internals of the hal layer shared by its files: the device handle and the
 * checks every backend table must pass. */
#ifndef DZ_HAL_IMPL_H
#define DZ_HAL_IMPL_H

#include <stddef.h>

#include "dizuo/backend.h"

struct dz_device {
    const dz_backend_iface *iface;
    void *self;             /* the backend's state from iface->open */
    int index;              /* device index within the backend */
    dz_device_props props;  /* refreshed on open and after set_threads */
};

/* Bytes of a version-1 table: every field up to and including buffer_from_host. */
#define DZ_BACKEND_IFACE_V1_SIZE \
    (offsetof(dz_backend_iface, buffer_from_host) + sizeof(((dz_backend_iface *)0)->buffer_from_host))

/* Does this table (built against some ABI version) contain `field`? Use before
 * calling any function appended after v1. */
#define DZ_IFACE_HAS(iface, field) \
    ((iface)->struct_size >= offsetof(dz_backend_iface, field) + sizeof((iface)->field))

/* Checks a vendor table: known ABI version, size at least v1's, every
 * required function present, capability bits backed by functions.
 * DZ_ERR_UNSUPPORTED for version/size, DZ_ERR_ARG for a malformed table. */
dz_status dz_backend_iface_check(const dz_backend_iface *iface);

/* plugin.c: opens the shared library at path, calls its entry function and
 * checks the table it returns; on success *iface and *handle (dlopen's) are
 * set. On failure the message says why; a library whose entry function ran
 * stays loaded (*handle set), one without an entry is closed again. */
dz_status dz_plugin_open(const char *path, const dz_backend_iface **iface, void **handle);
/* The "*.so" files of dir as "dir/name", sorted; free with dz_plugin_dir_free. */
dz_status dz_plugin_dir_list(const char *dir, char ***paths, int *count);
void dz_plugin_dir_free(char **paths, int count);

#endif
