/* dizuo devices: every device of every registered backend (built-in and
 * plugins) with its memory and the op tiers its backend claims, then the
 * plugin files that were tried and why any was refused. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "dizuo/backend.h"

static const char *CMD = "devices";

static void usage(FILE *out) {
    fprintf(out,
            "usage: dizuo devices [--help]\n\n"
            "Lists every device dizuo can run on: the built-in backends (cpu, cpu-ref, and\n"
            "opencl / cuda when built with them) and the backend plugins found in the\n"
            "directories of $%s (':'-separated; default %s).\n"
            "For each device: its name (what --device takes), memory, the op tiers its\n"
            "backend claims natively (I inference, S serving, T training; `dizuo\n"
            "conformance --device NAME --tier ...` verifies a claim) and a description.\n"
            "Plugins that were refused are listed with the reason.\n\n"
            "exit status: 0, 1 when no device could be opened, 2 usage\n",
            DZ_PLUGIN_PATH_ENV, DZ_PLUGIN_DIR_DEFAULT);
}

static void format_bytes(uint64_t b, char *out, size_t cap) {
    if (!b) snprintf(out, cap, "?");
    else if (b >= (uint64_t)1 << 30) snprintf(out, cap, "%.1f GiB", (double)b / (double)(1u << 30));
    else snprintf(out, cap, "%.0f MiB", (double)b / (double)(1u << 20));
}

static void format_tiers(uint32_t tiers, char *out, size_t cap) {
    snprintf(out, cap, "%s%s%s%s", tiers & DZ_TIER_I ? "I" : "", tiers & DZ_TIER_S ? "S" : "",
             tiers & DZ_TIER_T ? "T" : "", tiers ? "" : "-");
}

int dz_cmd_devices(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return DZ_EXIT_OK;
        }
        fprintf(stderr, "dizuo %s: unknown argument '%s'\n", CMD, argv[i]);
        usage(stderr);
        return DZ_EXIT_USAGE;
    }
    printf("%-12s %-10s %-10s %-6s %s\n", "DEVICE", "MEMORY", "FREE", "TIERS", "DESCRIPTION");
    int opened = 0;
    for (int b = 0; b < dz_backend_count(); b++) {
        const dz_backend_iface *iface = dz_backend_at(b);
        int count = iface->device_count();
        for (int d = 0; d < count; d++) {
            dz_device *dev = NULL;
            if (dz_device_open_iface(iface, d, &dev)) {
                char name[DZ_MAX_NAME + 16];
                snprintf(name, sizeof name, "%s:%d", iface->name, d);
                printf("%-12s (cannot be opened: %s)\n", name, dz_last_error());
                continue;
            }
            const dz_device_props *p = dz_device_props_get(dev);
            char total[32], avail[32], tiers[8];
            format_bytes(p->memory_total, total, sizeof total);
            format_bytes(p->memory_free, avail, sizeof avail);
            format_tiers(p->tiers, tiers, sizeof tiers);
            printf("%-12s %-10s %-10s %-6s %s\n", p->name, total, avail, tiers, p->description);
            dz_device_close(dev);
            opened++;
        }
    }
    int n_plugins = dz_plugin_count();
    if (n_plugins) printf("\nplugins:\n");
    for (int i = 0; i < n_plugins; i++) {
        const dz_plugin_info *p = dz_plugin_at(i);
        if (!p || !p->path) continue;
        if (p->backend) printf("  %s: backend '%s'\n", p->path, p->backend);
        else printf("  %s: refused: %s\n", p->path, p->error ? p->error : "?");
    }
    if (!opened) {
        fprintf(stderr, "dizuo %s: no device could be opened\n", CMD);
        return DZ_EXIT_ERROR;
    }
    return DZ_EXIT_OK;
}
