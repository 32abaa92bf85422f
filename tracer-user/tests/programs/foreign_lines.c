/* Leaks from two functions whose DWARF line information names files chosen
 * at build time (-DPUBLIC_SOURCE=..., -DSECRET_SOURCE=...): what a hostile
 * program can do with #line. The live view must show the lines of a file
 * this program's user can read, and none of one it cannot. */
#include <stdlib.h>
#include <unistd.h>

static void *kept[1 << 16];

__attribute__((noinline)) void *from_public(void) {
#line 1 PUBLIC_SOURCE
    return malloc(4096);
}

#line 20 "foreign_lines.c"
__attribute__((noinline)) void *from_secret(void) {
#line 1 SECRET_SOURCE
    return malloc(16);
}

#line 30 "foreign_lines.c"
int main(void) {
    for (unsigned i = 0;; i++) {
        kept[(2 * i) % (1 << 16)] = from_public();
        kept[(2 * i + 1) % (1 << 16)] = from_secret();
        usleep(50000);
    }
}
