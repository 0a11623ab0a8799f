/* The backend registry, devices, buffers and the scheduler, with a fake
 * accelerator defined here: its memory is its own (malloc'd, not host
 * memory as far as the core knows) and it computes only ADD. Graphs mixing
 * it with the CPU must compute exactly what the CPU alone computes. */
#include <string.h>

#include "backends/cpu/cpu.h"
#include "dizuo/tensor.h"
#include "dztest.h"

/* Under AddressSanitizer and ThreadSanitizer, let a huge allocation fail like malloc does
 * instead of aborting: the out-of-memory path is under test. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "allocator_may_return_null=1"; }

/* ---- the fake device ---- */

static struct {
    size_t limit;        /* allocations above this fail */
    size_t largest;      /* largest allocation seen */
    int nodes_computed;
    int transfers;       /* buffer reads + writes */
    bool fail_compute;
} fake;

typedef struct fake_buf {
    char *mem;
} fake_buf;

static int fake_count(void) { return 1; }
static dz_status fake_open(int device, void **self) {
    (void)device;
    *self = &fake;
    return DZ_OK;
}
static void fake_close(void *self) { (void)self; }
static dz_status fake_props(void *self, dz_device_props *out) {
    (void)self;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "fake:0");
    snprintf(out->description, sizeof out->description, "test accelerator: ADD only");
    return DZ_OK;
}
static dz_status fake_alloc(void *self, size_t size, void **buf, void **base) {
    (void)self;
    if (size > fake.limit) return dz_fail(DZ_ERR_NOMEM, "fake: %zu bytes is over the limit", size);
    fake_buf *b = malloc(sizeof *b);
    b->mem = calloc(1, size);
    if (size > fake.largest) fake.largest = size;
    *buf = b;
    *base = b->mem;
    return DZ_OK;
}
static void fake_free(void *self, void *buf) {
    (void)self;
    free(((fake_buf *)buf)->mem);
    free(buf);
}
static dz_status fake_write(void *self, void *buf, size_t off, const void *src, size_t n) {
    (void)self;
    fake.transfers++;
    memcpy(((fake_buf *)buf)->mem + off, src, n);
    return DZ_OK;
}
static dz_status fake_read(void *self, void *buf, size_t off, void *dst, size_t n) {
    (void)self;
    fake.transfers++;
    memcpy(dst, ((fake_buf *)buf)->mem + off, n);
    return DZ_OK;
}
static dz_status fake_copy(void *self, void *dst, size_t doff, void *src, size_t soff, size_t n) {
    (void)self;
    memmove(((fake_buf *)dst)->mem + doff, ((fake_buf *)src)->mem + soff, n);
    return DZ_OK;
}
static dz_status fake_fill(void *self, void *buf, size_t off, uint8_t v, size_t n) {
    (void)self;
    memset(((fake_buf *)buf)->mem + off, v, n);
    return DZ_OK;
}
static bool fake_supports(void *self, const dz_tensor *node) {
    (void)self;
    return node->op == DZ_OP_ADD && dz_cpu_supports_node(node);
}
static dz_status fake_compute(void *self, const dz_graph *g) {
    (void)self;
    if (fake.fail_compute) return dz_fail(DZ_ERR_DEVICE, "fake: the chip fell over");
    for (int i = 0; i < g->n_nodes; i++) {
        if (!fake_supports(NULL, g->nodes[i])) return dz_fail(DZ_ERR_INTERNAL, "fake: given an unsupported node");
        /* Addresses are this device's; they happen to be host pointers, so the
         * reference kernel can do the arithmetic. */
        dz_status st = dz_cpu_compute_node(g->nodes[i], 1);
        if (st) return st;
        fake.nodes_computed++;
    }
    return DZ_OK;
}
static dz_status fake_sync(void *self) {
    (void)self;
    return DZ_OK;
}

