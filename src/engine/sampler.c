/* Token sampling: logit bias, penalties, greedy or top-k / top-p / min-p /
 * temperature with a seeded RNG. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/engine.h"

struct dz_sampler {
    dz_sampler_params p;
    dz_logit_bias *bias;
    int32_t n_vocab;
    int32_t *history; /* ring of the last `cap` accepted tokens */
    int32_t cap, len, head;
    int32_t *counts;  /* per-token count inside the window, built per call */
    struct candidate { int32_t id; float logit; float prob; } *cand;
    dz_rng rng;
};

/* ---- RNG ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void dz_rng_seed(dz_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t dz_rng_next(dz_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double dz_rng_uniform(dz_rng *r) { return (double)(dz_rng_next(r) >> 11) * 0x1.0p-53; }

/* ---- parameters ---- */

dz_sampler_params dz_sampler_defaults(void) {
    dz_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = 0xD120;
    return p;
}

static dz_status check_params(const dz_sampler_params *p, int32_t n_vocab) {
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return dz_fail(DZ_ERR_ARG, "temperature %g must be >= 0", p->temperature);
    if (!(p->top_p > 0) || !isfinite(p->top_p))
        return dz_fail(DZ_ERR_ARG, "top_p %g must be in (0, 1]", p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return dz_fail(DZ_ERR_ARG, "min_p %g must be in [0, 1]", p->min_p);
    if (!(p->repeat_penalty > 0) || !isfinite(p->repeat_penalty))
        return dz_fail(DZ_ERR_ARG, "repeat penalty %g must be > 0", p->repeat_penalty);
    if (!isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty))
        return dz_fail(DZ_ERR_ARG, "frequency and presence penalties must be finite");
    if (p->repeat_last_n < -1)
        return dz_fail(DZ_ERR_ARG, "repeat_last_n %d must be >= -1", p->repeat_last_n);
    if (p->n_logit_bias < 0 || (p->n_logit_bias > 0 && !p->logit_bias))
        return dz_fail(DZ_ERR_ARG, "logit bias list is malformed");
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        const dz_logit_bias *b = &p->logit_bias[i];
        if (b->token < 0 || b->token >= n_vocab)
            return dz_fail(DZ_ERR_ARG, "logit bias for token %d: outside the vocabulary (0..%d)",
                           b->token, n_vocab - 1);
        if (isnan(b->bias) || b->bias == INFINITY)
            return dz_fail(DZ_ERR_ARG, "logit bias for token %d must be a number or -inf", b->token);
    }
    return DZ_OK;
}

dz_status dz_sampler_create(const dz_sampler_params *p, int32_t n_vocab, dz_sampler **out) {
    if (n_vocab < 1) return dz_fail(DZ_ERR_ARG, "vocabulary size %d", n_vocab);
    dz_status st = check_params(p, n_vocab);
    if (st) return st;
    dz_sampler *s = calloc(1, sizeof *s);
    if (!s) return dz_fail(DZ_ERR_NOMEM, "out of memory for the sampler");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->cap = p->repeat_last_n < 0 ? 1 << 16 : p->repeat_last_n;
    s->history = malloc((size_t)(s->cap > 0 ? s->cap : 1) * sizeof *s->history);
    s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    if (p->n_logit_bias > 0) {
        s->bias = malloc((size_t)p->n_logit_bias * sizeof *s->bias);
        if (s->bias) memcpy(s->bias, p->logit_bias, (size_t)p->n_logit_bias * sizeof *s->bias);
    }
    s->p.logit_bias = s->bias;
    if (!s->history || !s->counts || !s->cand || (p->n_logit_bias > 0 && !s->bias)) {
        dz_sampler_free(s);
        return dz_fail(DZ_ERR_NOMEM, "out of memory for the sampler");
    }
    dz_rng_seed(&s->rng, p->seed);
    *out = s;
    return DZ_OK;
}

void dz_sampler_free(dz_sampler *s) {
    if (!s) return;
    free(s->history);
    free(s->counts);
    free(s->cand);
    free(s->bias);
    free(s);
}

void dz_sampler_reset(dz_sampler *s) {
    s->len = s->head = 0;
    dz_rng_seed(&s->rng, s->p.seed);
}

void dz_sampler_accept(dz_sampler *s, int32_t token) {
    if (s->cap <= 0 || token < 0 || token >= s->n_vocab) return;
    s->history[s->head] = token;
    s->head = (s->head + 1) % s->cap;
    if (s->len < s->cap) s->len++;
}

/* ---- sampling ---- */

static void apply_penalties(dz_sampler *s, float *logits) {
    const dz_sampler_params *p = &s->p;
    bool active = p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f ||
                  p->presence_penalty != 0.0f;
    if (!active || s->len == 0) return;
    for (int32_t i = 0; i < s->len; i++) s->counts[s->history[i]]++;
    for (int32_t i = 0; i < s->len; i++) {
        int32_t t = s->history[i], c = s->counts[t];
        if (c == 0) continue; /* already penalised */
        float l = logits[t];
        l = l <= 0 ? l * p->repeat_penalty : l / p->repeat_penalty;
        logits[t] = l - (float)c * p->frequency_penalty - p->presence_penalty;
        s->counts[t] = 0;
    }
}

