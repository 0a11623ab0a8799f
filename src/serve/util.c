/* Small helpers of the server: UTF-8 clean-up for JSON, ids, hashing. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "serve/serve_impl.h"

/* Length of the valid UTF-8 sequence at s[0..len), or 0 when invalid
 * (overlong forms, surrogates and code points above U+10FFFF are invalid,
 * as jansson has them). */
static size_t utf8_seq(const unsigned char *s, size_t len) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
    else return 0;
    if (len < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

char *dz_utf8_sanitize(const char *src, size_t len, size_t *out_len) {
    size_t cap = len * 3 + 1; /* each invalid byte may become 3 bytes */
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)src;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(s + i, len - i);
        if (n == 0 || (n == 1 && s[i] == 0)) { /* NUL too: jansson strings refuse it */
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

json_t *dz_json_text(const char *s, size_t len) {
    size_t n = 0;
    char *clean = dz_utf8_sanitize(s ? s : "", s ? len : 0, &n);
    if (!clean) return NULL;
    json_t *v = json_stringn_nocheck(clean, n);
    free(clean);
    return v;
}

/* Tenant names seen by this process, in order of first use: a tenant's
 * group is its index + 1, so no two tenants ever share one. */
static pthread_mutex_t tenants_mu = PTHREAD_MUTEX_INITIALIZER;
static char **tenants;
static size_t n_tenants, tenants_cap;

uint64_t dz_tenant_group(const char *name) {
    pthread_mutex_lock(&tenants_mu);
    size_t i = 0;
    while (i < n_tenants && strcmp(tenants[i], name) != 0) i++;
    if (i == n_tenants) {
        char *copy = strdup(name);
        if (n_tenants == tenants_cap) {
            size_t cap = tenants_cap ? 2 * tenants_cap : 16;
            char **grown = copy ? realloc(tenants, cap * sizeof *grown) : NULL;
            if (grown) tenants = grown, tenants_cap = cap;
        }
        if (!copy || n_tenants == tenants_cap) { /* out of memory: a group no cache entry can match */
            free(copy);
            pthread_mutex_unlock(&tenants_mu);
            return UINT64_MAX;
        }
        tenants[n_tenants++] = copy;
    }
    pthread_mutex_unlock(&tenants_mu);
    return (uint64_t)i + 1;
}

void dz_random_hex(char *out, size_t n_bytes) {
    unsigned char buf[64];
    if (n_bytes > sizeof buf) n_bytes = sizeof buf;
    if (getrandom(buf, n_bytes, 0) != (ssize_t)n_bytes) {
        /* ids need uniqueness, not secrecy: fall back to time and a counter */
        static atomic_ulong counter;
        unsigned long c = atomic_fetch_add(&counter, 1);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        for (size_t i = 0; i < n_bytes; i++)
            buf[i] = (unsigned char)(((unsigned long)ts.tv_nsec >> (i % 4 * 8)) ^ (c >> (i % 8 * 8)) ^ (i * 131u));
    }
    for (size_t i = 0; i < n_bytes; i++) snprintf(out + 2 * i, 3, "%02x", buf[i]);
    out[2 * n_bytes] = '\0';
}

int64_t dz_unix_now(void) { return (int64_t)time(NULL); }
