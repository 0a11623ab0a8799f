/* The paged KV cache (a pool of position blocks shared by sequences) and the
 * batched forward pass over several sequences: what continuous batching
 * runs at every step. Keys and values are written with SET_ROWS at the pool
 * rows of the new positions, and each query attends over the rows its
 * sequence's blocks give (PAGED_ATTENTION); everything else is the one-
 * sequence graph of forward.c over the concatenated tokens. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_impl.h"

struct dz_kv_pool {
    dz_model *model;
    int32_t n_blocks, block_size;
    dz_buffer *buf;
    dz_ctx *ctx;
    dz_tensor **k, **v;     /* per layer: (head_dim, n_head_kv, n_blocks * block_size) */
    int32_t *free_list;     /* free block ids, n_free of them */
    int32_t n_free;
    int32_t n_seqs;         /* live sequences */
    /* Prefix cache: a full block of a caching sequence is registered under the
     * hash of (previous block's hash, tenant, its tokens). A block is in use
     * (ref > 0), cached (ref 0, registered: in the LRU list, reusable by a
     * later sequence with the same prefix, evicted when blocks run short) or
     * free (ref 0, unregistered). */
    int32_t *ref;
    uint64_t *hash;         /* 0: unregistered */
    int32_t *lru_prev, *lru_next, lru_head, lru_tail, n_cached;
    uint64_t *blk_tenant;   /* a registered block's tenant, */
    int32_t *blk_parent;    /* the block before it in its sequence (-1: first), */
    int32_t *blk_tokens;    /* and its tokens (block_size each): a hash hit is trusted only when all match */
    uint64_t *map_keys;     /* hash -> block, linear probing; key 0 = empty */
    int32_t *map_vals, map_mask;
    uint64_t queries, hits; /* full blocks looked up, found */
};

struct dz_kv_seq {
    dz_kv_pool *pool;
    int32_t len;            /* positions written */
    int32_t *blocks;        /* block ids in position order, n_blocks of them */
    int32_t n_blocks, cap;
    bool caching;           /* its full blocks are registered in the prefix cache */
    uint64_t tenant, chain; /* chain: hash of its first n_hashed blocks */
    int32_t n_hashed;
    int32_t *tokens;        /* its tokens (caching sequences), len of them */
    int32_t tokens_cap;
};

/* ---- the prefix cache's pieces ---- */

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 29);
}

/* The hash of a block of tokens after prev, for tenant: never 0. */
static uint64_t block_hash(uint64_t prev, uint64_t tenant, const int32_t *tokens, int32_t n) {
    uint64_t h = mix(mix(prev, tenant), (uint64_t)n);
    for (int32_t i = 0; i < n; i++) h = mix(h, (uint64_t)(uint32_t)tokens[i]);
    return h ? h : 1;
}

static int32_t map_get(const dz_kv_pool *p, uint64_t key) {
    for (uint32_t i = (uint32_t)key & (uint32_t)p->map_mask;; i = (i + 1) & (uint32_t)p->map_mask) {
        if (p->map_keys[i] == 0) return -1;
        if (p->map_keys[i] == key) return p->map_vals[i];
    }
}

static void map_put(dz_kv_pool *p, uint64_t key, int32_t block) { /* key absent; never full (2x blocks) */
    uint32_t i = (uint32_t)key & (uint32_t)p->map_mask;
    while (p->map_keys[i] != 0) i = (i + 1) & (uint32_t)p->map_mask;
    p->map_keys[i] = key;
    p->map_vals[i] = block;
}

static void map_remove(dz_kv_pool *p, uint64_t key) { /* backward-shift deletion */
    const uint32_t mask = (uint32_t)p->map_mask;
    uint32_t i = (uint32_t)key & mask;
    while (p->map_keys[i] != key) {
        if (p->map_keys[i] == 0) return;
        i = (i + 1) & mask;
    }
    for (uint32_t j = (i + 1) & mask; p->map_keys[j] != 0; j = (j + 1) & mask) {
        const uint32_t home = (uint32_t)p->map_keys[j] & mask;
        /* j's entry may move to i when its home is not in (i, j] cyclically */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            p->map_keys[i] = p->map_keys[j];
            p->map_vals[i] = p->map_vals[j];
            i = j;
        }
    }
    p->map_keys[i] = 0;
}