static int by_logit_desc(const void *a, const void *b) {
    const struct candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id; /* ties: lower id first, so results are deterministic */
}

/* Whether candidate a comes before b in by_logit_desc's order. */
static bool before(const struct candidate *a, const struct candidate *b) {
    return a->logit != b->logit ? a->logit > b->logit : a->id < b->id;
}

/* Moves the k first candidates of c[0..n) in by_logit_desc's order to
 * c[0..k), sorted: a heap of the k best so far whose root is the worst of
 * them, O(n log k) instead of sorting everything. */
static void select_top(struct candidate *c, int32_t n, int32_t k) {
    for (int32_t i = 0; i < n; i++) {
        if (i >= k && !before(&c[i], &c[0])) continue;
        int32_t j;
        if (i < k) { /* grow the heap: sift up */
            const struct candidate x = c[i];
            for (j = i; j > 0 && before(&c[(j - 1) / 2], &x); j = (j - 1) / 2) c[j] = c[(j - 1) / 2];
            c[j] = x;
            continue;
        }
        const struct candidate x = c[i]; /* replace the root: sift down */
        for (j = 0;;) {
            int32_t w = 2 * j + 1;
            if (w >= k) break;
            if (w + 1 < k && before(&c[w], &c[w + 1])) w++;
            if (!before(&x, &c[w])) break;
            c[j] = c[w];
            j = w;
        }
        c[j] = x;
    }
    qsort(c, (size_t)k, sizeof *c, by_logit_desc);
}

/* A draw from softmax(logits / temperature) over every candidate, in id
 * order: what the sorted path gives when nothing truncates, without the sort. */
static int32_t sample_full(dz_sampler *s, int32_t n) {
    const float t = s->p.temperature;
    float mx = s->cand[0].logit;
    for (int32_t i = 1; i < n; i++) mx = s->cand[i].logit > mx ? s->cand[i].logit : mx;
    double sum = 0;
    for (int32_t i = 0; i < n; i++) sum += (s->cand[i].prob = expf((s->cand[i].logit - mx) / t));
    double r = dz_rng_uniform(&s->rng) * sum, cum = 0;
    for (int32_t i = 0; i < n; i++) {
        cum += s->cand[i].prob;
        if (r < cum) return s->cand[i].id;
    }
    return s->cand[n - 1].id;
}

static int32_t argmax(const float *logits, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

/* Softmax over the first n candidates (sorted, descending) into .prob. */
static void softmax_candidates(struct candidate *c, int32_t n) {
    double sum = 0;
    for (int32_t i = 0; i < n; i++) sum += (c[i].prob = expf(c[i].logit - c[0].logit));
    for (int32_t i = 0; i < n; i++) c[i].prob = (float)(c[i].prob / sum);
}

int32_t dz_sampler_sample(dz_sampler *s, float *logits) {
    const dz_sampler_params *p = &s->p;
    for (int32_t i = 0; i < p->n_logit_bias; i++) logits[s->bias[i].token] += s->bias[i].bias;
    apply_penalties(s, logits);
    if (p->temperature <= 0) return argmax(logits, s->n_vocab);

    int32_t n = 0;
    for (int32_t i = 0; i < s->n_vocab; i++)
        if (logits[i] > -INFINITY) s->cand[n++] = (struct candidate){i, logits[i], 0};
    if (n == 0) return argmax(logits, s->n_vocab); /* everything banned: fall back */
    if (p->top_k > 0 && p->top_k < n) {
        select_top(s->cand, n, p->top_k);
        n = p->top_k;
    } else if (p->top_p >= 1.0f && p->min_p <= 0) {
        return sample_full(s, n);
    } else {
        qsort(s->cand, (size_t)n, sizeof *s->cand, by_logit_desc);
    }
    softmax_candidates(s->cand, n);
    if (p->top_p < 1.0f) {
        double cum = 0;
        int32_t keep = n;
        for (int32_t i = 0; i < n; i++) {
            cum += s->cand[i].prob;
            if (cum >= p->top_p) { keep = i + 1; break; }
        }
        n = keep;
    }
    if (p->min_p > 0) {
        float floor = p->min_p * s->cand[0].prob;
        int32_t keep = 1;
        while (keep < n && s->cand[keep].prob >= floor) keep++;
        n = keep;
    }
    for (int32_t i = 0; i < n; i++) s->cand[i].logit /= p->temperature;
    softmax_candidates(s->cand, n);
    double r = dz_rng_uniform(&s->rng), cum = 0;
    for (int32_t i = 0; i < n; i++) {
        cum += s->cand[i].prob;
        if (r < cum) return s->cand[i].id;
    }
    return s->cand[n - 1].id;
}
