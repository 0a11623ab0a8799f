/* Byte-level BPE training (dz_bpe_trainer_*, dizuo tokenizer-train):
 *  - the learned merges equal those of a naive reference trainer written
 *    here (full recount per merge, same tie rule) on a corpus whose
 *    pre-tokenization is obvious;
 *  - the written GGUF loads with dz_tokenizer_load: GPT-2's byte tokens
 *    (table built here from its definition), <|endoftext|> as BOS/EOS/EOT;
 *  - any valid UTF-8 text (random code points, Chinese) round-trips through
 *    tokenize -> detokenize;
 *  - a word repeated 1000 times becomes one token;
 *  - the same input gives a byte-identical file;
 *  - bad input: empty text, invalid UTF-8 (file and byte offset named),
 *    vocabulary sizes out of range; the CLI's errors and its output. */
#include <stdint.h>

#include "dizuo/tokenizer.h"
#include "dizuo/tokenizer_train.h"
#include "dztest.h"

/* ---- helpers ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (n > ((size_t)1 << 30)) abort();
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

static size_t utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) return out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 63));
        out[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 63));
    out[2] = (char)(0x80 | (cp >> 6 & 63));
    out[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* GPT-2's bytes_to_unicode(): printable bytes '!'..'~', 0xA1..0xAC,
 * 0xAE..0xFF map to themselves; the others, in byte order, to 256, 257, ... */
static uint32_t gpt2_byte_cp[256];
static void build_gpt2_table(void) {
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        gpt2_byte_cp[b] = printable ? (uint32_t)b : next++;
    }
}

/* The byte-level text of raw bytes (as tokens and merges are written). */
static void byte_level(const char *raw, size_t n, buf *out) {
    out->n = 0;
    put(out, "", 0);
    for (size_t i = 0; i < n; i++) {
        char ch[4];
        put(out, ch, utf8_put(gpt2_byte_cp[(uint8_t)raw[i]], ch));
    }
}

static dz_bpe_trainer *train(const char *text, size_t len, int32_t vocab, int64_t min_freq) {
    dz_bpe_train_params p = {.vocab_size = vocab, .min_frequency = min_freq};
    dz_bpe_trainer *tr = NULL;
    DZT_OK(dz_bpe_trainer_create(&p, &tr));
    if (!tr) return NULL;
    DZT_OK(dz_bpe_trainer_feed(tr, text, len, "corpus"));
    DZT_OK(dz_bpe_trainer_train(tr));
    return tr;
}

/* The trained vocabulary as a GGUF in memory (caller frees *data). */
static void to_memory(const dz_bpe_trainer *tr, void **data, size_t *size) {
    dz_gguf_writer *w = NULL;
    *data = NULL;
    *size = 0;
    DZT_OK(dz_gguf_writer_create(&w));
    DZT_OK(dz_gguf_writer_set_str(w, "general.architecture", "gpt2"));
    DZT_OK(dz_bpe_trainer_to_gguf(tr, w));
    DZT_OK(dz_gguf_writer_write_memory(w, data, size));
    dz_gguf_writer_destroy(w);
}

/* ---- the naive reference trainer ----
 * Words: split before every space and around every '\n' (GPT-2's regex on
 * text of lowercase letters, single spaces and single newlines after a
 * letter). Each step counts every pair afresh. */

typedef struct ref_word {
    char **sym; /* raw-byte texts */
    size_t n;
    long long count;
} ref_word;

typedef struct ref_rule {
    char *left, *right;
} ref_rule;

static size_t ref_split(const char *text, size_t len, ref_word *words, size_t max_words) {
    size_t nw = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i + 1;
        if (text[i] != '\n')
            while (j < len && text[j] != ' ' && text[j] != '\n') j++;
        size_t k = 0;
        for (; k < nw; k++)
            if (words[k].n == j - i) {
                size_t m = 0;
                while (m < j - i && words[k].sym[m][0] == text[i + m]) m++;
                if (m == j - i) break;
            }
        if (k < nw) {
            words[k].count++;
        } else if (nw < max_words) {
            words[nw].n = j - i;
            words[nw].count = 1;
            words[nw].sym = calloc(j - i, sizeof(char *));
            for (size_t m = 0; m < j - i; m++) {
                words[nw].sym[m] = calloc(2, 1);
                words[nw].sym[m][0] = text[i + m];
            }
            nw++;
        }
        i = j;
    }
    return nw;
}