static void lru_remove(dz_kv_pool *p, int32_t b) {
    if (p->lru_prev[b] >= 0) p->lru_next[p->lru_prev[b]] = p->lru_next[b];
    else p->lru_head = p->lru_next[b];
    if (p->lru_next[b] >= 0) p->lru_prev[p->lru_next[b]] = p->lru_prev[b];
    else p->lru_tail = p->lru_prev[b];
    p->n_cached--;
}

static void lru_push(dz_kv_pool *p, int32_t b) {
    p->lru_prev[b] = p->lru_tail;
    p->lru_next[b] = -1;
    if (p->lru_tail >= 0) p->lru_next[p->lru_tail] = b;
    else p->lru_head = b;
    p->lru_tail = b;
    p->n_cached++;
}

/* A block for new positions: a free one, else the least recently used cached one. */
static int32_t take_block(dz_kv_pool *p) {
    int32_t b;
    if (p->n_free > 0) {
        b = p->free_list[--p->n_free];
    } else {
        b = p->lru_head;
        lru_remove(p, b);
        map_remove(p, p->hash[b]);
        p->hash[b] = 0;
    }
    p->ref[b] = 1;
    return b;
}

static void release_block(dz_kv_pool *p, int32_t b) {
    if (--p->ref[b] > 0) return;
    if (p->hash[b]) lru_push(p, b);
    else p->free_list[p->n_free++] = b;
}

static int32_t available(const dz_kv_pool *p) { return p->n_free + p->n_cached; }

dz_status dz_kv_pool_create(dz_model *m, int32_t n_blocks, int32_t block_size, dz_kv_pool **out) {
    if (!m || !out) return dz_fail(DZ_ERR_ARG, "dz_kv_pool_create: NULL argument");
    if (block_size < 1 || block_size > 4096)
        return dz_fail(DZ_ERR_ARG, "KV block size %d must be in 1..4096", block_size);
    if (n_blocks < 1 || (int64_t)n_blocks * block_size > INT32_MAX)
        return dz_fail(DZ_ERR_ARG, "KV pool of %d blocks of %d positions: the count must be at least 1 and the "
                       "positions fit in 32 bits", n_blocks, block_size);
    const int64_t rows = (int64_t)n_blocks * block_size;
    dz_kv_pool *p = calloc(1, sizeof *p);
    if (!p) return dz_fail(DZ_ERR_NOMEM, "out of memory for the KV pool");
    p->model = m;
    p->n_blocks = n_blocks;
    p->block_size = block_size;
    p->free_list = malloc((size_t)n_blocks * sizeof *p->free_list);
    int32_t map_cap = 16;
    while (map_cap < 2 * n_blocks) map_cap *= 2;
    p->map_mask = map_cap - 1;
    p->ref = calloc((size_t)n_blocks, sizeof *p->ref);
    p->hash = calloc((size_t)n_blocks, sizeof *p->hash);
    p->lru_prev = malloc((size_t)n_blocks * sizeof *p->lru_prev);
    p->lru_next = malloc((size_t)n_blocks * sizeof *p->lru_next);
    p->blk_tenant = calloc((size_t)n_blocks, sizeof *p->blk_tenant);
    p->blk_parent = calloc((size_t)n_blocks, sizeof *p->blk_parent);
    p->blk_tokens = calloc((size_t)n_blocks * (size_t)block_size, sizeof *p->blk_tokens);
    p->map_keys = calloc((size_t)map_cap, sizeof *p->map_keys);
    p->map_vals = malloc((size_t)map_cap * sizeof *p->map_vals);
    p->lru_head = p->lru_tail = -1;
    dz_status st = DZ_OK;
    if (!p->free_list || !p->ref || !p->hash || !p->lru_prev || !p->lru_next || !p->map_keys || !p->map_vals ||
        !p->blk_tenant || !p->blk_parent || !p->blk_tokens)
        st = dz_fail(DZ_ERR_NOMEM, "out of memory for the KV pool");
    if (!st) st = dz_kv_tensors_create(m, rows, "pool", &p->ctx, &p->buf, &p->k, &p->v);
    if (st) {
        dz_kv_pool_free(p);
        return st;
    }
    for (int32_t b = 0; b < n_blocks; b++) p->free_list[b] = n_blocks - 1 - b; /* block 0 is taken first */
    p->n_free = n_blocks;
    *out = p;
    return DZ_OK;
}

