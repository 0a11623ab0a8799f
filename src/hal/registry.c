/* The backend registry and device handles: which backends exist, opening a
 * device by name, and its properties. The built-in CPU backends ("cpu", the
 * fast path, and "cpu-ref", the reference) register themselves the first
 * time anything asks the registry, then the backend plugins of the plugin
 * path (plugin.c opens them). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backends/cpu/cpu.h"
#include "hal/hal_impl.h"

enum { MAX_BACKENDS = 16 };

static const dz_backend_iface *backends[MAX_BACKENDS];
static int n_backends;
static pthread_once_t builtins_once = PTHREAD_ONCE_INIT;

dz_status dz_backend_iface_check(const dz_backend_iface *iface) {
    if (!iface) return dz_fail(DZ_ERR_ARG, "backend table is NULL");
    const char *name = iface->name && iface->name[0] ? iface->name : "(unnamed)";
    if (iface->abi_version < 1 || iface->abi_version > DZ_BACKEND_ABI_VERSION)
        return dz_fail(DZ_ERR_UNSUPPORTED,
                       "backend '%s' was built for ABI version %u; this core supports versions 1..%u",
                       name, iface->abi_version, DZ_BACKEND_ABI_VERSION);
    if (iface->struct_size < DZ_BACKEND_IFACE_V1_SIZE)
        return dz_fail(DZ_ERR_UNSUPPORTED,
                       "backend '%s' (ABI version %u) has a table of %u bytes; version 1 needs at least %zu",
                       name, iface->abi_version, iface->struct_size, (size_t)DZ_BACKEND_IFACE_V1_SIZE);
    if (!iface->name || !iface->name[0] || strlen(iface->name) >= DZ_MAX_NAME - 8 ||
        strchr(iface->name, ':'))
        return dz_fail(DZ_ERR_ARG, "backend name must be 1..%d characters without ':'", DZ_MAX_NAME - 9);
    struct { const char *what; bool present; } required[] = {
        {"device_count", iface->device_count != NULL}, {"open", iface->open != NULL},
        {"close", iface->close != NULL},               {"get_props", iface->get_props != NULL},
        {"buffer_alloc", iface->buffer_alloc != NULL}, {"buffer_free", iface->buffer_free != NULL},
        {"buffer_write", iface->buffer_write != NULL}, {"buffer_read", iface->buffer_read != NULL},
        {"buffer_copy", iface->buffer_copy != NULL},   {"buffer_fill", iface->buffer_fill != NULL},
        {"supports", iface->supports != NULL},         {"compute", iface->compute != NULL},
        {"synchronize", iface->synchronize != NULL},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!required[i].present)
            return dz_fail(DZ_ERR_ARG, "backend '%s': required function %s is NULL", name,
                           required[i].what);
    if ((iface->caps & DZ_CAP_THREADS) && !iface->set_threads)
        return dz_fail(DZ_ERR_ARG, "backend '%s' announces DZ_CAP_THREADS without set_threads", name);
    if ((iface->caps & DZ_CAP_HOST_MEMORY) && !iface->buffer_from_host)
        return dz_fail(DZ_ERR_ARG, "backend '%s' announces DZ_CAP_HOST_MEMORY without buffer_from_host",
                       name);
    return DZ_OK;
}

static dz_status register_checked(const dz_backend_iface *iface) {
    dz_status st = dz_backend_iface_check(iface);
    if (st) return st;
    for (int i = 0; i < n_backends; i++)
        if (strcmp(backends[i]->name, iface->name) == 0)
            return dz_fail(DZ_ERR_ARG, "a backend named '%s' is already registered", iface->name);
    if (n_backends == MAX_BACKENDS)
        return dz_fail(DZ_ERR_ARG, "cannot register backend '%s': the registry holds at most %d",
                       iface->name, MAX_BACKENDS);
    backends[n_backends++] = iface;
    return DZ_OK;
}

#ifdef DZ_HAVE_OPENCL
const dz_backend_iface *dz_opencl_backend_iface(void); /* src/backends/opencl */
#endif
#ifdef DZ_HAVE_CUDA
const dz_backend_iface *dz_cuda_backend_iface(void); /* src/backends/cuda */
#endif

static void register_builtins(void) {
    const dz_backend_iface *builtins[] = {
        dz_cpu_backend_iface(), dz_cpu_ref_backend_iface(),
#ifdef DZ_HAVE_OPENCL
        dz_opencl_backend_iface(),
#endif
#ifdef DZ_HAVE_CUDA
        dz_cuda_backend_iface(),
#endif
    };
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (register_checked(builtins[i]))
            dz_log(DZ_LOG_ERROR, "built-in backend '%s' refused: %s\n", builtins[i]->name, dz_last_error());
}

/* ---- plugins ---- */

enum { MAX_PLUGINS = 32 };
static dz_plugin_info plugins[MAX_PLUGINS];
static int n_plugins;

