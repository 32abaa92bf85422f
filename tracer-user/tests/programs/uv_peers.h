/* The clients' and the server's callbacks of uv_handles.c and uv_plugin.c:
 * each client connected and each peer accepted (its handle created in
 * take_peer) is counted, and the loop stops once there are CLIENTS of each.
 * The includer defines CLIENTS, `loop`, and UV(f): how it calls libuv's f
 * (f itself, or a pointer dlsym gave). */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

static uv_loop_t *loop;
static int connected, accepted;

static void maybe_stop(void) {
    if (connected == CLIENTS && accepted == CLIENTS)
        UV(uv_stop)(loop);
}

static void on_connect(uv_connect_t *req, int status) {
    if (status != 0) {
        fprintf(stderr, "connect: %s\n", UV(uv_strerror)(status));
        exit(1);
    }
    free(req);
    connected++;
    maybe_stop();
}

static void __attribute__((noinline)) take_peer(uv_stream_t *server) {
    uv_tcp_t *peer = malloc(sizeof *peer);
    UV(uv_tcp_init)(loop, peer);
    if (UV(uv_accept)(server, (uv_stream_t *)peer) != 0)
        exit(1);
    accepted++;
}

static void on_connection(uv_stream_t *server, int status) {
    if (status != 0)
        exit(1);
    take_peer(server);
    maybe_stop();
}
