/* Bad input to `dizuo serve` (SERVE.md "Bad input", issue 4 "What bad input
 * gets"): every item gets the exact status and, for a 400, an OpenAI error
 * object whose param names the field — never a crash, a hang or a stuck slot.
 * Malformed JSON, deep nesting, huge numbers, NaN, invalid UTF-8, parameters
 * out of range, token ids outside the vocabulary, prompts longer than the
 * context, empty prompts and messages, 10^4 stop strings, "../" model names,
 * bad Authorization headers, oversized bodies and headers, slow clients
 * (closed after the idle / request timeout while others are served) and
 * clients that vanish mid-stream (cancelled: sequences, KV blocks and the
 * quota reservation released, the ledger row "cancelled"). Afterwards the
 * server still answers a normal request, /health is 200 and SIGTERM exits 0.
 *
 * Needs ../shared/models/stories260K.gguf (vocabulary 512, context 2048;
 * skips, exit 77, when absent) and the dizuo binary (env DZ_BIN). */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "dizuo/tenancy.h"
#include "dztest.h"
#include "http_client.h"
#include "serve_check.h"
#include "serve_proc.h"

enum { TIMEOUT_MS = 15000, N_VOCAB = 512, MAX_BODY = 4 << 20 };

static dzt_server g_srv;
static int g_port;
static char g_auth[128];   /* "Authorization: Bearer KEY\r\n" of a plain key */
static char g_vanish[128]; /* the same for a key with a token quota */
static char g_db[512];

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A completions body: the model, a prompt and max_tokens 2, unless `extra`
 * (a JSON members list, may be "") sets them itself. Caller frees. */
static char *completion_body(const char *extra) {
    dzt_sbuf b = {0};
    dzt_sb_add(&b, "{");
    if (!strstr(extra, "\"model\"")) dzt_sb_add(&b, "\"model\":\"stories260K\",");
    if (!strstr(extra, "\"prompt\"")) dzt_sb_add(&b, "\"prompt\":\"Once upon a time\",");
    if (!strstr(extra, "\"max_tokens\"")) dzt_sb_add(&b, "\"max_tokens\":2,");
    dzt_sb_add(&b, "%s", extra);
    if (b.p[b.n - 1] == ',') b.p[--b.n] = '\0';
    dzt_sb_add(&b, "}");
    return b.p;
}

/* A chat body likewise, with one user message unless extra has messages. */
static char *chat_body(const char *extra) {
    dzt_sbuf b = {0};
    dzt_sb_add(&b, "{");
    if (!strstr(extra, "\"model\"")) dzt_sb_add(&b, "\"model\":\"stories260K\",");
    if (!strstr(extra, "\"messages\""))
        dzt_sb_add(&b, "\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story.\"}],");
    if (!strstr(extra, "\"max_tokens\"") && !strstr(extra, "\"max_completion_tokens\""))
        dzt_sb_add(&b, "\"max_tokens\":2,");
    dzt_sb_add(&b, "%s", extra);
    if (b.p[b.n - 1] == ',') b.p[--b.n] = '\0';
    dzt_sb_add(&b, "}");
    return b.p;
}

/* ---- checking answers ------------------------------------------------- */

/* Checks an error answer (see dzt_check_oai_error). */
static bool check_error(const char *label, const char *req, size_t req_len, const dzt_response *r, int want,
                        int want_alt, const char *param, const char *code, const char *message_has) {
    dzt_want_error w = {want, want_alt, param, code, message_has};
    return dzt_check_oai_error(label, req, req_len, r, &w);
}

/* The server is still alive (checked after every group of cases). */
static void check_alive(const char *after) {
    int st = 0;
    bool alive = dzt_server_alive(&g_srv, &st);
    DZT_CHECK(alive, "the server died (status %d) after %s", st, after);
    if (!alive) {
        dzt_server_print_log(&g_srv, 3000);
        exit(dzt_done());
    }
}

/* POSTs body with the plain key and checks a 400 naming param_spec. */
static void bad(const char *label, const char *path, const char *body, const char *param_spec) {
    dzt_response r;
    dzt_http_request("127.0.0.1", g_port, "POST", path, g_auth, body, TIMEOUT_MS, &r);
    check_error(label, body, strlen(body), &r, 400, 0, param_spec, NULL, NULL);
    dzt_response_free(&r);
}

/* Both routes with the same extra members. */
static void bad_both(const char *label, const char *extra, const char *param_spec) {
    char l[128];
    char *b = completion_body(extra);
    snprintf(l, sizeof l, "completions %s", label);
    bad(l, "/v1/completions", b, param_spec);
    free(b);
    b = chat_body(extra);
    snprintf(l, sizeof l, "chat %s", label);
    bad(l, "/v1/chat/completions", b, param_spec);
    free(b);
}

/* A request that must succeed (a boundary value that is allowed). */
static void good(const char *label, const char *path, const char *body) {
    dzt_response r;
    int st = dzt_http_request("127.0.0.1", g_port, "POST", path, g_auth, body, TIMEOUT_MS, &r);
    json_error_t e;
    json_t *j = st == 200 ? json_loads(r.body, 0, &e) : NULL;
    bool ok = j && json_array_size(json_object_get(j, "choices")) > 0;
    DZT_CHECK(ok, "[%s] expected 200 with choices, got %d", label, st);
    if (!ok) {
        dzt_print_request(label, path, body, strlen(body));
        fprintf(stderr, "  [%s] got %d: %.300s\n", label, st, r.body ? r.body : "(no body)");
    }
    json_decref(j);
    dzt_response_free(&r);
}

static void good_both(const char *label, const char *extra) {
    char l[128];
    char *b = completion_body(extra);
    snprintf(l, sizeof l, "completions %s", label);
    good(l, "/v1/completions", b);
    free(b);
    b = chat_body(extra);
    snprintf(l, sizeof l, "chat %s", label);
    good(l, "/v1/chat/completions", b);
    free(b);
}

/* ---- the cases ---------------------------------------------------------- */

