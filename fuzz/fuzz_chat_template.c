/* libFuzzer target for the chat-template interpreter: the input is template
 * text, a NUL byte, then a message payload of fields separated by \x01
 * (role, content, role, content, ...; the first payload byte's low bit sets
 * add_generation_prompt). Any input must parse or fail with a message, and a
 * parsed template must render or fail with a message: never crash, leak or
 * hang (the render budgets are set small so slow inputs stay fast). */
#include <stdlib.h>
#include <string.h>

#include "dizuo/chat.h"

enum { MAX_MESSAGES = 16 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    const char *nul = memchr(text, '\0', size);
    size_t tlen = nul ? (size_t)(nul - text) : size;
    dz_chat_template *t = NULL;
    if (dz_chat_template_parse(text, tlen, &t) != DZ_OK) {
        if (!dz_last_error()[0]) __builtin_trap(); /* a failure must say why */
        return 0;
    }
    /* Messages from the payload, copied NUL-terminated. */
    size_t plen = nul ? size - tlen - 1 : 0;
    char *payload = malloc(plen + 1);
    if (!payload) {
        dz_chat_template_destroy(t);
        return 0;
    }
    if (plen) memcpy(payload, nul + 1, plen);
    payload[plen] = '\0';
    bool gen = plen && (payload[0] & 1);
    dz_chat_message msgs[MAX_MESSAGES];
    size_t n = 0;
    char *p = plen ? payload + 1 : payload;
    while (*p && n < MAX_MESSAGES) {
        char *role = p, *sep = strchr(p, '\x01');
        if (!sep) break;
        *sep = '\0';
        char *content = sep + 1, *end = strchr(content, '\x01');
        if (end) *end = '\0';
        msgs[n].role = role;
        msgs[n].content = content;
        n++;
        if (!end) break;
        p = end + 1;
    }
    dz_chat_render_opts o = {.add_generation_prompt = gen, .bos_token = "<s>", .eos_token = "</s>",
                             .max_output = 64 * 1024, .max_iterations = 10000, .max_memory = 16 << 20};
    for (int merge = 0; merge < 2; merge++) {
        o.no_system_merge = merge;
        char *out = NULL;
        size_t len = 0;
        dz_status s = dz_chat_template_render(t, msgs, n, &o, &out, &len);
        if (s == DZ_OK) {
            if (!out || len > o.max_output || out[len] != '\0') __builtin_trap();
            free(out);
        } else if (out) {
            __builtin_trap(); /* failure must leave *out untouched */
        }
    }
    free(payload);
    dz_chat_template_destroy(t);
    return 0;
}
