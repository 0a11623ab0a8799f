/* Expressions: names, attribute and subscript access, slices, calls,
 * filters, tests and operators, with Python's semantics for the types the
 * templates use. Missing names, attributes and items are undefined (printed
 * as "", false, iterated as empty); operators on undefined values fail. */
#include <math.h>
#include <string.h>

#include "chat/chat_impl.h"

static dz_status eval_args(dzc_ctx *c, const dzc_expr *e, dzc_value *args) {
    for (size_t i = 0; i < e->n_args; i++) {
        dz_status s = dzc_eval(c, e->args[i], &args[i]);
        if (s) return s;
    }
    return DZ_OK;
}

static dz_status alloc_args(dzc_ctx *c, const dzc_expr *e, dzc_value **args) {
    *args = NULL;
    if (!e->n_args) return DZ_OK;
    *args = dzc_alloc(&c->arena, e->n_args * sizeof **args);
    if (!*args) return dzc_err_nomem(c);
    return eval_args(c, e, *args);
}

/* Python index: negative counts from the end; false when out of range. */
static bool norm_index(int64_t i, size_t n, size_t *out) {
    if (i < 0) i += (int64_t)n;
    if (i < 0 || (uint64_t)i >= n) return false;
    *out = (size_t)i;
    return true;
}

static dz_status eval_index(dzc_ctx *c, dzc_value obj, dzc_value key, dzc_value *out) {
    *out = dzc_undef();
    size_t i;
    switch (obj.type) {
    case DZV_DICT: dzc_dict_find(c, obj.u.d, key, out); return DZ_OK;
    case DZV_LIST:
        if (key.type != DZV_INT) return dzc_err(c, "list index must be an integer, got %s", dzc_type_name(key.type));
        if (norm_index(key.u.i, obj.u.l->n, &i)) *out = obj.u.l->items[i];
        return DZ_OK;
    case DZV_STR: {
        if (key.type != DZV_INT) return dzc_err(c, "string index must be an integer, got %s", dzc_type_name(key.type));
        if (dzc_charge(c, obj.u.s.n / 64)) return DZ_ERR_UNSUPPORTED;
        size_t n = dzc_utf8_len(obj.u.s.p, obj.u.s.n);
        if (norm_index(key.u.i, n, &i)) {
            size_t a = dzc_utf8_offset(obj.u.s.p, obj.u.s.n, i), b = dzc_utf8_offset(obj.u.s.p, obj.u.s.n, i + 1);
            *out = dzc_str(obj.u.s.p + a, b - a);
        }
        return DZ_OK;
    }
    default: return DZ_OK;
    }
}

static dz_status slice_bound(dzc_ctx *c, const dzc_expr *e, int64_t n, int64_t step, bool is_start,
                             int64_t *out) {
    if (!e) {
        *out = step > 0 ? (is_start ? 0 : n) : (is_start ? n - 1 : -1);
        return DZ_OK;
    }
    dzc_value v;
    dz_status s = dzc_eval(c, e, &v);
    if (s) return s;
    if (v.type == DZV_NONE) return slice_bound(c, NULL, n, step, is_start, out);
    if (v.type != DZV_INT) return dzc_err(c, "slice bounds must be integers, got %s", dzc_type_name(v.type));
    int64_t i = v.u.i;
    if (i < 0) {
        i = i < -n ? -1 : i + n;
        if (i < 0) i = step > 0 ? 0 : -1;
    } else if (i >= n) {
        i = step > 0 ? n : n - 1;
    }
    *out = i;
    return DZ_OK;
}