static void test_json(void) {
    const char *const broken[] = {"{\"model\":\"stories260K\",\"prompt\":\"Once", "not json", "",
                                  "{\"model\":\"stories260K\",}", "{\"model\" \"x\"}", "{'model':'x'}"};
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        for (int route = 0; route < 2; route++) {
            const char *path = route ? "/v1/chat/completions" : "/v1/completions";
            dzt_response r;
            dzt_http_request("127.0.0.1", g_port, "POST", path, g_auth, broken[i], TIMEOUT_MS, &r);
            char label[64];
            snprintf(label, sizeof label, "broken JSON %zu", i);
            check_error(label, broken[i], strlen(broken[i]), &r, 400, 0, "null", NULL, "JSON");
            dzt_response_free(&r);
        }
    }
    bad("JSON array body", "/v1/completions", "[1,2,3]", "null");
    bad("JSON string body", "/v1/chat/completions", "\"hello\"", "null");

    /* nesting: 10000 levels as the whole body and as a field, 100 levels (> 64) */
    dzt_sbuf b = {0};
    dzt_sb_repeat(&b, "[", 10000);
    dzt_sb_repeat(&b, "]", 10000);
    bad("nesting 10000 (body)", "/v1/completions", b.p, "null");
    free(b.p);
    b = (dzt_sbuf){0};
    dzt_sb_add(&b, "\"prompt\":");
    dzt_sb_repeat(&b, "[", 10000);
    dzt_sb_repeat(&b, "]", 10000);
    bad_both("nesting 10000 (prompt/messages)", b.p, "null|prompt*|messages*");
    free(b.p);
    b = (dzt_sbuf){0};
    dzt_sb_add(&b, "\"logit_bias\":");
    dzt_sb_repeat(&b, "{\"a\":", 10000);
    dzt_sb_add(&b, "1");
    dzt_sb_repeat(&b, "}", 10000);
    bad_both("object nesting 10000", b.p, "null|logit_bias*");
    free(b.p);
    b = (dzt_sbuf){0};
    dzt_sb_add(&b, "\"user\":");
    dzt_sb_repeat(&b, "[", 100);
    dzt_sb_repeat(&b, "]", 100);
    bad_both("nesting 100", b.p, "null|user");
    free(b.p);
    b = (dzt_sbuf){0};
    dzt_sb_repeat(&b, "[", 5000);
    bad("unclosed nesting 5000", "/v1/completions", b.p, "null");
    free(b.p);

    /* numbers that do not fit, NaN and infinities (not JSON) */
    bad_both("max_tokens 1e400", "\"max_tokens\":1e400", "null|max_tokens");
    bad_both("temperature 1e400", "\"temperature\":1e400", "null|temperature");
    bad_both("temperature -1e400", "\"temperature\":-1e400", "null|temperature");
    bad_both("max_tokens 2^63", "\"max_tokens\":9223372036854775808", "null|max_tokens");
    bad_both("max_tokens -2^63-1", "\"max_tokens\":-9223372036854775809", "null|max_tokens");
    bad_both("seed 2^64", "\"seed\":18446744073709551616", "null|seed");
    bad_both("n 2^63", "\"n\":9223372036854775808", "null|n");
    bad_both("max_tokens 1e10", "\"max_tokens\":1e10", "max_tokens");
    bad_both("max_tokens 8.5", "\"max_tokens\":8.5", "max_tokens");
    bad_both("temperature NaN", "\"temperature\":NaN", "null|temperature");
    bad_both("top_p nan", "\"top_p\":nan", "null|top_p");
    bad_both("temperature Infinity", "\"temperature\":Infinity", "null|temperature");
    bad_both("presence_penalty -Infinity", "\"presence_penalty\":-Infinity", "null|presence_penalty");

    /* invalid UTF-8 inside strings, NUL and lone surrogates */
    bad("prompt \\xff\\xfe", "/v1/completions",
        "{\"model\":\"stories260K\",\"prompt\":\"Once \xff\xfe upon\",\"max_tokens\":2}", "null|prompt");
    bad("prompt overlong /", "/v1/completions",
        "{\"model\":\"stories260K\",\"prompt\":\"a\xc0\xaf\",\"max_tokens\":2}", "null|prompt");
    bad("prompt truncated sequence", "/v1/completions",
        "{\"model\":\"stories260K\",\"prompt\":\"a\xe2\x82\",\"max_tokens\":2}", "null|prompt");
    bad("content \\xc3\\x28", "/v1/chat/completions",
        "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"hi \xc3\x28\"}],"
        "\"max_tokens\":2}",
        "null|messages*");
    bad("key \\xff", "/v1/completions", "{\"model\":\"stories260K\",\"prompt\":\"x\",\"\xff\":1}",
        "null");
    bad("model \\xed\\xa0\\x80 (surrogate)", "/v1/completions",
        "{\"model\":\"stories\xed\xa0\x80\",\"prompt\":\"x\",\"max_tokens\":2}", "null|model");
    bad("prompt \\u0000", "/v1/completions",
        "{\"model\":\"stories260K\",\"prompt\":\"a\\u0000b\",\"max_tokens\":2}", "null|prompt");
    bad("prompt lone surrogate escape", "/v1/completions",
        "{\"model\":\"stories260K\",\"prompt\":\"a\\ud800b\",\"max_tokens\":2}", "null|prompt");
    check_alive("the JSON cases");
}

