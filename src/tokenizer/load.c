/* Loading and validating a tokenizer from a GGUF file's tokenizer.* keys.
 *
 * Defaults and derived settings follow llama.cpp's llama_vocab::load. Where
 * llama.cpp would read out of bounds, abort or silently fall back on a bad
 * file, this loader refuses with DZ_ERR_FORMAT naming the key and the defect:
 *  - tokens missing, not an array of strings, empty, or with duplicates;
 *  - scores / token_type not FLOAT32 / INT32 arrays of the tokens' length;
 *  - a special-token id outside the vocabulary (-1 and 0xFFFFFFFF mean
 *    "none": llama.cpp would keep its default id there, here there is none);
 *  - an SPM byte token whose text is not <0xHH>;
 *  - a BPE merge without a space or naming a text that is no token.
 * An unknown tokenizer.ggml.model or .pre is DZ_ERR_UNSUPPORTED (llama.cpp
 * errors too); a BPE vocabulary without .pre uses "default" with a warning. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_impl.h"

#define KEY(name) "tokenizer.ggml." name

/* Shortens a text for an error message. */
#define SHOW(len) (int)((len) > 64 ? 64 : (len))

static dz_status read_model(dz_tokenizer *t, const dz_gguf *g) {
    const char *model;
    size_t len;
    bool found;
    dz_status st = dz_gguf_get_str(g, KEY("model"), &model, &len, &found);
    if (st) return st;
    if (!found) return dz_fail(DZ_ERR_FORMAT, KEY("model") " is missing: the file has no tokenizer");
    if (len == 5 && !memcmp(model, "llama", 5)) {
        t->kind = TOK_SPM;
    } else if (len == 4 && !memcmp(model, "gpt2", 4)) {
        t->kind = TOK_BPE;
    } else {
        static const char *const known[] = {"bert", "t5", "rwkv", "no_vocab", "none"};
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (strlen(known[i]) == len && !memcmp(model, known[i], len))
                return dz_fail(DZ_ERR_UNSUPPORTED,
                               "tokenizer model '%s' is not supported (dizuo reads 'llama' and "
                               "'gpt2' vocabularies)", known[i]);
        return dz_fail(DZ_ERR_UNSUPPORTED, "unknown tokenizer model '%.*s' (" KEY("model") ")",
                       SHOW(len), model);
    }
    memcpy(t->model_name, model, len);
    t->model_name[len] = '\0';
    return DZ_OK;
}

/* Model defaults, then the pre-tokenizer's (BPE only). */
static dz_status read_pre(dz_tokenizer *t, const dz_gguf *g, const char **pre, size_t *pre_len) {
    bool found;
    dz_status st = dz_gguf_get_str(g, KEY("pre"), pre, pre_len, &found);
    if (st) return st;
    if (!found) *pre = "", *pre_len = 0;
    t->bos = t->eos = t->eot = t->eom = t->unk = t->sep = t->pad = t->mask = -1;
    t->fim_pre = t->fim_suf = t->fim_mid = t->fim_pad = t->fim_rep = t->fim_sep = -1;
    if (t->kind == TOK_SPM) {
        t->bos = 1, t->eos = 2, t->unk = 0;
        t->add_space_prefix = true;
        t->add_bos = true;
        t->pre_name = "default"; /* SPM has no pre-tokenizer */
        return DZ_OK;
    }
    t->bos = 11, t->eos = 11; /* llama.cpp's historical BPE defaults */
    if (!found) {
        dz_log(DZ_LOG_WARN, "tokenizer: " KEY("pre") " is missing; using the 'default' "
                            "pre-tokenizer (text may tokenize differently from the model's training)\n");
        t->pre = tok_pretok_find(NULL, 0);
    } else if (!(t->pre = tok_pretok_find(*pre, *pre_len))) {
        return dz_fail(DZ_ERR_UNSUPPORTED, "unknown pre-tokenizer '%.*s' (" KEY("pre") ")",
                       SHOW(*pre_len), *pre);
    }
    t->pre_name = tok_pretok_name(t->pre);
    tok_pretok_defaults(t->pre, t);
    return DZ_OK;
}

