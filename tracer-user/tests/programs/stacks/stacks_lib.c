/* A shared library linked by stacks.c: its leak's site is here. */
#include <stdlib.h>

static volatile long sink;

__attribute__((noinline)) void lib_leak(int n) {
    for (int i = 0; i < n; i++)
        sink += (long)malloc(32);
}
