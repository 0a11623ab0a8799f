/* dizuo serve: the OpenAI-compatible model service (see docs/serve.md). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "dizuo/tenancy.h"
#include "serve/serve.h"

int dz_cmd_serve(int argc, char **argv);

static void usage(FILE *out) {
    fprintf(out,
            "usage: dizuo serve -m MODEL.gguf [--host 127.0.0.1] [--port 8080] [--db dizuo.db] [-t THREADS]\n"
            "                   [--parallel 8] [-c CTX] [--device NAME] [--kv-blocks N] [--model-name NAME] [--config FILE.json]\n"
            "                   [--admin-key-file FILE] [--access-log FILE] [--chat-template NAME]\n"
            "                   [--lora ADAPTER.gguf [--lora-scale S]]\n"
            "                   [--log-level error|warn|info|debug]\n"
            "\n"
            "Serves the model over an OpenAI-compatible HTTP API (chat, completions, embeddings, models),\n"
            "with API keys, token quotas and a usage ledger in the --db SQLite file. Prints\n"
            "'dizuo serve: listening on http://HOST:PORT' once ready. SIGTERM / SIGINT drain and stop.\n"
            "\n"
            "  -m, --model FILE        the GGUF model to serve\n"
            "  --host ADDR             address to listen on (default 127.0.0.1)\n"
            "  --port N                port (default 8080; 0 picks a free one)\n"
            "  --db FILE               the key and usage ledger (default dizuo.db; created when absent)\n"
            "  -t, --threads N         compute threads (default: the device's)\n"
            "  --device NAME           device of the model and its KV cache (default cpu; see dizuo devices)\n"
            "  --parallel N            sequences decoding at once (default 8)\n"
            "  -c, --ctx N             positions per sequence (default: the model's, at most 4096)\n"
            "  --kv-blocks N           KV cache blocks of 16 positions (default: parallel x ctx)\n"
            "  --model-name NAME       the model id clients use (default: file name without .gguf;\n"
            "                          \"default\" is always accepted too)\n"
            "  --config FILE           JSON configuration (keys like the long flags, with _; the limits\n"
            "                          max_body_bytes, max_connections, max_connections_per_ip,\n"
            "                          idle_timeout_s, request_timeout_s, drain_timeout_s, max_stop, ...);\n"
            "                          flags override it\n"
            "  --admin-key-file FILE   where the first admin key goes (mode 0600) instead of stdout\n"
            "  --access-log FILE       JSON access log (default: stderr)\n"
            "  --chat-template NAME    built-in template for models without one (default chatml)\n"
            "  --lora FILE             apply a LoRA adapter (llama.cpp's adapter GGUF, e.g. from dizuo finetune)\n"
            "  --lora-scale S          the adapter's scale (default 1)\n"
            "  --log-level LEVEL       error, warn, info (default) or debug\n"
            "  -h, --help              this text\n");
}

static bool parse_level(const char *text, int32_t *out) {
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(text, names[i])) {
            *out = i;
            return true;
        }
    fprintf(stderr, "dizuo serve: --log-level must be error, warn, info or debug, got '%s'\n", text);
    return false;
}

/* Applies the flags to c; returns an exit code, or -1 to go on. */
static int parse_flags(int argc, char **argv, dz_serve_config *c) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        long long n = 0;
        char **str = NULL;
        int32_t *num = NULL;
        long long lo = 0, hi = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return DZ_EXIT_OK;
        }
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) str = &c->model;
        else if (!strcmp(a, "--host")) str = &c->host;
        else if (!strcmp(a, "--db")) str = &c->db;
        else if (!strcmp(a, "--model-name")) str = &c->model_name;
        else if (!strcmp(a, "--admin-key-file")) str = &c->admin_key_file;
        else if (!strcmp(a, "--access-log")) str = &c->access_log;
        else if (!strcmp(a, "--chat-template")) str = &c->chat_template;
        else if (!strcmp(a, "--lora")) str = &c->lora;
        else if (!strcmp(a, "--device")) str = &c->device;
        else if (!strcmp(a, "--lora-scale")) {
            if (!(v = dz_arg_value("serve", argc, argv, &i))) return DZ_EXIT_USAGE;
            char *end = NULL;
            c->lora_scale = strtod(v, &end);
            if (end == v || *end || !(c->lora_scale >= 0 && c->lora_scale <= 100)) {
                fprintf(stderr, "dizuo serve: --lora-scale must be a number in 0..100, got '%s'\n", v);
                return DZ_EXIT_USAGE;
            }
            continue;
        }
        else if (!strcmp(a, "--port")) num = &c->port, lo = 0, hi = 65535;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) num = &c->threads, lo = 0, hi = 1024;
        else if (!strcmp(a, "--parallel") || !strcmp(a, "-np")) num = &c->parallel, lo = 1, hi = 1024;
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) num = &c->ctx, lo = 0, hi = 1 << 20;
        else if (!strcmp(a, "--kv-blocks")) num = &c->kv_blocks, lo = 0, hi = 1 << 24;
        else if (!strcmp(a, "--config") || !strcmp(a, "--log-level")) {
            if (!(v = dz_arg_value("serve", argc, argv, &i))) return DZ_EXIT_USAGE;
            if (a[2] == 'l' && !parse_level(v, &c->log_level)) return DZ_EXIT_USAGE;
            continue; /* --config was read first */
        } else {
            fprintf(stderr, "dizuo serve: unexpected argument '%s' (see dizuo serve --help)\n", a);
            return DZ_EXIT_USAGE;
        }
        if (!(v = dz_arg_value("serve", argc, argv, &i))) return DZ_EXIT_USAGE;
        if (str && dz_serve_config_set_str(str, v)) return dz_cli_error("serve");
        if (num) {
            if (!dz_arg_int("serve", a, v, lo, hi, &n)) return DZ_EXIT_USAGE;
            *num = (int32_t)n;
        }
    }
    return -1;
}

