/* Waits for a byte on stdin, then forks three children; each waits two seconds
 * (leaktrace attaches its probes after the fork), leaks two 100-byte blocks
 * and exits. Exits when stdin closes. */
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
static void *volatile sink;

NOINLINE void child_leaks(void) {
    for (int i = 0; i < 2; i++)
        sink = malloc(100); /* @site child_leaks heap 6 100 */
}

int main(void) {
    char c;
    if (read(0, &c, 1) != 1)
        return 1;
    for (int i = 0; i < 3; i++) {
        if (fork() == 0) {
            struct timespec t = {2, 0};
            nanosleep(&t, NULL);
            child_leaks();
            _exit(0);
        }
    }
    while (wait(NULL) > 0)
        ;
    while (read(0, &c, 1) == 1)
        ;
    return 0;
}
