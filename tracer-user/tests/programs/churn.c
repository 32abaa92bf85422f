/* Long-running: opens and closes sockets and timerfds, keeping every Nth,
 * until a byte arrives on stdin (then it idles, holding what it has, until
 * stdin closes). Used by the attach test. */
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <netinet/in.h>

int main(int argc, char **argv) {
    int keep_every = argc > 1 ? atoi(argv[1]) : 10;
    for (unsigned long i = 0;; i++) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        int t = timerfd_create(CLOCK_MONOTONIC, 0);
        if (i % keep_every != 0) {
            close(s);
            close(t);
        }
        struct pollfd in = {.fd = 0, .events = POLLIN};
        if (poll(&in, 1, 5) > 0) {
            char c;
            if (read(0, &c, 1) <= 0)
                return 0;
            while (read(0, &c, 1) > 0) /* paused until stdin closes */
                ;
            return 0;
        }
    }
}
