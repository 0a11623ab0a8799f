/* The conformance harness: runs every case of the suite on the device under
 * test (scheduled on [device, cpu-ref]) and on the CPU reference ("cpu-ref")
 * alone, from the same seeded inputs, and judges the difference. The fast
 * CPU device ("cpu") is tested like any other device. */
#include "conformance/conformance_impl.h"
#include "backends/cpu/cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Where a case runs: the scheduler's devices, in order of preference. */
typedef struct conf_target {
    dz_device **devices;
    int n_devices;
} conf_target;

/* What one run of a case produced. */
typedef struct conf_output {
    float *values;           /* the result, converted to F32 (malloc'd) */
    int64_t n;
    int64_t ne[4];           /* the result's shape, for naming an element */
    const dz_device *placed; /* the device the op node ran on */
    int modified_input;      /* index of an input the op changed; -1 if none */
    char error[200];         /* why the run failed; "" if it did not */
} conf_output;

/* ---- inputs ---- */

/* A value of type t that exact data movement must keep bit for bit. */
static float special_value(dz_type t, uint64_t *rng) {
    static const float f32[] = {-0.0f, 1e-40f, -3.4e38f}, f16[] = {-0.0f, 3e-6f, -65504.0f},
                       bf16[] = {-0.0f, -1e-39f, 3.38e38f};
    const float *v = t == DZ_TYPE_F16 ? f16 : t == DZ_TYPE_BF16 ? bf16 : f32;
    return v[conf_rng_next(rng) % 3];
}

/* Host values of input `index` of a case, encoded in the leaf's type. Same
 * seed and index, same bytes. Returns malloc'd memory of dz_nbytes(leaf). */
static dz_status make_input(const conf_input *in, uint64_t seed, int index, void **out) {
    const dz_tensor *leaf = in->leaf;
    int64_t n = dz_nelements(leaf);
    size_t nbytes = dz_nbytes(leaf);
    uint64_t rng = seed ^ (0xd1b54a32d192ed03ull * (uint64_t)(index + 1));
    void *bytes = malloc(nbytes ? nbytes : 1);
    float *values = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!bytes || !values) {
        free(bytes);
        free(values);
        return dz_fail(DZ_ERR_NOMEM, "no memory for a %lld-element input", (long long)n);
    }
    dz_status st = DZ_OK;
    if (in->fill == CONF_FILL_DISTINCT || in->fill == CONF_FILL_PAGED) {
        const int64_t range = in->amplitude >= 1.0f ? (int64_t)in->amplitude : 1;
        const int64_t w = in->fill == CONF_FILL_PAGED ? leaf->ne[0] : n, rows = n / w;
        int32_t *ids = bytes, *perm = malloc((size_t)range * sizeof *perm);
        if (!perm) st = dz_fail(DZ_ERR_NOMEM, "no memory for a permutation of %lld", (long long)range);
        for (int64_t r = 0; !st && r < rows; r++) {
            int32_t *row = ids + r * w;
            const int64_t head = in->fill == CONF_FILL_PAGED ? 1 : 0;
            const int64_t count = head ? 1 + (int64_t)(conf_rng_next(&rng) % (uint64_t)(w - 1)) : w;
            for (int64_t i = 0; i < range; i++) perm[i] = (int32_t)i;
            for (int64_t i = 0; i < count && i < range; i++) { /* a partial Fisher-Yates shuffle */
                const int64_t j = i + (int64_t)(conf_rng_next(&rng) % (uint64_t)(range - i));
                const int32_t tmp = perm[i];
                perm[i] = perm[j];
                perm[j] = tmp;
                row[head + i] = perm[i];
            }
            if (head) row[0] = (int32_t)count;
            for (int64_t i = head + count; i < w; i++) row[i] = 0;
        }
        free(perm);
    } else if (in->fill == CONF_FILL_IDS || in->fill == CONF_FILL_POS) {
        int32_t *ids = bytes;
        int32_t range = in->amplitude >= 1.0f ? (int32_t)in->amplitude : 1;
        for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(conf_rng_next(&rng) % (uint64_t)range);
    } else {
        for (int64_t i = 0; i < n; i++)
            values[i] = in->amplitude * (float)(2.0 * conf_rng_unit(&rng) - 1.0);
        if (in->fill == CONF_FILL_MASK) /* about 1 in 8 masked out, column 0 never */
            for (int64_t i = 0; i < n; i++)
                if (i % leaf->ne[0] != 0 && conf_rng_next(&rng) % 8 == 0) values[i] = -INFINITY;
        if (in->fill == CONF_FILL_SPECIAL)
            for (int64_t i = 0; i < n; i++)
                if (conf_rng_next(&rng) % 7 == 0) values[i] = special_value(leaf->type, &rng);
        if (leaf->type == DZ_TYPE_F32)
            memcpy(bytes, values, (size_t)n * sizeof(float));
        else
            st = dz_quantize_row(leaf->type, values, bytes, n);
    }
    free(values);
    if (st != DZ_OK) {
        free(bytes);
        return dz_error_prefix(st, "making %s inputs: ", dz_type_name(leaf->type));
    }
    *out = bytes;
    return DZ_OK;
}

