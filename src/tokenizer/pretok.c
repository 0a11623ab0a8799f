/* Byte-level BPE pre-tokenizers: the regex lists llama.cpp applies for each
 * tokenizer.ggml.pre value, written for PCRE2 (UTF + UCP), and the split.
 *
 * llama.cpp applies a pre-tokenizer's regexes one after the other: each one
 * cuts every current word into its matches and the gaps between them. Its
 * engines differ from PCRE2 in small ways the patterns below make up for:
 *
 *  - llama.cpp's \s is Unicode White_Space, which includes U+0085; PCRE2's
 *    UCP \s does not. So \s is written [\s\x{85}] (WS inside a class).
 *  - its std::regex "$" is the end of the subject only: written \z.
 *  - patterns without \p{..} run on code points with every non-ASCII
 *    whitespace replaced by U+000B, so such characters never match an
 *    explicit range: the ranges that contain some (U+3000 in deepseek-llm's
 *    punctuation, U+0800..U+4E00 in the CJK class) leave them out here.
 *  - patterns with \p{..} run on a "collapsed" text where \p{S} covers the
 *    ASCII symbols $+<=>^`| but not ~: deepseek-v3's classes say so.
 *
 * Everything else (ordered alternation, greedy backtracking, lookahead seeing
 * only the current word) is the same in both engines. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_impl.h"

#define WS "\\s\\x{85}"
#define S "[" WS "]"
#define NS "[^" WS "]"

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S) */
#define RE_GPT2                                                                                    \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|" S "+(?!" NS ")"
#define RE_LLAMA3_HEAD                                                                             \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
#define RE_LLAMA3_TAIL                                                                             \
    "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|" S "*[\\r\\n]+|" S "+(?!" NS ")|" S "+"
#define RE_LLAMA3 RE_LLAMA3_HEAD "\\p{N}{1,3}" RE_LLAMA3_TAIL
#define RE_QWEN2 RE_LLAMA3_HEAD "\\p{N}" RE_LLAMA3_TAIL
/* [\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}] less the White_Space code points
 * inside U+0800..U+4E00 */
#define RE_CJK                                                                                     \
    "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{167F}\\x{1681}-\\x{1FFF}\\x{200B}-\\x{2027}"                \
    "\\x{202A}-\\x{202E}\\x{2030}-\\x{205E}\\x{2060}-\\x{2FFF}\\x{3001}-\\x{4E00}"                 \
    "\\x{AC00}-\\x{D7FF}]+"
#define RE_PORO " ?[^(" WS "|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"

static const char *const re_default[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]", NULL};
static const char *const re_llama3[] = {RE_LLAMA3, NULL};
static const char *const re_deepseek_llm[] = {
    "[\\r\\n]",
    S "?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"
    "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}"
    "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"
    "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"
    "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"
    "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}"
    "\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}"
    "\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}"
    "\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}"
    "\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"
    "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}"
    "\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"
    "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}"
    "\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}"
    "\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}"
    "\\x{1E900}-\\x{1E943}]+",
    /* U+3000 (ideographic space) left out of its range: whitespace never matched it */
    S "?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3001}-\\x{3002}]+",
    /* \s+$: the lookbehind makes a long inner run fail in one step, not n */
    "(?<!" S ")" S "+\\z",
    RE_CJK,
    "\\p{N}+",
    NULL};
static const char *const re_deepseek3[] = {
    "\\p{N}{1,3}",
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|(?:~|[^\\r\\n\\p{L}\\p{P}\\p{S}])?"
    "[\\p{L}\\p{M}]+| ?(?:\\p{P}|[^\\P{S}~])+[\\r\\n]*|" S "*[\\r\\n]+|" S "+(?!" NS ")|" S "+",
    NULL};
static const char *const re_deepseek_coder[] = {
    "[\\r\\n]", S "?\\p{L}+", S "?\\p{P}+", RE_CJK, "\\p{N}", NULL};
static const char *const re_falcon[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]", NULL};
static const char *const re_starcoder[] = {"\\p{N}", RE_GPT2, NULL};
static const char *const re_gpt2[] = {RE_GPT2, NULL};
static const char *const re_qwen2[] = {RE_QWEN2, NULL};
static const char *const re_poro[] = {RE_PORO, NULL};
static const char *const re_viking[] = {RE_PORO, "\\p{N}", NULL};
/* ((?=[\p{L}])([^a-z]))* is one class: a letter other than a-z. */
static const char *const re_tekken[] = {
    "[^\\r\\n\\p{L}\\p{N}]?[^\\P{L}a-z]*[^\\P{L}A-Z]+|[^\\r\\n\\p{L}\\p{N}]?[^\\P{L}a-z]+"
    "[^\\P{L}A-Z]*|\\p{N}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*|" S "*[\\r\\n]+|" S "+(?!" NS ")|" S "+",
    NULL};