static dz_status read_tokens(dz_tokenizer *t, const dz_gguf *g) {
    dz_gguf_value arr, v;
    bool found;
    dz_status st = dz_gguf_get_array(g, KEY("tokens"), &arr, &found);
    if (st) return st;
    if (!found) return dz_fail(DZ_ERR_FORMAT, KEY("tokens") " is missing: the file has no vocabulary");
    if (arr.elem_type != DZ_GGUF_STRING)
        return dz_fail(DZ_ERR_FORMAT, KEY("tokens") " must be an array of strings, not of %s",
                       dz_gguf_type_name(arr.elem_type));
    if (arr.n == 0) return dz_fail(DZ_ERR_FORMAT, KEY("tokens") " is empty: an empty vocabulary");
    if (arr.n > INT32_MAX - 1)
        return dz_fail(DZ_ERR_FORMAT, KEY("tokens") " has %llu tokens (at most %d)",
                       (unsigned long long)arr.n, INT32_MAX - 1);
    t->n_vocab = (int32_t)arr.n;
    size_t n = (size_t)arr.n, total = 0;
    char empty[32];
    for (size_t i = 0; i < n; i++) {
        if ((st = dz_gguf_array_get(g, &arr, i, &v))) return st;
        /* llama.cpp renames empty tokens so that lookups stay unambiguous. */
        size_t len = v.n ? (size_t)v.n : (size_t)snprintf(empty, sizeof empty, "[EMPTY_%zu]", i);
        if (dz_add_overflows(total, len, &total))
            return dz_fail(DZ_ERR_FORMAT, KEY("tokens") ": token texts too long");
    }
    t->text = malloc(total ? total : 1);
    t->text_off = malloc((n + 1) * sizeof *t->text_off);
    t->score = calloc(n, sizeof *t->score);
    t->type = malloc(n);
    t->attr = malloc(n);
    t->eog = calloc(n, 1);
    if (!t->text || !t->text_off || !t->score || !t->type || !t->attr || !t->eog)
        return dz_fail(DZ_ERR_NOMEM, "out of memory for %zu tokens", n);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if ((st = dz_gguf_array_get(g, &arr, i, &v))) return st;
        t->text_off[i] = off;
        if (v.n) {
            memcpy(t->text + off, v.data, (size_t)v.n);
            off += (size_t)v.n;
        } else {
            int len = snprintf(empty, sizeof empty, "[EMPTY_%zu]", i);
            memcpy(t->text + off, empty, (size_t)len);
            off += (size_t)len;
        }
        t->type[i] = DZ_TOKEN_NORMAL;
        t->attr[i] = TOK_ATTR_NORMAL;
    }
    t->text_off[n] = off;
    return DZ_OK;
}

/* An optional per-token array: absent, or `type` with one element per token. */
static dz_status per_token_array(const dz_tokenizer *t, const dz_gguf *g, const char *key,
                                 dz_gguf_type type, dz_gguf_value *arr, bool *found) {
    dz_status st = dz_gguf_get_array(g, key, arr, found);
    if (st || !*found) return st;
    if (arr->elem_type != type)
        return dz_fail(DZ_ERR_FORMAT, "%s must be an array of %s, not of %s", key,
                       dz_gguf_type_name(type), dz_gguf_type_name(arr->elem_type));
    if (arr->n != (uint64_t)t->n_vocab)
        return dz_fail(DZ_ERR_FORMAT, "%s has %llu entries for %d tokens", key,
                       (unsigned long long)arr->n, t->n_vocab);
    return DZ_OK;
}

static dz_status read_scores_and_types(dz_tokenizer *t, const dz_gguf *g) {
    dz_gguf_value arr, v;
    bool found;
    dz_status st = per_token_array(t, g, KEY("scores"), DZ_GGUF_FLOAT32, &arr, &found);
    if (st) return st;
    for (int32_t i = 0; found && i < t->n_vocab; i++) {
        if ((st = dz_gguf_array_get(g, &arr, (uint64_t)i, &v))) return st;
        memcpy(&t->score[i], v.data, sizeof(float));
    }
    if ((st = per_token_array(t, g, KEY("token_type"), DZ_GGUF_INT32, &arr, &found))) return st;
    for (int32_t i = 0; found && i < t->n_vocab; i++) {
        int32_t type;
        if ((st = dz_gguf_array_get(g, &arr, (uint64_t)i, &v))) return st;
        memcpy(&type, v.data, sizeof type);
        /* Types outside 1..6 are llama.cpp's "undefined": no attribute. */
        bool known = type >= DZ_TOKEN_NORMAL && type <= DZ_TOKEN_BYTE;
        t->type[i] = known ? (uint8_t)type : 0;
        t->attr[i] = known ? (uint8_t)(1u << (type - 1)) : 0;
    }
    return DZ_OK;
}

/* SPM byte tokens must read <0xHH>; then each byte's fallback token. BPE:
 * each byte's character token and the one-byte tokens. */
