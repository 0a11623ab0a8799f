/* dizuo — chat templates: a sandboxed interpreter of the Jinja subset that
 * models' tokenizer.chat_template strings use, and OpenAI-style messages
 * rendered with it into the prompt text. See docs/chat-templates.md for the
 * supported language and the limits. */
#ifndef DIZUO_CHAT_H
#define DIZUO_CHAT_H

#include "dizuo/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One message of a conversation. role and content are NUL-terminated UTF-8;
 * content may be NULL (rendered as none). */
typedef struct dz_chat_message {
    const char *role;
    const char *content;
} dz_chat_message;

/* A parsed template: opaque and immutable, so one template may be rendered
 * from many threads at once. */
typedef struct dz_chat_template dz_chat_template;

/* Render options. Zero-initialized means: no generation prompt, empty
 * bos/eos tokens, default limits. */
typedef struct dz_chat_render_opts {
    bool add_generation_prompt;
    const char *bos_token;  /* NULL = "" */
    const char *eos_token;  /* NULL = "" */
    size_t max_output;      /* bytes; 0 = 1 MiB */
    size_t max_iterations;  /* loop iterations over the whole render; 0 = 100000 */
    size_t max_memory;      /* bytes the render may allocate; 0 = 64 MiB */
    /* When the template does not show a system message (it raises on one or
     * drops it), merge the system content into the first user message,
     * separated by "\n" (what llama.cpp does). On by default: set true to
     * render the messages exactly as given. */
    bool no_system_merge;
} dz_chat_render_opts;

/* Parses template text (len bytes, need not be NUL-terminated). On success
 * *out owns a new template (free with dz_chat_template_destroy). On a syntax
 * error returns DZ_ERR_FORMAT with a message naming the line and the defect,
 * and leaves *out unchanged. Never crashes on any input; bounded nesting. */
dz_status dz_chat_template_parse(const char *src, size_t len, dz_chat_template **out);

/* The built-in template of the given name: llama2, llama3, mistral, chatml,
 * qwen2 (= chatml), phi3, gemma, deepseek. Unknown name: DZ_ERR_ARG with a
 * message listing the names. *out is owned by the caller. */
dz_status dz_chat_template_builtin(const char *name, dz_chat_template **out);

/* Names accepted by dz_chat_template_builtin; *n gets the count (may be
 * NULL). Static storage, NULL-terminated. */
const char *const *dz_chat_template_builtin_names(size_t *n);

/* The template for a model: its GGUF tokenizer.chat_template text when
 * non-NULL and non-empty, else the built-in template fallback_name (NULL or
 * "" = chatml). A model template that fails to parse is an error naming
 * tokenizer.chat_template (no silent fallback). *out owned by the caller. */
dz_status dz_chat_template_for_model(const char *model_template, const char *fallback_name,
                                     dz_chat_template **out);

/* Renders n messages (msgs may be NULL when n is 0) into *out, a malloc'd
 * NUL-terminated string of *out_len bytes that the caller frees. opts may be
 * NULL. The template sees: messages (list of {role, content} dicts),
 * add_generation_prompt, bos_token, eos_token, raise_exception(),
 * strftime_now(). Fails with DZ_ERR_FORMAT when the template raises
 * (message = its text) or misuses a value, DZ_ERR_ARG on a bad message, and
 * DZ_ERR_UNSUPPORTED when a limit is exceeded; *out is untouched on failure.
 * Thread-safe for a shared template. */
dz_status dz_chat_template_render(const dz_chat_template *t, const dz_chat_message *msgs,
                                  size_t n, const dz_chat_render_opts *opts, char **out,
                                  size_t *out_len);

/* Whether the template shows a system message in its output (decided at
 * parse time by rendering a probe conversation). */
bool dz_chat_template_supports_system(const dz_chat_template *t);

/* Frees a template; NULL is a no-op. */
void dz_chat_template_destroy(dz_chat_template *t);

#ifdef __cplusplus
}
#endif
#endif /* DIZUO_CHAT_H */