static const char *const re_chameleon[] = {
    "<sentinel:[0-9]+>", "IMGIMG(?:A|B|C|D|E|F|G|H|I){1,4}Z", "[\\t\\n]|    |  ", "\\p{N}",
    "[\\p{P}!-/:-@\\[-`{-~]", RE_GPT2, NULL};

enum {
    PRE_ADD_BOS = 1,       /* add BOS by default */
    PRE_IGNORE_MERGES = 2, /* a word that is a token is not merged */
    PRE_NO_BOS = 4,        /* the vocabulary has no BOS unless the file names one */
};

struct dz_pretok {
    const char *name;
    const char *const *regex;
    unsigned flags;
};

/* Every name llama.cpp accepts, with the same regexes and flags (llama.cpp's
 * clean_spaces flag is left out: dizuo's decoding never cleans up spaces). */
static const struct dz_pretok pretoks[] = {
    {"default", re_default, 0},
    {"llama3", re_llama3, PRE_ADD_BOS | PRE_IGNORE_MERGES},
    {"llama-v3", re_llama3, PRE_ADD_BOS | PRE_IGNORE_MERGES},
    {"llama-bpe", re_llama3, PRE_ADD_BOS | PRE_IGNORE_MERGES},
    {"falcon3", re_llama3, PRE_ADD_BOS | PRE_IGNORE_MERGES},
    {"deepseek-llm", re_deepseek_llm, 0},
    {"deepseek-coder", re_deepseek_coder, 0},
    {"deepseek-v3", re_deepseek3, 0},
    {"falcon", re_falcon, 0},
    {"mpt", re_gpt2, 0},
    {"starcoder", re_starcoder, 0},
    {"gpt-2", re_gpt2, 0},
    {"phi-2", re_gpt2, 0},
    {"jina-es", re_gpt2, 0},
    {"jina-de", re_gpt2, 0},
    {"gigachat", re_gpt2, 0},
    {"jina-v1-en", re_gpt2, 0},
    {"jina-v2-es", re_gpt2, 0},
    {"jina-v2-de", re_gpt2, 0},
    {"jina-v2-code", re_gpt2, 0},
    {"roberta-bpe", re_gpt2, 0},
    {"refact", re_starcoder, 0},
    {"command-r", re_starcoder, 0},
    {"qwen2", re_qwen2, 0},
    {"deepseek-r1-qwen", re_qwen2, 0},
    {"stablelm2", re_qwen2, 0},
    {"olmo", re_gpt2, 0},
    {"dbrx", re_llama3, 0},
    {"smaug-bpe", re_llama3, 0},
    {"poro-chat", re_poro, 0},
    {"chatglm-bpe", re_llama3, PRE_NO_BOS},
    {"viking", re_viking, 0},
    {"jais", re_gpt2, 0},
    {"tekken", re_tekken, PRE_ADD_BOS | PRE_IGNORE_MERGES},
    {"smollm", re_starcoder, 0},
    {"codeshell", re_starcoder, 0},
    {"bloom", re_poro, 0},
    {"gpt3-finnish", re_poro, 0},
    {"exaone", re_starcoder, 0},
    {"chameleon", re_chameleon, PRE_ADD_BOS},
    {"minerva-7b", re_starcoder, 0},
    {"megrez", re_qwen2, 0},
};

const dz_pretok *tok_pretok_find(const char *name, size_t len) {
    if (!name) return &pretoks[0];
    for (size_t i = 0; i < sizeof pretoks / sizeof pretoks[0]; i++)
        if (strlen(pretoks[i].name) == len && memcmp(pretoks[i].name, name, len) == 0)
            return &pretoks[i];
    return NULL;
}

const char *tok_pretok_name(const dz_pretok *p) { return p->name; }

void tok_pretok_defaults(const dz_pretok *p, dz_tokenizer *t) {
    if (p->flags & PRE_ADD_BOS) t->add_bos = true;
    if (p->flags & PRE_IGNORE_MERGES) t->ignore_merges = true;
    if (p->flags & PRE_NO_BOS) t->bos = -1;
}

