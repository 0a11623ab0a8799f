/* Tokens -> syntax tree, by recursive descent with Jinja's precedence:
 * conditional < or < and < not < comparison < + - < ~ < * / // % < ** <
 * unary - + < filters, tests and postfix (. [] ()). Nesting and expression
 * height are bounded so evaluation cannot exhaust the stack. */
#include <stdio.h>
#include <string.h>

#include "chat/chat_impl.h"

typedef struct parser {
    dzc_arena *a;
    const dzc_token *t;
    size_t n, pos;
    int depth;
} parser;

static const dzc_token *peek(parser *p) { return &p->t[p->pos]; }
static const dzc_token *next(parser *p) {
    const dzc_token *t = &p->t[p->pos];
    if (t->kind != TK_EOF) p->pos++;
    return t;
}

static bool tok_is(const dzc_token *t, dzc_tok_kind kind, const char *s) {
    if (t->kind != kind) return false;
    if (!s) return true;
    return t->len == strlen(s) && memcmp(t->s, s, t->len) == 0;
}
static bool is_op(parser *p, const char *s) { return tok_is(peek(p), TK_OP, s); }
static bool is_name(parser *p, const char *s) { return tok_is(peek(p), TK_NAME, s); }

static dz_status fail(parser *p, const char *what) {
    const dzc_token *t = peek(p);
    char got[48];
    switch (t->kind) {
    case TK_EOF: strcpy(got, "end of template"); break;
    case TK_BLOCK_END: strcpy(got, "'%}'"); break;
    case TK_VAR_END: strcpy(got, "'}}'"); break;
    case TK_NAME:
    case TK_OP: {
        size_t n = t->len < 32 ? t->len : 32;
        got[0] = '\'';
        memcpy(got + 1, t->s, n);
        got[n + 1] = '\'';
        got[n + 2] = '\0';
        break;
    }
    case TK_STRING: strcpy(got, "a string"); break;
    default: strcpy(got, "a literal"); break;
    }
    return dz_fail(DZ_ERR_FORMAT, "chat template line %d: %s, got %s", t->line, what, got);
}

static dz_status nomem(void) { return dz_fail(DZ_ERR_NOMEM, "chat template: out of memory"); }

static dz_status expect_op(parser *p, const char *s) {
    if (!is_op(p, s)) {
        char msg[32] = "expected '";
        strcat(msg, s);
        strcat(msg, "'");
        return fail(p, msg);
    }
    next(p);
    return DZ_OK;
}

static const char *name_dup(parser *p, const dzc_token *t) { return dzc_strndup(p->a, t->s, t->len); }

static dzc_expr *node(parser *p, dzc_expr_kind kind, dzc_expr *a, dzc_expr *b) {
    dzc_expr *e = dzc_alloc(p->a, sizeof *e);
    if (!e) return NULL;
    e->kind = kind;
    e->line = peek(p)->line;
    e->a = a;
    e->b = b;
    int h = 0;
    if (a && a->height > h) h = a->height;
    if (b && b->height > h) h = b->height;
    e->height = h + 1;
    return e;
}

/* Raises e's height to cover child x; fails when the tree is too tall. */
static dz_status adopt(parser *p, dzc_expr *e, dzc_expr *x) {
    if (x && x->height + 1 > e->height) e->height = x->height + 1;
    if (e->height > DZC_MAX_TREE_HEIGHT) return fail(p, "expression nested too deeply");
    return DZ_OK;
}

static dz_status check(parser *p, dzc_expr *e) {
    if (!e) return nomem();
    return adopt(p, e, NULL);
}

static dz_status parse_expr(parser *p, dzc_expr **out);
static dz_status parse_or(parser *p, dzc_expr **out);
static dz_status parse_unary(parser *p, bool with_filter, dzc_expr **out);

static dz_status push_arg(parser *p, dzc_expr *e, dzc_expr *arg, const char *kw) {
    size_t n = e->n_args;
    dzc_expr **args = dzc_grow(p->a, e->args, n * sizeof *args, (n + 1) * sizeof *args);
    const char **kws = dzc_grow(p->a, e->kwnames, n * sizeof *kws, (n + 1) * sizeof *kws);
    if (!args || !kws) return nomem();
    args[n] = arg;
    kws[n] = kw;
    e->args = args;
    e->kwnames = kws;
    e->n_args = n + 1;
    return adopt(p, e, arg);
}

