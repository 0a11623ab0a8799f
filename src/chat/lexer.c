/* Template text -> tokens, with Jinja's whitespace rules as Hugging Face
 * renders chat templates: trim_blocks (the first newline after a block or
 * comment tag is dropped), lstrip_blocks (spaces and tabs from the start of a
 * line up to a block or comment tag are dropped), "-" and "+" modifiers on
 * tags, newlines normalized to \n and one trailing newline removed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat_impl.h"

typedef struct lexer {
    dzc_arena *a;
    const char *src;
    size_t n, pos;
    int line;
    dzc_token *toks;
    size_t n_toks, cap;
} lexer;

static dz_status lex_fail(lexer *lx, const char *what) {
    return dz_fail(DZ_ERR_FORMAT, "chat template line %d: %s", lx->line, what);
}

static dz_status emit(lexer *lx, dzc_tok_kind kind, const char *s, size_t len, dzc_token **out) {
    if (lx->n_toks == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 64;
        dzc_token *t = dzc_grow(lx->a, lx->toks, lx->n_toks * sizeof *t, cap * sizeof *t);
        if (!t) return dz_fail(DZ_ERR_NOMEM, "chat template: out of memory for tokens");
        lx->toks = t;
        lx->cap = cap;
    }
    dzc_token *t = &lx->toks[lx->n_toks++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->line = lx->line;
    t->s = s;
    t->len = len;
    if (out) *out = t;
    return DZ_OK;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static void count_lines(lexer *lx, size_t from, size_t to) {
    for (size_t i = from; i < to; i++) lx->line += lx->src[i] == '\n';
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A quoted string with Python escapes; lx->pos at the opening quote. */
static dz_status lex_string(lexer *lx) {
    char q = lx->src[lx->pos];
    size_t start = ++lx->pos, end = start;
    while (end < lx->n && lx->src[end] != q) end += lx->src[end] == '\\' ? 2 : 1;
    if (end >= lx->n) return lex_fail(lx, "unterminated string literal");
    char *o = dzc_alloc(lx->a, end - start + 1); /* decoding never grows */
    if (!o) return dz_fail(DZ_ERR_NOMEM, "chat template: out of memory");
    size_t k = 0;
    for (size_t i = start; i < end; i++) {
        char ch = lx->src[i];
        if (ch != '\\') { o[k++] = ch; continue; }
        char e = lx->src[++i];
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (digits) {
            uint32_t cp = 0;
            int got = 0;
            while (got < digits && i + 1 < end && hex_value(lx->src[i + 1]) >= 0)
                cp = cp * 16 + (uint32_t)hex_value(lx->src[++i]), got++;
            if (got != digits || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000))
                return lex_fail(lx, "bad \\x, \\u or \\U escape in a string literal");
            k += put_utf8(o + k, cp); /* at most 4 bytes for >= 4 source bytes */
            continue;
        }
        switch (e) {
        case 'n': o[k++] = '\n'; break;
        case 't': o[k++] = '\t'; break;
        case 'r': o[k++] = '\r'; break;
        case '0': o[k++] = '\0'; break;
        case 'a': o[k++] = '\a'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'v': o[k++] = '\v'; break;
        case '\\': case '\'': case '"': o[k++] = e; break;
        case '\n': break; /* line continuation */
        default: o[k++] = '\\'; o[k++] = e; break;
        }
    }
    count_lines(lx, start, end);
    lx->pos = end + 1;
    return emit(lx, TK_STRING, o, k, NULL);
}

static dz_status lex_number(lexer *lx) {
    size_t start = lx->pos, i = start;
    bool is_float = false;
    while (i < lx->n && (is_digit(lx->src[i]) || lx->src[i] == '_')) i++;
    if (i + 1 < lx->n && lx->src[i] == '.' && is_digit(lx->src[i + 1])) {
        is_float = true;
        for (i++; i < lx->n && (is_digit(lx->src[i]) || lx->src[i] == '_');) i++;
    }
    if (i < lx->n && (lx->src[i] == 'e' || lx->src[i] == 'E')) {
        size_t j = i + 1;
        if (j < lx->n && (lx->src[j] == '+' || lx->src[j] == '-')) j++;
        if (j < lx->n && is_digit(lx->src[j])) {
            is_float = true;
            for (i = j; i < lx->n && is_digit(lx->src[i]);) i++;
        }
    }
    char buf[64];
    size_t k = 0;
    for (size_t j = start; j < i; j++)
        if (lx->src[j] != '_') {
            if (k + 1 >= sizeof buf) return lex_fail(lx, "number literal too long");
            buf[k++] = lx->src[j];
        }
    buf[k] = '\0';
    lx->pos = i;
    dzc_token *t;
    dz_status s = emit(lx, is_float ? TK_FLOAT : TK_INT, NULL, 0, &t);
    if (s) return s;
    if (is_float) {
        t->f = strtod(buf, NULL);
    } else {
        int64_t v = 0;
        for (size_t j = 0; j < k; j++)
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, buf[j] - '0', &v))
                return lex_fail(lx, "integer literal out of range");
        t->i = v;
    }
    return DZ_OK;
}

static const char *const operators[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/",
                                        "%",  "~",  "<",  ">",  "(",  ")",  "[", "]", "{", "}",
                                        ".",  ",",  ":",  "|",  "=",  "!"};

/* Tokens of one {{ }} or {% %} tag up to its end; returns the modifier of
 * the closing tag ('-', '+' or 0) in *mod. */
