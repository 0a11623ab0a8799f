/* dizuo serve's configuration: defaults, a JSON config file (jansson) and
 * range checks. Flags are applied by the command on top of the file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "serve/serve.h"

dz_status dz_serve_config_set_str(char **field, const char *value) {
    char *copy = NULL;
    if (value && !(copy = strdup(value))) return dz_fail(DZ_ERR_NOMEM, "out of memory for the configuration");
    free(*field);
    *field = copy;
    return DZ_OK;
}

dz_status dz_serve_config_init(dz_serve_config *c) {
    memset(c, 0, sizeof *c);
    c->port = 8080;
    c->parallel = 8;
    c->log_level = DZ_LOG_INFO;
    c->max_body_bytes = 4 << 20;
    c->max_header_bytes = 32 << 10;
    c->max_connections = 256;
    c->max_connections_per_ip = 64;
    c->idle_timeout_s = 30;
    c->request_timeout_s = 600;
    c->drain_timeout_s = 30;
    c->max_stop = 16;
    c->max_stop_bytes = 256;
    c->max_n = 16;
    c->max_prompts = 256;
    c->max_logprob_entries = 262144;
    c->max_queued_bytes = 8 << 20;
    c->lora_scale = 1.0;
    if (dz_serve_config_set_str(&c->host, "127.0.0.1") || dz_serve_config_set_str(&c->db, "dizuo.db")) {
        dz_serve_config_clear(c);
        return DZ_ERR_NOMEM;
    }
    return DZ_OK;
}

void dz_serve_config_clear(dz_serve_config *c) {
    if (!c) return;
    char **strs[] = {&c->model, &c->model_name, &c->host, &c->db, &c->chat_template, &c->admin_key_file,
                     &c->access_log, &c->lora, &c->device};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
}

dz_status dz_serve_config_copy(dz_serve_config *dst, const dz_serve_config *src) {
    *dst = *src;
    dst->model = dst->model_name = dst->host = dst->db = dst->chat_template = dst->admin_key_file =
        dst->access_log = dst->lora = dst->device = NULL;
    if (dz_serve_config_set_str(&dst->model, src->model) || dz_serve_config_set_str(&dst->model_name, src->model_name) ||
        dz_serve_config_set_str(&dst->host, src->host) || dz_serve_config_set_str(&dst->db, src->db) ||
        dz_serve_config_set_str(&dst->chat_template, src->chat_template) ||
        dz_serve_config_set_str(&dst->admin_key_file, src->admin_key_file) ||
        dz_serve_config_set_str(&dst->access_log, src->access_log) || dz_serve_config_set_str(&dst->lora, src->lora) ||
        dz_serve_config_set_str(&dst->device, src->device)) {
        dz_serve_config_clear(dst);
        return DZ_ERR_NOMEM;
    }
    return DZ_OK;
}

/* The keys of the file: strings, and integers with their range. */
typedef struct str_key {
    const char *name;
    size_t offset;
} str_key;
typedef struct int_key {
    const char *name;
    size_t offset;
    bool is64;
    long long lo, hi;
} int_key;

#define SK(n, f) {n, offsetof(dz_serve_config, f)}
#define IK(n, f, lo, hi) {n, offsetof(dz_serve_config, f), false, lo, hi}
static const str_key str_keys[] = {
    SK("model", model), SK("model_name", model_name), SK("host", host), SK("db", db),
    SK("chat_template", chat_template), SK("admin_key_file", admin_key_file), SK("access_log", access_log),
    SK("lora", lora), SK("device", device),
};
static const int_key int_keys[] = {
    IK("port", port, 0, 65535),
    IK("threads", threads, 0, 1024),
    IK("parallel", parallel, 1, 1024),
    IK("ctx", ctx, 0, 1 << 20),
    IK("kv_blocks", kv_blocks, 0, 1 << 24),
    IK("max_waiting", max_waiting, 0, 1 << 20),
    IK("log_level", log_level, 0, 3),
    {"max_body_bytes", offsetof(dz_serve_config, max_body_bytes), true, 1024, 1LL << 32},
    IK("max_header_bytes", max_header_bytes, 4096, 1 << 24),
    IK("max_connections", max_connections, 1, 1 << 16),
    IK("max_connections_per_ip", max_connections_per_ip, 0, 1 << 16),
    IK("idle_timeout_s", idle_timeout_s, 1, 86400),
    IK("request_timeout_s", request_timeout_s, 1, 86400 * 7),
    IK("drain_timeout_s", drain_timeout_s, 0, 86400),
    IK("max_stop", max_stop, 0, 1024),
    IK("max_stop_bytes", max_stop_bytes, 1, 65536),
    IK("max_n", max_n, 1, 128),
    IK("max_prompts", max_prompts, 1, 65536),
    {"max_logprob_entries", offsetof(dz_serve_config, max_logprob_entries), true, 0, 1LL << 30},
    {"max_queued_bytes", offsetof(dz_serve_config, max_queued_bytes), true, 4096, 1LL << 34},
};
enum { N_STR_KEYS = sizeof str_keys / sizeof str_keys[0], N_INT_KEYS = sizeof int_keys / sizeof int_keys[0] };

