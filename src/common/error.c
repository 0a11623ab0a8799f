/* Status strings, the thread-local error message, and logging. */
#include "dizuo/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { DZ_ERROR_CAP = 1024 };

static _Thread_local char error_message[DZ_ERROR_CAP];
static int log_level = DZ_LOG_WARN;

const char *dz_status_str(dz_status s) {
    switch (s) {
    case DZ_OK: return "ok";
    case DZ_ERR_ARG: return "invalid argument";
    case DZ_ERR_FORMAT: return "format error";
    case DZ_ERR_UNSUPPORTED: return "unsupported";
    case DZ_ERR_NOMEM: return "out of memory";
    case DZ_ERR_IO: return "I/O error";
    case DZ_ERR_DEVICE: return "device error";
    case DZ_ERR_INTERNAL: return "internal error";
    case DZ_ERR_BUSY: return "busy";
    }
    return "unknown status";
}

const char *dz_last_error(void) { return error_message; }

void dz_clear_error(void) { error_message[0] = '\0'; }

dz_status dz_fail(dz_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    return s;
}

dz_status dz_error_prefix(dz_status s, const char *fmt, ...) {
    char prefix[DZ_ERROR_CAP];
    char old[DZ_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, error_message, sizeof old);
    size_t n = strlen(prefix);
    memcpy(error_message, prefix, n + 1);
    size_t room = sizeof error_message - 1 - n;
    size_t m = strnlen(old, room);
    memcpy(error_message + n, old, m);
    error_message[n + m] = '\0';
    return s;
}

void dz_log_set_level(int level) { log_level = level; }
int dz_log_get_level(void) { return log_level; }

void dz_log(int level, const char *fmt, ...) {
    if (level > log_level) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

double dz_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
