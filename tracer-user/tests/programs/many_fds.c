/* Receives 20 descriptors in one SCM_RIGHTS message: more than leaktrace
 * follows in one call, which its report must say. */
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define N 20

int main(void) {
    int sp[2], fds[N];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0)
        return 3;
    for (int i = 0; i < N; i++)
        fds[i] = eventfd(0, 0);
    char byte = 'x', control[CMSG_SPACE(sizeof fds)];
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    if (sendmsg(sp[1], &msg, 0) != 1)
        return 3;
    for (int i = 0; i < N; i++)
        close(fds[i]);
    return recvmsg(sp[0], &msg, 0) == 1 ? 0 : 3;
}
