/* The OpenAI request parser (src/serve/oai_parse.c): accepted shapes give
 * the values written in the JSON; each bad field gives a 400 naming it. */
#include "dztest.h"
#include "serve/oai_parse.h"

static const dz_oai_limits lim = {.n_vocab = 512, .max_n = 16, .max_stop = 16, .max_stop_bytes = 256,
                                  .max_prompts = 256};

static dz_oai_request *ok(dz_oai_kind kind, const char *body) {
    dz_oai_request *r = NULL;
    dz_oai_error err;
    dz_status s = dz_oai_parse(kind, body, strlen(body), &lim, &r, &err);
    DZT_CHECK(s == DZ_OK, "%s: %s (param %s)", body, err.message, err.param);
    return s == DZ_OK ? r : NULL;
}

/* The body must fail with 400 naming param ("" for none). */
static void bad(dz_oai_kind kind, const char *body, const char *param) {
    dz_oai_request *r = NULL;
    dz_oai_error err;
    dz_status s = dz_oai_parse(kind, body, strlen(body), &lim, &r, &err);
    DZT_CHECK(s == DZ_ERR_ARG, "%s: accepted", body);
    DZT_CHECK(r == NULL, "%s: *out set on failure", body);
    if (s != DZ_ERR_ARG) {
        dz_oai_request_free(r);
        return;
    }
    DZT_EQ_INT(err.status, 400);
    DZT_CHECK(!strcmp(err.param, param), "%s: param '%s', expected '%s' (%s)", body, err.param, param, err.message);
    DZT_CHECK(err.message[0] != '\0', "%s: no message", body);
}

