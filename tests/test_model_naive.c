/* The model layer's graph against a plain, sequential, double-precision
 * transformer written here from the textbook definitions (llama2.c style),
 * for both architectures: llama (adjacent-pair rope) and qwen2 (Q/K/V biases,
 * NeoX rope). Weights are read straight from the GGUF file. */
#include "dizuo/model.h"
#include "dztest.h"
#include "tiny_model.h"

typedef struct naive {
    const dz_gguf *g;
    int E, L, H, KVH, F, V, hd, n_rot;
    bool neox;
    double base, eps;
} naive;

static const float *W(const naive *n, const char *fmt, int l) {
    char name[64];
    snprintf(name, sizeof name, fmt, l);
    const dz_gguf_tensor *t = dz_gguf_find_tensor(n->g, name);
    return t ? (const float *)t->data : NULL;
}

/* out[r] = sum_c w[r*cols + c] x[c] (+ b[r]) */
static void matvec(double *out, const float *w, const float *b, const double *x, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        double s = b ? b[r] : 0.0;
        for (int c = 0; c < cols; c++) s += (double)w[(size_t)r * cols + c] * x[c];
        out[r] = s;
    }
}

static void rmsnorm(double *out, const double *x, const float *w, int n, double eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double scale = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

static void rope(const naive *n, double *head, int pos) {
    for (int i = 0; i < n->n_rot / 2; i++) {
        double theta = pos * pow(n->base, -2.0 * i / n->n_rot);
        int a = n->neox ? i : 2 * i, b = n->neox ? i + n->n_rot / 2 : 2 * i + 1;
        double x0 = head[a], x1 = head[b];
        head[a] = x0 * cos(theta) - x1 * sin(theta);
        head[b] = x0 * sin(theta) + x1 * cos(theta);
    }
}

/* Logits (V) of every position of tokens[0..T). */
static void naive_forward(const naive *n, const int32_t *tokens, int T, double *logits) {
    const int E = n->E, hd = n->hd, KV = n->KVH * hd;
    double *x = calloc(E, sizeof *x), *xb = calloc(E, sizeof *xb), *q = calloc(E, sizeof *q);
    double *att = calloc(E, sizeof *att), *o = calloc(E, sizeof *o), *sc = calloc(T, sizeof *sc);
    double *g = calloc(n->F, sizeof *g), *u = calloc(n->F, sizeof *u);
    double *kc = calloc((size_t)n->L * T * KV, sizeof *kc), *vc = calloc((size_t)n->L * T * KV, sizeof *vc);
    const float *emb = W(n, "token_embd.weight", 0);
    const float *out_w = W(n, "output.weight", 0);
    if (!out_w) out_w = emb;
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < E; i++) x[i] = emb[(size_t)tokens[t] * E + i];
        for (int l = 0; l < n->L; l++) {
            double *k = kc + ((size_t)l * T + t) * KV, *v = vc + ((size_t)l * T + t) * KV;
            rmsnorm(xb, x, W(n, "blk.%d.attn_norm.weight", l), E, n->eps);
            matvec(q, W(n, "blk.%d.attn_q.weight", l), W(n, "blk.%d.attn_q.bias", l), xb, E, E);
            matvec(k, W(n, "blk.%d.attn_k.weight", l), W(n, "blk.%d.attn_k.bias", l), xb, KV, E);
            matvec(v, W(n, "blk.%d.attn_v.weight", l), W(n, "blk.%d.attn_v.bias", l), xb, KV, E);
            for (int h = 0; h < n->H; h++) rope(n, q + h * hd, t);
            for (int h = 0; h < n->KVH; h++) rope(n, k + h * hd, t);
            for (int h = 0; h < n->H; h++) {
                int kvh = h / (n->H / n->KVH);
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) {
                    const double *kj = kc + ((size_t)l * T + j) * KV + kvh * hd;
                    double s = 0;
                    for (int d = 0; d < hd; d++) s += q[h * hd + d] * kj[d];
                    sc[j] = s / sqrt((double)hd);
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int j = 0; j <= t; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (int d = 0; d < hd; d++) att[h * hd + d] = 0;
                for (int j = 0; j <= t; j++) {
                    const double *vj = vc + ((size_t)l * T + j) * KV + kvh * hd;
                    for (int d = 0; d < hd; d++) att[h * hd + d] += sc[j] / sum * vj[d];
                }
            }
            matvec(o, W(n, "blk.%d.attn_output.weight", l), NULL, att, E, E);
            for (int i = 0; i < E; i++) x[i] += o[i];
            rmsnorm(xb, x, W(n, "blk.%d.ffn_norm.weight", l), E, n->eps);
            matvec(g, W(n, "blk.%d.ffn_gate.weight", l), NULL, xb, n->F, E);
            matvec(u, W(n, "blk.%d.ffn_up.weight", l), NULL, xb, n->F, E);
            for (int i = 0; i < n->F; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            matvec(o, W(n, "blk.%d.ffn_down.weight", l), NULL, g, E, n->F);
            for (int i = 0; i < E; i++) x[i] += o[i];
        }
        rmsnorm(xb, x, W(n, "output_norm.weight", 0), E, n->eps);
        matvec(logits + (size_t)t * n->V, out_w, NULL, xb, n->V, E);
    }
    free(x); free(xb); free(q); free(att); free(o); free(sc); free(g); free(u); free(kc); free(vc);
}

static void check_arch(const char *arch, bool bias) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s.gguf", dzt_tmpdir(), arch);
    tiny_model_spec spec = tiny_model_default();
    spec.arch = arch;
    spec.qkv_bias = bias;
    DZT_OK(tiny_model_write(&spec, path));
    dz_model *m = NULL;
    DZT_OK(dz_model_load(path, NULL, &m));
    if (!m) return;
    const dz_model_hparams *hp = dz_model_hparams_get(m);
    naive n = {dz_model_gguf(m), hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ff,
               hp->n_vocab, hp->head_dim, hp->n_rot, hp->rope_mode == DZ_ROPE_NEOX,
               hp->rope_freq_base, hp->norm_eps};
    DZT_EQ_INT(n.neox, strcmp(arch, "qwen2") == 0);
    enum { T = 7 };
    const int32_t tokens[T] = {1, 260, 72, 261, 101, 262, 263};
    double *want = malloc(sizeof(double) * T * n.V);
    float *got = malloc(sizeof(float) * T * n.V);
    naive_forward(&n, tokens, T, want);
    /* The prompt in two pieces, so the cache path (n_past > 0) is covered too. */
    dz_kv_cache *kv = NULL;
    DZT_OK(dz_kv_cache_create(m, 32, &kv));
    DZT_OK(dz_model_forward(m, kv, tokens, 4, 0, got, true));
    DZT_OK(dz_model_forward(m, kv, tokens + 4, T - 4, 4, got + 4 * n.V, true));
    double worst = 0, scale = 0;
    for (int i = 0; i < T * n.V; i++) {
        worst = fmax(worst, fabs(got[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    DZT_CHECK(worst <= 1e-4 * scale, "%s: worst logit difference %.3g (largest logit %.3g)", arch, worst, scale);
    printf("%s: worst |dizuo - naive| = %.3g of max |logit| %.3g\n", arch, worst, scale);
    dz_kv_cache_free(kv);
    dz_model_free(m);
    free(want);
    free(got);
}

int main(void) {
    check_arch("llama", false);
    check_arch("llama", true); /* optional biases on llama are honoured too */
    check_arch("qwen2", true);
    return dzt_done();
}
