/* Heap at a known pace, in steps every 250 ms at absolute deadlines (the
 * pace does not drift):
 *   grow leak BYTES_PER_SEC SECS        leaks BYTES_PER_SEC a second for SECS
 *   grow cache TOTAL FILL_SECS SECS     fills a TOTAL-byte cache in FILL_SECS,
 *                                       then holds it until SECS
 * Prints "ready" once started; never frees (what it holds at exit is left). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STEPS_PER_SEC 4

static void *volatile keep;

__attribute__((noinline)) static void leak_step(size_t n) {
    char *p = malloc(n);
    memset(p, 1, n);
    keep = p;
}

__attribute__((noinline)) static void cache_fill(size_t n) {
    char *p = malloc(n);
    memset(p, 2, n);
    keep = p;
}

static void next(struct timespec *at) {
    at->tv_nsec += 1000000000L / STEPS_PER_SEC;
    if (at->tv_nsec >= 1000000000L) {
        at->tv_nsec -= 1000000000L;
        at->tv_sec++;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, at, NULL);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: grow leak BYTES_PER_SEC SECS | grow cache TOTAL FILL_SECS SECS\n");
        return 2;
    }
    int leak = strcmp(argv[1], "leak") == 0;
    long a = atol(argv[2]), b = atol(argv[3]);
    long secs = leak ? b : (argc > 4 ? atol(argv[4]) : b);
    long fill_steps = leak ? 0 : b * STEPS_PER_SEC;
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    printf("ready\n");
    fflush(stdout);
    for (long step = 0; step < secs * STEPS_PER_SEC; step++) {
        if (leak)
            leak_step((size_t)a / STEPS_PER_SEC);
        else if (step < fill_steps)
            cache_fill((size_t)a / (size_t)fill_steps);
        next(&at);
    }
    return 0;
}