static void test_parameters(void) {
    const char *const counts[] = {"-1", "0", "2147483647", "2147483648", "4294967297", "\"8\"", "null", "true",
                                  "[8]"};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        char extra[128], label[64];
        snprintf(extra, sizeof extra, "\"max_tokens\":%s", counts[i]);
        snprintf(label, sizeof label, "max_tokens %s", counts[i]);
        if (strcmp(counts[i], "null") != 0) /* null: OpenAI's "not given" */
            bad_both(label, extra, "max_tokens");
        snprintf(extra, sizeof extra, "\"n\":%s", counts[i]);
        snprintf(label, sizeof label, "n %s", counts[i]);
        if (strcmp(counts[i], "null") != 0) bad_both(label, extra, "n");
    }
    bad_both("n 17", "\"n\":17", "n");
    bad("max_completion_tokens -1", "/v1/chat/completions",
        "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
        "\"max_completion_tokens\":-1}",
        "max_completion_tokens");
    bad("max_completion_tokens \"8\"", "/v1/chat/completions",
        "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
        "\"max_completion_tokens\":\"8\"}",
        "max_completion_tokens");

    bad_both("temperature -1", "\"temperature\":-1", "temperature");
    bad_both("temperature 3", "\"temperature\":3", "temperature");
    bad_both("temperature 2.0001", "\"temperature\":2.0001", "temperature");
    bad_both("temperature \"1\"", "\"temperature\":\"1\"", "temperature");
    bad_both("top_p 0", "\"top_p\":0", "top_p");
    bad_both("top_p 1.5", "\"top_p\":1.5", "top_p");
    bad_both("top_p -0.5", "\"top_p\":-0.5", "top_p");
    bad_both("presence_penalty 3", "\"presence_penalty\":3", "presence_penalty");
    bad_both("presence_penalty -3", "\"presence_penalty\":-3", "presence_penalty");
    bad_both("frequency_penalty 3", "\"frequency_penalty\":3", "frequency_penalty");
    bad_both("frequency_penalty -2.5", "\"frequency_penalty\":-2.5", "frequency_penalty");

    bad_both("logit_bias key 999999", "\"logit_bias\":{\"999999\":1}", "logit_bias*");
    bad_both("logit_bias key 512 (= n_vocab)", "\"logit_bias\":{\"512\":1}", "logit_bias*");
    bad_both("logit_bias key abc", "\"logit_bias\":{\"abc\":1}", "logit_bias*");
    bad_both("logit_bias key -1", "\"logit_bias\":{\"-1\":1}", "logit_bias*");
    bad_both("logit_bias key 99999999999999999999", "\"logit_bias\":{\"99999999999999999999\":1}",
             "logit_bias*");
    bad_both("logit_bias value 1000", "\"logit_bias\":{\"5\":1000}", "logit_bias*");
    bad_both("logit_bias value -101", "\"logit_bias\":{\"5\":-101}", "logit_bias*");
    bad_both("logit_bias value \"x\"", "\"logit_bias\":{\"5\":\"x\"}", "logit_bias*");
    bad_both("logit_bias list", "\"logit_bias\":[1]", "logit_bias*");

    /* allowed boundaries: the rejections above are for the values, not the fields */
    good_both("temperature 0", "\"temperature\":0");
    good_both("temperature 2", "\"temperature\":2");
    good_both("top_p 1", "\"top_p\":1");
    good_both("penalties 2/-2", "\"presence_penalty\":2,\"frequency_penalty\":-2");
    good_both("logit_bias 100/-100", "\"logit_bias\":{\"5\":100,\"511\":-100}");
    good_both("n 16, max_tokens 1", "\"n\":16,\"max_tokens\":1");
    /* a streamed request is refused with a JSON error, not a stream */
    bad_both("stream with max_tokens -1", "\"stream\":true,\"max_tokens\":-1", "max_tokens");
    bad_both("stream_options not an object", "\"stream\":true,\"stream_options\":5", "stream_options*");
    check_alive("the parameter cases");
}

static void test_prompts(void) {
    /* token ids outside the vocabulary (512 tokens: 0..511) */
    bad("prompt ids [1,2,99999]", "/v1/completions", "{\"model\":\"stories260K\",\"prompt\":[1,2,99999]}",
        "prompt*");
    bad("prompt ids [512]", "/v1/completions", "{\"model\":\"stories260K\",\"prompt\":[512]}", "prompt*");
    bad("prompt ids [-1]", "/v1/completions", "{\"model\":\"stories260K\",\"prompt\":[-1]}", "prompt*");
    bad("prompt ids [2147483648]", "/v1/completions", "{\"model\":\"stories260K\",\"prompt\":[2147483648]}",
        "prompt*");
    bad("prompt ids [[1,2],[3,99999]]", "/v1/completions",
        "{\"model\":\"stories260K\",\"prompt\":[[1,2],[3,99999]]}", "prompt*");
    bad("prompt ids [1.5]", "/v1/completions", "{\"model\":\"stories260K\",\"prompt\":[1.5]}", "prompt*");
    bad("prompt [1,\"a\"]", "/v1/completions", "{\"model\":\"stories260K\",\"prompt\":[1,\"a\"]}", "prompt*");
    good("prompt ids [1,400,511]", "/v1/completions",
         "{\"model\":\"stories260K\",\"prompt\":[1,400,511],\"max_tokens\":2}");
    bad("detokenize [99999]", "/detokenize", "{\"tokens\":[99999]}", "tokens*");
    bad("detokenize [-1]", "/detokenize", "{\"tokens\":[-1]}", "tokens*");
    bad("tokenize content 5", "/tokenize", "{\"content\":5}", "content");
    bad("embeddings input [99999]", "/v1/embeddings", "{\"model\":\"stories260K\",\"input\":[99999]}",
        "input*");
    bad("embeddings input \"\"", "/v1/embeddings", "{\"model\":\"stories260K\",\"input\":\"\"}", "input*");

    /* empty prompt and messages */
    bad("prompt \"\"", "/v1/completions", "{\"model\":\"stories260K\",\"prompt\":\"\",\"max_tokens\":2}",
        "prompt*");
    bad("prompt []", "/v1/completions", "{\"model\":\"stories260K\",\"prompt\":[],\"max_tokens\":2}",
        "prompt*");
    bad("prompt [[]]", "/v1/completions", "{\"model\":\"stories260K\",\"prompt\":[[]],\"max_tokens\":2}",
        "prompt*");
    bad("no prompt", "/v1/completions", "{\"model\":\"stories260K\",\"max_tokens\":2}", "prompt");
    bad("prompt 5", "/v1/completions", "{\"model\":\"stories260K\",\"prompt\":5,\"max_tokens\":2}", "prompt");
    bad("messages []", "/v1/chat/completions", "{\"model\":\"stories260K\",\"messages\":[],\"max_tokens\":2}",
        "messages");
    bad("no messages", "/v1/chat/completions", "{\"model\":\"stories260K\",\"max_tokens\":2}", "messages");
    bad("messages \"hi\"", "/v1/chat/completions",
        "{\"model\":\"stories260K\",\"messages\":\"hi\",\"max_tokens\":2}", "messages");
    bad("messages[0].role wizard", "/v1/chat/completions",
        "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}",
        "messages[0].role");
    bad("messages[1].role 5", "/v1/chat/completions",
        "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":5,"
        "\"content\":\"y\"}]}",
        "messages[1].role");
    bad("messages[0].content 5", "/v1/chat/completions",
        "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":5}]}",
        "messages[0].content*");
    bad("messages[0] a string", "/v1/chat/completions",
        "{\"model\":\"stories260K\",\"messages\":[\"hi\"]}", "messages[0]*");

    /* longer than the context (2048): ~3000 tokens of text or ids */
    dzt_sbuf b = {0};
    dzt_sb_add(&b, "\"prompt\":\"");
    dzt_sb_repeat(&b, "hello there ", 1500);
    dzt_sb_add(&b, "\"");
    char *body = completion_body(b.p);
    bad("prompt of ~3000 tokens", "/v1/completions", body, "prompt");
    free(body);
    free(b.p);
    b = (dzt_sbuf){0};
    dzt_sb_add(&b, "\"messages\":[{\"role\":\"user\",\"content\":\"");
    dzt_sb_repeat(&b, "hello there ", 1500);
    dzt_sb_add(&b, "\"}]");
    body = chat_body(b.p);
    bad("messages of ~3000 tokens", "/v1/chat/completions", body, "messages*");
    free(body);
    free(b.p);
    b = (dzt_sbuf){0};
    dzt_sb_add(&b, "\"prompt\":[1");
    dzt_sb_repeat(&b, ",300", 3000);
    dzt_sb_add(&b, "]");
    body = completion_body(b.p);
    bad("prompt of 3001 token ids", "/v1/completions", body, "prompt");
    free(body);
    free(b.p);
    /* the prompt fits, prompt + max_tokens does not */
    bad_both("max_tokens 2048 + prompt", "\"max_tokens\":2048", "max_tokens");
    bad_both("max_tokens 1000000", "\"max_tokens\":1000000", "max_tokens");

    /* stop strings: 10^4 of them, 17, one of 300 bytes; 16 of 256 are fine */
    b = (dzt_sbuf){0};
    dzt_sb_add(&b, "\"stop\":[");
    for (int i = 0; i < 10000; i++) dzt_sb_add(&b, "%s\"s%d\"", i ? "," : "", i);
    dzt_sb_add(&b, "]");
    bad_both("10^4 stop strings", b.p, "stop*");
    free(b.p);
    b = (dzt_sbuf){0};
    dzt_sb_add(&b, "\"stop\":[");
    for (int i = 0; i < 17; i++) dzt_sb_add(&b, "%s\"s%d\"", i ? "," : "", i);
    dzt_sb_add(&b, "]");
    bad_both("17 stop strings", b.p, "stop*");
    free(b.p);
    b = (dzt_sbuf){0};
    dzt_sb_add(&b, "\"stop\":\"");
    dzt_sb_repeat(&b, "x", 300);
    dzt_sb_add(&b, "\"");
    bad_both("stop of 300 bytes", b.p, "stop*");
    free(b.p);
    bad_both("stop 5", "\"stop\":5", "stop*");
    bad_both("stop [5]", "\"stop\":[5]", "stop*");
    b = (dzt_sbuf){0};
    dzt_sb_add(&b, "\"stop\":[");
    for (int i = 0; i < 16; i++) {
        dzt_sb_add(&b, "%s\"%03d", i ? "," : "", i);
        dzt_sb_repeat(&b, "z", 253);
        dzt_sb_add(&b, "\"");
    }
    dzt_sb_add(&b, "]");
    good_both("16 stop strings of 256 bytes", b.p);
    free(b.p);
    check_alive("the prompt cases");
}

