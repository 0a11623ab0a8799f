/* Tokenizer against llama.cpp's reference data (../shared/tokenizers): every
 * test string of every vocabulary through the library and through
 * `dizuo tokenize`, exact ids; decoding back to the string; streaming
 * detokenization that never splits a character. */
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "dizuo/gguf.h"
#include "dizuo/tokenizer.h"
#include "dztest.h"

typedef struct vocab_case {
    const char *name;  /* ggml-vocab-<name>.gguf */
    const char *model; /* tokenizer.ggml.model */
    const char *pre;   /* what the tokenizer reports */
} vocab_case;

static const vocab_case cases[] = {
    {"llama-spm", "llama", "default"}, {"phi-3", "llama", "default"},
    {"gpt-2", "gpt2", "gpt-2"},        {"deepseek-coder", "gpt2", "deepseek-coder"},
    {"falcon", "gpt2", "falcon"},      {"mpt", "gpt2", "mpt"},
    {"refact", "gpt2", "refact"},      {"starcoder", "gpt2", "starcoder"},
};

typedef struct test_string {
    const char *text;
    size_t len;
    int32_t *ids;
    size_t n_ids;
} test_string;

/* Splits .inp at "\n__ggml_vocab_test__\n" (as llama.cpp's test reads it)
 * and pairs each string with its .out line. Returns the count, or 0. */
static size_t read_tests(const char *inp_path, const char *out_path, test_string **out) {
    size_t inp_len, out_len;
    char *inp = dzt_read_file(inp_path, &inp_len), *exp = dzt_read_file(out_path, &out_len);
    if (!inp || !exp || inp_len == 0) {
        DZT_CHECK(false, "cannot read %s / %s", inp_path, out_path);
        free(inp);
        free(exp);
        return 0;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t n = 0, cap = 64;
    test_string *t = calloc(cap, sizeof *t);
    for (size_t pos = 0; pos < inp_len;) {
        const char *next = memmem(inp + pos, inp_len - pos, sep, sizeof sep - 1);
        size_t end = next ? (size_t)(next - inp) : inp_len;
        if (n == cap) t = realloc(t, (cap *= 2) * sizeof *t);
        t[n].text = inp + pos;
        t[n].len = end - pos;
        n++;
        pos = next ? end + sizeof sep - 1 : inp_len;
    }
    size_t line = 0;
    for (char *p = exp; p < exp + out_len && line < n; line++) {
        char *eol = memchr(p, '\n', (size_t)(exp + out_len - p));
        if (!eol) eol = exp + out_len;
        *eol = '\0';
        t[line].ids = malloc((strlen(p) / 2 + 1) * sizeof(int32_t));
        for (char *q = p, *e; (t[line].ids[t[line].n_ids] = (int32_t)strtol(q, &e, 10)), e != q; q = e)
            t[line].n_ids++;
        p = eol + 1;
    }
    DZT_CHECK(line == n, "%s: %zu strings but %zu lines of ids", inp_path, n, line);
    free(exp);
    *out = t; /* t[0].text is the start of inp: the caller frees both */
    return line;
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

static bool same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* Compares and prints a diff-like report on mismatch. */
static void check_ids(const char *vocab, const char *how, const test_string *s, const int32_t *got,
                      size_t n_got) {
    bool ok = same_ids(s->ids, s->n_ids, got, n_got);
    DZT_CHECK(ok, "%s (%s): ids differ for \"%.*s\"", vocab, how, (int)s->len, s->text);
    if (!ok) {
        print_ids("expected", s->ids, s->n_ids);
        print_ids("got     ", got, n_got);
    }
}

/* Strict UTF-8 validity (the streamed chunks of valid text must be valid). */
static bool valid_utf8(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t len = p[i] < 0x80 ? 1 : p[i] >= 0xC2 && p[i] <= 0xDF ? 2
                   : p[i] >= 0xE0 && p[i] <= 0xEF ? 3 : p[i] >= 0xF0 && p[i] <= 0xF4 ? 4 : 0;
        if (len == 0 || len > n - i) return false;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xC0) != 0x80) return false;
        i += len;
    }
    return true;
}

/* Decoding gives the string back; streaming gives the same text in chunks
 * that are whole characters. */