void dz_kv_pool_free(dz_kv_pool *p) {
    if (!p) return;
    dz_buffer_free(p->buf);
    dz_ctx_destroy(p->ctx);
    free(p->k);
    free(p->v);
    free(p->free_list);
    free(p->ref);
    free(p->hash);
    free(p->lru_prev);
    free(p->lru_next);
    free(p->blk_tenant);
    free(p->blk_parent);
    free(p->blk_tokens);
    free(p->map_keys);
    free(p->map_vals);
    free(p);
}

int32_t dz_kv_pool_block_size(const dz_kv_pool *p) { return p->block_size; }
int32_t dz_kv_pool_n_blocks(const dz_kv_pool *p) { return p->n_blocks; }
int32_t dz_kv_pool_free_blocks(const dz_kv_pool *p) { return available(p); }
int32_t dz_kv_pool_cached_blocks(const dz_kv_pool *p) { return p->n_cached; }
void dz_kv_pool_prefix_stats(const dz_kv_pool *p, uint64_t *queries, uint64_t *hits) {
    if (queries) *queries = p->queries;
    if (hits) *hits = p->hits;
}
size_t dz_kv_pool_bytes(const dz_kv_pool *p) { return p->buf ? p->buf->size : 0; }

dz_status dz_kv_seq_create(dz_kv_pool *p, dz_kv_seq **out) {
    if (!p || !out) return dz_fail(DZ_ERR_ARG, "dz_kv_seq_create: NULL argument");
    dz_kv_seq *s = calloc(1, sizeof *s);
    if (!s) return dz_fail(DZ_ERR_NOMEM, "out of memory for a sequence");
    s->pool = p;
    p->n_seqs++;
    *out = s;
    return DZ_OK;
}

void dz_kv_seq_free(dz_kv_seq *s) {
    if (!s) return;
    dz_kv_pool *p = s->pool;
    for (int32_t i = s->n_blocks - 1; i >= 0; i--) release_block(p, s->blocks[i]);
    p->n_seqs--;
    free(s->blocks);
    free(s->tokens);
    free(s);
}

int32_t dz_kv_seq_len(const dz_kv_seq *s) { return s->len; }

/* Room in s's block table for n more blocks. */
static dz_status grow_block_table(dz_kv_seq *s, int32_t n) {
    if (s->n_blocks + n <= s->cap) return DZ_OK;
    int32_t cap = s->cap ? s->cap : 4;
    while (cap < s->n_blocks + n) cap *= 2;
    int32_t *b = realloc(s->blocks, (size_t)cap * sizeof *b);
    if (!b) return dz_fail(DZ_ERR_NOMEM, "out of memory for a block table");
    s->blocks = b;
    s->cap = cap;
    return DZ_OK;
}

/* Blocks seq needs beyond those it has to hold n more positions. */
static int32_t blocks_short(const dz_kv_seq *s, int32_t n) {
    const int64_t need = ((int64_t)s->len + n + s->pool->block_size - 1) / s->pool->block_size;
    return need > s->n_blocks ? (int32_t)(need - s->n_blocks) : 0;
}

dz_status dz_kv_seq_reserve(dz_kv_seq *s, int32_t n) {
    if (!s || n < 0) return dz_fail(DZ_ERR_ARG, "dz_kv_seq_reserve: NULL sequence or negative count");
    if ((int64_t)s->len + n > INT32_MAX) return dz_fail(DZ_ERR_ARG, "sequence length would overflow");
    dz_kv_pool *p = s->pool;
    const int32_t more = blocks_short(s, n);
    if (more == 0) return DZ_OK;
    if (more > available(p))
        return dz_fail(DZ_ERR_NOMEM, "KV pool exhausted: %d more blocks of %d positions needed, %d free", more,
                       p->block_size, available(p));
    const dz_status st = grow_block_table(s, more);
    if (st) return st;
    for (int32_t i = 0; i < more; i++) s->blocks[s->n_blocks++] = take_block(p);
    return DZ_OK;
}

/* Appends n tokens to s's record (caching sequences). */
static dz_status record_tokens(dz_kv_seq *s, const int32_t *tokens, int32_t n) {
    if (s->len + n > s->tokens_cap) {
        int32_t cap = s->tokens_cap ? s->tokens_cap : 64;
        while (cap < s->len + n) cap *= 2;
        int32_t *t = realloc(s->tokens, (size_t)cap * sizeof *t);
        if (!t) return dz_fail(DZ_ERR_NOMEM, "out of memory for a sequence's tokens");
        s->tokens = t;
        s->tokens_cap = cap;
    }
    memcpy(s->tokens + s->len, tokens, (size_t)n * sizeof *tokens);
    return DZ_OK;
}

