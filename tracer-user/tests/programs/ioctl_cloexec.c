/* Close-on-exec set and cleared by ioctl (libuv's uv__cloexec, Python's
 * os.set_inheritable): a pipe made inheritable with FIONCLEX survives the
 * exec and is held by the new image when it exits; a pipe made close-on-exec
 * with FIOCLEX does not. Then it execs `true`. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <fcntl.h>

__attribute__((noinline)) static void inheritable(void) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) || ioctl(p[0], FIONCLEX) || ioctl(p[1], FIONCLEX))
        exit(1);
}

__attribute__((noinline)) static void private_pipe(void) {
    int p[2];
    if (pipe(p) || ioctl(p[0], FIOCLEX) || ioctl(p[1], FIOCLEX))
        exit(1);
}

int main(void) {
    inheritable();
    private_pipe();
    execl("/bin/true", "true", (char *)0);
    return 1;
}
