/* Request bodies of the OpenAI-compatible routes -> dz_oai_request.
 * Every check names the parameter as OpenAI's errors do ("max_tokens",
 * "messages[1].role", "stop[3]"). Unknown fields are ignored, as the OpenAI
 * clients send fields of newer API versions. */
#include "serve/oai_parse.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dz_status dz_oai_fail(dz_oai_error *err, const char *param, const char *fmt, ...) {
    err->status = 400;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return DZ_ERR_ARG;
}

/* Deepest nesting of arrays and objects, stopping early past limit. */
static size_t json_depth(const char *s, size_t len, size_t limit) {
    size_t depth = 0, max = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max) max = depth;
            if (max > limit) return max;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return max;
}

json_t *dz_oai_load_object(const char *body, size_t len, dz_oai_error *err) {
    if (!body || len == 0) {
        dz_oai_fail(err, NULL, "invalid JSON: the request body is empty");
        return NULL;
    }
    if (json_depth(body, len, DZ_OAI_MAX_DEPTH) > DZ_OAI_MAX_DEPTH) {
        dz_oai_fail(err, NULL, "invalid JSON: nesting deeper than %d levels", DZ_OAI_MAX_DEPTH);
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je);
    if (!root) {
        dz_oai_fail(err, NULL, "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        dz_oai_fail(err, NULL, "invalid JSON: the request body must be a JSON object");
        return NULL;
    }
    return root;
}

void dz_oai_request_free(dz_oai_request *r) {
    if (!r) return;
    free(r->model);
    for (size_t i = 0; i < r->n_messages; i++) {
        free(r->messages[i].role);
        free(r->messages[i].content);
    }
    free(r->messages);
    for (size_t i = 0; i < r->n_prompts; i++) {
        free(r->prompts[i].text);
        free(r->prompts[i].tokens);
    }
    free(r->prompts);
    for (size_t i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->stop);
    free(r->logit_bias);
    free(r->user);
    free(r);
}

/* ---- field readers: absent and null mean "not given" ---- */

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static json_t *field(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_null(v) ? NULL : v;
}

/* An integer in [lo, hi]; *given false when absent. */
static dz_status get_int(json_t *o, const char *key, long long lo, long long hi, long long *out, bool *given,
                         dz_oai_error *err) {
    json_t *v = field(o, key);
    *given = v != NULL;
    if (!v) return DZ_OK;
    if (!json_is_integer(v)) return dz_oai_fail(err, key, "%s must be an integer, got %s", key, type_name(v));
    long long x = json_integer_value(v);
    if (x < lo || x > hi) return dz_oai_fail(err, key, "%s must be in %lld..%lld, got %lld", key, lo, hi, x);
    *out = x;
    return DZ_OK;
}

/* A number in [lo, hi] (open at lo when lo_open). */
static dz_status get_num(json_t *o, const char *key, double lo, bool lo_open, double hi, double *out, bool *given,
                         dz_oai_error *err) {
    json_t *v = field(o, key);
    *given = v != NULL;
    if (!v) return DZ_OK;
    if (!json_is_number(v)) return dz_oai_fail(err, key, "%s must be a number, got %s", key, type_name(v));
    double x = json_number_value(v);
    if (!isfinite(x) || x > hi || x < lo || (lo_open && x == lo))
        return dz_oai_fail(err, key, "%s must be in %s%g, %g], got %g", key, lo_open ? "(" : "[", lo, hi, x);
    *out = x;
    return DZ_OK;
}

static dz_status get_bool(json_t *o, const char *key, bool *out, dz_oai_error *err) {
    json_t *v = field(o, key);
    if (!v) return DZ_OK;
    if (!json_is_boolean(v)) return dz_oai_fail(err, key, "%s must be a boolean, got %s", key, type_name(v));
    *out = json_is_true(v);
    return DZ_OK;
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static dz_status nomem(dz_oai_error *err) {
    dz_oai_fail(err, NULL, "out of memory");
    err->status = 500;
    return DZ_ERR_NOMEM;
}

/* ---- chat messages ---- */

/* content: a string, or a list of {"type":"text","text":...} parts (joined). */
static dz_status parse_content(json_t *v, const char *param, char **out, dz_oai_error *err) {
    if (json_is_string(v)) {
        *out = dup_bytes(json_string_value(v), json_string_length(v));
        return *out ? DZ_OK : nomem(err);
    }
    if (!json_is_array(v))
        return dz_oai_fail(err, param, "%s must be a string or a list of text parts, got %s", param, type_name(v));
    size_t total = 0, i;
    json_t *part;
    char name[128];
    json_array_foreach(v, i, part) {
        snprintf(name, sizeof name, "%s[%zu]", param, i);
        json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type))
            return dz_oai_fail(err, name, "%s must be an object with a \"type\"", name);
        if (strcmp(json_string_value(type), "text"))
            return dz_oai_fail(err, name, "%s: content parts of type \"%s\" are not supported (only \"text\")", name,
                               json_string_value(type));
        if (!json_is_string(text)) return dz_oai_fail(err, name, "%s.text must be a string", name);
        total += json_string_length(text);
    }
    char *s = malloc(total + 1);
    if (!s) return nomem(err);
    size_t at = 0;
    json_array_foreach(v, i, part) {
        json_t *text = json_object_get(part, "text");
        memcpy(s + at, json_string_value(text), json_string_length(text));
        at += json_string_length(text);
    }
    s[at] = '\0';
    *out = s;
    return DZ_OK;
}