struct tok_regex_set {
    size_t n;
    pcre2_code *code[8];
};

void tok_regex_free(struct tok_regex_set *rs) {
    if (!rs) return;
    for (size_t i = 0; i < rs->n; i++) pcre2_code_free(rs->code[i]);
    free(rs);
}

dz_status tok_regex_compile(const dz_pretok *p, struct tok_regex_set **out) {
    struct tok_regex_set *rs = calloc(1, sizeof *rs);
    if (!rs) return dz_fail(DZ_ERR_NOMEM, "out of memory for the pre-tokenizer");
    for (const char *const *re = p->regex; *re; re++) {
        int err;
        PCRE2_SIZE at;
        pcre2_code *code = pcre2_compile((PCRE2_SPTR)*re, PCRE2_ZERO_TERMINATED,
                                         PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &at, NULL);
        if (!code) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(err, msg, sizeof msg);
            tok_regex_free(rs);
            return dz_fail(DZ_ERR_INTERNAL, "pre-tokenizer '%s': regex %zu does not compile at %zu: %s",
                           p->name, (size_t)(re - p->regex), (size_t)at, (const char *)msg);
        }
        /* JIT is an optimisation: where it is unavailable the interpreter runs. */
        (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
        rs->code[rs->n++] = code;
    }
    *out = rs;
    return DZ_OK;
}

static dz_status words_push(tok_words *w, size_t len) {
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        size_t *v = cap <= SIZE_MAX / sizeof *v ? realloc(w->len, cap * sizeof *v) : NULL;
        if (!v) return dz_fail(DZ_ERR_NOMEM, "out of memory pre-tokenizing");
        w->len = v;
        w->cap = cap;
    }
    w->len[w->n++] = len;
    return DZ_OK;
}

void tok_words_free(tok_words *w) {
    free(w->len);
    memset(w, 0, sizeof *w);
}

/* One match of code in subject[0..n) at or after start. 1: found (*ms, *me);
 * 0: none; an error status when both JIT and the interpreter give up. */
static int match_one(pcre2_code *code, const char *subject, size_t n, size_t start,
                     pcre2_match_data *md, size_t *ms, size_t *me, dz_status *st) {
    int rc = pcre2_match(code, (PCRE2_SPTR)subject, n, start, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(code, (PCRE2_SPTR)subject, n, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                         NULL);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(rc, msg, sizeof msg);
        *st = dz_fail(DZ_ERR_UNSUPPORTED, "pre-tokenizer regex gave up on a word of %zu bytes: %s", n,
                      (const char *)msg);
        return -1;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

/* Cuts each word of in into matches of code and the gaps between them. */
static dz_status split_words(pcre2_code *code, pcre2_match_data *md, const char *text,
                             const tok_words *in, tok_words *out) {
    dz_status st = DZ_OK;
    size_t off = 0;
    for (size_t w = 0; w < in->n; off += in->len[w], w++) {
        const char *subject = text + off;
        size_t n = in->len[w], start = 0, last = 0, ms, me;
        int found;
        while (start < n && (found = match_one(code, subject, n, start, md, &ms, &me, &st)) != 0) {
            if (found < 0) return st;
            if (ms > last && (st = words_push(out, ms - last))) return st;
            if (me > ms) {
                if ((st = words_push(out, me - ms))) return st;
                start = me;
            } else {
                /* An empty match only marks a boundary; search on from the next character. */
                if (ms >= n) break;
                start = ms + tok_utf8_len((uint8_t)subject[ms]);
            }
            last = me;
        }
        if (last < n && (st = words_push(out, n - last))) return st;
    }
    return DZ_OK;
}

dz_status tok_pretok_split(const struct tok_regex_set *rs, const char *text, size_t len,
                           tok_words *out) {
    tok_words cur = {0}, next = {0};
    dz_status st = DZ_OK;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) return dz_fail(DZ_ERR_NOMEM, "out of memory pre-tokenizing");
    if (len > 0 && (st = words_push(&cur, len))) goto done;
    for (size_t r = 0; r < rs->n; r++) {
        next.n = 0;
        if ((st = split_words(rs->code[r], md, text, &cur, &next))) goto done;
        tok_words tmp = cur;
        cur = next;
        next = tmp;
    }
    *out = cur;
    cur = (tok_words){0};
done:
    pcre2_match_data_free(md);
    tok_words_free(&cur);
    tok_words_free(&next);
    return st;
}
