/* Threads that end alone (the exit system call) as the process ends: at
 * the leader's exit, some of them are past their own exit stop and still
 * on their way out, and stop no more. kernel_lifecycle.rs: leaktrace must
 * let the process end all the same. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WORKERS 16

static pthread_barrier_t go;

static void *worker(void *arg) {
    pthread_barrier_wait(&go);
    syscall(SYS_exit, 0);
    return arg;
}

int main(void) {
    pthread_barrier_init(&go, NULL, WORKERS + 1);
    for (int i = 0; i < WORKERS; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker, NULL) != 0)
            return 1;
    }
    pthread_barrier_wait(&go);
    /* Long enough for some to have passed their exit stop, not all to be gone. */
    for (volatile int i = 0; i < 200000; i++)
        ;
    _exit(0);
}
