/* Data-parallel `dizuo train` under mpirun: 2 ranks with --batch B end with
 * the same weights, within 1e-5 relative, as 1 rank with --batch 2B (in
 * stream order and shuffled, with gradient accumulation); only rank 0
 * writes and logs; a 2-rank checkpoint resumes under 2 ranks and under 1
 * rank with the global batch; a failure on one rank ends the job instead of
 * hanging it. Skips (77) when mpirun or dizuo's MPI support is absent;
 * with DZ_REQUIRE_SHARED=1 (CI, which installs OpenMPI) that fails. */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dizuo/gguf.h"
#include "dztest.h"

/* An executable named `name` on PATH, or NULL (a static buffer, valid
 * until the next call). */
static const char *which(const char *name) {
    static char buf[1024];
    const char *path = getenv("PATH");
    if (!path) return NULL;
    for (const char *p = path; *p;) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 0 && n < 900) {
            snprintf(buf, 1024, "%.*s/%s", (int)n, p, name);
            if (access(buf, X_OK) == 0) return buf;
        }
        p += n + (end ? 1 : 0);
    }
    return NULL;
}

/* Skips with a reason, or fails when CI requires everything. */
static int skip(const char *why) {
    const char *req = getenv("DZ_REQUIRE_SHARED");
    if (req && !strcmp(req, "1")) {
        printf("FAIL: %s (DZ_REQUIRE_SHARED=1)\n", why);
        return 1;
    }
    printf("SKIP: %s\n", why);
    return 77;
}

/* An llm.c token shard of n tokens below 64: a learnable pattern. */
static void write_shard(const char *path, int32_t n) {
    FILE *f = fopen(path, "wb");
    int32_t header[256] = {20240520, 1, n};
    fwrite(header, sizeof header, 1, f);
    for (int32_t i = 0; i < n; i++) {
        uint16_t t = (uint16_t)((i * 7 + i / 13 + (i * i) % 5) % 64);
        fwrite(&t, 2, 1, f);
    }
    fclose(f);
}

static char mpirun[1024], timeout_bin[1024], asan_env[1024];

/* mpirun's options: P ranks on this machine whatever its core count, as
 * root or not, in a container without shared-memory single-copy (CMA),
 * without binding ranks to cores. */
#define MPI_OPTS "--oversubscribe", "--allow-run-as-root", "--bind-to", "none", "--mca", \
                 "btl_vader_single_copy_mechanism", "none"

/* Runs argv (NULL-terminated, argv[0] absolute); stderr into *err. An
 * mpirun job runs under `timeout 120` when there is one (a hung job fails
 * instead of stalling the suite), its ranks without LeakSanitizer (sanitizer
 * builds: Open MPI leaks its plugins' memory at exit, which dizuo cannot
 * free; the one-rank runs keep the check). */
static int run(char **err, const char *const *args) {
    char *argv[96];
    int n = 0;
    if (timeout_bin[0] && args[0] == mpirun) {
        argv[n++] = timeout_bin;
        argv[n++] = "120";
    }
    for (int i = 0; args[i] && n < 93; i++) {
        argv[n++] = (char *)args[i];
        if (i == 0 && args[0] == mpirun) {
            argv[n++] = "-x";
            argv[n++] = asan_env;
        }
    }
    argv[n] = NULL;
    *err = NULL;
    return dzt_run_argv(argv, NULL, NULL, err);
}
/* dizuo train ... as 1 rank, and as NP ranks under mpirun */
#define TRAIN1(err, ...) run(err, (const char *const[]){dzt_bin(), "train", __VA_ARGS__, NULL})
#define TRAINP(err, np, ...) \
    run(err, (const char *const[]){mpirun, MPI_OPTS, "-np", np, dzt_bin(), "train", __VA_ARGS__, NULL})

#define SHAPE "--dim", "32", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--ffn", "64", "--ctx", "16", \
              "--vocab", "64", "--seq", "16", "-t", "1", "--lr", "1e-4"

