/* The paged KV cache and the batched forward pass (continuous batching):
 * sequences that join a running batch at different steps, in a pool of
 * small blocks, must produce what each produces alone through the
 * one-sequence path (dz_model_forward, contiguous cache, ATTENTION). On the
 * reference device every sum is the same, so the logits must be identical
 * bit for bit; on the fast device the float matmul kernel depends on the
 * batch width, so the logits must agree closely and the greedy tokens
 * exactly. Also: pool accounting, exhaustion and bad batches change
 * nothing, and the prefix cache. Model: ../shared/models/stories260K.gguf. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/model.h"
#include "dztest.h"

enum { N_SEQ = 4, STEPS = 24, MAX_TOK = 64 };

/* Prompts of different lengths (token ids of stories260K's vocabulary). */
static const int32_t prompts[N_SEQ][8] = {
    {1, 403, 407, 261, 378},
    {1, 365, 1, 2, 3, 4, 5, 6},
    {1, 300},
    {1, 403, 407, 261, 378, 300, 301},
};
static const int32_t prompt_len[N_SEQ] = {5, 8, 2, 7};

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

typedef struct solo {
    int32_t tokens[STEPS];
    float *logits; /* STEPS x n_vocab */
} solo;

/* Greedy STEPS tokens of prompt s alone: the one-sequence path. */
static void run_solo(dz_model *m, int s, solo *out) {
    const int32_t n_vocab = dz_model_hparams_get(m)->n_vocab;
    dz_kv_cache *kv = NULL;
    DZT_OK(dz_kv_cache_create(m, MAX_TOK, &kv));
    out->logits = calloc((size_t)STEPS * (size_t)n_vocab, sizeof(float));
    if (!kv || !out->logits) return;
    int32_t n_past = 0, tok = 0;
    for (int step = 0; step < STEPS; step++) {
        float *lg = out->logits + (size_t)step * (size_t)n_vocab;
        if (step == 0) {
            DZT_OK(dz_model_forward(m, kv, prompts[s], prompt_len[s], 0, lg, false));
            n_past = prompt_len[s];
        } else {
            DZT_OK(dz_model_forward(m, kv, &tok, 1, n_past, lg, false));
            n_past++;
        }
        tok = out->tokens[step] = argmax(lg, n_vocab);
    }
    dz_kv_cache_free(kv);
}

/* Sequence s joins at step s; every step runs one batch of all live
 * sequences (a prompt for the newcomer, one token for the others). */
static void run_batched(dz_model *m, const char *device, int block_size, solo solos[N_SEQ], bool exact) {
    const int32_t n_vocab = dz_model_hparams_get(m)->n_vocab;
    dz_kv_pool *pool = NULL;
    DZT_OK(dz_kv_pool_create(m, (160 + block_size - 1) / block_size, block_size, &pool)); /* room for all */
    if (!pool) return;
    const int32_t n_blocks = dz_kv_pool_n_blocks(pool);
    dz_kv_seq *seqs[N_SEQ] = {0};
    int32_t next[N_SEQ], done[N_SEQ] = {0};
    float *logits = malloc((size_t)N_SEQ * (size_t)n_vocab * sizeof(float));
    double worst = 0.0;
    int mismatched = 0;
    for (int step = 0; step < STEPS + N_SEQ - 1 && logits; step++) {
        dz_batch_item items[N_SEQ];
        int who[N_SEQ], n = 0;
        for (int s = 0; s < N_SEQ; s++) {
            if (step < s || done[s] >= STEPS) continue;
            if (step == s) {
                DZT_OK(dz_kv_seq_create(pool, &seqs[s]));
                items[n] = (dz_batch_item){seqs[s], prompts[s], prompt_len[s]};
            } else {
                items[n] = (dz_batch_item){seqs[s], &next[s], 1};
            }
            who[n++] = s;
        }
        if (n == 0) break;
        DZT_OK(dz_model_forward_batch(m, pool, items, n, logits));
        for (int i = 0; i < n; i++) {
            const int s = who[i];
            const float *got = logits + (size_t)i * (size_t)n_vocab;
            const float *want = solos[s].logits + (size_t)done[s] * (size_t)n_vocab;
            if (exact) {
                if (memcmp(got, want, (size_t)n_vocab * sizeof(float)) != 0) mismatched++;
            } else {
                for (int32_t v = 0; v < n_vocab; v++) {
                    const double d = fabs((double)got[v] - (double)want[v]);
                    if (d > worst) worst = d;
                }
            }
            next[s] = argmax(got, n_vocab);
            DZT_CHECK(next[s] == solos[s].tokens[done[s]], "%s, blocks of %d: sequence %d step %d: token %d, alone %d",
                      device, block_size, s, done[s], next[s], solos[s].tokens[done[s]]);
            done[s]++;
            /* the prompt, then one position per generated token but the newest */
            DZT_EQ_INT(dz_kv_seq_len(seqs[s]), prompt_len[s] + done[s] - 1);
        }
    }
    if (exact)
        DZT_CHECK(mismatched == 0, "%s, blocks of %d: %d steps' logits differ from the one-sequence path", device,
                  block_size, mismatched);
    else
        DZT_CHECK(worst <= 1e-4, "%s, blocks of %d: logits differ from the one-sequence path by up to %g", device,
                  block_size, worst);
    for (int s = 0; s < N_SEQ; s++) dz_kv_seq_free(seqs[s]);
    DZT_EQ_INT(dz_kv_pool_free_blocks(pool), n_blocks); /* every block came back */
    free(logits);
    dz_kv_pool_free(pool);
}

