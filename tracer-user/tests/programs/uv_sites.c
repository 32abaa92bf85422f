/* A libuv program with two call sites of sockets: its listening socket is
 * made in main, its client sockets in the timer callback dial_later; the
 * loop accepts the clients' connections in uv_run. Nothing is closed: every
 * socket is still open when the loop is stopped and the program exits.
 * Linked with the system's libuv (-luv), whose internal uv__socket makes
 * them all. The markers name the lines of the calls. */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#define CLIENTS 3

static uv_tcp_t server;
static struct sockaddr_in bound;

static void check(int err, const char *what) {
    if (err < 0) {
        fprintf(stderr, "%s: %s\n", what, uv_strerror(err));
        exit(1);
    }
}

static void on_connect(uv_connect_t *req, int status) {
    (void)req;
    check(status, "connect");
}

static void on_connection(uv_stream_t *listener, int status) {
    check(status, "listen");
    uv_tcp_t *peer = malloc(sizeof *peer);
    uv_tcp_init(listener->loop, peer); /* @accept */
    check(uv_accept(listener, (uv_stream_t *)peer), "accept");
}

static void dial_later(uv_timer_t *timer) {
    for (int i = 0; i < CLIENTS; i++) {
        uv_tcp_t *client = malloc(sizeof *client);
        uv_connect_t *req = malloc(sizeof *req);
        uv_tcp_init(timer->loop, client);
        check(uv_tcp_connect(req, client, (const struct sockaddr *)&bound, on_connect), "connect"); /* @dial */
    }
}

static void stop_later(uv_timer_t *timer) {
    uv_stop(timer->loop);
}

int main(void) {
    uv_loop_t *loop = uv_default_loop();
    struct sockaddr_in any;
    check(uv_ip4_addr("127.0.0.1", 0, &any), "address");
    uv_tcp_init(loop, &server);
    check(uv_tcp_bind(&server, (const struct sockaddr *)&any, 0), "bind"); /* @listen */
    check(uv_listen((uv_stream_t *)&server, 16, on_connection), "listen");
    int len = sizeof bound;
    check(uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len), "getsockname");
    uv_timer_t dial, stop;
    uv_timer_init(loop, &dial);
    uv_timer_start(&dial, dial_later, 50, 0);
    uv_timer_init(loop, &stop);
    uv_timer_start(&stop, stop_later, 400, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    printf("stopped\n");
    return 0;
}