static const dz_backend_iface fake_iface = {
    .abi_version = DZ_BACKEND_ABI_VERSION, .struct_size = sizeof(dz_backend_iface), .name = "fake",
    .device_count = fake_count, .open = fake_open, .close = fake_close, .get_props = fake_props,
    .buffer_alloc = fake_alloc, .buffer_free = fake_free, .buffer_write = fake_write,
    .buffer_read = fake_read, .buffer_copy = fake_copy, .buffer_fill = fake_fill,
    .supports = fake_supports, .compute = fake_compute, .synchronize = fake_sync, .caps = 0,
};

/* ---- registry, devices, buffers ---- */

static void test_registry(void) {
    DZT_ASSERT(dz_backend_count() >= 1);
    DZT_ASSERT(dz_backend_find("cpu") == dz_cpu_backend_iface());
    DZT_OK(dz_backend_register(&fake_iface));
    DZT_FAILS(dz_backend_register(&fake_iface), DZ_ERR_ARG); /* the name is taken */
    DZT_ASSERT(dz_backend_find("fake") == &fake_iface);
    DZT_ASSERT(dz_backend_at(dz_backend_count()) == NULL);

    dz_backend_iface bad = fake_iface;
    bad.name = "bad";
    bad.abi_version = 99;
    DZT_FAILS(dz_backend_register(&bad), DZ_ERR_UNSUPPORTED);
    DZT_CHECK(strstr(dz_last_error(), "99") && strstr(dz_last_error(), "1"), "%s", dz_last_error());
    bad.abi_version = DZ_BACKEND_ABI_VERSION;
    bad.struct_size = 40;
    DZT_FAILS(dz_backend_register(&bad), DZ_ERR_UNSUPPORTED);
    DZT_ASSERT(strstr(dz_last_error(), "40") != NULL);
    bad.struct_size = sizeof bad;
    bad.compute = NULL;
    DZT_FAILS(dz_backend_register(&bad), DZ_ERR_ARG);
    DZT_ASSERT(strstr(dz_last_error(), "compute") != NULL);
    bad.compute = fake_compute;
    bad.caps = DZ_CAP_THREADS; /* announced, not provided */
    DZT_FAILS(dz_backend_register(&bad), DZ_ERR_ARG);
    DZT_FAILS(dz_backend_register(NULL), DZ_ERR_ARG);

    dz_device *dev = NULL;
    DZT_OK(dz_device_open("cpu:0", &dev));
    const dz_device_props *p = dz_device_props_get(dev);
    DZT_EQ_STR(p->name, "cpu");
    DZT_ASSERT(p->caps & DZ_CAP_HOST_MEMORY);
    DZT_OK(dz_device_set_threads(dev, 2));
    DZT_ASSERT(strstr(dz_device_props_get(dev)->description, "2 threads") != NULL);
    DZT_FAILS(dz_device_set_threads(dev, 0), DZ_ERR_ARG);
    dz_device_close(dev);
    DZT_OK(dz_device_open("fake", &dev));
    DZT_EQ_STR(dz_device_props_get(dev)->name, "fake:0");
    DZT_OK(dz_device_set_threads(dev, 4)); /* no DZ_CAP_THREADS: ignored */
    dz_device_close(dev);
    dz_device_close(NULL);

    const char *unknown[] = {"nope", "cpu:1", "fake:7", "cpu:", "cpu:x", ":0", "cpu:-1", ""};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        dev = NULL;
        DZT_FAILS(dz_device_open(unknown[i], &dev), DZ_ERR_ARG);
        DZT_CHECK(strstr(dz_last_error(), "cpu:0") && strstr(dz_last_error(), "fake:0"),
                  "'%s': the message lists the devices: %s", unknown[i], dz_last_error());
        DZT_ASSERT(dev == NULL);
    }
}

