/* Long-running: opens and closes sockets and timerfds, keeping every Nth.
 * Commands on stdin: 'p' pauses (holding what it has), 'r' resumes; EOF exits.
 * Used by the attach and TUI tests. */
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int keep_every = argc > 1 ? atoi(argv[1]) : 10;
    int paused = 0;
    for (unsigned long i = 0;; i++) {
        if (!paused) {
            int s = socket(AF_INET, SOCK_DGRAM, 0);
            int t = timerfd_create(CLOCK_MONOTONIC, 0);
            if (i % keep_every != 0) {
                close(s);
                close(t);
            }
        }
        struct pollfd in = {.fd = 0, .events = POLLIN};
        if (poll(&in, 1, paused ? -1 : 5) > 0) {
            char c;
            if (read(0, &c, 1) <= 0)
                return 0;
            if (c == 'p')
                paused = 1;
            else if (c == 'r')
                paused = 0;
        }
    }
}