static dz_status parse_messages(json_t *root, dz_oai_request *r, dz_oai_error *err) {
    json_t *msgs = json_object_get(root, "messages");
    if (!msgs || json_is_null(msgs)) return dz_oai_fail(err, "messages", "messages is required");
    if (!json_is_array(msgs)) return dz_oai_fail(err, "messages", "messages must be a list, got %s", type_name(msgs));
    size_t n = json_array_size(msgs);
    if (n == 0) return dz_oai_fail(err, "messages", "messages must not be empty");
    r->messages = calloc(n, sizeof *r->messages);
    if (!r->messages) return nomem(err);
    char name[96];
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(msgs, i);
        snprintf(name, sizeof name, "messages[%zu]", i);
        if (!json_is_object(m)) return dz_oai_fail(err, name, "%s must be an object, got %s", name, type_name(m));
        json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        snprintf(name, sizeof name, "messages[%zu].role", i);
        if (!json_is_string(role)) return dz_oai_fail(err, name, "%s must be a string", name);
        const char *rs = json_string_value(role);
        if (!strcmp(rs, "developer")) rs = "system";
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant"))
            return dz_oai_fail(err, name, "%s must be system, user or assistant, got '%.40s'", name, rs);
        r->messages[i].role = dup_bytes(rs, strlen(rs));
        r->n_messages = i + 1;
        if (!r->messages[i].role) return nomem(err);
        snprintf(name, sizeof name, "messages[%zu].content", i);
        if (!content || json_is_null(content)) {
            if (strcmp(rs, "assistant")) return dz_oai_fail(err, name, "%s is required", name);
            r->messages[i].content = dup_bytes("", 0);
            if (!r->messages[i].content) return nomem(err);
        } else if (parse_content(content, name, &r->messages[i].content, err)) {
            return DZ_ERR_ARG;
        }
    }
    return DZ_OK;
}

/* ---- prompts and embedding inputs ---- */

static dz_status parse_token_list(json_t *v, const char *param, int32_t n_vocab, dz_oai_prompt *p,
                                  dz_oai_error *err) {
    size_t n = json_array_size(v);
    if (n == 0) return dz_oai_fail(err, param, "%s must not be empty", param);
    if (n > INT32_MAX / 2) return dz_oai_fail(err, param, "%s is too long", param);
    p->tokens = malloc(n * sizeof *p->tokens);
    if (!p->tokens) return nomem(err);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(v, i);
        if (!json_is_integer(t))
            return dz_oai_fail(err, param, "%s[%zu] must be a token id (an integer), got %s", param, i, type_name(t));
        long long id = json_integer_value(t);
        if (id < 0 || id >= n_vocab)
            return dz_oai_fail(err, param, "%s[%zu]: token id %lld is outside the vocabulary (0..%d)", param, i, id,
                               n_vocab - 1);
        p->tokens[i] = (int32_t)id;
    }
    p->n_tokens = (int32_t)n;
    return DZ_OK;
}

