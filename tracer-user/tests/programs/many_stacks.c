/* 50,000 leaks, each from its own stack: a(bits) and b(bits) call each other
 * down 16 levels following the bits of the leak's number. */
#include <stdlib.h>

void *volatile sink;
volatile int after;

__attribute__((noinline)) void leaf(void) {
    sink = malloc(16);
}

__attribute__((noinline)) void b(unsigned bits, int depth);

__attribute__((noinline)) void a(unsigned bits, int depth) {
    if (depth == 0)
        leaf();
    else if (bits & 1)
        a(bits >> 1, depth - 1);
    else
        b(bits >> 1, depth - 1);
    after = depth; /* no tail call: every level keeps its frame */
}

__attribute__((noinline)) void b(unsigned bits, int depth) {
    if (depth == 0)
        leaf();
    else if (bits & 1)
        a(bits >> 1, depth - 1);
    else
        b(bits >> 1, depth - 1);
    after = depth;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 50000;
    for (int i = 0; i < n; i++)
        a((unsigned)i, 16);
    return 0;
}
