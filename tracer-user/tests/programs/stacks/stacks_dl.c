/* Loaded with dlopen by stacks.c: its table reaches the kernel only once the
 * walk has met it. */
#include <stdlib.h>

static volatile long sink;

__attribute__((noinline)) void dl_leak(void) { sink += (long)malloc(72); }