/* Exhaustion and bad batches leave lengths and the pool as they were. */
static void test_refusals(dz_model *m) {
    const int32_t n_vocab = dz_model_hparams_get(m)->n_vocab;
    dz_kv_pool *pool = NULL;
    DZT_OK(dz_kv_pool_create(m, 2, 4, &pool)); /* 8 positions in all */
    if (!pool) return;
    dz_kv_seq *a = NULL, *b = NULL;
    DZT_OK(dz_kv_seq_create(pool, &a));
    DZT_OK(dz_kv_seq_create(pool, &b));
    float *logits = malloc(2 * (size_t)n_vocab * sizeof(float));
    DZT_OK(dz_model_forward_batch(m, pool, &(dz_batch_item){a, prompts[3], 7}, 1, logits));
    DZT_EQ_INT(dz_kv_seq_len(a), 7);
    DZT_EQ_INT(dz_kv_pool_free_blocks(pool), 0);
    /* b needs a block: none is free */
    DZT_FAILS(dz_model_forward_batch(m, pool, &(dz_batch_item){b, prompts[2], 2}, 1, logits), DZ_ERR_NOMEM);
    DZT_FAILS(dz_kv_seq_reserve(b, 1), DZ_ERR_NOMEM);
    DZT_EQ_INT(dz_kv_seq_len(b), 0);
    /* a has one position left in its last block; two do not fit */
    const int32_t two[2] = {5, 6};
    DZT_FAILS(dz_model_forward_batch(m, pool, &(dz_batch_item){a, two, 2}, 1, logits), DZ_ERR_NOMEM);
    DZT_EQ_INT(dz_kv_seq_len(a), 7);
    /* bad token, shared sequence, empty item */
    const int32_t bad = n_vocab;
    DZT_FAILS(dz_model_forward_batch(m, pool, &(dz_batch_item){a, &bad, 1}, 1, logits), DZ_ERR_ARG);
    dz_batch_item twice[2] = {{a, two, 1}, {a, two + 1, 1}};
    DZT_FAILS(dz_model_forward_batch(m, pool, twice, 2, logits), DZ_ERR_ARG);
    DZT_FAILS(dz_model_forward_batch(m, pool, &(dz_batch_item){a, two, 0}, 1, logits), DZ_ERR_ARG);
    DZT_EQ_INT(dz_kv_seq_len(a), 7);
    DZT_OK(dz_model_forward_batch(m, pool, &(dz_batch_item){a, two, 1}, 1, logits)); /* the last position */
    DZT_EQ_INT(dz_kv_seq_len(a), 8);
    dz_kv_seq_free(a);
    DZT_EQ_INT(dz_kv_pool_free_blocks(pool), 2);
    DZT_OK(dz_model_forward_batch(m, pool, &(dz_batch_item){b, prompts[2], 2}, 1, logits)); /* now it fits */
    dz_kv_seq_free(b);
    free(logits);
    dz_kv_pool_free(pool);
    DZT_FAILS(dz_kv_pool_create(m, 0, 16, &pool), DZ_ERR_ARG);
    DZT_FAILS(dz_kv_pool_create(m, 4, 0, &pool), DZ_ERR_ARG);
}