static dz_status parse_text(json_t *v, const char *param, dz_oai_prompt *p, dz_oai_error *err) {
    if (json_string_length(v) == 0) return dz_oai_fail(err, param, "%s must not be empty", param);
    p->text = dup_bytes(json_string_value(v), json_string_length(v));
    p->text_len = json_string_length(v);
    return p->text ? DZ_OK : nomem(err);
}

/* A string, a list of strings, a list of token ids, or a list of lists of token ids. */
static dz_status parse_prompts(json_t *root, const char *key, const dz_oai_limits *lim, dz_oai_request *r,
                               dz_oai_error *err) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return dz_oai_fail(err, key, "%s is required", key);
    if (json_is_string(v)) {
        r->prompts = calloc(1, sizeof *r->prompts);
        if (!r->prompts) return nomem(err);
        r->n_prompts = 1;
        return parse_text(v, key, &r->prompts[0], err);
    }
    if (!json_is_array(v))
        return dz_oai_fail(err, key, "%s must be a string, a list of strings or a list of token ids, got %s", key,
                           type_name(v));
    size_t n = json_array_size(v);
    if (n == 0) return dz_oai_fail(err, key, "%s must not be empty", key);
    if (json_is_integer(json_array_get(v, 0))) { /* one prompt of token ids */
        r->prompts = calloc(1, sizeof *r->prompts);
        if (!r->prompts) return nomem(err);
        r->n_prompts = 1;
        return parse_token_list(v, key, lim->n_vocab, &r->prompts[0], err);
    }
    if (n > (size_t)lim->max_prompts)
        return dz_oai_fail(err, key, "%s: at most %d inputs per request, got %zu", key, lim->max_prompts, n);
    r->prompts = calloc(n, sizeof *r->prompts);
    if (!r->prompts) return nomem(err);
    r->n_prompts = n;
    char name[64];
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        snprintf(name, sizeof name, "%s[%zu]", key, i);
        dz_status s = json_is_string(e)  ? parse_text(e, name, &r->prompts[i], err)
                      : json_is_array(e) ? parse_token_list(e, name, lim->n_vocab, &r->prompts[i], err)
                                         : dz_oai_fail(err, name, "%s must be a string or a list of token ids, got %s",
                                                       name, type_name(e));
        if (s) return s;
    }
    return DZ_OK;
}

/* ---- sampling ---- */

static dz_status parse_stop(json_t *root, const dz_oai_limits *lim, dz_oai_request *r, dz_oai_error *err) {
    json_t *v = field(root, "stop");
    if (!v) return DZ_OK;
    size_t n = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : 0;
    if (!json_is_string(v) && !json_is_array(v))
        return dz_oai_fail(err, "stop", "stop must be a string or a list of strings, got %s", type_name(v));
    if (n > (size_t)lim->max_stop)
        return dz_oai_fail(err, "stop", "stop: at most %d stop strings, got %zu", lim->max_stop, n);
    if (n == 0) return DZ_OK;
    r->stop = calloc(n, sizeof *r->stop);
    if (!r->stop) return nomem(err);
    char name[32];
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_string(v) ? v : json_array_get(v, i);
        snprintf(name, sizeof name, json_is_string(v) ? "stop" : "stop[%zu]", i);
        if (!json_is_string(s)) return dz_oai_fail(err, name, "%s must be a string, got %s", name, type_name(s));
        size_t len = json_string_length(s);
        if (len == 0) return dz_oai_fail(err, name, "%s must not be empty", name);
        if (len > (size_t)lim->max_stop_bytes)
            return dz_oai_fail(err, name, "%s is longer than %d bytes", name, lim->max_stop_bytes);
        r->stop[i] = dup_bytes(json_string_value(s), len);
        r->n_stop = i + 1;
        if (!r->stop[i]) return nomem(err);
    }
    return DZ_OK;
}

