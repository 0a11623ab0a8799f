/* Internals of the chat-template interpreter: the arena, tokens, the syntax
 * tree, values and the render context. Pipeline: lexer.c (text -> tokens),
 * parser.c (tokens -> tree), exec.c/eval.c (tree -> output) with value.c
 * (printing, comparison, JSON) and builtins.c (filters, tests, methods,
 * global functions). template.c is the public API. */
#ifndef DZ_CHAT_IMPL_H
#define DZ_CHAT_IMPL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dizuo/chat.h"

enum {
    DZC_MAX_NESTING = 64,     /* nested blocks, brackets and unary operators */
    DZC_MAX_TREE_HEIGHT = 512, /* height of any expression tree */
    DZC_MAX_EVAL_DEPTH = 768   /* nested evaluation, macros included: bounds the C stack */
};

/* ---- arena: every allocation of a parse or a render, freed at once ---- */
typedef struct dzc_block dzc_block;
typedef struct dzc_arena {
    dzc_block *head;
    size_t used;  /* bytes handed out */
    size_t limit; /* 0 = unlimited */
} dzc_arena;

/* Zeroed memory, or NULL when the limit or malloc fails. */
void *dzc_alloc(dzc_arena *a, size_t n);
/* Grows an array allocated by dzc_alloc (old contents copied; old memory is
 * not reused). NULL on failure. */
void *dzc_grow(dzc_arena *a, void *old, size_t old_bytes, size_t new_bytes);
char *dzc_strndup(dzc_arena *a, const char *s, size_t n);
void dzc_arena_free(dzc_arena *a);

/* ---- growable byte buffer (malloc'd), capped at limit bytes ---- */
typedef struct dzc_buf {
    char *p;
    size_t n, cap, limit;
    bool over; /* a write went past limit (or malloc failed) */
} dzc_buf;
void dzc_buf_put(dzc_buf *b, const char *s, size_t n);
void dzc_buf_puts(dzc_buf *b, const char *s);
void dzc_buf_printf(dzc_buf *b, const char *fmt, ...) DZ_PRINTF(2, 3);
void dzc_buf_free(dzc_buf *b);

/* ---- tokens ---- */
typedef enum dzc_tok_kind {
    TK_EOF,
    TK_TEXT,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_NAME,
    TK_STRING,
    TK_INT,
    TK_FLOAT,
    TK_OP,
} dzc_tok_kind;

typedef struct dzc_token {
    dzc_tok_kind kind;
    int line;
    const char *s; /* text, name, decoded string or operator */
    size_t len;
    int64_t i;
    double f;
} dzc_token;

/* Splits template text into tokens (HF settings: trim_blocks, lstrip_blocks,
 * no trailing newline). Tokens and their text live in arena a. */
dz_status dzc_lex(dzc_arena *a, const char *src, size_t len, dzc_token **toks, size_t *n_toks);

/* ---- values ---- */
typedef enum dzc_type {
    DZV_UNDEF,
    DZV_NONE,
    DZV_BOOL,
    DZV_INT,
    DZV_FLOAT,
    DZV_STR,
    DZV_LIST,
    DZV_DICT,
    DZV_MACRO, /* a {% macro %}: called like a function, returns its output */
} dzc_type;

typedef struct dzc_list dzc_list;
typedef struct dzc_dict dzc_dict;

typedef struct dzc_value {
    dzc_type type;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        dzc_list *l;
        dzc_dict *d;
        const struct dzc_stmt *macro;
    } u;
} dzc_value;

struct dzc_list {
    size_t n, cap;
    dzc_value *items;
};

struct dzc_dict {
    size_t n, cap;
    dzc_value *keys, *vals;
    bool is_namespace; /* attributes may be assigned: {% set ns.x = ... %} */
};

