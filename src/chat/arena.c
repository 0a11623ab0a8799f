/* The arena every parse and render allocates from (freed at once, with a
 * byte limit so untrusted templates cannot allocate without bound), and the
 * growable output buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat_impl.h"

enum { DZC_BLOCK_SIZE = 64 * 1024 };

struct dzc_block {
    dzc_block *next;
    size_t used, cap;
    max_align_t data[];
};

void *dzc_alloc(dzc_arena *a, size_t n) {
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n) return NULL;
    if (a->limit && (need > a->limit || a->used > a->limit - need)) return NULL;
    dzc_block *b = a->head;
    if (!b || b->cap - b->used < need) {
        size_t cap = need > DZC_BLOCK_SIZE / 2 ? need : DZC_BLOCK_SIZE;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        /* A big allocation gets its own block behind the current one, so the
         * current block's free space stays usable. */
        if (need > DZC_BLOCK_SIZE / 2 && a->head) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    char *p = (char *)b->data + b->used;
    b->used += need;
    a->used += need;
    memset(p, 0, n);
    return p;
}

void *dzc_grow(dzc_arena *a, void *old, size_t old_bytes, size_t new_bytes) {
    void *p = dzc_alloc(a, new_bytes);
    if (p && old_bytes) memcpy(p, old, old_bytes < new_bytes ? old_bytes : new_bytes);
    return p;
}

char *dzc_strndup(dzc_arena *a, const char *s, size_t n) {
    if (n == SIZE_MAX) return NULL;
    char *p = dzc_alloc(a, n + 1);
    if (p && n) memcpy(p, s, n);
    return p;
}

void dzc_arena_free(dzc_arena *a) {
    dzc_block *b = a->head;
    while (b) {
        dzc_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used = 0;
}

void dzc_buf_put(dzc_buf *b, const char *s, size_t n) {
    if (b->over || n == 0) return;
    if (n > b->limit || b->n > b->limit - n) {
        b->over = true;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->over = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void dzc_buf_puts(dzc_buf *b, const char *s) { dzc_buf_put(b, s, strlen(s)); }

void dzc_buf_printf(dzc_buf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) dzc_buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

void dzc_buf_free(dzc_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}