/* ( args ) with keyword arguments; the '(' is current. */
static dz_status parse_args(parser *p, dzc_expr *e) {
    next(p);
    while (!is_op(p, ")")) {
        const char *kw = NULL;
        if (peek(p)->kind == TK_NAME && tok_is(&p->t[p->pos + 1], TK_OP, "=")) {
            kw = name_dup(p, next(p));
            if (!kw) return nomem();
            next(p);
        }
        dzc_expr *arg;
        dz_status s = parse_expr(p, &arg);
        if (!s) s = push_arg(p, e, arg, kw);
        if (s) return s;
        if (!is_op(p, ",")) break;
        next(p);
    }
    return expect_op(p, ")");
}

static dz_status parse_primary(parser *p, dzc_expr **out) {
    const dzc_token *t = peek(p);
    dzc_expr *e = NULL;
    dz_status s;
    if (t->kind == TK_STRING) {
        /* Adjacent literals concatenate: 'a' 'b' == 'ab'. */
        size_t len = 0, i = p->pos;
        for (; p->t[i].kind == TK_STRING; i++) len += p->t[i].len;
        char *buf = dzc_alloc(p->a, len + 1);
        if (!buf || !(e = node(p, E_LIT, NULL, NULL))) return nomem();
        size_t k = 0;
        while (peek(p)->kind == TK_STRING) {
            const dzc_token *st = next(p);
            if (st->len) memcpy(buf + k, st->s, st->len);
            k += st->len;
        }
        e->lit = dzc_str(buf, len);
    } else if (t->kind == TK_INT || t->kind == TK_FLOAT) {
        if (!(e = node(p, E_LIT, NULL, NULL))) return nomem();
        e->lit = t->kind == TK_INT ? dzc_int(t->i) : dzc_float(t->f);
        next(p);
    } else if (t->kind == TK_NAME) {
        if (!(e = node(p, E_LIT, NULL, NULL))) return nomem();
        if (tok_is(t, TK_NAME, "true") || tok_is(t, TK_NAME, "True")) e->lit = dzc_bool(true);
        else if (tok_is(t, TK_NAME, "false") || tok_is(t, TK_NAME, "False")) e->lit = dzc_bool(false);
        else if (tok_is(t, TK_NAME, "none") || tok_is(t, TK_NAME, "None")) e->lit = dzc_none();
        else {
            e->kind = E_NAME;
            if (!(e->name = name_dup(p, t))) return nomem();
        }
        next(p);
    } else if (tok_is(t, TK_OP, "(") || tok_is(t, TK_OP, "[") || tok_is(t, TK_OP, "{")) {
        if (++p->depth > DZC_MAX_NESTING) return fail(p, "expression nested too deeply");
        char open = t->s[0];
        const char *close = open == '(' ? ")" : open == '[' ? "]" : "}";
        next(p);
        if (!(e = node(p, open == '{' ? E_DICT : E_LIST, NULL, NULL))) return nomem();
        bool tuple = open != '(';
        while (!is_op(p, close)) {
            dzc_expr *item;
            if ((s = parse_expr(p, &item))) return s;
            if (open == '{') {
                if ((s = expect_op(p, ":"))) return s;
                if ((s = push_arg(p, e, item, NULL))) return s;
                if ((s = parse_expr(p, &item))) return s;
            }
            if ((s = push_arg(p, e, item, NULL))) return s;
            if (!is_op(p, ",")) break;
            tuple = true;
            next(p);
        }
        if ((s = expect_op(p, close))) return s;
        p->depth--;
        if (!tuple) { /* (x) is x */
            if (e->n_args != 1) return fail(p, "empty parentheses");
            e = e->args[0];
        }
    } else {
        return fail(p, "expected an expression");
    }
    *out = e;
    return check(p, e);
}