/* The prefix cache: a later sequence of the same tenant starts after the
 * full blocks an earlier one computed, with bit-identical logits (cpu-ref);
 * another tenant shares nothing; cached blocks are evicted when needed. */
static void test_prefix_cache(dz_model *m) {
    const int32_t n_vocab = dz_model_hparams_get(m)->n_vocab;
    const int32_t P[13] = {1, 403, 407, 261, 378, 300, 301, 302, 303, 304, 305, 306, 307};
    float *la = malloc((size_t)n_vocab * sizeof(float)), *lb = malloc((size_t)n_vocab * sizeof(float));
    dz_kv_pool *pool = NULL;
    DZT_OK(dz_kv_pool_create(m, 64, 4, &pool));
    if (!pool || !la || !lb) return;
    dz_kv_seq *a = NULL, *b = NULL, *c = NULL;
    int32_t cached = -1;
    DZT_OK(dz_kv_seq_create_cached(pool, 1, P, 13, &a, &cached));
    DZT_EQ_INT(cached, 0);
    DZT_OK(dz_model_forward_batch(m, pool, &(dz_batch_item){a, P, 13}, 1, la));
    for (int i = 0; i < 3; i++) { /* grow to 16 positions: 4 full blocks */
        const int32_t t = 400 + i;
        DZT_OK(dz_model_forward_batch(m, pool, &(dz_batch_item){a, &t, 1}, 1, lb));
    }
    dz_kv_seq_free(a);
    DZT_EQ_INT(dz_kv_pool_cached_blocks(pool), 4);
    DZT_EQ_INT(dz_kv_pool_free_blocks(pool), 64);
    /* same tenant, same prompt: 3 full blocks (the last token is computed) */
    DZT_OK(dz_kv_seq_create_cached(pool, 1, P, 13, &b, &cached));
    DZT_EQ_INT(cached, 12);
    DZT_EQ_INT(dz_kv_seq_len(b), 12);
    DZT_EQ_INT(dz_kv_pool_cached_blocks(pool), 1); /* three in use again */
    DZT_OK(dz_model_forward_batch(m, pool, &(dz_batch_item){b, P + 12, 1}, 1, lb));
    DZT_CHECK(memcmp(la, lb, (size_t)n_vocab * sizeof(float)) == 0,
              "logits after a cached prefix differ from the full computation");
    /* another tenant shares nothing */
    DZT_OK(dz_kv_seq_create_cached(pool, 2, P, 13, &c, &cached));
    DZT_EQ_INT(cached, 0);
    uint64_t queries = 0, hits = 0;
    dz_kv_pool_prefix_stats(pool, &queries, &hits);
    DZT_EQ_INT((long long)hits, 3);
    DZT_EQ_INT((long long)queries, 5); /* a lookup stops at the first miss: 1 + 3 + 1 */
    dz_kv_seq_free(b);
    dz_kv_seq_free(c);
    /* eviction: a sequence that needs every block takes the cached ones */
    dz_kv_seq *d = NULL;
    DZT_OK(dz_kv_seq_create(pool, &d));
    DZT_OK(dz_kv_seq_reserve(d, 64 * 4));
    DZT_EQ_INT(dz_kv_pool_free_blocks(pool), 0);
    DZT_EQ_INT(dz_kv_pool_cached_blocks(pool), 0);
    dz_kv_seq_free(d);
    DZT_OK(dz_kv_seq_create_cached(pool, 1, P, 13, &b, &cached));
    DZT_EQ_INT(cached, 0); /* evicted */
    dz_kv_seq_free(b);
    DZT_EQ_INT(dz_kv_pool_free_blocks(pool), 64);
    dz_kv_pool_free(pool);
    free(la);
    free(lb);
}

