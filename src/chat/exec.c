/* Statements and the render entry point: scopes (each loop iteration has its
 * own, as in Jinja, so {% set %} inside a loop does not leak out; namespace()
 * objects carry state across), if/for/set, loop variables, break/continue,
 * and the budgets (steps, loop iterations, memory, output size). */
#include <stdio.h>
#include <string.h>

#include "chat/chat_impl.h"

dz_status dzc_err(dzc_ctx *c, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dz_fail(DZ_ERR_FORMAT, "chat template line %d: %s", c->line, msg);
}

dz_status dzc_err_nomem(dzc_ctx *c) {
    /* Allocations fail at the limit long before the system runs out. */
    return dz_fail(DZ_ERR_UNSUPPORTED, "chat template line %d: render exceeded the memory limit of %zu bytes",
                   c->line, c->arena.limit);
}

dz_status dzc_charge(dzc_ctx *c, size_t steps) {
    if (steps > c->max_steps || c->steps > c->max_steps - steps) {
        c->steps = c->max_steps + 1;
        return dz_fail(DZ_ERR_UNSUPPORTED, "chat template line %d: render exceeded its work limit of %zu steps",
                       c->line, c->max_steps);
    }
    c->steps += steps;
    return DZ_OK;
}

bool dzc_scope_get(dzc_ctx *c, const char *name, size_t len, dzc_value *out) {
    for (int i = c->n_scopes - 1; i >= 0; i--)
        if (dzc_dict_get(c->scopes[i], name, len, out)) return true;
    return false;
}

dz_status dzc_scope_set(dzc_ctx *c, const char *name, dzc_value v) {
    return dzc_dict_set(c, c->scopes[c->n_scopes - 1], dzc_str(name, strlen(name)), v);
}

static dz_status push_scope(dzc_ctx *c) {
    if (c->n_scopes >= (int)(sizeof c->scopes / sizeof *c->scopes)) return dzc_err(c, "loops nested too deeply");
    dzc_dict *d = dzc_dict_new(c);
    if (!d) return dzc_err_nomem(c);
    c->scopes[c->n_scopes++] = d;
    return DZ_OK;
}

static dz_status output(dzc_ctx *c, dzc_value v) {
    dzc_print(c->out, v);
    if (c->out->over)
        return dz_fail(DZ_ERR_UNSUPPORTED, "chat template line %d: output exceeded the limit of %zu bytes", c->line,
                       c->out->limit);
    return DZ_OK;
}

/* Binds for-loop or set targets: one name takes the value, several unpack a
 * list of the same length. */
static dz_status bind(dzc_ctx *c, const dzc_stmt *st, dzc_value v) {
    if (st->n_names == 1) return dzc_scope_set(c, st->names[0], v);
    if (v.type != DZV_LIST || v.u.l->n != st->n_names)
        return dzc_err(c, "cannot unpack %s into %zu names", dzc_type_name(v.type), st->n_names);
    for (size_t i = 0; i < st->n_names; i++) {
        dz_status s = dzc_scope_set(c, st->names[i], v.u.l->items[i]);
        if (s) return s;
    }
    return DZ_OK;
}

static dz_status count_iteration(dzc_ctx *c) {
    if (++c->iterations > c->max_iterations)
        return dz_fail(DZ_ERR_UNSUPPORTED, "chat template line %d: loops exceeded the limit of %zu iterations",
                       c->line, c->max_iterations);
    return DZ_OK;
}

/* The items a for loop walks: list items, dict keys, string characters. */
static dz_status iter_items(dzc_ctx *c, dzc_value v, dzc_list **out) {
    dzc_list *l;
    switch (v.type) {
    case DZV_LIST: *out = v.u.l; return DZ_OK;
    case DZV_UNDEF: *out = dzc_list_new(c, 0); break;
    case DZV_DICT:
        if (!(l = dzc_list_new(c, v.u.d->n))) return dzc_err_nomem(c);
        memcpy(l->items, v.u.d->keys, v.u.d->n * sizeof *l->items);
        l->n = v.u.d->n;
        *out = l;
        break;
    case DZV_STR:
        if (!(l = dzc_list_new(c, v.u.s.n))) return dzc_err_nomem(c);
        for (size_t i = 0; i < v.u.s.n;) {
            size_t j = i + 1;
            while (j < v.u.s.n && ((unsigned char)v.u.s.p[j] & 0xC0) == 0x80) j++;
            l->items[l->n++] = dzc_str(v.u.s.p + i, j - i);
            i = j;
        }
        *out = l;
        break;
    default: return dzc_err(c, "cannot loop over %s", dzc_type_name(v.type));
    }
    return *out ? DZ_OK : dzc_err_nomem(c);
}

