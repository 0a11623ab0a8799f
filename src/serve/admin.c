/* The admin API (admin keys only): keys (create, list, revoke) and usage
 * totals from the ledger. Secrets are shown once, at creation. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve_impl.h"

/* The parameter a tenancy error message concerns (its first word). */
static const char *param_of(const char *msg) {
    static const char *names[] = {"tenant", "quota_tokens", "rpm", "tpm", "models"};
    const char *best = NULL, *at = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *p = strstr(msg, names[i]);
        if (p && (!at || p < at)) at = p, best = names[i];
    }
    return best;
}

static json_t *models_list(const char *models) {
    json_t *a = json_array();
    const char *p = models;
    while (a && p && *p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n) json_array_append_new(a, json_stringn(p, n));
        p = e ? e + 1 : NULL;
    }
    return a;
}

static json_t *key_json(const dz_key_info *k) {
    return json_pack("{s:I,s:s,s:s,s:I,s:I,s:I,s:o*,s:b,s:b,s:I,s:I}", "id", (json_int_t)k->id, "tenant", k->tenant,
                     "prefix", k->prefix, "quota_tokens", (json_int_t)k->quota_tokens, "rpm", (json_int_t)k->rpm, "tpm",
                     (json_int_t)k->tpm, "models", models_list(k->models), "admin", k->admin, "revoked", k->revoked,
                     "created", (json_int_t)(k->created_ms / 1000), "used_tokens", (json_int_t)k->used_tokens);
}

static enum MHD_Result create_key(dz_req *r) {
    dz_server *s = r->srv;
    dz_oai_error err;
    json_t *root = dz_oai_load_object(r->body, r->body_len, &err);
    if (!root) return dz_respond_oai_error(r, &err);
    enum MHD_Result ret;
    dz_key_spec spec = {0};
    char models[DZ_MODELS_LIST_MAX + 2] = "";
    json_t *tenant = json_object_get(root, "tenant"), *m = json_object_get(root, "models"),
           *admin = json_object_get(root, "admin");
    static const char *limits[] = {"quota_tokens", "rpm", "tpm"};
    int64_t *fields[] = {&spec.quota_tokens, &spec.rpm, &spec.tpm};
    if (!json_is_string(tenant)) {
        ret = dz_respond_error(r, 400, "invalid_request_error", "tenant", 0, "tenant must be a string");
        goto out;
    }
    spec.tenant = json_string_value(tenant);
    for (int i = 0; i < 3; i++) {
        json_t *v = json_object_get(root, limits[i]);
        if (!v || json_is_null(v)) continue;
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            ret = dz_respond_error(r, 400, "invalid_request_error", limits[i], 0, "%s must be an integer >= 0",
                                   limits[i]);
            goto out;
        }
        *fields[i] = json_integer_value(v);
    }
    if (m && json_is_string(m)) {
        snprintf(models, sizeof models, "%s", json_string_value(m));
    } else if (json_is_array(m)) {
        size_t i;
        json_t *e;
        json_array_foreach(m, i, e) {
            size_t len = strlen(models);
            if (!json_is_string(e) || len + json_string_length(e) + 1 > DZ_MODELS_LIST_MAX) {
                ret = dz_respond_error(r, 400, "invalid_request_error", "models", 0,
                                       "models must be a list of model names (at most %d characters in all)",
                                       DZ_MODELS_LIST_MAX);
                goto out;
            }
            snprintf(models + len, sizeof models - len, "%s%s", len ? "," : "", json_string_value(e));
        }
    } else if (m && !json_is_null(m)) {
        ret = dz_respond_error(r, 400, "invalid_request_error", "models", 0, "models must be a list or \"a,b\"");
        goto out;
    }
    spec.models = models;
    if (admin && !json_is_null(admin) && !json_is_boolean(admin)) {
        ret = dz_respond_error(r, 400, "invalid_request_error", "admin", 0, "admin must be a boolean");
        goto out;
    }
    spec.admin = json_is_true(admin);
    char key[DZ_KEY_LEN + 1];
    int64_t id = 0;
    dz_status st = dz_ledger_key_create(s->ledger, &spec, key, &id);
    if (st == DZ_ERR_ARG) {
        ret = dz_respond_error(r, 400, "invalid_request_error", param_of(dz_last_error()), 0, "%s", dz_last_error());
        goto out;
    }
    if (st) {
        ret = dz_respond_error(r, 500, "internal_error", NULL, 0, "The key database failed");
        goto out;
    }
    json_t *body = json_pack("{s:I,s:s,s:s,s:I,s:I,s:I,s:o*,s:b}", "id", (json_int_t)id, "key", key, "tenant",
                             spec.tenant, "quota_tokens", (json_int_t)spec.quota_tokens, "rpm", (json_int_t)spec.rpm,
                             "tpm", (json_int_t)spec.tpm, "models", models_list(models), "admin", spec.admin);
    ret = body ? dz_respond_json(r, 201, body) : MHD_NO;
out:
    json_decref(root);
    return ret;
}

/* GET /v1/admin/keys[?limit=N][&after=ID]: a page of keys in id order, as
 * OpenAI pages its lists (first_id, last_id, has_more). */
enum { KEYS_PAGE_DEFAULT = 100, KEYS_PAGE_MAX = 1000 };

static bool query_int(dz_req *r, const char *name, long long lo, long long hi, long long *out) {
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v) return true;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!isdigit((unsigned char)v[0]) || *end || errno || x < lo || x > hi) return false;
    *out = x;
    return true;
}

