/* dizuo serve: the OpenAI-compatible model service (HTTP on libmicrohttpd,
 * JSON on jansson) over the serving engine and the tenancy ledger. The
 * behaviour (routes, shapes, errors, metrics) is documented in docs/serve.md.
 *
 * This header is the interface the `dizuo serve` command (and the HTTP fuzz
 * target) drives: fill a configuration, create the server (loads the model,
 * starts the engine, opens the ledger), start listening, and on SIGTERM
 * drain and destroy it. */
#ifndef DZ_SERVE_H
#define DZ_SERVE_H

#include "dizuo/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Everything a flag or a config-file key sets. Strings are owned (malloc'd)
 * by the configuration: set them with dz_serve_config_set_str, free them with
 * dz_serve_config_clear. */
typedef struct dz_serve_config {
    char *model;          /* GGUF path (required unless the server runs without a model) */
    char *model_name;     /* id served in /v1/models; NULL: file name without .gguf */
    char *host;           /* "127.0.0.1" */
    int32_t port;         /* 8080; 0 picks a free port */
    char *db;             /* "dizuo.db" */
    int32_t threads;      /* 0: the device's default */
    int32_t parallel;     /* sequences decoding at once: 8 */
    int32_t ctx;          /* positions per sequence; 0: the engine's default */
    int32_t kv_blocks;    /* 0: the engine's default */
    int32_t max_waiting;  /* engine wait queue; 0: the engine's default */
    char *chat_template;  /* built-in template for models without one; NULL: chatml */
    char *lora;           /* a LoRA adapter GGUF applied to the model; NULL: none */
    char *device;         /* device of the model and its KV cache; NULL: "cpu" */
    double lora_scale;    /* its scale: 1 (0..100) */
    char *admin_key_file; /* where a first admin key goes; NULL: stdout */
    char *access_log;     /* JSON lines file; NULL: stderr */
    int32_t log_level;    /* DZ_LOG_*: 2 (info) */
    /* limits */
    int64_t max_body_bytes;         /* 4 MiB */
    int32_t max_header_bytes;       /* per connection header memory: 32 KiB */
    int32_t max_connections;        /* 256 */
    int32_t max_connections_per_ip; /* 64 */
    int32_t idle_timeout_s;         /* 30 */
    int32_t request_timeout_s;      /* whole generation: 600 */
    int32_t drain_timeout_s;        /* 30 */
    int32_t max_stop;               /* stop strings per request: 16 */
    int32_t max_stop_bytes;         /* bytes per stop string: 256 */
    int32_t max_n;                  /* choices per request: 16 */
    int32_t max_prompts;            /* prompts / embedding inputs per request: 256 */
    int64_t max_logprob_entries;    /* n x max_tokens x (1 + top_logprobs) per request: 262144 */
    int64_t max_queued_bytes;       /* unsent stream bytes per request before the client counts as
                                     * slow (cancelled, connection closed): 8 MiB */
} dz_serve_config;

/* Defaults as documented above (strings duplicated; may fail with NOMEM). */
dz_status dz_serve_config_init(dz_serve_config *c);
/* Frees the strings; the structure may be initialised again. */
void dz_serve_config_clear(dz_serve_config *c);
/* Replaces *field (one of c's strings) with a copy of value (NULL clears). */
dz_status dz_serve_config_set_str(char **field, const char *value);
/* Reads a JSON config file (keys named like the long flags, with '_' for
 * '-': "host", "port", "db", "threads", "parallel", "ctx", "kv_blocks",
 * "model", "model_name", the limits above, ...) into c. Unknown keys and
 * values of the wrong type or range are DZ_ERR_ARG naming the key; an
 * unreadable or malformed file DZ_ERR_IO / DZ_ERR_FORMAT. */
dz_status dz_serve_config_load(dz_serve_config *c, const char *path);
/* A deep copy of src into dst (dst's old strings are not freed). */
dz_status dz_serve_config_copy(dz_serve_config *dst, const dz_serve_config *src);
/* Checks ranges (DZ_ERR_ARG naming the field). */
dz_status dz_serve_config_check(const dz_serve_config *c);

typedef struct dz_server dz_server;

/* Loads the model (c->model; NULL serves no model: generation routes answer
 * 503), starts the engine, opens (creating) the ledger c->db and parses the
 * chat template. Does not listen yet. c is copied. Caller owns *out. */
dz_status dz_server_create(const dz_serve_config *c, dz_server **out);

/* Starts the HTTP daemon on c->host:c->port. listen false: no listening
 * socket (connections come through dz_server_add_connection; for the fuzz
 * target). */
dz_status dz_server_start(dz_server *s, bool listen);
/* The port listened on (after dz_server_start). */
uint16_t dz_server_port(const dz_server *s);
/* The served model's id ("" without a model). */
const char *dz_server_model_name(const dz_server *s);
/* The ledger (for the first-admin-key bootstrap). Owned by the server. */
struct dz_ledger *dz_server_ledger(dz_server *s);

/* Hands a connected socket to the daemon, which owns it from then on (it
 * closes it itself when it refuses it: DZ_ERR_IO). */
dz_status dz_server_add_connection(dz_server *s, int fd);

/* Graceful stop: new requests get 503 (server_shutting_down), /ready 503;
 * running requests get up to drain_timeout_s to finish, the rest are
 * cancelled (billed as "cancelled"); then the daemon stops. Blocks. */
void dz_server_drain(dz_server *s);

/* Stops everything (draining first if not done), closes the ledger and
 * frees the model. NULL is a no-op. */
void dz_server_destroy(dz_server *s);

#ifdef __cplusplus
}
#endif
#endif