/* Every tensor of a and b: same names and shapes, F32 values within
 * |x - y| <= rel * max(|x|, |y|) + 1e-7 (weights are ~0.02; the absolute
 * term covers those that pass near zero). Returns the largest relative
 * difference of elements above 1e-3 in size, or -1 on a mismatch.
 *
 * Why not bit for bit: one rank sums the gradients of its 2B rows in row
 * order, two ranks sum B rows each and then add the two means, so float
 * rounding differs by ~1e-7 relative; AdamW's first steps move a weight by
 * about lr * g / (|g| + eps), which magnifies that for the few gradient
 * elements near eps = 1e-8 (at init, some attention gradients). The
 * difference grows with lr: 1e-4 keeps it ~10x under the tolerance. */
static double compare(const char *a, const char *b, double rel) {
    dz_gguf *ga = NULL, *gb = NULL;
    double worst = 0;
    DZT_OK(dz_gguf_open(a, &ga));
    DZT_OK(dz_gguf_open(b, &gb));
    if (!ga || !gb) {
        dz_gguf_close(ga);
        dz_gguf_close(gb);
        return -1;
    }
    DZT_EQ_INT(dz_gguf_n_tensors(ga), dz_gguf_n_tensors(gb));
    int64_t bad = 0, total = 0;
    for (int64_t i = 0; i < dz_gguf_n_tensors(ga); i++) {
        const dz_gguf_tensor *ta = dz_gguf_tensor_at(ga, i), *tb = dz_gguf_find_tensor(gb, ta->name);
        DZT_CHECK(tb && tb->type == DZ_TYPE_F32 && ta->type == DZ_TYPE_F32 && tb->size == ta->size,
                  "tensor %s: missing in %s or of another type or shape", ta->name, b);
        if (!tb || tb->size != ta->size || ta->type != DZ_TYPE_F32 || tb->type != DZ_TYPE_F32) {
            bad++;
            continue;
        }
        const size_t n = ta->size / sizeof(float);
        for (size_t j = 0; j < n; j++) {
            float x, y;
            memcpy(&x, (const char *)ta->data + j * 4, 4);
            memcpy(&y, (const char *)tb->data + j * 4, 4);
            double d = fabs((double)x - y), m = fmax(fabs(x), fabs(y));
            total++;
            if (!(d <= rel * m + 1e-7)) {
                if (bad++ < 5)
                    fprintf(stderr, "%s[%zu]: %.9g vs %.9g (relative %.3g)\n", ta->name, j, x, y, d / m);
            }
            if (m > 1e-3 && d / m > worst) worst = d / m;
        }
    }
    DZT_CHECK(bad == 0, "%s vs %s: %lld of %lld weights differ by more than %g relative", a, b, (long long)bad,
              (long long)total, rel);
    dz_gguf_close(ga);
    dz_gguf_close(gb);
    return bad ? -1 : worst;
}

/* Reads `"key": number` of every line of a JSONL log into v (at most cap). */
static int log_values(const char *log, const char *key, double *v, int cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    int n = 0;
    for (const char *p = log ? strstr(log, pat) : NULL; p && n < cap; p = strstr(p + 1, pat))
        v[n++] = strtod(p + strlen(pat), NULL);
    return n;
}

/* The logged loss and gradient norm of every step agree: rank 0 logs the
 * mean loss over all ranks and the norm of the averaged gradient. */
