/* Threads that allocate and free small blocks, then exit: glibc keeps the
 * freed blocks in each thread's cache and, at the thread's exit, frees them
 * again, and the cache itself, inside its own code. None of that is the
 * program's: no unknown free. One block per thread is leaked (the count
 * the report must show). Usage: thread_cache THREADS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static void *volatile sink;

static void *work(void *arg) {
    for (int i = 0; i < 6; i++) {
        sink = malloc(24 + 16 * i);
        free(sink);
    }
    sink = malloc(40); /* leaked */
    return arg;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, work, NULL) != 0 || pthread_join(t, NULL) != 0)
            return 1;
    }
    printf("threads %d\n", n);
    return 0;
}
