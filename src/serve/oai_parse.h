/* Request bodies of the OpenAI-compatible routes -> validated C structures.
 * A pure function of the bytes and the limits (no server state), so it can
 * be fuzzed and unit-tested on its own. */
#ifndef DZ_OAI_PARSE_H
#define DZ_OAI_PARSE_H

#include <jansson.h>

#include "dizuo/engine.h"

typedef enum dz_oai_kind {
    DZ_OAI_CHAT = 1,   /* POST /v1/chat/completions */
    DZ_OAI_COMPLETION, /* POST /v1/completions */
    DZ_OAI_EMBEDDING,  /* POST /v1/embeddings */
} dz_oai_kind;

enum { DZ_OAI_MAX_DEPTH = 64 }; /* JSON nesting limit */

/* What a request may ask for. */
typedef struct dz_oai_limits {
    int32_t n_vocab;      /* token ids and logit_bias keys must be below this */
    int32_t max_n;        /* n: 1..max_n */
    int32_t max_stop;     /* stop strings */
    int32_t max_stop_bytes;
    int32_t max_prompts;  /* completion prompts / embedding inputs in a list */
} dz_oai_limits;

/* A client error: HTTP status (400), the parameter it concerns ("" for none)
 * and a message naming the defect. */
typedef struct dz_oai_error {
    int status;
    char param[96];
    char message[320];
} dz_oai_error;

typedef struct dz_oai_message {
    char *role;    /* system, user or assistant ("developer" becomes system) */
    char *content; /* text parts joined; "" for none */
} dz_oai_message;

/* A prompt (completions) or an input (embeddings): text or token ids. */
typedef struct dz_oai_prompt {
    char *text;      /* NULL when tokens */
    size_t text_len;
    int32_t *tokens; /* NULL when text */
    int32_t n_tokens;
} dz_oai_prompt;

typedef struct dz_oai_request {
    dz_oai_kind kind;
    char *model;                /* NULL when absent */
    dz_oai_message *messages;   /* chat */
    size_t n_messages;
    dz_oai_prompt *prompts;     /* completions: prompt; embeddings: input */
    size_t n_prompts;
    int32_t max_tokens;         /* 0: absent */
    int32_t n;                  /* choices per prompt: 1.. */
    bool has_temperature, has_top_p, has_seed;
    double temperature, top_p, presence_penalty, frequency_penalty;
    uint64_t seed;
    char **stop;
    size_t n_stop;
    dz_logit_bias *logit_bias;
    size_t n_logit_bias;
    bool logprobs;              /* chat: logprobs; completions: logprobs given */
    int32_t top_logprobs;       /* alternatives per token, 0..20 */
    bool stream, include_usage, ignore_eos;
    bool echo;                  /* completions: refused when true (unsupported) */
    char *user;
    bool base64;                /* embeddings: encoding_format "base64" */
} dz_oai_request;

/* Parses and checks a request body of the given kind. On DZ_OK *out is a new
 * request (dz_oai_request_free). Otherwise err says what is wrong (status
 * 400, param, message), *out is untouched, and the status is DZ_ERR_ARG
 * (client error) or DZ_ERR_NOMEM. Never crashes or allocates far beyond
 * len on any input. */
dz_status dz_oai_parse(dz_oai_kind kind, const char *body, size_t len, const dz_oai_limits *lim,
                       dz_oai_request **out, dz_oai_error *err);
void dz_oai_request_free(dz_oai_request *r); /* NULL is a no-op */

/* The JSON object of a body: checks the nesting depth (DZ_OAI_MAX_DEPTH)
 * before parsing, then that the top level is an object. NULL with err set
 * (status 400, param "", message naming JSON) otherwise. Caller owns the
 * returned value (json_decref). */
json_t *dz_oai_load_object(const char *body, size_t len, dz_oai_error *err);

/* Fills err (status 400) and returns DZ_ERR_ARG. */
dz_status dz_oai_fail(dz_oai_error *err, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
