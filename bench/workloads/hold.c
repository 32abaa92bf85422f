/* Holds N allocations of SIZE bytes (default 16) at exit, each linked to the
 * one before from a global: leaktrace's own memory with that many
 * outstanding, and the reachability scan's time and memory over them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void **last;

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    long size = argc > 2 ? atol(argv[2]) : 16;
    if (size < (long)sizeof(void *))
        size = sizeof(void *);
    for (long i = 0; i < n; i++) {
        void **p = malloc(size);
        if (!p)
            return 1;
        memset(p, 0, size);
        *p = last;
        last = p;
    }
    printf("ns_per_op=0 ops=%ld\n", n);
    return 0;
}
