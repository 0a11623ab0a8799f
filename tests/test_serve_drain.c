/* The drain's registration race (src/serve/server.c): a generation handler
 * checks that the server is not draining, then (after tokenizing and
 * reserving quota) registers its engine work for the drain to cancel. A
 * drain that starts in between must not miss it: dz_server_active_add
 * refuses once draining is set, in the same step, so every registered
 * request is cancelled and the drain ends at once instead of waiting for
 * requests it never cancelled.
 *
 * Emulates handlers with a wide window between the check and the
 * registration, on a server without a model (no ../shared needed). */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "dztest.h"
#include "serve/serve_impl.h"

enum { N_THREADS = 4, WINDOW_MS = 20 };

typedef struct fake_req {
    dz_active active; /* first */
    atomic_bool cancelled;
} fake_req;

static dz_server *g_srv;
static atomic_int g_registered, g_refused, g_cancelled, g_missed;

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void fake_cancel(dz_active *a) { atomic_store(&((fake_req *)(void *)a)->cancelled, true); }

/* A handler: check, a window (tokenize, reserve), register, then "run"
 * until cancelled (at most 2 s while draining), unregister. Loops until refused. */
static void *handler_main(void *arg) {
    (void)arg;
    for (;;) {
        if (atomic_load(&g_srv->draining)) return NULL; /* the early 503 */
        sleep_ms(WINDOW_MS);
        fake_req r = {.active = {.cancel = fake_cancel}};
        atomic_init(&r.cancelled, false);
        if (!dz_server_active_add(g_srv, &r.active)) { /* the drain began in the window */
            atomic_fetch_add(&g_refused, 1);
            return NULL;
        }
        atomic_fetch_add(&g_registered, 1);
        /* work that ends only when cancelled, or by itself after a few ms while not draining */
        bool saw_drain = false;
        for (int i = 0; i < 2000 && !atomic_load(&r.cancelled); i++) {
            if (atomic_load(&g_srv->draining)) saw_drain = true;
            else if (i >= 3) break;
            sleep_ms(1);
        }
        if (atomic_load(&r.cancelled)) atomic_fetch_add(&g_cancelled, 1);
        else if (saw_drain) atomic_fetch_add(&g_missed, 1); /* registered in the drain, never cancelled */
        dz_server_active_remove(g_srv, &r.active);
    }
}

int main(void) {
    for (int round = 0; round < 2; round++) {
        dz_serve_config c;
        DZT_OK(dz_serve_config_init(&c));
        char db[512];
        snprintf(db, sizeof db, "%s/drain%d.db", dzt_tmpdir(), round);
        DZT_OK(dz_serve_config_set_str(&c.db, db));
        c.drain_timeout_s = 0;
        c.port = 0;
        dz_server *s = NULL;
        DZT_OK(dz_server_create(&c, &s));
        dz_serve_config_clear(&c);
        if (!s) return dzt_done();
        DZT_OK(dz_server_start(s, false));
        g_srv = s;
        atomic_store(&g_registered, 0);
        atomic_store(&g_refused, 0);
        atomic_store(&g_cancelled, 0);
        atomic_store(&g_missed, 0);
        pthread_t th[N_THREADS];
        for (int i = 0; i < N_THREADS; i++) pthread_create(&th[i], NULL, handler_main, NULL);
        /* every thread in its loop before the drain (however busy the machine) */
        for (int waited = 0; atomic_load(&g_registered) < N_THREADS && waited < 5000; waited += 10) sleep_ms(10);
        sleep_ms(7 * round);
        double t0 = dz_time_now();
        dz_server_drain(s); /* drain_timeout_s 0: cancels what is registered, waits for it */
        double took = dz_time_now() - t0;
        for (int i = 0; i < N_THREADS; i++) pthread_join(th[i], NULL);
        fprintf(stderr, "round %d: drain %.3f s; %d registered, %d cancelled, %d refused, %d missed\n", round, took,
                atomic_load(&g_registered), atomic_load(&g_cancelled), atomic_load(&g_refused),
                atomic_load(&g_missed));
        DZT_CHECK(took < 5, "round %d: the drain took %.1f s", round, took);
        DZT_CHECK(atomic_load(&g_missed) == 0,
                  "round %d: %d requests registered during the drain and were never cancelled (in the server "
                  "MHD_stop_daemon would wait for them up to request_timeout_s)",
                  round, atomic_load(&g_missed));
        DZT_CHECK(atomic_load(&g_registered) > 0, "round %d: no request registered before the drain", round);
        dz_server_destroy(s);
    }
    return dzt_done();
}
