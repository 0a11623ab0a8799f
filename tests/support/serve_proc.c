#include "serve_proc.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dztest.h"
#include "http_client.h"

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int decode_status(int st) {
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return -WTERMSIG(st);
    return -1;
}

bool dzt_server_alive(dzt_server *s, int *status) {
    if (s->pid <= 0) return false;
    int st;
    pid_t r = waitpid(s->pid, &st, WNOHANG);
    if (r == 0) return true;
    if (status) *status = r == s->pid ? decode_status(st) : -1;
    s->pid = 0;
    return false;
}

void dzt_server_print_log(const dzt_server *s, size_t bytes) {
    size_t len = 0;
    char *log = dzt_read_file(s->err_path, &len);
    if (!log) return;
    const char *tail = len > bytes ? log + len - bytes : log;
    fprintf(stderr, "---- %s (last %zu bytes) ----\n%s\n----\n", s->err_path, bytes, tail);
    free(log);
}

bool dzt_serve_available(void) {
    char *argv[] = {(char *)dzt_bin(), "serve", "--help", NULL};
    char *out = NULL, *err = NULL;
    int rc = dzt_run_argv(argv, &out, NULL, &err);
    bool wired = rc >= 0 && !(err && strstr(err, "unknown command")) && !(out && strstr(out, "unknown command"));
    free(out);
    free(err);
    return wired;
}

/* Looks for the listening line in the stdout file. */
static bool find_listening(dzt_server *s) {
    char *out = dzt_read_file(s->out_path, NULL);
    if (!out) return false;
    const char *key = "dizuo serve: listening on http://";
    /* the last occurrence: the file is appended to across restarts */
    const char *p = NULL;
    for (const char *q = strstr(out, key); q; q = strstr(q + 1, key)) p = q;
    bool ok = false;
    if (p) {
        p += strlen(key);
        /* the port's colon: the last one of this line (more lines may follow, e.g. a first admin key) */
        const char *eol = strchr(p, '\n'), *colon = NULL;
        for (const char *c = p; eol && c < eol; c++)
            if (*c == ':') colon = c;
        /* the line must be complete (flushed up to its newline) */
        if (eol && colon && colon < eol && (size_t)(colon - p) < sizeof s->host) {
            memcpy(s->host, p, (size_t)(colon - p));
            s->host[colon - p] = '\0';
            s->port = atoi(colon + 1);
            ok = s->port > 0;
        }
    }
    free(out);
    return ok;
}

int dzt_server_start(dzt_server *s, const char *tag, const char *const *args, int timeout_ms) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)dzt_bin();
    argv[argc++] = "serve";
    for (int i = 0; args[i] && argc < 63; i++) argv[argc++] = (char *)args[i];
    argv[argc] = NULL;

    memset(s, 0, sizeof *s);
    snprintf(s->out_path, sizeof s->out_path, "%s/%s.out", dzt_tmpdir(), tag);
    snprintf(s->err_path, sizeof s->err_path, "%s/%s.err", dzt_tmpdir(), tag);
    /* a fresh stdout file per start, so the listening line found is this run's */
    char old[300];
    snprintf(old, sizeof old, "%s.prev", s->out_path);
    rename(s->out_path, old);
    int out = open(s->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int err = open(s->err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (out < 0 || err < 0) {
        fprintf(stderr, "serve_proc: cannot create %s\n", s->out_path);
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(out, 1);
        dup2(err, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(out);
    close(err);
    s->pid = pid;
    long long deadline = dzt_now_ms() + timeout_ms;
    while (dzt_now_ms() < deadline) {
        if (find_listening(s)) return 0;
        int st = -1;
        if (!dzt_server_alive(s, &st)) {
            fprintf(stderr, "serve_proc: dizuo serve exited (%d) before listening\n", st);
            dzt_server_print_log(s, 2000);
            return -1;
        }
        sleep_ms(20);
    }
    fprintf(stderr, "serve_proc: dizuo serve did not print its listening line in %d ms\n", timeout_ms);
    dzt_server_print_log(s, 2000);
    dzt_server_stop(s, SIGKILL, 5000);
    return -1;
}

int dzt_server_stop(dzt_server *s, int sig, int timeout_ms) {
    if (s->pid <= 0) return -1;
    kill(s->pid, sig);
    long long deadline = dzt_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid) {
            s->pid = 0;
            return decode_status(st);
        }
        if (r < 0) {
            s->pid = 0;
            return -1;
        }
        if (dzt_now_ms() >= deadline) break;
        sleep_ms(10);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    return -1000;
}