static inline dzc_value dzc_undef(void) { dzc_value v = {.type = DZV_UNDEF}; return v; }
static inline dzc_value dzc_none(void) { dzc_value v = {.type = DZV_NONE}; return v; }
static inline dzc_value dzc_bool(bool b) { dzc_value v = {.type = DZV_BOOL, .u.b = b}; return v; }
static inline dzc_value dzc_int(int64_t i) { dzc_value v = {.type = DZV_INT, .u.i = i}; return v; }
static inline dzc_value dzc_float(double f) { dzc_value v = {.type = DZV_FLOAT, .u.f = f}; return v; }
static inline dzc_value dzc_str(const char *p, size_t n) {
    dzc_value v = {.type = DZV_STR};
    v.u.s.p = p;
    v.u.s.n = n;
    return v;
}

/* ---- syntax tree ---- */
typedef enum dzc_expr_kind {
    E_LIT,
    E_NAME,
    E_ATTR,   /* a.name */
    E_INDEX,  /* a[b] */
    E_SLICE,  /* a[b:c:d], absent parts NULL */
    E_CALL,   /* a(args) */
    E_FILTER, /* a | name(args) */
    E_TEST,   /* a is [not] name(args) */
    E_NOT,
    E_NEG,
    E_POS,
    E_BINARY, /* op: + - * / // % ** ~ == != < <= > >= in notin */
    E_AND,
    E_OR,
    E_COND, /* b if a else c */
    E_LIST, /* also tuples */
    E_DICT, /* args: key, value, key, value ... */
} dzc_expr_kind;

typedef enum dzc_binop {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN,
} dzc_binop;

typedef struct dzc_expr dzc_expr;
struct dzc_expr {
    dzc_expr_kind kind;
    int op; /* dzc_binop for E_BINARY */
    int line;
    int height;
    bool negated; /* E_TEST */
    dzc_value lit;
    const char *name; /* E_NAME, E_ATTR, E_FILTER, E_TEST */
    dzc_expr *a, *b, *c, *d;
    dzc_expr **args;
    const char **kwnames; /* per arg: keyword name or NULL */
    size_t n_args;
};

typedef enum dzc_stmt_kind {
    S_TEXT,
    S_OUTPUT,
    S_IF,
    S_FOR,
    S_SET,
    S_SET_BLOCK,
    S_GROUP, /* {% generation %} body: rendered as is */
    S_BREAK,
    S_CONTINUE,
    S_MACRO,        /* names: parameters, defaults[i] or NULL, attr: macro name */
    S_FILTER_BLOCK, /* expr: E_FILTER whose input is the body's output */
} dzc_stmt_kind;

typedef struct dzc_stmt dzc_stmt;
typedef struct dzc_body {
    dzc_stmt **items;
    size_t n;
} dzc_body;

struct dzc_stmt {
    dzc_stmt_kind kind;
    int line;
    const char *text; /* S_TEXT */
    size_t len;
    dzc_expr *expr;   /* S_OUTPUT, S_SET value, S_FOR iterable */
    dzc_expr *filter; /* S_FOR: for x in y if filter */
    const char **names; /* S_FOR / S_SET targets */
    size_t n_names;
    const char *attr;   /* S_SET: names[0].attr = ...; S_MACRO: its name */
    dzc_expr **defaults; /* S_MACRO: per parameter, NULL when none */
    dzc_expr **conds;   /* S_IF: if/elif conditions, bodies[i] each */
    dzc_body *bodies;
    size_t n_conds;
    dzc_body body;   /* S_FOR, S_SET_BLOCK, S_GROUP */
    dzc_body orelse; /* S_IF else, S_FOR else */
};

/* Parses tokens into the template body. Nodes live in arena a. */
dz_status dzc_parse(dzc_arena *a, const dzc_token *toks, size_t n_toks, dzc_body *out);

/* ---- rendering ---- */
typedef struct dzc_ctx {
    dzc_arena arena;
    dzc_buf *out;
    size_t iterations, max_iterations;
    size_t steps, max_steps;
    dzc_dict *scopes[DZC_MAX_NESTING + 2];
    int n_scopes;
    int loop_ctl; /* 0, or 1 break / 2 continue pending */
    int line;     /* line of the node being evaluated, for messages */
    int eval_depth; /* nested dzc_eval calls, across macro calls too */
} dzc_ctx;