/* ---- one run ---- */

static void output_fail(conf_output *o, const char *what) {
    snprintf(o->error, sizeof o->error, "%s: %s", what, dz_last_error());
}

/* Reads the result and converts it to F32. */
static dz_status read_result(const dz_tensor *t, conf_output *o) {
    if (!dz_is_contiguous(t))
        return dz_fail(DZ_ERR_INTERNAL, "the result '%s' is not contiguous", t->name);
    int64_t n = dz_nelements(t);
    size_t nbytes = dz_nbytes(t);
    void *bytes = malloc(nbytes ? nbytes : 1);
    o->values = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!bytes || !o->values) {
        free(bytes);
        return dz_fail(DZ_ERR_NOMEM, "no memory for a %lld-element result", (long long)n);
    }
    dz_status st = dz_tensor_read(t, bytes, 0, nbytes);
    if (st == DZ_OK) {
        if (t->type == DZ_TYPE_F32)
            memcpy(o->values, bytes, nbytes);
        else
            st = dz_dequantize_row(t->type, bytes, o->values, n);
    }
    free(bytes);
    o->n = n;
    memcpy(o->ne, t->ne, sizeof o->ne);
    return st;
}

/* Is input `in` still what was written? (Ops must not write their inputs.) */
static bool input_unchanged(const conf_input *in, const void *written) {
    size_t nbytes = dz_nbytes(in->leaf);
    void *now = malloc(nbytes ? nbytes : 1);
    if (!now) return true; /* cannot tell: do not blame the device */
    bool same = dz_tensor_read(in->leaf, now, 0, nbytes) == DZ_OK &&
                memcmp(now, written, nbytes) == 0;
    free(now);
    return same;
}

/* Fills t's bytes with 0xff: NaN in F32, F16 and BF16. */
static dz_status poison(dz_tensor *t) {
    size_t nbytes = dz_nbytes(t);
    void *nans = malloc(nbytes ? nbytes : 1);
    if (!nans) return dz_fail(DZ_ERR_NOMEM, "no memory for %zu bytes", nbytes);
    memset(nans, 0xff, nbytes);
    dz_status st = dz_tensor_write(t, nans, 0, nbytes);
    free(nans);
    return st;
}

/* Builds the case's graph, schedules it on target, fills the inputs, runs
 * it and reads the result into o. Failures land in o->error. */
static void run_once(const conf_op_table *op, const conf_dtype *t, const conf_shape *s,
                     uint64_t seed, const conf_target *target, conf_output *o) {
    o->modified_input = -1;
    dz_ctx *ctx = dz_ctx_create(64);
    dz_sched *sched = NULL;
    void *written[CONF_MAX_INPUTS] = {0};
    conf_graph g = {.ctx = ctx};
    if (!ctx) {
        snprintf(o->error, sizeof o->error, "no memory for a graph context");
        return;
    }
    /* The result is the node or one of its operands (CPY's destination), so
     * the graph of the node holds it. */
    dz_graph *graph = NULL;
    bool built = op->build(&g, s, t);
    if (built) {
        dz_set_output(g.node);
        dz_set_output(g.result);
        graph = dz_graph_build(ctx, g.node);
    }
    if (!graph) {
        if (dz_ctx_status(ctx) != DZ_OK)
            snprintf(o->error, sizeof o->error, "building the graph: %s", dz_ctx_error(ctx));
        else
            output_fail(o, "building the graph");
        goto out;
    }
    if (dz_sched_create(target->devices, target->n_devices, &sched) != DZ_OK) {
        output_fail(o, "creating the scheduler");
        goto out;
    }
    if (dz_sched_alloc(sched, graph) != DZ_OK) {
        output_fail(o, "scheduling");
        goto out;
    }
    /* NaN in every byte of the output first: an element the kernel leaves
     * unwritten cannot pass for a correct one. (CPY's result is its
     * destination, an input already filled with random values.) */
    if (g.result == g.node && poison(g.node) != DZ_OK) {
        output_fail(o, "poisoning the output");
        goto out;
    }
    for (int i = 0; i < g.n_inputs; i++) {
        if (make_input(&g.inputs[i], seed, i, &written[i]) != DZ_OK ||
            dz_tensor_write(g.inputs[i].leaf, written[i], 0, dz_nbytes(g.inputs[i].leaf)) != DZ_OK) {
            output_fail(o, "writing the inputs");
            goto out;
        }
    }
    if (dz_sched_compute(sched, graph) != DZ_OK) {
        output_fail(o, "computing");
        goto out;
    }
    o->placed = dz_sched_node_device(sched, g.node);
    if (read_result(g.result, o) != DZ_OK) {
        output_fail(o, "reading the result");
        goto out;
    }
    for (int i = 0; i < g.n_inputs && o->modified_input < 0; i++)
        if (!g.inputs[i].is_destination && !input_unchanged(&g.inputs[i], written[i]))
            o->modified_input = i;
out:
    for (int i = 0; i < CONF_MAX_INPUTS; i++) free(written[i]);
    dz_sched_destroy(sched);
    dz_ctx_destroy(ctx);
}

