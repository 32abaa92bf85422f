/* A burst of heap on request, at a steady pace:
 *   burst DIR BLOCKS
 * creates DIR/ready once started, waits for a line on stdin, then leaks
 * BLOCKS blocks of 24 bytes, 500 every 25 ms (20,000 a second), creates
 * DIR/done, and exits at the end of stdin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *volatile keep;

__attribute__((noinline)) static void burst_block(void) {
    keep = malloc(24);
}

static void mark(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: burst DIR BLOCKS\n");
        return 2;
    }
    long blocks = atol(argv[2]);
    char line[64];
    mark(argv[1], "ready");
    if (!fgets(line, sizeof line, stdin))
        return 1;
    struct timespec pause = {0, 25000000L};
    for (long i = 0; i < blocks; i++) {
        burst_block();
        if (i % 500 == 499)
            nanosleep(&pause, NULL);
    }
    mark(argv[1], "done");
    while (fgets(line, sizeof line, stdin))
        ;
    return 0;
}