static void test_buffers(dz_device *cpu, dz_device *acc) {
    dz_buffer *a, *b;
    DZT_OK(dz_buffer_alloc(acc, 64, &a));
    DZT_OK(dz_buffer_alloc(cpu, 64, &b));
    DZT_ASSERT(a->device == acc && a->size == 64 && !a->wraps_host);
    uint8_t bytes[64], back[64];
    for (int i = 0; i < 64; i++) bytes[i] = (uint8_t)(i * 7);
    DZT_OK(dz_buffer_write(a, 0, bytes, 64));
    DZT_OK(dz_buffer_fill(a, 10, 0xab, 4));
    DZT_OK(dz_buffer_copy(b, 0, a, 0, 64)); /* fake -> cpu */
    DZT_OK(dz_buffer_read(b, 0, back, 64));
    DZT_ASSERT(back[10] == 0xab && back[13] == 0xab && back[14] == bytes[14] && back[63] == bytes[63]);
    DZT_OK(dz_buffer_copy(a, 32, b, 0, 8)); /* cpu -> fake */
    DZT_OK(dz_buffer_read(a, 32, back, 8));
    DZT_ASSERT(memcmp(back, bytes, 8) == 0);
    DZT_FAILS(dz_buffer_write(a, 60, bytes, 8), DZ_ERR_ARG);
    DZT_ASSERT(strstr(dz_last_error(), "fake:0") != NULL);
    DZT_FAILS(dz_buffer_read(a, SIZE_MAX, back, 2), DZ_ERR_ARG);
    DZT_FAILS(dz_buffer_copy(b, 60, a, 0, 8), DZ_ERR_ARG);
    dz_buffer *h;
    DZT_FAILS(dz_buffer_from_host(acc, bytes, 64, &h), DZ_ERR_UNSUPPORTED);
    DZT_OK(dz_buffer_from_host(cpu, bytes, 64, &h));
    DZT_ASSERT(h->wraps_host && h->base == bytes);
    dz_buffer_free(h);
    dz_buffer_free(a);
    dz_buffer_free(b);
    dz_buffer_free(NULL);
    /* Out of memory: the status and a message naming device and size. */
    fake.limit = 1000;
    DZT_FAILS(dz_buffer_alloc(acc, 5000, &a), DZ_ERR_NOMEM);
    DZT_CHECK(strstr(dz_last_error(), "fake:0") && strstr(dz_last_error(), "5000"), "%s", dz_last_error());
    fake.limit = SIZE_MAX;
    DZT_FAILS(dz_buffer_alloc(cpu, SIZE_MAX / 2, &a), DZ_ERR_NOMEM);
    DZT_CHECK(strstr(dz_last_error(), "cpu"), "%s", dz_last_error());
}

/* ---- the scheduler ---- */

enum { K = 16, T = 3 };

typedef struct model {
    dz_ctx *ctx;
    dz_tensor *a, *b, *out, *w;
    dz_graph *g;
} model;

/* out = add(mm(w, rms_norm(add(mul(add(a, b), b), a))), reshape(...)) and more,
 * a chain alternating ADD (fake) with other ops (cpu). w lives in host memory. */
static void build(model *m, float *w_host, dz_buffer *w_buf) {
    m->ctx = dz_ctx_create(64);
    dz_ctx *c = m->ctx;
    m->a = dz_new_tensor_2d(c, DZ_TYPE_F32, K, T);
    m->b = dz_new_tensor_2d(c, DZ_TYPE_F32, K, T);
    dz_set_input(m->a);
    dz_set_input(m->b);
    m->w = dz_new_tensor_2d(c, DZ_TYPE_F32, K, K);
    DZT_OK(dz_tensor_bind(m->w, w_buf, 0));
    (void)w_host;
    dz_tensor *x1 = dz_add(c, m->a, m->b);               /* fake */
    dz_tensor *x2 = dz_mul(c, x1, m->b);                 /* cpu: copies x1, b */
    dz_tensor *x3 = dz_add(c, x2, m->a);                 /* fake: copies x2 */
    dz_tensor *x4 = dz_rms_norm(c, x3, 1e-5f);           /* cpu: copies x3 */
    dz_tensor *x5 = dz_mul_mat(c, m->w, x4);             /* cpu */
    dz_tensor *x6 = dz_add(c, x5, dz_transpose(c, dz_reshape_2d(c, x3, T, K))); /* fake, through views */
    dz_tensor *x7 = dz_silu(c, x6);                      /* cpu */
    m->out = dz_add(c, x7, x1);                          /* fake */
    dz_set_output(m->out);
    m->g = dz_graph_build(c, m->out);
    DZT_ASSERT(m->g != NULL);
}