/* Registration from plugins happens under this lock, outside the
 * pthread_once of the built-ins: a plugin whose library constructor or entry
 * function calls back into the registry finds `loading` set on its thread
 * and gets the registry as it stands instead of a deadlock. */
static pthread_mutex_t plugin_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local bool loading;
static bool path_loaded;

/* Caller holds plugin_lock. Once a plugin's entry function has run, its
 * library stays loaded even if it is refused (dz_plugin_open's contract):
 * the entry may have started something that needs its code. */
static dz_status load_plugin(const char *path) {
    const dz_backend_iface *iface = NULL;
    void *handle = NULL;
    dz_status st = dz_plugin_open(path, &iface, &handle);
    if (!st) st = register_checked(iface);
    if (st) dz_error_prefix(st, "backend plugin %s: ", path);
    if (n_plugins < MAX_PLUGINS) {
        dz_plugin_info *p = &plugins[n_plugins];
        p->path = strdup(path);
        p->backend = st ? NULL : iface->name;
        p->error = st ? strdup(dz_last_error()) : NULL;
        if (p->path) n_plugins++; /* published once filled */
    }
    return st;
}

/* An absent directory holds no plugins (DZ_PLUGIN_PATH=/nonexistent is how
 * to load none); one that exists but cannot be listed is worth a warning
 * when DZ_PLUGIN_PATH names it (explicit). */
static void load_plugin_dir(const char *dir, bool explicit) {
    char **paths = NULL;
    int count = 0;
    if (dz_plugin_dir_list(dir, &paths, &count)) {
        struct stat info;
        if (explicit && stat(dir, &info) == 0)
            dz_log(DZ_LOG_WARN, "%s (named in %s); no plugin loaded from it\n", dz_last_error(), DZ_PLUGIN_PATH_ENV);
        return;
    }
    for (int i = 0; i < count; i++)
        if (load_plugin(paths[i])) dz_log(DZ_LOG_WARN, "%s (the other backends keep working)\n", dz_last_error());
    dz_plugin_dir_free(paths, count);
}

static void load_plugin_path(void) {
    const char *env = getenv(DZ_PLUGIN_PATH_ENV);
    if (!env || !env[0]) {
        load_plugin_dir(DZ_PLUGIN_DIR_DEFAULT, false);
        return;
    }
    char *copy = strdup(env);
    if (!copy) return;
    char *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save))
        if (dir[0]) load_plugin_dir(dir, true);
    free(copy);
}

static void ensure_builtins(void) {
    pthread_once(&builtins_once, register_builtins);
    if (loading) return; /* a plugin being loaded on this thread called back */
    pthread_mutex_lock(&plugin_lock);
    if (!path_loaded) {
        loading = true;
        load_plugin_path();
        dz_clear_error();
        path_loaded = true;
        loading = false;
    }
    pthread_mutex_unlock(&plugin_lock);
}

dz_status dz_plugin_load(const char *path) {
    ensure_builtins();
    if (!path || !path[0]) return dz_fail(DZ_ERR_ARG, "dz_plugin_load: no path given");
    if (loading) return dz_fail(DZ_ERR_ARG, "dz_plugin_load(%s): called while a plugin is being loaded", path);
    pthread_mutex_lock(&plugin_lock);
    loading = true;
    dz_status st = load_plugin(path);
    loading = false;
    pthread_mutex_unlock(&plugin_lock);
    return st;
}

int dz_plugin_count(void) {
    ensure_builtins();
    return n_plugins;
}

const dz_plugin_info *dz_plugin_at(int i) {
    ensure_builtins();
    return i >= 0 && i < n_plugins ? &plugins[i] : NULL;
}

dz_status dz_backend_register(const dz_backend_iface *iface) {
    ensure_builtins();
    return register_checked(iface);
}

int dz_backend_count(void) {
    ensure_builtins();
    return n_backends;
}

const dz_backend_iface *dz_backend_at(int i) {
    ensure_builtins();
    return i >= 0 && i < n_backends ? backends[i] : NULL;
}

const dz_backend_iface *dz_backend_find(const char *name) {
    ensure_builtins();
    for (int i = 0; name && i < n_backends; i++)
        if (strcmp(backends[i]->name, name) == 0) return backends[i];
    return NULL;
}

/* "cpu:0, opencl:0, opencl:1" into buf. */
static void list_devices(char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = '\0';
    for (int b = 0; b < n_backends; b++) {
        int count = backends[b]->device_count();
        for (int d = 0; d < count && used < cap; d++) {
            int n = snprintf(buf + used, cap - used, "%s%s:%d", used ? ", " : "", backends[b]->name, d);
            if (n < 0) break;
            used += (size_t)n;
        }
    }
    if (!buf[0]) snprintf(buf, cap, "(none)");
}

/* The backend and index a device name denotes: "cpu", "cpu:0",
 * "<backend>:<index>"; "<backend>" alone means index 0. DZ_ERR_ARG naming
 * the devices there are when it denotes none. */
