/* Training data: a token stream read from UTF-8 text files (tokenized) or
 * llm.c token shards, and the rows drawn from it (in order or shuffled). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/train_impl.h"

enum { SHARD_MAGIC = 20240520, SHARD_HEADER_INTS = 256, MAX_TEXT = 256 << 20 };

struct dz_train_data {
    int32_t *tokens;
    int64_t n;
    int32_t *perm;       /* the shuffled window order of epoch perm_epoch */
    int64_t perm_n, perm_epoch;
    int32_t perm_T;
};

int64_t dz_train_data_n_tokens(const dz_train_data *d) { return d->n; }

uint64_t dz_train_data_hash(const dz_train_data *d) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int64_t i = 0; i < d->n; i++) {
        uint32_t t = (uint32_t)d->tokens[i];
        for (int k = 0; k < 4; k++) {
            h ^= (t >> (8 * k)) & 0xffu;
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

void dz_train_data_free(dz_train_data *d) {
    if (!d) return;
    free(d->tokens);
    free(d->perm);
    free(d);
}

/* Offset of the first byte that is not valid UTF-8 (overlong forms,
 * surrogates and code points above U+10FFFF included), or n. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
        else return i;
        if (n - i < len) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return i;
        i += len;
    }
    return n;
}

/* Reads a whole file (at most max bytes) into a malloc'd buffer. */
static dz_status read_file(const char *path, size_t max, unsigned char **out, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return dz_fail(DZ_ERR_IO, "%s: cannot open the file", path);
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    dz_status st = DZ_OK;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 16;
            unsigned char *nb = realloc(buf, ncap);
            if (!nb) {
                st = dz_fail(DZ_ERR_NOMEM, "%s: out of memory reading the file", path);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > max) {
            st = dz_fail(DZ_ERR_ARG, "%s: larger than %zu MiB; split it into several files", path, max >> 20);
            break;
        }
        if (got == 0) {
            if (ferror(f)) st = dz_fail(DZ_ERR_IO, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (st) {
        free(buf);
        return st;
    }
    *out = buf;
    *size = n;
    return DZ_OK;
}

/* Appends tokens to the growing stream d. */
static dz_status append(dz_train_data *d, int64_t *cap, const int32_t *tokens, int64_t n) {
    if (d->n + n > *cap) {
        int64_t ncap = *cap ? *cap : 1024;
        while (ncap < d->n + n) ncap *= 2;
        int32_t *nt = realloc(d->tokens, (size_t)ncap * sizeof *nt);
        if (!nt) return dz_fail(DZ_ERR_NOMEM, "out of memory for %lld tokens", (long long)ncap);
        d->tokens = nt;
        *cap = ncap;
    }
    memcpy(d->tokens + d->n, tokens, (size_t)n * sizeof *tokens);
    d->n += n;
    return DZ_OK;
}

static dz_status load_shard(dz_train_data *d, int64_t *cap, const char *path, const unsigned char *buf, size_t size,
                            int32_t n_vocab) {
    if (size < SHARD_HEADER_INTS * 4) return dz_fail(DZ_ERR_FORMAT, "%s: token shard header truncated", path);
    int32_t header[3];
    memcpy(header, buf, sizeof header);
    if (header[1] != 1)
        return dz_fail(DZ_ERR_FORMAT, "%s: token shard version %d (dizuo reads version 1: uint16 tokens)", path, header[1]);
    size_t count = (uint32_t)header[2];
    if (header[2] < 0 || (size - SHARD_HEADER_INTS * 4) / 2 != count || (size - SHARD_HEADER_INTS * 4) % 2)
        return dz_fail(DZ_ERR_FORMAT, "%s: the header promises %d tokens but the file holds %zu bytes after it",
                       path, header[2], size - SHARD_HEADER_INTS * 4);
    int32_t *tokens = malloc((count ? count : 1) * sizeof *tokens);
    if (!tokens) return dz_fail(DZ_ERR_NOMEM, "%s: out of memory for %zu tokens", path, count);
    for (size_t i = 0; i < count; i++) {
        uint16_t t;
        memcpy(&t, buf + SHARD_HEADER_INTS * 4 + 2 * i, 2);
        if (t >= n_vocab) {
            free(tokens);
            return dz_fail(DZ_ERR_FORMAT, "%s: token %u at index %zu is outside the vocabulary of %d", path, t, i,
                           n_vocab);
        }
        tokens[i] = t;
    }
    dz_status st = append(d, cap, tokens, (int64_t)count);
    free(tokens);
    return st;
}

/* One document: its tokens (BOS first when the vocabulary adds one), then
 * EOS when eos >= 0. */
static dz_status load_doc(dz_train_data *d, int64_t *cap, const char *path, const char *text, size_t len,
                          const dz_tokenizer *tok, int32_t eos) {
    int32_t *ids = NULL;
    size_t n = 0;
    dz_status st = dz_tokenize(tok, text, len, dz_tokenizer_add_bos_default(tok), false, &ids, &n);
    if (st) return dz_error_prefix(st, "%s: ", path);
    st = append(d, cap, ids, (int64_t)n);
    free(ids);
    if (!st && eos >= 0) st = append(d, cap, &eos, 1);
    return st;
}

static dz_status load_text(dz_train_data *d, int64_t *cap, const char *path, const unsigned char *buf, size_t size,
                           const dz_tokenizer *tok, const char *doc_sep) {
    size_t bad = utf8_invalid_at(buf, size);
    if (bad < size)
        return dz_fail(DZ_ERR_FORMAT, "%s: not UTF-8 text: invalid byte 0x%02X at offset %zu", path, buf[bad], bad);
    if (size == 0) return DZ_OK; /* an empty file adds nothing (an empty stream is refused later) */
    if (!tok)
        return dz_fail(DZ_ERR_ARG, "%s: text needs a tokenizer (give --tokenizer, or a model that has one)", path);
    const char *text = (const char *)buf;
    if (!doc_sep || !*doc_sep) return load_doc(d, cap, path, text, size, tok, -1);
    const int32_t eos = dz_tokenizer_eos(tok);
    if (eos < 0)
        return dz_fail(DZ_ERR_ARG, "%s: documents end with the end-of-text token, and this vocabulary has none", path);
    /* UTF-8 is self-synchronising: pieces cut at a UTF-8 separator are UTF-8 */
    const size_t sep_len = strlen(doc_sep);
    dz_status st = DZ_OK;
    for (size_t at = 0; !st && at < size;) {
        const char *hit = memmem(text + at, size - at, doc_sep, sep_len);
        const size_t end = hit ? (size_t)(hit - text) : size;
        if (end > at) st = load_doc(d, cap, path, text + at, end - at, tok, eos); /* empty pieces: none */
        at = hit ? end + sep_len : size;
    }
    return st;
}

dz_status dz_train_data_load(const char *const *paths, int n_paths, const dz_tokenizer *tok, int32_t n_vocab,
                             const char *doc_sep, dz_train_data **out) {
    if (n_paths < 1) return dz_fail(DZ_ERR_ARG, "no data files");
    if (doc_sep && utf8_invalid_at((const unsigned char *)doc_sep, strlen(doc_sep)) < strlen(doc_sep))
        return dz_fail(DZ_ERR_ARG, "the document separator is not UTF-8");
    dz_train_data *d = calloc(1, sizeof *d);
    if (!d) return dz_fail(DZ_ERR_NOMEM, "out of memory for the data");
    int64_t cap = 0;
    dz_status st = DZ_OK;
    for (int i = 0; !st && i < n_paths; i++) {
        unsigned char *buf = NULL;
        size_t size = 0;
        st = read_file(paths[i], (size_t)MAX_TEXT * 4, &buf, &size);
        if (st) break;
        int32_t magic = 0;
        if (size >= 4) memcpy(&magic, buf, 4);
        if (magic == SHARD_MAGIC) st = load_shard(d, &cap, paths[i], buf, size, n_vocab);
        else if (size > MAX_TEXT) st = dz_fail(DZ_ERR_ARG, "%s: text over %d MiB; split it", paths[i], MAX_TEXT >> 20);
        else st = load_text(d, &cap, paths[i], buf, size, tok, doc_sep);
        free(buf);
    }
    if (!st && d->n == 0)
        st = dz_fail(DZ_ERR_ARG, "%s%s: no tokens", paths[0], n_paths > 1 ? " and the other data files" : "");
    if (st) {
        dz_train_data_free(d);
        return st;
    }
    *out = d;
    return DZ_OK;
}

dz_status dz_train_data_from_tokens(const int32_t *tokens, int64_t n, int32_t n_vocab, dz_train_data **out) {
    if (n < 1) return dz_fail(DZ_ERR_ARG, "no tokens");
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return dz_fail(DZ_ERR_ARG, "token %d at index %lld is outside the vocabulary of %d", tokens[i],
                           (long long)i, n_vocab);
    dz_train_data *d = calloc(1, sizeof *d);
    int64_t cap = 0;
    if (!d) return dz_fail(DZ_ERR_NOMEM, "out of memory for the data");
    dz_status st = append(d, &cap, tokens, n);
    if (st) {
        dz_train_data_free(d);
        return st;
    }
    *out = d;
    return DZ_OK;
}

/* The window order of an epoch: Fisher-Yates driven by splitmix64 seeded
 * with seed ^ (epoch * golden ratio). */
static bool ensure_perm(dz_train_data *d, int64_t n_win, int64_t epoch, int32_t T, uint64_t seed) {
    if (d->perm && d->perm_epoch == epoch && d->perm_T == T && d->perm_n == n_win) return true;
    int32_t *p = realloc(d->perm, (size_t)n_win * sizeof *p);
    if (!p) return false;
    d->perm = p;
    for (int64_t i = 0; i < n_win; i++) p[i] = (int32_t)i;
    uint64_t rng = seed ^ ((uint64_t)(epoch + 1) * 0x9E3779B97F4A7C15ull);
    for (int64_t i = n_win - 1; i > 0; i--) {
        int64_t j = (int64_t)(dz_train_rng_next(&rng) % (uint64_t)(i + 1));
        int32_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    d->perm_n = n_win;
    d->perm_epoch = epoch;
    d->perm_T = T;
    return true;
}

void dz_train_data_row(dz_train_data *d, int64_t r, int32_t T, bool shuffle, uint64_t seed, int32_t *inputs,
                       int32_t *targets) {
    int64_t start;
    if (shuffle) {
        int64_t n_win = d->n / T > 0 ? d->n / T : 1;
        if (n_win > INT32_MAX) n_win = INT32_MAX;
        if (ensure_perm(d, n_win, r / n_win, T, seed)) start = (int64_t)d->perm[r % n_win] * T;
        else start = (r % n_win) * T; /* out of memory: in order rather than fail mid-run */
    } else {
        start = ((r % d->n) * T) % d->n; /* (r T) mod n without overflow */
    }
    start %= d->n;
    for (int32_t t = 0; t < T; t++) {
        inputs[t] = d->tokens[(start + t) % d->n];
        targets[t] = d->tokens[(start + t + 1) % d->n];
    }
}