static void run(dz_sched *s, model *m, const float *av, const float *bv, float *out) {
    DZT_OK(dz_sched_alloc(s, m->g));
    DZT_OK(dz_tensor_write(m->a, av, 0, sizeof(float) * K * T));
    DZT_OK(dz_tensor_write(m->b, bv, 0, sizeof(float) * K * T));
    DZT_OK(dz_sched_compute(s, m->g));
    DZT_OK(dz_tensor_read(m->out, out, 0, sizeof(float) * K * T));
}

static void test_mixed(dz_device *cpu, dz_device *acc) {
    float av[K * T], bv[K * T], w[K * K], want[K * T], got[K * T];
    for (int i = 0; i < K * T; i++) {
        av[i] = (float)((i * 37) % 23) / 11.0f - 1.0f;
        bv[i] = (float)((i * 11) % 17) / 8.0f - 1.0f;
    }
    for (int i = 0; i < K * K; i++) w[i] = (float)((i * 5) % 13) / 6.0f - 1.0f;
    dz_buffer *w_buf;
    DZT_OK(dz_buffer_from_host(cpu, w, sizeof w, &w_buf));

    dz_sched *cpu_only, *mixed;
    DZT_OK(dz_sched_create(&cpu, 1, &cpu_only));
    dz_device *both[2] = {acc, cpu};
    DZT_OK(dz_sched_create(both, 2, &mixed));
    DZT_FAILS(dz_sched_create(&acc, 1, &mixed), DZ_ERR_ARG); /* no host device to fall back on */
    DZT_ASSERT(strstr(dz_last_error(), "host") != NULL);

    model ref, m;
    build(&ref, w, w_buf);
    run(cpu_only, &ref, av, bv, want);
    DZT_EQ_INT(dz_sched_n_copies(cpu_only), 0);

    build(&m, w, w_buf);
    fake.nodes_computed = 0;
    run(mixed, &m, av, bv, got);
    DZT_CHECK(memcmp(got, want, sizeof got) == 0, "mixed placement computes what the CPU computes");
    DZT_ASSERT(dz_sched_n_copies(mixed) > 0);
    DZT_EQ_INT(fake.nodes_computed, 4);
    for (int i = 0; i < m.g->n_nodes; i++) {
        dz_tensor *n = m.g->nodes[i];
        if (n->op == DZ_OP_VIEW) continue;
        DZT_CHECK(dz_sched_node_device(mixed, n) == (n->op == DZ_OP_ADD ? acc : cpu), "node %d (%s) placement", i,
                  dz_op_name(n->op));
    }
    DZT_ASSERT(m.a->buffer->device == acc); /* inputs live where their first reader runs */
    DZT_ASSERT(m.out->buffer->device == acc);

    /* New inputs, same plan; then planning the same graph again. */
    for (int i = 0; i < K * T; i++) av[i] = -av[i] * 0.5f;
    run(cpu_only, &ref, av, bv, want);
    run(mixed, &m, av, bv, got);
    DZT_CHECK(memcmp(got, want, sizeof got) == 0, "second run with new inputs");
    run(mixed, &m, av, bv, got);
    DZT_CHECK(memcmp(got, want, sizeof got) == 0, "re-planned graph");

    /* A graph that was not planned is refused. */
    DZT_FAILS(dz_sched_compute(mixed, ref.g), DZ_ERR_ARG);

    /* A device failure surfaces with the device's name. */
    fake.fail_compute = true;
    DZT_FAILS(dz_sched_compute(mixed, m.g), DZ_ERR_DEVICE);
    DZT_CHECK(strstr(dz_last_error(), "fake:0") && strstr(dz_last_error(), "fell over"), "%s", dz_last_error());
    fake.fail_compute = false;

    /* Out of device memory while planning: an error, and the old plan still works. */
    dz_sched *tight;
    DZT_OK(dz_sched_create(both, 2, &tight));
    fake.limit = 64;
    DZT_FAILS(dz_sched_alloc(tight, m.g), DZ_ERR_NOMEM);
    DZT_ASSERT(strstr(dz_last_error(), "fake:0") != NULL);
    fake.limit = SIZE_MAX;
    dz_sched_destroy(tight);

    dz_ctx_destroy(ref.ctx);
    dz_ctx_destroy(m.ctx);
    dz_sched_destroy(cpu_only);
    dz_sched_destroy(mixed);
    dz_buffer_free(w_buf);
}

