/* malloc/free pairs for ever; every quarter second, "rate=N" on stdout:
 * the pairs per second of that quarter. What an attach costs the program
 * while it is traced, and whether it gets its speed back after. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    double start = now();
    for (long n = 0;; n++) {
        void *volatile p = malloc(32 + (n & 127));
        free(p);
        if ((n & 4095) == 0) {
            double t = now();
            if (t - start >= 0.25) {
                printf("rate=%.0f\n", n / (t - start));
                start = t;
                n = 0;
            }
        }
    }
}
