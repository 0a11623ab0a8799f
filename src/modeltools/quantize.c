/* Converting a model file's tensors to other types (dz_quantize_plan says
 * which), rows shared among threads. */
#include "dizuo/modeltools.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_THREADS = 256, ERR_LEN = 512 };

/* One tensor's conversion, shared by its worker threads. */
typedef struct convert_job {
    const dz_gguf_tensor *src;
    dz_type to;
    size_t src_row, dst_row; /* bytes per row */
    int64_t n_rows;
    uint8_t *dst;
    int n_threads;
    /* the first failure (under lock) */
    pthread_mutex_t lock;
    dz_status status;
    char error[ERR_LEN];
} convert_job;

typedef struct convert_worker {
    convert_job *job;
    int ith;
    pthread_t thread;
} convert_worker;

static void job_fail(convert_job *job, dz_status st) {
    pthread_mutex_lock(&job->lock);
    if (!job->status) {
        snprintf(job->error, sizeof job->error, "%s", dz_last_error());
        __atomic_store_n(&job->status, st, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&job->lock);
}

/* Rows [n_rows * ith / n_threads, n_rows * (ith + 1) / n_threads). */
static void *convert_rows(void *arg) {
    convert_worker *w = arg;
    convert_job *job = w->job;
    const int64_t ne0 = job->src->ne[0];
    const int64_t r0 = job->n_rows * w->ith / job->n_threads;
    const int64_t r1 = job->n_rows * (w->ith + 1) / job->n_threads;
    /* The source's bytes are copied out first: a file's alignment may be as
     * small as 1, so its floats are not necessarily aligned in place. */
    float *row = malloc((size_t)ne0 * sizeof *row);
    void *raw = malloc(job->src_row ? job->src_row : 1);
    if (!row || !raw) {
        job_fail(job, dz_fail(DZ_ERR_NOMEM, "out of memory for a row of %lld elements", (long long)ne0));
        goto done;
    }
    for (int64_t r = r0; r < r1; r++) {
        if (__atomic_load_n(&job->status, __ATOMIC_ACQUIRE)) break; /* another thread failed */
        memcpy(raw, (const uint8_t *)job->src->data + (size_t)r * job->src_row, job->src_row);
        dz_status st = dz_dequantize_row(job->src->type, raw, row, ne0);
        if (st) {
            job_fail(job, st);
            break;
        }
        for (int64_t i = 0; i < ne0; i++) {
            if (!isfinite(row[i])) {
                job_fail(job, dz_fail(DZ_ERR_FORMAT, "tensor '%s' has a non-finite value at row %lld, "
                                      "column %lld", job->src->name, (long long)r, (long long)i));
                goto done;
            }
        }
        if ((st = dz_quantize_row(job->to, row, job->dst + (size_t)r * job->dst_row, ne0))) {
            job_fail(job, st);
            break;
        }
    }
done:
    free(row);
    free(raw);
    return NULL;
}

/* Converts src into dst (n_rows rows of dst_row bytes) with n_threads threads. */
static dz_status convert_tensor(const dz_gguf_tensor *src, dz_type to, uint8_t *dst, int n_threads) {
    convert_job job = {.src = src, .to = to, .dst = dst};
    dz_status st;
    if ((st = dz_row_size(src->type, src->ne[0], &job.src_row)) ||
        (st = dz_row_size(to, src->ne[0], &job.dst_row)))
        return dz_error_prefix(st, "tensor '%s': ", src->name);
    job.n_rows = src->ne[1] * src->ne[2] * src->ne[3];
    /* No more threads than there are rows, and none for small tensors. */
    int64_t useful = job.n_rows * src->ne[0] / (1 << 16) + 1;
    job.n_threads = n_threads < useful ? n_threads : (int)useful;
    if (job.n_threads > job.n_rows) job.n_threads = (int)job.n_rows;
    if (job.n_threads < 1) job.n_threads = 1;
    pthread_mutex_init(&job.lock, NULL);
    convert_worker workers[MAX_THREADS];
    int started = 1;
    for (int i = 1; i < job.n_threads; i++, started++) {
        workers[i] = (convert_worker){.job = &job, .ith = i};
        if (pthread_create(&workers[i].thread, NULL, convert_rows, &workers[i])) {
            job_fail(&job, dz_fail(DZ_ERR_NOMEM, "cannot start a quantization thread"));
            break;
        }
    }
    workers[0] = (convert_worker){.job = &job, .ith = 0};
    /* With a thread missing, its rows would stay unconverted: thread 0 then
     * does nothing and the job reports the failure. */
    if (started == job.n_threads) convert_rows(&workers[0]);
    for (int i = 1; i < started; i++) pthread_join(workers[i].thread, NULL);
    pthread_mutex_destroy(&job.lock);
    if (job.status) return dz_fail(job.status, "%s", job.error);
    return DZ_OK;
}

/* Copies every KV, then sets the two that describe the new contents. */
static dz_status copy_metadata(dz_gguf_writer *w, const dz_gguf *in, int32_t ftype) {
    dz_status st;
    for (int64_t i = 0; i < dz_gguf_n_kv(in); i++) {
        const char *key = dz_gguf_kv_key(in, i);
        /* split files are joined into one */
        if (!strncmp(key, "split.", 6)) continue;
        if ((st = dz_gguf_writer_copy_kv(w, in, i))) return st;
    }
    if ((st = dz_gguf_writer_set_u32(w, "general.quantization_version", 2)) ||
        (st = dz_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ftype)))
        return st;
    return DZ_OK;
}