/* POST /v1/completions for model name m: 404 model_not_found, param model. */
static void not_found_model(const char *label, const char *model) {
    char extra[256];
    snprintf(extra, sizeof extra, "\"model\":\"%s\"", model);
    char *b = completion_body(extra);
    dzt_response r;
    dzt_http_request("127.0.0.1", g_port, "POST", "/v1/completions", g_auth, b, TIMEOUT_MS, &r);
    check_error(label, b, strlen(b), &r, 404, 0, "model", "model_not_found", NULL);
    dzt_response_free(&r);
    free(b);
    b = chat_body(extra);
    dzt_http_request("127.0.0.1", g_port, "POST", "/v1/chat/completions", g_auth, b, TIMEOUT_MS, &r);
    check_error(label, b, strlen(b), &r, 404, 0, "model", "model_not_found", NULL);
    dzt_response_free(&r);
    free(b);
}

static void get_expect(const char *label, const char *path, const char *headers, int want, int alt,
                       const char *code) {
    dzt_response r;
    dzt_http_request("127.0.0.1", g_port, "GET", path, headers, NULL, TIMEOUT_MS, &r);
    check_error(label, "", 0, &r, want, alt, NULL, code, NULL);
    dzt_response_free(&r);
}

static void test_models_and_routes(void) {
    not_found_model("model ../etc/passwd", "../etc/passwd");
    not_found_model("model stories260K/../../etc/passwd", "stories260K/../../etc/passwd");
    not_found_model("model ..", "..");
    not_found_model("model nosuchmodel", "nosuchmodel");
    get_expect("GET /v1/models/..%2F..%2Fetc%2Fpasswd", "/v1/models/..%2F..%2Fetc%2Fpasswd", g_auth, 404, 0,
               "model_not_found");
    get_expect("GET /v1/models/nosuchmodel", "/v1/models/nosuchmodel", g_auth, 404, 0, "model_not_found");
    get_expect("GET /v1/nothing", "/v1/nothing", g_auth, 404, 0, "not_found");
    get_expect("GET /v1/../../etc/passwd", "/v1/../../etc/passwd", g_auth, 404, 400, NULL);
    get_expect("GET /v1/chat/completions (405)", "/v1/chat/completions", g_auth, 405, 0, NULL);
    check_alive("the model and route cases");
}

static void test_auth(const char *revoked_key) {
    char wrong[DZ_KEY_LEN + 1];
    memcpy(wrong, "dz-", 3);
    memset(wrong + 3, 'A', DZ_KEY_LEN - 3);
    wrong[DZ_KEY_LEN] = '\0';
    const char *key = g_auth + strlen("Authorization: Bearer ");
    char headers[10][256];
    int n = 0;
    snprintf(headers[n++], 256, "%s", "");
    snprintf(headers[n++], 256, "Authorization:\r\n");
    snprintf(headers[n++], 256, "Authorization: Bearer\r\n");
    snprintf(headers[n++], 256, "Authorization: Bearer \r\n");
    snprintf(headers[n++], 256, "Authorization: Bearer %s\r\n", wrong);
    snprintf(headers[n++], 256, "Authorization: Basic %.*s\r\n", DZ_KEY_LEN, key);
    snprintf(headers[n++], 256, "Authorization: Bearer %.*sX\r\n", DZ_KEY_LEN, key);
    snprintf(headers[n++], 256, "Authorization: Bearer %s\r\n", revoked_key);
    snprintf(headers[n++], 256, "%sAuthorization: Bearer %s\r\n", g_auth, wrong);
    snprintf(headers[n++], 256, "%s%s", g_auth, g_auth);
    const char *const names[] = {"no Authorization", "empty Authorization", "Bearer without key",
                                 "Bearer and a space", "wrong key", "Basic scheme", "key with a suffix",
                                 "revoked key", "duplicate (valid, wrong)", "duplicate (valid, valid)"};
    char *b = completion_body("");
    for (int i = 0; i < n; i++) {
        dzt_response r;
        dzt_http_request("127.0.0.1", g_port, "POST", "/v1/completions", headers[i], b, TIMEOUT_MS, &r);
        check_error(names[i], headers[i], strlen(headers[i]), &r, 401, 0, NULL,
                    "invalid_api_key", NULL);
        dzt_response_free(&r);
    }
    free(b);
    get_expect("GET /v1/models without a key", "/v1/models", NULL, 401, 0, "invalid_api_key");
    dzt_response r;
    DZT_EQ_INT(dzt_http_request("127.0.0.1", g_port, "GET", "/v1/models", g_auth, NULL, TIMEOUT_MS, &r), 200);
    dzt_response_free(&r);
    check_alive("the auth cases");
}

