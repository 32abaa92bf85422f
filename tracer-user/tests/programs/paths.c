/* Leaks through every allocation and descriptor path leaktrace follows, each
 * site with its own count, and releases through dup2, close_range and
 * socketpair that must not be reported. Expected sites are the `@site` markers:
 * name, kind, count, bytes per item. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/close_range.h>
#include <sys/syscall.h>

void *lib_leak(void);

static void *volatile sink[64];
static int nsink;

static void keep(void *p) { sink[nsink++ % 64] = p; }

__attribute__((noinline)) static void *thread_main(void *arg) {
    (void)arg;
    for (int i = 0; i < 3; i++)
        keep(malloc(100)); /* @site thread_malloc heap 3 100 */
    return NULL;
}

__attribute__((noinline)) static void heap_paths(void) {
    for (int i = 0; i < 5; i++) {
        char *p = malloc(10);
        p = realloc(p, 200); /* @site realloc_moves heap 5 200 */
        keep(p);
    }
    for (int i = 0; i < 6; i++) {
        void *p = NULL;
        if (posix_memalign(&p, 64, 48) == 0) /* @site memalign heap 6 48 */
            keep(p);
    }
    for (int i = 0; i < 7; i++)
        keep(strdup("abcdefg")); /* @site strdup heap 7 8 */
    for (int i = 0; i < 4; i++)
        keep(lib_leak());
    /* Released: nothing of these may be reported. */
    for (int i = 0; i < 100; i++) {
        void *a = malloc(32), *b = calloc(2, 16), *c = realloc(NULL, 8);
        c = realloc(c, 4096);
        void *d = NULL;
        posix_memalign(&d, 128, 64);
        free(a); free(b); free(c); free(d);
    }
    free(NULL);
    void *z = malloc(1);
    z = realloc(z, 0); /* glibc frees and returns NULL */
    free(z);
}

__attribute__((noinline)) static void fd_paths(void) {
    /* accept4: the accepted sockets leak, everything else is closed. */
    int srv = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(srv, (struct sockaddr *)&a, sizeof a);
    listen(srv, 8);
    getsockname(srv, (struct sockaddr *)&a, &len);
    int clients[2];
    for (int i = 0; i < 2; i++) {
        clients[i] = socket(AF_INET, SOCK_STREAM, 0);
        connect(clients[i], (struct sockaddr *)&a, sizeof a);
    }
    for (int i = 0; i < 2; i++)
        (void)accept4(srv, NULL, NULL, SOCK_CLOEXEC); /* @site accept4 socket 2 0 */
    for (int i = 0; i < 2; i++)
        close(clients[i]);
    close(srv);

    /* dup2 over an open descriptor closes it; both released afterwards. */
    int e1 = eventfd(0, 0), e2 = eventfd(0, 0);
    dup2(e1, e2);
    close(e1);
    close(e2);

    /* close_range over a block of descriptors. */
    int p[2];
    for (int i = 0; i < 3; i++) {
        pipe2(p, 0);
        dup2(p[0], 200 + 2 * i);
        dup2(p[1], 201 + 2 * i);
        close(p[0]);
        close(p[1]);
    }
    syscall(SYS_close_range, 200, 205, 0);

    /* socketpair: one pair released, one leaked. */
    int sp[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    close(sp[0]);
    close(sp[1]);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp); /* @site socketpair socket 2 0 */
}

int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, thread_main, NULL);
    pthread_join(t, NULL);
    heap_paths();
    fd_paths();
    return 0;
}
