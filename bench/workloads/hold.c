/* Holds N allocations at exit: leaktrace's own memory with that many outstanding. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    void *volatile sink;
    for (long i = 0; i < n; i++)
        sink = malloc(16);
    (void)sink;
    printf("ns_per_op=0 ops=%ld\n", n);
    return 0;
}
