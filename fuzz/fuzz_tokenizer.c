/* libFuzzer target: arbitrary bytes through tokenization and back.
 *
 * Small vocabularies are built in-process with the GGUF writer once: two
 * SentencePiece ones (byte tokens, user-defined and control tokens, one with
 * phi-3's strip rules) and a byte-level BPE one per pre-tokenizer family
 * (merges, special tokens, odd token types). The first input byte picks the
 * vocabulary, the second the flags; the rest is the text. Every result is
 * decoded with dz_token_to_piece, dz_detokenize and the streaming detok.
 *
 * Build: cmake -S . -B build-fuzz -DDZ_FUZZ=ON -DDZ_TESTS=OFF -DCMAKE_C_COMPILER=clang
 * Run:   build-fuzz/fuzz_tokenizer -max_total_time=60 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/gguf.h"
#include "dizuo/tokenizer.h"

#define K(name) "tokenizer.ggml." name

static const char *const bpe_pres[] = {
    "default", "llama3", "deepseek-llm", "deepseek-coder", "deepseek-v3", "falcon", "starcoder",
    "gpt-2", "qwen2", "poro-chat", "viking", "tekken", "chameleon", "jina-v2-de",
};
enum { N_BPE_VOCABS = sizeof bpe_pres / sizeof bpe_pres[0], N_VOCABS = N_BPE_VOCABS + 2 };

static dz_tokenizer *vocabs[N_VOCABS];

static void die(const char *what) {
    fprintf(stderr, "fuzz_tokenizer: %s: %s\n", what, dz_last_error());
    abort();
}

static dz_tokenizer *load(dz_gguf_writer *w) {
    void *buf;
    size_t size;
    dz_gguf *g;
    dz_tokenizer *t;
    if (dz_gguf_writer_write_memory(w, &buf, &size)) die("write");
    if (dz_gguf_open_memory(buf, size, &g)) die("open");
    if (dz_tokenizer_load(g, &t)) die("load");
    dz_gguf_close(g);
    free(buf);
    dz_gguf_writer_destroy(w);
    return t;
}

/* A string table that owns its strings. */
typedef struct strs {
    char *v[1024];
    int32_t type[1024];
    float score[1024];
    int n;
} strs;

static void add(strs *s, const char *text, int32_t type, float score) {
    s->v[s->n] = strdup(text);
    s->type[s->n] = type;
    s->score[s->n] = score;
    s->n++;
}

static void free_strs(strs *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
}

static dz_tokenizer *spm_vocab(const char *name) {
    static const char *const pieces[] = {
        "\xE2\x96\x81", "a", "b", "\342\226\201a", "ab", "\342\226\201ab", "\342\226\201the",
        "th", "he", "e", "t", "h", "\342\226\201t", "\xC3\xA9", "\xE4\xBD\xA0", "\xE2\x96\x81\xE2\x96\x81",
    };
    strs s = {0};
    add(&s, "<unk>", 2, 0);
    add(&s, "<s>", 3, 0);
    add(&s, "</s>", 3, 0);
    for (int b = 0; b < 256; b++) {
        char text[8];
        snprintf(text, sizeof text, "<0x%02X>", b);
        add(&s, text, 6, 0);
    }
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) add(&s, pieces[i], 1, -(float)i);
    add(&s, "<|user|>", 4, 0);
    add(&s, "<|im_end|>", 3, 0);
    add(&s, "<|end|>", 1, 0); /* control-looking: llama.cpp makes it control */
    add(&s, "<|unused|>", 5, 0);
    add(&s, "<weird>", 9, 0); /* an undefined type */
    dz_gguf_writer *w;
    if (dz_gguf_writer_create(&w)) die("writer");
    dz_gguf_writer_set_str(w, "general.name", name);
    dz_gguf_writer_set_str(w, K("model"), "llama");
    dz_gguf_writer_set_str_array(w, K("tokens"), (const char *const *)s.v, (uint64_t)s.n);
    dz_gguf_writer_set_array(w, K("scores"), DZ_GGUF_FLOAT32, s.score, (uint64_t)s.n);
    dz_gguf_writer_set_array(w, K("token_type"), DZ_GGUF_INT32, s.type, (uint64_t)s.n);
    free_strs(&s);
    return load(w);
}

/* GPT-2's byte-to-unicode character of byte b, as UTF-8. */
static void byte_char(int b, char out[3]) {
    int cp = b;
    if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)) {
        int n = 0;
        for (int c = 0; c < b; c++)
            if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE)) n++;
        cp = 256 + n;
    }
    memset(out, 0, 3);
    if (cp < 0x80) {
        out[0] = (char)cp;
    } else {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
    }
}