/* Random prompts over a tiny alphabet (many shared prefixes), two tenants,
 * a small pool (constant eviction), sequences kept alive for a while: every
 * result through the prefix cache equals the uncached computation. */
static void test_prefix_stress(dz_model *m) {
    const int32_t n_vocab = dz_model_hparams_get(m)->n_vocab;
    float *l1 = malloc((size_t)n_vocab * sizeof(float)), *l2 = malloc((size_t)n_vocab * sizeof(float));
    dz_kv_pool *pool = NULL, *plain = NULL;
    DZT_OK(dz_kv_pool_create(m, 40, 2, &pool));
    DZT_OK(dz_kv_pool_create(m, 16, 2, &plain));
    if (!pool || !plain || !l1 || !l2) return;
    dz_kv_seq *alive[3] = {0};
    uint64_t rng = 12345;
    int mismatches = 0;
    for (int it = 0; it < 200; it++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        const int32_t n = 1 + (int32_t)((rng >> 33) % 20);
        const uint64_t tenant = 1 + (rng >> 20) % 2;
        int32_t prompt[20];
        prompt[0] = 1;
        for (int32_t i = 1; i < n; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            prompt[i] = 300 + (int32_t)((rng >> 40) % 2);
        }
        const int slot = it % 3;
        dz_kv_seq_free(alive[slot]); /* at most three alive */
        alive[slot] = NULL;
        int32_t cached = 0;
        DZT_OK(dz_kv_seq_create_cached(pool, tenant, prompt, n, &alive[slot], &cached));
        if (!alive[slot]) break;
        DZT_OK(dz_model_forward_batch(m, pool, &(dz_batch_item){alive[slot], prompt + cached, n - cached}, 1, l1));
        dz_kv_seq *s = NULL;
        DZT_OK(dz_kv_seq_create(plain, &s));
        DZT_OK(dz_model_forward_batch(m, plain, &(dz_batch_item){s, prompt, n}, 1, l2));
        dz_kv_seq_free(s);
        if (memcmp(l1, l2, (size_t)n_vocab * sizeof(float)) != 0) mismatches++;
    }
    DZT_CHECK(mismatches == 0, "%d of 200 cached computations differ from the uncached ones", mismatches);
    uint64_t queries = 0, hits = 0;
    dz_kv_pool_prefix_stats(pool, &queries, &hits);
    DZT_CHECK(hits > 20 && hits < queries, "prefix cache: %llu hits of %llu lookups", (unsigned long long)hits,
              (unsigned long long)queries);
    for (int i = 0; i < 3; i++) dz_kv_seq_free(alive[i]);
    DZT_EQ_INT(dz_kv_pool_free_blocks(pool), 40);
    dz_kv_pool_free(pool);
    dz_kv_pool_free(plain);
    free(l1);
    free(l2);
}

int main(void) {
    char *path = dzt_shared("models/stories260K.gguf");
    const char *devices[2] = {"cpu-ref", "cpu"};
    for (int d = 0; d < 2; d++) {
        dz_model *m = NULL;
        DZT_OK(dz_model_load(path, &(dz_model_options){.device = devices[d], .n_threads = 2}, &m));
        if (!m) break;
        solo solos[N_SEQ];
        for (int s = 0; s < N_SEQ; s++) run_solo(m, s, &solos[s]);
        const int blocks[3] = {16, 3, 1};
        for (int b = 0; b < 3; b++) run_batched(m, devices[d], blocks[b], solos, d == 0);
        if (d == 0) {
            test_refusals(m);
            test_prefix_cache(m);
            test_prefix_stress(m);
        }
        for (int s = 0; s < N_SEQ; s++) free(solos[s].logits);
        dz_model_free(m);
    }
    free(path);
    return dzt_done();
}