/* Token ids of the reference: bytes 0..255, then new texts in order. */
static int ref_id(char **texts, int n_texts, const char *s) {
    if (strlen(s) == 1) return (uint8_t)s[0];
    for (int i = 256; i < n_texts; i++)
        if (!strcmp(texts[i], s)) return i;
    return -1;
}

static int ref_train(ref_word *words, size_t nw, int target, ref_rule *rules) {
    char *texts[4096] = {0};
    int n_texts = 256, n_rules = 0;
    while (n_texts < target) {
        long long best = 0;
        int bl = 0, br = 0;
        const char *bls = NULL, *brs = NULL;
        /* all distinct pairs: count each by scanning everything (slow, obvious) */
        for (size_t w = 0; w < nw; w++)
            for (size_t i = 0; i + 1 < words[w].n; i++) {
                const char *l = words[w].sym[i], *r = words[w].sym[i + 1];
                long long c = 0;
                for (size_t v = 0; v < nw; v++)
                    for (size_t k = 0; k + 1 < words[v].n; k++)
                        if (!strcmp(words[v].sym[k], l) && !strcmp(words[v].sym[k + 1], r))
                            c += words[v].count;
                int li = ref_id(texts, n_texts, l), ri = ref_id(texts, n_texts, r);
                if (c > best || (c == best && (li < bl || (li == bl && ri < br)))) {
                    best = c, bl = li, br = ri, bls = l, brs = r;
                }
            }
        if (best < 2) break;
        char *joined = malloc(strlen(bls) + strlen(brs) + 1);
        strcpy(joined, bls);
        strcat(joined, brs);
        rules[n_rules].left = strdup(bls);
        rules[n_rules].right = strdup(brs);
        n_rules++;
        if (ref_id(texts, n_texts, joined) < 0) texts[n_texts++] = strdup(joined);
        for (size_t w = 0; w < nw; w++) {
            size_t out = 0;
            for (size_t r = 0; r < words[w].n;) {
                if (r + 1 < words[w].n && !strcmp(words[w].sym[r], rules[n_rules - 1].left) &&
                    !strcmp(words[w].sym[r + 1], rules[n_rules - 1].right)) {
                    free(words[w].sym[r]);
                    free(words[w].sym[r + 1]);
                    words[w].sym[out++] = strdup(joined);
                    r += 2;
                } else {
                    words[w].sym[out++] = words[w].sym[r++];
                }
            }
            words[w].n = out;
        }
        free(joined);
    }
    for (int i = 256; i < n_texts; i++) free(texts[i]);
    return n_rules;
}