static dz_status parse_logit_bias(json_t *root, const dz_oai_limits *lim, dz_oai_request *r, dz_oai_error *err) {
    json_t *v = field(root, "logit_bias");
    if (!v) return DZ_OK;
    if (!json_is_object(v))
        return dz_oai_fail(err, "logit_bias", "logit_bias must be an object, got %s", type_name(v));
    size_t n = json_object_size(v);
    if (n == 0) return DZ_OK;
    r->logit_bias = calloc(n, sizeof *r->logit_bias);
    if (!r->logit_bias) return nomem(err);
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        /* canonical decimal only ("7", not "07", "+7" or " 7"): one key per token, so biases cannot add up */
        bool canonical = key[0] >= '0' && key[0] <= '9' && !(key[0] == '0' && key[1]) && strlen(key) <= 10;
        for (const char *k = key; canonical && *k; k++) canonical = *k >= '0' && *k <= '9';
        long long id = canonical ? strtoll(key, NULL, 10) : -1;
        if (!canonical || id < 0 || id >= lim->n_vocab)
            return dz_oai_fail(err, "logit_bias",
                               "logit_bias: key '%.40s' is not a token id of the vocabulary (a decimal 0..%d without "
                               "sign, spaces or leading zeros)", key, lim->n_vocab - 1);
        if (!json_is_number(val) || json_number_value(val) < -100 || json_number_value(val) > 100)
            return dz_oai_fail(err, "logit_bias", "logit_bias[%lld] must be a number in [-100, 100]", id);
        double b = json_number_value(val);
        r->logit_bias[r->n_logit_bias].token = (int32_t)id;
        r->logit_bias[r->n_logit_bias].bias = b <= -100 ? -INFINITY : (float)b; /* -100 bans, as OpenAI's */
        r->n_logit_bias++;
    }
    return DZ_OK;
}

static dz_status parse_sampling(json_t *root, const dz_oai_limits *lim, dz_oai_request *r, dz_oai_error *err) {
    long long v = 0;
    bool given = false, given2 = false;
    /* max_completion_tokens (newer) wins over max_tokens */
    if (get_int(root, "max_completion_tokens", 1, INT32_MAX, &v, &given, err)) return DZ_ERR_ARG;
    if (given) r->max_tokens = (int32_t)v;
    else {
        if (get_int(root, "max_tokens", 1, INT32_MAX, &v, &given, err)) return DZ_ERR_ARG;
        if (given) r->max_tokens = (int32_t)v;
    }
    r->n = 1;
    if (get_int(root, "n", 1, lim->max_n, &v, &given, err)) return DZ_ERR_ARG;
    if (given) r->n = (int32_t)v;
    if (get_num(root, "temperature", 0, false, 2, &r->temperature, &r->has_temperature, err)) return DZ_ERR_ARG;
    if (get_num(root, "top_p", 0, true, 1, &r->top_p, &r->has_top_p, err)) return DZ_ERR_ARG;
    if (get_num(root, "presence_penalty", -2, false, 2, &r->presence_penalty, &given, err)) return DZ_ERR_ARG;
    if (get_num(root, "frequency_penalty", -2, false, 2, &r->frequency_penalty, &given, err)) return DZ_ERR_ARG;
    if (get_int(root, "seed", INT64_MIN, INT64_MAX, &v, &r->has_seed, err)) return DZ_ERR_ARG;
    r->seed = (uint64_t)v;
    if (parse_stop(root, lim, r, err) || parse_logit_bias(root, lim, r, err)) return DZ_ERR_ARG;
    if (r->kind == DZ_OAI_CHAT) {
        if (get_bool(root, "logprobs", &r->logprobs, err)) return DZ_ERR_ARG;
        if (get_int(root, "top_logprobs", 0, DZ_TOP_LOGPROBS_MAX, &v, &given, err)) return DZ_ERR_ARG;
        if (given) r->top_logprobs = (int32_t)v;
        if (r->top_logprobs > 0 && !r->logprobs)
            return dz_oai_fail(err, "top_logprobs", "top_logprobs needs logprobs set to true");
    } else {
        if (get_int(root, "logprobs", 0, DZ_TOP_LOGPROBS_MAX, &v, &given2, err)) return DZ_ERR_ARG;
        r->logprobs = given2;
        r->top_logprobs = given2 ? (int32_t)v : 0;
        if (get_bool(root, "echo", &r->echo, err)) return DZ_ERR_ARG;
        if (r->echo) return dz_oai_fail(err, "echo", "echo is not supported");
    }
    if (get_bool(root, "stream", &r->stream, err)) return DZ_ERR_ARG;
    json_t *so = field(root, "stream_options");
    if (so && !json_is_object(so))
        return dz_oai_fail(err, "stream_options", "stream_options must be an object, got %s", type_name(so));
    if (so && get_bool(so, "include_usage", &r->include_usage, err)) {
        snprintf(err->param, sizeof err->param, "stream_options.include_usage");
        return DZ_ERR_ARG;
    }
    return get_bool(root, "ignore_eos", &r->ignore_eos, err);
}