static dz_status parse_postfix(parser *p, dzc_expr **io) {
    dzc_expr *e = *io;
    dz_status s;
    for (;;) {
        if (is_op(p, ".")) {
            next(p);
            if (peek(p)->kind != TK_NAME && peek(p)->kind != TK_INT)
                return fail(p, "expected an attribute name after '.'");
            const dzc_token *t = next(p);
            if (t->kind == TK_INT) { /* x.0 is x[0] */
                dzc_expr *idx = node(p, E_LIT, NULL, NULL);
                if (!idx) return nomem();
                idx->lit = dzc_int(t->i);
                e = node(p, E_INDEX, e, idx);
            } else {
                e = node(p, E_ATTR, e, NULL);
                if (e && !(e->name = name_dup(p, t))) return nomem();
            }
        } else if (is_op(p, "[")) {
            next(p);
            dzc_expr *parts[3] = {NULL, NULL, NULL};
            int k = 0;
            bool slice = false;
            for (;;) {
                if (!is_op(p, ":") && !is_op(p, "]")) {
                    if ((s = parse_expr(p, &parts[k]))) return s;
                }
                if (is_op(p, ":") && k < 2) {
                    slice = true;
                    k++;
                    next(p);
                    continue;
                }
                break;
            }
            if ((s = expect_op(p, "]"))) return s;
            if (slice) {
                e = node(p, E_SLICE, e, parts[0]);
                if (e) e->c = parts[1], e->d = parts[2];
                if (e && ((s = adopt(p, e, parts[1])) || (s = adopt(p, e, parts[2])))) return s;
            } else {
                if (!parts[0]) return fail(p, "expected an index");
                e = node(p, E_INDEX, e, parts[0]);
            }
        } else if (is_op(p, "(")) {
            e = node(p, E_CALL, e, NULL);
            if (!e) return nomem();
            if ((s = parse_args(p, e))) return s;
        } else {
            break;
        }
        if ((s = check(p, e))) return s;
    }
    *io = e;
    return DZ_OK;
}

/* A filter or test name with optional arguments. */
static dz_status parse_named(parser *p, dzc_expr_kind kind, dzc_expr *in, dzc_expr **out) {
    if (peek(p)->kind != TK_NAME) return fail(p, kind == E_FILTER ? "expected a filter name" : "expected a test name");
    dzc_expr *e = node(p, kind, in, NULL);
    if (!e || !(e->name = name_dup(p, next(p)))) return nomem();
    /* Dotted names (e.g. a namespaced filter) are not supported: one name only. */
    dz_status s;
    if (is_op(p, "(")) {
        if ((s = parse_args(p, e))) return s;
    } else if (kind == E_TEST) {
        /* One argument without parentheses: x is divisibleby 3, x is sameas none. */
        const dzc_token *t = peek(p);
        bool arg = t->kind == TK_STRING || t->kind == TK_INT || t->kind == TK_FLOAT ||
                   tok_is(t, TK_OP, "[") || tok_is(t, TK_OP, "{") ||
                   (t->kind == TK_NAME && !tok_is(t, TK_NAME, "else") && !tok_is(t, TK_NAME, "or") &&
                    !tok_is(t, TK_NAME, "and") && !tok_is(t, TK_NAME, "if") && !tok_is(t, TK_NAME, "in") &&
                    !tok_is(t, TK_NAME, "is") && !tok_is(t, TK_NAME, "not"));
        if (arg) {
            dzc_expr *x;
            if ((s = parse_primary(p, &x)) || (s = parse_postfix(p, &x)) || (s = push_arg(p, e, x, NULL)))
                return s;
        }
    }
    *out = e;
    return check(p, e);
}

static dz_status parse_filters(parser *p, dzc_expr **io) {
    dz_status s;
    for (;;) {
        if (is_op(p, "|")) {
            next(p);
            if ((s = parse_named(p, E_FILTER, *io, io))) return s;
        } else if (is_name(p, "is")) {
            next(p);
            bool neg = is_name(p, "not");
            if (neg) next(p);
            if ((s = parse_named(p, E_TEST, *io, io))) return s;
            (*io)->negated = neg;
        } else {
            return DZ_OK;
        }
    }
}