static void test_against_reference(void) {
    static const char *const vocab[] = {"the", "then", "there", "these", "other", "rather",
                                        "and", "sand", "band", "banana", "nab", "ban", "an"};
    buf text = {0}, bl = {0};
    for (int line = 0; line < 60; line++) {
        int n = 3 + (int)rnd(8);
        for (int i = 0; i < n; i++) {
            if (i) puts_(&text, " ");
            puts_(&text, vocab[rnd(sizeof vocab / sizeof vocab[0])]);
        }
        puts_(&text, "\n");
    }
    const int target = 256 + 40; /* tokens before the special one */
    dz_bpe_trainer *tr = train(text.p, text.n, target + 1, 2);
    ref_word words[256];
    size_t nw = ref_split(text.p, text.n, words, 256);
    ref_rule rules[64];
    int n_ref = ref_train(words, nw, target, rules);
    void *data;
    size_t size;
    to_memory(tr, &data, &size);
    dz_gguf *g = NULL;
    DZT_OK(dz_gguf_open_memory(data, size, &g));
    dz_gguf_value arr, v;
    bool found = false;
    if (g) DZT_OK(dz_gguf_get_array(g, "tokenizer.ggml.merges", &arr, &found));
    DZT_ASSERT(found);
    DZT_EQ_INT(dz_bpe_trainer_n_merges(tr), n_ref);
    DZT_ASSERT(n_ref >= 30); /* the corpus gives plenty of merges */
    for (int i = 0; found && i < n_ref && i < (int)arr.n; i++) {
        DZT_OK(dz_gguf_array_get(g, &arr, (uint64_t)i, &v));
        buf expect = {0};
        byte_level(rules[i].left, strlen(rules[i].left), &bl);
        put(&expect, bl.p, bl.n);
        put(&expect, " ", 1);
        byte_level(rules[i].right, strlen(rules[i].right), &bl);
        put(&expect, bl.p, bl.n);
        DZT_CHECK(v.n == expect.n && !memcmp(v.data, expect.p, expect.n), "merge %d: '%.*s' != '%s'",
                  i, (int)v.n, (const char *)v.data, expect.p);
        free(expect.p);
    }
    for (int i = 0; i < n_ref; i++) free(rules[i].left), free(rules[i].right);
    for (size_t w = 0; w < nw; w++) {
        for (size_t i = 0; i < words[w].n; i++) free(words[w].sym[i]);
        free(words[w].sym);
    }
    dz_gguf_close(g);
    free(data);
    dz_bpe_trainer_destroy(tr);
    free(text.p);
    free(bl.p);
}

/* ---- the main corpus: English-like words, numbers, punctuation, Chinese ---- */

static const char *const zh[] = {"床前明月光", "疑是地上霜", "举头望明月", "低头思故乡",
                                 "白日依山尽", "黄河入海流", "欲穷千里目", "更上一层楼"};

static void make_corpus(buf *b) {
    static const char *const en[] = {"the", "quick", "brown", "fox", "jumps", "over", "lazy",
                                     "dog", "tokenizer", "training", "merges", "bytes", "and",
                                     "of", "to", "in", "is", "it", "you", "that"};
    for (int line = 0; line < 3000; line++) {
        int n = 4 + (int)rnd(10);
        for (int i = 0; i < n; i++) {
            if (i) puts_(b, " ");
            uint32_t k = rnd(20);
            if (k < 15) {
                puts_(b, en[rnd(sizeof en / sizeof en[0])]);
            } else if (k < 17) {
                char num[16];
                snprintf(num, sizeof num, "%u", rnd(100000));
                puts_(b, num);
            } else if (k < 19) {
                puts_(b, zh[rnd(8)]);
                puts_(b, rnd(2) ? "，" : "。");
            } else {
                puts_(b, rnd(2) ? "(x, y);" : "don't");
            }
        }
        if (line % 3 == 0) puts_(b, " dizuotokenizer"); /* 1000 times */
        puts_(b, line % 50 == 49 ? ".<|endoftext|>" : ".\n");
    }
}

/* Tokenize -> detokenize gives the text back. */
static void check_round_trip(const dz_tokenizer *tok, const char *text, size_t len, const char *what) {
    int32_t *ids = NULL;
    size_t n = 0;
    char *back = NULL;
    size_t back_len = 0;
    DZT_OK(dz_tokenize(tok, text, len, false, false, &ids, &n));
    if (ids) DZT_OK(dz_detokenize(tok, ids, n, false, &back, &back_len));
    DZT_CHECK(back && back_len == len && !memcmp(back, text, len), "%s: round trip of %zu bytes "
              "gave %zu bytes", what, len, back_len);
    free(ids);
    free(back);
}

