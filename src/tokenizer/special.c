/* Special tokens: the ids llama.cpp finds by text when the file gives none,
 * end-of-generation tokens, and cutting special tokens out of input text. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_impl.h"

/* Marks a token control-type, as llama.cpp does for control-looking texts. */
static void make_control(dz_tokenizer *t, int32_t id) {
    if (!(t->attr[id] & TOK_ATTR_CONTROL)) {
        size_t len;
        const char *text = tok_text(t, id, &len);
        dz_log(DZ_LOG_DEBUG, "tokenizer: control-looking token %d '%.*s' was not control-type; "
                             "treating it as control\n", id, (int)len, text);
        t->attr[id] = TOK_ATTR_CONTROL;
        t->type[id] = DZ_TOKEN_CONTROL;
    }
}

static int32_t find_str(const dz_tokenizer *t, const char *s) { return tok_find(t, s, strlen(s)); }

/* Where *id is unset: the first of texts the vocabulary has (llama.cpp takes
 * whichever its hash map yields first; the list order is deterministic). */
static void detect(dz_tokenizer *t, int32_t *id, const char *const *texts) {
    if (*id >= 0) return;
    for (; *texts; texts++) {
        int32_t found = find_str(t, *texts);
        if (found >= 0) {
            *id = found;
            make_control(t, found);
            return;
        }
    }
}

static const char *const eot_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                        "<|endoftext|>", "<EOT>", "<｜end▁of▁sentence｜>", NULL};
static const char *const eom_texts[] = {"<|eom_id|>", NULL};
static const char *const fim_pre_texts[] = {"<|fim_prefix|>", "<fim-prefix>", "<｜fim▁begin｜>",
                                            "<PRE>", NULL};
static const char *const fim_suf_texts[] = {"<|fim_suffix|>", "<fim-suffix>", "<｜fim▁hole｜>",
                                            "<SUF>", NULL};
static const char *const fim_mid_texts[] = {"<|fim_middle|>", "<fim-middle>", "<｜fim▁end｜>",
                                            "<MID>", NULL};
static const char *const fim_pad_texts[] = {"<|fim_pad|>", "<fim-pad>", "<PAD>", NULL};
static const char *const fim_rep_texts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                            "<REPO>", NULL};
static const char *const fim_sep_texts[] = {"<|file_sep|>", NULL};
/* Texts that end generation whatever the file says. */
static const char *const eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                        "<|endoftext|>", "<|eom_id|>", "<EOT>", NULL};

static void mark_eog(dz_tokenizer *t, int32_t id) {
    if (id >= 0) t->eog[id] = 1;
}

/* Case-insensitive substring test on an unterminated haystack. */
static bool contains_ci(const char *hay, size_t n, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = 0; m <= n && i <= n - m; i++) {
        size_t k = 0;
        while (k < m && tolower((unsigned char)hay[i + k]) == needle[k]) k++;
        if (k == m) return true;
    }
    return false;
}

static void set_attr(dz_tokenizer *t, const char *text, uint8_t bit, bool on) {
    int32_t id = find_str(t, text);
    if (id < 0) return; /* llama.cpp fails the load here; a missing token changes nothing */
    if (on)
        t->attr[id] |= bit;
    else
        t->attr[id] &= (uint8_t)~bit;
}

typedef struct sized_id {
    size_t len;
    int32_t id;
} sized_id;

