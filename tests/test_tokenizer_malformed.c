/* Tokenizer load validation: vocabularies crafted at test time with the GGUF
 * writer, one defect each; every one must be refused with the right status
 * and a message naming the defect, leaving the output untouched. */
#include "dizuo/gguf.h"
#include "dizuo/tokenizer.h"
#include "dztest.h"

#define K(name) "tokenizer.ggml." name

enum { N_SPM = 3 + 256 + 6 };

/* A small SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, 6 pieces. */
static char spm_text[N_SPM][8];
static const char *spm_tokens[N_SPM];
static float spm_scores[N_SPM];
static int32_t spm_types[N_SPM];

static void init_spm(void) {
    static const char *const pieces[6] = {"\xE2\x96\x81", "a", "b", "\342\226\201a", "ab",
                                          "\342\226\201ab"};
    static const float piece_scores[6] = {-1, -2, -3, -1.5f, -1, -0.5f};
    spm_tokens[0] = "<unk>", spm_tokens[1] = "<s>", spm_tokens[2] = "</s>";
    spm_types[0] = 2, spm_types[1] = spm_types[2] = 3;
    for (int b = 0; b < 256; b++) {
        snprintf(spm_text[3 + b], sizeof spm_text[0], "<0x%02X>", b);
        spm_tokens[3 + b] = spm_text[3 + b];
        spm_types[3 + b] = 6;
    }
    for (int i = 0; i < 6; i++) {
        spm_tokens[259 + i] = pieces[i];
        spm_scores[259 + i] = piece_scores[i];
        spm_types[259 + i] = 1;
    }
}

/* The SPM vocabulary without the key `omit` (NULL: complete). */
static dz_gguf_writer *spm_writer(const char *omit) {
    dz_gguf_writer *w = NULL;
    DZT_OK(dz_gguf_writer_create(&w));
    if (!w) exit(1);
#define SET(key, call) \
    if (!omit || strcmp(omit, key) != 0) DZT_OK(call)
    SET(K("model"), dz_gguf_writer_set_str(w, K("model"), "llama"));
    SET(K("tokens"), dz_gguf_writer_set_str_array(w, K("tokens"), spm_tokens, N_SPM));
    SET(K("scores"), dz_gguf_writer_set_array(w, K("scores"), DZ_GGUF_FLOAT32, spm_scores, N_SPM));
    SET(K("token_type"), dz_gguf_writer_set_array(w, K("token_type"), DZ_GGUF_INT32, spm_types, N_SPM));
    SET(K("bos_token_id"), dz_gguf_writer_set_u32(w, K("bos_token_id"), 1));
    SET(K("eos_token_id"), dz_gguf_writer_set_u32(w, K("eos_token_id"), 2));
    SET(K("unknown_token_id"), dz_gguf_writer_set_u32(w, K("unknown_token_id"), 0));
    return w;
}

/* A small byte-level BPE vocabulary: the 256 byte characters, "Ġa", "ab",
 * "Ġab", "<|endoftext|>"; merges "Ġ a", "a b", "Ġa b". */
enum { N_BPE = 256 + 4 };
static char bpe_text[256][4];
static const char *bpe_tokens[N_BPE];
static const char *const bpe_merges[] = {"\xC4\xA0 a", "a b", "\304\240a b"};

static void init_bpe(void) {
    for (int b = 0; b < 256; b++) {
        /* GPT-2's byte-to-unicode map (independent of the library's table). */
        int cp = b;
        if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)) {
            int n = 0;
            for (int c = 0; c < b; c++)
                if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE)) n++;
            cp = 256 + n;
        }
        if (cp < 0x80) {
            bpe_text[b][0] = (char)cp;
        } else {
            bpe_text[b][0] = (char)(0xC0 | cp >> 6);
            bpe_text[b][1] = (char)(0x80 | (cp & 0x3F));
        }
        bpe_tokens[b] = bpe_text[b];
    }
    bpe_tokens[256] = "\304\240a";
    bpe_tokens[257] = "ab";
    bpe_tokens[258] = "\304\240ab";
    bpe_tokens[259] = "<|endoftext|>";
}

