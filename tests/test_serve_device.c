/* `dizuo serve --device opencl:0` answers chat requests: the real model
 * served from the OpenCL device (weights and paged KV cache there) gives,
 * greedily, the same completion as the same server on the CPU, streamed and
 * not, with the usage counted. Skips without an OpenCL device unless
 * DZ_REQUIRE_OPENCL=1. */
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>

#include "dizuo/backend.h"
#include "dizuo/tenancy.h"
#include "dztest.h"
#include "http_client.h"
#include "serve_proc.h"

static char auth[128];

static const char *REQUEST = "{\"model\":\"default\",\"messages\":[{\"role\":\"user\",\"content\":"
                             "\"Tell me a story about a dog.\"}],\"max_tokens\":40,\"temperature\":0}";

/* The completion's text, finish_reason and usage of one non-streamed chat request. */
static char *chat(const dzt_server *s, int *completion_tokens) {
    dzt_http *c = dzt_http_connect(s->host, s->port, 5000);
    DZT_ASSERT(c != NULL);
    if (!c) return NULL;
    dzt_response r = {0};
    DZT_EQ_INT(dzt_http_send_request(c, "POST", "/v1/chat/completions", auth, REQUEST, strlen(REQUEST), 5000), 0);
    DZT_EQ_INT(dzt_http_read_response(c, 60000, &r), 0);
    DZT_EQ_INT(r.status, 200);
    char *text = NULL;
    json_t *j = r.body ? json_loads(r.body, 0, NULL) : NULL;
    json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
    const char *content = json_string_value(json_object_get(json_object_get(choice, "message"), "content"));
    DZT_CHECK(content && content[0], "no content in %s", r.body ? r.body : "(none)");
    DZT_EQ_STR(json_string_value(json_object_get(choice, "finish_reason")), "length");
    *completion_tokens = (int)json_integer_value(json_object_get(json_object_get(j, "usage"), "completion_tokens"));
    if (content) text = strdup(content);
    json_decref(j);
    dzt_response_free(&r);
    dzt_http_close(c);
    return text;
}

/* The same request streamed: the deltas joined. */
static char *chat_stream(const dzt_server *s) {
    dzt_http *c = dzt_http_connect(s->host, s->port, 5000);
    DZT_ASSERT(c != NULL);
    if (!c) return NULL;
    char body[512];
    snprintf(body, sizeof body, "%.*s,\"stream\":true}", (int)strlen(REQUEST) - 1, REQUEST);
    dzt_response r = {0};
    DZT_EQ_INT(dzt_http_send_request(c, "POST", "/v1/chat/completions", auth, body, strlen(body), 5000), 0);
    DZT_EQ_INT(dzt_http_read_head(c, 60000, &r), 0);
    DZT_EQ_INT(r.status, 200);
    size_t cap = 4096, n = 0;
    char *text = calloc(1, cap);
    bool done = false;
    char *data = NULL;
    while (text && dzt_http_next_event(c, 60000, &data) == 1) {
        if (!strcmp(data, "[DONE]")) done = true;
        json_t *j = done ? NULL : json_loads(data, 0, NULL);
        const char *piece = json_string_value(
            json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "delta"), "content"));
        if (piece && n + strlen(piece) < cap) {
            memcpy(text + n, piece, strlen(piece));
            n += strlen(piece);
        }
        json_decref(j);
        free(data);
        data = NULL;
    }
    DZT_CHECK(done, "the stream did not end with [DONE]");
    dzt_response_free(&r);
    dzt_http_close(c);
    return text;
}

int main(void) {
    const dz_backend_iface *opencl = dz_backend_find("opencl");
    const char *required = getenv("DZ_REQUIRE_OPENCL");
    const bool must = required && !strcmp(required, "1");
    if (!opencl || opencl->device_count() < 1) {
        if (must) {
            fprintf(stderr, "FAIL: no OpenCL device or backend, and DZ_REQUIRE_OPENCL=1\n");
            return 1;
        }
        printf("SKIP: no OpenCL device (or dizuo built without the OpenCL backend)\n");
        return 77;
    }
    char *model = dzt_shared("models/stories260K.gguf");
    char db[512];
    snprintf(db, sizeof db, "%s/device.db", dzt_tmpdir());
    dz_ledger *l = NULL;
    DZT_OK(dz_ledger_open(db, DZ_LEDGER_CREATE, &l));
    char key[DZ_KEY_LEN + 1] = "", admin_key[DZ_KEY_LEN + 1] = "";
    int64_t id = 0;
    dz_key_spec spec = {.tenant = "devices"}, admin = {.tenant = "ops", .admin = true};
    DZT_OK(dz_ledger_key_create(l, &spec, key, &id));
    DZT_OK(dz_ledger_key_create(l, &admin, admin_key, &id)); /* no first-start admin key printout */
    dz_ledger_close(l);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\nContent-Type: application/json\r\n", key);

    char *text[2] = {NULL, NULL}, *streamed = NULL;
    int tokens[2] = {0, 0};
    const char *devices[2] = {"cpu", "opencl:0"};
    for (int d = 0; d < 2; d++) {
        const char *args[] = {"-m", model, "--port", "0", "--db", db, "--device", devices[d], "-t", "2",
                              "--access-log", "/dev/null", NULL};
        dzt_server s;
        if (dzt_server_start(&s, devices[d][0] == 'c' ? "cpu" : "opencl", args, 60000) != 0) {
            DZT_CHECK(0, "dizuo serve --device %s did not start", devices[d]);
            continue;
        }
        text[d] = chat(&s, &tokens[d]);
        if (d == 1) streamed = chat_stream(&s);
        DZT_EQ_INT(dzt_server_stop(&s, SIGTERM, 20000), 0);
    }
    DZT_CHECK(text[0] && text[1] && !strcmp(text[0], text[1]), "opencl:0 answered\n  \"%s\"\nthe CPU\n  \"%s\"",
              text[1] ? text[1] : "(none)", text[0] ? text[0] : "(none)");
    DZT_CHECK(streamed && text[1] && !strcmp(streamed, text[1]), "streamed on opencl:0: \"%s\"",
              streamed ? streamed : "(none)");
    DZT_EQ_INT(tokens[0], 40);
    DZT_EQ_INT(tokens[1], 40);
    printf("opencl:0 and cpu answered alike: \"%.60s...\"\n", text[1] ? text[1] : "");
    free(text[0]);
    free(text[1]);
    free(streamed);
    free(model);
    return dzt_done();
}
