/* dizuo — common definitions shared by every layer: status codes, the
 * thread-local error message, logging and overflow-checked arithmetic. */
#ifndef DIZUO_COMMON_H
#define DIZUO_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define DZ_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define DZ_PRINTF(f, a)
#endif

/* Every fallible function returns a dz_status; 0 is success. On failure a
 * message a person can act on is left in the calling thread's error buffer
 * (dz_last_error) and nothing the caller can see has changed. */
typedef enum dz_status {
    DZ_OK = 0,
    DZ_ERR_ARG,         /* the caller passed an invalid argument */
    DZ_ERR_FORMAT,      /* malformed input: file, network data, user text */
    DZ_ERR_UNSUPPORTED, /* well-formed but not implemented (type, op, arch) */
    DZ_ERR_NOMEM,       /* an allocation failed */
    DZ_ERR_IO,          /* open/read/write/mmap failed */
    DZ_ERR_DEVICE,      /* a backend reported a failure */
    DZ_ERR_INTERNAL,    /* a broken invariant: a bug in dizuo */
    DZ_ERR_BUSY,        /* overloaded or shutting down: try again later */
} dz_status;

/* Short name of a status ("format error", ...). Static storage. */
const char *dz_status_str(dz_status s);

/* Message of the last failure in this thread; "" when none. The pointer stays
 * valid until the next dz_fail / dz_error_prefix / dz_clear_error in this
 * thread. Thread-safe (the buffer is thread-local). */
const char *dz_last_error(void);

/* Records a failure message (printf-style) and returns s, so library code can
 * write `return dz_fail(DZ_ERR_FORMAT, "tensor '%s': ...", name);`. */
dz_status dz_fail(dz_status s, const char *fmt, ...) DZ_PRINTF(2, 3);

/* Prepends context to the current message ("model.gguf: " + message) and
 * returns s unchanged. */
dz_status dz_error_prefix(dz_status s, const char *fmt, ...) DZ_PRINTF(2, 3);

void dz_clear_error(void);

/* Logging to stderr. Levels: 0 error, 1 warning, 2 info, 3 debug.
 * Messages above the current level are dropped. Default level: 1. */
enum { DZ_LOG_ERROR = 0, DZ_LOG_WARN = 1, DZ_LOG_INFO = 2, DZ_LOG_DEBUG = 3 };
void dz_log_set_level(int level);
int dz_log_get_level(void);
void dz_log(int level, const char *fmt, ...) DZ_PRINTF(2, 3);

/* Overflow-checked size arithmetic: return true on overflow. */
static inline bool dz_add_overflows(size_t a, size_t b, size_t *out) {
    return __builtin_add_overflow(a, b, out);
}
static inline bool dz_mul_overflows(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out);
}

/* Monotonic wall clock in seconds. */
double dz_time_now(void);

#ifdef __cplusplus
}
#endif
#endif /* DIZUO_COMMON_H */