/* Sends a request head, then body bytes of `total` (chunked or not) while
 * watching for an early answer, then (when chunked and end) the last chunk;
 * returns the response. */
static void send_big(const char *label, const char *head, size_t total, bool chunked, bool end,
                     dzt_response *r) {
    memset(r, 0, sizeof *r);
    dzt_http *c = dzt_http_connect("127.0.0.1", g_port, 5000);
    if (!c) {
        DZT_CHECK(0, "[%s] cannot connect", label);
        return;
    }
    size_t piece = 64 * 1024;
    char *buf = malloc(piece + 32);
    memset(buf, 'a', piece + 32);
    bool sent_ok = dzt_http_send(c, head, strlen(head), 5000) == 0;
    /* give the server a moment to refuse on the headers alone */
    bool answered = dzt_http_readable(c, 500);
    const char *start = "{\"model\":\"stories260K\",\"prompt\":\"";
    for (size_t sent = 0; sent_ok && !answered && sent < total; sent += piece) {
        char *p = buf;
        size_t len = piece;
        if (sent == 0) memcpy(buf, start, strlen(start));
        if (chunked) { /* "10000\r\n" + data + "\r\n" */
            char size[16];
            int hl = snprintf(size, sizeof size, "%zx\r\n", piece);
            sent_ok = dzt_http_send(c, size, (size_t)hl, 5000) == 0 &&
                      dzt_http_send(c, p, len, 5000) == 0 && dzt_http_send(c, "\r\n", 2, 5000) == 0;
        } else {
            if (sent + len > total) len = total - sent;
            sent_ok = dzt_http_send(c, p, len, 5000) == 0;
        }
        memset(buf, 'a', strlen(start));
        answered = dzt_http_readable(c, 0);
    }
    free(buf);
    if (chunked && end && sent_ok && !answered) dzt_http_send(c, "0\r\n\r\n", 5, 5000);
    if (dzt_http_read_response(c, TIMEOUT_MS, r) != 0 && r->status == 0)
        fprintf(stderr, "  [%s] no response (sent %s)\n", label, sent_ok ? "all" : "part");
    dzt_http_close(c);
}