/* Whether cached block b holds exactly these tokens of this tenant after
 * parent: a 64-bit hash match alone is never trusted across tenants. */
static bool block_matches(const dz_kv_pool *p, int32_t b, uint64_t tenant, int32_t parent, const int32_t *tokens) {
    const size_t B = (size_t)p->block_size;
    return p->blk_tenant[b] == tenant && p->blk_parent[b] == parent &&
           memcmp(p->blk_tokens + (size_t)b * B, tokens, B * sizeof *tokens) == 0;
}

/* Registers s's newly full blocks in the prefix cache (a block whose hash
 * another block already holds stays unregistered; the chain goes on). */
static void register_full_blocks(dz_kv_seq *s) {
    dz_kv_pool *p = s->pool;
    const int32_t B = p->block_size;
    while ((s->n_hashed + 1) * B <= s->len) {
        const uint64_t h = block_hash(s->chain, s->tenant, s->tokens + (size_t)s->n_hashed * (size_t)B, B);
        const int32_t b = s->blocks[s->n_hashed];
        if (p->hash[b] == 0 && map_get(p, h) < 0) {
            p->hash[b] = h;
            p->blk_tenant[b] = s->tenant;
            p->blk_parent[b] = s->n_hashed > 0 ? s->blocks[s->n_hashed - 1] : -1;
            memcpy(p->blk_tokens + (size_t)b * (size_t)B, s->tokens + (size_t)s->n_hashed * (size_t)B,
                   (size_t)B * sizeof *p->blk_tokens);
            map_put(p, h, b);
        }
        s->chain = h;
        s->n_hashed++;
    }
}

dz_status dz_kv_seq_create_cached(dz_kv_pool *p, uint64_t tenant, const int32_t *tokens, int32_t n,
                                  dz_kv_seq **out, int32_t *n_cached) {
    if (!p || !out || (n > 0 && !tokens) || n < 0)
        return dz_fail(DZ_ERR_ARG, "dz_kv_seq_create_cached: NULL argument or negative count");
    dz_kv_seq *s = NULL;
    dz_status st = dz_kv_seq_create(p, &s);
    if (st) return st;
    s->caching = true;
    s->tenant = tenant;
    const int32_t B = p->block_size, full = n > 0 ? (n - 1) / B : 0; /* the last token is always computed */
    for (int32_t i = 0; i < full; i++) {
        const uint64_t h = block_hash(s->chain, tenant, tokens + (size_t)i * (size_t)B, B);
        p->queries++;
        const int32_t b = map_get(p, h);
        if (b < 0 || !block_matches(p, b, tenant, i > 0 ? s->blocks[i - 1] : -1, tokens + (size_t)i * (size_t)B))
            break;
        st = grow_block_table(s, 1);
        if (!st) st = record_tokens(s, tokens + (size_t)i * (size_t)B, B);
        if (st) {
            dz_kv_seq_free(s);
            return st;
        }
        p->hits++;
        if (p->ref[b]++ == 0) lru_remove(p, b);
        s->blocks[s->n_blocks++] = b;
        s->chain = h;
        s->n_hashed++;
        s->len += B;
    }
    *out = s;
    if (n_cached) *n_cached = s->len;
    return DZ_OK;
}

/* Pool row of position pos of s (its block must exist). */
static int32_t row_of(const dz_kv_seq *s, int32_t pos) {
    const int32_t B = s->pool->block_size;
    return s->blocks[pos / B] * B + pos % B;
}

/* ---- the batched forward ---- */

enum { MAX_POSITIONS = 1 << 24 }; /* per sequence */

typedef struct batch_inputs {
    dz_tensor *ids, *pos, *slots, *index, *last;
} batch_inputs;

/* The graph of one batched pass: T new tokens, index rows of W, n_items
 * outputs; *logits_out is (n_vocab, n_items). */