/* ---- judging a case ---- */

/* "(i0,i1,i2,i3)" of flat index i in a contiguous tensor of shape ne. */
static void element_name(const int64_t ne[4], int64_t i, char *buf, size_t size) {
    int64_t c[4];
    for (int d = 0; d < 4; d++) {
        int64_t n = ne[d] > 0 ? ne[d] : 1;
        c[d] = i % n;
        i /= n;
    }
    snprintf(buf, size, "(%lld,%lld,%lld,%lld)", (long long)c[0], (long long)c[1], (long long)c[2],
             (long long)c[3]);
}

static void judge(dz_conformance_case *c, const conf_output *dut, const conf_output *ref,
                  const dz_device *dev) {
    c->result = DZ_CONFORMANCE_FAIL;
    c->nmse = INFINITY;
    if (ref->error[0]) {
        snprintf(c->message, sizeof c->message, "the CPU reference failed: %s", ref->error);
        return;
    }
    if (dut->error[0]) {
        snprintf(c->message, sizeof c->message, "%s", dut->error);
        return;
    }
    dz_conformance_diff ref_check = dz_conformance_compare(ref->values, ref->values, ref->n);
    char at[96];
    if (ref_check.first_nonfinite >= 0) {
        element_name(ref->ne, ref_check.first_nonfinite, at, sizeof at);
        snprintf(c->message, sizeof c->message, "the CPU reference output is not finite at %s", at);
        return;
    }
    if (dut->n != ref->n) {
        snprintf(c->message, sizeof c->message, "%lld output elements, the reference has %lld",
                 (long long)dut->n, (long long)ref->n);
        return;
    }
    dz_conformance_diff d = dz_conformance_compare(dut->values, ref->values, dut->n);
    c->nmse = d.nmse;
    if (d.first_nonfinite >= 0) {
        element_name(dut->ne, d.first_nonfinite, at, sizeof at);
        snprintf(c->message, sizeof c->message, "output %s is %g (reference %.9g)", at,
                 (double)dut->values[d.first_nonfinite], (double)ref->values[d.first_nonfinite]);
        return;
    }
    if (!dz_conformance_diff_passes(&d, c->limit)) {
        if (c->limit == DZ_CONFORMANCE_LIMIT_EXACT) {
            element_name(dut->ne, d.first_mismatch, at, sizeof at);
            snprintf(c->message, sizeof c->message,
                     "not bit-exact: output %s is %.9g, reference %.9g (NMSE %.3g)", at,
                     (double)dut->values[d.first_mismatch], (double)ref->values[d.first_mismatch],
                     d.nmse);
        } else {
            snprintf(c->message, sizeof c->message, "NMSE %.3g above the limit %.0e", d.nmse,
                     c->limit);
        }
        return;
    }
    if (dut->modified_input >= 0) {
        snprintf(c->message, sizeof c->message, "the op changed its input in%d",
                 dut->modified_input);
        return;
    }
    c->result = dut->placed == dev ? DZ_CONFORMANCE_NATIVE : DZ_CONFORMANCE_FALLBACK;
}

/* Can shape s be built with type t? Rows must hold whole blocks. */
static bool applicable(const conf_shape *s, const conf_dtype *t) {
    const dz_type_traits *a = dz_type_info((int)t->type), *b = dz_type_info((int)t->src_type);
    int64_t ne0 = s->a[0] > 0 ? s->a[0] : 1;
    return a && b && ne0 % a->block_size == 0 && ne0 % b->block_size == 0;
}

static void run_case(const conf_op_table *op, const conf_dtype *t, const conf_shape *s,
                     uint64_t seed, dz_device *dev, const conf_target *under_test,
                     const conf_target *reference, dz_conformance_case *c) {
    c->op = op->op;
    conf_dtype_label(op->op, t, c->dtype, sizeof c->dtype);
    op->describe(s, c->shape, sizeof c->shape);
    c->limit = t->limit;
    c->message[0] = '\0';
    /* Inputs depend on the seed and on what the case is (op, type, shape),
     * not on its position, so `--op X` reproduces the full run's inputs. */
    uint64_t case_seed = seed;
    case_seed = conf_rng_next(&case_seed) ^ ((uint64_t)op->op << 48) ^
                ((uint64_t)(t - op->dtypes) << 32) ^ (uint64_t)(s - op->shapes);
    case_seed = conf_rng_next(&case_seed);
    conf_output dut = {0}, ref = {0};
    run_once(op, t, s, case_seed, under_test, &dut);
    run_once(op, t, s, case_seed, reference, &ref);
    judge(c, &dut, &ref, dev);
    free(dut.values);
    free(ref.values);
}