static dz_status parse_unary(parser *p, bool with_filter, dzc_expr **out) {
    dz_status s;
    dzc_expr *e;
    if (is_op(p, "-") || is_op(p, "+")) {
        bool neg = is_op(p, "-");
        next(p);
        if (++p->depth > DZC_MAX_NESTING) return fail(p, "expression nested too deeply");
        if ((s = parse_unary(p, false, &e))) return s;
        p->depth--;
        e = node(p, neg ? E_NEG : E_POS, e, NULL);
        if ((s = check(p, e))) return s;
    } else {
        if ((s = parse_primary(p, &e)) || (s = parse_postfix(p, &e))) return s;
    }
    if (with_filter && (s = parse_filters(p, &e))) return s;
    *out = e;
    return DZ_OK;
}

typedef struct binop_def {
    const char *text;
    dzc_binop op;
} binop_def;

/* Left-associative binary level: operand parsed by sub, operators in ops. */
static dz_status parse_level(parser *p, const binop_def *ops, size_t n_ops,
                             dz_status (*sub)(parser *, dzc_expr **), dzc_expr **out) {
    dzc_expr *e;
    dz_status s = sub(p, &e);
    if (s) return s;
    for (;;) {
        size_t k = 0;
        while (k < n_ops && !is_op(p, ops[k].text)) k++;
        if (k == n_ops) break;
        next(p);
        dzc_expr *rhs;
        if ((s = sub(p, &rhs))) return s;
        e = node(p, E_BINARY, e, rhs);
        if ((s = check(p, e))) return s;
        e->op = (int)ops[k].op;
    }
    *out = e;
    return DZ_OK;
}

static dz_status parse_unary_f(parser *p, dzc_expr **out) { return parse_unary(p, true, out); }
static dz_status parse_pow(parser *p, dzc_expr **out) {
    static const binop_def ops[] = {{"**", OP_POW}};
    return parse_level(p, ops, 1, parse_unary_f, out);
}
static dz_status parse_mul(parser *p, dzc_expr **out) {
    static const binop_def ops[] = {{"//", OP_FLOORDIV}, {"/", OP_DIV}, {"*", OP_MUL}, {"%", OP_MOD}};
    return parse_level(p, ops, 4, parse_pow, out);
}
static dz_status parse_concat(parser *p, dzc_expr **out) {
    static const binop_def ops[] = {{"~", OP_CONCAT}};
    return parse_level(p, ops, 1, parse_mul, out);
}
static dz_status parse_add(parser *p, dzc_expr **out) {
    static const binop_def ops[] = {{"+", OP_ADD}, {"-", OP_SUB}};
    return parse_level(p, ops, 2, parse_concat, out);
}

static dz_status parse_compare(parser *p, dzc_expr **out) {
    static const binop_def ops[] = {{"==", OP_EQ}, {"!=", OP_NE}, {"<=", OP_LE},
                                    {">=", OP_GE}, {"<", OP_LT},  {">", OP_GT}};
    dzc_expr *e;
    dz_status s = parse_add(p, &e);
    if (s) return s;
    for (;;) {
        int op = -1;
        for (size_t k = 0; k < 6; k++)
            if (is_op(p, ops[k].text)) op = (int)ops[k].op;
        if (op >= 0) {
            next(p);
        } else if (is_name(p, "in")) {
            next(p);
            op = OP_IN;
        } else if (is_name(p, "not") && tok_is(&p->t[p->pos + 1], TK_NAME, "in")) {
            next(p);
            next(p);
            op = OP_NOTIN;
        } else {
            break;
        }
        dzc_expr *rhs;
        if ((s = parse_add(p, &rhs))) return s;
        e = node(p, E_BINARY, e, rhs);
        if ((s = check(p, e))) return s;
        e->op = op;
    }
    *out = e;
    return DZ_OK;
}

static dz_status parse_not(parser *p, dzc_expr **out) {
    if (!is_name(p, "not")) return parse_compare(p, out);
    next(p);
    if (++p->depth > DZC_MAX_NESTING) return fail(p, "expression nested too deeply");
    dzc_expr *e;
    dz_status s = parse_not(p, &e);
    if (s) return s;
    p->depth--;
    *out = node(p, E_NOT, e, NULL);
    return check(p, *out);
}