static dz_gguf_writer *bpe_writer(const char *omit) {
    dz_gguf_writer *w = NULL;
    DZT_OK(dz_gguf_writer_create(&w));
    if (!w) exit(1);
    int32_t types[N_BPE];
    for (int i = 0; i < N_BPE; i++) types[i] = i == 259 ? 3 : 1;
    SET(K("model"), dz_gguf_writer_set_str(w, K("model"), "gpt2"));
    SET(K("pre"), dz_gguf_writer_set_str(w, K("pre"), "gpt-2"));
    SET(K("tokens"), dz_gguf_writer_set_str_array(w, K("tokens"), bpe_tokens, N_BPE));
    SET(K("token_type"), dz_gguf_writer_set_array(w, K("token_type"), DZ_GGUF_INT32, types, N_BPE));
    SET(K("merges"), dz_gguf_writer_set_str_array(w, K("merges"), bpe_merges, 3));
    SET(K("bos_token_id"), dz_gguf_writer_set_u32(w, K("bos_token_id"), 259));
    SET(K("eos_token_id"), dz_gguf_writer_set_u32(w, K("eos_token_id"), 259));
    return w;
#undef SET
}

/* Writes w to memory, opens it and loads a tokenizer; destroys w. */
static dz_status load(dz_gguf_writer *w, dz_tokenizer **out) {
    void *buf = NULL;
    size_t size = 0;
    dz_gguf *g = NULL;
    dz_status st = dz_gguf_writer_write_memory(w, &buf, &size);
    dz_gguf_writer_destroy(w);
    if (!st) st = dz_gguf_open_memory(buf, size, &g);
    if (!st) st = dz_tokenizer_load(g, out);
    dz_gguf_close(g);
    free(buf);
    return st;
}

/* Loading must fail with status, a message containing `needle`, and *out untouched. */
static void expect_fail(const char *what, dz_gguf_writer *w, dz_status status, const char *needle) {
    dz_tokenizer *sentinel = (dz_tokenizer *)&sentinel, *t = sentinel;
    dz_status st = load(w, &t);
    DZT_CHECK(st == status, "%s: expected %s, got %s (%s)", what, dz_status_str(status),
              dz_status_str(st), dz_last_error());
    DZT_CHECK(strstr(dz_last_error(), needle) != NULL, "%s: message \"%s\" does not name \"%s\"",
              what, dz_last_error(), needle);
    DZT_CHECK(t == sentinel, "%s: a failed load changed *out", what);
    if (st == DZ_OK && t != sentinel) dz_tokenizer_free(t);
}

static dz_tokenizer *expect_ok(const char *what, dz_gguf_writer *w) {
    dz_tokenizer *t = NULL;
    dz_status st = load(w, &t);
    DZT_CHECK(st == DZ_OK && t, "%s: %s (%s)", what, dz_status_str(st), dz_last_error());
    return st == DZ_OK ? t : NULL;
}

static void test_arrays(void) {
    expect_fail("no tokens", spm_writer(K("tokens")), DZ_ERR_FORMAT, K("tokens"));
    int32_t ints[4] = {1, 2, 3, 4};
    dz_gguf_writer *w = spm_writer(NULL);
    DZT_OK(dz_gguf_writer_set_array(w, K("tokens"), DZ_GGUF_INT32, ints, 4));
    expect_fail("tokens of int32", w, DZ_ERR_FORMAT, "array of strings");
    w = spm_writer(NULL);
    DZT_OK(dz_gguf_writer_set_str(w, K("tokens"), "abc"));
    expect_fail("tokens a string", w, DZ_ERR_FORMAT, K("tokens"));
    w = spm_writer(K("tokens"));
    DZT_OK(dz_gguf_writer_set_str_array(w, K("tokens"), spm_tokens, 0));
    expect_fail("empty vocabulary", w, DZ_ERR_FORMAT, "empty");

    w = spm_writer(NULL);
    DZT_OK(dz_gguf_writer_set_array(w, K("scores"), DZ_GGUF_FLOAT32, spm_scores, N_SPM - 1));
    expect_fail("scores too short", w, DZ_ERR_FORMAT, K("scores"));
    w = spm_writer(NULL);
    DZT_OK(dz_gguf_writer_set_array(w, K("scores"), DZ_GGUF_INT32, spm_types, N_SPM));
    expect_fail("scores of int32", w, DZ_ERR_FORMAT, K("scores"));
    int32_t more_types[N_SPM + 1] = {0};
    w = spm_writer(NULL);
    DZT_OK(dz_gguf_writer_set_array(w, K("token_type"), DZ_GGUF_INT32, more_types, N_SPM + 1));
    expect_fail("token_type too long", w, DZ_ERR_FORMAT, K("token_type"));
    w = spm_writer(NULL);
    DZT_OK(dz_gguf_writer_set_array(w, K("token_type"), DZ_GGUF_FLOAT32, spm_scores, N_SPM));
    expect_fail("token_type of float32", w, DZ_ERR_FORMAT, K("token_type"));

    const char *dup[N_SPM];
    memcpy(dup, spm_tokens, sizeof dup);
    dup[N_SPM - 1] = "a";
    w = spm_writer(NULL);
    DZT_OK(dz_gguf_writer_set_str_array(w, K("tokens"), dup, N_SPM));
    expect_fail("duplicate token", w, DZ_ERR_FORMAT, "same text");

    /* Optional arrays may be absent; an empty token is renamed as llama.cpp does. */
    dz_tokenizer *t = expect_ok("no scores, no types", spm_writer(K("scores")));
    dz_tokenizer_free(t);
    const char *with_empty[N_SPM];
    memcpy(with_empty, spm_tokens, sizeof with_empty);
    with_empty[N_SPM - 1] = "";
    w = spm_writer(NULL);
    DZT_OK(dz_gguf_writer_set_str_array(w, K("tokens"), with_empty, N_SPM));
    if ((t = expect_ok("empty token", w))) {
        size_t len;
        const char *s = dz_tokenizer_token_text(t, N_SPM - 1, &len);
        DZT_CHECK(s && len == 11 && memcmp(s, "[EMPTY_264]", 11) == 0, "empty token renamed");
        dz_tokenizer_free(t);
    }
}

