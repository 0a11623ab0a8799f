/* Filters, tests, methods and global functions of the template language, as
 * Jinja and Hugging Face's chat-template environment define them (case
 * mapping is ASCII-only). Nothing here touches files, the clock (except
 * strftime_now) or any state beyond the values passed in; mutating methods
 * (append, update, pop, ...) are refused as in Jinja's immutable sandbox. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/chat_impl.h"

static bool name_is(const char *a, const char *b) { return strcmp(a, b) == 0; }

/* Argument pos (counting positional ones) or keyword kw; false when absent. */
static bool get_arg(const char **kwnames, dzc_value *args, size_t n, size_t pos, const char *kw, dzc_value *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (kwnames && kwnames[i]) {
            if (kw && name_is(kwnames[i], kw)) {
                *out = args[i];
                return true;
            }
        } else if (k++ == pos) {
            *out = args[i];
            return true;
        }
    }
    return false;
}

static bool is_ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v'; }

static bool in_set(char ch, const dzc_value *chars) {
    if (!chars) return is_ws(ch);
    return memchr(chars->u.s.p, ch, chars->u.s.n) != NULL;
}

/* strip/lstrip/rstrip: which = 3 both, 1 left, 2 right. */
static dz_status strip(dzc_ctx *c, dzc_value s, const dzc_value *chars, int which, dzc_value *out) {
    if (chars && chars->type == DZV_NONE) chars = NULL;
    if (chars && chars->type != DZV_STR) return dzc_err(c, "strip characters must be a string");
    size_t a = 0, b = s.u.s.n;
    if (which & 1) while (a < b && in_set(s.u.s.p[a], chars)) a++;
    if (which & 2) while (b > a && in_set(s.u.s.p[b - 1], chars)) b--;
    *out = dzc_str(s.u.s.p + a, b - a);
    return dzc_charge(c, s.u.s.n / 256);
}

/* mode: 'u' upper, 'l' lower, 'c' capitalize, 't' Jinja title, 'T' str.title */
static dz_status change_case(dzc_ctx *c, dzc_value s, char mode, dzc_value *out) {
    char *p = dzc_alloc(&c->arena, s.u.s.n + 1);
    if (!p) return dzc_err_nomem(c);
    bool start = true;
    for (size_t i = 0; i < s.u.s.n; i++) {
        char ch = s.u.s.p[i];
        bool up = mode == 'u' || ((mode == 'c' && i == 0) || ((mode == 't' || mode == 'T') && start));
        bool low = mode == 'l' || (!up && mode != 'u');
        if (up && ch >= 'a' && ch <= 'z') ch = (char)(ch - 32);
        else if (low && ch >= 'A' && ch <= 'Z') ch = (char)(ch + 32);
        p[i] = ch;
        bool letter = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (unsigned char)ch >= 0x80;
        if (mode == 'T') start = !letter;
        else if (mode == 't') start = is_ws(ch) || ch == '-' || ch == '(' || ch == '{' || ch == '[' || ch == '<';
    }
    *out = dzc_str(p, s.u.s.n);
    return dzc_charge(c, s.u.s.n / 256);
}

static dz_status replace(dzc_ctx *c, dzc_value s, dzc_value from, dzc_value to, int64_t count, dzc_value *out) {
    if (from.type != DZV_STR || to.type != DZV_STR) return dzc_err(c, "replace expects strings");
    dzc_buf b = {.limit = c->arena.limit};
    size_t pos = 0;
    int64_t done = 0;
    if (dzc_charge(c, s.u.s.n / 64)) return DZ_ERR_UNSUPPORTED;
    while (pos <= s.u.s.n && (count < 0 || done < count)) {
        size_t at = dzc_find(s.u.s.p, s.u.s.n, from.u.s.p, from.u.s.n, pos);
        if (at > s.u.s.n) break;
        dzc_buf_put(&b, s.u.s.p + pos, at - pos);
        dzc_buf_put(&b, to.u.s.p, to.u.s.n);
        done++;
        if (from.u.s.n == 0) { /* Python inserts between every character */
            if (at >= s.u.s.n) { pos = s.u.s.n + 1; break; }
            dzc_buf_put(&b, s.u.s.p + at, 1);
            pos = at + 1;
        } else {
            pos = at + from.u.s.n;
        }
        if (b.over || dzc_charge(c, 1 + to.u.s.n / 256)) break;
    }
    if (pos < s.u.s.n) dzc_buf_put(&b, s.u.s.p + pos, s.u.s.n - pos);
    if (c->steps > c->max_steps) { dzc_buf_free(&b); return DZ_ERR_UNSUPPORTED; }
    return dzc_buf_to_value(c, &b, out);
}