/* One loop object per loop, updated in place each iteration (so a long loop
 * does not allocate per iteration). */
static dz_status set_loop_var(dzc_ctx *c, dzc_dict *loop, dzc_list *items, size_t i) {
    size_t n = items->n;
    struct { const char *k; dzc_value v; } f[] = {
        {"index", dzc_int((int64_t)i + 1)},   {"index0", dzc_int((int64_t)i)},
        {"revindex", dzc_int((int64_t)(n - i))}, {"revindex0", dzc_int((int64_t)(n - i - 1))},
        {"first", dzc_bool(i == 0)},          {"last", dzc_bool(i + 1 == n)},
        {"length", dzc_int((int64_t)n)},      {"previtem", i ? items->items[i - 1] : dzc_undef()},
        {"nextitem", i + 1 < n ? items->items[i + 1] : dzc_undef()},
    };
    for (size_t k = 0; k < sizeof f / sizeof *f; k++) {
        dz_status s = dzc_dict_set(c, loop, dzc_str(f[k].k, strlen(f[k].k)), f[k].v);
        if (s) return s;
    }
    return dzc_scope_set(c, "loop", dzc_dict_value(loop));
}

static dz_status exec_for(dzc_ctx *c, const dzc_stmt *st) {
    dzc_value v;
    dzc_list *items;
    dz_status s;
    if ((s = dzc_eval(c, st->expr, &v)) || (s = iter_items(c, v, &items))) return s;
    if (st->filter) { /* filtered first, so loop.length and loop.last count kept items */
        dzc_list *kept = dzc_list_new(c, 0);
        if (!kept) return dzc_err_nomem(c);
        if ((s = push_scope(c))) return s;
        for (size_t i = 0; i < items->n && !s; i++) {
            dzc_value keep;
            c->scopes[c->n_scopes - 1]->n = 0;
            if (!(s = count_iteration(c)) && !(s = bind(c, st, items->items[i])) &&
                !(s = dzc_eval(c, st->filter, &keep)) && dzc_truthy(keep))
                s = dzc_list_push(c, kept, items->items[i]);
        }
        c->n_scopes--;
        if (s) return s;
        items = kept;
    }
    dzc_dict *loop = dzc_dict_new(c);
    if (!loop) return dzc_err_nomem(c);
    if (items->n && (s = push_scope(c))) return s;
    dzc_dict *scope = c->scopes[c->n_scopes - 1];
    for (size_t i = 0; i < items->n; i++) {
        c->line = st->line;
        scope->n = 0; /* a fresh scope per iteration, reusing its memory */
        if ((s = count_iteration(c))) break;
        if (!(s = set_loop_var(c, loop, items, i)) && !(s = bind(c, st, items->items[i])))
            s = dzc_exec_body(c, &st->body);
        if (s) break;
        int ctl = c->loop_ctl;
        c->loop_ctl = 0;
        if (ctl == 1) break;
    }
    if (items->n) c->n_scopes--;
    if (s) return s;
    if (items->n == 0) return dzc_exec_body(c, &st->orelse);
    return DZ_OK;
}

static dz_status exec_set(dzc_ctx *c, const dzc_stmt *st) {
    dzc_value v;
    dz_status s = dzc_eval(c, st->expr, &v);
    if (s) return s;
    c->line = st->line;
    if (!st->attr) return bind(c, st, v);
    dzc_value ns;
    if (!dzc_scope_get(c, st->names[0], strlen(st->names[0]), &ns) || ns.type != DZV_DICT || !ns.u.d->is_namespace)
        return dzc_err(c, "cannot assign attribute '%s': '%s' is not a namespace()", st->attr, st->names[0]);
    return dzc_dict_set(c, ns.u.d, dzc_str(st->attr, strlen(st->attr)), v);
}

