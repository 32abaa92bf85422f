/* Forks N children one after another; each allocates, frees and exits, and
 * the parent waits for it. What following forks costs per child. With
 * BLOCKS (argv[2]), the parent first allocates that many 32-byte blocks,
 * linked from a global, which every child inherits: what a pre-fork
 * server's workers cost leaktrace. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void **held;

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 300;
    long blocks = argc > 2 ? atol(argv[2]) : 0;
    for (long i = 0; i < blocks; i++) {
        void **p = malloc(32);
        if (!p)
            return 1;
        *p = held;
        held = p;
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            void *volatile p = malloc(64);
            free(p);
            _exit(0);
        }
        int status;
        waitpid(pid, &status, 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    printf("ns_per_op=%.1f ops=%ld secs=%.3f\n", ns / n, n, ns / 1e9);
    return 0;
}
