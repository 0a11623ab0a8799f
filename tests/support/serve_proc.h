/* Runs `dizuo serve` as a child process for tests: fork/exec of the binary
 * under test (dzt_bin()), stdout and stderr to files in the test's temporary
 * directory, the port read from the line
 *     dizuo serve: listening on http://HOST:PORT
 * and a stop by signal (SIGTERM for a clean shutdown, SIGKILL for a crash)
 * with waitpid. */
#ifndef DZT_SERVE_PROC_H
#define DZT_SERVE_PROC_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct dzt_server {
    pid_t pid;     /* 0 when not running */
    char host[64]; /* from the listening line */
    int port;
    char out_path[256], err_path[256]; /* the child's stdout / stderr */
} dzt_server;

/* Starts `dizuo serve ARGS...` (args NULL-terminated, not including
 * "serve"; pass --port 0) and waits up to timeout_ms for the listening line.
 * tag names the log files (<tmpdir>/<tag>.out, .err; appended to, so a
 * restart keeps the earlier logs). 0 when listening; -1 when the server
 * exited or did not listen in time (it is then killed, and the tail of its
 * stderr is printed). */
int dzt_server_start(dzt_server *s, const char *tag, const char *const *args, int timeout_ms);

/* Sends sig and waits up to timeout_ms for the exit (then SIGKILL).
 * Returns the exit code (>= 0), or -signal when a signal ended it, or -1000
 * when it had to be killed after the timeout. s->pid becomes 0. */
int dzt_server_stop(dzt_server *s, int sig, int timeout_ms);

/* Whether the server process is still running (reaps it when it is not;
 * *status, when given, receives the value dzt_server_stop would return). */
bool dzt_server_alive(dzt_server *s, int *status);

/* Whether the binary under test has a `serve` command yet (it does not
 * answer "unknown command" to `dizuo serve --help`). Tests skip (77) when not. */
bool dzt_serve_available(void);

/* Prints the last `bytes` of the server's stderr to our stderr. */
void dzt_server_print_log(const dzt_server *s, size_t bytes);

#endif
