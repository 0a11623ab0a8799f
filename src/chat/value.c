/* Values of the template language: lists and dicts in the render arena,
 * truthiness, printing as Python's str() and repr() do, JSON as Python's
 * json.dumps(ensure_ascii=False) does, equality, ordering and membership.
 * Recursive walks are depth-limited and charged against the step budget, so
 * self-referencing or exponentially shared values cannot hang or overflow. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat_impl.h"

enum { VALUE_MAX_DEPTH = 64 };

bool dzc_truthy(dzc_value v) {
    switch (v.type) {
    case DZV_UNDEF:
    case DZV_NONE: return false;
    case DZV_BOOL: return v.u.b;
    case DZV_INT: return v.u.i != 0;
    case DZV_FLOAT: return v.u.f != 0.0;
    case DZV_STR: return v.u.s.n > 0;
    case DZV_LIST: return v.u.l->n > 0;
    case DZV_DICT: return v.u.d->n > 0;
    case DZV_MACRO: return true;
    }
    return false;
}

const char *dzc_type_name(dzc_type t) {
    static const char *const names[] = {"undefined", "none", "boolean", "integer",
                                        "float",     "string", "list",  "dict", "macro"};
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : "?";
}

dzc_list *dzc_list_new(dzc_ctx *c, size_t cap) {
    dzc_list *l = dzc_alloc(&c->arena, sizeof *l);
    if (!l) return NULL;
    if (cap) {
        size_t bytes;
        if (dz_mul_overflows(cap, sizeof(dzc_value), &bytes)) return NULL;
        if (!(l->items = dzc_alloc(&c->arena, bytes))) return NULL;
        l->cap = cap;
    }
    return l;
}

dz_status dzc_list_push(dzc_ctx *c, dzc_list *l, dzc_value v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        dzc_value *items = dzc_grow(&c->arena, l->items, l->n * sizeof *items, cap * sizeof *items);
        if (!items) return dzc_err_nomem(c);
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = v;
    return DZ_OK;
}

dzc_dict *dzc_dict_new(dzc_ctx *c) { return dzc_alloc(&c->arena, sizeof(dzc_dict)); }

static bool key_is(dzc_value k, const char *key, size_t len) {
    return k.type == DZV_STR && k.u.s.n == len && memcmp(k.u.s.p, key, len) == 0;
}

bool dzc_dict_get(const dzc_dict *d, const char *key, size_t len, dzc_value *out) {
    for (size_t i = 0; i < d->n; i++)
        if (key_is(d->keys[i], key, len)) {
            *out = d->vals[i];
            return true;
        }
    return false;
}

bool dzc_dict_find(dzc_ctx *c, const dzc_dict *d, dzc_value key, dzc_value *out) {
    for (size_t i = 0; i < d->n; i++)
        if (dzc_equal(c, d->keys[i], key)) {
            if (out) *out = d->vals[i];
            return true;
        }
    return false;
}

dz_status dzc_dict_set(dzc_ctx *c, dzc_dict *d, dzc_value key, dzc_value v) {
    if (dzc_charge(c, d->n / 16)) return DZ_ERR_UNSUPPORTED;
    for (size_t i = 0; i < d->n; i++)
        if (dzc_equal(c, d->keys[i], key)) {
            d->vals[i] = v;
            return DZ_OK;
        }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        dzc_value *k = dzc_grow(&c->arena, d->keys, d->n * sizeof *k, cap * sizeof *k);
        dzc_value *x = dzc_grow(&c->arena, d->vals, d->n * sizeof *x, cap * sizeof *x);
        if (!k || !x) return dzc_err_nomem(c);
        d->keys = k;
        d->vals = x;
        d->cap = cap;
    }
    d->keys[d->n] = key;
    d->vals[d->n++] = v;
    return DZ_OK;
}

dzc_value dzc_list_value(dzc_list *l) {
    dzc_value v = {.type = DZV_LIST, .u.l = l};
    return v;
}
dzc_value dzc_dict_value(dzc_dict *d) {
    dzc_value v = {.type = DZV_DICT, .u.d = d};
    return v;
}

size_t dzc_find(const char *hay, size_t n, const char *needle, size_t m, size_t from) {
    if (m == 0) return from <= n ? from : n + 1;
    for (size_t i = from; i + m <= n && i < n; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, m) == 0) return i;
    return n + 1;
}

size_t dzc_utf8_len(const char *p, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)p[i] & 0xC0) != 0x80;
    return k;
}

size_t dzc_utf8_offset(const char *p, size_t n, size_t i) {
    size_t k = 0, off = 0;
    for (; off < n; off++) {
        if (((unsigned char)p[off] & 0xC0) != 0x80) {
            if (k == i) return off;
            k++;
        }
    }
    return n;
}

/* Python float repr: shortest digits that read back, fixed notation for
 * exponents in [-4, 16), otherwise d.ddde+XX. */
