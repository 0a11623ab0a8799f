/* libFuzzer target for the OpenAI request parser (src/serve/oai_parse.c):
 * the first byte picks the route (chat, completions, embeddings), the rest
 * is the request body. Any input must parse or fail with a 400 naming the
 * defect: never crash, leak or hang. */
#include <stdlib.h>
#include <string.h>

#include "serve/oai_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const dz_oai_kind kinds[3] = {DZ_OAI_CHAT, DZ_OAI_COMPLETION, DZ_OAI_EMBEDDING};
    const dz_oai_limits lim = {.n_vocab = 512, .max_n = 16, .max_stop = 16, .max_stop_bytes = 256,
                               .max_prompts = 64};
    dz_oai_request *r = NULL;
    dz_oai_error err;
    dz_status s = dz_oai_parse(kinds[data[0] % 3], (const char *)data + 1, size - 1, &lim, &r, &err);
    if (s == DZ_OK) {
        if (!r || r->n < 1 || r->n > lim.max_n || r->n_stop > (size_t)lim.max_stop) __builtin_trap();
        for (size_t i = 0; i < r->n_prompts; i++)
            for (int32_t j = 0; j < r->prompts[i].n_tokens; j++)
                if (r->prompts[i].tokens[j] < 0 || r->prompts[i].tokens[j] >= lim.n_vocab) __builtin_trap();
        dz_oai_request_free(r);
    } else {
        if (r || !err.message[0] || (err.status != 400 && err.status != 500)) __builtin_trap();
    }
    return 0;
}
