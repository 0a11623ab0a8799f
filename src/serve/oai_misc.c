/* The other model routes: GET /v1/models[/{id}], POST /v1/embeddings,
 * POST /tokenize and POST /detokenize. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "serve/serve_impl.h"

/* ---- models ---- */

static json_t *model_object(const dz_server *s) {
    return json_pack("{s:s,s:s,s:I,s:s}", "id", s->model_name, "object", "model", "created", (json_int_t)s->created_s,
                     "owned_by", "dizuo");
}

enum MHD_Result dz_handle_models(dz_req *r, const char *id) {
    dz_server *s = r->srv;
    bool visible = s->model_name[0] && dz_key_allows_model(&r->key, s->model_name);
    if (!id) {
        json_t *data = json_array();
        if (data && visible) json_array_append_new(data, model_object(s));
        json_t *body = data ? json_pack("{s:s,s:o}", "object", "list", "data", data) : NULL;
        return body ? dz_respond_json(r, 200, body) : MHD_NO;
    }
    if (!s->model_name[0] || (strcmp(id, s->model_name) && strcmp(id, "default")))
        return dz_respond_error(r, 404, "model_not_found", "model", 0, "The model '%.128s' does not exist", id);
    if (!visible)
        return dz_respond_error(r, 403, "model_not_allowed", "model", 0, "This key may not use the model '%s'",
                                s->model_name);
    snprintf(r->model, sizeof r->model, "%s", s->model_name);
    json_t *body = model_object(s);
    return body ? dz_respond_json(r, 200, body) : MHD_NO;
}

/* ---- embeddings ---- */

static json_t *embedding_value(const float *v, int32_t n, bool base64) {
    if (!base64) {
        json_t *a = json_array();
        for (int32_t i = 0; a && i < n; i++) json_array_append_new(a, json_real(v[i]));
        return a;
    }
    /* little-endian float32, as OpenAI's encoding_format "base64" */
    size_t bytes = (size_t)n * 4;
    unsigned char *raw = malloc(bytes), *b64 = malloc(4 * ((bytes + 2) / 3) + 1);
    json_t *out = NULL;
    if (raw && b64) {
        for (int32_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &v[i], 4);
            raw[4 * i] = (unsigned char)u, raw[4 * i + 1] = (unsigned char)(u >> 8);
            raw[4 * i + 2] = (unsigned char)(u >> 16), raw[4 * i + 3] = (unsigned char)(u >> 24);
        }
        int len = EVP_EncodeBlock(b64, raw, (int)bytes);
        out = json_stringn((const char *)b64, (size_t)len);
    }
    free(raw);
    free(b64);
    return out;
}

enum MHD_Result dz_handle_embeddings(dz_req *r) {
    dz_server *s = r->srv;
    dz_req_new_id(r, "embd");
    dz_oai_limits lim = dz_server_limits(s);
    dz_oai_request *o = NULL;
    dz_oai_error err;
    if (dz_oai_parse(DZ_OAI_EMBEDDING, r->body, r->body_len, &lim, &o, &err)) return dz_respond_oai_error(r, &err);
    enum MHD_Result ret = MHD_YES;
    int32_t **ids = NULL, *n_ids = NULL;
    float *vec = NULL;
    dz_reservation *resv = NULL;
    json_t *data = NULL;
    int64_t start_ms = dz_wall_ms(), total = 0;
    if (!dz_req_model_ok(r, o->model)) goto out;
    if (!s->engine) {
        ret = dz_respond_error(r, 503, "server_overloaded", NULL, 5, "No model is loaded");
        goto out;
    }
    ids = calloc(o->n_prompts, sizeof *ids);
    n_ids = calloc(o->n_prompts, sizeof *n_ids);
    vec = malloc((size_t)s->n_embd * sizeof *vec);
    data = json_array();
    if (!ids || !n_ids || !vec || !data) {
        ret = MHD_NO;
        goto out;
    }
    for (size_t i = 0; i < o->n_prompts; i++) {
        const dz_oai_prompt *p = &o->prompts[i];
        size_t n = 0;
        if (p->tokens) {
            n = (size_t)p->n_tokens;
            if ((ids[i] = malloc(n * sizeof **ids))) memcpy(ids[i], p->tokens, n * sizeof **ids);
        } else if (dz_tokenize(s->tok, p->text, p->text_len, s->add_bos, true, &ids[i], &n)) {
            ret = dz_respond_error(r, 400, "invalid_request_error", "input", 0, "%s", dz_last_error());
            goto out;
        }
        if (!ids[i]) {
            ret = MHD_NO;
            goto out;
        }
        if (n == 0 || n > (size_t)s->n_ctx) {
            ret = dz_respond_error(r, 400, n ? "context_length_exceeded" : "invalid_request_error", "input", 0,
                                   "input[%zu] is %zu tokens; it must be 1..%d", i, n, s->n_ctx);
            goto out;
        }
        n_ids[i] = (int32_t)n;
        total += (int64_t)n;
    }
    dz_admit d = DZ_ADMIT_OK;
    int64_t retry = 0;
    if (dz_ledger_reserve(s->ledger, &r->key, total, &d, &retry, &resv)) {
        ret = dz_respond_error(r, 500, "internal_error", NULL, 0, "The usage ledger failed");
        goto out;
    }
    if (d != DZ_ADMIT_OK) {
        bool quota = d == DZ_ADMIT_QUOTA;
        ret = dz_respond_error(r, 429, quota ? "insufficient_quota" : "rate_limit_exceeded", NULL,
                               d == DZ_ADMIT_RPM || d == DZ_ADMIT_TPM ? retry : 0,
                               quota ? "You exceeded your token quota" : "Rate limit reached");
        goto out;
    }
    for (size_t i = 0; i < o->n_prompts; i++) {
        dz_status st = dz_engine_embed(s->engine, ids[i], n_ids[i], vec);
        if (st) {
            ret = st == DZ_ERR_BUSY ? dz_respond_error(r, 503, "server_shutting_down", NULL, 5, "%s", dz_last_error())
                  : st == DZ_ERR_ARG ? dz_respond_error(r, 400, "invalid_request_error", "input", 0, "%s", dz_last_error())
                                     : dz_respond_error(r, 500, "internal_error", NULL, 0, "%s", dz_last_error());
            goto out;
        }
        json_t *e = json_pack("{s:s,s:i,s:o*}", "object", "embedding", "index", (int)i, "embedding",
                              embedding_value(vec, s->n_embd, o->base64));
        if (!e || json_array_append_new(data, e)) {
            ret = MHD_NO;
            goto out;
        }
    }
    dz_usage_row row = {.request_id = r->id, .model = s->model_name, .prompt_tokens = total, .status = "ok",
                        .start_ms = start_ms, .end_ms = dz_wall_ms()};
    if (row.end_ms < start_ms) row.end_ms = start_ms;
    if (dz_ledger_settle(s->ledger, resv, &row)) {
        dz_log(DZ_LOG_ERROR, "serve: %s: billing failed: %s\n", r->id, dz_last_error());
        ret = dz_respond_error(r, 500, "internal_error", NULL, 0, "The usage could not be recorded; nothing was billed");
        goto out;
    }
    resv = NULL;
    dz_metrics_tokens(s->metrics, r->key.tenant, s->model_name, total, 0, 0);
    r->prompt_tokens = total;
    json_t *body = json_pack("{s:s,s:O,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model", s->model_name,
                             "usage", "prompt_tokens", (json_int_t)total, "total_tokens", (json_int_t)total);
    ret = body ? dz_respond_json(r, 200, body) : MHD_NO;
out:
    dz_ledger_release(s->ledger, resv);
    json_decref(data);
    if (ids)
        for (size_t i = 0; i < o->n_prompts; i++) free(ids[i]);
    free(ids);
    free(n_ids);
    free(vec);
    dz_oai_request_free(o);
    return ret;
}

