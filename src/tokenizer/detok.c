/* Token ids back to text: each token's piece (computed once at load, as
 * llama.cpp caches them), whole-sequence decoding, and the streaming
 * detokenizer that never emits half a UTF-8 character. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_impl.h"

/* ---- pieces ---- */

/* Writes token id's piece to out (NULL: only measure); returns its length.
 * SPM: "▁" is a space, byte tokens their byte. BPE: each character maps back
 * to its byte; a character outside the byte map gives llama.cpp's
 * "[UNK_BYTE_0x<hex><token text>]". Control/unknown/user-defined tokens give
 * their text; unused and undefined ones nothing. */
static size_t make_piece(const dz_tokenizer *t, int32_t id, char *out) {
    size_t len, n = 0;
    const char *text = tok_text(t, id, &len);
    uint8_t attr = t->attr[id];
    if (attr & (TOK_ATTR_SPECIAL | TOK_ATTR_USER_DEFINED)) {
        if (out) memcpy(out, text, len);
        return len;
    }
    if (t->kind == TOK_SPM) {
        if (attr & TOK_ATTR_NORMAL) {
            for (size_t i = 0; i < len; i++) {
                if (i + 2 < len && memcmp(text + i, "\xE2\x96\x81", 3) == 0) {
                    if (out) out[n] = ' ';
                    n++;
                    i += 2;
                } else {
                    if (out) out[n] = text[i];
                    n++;
                }
            }
            return n;
        }
        if (attr & TOK_ATTR_BYTE) { /* validated at load: "<0xHH>" */
            if (out) out[0] = (char)(tok_hex_value(text[3]) << 4 | tok_hex_value(text[4]));
            return 1;
        }
        return 0;
    }
    if (!(attr & TOK_ATTR_NORMAL)) return 0;
    const uint8_t *s = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = tok_utf8_decode(s + i, len - i, &cp);
        if (k == 0) cp = 0xFFFD, k = 1;
        i += k;
        int b = tok_cp_byte(cp);
        if (b >= 0) {
            if (out) out[n] = (char)b;
            n++;
            continue;
        }
        char ch[4];
        size_t chn = tok_utf8_encode(cp, ch);
        char unk[32];
        int m = snprintf(unk, sizeof unk, "[UNK_BYTE_0x");
        for (size_t j = 0; j < chn; j++) m += snprintf(unk + m, sizeof unk - (size_t)m, "%02x", (uint8_t)ch[j]);
        if (out) {
            memcpy(out + n, unk, (size_t)m);
            memcpy(out + n + m, text, len);
            out[n + (size_t)m + len] = ']';
        }
        n += (size_t)m + len + 1;
    }
    return n;
}

dz_status tok_pieces_build(dz_tokenizer *t) {
    size_t total = 0, text_total = t->text_off[t->n_vocab];
    /* "[UNK_BYTE_..." repeats a token's text per odd character: cap what a
     * hostile vocabulary can make the cache grow to. */
    size_t limit = text_total > SIZE_MAX / 8 ? SIZE_MAX : 4 * text_total + (64u << 20);
    t->piece_off = malloc(((size_t)t->n_vocab + 1) * sizeof *t->piece_off);
    if (!t->piece_off) return dz_fail(DZ_ERR_NOMEM, "out of memory for the token pieces");
    for (int32_t id = 0; id < t->n_vocab; id++) {
        t->piece_off[id] = total;
        size_t n = make_piece(t, id, NULL);
        if (n > limit - total) {
            size_t len;
            const char *text = tok_text(t, id, &len);
            return dz_fail(DZ_ERR_FORMAT, "token %d '%.*s' does not decode as byte-level BPE text", id,
                           (int)(len > 64 ? 64 : len), text);
        }
        total += n;
    }
    t->piece_off[t->n_vocab] = total;
    t->piece = malloc(total ? total : 1);
    if (!t->piece) return dz_fail(DZ_ERR_NOMEM, "out of memory for the token pieces");
    for (int32_t id = 0; id < t->n_vocab; id++) make_piece(t, id, t->piece + t->piece_off[id]);
    return DZ_OK;
}

/* The piece of a valid id as output shows it. */
static const char *piece_of(const dz_tokenizer *t, int32_t id, bool render_special, size_t *len) {
    if (!render_special && (t->attr[id] & TOK_ATTR_SPECIAL)) {
        *len = 0;
        return "";
    }
    *len = t->piece_off[id + 1] - t->piece_off[id];
    return t->piece + t->piece_off[id];
}

dz_status dz_token_to_piece(const dz_tokenizer *t, int32_t id, bool render_special, char *buf,
                            size_t cap, size_t *n) {
    if (!t || !n || (cap > 0 && !buf)) return dz_fail(DZ_ERR_ARG, "dz_token_to_piece: NULL argument");
    if (id < 0 || id >= t->n_vocab)
        return dz_fail(DZ_ERR_ARG, "token id %d is outside the vocabulary (%d tokens)", id, t->n_vocab);
    size_t len;
    const char *piece = piece_of(t, id, render_special, &len);
    if (cap > 0) memcpy(buf, piece, len < cap ? len : cap);
    *n = len;
    return DZ_OK;
}

