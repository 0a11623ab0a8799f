/* Internals of the generation routes (chat and completions) shared by
 * oai_gen.c (a request's life: admission, submission, waiting, billing,
 * responses) and gen_choice.c (one choice's text: detokenization, stop
 * strings, logprobs, and the JSON of chunks and bodies). */
#ifndef DZ_GEN_IMPL_H
#define DZ_GEN_IMPL_H

#include "serve/serve_impl.h"

typedef struct gen_job gen_job;

/* One generated token's logprobs, kept compact (the JSON is written when
 * sent): the token, its logprob, its text offset, and its alternatives
 * alt[top .. top + n_top) of the choice's alternatives array. */
typedef struct gen_lp {
    int32_t token;
    float logprob;
    size_t offset;  /* text offset (completions' text_offset) */
    size_t top;
    int32_t n_top;
} gen_lp;
typedef struct gen_alt {
    int32_t token;
    float logprob;
} gen_alt;

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
    bool want_lp;        /* logprobs asked for */
    gen_lp *lp;          /* one per generated token */
    size_t n_lp, lp_cap, lp_sent;
    gen_alt *alt;        /* the alternatives of every token */
    size_t n_alt, alt_cap;
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
    bool drained;        /* cancelled by the server's drain */
    bool submit_failed;  /* a choice was refused by the engine (503 / 400 / 500) */
    bool slow_client;    /* the stream queue passed max_queued_bytes: cancelled, connection cut */
    bool settled;        /* billed (or released) */
    bool unbilled;       /* settled by releasing the reservation: nothing computed, no row */
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
/* The whole non-streamed response body (JSON text, malloc'd, *len bytes),
 * the logprobs written straight from the compact entries. NULL when out of
 * memory. */
char *dz_job_final_body(gen_job *job, size_t *len);
/* {"prompt_tokens",...} of the job's totals. */
json_t *dz_job_usage(gen_job *job);
/* Appends "data: <json>\n\n" (json stolen) or raw bytes to the stream
 * queue and wakes the reader. Takes job->mu. While the job is not settled,
 * a queue that would hold more than max_queued_bytes unsent bytes marks the
 * client slow instead: the event is dropped, the generation cancelled and
 * the connection cut (the stream then settles as "cancelled"). */
void dz_job_push(gen_job *job, json_t *event);
void dz_job_push_raw(gen_job *job, const char *bytes, size_t n);

#endif