static void check_decode(const char *vocab, const dz_tokenizer *tok, const test_string *s) {
    char *text = NULL;
    size_t len = 0;
    DZT_OK(dz_detokenize(tok, s->ids, s->n_ids, false, &text, &len));
    DZT_CHECK(text && len == s->len && memcmp(text, s->text, len) == 0,
              "%s: decoding the ids of \"%.*s\" gives \"%.*s\"", vocab, (int)s->len, s->text,
              (int)len, text ? text : "");
    free(text);

    dz_detok *d = NULL;
    DZT_OK(dz_detok_create(tok, false, &d));
    if (!d) return;
    char *streamed = malloc(4 * s->len + 16);
    size_t n_streamed = 0;
    bool chunks_valid = true;
    for (size_t i = 0; i <= s->n_ids; i++) {
        const char *chunk;
        size_t n = 0;
        dz_status st = i < s->n_ids ? dz_detok_push(d, s->ids[i], &chunk, &n)
                                    : dz_detok_flush(d, &chunk, &n);
        DZT_OK(st);
        if (st) break;
        chunks_valid &= valid_utf8(chunk, n);
        memcpy(streamed + n_streamed, chunk, n);
        n_streamed += n;
    }
    /* SentencePiece's prefix space stays in the stream (as llama.cpp's
     * token_to_piece keeps it): the stream is the text with it. */
    const char *expect = s->text;
    size_t expect_len = s->len;
    bool prefix = n_streamed == s->len + 1 && streamed[0] == ' ';
    DZT_CHECK(chunks_valid, "%s: a streamed chunk of \"%.*s\" splits a character", vocab,
              (int)s->len, s->text);
    DZT_CHECK(n_streamed - prefix == expect_len &&
                  memcmp(streamed + prefix, expect, expect_len) == 0,
              "%s: streaming the ids of \"%.*s\" gives \"%.*s\"", vocab, (int)s->len, s->text,
              (int)n_streamed, streamed);
    free(streamed);
    dz_detok_free(d);
}

/* `dizuo tokenize -m FILE --no-bos -f INPUT` for one string. */
static void check_cli(const char *vocab, const char *path, const test_string *s) {
    char input[512];
    snprintf(input, sizeof input, "%s/input.txt", dzt_tmpdir());
    FILE *f = fopen(input, "wb");
    DZT_ASSERT(f != NULL);
    if (!f) return;
    fwrite(s->text, 1, s->len, f);
    fclose(f);
    char *argv[] = {(char *)dzt_bin(), "tokenize", "-m", (char *)path, "--no-bos", "-f", input, NULL};
    char *out = NULL, *err = NULL;
    int rc = dzt_run_argv(argv, &out, NULL, &err);
    DZT_CHECK(rc == 0, "%s: dizuo tokenize exited %d: %s", vocab, rc, err ? err : "");
    int32_t *ids = malloc((strlen(out ? out : "") / 2 + 1) * sizeof *ids);
    size_t n = 0;
    for (char *q = out ? out : "", *e; (ids[n] = (int32_t)strtol(q, &e, 10)), e != q; q = e) n++;
    check_ids(vocab, "cli", s, ids, n);
    free(ids);
    free(out);
    free(err);
}

/* A tokenizer is shared read-only: several threads tokenizing at once agree
 * with the reference. */
typedef struct thread_job {
    const dz_tokenizer *tok;
    const test_string *tests;
    size_t n;
    int mismatches;
} thread_job;

static void *tokenize_all(void *arg) {
    thread_job *job = arg;
    for (int round = 0; round < 4; round++)
        for (size_t i = 0; i < job->n; i++) {
            int32_t *ids = NULL;
            size_t n_ids = 0;
            if (dz_tokenize(job->tok, job->tests[i].text, job->tests[i].len, false, false, &ids,
                            &n_ids) ||
                !same_ids(job->tests[i].ids, job->tests[i].n_ids, ids, n_ids))
                job->mismatches++;
            free(ids);
        }
    return NULL;
}