static dz_status lex_tag(lexer *lx, bool is_block, char *mod) {
    char close = is_block ? '%' : '}';
    int depth = 0;
    for (;;) {
        while (lx->pos < lx->n && is_space(lx->src[lx->pos])) {
            lx->line += lx->src[lx->pos] == '\n';
            lx->pos++;
        }
        if (lx->pos >= lx->n) return lex_fail(lx, is_block ? "unclosed {% tag" : "unclosed {{ tag");
        const char *p = lx->src + lx->pos;
        size_t left = lx->n - lx->pos;
        if (depth == 0) {
            size_t m = (p[0] == '-' || p[0] == '+') ? 1 : 0;
            if (left >= m + 2 && p[m] == close && p[m + 1] == '}') {
                *mod = m ? p[0] : 0;
                lx->pos += m + 2;
                return emit(lx, is_block ? TK_BLOCK_END : TK_VAR_END, NULL, 0, NULL);
            }
        }
        char ch = p[0];
        dz_status s;
        if (ch == '\'' || ch == '"') {
            s = lex_string(lx);
        } else if (is_digit(ch)) {
            s = lex_number(lx);
        } else if (is_name_start(ch)) {
            size_t i = 1;
            while (i < left && (is_name_start(p[i]) || is_digit(p[i]))) i++;
            lx->pos += i;
            s = emit(lx, TK_NAME, p, i, NULL);
        } else {
            size_t len = 0;
            for (size_t k = 0; k < sizeof operators / sizeof *operators; k++) {
                size_t ol = strlen(operators[k]);
                if (ol <= left && memcmp(p, operators[k], ol) == 0) {
                    len = ol;
                    break;
                }
            }
            if (!len) {
                char msg[64];
                snprintf(msg, sizeof msg, "unexpected character '%c' in a tag",
                         (unsigned char)ch >= 0x20 && (unsigned char)ch < 0x7F ? ch : '?');
                return lex_fail(lx, msg);
            }
            if (ch == '(' || ch == '[' || ch == '{') {
                if (++depth > DZC_MAX_NESTING) return lex_fail(lx, "brackets nested too deeply");
            } else if ((ch == ')' || ch == ']' || ch == '}') && depth > 0) {
                depth--;
            }
            lx->pos += len;
            s = emit(lx, TK_OP, p, len, NULL);
        }
        if (s) return s;
    }
}

/* Text up to the next tag, with the stripping the tags on both sides ask for.
 * Returns the tag start (lx->n when none). */
static dz_status lex_text(lexer *lx, char after_mod, bool after_block, size_t *tag_at) {
    size_t start = lx->pos;
    if (after_mod == '-') {
        while (start < lx->n && is_space(lx->src[start])) start++;
    } else if (after_block && after_mod != '+' && start < lx->n && lx->src[start] == '\n') {
        start++;
    }
    count_lines(lx, lx->pos, start);
    size_t t = start;
    while (t + 1 < lx->n && !(lx->src[t] == '{' && (lx->src[t + 1] == '{' || lx->src[t + 1] == '%' ||
                                                    lx->src[t + 1] == '#')))
        t++;
    if (t + 1 >= lx->n) t = lx->n;
    size_t end = t;
    if (t < lx->n && t + 2 < lx->n) {
        char kind = lx->src[t + 1], mod = lx->src[t + 2];
        if (mod == '-') {
            while (end > start && is_space(lx->src[end - 1])) end--;
        } else if (kind != '{' && mod != '+') {
            size_t l = end;
            while (l > start && lx->src[l - 1] != '\n') l--;
            bool line_start = l > start || start == 0 || lx->src[start - 1] == '\n';
            bool blank = true;
            for (size_t i = l; i < end; i++) blank &= lx->src[i] == ' ' || lx->src[i] == '\t';
            if (line_start && blank) end = l;
        }
    }
    int line0 = lx->line;
    count_lines(lx, start, t);
    if (end > start) {
        dzc_token *tok;
        dz_status s = emit(lx, TK_TEXT, lx->src + start, end - start, &tok);
        if (s) return s;
        tok->line = line0;
    }
    lx->pos = t;
    *tag_at = t;
    return DZ_OK;
}

dz_status dzc_lex(dzc_arena *a, const char *src, size_t len, dzc_token **toks, size_t *n_toks) {
    /* Normalize newlines and drop one trailing newline (keep_trailing_newline=False). */
    char *norm = dzc_alloc(a, len + 1);
    if (!norm) return dz_fail(DZ_ERR_NOMEM, "chat template: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            norm[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            norm[n++] = src[i];
        }
    }
    if (n && norm[n - 1] == '\n') n--;
    lexer lx = {.a = a, .src = norm, .n = n, .line = 1};
    char mod = 0;
    bool after_block = false;
    for (;;) {
        size_t t;
        dz_status s = lex_text(&lx, mod, after_block, &t);
        if (s) return s;
        if (t >= n) break;
        char kind = norm[t + 1];
        lx.pos = t + 2;
        if (lx.pos < n && (norm[lx.pos] == '-' || norm[lx.pos] == '+')) lx.pos++;
        if (kind == '#') {
            size_t e = lx.pos;
            while (e + 1 < n && !(norm[e] == '#' && norm[e + 1] == '}')) e++;
            if (e + 1 >= n) return lex_fail(&lx, "unclosed comment {#");
            mod = (e > lx.pos && (norm[e - 1] == '-' || norm[e - 1] == '+')) ? norm[e - 1] : 0;
            count_lines(&lx, lx.pos, e);
            lx.pos = e + 2;
            after_block = true;
            continue;
        }
        bool is_block = kind == '%';
        s = emit(&lx, is_block ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, NULL, 0, NULL);
        if (!s) s = lex_tag(&lx, is_block, &mod);
        if (s) return s;
        after_block = is_block;
    }
    dz_status s = emit(&lx, TK_EOF, NULL, 0, NULL);
    if (s) return s;
    *toks = lx.toks;
    *n_toks = lx.n_toks;
    return DZ_OK;
}