/* Results of a long chain reuse memory: far less than one slot per node. */
static void test_reuse(dz_device *cpu, dz_device *acc) {
    dz_device *both[2] = {acc, cpu};
    dz_sched *s;
    DZT_OK(dz_sched_create(both, 2, &s));
    dz_ctx *ctx = dz_ctx_create(128);
    enum { N = 1024, CHAIN = 40 };
    dz_tensor *x = dz_new_tensor_1d(ctx, DZ_TYPE_F32, N), *one = dz_new_tensor_1d(ctx, DZ_TYPE_F32, N);
    dz_set_input(x);
    dz_set_input(one);
    dz_tensor *t = x;
    for (int i = 0; i < CHAIN; i++) t = dz_add(ctx, t, one);
    dz_set_output(t);
    dz_graph *g = dz_graph_build(ctx, t);
    fake.largest = 0;
    DZT_OK(dz_sched_alloc(s, g));
    DZT_CHECK(fake.largest <= 4 * N * sizeof(float) + 4 * 256, "chain of %d used %zu bytes", CHAIN, fake.largest);
    static float xv[N], ones[N], out[N];
    for (int i = 0; i < N; i++) {
        xv[i] = (float)i;
        ones[i] = 1.0f;
    }
    DZT_OK(dz_tensor_write(x, xv, 0, sizeof xv));
    DZT_OK(dz_tensor_write(one, ones, 0, sizeof ones));
    DZT_OK(dz_sched_compute(s, g));
    DZT_OK(dz_tensor_read(t, out, 0, sizeof out));
    int bad = 0;
    for (int i = 0; i < N; i++) bad += out[i] != (float)(i + CHAIN);
    DZT_EQ_INT(bad, 0);
    /* Unbound leaves written by CPY keep their contents after later nodes
     * ran (flagged OUTPUT or not); the chain after them must not reuse them. */
    dz_ctx_reset(ctx);
    x = dz_new_tensor_1d(ctx, DZ_TYPE_F32, N);
    one = dz_new_tensor_1d(ctx, DZ_TYPE_F32, N);
    dz_set_input(x);
    dz_set_input(one);
    dz_tensor *flagged = dz_new_tensor_1d(ctx, DZ_TYPE_F32, N), *plain = dz_new_tensor_1d(ctx, DZ_TYPE_F32, N);
    dz_set_output(flagged);
    g = dz_graph_build(ctx, dz_cpy(ctx, dz_add(ctx, x, one), flagged));
    DZT_OK(dz_graph_expand(ctx, g, dz_cpy(ctx, dz_add(ctx, x, x), plain)));
    t = x;
    for (int i = 0; i < CHAIN; i++) t = dz_add(ctx, t, one);
    DZT_OK(dz_graph_expand(ctx, g, t));
    DZT_OK(dz_sched_alloc(s, g));
    DZT_OK(dz_tensor_write(x, xv, 0, sizeof xv));
    DZT_OK(dz_tensor_write(one, ones, 0, sizeof ones));
    DZT_OK(dz_sched_compute(s, g));
    static float f[N], p[N];
    DZT_OK(dz_tensor_read(flagged, f, 0, sizeof f));
    DZT_OK(dz_tensor_read(plain, p, 0, sizeof p));
    bad = 0;
    for (int i = 0; i < N; i++) bad += f[i] != (float)(i + 1) || p[i] != (float)(2 * i);
    DZT_EQ_INT(bad, 0);
    dz_ctx_destroy(ctx);
    dz_sched_destroy(s);
}