static dz_status split(dzc_ctx *c, dzc_value s, const dzc_value *sep, int64_t maxsplit, dzc_value *out) {
    dzc_list *l = dzc_list_new(c, 0);
    if (!l) return dzc_err_nomem(c);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, i = 0;
    dz_status st = DZ_OK;
    if (!sep || sep->type == DZV_NONE) {
        for (;;) {
            while (i < n && is_ws(p[i])) i++;
            if (i >= n) break;
            size_t j = i;
            if (maxsplit >= 0 && (int64_t)l->n >= maxsplit) {
                j = n;
                while (j > i && is_ws(p[j - 1])) j--;
            } else {
                while (j < n && !is_ws(p[j])) j++;
            }
            if ((st = dzc_list_push(c, l, dzc_str(p + i, j - i)))) return st;
            i = j;
        }
    } else {
        if (sep->type != DZV_STR || sep->u.s.n == 0) return dzc_err(c, "split separator must be a non-empty string");
        for (;;) {
            size_t at = (maxsplit >= 0 && (int64_t)l->n >= maxsplit) ? n + 1 : dzc_find(p, n, sep->u.s.p, sep->u.s.n, i);
            if (at > n) {
                st = dzc_list_push(c, l, dzc_str(p + i, n - i));
                break;
            }
            if ((st = dzc_list_push(c, l, dzc_str(p + i, at - i)))) return st;
            i = at + sep->u.s.n;
        }
    }
    *out = dzc_list_value(l);
    return st ? st : dzc_charge(c, n / 64);
}

/* A list view of v for filters over sequences (list, dict keys, string chars). */
static dz_status as_list(dzc_ctx *c, const char *what, dzc_value v, dzc_list **out) {
    if (v.type == DZV_LIST) { *out = v.u.l; return DZ_OK; }
    dzc_list *l = dzc_list_new(c, 0);
    if (!l) return dzc_err_nomem(c);
    dz_status s = DZ_OK;
    if (v.type == DZV_DICT) {
        for (size_t i = 0; i < v.u.d->n && !s; i++) s = dzc_list_push(c, l, v.u.d->keys[i]);
    } else if (v.type == DZV_STR) {
        for (size_t i = 0; i < v.u.s.n && !s;) {
            size_t j = i + 1;
            while (j < v.u.s.n && ((unsigned char)v.u.s.p[j] & 0xC0) == 0x80) j++;
            s = dzc_list_push(c, l, dzc_str(v.u.s.p + i, j - i));
            i = j;
        }
    } else if (v.type != DZV_UNDEF && v.type != DZV_NONE) { /* Jinja: `if value:` first */
        return dzc_err(c, "%s expects a sequence, got %s", what, dzc_type_name(v.type));
    }
    *out = l;
    return s;
}

static dzc_value attr_of(dzc_value item, dzc_value attr) {
    dzc_value v = dzc_undef();
    if (item.type == DZV_DICT && attr.type == DZV_STR) {
        /* dotted paths: selectattr("function.name") */
        const char *p = attr.u.s.p, *end = p + attr.u.s.n;
        for (;;) {
            const char *dot = memchr(p, '.', (size_t)(end - p));
            const char *stop = dot ? dot : end;
            if (item.type != DZV_DICT || !dzc_dict_get(item.u.d, p, (size_t)(stop - p), &v)) return dzc_undef();
            if (!dot) return v;
            item = v;
            p = dot + 1;
        }
    }
    return v;
}

static dz_status apply_filter(dzc_ctx *c, const char *name, const char **kw, dzc_value in, dzc_value *args,
                              size_t n, dzc_value *out);

