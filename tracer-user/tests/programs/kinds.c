/* Leaks a descriptor of every kind, through every system call that makes one,
 * including two received over a Unix socket (SCM_RIGHTS, by recvmsg and by
 * recvmmsg). Each leak is marked on its call's line. Then it says `ready`,
 * its pid and the descriptors it inherited, and waits for its stdin to close,
 * so that a test can read /proc/PID/fd while everything is open. Nothing else
 * leaks. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/mount.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

static int must(long r, const char *what) {
    if (r < 0) {
        perror(what);
        exit(3);
    }
    return (int)r;
}

/* Sends `n` new eventfds over `sock` in one message and closes its own copies. */
__attribute__((noinline)) static void send_eventfds(int sock, int n) {
    int fds[2];
    for (int i = 0; i < n; i++)
        fds[i] = must(eventfd(0, 0), "eventfd");
    char byte = 'x';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    char control[CMSG_SPACE(sizeof fds)] = {0};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = CMSG_SPACE(n * sizeof(int))};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(n * sizeof(int));
    memcpy(CMSG_DATA(c), fds, n * sizeof(int));
    must(sendmsg(sock, &msg, 0), "sendmsg");
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

__attribute__((noinline)) static void receive(int sock, int peer) {
    char byte, control[CMSG_SPACE(4 * sizeof(int))];
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    must(recvmsg(sock, &msg, 0), "recvmsg"); /* @site recvmsg eventfd 2 0 */
    struct mmsghdr m = {.msg_hdr = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control}};
    send_eventfds(peer, 1);
    must(recvmmsg(sock, &m, 1, 0, NULL), "recvmmsg"); /* @site recvmmsg eventfd 1 0 */
}

__attribute__((noinline)) static void sockets(void) {
    int sp[2];
    must(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), "socketpair"); /* @site socketpair socket 2 0 */
    send_eventfds(sp[1], 2);
    receive(sp[0], sp[1]);

    int srv = must(socket(AF_INET, SOCK_STREAM, 0), "socket"); /* @site socket socket 1 0 */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    must(bind(srv, (struct sockaddr *)&a, sizeof a), "bind");
    must(listen(srv, 1), "listen");
    must(getsockname(srv, (struct sockaddr *)&a, &len), "getsockname");
    int client = must(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
    must(connect(client, (struct sockaddr *)&a, sizeof a), "connect");
    must(accept(srv, NULL, NULL), "accept"); /* @site accept socket 1 0 */
    close(client);
    must(socket(AF_INET6, SOCK_DGRAM, 0), "udp6"); /* @site udp6 socket 1 0 */
}

__attribute__((noinline)) static void events(void) {
    must(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC), "timerfd"); /* @site timerfd timerfd 1 0 */
    int efd = must(eventfd(0, 0), "eventfd"); /* @site eventfd eventfd 1 0 */
    must(syscall(SYS_eventfd, 0), "eventfd (old)"); /* @site eventfd_old eventfd 1 0 */
    must(epoll_create1(0), "epoll"); /* @site epoll epoll 1 0 */
    must(syscall(SYS_epoll_create, 4), "epoll (old)"); /* @site epoll_old epoll 1 0 */
    must(inotify_init1(IN_CLOEXEC), "inotify"); /* @site inotify inotify 1 0 */
    must(syscall(SYS_inotify_init), "inotify (old)"); /* @site inotify_old inotify 1 0 */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    int sfd = must(signalfd(-1, &mask, 0), "signalfd"); /* @site signalfd signalfd 1 0 */
    must(signalfd(sfd, &mask, 0), "signalfd update"); /* the same descriptor: nothing new */
    must(syscall(SYS_signalfd, -1, &mask, 8), "signalfd (old)"); /* @site signalfd_old signalfd 1 0 */
    must(dup(efd), "dup"); /* @site dup eventfd 1 0 */
    must(fcntl(efd, F_DUPFD_CLOEXEC, 100), "fcntl"); /* @site fcntl eventfd 1 0 */
}