/* Random valid UTF-8: ASCII, Latin, Greek/Cyrillic, CJK, emoji, controls. */
static void random_text(buf *b, size_t n_chars) {
    b->n = 0;
    put(b, "", 0);
    for (size_t i = 0; i < n_chars; i++) {
        uint32_t cp;
        switch (rnd(8)) {
        case 0: cp = 0x20 + rnd(0x5F); break;
        case 1: cp = rnd(0x20); break;
        case 2: cp = 0x80 + rnd(0x780); break;
        case 3: cp = 0x4E00 + rnd(0x5000); break;
        case 4: cp = 0x1F300 + rnd(0x300); break;
        case 5: cp = 0x800 + rnd(0xD000); break;
        case 6: cp = " \n\t"[rnd(3)]; break;
        default: cp = 'a' + rnd(26); break;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
        char ch[4];
        put(b, ch, utf8_put(cp, ch));
    }
}

static void test_trained_vocabulary(void) {
    buf corpus = {0}, text = {0}, bl = {0};
    make_corpus(&corpus);
    const int32_t vocab = 1000;
    dz_bpe_trainer *tr = train(corpus.p, corpus.n, vocab, 2);
    if (!tr) return;
    DZT_EQ_INT(dz_bpe_trainer_n_vocab(tr), vocab);
    void *data, *data2;
    size_t size, size2;
    to_memory(tr, &data, &size);

    /* determinism: a second trainer, and the saved file */
    dz_bpe_trainer *tr2 = train(corpus.p, corpus.n, vocab, 2);
    if (tr2) {
        to_memory(tr2, &data2, &size2);
        DZT_CHECK(size == size2 && !memcmp(data, data2, size), "two trainings differ (%zu vs %zu bytes)",
                  size, size2);
        free(data2);
        char path[512], path2[512];
        snprintf(path, sizeof path, "%s/a.gguf", dzt_tmpdir());
        snprintf(path2, sizeof path2, "%s/b.gguf", dzt_tmpdir());
        DZT_OK(dz_bpe_trainer_save(tr, "t", path));
        DZT_OK(dz_bpe_trainer_save(tr2, "t", path2));
        size_t fa = 0, fb = 0;
        char *a = dzt_read_file(path, &fa), *b = dzt_read_file(path2, &fb);
        DZT_CHECK(a && b && fa == fb && !memcmp(a, b, fa), "saved files differ");
        free(a);
        free(b);
        dz_bpe_trainer_destroy(tr2);
    }

    dz_gguf *g = NULL;
    dz_tokenizer *tok = NULL;
    DZT_OK(dz_gguf_open_memory(data, size, &g));
    if (g) DZT_OK(dz_tokenizer_load(g, &tok));
    if (!tok) goto out;
    DZT_EQ_INT(dz_tokenizer_n_vocab(tok), vocab);
    DZT_EQ_STR(dz_tokenizer_model_name(tok), "gpt2");
    DZT_EQ_STR(dz_tokenizer_pre_name(tok), "gpt-2");
    DZT_EQ_INT(dz_tokenizer_bos(tok), vocab - 1);
    DZT_EQ_INT(dz_tokenizer_eos(tok), vocab - 1);
    DZT_EQ_INT(dz_tokenizer_eot(tok), vocab - 1);
    DZT_ASSERT(!dz_tokenizer_add_bos_default(tok));
    DZT_EQ_INT(dz_tokenizer_token_type(tok, vocab - 1), DZ_TOKEN_CONTROL);
    DZT_ASSERT(dz_tokenizer_is_eog(tok, vocab - 1));
    size_t len;
    const char *s = dz_tokenizer_token_text(tok, vocab - 1, &len);
    DZT_CHECK(s && len == 13 && !memcmp(s, "<|endoftext|>", 13), "last token is not <|endoftext|>");
    /* token b is byte b, written as GPT-2's character for it */
    int bad_bytes = 0;
    for (int b = 0; b < 256; b++) {
        char raw = (char)b;
        byte_level(&raw, 1, &bl);
        s = dz_tokenizer_token_text(tok, b, &len);
        if (!s || len != bl.n || memcmp(s, bl.p, len)) bad_bytes++;
        if (dz_tokenizer_token_type(tok, b) != DZ_TOKEN_NORMAL) bad_bytes++;
    }
    DZT_EQ_INT(bad_bytes, 0);

    /* frequent words are single tokens */
    const char *const single[] = {" dizuotokenizer", " tokenizer", " the", "床前明月光"};
    for (size_t i = 0; i < sizeof single / sizeof single[0]; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        DZT_OK(dz_tokenize(tok, single[i], strlen(single[i]), false, false, &ids, &n));
        DZT_CHECK(n == 1, "'%s' is %zu tokens, not 1", single[i], n);
        free(ids);
    }
    /* the special token: only with parse_special; the text round-trips as text */
    {
        int32_t *ids = NULL;
        size_t n = 0;
        DZT_OK(dz_tokenize(tok, "a<|endoftext|>b", 15, false, true, &ids, &n));
        DZT_CHECK(n == 3 && ids && ids[1] == vocab - 1, "<|endoftext|> is not the special token");
        free(ids);
        check_round_trip(tok, "a<|endoftext|>b", 15, "special text");
    }

    /* round trips: the corpus, Chinese, random valid UTF-8, all 1..3-byte chars */
    check_round_trip(tok, corpus.p, corpus.n, "corpus");
    const char *chinese = "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。 床前明月光，疑是地上霜。";
    check_round_trip(tok, chinese, strlen(chinese), "Chinese");
    for (int i = 0; i < 200; i++) {
        random_text(&text, 1 + rnd(300));
        check_round_trip(tok, text.p, text.n, "random UTF-8");
    }
    text.n = 0;
    for (uint32_t cp = 1; cp < 0x10000; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        char ch[4];
        put(&text, ch, utf8_put(cp, ch));
    }
    check_round_trip(tok, text.p, text.n, "every BMP character");
out:
    dz_tokenizer_free(tok);
    dz_gguf_close(g);
    free(data);
    dz_bpe_trainer_destroy(tr);
    free(corpus.p);
    free(text.p);
    free(bl.p);
}

/* ---- bad input ---- */

static void test_bad_input(void) {
    dz_bpe_trainer *tr = NULL;
    dz_bpe_train_params p = {.vocab_size = 256};
    DZT_FAILS(dz_bpe_trainer_create(&p, &tr), DZ_ERR_ARG);
    p.vocab_size = DZ_BPE_MAX_VOCAB + 1;
    DZT_FAILS(dz_bpe_trainer_create(&p, &tr), DZ_ERR_ARG);
    DZT_ASSERT(tr == NULL);

    p.vocab_size = 257;
    DZT_OK(dz_bpe_trainer_create(&p, &tr));
    if (!tr) return;
    DZT_OK(dz_bpe_trainer_feed(tr, "", 0, "empty.txt"));
    DZT_FAILS(dz_bpe_trainer_train(tr), DZ_ERR_FORMAT);
    dz_bpe_trainer_destroy(tr);
    tr = NULL;

    p.vocab_size = 300;
    DZT_OK(dz_bpe_trainer_create(&p, &tr));
    if (!tr) return;
    DZT_FAILS(dz_bpe_trainer_feed(tr, "hello\xC3(world", 12, "bad.txt"), DZ_ERR_FORMAT);
    DZT_CHECK(strstr(dz_last_error(), "bad.txt") && strstr(dz_last_error(), "offset 5"),
              "message: %s", dz_last_error());
    /* overlong, surrogate, truncated at the end */
    DZT_FAILS(dz_bpe_trainer_feed(tr, "ab\xC0\x80", 4, NULL), DZ_ERR_FORMAT);
    DZT_FAILS(dz_bpe_trainer_feed(tr, "\xED\xA0\x80", 3, NULL), DZ_ERR_FORMAT);
    DZT_FAILS(dz_bpe_trainer_feed(tr, "abc\xE4\xB8", 5, NULL), DZ_ERR_FORMAT);
    DZT_EQ_INT(dz_bpe_trainer_n_words(tr), 0); /* nothing counted */
    /* nothing but the special token: no words */
    DZT_OK(dz_bpe_trainer_feed(tr, "<|endoftext|><|endoftext|>", 26, NULL));
    DZT_FAILS(dz_bpe_trainer_train(tr), DZ_ERR_FORMAT);
    /* one tiny word: training stops early (no pair twice) */
    DZT_OK(dz_bpe_trainer_feed(tr, "ab", 2, NULL));
    DZT_FAILS(dz_bpe_trainer_to_gguf(tr, NULL), DZ_ERR_ARG);
    DZT_OK(dz_bpe_trainer_train(tr));
    DZT_EQ_INT(dz_bpe_trainer_n_vocab(tr), 257);
    DZT_FAILS(dz_bpe_trainer_feed(tr, "ab", 2, NULL), DZ_ERR_ARG);
    DZT_FAILS(dz_bpe_trainer_train(tr), DZ_ERR_ARG);
    dz_bpe_trainer_destroy(tr);
    dz_bpe_trainer_destroy(NULL);
}

/* ---- the CLI ---- */

static int run_cli(const char *const *args, char **err) {
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)dzt_bin();
    argv[n++] = "tokenizer-train";
    for (; *args; args++) argv[n++] = (char *)*args;
    argv[n] = NULL;
    char *out = NULL;
    int rc = dzt_run_argv(argv, &out, NULL, err);
    free(out);
    return rc;
}