/* select / reject / selectattr / rejectattr */
static dz_status select_items(dzc_ctx *c, dzc_value in, dzc_value *args, size_t n, bool by_attr, bool keep,
                              dzc_value *out) {
    dzc_list *items, *l;
    dz_status s = as_list(c, "select", in, &items);
    if (s) return s;
    if (!(l = dzc_list_new(c, 0))) return dzc_err_nomem(c);
    size_t first = by_attr ? 1 : 0;
    if (by_attr && n < 1) return dzc_err(c, "selectattr needs an attribute name");
    for (size_t i = 0; i < items->n; i++) {
        if ((s = dzc_charge(c, 1))) return s;
        dzc_value v = by_attr ? attr_of(items->items[i], args[0]) : items->items[i];
        bool r;
        if (n > first) {
            if (args[first].type != DZV_STR) return dzc_err(c, "test name must be a string");
            char tname[32];
            size_t tn = args[first].u.s.n < sizeof tname - 1 ? args[first].u.s.n : sizeof tname - 1;
            memcpy(tname, args[first].u.s.p, tn);
            tname[tn] = '\0';
            if ((s = dzc_apply_test(c, tname, v, args + first + 1, n - first - 1, &r))) return s;
        } else {
            r = dzc_truthy(v);
        }
        if (r == keep && (s = dzc_list_push(c, l, items->items[i]))) return s;
    }
    *out = dzc_list_value(l);
    return DZ_OK;
}

static dz_status to_int(dzc_ctx *c, dzc_value in, dzc_value dflt, dzc_value *out) {
    *out = dflt;
    if (in.type == DZV_INT) *out = in;
    else if (in.type == DZV_BOOL) *out = dzc_int(in.u.b);
    else if (in.type == DZV_FLOAT && isfinite(in.u.f) && fabs(in.u.f) < 9.2e18) *out = dzc_int((int64_t)in.u.f);
    else if (in.type == DZV_STR && in.u.s.n < 64) {
        char tmp[64], *end;
        memcpy(tmp, in.u.s.p, in.u.s.n);
        tmp[in.u.s.n] = '\0';
        double f = strtod(tmp, &end);
        while (*end && is_ws(*end)) end++;
        if (end != tmp && !*end && isfinite(f) && fabs(f) < 9.2e18) *out = dzc_int((int64_t)f);
    }
    (void)c;
    return DZ_OK;
}

static dz_status filter_join(dzc_ctx *c, const char **kw, dzc_value in, dzc_value *args, size_t n, dzc_value *out) {
    dzc_list *items;
    dzc_value sep = dzc_str("", 0), attr;
    dz_status s = as_list(c, "join", in, &items);
    if (s) return s;
    get_arg(kw, args, n, 0, "d", &sep);
    if ((s = dzc_to_string(c, sep, &sep))) return s;
    bool by_attr = get_arg(kw, args, n, 1, "attribute", &attr);
    dzc_buf b = {.limit = c->arena.limit};
    for (size_t i = 0; i < items->n && !b.over; i++) {
        if (i) dzc_buf_put(&b, sep.u.s.p, sep.u.s.n);
        dzc_print(&b, by_attr ? attr_of(items->items[i], attr) : items->items[i]);
        if ((s = dzc_charge(c, 1))) { dzc_buf_free(&b); return s; }
    }
    return dzc_buf_to_value(c, &b, out);
}

static dz_status filter_indent(dzc_ctx *c, const char **kw, dzc_value in, dzc_value *args, size_t n, dzc_value *out) {
    dzc_value width = dzc_int(4), first = dzc_bool(false), blank = dzc_bool(false);
    get_arg(kw, args, n, 0, "width", &width);
    get_arg(kw, args, n, 1, "first", &first);
    get_arg(kw, args, n, 2, "blank", &blank);
    dzc_value pad;
    dz_status s;
    if (width.type == DZV_INT) {
        if (width.u.i < 0 || width.u.i > 256) return dzc_err(c, "indent width out of range");
        char sp[257];
        memset(sp, ' ', (size_t)width.u.i);
        pad = dzc_str(dzc_strndup(&c->arena, sp, (size_t)width.u.i), (size_t)width.u.i);
        if (!pad.u.s.p) return dzc_err_nomem(c);
    } else if ((s = dzc_to_string(c, width, &pad))) {
        return s;
    }
    if ((s = dzc_to_string(c, in, &in))) return s;
    dzc_buf b = {.limit = c->arena.limit};
    const char *p = in.u.s.p, *end = p + in.u.s.n;
    bool line_start = dzc_truthy(first);
    while (p < end && !b.over) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl + 1 : end;
        bool empty = stop - p == (nl ? 1 : 0);
        if (line_start && (!empty || dzc_truthy(blank))) dzc_buf_put(&b, pad.u.s.p, pad.u.s.n);
        dzc_buf_put(&b, p, (size_t)(stop - p));
        line_start = true;
        p = stop;
        if ((s = dzc_charge(c, 1 + pad.u.s.n / 64))) { dzc_buf_free(&b); return s; }
    }
    return dzc_buf_to_value(c, &b, out);
}