__attribute__((noinline)) static void files(void) {
    int p[2];
    must(pipe2(p, O_CLOEXEC), "pipe2"); /* @site pipe2 pipe 2 0 */
    must(syscall(SYS_pipe, p), "pipe"); /* @site pipe pipe 2 0 */
    must(open("/dev/null", O_RDONLY), "open"); /* @site open file 1 0 */
    must(syscall(SYS_open_tree, AT_FDCWD, "/tmp", OPEN_TREE_CLOEXEC), "open_tree"); /* @site open_tree file 1 0 */
    struct file_handle *h = calloc(1, sizeof *h + MAX_HANDLE_SZ);
    h->handle_bytes = MAX_HANDLE_SZ;
    int mount_id;
    must(name_to_handle_at(AT_FDCWD, "/etc", h, &mount_id, 0), "name_to_handle_at");
    int root = must(open("/", O_RDONLY | O_DIRECTORY), "open /");
    must(open_by_handle_at(root, h, O_RDONLY), "open_by_handle_at"); /* @site by_handle file 1 0 */
    close(root);
    free(h);
    int fs = must(syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC), "fsopen"); /* @site fsopen other 1 0 */
    must(syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0), "fsconfig");
    must(syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0), "fsmount"); /* @site fsmount file 1 0 */
    must(syscall(SYS_fspick, AT_FDCWD, "/proc", FSPICK_CLOEXEC), "fspick"); /* @site fspick other 1 0 */
}

__attribute__((noinline)) static void kernel_objects(void) {
    struct io_uring_params up = {0};
    must(syscall(SYS_io_uring_setup, 4, &up), "io_uring_setup"); /* @site io_uring io_uring 1 0 */
    int self = must(syscall(SYS_pidfd_open, getpid(), 0), "pidfd_open"); /* @site pidfd_open pidfd 1 0 */
    int mem = must(memfd_create("leaky", MFD_CLOEXEC), "memfd_create"); /* @site memfd memfd 1 0 */
    must(syscall(SYS_memfd_secret, 0), "memfd_secret"); /* @site memfd_secret memfd 1 0 */
    must(syscall(SYS_pidfd_getfd, self, mem, 0), "pidfd_getfd"); /* @site pidfd_getfd memfd 1 0 */
    must(fanotify_init(FAN_CLASS_NOTIF, O_RDONLY), "fanotify_init"); /* @site fanotify fanotify 1 0 */
    must(syscall(SYS_userfaultfd, O_CLOEXEC), "userfaultfd"); /* @site userfaultfd userfaultfd 1 0 */
    struct perf_event_attr pa = {.type = PERF_TYPE_SOFTWARE, .size = sizeof pa, .config = PERF_COUNT_SW_DUMMY, .disabled = 1};
    must(syscall(SYS_perf_event_open, &pa, 0, -1, -1, PERF_FLAG_FD_CLOEXEC), "perf_event_open"); /* @site perf perf 1 0 */
    union bpf_attr ba = {.map_type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 1};
    must(syscall(SYS_bpf, BPF_MAP_CREATE, &ba, sizeof ba), "bpf"); /* @site bpf bpf 1 0 */
    int pidfd = -1;
    struct clone_args ca = {.flags = CLONE_PIDFD, .pidfd = (uint64_t)(uintptr_t)&pidfd, .exit_signal = SIGCHLD};
    long child = must(syscall(SYS_clone3, &ca, sizeof ca), "clone3"); /* @site clone3 pidfd 1 0 */
    if (child == 0)
        syscall(SYS_exit_group, 0);
    waitpid((pid_t)child, NULL, 0);
}

int main(void) {
    char msg[512]; /* no stdio buffer: the heap stays empty */
    int n = snprintf(msg, sizeof msg, "ready %d", getpid());
    for (int fd = 3; fd < 1024 && n < 480; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n += snprintf(msg + n, sizeof msg - n, " %d", fd);
    msg[n++] = '\n';
    sockets();
    events();
    files();
    kernel_objects();
    must(write(1, msg, n), "write");
    char c;
    while (read(0, &c, 1) > 0) {
    }
    return 0;
}