/* A node writing into memory bound on a device runs there; if that device
 * cannot compute it, scheduling fails naming the node. */
static void test_bound_output(dz_device *cpu, dz_device *acc) {
    dz_device *both[2] = {acc, cpu};
    dz_sched *s;
    DZT_OK(dz_sched_create(both, 2, &s));
    dz_buffer *acc_cache, *cpu_cache;
    DZT_OK(dz_buffer_alloc(acc, 4 * 8 * sizeof(float), &acc_cache));
    DZT_OK(dz_buffer_alloc(cpu, 4 * 8 * sizeof(float), &cpu_cache));
    DZT_OK(dz_buffer_fill(cpu_cache, 0, 0, cpu_cache->size));
    dz_ctx *ctx = dz_ctx_create(32);

    /* CPY into a cache on the fake device: the fake cannot copy. */
    dz_tensor *cache = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 4, 8);
    DZT_OK(dz_tensor_bind(cache, acc_cache, 0));
    dz_tensor *k = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 4, 2);
    dz_tensor *store = dz_cpy(ctx, dz_add(ctx, k, k), dz_view_2d(ctx, cache, 4, 2, cache->nb[1], 3 * cache->nb[1]));
    dz_set_name(store, "k_store");
    dz_graph *g = dz_graph_build(ctx, store);
    DZT_FAILS(dz_sched_alloc(s, g), DZ_ERR_UNSUPPORTED);
    DZT_CHECK(strstr(dz_last_error(), "k_store") && strstr(dz_last_error(), "fake:0"), "%s", dz_last_error());

    /* The same into a CPU cache: the ADD runs on the fake, the CPY on the CPU,
     * and a later reader of the cache sees the new rows. */
    dz_ctx_reset(ctx);
    cache = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 4, 8);
    DZT_OK(dz_tensor_bind(cache, cpu_cache, 0));
    k = dz_new_tensor_2d(ctx, DZ_TYPE_F32, 4, 2);
    dz_set_input(k);
    dz_tensor *sum = dz_add(ctx, k, k);
    store = dz_cpy(ctx, sum, dz_view_2d(ctx, cache, 4, 2, cache->nb[1], 3 * cache->nb[1]));
    g = dz_graph_build(ctx, store);
    dz_tensor *seen = dz_scale(ctx, dz_view_2d(ctx, cache, 4, 5, cache->nb[1], 0), 1.0f);
    DZT_OK(dz_graph_expand(ctx, g, seen));
    DZT_OK(dz_sched_alloc(s, g));
    DZT_ASSERT(dz_sched_node_device(s, sum) == acc);
    DZT_ASSERT(dz_sched_node_device(s, store) == cpu);
    float kv[8] = {1, 2, 3, 4, 5, 6, 7, 8}, rows[20];
    DZT_OK(dz_tensor_write(k, kv, 0, sizeof kv));
    DZT_OK(dz_sched_compute(s, g));
    DZT_OK(dz_tensor_read(seen, rows, 0, sizeof rows));
    int bad = 0;
    for (int i = 0; i < 20; i++) bad += rows[i] != (i >= 12 ? 2 * kv[i - 12] : 0.0f);
    DZT_EQ_INT(bad, 0);

    dz_ctx_destroy(ctx);
    dz_buffer_free(acc_cache);
    dz_buffer_free(cpu_cache);
    dz_sched_destroy(s);
}

int main(void) {
    fake.limit = SIZE_MAX;
    test_registry();
    dz_device *cpu = NULL, *acc = NULL;
    DZT_OK(dz_device_open("cpu", &cpu));
    DZT_OK(dz_device_open("fake:0", &acc));
    if (!cpu || !acc) return dzt_done();
    test_buffers(cpu, acc);
    test_mixed(cpu, acc);
    test_reuse(cpu, acc);
    test_bound_output(cpu, acc);
    dz_device_close(acc);
    dz_device_close(cpu);
    return dzt_done();
}
