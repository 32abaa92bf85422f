/* Three sockets and two heap blocks left open at exit, one of each released:
 * built static for the kernel tests (descriptors always traced; the heap
 * when the binary defines malloc). */
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
static void *volatile sink;

NOINLINE void open_sockets(void) {
    for (int i = 0; i < 4; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0); /* @site open_sockets socket 3 0 */
        if (i == 3)
            close(fd);
    }
}

NOINLINE void keep_blocks(void) {
    for (int i = 0; i < 3; i++) {
        void *p = malloc(40); /* @site keep_blocks heap 2 40 */
        if (i == 2)
            free(p);
        else
            sink = p;
    }
}

int main(void) {
    open_sockets();
    keep_blocks();
    return 0;
}