dz_status dz_detokenize(const dz_tokenizer *t, const int32_t *ids, size_t n_ids, bool render_special,
                        char **text, size_t *len) {
    if (!t || (!ids && n_ids) || !text || !len) return dz_fail(DZ_ERR_ARG, "dz_detokenize: NULL argument");
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return dz_fail(DZ_ERR_ARG, "token %zu: id %d is outside the vocabulary (%d tokens)", i,
                           ids[i], t->n_vocab);
        size_t n;
        piece_of(t, ids[i], render_special, &n);
        if (dz_add_overflows(total, n, &total) || total == SIZE_MAX)
            return dz_fail(DZ_ERR_ARG, "dz_detokenize: %zu tokens make too much text", n_ids);
    }
    char *out = malloc(total + 1);
    if (!out) return dz_fail(DZ_ERR_NOMEM, "out of memory for %zu bytes of text", total);
    size_t o = 0;
    for (size_t i = 0; i < n_ids; i++) {
        size_t n;
        const char *piece = piece_of(t, ids[i], render_special, &n);
        /* The space SentencePiece put in front of the text goes again. */
        if (i == 0 && t->add_space_prefix && n > 0 && piece[0] == ' ') piece++, n--;
        memcpy(out + o, piece, n);
        o += n;
    }
    out[o] = '\0';
    *text = out;
    *len = o;
    return DZ_OK;
}

/* ---- streaming ---- */

struct dz_detok {
    const dz_tokenizer *t;
    bool render_special;
    char held[4]; /* an incomplete UTF-8 sequence waiting for its last bytes */
    size_t n_held;
    char *out;
    size_t cap;
};

dz_status dz_detok_create(const dz_tokenizer *t, bool render_special, dz_detok **out) {
    if (!t || !out) return dz_fail(DZ_ERR_ARG, "dz_detok_create: NULL argument");
    dz_detok *d = calloc(1, sizeof *d);
    if (!d) return dz_fail(DZ_ERR_NOMEM, "out of memory for a detokenizer");
    d->t = t;
    d->render_special = render_special;
    *out = d;
    return DZ_OK;
}

void dz_detok_free(dz_detok *d) {
    if (!d) return;
    free(d->out);
    free(d);
}

/* Length of buf's prefix that ends on a character boundary: all of it unless
 * it ends in a lead byte followed by fewer continuation bytes than the lead
 * announces. Invalid bytes are not held (they would never complete). */
static size_t complete_prefix(const char *buf, size_t n) {
    size_t i = n, k = 0;
    while (k < 3 && i > 0 && ((uint8_t)buf[i - 1] & 0xC0) == 0x80) i--, k++;
    if (i == 0) return n;
    uint8_t lead = (uint8_t)buf[i - 1];
    size_t need = lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3
                : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0;
    return need > k + 1 ? i - 1 : n;
}

static dz_status reserve(dz_detok *d, size_t n) {
    if (n <= d->cap) return DZ_OK;
    size_t cap = d->cap ? d->cap : 64;
    while (cap < n) cap *= 2;
    char *out = realloc(d->out, cap);
    if (!out) return dz_fail(DZ_ERR_NOMEM, "out of memory detokenizing");
    d->out = out;
    d->cap = cap;
    return DZ_OK;
}

dz_status dz_detok_push(dz_detok *d, int32_t id, const char **text, size_t *n) {
    if (!d || !text || !n) return dz_fail(DZ_ERR_ARG, "dz_detok_push: NULL argument");
    const dz_tokenizer *t = d->t;
    if (id < 0 || id >= t->n_vocab)
        return dz_fail(DZ_ERR_ARG, "token id %d is outside the vocabulary (%d tokens)", id, t->n_vocab);
    size_t len;
    const char *piece = piece_of(t, id, d->render_special, &len);
    dz_status st = reserve(d, d->n_held + len + 1);
    if (st) return st;
    memcpy(d->out, d->held, d->n_held);
    memcpy(d->out + d->n_held, piece, len);
    size_t total = d->n_held + len, cut = complete_prefix(d->out, total);
    d->n_held = total - cut;
    memcpy(d->held, d->out + cut, d->n_held);
    *text = d->out;
    *n = cut;
    return DZ_OK;
}

dz_status dz_detok_flush(dz_detok *d, const char **text, size_t *n) {
    if (!d || !text || !n) return dz_fail(DZ_ERR_ARG, "dz_detok_flush: NULL argument");
    dz_status st = reserve(d, d->n_held + 1);
    if (st) return st;
    memcpy(d->out, d->held, d->n_held);
    *text = d->out;
    *n = d->n_held;
    d->n_held = 0;
    return DZ_OK;
}