static const char *log_level_names[] = {"error", "warn", "info", "debug"};

static dz_status set_key(dz_serve_config *c, const char *path, const char *key, json_t *v) {
    for (int i = 0; i < N_STR_KEYS; i++) {
        if (strcmp(key, str_keys[i].name)) continue;
        if (!json_is_string(v)) return dz_fail(DZ_ERR_ARG, "%s: \"%s\" must be a string", path, key);
        return dz_serve_config_set_str((char **)((char *)c + str_keys[i].offset), json_string_value(v));
    }
    if (!strcmp(key, "lora_scale")) {
        if (!json_is_number(v) || !(json_number_value(v) >= 0 && json_number_value(v) <= 100))
            return dz_fail(DZ_ERR_ARG, "%s: \"lora_scale\" must be a number in 0..100", path);
        c->lora_scale = json_number_value(v);
        return DZ_OK;
    }
    if (!strcmp(key, "log_level") && json_is_string(v)) {
        for (int l = 0; l < 4; l++)
            if (!strcmp(json_string_value(v), log_level_names[l])) {
                c->log_level = l;
                return DZ_OK;
            }
        return dz_fail(DZ_ERR_ARG, "%s: \"log_level\" must be error, warn, info or debug", path);
    }
    for (int i = 0; i < N_INT_KEYS; i++) {
        const int_key *k = &int_keys[i];
        if (strcmp(key, k->name)) continue;
        if (!json_is_integer(v)) return dz_fail(DZ_ERR_ARG, "%s: \"%s\" must be an integer", path, key);
        long long x = json_integer_value(v);
        if (x < k->lo || x > k->hi)
            return dz_fail(DZ_ERR_ARG, "%s: \"%s\" must be in %lld..%lld, got %lld", path, key, k->lo, k->hi, x);
        if (k->is64) *(int64_t *)((char *)c + k->offset) = x;
        else *(int32_t *)((char *)c + k->offset) = (int32_t)x;
        return DZ_OK;
    }
    return dz_fail(DZ_ERR_ARG, "%s: unknown key \"%s\"", path, key);
}

dz_status dz_serve_config_load(dz_serve_config *c, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return dz_fail(DZ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    json_error_t je;
    json_t *root = json_loadf(f, 0, &je);
    fclose(f);
    if (!root) return dz_fail(DZ_ERR_FORMAT, "%s: line %d: %s", path, je.line, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return dz_fail(DZ_ERR_FORMAT, "%s: the configuration must be a JSON object", path);
    }
    const char *key;
    json_t *v;
    dz_status st = DZ_OK;
    json_object_foreach(root, key, v) {
        if ((st = set_key(c, path, key, v))) break;
    }
    json_decref(root);
    return st;
}

dz_status dz_serve_config_check(const dz_serve_config *c) {
    for (int i = 0; i < N_INT_KEYS; i++) {
        const int_key *k = &int_keys[i];
        long long x = k->is64 ? *(const int64_t *)((const char *)c + k->offset)
                              : *(const int32_t *)((const char *)c + k->offset);
        if (x < k->lo || x > k->hi)
            return dz_fail(DZ_ERR_ARG, "%s must be in %lld..%lld, got %lld", k->name, k->lo, k->hi, x);
    }
    if (!c->host || !c->host[0]) return dz_fail(DZ_ERR_ARG, "host is required");
    if (!c->db || !c->db[0]) return dz_fail(DZ_ERR_ARG, "db is required");
    if (!(c->lora_scale >= 0 && c->lora_scale <= 100)) return dz_fail(DZ_ERR_ARG, "lora_scale must be in 0..100");
    return DZ_OK;
}