static dz_status apply_filter(dzc_ctx *c, const char *name, const char **kw, dzc_value in, dzc_value *args,
                              size_t n, dzc_value *out) {
    dzc_value a0, a1;
    dz_status s;
    dzc_list *items;
    if (name_is(name, "default") || name_is(name, "d")) {
        dzc_value dflt = dzc_str("", 0), boolean = dzc_bool(false);
        get_arg(kw, args, n, 0, "default_value", &dflt);
        get_arg(kw, args, n, 1, "boolean", &boolean);
        bool use = in.type == DZV_UNDEF || (dzc_truthy(boolean) && !dzc_truthy(in));
        *out = use ? dflt : in;
        return DZ_OK;
    }
    if (name_is(name, "trim") || name_is(name, "strip")) {
        if ((s = dzc_to_string(c, in, &in))) return s;
        return strip(c, in, get_arg(kw, args, n, 0, "chars", &a0) ? &a0 : NULL, 3, out);
    }
    if (name_is(name, "length") || name_is(name, "count")) {
        if (in.type == DZV_STR) *out = dzc_int((int64_t)dzc_utf8_len(in.u.s.p, in.u.s.n));
        else if (in.type == DZV_LIST) *out = dzc_int((int64_t)in.u.l->n);
        else if (in.type == DZV_DICT) *out = dzc_int((int64_t)in.u.d->n);
        else if (in.type == DZV_UNDEF) *out = dzc_int(0);
        else return dzc_err(c, "%s has no length", dzc_type_name(in.type));
        return DZ_OK;
    }
    if (name_is(name, "upper") || name_is(name, "lower") || name_is(name, "capitalize") || name_is(name, "title")) {
        if ((s = dzc_to_string(c, in, &in))) return s;
        return change_case(c, in, name[0] == 'u' ? 'u' : name[0] == 'l' ? 'l' : name[0] == 'c' ? 'c' : 't', out);
    }
    if (name_is(name, "join")) return filter_join(c, kw, in, args, n, out);
    if (name_is(name, "first") || name_is(name, "last")) {
        if ((s = as_list(c, name, in, &items))) return s;
        *out = items->n ? items->items[name[0] == 'f' ? 0 : items->n - 1] : dzc_undef();
        return DZ_OK;
    }
    if (name_is(name, "replace")) {
        dzc_value cnt = dzc_int(-1);
        if (!get_arg(kw, args, n, 0, "old", &a0) || !get_arg(kw, args, n, 1, "new", &a1))
            return dzc_err(c, "replace needs two arguments");
        get_arg(kw, args, n, 2, "count", &cnt);
        if ((s = dzc_to_string(c, in, &in))) return s;
        return replace(c, in, a0, a1, cnt.type == DZV_INT ? cnt.u.i : -1, out);
    }
    if (name_is(name, "tojson")) {
        dzc_value indent = dzc_none();
        get_arg(kw, args, n, 0, "indent", &indent);
        if (indent.type != DZV_NONE && (indent.type != DZV_INT || indent.u.i < 0 || indent.u.i > 64))
            return dzc_err(c, "tojson indent must be an integer in [0, 64]");
        dzc_buf b = {.limit = c->arena.limit};
        if ((s = dzc_to_json(c, in, indent.type == DZV_INT ? (int)indent.u.i : -1, &b))) {
            dzc_buf_free(&b);
            return s;
        }
        return dzc_buf_to_value(c, &b, out);
    }
    if (name_is(name, "string")) return dzc_to_string(c, in, out);
    if (name_is(name, "safe") || name_is(name, "e") || name_is(name, "escape") || name_is(name, "forceescape")) {
        if (name[0] == 's') { *out = in; return DZ_OK; }
        if ((s = dzc_to_string(c, in, &in))) return s;
        dzc_buf b = {.limit = c->arena.limit};
        for (size_t i = 0; i < in.u.s.n && !b.over; i++) {
            char ch = in.u.s.p[i];
            const char *rep = ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;" : ch == '"' ? "&#34;"
                            : ch == '\'' ? "&#39;" : NULL;
            if (rep) dzc_buf_puts(&b, rep);
            else dzc_buf_put(&b, &ch, 1);
        }
        return dzc_buf_to_value(c, &b, out);
    }
    if (name_is(name, "int")) {
        dzc_value dflt = dzc_int(0);
        get_arg(kw, args, n, 0, "default", &dflt);
        return to_int(c, in, dflt, out);
    }
    if (name_is(name, "float")) {
        *out = dzc_float(0);
        get_arg(kw, args, n, 0, "default", out);
        if (in.type == DZV_FLOAT) *out = in;
        else if (in.type == DZV_INT || in.type == DZV_BOOL) *out = dzc_float(in.type == DZV_INT ? (double)in.u.i : in.u.b);
        else if (in.type == DZV_STR && in.u.s.n < 64) {
            char tmp[64], *end;
            memcpy(tmp, in.u.s.p, in.u.s.n);
            tmp[in.u.s.n] = '\0';
            double f = strtod(tmp, &end);
            if (end != tmp && !*end) *out = dzc_float(f);
        }
        return DZ_OK;
    }
    if (name_is(name, "abs")) {
        if (in.type == DZV_INT) {
            if (in.u.i == INT64_MIN) return dzc_err(c, "integer overflow in abs");
            *out = dzc_int(in.u.i < 0 ? -in.u.i : in.u.i);
        } else if (in.type == DZV_FLOAT) *out = dzc_float(fabs(in.u.f));
        else return dzc_err(c, "abs expects a number, got %s", dzc_type_name(in.type));
        return DZ_OK;
    }
    if (name_is(name, "round")) {
        dzc_value prec = dzc_int(0);
        get_arg(kw, args, n, 0, "precision", &prec);
        if (in.type != DZV_INT && in.type != DZV_FLOAT) return dzc_err(c, "round expects a number");
        if (prec.type != DZV_INT || prec.u.i < 0 || prec.u.i > 15) return dzc_err(c, "round precision out of range");
        double f = in.type == DZV_INT ? (double)in.u.i : in.u.f, m = pow(10, (double)prec.u.i);
        *out = dzc_float(round(f * m) / m);
        return DZ_OK;
    }
    if (name_is(name, "list")) {
        if ((s = as_list(c, "list", in, &items))) return s;
        *out = dzc_list_value(items);
        return DZ_OK;
    }
    if (name_is(name, "reverse")) {
        if (in.type == DZV_STR) {
            char *p = dzc_alloc(&c->arena, in.u.s.n + 1);
            if (!p) return dzc_err_nomem(c);
            size_t k = in.u.s.n;
            for (size_t i = 0; i < in.u.s.n;) {
                size_t j = i + 1;
                while (j < in.u.s.n && ((unsigned char)in.u.s.p[j] & 0xC0) == 0x80) j++;
                k -= j - i;
                memcpy(p + k, in.u.s.p + i, j - i);
                i = j;
            }
            *out = dzc_str(p, in.u.s.n);
            return DZ_OK;
        }
        if ((s = as_list(c, "reverse", in, &items))) return s;
        dzc_list *l = dzc_list_new(c, items->n);
        if (!l) return dzc_err_nomem(c);
        for (size_t i = 0; i < items->n; i++) l->items[l->n++] = items->items[items->n - 1 - i];
        *out = dzc_list_value(l);
        return DZ_OK;
    }
    if (name_is(name, "items")) {
        if (in.type == DZV_UNDEF) { *out = dzc_list_value(dzc_list_new(c, 0)); return out->u.l ? DZ_OK : dzc_err_nomem(c); }
        if (in.type != DZV_DICT) return dzc_err(c, "items expects a dict, got %s", dzc_type_name(in.type));
        return dzc_method(c, in, "items", NULL, NULL, 0, out);
    }
    if (name_is(name, "selectattr") || name_is(name, "rejectattr"))
        return select_items(c, in, args, n, true, name[0] == 's', out);
    if (name_is(name, "select") || name_is(name, "reject"))
        return select_items(c, in, args, n, false, name[0] == 's', out);
    if (name_is(name, "map")) {
        if ((s = as_list(c, "map", in, &items))) return s;
        dzc_list *l = dzc_list_new(c, items->n);
        if (!l) return dzc_err_nomem(c);
        bool by_attr = get_arg(kw, args, n, 99, "attribute", &a0);
        dzc_value dflt = dzc_undef();
        get_arg(kw, args, n, 99, "default", &dflt);
        char fname[32] = "";
        if (!by_attr) {
            if (n < 1 || args[0].type != DZV_STR || args[0].u.s.n >= sizeof fname)
                return dzc_err(c, "map needs attribute= or a filter name");
            memcpy(fname, args[0].u.s.p, args[0].u.s.n);
            fname[args[0].u.s.n] = '\0';
            if (name_is(fname, "map")) return dzc_err(c, "map cannot apply map");
        }
        for (size_t i = 0; i < items->n; i++) {
            dzc_value v;
            if ((s = dzc_charge(c, 1))) return s;
            if (by_attr) {
                v = attr_of(items->items[i], a0);
                if (v.type == DZV_UNDEF) v = dflt;
            } else if ((s = apply_filter(c, fname, kw ? kw + 1 : NULL, items->items[i], args + 1, n - 1, &v))) {
                return s;
            }
            l->items[l->n++] = v;
        }
        *out = dzc_list_value(l);
        return DZ_OK;
    }
    if (name_is(name, "indent")) return filter_indent(c, kw, in, args, n, out);
    return dzc_err(c, "unknown filter '%s'", name);
}

