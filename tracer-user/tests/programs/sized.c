/* A program that leaks a little; built with BIG it also carries an 85 MiB
 * read-only blob (never touched), so the file is about 89 MB: leaktrace must
 * map it, not read it. */
#include <stdio.h>
#include <stdlib.h>

#ifdef BIG
static const char blob[85 << 20] = {1};
#define BLOB(i) blob[(i)]
#else
#define BLOB(i) 0
#endif

void *volatile sink;

__attribute__((noinline)) void leak(int i) {
    sink = malloc(100 + BLOB(i));
}

int main(int argc, char **argv) {
    (void)argv;
    for (int i = 0; i < 10; i++)
        leak(i * argc);
    FILE *f = fopen("/dev/null", "r"); /* a stdio leak: libc frames on its stack */
    printf("%p\n", (void *)f);
    return 0;
}