static dz_graph *build_batch_graph(dz_model *m, dz_kv_pool *pool, int32_t T, int32_t W, int32_t n_items,
                                   batch_inputs *in, dz_tensor **logits_out) {
    const dz_model_hparams *hp = &m->hp;
    dz_ctx *ctx = m->gctx;
    const int32_t hd = hp->head_dim;
    const float kq_scale = 1.0f / sqrtf((float)hd);
    in->ids = dz_new_tensor_1d(ctx, DZ_TYPE_I32, T);
    in->pos = dz_new_tensor_1d(ctx, DZ_TYPE_I32, T);
    in->slots = dz_new_tensor_1d(ctx, DZ_TYPE_I32, T);
    in->index = dz_new_tensor_2d(ctx, DZ_TYPE_I32, W, T);
    in->last = dz_new_tensor_1d(ctx, DZ_TYPE_I32, n_items);
    dz_set_input(in->ids);
    dz_set_input(in->pos);
    dz_set_input(in->slots);
    dz_set_input(in->index);
    dz_set_input(in->last);
    dz_tensor *x = dz_model_input(ctx, m, in->ids, in->pos); /* (n_embd, T) */
    dz_graph *g = NULL;
    for (int32_t il = 0; il < hp->n_layer; il++) {
        const dz_layer *l = &m->layers[il];
        dz_tensor *q, *k, *v;
        dz_layer_qkv(ctx, m, l, x, in->pos, T, &q, &k, &v);
        const int64_t kv_width = (int64_t)hp->head_dim * hp->n_head_kv, rows = pool->k[il]->ne[2];
        if (!dz_graph_add_stores(ctx, &g,
                                 dz_set_rows(ctx, dz_reshape_2d(ctx, pool->k[il], kv_width, rows),
                                             dz_reshape_2d(ctx, k, kv_width, T), in->slots),
                                 dz_set_rows(ctx, dz_reshape_2d(ctx, pool->v[il], kv_width, rows),
                                             dz_reshape_2d(ctx, v, kv_width, T), in->slots)))
            return NULL;
        x = dz_layer_finish(ctx, m, l, x, dz_paged_attention(ctx, q, pool->k[il], pool->v[il], in->index, kq_scale));
    }
    x = dz_get_rows(ctx, x, in->last); /* each item's last token */
    x = dz_model_norm(ctx, m, x, m->output_norm, m->output_norm_b);
    dz_tensor *logits = dz_mul_mat(ctx, m->output, x);
    dz_set_output(logits);
    if (dz_graph_expand(ctx, g, logits)) return NULL;
    *logits_out = logits;
    return g;
}

static dz_status check_items(const dz_model *m, const dz_kv_pool *pool, const dz_batch_item *items,
                             int32_t n_items, int64_t *T, int64_t *W) {
    *T = 0;
    *W = 2;
    int32_t more = 0;
    for (int32_t i = 0; i < n_items; i++) {
        const dz_batch_item *it = &items[i];
        if (!it->seq || !it->tokens || it->n < 1)
            return dz_fail(DZ_ERR_ARG, "batch item %d: no sequence, no tokens or a count below 1", i);
        if (it->seq->pool != pool) return dz_fail(DZ_ERR_ARG, "batch item %d: the sequence is another pool's", i);
        for (int32_t j = 0; j < i; j++)
            if (items[j].seq == it->seq) return dz_fail(DZ_ERR_ARG, "batch items %d and %d share a sequence", j, i);
        for (int32_t j = 0; j < it->n; j++)
            if (it->tokens[j] < 0 || it->tokens[j] >= m->hp.n_vocab)
                return dz_fail(DZ_ERR_ARG, "batch item %d: token id %d at index %d is outside the vocabulary (0..%d)",
                               i, it->tokens[j], j, m->hp.n_vocab - 1);
        const int64_t len = (int64_t)it->seq->len + it->n;
        if (len > MAX_POSITIONS)
            return dz_fail(DZ_ERR_ARG, "batch item %d: %lld positions are more than %d", i, (long long)len,
                           MAX_POSITIONS);
        const dz_status st = dz_model_check_positions(m, it->seq->len, it->n);
        if (st) return dz_error_prefix(st, "batch item %d: ", i);
        *T += it->n;
        if (len + 1 > *W) *W = len + 1;
        more += blocks_short(it->seq, it->n);
    }
    if (*T > INT32_MAX / 4 || *W * *T > (int64_t)1 << 30)
        return dz_fail(DZ_ERR_ARG, "a batch of %lld tokens over up to %lld positions is too large", (long long)*T,
                       (long long)(*W - 1));
    if (more > available(pool))
        return dz_fail(DZ_ERR_NOMEM, "KV pool exhausted: %d more blocks of %d positions needed, %d free", more,
                       pool->block_size, available(pool));
    return DZ_OK;
}