static void print_float(dzc_buf *b, double f, bool json) {
    if (isnan(f)) { dzc_buf_puts(b, json ? "NaN" : "nan"); return; }
    if (isinf(f)) { dzc_buf_puts(b, f < 0 ? (json ? "-Infinity" : "-inf") : (json ? "Infinity" : "inf")); return; }
    char tmp[48];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    const char *p = tmp;
    if (*p == '-') dzc_buf_put(b, p++, 1);
    char digits[24];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < 20) digits[nd++] = *p;
    int exp = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    if (exp >= -4 && exp < 16) {
        if (exp >= 0) {
            for (int i = 0; i <= exp; i++) dzc_buf_put(b, i < nd ? &digits[i] : "0", 1);
            dzc_buf_put(b, ".", 1);
            if (nd > exp + 1) dzc_buf_put(b, digits + exp + 1, (size_t)(nd - exp - 1));
            else dzc_buf_put(b, "0", 1);
        } else {
            dzc_buf_puts(b, "0.");
            for (int i = 0; i < -exp - 1; i++) dzc_buf_put(b, "0", 1);
            dzc_buf_put(b, digits, (size_t)nd);
        }
    } else {
        dzc_buf_put(b, digits, 1);
        if (nd > 1) {
            dzc_buf_put(b, ".", 1);
            dzc_buf_put(b, digits + 1, (size_t)nd - 1);
        }
        dzc_buf_printf(b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
}

static void repr_string(dzc_buf *b, const char *s, size_t n) {
    bool has_single = memchr(s, '\'', n) != NULL, has_double = memchr(s, '"', n) != NULL;
    char q = has_single && !has_double ? '"' : '\'';
    dzc_buf_put(b, &q, 1);
    for (size_t i = 0; i < n && !b->over; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\\' || ch == (unsigned char)q) {
            dzc_buf_put(b, "\\", 1);
            dzc_buf_put(b, s + i, 1);
        } else if (ch == '\n') dzc_buf_puts(b, "\\n");
        else if (ch == '\r') dzc_buf_puts(b, "\\r");
        else if (ch == '\t') dzc_buf_puts(b, "\\t");
        else if (ch < 0x20 || ch == 0x7F) dzc_buf_printf(b, "\\x%02x", ch);
        else dzc_buf_put(b, s + i, 1);
    }
    dzc_buf_put(b, &q, 1);
}

static void print_value(dzc_buf *b, dzc_value v, bool repr, int depth) {
    if (b->over) return;
    if (depth > VALUE_MAX_DEPTH) { dzc_buf_puts(b, "..."); return; }
    switch (v.type) {
    case DZV_UNDEF: if (repr) dzc_buf_puts(b, "Undefined"); return;
    case DZV_NONE: dzc_buf_puts(b, "None"); return;
    case DZV_BOOL: dzc_buf_puts(b, v.u.b ? "True" : "False"); return;
    case DZV_INT: dzc_buf_printf(b, "%lld", (long long)v.u.i); return;
    case DZV_FLOAT: print_float(b, v.u.f, false); return;
    case DZV_STR:
        if (repr) repr_string(b, v.u.s.p, v.u.s.n);
        else dzc_buf_put(b, v.u.s.p, v.u.s.n);
        return;
    case DZV_LIST:
        dzc_buf_put(b, "[", 1);
        for (size_t i = 0; i < v.u.l->n && !b->over; i++) {
            if (i) dzc_buf_puts(b, ", ");
            print_value(b, v.u.l->items[i], true, depth + 1);
        }
        dzc_buf_put(b, "]", 1);
        return;
    case DZV_DICT:
        if (v.u.d->is_namespace) dzc_buf_puts(b, "<Namespace ");
        dzc_buf_put(b, "{", 1);
        for (size_t i = 0; i < v.u.d->n && !b->over; i++) {
            if (i) dzc_buf_puts(b, ", ");
            print_value(b, v.u.d->keys[i], true, depth + 1);
            dzc_buf_puts(b, ": ");
            print_value(b, v.u.d->vals[i], true, depth + 1);
        }
        dzc_buf_put(b, "}", 1);
        if (v.u.d->is_namespace) dzc_buf_puts(b, ">");
        return;
    case DZV_MACRO: dzc_buf_puts(b, "<macro>"); return;
    }
}