static void test_special_ids(void) {
    static const char *const keys[] = {
        K("bos_token_id"),     K("eos_token_id"),     K("unknown_token_id"), K("padding_token_id"),
        K("seperator_token_id"), K("eot_token_id"),   K("eom_token_id"),     K("mask_token_id"),
        K("fim_pre_token_id"), K("fim_suf_token_id"), K("fim_mid_token_id"), K("fim_pad_token_id"),
        K("fim_rep_token_id"), K("fim_sep_token_id"),
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        dz_gguf_writer *w = spm_writer(NULL);
        DZT_OK(dz_gguf_writer_set_u32(w, keys[i], N_SPM));
        expect_fail(keys[i], w, DZ_ERR_FORMAT, keys[i]);
        w = spm_writer(NULL);
        DZT_OK(dz_gguf_writer_set_i32(w, keys[i], -7));
        expect_fail(keys[i], w, DZ_ERR_FORMAT, keys[i]);
    }
    dz_gguf_writer *w = spm_writer(NULL);
    DZT_OK(dz_gguf_writer_set_str(w, K("bos_token_id"), "1"));
    expect_fail("bos id a string", w, DZ_ERR_FORMAT, K("bos_token_id"));
    w = spm_writer(NULL);
    DZT_OK(dz_gguf_writer_set_str(w, K("add_bos_token"), "yes"));
    expect_fail("add_bos_token a string", w, DZ_ERR_FORMAT, K("add_bos_token"));

    /* -1 and 0xFFFFFFFF mean "none". */
    w = spm_writer(NULL);
    DZT_OK(dz_gguf_writer_set_i32(w, K("bos_token_id"), -1));
    DZT_OK(dz_gguf_writer_set_u32(w, K("eos_token_id"), 0xFFFFFFFFu));
    dz_tokenizer *t = expect_ok("none ids", w);
    if (t) {
        DZT_EQ_INT(dz_tokenizer_bos(t), -1);
        DZT_EQ_INT(dz_tokenizer_eos(t), -1);
        DZT_ASSERT(!dz_tokenizer_add_bos_default(t));
        DZT_ASSERT(!dz_tokenizer_is_eog(t, 2));
        int32_t *ids = NULL;
        size_t n = 0;
        DZT_OK(dz_tokenize(t, "a", 1, true, false, &ids, &n));
        DZT_CHECK(n == 1 && ids[0] == 262, "no BOS to add: \"▁a\" alone (got %zu ids)", n);
        free(ids);
        dz_tokenizer_free(t);
    }
}

static void test_byte_tokens(void) {
    static const char *const bad[] = {"<0x-1>", "<0xZZ>", "<0x100>", "<0x>", "<0x4G>", "0x41"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *tokens[N_SPM];
        memcpy(tokens, spm_tokens, sizeof tokens);
        tokens[3 + 0x41] = bad[i];
        dz_gguf_writer *w = spm_writer(NULL);
        DZT_OK(dz_gguf_writer_set_str_array(w, K("tokens"), tokens, N_SPM));
        expect_fail(bad[i], w, DZ_ERR_FORMAT, "<0xHH>");
    }
    /* Bytes the vocabulary lacks become the unknown token, never an index out of range. */
    int32_t types[N_SPM];
    memcpy(types, spm_types, sizeof types);
    const char *tokens[N_SPM];
    memcpy(tokens, spm_tokens, sizeof tokens);
    tokens[3 + 0xFF] = "x"; /* no <0xFF> */
    types[3 + 0xFF] = 1;
    dz_gguf_writer *w = spm_writer(NULL);
    DZT_OK(dz_gguf_writer_set_str_array(w, K("tokens"), tokens, N_SPM));
    DZT_OK(dz_gguf_writer_set_array(w, K("token_type"), DZ_GGUF_INT32, types, N_SPM));
    dz_tokenizer *t = expect_ok("missing byte token", w);
    if (t) {
        int32_t *ids = NULL;
        size_t n = 0;
        DZT_OK(dz_tokenize(t, "\xFF\xFE", 2, false, false, &ids, &n));
        /* "▁" then 0xFF (no token: <unk>) and 0xFE (<0xFE>). */
        DZT_CHECK(n == 3 && ids[0] == 259 && ids[1] == 0 && ids[2] == 3 + 0xFE,
                  "byte fallback with a missing byte (got %zu ids)", n);
        free(ids);
        dz_tokenizer_free(t);
    }
}

