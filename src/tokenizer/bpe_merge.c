/* The BPE merge loop: learns merge rules from counted words.
 *
 * Every distinct word is a sequence of token ids (its bytes at first). A
 * table holds, for every pair of neighbouring ids, its count (occurrences
 * over all words times each word's frequency) and the words it occurs in. A
 * max-heap orders pairs by (count desc, left id asc, right id asc). Each step
 * pops the best pair, gives it a token (a new one, or the existing token of
 * the same text), rewrites only the words that contain it, and updates the
 * counts of just the pairs those rewrites change: cost per step is
 * proportional to the occurrences it merges, not to the corpus.
 *
 * The heap is lazy: a pair whose count changes gets a new entry, and an
 * entry whose count is no longer the pair's count is dropped when popped. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/bpe_train.h"

typedef struct pair_entry {
    uint64_t key;   /* left << 32 | right */
    int64_t count;  /* occurrences, weighted by word frequency */
    int64_t before; /* count when first touched in the current step */
    uint32_t stamp; /* the step that last touched it */
    uint32_t occ_n, occ_cap;
    int32_t *occ; /* words it occurs in (may hold stale words and repeats) */
} pair_entry;

typedef struct heap_item {
    int64_t count;
    uint64_t key;
    uint32_t pair; /* index into the pair table */
} heap_item;

typedef struct merge_state {
    pair_entry *pairs;
    size_t n_pairs, pairs_cap;
    uint32_t *slots; /* pair index + 1; 0 empty */
    size_t mask;

    heap_item *heap;
    size_t heap_n, heap_cap;

    uint32_t *touched; /* pairs touched in the current step */
    size_t touched_n, touched_cap;
    uint32_t step;

    int32_t *syms;     /* every word's ids, back to back */
    size_t *word_off;  /* where word w's ids start */
    uint32_t *word_len; /* ids in word w now */
    uint32_t *word_stamp; /* the step that last rewrote word w */
    const int64_t *word_count;
} merge_state;