static dz_status eval_slice(dzc_ctx *c, const dzc_expr *e, dzc_value *out) {
    dzc_value obj;
    dz_status s = dzc_eval(c, e->a, &obj);
    if (s) return s;
    int64_t step = 1;
    if (e->d) {
        dzc_value v;
        if ((s = dzc_eval(c, e->d, &v))) return s;
        if (v.type == DZV_INT) step = v.u.i;
        else if (v.type != DZV_NONE) return dzc_err(c, "slice step must be an integer");
        if (step == 0) return dzc_err(c, "slice step cannot be zero");
    }
    if (obj.type != DZV_LIST && obj.type != DZV_STR) {
        *out = dzc_undef();
        return obj.type == DZV_UNDEF ? DZ_OK : dzc_err(c, "cannot slice %s", dzc_type_name(obj.type));
    }
    bool is_str = obj.type == DZV_STR;
    if (is_str && dzc_charge(c, obj.u.s.n / 16)) return DZ_ERR_UNSUPPORTED;
    int64_t n = is_str ? (int64_t)dzc_utf8_len(obj.u.s.p, obj.u.s.n) : (int64_t)obj.u.l->n;
    int64_t lo, hi;
    if ((s = slice_bound(c, e->b, n, step, true, &lo)) || (s = slice_bound(c, e->c, n, step, false, &hi)))
        return s;
    if (is_str && step == 1) { /* the common case, without copying */
        if (hi < lo) hi = lo;
        size_t a = dzc_utf8_offset(obj.u.s.p, obj.u.s.n, (size_t)lo);
        size_t b = dzc_utf8_offset(obj.u.s.p, obj.u.s.n, (size_t)hi);
        *out = dzc_str(obj.u.s.p + a, b - a);
        return DZ_OK;
    }
    dzc_list *l = dzc_list_new(c, 0);
    dzc_buf b = {.limit = c->arena.limit};
    if (!l) return dzc_err_nomem(c);
    for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) {
        if ((s = dzc_charge(c, is_str ? 1 + obj.u.s.n / 64 : 1))) break;
        if (is_str) {
            size_t x = dzc_utf8_offset(obj.u.s.p, obj.u.s.n, (size_t)i);
            size_t y = dzc_utf8_offset(obj.u.s.p, obj.u.s.n, (size_t)i + 1);
            dzc_buf_put(&b, obj.u.s.p + x, y - x);
        } else if ((s = dzc_list_push(c, l, obj.u.l->items[i]))) {
            break;
        }
        if ((step > 0 && i > INT64_MAX - step) || (step < 0 && i < INT64_MIN - step)) break;
    }
    if (s) {
        dzc_buf_free(&b);
        return s;
    }
    if (is_str) return dzc_buf_to_value(c, &b, out);
    *out = dzc_list_value(l);
    return DZ_OK;
}

static bool is_num(dzc_value v) { return v.type == DZV_INT || v.type == DZV_FLOAT || v.type == DZV_BOOL; }
static double to_f(dzc_value v) { return v.type == DZV_FLOAT ? v.u.f : v.type == DZV_INT ? (double)v.u.i : v.u.b; }
static int64_t to_i(dzc_value v) { return v.type == DZV_INT ? v.u.i : v.type == DZV_BOOL ? v.u.b : 0; }

static dz_status concat(dzc_ctx *c, const char *a, size_t na, const char *b, size_t nb, dzc_value *out) {
    size_t n;
    if (dz_add_overflows(na, nb, &n)) return dzc_err_nomem(c);
    char *p = dzc_alloc(&c->arena, n + 1);
    if (!p) return dzc_err_nomem(c);
    if (na) memcpy(p, a, na);
    if (nb) memcpy(p + na, b, nb);
    *out = dzc_str(p, n);
    return dzc_charge(c, n / 256);
}

static dz_status repeat(dzc_ctx *c, dzc_value seq, int64_t times, dzc_value *out) {
    if (times < 0) times = 0;
    if (seq.type == DZV_STR) {
        size_t n;
        if (dz_mul_overflows(seq.u.s.n, (size_t)times, &n)) return dzc_err_nomem(c);
        char *p = dzc_alloc(&c->arena, n + 1);
        if (!p) return dzc_err_nomem(c);
        for (int64_t i = 0; i < times; i++) memcpy(p + (size_t)i * seq.u.s.n, seq.u.s.p, seq.u.s.n);
        *out = dzc_str(p, n);
        return dzc_charge(c, n / 256);
    }
    size_t n;
    if (dz_mul_overflows(seq.u.l->n, (size_t)times, &n)) return dzc_err_nomem(c);
    dzc_list *l = dzc_list_new(c, n);
    if (!l) return dzc_err_nomem(c);
    for (int64_t i = 0; i < times; i++)
        for (size_t j = 0; j < seq.u.l->n; j++) l->items[l->n++] = seq.u.l->items[j];
    *out = dzc_list_value(l);
    return dzc_charge(c, n / 16);
}

