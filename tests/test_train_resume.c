/* `dizuo train` as a program: a run killed with SIGKILL after a checkpoint
 * and resumed ends with the same weights, bit for bit, as an uninterrupted
 * run (same threads); bad input gets exit status 1 and a message naming
 * the defect; with ../shared's model as tokenizer, text data trains and the
 * exported model runs in `dizuo run`. */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dztest.h"

/* Runs dizuo with the arguments (NULL-terminated); captures stderr. */
static int run_list(char **err, const char *const *args) {
    char *argv[64] = {(char *)dzt_bin()};
    for (int i = 0; args[i] && i < 62; i++) argv[i + 1] = (char *)args[i];
    *err = NULL;
    return dzt_run_argv(argv, NULL, NULL, err);
}
#define RUN(err, ...) run_list(err, (const char *const[]){__VA_ARGS__, NULL})

/* An llm.c token shard of n tokens below 64: a learnable pattern. */
static void write_shard(const char *path, int32_t n) {
    FILE *f = fopen(path, "wb");
    int32_t header[256] = {20240520, 1, n};
    fwrite(header, sizeof header, 1, f);
    for (int32_t i = 0; i < n; i++) {
        uint16_t t = (uint16_t)((i * 7 + i / 13) % 64);
        fwrite(&t, 2, 1, f);
    }
    fclose(f);
}

static void write_bytes(const char *path, const char *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(bytes, 1, n, f);
    fclose(f);
}

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static bool same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *da = dzt_read_file(a, &na), *db = dzt_read_file(b, &nb);
    bool same = da && db && na == nb && memcmp(da, db, na) == 0;
    free(da);
    free(db);
    return same;
}

#define SHAPE "--dim", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--ffn", "128", "--ctx", "64", \
              "--vocab", "64"
#define RUNARGS "--steps", "40", "--batch", "4", "--seq", "32", "--lr", "3e-3", "--warmup", "4", "-t", "2", \
                "--save-every", "5"