static void test_cli(void) {
    char corpus[512], bad[512], empty[512], tok[512];
    const char *dir = dzt_tmpdir();
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", dir);
    snprintf(bad, sizeof bad, "%s/bad.txt", dir);
    snprintf(empty, sizeof empty, "%s/empty.txt", dir);
    snprintf(tok, sizeof tok, "%s/tok.gguf", dir);
    FILE *f = fopen(corpus, "wb");
    for (int i = 0; f && i < 200; i++) fputs("hello world, hello tokenizer 世界\n", f);
    if (f) fclose(f);
    f = fopen(bad, "wb");
    if (f) fputs("fine text\nthen \xFF here\n", f), fclose(f);
    f = fopen(empty, "wb");
    if (f) fclose(f);

    char *err = NULL;
    DZT_EQ_INT(run_cli((const char *[]){"--vocab-size", "300", "-o", tok, corpus, NULL}, &err), 0);
    free(err);
    dz_gguf *g = NULL;
    dz_tokenizer *t = NULL;
    DZT_OK(dz_gguf_open(tok, &g));
    if (g) DZT_OK(dz_tokenizer_load(g, &t));
    if (t) {
        DZT_ASSERT(dz_tokenizer_n_vocab(t) > 257 && dz_tokenizer_n_vocab(t) <= 300);
        int32_t *ids = NULL;
        size_t n = 0;
        DZT_OK(dz_tokenize(t, " hello", 6, false, false, &ids, &n));
        DZT_EQ_INT(n, 1);
        free(ids);
    }
    dz_tokenizer_free(t);
    dz_gguf_close(g);

    DZT_EQ_INT(run_cli((const char *[]){"--vocab-size", "300", "-o", tok, bad, NULL}, &err), 1);
    DZT_CHECK(err && strstr(err, "bad.txt") && strstr(err, "byte offset 15"), "stderr: %s", err);
    free(err);
    DZT_EQ_INT(run_cli((const char *[]){"--vocab-size", "300", "-o", tok, empty, NULL}, &err), 1);
    DZT_CHECK(err && strstr(err, "empty"), "stderr: %s", err);
    free(err);
    DZT_EQ_INT(run_cli((const char *[]){"--vocab-size", "256", "-o", tok, corpus, NULL}, &err), 2);
    DZT_CHECK(err && strstr(err, "257"), "stderr: %s", err);
    free(err);
    DZT_EQ_INT(run_cli((const char *[]){"--vocab-size", "300", corpus, NULL}, &err), 2);
    free(err);
    DZT_EQ_INT(run_cli((const char *[]){"--vocab-size", "300", "-o", tok, NULL}, &err), 2);
    free(err);
    DZT_EQ_INT(run_cli((const char *[]){"--help", NULL}, &err), 0);
    free(err);
}

int main(void) {
    build_gpt2_table();
    test_against_reference();
    test_trained_vocabulary();
    test_bad_input();
    test_cli();
    return dzt_done();
}
