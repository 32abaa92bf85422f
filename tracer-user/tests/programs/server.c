/* A server that runs until it is told to stop: it listens on a socket, says
 * "ready" on stdout, and waits. `graceful`: on SIGTERM it closes its socket,
 * frees its state and exits 0 (a deliberate 77-byte leak stays). `stubborn`:
 * it ignores SIGTERM. */
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
static volatile sig_atomic_t stop;
static void *volatile leaked;

static void on_term(int sig) {
    (void)sig;
    stop = 1;
}

NOINLINE void leak_config(void) { leaked = malloc(77); } /* @site leak_config heap 1 77 */

int main(int argc, char **argv) {
    int stubborn = argc > 1 && strcmp(argv[1], "stubborn") == 0;
    signal(SIGTERM, stubborn ? SIG_IGN : on_term);
    leak_config();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0)
        return 1;
    void *state = malloc(4096);
    if (write(1, "ready\n", 6) != 6) /* no stdio: its buffer would be one more block */
        return 1;
    while (!stop)
        pause();
    free(state);
    close(fd);
    return 0;
}