static void test_models(void) {
    expect_fail("no model", spm_writer(K("model")), DZ_ERR_FORMAT, K("model"));
    dz_gguf_writer *w = spm_writer(NULL);
    DZT_OK(dz_gguf_writer_set_str(w, K("model"), "foo"));
    expect_fail("model foo", w, DZ_ERR_UNSUPPORTED, "'foo'");
    w = spm_writer(NULL);
    DZT_OK(dz_gguf_writer_set_str(w, K("model"), "bert"));
    expect_fail("model bert", w, DZ_ERR_UNSUPPORTED, "'bert'");
    w = spm_writer(NULL);
    DZT_OK(dz_gguf_writer_set_u32(w, K("model"), 3));
    expect_fail("model an integer", w, DZ_ERR_FORMAT, K("model"));

    w = bpe_writer(NULL);
    DZT_OK(dz_gguf_writer_set_str(w, K("pre"), "nonsense"));
    expect_fail("pre nonsense", w, DZ_ERR_UNSUPPORTED, "'nonsense'");
    dz_tokenizer *t = expect_ok("no pre", bpe_writer(K("pre")));
    if (t) {
        DZT_EQ_STR(dz_tokenizer_pre_name(t), "default");
        dz_tokenizer_free(t);
    }
    if ((t = expect_ok("bpe", bpe_writer(NULL)))) {
        DZT_EQ_STR(dz_tokenizer_model_name(t), "gpt2");
        DZT_EQ_STR(dz_tokenizer_pre_name(t), "gpt-2");
        DZT_EQ_INT(dz_tokenizer_n_vocab(t), N_BPE);
        DZT_ASSERT(!dz_tokenizer_add_bos_default(t));
        DZT_ASSERT(dz_tokenizer_is_eog(t, 259));
        dz_tokenizer_free(t);
    }
    if ((t = expect_ok("spm", spm_writer(NULL)))) {
        DZT_EQ_STR(dz_tokenizer_model_name(t), "llama");
        DZT_EQ_INT(dz_tokenizer_n_vocab(t), N_SPM);
        DZT_ASSERT(dz_tokenizer_add_bos_default(t));
        DZT_EQ_INT(dz_tokenizer_token_type(t, 0), DZ_TOKEN_UNKNOWN);
        DZT_EQ_INT(dz_tokenizer_token_type(t, 3), DZ_TOKEN_BYTE);
        DZT_EQ_INT(dz_tokenizer_token_type(t, N_SPM), 0);
        dz_tokenizer_free(t);
    }
}

static void test_merges(void) {
    expect_fail("no merges", bpe_writer(K("merges")), DZ_ERR_FORMAT, K("merges"));
    int32_t ints[2] = {1, 2};
    dz_gguf_writer *w = bpe_writer(NULL);
    DZT_OK(dz_gguf_writer_set_array(w, K("merges"), DZ_GGUF_INT32, ints, 2));
    expect_fail("merges of int32", w, DZ_ERR_FORMAT, K("merges"));
    static const struct {
        const char *merge, *needle;
    } bad[] = {
        {"ab", "separated by a space"}, {" ab", "separated by a space"}, {"", "separated by a space"},
        {"a zz", "'zz' is not in the vocabulary"},  {"qq b", "'qq' is not in the vocabulary"},
        {"b a", "'ba' is not in the vocabulary"},   {"a ", "'' is not in the vocabulary"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *merges[] = {"a b", bad[i].merge};
        w = bpe_writer(NULL);
        DZT_OK(dz_gguf_writer_set_str_array(w, K("merges"), merges, 2));
        expect_fail(bad[i].merge, w, DZ_ERR_FORMAT, bad[i].needle);
    }
}

int main(void) {
    init_spm();
    init_bpe();
    test_arrays();
    test_special_ids();
    test_byte_tokens();
    test_models();
    test_merges();
    return dzt_done();
}