static void test_limits(void) {
    char head[512];
    dzt_response r;
    /* a Content-Length over 4 MiB, the body sent too */
    snprintf(head, sizeof head,
             "POST /v1/completions HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n"
             "Content-Length: %d\r\n\r\n",
             g_auth, MAX_BODY + 1);
    send_big("Content-Length 4 MiB + 1", head, MAX_BODY + 1, false, false, &r);
    check_error("Content-Length 4 MiB + 1", head, strlen(head), &r, 413, 0, NULL, NULL, NULL);
    dzt_response_free(&r);
    /* a chunked body that grows past the limit: 413 once it is over, without
     * waiting for an end that an endless upload never sends; and a chunked
     * body over the limit that does end */
    snprintf(head, sizeof head,
             "POST /v1/completions HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n"
             "Transfer-Encoding: chunked\r\n\r\n",
             g_auth);
    send_big("chunked body growing over 4 MiB", head, (size_t)MAX_BODY + 512 * 1024, true, false, &r);
    check_error("chunked body growing over 4 MiB (no last chunk)", head, strlen(head), &r, 413, 0, NULL, NULL,
                NULL);
    dzt_response_free(&r);
    send_big("chunked body of 4.5 MiB", head, (size_t)MAX_BODY + 512 * 1024, true, true, &r);
    check_error("chunked body of 4.5 MiB (then the last chunk)", head, strlen(head), &r, 413, 0, NULL, NULL, NULL);
    dzt_response_free(&r);
    /* a Content-Length that does not fit in 64 bits */
    snprintf(head, sizeof head,
             "POST /v1/completions HTTP/1.1\r\nHost: x\r\n%sContent-Length: 99999999999999999999999\r\n\r\n",
             g_auth);
    send_big("Content-Length 10^23", head, 0, false, false, &r);
    DZT_CHECK(r.status == 413 || r.status == 400, "[Content-Length 10^23] status %d, expected 413 or 400",
              r.status);
    dzt_response_free(&r);

    /* a 64 KiB header: 431 (or 400 from libmicrohttpd) */
    dzt_sbuf b = {0};
    dzt_sb_add(&b, "POST /v1/completions HTTP/1.1\r\nHost: x\r\n%sX-Big: ", g_auth);
    dzt_sb_repeat(&b, "abcdefghijklmnop", 4096);
    dzt_sb_add(&b, "\r\nContent-Length: 2\r\n\r\n{}");
    dzt_http *c = dzt_http_connect("127.0.0.1", g_port, 5000);
    if (c) {
        dzt_http_send(c, b.p, b.n, 5000);
        dzt_http_read_response(c, TIMEOUT_MS, &r);
        DZT_CHECK(r.status == 431 || r.status == 400, "[64 KiB header] status %d, expected 431 or 400",
                  r.status);
        dzt_response_free(&r);
        dzt_http_close(c);
    }
    free(b.p);
    /* 2000 small headers (~100 KiB together) */
    b = (dzt_sbuf){0};
    dzt_sb_add(&b, "GET /health HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 2000; i++) dzt_sb_add(&b, "X-H%d: %040d\r\n", i, i);
    dzt_sb_add(&b, "\r\n");
    c = dzt_http_connect("127.0.0.1", g_port, 5000);
    if (c) {
        dzt_http_send(c, b.p, b.n, 5000);
        dzt_http_read_response(c, TIMEOUT_MS, &r);
        DZT_CHECK(r.status == 431 || r.status == 400, "[2000 headers] status %d, expected 431 or 400",
                  r.status);
        dzt_response_free(&r);
        dzt_http_close(c);
    }
    free(b.p);
    /* a 64 KiB request target */
    b = (dzt_sbuf){0};
    dzt_sb_add(&b, "GET /v1/models/");
    dzt_sb_repeat(&b, "x", 65536);
    dzt_sb_add(&b, " HTTP/1.1\r\nHost: x\r\n\r\n");
    c = dzt_http_connect("127.0.0.1", g_port, 5000);
    if (c) {
        dzt_http_send(c, b.p, b.n, 5000);
        dzt_http_read_response(c, TIMEOUT_MS, &r);
        DZT_CHECK(r.status == 414 || r.status == 431 || r.status == 400,
                  "[64 KiB URL] status %d, expected 414, 431 or 400", r.status);
        dzt_response_free(&r);
        dzt_http_close(c);
    }
    free(b.p);
    check_alive("the size limits");
}

/* Malformed HTTP: a 400 or a close, never a hang or a crash. */
static void test_malformed_http(void) {
    const char *const raw[] = {
        "GARBAGE\r\n\r\n",
        "POST /v1/completions\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", /* a TLS ClientHello */
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n{}",
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        "POST /v1/completions HTTP/9.9\r\nHost: x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        dzt_http *c = dzt_http_connect("127.0.0.1", g_port, 5000);
        if (!c) {
            DZT_CHECK(0, "[malformed HTTP %zu] cannot connect", i);
            continue;
        }
        dzt_http_send(c, raw[i], strlen(raw[i]), 5000);
        dzt_response r;
        dzt_http_read_response(c, TIMEOUT_MS, &r);
        bool closed = r.status == 0 && dzt_http_peer_closed(c);
        /* 505: HTTP Version Not Supported, for HTTP/9.9 */
        bool refused = (r.status >= 400 && r.status < 500) || r.status == 505;
        DZT_CHECK(refused || closed, "[malformed HTTP %zu] got %d and the connection %s, expected a 4xx, 505 or a close",
                  i, r.status, closed ? "closed" : "still open");
        if (!refused && !closed) dzt_print_request("malformed HTTP", "raw", raw[i], strlen(raw[i]));
        dzt_response_free(&r);
        dzt_http_close(c);
    }
    /* on one keep-alive connection: an error leaves nothing behind */
    dzt_http *c = dzt_http_connect("127.0.0.1", g_port, 5000);
    const char *bodies[] = {"{\"model\":\"stories260K\",\"prompt\":",
                            "{\"model\":\"stories260K\",\"prompt\":\"Once\",\"max_tokens\":2}",
                            "{\"model\":\"stories260K\",\"prompt\":\"Once\",\"max_tokens\":-1}",
                            "{\"model\":\"stories260K\",\"prompt\":\"Once\",\"max_tokens\":2}"};
    const int want[] = {400, 200, 400, 200};
    for (int i = 0; c && i < 4; i++) {
        dzt_response r = {0};
        if (dzt_http_send_request(c, "POST", "/v1/completions", g_auth, bodies[i], strlen(bodies[i]), 5000) == 0)
            dzt_http_read_response(c, TIMEOUT_MS, &r);
        DZT_CHECK(r.status == want[i], "[keep-alive request %d] status %d, expected %d", i, r.status, want[i]);
        dzt_response_free(&r);
    }
    dzt_http_close(c);
    check_alive("malformed HTTP");
}

/* ---- slow clients --------------------------------------------------------- */

/* When the server closed a slow connection, in ms after connecting; -1 never. */
typedef struct slow_client {
    long long closed_after_ms;
    int bytes_sent;
} slow_client;

/* Connects and sends nothing. */
static void *silent_main(void *arg) {
    slow_client *sc = arg;
    sc->closed_after_ms = -1;
    long long t0 = dzt_now_ms();
    dzt_http *c = dzt_http_connect("127.0.0.1", g_port, 5000);
    if (!c) return NULL;
    if (dzt_http_wait_closed(c, 14000)) sc->closed_after_ms = dzt_now_ms() - t0;
    dzt_http_close(c);
    return NULL;
}

/* Sends a valid request one byte a second. */
static void *drip_main(void *arg) {
    slow_client *sc = arg;
    sc->closed_after_ms = -1;
    char req[512];
    const char *body = "{\"model\":\"stories260K\",\"prompt\":\"Once\",\"max_tokens\":2}";
    int n = snprintf(req, sizeof req, "POST /v1/completions HTTP/1.1\r\nHost: x\r\n%sContent-Length: %zu\r\n\r\n%s",
                     g_auth, strlen(body), body);
    long long t0 = dzt_now_ms();
    dzt_http *c = dzt_http_connect("127.0.0.1", g_port, 5000);
    if (!c) return NULL;
    for (int i = 0; i < n && dzt_now_ms() - t0 < 14000; i++) {
        if (dzt_http_readable(c, 0)) { /* an answer (408?) or the close */
            if (dzt_http_wait_closed(c, 3000)) sc->closed_after_ms = dzt_now_ms() - t0;
            break;
        }
        if (dzt_http_send(c, req + i, 1, 2000) != 0) {
            sc->closed_after_ms = dzt_now_ms() - t0;
            break;
        }
        sc->bytes_sent++;
        dzt_http_readable(c, 1000);
    }
    dzt_http_close(c);
    return NULL;
}

/* ---- clients that vanish ------------------------------------------------- */

static double metric(const char *name) {
    dzt_response r;
    double v = -1;
    if (dzt_http_request("127.0.0.1", g_port, "GET", "/metrics", NULL, NULL, TIMEOUT_MS, &r) == 200)
        v = dzt_metric_sum(r.body, name);
    dzt_response_free(&r);
    return v;
}

/* Waits until no sequence runs and no KV block is held; true when so. */
static bool wait_idle(const char *label, int timeout_ms) {
    long long deadline = dzt_now_ms() + timeout_ms;
    double running, used, queued;
    do {
        running = metric("dizuo_running_sequences");
        used = metric("dizuo_kv_blocks_used");
        queued = metric("dizuo_queue_length");
        if (running == 0 && used == 0 && queued == 0) return true;
        sleep_ms(100);
    } while (dzt_now_ms() < deadline);
    DZT_CHECK(0, "[%s] after %d ms: dizuo_running_sequences %g, dizuo_kv_blocks_used %g, dizuo_queue_length %g "
                 "(expected 0, 0, 0; -1: metric absent)",
              label, timeout_ms, running, used, queued);
    return false;
}

/* Starts a streamed request, reads up to its first chunk with text (the id
 * goes to id) and vanishes: a reset when rst, else a plain close. */
static bool stream_and_vanish(const char *label, const char *auth, const char *path, const char *body, bool rst,
                              char id[64]) {
    id[0] = '\0';
    dzt_http *c = dzt_http_connect("127.0.0.1", g_port, 5000);
    if (!c) return false;
    dzt_response r;
    bool ok = dzt_http_send_request(c, "POST", path, auth, body, strlen(body), 5000) == 0 &&
              dzt_http_read_head(c, TIMEOUT_MS, &r) == 0;
    if (ok && r.status != 200) {
        dzt_http_read_response(c, 0, &r); /* not needed; keep the status */
        ok = false;
    }
    DZT_CHECK(ok, "[%s] expected a 200 stream, got %d", label, r.status);
    /* read up to the first chunk that carries text: a chat stream opens
     * with a role chunk sent before the engine has computed anything, and a
     * request cancelled then is rightly billed 0 tokens */
    bool text_seen = false;
    for (int n = 0; ok && !text_seen && n < 64; n++) {
        char *data = NULL;
        if (dzt_http_next_event(c, TIMEOUT_MS, &data) != 1) {
            free(data);
            break;
        }
        json_error_t e;
        json_t *j = json_loads(data, 0, &e);
        const char *s = json_string_value(json_object_get(j, "id"));
        if (s && !id[0]) snprintf(id, 64, "%s", s);
        json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
        const char *t = json_string_value(json_object_get(ch, "text"));
        if (!t) t = json_string_value(json_object_get(json_object_get(ch, "delta"), "content"));
        text_seen = t && t[0];
        json_decref(j);
        free(data);
    }
    DZT_CHECK(id[0], "[%s] the first chunk has no id", label);
    DZT_CHECK(!ok || text_seen, "[%s] no chunk with text came", label);
    if (!ok) dzt_print_request(label, path, body, strlen(body));
    dzt_response_free(&r);
    if (rst) dzt_http_abort(c);
    else dzt_http_close(c);
    return ok && id[0];
}

/* The row of a vanished request: "cancelled", with fewer tokens than asked. */
static void check_cancelled_row(const char *label, const char *id, int max_tokens) {
    dzt_usage_row row = {0};
    bool found = false;
    for (long long deadline = dzt_now_ms() + 5000; !found && dzt_now_ms() < deadline; sleep_ms(100))
        found = dzt_ledger_row(g_db, id, &row);
    DZT_CHECK(found, "[%s] no ledger row for %s", label, id);
    if (!found) return;
    DZT_CHECK(strcmp(row.status, "cancelled") == 0, "[%s] row status \"%s\", expected \"cancelled\"", label,
              row.status);
    DZT_CHECK(row.prompt > 0 && row.completion < max_tokens, "[%s] row tokens %lld/%lld (max_tokens %d)", label,
              row.prompt, row.completion, max_tokens);
}

static void test_vanish(void) {
    /* the key's quota (2400 tokens) holds one reservation of 1200 + prompt,
     * not two: the second request is admitted only if the first one's
     * reservation was released when its client vanished (and the first is
     * billed what it computed: under 1170 tokens leaves room for the second) */
    char id[64];
    const int max_tokens = 1200;
    char body[512];
    snprintf(body, sizeof body,
             "{\"model\":\"stories260K\",\"prompt\":\"Once upon a time\",\"max_tokens\":%d,\"ignore_eos\":true,"
             "\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
             max_tokens);
    if (stream_and_vanish("vanish with a reset", g_vanish, "/v1/completions", body, true, id)) {
        wait_idle("after a reset mid-stream", 8000);
        check_cancelled_row("vanish with a reset", id, max_tokens);
    }
    snprintf(body, sizeof body,
             "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story.\"}],"
             "\"max_tokens\":%d,\"ignore_eos\":true,\"stream\":true}",
             max_tokens);
    if (stream_and_vanish("vanish with a close (quota released?)", g_vanish, "/v1/chat/completions", body, false,
                          id)) {
        wait_idle("after a close mid-stream", 8000);
        check_cancelled_row("vanish with a close", id, max_tokens);
    }
    /* a non-streamed request whose client leaves before the answer */
    snprintf(body, sizeof body,
             "{\"model\":\"stories260K\",\"prompt\":\"Once upon a time\",\"max_tokens\":300,\"ignore_eos\":true}");
    dzt_http *c = dzt_http_connect("127.0.0.1", g_port, 5000);
    if (c) {
        dzt_http_send_request(c, "POST", "/v1/completions", g_auth, body, strlen(body), 5000);
        sleep_ms(100);
        dzt_http_abort(c);
        wait_idle("after a non-streamed client left", 10000);
    }
    check_alive("the vanishing clients");
}

/* ---- the server still works --------------------------------------------- */

static void *normal_request_main(void *arg) {
    int *status = arg;
    dzt_response r;
    char *b = completion_body("\"max_tokens\":8");
    *status = dzt_http_request("127.0.0.1", g_port, "POST", "/v1/completions", g_auth, b, TIMEOUT_MS, &r);
    free(b);
    dzt_response_free(&r);
    return NULL;
}

static void test_still_serving(void) {
    const char *body = "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story.\"}],"
                       "\"max_tokens\":12}";
    dzt_response r;
    int st = dzt_http_request("127.0.0.1", g_port, "POST", "/v1/chat/completions", g_auth, body, TIMEOUT_MS, &r);
    DZT_EQ_INT(st, 200);
    json_error_t e;
    json_t *j = st == 200 ? json_loads(r.body, 0, &e) : NULL;
    const char *id = json_string_value(json_object_get(j, "id"));
    json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
    json_t *msg = json_object_get(choice, "message");
    json_t *usage = json_object_get(j, "usage");
    const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
    long long pt = json_integer_value(json_object_get(usage, "prompt_tokens"));
    long long ct = json_integer_value(json_object_get(usage, "completion_tokens"));
    long long cached = json_integer_value(json_object_get(json_object_get(usage, "prompt_tokens_details"),
                                                          "cached_tokens"));
    DZT_ASSERT(id && strncmp(id, "chatcmpl-", 9) == 0 && strlen(id) == 9 + 24);
    DZT_EQ_STR(json_string_value(json_object_get(j, "object")), "chat.completion");
    DZT_ASSERT(json_is_integer(json_object_get(j, "created")));
    DZT_EQ_STR(json_string_value(json_object_get(msg, "role")), "assistant");
    DZT_ASSERT(json_is_string(json_object_get(msg, "content")));
    DZT_ASSERT(finish && (strcmp(finish, "stop") == 0 || strcmp(finish, "length") == 0));
    DZT_ASSERT(pt > 0 && ct > 0 && ct <= 12);
    DZT_EQ_INT(json_integer_value(json_object_get(usage, "total_tokens")), pt + ct);
    char hdr[128];
    DZT_ASSERT(id && dzt_response_header(&r, "X-Request-Id", hdr, sizeof hdr) && strcmp(hdr, id) == 0);
    dzt_usage_row row = {0};
    DZT_ASSERT(id && dzt_ledger_row(g_db, id, &row));
    DZT_EQ_STR(row.status, "ok");
    DZT_EQ_INT(row.prompt, pt);
    DZT_EQ_INT(row.cached, cached);
    DZT_EQ_INT(row.completion, ct);
    json_decref(j);
    dzt_response_free(&r);

    /* the alias, and parallel + 1 requests at once: no slot is stuck */
    good("model default", "/v1/completions", "{\"model\":\"default\",\"prompt\":\"Once\",\"max_tokens\":2}");
    pthread_t th[3];
    int status[3] = {0};
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, normal_request_main, &status[i]);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) DZT_EQ_INT(status[i], 200);

    st = dzt_http_request("127.0.0.1", g_port, "GET", "/health", NULL, NULL, TIMEOUT_MS, &r);
    DZT_EQ_INT(st, 200);
    j = st == 200 ? json_loads(r.body, 0, &e) : NULL;
    DZT_EQ_STR(json_string_value(json_object_get(j, "status")), "ok");
    json_decref(j);
    dzt_response_free(&r);
    wait_idle("at the end", 5000);
}