dz_status dzc_filter(dzc_ctx *c, const dzc_expr *e, dzc_value in, dzc_value *args, size_t n, dzc_value *out) {
    return apply_filter(c, e->name, e->kwnames, in, args, n, out);
}

dz_status dzc_apply_test(dzc_ctx *c, const char *name, dzc_value in, dzc_value *args, size_t n, bool *out) {
    dzc_type t = in.type;
    int cmp;
    dz_status s;
    if (name_is(name, "defined")) *out = t != DZV_UNDEF;
    else if (name_is(name, "undefined")) *out = t == DZV_UNDEF;
    else if (name_is(name, "none")) *out = t == DZV_NONE;
    else if (name_is(name, "boolean")) *out = t == DZV_BOOL;
    else if (name_is(name, "true")) *out = t == DZV_BOOL && in.u.b;
    else if (name_is(name, "false")) *out = t == DZV_BOOL && !in.u.b;
    else if (name_is(name, "integer")) *out = t == DZV_INT;
    else if (name_is(name, "float")) *out = t == DZV_FLOAT;
    else if (name_is(name, "number")) *out = t == DZV_INT || t == DZV_FLOAT || t == DZV_BOOL;
    else if (name_is(name, "string")) *out = t == DZV_STR;
    else if (name_is(name, "mapping")) *out = t == DZV_DICT;
    else if (name_is(name, "iterable")) *out = t == DZV_STR || t == DZV_LIST || t == DZV_DICT;
    else if (name_is(name, "sequence")) *out = t == DZV_STR || t == DZV_LIST || t == DZV_DICT;
    else if (name_is(name, "callable")) *out = false;
    else if (name_is(name, "lower") || name_is(name, "upper")) {
        *out = t == DZV_STR;
        for (size_t i = 0; *out && i < in.u.s.n; i++) {
            char ch = in.u.s.p[i];
            if (name[0] == 'l' ? (ch >= 'A' && ch <= 'Z') : (ch >= 'a' && ch <= 'z')) *out = false;
        }
    } else if (name_is(name, "odd") || name_is(name, "even") || name_is(name, "divisibleby")) {
        if (t != DZV_INT) return dzc_err(c, "test '%s' expects an integer, got %s", name, dzc_type_name(t));
        int64_t d = 2;
        if (name[0] == 'd') {
            if (n < 1 || args[0].type != DZV_INT || args[0].u.i == 0) return dzc_err(c, "divisibleby needs a non-zero integer");
            d = args[0].u.i;
        }
        int64_t m = d == -1 ? 0 : in.u.i % d;
        *out = name[0] == 'o' ? m != 0 : m == 0;
    } else {
        if (n < 1) return dzc_err(c, "unknown test '%s' (or it needs an argument)", name);
        if (name_is(name, "equalto") || name_is(name, "eq") || name_is(name, "==") || name_is(name, "sameas"))
            *out = dzc_equal(c, in, args[0]);
        else if (name_is(name, "ne") || name_is(name, "!=")) *out = !dzc_equal(c, in, args[0]);
        else if (name_is(name, "in")) return dzc_contains(c, args[0], in, out);
        else {
            int which = name_is(name, "lt") || name_is(name, "lessthan") || name_is(name, "<") ? 0
                      : name_is(name, "le") || name_is(name, "<=") ? 1
                      : name_is(name, "gt") || name_is(name, "greaterthan") || name_is(name, ">") ? 2
                      : name_is(name, "ge") || name_is(name, ">=") ? 3 : -1;
            if (which < 0) return dzc_err(c, "unknown test '%s'", name);
            if ((s = dzc_compare(c, in, args[0], &cmp))) return s;
            *out = which == 0 ? cmp < 0 : which == 1 ? cmp <= 0 : which == 2 ? cmp > 0 : cmp >= 0;
        }
    }
    return DZ_OK;
}