/* Failure helpers: message "line N: ..." with DZ_ERR_FORMAT. */
dz_status dzc_err(dzc_ctx *c, const char *fmt, ...) DZ_PRINTF(2, 3);
dz_status dzc_err_nomem(dzc_ctx *c);
/* Charges work (steps) against the budget; fails when exhausted. */
dz_status dzc_charge(dzc_ctx *c, size_t steps);

dz_status dzc_exec_body(dzc_ctx *c, const dzc_body *body);
/* Calls a macro with evaluated arguments; its output becomes *out. */
dz_status dzc_call_macro(dzc_ctx *c, const dzc_stmt *m, const dzc_expr *call, dzc_value *args, size_t n,
                         dzc_value *out);
dz_status dzc_eval(dzc_ctx *c, const dzc_expr *e, dzc_value *out);

/* Variables: lookup from the innermost scope out; set in the innermost. */
bool dzc_scope_get(dzc_ctx *c, const char *name, size_t len, dzc_value *out);
dz_status dzc_scope_set(dzc_ctx *c, const char *name, dzc_value v);

/* value.c */
bool dzc_truthy(dzc_value v);
const char *dzc_type_name(dzc_type t);
dzc_list *dzc_list_new(dzc_ctx *c, size_t cap);
dz_status dzc_list_push(dzc_ctx *c, dzc_list *l, dzc_value v);
dzc_dict *dzc_dict_new(dzc_ctx *c);
dz_status dzc_dict_set(dzc_ctx *c, dzc_dict *d, dzc_value key, dzc_value v);
bool dzc_dict_get(const dzc_dict *d, const char *key, size_t len, dzc_value *out);
bool dzc_dict_find(dzc_ctx *c, const dzc_dict *d, dzc_value key, dzc_value *out);
dzc_value dzc_list_value(dzc_list *l);
dzc_value dzc_dict_value(dzc_dict *d);
/* Appends str(v) as Python/Jinja prints it (None, True, 1.5, ['a']). */
void dzc_print(dzc_buf *b, dzc_value v);
/* str(v) as a string value in the arena. */
dz_status dzc_to_string(dzc_ctx *c, dzc_value v, dzc_value *out);
/* json.dumps(v, ensure_ascii=False, indent=indent (<0: none)). */
dz_status dzc_to_json(dzc_ctx *c, dzc_value v, int indent, dzc_buf *b);
bool dzc_equal(dzc_ctx *c, dzc_value a, dzc_value b);
/* -1/0/1 in *cmp; error when the types do not order. */
dz_status dzc_compare(dzc_ctx *c, dzc_value a, dzc_value b, int *cmp);
dz_status dzc_contains(dzc_ctx *c, dzc_value hay, dzc_value needle, bool *out);
/* A buffer's bytes as a string value in the arena (frees the buffer). */
dz_status dzc_buf_to_value(dzc_ctx *c, dzc_buf *b, dzc_value *out);
/* Byte offset of needle in hay at or after from; n + 1 when absent. */
size_t dzc_find(const char *hay, size_t n, const char *needle, size_t m, size_t from);
/* Number of code points / byte offset of code point i in UTF-8 text. */
size_t dzc_utf8_len(const char *p, size_t n);
size_t dzc_utf8_offset(const char *p, size_t n, size_t i);

/* builtins.c */
dz_status dzc_filter(dzc_ctx *c, const dzc_expr *e, dzc_value in, dzc_value *args, size_t n,
                     dzc_value *out);
dz_status dzc_test(dzc_ctx *c, const dzc_expr *e, dzc_value in, dzc_value *args, size_t n,
                   bool *out);
dz_status dzc_method(dzc_ctx *c, dzc_value obj, const char *name, const dzc_expr *call,
                     dzc_value *args, size_t n, dzc_value *out);
dz_status dzc_global_call(dzc_ctx *c, const char *name, const dzc_expr *call, dzc_value *args,
                          size_t n, dzc_value *out);
/* Test by name used by select/selectattr too. */
dz_status dzc_apply_test(dzc_ctx *c, const char *name, dzc_value in, dzc_value *args, size_t n,
                         bool *out);

#endif