/* ---- main ---------------------------------------------------------------- */

static void make_keys(char revoked[DZ_KEY_LEN + 1]) {
    dz_ledger *l = NULL;
    DZT_OK(dz_ledger_open(g_db, DZ_LEDGER_CREATE, &l));
    if (!l) exit(dzt_done());
    char key[DZ_KEY_LEN + 1];
    int64_t id;
    dz_key_spec plain = {.tenant = "bad"};
    DZT_OK(dz_ledger_key_create(l, &plain, key, &id));
    snprintf(g_auth, sizeof g_auth, "Authorization: Bearer %s\r\n", key);
    dz_key_spec quota = {.tenant = "vanish", .quota_tokens = 2400};
    DZT_OK(dz_ledger_key_create(l, &quota, key, &id));
    snprintf(g_vanish, sizeof g_vanish, "Authorization: Bearer %s\r\n", key);
    DZT_OK(dz_ledger_key_create(l, &plain, revoked, &id));
    DZT_OK(dz_ledger_key_revoke(l, id));
    dz_key_spec admin = {.tenant = "ops", .admin = true}; /* no first-start admin key */
    DZT_OK(dz_ledger_key_create(l, &admin, key, &id));
    dz_ledger_close(l);
}

int main(void) {
    char *model = dzt_shared("models/stories260K.gguf");
    if (!dzt_serve_available()) {
        printf("SKIP: %s has no `serve` command yet\n", dzt_bin());
        return 77;
    }
    snprintf(g_db, sizeof g_db, "%s/bad.db", dzt_tmpdir());
    char revoked[DZ_KEY_LEN + 1];
    make_keys(revoked);

    /* small timeouts, so the slow clients are cut off within the test */
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/serve.json", dzt_tmpdir());
    const char *args[] = {"-m", model, "--port", "0", "--db", g_db, "--parallel", "2", "-t", "2", "-c", "2048",
                          "--config", cfg, NULL};
    const char *const configs[] = {"{\"idle_timeout_s\": 2, \"request_timeout_s\": 5}\n",
                                   "{\"idle_timeout_s\": 2}\n"};
    int started = -1;
    for (int i = 0; i < 2 && started != 0; i++) {
        FILE *f = fopen(cfg, "w");
        if (!f) return 1;
        fputs(configs[i], f);
        fclose(f);
        started = dzt_server_start(&g_srv, "serve", args, 30000);
        DZT_CHECK(started == 0, "dizuo serve did not start with the config %s", configs[i]);
    }
    if (started != 0) return dzt_done();
    g_port = g_srv.port;
    long long t0 = dzt_now_ms();
    dzt_response r;
    for (int i = 0; i < 200; i++) { /* the model is loaded once /ready is 200 */
        int st = dzt_http_request("127.0.0.1", g_port, "GET", "/ready", NULL, NULL, 5000, &r);
        dzt_response_free(&r);
        if (st == 200) break;
        sleep_ms(50);
    }
    good("a normal request first", "/v1/completions",
         "{\"model\":\"stories260K\",\"prompt\":\"Once upon a time\",\"max_tokens\":4}");

    /* slow clients connect; everyone else is served meanwhile */
    slow_client silent = {0}, drip = {0};
    pthread_t th_silent, th_drip;
    pthread_create(&th_silent, NULL, silent_main, &silent);
    pthread_create(&th_drip, NULL, drip_main, &drip);
    sleep_ms(300);
    DZT_EQ_INT(dzt_http_request("127.0.0.1", g_port, "GET", "/health", NULL, NULL, 5000, &r), 200);
    dzt_response_free(&r);
    good("served while slow clients hang", "/v1/chat/completions",
         "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":4}");

    test_json();
    test_parameters();
    test_prompts();
    test_models_and_routes();
    test_auth(revoked);
    test_limits();
    test_malformed_http();

    pthread_join(th_silent, NULL);
    pthread_join(th_drip, NULL);
    fprintf(stderr, "silent client closed after %lld ms; one-byte-a-second client after %lld ms (%d bytes)\n",
            silent.closed_after_ms, drip.closed_after_ms, drip.bytes_sent);
    DZT_CHECK(silent.closed_after_ms >= 1000 && silent.closed_after_ms <= 6000,
              "a silent client was closed after %lld ms (idle_timeout_s 2; -1: never)", silent.closed_after_ms);
    DZT_CHECK(drip.closed_after_ms >= 1000 && drip.closed_after_ms <= 10000,
              "a client sending one byte a second was closed after %lld ms (idle_timeout_s 2, request_timeout_s 5; "
              "-1: never)",
              drip.closed_after_ms);
    check_alive("the slow clients");

    test_vanish();
    test_still_serving();

    int st = dzt_server_stop(&g_srv, SIGTERM, 30000);
    DZT_EQ_INT(st, 0);
    fprintf(stderr, "test_serve_badinput: %lld ms\n", dzt_now_ms() - t0);
    if (dzt_failed) dzt_server_print_log(&g_srv, 2000);
    free(model);
    return dzt_done();
}