static void test_resume(const char *dir, const char *shard) {
    char out_a[512], out_b[512], ckpt_a[512], ckpt_b[512], ckpt_file[600], log_a[512];
    /* Same file name in two directories: general.name comes from it. */
    snprintf(out_a, sizeof out_a, "%s/a/model.gguf", dir);
    snprintf(out_b, sizeof out_b, "%s/b/model.gguf", dir);
    char sub[520];
    snprintf(sub, sizeof sub, "%s/a", dir);
    DZT_ASSERT(mkdir(sub, 0700) == 0);
    snprintf(sub, sizeof sub, "%s/b", dir);
    DZT_ASSERT(mkdir(sub, 0700) == 0);
    snprintf(ckpt_a, sizeof ckpt_a, "%s/a.ckpt", dir);
    snprintf(ckpt_b, sizeof ckpt_b, "%s/b.ckpt", dir);
    snprintf(ckpt_file, sizeof ckpt_file, "%s/checkpoint.gguf", ckpt_b);
    snprintf(log_a, sizeof log_a, "%s/a.jsonl", dir);

    /* the uninterrupted run */
    char *err;
    int rc = RUN(&err, "train", SHAPE, RUNARGS, "--data", shard, "-o", out_a, "--checkpoint-dir", ckpt_a, "--log",
                 log_a);
    DZT_EQ_INT(rc, 0);
    if (rc) fprintf(stderr, "%s\n", err ? err : "");
    free(err);
    size_t n_log = 0;
    char *log = dzt_read_file(log_a, &n_log);
    DZT_ASSERT(log && strstr(log, "\"step\": 40,") && strstr(log, "\"grad_norm\"") && strstr(log, "\"tokens_per_s\""));
    free(log);
    char svg[600];
    snprintf(svg, sizeof svg, "%s/a/model.loss.svg", dir);
    char *svgt = dzt_read_file(svg, NULL);
    DZT_ASSERT(svgt && strstr(svgt, "<svg") && strstr(svgt, "<polyline"));
    free(svgt);

    /* the same run, killed once its first checkpoint exists */
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        const char *argv[] = {dzt_bin(), "train", SHAPE, RUNARGS, "--data", shard, "-o", out_b, "--checkpoint-dir",
                              ckpt_b, NULL};
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    DZT_ASSERT(pid > 0);
    for (int i = 0; i < 60000 && !exists(ckpt_file); i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    fprintf(stderr, "first run %s\n", killed ? "killed by SIGKILL after a checkpoint" : "finished before the kill");
    DZT_ASSERT(exists(ckpt_file));
    if (killed) DZT_ASSERT(!exists(out_b));

    rc = RUN(&err, "train", SHAPE, RUNARGS, "--data", shard, "-o", out_b, "--resume", ckpt_b);
    DZT_EQ_INT(rc, 0);
    if (rc) fprintf(stderr, "%s\n", err ? err : "");
    DZT_CHECK(err && !strstr(err, "resumes with other settings"), "a resume with the same settings warned: %s",
              err ? err : "");
    free(err);
    DZT_CHECK(same_file(out_a, out_b), "resumed weights %s differ from the uninterrupted run's %s", out_b, out_a);
    char fa[600], fb[600];
    snprintf(fa, sizeof fa, "%s/checkpoint.gguf", ckpt_a);
    snprintf(fb, sizeof fb, "%s/checkpoint.gguf", ckpt_b);
    DZT_CHECK(same_file(fa, fb), "final checkpoints differ");
    /* the resumed run's loss curve covers every step (the history comes with the checkpoint) */
    char svg_b[600];
    snprintf(svg_b, sizeof svg_b, "%s/b/model.loss.svg", dir);
    DZT_CHECK(same_file(svg, svg_b), "the resumed run's loss curve %s differs from the uninterrupted run's %s", svg_b,
              svg);

    /* a resume that changes an optimizer setting goes on, warning by name */
    char out_c[520];
    snprintf(out_c, sizeof out_c, "%s/c.gguf", dir);
    rc = RUN(&err, "train", SHAPE, "--steps", "40", "--batch", "4", "--seq", "32", "--lr", "1e-3", "--warmup", "4",
             "-t", "2", "--data", shard, "-o", out_c, "--resume", ckpt_b);
    DZT_EQ_INT(rc, 0);
    DZT_CHECK(err && strstr(err, "resumes with other settings") && strstr(err, "--lr 0.001 (was 0.003)"),
              "no warning naming the changed --lr: %s", err ? err : "");
    free(err);

    /* a checkpoint of another shape, another batch, other data */
    rc = RUN(&err, "train", "--dim", "32", "--layers", "2", "--heads", "4", "--ffn", "128", "--ctx", "64", "--vocab",
             "64", RUNARGS, "--data", shard, "--resume", ckpt_b);
    DZT_EQ_INT(rc, 1);
    DZT_ASSERT(err && strstr(err, "checkpoint") && strstr(err, "dim 64") && strstr(err, "dim 32"));
    free(err);
    rc = RUN(&err, "train", "--steps", "40", "--batch", "8", "--data", shard, "--resume", ckpt_b);
    DZT_EQ_INT(rc, 1);
    DZT_ASSERT(err && strstr(err, "--batch 4"));
    free(err);
    char other[512];
    snprintf(other, sizeof other, "%s/other.bin", dir);
    write_shard(other, 3001);
    rc = RUN(&err, "train", "--steps", "40", "--data", other, "--resume", ckpt_b);
    DZT_EQ_INT(rc, 1);
    DZT_ASSERT(err && strstr(err, "not the data"));
    free(err);
}

static void test_bad_input(const char *dir, const char *shard) {
    char path[512], *err;
    int rc;
    /* empty data */
    snprintf(path, sizeof path, "%s/empty.txt", dir);
    write_bytes(path, "", 0);
    rc = RUN(&err, "train", SHAPE, "--steps", "2", "--data", path);
    DZT_EQ_INT(rc, 1);
    DZT_ASSERT(err && strstr(err, "empty.txt") && strstr(err, "no tokens"));
    free(err);
    /* too short for one batch */
    snprintf(path, sizeof path, "%s/short.bin", dir);
    write_shard(path, 50);
    rc = RUN(&err, "train", SHAPE, "--steps", "2", "--batch", "4", "--seq", "32", "--data", path);
    DZT_EQ_INT(rc, 1);
    DZT_ASSERT(err && strstr(err, "short.bin") && strstr(err, "50 tokens") && strstr(err, "129"));
    free(err);
    /* a truncated shard */
    snprintf(path, sizeof path, "%s/trunc.bin", dir);
    int32_t header[256] = {20240520, 1, 1000};
    write_bytes(path, (const char *)header, sizeof header);
    rc = RUN(&err, "train", SHAPE, "--steps", "2", "--data", path);
    DZT_EQ_INT(rc, 1);
    DZT_ASSERT(err && strstr(err, "trunc.bin") && strstr(err, "1000 tokens"));
    free(err);
    /* non-UTF-8 text: the file and the offset */
    snprintf(path, sizeof path, "%s/latin1.txt", dir);
    write_bytes(path, "caf\xe9 au lait", 12);
    rc = RUN(&err, "train", SHAPE, "--steps", "2", "--data", path);
    DZT_EQ_INT(rc, 1);
    DZT_ASSERT(err && strstr(err, "latin1.txt") && strstr(err, "UTF-8") && strstr(err, "offset 3"));
    free(err);
    /* shapes that do not fit */
    rc = RUN(&err, "train", "--dim", "64", "--layers", "2", "--heads", "5", "--ffn", "128", "--ctx", "64", "--vocab",
             "64", "--steps", "2", "--data", shard);
    DZT_EQ_INT(rc, 1);
    DZT_ASSERT(err && strstr(err, "5 heads do not divide the width 64"));
    free(err);
    rc = RUN(&err, "train", SHAPE, "--steps", "2", "--seq", "128", "--data", shard);
    DZT_EQ_INT(rc, 1);
    DZT_ASSERT(err && strstr(err, "--seq 128") && strstr(err, "context of 64"));
    free(err);
    rc = RUN(&err, "train", "--dim", "64", "--layers", "2", "--heads", "4", "--kv-heads", "3", "--ffn", "128", "--ctx",
             "64", "--vocab", "64", "--steps", "2", "--data", shard);
    DZT_EQ_INT(rc, 1);
    DZT_ASSERT(err && strstr(err, "3 kv heads"));
    free(err);
    /* usage errors */
    rc = RUN(&err, "train", SHAPE, "--data", shard);
    DZT_EQ_INT(rc, 2);
    DZT_ASSERT(err && strstr(err, "--steps"));
    free(err);
    rc = RUN(&err, "train", SHAPE, "--steps", "2", "--data", shard, "--schedule", "linear");
    DZT_EQ_INT(rc, 2);
    free(err);
    rc = RUN(&err, "train", SHAPE, "--steps", "2", "--data", shard, "--doc-sep", "\\q");
    DZT_EQ_INT(rc, 2);
    DZT_ASSERT(err && strstr(err, "--doc-sep") && strstr(err, "unknown escape"));
    free(err);
    /* a directory without a checkpoint */
    rc = RUN(&err, "train", "--steps", "2", "--data", shard, "--resume", dir);
    DZT_EQ_INT(rc, 1);
    DZT_ASSERT(err && strstr(err, "checkpoint.gguf"));
    free(err);
}

/* Text data with a real tokenizer; the exported model generates in dizuo run. */
static void test_text(const char *dir) {
    const char *shared = getenv("DZ_SHARED_DIR");
    char tok[1024], text[512], out[512];
    snprintf(tok, sizeof tok, "%s/models/stories260K.gguf", shared ? shared : "../shared");
    if (!exists(tok)) {
        fprintf(stderr, "(text part skipped: %s absent)\n", tok);
        return;
    }
    snprintf(text, sizeof text, "%s/story.txt", dir);
    snprintf(out, sizeof out, "%s/story.gguf", dir);
    FILE *f = fopen(text, "w");
    for (int i = 0; i < 40; i++) fprintf(f, "Once upon a time, there was a little cat. The cat liked to play. ");
    fclose(f);
    char *err;
    int rc = RUN(&err, "train", "--dim", "32", "--layers", "1", "--heads", "2", "--ffn", "64", "--ctx", "32",
                 "--tokenizer", tok, "--data", text, "--steps", "3", "--batch", "2", "--seq", "16", "-t", "2", "-o",
                 out, "--out-type", "f16");
    DZT_EQ_INT(rc, 0);
    if (rc) fprintf(stderr, "%s\n", err ? err : "");
    free(err);
    char *argv[] = {(char *)dzt_bin(), "run", "-m", out, "-p", "Once upon", "-n", "4", "--temp", "0", NULL};
    char *gen = NULL;
    rc = dzt_run_argv(argv, &gen, NULL, &err);
    DZT_EQ_INT(rc, 0);
    DZT_ASSERT(gen && !strncmp(gen, "Once upon", 9));
    if (rc) fprintf(stderr, "%s\n", err ? err : "");
    free(gen);
    free(err);
}

int main(void) {
    const char *dir = dzt_tmpdir();
    char shard[512];
    snprintf(shard, sizeof shard, "%s/data.bin", dir);
    write_shard(shard, 3000);
    test_resume(dir, shard);
    test_bad_input(dir, shard);
    test_text(dir);
    return dzt_done();
}
