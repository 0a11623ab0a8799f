/* Internals of the training layer shared by its files. */
#ifndef DZ_TRAIN_IMPL_H
#define DZ_TRAIN_IMPL_H

#include "dizuo/gguf.h"
#include "dizuo/train.h"

struct dz_train_model {
    dz_train_config cfg;
    int32_t n_params;
    dz_train_param *params;
    int64_t n_floats;
    float *w, *g, *m, *v;     /* flat arrays of n_floats: weights, gradients, moments */
    void *tok_file;           /* the tokenizer.* keys as a GGUF image in memory (NULL: none) */
    size_t tok_file_size;
    dz_gguf *tok_gguf;        /* opened over tok_file */
    dz_tokenizer *tok;
};

/* An empty model of shape c: the parameter table and zeroed arrays. */
dz_status dz_train_model_alloc(const dz_train_config *c, dz_train_model **out);
/* Reads a shape from the hyper-parameter keys of g (llama or gpt2). */
dz_status dz_train_config_read(const dz_gguf *g, dz_train_config *c);
/* Writes the hyper-parameter keys of c to w. */
dz_status dz_train_config_write(const dz_train_config *c, dz_gguf_writer *w);
/* Reads tensor `name` of g (shape of p, any dequantizable type) into dst (p->n floats). */
dz_status dz_train_read_tensor(const dz_gguf *g, const char *name, const dz_train_param *p, float *dst);
/* The run's state keys of a checkpoint (dizuo.train.*, the loss history
 * included): written into w, read from g (s->losses malloc'd). */
dz_status dz_train_state_write(const dz_train_state *s, dz_gguf_writer *w);
dz_status dz_train_state_read(const dz_gguf *g, dz_train_state *s);
/* DIR/checkpoint.gguf: its path in path (DIR created if needed), or opened. */
dz_status dz_train_checkpoint_dir(const char *dir, char *path, size_t cap);
dz_status dz_train_checkpoint_open(const char *dir, dz_gguf **g);
/* Adds m's tokenizer keys to w. */
dz_status dz_train_model_put_tokenizer_keys(const dz_train_model *m, dz_gguf_writer *w);

/* The graph of one row of T tokens: forward, loss and explicit backward.
 * Weight leaves are unbound (the trainer binds them to the model's array). */
typedef struct dz_train_graph {
    dz_ctx *ctx;
    dz_graph *graph;
    dz_tensor *ids, *targets, *pos; /* inputs: I32 (T) each; pos holds 0..T-1 */
    dz_tensor *loss;                /* F32 (1): the row's mean cross-entropy */
    dz_tensor **w;                  /* per parameter: its weight leaf */
    dz_tensor **grad;               /* per parameter: its gradient (NULL: frozen) */
} dz_train_graph;

/* Builds g for m and T (graph.c). On failure g is left empty. */
dz_status dz_train_graph_build(const dz_train_model *m, int32_t T, dz_train_graph *g);
void dz_train_graph_free(dz_train_graph *g);

/* A seeded generator (splitmix64): same numbers everywhere. */
uint64_t dz_train_rng_next(uint64_t *state);
double dz_train_rng_normal(uint64_t *state);

/* par.c: the host-side passes of a step on several threads. fn(ctx, lo, hi,
 * ith) processes [lo, hi); dz_train_par returns how many chunks it used (at
 * most n_threads, fewer for small n; chunk i is always the same range). */
typedef void (*dz_train_par_fn)(void *ctx, int64_t lo, int64_t hi, int ith);
int dz_train_par(int n_threads, int64_t n, dz_train_par_fn fn, void *ctx);
/* Threads for the host passes: requested, or the online CPUs when 0. */
int dz_train_par_threads(int32_t requested);

/* update.c: one optimizer step over flat buffers of n floats. params
 * (n_params of them, by offset) say which ranges are trainable and decayed;
 * NULL: everything, decayed. what names the parameters in errors. */
typedef struct dz_train_update {
    float *w, *g, *m, *v;
    int64_t n;
    const dz_train_param *params;
    int32_t n_params;
    const char *what;
} dz_train_update;
/* Divides the gradient sums by rows, runs o->reduce, then the global norm
 * (DZ_ERR_FORMAT naming the step when it or the loss is not finite: nothing
 * is updated), clipping and AdamW; fills stats. */
dz_status dz_train_apply_update(const dz_train_opts *o, int threads, const dz_train_update *u, int64_t rows,
                                double loss_sum, int64_t step, dz_train_stats *stats);

#endif