dz_status dzc_test(dzc_ctx *c, const dzc_expr *e, dzc_value in, dzc_value *args, size_t n, bool *out) {
    return dzc_apply_test(c, e->name, in, args, n, out);
}

static bool affix(dzc_value s, dzc_value x, bool prefix) {
    if (x.type != DZV_STR || x.u.s.n > s.u.s.n) return false;
    return memcmp(prefix ? s.u.s.p : s.u.s.p + s.u.s.n - x.u.s.n, x.u.s.p, x.u.s.n) == 0;
}

static dz_status string_method(dzc_ctx *c, dzc_value obj, const char *name, const char **kw, dzc_value *args,
                               size_t n, dzc_value *out) {
    dzc_value a0, a1;
    bool has0 = get_arg(kw, args, n, 0, NULL, &a0);
    if (name_is(name, "strip") || name_is(name, "lstrip") || name_is(name, "rstrip"))
        return strip(c, obj, has0 ? &a0 : NULL, name[0] == 'l' ? 1 : name[0] == 'r' ? 2 : 3, out);
    if (name_is(name, "startswith") || name_is(name, "endswith")) {
        if (!has0) return dzc_err(c, "%s needs an argument", name);
        bool r = false;
        if (a0.type == DZV_LIST) {
            for (size_t i = 0; i < a0.u.l->n && !r; i++) r = affix(obj, a0.u.l->items[i], name[0] == 's');
        } else if (a0.type == DZV_STR) {
            r = affix(obj, a0, name[0] == 's');
        } else {
            return dzc_err(c, "%s expects a string or a tuple of strings", name);
        }
        *out = dzc_bool(r);
        return DZ_OK;
    }
    if (name_is(name, "split")) {
        dzc_value maxsplit = dzc_int(-1);
        bool has_sep = get_arg(kw, args, n, 0, "sep", &a0);
        get_arg(kw, args, n, 1, "maxsplit", &maxsplit);
        return split(c, obj, has_sep ? &a0 : NULL, maxsplit.type == DZV_INT ? maxsplit.u.i : -1, out);
    }
    if (name_is(name, "upper") || name_is(name, "lower") || name_is(name, "capitalize") || name_is(name, "title"))
        return change_case(c, obj, name[0] == 'u' ? 'u' : name[0] == 'l' ? 'l' : name[0] == 'c' ? 'c' : 'T', out);
    if (name_is(name, "replace")) {
        dzc_value cnt = dzc_int(-1);
        if (!has0 || !get_arg(kw, args, n, 1, NULL, &a1)) return dzc_err(c, "replace needs two arguments");
        get_arg(kw, args, n, 2, "count", &cnt);
        return replace(c, obj, a0, a1, cnt.type == DZV_INT ? cnt.u.i : -1, out);
    }
    if (name_is(name, "find")) {
        if (!has0 || a0.type != DZV_STR) return dzc_err(c, "find expects a string");
        size_t at = dzc_find(obj.u.s.p, obj.u.s.n, a0.u.s.p, a0.u.s.n, 0);
        *out = dzc_int(at > obj.u.s.n ? -1 : (int64_t)dzc_utf8_len(obj.u.s.p, at));
        return dzc_charge(c, obj.u.s.n / 64);
    }
    if (name_is(name, "join")) {
        if (!has0) return dzc_err(c, "join needs an argument");
        dzc_value sep = obj;
        return filter_join(c, NULL, a0, &sep, 1, out);
    }
    return dzc_err(c, "strings have no method '%s'", name);
}

