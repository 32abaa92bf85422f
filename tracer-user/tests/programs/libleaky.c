/* A shared library that leaks: attribution must name it, not its caller. */
#include <stdlib.h>

__attribute__((noinline)) void *lib_leak(void) {
    return calloc(4, 8); /* @site lib_calloc heap 4 32 */
}