static dz_status arith(dzc_ctx *c, int op, dzc_value a, dzc_value b, dzc_value *out) {
    static const char *const sym[] = {"+", "-", "*", "/", "//", "%", "**", "~"};
    bool ints = (a.type == DZV_INT || a.type == DZV_BOOL) && (b.type == DZV_INT || b.type == DZV_BOOL);
    if (is_num(a) && is_num(b)) {
        int64_t x = to_i(a), y = to_i(b), r;
        double fx = to_f(a), fy = to_f(b);
        switch (op) {
        case OP_ADD:
        case OP_SUB:
        case OP_MUL:
            if (!ints) {
                *out = dzc_float(op == OP_ADD ? fx + fy : op == OP_SUB ? fx - fy : fx * fy);
                return DZ_OK;
            }
            if (op == OP_ADD ? __builtin_add_overflow(x, y, &r)
                             : op == OP_SUB ? __builtin_sub_overflow(x, y, &r) : __builtin_mul_overflow(x, y, &r))
                return dzc_err(c, "integer overflow in '%s'", sym[op]);
            *out = dzc_int(r);
            return DZ_OK;
        case OP_DIV:
            if (fy == 0) return dzc_err(c, "division by zero");
            *out = dzc_float(fx / fy);
            return DZ_OK;
        case OP_FLOORDIV:
        case OP_MOD:
            if (fy == 0) return dzc_err(c, op == OP_MOD ? "modulo by zero" : "division by zero");
            if (ints) {
                if (x == INT64_MIN && y == -1) return dzc_err(c, "integer overflow in '%s'", sym[op]);
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) q--, m += y;
                *out = dzc_int(op == OP_MOD ? m : q);
            } else {
                double m = fmod(fx, fy);
                if (m != 0 && ((m < 0) != (fy < 0))) m += fy;
                *out = dzc_float(op == OP_MOD ? m : floor(fx / fy));
            }
            return DZ_OK;
        case OP_POW:
            if (ints && y >= 0) {
                int64_t acc = 1;
                for (int64_t k = 0; k < y; k++) {
                    if (__builtin_mul_overflow(acc, x, &acc)) return dzc_err(c, "integer overflow in '**'");
                    if (acc == 0 || acc == 1) break;
                    if (acc == -1) { acc = (y - k - 1) % 2 ? -acc : acc; break; }
                }
                *out = dzc_int(acc);
            } else {
                *out = dzc_float(pow(fx, fy));
            }
            return DZ_OK;
        }
    }
    if (op == OP_ADD && a.type == DZV_STR && b.type == DZV_STR)
        return concat(c, a.u.s.p, a.u.s.n, b.u.s.p, b.u.s.n, out);
    if (op == OP_ADD && a.type == DZV_LIST && b.type == DZV_LIST) {
        dzc_list *l = dzc_list_new(c, a.u.l->n + b.u.l->n);
        if (!l) return dzc_err_nomem(c);
        for (size_t i = 0; i < a.u.l->n; i++) l->items[l->n++] = a.u.l->items[i];
        for (size_t i = 0; i < b.u.l->n; i++) l->items[l->n++] = b.u.l->items[i];
        *out = dzc_list_value(l);
        return dzc_charge(c, l->n / 16);
    }
    if (op == OP_MUL && (a.type == DZV_STR || a.type == DZV_LIST) && b.type == DZV_INT) return repeat(c, a, b.u.i, out);
    if (op == OP_MUL && (b.type == DZV_STR || b.type == DZV_LIST) && a.type == DZV_INT) return repeat(c, b, a.u.i, out);
    return dzc_err(c, "unsupported operand types for '%s': %s and %s", sym[op], dzc_type_name(a.type),
                   dzc_type_name(b.type));
}

static dz_status eval_binary(dzc_ctx *c, const dzc_expr *e, dzc_value *out) {
    dzc_value a, b;
    dz_status s;
    if ((s = dzc_eval(c, e->a, &a)) || (s = dzc_eval(c, e->b, &b))) return s;
    int cmp;
    bool in;
    switch (e->op) {
    case OP_EQ: *out = dzc_bool(dzc_equal(c, a, b)); return DZ_OK;
    case OP_NE: *out = dzc_bool(!dzc_equal(c, a, b)); return DZ_OK;
    case OP_LT:
    case OP_LE:
    case OP_GT:
    case OP_GE:
        if ((s = dzc_compare(c, a, b, &cmp))) return s;
        *out = dzc_bool(e->op == OP_LT ? cmp < 0 : e->op == OP_LE ? cmp <= 0 : e->op == OP_GT ? cmp > 0 : cmp >= 0);
        return DZ_OK;
    case OP_IN:
    case OP_NOTIN:
        if ((s = dzc_contains(c, b, a, &in))) return s;
        *out = dzc_bool(e->op == OP_IN ? in : !in);
        return DZ_OK;
    case OP_CONCAT: {
        dzc_value x, y;
        if ((s = dzc_to_string(c, a, &x)) || (s = dzc_to_string(c, b, &y))) return s;
        return concat(c, x.u.s.p, x.u.s.n, y.u.s.p, y.u.s.n, out);
    }
    default: return arith(c, e->op, a, b, out);
    }
}

static dz_status eval_call(dzc_ctx *c, const dzc_expr *e, dzc_value *out) {
    dzc_value *args;
    dz_status s;
    if (e->a->kind == E_ATTR) {
        dzc_value obj;
        if ((s = dzc_eval(c, e->a->a, &obj)) || (s = alloc_args(c, e, &args))) return s;
        return dzc_method(c, obj, e->a->name, e, args, e->n_args, out);
    }
    if (e->a->kind == E_NAME) {
        if ((s = alloc_args(c, e, &args))) return s;
        dzc_value fn;
        if (dzc_scope_get(c, e->a->name, strlen(e->a->name), &fn) && fn.type == DZV_MACRO)
            return dzc_call_macro(c, fn.u.macro, e, args, e->n_args, out);
        return dzc_global_call(c, e->a->name, e, args, e->n_args, out);
    }
    return dzc_err(c, "this expression cannot be called");
}