dz_status dzc_method(dzc_ctx *c, dzc_value obj, const char *name, const dzc_expr *call, dzc_value *args, size_t n,
                     dzc_value *out) {
    const char **kw = call ? call->kwnames : NULL;
    if (obj.type == DZV_STR) return string_method(c, obj, name, kw, args, n, out);
    if (obj.type == DZV_DICT) {
        dzc_dict *d = obj.u.d;
        if (name_is(name, "items") || name_is(name, "keys") || name_is(name, "values")) {
            dzc_list *l = dzc_list_new(c, d->n);
            if (!l) return dzc_err_nomem(c);
            for (size_t i = 0; i < d->n; i++) {
                if (name[0] == 'i') {
                    dzc_list *pair = dzc_list_new(c, 2);
                    if (!pair) return dzc_err_nomem(c);
                    pair->items[0] = d->keys[i];
                    pair->items[1] = d->vals[i];
                    pair->n = 2;
                    l->items[i] = dzc_list_value(pair);
                } else {
                    l->items[i] = name[0] == 'k' ? d->keys[i] : d->vals[i];
                }
            }
            l->n = d->n;
            *out = dzc_list_value(l);
            return DZ_OK;
        }
        if (name_is(name, "get")) {
            dzc_value key, dflt = dzc_none();
            if (!get_arg(kw, args, n, 0, NULL, &key)) return dzc_err(c, "get needs a key");
            get_arg(kw, args, n, 1, "default", &dflt);
            if (!dzc_dict_find(c, d, key, out)) *out = dflt;
            return DZ_OK;
        }
    }
    if (name_is(name, "append") || name_is(name, "extend") || name_is(name, "pop") || name_is(name, "insert") ||
        name_is(name, "update") || name_is(name, "clear") || name_is(name, "remove") ||
        name_is(name, "setdefault") || name_is(name, "sort"))
        return dzc_err(c, "'%s' is not allowed: template values are immutable", name);
    return dzc_err(c, "%s has no method '%s'", dzc_type_name(obj.type), name);
}

