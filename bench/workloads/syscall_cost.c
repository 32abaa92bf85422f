/* An untraced process's system call cost: tight loops of getppid() (a call no
 * tracer follows) and close(-1) (one leaktrace follows, failing at once).
 * Timed in this thread's CPU time, so that the machine's other work does not
 * count; the best of several rounds. Prints ns per call of each. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 7;
    double getppid_ns = 1e18, close_ns = 1e18;
    for (int r = 0; r < rounds; r++) {
        double a = cpu_ns();
        for (long i = 0; i < n; i++)
            syscall(SYS_getppid);
        double b = cpu_ns();
        for (long i = 0; i < n; i++)
            syscall(SYS_close, -1);
        double c = cpu_ns();
        if ((b - a) / n < getppid_ns)
            getppid_ns = (b - a) / n;
        if ((c - b) / n < close_ns)
            close_ns = (c - b) / n;
    }
    printf("getppid_ns=%.1f close_ns=%.1f calls=%ld\n", getppid_ns, close_ns, n * rounds);
    return 0;
}