static enum MHD_Result list_keys(dz_req *r) {
    long long limit = KEYS_PAGE_DEFAULT, after = 0;
    if (!query_int(r, "limit", 1, KEYS_PAGE_MAX, &limit))
        return dz_respond_error(r, 400, "invalid_request_error", "limit", 0, "limit must be an integer from 1 to %d",
                                KEYS_PAGE_MAX);
    if (!query_int(r, "after", 0, INT64_MAX, &after))
        return dz_respond_error(r, 400, "invalid_request_error", "after", 0, "after must be a key id (an integer >= 0)");
    dz_key_info *keys = NULL;
    size_t n = 0;
    if (dz_ledger_key_list_page(r->srv->ledger, after, limit + 1, &keys, &n)) /* one more: is there a next page? */
        return dz_respond_error(r, 500, "internal_error", NULL, 0, "The key database failed");
    const bool more = n > (size_t)limit;
    if (more) n = (size_t)limit;
    json_t *data = json_array();
    for (size_t i = 0; data && i < n; i++) json_array_append_new(data, key_json(&keys[i]));
    json_t *body = data ? json_pack("{s:s,s:o,s:o,s:o,s:b}", "object", "list", "data", data, "first_id",
                                    n ? json_integer(keys[0].id) : json_null(), "last_id",
                                    n ? json_integer(keys[n - 1].id) : json_null(), "has_more", more)
                        : NULL;
    free(keys);
    return body ? dz_respond_json(r, 200, body) : MHD_NO;
}

static enum MHD_Result revoke_key(dz_req *r, const char *id_text) {
    char *end;
    long long id = strtoll(id_text, &end, 10);
    if (!isdigit((unsigned char)id_text[0]) || *end || id <= 0)
        return dz_respond_error(r, 404, "not_found", NULL, 0, "No key with id '%.40s'", id_text);
    dz_status st = dz_ledger_key_revoke(r->srv->ledger, id);
    if (st == DZ_ERR_ARG) return dz_respond_error(r, 404, "not_found", NULL, 0, "No key with id %lld", id);
    if (st) return dz_respond_error(r, 500, "internal_error", NULL, 0, "The key database failed");
    json_t *body = json_pack("{s:I,s:b}", "id", (json_int_t)id, "revoked", 1);
    return body ? dz_respond_json(r, 200, body) : MHD_NO;
}

enum MHD_Result dz_handle_admin_keys(dz_req *r, const char *id) {
    if (id) return revoke_key(r, id);
    if (!strcmp(r->method, "POST")) return create_key(r);
    return list_keys(r);
}

/* since / until: integer unix seconds or a time dz_usage_parse_time reads. */
static bool parse_when(const char *text, int64_t *ms) {
    char *end;
    long long v = strtoll(text, &end, 10);
    if (text[0] && !*end && v >= 0 && v < (1LL << 40)) {
        *ms = v * 1000;
        return true;
    }
    return dz_usage_parse_time(text, ms) == DZ_OK;
}

/* The filter a ledger DZ_ERR_ARG concerns: what its message names, else the
 * first filter given. */
static const char *filter_param(const char *msg, const dz_usage_filter *f) {
    if (strstr(msg, "tenant")) return "tenant";
    if (strstr(msg, "model")) return "model";
    if (strstr(msg, "since")) return "since";
    if (strstr(msg, "until")) return "until";
    return f->tenant ? "tenant" : f->model ? "model" : f->since_ms ? "since" : "until";
}

enum MHD_Result dz_handle_usage(dz_req *r) {
    struct MHD_Connection *c = r->conn;
    dz_usage_filter f = {0};
    f.tenant = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "tenant");
    f.model = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "model");
    if (f.tenant && !f.tenant[0]) f.tenant = NULL;
    if (f.model && !f.model[0]) f.model = NULL;
    static const char *names[] = {"since", "until"};
    int64_t *dst[] = {&f.since_ms, &f.until_ms};
    for (int i = 0; i < 2; i++) {
        const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, names[i]);
        if (v && v[0] && !parse_when(v, dst[i]))
            return dz_respond_error(r, 400, "invalid_request_error", names[i], 0,
                                    "%s must be unix seconds or YYYY-MM-DD[THH:MM[:SS]]", names[i]);
    }
    const char *bm = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "by_model");
    f.by_model = bm && (!strcmp(bm, "true") || !strcmp(bm, "1"));
    dz_usage_total *t = NULL;
    size_t n = 0;
    dz_status st = dz_ledger_usage(r->srv->ledger, &f, &t, &n);
    if (st == DZ_ERR_ARG) /* a filter the ledger refuses: name it */
        return dz_respond_error(r, 400, "invalid_request_error", filter_param(dz_last_error(), &f), 0, "%s",
                                dz_last_error());
    if (st) return dz_respond_error(r, 500, "internal_error", NULL, 0, "The usage ledger failed: %s", dz_last_error());
    json_t *data = json_array();
    for (size_t i = 0; data && i < n; i++) {
        json_t *e = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "tenant", t[i].tenant, "requests", (json_int_t)t[i].requests,
                              "prompt_tokens", (json_int_t)t[i].prompt_tokens, "cached_tokens",
                              (json_int_t)t[i].cached_tokens, "completion_tokens", (json_int_t)t[i].completion_tokens,
                              "total_tokens", (json_int_t)t[i].total_tokens);
        if (e && f.by_model) json_object_set_new(e, "model", json_string(t[i].model));
        json_array_append_new(data, e);
    }
    free(t);
    json_t *body = data ? json_pack("{s:s,s:o}", "object", "list", "data", data) : NULL;
    return body ? dz_respond_json(r, 200, body) : MHD_NO;
}