static dz_status index_bytes(dz_tokenizer *t) {
    static const char hex[] = "0123456789ABCDEF";
    if (t->kind == TOK_SPM) {
        for (int32_t id = 0; id < t->n_vocab; id++) {
            size_t len;
            const char *s = tok_text(t, id, &len);
            if ((t->attr[id] & TOK_ATTR_BYTE) &&
                (len != 6 || memcmp(s, "<0x", 3) != 0 || tok_hex_value(s[3]) < 0 ||
                 tok_hex_value(s[4]) < 0 || s[5] != '>'))
                return dz_fail(DZ_ERR_FORMAT, KEY("tokens") ": token %d '%.*s' has the byte type "
                                              "but is not of the form <0xHH>", id, SHOW(len), s);
        }
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->raw_byte_token[b] = tok_find(t, &c, 1);
        if (t->kind == TOK_SPM) {
            char name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
            int32_t id = tok_find(t, name, sizeof name);
            t->byte_token[b] = id >= 0 ? id : t->raw_byte_token[b];
        } else {
            char ch[4];
            t->byte_token[b] = tok_find(t, ch, tok_utf8_encode(tok_byte_cp[b], ch));
        }
    }
    return DZ_OK;
}

/* "left right" -> ranked rules; every part and the joined text must be tokens. */
static dz_status read_merges(dz_tokenizer *t, const dz_gguf *g) {
    dz_gguf_value arr, v;
    bool found;
    dz_status st = dz_gguf_get_array(g, KEY("merges"), &arr, &found);
    if (st) return st;
    if (!found) return dz_fail(DZ_ERR_FORMAT, KEY("merges") " is missing (a gpt2 vocabulary needs it)");
    if (arr.elem_type != DZ_GGUF_STRING)
        return dz_fail(DZ_ERR_FORMAT, KEY("merges") " must be an array of strings, not of %s",
                       dz_gguf_type_name(arr.elem_type));
    if (arr.n > INT32_MAX)
        return dz_fail(DZ_ERR_FORMAT, KEY("merges") " has too many entries");
    if ((st = tok_merges_init(&t->merges, (size_t)arr.n))) return st;
    char *joined = NULL;
    size_t cap = 0;
    for (uint64_t i = 0; i < arr.n; i++) {
        if ((st = dz_gguf_array_get(g, &arr, i, &v))) break;
        const char *s = (const char *)v.data;
        size_t len = (size_t)v.n;
        /* The separator is the first space after the first character, as in llama.cpp. */
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp) {
            st = dz_fail(DZ_ERR_FORMAT, KEY("merges") "[%llu] '%.*s' is not two tokens separated "
                                        "by a space", (unsigned long long)i, SHOW(len), s);
            break;
        }
        size_t ll = (size_t)(sp - s), rl = len - ll - 1;
        if (len > cap) {
            char *bigger = realloc(joined, len);
            if (!bigger) {
                st = dz_fail(DZ_ERR_NOMEM, "out of memory reading the merges");
                break;
            }
            joined = bigger, cap = len;
        }
        memcpy(joined, s, ll);
        memcpy(joined + ll, sp + 1, rl);
        int32_t left = tok_find(t, s, ll), right = tok_find(t, sp + 1, rl);
        int32_t result = tok_find(t, joined, ll + rl);
        const char *missing = left < 0 ? s : right < 0 ? sp + 1 : result < 0 ? joined : NULL;
        if (missing) {
            size_t ml = left < 0 ? ll : right < 0 ? rl : ll + rl;
            st = dz_fail(DZ_ERR_FORMAT, KEY("merges") "[%llu] '%.*s': '%.*s' is not in the vocabulary",
                         (unsigned long long)i, SHOW(len), s, SHOW(ml), missing);
            break;
        }
        tok_merges_insert(&t->merges, left, right, (int32_t)i, result);
    }
    free(joined);
    return st;
}

/* Special-token ids from the file; -1 / 0xFFFFFFFF mean none. */
static dz_status read_special_ids(dz_tokenizer *t, const dz_gguf *g) {
    const struct {
        const char *key;
        int32_t *id;
    } keys[] = {
        {KEY("bos_token_id"), &t->bos},         {KEY("eos_token_id"), &t->eos},
        {KEY("eot_token_id"), &t->eot},         {KEY("eom_token_id"), &t->eom},
        {KEY("unknown_token_id"), &t->unk},     {KEY("seperator_token_id"), &t->sep},
        {KEY("padding_token_id"), &t->pad},     {KEY("mask_token_id"), &t->mask},
        {KEY("fim_pre_token_id"), &t->fim_pre}, {KEY("fim_suf_token_id"), &t->fim_suf},
        {KEY("fim_mid_token_id"), &t->fim_mid}, {KEY("fim_pad_token_id"), &t->fim_pad},
        {KEY("fim_rep_token_id"), &t->fim_rep}, {KEY("fim_sep_token_id"), &t->fim_sep},
        /* deprecated spellings, read after the new ones as llama.cpp does */
        {KEY("prefix_token_id"), &t->fim_pre},  {KEY("suffix_token_id"), &t->fim_suf},
        {KEY("middle_token_id"), &t->fim_mid},
    };
    /* A model default that does not fit a tiny vocabulary means none. */
    int32_t *defaults[] = {&t->bos, &t->eos, &t->unk};
    for (size_t i = 0; i < 3; i++)
        if (*defaults[i] >= t->n_vocab) *defaults[i] = -1;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int64_t v;
        bool found;
        dz_status st = dz_gguf_get_int(g, keys[i].key, &v, &found);
        if (st) return st;
        if (!found) continue;
        if (v == -1 || v == (int64_t)UINT32_MAX) {
            *keys[i].id = -1;
        } else if (v < 0 || v >= t->n_vocab) {
            return dz_fail(DZ_ERR_FORMAT, "%s = %lld is outside the vocabulary (%d tokens)",
                           keys[i].key, (long long)v, t->n_vocab);
        } else {
            *keys[i].id = (int32_t)v;
        }
    }
    return DZ_OK;
}

