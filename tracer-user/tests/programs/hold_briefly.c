/* Long-running: opens a socket and a timerfd, holds them 2 ms, closes both,
 * and again, until stdin closes. Any moment has a fair chance of falling
 * while two handles are open that are closed a moment later. */
#include <poll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

int main(void) {
    for (;;) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        int t = timerfd_create(CLOCK_MONOTONIC, 0);
        struct pollfd in = {.fd = 0, .events = POLLIN};
        int ready = poll(&in, 1, 2);
        close(s);
        close(t);
        if (ready > 0) {
            char c;
            if (read(0, &c, 1) <= 0)
                return 0;
        }
    }
}