/* Renders st's body into a string value (the output is captured). */
static dz_status capture(dzc_ctx *c, const dzc_body *body, dzc_value *out) {
    dzc_buf *saved = c->out, buf = {.limit = saved->limit};
    c->out = &buf;
    dz_status s = dzc_exec_body(c, body);
    c->out = saved;
    if (s) {
        dzc_buf_free(&buf);
        return s;
    }
    return dzc_buf_to_value(c, &buf, out);
}

dz_status dzc_call_macro(dzc_ctx *c, const dzc_stmt *m, const dzc_expr *call, dzc_value *args, size_t n,
                         dzc_value *out) {
    int line = c->line;
    dz_status s = push_scope(c);
    if (s) return dz_fail(DZ_ERR_UNSUPPORTED, "chat template line %d: macro calls nested too deeply", line);
    size_t positional = 0;
    for (size_t i = 0; i < n && !s; i++) {
        const char *kw = call && call->kwnames ? call->kwnames[i] : NULL;
        if (kw) {
            size_t k = 0;
            while (k < m->n_names && strcmp(m->names[k], kw)) k++;
            if (k == m->n_names) s = dzc_err(c, "macro '%s' has no parameter '%s'", m->attr, kw);
            else s = dzc_scope_set(c, kw, args[i]);
        } else if (positional < m->n_names) {
            s = dzc_scope_set(c, m->names[positional++], args[i]);
        } else {
            s = dzc_err(c, "macro '%s' takes %zu arguments", m->attr, m->n_names);
        }
    }
    for (size_t k = 0; k < m->n_names && !s; k++) {
        dzc_value v;
        if (dzc_dict_get(c->scopes[c->n_scopes - 1], m->names[k], strlen(m->names[k]), &v)) continue;
        v = dzc_undef();
        if (m->defaults[k] && (s = dzc_eval(c, m->defaults[k], &v))) break;
        s = dzc_scope_set(c, m->names[k], v);
    }
    int saved_ctl = c->loop_ctl;
    if (!s) s = capture(c, &m->body, out);
    c->loop_ctl = saved_ctl;
    c->n_scopes--;
    c->line = line;
    return s;
}

static dz_status exec_stmt(dzc_ctx *c, const dzc_stmt *st) {
    dz_status s = dzc_charge(c, 1);
    if (s) return s;
    c->line = st->line;
    dzc_value v;
    switch (st->kind) {
    case S_TEXT: return output(c, dzc_str(st->text, st->len));
    case S_OUTPUT:
        if ((s = dzc_eval(c, st->expr, &v))) return s;
        c->line = st->line;
        return output(c, v);
    case S_IF:
        for (size_t i = 0; i < st->n_conds; i++) {
            if ((s = dzc_eval(c, st->conds[i], &v))) return s;
            if (dzc_truthy(v)) return dzc_exec_body(c, &st->bodies[i]);
        }
        return dzc_exec_body(c, &st->orelse);
    case S_FOR: return exec_for(c, st);
    case S_SET: return exec_set(c, st);
    case S_SET_BLOCK:
        if ((s = capture(c, &st->body, &v))) return s;
        return dzc_scope_set(c, st->names[0], v);
    case S_MACRO: {
        dzc_value m = {.type = DZV_MACRO, .u.macro = st};
        return dzc_scope_set(c, st->attr, m);
    }
    case S_FILTER_BLOCK: {
        const dzc_expr *f = st->expr;
        dzc_value *args = f->n_args ? dzc_alloc(&c->arena, f->n_args * sizeof *args) : NULL;
        if (f->n_args && !args) return dzc_err_nomem(c);
        for (size_t i = 0; i < f->n_args; i++)
            if ((s = dzc_eval(c, f->args[i], &args[i]))) return s;
        if ((s = capture(c, &st->body, &v)) || (s = dzc_filter(c, f, v, args, f->n_args, &v))) return s;
        return output(c, v);
    }
    case S_GROUP: return dzc_exec_body(c, &st->body);
    case S_BREAK: c->loop_ctl = 1; return DZ_OK;
    case S_CONTINUE: c->loop_ctl = 2; return DZ_OK;
    }
    return dzc_err(c, "internal: unknown statement");
}

dz_status dzc_exec_body(dzc_ctx *c, const dzc_body *body) {
    for (size_t i = 0; i < body->n && !c->loop_ctl; i++) {
        dz_status s = exec_stmt(c, body->items[i]);
        if (s) return s;
    }
    return DZ_OK;
}