static void check_threads(const char *vocab, const dz_tokenizer *tok, const test_string *tests,
                          size_t n) {
    enum { N_THREADS = 4 };
    pthread_t th[N_THREADS];
    thread_job jobs[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        jobs[i] = (thread_job){.tok = tok, .tests = tests, .n = n};
        DZT_ASSERT(pthread_create(&th[i], NULL, tokenize_all, &jobs[i]) == 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        DZT_CHECK(jobs[i].mismatches == 0, "%s: thread %d: %d mismatches", vocab, i,
                  jobs[i].mismatches);
    }
}

static void run_vocab(const vocab_case *c) {
    char rel[128], inp[600], outp[600];
    snprintf(rel, sizeof rel, "tokenizers/ggml-vocab-%s.gguf", c->name);
    char *path = dzt_shared(rel);
    snprintf(inp, sizeof inp, "%s.inp", path);
    snprintf(outp, sizeof outp, "%s.out", path);
    dz_gguf *g = NULL;
    dz_tokenizer *tok = NULL;
    DZT_OK(dz_gguf_open(path, &g));
    if (g) DZT_OK(dz_tokenizer_load(g, &tok));
    dz_gguf_close(g); /* the tokenizer keeps its own copy */
    test_string *tests = NULL;
    size_t n = read_tests(inp, outp, &tests);
    DZT_CHECK(n > 30, "%s: only %zu test strings", c->name, n);
    if (tok) {
        DZT_EQ_STR(dz_tokenizer_model_name(tok), c->model);
        DZT_EQ_STR(dz_tokenizer_pre_name(tok), c->pre);
        for (size_t i = 0; i < n; i++) {
            int32_t *ids = NULL;
            size_t n_ids = 0;
            DZT_OK(dz_tokenize(tok, tests[i].text, tests[i].len, false, false, &ids, &n_ids));
            check_ids(c->name, "library", &tests[i], ids, n_ids);
            free(ids);
            check_decode(c->name, tok, &tests[i]);
            check_cli(c->name, path, &tests[i]);
        }
        check_threads(c->name, tok, tests, n);
    }
    for (size_t i = 0; i < n; i++) free(tests[i].ids);
    if (n) free((char *)tests[0].text);
    free(tests);
    dz_tokenizer_free(tok);
    free(path);
}

/* Facts of the llama vocabulary: <0xHH> is token 3 + HH, "▁Hello" 15043. */
static void check_streaming_bytes(void) {
    char *path = dzt_shared("tokenizers/ggml-vocab-llama-spm.gguf");
    dz_gguf *g = NULL;
    dz_tokenizer *tok = NULL;
    DZT_OK(dz_gguf_open(path, &g));
    if (g) DZT_OK(dz_tokenizer_load(g, &tok));
    dz_gguf_close(g);
    free(path);
    if (!tok) return;
    DZT_EQ_INT(dz_tokenizer_find(tok, "<0xE2>", 6), 3 + 0xE2);
    DZT_EQ_INT(dz_tokenizer_bos(tok), 1);
    DZT_EQ_INT(dz_tokenizer_eos(tok), 2);
    DZT_ASSERT(dz_tokenizer_add_bos_default(tok));
    DZT_ASSERT(dz_tokenizer_is_eog(tok, 2));
    DZT_ASSERT(!dz_tokenizer_is_eog(tok, 15043));

    /* "€" = E2 82 AC as three byte tokens: nothing until the last byte. */
    dz_detok *d = NULL;
    DZT_OK(dz_detok_create(tok, false, &d));
    const char *text;
    size_t n = 99;
    DZT_OK(dz_detok_push(d, 3 + 0xE2, &text, &n));
    DZT_EQ_INT(n, 0);
    DZT_OK(dz_detok_push(d, 3 + 0x82, &text, &n));
    DZT_EQ_INT(n, 0);
    DZT_OK(dz_detok_push(d, 3 + 0xAC, &text, &n));
    DZT_CHECK(n == 3 && memcmp(text, "\xE2\x82\xAC", 3) == 0, "the euro sign comes out whole");
    /* A lone lead byte followed by a word: both come out (the byte never completes). */
    DZT_OK(dz_detok_push(d, 3 + 0xE2, &text, &n));
    DZT_EQ_INT(n, 0);
    DZT_OK(dz_detok_push(d, 15043, &text, &n));
    DZT_CHECK(n == 7 && memcmp(text, "\xE2 Hello", 7) == 0, "held byte then \" Hello\"");
    /* Flush hands over an incomplete tail as is. */
    DZT_OK(dz_detok_push(d, 3 + 0xF0, &text, &n));
    DZT_OK(dz_detok_push(d, 3 + 0x9F, &text, &n));
    DZT_EQ_INT(n, 0);
    DZT_OK(dz_detok_flush(d, &text, &n));
    DZT_CHECK(n == 2 && memcmp(text, "\xF0\x9F", 2) == 0, "flush gives the held bytes");
    DZT_OK(dz_detok_flush(d, &text, &n));
    DZT_EQ_INT(n, 0);
    DZT_FAILS(dz_detok_push(d, 32000, &text, &n), DZ_ERR_ARG);
    dz_detok_free(d);

    /* Pieces: control tokens render only on request; byte tokens are bytes. */
    char buf[16];
    DZT_OK(dz_token_to_piece(tok, 1, false, buf, sizeof buf, &n));
    DZT_EQ_INT(n, 0);
    DZT_OK(dz_token_to_piece(tok, 1, true, buf, sizeof buf, &n));
    DZT_CHECK(n == 3 && memcmp(buf, "<s>", 3) == 0, "<s> rendered");
    DZT_OK(dz_token_to_piece(tok, 15043, false, buf, 2, &n));
    DZT_EQ_INT(n, 6); /* " Hello": the full length even when cap is short */
    DZT_FAILS(dz_token_to_piece(tok, -1, false, buf, sizeof buf, &n), DZ_ERR_ARG);

    /* BOS and parse_special: "<s>" in the text is a token only when asked. */
    int32_t *ids = NULL;
    size_t n_ids = 0;
    DZT_OK(dz_tokenize(tok, "<s>Hello", 8, true, true, &ids, &n_ids));
    DZT_CHECK(n_ids == 3 && ids[0] == 1 && ids[1] == 1 && ids[2] == 15043,
              "BOS, <s>, \"▁Hello\" (got %zu ids)", n_ids);
    free(ids);
    DZT_OK(dz_tokenize(tok, "<s>", 3, false, false, &ids, &n_ids));
    DZT_CHECK(n_ids > 1 && ids[0] != 1, "<s> stays text without parse_special");
    free(ids);
    DZT_OK(dz_tokenize(tok, "", 0, false, false, &ids, &n_ids));
    DZT_CHECK(ids != NULL && n_ids == 0, "empty text: no ids, a freeable array");
    free(ids);
    dz_tokenizer_free(tok);
}

int main(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_vocab(&cases[i]);
    check_streaming_bytes();
    return dzt_done();
}
