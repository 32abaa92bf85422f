/* A long-running program with a large heap for the attach scan: on `a` from
 * stdin it allocates MIB mebibytes in blocks of SIZE bytes (arguments), each
 * linked to the one before, the last held by a block allocated at start
 * (before leaktrace attaches: still reachable), loses one more, says "ready"
 * on stdout and waits for stdin to close. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct node {
    struct node *next;
};

struct node *anchor;

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 100, size = argc > 2 ? atol(argv[2]) : 1024;
    anchor = calloc(1, sizeof *anchor);
    if (!anchor)
        return 1;
    char c;
    while (read(0, &c, 1) == 1 && c != 'a')
        ;
    for (long i = 0; i < (mib << 20) / size; i++) {
        struct node *n = malloc(size);
        if (!n)
            return 1;
        memset(n, 0, size);
        n->next = anchor->next;
        anchor->next = n;
    }
    void *volatile lost = malloc(4096);
    lost = NULL;
    printf("ready\n");
    fflush(stdout);
    while (read(0, &c, 1) == 1)
        ;
    return 0;
}
