/* malloc/free pairs: THREADS threads, each DEPTH frames deep, N pairs each (or
 * for SECONDS when N is 0). Prints ns per pair as the program itself sees it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long n_per_thread;
static int depth, seconds;
static long done[64];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

__attribute__((noinline)) static long loop(void) {
    long i = 0;
    double until = now() + seconds;
    for (;; i++) {
        if (n_per_thread ? i >= n_per_thread : ((i & 4095) == 0 && now() >= until))
            break;
        void *volatile p = malloc(32 + (i & 127));
        free(p);
    }
    return i;
}

__attribute__((noinline)) static long descend(int d) {
    long r = d > 0 ? descend(d - 1) : loop();
    __asm__ volatile("" ::: "memory"); /* keep the frame: no tail call */
    return r;
}

static void *thread_main(void *arg) {
    done[(long)arg] = descend(depth);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    depth = argc > 2 ? atoi(argv[2]) : 0;
    n_per_thread = argc > 3 ? atol(argv[3]) : 1000000;
    seconds = argc > 4 ? atoi(argv[4]) : 0;
    pthread_t t[64];
    double t0 = now();
    for (long i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, thread_main, (void *)i);
    long total = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        total += done[i];
    }
    double secs = now() - t0;
    /* Per pair, per thread: the cost one thread sees. */
    printf("ns_per_op=%.1f ops=%ld secs=%.3f\n", secs * 1e9 * threads / total, total, secs);
    return 0;
}
