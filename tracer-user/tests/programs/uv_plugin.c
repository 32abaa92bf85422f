/* A program that loads libuv with dlopen after it started (as a plugin
 * host or a runtime's extension module does): nothing of libuv is in its
 * DT_NEEDED. Once loaded, it listens from plugin_listen, connects three
 * clients from main, keeps the server's side of each from take_peer (whose
 * handles it creates) and starts a heartbeat timer from start_heartbeat,
 * never stopped. Nothing is closed: the loop is stopped once every client
 * is connected and every peer accepted.
 * Usage: uv_plugin [--wait]  (--wait: a line on stdin before the dlopen,
 * another after it) */
#include <dlfcn.h>
#include <string.h>

#define CLIENTS 3
#define UV(f) p_##f

/* Each libuv function the program calls, as a pointer dlsym gave. */
#define UV_FUNCTIONS(X)                                                                                                \
    X(uv_default_loop) X(uv_tcp_init) X(uv_tcp_bind) X(uv_tcp_getsockname) X(uv_listen) X(uv_accept)                 \
        X(uv_tcp_connect) X(uv_ip4_addr) X(uv_timer_init) X(uv_timer_start) X(uv_run) X(uv_stop) X(uv_strerror)
#define DECLARE(f) static __typeof__(f) *p_##f;
#include <uv.h>
UV_FUNCTIONS(DECLARE)
#include "uv_peers.h"

static struct sockaddr_in bound;

static void load_libuv(void) {
    void *lib = dlopen("libuv.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        exit(1);
    }
#define RESOLVE(f)                                                                                                     \
    if (!(p_##f = (__typeof__(f) *)dlsym(lib, #f))) {                                                                  \
        fprintf(stderr, "no %s in libuv\n", #f);                                                                      \
        exit(1);                                                                                                       \
    }
    UV_FUNCTIONS(RESOLVE)
}

static void __attribute__((noinline)) plugin_listen(void) {
    static uv_tcp_t listener;
    p_uv_tcp_init(loop, &listener);
    p_uv_ip4_addr("127.0.0.1", 0, &bound);
    int len = sizeof bound;
    if (p_uv_tcp_bind(&listener, (const struct sockaddr *)&bound, 0) != 0 ||
        p_uv_tcp_getsockname(&listener, (struct sockaddr *)&bound, &len) != 0 ||
        p_uv_listen((uv_stream_t *)&listener, 16, on_connection) != 0)
        exit(1);
}

static void tick(uv_timer_t *timer) { (void)timer; }

static void __attribute__((noinline)) start_heartbeat(void) {
    uv_timer_t *heartbeat = malloc(sizeof *heartbeat);
    p_uv_timer_init(loop, heartbeat);
    p_uv_timer_start(heartbeat, tick, 1, 1);
}

static void wait_for_line(void) {
    char line[16];
    if (!fgets(line, sizeof line, stdin))
        exit(1);
}

int main(int argc, char **argv) {
    int wait = argc > 1 && strcmp(argv[1], "--wait") == 0;
    if (wait) {
        printf("ready\n");
        fflush(stdout);
        wait_for_line();
    }
    load_libuv();
    if (wait) {
        printf("loaded\n");
        fflush(stdout);
        wait_for_line();
    }
    loop = p_uv_default_loop();
    plugin_listen();
    for (int i = 0; i < CLIENTS; i++) {
        uv_tcp_t *client = malloc(sizeof *client);
        uv_connect_t *req = malloc(sizeof *req);
        p_uv_tcp_init(loop, client);
        p_uv_tcp_connect(req, client, (const struct sockaddr *)&bound, on_connect);
    }
    start_heartbeat();
    p_uv_run(loop, UV_RUN_DEFAULT);
    printf("connected %d accepted %d\n", connected, accepted);
    return 0;
}