/* ---- tokenize / detokenize (llama-server's shapes) ---- */

static bool need_model(dz_req *r, enum MHD_Result *ret) {
    if (r->srv->tok) return true;
    *ret = dz_respond_error(r, 503, "server_overloaded", NULL, 5, "No model is loaded");
    return false;
}

enum MHD_Result dz_handle_tokenize(dz_req *r) {
    dz_server *s = r->srv;
    enum MHD_Result ret = MHD_YES;
    if (!need_model(r, &ret)) return ret;
    dz_oai_error err;
    json_t *root = dz_oai_load_object(r->body, r->body_len, &err);
    if (!root) return dz_respond_oai_error(r, &err);
    json_t *content = json_object_get(root, "content"), *add = json_object_get(root, "add_special"),
           *ps = json_object_get(root, "parse_special");
    if (!json_is_string(content)) {
        ret = dz_respond_error(r, 400, "invalid_request_error", "content", 0, "content must be a string");
    } else if ((add && !json_is_boolean(add)) || (ps && !json_is_boolean(ps))) {
        ret = dz_respond_error(r, 400, "invalid_request_error", add && !json_is_boolean(add) ? "add_special" : "parse_special",
                               0, "add_special and parse_special must be booleans");
    } else {
        int32_t *ids = NULL;
        size_t n = 0;
        if (dz_tokenize(s->tok, json_string_value(content), json_string_length(content), json_is_true(add),
                        !ps || json_is_true(ps), &ids, &n)) {
            ret = dz_respond_error(r, 400, "invalid_request_error", "content", 0, "%s", dz_last_error());
        } else {
            json_t *a = json_array();
            for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_integer(ids[i]));
            free(ids);
            json_t *body = a ? json_pack("{s:o}", "tokens", a) : NULL;
            ret = body ? dz_respond_json(r, 200, body) : MHD_NO;
        }
    }
    json_decref(root);
    return ret;
}

enum MHD_Result dz_handle_detokenize(dz_req *r) {
    dz_server *s = r->srv;
    enum MHD_Result ret = MHD_YES;
    if (!need_model(r, &ret)) return ret;
    dz_oai_error err;
    json_t *root = dz_oai_load_object(r->body, r->body_len, &err);
    if (!root) return dz_respond_oai_error(r, &err);
    json_t *tokens = json_object_get(root, "tokens");
    size_t n = json_array_size(tokens);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!json_is_array(tokens)) {
        ret = dz_respond_error(r, 400, "invalid_request_error", "tokens", 0, "tokens must be a list of token ids");
        goto out;
    }
    if (!ids) {
        ret = MHD_NO;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(tokens, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= s->n_vocab) {
            ret = dz_respond_error(r, 400, "invalid_request_error", "tokens", 0,
                                   "tokens[%zu] is not a token id of the vocabulary (0..%d)", i, s->n_vocab - 1);
            goto out;
        }
        ids[i] = (int32_t)json_integer_value(t);
    }
    char *text = NULL;
    size_t len = 0;
    if (dz_detokenize(s->tok, ids, n, false, &text, &len)) {
        ret = dz_respond_error(r, 400, "invalid_request_error", "tokens", 0, "%s", dz_last_error());
        goto out;
    }
    json_t *body = json_pack("{s:o}", "content", dz_json_text(text, len));
    free(text);
    ret = body ? dz_respond_json(r, 200, body) : MHD_NO;
out:
    free(ids);
    json_decref(root);
    return ret;
}