static size_t tensor_bytes(dz_type type, const int64_t *ne) {
    size_t row = 0;
    if (dz_row_size(type, ne[0], &row)) return 0;
    return row * (size_t)(ne[1] * ne[2] * ne[3]);
}

static dz_status quantize(const dz_gguf *in, const char *out_path, const dz_quantize_params *p,
                          const dz_type *types, const char *const *notes,
                          dz_tensor_event_fn progress, void *user, dz_quantize_stats *stats) {
    const dz_ftype_info *f = dz_ftype_find(p->ftype);
    int n_threads = p->n_threads < 1 ? 1 : p->n_threads > MAX_THREADS ? MAX_THREADS : p->n_threads;
    dz_gguf_writer *w = NULL;
    dz_status st = dz_gguf_writer_create(&w);
    if (st) return st;
    /* the input's alignment is copied with the KVs, so offsets stay valid for its readers */
    if ((st = copy_metadata(w, in, f->ftype))) goto done;
    uint8_t *buf = NULL;
    size_t cap = 0;
    int64_t n = dz_gguf_n_tensors(in);
    for (int64_t i = 0; i < n && !st; i++) {
        const dz_gguf_tensor *t = dz_gguf_tensor_at(in, i);
        const void *data = t->data;
        size_t size = t->size;
        if (types[i] != t->type) {
            size = tensor_bytes(types[i], t->ne);
            if (size > cap) {
                free(buf);
                cap = size;
                if (!(buf = malloc(cap))) {
                    st = dz_fail(DZ_ERR_NOMEM, "out of memory for tensor '%s' (%zu bytes)", t->name, size);
                    break;
                }
            }
            if ((st = convert_tensor(t, types[i], buf, n_threads))) break;
            data = buf;
            stats->n_converted++;
            if (notes[i]) stats->n_fallback++;
        }
        if ((st = dz_gguf_writer_add_tensor(w, t->name, types[i], t->n_dims, t->ne, data))) break;
        stats->bytes_in += t->size;
        stats->bytes_out += size;
        if (progress) {
            dz_tensor_event ev = {.index = i, .count = n, .name = t->name, .n_dims = t->n_dims,
                                  .from = t->type, .to = types[i], .from_bytes = t->size,
                                  .to_bytes = size, .note = notes[i]};
            memcpy(ev.ne, t->ne, sizeof ev.ne);
            progress(&ev, user);
        }
    }
    free(buf);
    if (!st) st = dz_gguf_writer_write_file(w, out_path);
done:
    dz_gguf_writer_destroy(w);
    return st;
}

dz_status dz_model_quantize(const char *in_path, const char *out_path, const dz_quantize_params *p,
                            dz_tensor_event_fn progress, void *user, dz_quantize_stats *stats) {
    if (!in_path || !out_path || !p) return dz_fail(DZ_ERR_ARG, "quantize: NULL argument");
    if (!dz_ftype_find(p->ftype))
        return dz_fail(DZ_ERR_ARG, "quantize: unknown target type '%s'", p->ftype ? p->ftype : "(null)");
    dz_gguf *in = NULL;
    dz_status st = dz_gguf_open(in_path, &in);
    if (st) return st;
    int64_t n = dz_gguf_n_tensors(in);
    dz_type *types = calloc((size_t)n + 1, sizeof *types);
    const char **notes = calloc((size_t)n + 1, sizeof *notes);
    dz_quantize_stats local = {0};
    if (!types || !notes) st = dz_fail(DZ_ERR_NOMEM, "out of memory");
    else if ((st = dz_quantize_plan(in, p, types, notes))) dz_error_prefix(st, "%s: ", in_path);
    else st = quantize(in, out_path, p, types, notes, progress, user, &local);
    if (!st && stats) *stats = local;
    free(types);
    free(notes);
    dz_gguf_close(in);
    return st;
}