/* Creates a first admin key when the ledger has no active one, and shows it
 * once (stdout or --admin-key-file). */
static int bootstrap_admin(dz_ledger *l, const dz_serve_config *c, const char *url) {
    dz_key_info *keys = NULL;
    size_t n = 0;
    if (dz_ledger_key_list(l, &keys, &n)) return dz_cli_error("serve");
    bool have = false;
    for (size_t i = 0; i < n; i++) have |= keys[i].admin && !keys[i].revoked;
    free(keys);
    if (have) return DZ_EXIT_OK;
    dz_key_spec spec = {.tenant = "admin", .admin = true};
    char key[DZ_KEY_LEN + 1];
    int64_t id = 0;
    if (dz_ledger_key_create(l, &spec, key, &id)) return dz_cli_error("serve");
    if (c->admin_key_file) {
        int fd = open(c->admin_key_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!f || fchmod(fd, 0600) || fprintf(f, "%s\n", key) < 0 || fclose(f)) {
            fprintf(stderr, "dizuo serve: cannot write the admin key to %s: %s\n", c->admin_key_file, strerror(errno));
            if (!f && fd >= 0) close(fd);
            return DZ_EXIT_ERROR;
        }
        printf("admin key (shown once) written to %s\n", c->admin_key_file);
    } else {
        printf("admin key (shown once): %s\n", key);
    }
    printf("try: curl %s/v1/chat/completions -H \"Authorization: Bearer %s\" \\\n"
           "       -H 'Content-Type: application/json' \\\n"
           "       -d '{\"model\":\"default\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'\n",
           url, c->admin_key_file ? "$(cat KEYFILE)" : key);
    fflush(stdout);
    return DZ_EXIT_OK;
}

int dz_cmd_serve(int argc, char **argv) {
    dz_serve_config c;
    if (dz_serve_config_init(&c)) return dz_cli_error("serve");
    int rc = DZ_EXIT_USAGE;
    for (int i = 1; i < argc; i++) /* the file first, so that flags override it */
        if (!strcmp(argv[i], "--config") && i + 1 < argc && dz_serve_config_load(&c, argv[i + 1])) {
            rc = dz_cli_error("serve");
            goto out;
        }
    if ((rc = parse_flags(argc, argv, &c)) >= 0) goto out;
    if (!c.model) {
        fprintf(stderr, "dizuo serve: -m MODEL.gguf is required (see dizuo serve --help)\n");
        rc = DZ_EXIT_USAGE;
        goto out;
    }
    dz_log_set_level(c.log_level);
    /* signals go to sigwait below: block them before any thread starts
     * (a driver may start threads as soon as its devices are counted) */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if (c.device && !dz_arg_device("serve", c.device)) {
        rc = DZ_EXIT_USAGE;
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    dz_server *s = NULL;
    if (dz_server_create(&c, &s) || dz_server_start(s, true)) {
        rc = dz_cli_error("serve");
        dz_server_destroy(s);
        goto out;
    }
    const char *host = strchr(c.host, ':') ? NULL : c.host;
    char url[300];
    snprintf(url, sizeof url, host ? "http://%s:%u" : "http://[%s]:%u", c.host, (unsigned)dz_server_port(s));
    dz_log(DZ_LOG_INFO, "serve: model '%s' from %s\n", dz_server_model_name(s), c.model);
    printf("dizuo serve: listening on %s\n", url);
    fflush(stdout);
    if ((rc = bootstrap_admin(dz_server_ledger(s), &c, url)) != DZ_EXIT_OK) {
        dz_server_destroy(s);
        goto out;
    }
    int sig = 0;
    sigwait(&sigs, &sig);
    dz_log(DZ_LOG_INFO, "serve: %s: draining (up to %d s), then stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
           c.drain_timeout_s);
    dz_server_destroy(s);
    dz_log(DZ_LOG_INFO, "serve: stopped\n");
    rc = DZ_EXIT_OK;
out:
    dz_serve_config_clear(&c);
    return rc;
}
