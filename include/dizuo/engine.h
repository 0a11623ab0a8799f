/* dizuo — engine: sampling and generation on top of the model layer. */
#ifndef DIZUO_ENGINE_H
#define DIZUO_ENGINE_H

#include "dizuo/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dz_logit_bias {
    int32_t token;
    float bias; /* added to the logit; -INFINITY bans the token */
} dz_logit_bias;

/* Sampling settings. Applied in this order: logit bias, repetition /
 * frequency / presence penalties over the last repeat_last_n tokens, then
 * (temperature <= 0) greedy argmax, or top-k, top-p, min-p, temperature and a
 * draw from the seeded RNG. Zero-initialised fields mean "off", except use
 * dz_sampler_defaults() for the usual values. */
typedef struct dz_sampler_params {
    float temperature;       /* 0: greedy */
    int32_t top_k;           /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off; > 1 discourages repeats (llama.cpp semantics) */
    int32_t repeat_last_n;   /* window of the penalties; 0: off, -1: whole history */
    float frequency_penalty; /* 0: off; subtracts count * f */
    float presence_penalty;  /* 0: off; subtracts p once a token appeared */
    uint64_t seed;
    const dz_logit_bias *logit_bias;
    int32_t n_logit_bias;
} dz_sampler_params;

/* temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat_penalty 1,
 * repeat_last_n 64, seed 0xD1Z0. */
dz_sampler_params dz_sampler_defaults(void);

typedef struct dz_sampler dz_sampler;

/* Checks the parameters (DZ_ERR_ARG naming the bad one: negative temperature,
 * top_p outside (0,1], a biased token outside the vocabulary ...). The
 * sampler copies the logit biases. Caller owns *out. */
dz_status dz_sampler_create(const dz_sampler_params *p, int32_t n_vocab, dz_sampler **out);
void dz_sampler_free(dz_sampler *s); /* NULL is a no-op */

/* Picks the next token from logits[n_vocab] (the array is used as scratch
 * and modified). Deterministic for a given seed and history. */
int32_t dz_sampler_sample(dz_sampler *s, float *logits);
/* Records a token in the history the penalties look at (prompt tokens too). */
void dz_sampler_accept(dz_sampler *s, int32_t token);
/* Clears the history and re-seeds the RNG. */
void dz_sampler_reset(dz_sampler *s);

/* A small deterministic RNG (xoshiro256**), seeded with splitmix64. */
typedef struct dz_rng { uint64_t s[4]; } dz_rng;
void dz_rng_seed(dz_rng *r, uint64_t seed);
uint64_t dz_rng_next(dz_rng *r);
double dz_rng_uniform(dz_rng *r); /* [0, 1) */

#ifdef __cplusplus
}
#endif
#endif /* DIZUO_ENGINE_H */