static int cmp_longer_first(const void *a, const void *b) {
    const sized_id *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

dz_status tok_specials_setup(dz_tokenizer *t, const char *general_name, size_t name_len,
                             const char *pre, size_t pre_len) {
    detect(t, &t->eot, eot_texts);
    detect(t, &t->eom, eom_texts);
    detect(t, &t->fim_pre, fim_pre_texts);
    detect(t, &t->fim_suf, fim_suf_texts);
    detect(t, &t->fim_mid, fim_mid_texts);
    detect(t, &t->fim_pad, fim_pad_texts);
    detect(t, &t->fim_rep, fim_rep_texts);
    detect(t, &t->fim_sep, fim_sep_texts);

    mark_eog(t, t->fim_pad);
    mark_eog(t, t->fim_rep);
    mark_eog(t, t->fim_sep);
    for (const char *const *s = eog_texts; *s; s++) {
        int32_t id = find_str(t, *s);
        if (id >= 0) {
            mark_eog(t, id);
            make_control(t, id);
        }
    }
    mark_eog(t, t->eos);
    mark_eog(t, t->eot);
    mark_eog(t, t->eom);

    size_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) n++;
    sized_id *order = malloc((n ? n : 1) * sizeof *order);
    t->special = malloc((n ? n : 1) * sizeof *t->special);
    if (!order || !t->special) {
        free(order);
        return dz_fail(DZ_ERR_NOMEM, "out of memory for the special tokens");
    }
    for (int32_t id = 0, k = 0; id < t->n_vocab; id++)
        if (t->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN))
            order[k++] = (sized_id){.len = t->text_off[id + 1] - t->text_off[id], .id = id};
    /* Longest first, so a token containing another wins; ties by id. */
    qsort(order, n, sizeof *order, cmp_longer_first);
    for (size_t i = 0; i < n; i++) t->special[i] = order[i].id;
    t->n_special = n;
    free(order);

    /* Per-model strip attributes (llama.cpp keys them on names). */
    if (contains_ci(pre, pre_len, "jina-v2-de") || contains_ci(pre, pre_len, "jina-v2-es") ||
        contains_ci(pre, pre_len, "jina-v2-code")) {
        set_attr(t, "<mask>", TOK_ATTR_LSTRIP, true);
    } else if (contains_ci(general_name, name_len, "phi-3") ||
               contains_ci(general_name, name_len, "phi3")) {
        for (size_t i = 0; i < t->n_special; i++) t->attr[t->special[i]] |= TOK_ATTR_RSTRIP;
        set_attr(t, "</s>", TOK_ATTR_RSTRIP, true);
        set_attr(t, "<unk>", TOK_ATTR_RSTRIP, false);
        set_attr(t, "<s>", TOK_ATTR_RSTRIP, false);
        set_attr(t, "<|endoftext|>", TOK_ATTR_RSTRIP, false);
    }
    return DZ_OK;
}

/* ---- partitioning ---- */

typedef struct frag_list {
    tok_fragment *v;
    size_t n, cap;
} frag_list;

static dz_status frag_push(frag_list *l, int32_t token, size_t off, size_t len) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        tok_fragment *v = cap <= SIZE_MAX / sizeof *v ? realloc(l->v, cap * sizeof *v) : NULL;
        if (!v) return dz_fail(DZ_ERR_NOMEM, "out of memory splitting special tokens");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (tok_fragment){.token = token, .off = off, .len = len};
    return DZ_OK;
}

/* llama.cpp strips with isspace() in the C locale. */
static bool is_c_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Cuts every occurrence of special token id out of raw fragment [off, off+len). */
static dz_status split_fragment(const dz_tokenizer *t, int32_t id, const char *text, size_t off,
                                size_t len, frag_list *out) {
    size_t slen;
    const char *s = tok_text(t, id, &slen);
    uint8_t attr = t->attr[id];
    dz_status st;
    while (len > 0) {
        const char *hit = memmem(text + off, len, s, slen);
        if (!hit) return frag_push(out, -1, off, len);
        size_t at = (size_t)(hit - text), left = at - off;
        if (attr & TOK_ATTR_LSTRIP)
            while (left > 0 && is_c_space(text[off + left - 1])) left--;
        if (left > 0 && (st = frag_push(out, -1, off, left))) return st;
        if ((st = frag_push(out, id, 0, 0))) return st;
        size_t right = off + len - (at + slen);
        off = at + slen;
        if (right > 0 && (attr & TOK_ATTR_RSTRIP))
            while (right > 0 && is_c_space(text[off])) off++, right--;
        len = right;
    }
    return DZ_OK;
}

dz_status tok_partition(const dz_tokenizer *t, const char *text, size_t len, bool parse_special,
                        tok_fragment **frags, size_t *n_frags) {
    frag_list cur = {0}, next = {0};
    dz_status st = DZ_OK;
    if (len > 0 && (st = frag_push(&cur, -1, 0, len))) goto fail;
    for (size_t k = 0; k < t->n_special && cur.n > 0; k++) {
        int32_t id = t->special[k];
        /* Without parse_special only user-defined tokens are cut out (as the
         * Hugging Face tokenizers do with added tokens). */
        if (!parse_special && (t->attr[id] & TOK_ATTR_SPECIAL)) continue;
        size_t slen;
        const char *s = tok_text(t, id, &slen);
        if (!memmem(text, len, s, slen)) continue; /* the common case: one pass, no copying */
        next.n = 0;
        for (size_t i = 0; i < cur.n && !st; i++) {
            const tok_fragment *f = &cur.v[i];
            st = f->token >= 0 ? frag_push(&next, f->token, 0, 0)
                               : split_fragment(t, id, text, f->off, f->len, &next);
        }
        if (st) goto fail;
        frag_list tmp = cur;
        cur = next;
        next = tmp;
    }
    free(next.v);
    *frags = cur.v;
    *n_frags = cur.n;
    return DZ_OK;
fail:
    free(cur.v);
    free(next.v);
    return st;
}
