/* Internals of the generation routes (chat and completions) shared by
 * oai_gen.c (a request's life: admission, submission, waiting, billing,
 * responses) and gen_choice.c (one choice's text: detokenization, stop
 * strings, logprobs, and the JSON of chunks and bodies). */
#ifndef DZ_GEN_IMPL_H
#define DZ_GEN_IMPL_H

#include "serve/serve_impl.h"

typedef struct gen_job gen_job;

/* One choice: one engine request. Its text state belongs to the engine
 * thread until on_done, then (after the job's mutex hand-over) to the
 * connection thread. */
typedef struct gen_choice {
    gen_job *job;
    int index;           /* choice index in the response */
    int32_t prompt;      /* which prompt */
    dz_gen *gen;         /* set under job->mu */
    dz_detok *detok;
    char *text;          /* generated text so far */
    size_t len, cap;
    size_t emitted;      /* bytes of text already streamed */
    size_t final_len;    /* bytes shown in the end (a matched stop string cut) */
    bool stop_matched;
    json_t *lp;          /* logprob entries, chat style, one per token (NULL: not asked) */
    size_t *lp_offset;   /* text offset of each entry (completions' text_offset) */
    size_t lp_cap, lp_sent;
    bool done;           /* on_done ran (under job->mu) */
    dz_gen_result res;
} gen_choice;

struct gen_job {
    dz_active active;    /* first: the drain's list entry */
    dz_server *srv;
    dz_req *req;         /* a reference */
    dz_oai_request *oai;
    bool chat, stream;
    char id[48];
    int64_t created, start_ms;
    double deadline;     /* dz_time_now() after which the job is cancelled */
    int32_t **prompts;   /* token ids per prompt */
    size_t n_prompts;
    int32_t *n_prompt;
    int n_choices;       /* submitted (all of them unless a submission failed) */
    int n_init;          /* initialised (freed by the job) */
    gen_choice *choices;
    dz_reservation *resv;
    atomic_int refs;     /* the handler's (then the stream's) + one per submitted choice */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_done;
    bool cancel_requested, client_gone, timed_out;
    bool settled;        /* billed (or released) */
    bool ended;          /* everything the stream will say is queued */
    /* the stream's bytes, produced on the engine thread and the connection thread */
    char *q;
    size_t q_len, q_off, q_cap;
    double last_send;
    /* totals after billing */
    int64_t prompt_tokens, cached_tokens, completion_tokens;
};

/* gen_choice.c */
dz_status dz_choice_init(gen_choice *c, gen_job *job, int index, int32_t prompt);
void dz_choice_free(gen_choice *c);
/* The engine callbacks (user = the choice). */
bool dz_choice_on_token(void *user, const dz_gen_token *tok);
void dz_choice_on_done(void *user, const dz_gen_result *res);
/* "stop" / "length" for a finished choice. */
const char *dz_choice_finish_reason(const gen_choice *c);
/* A chunk envelope for the job with choices (stolen). */
json_t *dz_job_chunk(gen_job *job, json_t *choices);
/* One streamed choice delta: text (may be empty), logprobs of entries
 * [from, to), finish reason (NULL: null). */
json_t *dz_choice_delta(gen_choice *c, const char *text, size_t len, size_t lp_from, size_t lp_to,
                        const char *finish, bool role);
/* The non-streamed choice object. */
json_t *dz_choice_final(gen_choice *c);
/* {"prompt_tokens",...} of the job's totals. */
json_t *dz_job_usage(gen_job *job);
/* Appends "data: <json>\n\n" (json stolen) or raw bytes to the stream
 * queue and wakes the reader. Takes job->mu. */
void dz_job_push(gen_job *job, json_t *event);
void dz_job_push_raw(gen_job *job, const char *bytes, size_t n);

#endif
