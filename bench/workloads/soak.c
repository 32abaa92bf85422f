/* A busy, churning program for the soak test: for SECONDS it allocates and
 * frees from a few call sites, keeps 256 blocks outstanding (the oldest is
 * freed as a new one comes), and opens and closes a pipe now and then. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define RING 256

static void *ring[RING];

__attribute__((noinline)) static void *site_a(size_t n) { return malloc(n); }
__attribute__((noinline)) static void *site_b(size_t n) { return calloc(1, n); }

int main(int argc, char **argv) {
    int seconds = argc > 1 ? atoi(argv[1]) : 60;
    time_t until = time(NULL) + seconds;
    struct timespec pause = {0, 200000}; /* ~5,000 rounds a second */
    for (unsigned long i = 0; time(NULL) < until; i++) {
        free(ring[i % RING]);
        ring[i % RING] = (i & 1) ? site_a(16 + (i & 255)) : site_b(32);
        void *volatile t = malloc(64);
        free(t);
        if (i % 100 == 0) {
            int p[2];
            if (pipe(p) == 0) {
                close(p[0]);
                close(p[1]);
            }
        }
        nanosleep(&pause, NULL);
    }
    return 0;
}
