/* Sampling: greedy, determinism by seed, bias, penalties, top-k/top-p/min-p
 * filters, parameter checks. Expected values are computed by hand. */
#include <math.h>

#include "dizuo/engine.h"
#include "dztest.h"

enum { V = 6 };

static int32_t sample_once(dz_sampler_params p, const float *logits_in) {
    float logits[V];
    memcpy(logits, logits_in, sizeof logits);
    dz_sampler *s = NULL;
    if (dz_sampler_create(&p, V, &s)) return -1;
    int32_t id = dz_sampler_sample(s, logits);
    dz_sampler_free(s);
    return id;
}

static void test_greedy_and_bias(void) {
    const float logits[V] = {0.1f, 2.0f, -1.0f, 1.9f, 0.0f, -3.0f};
    dz_sampler_params p = dz_sampler_defaults();
    p.temperature = 0;
    DZT_EQ_INT(sample_once(p, logits), 1);
    dz_logit_bias ban = {1, -INFINITY};
    p.logit_bias = &ban;
    p.n_logit_bias = 1;
    DZT_EQ_INT(sample_once(p, logits), 3);
    dz_logit_bias boost = {5, 10.0f};
    p.logit_bias = &boost;
    DZT_EQ_INT(sample_once(p, logits), 5);
}

static void test_penalties(void) {
    /* repeat penalty 2 on a seen token: positive logit halved, negative doubled. */
    float logits[V] = {1.0f, 1.5f, -1.0f, 0.9f, 0.0f, -3.0f};
    dz_sampler_params p = dz_sampler_defaults();
    p.temperature = 0;
    p.repeat_penalty = 2.0f;
    dz_sampler *s = NULL;
    DZT_OK(dz_sampler_create(&p, V, &s));
    dz_sampler_accept(s, 1);
    dz_sampler_accept(s, 2);
    DZT_EQ_INT(dz_sampler_sample(s, logits), 0); /* 1.5/2 = 0.75 < 1.0 */
    DZT_NEAR(logits[1], 0.75, 1e-6);
    DZT_NEAR(logits[2], -2.0, 1e-6);
    dz_sampler_free(s);
    /* frequency 0.5 x count 2 + presence 0.25 */
    float l2[V] = {1.0f, 2.0f, 0, 0, 0, 0};
    p.repeat_penalty = 1.0f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    DZT_OK(dz_sampler_create(&p, V, &s));
    dz_sampler_accept(s, 1);
    dz_sampler_accept(s, 1);
    DZT_EQ_INT(dz_sampler_sample(s, l2), 0);
    DZT_NEAR(l2[1], 2.0 - 1.0 - 0.25, 1e-6);
    dz_sampler_free(s);
}

static void test_filters(void) {
    const float logits[V] = {3.0f, 2.9f, 0.0f, -1.0f, -2.0f, -5.0f};
    dz_sampler_params p = dz_sampler_defaults();
    p.temperature = 1.0f;
    p.min_p = 0;
    p.top_p = 1.0f;
    p.top_k = 1; /* top-k 1 is greedy whatever the seed */
    for (uint64_t seed = 0; seed < 20; seed++) {
        p.seed = seed;
        DZT_EQ_INT(sample_once(p, logits), 0);
    }
    /* top-p 0.5: p(0) = e^3 / Z ~ 0.50.., so only token 0 survives. */
    p.top_k = 0;
    p.top_p = 0.5f;
    int only0 = 1;
    for (uint64_t seed = 0; seed < 50; seed++) {
        p.seed = seed;
        only0 &= sample_once(p, logits) == 0;
    }
    DZT_CHECK(only0, "top-p 0.5 let through a token other than 0");
    /* min-p 0.5: tokens 0 and 1 (p1/p0 = e^-0.1 = 0.905) survive, token 2 (e^-3) not. */
    p.top_p = 1.0f;
    p.min_p = 0.5f;
    int seen[V] = {0};
    for (uint64_t seed = 0; seed < 200; seed++) {
        p.seed = seed;
        int32_t id = sample_once(p, logits);
        if (id >= 0 && id < V) seen[id]++;
    }
    DZT_CHECK(seen[0] > 0 && seen[1] > 0, "min-p: both top tokens should be drawn (%d, %d)", seen[0], seen[1]);
    DZT_EQ_INT(seen[2] + seen[3] + seen[4] + seen[5], 0);
}