static dz_status eval_node(dzc_ctx *c, const dzc_expr *e, dzc_value *out) {
    dz_status s;
    c->line = e->line;
    dzc_value a, *args;
    switch (e->kind) {
    case E_LIT: *out = e->lit; return DZ_OK;
    case E_NAME:
        if (!dzc_scope_get(c, e->name, strlen(e->name), out)) *out = dzc_undef();
        return DZ_OK;
    case E_ATTR:
        if ((s = dzc_eval(c, e->a, &a))) return s;
        *out = dzc_undef();
        if (a.type == DZV_DICT) dzc_dict_get(a.u.d, e->name, strlen(e->name), out);
        return DZ_OK;
    case E_INDEX: {
        dzc_value key;
        if ((s = dzc_eval(c, e->a, &a)) || (s = dzc_eval(c, e->b, &key))) return s;
        return eval_index(c, a, key, out);
    }
    case E_SLICE: return eval_slice(c, e, out);
    case E_CALL: return eval_call(c, e, out);
    case E_FILTER:
        if ((s = dzc_eval(c, e->a, &a)) || (s = alloc_args(c, e, &args))) return s;
        c->line = e->line;
        return dzc_filter(c, e, a, args, e->n_args, out);
    case E_TEST: {
        bool r;
        if ((s = dzc_eval(c, e->a, &a)) || (s = alloc_args(c, e, &args))) return s;
        c->line = e->line;
        if ((s = dzc_test(c, e, a, args, e->n_args, &r))) return s;
        *out = dzc_bool(e->negated ? !r : r);
        return DZ_OK;
    }
    case E_NOT:
        if ((s = dzc_eval(c, e->a, &a))) return s;
        *out = dzc_bool(!dzc_truthy(a));
        return DZ_OK;
    case E_NEG:
    case E_POS:
        if ((s = dzc_eval(c, e->a, &a))) return s;
        if (a.type == DZV_FLOAT) *out = dzc_float(e->kind == E_NEG ? -a.u.f : a.u.f);
        else if (a.type == DZV_INT || a.type == DZV_BOOL) {
            int64_t v = to_i(a);
            if (e->kind == E_NEG && v == INT64_MIN) return dzc_err(c, "integer overflow in unary '-'");
            *out = dzc_int(e->kind == E_NEG ? -v : v);
        } else {
            return dzc_err(c, "bad operand type for unary '%s': %s", e->kind == E_NEG ? "-" : "+", dzc_type_name(a.type));
        }
        return DZ_OK;
    case E_BINARY: return eval_binary(c, e, out);
    case E_AND:
    case E_OR:
        if ((s = dzc_eval(c, e->a, &a))) return s;
        if (dzc_truthy(a) == (e->kind == E_OR)) {
            *out = a;
            return DZ_OK;
        }
        return dzc_eval(c, e->b, out);
    case E_COND:
        if ((s = dzc_eval(c, e->a, &a))) return s;
        if (dzc_truthy(a)) return dzc_eval(c, e->b, out);
        if (e->c) return dzc_eval(c, e->c, out);
        *out = dzc_undef();
        return DZ_OK;
    case E_LIST: {
        dzc_list *l = dzc_list_new(c, e->n_args);
        if (!l) return dzc_err_nomem(c);
        if ((s = eval_args(c, e, l->items))) return s;
        l->n = e->n_args;
        *out = dzc_list_value(l);
        return DZ_OK;
    }
    case E_DICT: {
        dzc_dict *d = dzc_dict_new(c);
        if (!d) return dzc_err_nomem(c);
        for (size_t i = 0; i + 1 < e->n_args; i += 2) {
            dzc_value k, v;
            if ((s = dzc_eval(c, e->args[i], &k)) || (s = dzc_eval(c, e->args[i + 1], &v)) ||
                (s = dzc_dict_set(c, d, k, v)))
                return s;
        }
        *out = dzc_dict_value(d);
        return DZ_OK;
    }
    }
    return dzc_err(c, "internal: unknown expression");
}

dz_status dzc_eval(dzc_ctx *c, const dzc_expr *e, dzc_value *out) {
    dz_status s = dzc_charge(c, 1);
    if (s) return s;
    if (c->eval_depth >= DZC_MAX_EVAL_DEPTH)
        return dz_fail(DZ_ERR_UNSUPPORTED, "chat template line %d: evaluation nested too deeply (macro recursion?)",
                       e->line);
    c->eval_depth++;
    s = eval_node(c, e, out);
    c->eval_depth--;
    return s;
}
