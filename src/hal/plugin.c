/* Backend plugins: shared libraries that export DZ_BACKEND_ENTRY_SYMBOL.
 * Opening one checks it the way dz_backend_register checks a table; the
 * registry (registry.c) registers what opens. A plugin that is refused is
 * closed again and the reason kept for `dizuo devices`; nothing else is
 * affected. Loaded plugins stay loaded for the life of the process. */
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hal/hal_impl.h"

static const dz_host_api host_api = {
    .abi_version = DZ_BACKEND_ABI_VERSION,
    .struct_size = sizeof(dz_host_api),
    .fail = dz_fail,
    .log = dz_log,
};

dz_status dz_plugin_open(const char *path, const dz_backend_iface **iface, void **handle) {
    *iface = NULL;
    *handle = NULL;
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return dz_fail(DZ_ERR_IO, "cannot load it: %s", why ? why : "dlopen failed");
    }
    union { void *p; dz_backend_entry_fn fn; } entry = {.p = dlsym(h, DZ_BACKEND_ENTRY_SYMBOL)};
    if (!entry.p) {
        dlclose(h);
        return dz_fail(DZ_ERR_FORMAT, "it exports no '%s' function, so it is not a dizuo backend",
                       DZ_BACKEND_ENTRY_SYMBOL);
    }
    dz_clear_error();
    const dz_backend_iface *t = entry.fn(&host_api);
    /* From here on the library stays loaded, refused or not: its entry
     * function has run and may have started something that needs its code. */
    *handle = h;
    if (!t) {
        const char *why = dz_last_error();
        return dz_fail(DZ_ERR_UNSUPPORTED, "its entry function declined to load%s%s", why && why[0] ? ": " : "",
                       why && why[0] ? why : "");
    }
    dz_status st = dz_backend_iface_check(t);
    if (st) return st;
    *iface = t;
    return DZ_OK;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_plugin_name(const char *name) {
    size_t n = strlen(name);
    return name[0] != '.' && n > 3 && strcmp(name + n - 3, ".so") == 0;
}

dz_status dz_plugin_dir_list(const char *dir, char ***paths, int *count) {
    *paths = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return dz_fail(DZ_ERR_IO, "plugin directory %s cannot be read", dir);
    char **list = NULL;
    int n = 0, cap = 0;
    dz_status st = DZ_OK;
    for (struct dirent *e; !st && (e = readdir(d));) {
        if (!is_plugin_name(e->d_name)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            char **grown = realloc(list, (size_t)cap * sizeof *grown);
            if (!grown) {
                st = dz_fail(DZ_ERR_NOMEM, "out of memory listing %s", dir);
                break;
            }
            list = grown;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        if (!(list[n] = malloc(len))) {
            st = dz_fail(DZ_ERR_NOMEM, "out of memory listing %s", dir);
            break;
        }
        snprintf(list[n++], len, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (st) {
        dz_plugin_dir_free(list, n);
        return st;
    }
    if (n > 1) qsort(list, (size_t)n, sizeof *list, by_name);
    *paths = list;
    *count = n;
    return DZ_OK;
}

void dz_plugin_dir_free(char **paths, int count) {
    for (int i = 0; i < count; i++) free(paths[i]);
    free(paths);
}