/* ---- the request ---- */

static dz_status parse_common(json_t *root, dz_oai_request *r, dz_oai_error *err) {
    json_t *m = field(root, "model");
    if (m) {
        if (!json_is_string(m)) return dz_oai_fail(err, "model", "model must be a string, got %s", type_name(m));
        if (json_string_length(m) == 0) return dz_oai_fail(err, "model", "model must not be empty");
        r->model = dup_bytes(json_string_value(m), json_string_length(m));
        if (!r->model) return nomem(err);
    }
    json_t *u = field(root, "user");
    if (u) {
        if (!json_is_string(u)) return dz_oai_fail(err, "user", "user must be a string, got %s", type_name(u));
        if (json_string_length(u) > 256) return dz_oai_fail(err, "user", "user is longer than 256 bytes");
        r->user = dup_bytes(json_string_value(u), json_string_length(u));
        if (!r->user) return nomem(err);
    }
    return DZ_OK;
}

static dz_status parse_embedding(json_t *root, const dz_oai_limits *lim, dz_oai_request *r, dz_oai_error *err) {
    if (parse_prompts(root, "input", lim, r, err)) return DZ_ERR_ARG;
    json_t *f = field(root, "encoding_format");
    if (f) {
        if (!json_is_string(f) || (strcmp(json_string_value(f), "float") && strcmp(json_string_value(f), "base64")))
            return dz_oai_fail(err, "encoding_format", "encoding_format must be \"float\" or \"base64\"");
        r->base64 = !strcmp(json_string_value(f), "base64");
    }
    if (field(root, "dimensions"))
        return dz_oai_fail(err, "dimensions", "dimensions is not supported (the model's width is fixed)");
    return DZ_OK;
}

dz_status dz_oai_parse(dz_oai_kind kind, const char *body, size_t len, const dz_oai_limits *lim,
                       dz_oai_request **out, dz_oai_error *err) {
    memset(err, 0, sizeof *err);
    json_t *root = dz_oai_load_object(body, len, err);
    if (!root) return DZ_ERR_ARG;
    dz_oai_request *r = calloc(1, sizeof *r);
    if (!r) {
        json_decref(root);
        return nomem(err);
    }
    r->kind = kind;
    r->n = 1;
    dz_status s = parse_common(root, r, err);
    if (!s) {
        if (kind == DZ_OAI_EMBEDDING) s = parse_embedding(root, lim, r, err);
        else if (kind == DZ_OAI_CHAT) s = parse_messages(root, r, err);
        else s = parse_prompts(root, "prompt", lim, r, err);
    }
    if (!s && kind != DZ_OAI_EMBEDDING) s = parse_sampling(root, lim, r, err);
    if (!s && kind != DZ_OAI_EMBEDDING && r->n_prompts * (size_t)r->n > (size_t)lim->max_prompts)
        s = dz_oai_fail(err, "n", "n times the number of prompts must be at most %d", lim->max_prompts);
    json_decref(root);
    if (s) {
        dz_oai_request_free(r);
        return s;
    }
    *out = r;
    return DZ_OK;
}
