/* UTF-8 decoding and encoding, input sanitizing, and GPT-2's byte-to-unicode
 * table (byte-level BPE writes every byte as a printable code point). */
#include <stdlib.h>

#include "tokenizer/tok_impl.h"

size_t tok_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t len;
    uint32_t c, min;
    if (b >= 0xC2 && b <= 0xDF) {
        len = 2, c = b & 0x1F, min = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3, c = b & 0x0F, min = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4, c = b & 0x07, min = 0x10000;
    } else {
        return 0; /* a continuation byte, C0/C1 (always overlong) or F5..FF */
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = c << 6 | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

size_t tok_utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

dz_status tok_utf8_sanitize(const char *text, size_t len, char **out, size_t *out_len) {
    /* Each bad byte grows to 3 (U+FFFD): 3 * len bounds the result. */
    if (len > (SIZE_MAX - 1) / 3) return dz_fail(DZ_ERR_ARG, "text of %zu bytes is too long", len);
    char *buf = malloc(3 * len + 1);
    if (!buf) return dz_fail(DZ_ERR_NOMEM, "out of memory for %zu bytes of text", len);
    const uint8_t *s = (const uint8_t *)text;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = tok_utf8_decode(s + i, len - i, &cp);
        if (n == 0) {
            /* One replacement per byte, as llama.cpp's decoder advances. */
            o += tok_utf8_encode(0xFFFD, buf + o);
            i++;
        } else {
            for (size_t k = 0; k < n; k++) buf[o++] = (char)s[i + k];
            i += n;
        }
    }
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return DZ_OK;
}

/* Printable Latin-1 bytes stand for themselves; the other 68 bytes, in byte
 * order, for U+0100..U+0143: 0x00..0x20 (33 bytes), 0x7F..0xA0 (34), 0xAD. */
#define BYTE_CP(b)                                                                                 \
    ((b) <= 0x20   ? 0x100 + (b)                                                                   \
     : (b) <= 0x7E ? (b)                                                                           \
     : (b) <= 0xA0 ? 0x100 + 33 + ((b) - 0x7F)                                                     \
     : (b) <= 0xAC ? (b)                                                                           \
     : (b) == 0xAD ? 0x100 + 67                                                                    \
                   : (b))
#define E4(b) BYTE_CP(b), BYTE_CP(b + 1), BYTE_CP(b + 2), BYTE_CP(b + 3)
#define E16(b) E4(b), E4(b + 4), E4(b + 8), E4(b + 12)

const uint16_t tok_byte_cp[256] = {
    E16(0x00), E16(0x10), E16(0x20), E16(0x30), E16(0x40), E16(0x50), E16(0x60), E16(0x70),
    E16(0x80), E16(0x90), E16(0xA0), E16(0xB0), E16(0xC0), E16(0xD0), E16(0xE0), E16(0xF0),
};

int tok_cp_byte(uint32_t cp) {
    if (cp < 0x100) return (cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || cp >= 0xAE
                               ? (int)cp
                               : -1;
    if (cp >= 0x100 + 68) return -1;
    int n = (int)(cp - 0x100); /* the n-th byte that does not stand for itself */
    if (n <= 32) return n;
    if (n <= 66) return 0x7F + (n - 33);
    return 0xAD;
}