/* Fills the inputs' host copies: ids, positions, pool rows, index, last rows. */
static void fill_inputs(const dz_batch_item *items, int32_t n_items, int32_t W, int32_t *ids, int32_t *pos,
                        int32_t *slots, int32_t *index, int32_t *last) {
    int32_t t = 0;
    for (int32_t i = 0; i < n_items; i++) {
        const dz_kv_seq *s = items[i].seq;
        for (int32_t j = 0; j < items[i].n; j++, t++) {
            const int32_t p = s->len + j;
            ids[t] = items[i].tokens[j];
            pos[t] = p;
            slots[t] = row_of(s, p);
            int32_t *row = index + (size_t)t * (size_t)W;
            row[0] = p + 1;
            for (int32_t q = 0; q <= p; q++) row[1 + q] = row_of(s, q);
            for (int32_t q = p + 1; q < W - 1; q++) row[1 + q] = 0; /* unused */
        }
        last[i] = t - 1;
    }
}

dz_status dz_model_forward_batch(dz_model *m, dz_kv_pool *pool, const dz_batch_item *items, int32_t n_items,
                                 float *logits) {
    if (!m || !pool || !items || !logits) return dz_fail(DZ_ERR_ARG, "dz_model_forward_batch: NULL argument");
    if (pool->model != m) return dz_fail(DZ_ERR_ARG, "the KV pool belongs to another model");
    if (n_items < 1) return dz_fail(DZ_ERR_ARG, "an empty batch");
    int64_t T64, W64;
    dz_status st = check_items(m, pool, items, n_items, &T64, &W64);
    if (st) return st;
    for (int32_t i = 0; i < n_items; i++) { /* cannot fail: the blocks were counted */
        st = dz_kv_seq_reserve(items[i].seq, items[i].n);
        if (st) return st;
    }
    const int32_t T = (int32_t)T64, W = (int32_t)W64;

    const dz_model_hparams *hp = &m->hp;
    st = dz_model_graph_ctx(m);
    if (st) return st;
    batch_inputs in;
    dz_tensor *out = NULL;
    dz_graph *g = build_batch_graph(m, pool, T, W, n_items, &in, &out);
    if (!g) {
        st = dz_ctx_status(m->gctx);
        return dz_fail(st ? st : DZ_ERR_INTERNAL, "building the batched forward graph: %s", dz_ctx_error(m->gctx));
    }
    st = dz_sched_alloc(m->sched, g);
    if (st) return st;
    const size_t n_index = (size_t)W * (size_t)T;
    int32_t *host = malloc((3 * (size_t)T + n_index + (size_t)n_items) * sizeof *host);
    if (!host) return dz_fail(DZ_ERR_NOMEM, "out of memory for the batch inputs");
    int32_t *ids = host, *pos = ids + T, *slots = pos + T, *index = slots + T, *last = index + n_index;
    fill_inputs(items, n_items, W, ids, pos, slots, index, last);
    st = dz_tensor_write(in.ids, ids, 0, (size_t)T * sizeof *ids);
    if (!st) st = dz_tensor_write(in.pos, pos, 0, (size_t)T * sizeof *pos);
    if (!st) st = dz_tensor_write(in.slots, slots, 0, (size_t)T * sizeof *slots);
    if (!st) st = dz_tensor_write(in.index, index, 0, n_index * sizeof *index);
    if (!st) st = dz_tensor_write(in.last, last, 0, (size_t)n_items * sizeof *last);
    free(host);
    if (!st) st = dz_sched_compute(m->sched, g);
    if (!st) st = dz_tensor_read(out, logits, 0, (size_t)n_items * (size_t)hp->n_vocab * sizeof(float));
    if (st) return st;
    for (int32_t i = 0; i < n_items; i++) { /* token records first: no length changes on failure */
        dz_kv_seq *s = items[i].seq;
        if (s->caching && (st = record_tokens(s, items[i].tokens, items[i].n)) != DZ_OK) return st;
    }
    for (int32_t i = 0; i < n_items; i++) {
        dz_kv_seq *s = items[i].seq;
        s->len += items[i].n;
        if (s->caching) register_full_blocks(s);
    }
    return DZ_OK;
}