void dzc_print(dzc_buf *b, dzc_value v) { print_value(b, v, false, 0); }

dz_status dzc_buf_to_value(dzc_ctx *c, dzc_buf *b, dzc_value *out) {
    if (b->over) {
        dzc_buf_free(b);
        return dzc_err_nomem(c);
    }
    char *p = dzc_strndup(&c->arena, b->p ? b->p : "", b->n);
    size_t n = b->n;
    dzc_buf_free(b);
    if (!p) return dzc_err_nomem(c);
    *out = dzc_str(p, n);
    return DZ_OK;
}

static size_t budget(dzc_ctx *c) {
    return c->arena.limit > c->arena.used ? c->arena.limit - c->arena.used : 0;
}

dz_status dzc_to_string(dzc_ctx *c, dzc_value v, dzc_value *out) {
    if (v.type == DZV_STR) {
        *out = v;
        return DZ_OK;
    }
    dzc_buf b = {.limit = budget(c)};
    dzc_print(&b, v);
    return dzc_buf_to_value(c, &b, out);
}

static void json_string(dzc_buf *b, const char *s, size_t n) {
    dzc_buf_put(b, "\"", 1);
    for (size_t i = 0; i < n && !b->over; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '"': dzc_buf_puts(b, "\\\""); break;
        case '\\': dzc_buf_puts(b, "\\\\"); break;
        case '\n': dzc_buf_puts(b, "\\n"); break;
        case '\r': dzc_buf_puts(b, "\\r"); break;
        case '\t': dzc_buf_puts(b, "\\t"); break;
        case '\b': dzc_buf_puts(b, "\\b"); break;
        case '\f': dzc_buf_puts(b, "\\f"); break;
        default:
            if (ch < 0x20) dzc_buf_printf(b, "\\u%04x", ch);
            else dzc_buf_put(b, s + i, 1);
        }
    }
    dzc_buf_put(b, "\"", 1);
}

static void json_newline(dzc_buf *b, int indent, int level) {
    dzc_buf_put(b, "\n", 1);
    for (int i = 0; i < indent * level && !b->over; i++) dzc_buf_put(b, " ", 1);
}

static dz_status json_value(dzc_ctx *c, dzc_value v, int indent, int level, dzc_buf *b) {
    if (level > VALUE_MAX_DEPTH) return dzc_err(c, "tojson: value nested too deeply");
    if (dzc_charge(c, 1)) return DZ_ERR_UNSUPPORTED;
    switch (v.type) {
    case DZV_UNDEF:
    case DZV_NONE: dzc_buf_puts(b, "null"); break;
    case DZV_BOOL: dzc_buf_puts(b, v.u.b ? "true" : "false"); break;
    case DZV_INT: dzc_buf_printf(b, "%lld", (long long)v.u.i); break;
    case DZV_FLOAT: print_float(b, v.u.f, true); break;
    case DZV_STR: json_string(b, v.u.s.p, v.u.s.n); break;
    case DZV_LIST:
    case DZV_DICT: {
        bool is_list = v.type == DZV_LIST;
        size_t n = is_list ? v.u.l->n : v.u.d->n;
        dzc_buf_put(b, is_list ? "[" : "{", 1);
        for (size_t i = 0; i < n && !b->over; i++) {
            if (i) dzc_buf_puts(b, indent >= 0 ? "," : ", ");
            if (indent >= 0) json_newline(b, indent, level + 1);
            dz_status s;
            if (is_list) {
                s = json_value(c, v.u.l->items[i], indent, level + 1, b);
            } else {
                dzc_value k = v.u.d->keys[i];
                if (k.type == DZV_STR) json_string(b, k.u.s.p, k.u.s.n);
                else {
                    dzc_buf kb = {.limit = 256};
                    if (k.type == DZV_NONE) dzc_buf_puts(&kb, "null");
                    else if (k.type == DZV_BOOL) dzc_buf_puts(&kb, k.u.b ? "true" : "false");
                    else if (k.type == DZV_INT || k.type == DZV_FLOAT) dzc_print(&kb, k);
                    else { dzc_buf_free(&kb); return dzc_err(c, "tojson: keys must be strings or numbers"); }
                    json_string(b, kb.p ? kb.p : "", kb.n);
                    dzc_buf_free(&kb);
                }
                dzc_buf_puts(b, ": ");
                s = json_value(c, v.u.d->vals[i], indent, level + 1, b);
            }
            if (s) return s;
        }
        if (indent >= 0 && n) json_newline(b, indent, level);
        dzc_buf_put(b, is_list ? "]" : "}", 1);
        break;
    }
    case DZV_MACRO: return dzc_err(c, "tojson: a macro is not JSON");
    }
    return DZ_OK;
}