static dz_status parse_bool(parser *p, const char *word, dzc_expr_kind kind,
                            dz_status (*sub)(parser *, dzc_expr **), dzc_expr **out) {
    dzc_expr *e;
    dz_status s = sub(p, &e);
    if (s) return s;
    while (is_name(p, word)) {
        next(p);
        dzc_expr *rhs;
        if ((s = sub(p, &rhs))) return s;
        e = node(p, kind, e, rhs);
        if ((s = check(p, e))) return s;
    }
    *out = e;
    return DZ_OK;
}
static dz_status parse_and(parser *p, dzc_expr **out) { return parse_bool(p, "and", E_AND, parse_not, out); }
static dz_status parse_or(parser *p, dzc_expr **out) { return parse_bool(p, "or", E_OR, parse_and, out); }

/* or_expr [if or_expr [else expr]] */
static dz_status parse_expr(parser *p, dzc_expr **out) {
    dzc_expr *e;
    dz_status s = parse_or(p, &e);
    if (s) return s;
    while (is_name(p, "if")) {
        next(p);
        dzc_expr *cond, *alt = NULL;
        if ((s = parse_or(p, &cond))) return s;
        if (is_name(p, "else")) {
            next(p);
            if (++p->depth > DZC_MAX_NESTING) return fail(p, "expression nested too deeply");
            if ((s = parse_expr(p, &alt))) return s;
            p->depth--;
        }
        dzc_expr *c = node(p, E_COND, cond, e);
        if (!c) return nomem();
        c->c = alt;
        if ((s = adopt(p, c, alt))) return s;
        e = c;
    }
    *out = e;
    return DZ_OK;
}

/* ---- statements ---- */

static dz_status parse_body(parser *p, const char *const *stops, dzc_body *out);

static dz_status push_stmt(parser *p, dzc_body *b, dzc_stmt *st) {
    dzc_stmt **items = dzc_grow(p->a, b->items, b->n * sizeof *items, (b->n + 1) * sizeof *items);
    if (!items) return nomem();
    items[b->n++] = st;
    b->items = items;
    return DZ_OK;
}

static dz_status expect_block_end(parser *p) {
    if (peek(p)->kind != TK_BLOCK_END) return fail(p, "expected '%}'");
    next(p);
    return DZ_OK;
}

/* {% end<word> %} where the name is current. */
static dz_status expect_end(parser *p, const char *word) {
    if (!is_name(p, word)) return fail(p, word);
    next(p);
    return expect_block_end(p);
}

static dz_status parse_names(parser *p, dzc_stmt *st) {
    bool paren = is_op(p, "(");
    if (paren) next(p);
    do {
        if (peek(p)->kind != TK_NAME) return fail(p, "expected a variable name");
        const char **names = dzc_grow(p->a, st->names, st->n_names * sizeof *names,
                                      (st->n_names + 1) * sizeof *names);
        if (!names || !(names[st->n_names] = name_dup(p, next(p)))) return nomem();
        st->names = names;
        st->n_names++;
    } while (is_op(p, ",") && next(p));
    return paren ? expect_op(p, ")") : DZ_OK;
}

static dz_status parse_if(parser *p, dzc_stmt *st) {
    static const char *const stops[] = {"elif", "else", "endif", NULL};
    static const char *const end[] = {"endif", NULL};
    dz_status s;
    st->kind = S_IF;
    for (;;) {
        size_t n = st->n_conds;
        dzc_expr **conds = dzc_grow(p->a, st->conds, n * sizeof *conds, (n + 1) * sizeof *conds);
        dzc_body *bodies = dzc_grow(p->a, st->bodies, n * sizeof *bodies, (n + 1) * sizeof *bodies);
        if (!conds || !bodies) return nomem();
        st->conds = conds;
        st->bodies = bodies;
        st->n_conds = n + 1;
        if ((s = parse_expr(p, &conds[n])) || (s = expect_block_end(p)) ||
            (s = parse_body(p, stops, &bodies[n])))
            return s;
        if (is_name(p, "elif")) {
            next(p);
            continue;
        }
        if (is_name(p, "else")) {
            next(p);
            if ((s = expect_block_end(p)) || (s = parse_body(p, end, &st->orelse))) return s;
        }
        return expect_end(p, "endif");
    }
}

