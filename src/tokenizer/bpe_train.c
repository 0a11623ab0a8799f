/* Byte-level BPE training: the trainer object, the input side (UTF-8
 * checking, documents cut at <|endoftext|>, GPT-2 pre-tokenization, word
 * counts) and the output side (the vocabulary as tokenizer.ggml.* keys).
 * The merge loop itself is in bpe_merge.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/bpe_train.h"

/* Text is pre-tokenized in pieces of about this size, cut where the split
 * cannot differ from a split of the whole text (see safe_cut). */
#define CHUNK_BYTES ((size_t)1 << 20)

/* ---- string sets ---- */

static dz_status strset_grow_slots(bpe_strset *set) {
    size_t cap = set->slots ? (set->mask + 1) * 2 : 1024;
    if (cap > SIZE_MAX / sizeof *set->slots) return dz_fail(DZ_ERR_NOMEM, "string table too large");
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return dz_fail(DZ_ERR_NOMEM, "out of memory for a table of %zu strings", set->n);
    for (size_t id = 0; id < set->n; id++) {
        size_t len;
        const char *s = bpe_strset_get(set, id, &len);
        size_t i = (size_t)bpe_hash_bytes(s, len) & (cap - 1);
        while (slots[i]) i = (i + 1) & (cap - 1);
        slots[i] = (uint32_t)id + 1;
    }
    free(set->slots);
    set->slots = slots;
    set->mask = cap - 1;
    return DZ_OK;
}

int64_t bpe_strset_find(const bpe_strset *set, const char *s, size_t n) {
    if (!set->slots) return -1;
    for (size_t i = (size_t)bpe_hash_bytes(s, n) & set->mask;; i = (i + 1) & set->mask) {
        uint32_t slot = set->slots[i];
        if (!slot) return -1;
        size_t len;
        const char *t = bpe_strset_get(set, slot - 1, &len);
        if (len == n && memcmp(t, s, n) == 0) return slot - 1;
    }
}

dz_status bpe_strset_add(bpe_strset *set, const char *s, size_t n) {
    dz_status st;
    if (set->n >= UINT32_MAX - 1) return dz_fail(DZ_ERR_NOMEM, "too many distinct strings");
    if ((!set->slots || 2 * (set->n + 1) > set->mask + 1) && (st = strset_grow_slots(set))) return st;
    if (set->n + 2 > set->off_cap) {
        size_t cap = set->off_cap ? set->off_cap * 2 : 1024;
        size_t *off = cap <= SIZE_MAX / sizeof *off ? realloc(set->off, cap * sizeof *off) : NULL;
        if (!off) return dz_fail(DZ_ERR_NOMEM, "out of memory for %zu strings", set->n);
        if (!set->off_cap) off[0] = 0;
        set->off = off;
        set->off_cap = cap;
    }
    if (n > set->text_cap - set->text_n) {
        size_t cap = set->text_cap ? set->text_cap : 1 << 16;
        while (cap - set->text_n < n) {
            if (cap > SIZE_MAX / 2) return dz_fail(DZ_ERR_NOMEM, "string table too large");
            cap *= 2;
        }
        char *text = realloc(set->text, cap);
        if (!text) return dz_fail(DZ_ERR_NOMEM, "out of memory for %zu bytes of strings", cap);
        set->text = text;
        set->text_cap = cap;
    }
    memcpy(set->text + set->text_n, s, n);
    set->text_n += n;
    set->off[set->n + 1] = set->text_n;
    size_t i = (size_t)bpe_hash_bytes(s, n) & set->mask;
    while (set->slots[i]) i = (i + 1) & set->mask;
    set->slots[i] = (uint32_t)set->n + 1;
    set->n++;
    return DZ_OK;
}

void bpe_strset_free(bpe_strset *set) {
    free(set->text);
    free(set->off);
    free(set->slots);
    memset(set, 0, sizeof *set);
}

/* ---- the trainer ---- */

dz_status dz_bpe_trainer_create(const dz_bpe_train_params *params, dz_bpe_trainer **out) {
    if (!params || !out) return dz_fail(DZ_ERR_ARG, "dz_bpe_trainer_create: NULL argument");
    if (params->vocab_size < DZ_BPE_MIN_VOCAB || params->vocab_size > DZ_BPE_MAX_VOCAB)
        return dz_fail(DZ_ERR_ARG, "vocabulary size %d is outside %d..%d (256 bytes and "
                                   DZ_BPE_EOT_TEXT " are the smallest vocabulary)",
                       params->vocab_size, DZ_BPE_MIN_VOCAB, DZ_BPE_MAX_VOCAB);
    if (params->min_frequency < 0)
        return dz_fail(DZ_ERR_ARG, "minimum pair frequency %lld is negative",
                       (long long)params->min_frequency);
    dz_bpe_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) return dz_fail(DZ_ERR_NOMEM, "out of memory for a tokenizer trainer");
    tr->params = *params;
    if (tr->params.min_frequency == 0) tr->params.min_frequency = 2;
    dz_status st = tok_regex_compile(tok_pretok_find("gpt-2", 5), &tr->regex);
    if (st) {
        free(tr);
        return st;
    }
    *out = tr;
    return DZ_OK;
}