static dz_tokenizer *bpe_vocab(const char *pre) {
    /* Merges over byte characters; each result is a token too. */
    static const char *const merges[][2] = {
        {"\xC4\xA0", "t"}, {"h", "e"}, {"\xC4\xA0t", "he"}, {"a", "b"}, {"\xC4\xA0", "a"},
        {"\304\240a", "b"}, {"i", "n"}, {"\xC4\xA0", "\xC4\xA0"}, {"1", "2"}, {"12", "3"},
        {"\xC3\x83", "\xC2\xA9"}, {"\xC4\x8A", "\xC4\x8A"}, {"'", "s"}, {"\xC4\xA0\xC4\xA0", "\xC4\xA0\xC4\xA0"},
    };
    enum { N_MERGES = sizeof merges / sizeof merges[0] };
    strs s = {0};
    char merge_text[N_MERGES][32];
    const char *merge_ptr[N_MERGES];
    for (int b = 0; b < 256; b++) {
        char ch[3];
        byte_char(b, ch);
        add(&s, ch, b == 'q' ? 6 : 1, 0); /* a stray byte-typed token */
    }
    for (int i = 0; i < N_MERGES; i++) {
        char joined[32];
        snprintf(joined, sizeof joined, "%s%s", merges[i][0], merges[i][1]);
        snprintf(merge_text[i], sizeof merge_text[i], "%s %s", merges[i][0], merges[i][1]);
        merge_ptr[i] = merge_text[i];
        int dup = 0;
        for (int k = 0; k < s.n; k++) dup |= !strcmp(s.v[k], joined);
        if (!dup) add(&s, joined, 1, 0);
    }
    add(&s, "<|endoftext|>", 3, 0);
    add(&s, "<|im_start|>", 4, 0);
    add(&s, "  ", 4, 0);               /* user-defined whitespace, as in gpt-neox */
    add(&s, "<mask>", 4, 0);           /* jina's lstrip token */
    add(&s, "\xE2\x82\xAC x", 1, 0);   /* a normal token outside the byte map */
    add(&s, "hello", 1, 0);            /* a whole word for ignore_merges */
    dz_gguf_writer *w;
    if (dz_gguf_writer_create(&w)) die("writer");
    dz_gguf_writer_set_str(w, K("model"), "gpt2");
    dz_gguf_writer_set_str(w, K("pre"), pre);
    dz_gguf_writer_set_str_array(w, K("tokens"), (const char *const *)s.v, (uint64_t)s.n);
    dz_gguf_writer_set_array(w, K("token_type"), DZ_GGUF_INT32, s.type, (uint64_t)s.n);
    dz_gguf_writer_set_str_array(w, K("merges"), merge_ptr, N_MERGES);
    free_strs(&s);
    return load(w);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    dz_log_set_level(DZ_LOG_ERROR);
    vocabs[0] = spm_vocab("tiny-llama");
    vocabs[1] = spm_vocab("Phi3"); /* special tokens strip spaces on their right */
    for (int i = 0; i < N_BPE_VOCABS; i++) vocabs[2 + i] = bpe_vocab(bpe_pres[i]);
    return 0;
}

static void check(bool ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_tokenizer: %s (%s)\n", what, dz_last_error());
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const dz_tokenizer *t = vocabs[data[0] % N_VOCABS];
    bool parse_special = data[1] & 1, render_special = data[1] & 2, add_bos = data[1] & 4;
    const char *text = (const char *)data + 2;
    size_t len = size - 2;

    int32_t *ids = NULL;
    size_t n = 0;
    check(dz_tokenize(t, text, len, add_bos, parse_special, &ids, &n) == DZ_OK, "tokenize");
    check(ids != NULL, "ids");
    int32_t n_vocab = dz_tokenizer_n_vocab(t);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        check(ids[i] >= 0 && ids[i] < n_vocab, "id inside the vocabulary");
        char buf[64];
        size_t piece_len;
        check(dz_token_to_piece(t, ids[i], render_special, buf, sizeof buf, &piece_len) == DZ_OK,
              "token_to_piece");
        total += piece_len;
    }

    char *decoded = NULL;
    size_t decoded_len = 0;
    check(dz_detokenize(t, ids, n, render_special, &decoded, &decoded_len) == DZ_OK, "detokenize");
    check(decoded_len <= total, "detokenize length");

    dz_detok *d = NULL;
    check(dz_detok_create(t, render_special, &d) == DZ_OK, "detok_create");
    size_t streamed = 0;
    for (size_t i = 0; i <= n; i++) {
        const char *chunk;
        size_t chunk_len;
        dz_status st = i < n ? dz_detok_push(d, ids[i], &chunk, &chunk_len)
                             : dz_detok_flush(d, &chunk, &chunk_len);
        check(st == DZ_OK, "detok");
        /* the stream is the pieces, byte for byte */
        if (chunk_len) check(chunk != NULL, "chunk");
        streamed += chunk_len;
    }
    check(streamed == total, "streamed length");
    dz_detok_free(d);
    free(decoded);
    free(ids);
    return 0;
}