static dz_status parse_for(parser *p, dzc_stmt *st) {
    static const char *const stops[] = {"else", "endfor", NULL};
    static const char *const end[] = {"endfor", NULL};
    dz_status s;
    st->kind = S_FOR;
    if ((s = parse_names(p, st))) return s;
    if (!is_name(p, "in")) return fail(p, "expected 'in'");
    next(p);
    if ((s = parse_or(p, &st->expr))) return s;
    if (is_name(p, "if") && (next(p), (s = parse_or(p, &st->filter)))) return s;
    if (is_name(p, "recursive")) return fail(p, "recursive loops are not supported");
    if ((s = expect_block_end(p)) || (s = parse_body(p, stops, &st->body))) return s;
    if (is_name(p, "else")) {
        next(p);
        if ((s = expect_block_end(p)) || (s = parse_body(p, end, &st->orelse))) return s;
    }
    return expect_end(p, "endfor");
}

static dz_status parse_set(parser *p, dzc_stmt *st) {
    static const char *const end[] = {"endset", NULL};
    dz_status s;
    st->kind = S_SET;
    if ((s = parse_names(p, st))) return s;
    if (st->n_names == 1 && is_op(p, ".")) {
        next(p);
        if (peek(p)->kind != TK_NAME) return fail(p, "expected an attribute name");
        if (!(st->attr = name_dup(p, next(p)))) return nomem();
    }
    if (peek(p)->kind == TK_BLOCK_END) {
        if (st->n_names != 1 || st->attr) return fail(p, "expected '='");
        st->kind = S_SET_BLOCK;
        if ((s = expect_block_end(p)) || (s = parse_body(p, end, &st->body))) return s;
        return expect_end(p, "endset");
    }
    if ((s = expect_op(p, "="))) return s;
    if ((s = parse_expr(p, &st->expr))) return s;
    if (is_op(p, ",")) { /* set a, b = x, y: the right side is a tuple */
        dzc_expr *t = node(p, E_LIST, NULL, NULL);
        if (!t) return nomem();
        if ((s = push_arg(p, t, st->expr, NULL))) return s;
        while (is_op(p, ",")) {
            next(p);
            dzc_expr *x;
            if ((s = parse_expr(p, &x)) || (s = push_arg(p, t, x, NULL))) return s;
        }
        st->expr = t;
    }
    return expect_block_end(p);
}

/* macro name(a, b=default, ...) %} body {% endmacro %} */
static dz_status parse_macro(parser *p, dzc_stmt *st) {
    static const char *const end[] = {"endmacro", NULL};
    dz_status s;
    st->kind = S_MACRO;
    if (peek(p)->kind != TK_NAME) return fail(p, "expected a macro name");
    if (!(st->attr = name_dup(p, next(p)))) return nomem();
    if ((s = expect_op(p, "("))) return s;
    while (!is_op(p, ")")) {
        if (peek(p)->kind != TK_NAME) return fail(p, "expected a parameter name");
        size_t n = st->n_names;
        const char **names = dzc_grow(p->a, st->names, n * sizeof *names, (n + 1) * sizeof *names);
        dzc_expr **defs = dzc_grow(p->a, st->defaults, n * sizeof *defs, (n + 1) * sizeof *defs);
        if (!names || !defs || !(names[n] = name_dup(p, next(p)))) return nomem();
        st->names = names;
        st->defaults = defs;
        st->n_names = n + 1;
        if (is_op(p, "=")) {
            next(p);
            if ((s = parse_expr(p, &defs[n]))) return s;
        }
        if (!is_op(p, ",")) break;
        next(p);
    }
    if ((s = expect_op(p, ")")) || (s = expect_block_end(p)) || (s = parse_body(p, end, &st->body))) return s;
    return expect_end(p, "endmacro");
}

