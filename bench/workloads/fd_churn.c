/* Open/close pairs: a socket and a timerfd each round. Prints ns per open/close pair. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        close(socket(AF_UNIX, SOCK_DGRAM, 0));
        close(timerfd_create(CLOCK_MONOTONIC, 0));
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    printf("ns_per_op=%.1f ops=%ld\n", ns / (2.0 * n), 2 * n);
    return 0;
}
