/* Tiny test support: assertions that print file:line and both values, a
 * pass/fail count, access to ../shared reference data (skip with exit 77 when
 * absent, fail when DZ_REQUIRE_SHARED=1), and running the dizuo binary. */
#ifndef DZTEST_H
#define DZTEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/common.h"

extern int dzt_passed, dzt_failed;

#define DZT_CHECK(cond, ...)                                                                   \
    do {                                                                                       \
        if (cond) {                                                                            \
            dzt_passed++;                                                                      \
        } else {                                                                               \
            dzt_failed++;                                                                      \
            fprintf(stderr, "%s:%d: check failed: ", __FILE__, __LINE__);                      \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
        }                                                                                      \
    } while (0)

#define DZT_ASSERT(cond) DZT_CHECK((cond), "%s", #cond)
#define DZT_EQ_INT(a, b)                                                                       \
    do {                                                                                       \
        long long dzt_a_ = (long long)(a), dzt_b_ = (long long)(b);                           \
        DZT_CHECK(dzt_a_ == dzt_b_, "%s == %s: %lld != %lld", #a, #b, dzt_a_, dzt_b_);        \
    } while (0)
#define DZT_EQ_STR(a, b)                                                                       \
    do {                                                                                       \
        const char *dzt_a_ = (a), *dzt_b_ = (b);                                               \
        DZT_CHECK(dzt_a_ && dzt_b_ && strcmp(dzt_a_, dzt_b_) == 0, "%s == %s: \"%s\" != \"%s\"", \
                  #a, #b, dzt_a_ ? dzt_a_ : "(null)", dzt_b_ ? dzt_b_ : "(null)");            \
    } while (0)
#define DZT_NEAR(a, b, tol)                                                                    \
    do {                                                                                       \
        double dzt_a_ = (double)(a), dzt_b_ = (double)(b);                                     \
        DZT_CHECK(fabs(dzt_a_ - dzt_b_) <= (tol), "%s ~ %s: %.9g vs %.9g (tol %g)", #a, #b,    \
                  dzt_a_, dzt_b_, (double)(tol));                                              \
    } while (0)
/* A call that must succeed; prints the library's message otherwise. */
#define DZT_OK(call)                                                                           \
    do {                                                                                       \
        dz_status dzt_s_ = (call);                                                             \
        DZT_CHECK(dzt_s_ == DZ_OK, "%s: %s: %s", #call, dz_status_str(dzt_s_), dz_last_error()); \
    } while (0)
/* A call that must fail with the given status. */
#define DZT_FAILS(call, status)                                                                \
    do {                                                                                       \
        dz_status dzt_s_ = (call);                                                             \
        DZT_CHECK(dzt_s_ == (status), "%s: expected %s, got %s (%s)", #call,                  \
                  dz_status_str(status), dz_status_str(dzt_s_), dz_last_error());              \
    } while (0)

/* Prints "N passed, N failed" and returns the process exit code. */
int dzt_done(void);

/* Full path of a file under ../shared (static buffer per call, malloc'd copy).
 * Absent: prints one line "SKIP: <reason>" and exits 77, or exits 1 when
 * DZ_REQUIRE_SHARED=1 (CI must never skip). */
char *dzt_shared(const char *relative);

/* Reads a whole file; returns malloc'd bytes (NUL-terminated) or NULL. */
char *dzt_read_file(const char *path, size_t *size);

/* Path of the dizuo binary under test (env DZ_BIN). */
const char *dzt_bin(void);

/* Runs a shell command; captures stdout (malloc'd, NUL-terminated) and
 * returns the exit status (-1 if it could not run or was killed). */
int dzt_run(const char *cmd, char **out, size_t *out_len);

/* Runs argv[0] with argv (no shell), stdin from /dev/null; captures stdout
 * (malloc'd, NUL-terminated) and, when err is non-NULL, stderr. Returns the
 * exit status, or -1 if it could not run or was killed by a signal. */
int dzt_run_argv(char *const argv[], char **out, size_t *out_len, char **err);

/* A fresh temporary directory for the test (removed by the OS's tmp cleanup). */
const char *dzt_tmpdir(void);

#endif
