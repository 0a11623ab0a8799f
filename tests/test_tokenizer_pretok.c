/* Pre-tokenizer splits worked out by hand from llama.cpp's semantics,
 * aimed at the places where PCRE2 needs help to agree with it: U+0085 as
 * whitespace, "$" as the end of the word, whitespace inside explicit ranges,
 * deepseek-v3's "~", tekken's letter classes, and the multi-regex lists. */
#include "dztest.h"
#include "tokenizer/tok_impl.h"

/* Words of text under pre, joined by '|'. Static buffer. */
static const char *split(const char *pre, const char *text) {
    static char out[1024];
    const dz_pretok *p = tok_pretok_find(pre, strlen(pre));
    struct tok_regex_set *rs = NULL;
    tok_words w = {0};
    out[0] = '\0';
    if (!p || tok_regex_compile(p, &rs) || tok_pretok_split(rs, text, strlen(text), &w)) {
        snprintf(out, sizeof out, "(error: %s)", dz_last_error());
    } else {
        size_t o = 0, off = 0;
        for (size_t i = 0; i < w.n; off += w.len[i], i++) {
            if (i) out[o++] = '|';
            memcpy(out + o, text + off, w.len[i]);
            o += w.len[i];
        }
        out[o] = '\0';
    }
    tok_words_free(&w);
    tok_regex_free(rs);
    return out;
}

#define SPLIT(pre, text, expect) DZT_EQ_STR(split(pre, text), expect)

#define NEL "\xC2\x85"          /* U+0085: White_Space for llama.cpp, not for PCRE2's \s */
#define IDSP "\xE3\x80\x80"     /* U+3000 ideographic space */
#define ENQUAD "\xE2\x80\x80"   /* U+2000 */
#define RADICAL "\xE2\xBA\x80"  /* U+2E80, a symbol inside deepseek's CJK range */

/* Every tokenizer.ggml.pre value llama.cpp (build 4748) accepts. */
static const char *const all_pres[] = {
    "default", "llama3", "llama-v3", "llama-bpe", "falcon3", "deepseek-llm", "deepseek-coder",
    "deepseek-v3", "falcon", "mpt", "starcoder", "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat",
    "jina-v1-en", "jina-v2-es", "jina-v2-de", "jina-v2-code", "roberta-bpe", "refact", "command-r",
    "qwen2", "deepseek-r1-qwen", "stablelm2", "olmo", "dbrx", "smaug-bpe", "poro-chat",
    "chatglm-bpe", "viking", "jais", "tekken", "smollm", "codeshell", "bloom", "gpt3-finnish",
    "exaone", "chameleon", "minerva-7b", "megrez",
};

int main(void) {
    /* Each compiles and splits (the words always cover the text). */
    for (size_t i = 0; i < sizeof all_pres / sizeof all_pres[0]; i++) {
        const char *text = "Hello, World! 12345 \xE4\xBD\xA0\xE5\xA5\xBD  \n\t x";
        const char *got = split(all_pres[i], text);
        char joined[256];
        size_t o = 0;
        for (const char *c = got; *c; c++)
            if (*c != '|') joined[o++] = *c;
        joined[o] = '\0';
        DZT_CHECK(strcmp(joined, text) == 0, "%s: words \"%s\" do not cover the text", all_pres[i], got);
    }

    /* gpt-2: contractions, optional space before a run, whitespace before a word. */
    SPLIT("gpt-2", "Hello world", "Hello| world");
    SPLIT("gpt-2", "I'm 123!!", "I|'m| 123|!!");
    SPLIT("gpt-2", "  a", " | a");
    SPLIT("gpt-2", "a  \n\nb", "a|  \n|\n|b");
    SPLIT("gpt-2", "end   ", "end|   ");
    SPLIT("gpt-2", "a" NEL NEL "b", "a|" NEL "|" NEL "|b");
    SPLIT("gpt-2", "!" NEL, "!|" NEL);
    SPLIT("gpt-2", "", "");

    /* llama3: digits in threes, newlines with the whitespace before them. */
    SPLIT("llama3", "Hello 1234567", "Hello| |123|456|7");
    SPLIT("llama3", "a\n\n b", "a|\n\n| b");
    SPLIT("llama3", "It'S ok", "It|'S| ok");
    SPLIT("qwen2", "1234", "1|2|3|4");

    /* Lists of regexes, each cutting the previous words. */
    SPLIT("falcon", "3333!!", "333|3|!!");
    SPLIT("default", "a$b", "a|$|b");
    SPLIT("starcoder", "a12", "a|1|2");
    SPLIT("poro-chat", "hi, you", "hi|,| you");
    SPLIT("chameleon", "<sentinel:12>ab", "<|sentinel|:|1|2|>|ab"); /* later regexes cut earlier words too */

    /* deepseek-llm: \s+$ ends at the end of the word only; U+3000 is
     * whitespace, never one of the punctuation characters. */
    SPLIT("deepseek-llm", "a  b  ", "a| | b|  ");
    SPLIT("deepseek-llm", IDSP IDSP "!", IDSP "|" IDSP "!");

    /* deepseek-coder: whitespace inside U+0800..U+4E00 is not CJK. */
    SPLIT("deepseek-coder", RADICAL ENQUAD RADICAL, RADICAL "|" ENQUAD "|" RADICAL);
    SPLIT("deepseek-coder", "x = 12;", "x| = |1|2|;");

    /* deepseek-v3: \p{S} without "~". */
    SPLIT("deepseek-v3", "a~~b", "a|~|~b");

    /* tekken: capitalised words, all-caps words. */
    SPLIT("tekken", "HelloWORLD", "Hello|WORLD");
    SPLIT("tekken", "\303\251a", "\303\251a");
    return dzt_done();
}
