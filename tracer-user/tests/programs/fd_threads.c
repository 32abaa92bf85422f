/* Threads open and close descriptors as fast as they can, so that numbers
 * pass from thread to thread between a close and its return; the main thread
 * keeps three eventfds meanwhile. Nothing else leaks. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define THREADS 4

static void *churn(void *arg) {
    long n = (long)arg;
    for (long i = 0; i < n; i++) {
        int e = eventfd(0, 0), p[2];
        if (pipe(p) == 0) {
            close(p[0]);
            close(p[1]);
        }
        int s = socket(AF_UNIX, SOCK_DGRAM, 0);
        close(e);
        close(s);
    }
    return NULL;
}

__attribute__((noinline)) static void keep(void) {
    for (int i = 0; i < 3; i++) {
        usleep(1000);
        (void)eventfd(0, 0); /* @site kept eventfd 3 0 */
    }
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 20000;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, churn, (void *)n);
    keep();
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    return 0;
}