static void test_determinism(void) {
    float base[V] = {0.5f, 0.4f, 0.3f, 0.2f, 0.1f, 0.0f};
    dz_sampler_params p = dz_sampler_defaults();
    p.temperature = 1.5f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0;
    p.seed = 1234;
    int32_t a[64], b[64];
    for (int run = 0; run < 2; run++) {
        dz_sampler *s = NULL;
        DZT_OK(dz_sampler_create(&p, V, &s));
        for (int i = 0; i < 64 && s; i++) {
            float l[V];
            memcpy(l, base, sizeof l);
            (run ? b : a)[i] = dz_sampler_sample(s, l);
        }
        dz_sampler_free(s);
    }
    DZT_ASSERT(memcmp(a, b, sizeof a) == 0);
    int distinct = 0, seen[V] = {0};
    for (int i = 0; i < 64; i++) distinct += !seen[a[i]]++;
    DZT_CHECK(distinct >= 3, "64 draws at temperature 1.5 gave only %d distinct tokens", distinct);
}

/* Draw frequencies against softmax(l / T) over the allowed tokens, computed
 * here in double: top-k 3 of a 200-token vocabulary (the heap selection,
 * with ties broken by the lower id) and no truncation at all (the
 * full-distribution draw). */
static void check_frequencies(int32_t top_k, const char *what) {
    enum { NV = 200, DRAWS = 40000 };
    float base[NV];
    for (int32_t i = 0; i < NV; i++) base[i] = (float)((i * 37) % 11) * 0.1f; /* many ties */
    dz_sampler_params p = dz_sampler_defaults();
    p.temperature = 0.7f;
    p.top_k = top_k;
    p.top_p = 1.0f;
    p.min_p = 0;
    p.seed = 99;
    double expect[NV] = {0}, sum = 0;
    int32_t order[NV];
    for (int32_t i = 0; i < NV; i++) order[i] = i;
    for (int32_t i = 0; i < NV; i++) /* selection sort: logit descending, id ascending */
        for (int32_t j = i + 1; j < NV; j++)
            if (base[order[j]] > base[order[i]] || (base[order[j]] == base[order[i]] && order[j] < order[i])) {
                int32_t t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    const int32_t allowed = top_k > 0 ? top_k : NV;
    for (int32_t i = 0; i < allowed; i++) sum += expect[order[i]] = exp(base[order[i]] / 0.7);
    int32_t seen[NV] = {0};
    dz_sampler *s = NULL;
    DZT_OK(dz_sampler_create(&p, NV, &s));
    for (int d = 0; d < DRAWS && s; d++) {
        float l[NV];
        memcpy(l, base, sizeof l);
        seen[dz_sampler_sample(s, l)]++;
    }
    dz_sampler_free(s);
    double worst = 0;
    for (int32_t i = 0; i < NV; i++) {
        const double f = (double)seen[i] / DRAWS, e = expect[i] / sum;
        worst = fabs(f - e) > worst ? fabs(f - e) : worst;
        if (e == 0) DZT_CHECK(seen[i] == 0, "%s: token %d is outside the top %d but was drawn", what, i, top_k);
    }
    DZT_CHECK(worst < 0.012, "%s: largest frequency error %.4f", what, worst);
}

static void test_distributions(void) {
    check_frequencies(3, "top-k 3");
    check_frequencies(0, "no truncation");
}

static void test_bad_params(void) {
    dz_sampler *s = NULL;
    dz_sampler_params p = dz_sampler_defaults();
    p.temperature = -1;
    DZT_FAILS(dz_sampler_create(&p, V, &s), DZ_ERR_ARG);
    p = dz_sampler_defaults();
    p.top_p = 0;
    DZT_FAILS(dz_sampler_create(&p, V, &s), DZ_ERR_ARG);
    p = dz_sampler_defaults();
    dz_logit_bias b = {V, 1.0f};
    p.logit_bias = &b;
    p.n_logit_bias = 1;
    DZT_FAILS(dz_sampler_create(&p, V, &s), DZ_ERR_ARG);
    DZT_ASSERT(strstr(dz_last_error(), "outside the vocabulary") != NULL);
    DZT_ASSERT(s == NULL);
}

int main(void) {
    test_greedy_and_bias();
    test_penalties();
    test_filters();
    test_determinism();
    test_distributions();
    test_bad_params();
    return dzt_done();
}