dz_status dzc_to_json(dzc_ctx *c, dzc_value v, int indent, dzc_buf *b) {
    return json_value(c, v, indent, 0, b);
}

static bool is_number(dzc_value v) { return v.type == DZV_INT || v.type == DZV_FLOAT || v.type == DZV_BOOL; }
static double as_double(dzc_value v) {
    return v.type == DZV_FLOAT ? v.u.f : v.type == DZV_INT ? (double)v.u.i : (double)v.u.b;
}
static int64_t as_int(dzc_value v) { return v.type == DZV_INT ? v.u.i : v.type == DZV_BOOL ? (int64_t)v.u.b : 0; }

static bool equal_depth(dzc_ctx *c, dzc_value a, dzc_value b, int depth) {
    if (depth > VALUE_MAX_DEPTH || dzc_charge(c, 1)) return false;
    if (is_number(a) && is_number(b)) {
        if (a.type != DZV_FLOAT && b.type != DZV_FLOAT) return as_int(a) == as_int(b);
        return as_double(a) == as_double(b);
    }
    if (a.type != b.type) return false;
    switch (a.type) {
    case DZV_UNDEF:
    case DZV_NONE: return true;
    case DZV_STR:
        if (dzc_charge(c, a.u.s.n / 256)) return false;
        return a.u.s.n == b.u.s.n && memcmp(a.u.s.p, b.u.s.p, a.u.s.n) == 0;
    case DZV_LIST:
        if (a.u.l == b.u.l) return true;
        if (a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!equal_depth(c, a.u.l->items[i], b.u.l->items[i], depth + 1)) return false;
        return true;
    case DZV_DICT:
        if (a.u.d == b.u.d) return true;
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            bool found = false;
            for (size_t j = 0; j < b.u.d->n && !found; j++)
                if (equal_depth(c, a.u.d->keys[i], b.u.d->keys[j], depth + 1)) {
                    if (!equal_depth(c, a.u.d->vals[i], b.u.d->vals[j], depth + 1)) return false;
                    found = true;
                }
            if (!found) return false;
        }
        return true;
    case DZV_MACRO: return a.u.macro == b.u.macro;
    default: return false;
    }
}

bool dzc_equal(dzc_ctx *c, dzc_value a, dzc_value b) { return equal_depth(c, a, b, 0); }

dz_status dzc_compare(dzc_ctx *c, dzc_value a, dzc_value b, int *cmp) {
    if (is_number(a) && is_number(b)) {
        if (a.type != DZV_FLOAT && b.type != DZV_FLOAT) {
            int64_t x = as_int(a), y = as_int(b);
            *cmp = x < y ? -1 : x > y;
        } else {
            double x = as_double(a), y = as_double(b);
            *cmp = x < y ? -1 : x > y;
        }
        return DZ_OK;
    }
    if (a.type == DZV_STR && b.type == DZV_STR) {
        size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        if (dzc_charge(c, n / 256)) return DZ_ERR_UNSUPPORTED;
        int r = n ? memcmp(a.u.s.p, b.u.s.p, n) : 0;
        *cmp = r < 0 ? -1 : r > 0 ? 1 : a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n;
        return DZ_OK;
    }
    return dzc_err(c, "cannot order %s and %s", dzc_type_name(a.type), dzc_type_name(b.type));
}

dz_status dzc_contains(dzc_ctx *c, dzc_value hay, dzc_value needle, bool *out) {
    switch (hay.type) {
    case DZV_STR:
        if (needle.type != DZV_STR)
            return dzc_err(c, "'in <string>' needs a string on the left, got %s", dzc_type_name(needle.type));
        if (dzc_charge(c, hay.u.s.n / 64)) return DZ_ERR_UNSUPPORTED;
        *out = needle.u.s.n == 0 ||
               dzc_find(hay.u.s.p, hay.u.s.n, needle.u.s.p, needle.u.s.n, 0) < hay.u.s.n;
        return DZ_OK;
    case DZV_LIST:
        *out = false;
        for (size_t i = 0; i < hay.u.l->n && !*out; i++) *out = dzc_equal(c, hay.u.l->items[i], needle);
        return DZ_OK;
    case DZV_DICT: *out = dzc_dict_find(c, hay.u.d, needle, NULL); return DZ_OK;
    case DZV_UNDEF: *out = false; return DZ_OK;
    default: return dzc_err(c, "'in' needs a string, list or dict on the right, got %s", dzc_type_name(hay.type));
    }
}