/* ---- the run ---- */

dz_conformance_options dz_conformance_options_default(void) {
    return (dz_conformance_options){.tiers = DZ_TIER_I, .seed = 1};
}

static dz_status find_op(const char *name, dz_op *out) {
    for (int i = 0; i < conf_suite_size; i++)
        if (strcasecmp(name, dz_op_name(conf_suite[i].op)) == 0) {
            *out = conf_suite[i].op;
            return DZ_OK;
        }
    char list[512] = "";
    size_t len = 0;
    for (int i = 0; i < conf_suite_size && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "",
                                dz_op_name(conf_suite[i].op));
    return dz_fail(DZ_ERR_ARG, "no op '%s' in the conformance suite (its ops: %s)", name, list);
}

dz_status dz_conformance_run(dz_device *dev, const dz_conformance_options *options,
                             dz_conformance_report **out) {
    if (!dev || !out) return dz_fail(DZ_ERR_ARG, "dz_conformance_run: NULL device or report");
    dz_conformance_options opt = options ? *options : dz_conformance_options_default();
    uint32_t tiers = opt.tiers ? opt.tiers : DZ_TIER_I;
    if (tiers & ~(uint32_t)(DZ_TIER_I | DZ_TIER_S | DZ_TIER_T))
        return dz_fail(DZ_ERR_ARG, "unknown conformance tier bits 0x%x", (unsigned)tiers);
    dz_op only = DZ_OP_NONE;
    dz_status st;
    if (opt.only_op && (st = find_op(opt.only_op, &only)) != DZ_OK) return st;
    if ((st = dz_conformance_self_check()) != DZ_OK) return st;

    dz_device *cpu = NULL;
    if ((st = dz_device_open("cpu-ref", &cpu)) != DZ_OK)
        return dz_error_prefix(st, "opening the CPU reference: ");
    /* A host device needs no fallback: it computes every op the suite has. */
    const dz_backend_iface *iface = dz_device_iface(dev);
    bool dev_is_cpu = iface == dz_cpu_backend_iface() || iface == dz_cpu_ref_backend_iface();
    if (opt.n_threads > 0) {
        dz_device_set_threads(cpu, opt.n_threads);
        if (dev_is_cpu) dz_device_set_threads(dev, opt.n_threads);
    }
    dz_conformance_report *r = conf_report_create();
    if (!r) {
        dz_device_close(cpu);
        return dz_fail(DZ_ERR_NOMEM, "no memory for a report");
    }
    const dz_device_props *props = dz_device_props_get(dev);
    snprintf(r->summary.backend, sizeof r->summary.backend, "%s", dz_device_iface(dev)->name);
    snprintf(r->summary.device, sizeof r->summary.device, "%s", props->name);
    snprintf(r->summary.description, sizeof r->summary.description, "%s", props->description);
    r->summary.tiers = tiers;
    r->summary.seed = opt.seed;

    /* The device under test falls back to the CPU reference; a CPU device
     * under test needs no fallback. */
    dz_device *pair[2] = {dev, cpu};
    conf_target under_test = {pair, dev_is_cpu ? 1 : 2};
    conf_target reference = {&cpu, 1};

    double start = dz_time_now();
    int32_t index = 0;
    for (int o = 0; o < conf_suite_size && st == DZ_OK; o++) {
        const conf_op_table *op = &conf_suite[o];
        if (!(dz_op_tiers(op->op) & tiers) || (only != DZ_OP_NONE && op->op != only)) continue;
        for (int t = 0; t < op->n_dtypes && st == DZ_OK; t++)
            for (int s = 0; s < op->n_shapes && st == DZ_OK; s++) {
                if (!applicable(&op->shapes[s], &op->dtypes[t])) continue;
                dz_conformance_case c = {.index = index++};
                run_case(op, &op->dtypes[t], &op->shapes[s], opt.seed, dev, &under_test,
                         &reference, &c);
                st = conf_report_add(r, &c);
                if (st == DZ_OK && opt.on_case) opt.on_case(&c, opt.user);
            }
    }
    r->summary.seconds = dz_time_now() - start;
    dz_device_close(cpu);
    if (st != DZ_OK) {
        dz_conformance_report_destroy(r);
        return st;
    }
    *out = r;
    return DZ_OK;
}
