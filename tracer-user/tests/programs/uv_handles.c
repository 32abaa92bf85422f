/* A libuv program whose descriptors are made by the loop for handles its
 * functions created: a listener opened in main, three clients connected
 * from a timer callback (dial_later), the server's side of each accepted in
 * the connection callback (take_peer), and a heartbeat timer started by
 * start_heartbeat and never stopped. Nothing is closed: the loop is
 * stopped once every client is connected and every peer accepted.
 * A second timer (start_checked) is stopped and closed: not a leak.
 * Usage: uv_handles */
#include <netinet/in.h>

#define CLIENTS 3
#define UV(f) f
#include "uv_peers.h"

static uv_tcp_t listener;
static struct sockaddr_in bound;

static void __attribute__((noinline)) dial_later(uv_timer_t *timer) {
    (void)timer;
    for (int i = 0; i < CLIENTS; i++) {
        uv_tcp_t *client = malloc(sizeof *client);
        uv_connect_t *req = malloc(sizeof *req);
        uv_tcp_init(loop, client);
        uv_tcp_connect(req, client, (const struct sockaddr *)&bound, on_connect);
    }
}

static void tick(uv_timer_t *timer) { (void)timer; }

static void __attribute__((noinline)) start_heartbeat(void) {
    uv_timer_t *heartbeat = malloc(sizeof *heartbeat);
    uv_timer_init(loop, heartbeat);
    uv_timer_start(heartbeat, tick, 1, 1);
}

static void closed(uv_handle_t *h) { free(h); }

static void __attribute__((noinline)) start_checked(void) {
    uv_timer_t *checked = malloc(sizeof *checked);
    uv_timer_init(loop, checked);
    uv_timer_start(checked, tick, 1000, 0);
    uv_timer_stop(checked);
    uv_close((uv_handle_t *)checked, closed);
}

int main(void) {
    loop = uv_default_loop();
    uv_tcp_init(loop, &listener);
    uv_ip4_addr("127.0.0.1", 0, &bound);
    if (uv_tcp_bind(&listener, (const struct sockaddr *)&bound, 0) != 0)
        return 1;
    int len = sizeof bound;
    uv_tcp_getsockname(&listener, (struct sockaddr *)&bound, &len);
    if (uv_listen((uv_stream_t *)&listener, 16, on_connection) != 0)
        return 1;
    static uv_timer_t dial;
    uv_timer_init(loop, &dial);
    uv_timer_start(&dial, dial_later, 5, 0);
    start_heartbeat();
    start_checked();
    uv_run(loop, UV_RUN_DEFAULT);
    printf("connected %d accepted %d\n", connected, accepted);
    return 0;
}