static uint64_t hash_key(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

static uint64_t pair_key(int32_t left, int32_t right) {
    return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
}

static void state_free(merge_state *s) {
    for (size_t i = 0; i < s->n_pairs; i++) free(s->pairs[i].occ);
    free(s->pairs);
    free(s->slots);
    free(s->heap);
    free(s->touched);
    free(s->syms);
    free(s->word_off);
    free(s->word_len);
    free(s->word_stamp);
}

/* ---- growable arrays ---- */

static dz_status grow(void **v, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return DZ_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *p = c <= SIZE_MAX / elem ? realloc(*v, c * elem) : NULL;
    if (!p) return dz_fail(DZ_ERR_NOMEM, "out of memory learning merges (%zu items)", need);
    *v = p;
    *cap = c;
    return DZ_OK;
}

/* ---- the heap ---- */

static bool better(const heap_item *a, const heap_item *b) {
    return a->count != b->count ? a->count > b->count : a->key < b->key;
}

static dz_status heap_push(merge_state *s, heap_item it) {
    dz_status st = grow((void **)&s->heap, &s->heap_cap, s->heap_n + 1, sizeof *s->heap);
    if (st) return st;
    size_t i = s->heap_n++;
    while (i > 0 && better(&it, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = it;
    return DZ_OK;
}

static heap_item heap_pop(merge_state *s) {
    heap_item top = s->heap[0], last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && better(&s->heap[c + 1], &s->heap[c])) c++;
        if (!better(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0) s->heap[i] = last;
    return top;
}

/* ---- the pair table ---- */

static dz_status slots_grow(merge_state *s) {
    size_t cap = s->slots ? (s->mask + 1) * 2 : 1 << 12;
    uint32_t *slots = cap <= SIZE_MAX / sizeof *slots ? calloc(cap, sizeof *slots) : NULL;
    if (!slots) return dz_fail(DZ_ERR_NOMEM, "out of memory for %zu token pairs", s->n_pairs);
    for (size_t p = 0; p < s->n_pairs; p++) {
        size_t i = (size_t)hash_key(s->pairs[p].key) & (cap - 1);
        while (slots[i]) i = (i + 1) & (cap - 1);
        slots[i] = (uint32_t)p + 1;
    }
    free(s->slots);
    s->slots = slots;
    s->mask = cap - 1;
    return DZ_OK;
}

/* The index of pair key, added with count 0 when new. */
static dz_status pair_get(merge_state *s, uint64_t key, uint32_t *idx) {
    dz_status st;
    if (!s->slots || 2 * (s->n_pairs + 1) > s->mask + 1) {
        if (s->n_pairs >= UINT32_MAX - 1) return dz_fail(DZ_ERR_NOMEM, "too many token pairs");
        if ((st = slots_grow(s))) return st;
    }
    size_t i = (size_t)hash_key(key) & s->mask;
    for (; s->slots[i]; i = (i + 1) & s->mask)
        if (s->pairs[s->slots[i] - 1].key == key) {
            *idx = s->slots[i] - 1;
            return DZ_OK;
        }
    if ((st = grow((void **)&s->pairs, &s->pairs_cap, s->n_pairs + 1, sizeof *s->pairs))) return st;
    s->pairs[s->n_pairs] = (pair_entry){.key = key};
    s->slots[i] = (uint32_t)s->n_pairs + 1;
    *idx = (uint32_t)s->n_pairs++;
    return DZ_OK;
}

/* Adds delta occurrences of (left, right) in word w (delta > 0 also records w). */
static dz_status pair_add(merge_state *s, int32_t left, int32_t right, int32_t w, int64_t delta) {
    uint32_t idx = 0;
    dz_status st = pair_get(s, pair_key(left, right), &idx);
    if (st) return st;
    pair_entry *e = &s->pairs[idx];
    if (e->stamp != s->step) {
        if ((st = grow((void **)&s->touched, &s->touched_cap, s->touched_n + 1, sizeof *s->touched)))
            return st;
        s->touched[s->touched_n++] = idx;
        e->stamp = s->step;
        e->before = e->count;
    }
    e->count += delta;
    if (delta > 0 && (e->occ_n == 0 || e->occ[e->occ_n - 1] != w)) {
        size_t cap = e->occ_cap;
        if (e->occ_n == UINT32_MAX) return dz_fail(DZ_ERR_NOMEM, "a token pair occurs in too many words");
        if ((st = grow((void **)&e->occ, &cap, (size_t)e->occ_n + 1, sizeof *e->occ))) return st;
        e->occ_cap = cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
        e->occ[e->occ_n++] = w;
    }
    return DZ_OK;
}

/* Queues every pair whose count changed in this step. When stale entries
 * outnumber the pairs, rebuilds the heap from the table (keeps its memory
 * proportional to the pairs, whatever the number of steps). */
static dz_status requeue_touched(merge_state *s) {
    dz_status st = DZ_OK;
    for (size_t i = 0; i < s->touched_n && !st; i++) {
        const pair_entry *e = &s->pairs[s->touched[i]];
        if (e->count != e->before && e->count > 0)
            st = heap_push(s, (heap_item){.count = e->count, .key = e->key, .pair = s->touched[i]});
    }
    s->touched_n = 0;
    if (!st && s->heap_n > 2 * s->n_pairs + 4096) {
        s->heap_n = 0;
        for (size_t p = 0; p < s->n_pairs && !st; p++)
            if (s->pairs[p].count > 0)
                st = heap_push(s, (heap_item){.count = s->pairs[p].count, .key = s->pairs[p].key,
                                              .pair = (uint32_t)p});
    }
    return st;
}

/* ---- setup and one step ---- */

static dz_status state_init(merge_state *s, const dz_bpe_trainer *tr) {
    const bpe_strset *words = &tr->words;
    size_t n_words = words->n, total = words->text_n;
    if (n_words > INT32_MAX)
        return dz_fail(DZ_ERR_UNSUPPORTED, "%zu distinct words: at most %d", n_words, INT32_MAX);
    s->word_count = tr->word_count;
    s->syms = malloc((total ? total : 1) * sizeof *s->syms);
    s->word_off = malloc(n_words * sizeof *s->word_off);
    s->word_len = malloc(n_words * sizeof *s->word_len);
    s->word_stamp = calloc(n_words, sizeof *s->word_stamp);
    if (!s->syms || !s->word_off || !s->word_len || !s->word_stamp)
        return dz_fail(DZ_ERR_NOMEM, "out of memory for %zu words (%zu bytes)", n_words, total);
    dz_status st = DZ_OK;
    s->step = 1; /* a new pair has stamp 0: every one is touched (and queued) */
    for (size_t w = 0; w < n_words && !st; w++) {
        size_t len;
        const uint8_t *text = (const uint8_t *)bpe_strset_get(words, w, &len);
        int32_t *sym = s->syms + words->off[w];
        s->word_off[w] = words->off[w];
        s->word_len[w] = (uint32_t)len;
        for (size_t i = 0; i < len; i++) sym[i] = text[i]; /* token id b is byte b */
        for (size_t i = 0; i + 1 < len && !st; i++)
            st = pair_add(s, sym[i], sym[i + 1], (int32_t)w, s->word_count[w]);
    }
    if (!st) st = requeue_touched(s);
    return st;
}

/* The best pair whose count is current, or false when none is left. */
static bool pop_best(merge_state *s, heap_item *best) {
    while (s->heap_n > 0) {
        heap_item it = heap_pop(s);
        if (s->pairs[it.pair].count == it.count) {
            *best = it;
            return true;
        }
    }
    return false;
}

/* Rewrites word w with every (a, b), left to right, as c; updates the counts. */
static dz_status merge_word(merge_state *s, int32_t w, int32_t a, int32_t b, int32_t c) {
    int32_t *sym = s->syms + s->word_off[w];
    size_t n = s->word_len[w], out = 0;
    int64_t cnt = s->word_count[w];
    dz_status st = DZ_OK;
    for (size_t r = 0; r < n && !st;) {
        if (r + 1 < n && sym[r] == a && sym[r + 1] == b) {
            st = pair_add(s, a, b, w, -cnt);
            /* out - 1 is the symbol now left of this one: maybe a c just made */
            if (!st && out > 0 && !(st = pair_add(s, sym[out - 1], a, w, -cnt)))
                st = pair_add(s, sym[out - 1], c, w, cnt);
            if (!st && r + 2 < n && !(st = pair_add(s, b, sym[r + 2], w, -cnt)))
                st = pair_add(s, c, sym[r + 2], w, cnt);
            sym[out++] = c;
            r += 2;
        } else {
            sym[out++] = sym[r++];
        }
    }
    s->word_len[w] = (uint32_t)out;
    return st;
}

/* The token for left + right: the existing one of that text, or a new one. */
static dz_status merged_token(dz_bpe_trainer *tr, int32_t left, int32_t right, int32_t *id,
                              char **buf, size_t *cap) {
    size_t ln, rn;
    const char *l = bpe_strset_get(&tr->vocab, (size_t)left, &ln);
    const char *r = bpe_strset_get(&tr->vocab, (size_t)right, &rn);
    dz_status st = grow((void **)buf, cap, ln + rn, 1);
    if (st) return st;
    memcpy(*buf, l, ln);
    memcpy(*buf + ln, r, rn);
    int64_t found = bpe_strset_find(&tr->vocab, *buf, ln + rn);
    if (found >= 0) {
        *id = (int32_t)found;
        return DZ_OK;
    }
    *id = (int32_t)tr->vocab.n;
    return bpe_strset_add(&tr->vocab, *buf, ln + rn);
}

static void report(const dz_bpe_trainer *tr, int64_t last_count) {
    if (!tr->params.progress) return;
    dz_bpe_progress p = {.phase = "merging", .n_vocab = (int32_t)tr->vocab.n + 1,
                         .target_vocab = tr->params.vocab_size, .last_count = last_count};
    tr->params.progress(tr->params.user, &p);
}

dz_status bpe_learn_merges(dz_bpe_trainer *tr) {
    merge_state s = {0};
    char *text = NULL;
    size_t text_cap = 0, rules_cap = 0;
    /* The vocabulary without the special token, which is added last. */
    const size_t target = (size_t)tr->params.vocab_size - 1;
    const size_t every = target > 256 + 100 ? (target - 256) / 100 : 1;
    dz_status st = state_init(&s, tr);
    report(tr, 0);
    heap_item best;
    while (!st && tr->vocab.n < target && pop_best(&s, &best) &&
           best.count >= tr->params.min_frequency) {
        int32_t a = (int32_t)(best.key >> 32), b = (int32_t)(uint32_t)best.key, c;
        if ((st = merged_token(tr, a, b, &c, &text, &text_cap))) break;
        if ((st = grow((void **)&tr->rules, &rules_cap, tr->n_rules + 1, sizeof *tr->rules))) break;
        tr->rules[tr->n_rules++] = (bpe_rule){.left = a, .right = b, .result = c};
        s.step++;
        /* The rewrites never add (a, b): take its word list as it is now. */
        pair_entry *e = &s.pairs[best.pair];
        int32_t *occ = e->occ;
        uint32_t occ_n = e->occ_n;
        e->occ = NULL;
        e->occ_n = e->occ_cap = 0;
        for (uint32_t k = 0; k < occ_n && !st; k++) {
            int32_t w = occ[k];
            if (s.word_stamp[w] == s.step) continue;
            s.word_stamp[w] = s.step;
            st = merge_word(&s, w, a, b, c);
        }
        free(occ);
        if (!st && s.pairs[best.pair].count != 0)
            st = dz_fail(DZ_ERR_INTERNAL, "merge %zu left %lld occurrences of its pair", tr->n_rules,
                         (long long)s.pairs[best.pair].count);
        if (!st) st = requeue_touched(&s);
        if (!st && tr->n_rules % every == 0) report(tr, best.count);
    }
    free(text);
    state_free(&s);
    return st;
}