void dz_bpe_trainer_destroy(dz_bpe_trainer *tr) {
    if (!tr) return;
    tok_regex_free(tr->regex);
    bpe_strset_free(&tr->words);
    free(tr->word_count);
    bpe_strset_free(&tr->vocab);
    free(tr->rules);
    free(tr);
}

uint64_t dz_bpe_trainer_n_bytes(const dz_bpe_trainer *tr) { return tr->n_bytes; }
uint64_t dz_bpe_trainer_n_words(const dz_bpe_trainer *tr) { return tr->words.n; }
int32_t dz_bpe_trainer_n_vocab(const dz_bpe_trainer *tr) {
    return tr->trained ? (int32_t)tr->vocab.n : 0;
}
int32_t dz_bpe_trainer_n_merges(const dz_bpe_trainer *tr) { return (int32_t)tr->n_rules; }

/* ---- input ---- */

/* Offset of the first byte that does not start a valid UTF-8 sequence, or len. */
static size_t utf8_invalid_at(const char *text, size_t len) {
    const uint8_t *s = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = tok_utf8_decode(s + i, len - i, &cp);
        if (!n) return i;
        i += n;
    }
    return len;
}

/* Unicode White_Space, what the pre-tokenizer's \s matches (with U+0085). */
static bool is_space_cp(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* Whether GPT-2's split of text cuts at p whatever follows: true where text[p]
 * is '\n' and the character before it is no whitespace. Only the whitespace
 * alternatives match '\n', and they match whitespace only, so no match spans
 * p; the one lookahead, (?!\S), belongs to them too, so nothing left of p
 * looks past it; and every non-space character is matched by some
 * alternative, so no gap between matches spans p either. */
static bool safe_cut(const char *text, size_t p) {
    if (p == 0 || text[p] != '\n') return false;
    size_t s = p - 1;
    while (s > 0 && p - s < 4 && ((uint8_t)text[s] & 0xC0) == 0x80) s--;
    uint32_t cp;
    size_t n = tok_utf8_decode((const uint8_t *)text + s, p - s, &cp);
    return n == p - s && !is_space_cp(cp);
}

static dz_status count_word(dz_bpe_trainer *tr, const char *w, size_t n) {
    int64_t id = bpe_strset_find(&tr->words, w, n);
    if (id >= 0) {
        tr->word_count[id]++;
        return DZ_OK;
    }
    if (tr->words.n == tr->word_count_cap) {
        size_t cap = tr->word_count_cap ? tr->word_count_cap * 2 : 1024;
        int64_t *c = cap <= SIZE_MAX / sizeof *c ? realloc(tr->word_count, cap * sizeof *c) : NULL;
        if (!c) return dz_fail(DZ_ERR_NOMEM, "out of memory for %zu distinct words", tr->words.n);
        tr->word_count = c;
        tr->word_count_cap = cap;
    }
    dz_status st = bpe_strset_add(&tr->words, w, n);
    if (!st) tr->word_count[tr->words.n - 1] = 1;
    return st;
}

/* Counts a word, cut into pieces of at most BPE_MAX_WORD bytes at character
 * boundaries. */
static dz_status count_long_word(dz_bpe_trainer *tr, const char *w, size_t n) {
    while (n > 0) {
        size_t k = n;
        if (k > BPE_MAX_WORD) {
            k = BPE_MAX_WORD;
            while (k > 1 && ((uint8_t)w[k] & 0xC0) == 0x80) k--;
        }
        dz_status st = count_word(tr, w, k);
        if (st) return st;
        w += k;
        n -= k;
    }
    return DZ_OK;
}

/* Pre-tokenizes text (valid UTF-8, no special token inside) and counts its words. */
static dz_status count_document(dz_bpe_trainer *tr, const char *text, size_t len) {
    dz_status st = DZ_OK;
    while (len > 0 && !st) {
        size_t n = len;
        if (n > CHUNK_BYTES) {
            n = CHUNK_BYTES;
            while (n < len && !safe_cut(text, n)) n++;
        }
        tok_words chunk = {0};
        if ((st = tok_pretok_split(tr->regex, text, n, &chunk))) break;
        size_t off = 0;
        for (size_t i = 0; i < chunk.n && !st; off += chunk.len[i], i++)
            st = count_long_word(tr, text + off, chunk.len[i]);
        tok_words_free(&chunk);
        text += n;
        len -= n;
    }
    return st;
}

/* The next occurrence of the special token's text in text[0..len), or len. */
static size_t find_special(const char *text, size_t len) {
    static const char special[] = DZ_BPE_EOT_TEXT;
    const size_t n = sizeof special - 1;
    for (size_t i = 0; i + n <= len;) {
        const char *lt = memchr(text + i, '<', len - n + 1 - i);
        if (!lt) break;
        i = (size_t)(lt - text);
        if (memcmp(lt, special, n) == 0) return i;
        i++;
    }
    return len;
}

dz_status dz_bpe_trainer_feed(dz_bpe_trainer *tr, const char *text, size_t len,
                              const char *source) {
    if (!tr || (!text && len)) return dz_fail(DZ_ERR_ARG, "dz_bpe_trainer_feed: NULL argument");
    if (tr->broken) return dz_fail(DZ_ERR_ARG, "the tokenizer trainer failed earlier");
    if (tr->trained) return dz_fail(DZ_ERR_ARG, "the tokenizer trainer has already trained");
    size_t bad = utf8_invalid_at(text, len);
    if (bad < len)
        return dz_fail(DZ_ERR_FORMAT, "%s: invalid UTF-8 at byte offset %zu (byte 0x%02X): "
                                      "training text must be UTF-8",
                       source ? source : "text", bad, (uint8_t)text[bad]);
    const size_t special_len = sizeof DZ_BPE_EOT_TEXT - 1;
    dz_status st = DZ_OK;
    for (size_t off = 0; off < len && !st;) {
        size_t doc = find_special(text + off, len - off);
        st = count_document(tr, text + off, doc);
        off += doc + (doc < len - off ? special_len : 0);
    }
    if (st) {
        tr->broken = true;
        return dz_error_prefix(st, "%s: ", source ? source : "text");
    }
    tr->n_bytes += len;
    return DZ_OK;
}

dz_status dz_bpe_trainer_train(dz_bpe_trainer *tr) {
    if (!tr) return dz_fail(DZ_ERR_ARG, "dz_bpe_trainer_train: NULL argument");
    if (tr->broken) return dz_fail(DZ_ERR_ARG, "the tokenizer trainer failed earlier");
    if (tr->trained) return dz_fail(DZ_ERR_ARG, "the tokenizer trainer has already trained");
    if (tr->words.n == 0)
        return dz_fail(DZ_ERR_FORMAT, "no training text: the input is empty (%llu bytes, no words)",
                       (unsigned long long)tr->n_bytes);
    dz_status st = DZ_OK;
    for (int b = 0; b < 256 && !st; b++) {
        char ch[4];
        st = bpe_strset_add(&tr->vocab, ch, tok_utf8_encode(tok_byte_cp[b], ch));
    }
    if (!st) st = bpe_learn_merges(tr);
    if (!st) {
        /* Merged texts are byte-level characters, which never spell the special
         * token's '<|' next to letters: the pre-tokenizer cuts there. */
        if (bpe_strset_find(&tr->vocab, DZ_BPE_EOT_TEXT, sizeof DZ_BPE_EOT_TEXT - 1) >= 0)
            st = dz_fail(DZ_ERR_INTERNAL, "a learned token spells " DZ_BPE_EOT_TEXT);
        else
            st = bpe_strset_add(&tr->vocab, DZ_BPE_EOT_TEXT, sizeof DZ_BPE_EOT_TEXT - 1);
    }
    if (st) {
        tr->broken = true;
        return st;
    }
    tr->trained = true;
    if (tr->params.progress) {
        dz_bpe_progress p = {.phase = "done", .n_vocab = (int32_t)tr->vocab.n,
                             .target_vocab = tr->params.vocab_size};
        tr->params.progress(tr->params.user, &p);
    }
    return DZ_OK;
}

/* ---- output ---- */

/* NUL-terminated copies of strings (token texts hold no NUL: byte 0 is U+0100). */
typedef struct cstr_list {
    char **v;
    size_t n;
} cstr_list;

static void cstr_list_free(cstr_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

static dz_status cstr_list_init(cstr_list *l, size_t n) {
    l->n = 0;
    l->v = calloc(n ? n : 1, sizeof *l->v);
    return l->v ? DZ_OK : dz_fail(DZ_ERR_NOMEM, "out of memory for %zu strings", n);
}

static dz_status cstr_list_push(cstr_list *l, const char *a, size_t an, const char *b, size_t bn) {
    char *s = malloc(an + (b ? bn + 1 : 0) + 1);
    if (!s) return dz_fail(DZ_ERR_NOMEM, "out of memory writing the vocabulary");
    memcpy(s, a, an);
    if (b) {
        s[an] = ' ';
        memcpy(s + an + 1, b, bn);
        an += bn + 1;
    }
    s[an] = '\0';
    l->v[l->n++] = s;
    return DZ_OK;
}

#define KEY(name) "tokenizer.ggml." name

dz_status dz_bpe_trainer_to_gguf(const dz_bpe_trainer *tr, dz_gguf_writer *w) {
    if (!tr || !w) return dz_fail(DZ_ERR_ARG, "dz_bpe_trainer_to_gguf: NULL argument");
    if (!tr->trained) return dz_fail(DZ_ERR_ARG, "the tokenizer trainer has not trained yet");
    const bpe_strset *v = &tr->vocab;
    cstr_list tokens = {0}, merges = {0};
    int32_t *types = malloc(v->n * sizeof *types);
    dz_status st = types ? DZ_OK : dz_fail(DZ_ERR_NOMEM, "out of memory writing the vocabulary");
    if (!st) st = cstr_list_init(&tokens, v->n);
    if (!st) st = cstr_list_init(&merges, tr->n_rules);
    for (size_t id = 0; id < v->n && !st; id++) {
        size_t len;
        const char *s = bpe_strset_get(v, id, &len);
        types[id] = id + 1 == v->n ? DZ_TOKEN_CONTROL : DZ_TOKEN_NORMAL;
        st = cstr_list_push(&tokens, s, len, NULL, 0);
    }
    for (size_t i = 0; i < tr->n_rules && !st; i++) {
        size_t ln, rn;
        const char *l = bpe_strset_get(v, (size_t)tr->rules[i].left, &ln);
        const char *r = bpe_strset_get(v, (size_t)tr->rules[i].right, &rn);
        st = cstr_list_push(&merges, l, ln, r, rn);
    }
    /* The writer keeps nothing of a failed call, but an earlier key may be
     * set when a later one fails: set them all on a scratch writer first. */
    dz_gguf_writer *scratch = NULL;
    uint32_t eot = (uint32_t)v->n - 1;
    for (int pass = 0; pass < 2 && !st; pass++) {
        dz_gguf_writer *out = w;
        if (pass == 0 && (st = dz_gguf_writer_create(&scratch))) break;
        if (pass == 0) out = scratch;
        if ((st = dz_gguf_writer_set_str(out, KEY("model"), "gpt2")) ||
            (st = dz_gguf_writer_set_str(out, KEY("pre"), "gpt-2")) ||
            (st = dz_gguf_writer_set_str_array(out, KEY("tokens"), (const char *const *)tokens.v,
                                               tokens.n)) ||
            (st = dz_gguf_writer_set_array(out, KEY("token_type"), DZ_GGUF_INT32, types, v->n)) ||
            (st = dz_gguf_writer_set_str_array(out, KEY("merges"), (const char *const *)merges.v,
                                               merges.n)) ||
            (st = dz_gguf_writer_set_u32(out, KEY("bos_token_id"), eot)) ||
            (st = dz_gguf_writer_set_u32(out, KEY("eos_token_id"), eot)) ||
            (st = dz_gguf_writer_set_u32(out, KEY("eot_token_id"), eot)) ||
            (st = dz_gguf_writer_set_bool(out, KEY("add_bos_token"), false)))
            break;
    }
    dz_gguf_writer_destroy(scratch);
    cstr_list_free(&tokens);
    cstr_list_free(&merges);
    free(types);
    return st;
}

dz_status dz_bpe_trainer_save(const dz_bpe_trainer *tr, const char *name, const char *path) {
    if (!tr || !path) return dz_fail(DZ_ERR_ARG, "dz_bpe_trainer_save: NULL argument");
    if (!tr->trained) return dz_fail(DZ_ERR_ARG, "the tokenizer trainer has not trained yet");
    dz_gguf_writer *w = NULL;
    dz_status st = dz_gguf_writer_create(&w);
    /* llama.cpp needs a known architecture even for a vocab-only file; it
     * reads nothing else of it then. */
    if (!st) st = dz_gguf_writer_set_str(w, "general.architecture", "gpt2");
    if (!st) st = dz_gguf_writer_set_str(w, "general.name", name ? name : "dizuo-bpe");
    if (!st) st = dz_bpe_trainer_to_gguf(tr, w);
    if (!st) st = dz_gguf_writer_write_file(w, path);
    dz_gguf_writer_destroy(w);
    return st;
}
