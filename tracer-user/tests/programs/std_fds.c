/* Descriptors 0 and 2 taken over, as a daemon does, and one real leak.
 * std_fds.c is the program of kernel_std_fds.rs: stderr redirected to a
 * log with dup2 (nginx's ngx_log_redirect_stderr), stdin closed and
 * reopened on /dev/null (open gives the lowest free number), and a file
 * opened and never closed. */
#include <fcntl.h>
#include <unistd.h>

__attribute__((noinline)) static void redirect_stderr(const char *log) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0)
        _exit(10);
    if (dup2(fd, 2) != 2)
        _exit(11);
    close(fd);
}

__attribute__((noinline)) static void reopen_stdin(void) {
    close(0);
    if (open("/dev/null", O_RDONLY) != 0)
        _exit(12);
}

__attribute__((noinline)) static void leak_a_file(void) {
    if (open("/dev/null", O_RDONLY) < 0)
        _exit(13);
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    redirect_stderr(argv[1]);
    reopen_stdin();
    leak_a_file();
    return 0;
}