dz_status dzc_global_call(dzc_ctx *c, const char *name, const dzc_expr *call, dzc_value *args, size_t n,
                          dzc_value *out) {
    const char **kw = call->kwnames;
    dz_status s;
    if (name_is(name, "raise_exception")) {
        dzc_buf b = {.limit = 900};
        if (n) dzc_print(&b, args[0]);
        s = dz_fail(DZ_ERR_FORMAT, "%s", b.p ? b.p : "raise_exception() called");
        dzc_buf_free(&b);
        return s;
    }
    if (name_is(name, "range")) {
        int64_t lo = 0, hi, step = 1;
        for (size_t i = 0; i < n; i++)
            if (args[i].type != DZV_INT) return dzc_err(c, "range expects integers");
        if (n == 1) hi = args[0].u.i;
        else if (n == 2 || n == 3) lo = args[0].u.i, hi = args[1].u.i, step = n == 3 ? args[2].u.i : 1;
        else return dzc_err(c, "range expects 1 to 3 arguments");
        if (step == 0) return dzc_err(c, "range step cannot be zero");
        double count = ceil(((double)hi - (double)lo) / (double)step);
        if (count < 0) count = 0;
        if (count > (double)c->max_iterations)
            return dz_fail(DZ_ERR_UNSUPPORTED, "chat template line %d: range of %.0f items exceeds the loop limit of %zu",
                           c->line, count, c->max_iterations);
        dzc_list *l = dzc_list_new(c, (size_t)count);
        if (!l) return dzc_err_nomem(c);
        for (size_t i = 0; i < (size_t)count; i++) l->items[l->n++] = dzc_int(lo + (int64_t)i * step);
        *out = dzc_list_value(l);
        return dzc_charge(c, l->n / 16);
    }
    if (name_is(name, "namespace") || name_is(name, "dict")) {
        dzc_dict *d = dzc_dict_new(c);
        if (!d) return dzc_err_nomem(c);
        d->is_namespace = name[0] == 'n';
        for (size_t i = 0; i < n; i++) {
            if (kw && kw[i]) {
                if ((s = dzc_dict_set(c, d, dzc_str(kw[i], strlen(kw[i])), args[i]))) return s;
            } else if (args[i].type == DZV_DICT) {
                for (size_t j = 0; j < args[i].u.d->n; j++)
                    if ((s = dzc_dict_set(c, d, args[i].u.d->keys[j], args[i].u.d->vals[j]))) return s;
            } else {
                return dzc_err(c, "%s() takes keyword arguments or a dict", name);
            }
        }
        *out = dzc_dict_value(d);
        return DZ_OK;
    }
    if (name_is(name, "strftime_now")) {
        if (n < 1 || args[0].type != DZV_STR || args[0].u.s.n > 128) return dzc_err(c, "strftime_now needs a format string");
        char fmt[129], buf[256];
        memcpy(fmt, args[0].u.s.p, args[0].u.s.n);
        fmt[args[0].u.s.n] = '\0';
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        size_t len = strftime(buf, sizeof buf, fmt, &tm);
        char *p = dzc_strndup(&c->arena, buf, len);
        if (!p) return dzc_err_nomem(c);
        *out = dzc_str(p, len);
        return DZ_OK;
    }
    dzc_value v;
    if (dzc_scope_get(c, name, strlen(name), &v)) {
        if (v.type == DZV_MACRO) return dzc_call_macro(c, v.u.macro, call, args, n, out);
        return dzc_err(c, "'%s' is not callable", name);
    }
    return dzc_err(c, "unknown function '%s'", name);
}