static dz_status lookup(const char *name, const dz_backend_iface **iface_out, int *index_out) {
    char backend[DZ_MAX_NAME];
    long index = 0;
    const char *colon = strchr(name, ':');
    size_t len = colon ? (size_t)(colon - name) : strlen(name);
    bool well_formed = len > 0 && len < sizeof backend;
    if (well_formed && colon) {
        char *end = NULL;
        index = strtol(colon + 1, &end, 10);
        well_formed = colon[1] >= '0' && colon[1] <= '9' && *end == '\0' && index <= 1 << 20;
    }
    const dz_backend_iface *iface = NULL;
    if (well_formed) {
        memcpy(backend, name, len);
        backend[len] = '\0';
        iface = dz_backend_find(backend);
    }
    int count = iface ? iface->device_count() : 0;
    if (!iface || index >= count) {
        char avail[512];
        list_devices(avail, sizeof avail);
        if (iface && count == 0)
            return dz_fail(DZ_ERR_ARG, "unknown device '%s': backend '%s' finds no device on this machine; "
                                       "available devices: %s", name, iface->name, avail);
        return dz_fail(DZ_ERR_ARG, "unknown device '%s'; available devices: %s", name, avail);
    }
    *iface_out = iface;
    *index_out = (int)index;
    return DZ_OK;
}

dz_status dz_device_check_name(const char *name) {
    ensure_builtins();
    if (!name) return dz_fail(DZ_ERR_ARG, "dz_device_check_name: NULL name");
    const dz_backend_iface *iface = NULL;
    int index = 0;
    return lookup(name, &iface, &index);
}

dz_status dz_device_open(const char *name, dz_device **out) {
    ensure_builtins();
    if (!name || !out) return dz_fail(DZ_ERR_ARG, "dz_device_open: NULL argument");
    const dz_backend_iface *iface = NULL;
    int index = 0;
    dz_status st = lookup(name, &iface, &index);
    if (st) return st;
    return dz_device_open_iface(iface, index, out);
}

dz_status dz_device_open_iface(const dz_backend_iface *iface, int index, dz_device **out) {
    if (!out) return dz_fail(DZ_ERR_ARG, "dz_device_open_iface: NULL output");
    dz_status st = dz_backend_iface_check(iface);
    if (st) return st;
    int count = iface->device_count();
    if (index < 0 || index >= count)
        return dz_fail(DZ_ERR_ARG, "backend '%s' has %d device(s); index %d does not exist", iface->name,
                       count, index);
    dz_device *dev = calloc(1, sizeof *dev);
    if (!dev) return dz_fail(DZ_ERR_NOMEM, "out of memory opening device %s:%d", iface->name, index);
    dev->iface = iface;
    dev->index = index;
    st = iface->open(index, &dev->self);
    if (st) {
        free(dev);
        return dz_error_prefix(st, "opening device %s:%d: ", iface->name, index);
    }
    st = iface->get_props(dev->self, &dev->props);
    if (st) {
        iface->close(dev->self);
        free(dev);
        return dz_error_prefix(st, "device %s:%d properties: ", iface->name, index);
    }
    dev->props.name[sizeof dev->props.name - 1] = '\0';
    dev->props.description[sizeof dev->props.description - 1] = '\0';
    dev->props.caps = iface->caps; /* the table's bits are what the core relies on */
    if (!dev->props.name[0]) snprintf(dev->props.name, sizeof dev->props.name, "%s:%d", iface->name, index);
    *out = dev;
    return DZ_OK;
}

void dz_device_close(dz_device *dev) {
    if (!dev) return;
    dev->iface->close(dev->self);
    free(dev);
}

const dz_device_props *dz_device_props_get(const dz_device *dev) { return &dev->props; }
const dz_backend_iface *dz_device_iface(const dz_device *dev) { return dev->iface; }
void *dz_device_self(const dz_device *dev) { return dev->self; }

bool dz_device_supports(dz_device *dev, const dz_tensor *node) {
    return dev && node && dev->iface->supports(dev->self, node);
}

dz_status dz_device_set_threads(dz_device *dev, int n_threads) {
    if (!dev) return dz_fail(DZ_ERR_ARG, "dz_device_set_threads: NULL device");
    if (n_threads < 1) return dz_fail(DZ_ERR_ARG, "thread count %d must be at least 1", n_threads);
    if (!(dev->iface->caps & DZ_CAP_THREADS)) return DZ_OK;
    dz_status st = dev->iface->set_threads(dev->self, n_threads);
    if (st) return dz_error_prefix(st, "device %s: setting %d threads: ", dev->props.name, n_threads);
    dz_device_props props = {0};
    if (dev->iface->get_props(dev->self, &props) == DZ_OK) {
        props.caps = dev->iface->caps;
        props.name[sizeof props.name - 1] = '\0';
        props.description[sizeof props.description - 1] = '\0';
        if (!props.name[0]) memcpy(props.name, dev->props.name, sizeof props.name);
        dev->props = props;
    }
    return DZ_OK;
}
