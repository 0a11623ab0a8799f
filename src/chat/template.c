/* Public API of chat templates: parse, built-ins by name, choosing a model's
 * template, and rendering messages (with the system-message merge for
 * templates that do not show one). */
#include <stdlib.h>
#include <string.h>

#include "chat/chat_impl.h"

struct dz_chat_template {
    dzc_arena arena;
    dzc_body body;
    bool supports_system;
};

enum { DZC_MAX_STEPS = 8 * 1000 * 1000 };

/* The templates shipped in the models' tokenizer_config.json. */
static const char tmpl_llama2[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif "
    "%}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
    "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] "
    "== 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
static const char tmpl_llama3[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
    "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
static const char tmpl_mistral[] =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
    "'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
    "are supported!') }}{% endif %}{% endfor %}";
static const char tmpl_chatml[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
static const char tmpl_phi3[] =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n' + "
    "message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif (message['role'] == 'assistant') "
    "%}{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}";
static const char tmpl_gemma[] =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% "
    "endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "(message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif "
    "%}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if "
    "add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}";
static const char tmpl_deepseek[] =
    "{% if not add_generation_prompt is defined %}\n{% set add_generation_prompt = false %}\n{% endif %}\n{%- set "
    "ns = namespace(found=false) -%}\n{%- for message in messages -%}\n    {%- if message['role'] == 'system' -%}\n "
    "       {%- set ns.found = true -%}\n    {%- endif -%}\n{%- endfor -%}\n{{bos_token}}{%- if not ns.found -%}\n{{'You "
    "are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek Company, and you "
    "only answer questions related to computer science. For politically sensitive questions, security and privacy "
    "issues, and other non-computer science questions, you will refuse to answer\\n'}}\n{%- endif %}\n{%- for "
    "message in messages %}\n    {%- if message['role'] == 'system' %}\n{{ message['content'] }}\n    {%- else %}\n  "
    "      {%- if message['role'] == 'user' %}\n{{'### Instruction:\\n' + message['content'] + '\\n'}}\n        {%- "
    "else %}\n{{'### Response:\\n' + message['content'] + '\\n<|EOT|>\\n'}}\n        {%- endif %}\n    {%- endif "
    "%}\n{%- endfor %}\n{% if add_generation_prompt %}\n{{'### Response:'}}\n{% endif %}";

static const char *const builtin_names[] = {"llama2", "llama3", "mistral", "chatml", "qwen2",
                                            "phi3",   "gemma",  "deepseek", NULL};
static const char *const builtin_sources[] = {tmpl_llama2, tmpl_llama3, tmpl_mistral, tmpl_chatml, tmpl_chatml,
                                              tmpl_phi3,   tmpl_gemma,  tmpl_deepseek};

const char *const *dz_chat_template_builtin_names(size_t *n) {
    if (n) *n = sizeof builtin_names / sizeof *builtin_names - 1;
    return builtin_names;
}

static dz_status render(const dz_chat_template *t, const dz_chat_message *msgs, size_t n,
                        const dz_chat_render_opts *opts, char **out, size_t *out_len);

static const char probe_needle[] = "<<dizuo system probe>>";

dz_status dz_chat_template_parse(const char *src, size_t len, dz_chat_template **out) {
    if (!out || (!src && len)) return dz_fail(DZ_ERR_ARG, "dz_chat_template_parse: NULL argument");
    dz_chat_template *t = calloc(1, sizeof *t);
    if (!t) return dz_fail(DZ_ERR_NOMEM, "chat template: out of memory");
    /* Tokens and tree take a small multiple of the text: bound it anyway. */
    t->arena.limit = len < SIZE_MAX / 1024 - 4096 ? 512 * (len + 4096) : SIZE_MAX;
    dzc_token *toks;
    size_t n_toks;
    dz_status s = dzc_lex(&t->arena, src ? src : "", len, &toks, &n_toks);
    if (!s) s = dzc_parse(&t->arena, toks, n_toks, &t->body);
    if (s) {
        dz_chat_template_destroy(t);
        return s;
    }
    /* Does a system message show? (as llama.cpp's minja decides it) */
    dz_chat_message probe[2] = {{"system", probe_needle}, {"user", "Hey"}};
    dz_chat_render_opts popts = {.no_system_merge = true};
    char *text = NULL;
    size_t text_len = 0;
    t->supports_system = render(t, probe, 2, &popts, &text, &text_len) == DZ_OK && strstr(text, probe_needle);
    free(text);
    dz_clear_error();
    *out = t;
    return DZ_OK;
}

dz_status dz_chat_template_builtin(const char *name, dz_chat_template **out) {
    for (size_t i = 0; name && builtin_names[i]; i++)
        if (strcmp(name, builtin_names[i]) == 0)
            return dz_chat_template_parse(builtin_sources[i], strlen(builtin_sources[i]), out);
    return dz_fail(DZ_ERR_ARG,
                   "unknown chat template '%s' (built-in templates: llama2, llama3, mistral, chatml, qwen2, phi3, "
                   "gemma, deepseek)",
                   name ? name : "(null)");
}

dz_status dz_chat_template_for_model(const char *model_template, const char *fallback_name,
                                     dz_chat_template **out) {
    if (model_template && *model_template) {
        dz_status s = dz_chat_template_parse(model_template, strlen(model_template), out);
        return s ? dz_error_prefix(s, "model's tokenizer.chat_template: ") : DZ_OK;
    }
    return dz_chat_template_builtin(fallback_name && *fallback_name ? fallback_name : "chatml", out);
}

bool dz_chat_template_supports_system(const dz_chat_template *t) { return t && t->supports_system; }

void dz_chat_template_destroy(dz_chat_template *t) {
    if (!t) return;
    dzc_arena_free(&t->arena);
    free(t);
}

static dz_status make_message(dzc_ctx *c, const char *role, const char *content, size_t content_len,
                              dzc_value *out) {
    dzc_dict *d = dzc_dict_new(c);
    if (!d) return dzc_err_nomem(c);
    dzc_value v = content ? dzc_str(content, content_len) : dzc_none();
    dz_status s = dzc_dict_set(c, d, dzc_str("role", 4), dzc_str(role, strlen(role)));
    if (!s) s = dzc_dict_set(c, d, dzc_str("content", 7), v);
    *out = dzc_dict_value(d);
    return s;
}

/* messages as template values; with merge, system contents go to the start
 * of the next user message, separated by "\n". */
static dz_status build_messages(dzc_ctx *c, const dz_chat_message *msgs, size_t n, bool merge, dzc_list **out) {
    dzc_list *l = dzc_list_new(c, n);
    if (!l) return dzc_err_nomem(c);
    dzc_buf pending = {.limit = c->arena.limit};
    bool have_pending = false;
    dz_status s = DZ_OK;
    for (size_t i = 0; i < n && !s; i++) {
        const char *role = msgs[i].role, *content = msgs[i].content;
        if (!role) {
            s = dz_fail(DZ_ERR_ARG, "chat message %zu has no role", i);
            break;
        }
        size_t len = content ? strlen(content) : 0;
        if (merge && strcmp(role, "system") == 0) {
            if (have_pending) dzc_buf_put(&pending, "\n", 1);
            dzc_buf_put(&pending, content ? content : "", len);
            have_pending = true;
            continue;
        }
        if (merge && have_pending && strcmp(role, "user") == 0) {
            dzc_buf_put(&pending, "\n", 1);
            dzc_buf_put(&pending, content ? content : "", len);
            dzc_value merged;
            if ((s = dzc_buf_to_value(c, &pending, &merged))) break;
            memset(&pending, 0, sizeof pending);
            pending.limit = c->arena.limit;
            have_pending = false;
            content = merged.u.s.p;
            len = merged.u.s.n;
        }
        dzc_value m;
        if (!(s = make_message(c, role, content, len, &m))) l->items[l->n++] = m;
    }
    if (!s && have_pending) { /* no user message followed: keep it as one */
        dzc_value merged, m;
        if (!(s = dzc_buf_to_value(c, &pending, &merged)) &&
            !(s = make_message(c, "user", merged.u.s.p, merged.u.s.n, &m))) {
            if (l->n == l->cap) s = dzc_list_push(c, l, m);
            else l->items[l->n++] = m;
        }
    } else {
        dzc_buf_free(&pending);
    }
    *out = l;
    return s;
}

static dz_status render(const dz_chat_template *t, const dz_chat_message *msgs, size_t n,
                        const dz_chat_render_opts *opts, char **out, size_t *out_len) {
    dz_chat_render_opts o = opts ? *opts : (dz_chat_render_opts){0};
    dzc_buf text = {.limit = o.max_output ? o.max_output : 1 << 20};
    dzc_ctx c = {.out = &text, .max_steps = DZC_MAX_STEPS, .line = 1};
    c.arena.limit = o.max_memory ? o.max_memory : (size_t)64 << 20;
    c.max_iterations = o.max_iterations ? o.max_iterations : 100000;
    dzc_dict *globals = dzc_dict_new(&c);
    dzc_list *messages = NULL;
    dz_status s = globals ? DZ_OK : dzc_err_nomem(&c);
    bool merge = !o.no_system_merge && !t->supports_system;
    if (!s) s = build_messages(&c, msgs, n, merge, &messages);
    if (!s) {
        c.scopes[c.n_scopes++] = globals;
        const char *bos = o.bos_token ? o.bos_token : "", *eos = o.eos_token ? o.eos_token : "";
        if (!(s = dzc_scope_set(&c, "messages", dzc_list_value(messages))) &&
            !(s = dzc_scope_set(&c, "add_generation_prompt", dzc_bool(o.add_generation_prompt))) &&
            !(s = dzc_scope_set(&c, "bos_token", dzc_str(bos, strlen(bos)))))
            s = dzc_scope_set(&c, "eos_token", dzc_str(eos, strlen(eos)));
        /* A new scope for the template body, so {% set %} at top level
         * never overwrites the inputs seen by the next statement's lookups
         * of undefined names. */
        if (!s) {
            c.scopes[c.n_scopes++] = dzc_dict_new(&c);
            if (!c.scopes[c.n_scopes - 1]) s = dzc_err_nomem(&c);
        }
        if (!s) s = dzc_exec_body(&c, &t->body);
    }
    dzc_arena_free(&c.arena);
    if (s) {
        dzc_buf_free(&text);
        return s;
    }
    if (!text.p && !(text.p = calloc(1, 1))) return dz_fail(DZ_ERR_NOMEM, "chat template: out of memory");
    *out = text.p;
    *out_len = text.n;
    return DZ_OK;
}

dz_status dz_chat_template_render(const dz_chat_template *t, const dz_chat_message *msgs, size_t n,
                                  const dz_chat_render_opts *opts, char **out, size_t *out_len) {
    if (!t || !out || (n && !msgs)) return dz_fail(DZ_ERR_ARG, "dz_chat_template_render: NULL argument");
    size_t len = 0;
    dz_status s = render(t, msgs, n, opts, out, &len);
    if (!s && out_len) *out_len = len;
    return s;
}