static void compare_logs(const char *a, const char *b) {
    char *la = dzt_read_file(a, NULL), *lb = dzt_read_file(b, NULL);
    static const char *const keys[] = {"loss", "grad_norm", "lr"};
    for (int k = 0; k < 3; k++) {
        double va[8], vb[8];
        int na = log_values(la, keys[k], va, 8), nb = log_values(lb, keys[k], vb, 8);
        DZT_CHECK(na == 5 && nb == 5, "%s: %d and %d values in the logs", keys[k], na, nb);
        for (int i = 0; i < na && i < nb; i++) /* printed with 6 decimals */
            DZT_CHECK(fabs(va[i] - vb[i]) <= 1e-5 * fabs(vb[i]) + 2e-6, "step %d %s: %.6f (2 ranks) vs %.6f (1 rank)",
                      i + 1, keys[k], va[i], vb[i]);
    }
    free(la);
    free(lb);
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay ? strstr(hay, needle) : NULL; p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* Prints a failed command's stderr. */
static void show(int rc, const char *err) {
    if (rc) fprintf(stderr, "exit %d:\n%s\n", rc, err ? err : "");
}

int main(void) {
    const char *m = which("mpirun");
    if (!m) return skip("mpirun is not installed (Debian: openmpi-bin)");
    /* its real path: Open MPI derives its prefix from it, and /bin/mpirun
     * (a merged /usr) gives the prefix "/", which it refuses */
    char *real = realpath(m, NULL);
    snprintf(mpirun, sizeof mpirun, "%s", real ? real : m);
    free(real);
    const char *t = which("timeout");
    if (t) snprintf(timeout_bin, sizeof timeout_bin, "%s", t);
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(asan_env, sizeof asan_env, "ASAN_OPTIONS=%s%sdetect_leaks=0", asan ? asan : "", asan && *asan ? ":" : "");

    const char *dir = dzt_tmpdir();
    char shard[512], p[11][600];
    snprintf(shard, sizeof shard, "%s/data.bin", dir);
    write_shard(shard, 3000);
    /* Models as m.gguf in a directory each: general.name comes from the file
     * name, and the comparisons below are of whole files. */
    const char *names[11] = {"a/m.gguf", "b/m.gguf", "c/m.gguf", "d/m.gguf", "a.jsonl", "e.ckpt", "e/m.gguf", "f/m.gguf",
                             "missing.bin", "g/m.gguf", "b.jsonl"};
    for (int i = 0; i < 11; i++) {
        snprintf(p[i], sizeof p[i], "%s/%s", dir, names[i]);
        const char *slash = strchr(names[i], '/');
        if (!slash) continue;
        char sub[600];
        snprintf(sub, sizeof sub, "%s/%.*s", dir, (int)(slash - names[i]), names[i]);
        DZT_ASSERT(mkdir(sub, 0700) == 0);
    }
    char *err = NULL;

    /* can mpirun start 2 processes here at all? */
    int rc = run(&err, (const char *const[]){mpirun, MPI_OPTS, "-np", "2", dzt_bin(), "train", "--help", NULL});
    if (rc) {
        fprintf(stderr, "%s\n", err ? err : "");
        free(err);
        return skip("mpirun cannot start 2 processes on this machine (its output is above)");
    }
    free(err);

    /* 2 ranks x batch 2 vs 1 rank x batch 4, in stream order */
    rc = TRAINP(&err, "2", SHAPE, "--batch", "2", "--steps", "5", "--no-shuffle", "--data", shard, "-o", p[0],
                    "--log", p[4]);
    if (rc && err && strstr(err, "built without MPI")) {
        free(err);
        return skip("this dizuo was built without MPI (DZ_MPI=OFF: no libopenmpi-dev at configure time)");
    }
    show(rc, err);
    DZT_EQ_INT(rc, 0);
    /* rank 0 alone reports, logs and writes */
    DZT_CHECK(count(err, "train: llama") == 1 && count(err, "step 5/5") == 1 && count(err, "wrote ") == 1,
              "expected one header, one last step and one 'wrote' line, got:\n%s", err ? err : "");
    DZT_ASSERT(err && strstr(err, "4 x 16 tokens per step (2 ranks x 2 rows)"));
    free(err);
    char *log = dzt_read_file(p[4], NULL);
    DZT_CHECK(count(log, "\"step\"") == 5 && count(log, "\"step\": 5,") == 1, "log: %s", log ? log : "(none)");
    free(log);
    rc = TRAIN1(&err, SHAPE, "--batch", "4", "--steps", "5", "--no-shuffle", "--data", shard, "-o", p[1],
                "--log", p[10]);
    show(rc, err);
    DZT_EQ_INT(rc, 0);
    free(err);
    double w1 = compare(p[0], p[1], 1e-5);
    compare_logs(p[4], p[10]);
    fprintf(stderr, "in order: 2 ranks x 2 rows vs 1 rank x 4 rows, largest relative difference %.3g\n", w1);

    /* shuffled, 2 micro-steps per step */
    rc = TRAINP(&err, "2", SHAPE, "--batch", "2", "--grad-accum", "2", "--steps", "5", "--seed", "7", "--data", shard,
                "-o", p[2], "--save-every", "3", "--checkpoint-dir", p[5]);
    show(rc, err);
    DZT_EQ_INT(rc, 0);
    free(err);
    rc = TRAIN1(&err, SHAPE, "--batch", "4", "--grad-accum", "2", "--steps", "5", "--seed", "7", "--data", shard, "-o",
                p[3]);
    show(rc, err);
    DZT_EQ_INT(rc, 0);
    free(err);
    double w2 = compare(p[2], p[3], 1e-5);
    fprintf(stderr, "shuffled, accumulated: 2 ranks x 2 rows x 2 vs 1 rank x 4 rows x 2, largest relative difference %.3g\n",
            w2);

    /* the checkpoint of step 3 resumes under 2 ranks, and under 1 rank with the global batch */
    rc = TRAINP(&err, "2", SHAPE, "--steps", "5", "--data", shard, "-o", p[6], "--resume", p[5]);
    show(rc, err);
    DZT_EQ_INT(rc, 0);
    DZT_ASSERT(err && strstr(err, "steps 4..5"));
    free(err);
    /* the same reduction in the same order: bit for bit, as a one-rank resume is */
    size_t nx = 0, ny = 0;
    char *x = dzt_read_file(p[6], &nx), *y = dzt_read_file(p[2], &ny);
    DZT_CHECK(x && y && nx == ny && !memcmp(x, y, nx), "the resumed 2-rank run %s differs from the uninterrupted %s",
              p[6], p[2]);
    free(x);
    free(y);
    rc = TRAIN1(&err, SHAPE, "--steps", "5", "--data", shard, "-o", p[7], "--resume", p[5]);
    show(rc, err);
    DZT_EQ_INT(rc, 0);
    free(err);
    compare(p[7], p[3], 1e-5);
    /* 3 ranks cannot share its batch of 4 rows */
    rc = TRAINP(&err, "3", SHAPE, "--steps", "5", "--data", shard, "-o", p[9], "--resume", p[5]);
    DZT_CHECK(rc != 0 && err && strstr(err, "3 ranks cannot share"), "exit %d: %s", rc, err ? err : "");
    free(err);

    /* one rank fails (its data file is missing) while the other waits in a collective: the job ends */
    if (timeout_bin[0]) {
        const char *const argv[] = {mpirun, MPI_OPTS, "-np", "1", dzt_bin(), "train", SHAPE,
                                    "--batch", "2", "--steps", "5", "--data", shard, "-o", p[9], ":", "-np", "1",
                                    dzt_bin(), "train", SHAPE, "--batch", "2", "--steps", "5", "--data", p[8], "-o",
                                    p[9], NULL};
        rc = run(&err, argv);
        DZT_CHECK(rc != 0 && rc != 124 && rc != -1, "a job with a failing rank ended with %d (124: it hung)", rc);
        DZT_ASSERT(err && strstr(err, "missing.bin"));
        free(err);
        struct stat sb;
        DZT_ASSERT(stat(p[9], &sb) != 0);
    }
    return dzt_done();
}
