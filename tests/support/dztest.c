#include "dztest.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

int dzt_passed, dzt_failed;

int dzt_done(void) {
    printf("%d passed, %d failed\n", dzt_passed, dzt_failed);
    return dzt_failed == 0 && dzt_passed > 0 ? 0 : 1;
}

char *dzt_shared(const char *relative) {
    const char *dir = getenv("DZ_SHARED_DIR");
    if (!dir) dir = "../shared";
    size_t n = strlen(dir) + strlen(relative) + 2;
    char *path = malloc(n);
    if (!path) exit(1);
    snprintf(path, n, "%s/%s", dir, relative);
    if (access(path, R_OK) != 0) {
        const char *req = getenv("DZ_REQUIRE_SHARED");
        if (req && strcmp(req, "1") == 0) {
            printf("FAIL: reference data %s is missing (DZ_REQUIRE_SHARED=1)\n", path);
            exit(1);
        }
        printf("SKIP: reference data %s is absent (it lives in ../shared beside the checkout)\n", path);
        exit(77);
    }
    return path;
}

char *dzt_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap) break;
        char *bigger = realloc(buf, cap * 2 + 1);
        if (!bigger) { free(buf); buf = NULL; break; }
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[len] = '\0';
    if (size) *size = len;
    return buf;
}

const char *dzt_bin(void) {
    const char *bin = getenv("DZ_BIN");
    return bin ? bin : "./dizuo";
}

int dzt_run(const char *cmd, char **out, size_t *out_len) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t cap = 1 << 12, len = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len, p)) > 0) {
        len += got;
        if (len == cap) {
            char *bigger = realloc(buf, cap * 2 + 1);
            if (!bigger) { free(buf); buf = NULL; break; }
            buf = bigger;
            cap *= 2;
        }
    }
    int st = pclose(p);
    if (buf) buf[len] = '\0';
    if (out) *out = buf; else free(buf);
    if (out_len) *out_len = len;
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

const char *dzt_tmpdir(void) {
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/dztest.XXXXXX");
        if (!mkdtemp(dir)) exit(1);
    }
    return dir;
}

/* Reads fd to EOF into a malloc'd NUL-terminated buffer. */
static char *slurp_fd(int fd, size_t *len_out) {
    size_t cap = 1 << 12, len = 0;
    char *buf = malloc(cap + 1);
    ssize_t got;
    while (buf && (got = read(fd, buf + len, cap - len)) > 0) {
        len += (size_t)got;
        if (len == cap) {
            char *bigger = realloc(buf, cap * 2 + 1);
            if (!bigger) { free(buf); return NULL; }
            buf = bigger;
            cap *= 2;
        }
    }
    if (buf) buf[len] = '\0';
    if (len_out) *len_out = len;
    return buf;
}

int dzt_run_argv(char *const argv[], char **out, size_t *out_len, char **err) {
    char errpath[] = "/tmp/dztest-stderr.XXXXXX";
    int errfd = mkstemp(errpath);
    int pipefd[2];
    if (errfd < 0 || pipe(pipefd) != 0) return -1;
    unlink(errpath);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(pipefd[1], 1);
        dup2(errfd, 2);
        close(pipefd[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pipefd[1]);
    char *buf = slurp_fd(pipefd[0], out_len);
    close(pipefd[0]);
    int st;
    waitpid(pid, &st, 0);
    if (out) *out = buf; else free(buf);
    if (err) {
        lseek(errfd, 0, SEEK_SET);
        *err = slurp_fd(errfd, NULL);
    }
    close(errfd);
    if (!WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}