static void test_chat(void) {
    dz_oai_request *r = ok(DZ_OAI_CHAT,
                           "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":\"be brief\"},"
                           "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
                           "{\"role\":\"assistant\",\"content\":null}],"
                           "\"max_completion_tokens\":7,\"max_tokens\":9,\"n\":3,\"temperature\":0,\"top_p\":0.5,"
                           "\"stop\":\"END\",\"seed\":-1,\"logprobs\":true,\"top_logprobs\":4,"
                           "\"logit_bias\":{\"5\":-100,\"7\":2.5},\"stream\":true,"
                           "\"stream_options\":{\"include_usage\":true},\"ignore_eos\":true,\"user\":\"u1\"}");
    if (!r) return;
    DZT_EQ_STR(r->model, "m");
    DZT_EQ_INT(r->n_messages, 3);
    DZT_EQ_STR(r->messages[0].role, "system");
    DZT_EQ_STR(r->messages[1].content, "ab");
    DZT_EQ_STR(r->messages[2].content, "");
    DZT_EQ_INT(r->max_tokens, 7); /* max_completion_tokens wins */
    DZT_EQ_INT(r->n, 3);
    DZT_ASSERT(r->has_temperature && r->temperature == 0);
    DZT_ASSERT(r->has_top_p && r->top_p == 0.5);
    DZT_EQ_INT(r->n_stop, 1);
    DZT_EQ_STR(r->stop[0], "END");
    DZT_ASSERT(r->has_seed && r->seed == UINT64_MAX);
    DZT_ASSERT(r->logprobs);
    DZT_EQ_INT(r->top_logprobs, 4);
    DZT_EQ_INT(r->n_logit_bias, 2);
    DZT_ASSERT(r->logit_bias[0].token == 5 && isinf(r->logit_bias[0].bias) && r->logit_bias[0].bias < 0);
    DZT_ASSERT(r->logit_bias[1].token == 7 && r->logit_bias[1].bias == 2.5f);
    DZT_ASSERT(r->stream && r->include_usage && r->ignore_eos);
    DZT_EQ_STR(r->user, "u1");
    dz_oai_request_free(r);

    r = ok(DZ_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    if (r) {
        DZT_ASSERT(r->model == NULL && r->max_tokens == 0 && r->n == 1 && !r->has_temperature && !r->stream);
        dz_oai_request_free(r);
    }
}

static void test_prompts(void) {
    dz_oai_request *r = ok(DZ_OAI_COMPLETION, "{\"prompt\":[[1,2,3],\"text\"],\"n\":2,\"logprobs\":3}");
    if (r) {
        DZT_EQ_INT(r->n_prompts, 2);
        DZT_EQ_INT(r->prompts[0].n_tokens, 3);
        DZT_EQ_INT(r->prompts[0].tokens[2], 3);
        DZT_EQ_STR(r->prompts[1].text, "text");
        DZT_ASSERT(r->logprobs && r->top_logprobs == 3);
        dz_oai_request_free(r);
    }
    r = ok(DZ_OAI_COMPLETION, "{\"prompt\":[5,6]}");
    if (r) {
        DZT_ASSERT(r->n_prompts == 1 && r->prompts[0].n_tokens == 2 && r->prompts[0].tokens[1] == 6);
        dz_oai_request_free(r);
    }
    r = ok(DZ_OAI_EMBEDDING, "{\"input\":[\"a\",\"b\",\"c\"],\"encoding_format\":\"base64\"}");
    if (r) {
        DZT_ASSERT(r->n_prompts == 3 && r->base64);
        dz_oai_request_free(r);
    }
}

static void test_errors(void) {
    const dz_oai_kind C = DZ_OAI_COMPLETION, H = DZ_OAI_CHAT, E = DZ_OAI_EMBEDDING;
    bad(C, "", "");
    bad(C, "{\"prompt\":", "");
    bad(C, "[1]", "");
    bad(C, "{\"prompt\":\"x\",\"temperature\":NaN}", "");
    bad(C, "{\"prompt\":\"x\",\"max_tokens\":1e999}", "");
    bad(C, "{\"prompt\":\"x\",\"max_tokens\":99999999999999999999999}", "");
    bad(C, "{\"prompt\":\"\xff\"}", "");
    bad(C, "{\"prompt\":\"a\\u0000b\"}", "");
    char deep[200];
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    deep[130] = '\0';
    bad(C, deep, "");
    bad(C, "{}", "prompt");
    bad(C, "{\"prompt\":\"\"}", "prompt");
    bad(C, "{\"prompt\":[]}", "prompt");
    bad(C, "{\"prompt\":[1,512]}", "prompt");
    bad(C, "{\"prompt\":[1,-1]}", "prompt");
    bad(C, "{\"prompt\":[\"a\",\"\"]}", "prompt[1]");
    bad(C, "{\"prompt\":\"x\",\"max_tokens\":-1}", "max_tokens");
    bad(C, "{\"prompt\":\"x\",\"max_tokens\":0}", "max_tokens");
    bad(C, "{\"prompt\":\"x\",\"max_tokens\":2147483648}", "max_tokens");
    bad(C, "{\"prompt\":\"x\",\"max_tokens\":\"5\"}", "max_tokens");
    bad(C, "{\"prompt\":\"x\",\"max_tokens\":5.5}", "max_tokens");
    bad(C, "{\"prompt\":\"x\",\"n\":0}", "n");
    bad(C, "{\"prompt\":\"x\",\"n\":17}", "n");
    bad(C, "{\"prompt\":\"x\",\"temperature\":2.01}", "temperature");
    bad(C, "{\"prompt\":\"x\",\"temperature\":-0.1}", "temperature");
    bad(C, "{\"prompt\":\"x\",\"top_p\":0}", "top_p");
    bad(C, "{\"prompt\":\"x\",\"top_p\":1.5}", "top_p");
    bad(C, "{\"prompt\":\"x\",\"presence_penalty\":-2.5}", "presence_penalty");
    bad(C, "{\"prompt\":\"x\",\"frequency_penalty\":2.5}", "frequency_penalty");
    bad(C, "{\"prompt\":\"x\",\"logit_bias\":{\"512\":1}}", "logit_bias");
    bad(C, "{\"prompt\":\"x\",\"logit_bias\":{\"abc\":1}}", "logit_bias");
    /* only canonical decimal keys: "1" and "01" / "+1" / " 1" would be one token biased twice */
    const char *const noncanonical[] = {"01", "+1", " 1", "1 ", "00", "1e0", "0x1", "-0", "1.0", ""};
    for (size_t i = 0; i < sizeof noncanonical / sizeof *noncanonical; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"prompt\":\"x\",\"logit_bias\":{\"1\":60,\"%s\":60}}", noncanonical[i]);
        bad(C, body, "logit_bias");
        snprintf(body, sizeof body, "{\"prompt\":\"x\",\"logit_bias\":{\"%s\":1}}", noncanonical[i]);
        bad(C, body, "logit_bias");
    }
    dz_oai_request *zb = ok(C, "{\"prompt\":\"x\",\"logit_bias\":{\"0\":1,\"10\":2,\"511\":3}}");
    if (zb) {
        DZT_EQ_INT(zb->n_logit_bias, 3);
        dz_oai_request_free(zb);
    }
    bad(C, "{\"prompt\":\"x\",\"logit_bias\":{\"5\":100.5}}", "logit_bias");
    bad(C, "{\"prompt\":\"x\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\","
           "\"n\",\"o\",\"p\",\"q\"]}", "stop");
    bad(C, "{\"prompt\":\"x\",\"stop\":[\"a\",5]}", "stop[1]");
    bad(C, "{\"prompt\":\"x\",\"stop\":\"\"}", "stop");
    bad(C, "{\"prompt\":\"x\",\"stream\":\"yes\"}", "stream");
    bad(C, "{\"prompt\":\"x\",\"model\":5}", "model");
    bad(C, "{\"prompt\":\"x\",\"echo\":true}", "echo");
    bad(H, "{\"messages\":[]}", "messages");
    bad(H, "{\"messages\":{}}", "messages");
    bad(H, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"bot\",\"content\":\"b\"}]}",
        "messages[1].role");
    bad(H, "{\"messages\":[{\"role\":\"user\"}]}", "messages[0].content");
    bad(H, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "messages[0].content[0]");
    bad(H, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"top_logprobs\":2}", "top_logprobs");
    bad(H, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"top_logprobs\":21,\"logprobs\":true}",
        "top_logprobs");
    bad(E, "{\"input\":\"x\",\"encoding_format\":\"hex\"}", "encoding_format");
    bad(E, "{\"input\":[[1,2],[3,999]]}", "input[1]");
}

/* A long stop string: exactly at the limit passes, one byte more fails. */
static void test_stop_limit(void) {
    char body[700];
    char s[258];
    memset(s, 'a', 257);
    s[256] = '\0';
    snprintf(body, sizeof body, "{\"prompt\":\"x\",\"stop\":[\"%s\"]}", s);
    dz_oai_request *r = ok(DZ_OAI_COMPLETION, body);
    dz_oai_request_free(r);
    s[256] = 'a';
    s[257] = '\0';
    snprintf(body, sizeof body, "{\"prompt\":\"x\",\"stop\":[\"%s\"]}", s);
    bad(DZ_OAI_COMPLETION, body, "stop[0]");
}

int main(void) {
    test_chat();
    test_prompts();
    test_errors();
    test_stop_limit();
    return dzt_done();
}