/* filter name(args) %} body {% endfilter %} */
static dz_status parse_filter_block(parser *p, dzc_stmt *st) {
    static const char *const end[] = {"endfilter", NULL};
    dz_status s;
    st->kind = S_FILTER_BLOCK;
    if ((s = parse_named(p, E_FILTER, NULL, &st->expr))) return s;
    if (is_op(p, "|")) return fail(p, "chained filter blocks are not supported");
    if ((s = expect_block_end(p)) || (s = parse_body(p, end, &st->body))) return s;
    return expect_end(p, "endfilter");
}

static bool in_list(const dzc_token *t, const char *const *words) {
    for (; words && *words; words++)
        if (tok_is(t, TK_NAME, *words)) return true;
    return false;
}

static dz_status parse_stmt(parser *p, dzc_stmt *st) {
    static const char *const gen_end[] = {"endgeneration", NULL};
    const dzc_token *t = peek(p);
    if (t->kind != TK_NAME) return fail(p, "expected a statement name");
    next(p);
    dz_status s;
    if (tok_is(t, TK_NAME, "if")) return parse_if(p, st);
    if (tok_is(t, TK_NAME, "for")) return parse_for(p, st);
    if (tok_is(t, TK_NAME, "set")) return parse_set(p, st);
    if (tok_is(t, TK_NAME, "break") || tok_is(t, TK_NAME, "continue")) {
        st->kind = tok_is(t, TK_NAME, "break") ? S_BREAK : S_CONTINUE;
        return expect_block_end(p);
    }
    if (tok_is(t, TK_NAME, "macro")) return parse_macro(p, st);
    if (tok_is(t, TK_NAME, "filter")) return parse_filter_block(p, st);
    if (tok_is(t, TK_NAME, "generation")) {
        st->kind = S_GROUP;
        if ((s = expect_block_end(p)) || (s = parse_body(p, gen_end, &st->body))) return s;
        return expect_end(p, "endgeneration");
    }
    p->pos--;
    if (tok_is(t, TK_NAME, "call") || tok_is(t, TK_NAME, "raw") ||
        tok_is(t, TK_NAME, "include") || tok_is(t, TK_NAME, "import") ||
        tok_is(t, TK_NAME, "extends") || tok_is(t, TK_NAME, "block") ||
        tok_is(t, TK_NAME, "with") || tok_is(t, TK_NAME, "from"))
        return fail(p, "unsupported statement");
    return fail(p, "unknown statement");
}

/* Statements until EOF (stops NULL) or a {% stop %} tag, left with the stop
 * word current. */
static dz_status parse_body(parser *p, const char *const *stops, dzc_body *out) {
    if (++p->depth > DZC_MAX_NESTING) return fail(p, "blocks nested too deeply");
    dz_status s;
    for (;;) {
        const dzc_token *t = peek(p);
        if (t->kind == TK_EOF) {
            if (stops) {
                char msg[48] = "missing {% end %}";
                for (size_t k = 0; stops[k]; k++)
                    if (!strncmp(stops[k], "end", 3)) snprintf(msg, sizeof msg, "missing {%% %s %%}", stops[k]);
                return fail(p, msg);
            }
            break;
        }
        dzc_stmt *st = dzc_alloc(p->a, sizeof *st);
        if (!st) return nomem();
        st->line = t->line;
        if (t->kind == TK_TEXT) {
            next(p);
            st->kind = S_TEXT;
            st->text = t->s;
            st->len = t->len;
        } else if (t->kind == TK_VAR_BEGIN) {
            next(p);
            st->kind = S_OUTPUT;
            if ((s = parse_expr(p, &st->expr))) return s;
            if (peek(p)->kind != TK_VAR_END) return fail(p, "expected '}}'");
            next(p);
        } else if (t->kind == TK_BLOCK_BEGIN) {
            if (in_list(&p->t[p->pos + 1], stops)) {
                next(p);
                break;
            }
            next(p);
            if ((s = parse_stmt(p, st))) return s;
        } else {
            return fail(p, "unexpected token");
        }
        if ((s = push_stmt(p, out, st))) return s;
    }
    p->depth--;
    return DZ_OK;
}

dz_status dzc_parse(dzc_arena *a, const dzc_token *toks, size_t n_toks, dzc_body *out) {
    parser p = {.a = a, .t = toks, .n = n_toks};
    memset(out, 0, sizeof *out);
    return parse_body(&p, NULL, out);
}
