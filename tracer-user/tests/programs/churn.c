/* Long-running: opens and closes sockets and timerfds, keeping every Nth.
 * Commands on stdin: 'p' pauses (holding what it has), 'r' resumes, 'c'
 * asks how many pairs it has kept; each is answered with a line on stdout
 * once done ("paused K", "resumed K", "kept K"), so a test waits on the
 * answer, not on time. EOF exits. Used by the attach and TUI tests. */
#include <stdio.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int keep_every = argc > 1 ? atoi(argv[1]) : 10;
    int paused = 0;
    unsigned long kept = 0;
    for (unsigned long i = 0;; i++) {
        if (!paused) {
            int s = socket(AF_INET, SOCK_DGRAM, 0);
            int t = timerfd_create(CLOCK_MONOTONIC, 0);
            if (i % keep_every != 0) {
                close(s);
                close(t);
            } else {
                kept++;
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
            if (c == 'p' || c == 'r' || c == 'c') {
                printf("%s %lu\n", c == 'p' ? "paused" : c == 'r' ? "resumed" : "kept", kept);
                fflush(stdout);
            }
        }
    }
}
