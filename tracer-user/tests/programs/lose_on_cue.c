/* Says "ready" on stdout, then loses 7 blocks of 48 bytes in lose_blocks()
 * for each `l` read from stdin, says "done", and exits when stdin closes. The tests move,
 * delete or hide this program (or its allocator) while it runs. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void *volatile sink;

__attribute__((noinline)) void lose_blocks(void) {
    for (int i = 0; i < 7; i++)
        sink = malloc(48);
    sink = NULL;
}

int main(void) {
    char c;
    printf("ready\n");
    fflush(stdout);
    while (read(0, &c, 1) == 1) {
        if (c != 'l')
            continue;
        lose_blocks();
        printf("done\n");
        fflush(stdout);
    }
    return 0;
}
