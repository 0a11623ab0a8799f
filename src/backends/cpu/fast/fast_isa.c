/* Which fast kernels run: the processor's instruction sets (CPUID on
 * x86-64; NEON on aarch64), the DZ_CPU_ISA override, and the physical core
 * count that sets the default number of threads. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include "backends/cpu/fast/fast.h"

static const char *const isa_names[DZ_CPU_ISA_COUNT] = {"scalar", "sse2", "avx2", "avx512", "neon"};

const char *dz_cpu_isa_name(dz_cpu_isa isa) {
    return isa >= 0 && isa < DZ_CPU_ISA_COUNT ? isa_names[isa] : "?";
}

#if defined(__x86_64__)
#include <cpuid.h>
/* CPUID leaf 1, ECX bit 29 (clang 14's __builtin_cpu_supports has no "f16c"). */
static bool has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

dz_cpu_isa dz_cpu_isa_supported(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    /* __builtin_cpu_supports also checks that the OS saves the vector state. */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c())
        return DZ_CPU_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c())
        return DZ_CPU_ISA_AVX2;
    return DZ_CPU_ISA_SSE2;
#elif defined(__aarch64__)
    /* Advanced SIMD is part of the aarch64 baseline; the kernel says so. */
    return getauxval(AT_HWCAP) & HWCAP_ASIMD ? DZ_CPU_ISA_NEON : DZ_CPU_ISA_SCALAR;
#else
    return DZ_CPU_ISA_SCALAR;
#endif
}

bool dz_cpu_isa_runs(dz_cpu_isa isa) {
    const dz_cpu_isa best = dz_cpu_isa_supported();
    switch (isa) {
    case DZ_CPU_ISA_SCALAR: return true;
    case DZ_CPU_ISA_SSE2:
    case DZ_CPU_ISA_AVX2:
    case DZ_CPU_ISA_AVX512: return best >= DZ_CPU_ISA_SSE2 && best <= DZ_CPU_ISA_AVX512 && isa <= best;
    case DZ_CPU_ISA_NEON: return best == DZ_CPU_ISA_NEON;
    default: return false;
    }
}

dz_cpu_isa dz_cpu_isa_chosen(void) {
    const dz_cpu_isa best = dz_cpu_isa_supported();
    const char *env = getenv("DZ_CPU_ISA");
    if (!env || !env[0]) return best;
    for (int i = 0; i < DZ_CPU_ISA_COUNT; i++) {
        if (strcasecmp(env, isa_names[i]) != 0) continue;
        if (dz_cpu_isa_runs((dz_cpu_isa)i)) return (dz_cpu_isa)i;
        dz_log(DZ_LOG_WARN, "DZ_CPU_ISA=%s: this processor runs at most %s; using %s\n", env, isa_names[best],
               isa_names[best]);
        return best;
    }
    dz_log(DZ_LOG_WARN, "DZ_CPU_ISA=%s is not one of scalar, sse2, avx2, avx512, neon; using %s\n", env,
           isa_names[best]);
    return best;
}

const dz_fast_kernels *dz_fast_kernels_for(dz_cpu_isa isa) {
    if (!dz_cpu_isa_runs(isa)) isa = dz_cpu_isa_supported();
#if defined(__x86_64__)
    switch (isa) {
    case DZ_CPU_ISA_AVX512: return &dz_fast_kernels_avx512;
    case DZ_CPU_ISA_AVX2: return &dz_fast_kernels_avx2;
    case DZ_CPU_ISA_SSE2: return &dz_fast_kernels_sse2;
    default: return &dz_fast_kernels_scalar;
    }
#elif defined(__aarch64__)
    return isa == DZ_CPU_ISA_NEON ? &dz_fast_kernels_neon : &dz_fast_kernels_scalar;
#else
    return &dz_fast_kernels_scalar;
#endif
}

/* ---- physical cores ---- */

static long read_long(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    if (fscanf(f, "%ld", &v) != 1) v = -1;
    fclose(f);
    return v;
}

int dz_cpu_core_count(void) {
    enum { MAX_CPUS = 1024 };
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int fallback = online > 0 ? (int)(online < MAX_CPUS ? online : MAX_CPUS) : 1;
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return fallback;
    /* Distinct (package, core) pairs among the CPUs this process may use. */
    long seen[MAX_CPUS][2]; /* 16 KiB of stack */
    int n_cores = 0, n_cpus = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && cpu < MAX_CPUS; cpu++) {
        if (!CPU_ISSET(cpu, &set)) continue;
        n_cpus++;
        char path[128];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
        long core = read_long(path);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
        long package = read_long(path);
        if (core < 0) return n_cpus > 0 && CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : fallback;
        bool known = false;
        for (int i = 0; i < n_cores && !known; i++) known = seen[i][0] == package && seen[i][1] == core;
        if (!known) {
            seen[n_cores][0] = package;
            seen[n_cores][1] = core;
            n_cores++;
        }
    }
    return n_cores > 0 ? n_cores : fallback;
#else
    return fallback;
#endif
}