static dz_status read_flag(const dz_gguf *g, const char *key, bool *flag) {
    bool v, found;
    dz_status st = dz_gguf_get_bool(g, key, &v, &found);
    if (!st && found) *flag = v;
    return st;
}

static dz_status load(dz_tokenizer *t, const dz_gguf *g) {
    const char *pre, *name;
    size_t pre_len, name_len;
    bool found;
    dz_status st;
    if ((st = read_model(t, g)) || (st = read_pre(t, g, &pre, &pre_len))) return st;
    if ((st = read_flag(g, KEY("add_space_prefix"), &t->add_space_prefix))) return st;
    if ((st = read_tokens(t, g)) || (st = read_scores_and_types(t, g))) return st;
    if ((st = tok_map_build(t)) || (st = index_bytes(t))) return st;
    if (t->kind == TOK_BPE && (st = read_merges(t, g))) return st;
    if ((st = read_special_ids(t, g))) return st;
    if ((st = read_flag(g, KEY("add_bos_token"), &t->add_bos)) ||
        (st = read_flag(g, KEY("add_eos_token"), &t->add_eos)))
        return st;
    if ((st = dz_gguf_get_str(g, "general.name", &name, &name_len, &found))) return st;
    if (!found) name = "", name_len = 0;
    if ((st = tok_specials_setup(t, name, name_len, pre, pre_len))) return st;
    if ((st = tok_pieces_build(t))) return st;
    if (t->kind == TOK_BPE && (st = tok_regex_compile(t->pre, &t->regex))) return st;
    return DZ_OK;
}

dz_status dz_tokenizer_load(const dz_gguf *g, dz_tokenizer **out) {
    if (!g || !out) return dz_fail(DZ_ERR_ARG, "dz_tokenizer_load: NULL argument");
    dz_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return dz_fail(DZ_ERR_NOMEM, "out of memory for a tokenizer");
    dz_status st = load(t, g);
    if (st) {
        dz_tokenizer_free(t);
        return dz_error_prefix(st, "tokenizer: ");
    }
    *out = t;
    return DZ_OK;
}

void dz_tokenizer_free(dz_tokenizer *t) {
    if (!t) return;
    free(t->text);
    free(t->text_off);
    free(t->score);
    free(t->type);
    free(t->attr);
    free(t->eog);
    free(t->map.slots);
    tok_merges_free(&t->merges);
    free(t->special);
    free(t->piece);
    free(t->piece_off);
    tok_regex_free(t->regex);
    free(t);
}

/* ---- accessors ---- */

int32_t dz_tokenizer_n_vocab(const dz_tokenizer *t) { return t->n_vocab; }
const char *dz_tokenizer_model_name(const dz_tokenizer *t) { return t->model_name; }
const char *dz_tokenizer_pre_name(const dz_tokenizer *t) { return t->pre_name; }
int32_t dz_tokenizer_bos(const dz_tokenizer *t) { return t->bos; }
int32_t dz_tokenizer_eos(const dz_tokenizer *t) { return t->eos; }
int32_t dz_tokenizer_eot(const dz_tokenizer *t) { return t->eot; }
int32_t dz_tokenizer_unk(const dz_tokenizer *t) { return t->unk; }
int32_t dz_tokenizer_pad(const dz_tokenizer *t) { return t->pad; }
bool dz_tokenizer_add_bos_default(const dz_tokenizer *t) { return t->add_bos && t->bos >= 0; }
bool dz_tokenizer_add_eos_default(const dz_tokenizer *t) { return t->add_eos && t->eos >= 0; }

bool dz_tokenizer_is_eog(const dz_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->eog[id];
}

int32_t dz_tokenizer_token_type(const dz_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->type[id] : 0;
}

const char *dz_tokenizer_token_text(const dz_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) {
        if (len) *len = 0;
        return NULL;
    }
    size_t n;
    const char *s = tok_text(t, id, &n);
    if (len) *len = n;
    return s;
}

int32_t dz_tokenizer_find(const dz_tokenizer *t, const char *text, size_t len) {
    return text || len == 0 ? tok_find(t, text ? text : "", len) : -1;
}
